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

// Activation by transformers' ACT2FN name.
std::function<torch::Tensor(const torch::Tensor&)> activation(const std::string& name);

// fc2(act(fc1(x))), with biases (CLIP's MLP).
class MlpImpl : public ModuleBase {
 public:
  MlpImpl(int64_t hidden, int64_t inner, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x) const {
    return fc2->forward(act_(fc1->forward(x)));
  }
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> act_;
};
TORCH_MODULE(Mlp);

// down_proj(silu(gate_proj(x)) * up_proj(x)), no biases (Llama/Mistral's MLP).
class GatedMlpImpl : public ModuleBase {
 public:
  GatedMlpImpl(int64_t hidden, int64_t inner);
  torch::Tensor forward(const torch::Tensor& x) const {
    return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
  }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(GatedMlp);

}  // namespace bgevl::nn
