#include "models/llava_next/mistral.h"

#include <cmath>
#include <limits>

#include "bgevl/errors.h"
#include "nn/attention.h"

namespace bgevl::llava_next {

MistralAttentionImpl::MistralAttentionImpl(const MistralConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", nn::Linear(c.hidden_size, heads_ * head_dim_, false));
  k_proj = register_module("k_proj", nn::Linear(c.hidden_size, kv_heads_ * head_dim_, false));
  v_proj = register_module("v_proj", nn::Linear(c.hidden_size, kv_heads_ * head_dim_, false));
  o_proj = register_module("o_proj", nn::Linear(heads_ * head_dim_, c.hidden_size, false));
  qkv_ = nn::FusedLinear({q_proj.get(), k_proj.get(), v_proj.get()});
}

torch::Tensor MistralAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                            const nn::RopeTables& rope, bool query_last,
                                            bool causal) const {
  const int64_t B = x.size(0), L = x.size(1);
  const torch::Tensor xq = query_last ? x.narrow(1, L - 1, 1) : x;
  const int64_t Lq = xq.size(1);
  // one product (query_last: K and V from one, Q from another)
  const auto qkv = qkv_.qkv(x, query_last ? xq : torch::Tensor());
  auto q = qkv[0], k = qkv[1], v = qkv[2];
  q = q.reshape({B, Lq, heads_, head_dim_}).transpose(1, 2);
  k = k.reshape({B, L, kv_heads_, head_dim_}).transpose(1, 2);
  v = v.reshape({B, L, kv_heads_, head_dim_}).transpose(1, 2);
  q = nn::apply_rope(q, rope.cos.narrow(1, L - Lq, Lq), rope.sin.narrow(1, L - Lq, Lq));
  k = nn::apply_rope(k, rope.cos, rope.sin);
  nn::AttentionSpec spec;
  spec.divisor = std::sqrt(static_cast<double>(head_dim_));  // transformers: / math.sqrt(head_dim)
  spec.softmax_in_float32 = true;
  // The last query of a batch whose mask is only causal sees every key: no mask at all (the
  // fused kernels take none; the dense mask's last row is all zeros).
  const bool sees_all = causal && query_last;
  spec.causal = causal && !sees_all;
  auto out = nn::attention(
      q, k, v, sees_all ? torch::Tensor() : mask.narrow(2, mask.size(2) - Lq, Lq), spec);
  out = out.transpose(1, 2).reshape({B, Lq, heads_ * head_dim_});
  return o_proj->forward(out);
}

MistralDecoderLayerImpl::MistralDecoderLayerImpl(const MistralConfig& c) {
  self_attn = register_module("self_attn", MistralAttention(c));
  mlp = register_module("mlp", nn::GatedMlp(c.hidden_size, c.intermediate_size));
  input_layernorm = register_module("input_layernorm", nn::RmsNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", nn::RmsNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor MistralDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                               const nn::RopeTables& rope, bool query_last,
                                               bool causal) const {
  const torch::Tensor residual = query_last ? x.narrow(1, x.size(1) - 1, 1) : x;
  auto h =
      residual + self_attn->forward(input_layernorm->forward(x), mask, rope, query_last, causal);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

MistralModelImpl::MistralModelImpl(const MistralConfig& c) : cfg_(c) {
  embed_tokens = register_module("embed_tokens", nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(MistralDecoderLayer(c));
  norm = register_module("norm", nn::RmsNorm(c.hidden_size, c.rms_norm_eps));
  rotary_emb = register_module("rotary_emb", nn::RotaryEmbedding(c.head_dim, c.rope_theta));
}

torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t sliding_window,
                          torch::ScalarType dtype) {
  const auto dev = attention_mask.device();
  const int64_t B = attention_mask.size(0), L = attention_mask.size(1);
  auto idx = torch::arange(L, torch::TensorOptions().dtype(torch::kLong).device(dev));
  auto excluded = idx.view({1, L}) > idx.view({L, 1});
  if (sliding_window > 0)
    excluded = excluded.logical_or(idx.view({1, L}) <= (idx.view({L, 1}) - sliding_window));
  excluded = excluded.view({1, 1, L, L}).expand({B, 1, L, L});
  excluded = excluded.logical_or(attention_mask.eq(0).view({B, 1, 1, L}));
  const double lowest = dtype == torch::kFloat16 ? -65504.0
                        : dtype == torch::kBFloat16
                            ? -3.3895313892515355e38
                            : static_cast<double>(std::numeric_limits<float>::lowest());
  return torch::zeros(excluded.sizes(), torch::TensorOptions().dtype(dtype).device(dev))
      .masked_fill(excluded, lowest);
}

torch::Tensor MistralModelImpl::forward(const torch::Tensor& inputs_embeds,
                                        const torch::Tensor& attention_mask,
                                        const torch::Tensor& position_ids, bool last_only,
                                        bool unpadded) const {
  const auto dtype = inputs_embeds.scalar_type();
  const auto rope = rotary_emb->forward(position_ids, dtype);
  // No padding: one causal mask for every row (the same values), and with no sliding window to
  // apply the attention may take is_causal instead of it.
  const int64_t L = attention_mask.size(1);
  const auto mask = causal_mask(unpadded ? attention_mask.narrow(0, 0, 1) : attention_mask,
                                cfg_.sliding_window, dtype);
  const bool causal = unpadded && (cfg_.sliding_window <= 0 || L <= cfg_.sliding_window);
  torch::Tensor x = inputs_embeds;
  const int64_t n = static_cast<int64_t>(layers->size());
  for (int64_t i = 0; i < n; ++i)  // the last layer computes only the last row when last_only
    x = layers->ptr<MistralDecoderLayerImpl>(i)->forward(x, mask, rope, last_only && i == n - 1,
                                                         causal);
  return norm->forward(x);
}

}  // namespace bgevl::llava_next
