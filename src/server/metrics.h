// The server's counters, gauges and histograms, written in Prometheus' text format (0.0.4).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bgevl::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // "<name>_bucket{<labels>le=...} n" lines, _sum and _count; `labels` is "" or `k="v",`.
  void write(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request: its endpoint ("/v1/embeddings", ...), status and duration.
  void request(const std::string& endpoint, int status, double seconds);
  // One batch the batcher ran: its items and requests, and how long the model took.
  void batch(int64_t items, int64_t requests, double seconds);
  void queue_depth(int64_t items) { queue_depth_ = items; }
  void in_flight(int delta) { in_flight_ += delta; }
  std::string text() const;  // the /metrics body

 private:
  struct Endpoint {
    uint64_t requests = 0;
    std::map<int, uint64_t> by_status;
    uint64_t errors = 0;
    std::unique_ptr<Histogram> latency;
  };
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;
  std::map<std::string, Endpoint> endpoints_;
  Histogram batch_items_, batch_requests_, batch_seconds_;
  std::atomic<uint64_t> items_{0}, batches_{0};
  std::atomic<int64_t> queue_depth_{0}, in_flight_{0};
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> recent_;  // items/s window
};

}  // namespace bgevl::server
