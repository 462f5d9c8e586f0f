#include "nn/rope.h"

namespace bgevl::nn {

RotaryEmbeddingImpl::RotaryEmbeddingImpl(int64_t head_dim, double theta) {
  // 1 / base ** (arange(0, dim, 2) / dim), in float32.
  auto exponent = torch::arange(0, head_dim, 2, torch::kLong).to(torch::kFloat32) /
                  static_cast<double>(head_dim);
  inv_freq_ = 1.0 / torch::pow(theta, exponent);
}

void RotaryEmbeddingImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  (void)dtype;  // inv_freq stays float32
  to(device, non_blocking);
}

void RotaryEmbeddingImpl::to(torch::Device device, bool non_blocking) {
  inv_freq_ = inv_freq_.to(device, torch::kFloat32, non_blocking);
}

RopeTables RotaryEmbeddingImpl::forward(const torch::Tensor& position_ids,
                                        torch::ScalarType dtype) const {
  auto pos = position_ids.to(torch::kFloat32);                  // [B, L]
  auto freqs = pos.unsqueeze(-1) * inv_freq_.view({1, 1, -1});  // [B, L, d/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

}  // namespace bgevl::nn
