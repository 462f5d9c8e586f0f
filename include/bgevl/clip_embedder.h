// BGE-VL-CLIP (BAAI/BGE-VL-base, BAAI/BGE-VL-large): the Embedder, plus the model card's processor
// and get_text_features / get_image_features.
//
//   bgevl::ClipEmbedder model("BAAI/BGE-VL-base");            // folder or hub id in the local
//   cache auto q = model.encode({bgevl::ImageInput::path("q.png")}, {"make the background dark"});
//   auto c = model.encode({bgevl::ImageInput::path("a.png"), bgevl::ImageInput::path("b.png")},
//   {}); auto scores = q.matmul(c.t());
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/image_input.h"
#include "bgevl/options.h"

namespace bgevl {

struct TextInputs {
  torch::Tensor input_ids;       // [N, L] int64, right-padded
  torch::Tensor attention_mask;  // [N, L] int64
};

class ClipEmbedder final : public Embedder {
 public:
  // Loads config.json, the weights (model.safetensors or a sharded index) and the processor
  // (vocab.json, merges.txt, preprocessor_config.json) from a folder or a cached hub id.
  explicit ClipEmbedder(const std::string& path_or_id, const LoadOptions& options = {});
  ~ClipEmbedder() override;

  // Embedder. Images, texts and composed items (the projected text and image vectors summed,
  // then normalised) may be mixed in one list. Roles are ignored (CLIP has no prompts); an
  // instruction is refused.
  torch::Tensor encode(const std::vector<EmbedItem>& items,
                       const EncodeOptions& options = {}) const override;
  // The model card's encode: images only, texts only, or equal-length lists of pairs.
  torch::Tensor encode(const std::vector<ImageInput>& images, const std::vector<std::string>& texts,
                       const EncodeOptions& options = {}) const;

  Family family() const override { return Family::Clip; }
  int64_t embedding_dim() const override;
  int64_t default_batch_size() const override;
  torch::Device device() const override;
  torch::ScalarType dtype() const override;
  const std::string& model_dir() const override;
  const std::string& revision() const override;
  void to(const torch::Device& device, torch::ScalarType dtype) override;
  void set_processor(const std::string& path_or_id, const std::string& revision = "") override;

  // The processor alone (CLIPProcessor): token ids and pixel values, on the CPU.
  TextInputs tokenize(const std::vector<std::string>& texts, bool truncate = false) const;
  torch::Tensor pixel_values(const std::vector<ImageInput>& images) const;  // [N, 3, H, W] float32

  // The model alone: projected, unnormalised features, in the model's dtype on its device.
  torch::Tensor get_text_features(const TextInputs& inputs) const;
  torch::Tensor get_image_features(const torch::Tensor& pixel_values) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl
