// The tokenizers' JSON configs: the input is written as one of the JSON files a tokenizer folder
// can hold (which one: the input's length modulo 6), the other files being the fixtures'
// (tests/fixtures/clip/tiny-fp16-quickgelu, tests/fixtures/llava/tiny-llava-next):
//   CLIP     tokenizer_config.json; special_tokens_map.json
//   Mistral  tokenizer_config.json; special_tokens_map.json and added_tokens.json (read when
//            tokenizer_config.json has no added_tokens_decoder); tokenizer.json
// then the folder is loaded (from_dir) and a text with the special and added tokens encoded.
// The folders where the input is read after tokenizer.model (special_tokens_map.json,
// added_tokens.json, tokenizer.json) hold the small SentencePiece model of the seed corpus
// (corpus/sentencepiece_model/tiny_user_defined.model, 23 pieces): parsing the fixture's 1,200
// pieces for every input would make this target several times slower.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

using namespace bgevl;
namespace fz = bgevl::fuzz;

constexpr const char* kClip = "clip/tiny-fp16-quickgelu";
constexpr const char* kMistral = "llava/tiny-llava-next";
const std::string kClipText =
    "<|startoftext|>a photo of a CAT, 42 times!<|endoftext|> \xc3\xa9t\xc3\xa9";
const std::string kMistralText = "<s>[INST] <image>\nWhat is shown? </s><pad> h\xc3\xa9llo  <unk>";

struct Folders {
  fz::fs::path clip_tc, clip_sm, mis_tc, mis_sm, mis_added, mis_json;
};

const Folders& folders() {
  static const Folders* f = [] {
    auto* x = new Folders;
    x->clip_tc = fz::scratch_dir("clip_tc");
    fz::copy_fixtures(kClip, x->clip_tc, {"vocab.json", "merges.txt"});
    x->clip_sm = fz::scratch_dir("clip_sm");
    fz::copy_fixtures(kClip, x->clip_sm, {"vocab.json", "merges.txt", "tokenizer_config.json"});
    // tokenizer_config.json without added_tokens_decoder: the older layout, where
    // special_tokens_map.json and added_tokens.json are read.
    auto cfg = nlohmann::json::parse(
        fz::read_fixture(fz::fixture(std::string(kMistral) + "/tokenizer_config.json")));
    cfg.erase("added_tokens_decoder");
    const std::string old_cfg = cfg.dump(1);
    x->mis_tc = fz::scratch_dir("mistral_tc");
    fz::copy_fixtures(kMistral, x->mis_tc,
                      {"tokenizer.model", "special_tokens_map.json", "added_tokens.json"});
    const std::string small_model = fz::read_fixture(
        std::string(BGEVL_FUZZ_DIR) + "/corpus/sentencepiece_model/tiny_user_defined.model");
    x->mis_sm = fz::scratch_dir("mistral_sm");
    fz::copy_fixtures(kMistral, x->mis_sm, {"added_tokens.json"});
    fz::write_file(x->mis_sm / "tokenizer_config.json", old_cfg);
    x->mis_added = fz::scratch_dir("mistral_added");
    fz::copy_fixtures(kMistral, x->mis_added, {"special_tokens_map.json"});
    fz::write_file(x->mis_added / "tokenizer_config.json", old_cfg);
    x->mis_json = fz::scratch_dir("mistral_json");
    fz::copy_fixtures(kMistral, x->mis_json,
                      {"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"});
    for (const auto& d : {x->mis_sm, x->mis_added, x->mis_json})
      fz::write_file(d / "tokenizer.model", small_model);
    return x;
  }();
  return *f;
}

void clip_from(const fz::fs::path& dir, const char* file, std::string_view input) {
  fz::write_file(dir / file, input);
  fz::guarded([&] { fz::encode_clip(text::ClipTokenizer::from_dir(dir.string()), kClipText); });
}

void mistral_from(const fz::fs::path& dir, const char* file, std::string_view input) {
  fz::write_file(dir / file, input);
  fz::guarded([&] {
    const auto tok = text::MistralTokenizer::from_dir(dir.string());
    fz::encode_mistral(tok, kMistralText);
    fz::guarded([&] { (void)tok.added_token_id("<image>"); });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Folders& f = folders();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // One file per input, chosen by its length (every length class reaches every file; six loads
  // per input made this target six times slower than the others).
  switch (size % 6) {
    case 0:
      clip_from(f.clip_tc, "tokenizer_config.json", input);
      break;
    case 1:
      clip_from(f.clip_sm, "special_tokens_map.json", input);
      break;
    case 2:
      mistral_from(f.mis_tc, "tokenizer_config.json", input);
      break;
    case 3:
      mistral_from(f.mis_sm, "special_tokens_map.json", input);
      break;
    case 4:
      mistral_from(f.mis_added, "added_tokens.json", input);
      break;
    default:
      mistral_from(f.mis_json, "tokenizer.json", input);
      break;
  }
  return 0;
}
