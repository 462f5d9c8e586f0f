#include "models/llava_next/processor.h"

#include <filesystem>

#include "bgevl/errors.h"
#include "models/common.h"
#include "runtime/inputs.h"

namespace bgevl::llava_next {

namespace fs = std::filesystem;

bool Processor::present(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / "tokenizer.model", ec) ||
         fs::exists(fs::path(dir) / "preprocessor_config.json", ec);
}

Processor::Processor(const std::string& dir, const Config& model)
    : dir_(dir), pre_resize_(model.pre_resize) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::exists(d / "tokenizer.model", ec)) {
    tokenizer_ = std::make_shared<text::MistralTokenizer>(text::MistralTokenizer::from_dir(dir));
    const int64_t image_id = tokenizer_->added_token_id("<image>");
    BGEVL_CHECK_ARG(image_id == model.image_token_index, dir, ": the tokenizer's <image> is id ",
                    image_id, " but config.json's image_token_index is ", model.image_token_index);
    models::check_tokenizer_fits(tokenizer_->max_id(), model.text.vocab_size, dir);
  }
  const auto pp = d / "preprocessor_config.json";
  if (fs::exists(pp, ec))
    image_ = std::make_shared<vision::LlavaImageConfig>(load_image_config(pp.string(), model));
  BGEVL_CHECK_ARG(tokenizer_ || image_, dir,
                  " has no BGE-VL-MLLM processor files (tokenizer.model, "
                  "preprocessor_config.json)");
}

const text::MistralTokenizer& Processor::tokenizer() const {
  BGEVL_CHECK_ARG(tokenizer_ != nullptr, "no tokenizer: ", dir_,
                  " has no tokenizer.model; call set_processor(path) with a folder that has one");
  return *tokenizer_;
}

const vision::LlavaImageConfig& Processor::image() const {
  BGEVL_CHECK_ARG(image_ != nullptr, "no image processor: ", dir_,
                  " has no preprocessor_config.json; call set_processor(path) with a folder that "
                  "has one");
  return *image_;
}

std::string Processor::prompt(const std::optional<std::string>& text, bool has_image,
                              const Prompt& p) {
  BGEVL_CHECK_ARG(p.role != Role::Unspecified,
                  "BGE-VL-MLLM needs every item's role, as the model card's data_process needs "
                  "q_or_c: 'q' (query) or 'c' (candidate); C++: Prompt::query(instruction) or "
                  "Prompt::candidate()");
  std::string s;
  if (p.role == Role::Query)
    s = p.instruction ? "[INST] \n <instruct> " + *p.instruction + " <query> "
                      : "[INST] \n <instruct>  <query>";
  else
    s = "[INST] ";  // the reference ignores a candidate's instruction
  if (text) s += " " + *text + " \n";
  if (has_image) s += " <image>";
  return s + " [/INST]";
}

vision::LlavaPixels Processor::pixels(const ImageInput& in) const {
  return vision::llava_preprocess(runtime::decode(in), image(), pre_resize_);
}

}  // namespace bgevl::llava_next
