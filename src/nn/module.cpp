#include "nn/module.h"

#include <ATen/Parallel.h>

#include <algorithm>

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

void FusedLinear::allocate(ModuleBase& owner, const std::string& name, torch::ScalarType dtype,
                           const torch::Device& device) {
  if (fused() || parts_.empty()) return;
  const auto& first = parts_[0]->declared();
  const bool with_bias = first.count("bias") > 0;
  const int64_t in = first.at("weight").at(1);
  offsets_.assign(1, 0);
  for (auto* p : parts_) {
    const auto& d = p->declared();
    TORCH_CHECK(d.at("weight").at(1) == in && (d.count("bias") > 0) == with_bias,
                "fuse: the parts of ", name, " differ in input size or bias");
    offsets_.push_back(offsets_.back() + d.at("weight").at(0));
  }
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  weight_ = owner.register_parameter(name + "_weight", torch::empty({offsets_.back(), in}, opts),
                                     /*requires_grad=*/false);
  if (with_bias)
    bias_ = owner.register_parameter(name + "_bias", torch::empty({offsets_.back()}, opts),
                                     /*requires_grad=*/false);
  for (size_t i = 0; i < parts_.size(); ++i) {
    const int64_t a = offsets_[i], n = offsets_[i + 1] - a;
    parts_[i]->weight.set_data(weight_.narrow(0, a, n));
    if (with_bias) parts_[i]->bias.set_data(bias_.narrow(0, a, n));
  }
  preallocated_ = true;
}

void FusedLinear::fuse() {
  if (!preallocated_) return;
  for (auto* p : parts_) {  // loaded in place: the fused weights are the only copy now
    p->weight.set_data(torch::empty({0}, p->weight.options()));
    if (p->bias.defined()) p->bias.set_data(torch::empty({0}, p->bias.options()));
  }
  preallocated_ = false;
}

torch::Tensor FusedLinear::forward(const torch::Tensor& x, size_t first, size_t last) const {
  if (!fused()) {
    std::vector<torch::Tensor> outs;
    for (size_t i = first; i < last; ++i) outs.push_back(parts_[i]->forward(x));
    return outs.size() == 1 ? outs[0] : torch::cat(outs, -1);
  }
  const int64_t a = offsets_[first], n = offsets_[last] - a;
  const bool all = a == 0 && n == weight_.size(0);
  return torch::linear(x, all ? weight_ : weight_.narrow(0, a, n),
                       !bias_.defined() ? bias_ : (all ? bias_ : bias_.narrow(0, a, n)));
}

std::vector<torch::Tensor> FusedLinear::split(const torch::Tensor& x, size_t first,
                                              size_t last) const {
  std::vector<torch::Tensor> out;
  if (!fused()) {
    for (size_t i = first; i < last; ++i) out.push_back(parts_[i]->forward(x));
    return out;
  }
  const auto y = forward(x, first, last);
  for (size_t i = first; i < last; ++i)
    out.push_back(y.narrow(-1, offsets_[i] - offsets_[first], offsets_[i + 1] - offsets_[i]));
  return out;
}

std::vector<torch::Tensor> FusedLinear::qkv(const torch::Tensor& x, const torch::Tensor& xq) const {
  if (!xq.defined()) return split(x, 0, 3);
  auto kv = split(x, 1, 3);
  return {forward(xq, 0, 1), kv[0], kv[1]};
}

torch::Tensor quick_gelu_(torch::Tensor x) {
  // Chunks of 64K elements (256 KiB in float32, a multiple of every vector width, so that no
  // chunk ends in a scalar tail but the last): the chunk and its sigmoid stay in the core's L2.
  constexpr int64_t chunk = 64 * 1024;
  if (x.requires_grad()) return x * torch::sigmoid(1.702 * x);
  if (!x.is_cpu() || !x.is_contiguous() || x.numel() < 2 * chunk) {
    auto s = x * 1.702;
    s.sigmoid_();
    return x.mul_(s);
  }
  auto flat = x.view({-1});
  const int64_t n = flat.numel(), chunks = (n + chunk - 1) / chunk;
  // 1.702 as `1.702 * x` passes it: a wrapped number, multiplied in the op math type. (The
  // Scalar overload of mul_out computes into a temporary and copies it.)
  auto k = at::scalar_tensor(1.702, at::kDouble);
  k.unsafeGetTensorImpl()->set_wrapped_number(true);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    // inside the parallel region each operation runs on this thread alone
    auto s = torch::empty({std::min(chunk, n - begin * chunk)}, x.options());
    for (int64_t c = begin; c < end; ++c) {
      auto part = flat.narrow(0, c * chunk, std::min(chunk, n - c * chunk));
      auto t = s.narrow(0, 0, part.numel());
      at::mul_out(t, part, k);
      t.sigmoid_();
      part.mul_(t);
    }
  });
  return x;
}

Activation activation(const std::string& name) {
  if (name == "quick_gelu") return [](torch::Tensor x) { return quick_gelu_(std::move(x)); };
  if (name == "gelu") return [](torch::Tensor x) { return torch::gelu(x); };
  if (name == "gelu_new" || name == "gelu_pytorch_tanh")
    return [](torch::Tensor x) { return torch::gelu(x, "tanh"); };
  if (name == "relu") return [](torch::Tensor x) { return torch::relu(x); };
  if (name == "silu") return [](torch::Tensor x) { return torch::silu(x); };
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
  gate_up_ = FusedLinear({gate_proj.get(), up_proj.get()});
}

}  // namespace bgevl::nn
