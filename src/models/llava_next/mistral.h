// Mistral (transformers 4.45 MistralModel): token embeddings, decoder layers with grouped-query
// attention and rotate-half RoPE, RMSNorm in float32, SiLU MLP, final norm. No lm_head. Inputs
// are expected on the model's device; nothing here waits for the device.
#pragma once

#include <torch/torch.h>

#include "models/llava_next/config.h"
#include "nn/module.h"
#include "nn/rope.h"

namespace bgevl::llava_next {

class MistralAttentionImpl : public nn::ModuleBase {
 public:
  explicit MistralAttentionImpl(const MistralConfig& c);
  // x [B, L, H]; mask additive [B, 1, L, L]; query_last: only the last row is computed. causal:
  // the mask is the causal one alone ([1, 1, L, L], no padding; nn::AttentionSpec::causal).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const nn::RopeTables& rope, bool query_last, bool causal = false) const;
  void allocate_fused(torch::ScalarType dtype, const torch::Device& device) override {
    qkv_.allocate(*this, "qkv_proj_fused", dtype, device);
  }
  void fuse() override { qkv_.fuse(); }
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
  nn::FusedLinear qkv_;  // q, k, v: one product
};
TORCH_MODULE(MistralAttention);

class MistralDecoderLayerImpl : public nn::ModuleBase {
 public:
  explicit MistralDecoderLayerImpl(const MistralConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const nn::RopeTables& rope, bool query_last, bool causal = false) const;
  MistralAttention self_attn{nullptr};
  nn::GatedMlp mlp{nullptr};
  nn::RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(MistralDecoderLayer);

class MistralModelImpl : public nn::ModuleBase {
 public:
  explicit MistralModelImpl(const MistralConfig& c);
  // Final hidden states after the last norm: [B, L, H], or [B, 1, H] for the last position
  // only when last_only (later rows are never computed in the last layer).
  // attention_mask [B, L] (0 = padding) and position_ids [B, L], int64 on the model's device.
  // unpadded: the caller knows attention_mask has no zero (one [1, 1, L, L] causal mask, and
  // is_causal attention where there is no sliding window to apply).
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                        const torch::Tensor& position_ids, bool last_only,
                        bool unpadded = false) const;
  nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  nn::RmsNorm norm{nullptr};
  nn::RotaryEmbedding rotary_emb{nullptr};
  const MistralConfig& config() const { return cfg_; }

 private:
  MistralConfig cfg_;
};
TORCH_MODULE(MistralModel);

// The additive mask of MistralModel._update_causal_mask: causal (+ sliding window) + padding,
// with the dtype's lowest value (not -inf: fully masked rows stay finite). [B, 1, L, L].
torch::Tensor causal_mask(const torch::Tensor& attention_mask, int64_t sliding_window,
                          torch::ScalarType dtype);

}  // namespace bgevl::llava_next
