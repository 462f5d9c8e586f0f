#include "text/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace bgevl::text::unicode {

namespace {

// ---- Unicode versions ---------------------------------------------------------------------------
// The reference (Hugging Face tokenizers 0.23.2) mixes three Unicode versions, none of them ICU
// 72's (Unicode 15.0):
//   - NFC: the unicode-normalization-alignments crate, Unicode 9.0 data. A code point unassigned in
//     9.0 is a plain starter to it: never decomposed, reordered or composed.
//   - \p{L}, \p{N}, \s: Oniguruma 6.9.10, Unicode 16.0.
//   - lower case: Rust's char::to_lowercase, Unicode 17.0 in the toolchain that built 0.23.2.
// ICU answers for code points assigned in Unicode 15.0 or earlier (the properties this tokenizer
// uses did not change for them); the tables below answer for the others. They were made by
// comparing, over every code point, the reference tokenizer (its pre-tokenizer and Lowercase
// normalizer, see --dump-unicode in tests/reference/gen_clip_tokenizer_parity.mjs) with ICU 72.

struct Range {
  char32_t lo, hi;
};

// Letters and numbers of Unicode 15.1 and 16.0 (Oniguruma 6.9.10).
constexpr Range kNewLetters[] = {
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0}, {0x13460, 0x143FA},
    {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x18CFF, 0x18CFF}, {0x1E5D0, 0x1E5ED},
    {0x1E5F0, 0x1E5F0}, {0x2EBF0, 0x2EE5D},
};
constexpr Range kNewNumbers[] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x16130, 0x16139},
    {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1E5F1, 0x1E5FA},
};

// Lower-case mappings of Unicode 16.0 and 17.0 (Rust's char::to_lowercase), sorted.
constexpr std::pair<char32_t, char32_t> kNewLower[] = {
    {0x1C89, 0x1C8A},   {0xA7CB, 0x264},    {0xA7CC, 0xA7CD},   {0xA7CE, 0xA7CF},
    {0xA7D2, 0xA7D3},   {0xA7D4, 0xA7D5},   {0xA7DA, 0xA7DB},   {0xA7DC, 0x19B},
    {0x10D50, 0x10D70}, {0x10D51, 0x10D71}, {0x10D52, 0x10D72}, {0x10D53, 0x10D73},
    {0x10D54, 0x10D74}, {0x10D55, 0x10D75}, {0x10D56, 0x10D76}, {0x10D57, 0x10D77},
    {0x10D58, 0x10D78}, {0x10D59, 0x10D79}, {0x10D5A, 0x10D7A}, {0x10D5B, 0x10D7B},
    {0x10D5C, 0x10D7C}, {0x10D5D, 0x10D7D}, {0x10D5E, 0x10D7E}, {0x10D5F, 0x10D7F},
    {0x10D60, 0x10D80}, {0x10D61, 0x10D81}, {0x10D62, 0x10D82}, {0x10D63, 0x10D83},
    {0x10D64, 0x10D84}, {0x10D65, 0x10D85}, {0x16EA0, 0x16EBB}, {0x16EA1, 0x16EBC},
    {0x16EA2, 0x16EBD}, {0x16EA3, 0x16EBE}, {0x16EA4, 0x16EBF}, {0x16EA5, 0x16EC0},
    {0x16EA6, 0x16EC1}, {0x16EA7, 0x16EC2}, {0x16EA8, 0x16EC3}, {0x16EA9, 0x16EC4},
    {0x16EAA, 0x16EC5}, {0x16EAB, 0x16EC6}, {0x16EAC, 0x16EC7}, {0x16EAD, 0x16EC8},
    {0x16EAE, 0x16EC9}, {0x16EAF, 0x16ECA}, {0x16EB0, 0x16ECB}, {0x16EB1, 0x16ECC},
    {0x16EB2, 0x16ECD}, {0x16EB3, 0x16ECE}, {0x16EB4, 0x16ECF}, {0x16EB5, 0x16ED0},
    {0x16EB6, 0x16ED1}, {0x16EB7, 0x16ED2}, {0x16EB8, 0x16ED3},
};

template <std::size_t N>
bool in_ranges(const Range (&table)[N], char32_t c) {
  const auto* it = std::upper_bound(std::begin(table), std::end(table), c,
                                    [](char32_t v, const Range& r) { return v < r.lo; });
  return it != std::begin(table) && c <= (it - 1)->hi;
}

// True when ICU's answer is not the reference's: the code point is unassigned in Unicode 15.0.
bool after_unicode_15(char32_t c) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(c), age);
  return age[0] == 0 || age[0] > 15 || (age[0] == 15 && age[1] > 0);
}

// Unassigned in Unicode 9.0, so left alone by the reference's NFC.
bool after_unicode_9(char32_t c) {
  UVersionInfo age;
  u_charAge(static_cast<UChar32>(c), age);
  return age[0] == 0 || age[0] > 9 || (age[0] == 9 && age[1] > 0);
}

// Decodes the code point at s[i] (well-formed UTF-8) and returns its length.
std::size_t next_cp(std::string_view s, std::size_t i, char32_t* c) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (p[0] < 0x80) return *c = p[0], 1;
  if (p[0] < 0xE0) return *c = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu), 2;
  if (p[0] < 0xF0) return *c = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu), 3;
  *c = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  return 4;
}

}  // namespace

bool decode_utf8(std::string_view s, std::u32string& out, std::size_t* bad_offset) {
  out.clear();
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    char32_t c = 0;
    std::size_t len = 0;
    char32_t min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      c = b0 & 0x1F, len = 2, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      c = b0 & 0x0F, len = 3, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      c = b0 & 0x07, len = 4, min = 0x10000;
    } else {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      const unsigned char b = p[i + k];
      if ((b & 0xC0) != 0x80) {
        if (bad_offset) *bad_offset = i;
        return false;
      }
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    out.push_back(c);
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool is_ascii(std::string_view s) {
  for (const char ch : s) {
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  }
  return true;
}

std::string nfc(std::string_view s) {
  // Every code point below U+0300 is NFC_Quick_Check=Yes with combining class 0, so a text
  // without a lead byte >= 0xCC (U+0300 is CC 80) is already in NFC.
  bool trivial = true;
  for (const char ch : s) {
    if (static_cast<unsigned char>(ch) >= 0xCC) {
      trivial = false;
      break;
    }
  }
  if (trivial) return std::string(s);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* norm = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw std::runtime_error("ICU NFC normalizer unavailable");
  std::string out;
  out.reserve(s.size());
  icu::StringByteSink<std::string> sink(&out);
  auto run = [&](std::size_t b, std::size_t e) {
    if (b == e) return;
    norm->normalizeUTF8(0, icu::StringPiece(s.data() + b, static_cast<int32_t>(e - b)), sink,
                        nullptr, status);
    if (U_FAILURE(status)) {
      throw std::runtime_error(std::string("ICU NFC failed: ") + u_errorName(status));
    }
  };
  // A code point the reference's Unicode 9.0 tables do not know is a starter that composes with
  // nothing: the text on either side of it is normalized on its own, and it stays as it is.
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size();) {
    char32_t c = 0;
    const std::size_t len = next_cp(s, i, &c);
    if (c >= 0x300 && after_unicode_9(c)) {
      run(start, i);
      out.append(s.data() + i, len);
      start = i + len;
    }
    i += len;
  }
  run(start, s.size());
  return out;
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  if (after_unicode_15(c)) return in_ranges(kNewLetters, c);
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0;
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  if (after_unicode_15(c)) return in_ranges(kNewNumbers, c);
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
}

void append_lowercase(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
    return;
  }
  // SpecialCasing.txt has a single unconditional multi-character lower-case mapping; the rest of
  // Rust's table is UnicodeData's simple mapping, which is ICU's u_tolower.
  if (c == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  if (after_unicode_15(c)) {
    const auto* it = std::lower_bound(
        std::begin(kNewLower), std::end(kNewLower), c,
        [](const std::pair<char32_t, char32_t>& p, char32_t v) { return p.first < v; });
    out.push_back(it != std::end(kNewLower) && it->first == c ? it->second : c);
    return;
  }
  out.push_back(static_cast<char32_t>(u_tolower(static_cast<UChar32>(c))));
}

}  // namespace bgevl::text::unicode
