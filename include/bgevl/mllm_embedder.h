// BGE-VL-MLLM (BGE-VL-MLLM-S1/S2, BGE-VL-v1.5-zs/mmeb: LLaVA-NeXT + Mistral-7B): the Embedder, plus
// the model card's data_process and forward.
//
//   bgevl::MllmEmbedder model("BAAI/BGE-VL-MLLM-S1");
//   auto q = model.encode({bgevl::ImageInput::path("q.png")}, {"make it night"},
//                         bgevl::Prompt::query(bgevl::kComposedRetrievalInstruction));
//   auto c = model.encode({bgevl::ImageInput::path("a.png"), bgevl::ImageInput::path("b.png")}, {},
//                         bgevl::Prompt::candidate());
//   auto scores = q.matmul(c.t());
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/image_input.h"
#include "bgevl/options.h"

namespace bgevl {

// What the model card's data_process returns.
struct MllmInputs {
  torch::Tensor input_ids;       // [N, L] int64, left-padded with <pad>
  torch::Tensor attention_mask;  // [N, L] int64
  torch::Tensor pixel_values;    // [images, tiles, 3, 336, 336] float32, undefined without images
  torch::Tensor image_sizes;     // [images, 2] int64 (height, width), undefined without images
};

class MllmEmbedder final : public Embedder {
 public:
  // The composed-image-retrieval instruction of the model card
  // (bgevl::kComposedRetrievalInstruction).
  static constexpr const char* kComposedRetrievalInstruction = bgevl::kComposedRetrievalInstruction;

  explicit MllmEmbedder(const std::string& path_or_id, const LoadOptions& options = {});
  ~MllmEmbedder() override;

  // Embedder. Every item needs a role (Prompt::query or Prompt::candidate: the card's q_or_c);
  // each item's prompt is built on its own, so a list may mix items with and without a text
  // (candidates of which only some carry captions), with and without an image. The embedding is
  // the final hidden state at the last position; only that row is computed in the last layer.
  torch::Tensor encode(const std::vector<EmbedItem>& items,
                       const EncodeOptions& options = {}) const override;
  // The card's encode: images only, texts only, or equal-length lists of pairs, with one prompt.
  torch::Tensor encode(const std::vector<ImageInput>& images, const std::vector<std::string>& texts,
                       const Prompt& prompt, const EncodeOptions& options = {}) const;

  Family family() const override { return Family::LlavaNext; }
  int64_t embedding_dim() const override;  // the language model's hidden size
  int64_t default_batch_size() const override;
  torch::Device device() const override;
  torch::ScalarType dtype() const override;
  const std::string& model_dir() const override;
  const std::string& revision() const override;
  void to(const torch::Device& device, torch::ScalarType dtype) override;
  void set_processor(const std::string& path_or_id, const std::string& revision = "") override;

  // The reference's prompt for one item (prepare_text_input); the role must be given.
  static std::string prompt(const std::optional<std::string>& text, bool has_image,
                            const Prompt& prompt);

  // The card's data_process: prompts, tokens (left padding) and anyres pixel values, on the CPU;
  // pixel_values is padded with zero tiles to the most tiles of the batch, as the reference's.
  MllmInputs data_process(const std::vector<EmbedItem>& items) const;
  MllmInputs data_process(const std::vector<ImageInput>& images,
                          const std::vector<std::string>& texts, const Prompt& prompt) const;

  // model(**inputs): the final hidden states [N, L', H] (L' after the image rows are merged in),
  // in the model's dtype on its device. `[:, -1, :]` is the embedding before normalisation.
  torch::Tensor forward(const MllmInputs& inputs) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl
