// MistralTokenizer::encode (and encode_batch) on arbitrary text, where the added tokens (<image>,
// <pad>, <s>, </s>, <unk>) are split out before SentencePiece: the fixture's tiny model with
// legacy=false (tests/fixtures/llava/tiny-llava-next) and legacy=true (tiny-llava-next-legacy),
// and, when ../shared/data is there, the real Mistral tokenizer.model with BGE-VL-MLLM's added
// tokens (<image> 32000, <pad> 32001) in a per-process folder.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "tokenizer_checks.h"

namespace {

namespace fz = bgevl::fuzz;
using bgevl::text::MistralTokenizer;

const std::vector<const MistralTokenizer*>& tokenizers() {
  static const auto* v = [] {
    auto* out = new std::vector<const MistralTokenizer*>;
    for (const char* d : {"llava/tiny-llava-next", "llava/tiny-llava-next-legacy"})
      out->push_back(new MistralTokenizer(MistralTokenizer::from_dir(fz::fixture(d))));
    const std::string model = fz::shared_data("tokenizers/mistral/tokenizer.model");
    if (!model.empty()) {
      // The fixture's configs with the real checkpoint's ids of the added tokens.
      const fz::fs::path dir = fz::scratch_dir("mistral_real");
      fz::fs::copy_file(model, dir / "tokenizer.model");
      for (const char* f :
           {"tokenizer_config.json", "added_tokens.json", "special_tokens_map.json"}) {
        std::string s = fz::read_fixture(fz::fixture(std::string("llava/tiny-llava-next/") + f));
        for (const auto& [from, to] :
             {std::pair<std::string, std::string>{"1200", "32000"}, {"1201", "32001"}})
          for (size_t p; (p = s.find(from)) != std::string::npos;) s.replace(p, from.size(), to);
        fz::write_file(dir / f, s);
      }
      out->push_back(new MistralTokenizer(MistralTokenizer::from_dir(dir.string())));
    }
    return out;
  }();
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const MistralTokenizer* tok : tokenizers()) fz::encode_mistral(*tok, text);
  return 0;
}
