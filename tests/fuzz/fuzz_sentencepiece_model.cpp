// The SentencePiece model reader (text::SentencePieceBpe, through MistralTokenizer::from_dir):
// the input is a tokenizer.model, written into two per-process folders that hold the fixture's
// other tokenizer files (tests/fixtures/llava/tiny-llava-next: legacy=false, and
// tiny-llava-next-legacy: legacy=true, with the added tokens <image> and <pad>). A model that
// loads then encodes a few fixed texts, added tokens and byte fallback included.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

namespace fz = bgevl::fuzz;

const char* const kTexts[] = {
    "Hello world",
    "<s>[INST] <image>\nWhat is in the picture?<pad><pad> [/INST]</s>",
    "  two  spaces\tand a tab\n\nnew lines ",
    "na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xe2\x96\x81",
    "<unk><image><image>",
    "",
};

const char* const kFiles[] = {"tokenizer_config.json", "special_tokens_map.json",
                              "added_tokens.json"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fz::fs::path dirs[2] = {fz::scratch_dir("sp_model"),
                                       fz::scratch_dir("sp_model_legacy")};
  static const bool ready = [] {
    for (const char* f : kFiles) {
      fz::copy_fixtures("llava/tiny-llava-next", dirs[0], {f});
      fz::copy_fixtures("llava/tiny-llava-next-legacy", dirs[1], {f});
    }
    return true;
  }();
  (void)ready;
  for (const auto& dir : dirs) {
    fz::write_file(dir / "tokenizer.model", data, size);
    fz::guarded([&] {
      const auto tok = bgevl::text::MistralTokenizer::from_dir(dir.string());
      for (const char* t : kTexts) fz::encode_mistral(tok, t);
    });
  }
  return 0;
}
