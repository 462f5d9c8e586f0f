// BGE-VL-CLIP (BAAI/BGE-VL-base, BAAI/BGE-VL-large): the model card's `encode`, from C++.
//
//   bgevl::ClipEmbedder model("BAAI/BGE-VL-base");            // folder or hub id in the local cache
//   auto q = model.encode({bgevl::ImageInput::path("q.png")}, {"make the background dark"});
//   auto c = model.encode({bgevl::ImageInput::path("a.png"), bgevl::ImageInput::path("b.png")}, {});
//   auto scores = q.matmul(c.t());
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "bgevl/image_input.h"
#include "bgevl/options.h"

namespace bgevl {

struct TextInputs {
  torch::Tensor input_ids;       // [N, L] int64, right-padded
  torch::Tensor attention_mask;  // [N, L] int64
};

class ClipEmbedder {
 public:
  // Loads config.json, the weights (model.safetensors or a sharded index) and the processor
  // (vocab.json, merges.txt, preprocessor_config.json) from a folder or a cached hub id.
  explicit ClipEmbedder(const std::string& path_or_id, const LoadOptions& options = {});
  ~ClipEmbedder();
  ClipEmbedder(ClipEmbedder&&) noexcept;
  ClipEmbedder& operator=(ClipEmbedder&&) noexcept;

  // Reloads the tokenizer and image processor from another folder (transformers' set_processor).
  void set_processor(const std::string& path_or_id);

  // The model card's encode: images only, texts only, or composed (equal-length lists: the
  // projected text and image vectors are summed, then normalised). Returns L2-normalised
  // float32 [N, projection_dim] on the model's device. Empty input: InvalidArgumentError.
  torch::Tensor encode(const std::vector<ImageInput>& images, const std::vector<std::string>& texts,
                       const EncodeOptions& options = {}) const;
  torch::Tensor encode_images(const std::vector<ImageInput>& images, const EncodeOptions& options = {}) const;
  torch::Tensor encode_texts(const std::vector<std::string>& texts, const EncodeOptions& options = {}) const;

  // The processor alone (CLIPProcessor): token ids and pixel values, on the CPU.
  TextInputs tokenize(const std::vector<std::string>& texts, bool truncate = false) const;
  torch::Tensor pixel_values(const std::vector<ImageInput>& images) const;  // [N, 3, H, W] float32

  // The model alone: projected, unnormalised features (get_text_features / get_image_features).
  torch::Tensor text_features(const TextInputs& inputs) const;
  torch::Tensor image_features(const torch::Tensor& pixel_values) const;

  // Moves the weights (module.to).
  void to(const torch::Device& device, torch::ScalarType dtype);
  torch::Device device() const;
  torch::ScalarType dtype() const;
  int64_t embedding_dim() const;
  const std::string& model_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl
