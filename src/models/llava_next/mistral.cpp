#include "nn/mistral.h"

#include <torch/version.h>

#include <cmath>

#include "bgevl/errors.h"

namespace bgevl::nn {

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  return torch::cat({-x2, x1}, -1);
}

// q, k: [B, heads, L, d]; cos/sin: [B, L, d].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto c = cos.unsqueeze(1);
  auto s = sin.unsqueeze(1);
  return x * c + rotate_half(x) * s;
}

torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const auto B = x.size(0), H = x.size(1), L = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, H, n_rep, L, D}).reshape({B, H * n_rep, L, D});
}

}  // namespace

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) { weight = declare("weight", {dim}); }

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
  auto h = x.to(torch::kFloat32);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps_);
  return weight * h.to(x.scalar_type());
}

MistralAttentionImpl::MistralAttentionImpl(const io::MistralConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, heads_ * head_dim_, false));
  k_proj = register_module("k_proj", Linear(c.hidden_size, kv_heads_ * head_dim_, false));
  v_proj = register_module("v_proj", Linear(c.hidden_size, kv_heads_ * head_dim_, false));
  o_proj = register_module("o_proj", Linear(heads_ * head_dim_, c.hidden_size, false));
}

torch::Tensor MistralAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                            const Rope& rope, bool query_last) const {
  const int64_t B = x.size(0), L = x.size(1);
  const torch::Tensor xq = query_last ? x.narrow(1, L - 1, 1) : x;
  const int64_t Lq = xq.size(1);
  auto q = q_proj->forward(xq).view({B, Lq, heads_, head_dim_}).transpose(1, 2);
  auto k = k_proj->forward(x).view({B, L, kv_heads_, head_dim_}).transpose(1, 2);
  auto v = v_proj->forward(x).view({B, L, kv_heads_, head_dim_}).transpose(1, 2);
  q = apply_rope(q, rope.cos.narrow(1, L - Lq, Lq), rope.sin.narrow(1, L - Lq, Lq));
  k = apply_rope(k, rope.cos, rope.sin);
  k = repeat_kv(k, heads_ / kv_heads_);
  v = repeat_kv(v, heads_ / kv_heads_);
  const torch::Tensor m = mask.narrow(2, mask.size(2) - Lq, Lq);  // [B, 1, Lq, L]
  torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  out = at::scaled_dot_product_attention(q, k, v, c10::optional<at::Tensor>(m), 0.0, false,
                                         1.0 / std::sqrt(static_cast<double>(head_dim_)));
#else
  // transformers' eager attention, in query chunks so a 3k-token prompt never needs the whole
  // [heads, L, L] score matrix at once.
  const int64_t chunk = 512;
  std::vector<torch::Tensor> parts;
  const auto kt = k.transpose(2, 3);
  const double inv = std::sqrt(static_cast<double>(head_dim_));
  for (int64_t s = 0; s < Lq; s += chunk) {
    const int64_t n = std::min(chunk, Lq - s);
    auto w = torch::matmul(q.narrow(2, s, n), kt) / inv;
    w = w + m.narrow(2, s, n);
    w = torch::softmax(w, -1, torch::kFloat32).to(q.scalar_type());
    parts.push_back(torch::matmul(w, v));
  }
  out = parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
#endif
  out = out.transpose(1, 2).reshape({B, Lq, heads_ * head_dim_});
  return o_proj->forward(out);
}

MistralMlpImpl::MistralMlpImpl(const io::MistralConfig& c) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, false));
}

MistralDecoderLayerImpl::MistralDecoderLayerImpl(const io::MistralConfig& c) {
  self_attn = register_module("self_attn", MistralAttention(c));
  mlp = register_module("mlp", MistralMlp(c));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor MistralDecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                               const Rope& rope, bool query_last) const {
  const torch::Tensor residual = query_last ? x.narrow(1, x.size(1) - 1, 1) : x;
  auto h = residual + self_attn->forward(input_layernorm->forward(x), mask, rope, query_last);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

MistralModelImpl::MistralModelImpl(const io::MistralConfig& c) : cfg_(c) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(MistralDecoderLayer(c));
  norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  // MistralRotaryEmbedding: 1 / base ** (arange(0, dim, 2) / dim), in float32.
  auto exponent = torch::arange(0, c.head_dim, 2, torch::kLong).to(torch::kFloat32) /
                  static_cast<double>(c.head_dim);
  inv_freq_ = 1.0 / torch::pow(c.rope_theta, exponent);
}

torch::Tensor MistralModelImpl::forward(const torch::Tensor& inputs_embeds,
                                        const torch::Tensor& attention_mask,
                                        const torch::Tensor& position_ids, bool last_only) const {
  const auto dev = inputs_embeds.device();
  const auto dtype = inputs_embeds.scalar_type();
  const int64_t B = inputs_embeds.size(0), L = inputs_embeds.size(1);

  // RoPE tables in float32, cast to the model dtype (as transformers).
  auto pos = position_ids.to(dev, torch::kFloat32);                      // [B, L]
  auto freqs = pos.unsqueeze(-1) * inv_freq_.to(dev).view({1, 1, -1});  // [B, L, d/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  Rope rope{emb.cos().to(dtype), emb.sin().to(dtype)};

  // Causal (+ sliding window) + padding mask with the dtype's lowest value, as _update_causal_mask.
  auto idx = torch::arange(L, torch::TensorOptions().dtype(torch::kLong).device(dev));
  auto excluded = idx.view({1, L}) > idx.view({L, 1});
  if (cfg_.sliding_window > 0)
    excluded = excluded.logical_or(idx.view({1, L}) <= (idx.view({L, 1}) - cfg_.sliding_window));
  excluded = excluded.view({1, 1, L, L}).expand({B, 1, L, L});
  if (attention_mask.defined())
    excluded = excluded.logical_or(attention_mask.to(dev).eq(0).view({B, 1, 1, L}));
  const double lowest = dtype == torch::kFloat16    ? -65504.0
                        : dtype == torch::kBFloat16 ? -3.3895313892515355e38
                                                    : static_cast<double>(std::numeric_limits<float>::lowest());
  auto mask = torch::zeros(excluded.sizes(), torch::TensorOptions().dtype(dtype).device(dev))
                  .masked_fill(excluded, lowest);

  torch::Tensor x = inputs_embeds;
  const int64_t n = static_cast<int64_t>(layers->size());
  for (int64_t i = 0; i < n; ++i)  // the last layer computes only the last row when last_only
    x = layers->ptr<MistralDecoderLayerImpl>(i)->forward(x, mask, rope, last_only && i == n - 1);
  return norm->forward(x);
}

}  // namespace bgevl::nn
