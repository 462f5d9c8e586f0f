// BGE-VL-MLLM's processor: the reference's prompts (prepare_text_input), the Mistral tokenizer
// and the image path (data_process's 512 x 512 pre-resize, then LlavaNextImageProcessor), with
// the model's grid and image token.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "bgevl/embedder.h"
#include "bgevl/image_input.h"
#include "models/llava_next/config.h"
#include "text/mistral_tokenizer.h"
#include "vision/llava_processor.h"

namespace bgevl::llava_next {

class Processor {
 public:
  // Loads tokenizer.model (+ tokenizer_config.json, added_tokens.json, special_tokens_map.json)
  // and preprocessor_config.json from `dir` (both optional, not both absent), checked against
  // the model: the tokenizer's <image> must be config.json's image_token_index, the grid and
  // tiles the model's. InvalidArgumentError otherwise.
  Processor(const std::string& dir, const Config& model);
  // Whether `dir` has any of those files.
  static bool present(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // InvalidArgumentError, saying what to do, when the folder had none.
  const text::MistralTokenizer& tokenizer() const;
  const vision::LlavaImageConfig& image() const;

  // The reference's prompt for one item (prepare_text_input). The role must be given.
  static std::string prompt(const std::optional<std::string>& text, bool has_image,
                            const Prompt& prompt);
  // Image.open(p).resize((512, 512)).convert("RGB"), then the anyres processor.
  vision::LlavaPixels pixels(const ImageInput& image) const;

 private:
  std::string dir_;
  int pre_resize_;
  std::shared_ptr<text::MistralTokenizer> tokenizer_;
  std::shared_ptr<vision::LlavaImageConfig> image_;
};

}  // namespace bgevl::llava_next
