#include "models/clip/processor.h"

#include <filesystem>

#include "bgevl/errors.h"
#include "models/common.h"

namespace bgevl::clip {

namespace fs = std::filesystem;

bool Processor::present(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  return fs::exists(d / "vocab.json", ec) || fs::exists(d / "merges.txt", ec) ||
         fs::exists(d / "preprocessor_config.json", ec);
}

Processor::Processor(const std::string& dir, const Config& model)
    : dir_(dir), max_positions_(model.text.max_position_embeddings) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::exists(d / "vocab.json", ec) || fs::exists(d / "merges.txt", ec)) {
    tokenizer_ = std::make_shared<text::ClipTokenizer>(text::ClipTokenizer::from_dir(dir));
    models::check_tokenizer_fits(tokenizer_->max_id(), model.text.vocab_size, dir);
  }
  const auto pp = d / "preprocessor_config.json";
  if (fs::exists(pp, ec))
    image_ = std::make_shared<vision::ClipImageConfig>(load_image_config(pp.string(), model));
  BGEVL_CHECK_ARG(tokenizer_ || image_, dir,
                  " has no BGE-VL-CLIP processor files (vocab.json + merges.txt, "
                  "preprocessor_config.json)");
}

const text::ClipTokenizer& Processor::tokenizer() const {
  BGEVL_CHECK_ARG(
      tokenizer_ != nullptr, "no tokenizer: ", dir_,
      " has no vocab.json/merges.txt; call set_processor(path) with a folder that has them");
  return *tokenizer_;
}

const vision::ClipImageConfig& Processor::image() const {
  BGEVL_CHECK_ARG(image_ != nullptr, "no image processor: ", dir_,
                  " has no preprocessor_config.json; call set_processor(path) with a folder that "
                  "has one");
  return *image_;
}

std::vector<int64_t> Processor::tokens(const std::string& text, bool truncate,
                                       const std::string& what) const {
  auto ids = tokenizer().encode(text);
  tokenizer().fit(ids, max_positions_, truncate, what);
  return ids;
}

text::TokenBatch Processor::pad(const std::vector<std::vector<int64_t>>& rows) const {
  return text::pad_rows(rows, tokenizer().pad_id(), text::PadSide::Right);
}

}  // namespace bgevl::clip
