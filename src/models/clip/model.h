// CLIP text and vision towers (transformers' CLIPModel), modules registered under the Hugging Face
// names so that checkpoint keys map one to one onto parameters.
#pragma once

#include <torch/torch.h>

#include "io/config.h"
#include "nn/module.h"

namespace bgevl::nn {

class EmbeddingImpl : public ModuleBase {
 public:
  EmbeddingImpl(int64_t num, int64_t dim) { weight = declare("weight", {num, dim}); }
  torch::Tensor forward(const torch::Tensor& ids) const { return torch::embedding(weight, ids); }
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

class ClipAttentionImpl : public ModuleBase {
 public:
  ClipAttentionImpl(int64_t hidden, int64_t heads);
  // x: [B, L, H]. mask: additive [B, 1, Lq, L] or undefined. If query_index ([B], int64) is
  // defined, only those query rows are computed and the result is [B, 1, H].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const torch::Tensor& query_index = {}) const;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_, head_dim_;
  double scale_;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public ModuleBase {
 public:
  ClipMlpImpl(int64_t hidden, int64_t inner, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x) const { return fc2->forward(act_(fc1->forward(x))); }
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> act_;
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public ModuleBase {
 public:
  explicit ClipEncoderLayerImpl(const io::ClipEncoderConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask,
                        const torch::Tensor& query_index = {}) const;
  ClipAttention self_attn{nullptr};
  LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipEncoderImpl : public ModuleBase {
 public:
  explicit ClipEncoderImpl(const io::ClipEncoderConfig& c);
  // Runs layers [0, num_layers) (all when num_layers < 0). With query_index defined, the last
  // layer run computes only those rows and the result is [B, 1, H].
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask, int64_t num_layers = -1,
                        const torch::Tensor& query_index = {}) const;
  int64_t size() const { return static_cast<int64_t>(layers->size()); }
  torch::nn::ModuleList layers;
};
TORCH_MODULE(ClipEncoder);

class ClipTextEmbeddingsImpl : public ModuleBase {
 public:
  explicit ClipTextEmbeddingsImpl(const io::ClipTextConfig& c);
  Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipTextTransformerImpl : public ModuleBase {
 public:
  explicit ClipTextTransformerImpl(const io::ClipTextConfig& c);
  // Pooled output [B, H]: final_layer_norm at the end-of-text position.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const;
  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  LayerNorm final_layer_norm{nullptr};

 private:
  io::ClipTextConfig cfg_;
};
TORCH_MODULE(ClipTextTransformer);

class ClipVisionEmbeddingsImpl : public ModuleBase {
 public:
  explicit ClipVisionEmbeddingsImpl(const io::ClipVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values) const;
  torch::Tensor class_embedding;
  Embedding position_embedding{nullptr};

 private:
  struct PatchImpl : ModuleBase {
    PatchImpl(int64_t hidden, int64_t ch, int64_t p) { weight = declare("weight", {hidden, ch, p, p}); }
    torch::Tensor weight;
  };
  std::shared_ptr<PatchImpl> patch_;
  io::ClipVisionConfig cfg_;
};
TORCH_MODULE(ClipVisionEmbeddings);

class ClipVisionTransformerImpl : public ModuleBase {
 public:
  explicit ClipVisionTransformerImpl(const io::ClipVisionConfig& c, bool with_post_layernorm = true);
  // Pooled output [B, H]: post_layernorm of the class token after the last layer.
  torch::Tensor forward(const torch::Tensor& pixel_values) const;
  // The hidden states after `num_layers` encoder layers (transformers' hidden_states[num_layers]),
  // [B, 1 + patches, H]; later layers are not run.
  torch::Tensor hidden_states_at(const torch::Tensor& pixel_values, int64_t num_layers) const;
  ClipVisionEmbeddings embeddings{nullptr};
  LayerNorm pre_layrnorm{nullptr}, post_layernorm{nullptr};
  ClipEncoder encoder{nullptr};
};
TORCH_MODULE(ClipVisionTransformer);

class ClipModelImpl : public ModuleBase {
 public:
  explicit ClipModelImpl(const io::ClipConfig& c);
  torch::Tensor text_features(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const;
  torch::Tensor image_features(const torch::Tensor& pixel_values) const;
  ClipTextTransformer text_model{nullptr};
  ClipVisionTransformer vision_model{nullptr};
  Linear visual_projection{nullptr}, text_projection{nullptr};
  torch::Tensor logit_scale;
};
TORCH_MODULE(ClipModel);

}  // namespace bgevl::nn
