// Dynamic batching across concurrent callers: an Embedder that queues each encode() call and
// lets one worker thread run the queued items of several callers as one batch of the wrapped
// model, up to max_batch items or max_wait after the oldest waiting call, whichever comes first.
// Decoding and tokenizing stay in the model's runtime (its thread pool); the rows each caller
// gets back are those of its own items, as the wrapped model's encode would return them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "bgevl/embedder.h"
#include "server/metrics.h"

namespace bgevl::server {

struct BatcherOptions {
  int64_t max_batch = 32;  // items per model batch; 1: every call alone (no batching)
  std::chrono::microseconds max_wait{5000};
  // Optional: how many callers may call encode() soon, those queued included (the server counts
  // its embedding and search requests from their start until encode returns). The wait for more
  // calls ends as soon as all of them have queued: a lone request is not held for max_wait.
  std::function<int64_t()> callers;
  // Tests: a pause before each batch (a slow model), so that requests are surely in flight.
  std::chrono::milliseconds delay_for_tests{0};
};

class Batcher final : public Embedder {
 public:
  // `metrics` may be null. The model must outlive the batcher.
  Batcher(const Embedder& model, BatcherOptions options, Metrics* metrics = nullptr);
  ~Batcher() override;  // stop()

  // Blocks until the caller's rows are computed. One caller's bad item (an undecodable image,
  // a text too long) fails only that caller: a batch that throws is rerun call by call.
  // options.batch_size and options.progress are ignored (the batcher forms the batches).
  torch::Tensor encode(const std::vector<EmbedItem>& items,
                       const EncodeOptions& options = {}) const override;

  // Runs what is queued, then ends the worker; encode() afterwards throws Error.
  void stop();
  int64_t queued_items() const;

  Family family() const override { return model_.family(); }
  int64_t embedding_dim() const override { return model_.embedding_dim(); }
  int64_t default_batch_size() const override { return options_.max_batch; }
  torch::Device device() const override { return model_.device(); }
  torch::ScalarType dtype() const override { return model_.dtype(); }
  const std::string& model_dir() const override { return model_.model_dir(); }
  const std::string& revision() const override { return model_.revision(); }
  void to(const torch::Device&, torch::ScalarType) override;
  void set_processor(const std::string&, const std::string& = "") override;

 private:
  struct Call {
    const std::vector<EmbedItem>* items;
    bool truncate, normalize;
    std::promise<torch::Tensor> result;
    std::chrono::steady_clock::time_point queued;
  };
  void run();
  void run_batch(std::vector<Call*>& calls);

  const Embedder& model_;
  const BatcherOptions options_;
  Metrics* metrics_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  mutable std::deque<Call*> queue_;
  mutable int64_t queued_items_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace bgevl::server
