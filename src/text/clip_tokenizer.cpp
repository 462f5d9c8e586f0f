// CLIP tokenizer with the semantics of the tokenizer.json that transformers' CLIPConverter builds,
// as the Rust `tokenizers` library runs it:
//
//   added tokens   <|startoftext|>, <|endoftext|> (special, normalized=True): found leftmost-
//                  longest in the *normalized* text; the text between them is pre-tokenized on
//                  its own. (Tokens configured with normalized=False are found in the raw text
//                  first.)
//   normalizer     NFC, then every run of \s (Oniguruma: Unicode White_Space) becomes one " ",
//                  then each character is lower-cased on its own (Rust char::to_lowercase).
//   pre-tokenizer  Split on 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ with
//                  invert=True, behavior=Removed: the matches are the pieces, the rest (spaces) is
//                  dropped. ByteLevel(add_prefix_space=False, use_regex=True) then maps the bytes
//                  of each piece to the GPT-2 byte alphabet; its GPT-2 regex never splits a piece
//                  of the pattern above further.
//   model          BPE, end_of_word_suffix "</w>" on the last character of each piece, merges by
//                  rank with Rust's Word::merge_all (a heap ordered by rank, then position),
//                  unknown characters become unk one by one (fuse_unk=False).
//   post-processor RobertaProcessing: bos + ids + eos.
#include "text/clip_tokenizer.h"

#include <algorithm>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "bgevl/errors.h"
#include "text/clip_tokenizer_impl.h"
#include "text/unicode.h"

namespace bgevl::text {

namespace fs = std::filesystem;

namespace {

// Words cached per tokenizer (the Rust BPE caches 10,000); further words are still encoded, just
// not remembered.
constexpr std::size_t kCacheCapacity = 200000;

struct Symbol {
  int32_t c;
  int32_t prev;
  int32_t next;
  int32_t len;
};

struct MergeEntry {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};

// std::priority_queue is a max-heap: "less" means popped later. Rust's Merge::cmp pops the lowest
// rank first and, on equal ranks, the lowest position.
struct MergeLater {
  bool operator()(const MergeEntry& a, const MergeEntry& b) const {
    if (a.rank != b.rank) return a.rank > b.rank;
    return a.pos > b.pos;
  }
};

}  // namespace

// ---- normalizer --------------------------------------------------------------------------------
// NFC, \s+ -> " ", lowercase. `s` is well-formed UTF-8.
void ClipTokenizer::Impl::normalize(std::string_view s, std::u32string& out) {
  out.clear();
  if (unicode::is_ascii(s)) {
    out.reserve(s.size());
    bool in_space = false;
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (unicode::is_space(c)) {
        if (!in_space) out.push_back(U' ');
        in_space = true;
      } else {
        in_space = false;
        out.push_back(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
      }
    }
    return;
  }
  const std::string composed = unicode::nfc(s);
  std::u32string cps;
  unicode::decode_utf8(composed, cps, nullptr);
  out.reserve(cps.size());
  bool in_space = false;
  for (const char32_t c : cps) {
    if (unicode::is_space(c)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
    } else {
      in_space = false;
      unicode::append_lowercase(out, c);
    }
  }
}

// ---- added tokens ------------------------------------------------------------------------------
// Leftmost-longest matches of `tokens` in `text`; calls emit(begin, end, id) for every piece,
// id -1 for the text between matches. Empty pieces are not emitted.
template <typename Str, typename Emit>
void ClipTokenizer::Impl::split_added(const Str& text, const std::vector<AddedToken>& tokens,
                                      Emit&& emit) {
  std::size_t start = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    std::size_t best_len = 0;
    int32_t best_id = -1;
    for (const AddedToken& t : tokens) {
      const std::size_t m = t.content.size();
      if (m > best_len && m <= n - i && static_cast<char32_t>(text[i]) == t.content[0]) {
        bool eq = true;
        for (std::size_t k = 1; k < m; ++k) {
          if (static_cast<char32_t>(text[i + k]) != t.content[k]) {
            eq = false;
            break;
          }
        }
        if (eq) best_len = m, best_id = t.id;
      }
    }
    if (best_len == 0) {
      ++i;
      continue;
    }
    if (start < i) emit(start, i, -1);
    emit(i, i + best_len, best_id);
    i += best_len;
    start = i;
  }
  if (start < n) emit(start, n, -1);
}

// ---- pre-tokenizer -----------------------------------------------------------------------------
// Calls piece(begin, end) for each match of
// 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (leftmost-first alternation).
template <typename Piece>
void ClipTokenizer::Impl::split_words(const std::u32string& s, Piece&& piece) {
  enum Cls : uint8_t { kSpace, kLetter, kNumber, kOther };
  auto cls = [](char32_t c) -> Cls {
    if (unicode::is_space(c)) return kSpace;
    if (unicode::is_letter(c)) return kLetter;
    if (unicode::is_number(c)) return kNumber;
    return kOther;
  };
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const char32_t c = s[i];
    if (c == U'\'' && i + 1 < n) {
      const char32_t c1 = s[i + 1];
      const char32_t c2 = i + 2 < n ? s[i + 2] : 0;
      std::size_t len = 0;
      if (c1 == U's' || c1 == U't' || c1 == U'm' || c1 == U'd') {
        len = 2;
      } else if ((c1 == U'r' || c1 == U'v') && c2 == U'e') {
        len = 3;
      } else if (c1 == U'l' && c2 == U'l') {
        len = 3;
      }
      if (len) {
        piece(i, i + len);
        i += len;
        continue;
      }
    }
    const Cls k = cls(c);
    if (k == kSpace) {
      ++i;
    } else if (k == kNumber) {
      piece(i, i + 1);
      ++i;
    } else {
      std::size_t j = i + 1;
      while (j < n && cls(s[j]) == k) ++j;
      piece(i, j);
      i = j;
    }
  }
}

// ---- BPE model ---------------------------------------------------------------------------------
// Rust's BPE::merge_word + Word::merge_all on the bytes of one piece.
void ClipTokenizer::Impl::bpe(std::string_view bytes, std::vector<int32_t>& out) const {
  const std::size_t n = bytes.size();
  std::vector<Symbol> sym(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    int32_t id = (i + 1 == n) ? byte_eow_id[b] : byte_id[b];
    if (id < 0) {
      BGEVL_CHECK_ARG(unk_id >= 0, "CLIP tokenizer: byte 0x", std::hex, static_cast<int>(b),
                      std::dec, (i + 1 == n ? " (end of word)" : ""),
                      " has no token in vocab.json and the unknown token '", unk_token,
                      "' is not in it either");
      id = unk_id;
    }
    sym[i] = {id, static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1, 1};
  }
  std::priority_queue<MergeEntry, std::vector<MergeEntry>, MergeLater> queue;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = merges.find(sym[i].c, sym[i + 1].c)) {
      queue.push({m->first, static_cast<int32_t>(i), m->second});
    }
  }
  while (!queue.empty()) {
    const MergeEntry top = queue.top();
    queue.pop();
    Symbol& cur = sym[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const Symbol right = sym[cur.next];
    const auto* m = merges.find(cur.c, right.c);
    if (m == nullptr || m->second != top.new_id) continue;  // an expired entry
    cur.c = top.new_id;
    cur.len += right.len;
    sym[cur.next].len = 0;
    cur.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const auto* pm = merges.find(sym[cur.prev].c, cur.c)) {
        queue.push({pm->first, cur.prev, pm->second});
      }
    }
    if (cur.next >= 0) {
      if (const auto* nm = merges.find(cur.c, sym[cur.next].c)) {
        queue.push({nm->first, top.pos, nm->second});
      }
    }
  }
  for (const Symbol& s : sym) {
    if (s.len != 0) out.push_back(s.c);
  }
}

void ClipTokenizer::Impl::encode_word(const std::string& bytes, std::vector<int64_t>& out) const {
  {
    std::shared_lock lock(cache_mutex);
    const auto it = cache.find(bytes);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  bpe(bytes, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::unique_lock lock(cache_mutex);
  if (cache.size() < kCacheCapacity) cache.emplace(bytes, std::move(ids));
}

void ClipTokenizer::Impl::encode_normalized(const std::u32string& text,
                                            std::vector<int64_t>& out) const {
  std::string word;
  split_added(text, normalized_tokens, [&](std::size_t b, std::size_t e, int32_t id) {
    if (id >= 0) {
      out.push_back(id);
      return;
    }
    const std::u32string seg = text.substr(b, e - b);
    split_words(seg, [&](std::size_t pb, std::size_t pe) {
      word.clear();
      for (std::size_t k = pb; k < pe; ++k) unicode::append_utf8(word, seg[k]);
      encode_word(word, out);
    });
  });
}

std::vector<int64_t> ClipTokenizer::Impl::encode(std::string_view text, std::size_t index,
                                                 bool batch) const {
  std::size_t bad = 0;
  std::u32string raw;
  if (!unicode::decode_utf8(text, raw, &bad)) {
    if (batch) {
      throw InvalidArgumentError(detail::concat("CLIP tokenizer: text ", index,
                                                " is not valid UTF-8 (byte offset ", bad, ")"));
    }
    throw InvalidArgumentError(
        detail::concat("CLIP tokenizer: the text is not valid UTF-8 (byte offset ", bad, ")"));
  }
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 3);
  out.push_back(bos);
  std::u32string normalized;
  if (raw_tokens.empty()) {
    normalize(text, normalized);
    encode_normalized(normalized, out);
  } else {
    split_added(raw, raw_tokens, [&](std::size_t b, std::size_t e, int32_t id) {
      if (id >= 0) {
        out.push_back(id);
        return;
      }
      std::string seg;
      for (std::size_t k = b; k < e; ++k) unicode::append_utf8(seg, raw[k]);
      normalize(seg, normalized);
      encode_normalized(normalized, out);
    });
  }
  out.push_back(eos);
  return out;
}

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir) {
  std::error_code ec;
  BGEVL_CHECK(fs::is_directory(dir, ec), FileNotFoundError, "CLIP tokenizer: model folder '", dir,
              "' does not exist or is not a folder");
  const fs::path d(dir);
  const SpecialConfig cfg = read_special_config(d);
  return ClipTokenizer(Impl::build(d / "vocab.json", d / "merges.txt", cfg));
}

ClipTokenizer ClipTokenizer::from_files(const std::string& vocab_json,
                                        const std::string& merges_txt) {
  return ClipTokenizer(Impl::build(vocab_json, merges_txt, SpecialConfig{}));
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  return impl_->encode(text, 0, false);
}

TokenBatch ClipTokenizer::encode_batch(const std::vector<std::string>& texts, bool truncate,
                                       int64_t max_length) const {
  BGEVL_CHECK_ARG(!texts.empty(), "CLIP tokenizer: encode_batch needs at least one text, got none");
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    rows.push_back(impl_->encode(texts[i], i, true));
    fit(rows.back(), max_length, truncate, "text " + std::to_string(i));
  }
  return pad_rows(rows, impl_->pad, PadSide::Right);
}

void ClipTokenizer::fit(std::vector<int64_t>& ids, int64_t max_length, bool truncate,
                        const std::string& what) const {
  BGEVL_CHECK_ARG(max_length >= 2,
                  "CLIP tokenizer: max_length must be at least 2 (room for the "
                  "begin and end tokens), got ",
                  max_length);
  if (static_cast<int64_t>(ids.size()) <= max_length) return;
  BGEVL_CHECK_ARG(truncate, what, " has ", ids.size(),
                  " tokens (with the begin and end tokens), more than the model's ", max_length,
                  " positions; shorten it, or pass truncate (Python truncate=True, CLI --truncate) "
                  "to cut it to ",
                  max_length, " tokens keeping the end token");
  ids.resize(static_cast<std::size_t>(max_length));
  ids.back() = impl_->eos;
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
int64_t ClipTokenizer::vocab_size() const { return impl_->vocab_entries; }

int64_t ClipTokenizer::max_id() const {
  int64_t m = std::max({impl_->bos, impl_->eos, impl_->pad, impl_->unk_id});
  for (const auto& [piece, id] : impl_->vocab) m = std::max<int64_t>(m, id);
  for (const auto* list : {&impl_->raw_tokens, &impl_->normalized_tokens})
    for (const auto& t : *list) m = std::max<int64_t>(m, t.id);
  return m;
}

}  // namespace bgevl::text
