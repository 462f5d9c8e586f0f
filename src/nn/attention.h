// Scaled dot-product attention shared by every family: scaled_dot_product_attention on libtorch
// 2.1+, and on older libtorch the eager arithmetic of transformers (in query chunks, so a 3k-token
// prompt never needs its whole [heads, L, L] score matrix at once).
#pragma once

#include <torch/torch.h>

namespace bgevl::nn {

struct AttentionSpec {
  // Scores are q k^T * scale, or q k^T / divisor when divisor > 0 (transformers Mistral's eager
  // arithmetic; CLIP scales q beforehand and passes scale 1).
  double scale = 1.0;
  double divisor = 0.0;
  // Eager path: softmax in float32, then back to q's dtype (transformers Mistral); else in q's
  // dtype (transformers CLIP). The same for float32 inputs.
  bool softmax_in_float32 = false;
  // The mask is the causal one (key j visible to query i iff j <= i) and nothing else: with
  // scaled_dot_product_attention and as many queries as keys, is_causal replaces it (the fused
  // kernels take no dense mask).
  bool causal = false;
};

// softmax(scores + mask) v. q: [B, Hq, Lq, d]; k, v: [B, Hkv, L, d] with Hq a multiple of Hkv
// (grouped-query attention); mask: additive, broadcastable to [B, Hq, Lq, L], or undefined.
// Returns [B, Hq, Lq, d].
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, const AttentionSpec& spec);

}  // namespace bgevl::nn
