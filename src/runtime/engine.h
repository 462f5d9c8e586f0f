// The batch engine every family's encode runs on: it checks all items before computing, orders
// long lists by cost (similar lengths share a batch, less padding), prepares batch k+1 (decode,
// resize, tokenize into staging memory) on the pool while the model computes batch k (on CUDA),
// reports progress, and returns the rows in the caller's order.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/options.h"
#include "runtime/staging.h"

namespace bgevl::runtime {

// A batch prepared on the host; each family defines what it holds.
struct HostBatch {
  virtual ~HostBatch() = default;
};

// The items of one batch, with their indices in the caller's list (for messages).
struct BatchItems {
  std::vector<const EmbedItem*> items;
  std::vector<size_t> index;
  size_t size() const { return items.size(); }
  const EmbedItem& operator[](size_t i) const { return *items[i]; }
};

// Runs fn and rethrows a bgevl error it throws with "item N: " in front, keeping its type.
void with_item_context(size_t index, const std::function<void()>& fn);

// What a family's check() found, kept for the whole encode: the costs to order long lists by
// (empty: keep the caller's order) and what the family needs in every batch (its processor, taken
// once, so that a set_processor during a long encode changes nothing in it).
struct EncodeContext {
  virtual ~EncodeContext() = default;
  std::vector<int64_t> costs;
};

// What a family gives the engine.
class BatchModel {
 public:
  virtual ~BatchModel() = default;
  virtual int64_t default_batch_size() const = 0;
  virtual torch::Device device() const = 0;
  // Whether batch k+1 is prepared on the pool while batch k runs: on CUDA. On the CPU both would
  // compete for the same cores (OpenMP's spinning threads suffer from that), so batches are
  // prepared on the whole pool, then computed.
  virtual bool prefetch() const { return device().is_cuda(); }
  // Checks every item (and the options) without decoding anything: the errors a long list would
  // otherwise meet only when an item's batch comes up. The engine has already checked that every
  // item has an image or a text and that its image input can be read. `batch_size` is the one
  // in use (long lists: more than one batch).
  virtual std::unique_ptr<EncodeContext> check(const std::vector<EmbedItem>& items,
                                               const EncodeOptions& options,
                                               int64_t batch_size) const = 0;
  // Host work for one batch (decoding, resizing, tokenizing) into `staging` memory. Runs on a
  // pool thread, possibly while run() computes the previous batch; may use the pool itself.
  virtual std::unique_ptr<HostBatch> prepare(const BatchItems& items, const EncodeContext& context,
                                             const EncodeOptions& options,
                                             const Staging& staging) const = 0;
  // Device work: L2-normalised float32 [items, D] on device(). No host synchronisation.
  virtual torch::Tensor run(HostBatch& batch, const Staging& staging) const = 0;
};

// model.run, one at a time on the CPU (see engine.cpp); the most that ever ran at once (tests).
torch::Tensor run_gated(const BatchModel& model, HostBatch& batch, const Staging& staging);
int max_concurrent_cpu_runs();

// Embedder::encode for any family.
torch::Tensor encode(const BatchModel& model, const std::vector<EmbedItem>& items,
                     const EncodeOptions& options);

}  // namespace bgevl::runtime
