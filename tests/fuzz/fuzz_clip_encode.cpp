// ClipTokenizer::encode (and fit, encode_batch) on arbitrary text, with the fixture's tiny
// vocabulary (tests/fixtures/clip/tiny-fp16-quickgelu, from_dir: its special tokens included) and,
// when ../shared/data is there, the real CLIP vocabulary (49,408 entries).
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

namespace fz = bgevl::fuzz;
using bgevl::text::ClipTokenizer;

const ClipTokenizer& tiny() {
  static const auto* t =
      new ClipTokenizer(ClipTokenizer::from_dir(fz::fixture("clip/tiny-fp16-quickgelu")));
  return *t;
}

const ClipTokenizer* real() {
  static const ClipTokenizer* t = []() -> const ClipTokenizer* {
    const std::string v = fz::shared_data("tokenizers/clip/vocab.json");
    const std::string m = fz::shared_data("tokenizers/clip/merges.txt");
    if (v.empty() || m.empty()) return nullptr;
    return new ClipTokenizer(ClipTokenizer::from_files(v, m));
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fz::encode_clip(tiny(), text);
  if (const ClipTokenizer* r = real()) fz::encode_clip(*r, text);
  return 0;
}
