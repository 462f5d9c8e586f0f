// The CLIP vocabulary loader and its BPE: the input is vocab.json, a NUL byte, merges.txt and,
// optionally, another NUL byte and a text. Both files are written to a per-process folder and
// loaded with ClipTokenizer::from_files; a tokenizer that loads then encodes a few fixed texts
// and the input's text.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

namespace fz = bgevl::fuzz;

const char* const kTexts[] = {
    "a photo of a cat",
    "Make the BACKGROUND dark!!  two green stars, 3 circles... #tag @user",
    "<|startoftext|>hello<|endoftext|>world",
    "na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 'll 's 've",
    "",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fz::fs::path dir = fz::scratch_dir("clip_vocab");
  static const std::string vocab = (dir / "vocab.json").string();
  static const std::string merges = (dir / "merges.txt").string();
  const auto parts = fz::split_nul(data, size, 3);
  if (parts.size() < 2) return 0;  // no NUL: not this target's format
  fz::write_file(vocab, parts[0]);
  fz::write_file(merges, parts[1]);
  fz::guarded([&] {
    const auto tok = bgevl::text::ClipTokenizer::from_files(vocab, merges);
    BGEVL_FUZZ_CHECK(tok.vocab_size() >= 1);
    for (const char* t : kTexts) fz::encode_clip(tok, t);
    if (parts.size() == 3) fz::encode_clip(tok, std::string(parts[2]));
  });
  return 0;
}
