// LLaVA-NeXT for embeddings (BGE-VL-MLLM): CLIP vision tower run up to vision_feature_layer,
// 2-layer projector, anyres feature packing with unpad + image_newline, the merge of image rows at
// the <image> tokens (transformers 4.45's legacy path, left padding), and Mistral. Modules are
// registered under the checkpoint's names (vision_tower.vision_model.*, multi_modal_projector.*,
// image_newline, language_model.model.*); lm_head is never built.
//
// Everything that depends on sizes (each image's tiles and grid, the merged sequence) is planned
// on the host from the token ids and image sizes (ImageLayout, MergePlan); the model only runs
// tensor operations on the device, with no host synchronisation.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "models/clip/model.h"
#include "models/llava_next/config.h"
#include "models/llava_next/mistral.h"

namespace bgevl::llava_next {

// One image as the model unpacks it.
struct ImageLayout {
  int64_t height = 0, width = 0;         // image_sizes (after the pre-resize)
  int64_t tiles = 0;                     // the squashed base tile + the grid tiles
  int64_t grid_rows = 0, grid_cols = 0;  // the grid, in tiles (best resolution / tile size)
  // The packed grid after unpad_image, in patches: rows [row0, row0 + rows), cols [col0, col0 +
  // cols).
  int64_t row0 = 0, rows = 0, col0 = 0, cols = 0;
  int64_t feature_len = 0;  // rows this image takes in the merged sequence
};

// select_best_resolution, image_size_to_num_patches and unpad_image for an image of that size.
ImageLayout image_layout(const Config& c, int64_t height, int64_t width);

// The merged sequence: row b, position p takes row source[b * length + p] of the table
// [token embeddings of input_ids, flattened (B * L rows); every image's packed features, in order;
// one zero row (padding)].
struct MergePlan {
  int64_t batch = 0, length = 0;
  std::vector<int64_t> source, attention_mask, position_ids;  // batch * length each
};

// transformers' legacy merge with left padding: each row's real tokens, every image token
// replaced by the next image's feature_len rows, right-aligned (left-padded) to the longest
// merged row; position ids count real tokens only (pads: 1). Without images the rows stay as
// given. ids, mask: [batch, length] row-major. InvalidArgumentError when the image tokens do not
// match the images.
MergePlan plan_merge(const std::vector<int64_t>& ids, const std::vector<int64_t>& mask,
                     int64_t batch, int64_t length, int64_t image_token,
                     const std::vector<ImageLayout>& images);

// A batch on the model's device, with its host plan.
struct DeviceBatch {
  torch::Tensor input_ids;  // [B, L] int64
  torch::Tensor tiles;      // [sum of tiles, 3, S, S] float32, undefined without images
  std::vector<ImageLayout> images;
  torch::Tensor source, attention_mask, position_ids;  // [B, L'] int64 (the MergePlan)
  bool unpadded = false;  // the plan's attention_mask has no zero (known on the host)
};

class ProjectorImpl : public nn::ModuleBase {
 public:
  ProjectorImpl(int64_t in, int64_t out, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x) const {
    return linear_2->forward(act_(linear_1->forward(x)));
  }
  nn::Linear linear_1{nullptr}, linear_2{nullptr};

 private:
  nn::Activation act_;
};
TORCH_MODULE(Projector);

// Holds `vision_model` so that names read vision_tower.vision_model.*.
class VisionTowerImpl : public nn::ModuleBase {
 public:
  explicit VisionTowerImpl(const clip::VisionConfig& c);
  clip::VisionTransformer vision_model{nullptr};
};
TORCH_MODULE(VisionTower);

// Holds `model` so that names read language_model.model.*.
class LanguageModelImpl : public nn::ModuleBase {
 public:
  explicit LanguageModelImpl(const MistralConfig& c);
  MistralModel model{nullptr};
};
TORCH_MODULE(LanguageModel);

class LlavaNextImpl : public nn::ModuleBase {
 public:
  explicit LlavaNextImpl(const Config& c);

  // The vision tower's selected features (layer vision_feature_layer, CLS dropped for the
  // "default" strategy) through the projector: [tiles, patches, H].
  torch::Tensor projected_tiles(const torch::Tensor& tiles) const;
  // Every image's packed features (base tile, then the unpadded grid with an image_newline column
  // per row), concatenated: [sum of feature_len, H].
  torch::Tensor image_features(const torch::Tensor& tiles,
                               const std::vector<ImageLayout>& images) const;
  // The final hidden states [B, L', H] (or [B, 1, H], the last position only, when last_only).
  torch::Tensor forward(const DeviceBatch& batch, bool last_only) const;

  // Checkpoint tensors the model does not use: later vision layers, post_layernorm, lm_head.
  std::vector<std::string> unused_prefixes() const;

  VisionTower vision_tower{nullptr};
  Projector multi_modal_projector{nullptr};
  torch::Tensor image_newline;
  LanguageModel language_model{nullptr};
  const Config& config() const { return cfg_; }

 private:
  Config cfg_;
};
TORCH_MODULE(LlavaNext);

}  // namespace bgevl::llava_next
