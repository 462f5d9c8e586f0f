// BGE-VL-CLIP's processor (transformers' CLIPProcessor): the CLIP tokenizer and the image
// processor of a folder, each optional until used, with the model's limits applied.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/clip/config.h"
#include "text/clip_tokenizer.h"
#include "vision/image.h"

namespace bgevl::clip {

class Processor {
 public:
  // Loads vocab.json + merges.txt and preprocessor_config.json from `dir` (both optional, but
  // not both absent: InvalidArgumentError).
  Processor(const std::string& dir, const Config& model);
  // Whether `dir` has any of those files.
  static bool present(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  bool has_image_processor() const { return image_ != nullptr; }
  // InvalidArgumentError, saying what to do, when the folder had none.
  const text::ClipTokenizer& tokenizer() const;
  const vision::ClipImageConfig& image() const;

  // One text's ids, fitted to the model's positions (cut when truncate; else an
  // InvalidArgumentError naming `what`).
  std::vector<int64_t> tokens(const std::string& text, bool truncate,
                              const std::string& what) const;
  // Right-padded rows, as CLIPProcessor(padding=True).
  text::TokenBatch pad(const std::vector<std::vector<int64_t>>& rows) const;

 private:
  std::string dir_;
  int64_t max_positions_;
  std::shared_ptr<text::ClipTokenizer> tokenizer_;
  std::shared_ptr<vision::ClipImageConfig> image_;
};

}  // namespace bgevl::clip
