#include "nn/attention.h"

#include <torch/version.h>

#include <vector>

#include "bgevl/errors.h"

#define BGEVL_HAS_SDPA \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))
// Grouped-query attention inside scaled_dot_product_attention (no K/V copies): libtorch 2.5+.
#define BGEVL_HAS_SDPA_GQA \
  (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))

namespace bgevl::nn {

namespace {

// [B, Hkv, L, d] -> [B, Hkv * n_rep, L, d], each key-value head repeated for its query heads.
[[maybe_unused]] torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const auto B = x.size(0), H = x.size(1), L = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, H, n_rep, L, D}).reshape({B, H * n_rep, L, D});
}

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, const AttentionSpec& spec) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be 4-D");
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0,
              "attention: query heads must be a multiple of key-value heads");
#if BGEVL_HAS_SDPA
  c10::optional<at::Tensor> m;
  const bool is_causal = spec.causal && q.size(2) == k.size(2);
  if (mask.defined() && !is_causal) m = mask;
  const double scale = spec.divisor > 0 ? 1.0 / spec.divisor : spec.scale;
#if BGEVL_HAS_SDPA_GQA
  // Grouped heads inside the kernel only without an explicit mask (causal or none: flash takes
  // it). With a mask (left-padded batches), the memory-efficient kernel, which takes masks, wants
  // as many key-value heads as query heads through libtorch 2.11, and flash takes no mask: with
  // enable_gqa the choice would fall to the math kernel, which repeats K/V itself and
  // materialises the whole score matrix. So K/V are repeated here and that kernel stays usable.
  if (!m.has_value())
    return at::scaled_dot_product_attention(q, k, v, m, 0.0, is_causal, scale,
                                            /*enable_gqa=*/q.size(1) != k.size(1));
#endif
  return at::scaled_dot_product_attention(q, repeat_kv(k, q.size(1) / k.size(1)),
                                          repeat_kv(v, q.size(1) / v.size(1)), m, 0.0, is_causal,
                                          scale);
#else
  TORCH_CHECK(mask.defined() || !spec.causal, "attention: the eager path needs the causal mask");
  const auto kr = repeat_kv(k, q.size(1) / k.size(1));
  const auto vr = repeat_kv(v, q.size(1) / v.size(1));
  const int64_t Lq = q.size(2), chunk = 512;
  const auto kt = kr.transpose(-1, -2);
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < Lq; s += chunk) {
    const int64_t n = std::min(chunk, Lq - s);
    auto w = torch::matmul(Lq > chunk ? q.narrow(2, s, n) : q, kt);
    if (spec.divisor > 0)
      w = w / spec.divisor;
    else if (spec.scale != 1.0)
      w = w * spec.scale;
    if (mask.defined()) w = w + (Lq > chunk && mask.size(2) > 1 ? mask.narrow(2, s, n) : mask);
    w = spec.softmax_in_float32 ? torch::softmax(w, -1, torch::kFloat32).to(q.scalar_type())
                                : torch::softmax(w, -1);
    parts.push_back(torch::matmul(w, vr));
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
#endif
}

}  // namespace bgevl::nn
