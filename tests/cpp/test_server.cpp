// The dynamic batcher (src/server/batcher.h) on a fake model: each caller gets its own rows,
// calls are merged up to max_batch, a failing item fails only its caller, stop() drains.
#ifdef BGEVL_WITH_SERVER

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "bgevl/errors.h"
#include "server/batcher.h"
#include "server/metrics.h"

namespace bgevl {
namespace {

// Row i of encode() is [number in items[i].text, batch size]; "bad" throws.
class FakeModel final : public Embedder {
 public:
  torch::Tensor encode(const std::vector<EmbedItem>& items,
                       const EncodeOptions& options) const override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      batches.push_back(static_cast<int64_t>(items.size()));
      truncates.push_back(options.truncate);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto out = torch::zeros({static_cast<int64_t>(items.size()), 2});
    for (size_t i = 0; i < items.size(); ++i) {
      if (*items[i].text == "bad") throw InvalidArgumentError("bad item");
      out[i][0] = std::stof(*items[i].text);
      out[i][1] = static_cast<float>(items.size());
    }
    return out;
  }
  Family family() const override { return Family::Clip; }
  int64_t embedding_dim() const override { return 2; }
  int64_t default_batch_size() const override { return 8; }
  torch::Device device() const override { return torch::kCPU; }
  torch::ScalarType dtype() const override { return torch::kFloat32; }
  const std::string& model_dir() const override { return dir; }
  const std::string& revision() const override { return dir; }
  void to(const torch::Device&, torch::ScalarType) override {}
  void set_processor(const std::string&, const std::string&) override {}

  std::string dir = "fake";
  mutable std::mutex mutex;
  mutable std::vector<int64_t> batches;
  mutable std::vector<bool> truncates;
};

server::BatcherOptions batching(int64_t max_batch, std::chrono::microseconds max_wait) {
  server::BatcherOptions o;
  o.max_batch = max_batch;
  o.max_wait = max_wait;
  return o;
}

std::vector<EmbedItem> texts(std::initializer_list<int> v) {
  std::vector<EmbedItem> out;
  for (int x : v) out.emplace_back(std::to_string(x));
  return out;
}

TEST(Batcher, EachCallerGetsItsOwnRowsFromMergedBatches) {
  FakeModel model;
  server::Metrics metrics;
  server::Batcher b(model, batching(8, std::chrono::milliseconds(50)), &metrics);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 24; ++t)
    threads.emplace_back([&, t] {
      const auto items = t % 3 == 0 ? texts({t * 10, t * 10 + 1}) : texts({t * 10});
      const auto e = b.encode(items);
      if (e.size(0) != static_cast<int64_t>(items.size())) ++wrong;
      for (int64_t i = 0; i < e.size(0); ++i)
        if (e[i][0].item<float>() != static_cast<float>(t * 10 + i)) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  int64_t items = 0, largest = 0;
  for (int64_t n : model.batches) {
    items += n;
    largest = std::max(largest, n);
    EXPECT_LE(n, 8);
  }
  EXPECT_EQ(items, 32);
  EXPECT_GT(largest, 1) << "nothing was batched";
  EXPECT_LT(model.batches.size(), 24u);
  EXPECT_NE(metrics.text().find("bgevl_items_total 32"), std::string::npos);
}

TEST(Batcher, MaxBatchOneRunsEveryCallAlone) {
  FakeModel model;
  server::Batcher b(model, batching(1, std::chrono::milliseconds(20)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) threads.emplace_back([&, t] { b.encode(texts({t})); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(model.batches, std::vector<int64_t>(6, 1));
  // A call larger than max_batch still runs (alone).
  EXPECT_EQ(b.encode(texts({1, 2, 3})).size(0), 3);
}

TEST(Batcher, ABadItemFailsOnlyItsCaller) {
  FakeModel model;
  server::Batcher b(model, batching(16, std::chrono::milliseconds(100)));
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t)
    threads.emplace_back([&, t] {
      std::vector<EmbedItem> items = texts({t});
      if (t == 2) items.emplace_back(std::string("bad"));
      try {
        const auto e = b.encode(items);
        if (e[0][0].item<float>() == static_cast<float>(t)) ++ok;
      } catch (const InvalidArgumentError& e) {
        EXPECT_STREQ(e.what(), "bad item");
        ++failed;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(failed, 1);
  // The model stays usable.
  EXPECT_EQ(b.encode(texts({7}))[0][0].item<float>(), 7.0f);
}

TEST(Batcher, CallsWithOtherOptionsAreNotMerged) {
  FakeModel model;
  server::Batcher b(model, batching(16, std::chrono::milliseconds(100)));
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      EncodeOptions o;
      o.truncate = t % 2 == 1;
      b.encode(texts({t}), o);
    });
  for (auto& th : threads) th.join();
  int64_t total = 0;
  for (int64_t n : model.batches) total += n;
  EXPECT_EQ(total, 6);
  EXPECT_GE(model.batches.size(), 2u);
}

TEST(Batcher, StopRunsWhatIsQueuedThenRefuses) {
  FakeModel model;
  auto b = std::make_unique<server::Batcher>(model, batching(64, std::chrono::seconds(5)));
  std::vector<std::thread> threads;
  std::atomic<int> done{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      if (b->encode(texts({t}))[0][0].item<float>() == static_cast<float>(t)) ++done;
    });
  while (b->queued_items() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  b->stop();  // long before the 5 s wait is over
  for (auto& th : threads) th.join();
  EXPECT_EQ(done, 4);
  EXPECT_THROW(b->encode(texts({1})), Error);
  EXPECT_THROW(b->encode({}), InvalidArgumentError);
}

TEST(Batcher, RejectsBadOptions) {
  FakeModel model;
  EXPECT_THROW(server::Batcher(model, batching(0, std::chrono::milliseconds(1))),
               InvalidArgumentError);
}

TEST(Metrics, PrometheusText) {
  server::Metrics m;
  m.request("/v1/embeddings", 200, 0.003);
  m.request("/v1/embeddings", 400, 0.0001);
  m.batch(5, 3, 0.01);
  const std::string t = m.text();
  EXPECT_NE(t.find("bgevl_requests_total{endpoint=\"/v1/embeddings\",code=\"200\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("bgevl_request_errors_total{endpoint=\"/v1/embeddings\"} 1"), std::string::npos);
  EXPECT_NE(
      t.find("bgevl_request_duration_seconds_bucket{endpoint=\"/v1/embeddings\",le=\"0.005\"} 2"),
      std::string::npos);
  EXPECT_NE(t.find("bgevl_batch_size_bucket{le=\"4\"} 0"), std::string::npos);
  EXPECT_NE(t.find("bgevl_batch_size_bucket{le=\"8\"} 1"), std::string::npos);
  EXPECT_NE(t.find("bgevl_batch_size_bucket{le=\"+Inf\"} 1"), std::string::npos);
  EXPECT_NE(t.find("bgevl_batch_requests_sum 3"), std::string::npos);
}

}  // namespace
}  // namespace bgevl

#endif  // BGEVL_WITH_SERVER
