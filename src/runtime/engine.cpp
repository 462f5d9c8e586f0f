#include "runtime/engine.h"

#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <future>
#include <mutex>
#include <numeric>
#include <string>

#include "bgevl/errors.h"
#include "runtime/inputs.h"
#include "runtime/thread_pool.h"

namespace bgevl::runtime {

void with_item_context(size_t index, const std::function<void()>& fn) {
  const std::string where = "item " + std::to_string(index) + ": ";
  try {
    fn();
  } catch (const FileNotFoundError& e) {
    throw FileNotFoundError(where + e.what());
  } catch (const InvalidArgumentError& e) {
    throw InvalidArgumentError(where + e.what());
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
}

// Staging's copy stream. Only c10's device-generic stream API is used (it compiles against a
// CPU-only libtorch too). The device tensor is allocated on the copy stream, and marked as used
// by the compute stream, so that the caching allocator can neither hand the copy memory that
// the compute stream may still read nor reuse it before the compute stream is done with it; the
// pinned source is recorded on the copy stream by the copy itself.
Staging::Staging(torch::Device device) : device_(device) {
  if (!device_.is_cuda()) return;
  const char* v = std::getenv("BGEVL_COPY_STREAM");
  if (v && std::string(v) == "0") return;
  const c10::impl::VirtualGuardImpl impl(device_.type());
  if (!device_.has_index()) device_ = torch::Device(device_.type(), impl.getDevice().index());
  copy_stream_ = impl.getStreamFromGlobalPool(device_);
}

torch::Tensor Staging::to_device(const torch::Tensor& host) const {
  if (!host.defined() || device_.is_cpu()) return host;
  if (!copy_stream_ || !host.device().is_cpu()) return host.to(device_, /*non_blocking=*/true);
  const c10::impl::VirtualGuardImpl impl(device_.type());
  const c10::Stream compute = impl.getStream(device_);
  torch::Tensor dst;
  {
    const c10::StreamGuard on_copy_stream(*copy_stream_);
    dst = host.to(device_, /*non_blocking=*/true);
  }
  c10::Event copied(device_.type());
  copied.record(*copy_stream_);
  copied.block(compute);
  impl.recordDataPtrOnStream(dst.storage().data_ptr(), compute);
  return dst;
}

namespace {
// Forward passes on the CPU take turns: each already uses every core (libtorch's intra-op
// threads), so callers running them at once would only oversubscribe the cores. Host work
// (decoding, tokenizing) of other callers goes on meanwhile.
std::mutex g_cpu_gate;
std::atomic<int> g_cpu_running{0}, g_cpu_running_max{0};
}  // namespace

int max_concurrent_cpu_runs() { return g_cpu_running_max.load(); }

torch::Tensor run_gated(const BatchModel& model, HostBatch& batch, const Staging& staging) {
  if (!model.device().is_cpu()) return model.run(batch, staging);
  std::lock_guard<std::mutex> lock(g_cpu_gate);
  const int now = ++g_cpu_running;
  for (int seen = g_cpu_running_max.load(); now > seen;)
    if (g_cpu_running_max.compare_exchange_weak(seen, now)) break;
  struct Leave {
    ~Leave() { --g_cpu_running; }
  } leave;
  return model.run(batch, staging);
}

torch::Tensor encode(const BatchModel& model, const std::vector<EmbedItem>& items,
                     const EncodeOptions& options) {
  BGEVL_CHECK_ARG(!items.empty(), "encode needs at least one item (got an empty list)");
  BGEVL_CHECK_ARG(options.batch_size >= 0,
                  "batch_size must be positive (or 0: the model's default, ",
                  model.default_batch_size(), "), got ", options.batch_size);
  after_fork_fixups();
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t bs = options.batch_size > 0 ? options.batch_size : model.default_batch_size();
  check_items(items);
  const auto context = model.check(items, options, bs);
  const std::vector<int64_t>& costs = context->costs;

  // Long lists are batched by cost (less padding); the rows go back to the caller's order.
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), size_t(0));
  if (n > bs && !costs.empty())
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return costs[a] < costs[b]; });

  const Staging staging(model.device());
  const auto pool = runtime::pool();
  const int64_t batches = (n + bs - 1) / bs;
  auto prepare = [&](int64_t k) {
    BatchItems b;
    for (int64_t i = k * bs; i < std::min(n, (k + 1) * bs); ++i) {
      b.items.push_back(&items[order[i]]);
      b.index.push_back(order[i]);
    }
    return model.prepare(b, *context, options, staging);
  };
  const bool overlap = model.prefetch() && batches > 1;

  c10::InferenceMode guard;
  std::vector<torch::Tensor> parts;
  std::future<std::unique_ptr<HostBatch>> next;
  struct WaitForPrepare {  // an in-flight prepare uses the locals above: never unwind past it
    std::future<std::unique_ptr<HostBatch>>& f;
    ~WaitForPrepare() {
      if (f.valid()) f.wait();
    }
  } wait_for_prepare{next};
  if (overlap) next = pool->submit([&] { return prepare(0); });
  for (int64_t k = 0; k < batches; ++k) {
    std::unique_ptr<HostBatch> batch = overlap ? next.get() : prepare(k);
    if (overlap && k + 1 < batches) next = pool->submit([&, k] { return prepare(k + 1); });
    parts.push_back(run_gated(model, *batch, staging));
    if (options.progress) options.progress(std::min(n, (k + 1) * bs), n);
  }
  auto out = parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
  if (std::is_sorted(order.begin(), order.end())) return out;
  std::vector<int64_t> row(items.size());  // row of item i in `out`
  for (size_t i = 0; i < order.size(); ++i) row[order[i]] = static_cast<int64_t>(i);
  return out.index_select(0, staging.to_device(staging.int64s(row, {n})));
}

}  // namespace bgevl::runtime
