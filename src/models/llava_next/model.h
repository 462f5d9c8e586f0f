// LLaVA-NeXT for embeddings (BGE-VL-MLLM): CLIP vision tower run up to vision_feature_layer,
// 2-layer projector, anyres feature packing with unpad + image_newline, the merge of image rows at
// the <image> token (transformers 4.45's legacy path, left padding), and Mistral. Modules are
// registered under the checkpoint's names (vision_tower.vision_model.*, multi_modal_projector.*,
// image_newline, language_model.model.*); lm_head is never built.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "io/config.h"
#include "nn/clip.h"
#include "nn/mistral.h"

namespace bgevl::nn {

class LlavaProjectorImpl : public ModuleBase {
 public:
  LlavaProjectorImpl(int64_t in, int64_t out, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x) const {
    return linear_2->forward(act_(linear_1->forward(x)));
  }
  Linear linear_1{nullptr}, linear_2{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> act_;
};
TORCH_MODULE(LlavaProjector);

// Holds `vision_model` so that names read vision_tower.vision_model.*.
class VisionTowerImpl : public ModuleBase {
 public:
  explicit VisionTowerImpl(const io::ClipVisionConfig& c);
  ClipVisionTransformer vision_model{nullptr};
};
TORCH_MODULE(VisionTower);

// Holds `model` so that names read language_model.model.*.
class LanguageModelImpl : public ModuleBase {
 public:
  explicit LanguageModelImpl(const io::MistralConfig& c);
  MistralModel model{nullptr};
};
TORCH_MODULE(LanguageModel);

struct MergedInputs {
  torch::Tensor inputs_embeds;   // [B, L, H]
  torch::Tensor attention_mask;  // [B, L] int64
  torch::Tensor position_ids;    // [B, L] int64
};

class LlavaNextImpl : public ModuleBase {
 public:
  explicit LlavaNextImpl(const io::LlavaNextConfig& c);

  // Per image, the packed features [len_i, H] (base tile first, then the unpadded grid with an
  // image_newline column per row). pixel_values: [N, T, 3, S, S] (tiles beyond an image's own
  // count are padding and ignored) or [sum tiles, 3, S, S]; image_sizes: [N, 2] (height, width).
  std::vector<torch::Tensor> image_features(const torch::Tensor& pixel_values,
                                            const torch::Tensor& image_sizes) const;
  // Token embeddings with each <image> token replaced by its image's rows (left padding kept),
  // attention mask and position ids as transformers computes them. Without images: the token
  // embeddings, the mask as given, and positions counting real tokens only.
  MergedInputs merge(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                     const std::vector<torch::Tensor>& image_features) const;
  // The final hidden states [B, L, H] (or [B, 1, H], the last position only, when last_only).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& pixel_values, const torch::Tensor& image_sizes,
                        bool last_only) const;

  // Checkpoint tensors the model does not use: later vision layers, post_layernorm, lm_head.
  std::vector<std::string> unused_prefixes() const;
  int64_t num_tiles(int64_t height, int64_t width) const;

  VisionTower vision_tower{nullptr};
  LlavaProjector multi_modal_projector{nullptr};
  torch::Tensor image_newline;
  LanguageModel language_model{nullptr};
  const io::LlavaNextConfig& config() const { return cfg_; }

 private:
  io::LlavaNextConfig cfg_;
};
TORCH_MODULE(LlavaNext);

}  // namespace bgevl::nn
