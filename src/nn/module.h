// The base of bgevl's layers and the small blocks every family uses. Parameters are declared by
// Hugging Face name and shape but hold no memory until the checkpoint fills them (nn/load.h), so
// a 7B model is never allocated twice or initialised.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace bgevl::nn {

class ModuleBase : public torch::nn::Module {
 public:
  const std::map<std::string, std::vector<int64_t>>& declared() const { return declared_; }
  // Blocks that compute several projections of the same input as one product: allocate_fused
  // (load_weights, before loading) makes the fused weights and points the parts' parameters at
  // their slices, so the checkpoint is copied straight into them; fuse (load_weights, after
  // loading) drops the parts' own handles.
  virtual void allocate_fused(torch::ScalarType dtype, const torch::Device& device) {}
  virtual void fuse() {}

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

// Linear layers over the same input computed as one matrix product (fused Q/K/V, gate/up):
// allocate() registers the fused weight (and bias) on `owner`, the parts' rows one after the
// other, with the parts' parameters as views of their rows, so that loading fills it; fuse() then
// empties the parts' own tensors: nothing is held twice and owner.to(...) moves the fused weights.
// A module not loaded by nn::load_weights computes with its parts alone.
class FusedLinear {
 public:
  FusedLinear() = default;
  explicit FusedLinear(std::vector<LinearImpl*> parts) : parts_(std::move(parts)) {}
  // The fused weights, empty, with the parts' parameters as views of their rows.
  void allocate(ModuleBase& owner, const std::string& name, torch::ScalarType dtype,
                const torch::Device& device);
  // After loading: the parts' tensors emptied.
  void fuse();
  bool fused() const { return weight_.defined() && weight_.numel() > 0; }
  // The outputs of parts [first, last) on x, concatenated along the last dimension.
  torch::Tensor forward(const torch::Tensor& x, size_t first, size_t last) const;
  // The output of each part [first, last), as views of one product.
  std::vector<torch::Tensor> split(const torch::Tensor& x, size_t first, size_t last) const;
  // Q/K/V of three parts: one product on x, or, with queries xq defined (a few rows: the last
  // layer's), Q on xq and K/V from one product on x.
  std::vector<torch::Tensor> qkv(const torch::Tensor& x, const torch::Tensor& xq) const;

 private:
  torch::Tensor weight_, bias_;
  std::vector<LinearImpl*> parts_;
  std::vector<int64_t> offsets_;  // row offset of each part, and the total at the end
  bool preallocated_ = false;     // allocate() ran; the parts are views until fuse()
};

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

// transformers' LlamaRMSNorm / MistralRMSNorm: w * (x * rsqrt(mean(x^2) + eps)), computed in
// float32 and cast back to x's dtype before the weight.
class RmsNormImpl : public ModuleBase {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

class EmbeddingImpl : public ModuleBase {
 public:
  EmbeddingImpl(int64_t num, int64_t dim) { weight = declare("weight", {num, dim}); }
  torch::Tensor forward(const torch::Tensor& ids) const { return torch::embedding(weight, ids); }
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

// Activation by transformers' ACT2FN name. It takes its input by value and may overwrite it:
// give it a fresh product (fc1's output), never a tensor that is read elsewhere.
using Activation = std::function<torch::Tensor(torch::Tensor)>;
Activation activation(const std::string& name);

// x * sigmoid(1.702 * x) (transformers' QuickGELUActivation, CLIP's), computed in x with the same
// operations, so bit-identical to that expression. On the CPU a contiguous x is done in chunks
// that stay in the cache, one chunk per thread at a time: three passes over a 3152 x 3072 MLP
// activation through memory become one.
torch::Tensor quick_gelu_(torch::Tensor x);

// fc2(act(fc1(x))), with biases (CLIP's MLP).
class MlpImpl : public ModuleBase {
 public:
  MlpImpl(int64_t hidden, int64_t inner, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x) const {
    return fc2->forward(act_(fc1->forward(x)));
  }
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(Mlp);

// down_proj(silu(gate_proj(x)) * up_proj(x)), no biases (Llama/Mistral's MLP).
class GatedMlpImpl : public ModuleBase {
 public:
  GatedMlpImpl(int64_t hidden, int64_t inner);
  torch::Tensor forward(const torch::Tensor& x) const {
    const auto gu = gate_up_.split(x, 0, 2);
    return down_proj->forward(torch::silu(gu[0]) * gu[1]);
  }
  void allocate_fused(torch::ScalarType dtype, const torch::Device& device) override {
    gate_up_.allocate(*this, "gate_up_proj_fused", dtype, device);
  }
  void fuse() override { gate_up_.fuse(); }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  FusedLinear gate_up_;
};

TORCH_MODULE(GatedMlp);

}  // namespace bgevl::nn
