// The invariants of a tokenizer's output, shared by the tokenizer fuzz targets: every id in
// [0, max_id()], CLIP's rows framed by its begin and end tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "text/clip_tokenizer.h"
#include "text/mistral_tokenizer.h"

namespace bgevl::fuzz {

inline void check_ids(const std::vector<int64_t>& ids, int64_t max_id) {
  for (const int64_t id : ids) BGEVL_FUZZ_CHECK(id >= 0 && id <= max_id);
}

// encode(text) (a bgevl::Error is a refusal), its invariants, and the batch and fit paths.
inline void encode_clip(const text::ClipTokenizer& tok, const std::string& text) {
  guarded([&] {
    const auto ids = tok.encode(text);
    BGEVL_FUZZ_CHECK(ids.size() >= 2);
    BGEVL_FUZZ_CHECK(ids.front() == tok.bos_id() && ids.back() == tok.eos_id());
    check_ids(ids, tok.max_id());
    auto cut = ids;
    tok.fit(cut, 8, /*truncate=*/true, "fuzz text");
    BGEVL_FUZZ_CHECK(cut.size() <= 8 && cut.back() == tok.eos_id());
    const auto batch = tok.encode_batch({text, "a"}, /*truncate=*/true, 77);
    (void)batch;
  });
}

inline void encode_mistral(const text::MistralTokenizer& tok, const std::string& text) {
  guarded([&] {
    const auto ids = tok.encode(text);
    check_ids(ids, tok.max_id());
    guarded([&] { (void)tok.encode_batch({text, "a"}); });  // needs a pad token
  });
}

}  // namespace bgevl::fuzz
