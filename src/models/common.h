// What every family's embedder does around its model: finding and checking the checkpoint,
// checking a dtype against the device, resolving set_processor's folder.
#pragma once

#include <torch/torch.h>

#include <string>

#include "bgevl/embedder.h"
#include "bgevl/options.h"

namespace bgevl::models {

struct Checkpoint {
  std::string dir;          // the folder (a hub id resolved to its snapshot)
  std::string revision;     // as given at load
  std::string config_json;  // dir + "/config.json"
};

// Resolves the folder, checks that its config.json describes `family` (naming the class to use
// otherwise) and that the device can run the dtype.
Checkpoint open_checkpoint(const std::string& path_or_id, const LoadOptions& options,
                           Family family);

// float32, bfloat16, or float16 on CUDA (libtorch's CPU kernels lack float16 matrix products);
// InvalidArgumentError otherwise.
void check_dtype(torch::ScalarType dtype, const torch::Device& device);

// set_processor's folder: path_or_id resolved at `revision` (the checkpoint's revision when
// empty); InvalidArgumentError when the folder holds another family's processor.
std::string processor_dir(const std::string& path_or_id, const std::string& revision,
                          const Checkpoint& checkpoint, Family family);

}  // namespace bgevl::models
