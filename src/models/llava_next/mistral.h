// Mistral (transformers 4.45 MistralModel): token embeddings, decoder layers with grouped-query
// attention and rotate-half RoPE, RMSNorm in float32, SiLU MLP, final norm. No lm_head.
#pragma once

#include <torch/torch.h>

#include "io/config.h"
#include "nn/clip.h"
#include "nn/module.h"

namespace bgevl::nn {

class RmsNormImpl : public ModuleBase {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

// cos/sin tables for positions [B, L] (float32, then cast to dtype), as MistralRotaryEmbedding.
struct Rope {
  torch::Tensor cos, sin;  // [B, L, head_dim]
};

class MistralAttentionImpl : public ModuleBase {
 public:
  explicit MistralAttentionImpl(const io::MistralConfig& c);
  // x [B, L, H]; mask additive [B, 1, L, L] (or rows of it); query_last: only the last row.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const Rope& rope,
                        bool query_last) const;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(MistralAttention);

class MistralMlpImpl : public ModuleBase {
 public:
  explicit MistralMlpImpl(const io::MistralConfig& c);
  torch::Tensor forward(const torch::Tensor& x) const {
    return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
  }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MistralMlp);

class MistralDecoderLayerImpl : public ModuleBase {
 public:
  explicit MistralDecoderLayerImpl(const io::MistralConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const Rope& rope,
                        bool query_last) const;
  MistralAttention self_attn{nullptr};
  MistralMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(MistralDecoderLayer);

class MistralModelImpl : public ModuleBase {
 public:
  explicit MistralModelImpl(const io::MistralConfig& c);
  // Final hidden states after the last norm: [B, L, H], or [B, 1, H] for the last position
  // only when last_only (later rows are never computed in the last layer).
  // attention_mask [B, L] (0 = padding); position_ids [B, L].
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                        const torch::Tensor& position_ids, bool last_only) const;
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RmsNorm norm{nullptr};
  const io::MistralConfig& config() const { return cfg_; }

 private:
  io::MistralConfig cfg_;
  torch::Tensor inv_freq_;  // float32 [head_dim / 2], on the CPU; moved per call
};
TORCH_MODULE(MistralModel);

}  // namespace bgevl::nn
