// What every family's embedder does around its model: finding and checking the checkpoint,
// checking a dtype against the device, resolving set_processor's folder.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>

#include "bgevl/embedder.h"
#include "bgevl/errors.h"
#include "bgevl/options.h"

namespace bgevl::models {

struct Checkpoint {
  std::string dir;          // the folder (a hub id resolved to its snapshot)
  std::string revision;     // as given at load
  std::string config_json;  // dir + "/config.json"
};

// The folder of a path or hub id (cached, or downloaded as options say), with its config.json
// (FileNotFoundError when absent).
Checkpoint resolve_checkpoint(const std::string& path_or_id, const LoadOptions& options);

// Resolves the folder, checks that its config.json describes `family` (naming the class to use
// otherwise) and that the device can run the dtype.
Checkpoint open_checkpoint(const std::string& path_or_id, const LoadOptions& options,
                           Family family);

// float32, bfloat16, or float16 on CUDA (libtorch's CPU kernels lack float16 matrix products);
// InvalidArgumentError otherwise.
void check_dtype(torch::ScalarType dtype, const torch::Device& device);
// options.dtype, or the device's default (bgevl::default_dtype) when Undefined (for the checks).
torch::ScalarType requested_dtype(const LoadOptions& options);
// The same, when the weights are loaded (once per load): a float32 model on CUDA turns TF32 off
// (the parity mode).
torch::ScalarType load_dtype(const LoadOptions& options);

// set_processor's folder: path_or_id resolved at `revision` (the checkpoint's revision when
// empty); InvalidArgumentError when the folder holds another family's processor.
std::string processor_dir(const std::string& path_or_id, const std::string& revision,
                          const Checkpoint& checkpoint, Family family);

// A tokenizer whose ids reach `vocab_size` (text_config.vocab_size) is another model's: its ids
// would fail inside the embedding (an assert on the GPU). InvalidArgumentError naming `dir`.
void check_tokenizer_fits(int64_t max_id, int64_t vocab_size, const std::string& dir);

// A model's processor (tokenizer + image processor of a folder), which set_processor replaces
// while other threads may be encoding: readers take a reference-counted copy.
template <typename Processor>
class ProcessorSlot {
 public:
  // `files`: what a folder needs, for the message when there is no processor.
  explicit ProcessorSlot(std::string files) : files_(std::move(files)) {}

  std::shared_ptr<const Processor> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    BGEVL_CHECK_ARG(processor_ != nullptr, "no processor: ", dir_, " has no ", files_,
                    "; call set_processor(path) with a folder that has them");
    return processor_;
  }
  // Loads the processor of `dir` when it has one (at load: a folder may hold only weights).
  template <typename Config>
  void load_if_present(const std::string& dir, const Config& config) {
    dir_ = dir;
    if (Processor::present(dir)) set(std::make_shared<const Processor>(dir, config));
  }
  void set(std::shared_ptr<const Processor> p) {
    std::lock_guard<std::mutex> lock(mu_);
    dir_ = p->dir();
    processor_ = std::move(p);
  }

 private:
  mutable std::mutex mu_;
  std::string files_, dir_;
  std::shared_ptr<const Processor> processor_;
};

}  // namespace bgevl::models
