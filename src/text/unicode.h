// Unicode helpers for the text tokenizers, with the semantics of Hugging Face `tokenizers` (Rust):
// Oniguruma's \s, \p{L} and \p{N}; Rust's char::to_lowercase; NFC. Backed by ICU.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bgevl::text::unicode {

// Decodes UTF-8 into code points. Returns false (and the byte offset of the first ill-formed
// sequence in *bad_offset) when `s` is not well-formed UTF-8 (overlong forms, surrogates and
// values above U+10FFFF are ill-formed, as in Rust's str).
bool decode_utf8(std::string_view s, std::u32string& out, std::size_t* bad_offset);

// Appends the UTF-8 form of one code point.
void append_utf8(std::string& out, char32_t c);

// True when every byte is below 0x80.
bool is_ascii(std::string_view s);

// NFC of well-formed UTF-8 as the reference computes it: with Unicode 9.0 data (code points
// assigned later are left alone and normalization does not cross them). ICU does the work.
std::string nfc(std::string_view s);

// Oniguruma's \s in a UTF-8 regex: the Unicode White_Space property
// (U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
// U+205F, U+3000).
inline bool is_space(char32_t c) {
  if (c < 0x80) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// General category L (Lu Ll Lt Lm Lo) and N (Nd Nl No), as Oniguruma 6.9.10 (Unicode 16.0) has
// them.
bool is_letter(char32_t c);
bool is_number(char32_t c);

// Appends Rust's char::to_lowercase(c): the full, context-free lower-case mapping (U+0130 becomes
// "i\u0307"; Σ always becomes σ, never the final ς), Unicode 17.0.
void append_lowercase(std::u32string& out, char32_t c);

}  // namespace bgevl::text::unicode
