#include "nn/module.h"

#include "bgevl/errors.h"

namespace bgevl::nn {

torch::Tensor ModuleBase::declare(const std::string& name, std::vector<int64_t> shape) {
  declared_[name] = std::move(shape);
  return register_parameter(name, torch::empty({0}), /*requires_grad=*/false);
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = declare("weight", {out, in});
  if (with_bias) bias = declare("bias", {out});
}

LayerNormImpl::LayerNormImpl(int64_t dim, double eps) : dim_(dim), eps_(eps) {
  weight = declare("weight", {dim});
  bias = declare("bias", {dim});
}

std::function<torch::Tensor(const torch::Tensor&)> activation(const std::string& name) {
  if (name == "quick_gelu")
    return [](const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); };
  if (name == "gelu") return [](const torch::Tensor& x) { return torch::gelu(x); };
  if (name == "gelu_new" || name == "gelu_pytorch_tanh")
    return [](const torch::Tensor& x) { return torch::gelu(x, "tanh"); };
  if (name == "relu") return [](const torch::Tensor& x) { return torch::relu(x); };
  if (name == "silu") return [](const torch::Tensor& x) { return torch::silu(x); };
  throw InvalidArgumentError(detail::concat("unsupported activation '", name, "'"));
}

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) { weight = declare("weight", {dim}); }

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
  auto h = x.to(torch::kFloat32);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps_);
  return weight * h.to(x.scalar_type());
}

MlpImpl::MlpImpl(int64_t hidden, int64_t inner, const std::string& act) : act_(activation(act)) {
  fc1 = register_module("fc1", Linear(hidden, inner, true));
  fc2 = register_module("fc2", Linear(inner, hidden, true));
}

GatedMlpImpl::GatedMlpImpl(int64_t hidden, int64_t inner) {
  gate_proj = register_module("gate_proj", Linear(hidden, inner, false));
  up_proj = register_module("up_proj", Linear(hidden, inner, false));
  down_proj = register_module("down_proj", Linear(inner, hidden, false));
}

}  // namespace bgevl::nn
