// The base of bgevl's layers: parameters are declared by Hugging Face name and shape but hold no
// memory until the checkpoint fills them, so a 7B model is never allocated twice or initialised.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace bgevl::nn {

class ModuleBase : public torch::nn::Module {
 public:
  const std::map<std::string, std::vector<int64_t>>& declared() const { return declared_; }

 protected:
  // Registers an (empty) parameter `name` that the checkpoint must provide with `shape`.
  torch::Tensor declare(const std::string& name, std::vector<int64_t> shape);

 private:
  std::map<std::string, std::vector<int64_t>> declared_;
};

// y = x W^T + b, weights [out, in] as in torch.nn.Linear.
class LinearImpl : public ModuleBase {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias);
  torch::Tensor forward(const torch::Tensor& x) const { return torch::linear(x, weight, bias); }
  torch::Tensor weight, bias;
};
TORCH_MODULE(Linear);

class LayerNormImpl : public ModuleBase {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) const {
    return torch::layer_norm(x, {dim_}, weight, bias, eps_);
  }
  torch::Tensor weight, bias;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

// Activation by transformers' ACT2FN name.
std::function<torch::Tensor(const torch::Tensor&)> activation(const std::string& name);

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
