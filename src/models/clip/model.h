// CLIP text and vision towers (transformers' CLIPModel), modules registered under the Hugging Face
// names so that checkpoint keys map one to one onto parameters. Inputs are expected on the
// model's device already (the embedder stages them); nothing here waits for the device.
#pragma once

#include <torch/torch.h>

#include "models/clip/config.h"
#include "nn/module.h"

namespace bgevl::clip {

class AttentionImpl : public nn::ModuleBase {
 public:
  AttentionImpl(int64_t hidden, int64_t heads);
  // x: [B, L, H]. mask: additive [B, 1, Lq, L] or undefined. If query_index ([B], int64) is
  // defined, only those query rows are computed and the result is [B, 1, H].
  // causal: the mask is the causal mask alone (nn::AttentionSpec::causal).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const torch::Tensor& query_index = {}, bool causal = false) const;
  // The same on packed rows (no padding): x [T, H] holds the real positions of a [B, L] batch,
  // row r at flat position index[r] (b * L + t). Projections and the output run on the T rows
  // only; the attention itself on the [B, L] layout (zeros at the padding, which the mask hides).
  // Returns [T, H], or with query_rows ([B] packed rows) those rows' outputs only, [B, H].
  torch::Tensor forward_packed(const torch::Tensor& x, const torch::Tensor& index, int64_t B,
                               int64_t L, const torch::Tensor& mask, bool causal,
                               const torch::Tensor& query_rows = {}) const;
  void allocate_fused(torch::ScalarType dtype, const torch::Device& device) override {
    qkv_.allocate(*this, "qkv_proj_fused", dtype, device);
  }
  void fuse() override { qkv_.fuse(); }
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  // softmax(q k^T + mask) v from unscaled [B, Lq, H] queries and [B, L, H] keys and values
  // (views welcome): [B, Lq, H], before out_proj.
  torch::Tensor attend(torch::Tensor q, torch::Tensor k, torch::Tensor v, const torch::Tensor& mask,
                       bool causal) const;
  int64_t heads_, head_dim_;
  double scale_;
  nn::FusedLinear qkv_;  // q, k, v: one product
};
TORCH_MODULE(Attention);

class EncoderLayerImpl : public nn::ModuleBase {
 public:
  explicit EncoderLayerImpl(const EncoderConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const torch::Tensor& query_index = {}, bool causal = false) const;
  // The same on packed rows (AttentionImpl::forward_packed): x [T, H]; with query_rows ([B]
  // packed rows) only those rows are computed, [B, H].
  torch::Tensor forward_packed(const torch::Tensor& x, const torch::Tensor& index, int64_t B,
                               int64_t L, const torch::Tensor& mask, bool causal,
                               const torch::Tensor& query_rows = {}) const;
  Attention self_attn{nullptr};
  nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  nn::Mlp mlp{nullptr};
};
TORCH_MODULE(EncoderLayer);

class EncoderImpl : public nn::ModuleBase {
 public:
  explicit EncoderImpl(const EncoderConfig& c);
  // Runs layers [0, num_layers) (all when num_layers < 0). With query_index defined, the last
  // layer run computes only those rows and the result is [B, 1, H]. causal: mask is the causal
  // mask alone, [1, 1, L, L] (the attention may use is_causal instead).
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask, int64_t num_layers = -1,
                        const torch::Tensor& query_index = {}, bool causal = false) const;
  int64_t size() const { return static_cast<int64_t>(layers->size()); }
  torch::nn::ModuleList layers;
};
TORCH_MODULE(Encoder);

class TextEmbeddingsImpl : public nn::ModuleBase {
 public:
  explicit TextEmbeddingsImpl(const TextConfig& c);
  nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(TextEmbeddings);

class TextTransformerImpl : public nn::ModuleBase {
 public:
  explicit TextTransformerImpl(const TextConfig& c);
  // Pooled output [B, H]: final_layer_norm at the end-of-text position. input_ids and
  // attention_mask: [B, L] int64 on the model's device, ids inside the vocabulary, L at most
  // max_position_embeddings (the embedder checks both on the host). right_padded: each row of
  // attention_mask is ones then zeros (as the tokenizer pads), so the causal mask alone hides the
  // padding from every position up to the pooled one and no [B, L, L] mask is made.
  // packed_index (optional, with right_padded): the flat positions b * L + t of the real tokens
  // in order: the layers then run on those rows only (no padding waste).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        bool right_padded = false, const torch::Tensor& packed_index = {}) const;
  TextEmbeddings embeddings{nullptr};
  Encoder encoder{nullptr};
  nn::LayerNorm final_layer_norm{nullptr};

 private:
  TextConfig cfg_;
};
TORCH_MODULE(TextTransformer);

class VisionEmbeddingsImpl : public nn::ModuleBase {
 public:
  explicit VisionEmbeddingsImpl(const VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values) const;
  torch::Tensor class_embedding;
  nn::Embedding position_embedding{nullptr};

 private:
  struct PatchImpl : nn::ModuleBase {
    PatchImpl(int64_t hidden, int64_t ch, int64_t p) {
      weight = declare("weight", {hidden, ch, p, p});
    }
    torch::Tensor weight;
  };
  std::shared_ptr<PatchImpl> patch_;
  VisionConfig cfg_;
};
TORCH_MODULE(VisionEmbeddings);

class VisionTransformerImpl : public nn::ModuleBase {
 public:
  explicit VisionTransformerImpl(const VisionConfig& c, bool with_post_layernorm = true);
  // Pooled output [B, H]: post_layernorm of the class token after the last layer.
  torch::Tensor forward(const torch::Tensor& pixel_values) const;
  // The hidden states after `num_layers` encoder layers (transformers' hidden_states[num_layers]),
  // [B, 1 + patches, H]; later layers are not run.
  torch::Tensor hidden_states_at(const torch::Tensor& pixel_values, int64_t num_layers) const;
  VisionEmbeddings embeddings{nullptr};
  nn::LayerNorm pre_layrnorm{nullptr}, post_layernorm{nullptr};
  Encoder encoder{nullptr};
};
TORCH_MODULE(VisionTransformer);

class ClipModelImpl : public nn::ModuleBase {
 public:
  explicit ClipModelImpl(const Config& c);
  torch::Tensor text_features(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                              bool right_padded = false,
                              const torch::Tensor& packed_index = {}) const;
  torch::Tensor image_features(const torch::Tensor& pixel_values) const;
  TextTransformer text_model{nullptr};
  VisionTransformer vision_model{nullptr};
  nn::Linear visual_projection{nullptr}, text_projection{nullptr};
  torch::Tensor logit_scale;
};
TORCH_MODULE(ClipModel);

}  // namespace bgevl::clip
