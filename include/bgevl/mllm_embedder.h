// BGE-VL-MLLM (BGE-VL-MLLM-S1/S2, BGE-VL-v1.5-zs/mmeb: LLaVA-NeXT + Mistral-7B), from C++.
//
//   bgevl::MllmEmbedder model("BAAI/BGE-VL-MLLM-S1");
//   auto q = model.encode({bgevl::ImageInput::path("q.png")}, {"make it night"}, "q", kInstruction);
//   auto c = model.encode({bgevl::ImageInput::path("a.png"), bgevl::ImageInput::path("b.png")}, {}, "c");
//   auto scores = q.matmul(c.t());
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/image_input.h"
#include "bgevl/options.h"

namespace bgevl {

// What the model card's data_process returns.
struct MllmInputs {
  torch::Tensor input_ids;       // [N, L] int64, left-padded with <pad>
  torch::Tensor attention_mask;  // [N, L] int64
  torch::Tensor pixel_values;    // [N, tiles, 3, 336, 336] float32, undefined without images
  torch::Tensor image_sizes;     // [N, 2] int64 (height, width), undefined without images
};

class MllmEmbedder {
 public:
  // The composed-image-retrieval instruction of the model card (with its trailing space).
  static const char* const kComposedRetrievalInstruction;

  explicit MllmEmbedder(const std::string& path_or_id, const LoadOptions& options = {});
  ~MllmEmbedder();
  MllmEmbedder(MllmEmbedder&&) noexcept;
  MllmEmbedder& operator=(MllmEmbedder&&) noexcept;

  // Reloads the tokenizer and image processor from another folder (the card's set_processor).
  void set_processor(const std::string& path_or_id);

  // The reference's prompt for one item. q_or_c: "q", "query", "c" or "candidate".
  static std::string prompt(const std::string* text, bool has_image, const std::string& q_or_c,
                            const std::optional<std::string>& task_instruction);

  // The card's data_process: prompts, tokens (left padding) and anyres pixel values, on the CPU.
  // images and texts: either may be empty; when both are given they must have equal lengths.
  MllmInputs data_process(const std::vector<ImageInput>& images, const std::vector<std::string>& texts,
                          const std::string& q_or_c,
                          const std::optional<std::string>& task_instruction = std::nullopt) const;

  // model(**inputs): the final hidden states [N, L', H] (L' after the image rows are merged in),
  // in the model's dtype on its device. `[:, -1, :]` is the embedding before normalisation.
  torch::Tensor forward(const MllmInputs& inputs) const;

  // L2-normalised float32 [N, H] embeddings; computes only the last position in the last layer.
  torch::Tensor encode(const std::vector<ImageInput>& images, const std::vector<std::string>& texts,
                       const std::string& q_or_c,
                       const std::optional<std::string>& task_instruction = std::nullopt,
                       const EncodeOptions& options = {}) const;

  void to(const torch::Device& device, torch::ScalarType dtype);
  torch::Device device() const;
  torch::ScalarType dtype() const;
  int64_t hidden_size() const;
  const std::string& model_dir() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl
