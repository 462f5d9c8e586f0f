#include "server/batcher.h"

#include "bgevl/errors.h"

namespace bgevl::server {

Batcher::Batcher(const Embedder& model, BatcherOptions options, Metrics* metrics)
    : model_(model), options_(options), metrics_(metrics) {
  BGEVL_CHECK_ARG(options_.max_batch >= 1, "max_batch must be at least 1, got ",
                  options_.max_batch);
  BGEVL_CHECK_ARG(options_.max_wait.count() >= 0, "max_wait must not be negative");
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() { stop(); }

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t Batcher::queued_items() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_items_;
}

void Batcher::to(const torch::Device&, torch::ScalarType) {
  throw InvalidArgumentError("a batching embedder cannot move its model: move the model itself");
}

void Batcher::set_processor(const std::string&, const std::string&) {
  throw InvalidArgumentError("a batching embedder cannot change the model's processor");
}

torch::Tensor Batcher::encode(const std::vector<EmbedItem>& items,
                              const EncodeOptions& options) const {
  BGEVL_CHECK_ARG(!items.empty(), "no items given (empty list)");
  Call call{&items, options.truncate, options.normalize, {}, std::chrono::steady_clock::now()};
  auto future = call.result.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    BGEVL_CHECK(!stopping_, Error, "the server is shutting down");
    queue_.push_back(&call);
    queued_items_ += static_cast<int64_t>(items.size());
    if (metrics_) metrics_->queue_depth(queued_items_);
  }
  cv_.notify_all();
  return future.get();
}

void Batcher::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // Wait for more calls until the batch is full or the oldest call has waited max_wait.
    const auto deadline = queue_.front()->queued + options_.max_wait;
    auto all_in = [&] {
      return options_.callers && static_cast<int64_t>(queue_.size()) >= options_.callers();
    };
    while (!stopping_ && queued_items_ < options_.max_batch && !all_in() &&
           std::chrono::steady_clock::now() < deadline)
      cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                  std::chrono::microseconds(200)));
    // The oldest call and those after it with the same options, up to max_batch items (a call
    // larger than that runs alone, in batches of max_batch).
    std::vector<Call*> calls;
    int64_t n = 0;
    const Call* first = queue_.front();
    for (auto it = queue_.begin(); it != queue_.end();) {
      Call* c = *it;
      const int64_t m = static_cast<int64_t>(c->items->size());
      const bool same = c->truncate == first->truncate && c->normalize == first->normalize;
      if (same && (calls.empty() || n + m <= options_.max_batch)) {
        calls.push_back(c);
        n += m;
        it = queue_.erase(it);
        if (n >= options_.max_batch) break;
      } else {
        ++it;
      }
    }
    queued_items_ -= n;
    if (metrics_) metrics_->queue_depth(queued_items_);
    lock.unlock();
    run_batch(calls);
    lock.lock();
  }
}

void Batcher::run_batch(std::vector<Call*>& calls) {
  EncodeOptions eo;
  eo.truncate = calls[0]->truncate;
  eo.normalize = calls[0]->normalize;
  eo.batch_size = options_.max_batch;
  std::vector<EmbedItem> all;
  for (const Call* c : calls) all.insert(all.end(), c->items->begin(), c->items->end());
  if (options_.delay_for_tests.count() > 0) std::this_thread::sleep_for(options_.delay_for_tests);
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  try {
    const torch::Tensor e = model_.encode(all, eo).to(torch::kCPU);
    if (metrics_)
      metrics_->batch(static_cast<int64_t>(all.size()), static_cast<int64_t>(calls.size()),
                      seconds());
    int64_t row = 0;
    for (Call* c : calls) {
      const int64_t m = static_cast<int64_t>(c->items->size());
      c->result.set_value(e.narrow(0, row, m).clone());
      row += m;
    }
    return;
  } catch (...) {
    if (calls.size() == 1) {
      calls[0]->result.set_exception(std::current_exception());
      return;
    }
  }
  // Someone's item failed the batch: each call alone, so that only that caller gets the error.
  for (Call* c : calls) {
    const auto t1 = std::chrono::steady_clock::now();
    try {
      const torch::Tensor e = model_.encode(*c->items, eo).to(torch::kCPU);
      if (metrics_)
        metrics_->batch(
            static_cast<int64_t>(c->items->size()), 1,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
      c->result.set_value(e);
    } catch (...) {
      c->result.set_exception(std::current_exception());
    }
  }
}

}  // namespace bgevl::server
