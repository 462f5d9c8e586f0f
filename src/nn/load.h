// Filling a model's declared parameters from a checkpoint, by Hugging Face name.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace bgevl::nn {

struct LoadReport {
  size_t loaded = 0;
  uint64_t bytes = 0;
};

// Fills every declared parameter of `root` from `weights` (names: prefix + module path), converting
// to dtype on device. Checkpoint tensors in `ignore` (exact names) or starting with one of
// `ignore_prefixes` are skipped. Missing, unexpected and mis-shaped tensors are reported
// together in one InvalidArgumentError. `progress` (may be empty) is called after each tensor.
LoadReport load_weights(torch::nn::Module& root, const io::WeightSet& weights,
                        torch::ScalarType dtype, const torch::Device& device,
                        const std::string& prefix, const std::set<std::string>& ignore,
                        const std::vector<std::string>& ignore_prefixes,
                        const std::function<void(size_t, size_t)>& progress = {});

}  // namespace bgevl::nn
