// The runtime layer: the persistent pool and the batch engine every family's encode runs on.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "bgevl/bgevl.h"
#include "runtime/engine.h"
#include "runtime/thread_pool.h"
#include "test_util.h"

using namespace bgevl;
using namespace bgevl::test;

TEST(ThreadPool, RunsEveryIndexOnce) {
  runtime::ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(1000, [&](int64_t i) { hits[i]++; });
  for (const auto& h : hits) EXPECT_EQ(h.load(), 1);
  pool.parallel_for(0, [&](int64_t) { ADD_FAILURE(); });
}

TEST(ThreadPool, ReportsTheLowestFailingIndex) {
  runtime::ThreadPool pool(4);
  for (int round = 0; round < 20; ++round) {
    try {
      pool.parallel_for(64, [&](int64_t i) {
        if (i == 40 || i == 7) throw InvalidArgumentError("bad " + std::to_string(i));
      });
      ADD_FAILURE() << "no exception";
    } catch (const InvalidArgumentError& e) {  // the type is kept
      EXPECT_STREQ(e.what(), "bad 7");
    }
  }
}

TEST(ThreadPool, NestedCallsFromPoolTasksFinish) {
  runtime::ThreadPool pool(2);
  std::atomic<int> n{0};
  auto outer = pool.submit([&] {
    pool.parallel_for(50, [&](int64_t) { pool.parallel_for(4, [&](int64_t) { n++; }); });
    return 7;
  });
  pool.parallel_for(10, [&](int64_t) { n++; });
  EXPECT_EQ(outer.get(), 7);
  EXPECT_EQ(n.load(), 210);
  auto failing = pool.submit([]() -> int { throw FileNotFoundError("gone"); });
  EXPECT_THROW(failing.get(), FileNotFoundError);
}

TEST(ThreadPool, OneThreadRunsInline) {
  runtime::ThreadPool pool(1);
  EXPECT_EQ(pool.size(), 1);
  const auto caller = std::this_thread::get_id();
  pool.parallel_for(5, [&](int64_t) { EXPECT_EQ(std::this_thread::get_id(), caller); });
  EXPECT_EQ(pool.submit([] { return 3; }).get(), 3);
}

TEST(Settings, SetNumThreadsSetsBothAndChecksRange) {
  const int before = at::get_num_threads();
  set_num_threads(2, /*force=*/available_cores() < 2);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(num_threads(), 2);
  EXPECT_EQ(runtime::pool()->size(), 2);
  set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(runtime::pool()->size(), 1);
  EXPECT_THROW(set_num_threads(-1), InvalidArgumentError);
  EXPECT_THROW(set_num_threads(100000), InvalidArgumentError);
  EXPECT_THROW(set_num_threads(100000, /*force=*/true), InvalidArgumentError);  // never above 1024
  // More than the machine's cores only when forced.
  EXPECT_THROW(set_num_threads(available_cores() + 1), InvalidArgumentError);
  set_num_threads(available_cores() + 1, /*force=*/true);
  EXPECT_EQ(num_threads(), available_cores() + 1);
  set_num_threads(0);  // every core
  EXPECT_EQ(num_threads(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  at::set_num_threads(before);
}

namespace {

// A family that embeds item k as the row [k]: shows the engine's ordering, batching, prefetching
// and checks. Items need a text (its length is the cost).
struct Echo : runtime::BatchModel {
  bool prefetch_on = false;
  int fail_prepare = -1, fail_run = -1;  // the batch whose prepare / run throws
  mutable std::mutex mu;
  mutable std::vector<std::vector<size_t>> batches;
  mutable int prepared = 0, ran = 0;
  int64_t default_batch_size() const override { return 4; }
  torch::Device device() const override { return torch::kCPU; }
  bool prefetch() const override { return prefetch_on; }
  std::unique_ptr<runtime::EncodeContext> check(const std::vector<EmbedItem>& items,
                                                const EncodeOptions&, int64_t) const override {
    auto c = std::make_unique<runtime::EncodeContext>();
    for (size_t i = 0; i < items.size(); ++i) {
      BGEVL_CHECK_ARG(items[i].text, "item ", i, " has no text");
      c->costs.push_back(static_cast<int64_t>(items[i].text->size()));
    }
    return c;
  }
  struct Batch : runtime::HostBatch {
    std::vector<size_t> index;
  };
  std::unique_ptr<runtime::HostBatch> prepare(const runtime::BatchItems& b,
                                              const runtime::EncodeContext&, const EncodeOptions&,
                                              const runtime::Staging&) const override {
    std::lock_guard<std::mutex> lock(mu);
    if (prepared++ == fail_prepare) throw InvalidArgumentError("prepare failed");
    auto out = std::make_unique<Batch>();
    out->index = b.index;
    return out;
  }
  torch::Tensor run(runtime::HostBatch& batch, const runtime::Staging&) const override {
    if (ran++ == fail_run) throw FileNotFoundError("run failed");
    auto& b = static_cast<Batch&>(batch);
    batches.push_back(b.index);
    std::vector<float> v(b.index.begin(), b.index.end());
    return torch::tensor(v).view({-1, 1});
  }
};

std::vector<EmbedItem> texts_of_lengths(const std::vector<int>& lengths) {
  std::vector<EmbedItem> items;
  for (int len : lengths) items.emplace_back(std::string(len, 'x'));
  return items;
}

}  // namespace

TEST(Engine, OrdersByCostAndRestoresTheCallersOrder) {
  Echo echo;
  const auto items = texts_of_lengths({9, 1, 5, 3, 8, 2, 7, 4, 6, 1});
  std::vector<std::pair<int64_t, int64_t>> progress;
  EncodeOptions o;
  o.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  const auto out = runtime::encode(echo, items, o);
  ASSERT_EQ(out.size(0), 10);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(out[i][0].item<float>(), float(i));
  ASSERT_EQ(echo.batches.size(), 3u);                             // default batch size 4: 4 + 4 + 2
  EXPECT_EQ(echo.batches[0], (std::vector<size_t>{1, 9, 5, 3}));  // shortest first, stable
  EXPECT_EQ(progress, (std::vector<std::pair<int64_t, int64_t>>{{4, 10}, {8, 10}, {10, 10}}));
}

// The path the engine takes on CUDA (batch k+1 prepared on the pool while batch k runs), forced on
// the CPU: the same rows, and errors from either side reach the caller after the other settles.
TEST(Engine, PrefetchingGivesTheSameRowsAndErrors) {
  set_num_threads(2);
  const auto items = texts_of_lengths({9, 1, 5, 3, 8, 2, 7, 4, 6, 1, 3, 3, 2});
  EncodeOptions o;
  o.batch_size = 3;
  Echo plain, ahead;
  ahead.prefetch_on = true;
  const auto a = runtime::encode(plain, items, o), b = runtime::encode(ahead, items, o);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(plain.batches, ahead.batches);
  EXPECT_EQ(ahead.prepared, 5);
  for (int round = 0; round < 10; ++round) {
    Echo bad_prepare;
    bad_prepare.prefetch_on = true;
    bad_prepare.fail_prepare = 2;
    EXPECT_THROW(runtime::encode(bad_prepare, items, o), InvalidArgumentError);
    EXPECT_EQ(bad_prepare.ran, 2);  // batches 0 and 1 ran; batch 2 never came
    Echo bad_run;
    bad_run.prefetch_on = true;
    bad_run.fail_run = 1;  // while batch 2 is being prepared
    EXPECT_THROW(runtime::encode(bad_run, items, o), FileNotFoundError);
    EXPECT_LE(bad_run.prepared, 3);
  }
  set_num_threads(0);
}

// Cancelling: a progress callback that throws (Python: KeyboardInterrupt, or any exception) stops
// the encode after the batch it reports, with the prefetch of the next batch settled first, and
// the exception reaches the caller as it was thrown.
TEST(Engine, AThrowingProgressCallbackCancelsTheEncode) {
  set_num_threads(2);
  struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("cancelled by the caller") {}
  };
  const auto items = texts_of_lengths({9, 1, 5, 3, 8, 2, 7, 4, 6, 1, 3, 3, 2});
  for (bool prefetch : {false, true}) {
    SCOPED_TRACE(prefetch);
    Echo echo;
    echo.prefetch_on = prefetch;
    EncodeOptions o;
    o.batch_size = 3;
    int calls = 0;
    o.progress = [&](int64_t done, int64_t) {
      if (++calls == 2) throw Cancelled();
    };
    EXPECT_THROW(runtime::encode(echo, items, o), Cancelled);
    EXPECT_EQ(echo.ran, 2);                      // batches 0 and 1, then no more
    EXPECT_LE(echo.prepared, prefetch ? 3 : 2);  // at most the one batch already in flight
    // the model is usable afterwards
    o.progress = nullptr;
    Echo again;
    again.prefetch_on = prefetch;
    EXPECT_EQ(runtime::encode(again, items, o).size(0), 13);
  }
  set_num_threads(0);
}

// Staging: on the CPU the tensor itself, no stream; on CUDA the copies go through a copy stream
// and work queued after to_device on the compute stream sees the copied values, also when the
// memory of earlier batches is freed and reused while copies and compute overlap (the caching
// allocator's stream bookkeeping); BGEVL_COPY_STREAM=0 copies on the compute stream instead.
TEST(Staging, OnTheCpuIsTheTensorItself) {
  const runtime::Staging cpu(torch::kCPU);
  EXPECT_FALSE(cpu.has_copy_stream());
  const auto t = cpu.int64s({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_FALSE(t.is_pinned());
  EXPECT_EQ(cpu.to_device(t).data_ptr(), t.data_ptr());  // no copy on the CPU
  EXPECT_EQ(t[1][2].item<int64_t>(), 6);
  EXPECT_FALSE(cpu.to_device(torch::Tensor()).defined());
}

TEST(Staging, CudaCopiesReachTheComputeStreamInOrder) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  c10::InferenceMode guard;
  for (const char* copy_stream : {"1", "0"}) {
    SCOPED_TRACE(copy_stream);
    ::setenv("BGEVL_COPY_STREAM", copy_stream, 1);
    const runtime::Staging cuda(torch::kCUDA);
    ::unsetenv("BGEVL_COPY_STREAM");
    EXPECT_EQ(cuda.has_copy_stream(), std::string(copy_stream) == "1");
    torch::Tensor sum = torch::zeros({1024, 1024}, torch::kCUDA);
    double expected = 0;
    for (int k = 0; k < 40; ++k) {
      auto host = cuda.empty({1024, 1024}, torch::kFloat32);
      EXPECT_TRUE(host.is_pinned());
      host.fill_(static_cast<float>(k));
      expected += k * 2.0 + 1.0;
      // a big product on the compute stream first, so that the next copy overlaps it
      auto busy = torch::matmul(sum, sum.t()).sum();
      sum.add_(cuda.to_device(host).mul(2.0).add(1.0));
      (void)busy;
    }
    EXPECT_EQ(sum.min().item<double>(), expected);
    EXPECT_EQ(sum.max().item<double>(), expected);
    const auto ids = cuda.to_device(cuda.int64s({4, 5, 6}, {3})).cpu();
    EXPECT_EQ(ids[2].item<int64_t>(), 6);
  }
}

TEST(Engine, ChecksEveryItemBeforeComputing) {
  Echo echo;
  std::vector<EmbedItem> items(6, EmbedItem("x"));
  items[5] = EmbedItem();  // neither an image nor a text: the engine's own check
  try {
    runtime::encode(echo, items, {});
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("item 5 has neither"), std::string::npos) << e.what();
  }
  items[5] = EmbedItem(ImageInput::path("/no/such/a.png"));  // an image that is not there
  try {
    runtime::encode(echo, items, {});
    ADD_FAILURE() << "no exception";
  } catch (const FileNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("item 5"), std::string::npos) << e.what();
  }
  items[5] = EmbedItem(ImageInput::path(fixtures("images/chelsea.jpg")));  // the family's check
  try {
    runtime::encode(echo, items, {});
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("item 5 has no text"), std::string::npos) << e.what();
  }
  EXPECT_EQ(echo.prepared, 0);
  EXPECT_THROW(runtime::encode(echo, {}, {}), InvalidArgumentError);
  EncodeOptions bad;
  bad.batch_size = -2;
  EXPECT_THROW(runtime::encode(echo, {EmbedItem("x")}, bad), InvalidArgumentError);
}

TEST(Engine, ShortListsKeepTheirOrder) {
  Echo echo;
  std::vector<EmbedItem> items = {EmbedItem("long text"), EmbedItem("a")};
  runtime::encode(echo, items, {});
  ASSERT_EQ(echo.batches.size(), 1u);
  EXPECT_EQ(echo.batches[0], (std::vector<size_t>{0, 1}));
}

TEST(Items, MakeItemsZipsAndChecks) {
  const auto img = ImageInput::path("a.png");
  auto items = make_items({img, img}, {"x", "y"}, Prompt::query("i"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[1].image && items[1].text && *items[1].text == "y");
  EXPECT_EQ(items[0].prompt.role, Role::Query);
  EXPECT_EQ(make_items({}, {"x"}).size(), 1u);
  EXPECT_THROW(make_items({}, {}), InvalidArgumentError);
  EXPECT_THROW(make_items({img}, {"x", "y"}), InvalidArgumentError);
  EXPECT_EQ(parse_role("query"), Role::Query);
  EXPECT_EQ(parse_role("c"), Role::Candidate);
}

// ---- concurrent callers on one model ---------------------------------------------------------

namespace {

// Eight different calls: texts, images and composed pairs (MLLM: queries and candidates).
std::vector<std::vector<EmbedItem>> eight_calls(bool mllm) {
  const std::vector<std::string> images = {"images/chelsea.jpg", "images/rocket.jpg",
                                           "images/rgba.png", "images/grey_L.png"};
  const Prompt q = mllm ? Prompt::query() : Prompt{}, c = mllm ? Prompt::candidate() : Prompt{};
  std::vector<std::vector<EmbedItem>> calls(8);
  for (int t = 0; t < 8; ++t) {
    const auto img = ImageInput::path(fixtures(images[t % 4]));
    const std::string text = "a photo number " + std::to_string(t) + " of a cat";
    calls[t].push_back(EmbedItem(text, q));
    // (an MLLM image is ~2,000 tiny-model positions: one per call keeps the test short)
    if (!mllm || t % 2)
      calls[t].push_back(EmbedItem(img, "make it darker " + std::to_string(t), q));
    if (!mllm) calls[t].push_back(EmbedItem(img, c));
  }
  return calls;
}

void expect_concurrent_bit_identical(const std::string& ckpt, bool mllm) {
  const auto model = load(fixtures(ckpt));
  const auto calls = eight_calls(mllm);
  std::vector<torch::Tensor> want;
  for (const auto& c : calls) want.push_back(model->encode(c));
  std::vector<torch::Tensor> got(calls.size());
  std::vector<std::string> errors(calls.size());
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < calls.size(); ++t)
    threads.emplace_back([&, t] {
      ++ready;
      while (ready < int(calls.size())) std::this_thread::yield();  // start together
      try {
        for (int rep = 0; rep < (mllm ? 1 : 2); ++rep) got[t] = model->encode(calls[t]);
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < calls.size(); ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    ASSERT_TRUE(got[t].defined()) << "thread " << t;
    EXPECT_TRUE(torch::equal(got[t], want[t])) << "thread " << t << " differs from sequential";
  }
}

}  // namespace

TEST(Concurrency, EightThreadsOnOneClipModelAreBitIdenticalToSequential) {
  expect_concurrent_bit_identical("clip/tiny-fp16-quickgelu", false);
}

TEST(Concurrency, EightThreadsOnOneMllmModelAreBitIdenticalToSequential) {
  expect_concurrent_bit_identical("llava/tiny-llava-next-legacy", true);
}

TEST(Concurrency, AFailingCallLeavesTheModelUsableForTheOthers) {
  const auto model = load(fixtures("clip/tiny-fp16-quickgelu"));
  const auto calls = eight_calls(false);
  std::vector<torch::Tensor> want;
  for (const auto& c : calls) want.push_back(model->encode(c));
  std::vector<torch::Tensor> got(calls.size());
  std::vector<std::string> errors(calls.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < calls.size(); ++t)
    threads.emplace_back([&, t] {
      try {
        auto items = calls[t];
        // Odd threads: a corrupt image in the middle of their call.
        if (t % 2)
          items.insert(items.begin() + 1, EmbedItem(ImageInput::bytes("\x89PNG\r\n broken")));
        got[t] = model->encode(items);
      } catch (const InvalidArgumentError& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < calls.size(); ++t) {
    if (t % 2) {
      EXPECT_NE(errors[t].find("item 1"), std::string::npos) << errors[t];
    } else {
      EXPECT_EQ(errors[t], "");
      EXPECT_TRUE(torch::equal(got[t], want[t])) << "thread " << t;
    }
  }
  for (size_t t = 0; t < calls.size(); ++t)  // and the model still gives the same answers
    EXPECT_TRUE(torch::equal(model->encode(calls[t]), want[t]));
}

TEST(Concurrency, ForwardPassesOnTheCpuTakeTurns) {
  // Each forward pass already uses every core; concurrent callers run theirs one at a time
  // (their decoding and tokenizing still overlap) instead of oversubscribing the cores.
  const auto model = load(fixtures("clip/tiny-fp16-quickgelu"));
  const auto calls = eight_calls(false);
  std::vector<std::thread> threads;
  for (int round = 0; round < 3; ++round)
    for (size_t t = 0; t < calls.size(); ++t)
      threads.emplace_back([&, t] { model->encode(calls[t]); });
  for (auto& th : threads) th.join();
  EXPECT_EQ(runtime::max_concurrent_cpu_runs(), 1);
}
