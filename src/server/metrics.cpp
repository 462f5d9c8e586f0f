#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <memory>

namespace bgevl::server {

namespace {

std::string num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10,   30};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += v;
  ++count_;
}

uint64_t Histogram::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& labels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t cum = 0;
  for (size_t b = 0; b <= bounds_.size(); ++b) {
    cum += counts_[b];
    const double le = b < bounds_.size() ? bounds_[b] : INFINITY;
    out += name + "_bucket{" + labels + "le=\"" + num(le) + "\"} " + std::to_string(cum) + "\n";
  }
  const std::string l = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
  out += name + "_sum" + l + " " + num(sum_) + "\n";
  out += name + "_count" + l + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : batch_items_(kBatchBounds), batch_requests_(kBatchBounds), batch_seconds_(kLatencyBounds) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& e = endpoints_[endpoint];
  if (!e.latency) e.latency = std::make_unique<Histogram>(kLatencyBounds);
  ++e.requests;
  ++e.by_status[status];
  if (status >= 400) ++e.errors;
  e.latency->observe(seconds);
}

void Metrics::batch(int64_t items, int64_t requests, double seconds) {
  batch_items_.observe(static_cast<double>(items));
  batch_requests_.observe(static_cast<double>(requests));
  batch_seconds_.observe(seconds);
  items_ += static_cast<uint64_t>(items);
  ++batches_;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  recent_.emplace_back(now, items);
  while (!recent_.empty() && now - recent_.front().first > std::chrono::seconds(60))
    recent_.pop_front();
}

std::string Metrics::text() const {
  std::string o;
  std::lock_guard<std::mutex> lock(mutex_);
  o += "# HELP bgevl_requests_total HTTP requests by endpoint and status code.\n"
       "# TYPE bgevl_requests_total counter\n";
  for (const auto& [ep, e] : endpoints_)
    for (const auto& [status, n] : e.by_status)
      o += "bgevl_requests_total{endpoint=\"" + ep + "\",code=\"" + std::to_string(status) +
           "\"} " + std::to_string(n) + "\n";
  o += "# HELP bgevl_request_errors_total HTTP requests answered with a 4xx or 5xx status.\n"
       "# TYPE bgevl_request_errors_total counter\n";
  for (const auto& [ep, e] : endpoints_)
    o += "bgevl_request_errors_total{endpoint=\"" + ep + "\"} " + std::to_string(e.errors) + "\n";
  o += "# HELP bgevl_request_duration_seconds Time from a request read to its response.\n"
       "# TYPE bgevl_request_duration_seconds histogram\n";
  for (const auto& [ep, e] : endpoints_)
    e.latency->write(o, "bgevl_request_duration_seconds", "endpoint=\"" + ep + "\",");
  o += "# HELP bgevl_batch_size Items per model batch formed by the dynamic batcher.\n"
       "# TYPE bgevl_batch_size histogram\n";
  batch_items_.write(o, "bgevl_batch_size", "");
  o += "# HELP bgevl_batch_requests Requests merged into one model batch.\n"
       "# TYPE bgevl_batch_requests histogram\n";
  batch_requests_.write(o, "bgevl_batch_requests", "");
  o += "# HELP bgevl_batch_duration_seconds Model time per batch (decoding, tokenizing, forward).\n"
       "# TYPE bgevl_batch_duration_seconds histogram\n";
  batch_seconds_.write(o, "bgevl_batch_duration_seconds", "");
  o += "# HELP bgevl_items_total Items embedded.\n# TYPE bgevl_items_total counter\n";
  o += "bgevl_items_total " + std::to_string(items_.load()) + "\n";
  o += "# HELP bgevl_batches_total Model batches run.\n# TYPE bgevl_batches_total counter\n";
  o += "bgevl_batches_total " + std::to_string(batches_.load()) + "\n";
  const auto now = std::chrono::steady_clock::now();
  int64_t recent_items = 0;
  for (const auto& [t, n] : recent_)
    if (now - t <= std::chrono::seconds(60)) recent_items += n;
  const double window = std::min(60.0, std::chrono::duration<double>(now - start_).count());
  o += "# HELP bgevl_items_per_second Items embedded per second over the last 60 s.\n"
       "# TYPE bgevl_items_per_second gauge\n";
  o += "bgevl_items_per_second " + num(window > 0 ? double(recent_items) / window : 0.0) + "\n";
  o += "# HELP bgevl_queue_depth Items waiting for the batcher.\n# TYPE bgevl_queue_depth gauge\n";
  o += "bgevl_queue_depth " + std::to_string(queue_depth_.load()) + "\n";
  o += "# HELP bgevl_requests_in_flight HTTP requests being handled.\n"
       "# TYPE bgevl_requests_in_flight gauge\n";
  o += "bgevl_requests_in_flight " + std::to_string(in_flight_.load()) + "\n";
  return o;
}

}  // namespace bgevl::server
