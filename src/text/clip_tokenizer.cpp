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
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "bgevl/errors.h"
#include "text/unicode.h"

namespace bgevl::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kDefaultBos = "<|startoftext|>";
constexpr const char* kDefaultEos = "<|endoftext|>";
constexpr const char* kEndOfWord = "</w>";
// The slow CLIPTokenizer reads merges.txt as
// `read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]`: the first line (the "#version" header)
// is always skipped and at most 48,894 merges are kept. CLIPConverter takes its merges from there.
constexpr std::size_t kMaxMerges = 49152 - 256 - 2;
// Words cached per tokenizer (the Rust BPE caches 10,000); further words are still encoded, just
// not remembered.
constexpr std::size_t kCacheCapacity = 200000;

std::string read_file(const fs::path& p, const char* what) {
  std::error_code ec;
  BGEVL_CHECK(fs::is_regular_file(p, ec), FileNotFoundError, "CLIP tokenizer: ", what, " '",
              p.string(), "' does not exist or is not a file");
  std::ifstream in(p, std::ios::binary);
  BGEVL_CHECK(in.good(), FileNotFoundError, "CLIP tokenizer: cannot open ", what, " '", p.string(),
              "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const fs::path& p) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidArgumentError(
        detail::concat("CLIP tokenizer: '", p.string(), "' is not valid JSON: ", e.what()));
  }
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to U+0100+n.
std::array<std::string, 256> byte_alphabet() {
  std::array<std::string, 256> out;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t c = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    unicode::append_utf8(out[b], c);
  }
  return out;
}

// Python's str.split() whitespace, as far as ASCII and Latin-1 go.
bool py_space(unsigned char c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
}

struct AddedToken {
  std::u32string content;  // the pattern (for normalized tokens: the normalized content)
  int32_t id = -1;
  bool normalized = true;
};

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

// Open-addressing map from a pair of ids to (rank, new id).
class MergeMap {
 public:
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, {0, 0});
    mask_ = cap - 1;
  }
  // Inserts unless present; returns false when the pair was already there.
  bool insert(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    const uint64_t key = pack(a, b);
    std::size_t i = hash(key) & mask_;
    while (keys_[i] != kEmpty) {
      if (keys_[i] == key) return false;
      i = (i + 1) & mask_;
    }
    keys_[i] = key;
    vals_[i] = {rank, new_id};
    return true;
  }
  const std::pair<int32_t, int32_t>* find(int32_t a, int32_t b) const {
    const uint64_t key = pack(a, b);
    std::size_t i = hash(key) & mask_;
    while (keys_[i] != kEmpty) {
      if (keys_[i] == key) return &vals_[i];
      i = (i + 1) & mask_;
    }
    return nullptr;
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static std::size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<std::pair<int32_t, int32_t>> vals_;
  std::size_t mask_ = 0;
};

// What the optional tokenizer_config.json / special_tokens_map.json say.
struct SpecialConfig {
  std::string bos = kDefaultBos;
  std::string eos = kDefaultEos;
  std::string unk = kDefaultEos;
  std::string pad = kDefaultEos;
  // content -> (normalized flag if stated, id if stated)
  std::vector<std::pair<std::string, std::pair<std::optional<bool>, std::optional<int64_t>>>>
      tokens;
};

}  // namespace

struct ClipTokenizer::Impl {
  std::unordered_map<std::string, int32_t> vocab;
  int64_t vocab_entries = 0;
  MergeMap merges;
  std::array<int32_t, 256> byte_id{};      // id of the byte's character, -1 if absent
  std::array<int32_t, 256> byte_eow_id{};  // id of the byte's character + "</w>", -1 if absent
  int32_t unk_id = -1;
  std::string unk_token;
  int32_t bos = -1, eos = -1, pad = -1;
  std::vector<AddedToken> raw_tokens;         // normalized=False: matched in the raw text
  std::vector<AddedToken> normalized_tokens;  // normalized=True: matched in the normalized text

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // ---- normalizer ------------------------------------------------------------------------------
  // NFC, \s+ -> " ", lowercase. `s` is well-formed UTF-8.
  static void normalize(std::string_view s, std::u32string& out) {
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

  // ---- added tokens ----------------------------------------------------------------------------
  // Leftmost-longest matches of `tokens` in `text`; calls emit(begin, end, id) for every piece,
  // id -1 for the text between matches. Empty pieces are not emitted.
  template <typename Str, typename Emit>
  static void split_added(const Str& text, const std::vector<AddedToken>& tokens, Emit&& emit) {
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

  // ---- pre-tokenizer ---------------------------------------------------------------------------
  // Calls piece(begin, end) for each match of
  // 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (leftmost-first alternation).
  template <typename Piece>
  static void split_words(const std::u32string& s, Piece&& piece) {
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

  // ---- BPE model -------------------------------------------------------------------------------
  // Rust's BPE::merge_word + Word::merge_all on the bytes of one piece.
  void bpe(std::string_view bytes, std::vector<int32_t>& out) const {
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

  void encode_word(const std::string& bytes, std::vector<int64_t>& out) const {
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

  void encode_normalized(const std::u32string& text, std::vector<int64_t>& out) const {
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

  std::vector<int64_t> encode(std::string_view text, std::size_t index, bool batch) const {
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

  static std::unique_ptr<Impl> build(const fs::path& vocab_path, const fs::path& merges_path,
                                     const SpecialConfig& cfg);
};

namespace {

// Reads a token role from tokenizer_config.json / special_tokens_map.json: a string, or an
// AddedToken dict with "content".
void read_role(
    const json& j, const char* key, std::string& value,
    std::vector<std::pair<std::string, std::pair<std::optional<bool>, std::optional<int64_t>>>>&
        tokens,
    const fs::path& p) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  if (v.is_string()) {
    value = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    value = v["content"].get<std::string>();
    if (v.contains("normalized") && v["normalized"].is_boolean()) {
      tokens.push_back({value, {v["normalized"].get<bool>(), std::nullopt}});
    }
  } else {
    throw InvalidArgumentError(detail::concat("CLIP tokenizer: '", p.string(), "': \"", key,
                                              "\" must be a string or an object with \"content\""));
  }
}

SpecialConfig read_special_config(const fs::path& dir) {
  SpecialConfig cfg;
  std::error_code ec;
  const fs::path tc = dir / "tokenizer_config.json";
  std::vector<std::pair<std::string, std::pair<std::optional<bool>, std::optional<int64_t>>>>
      from_map;
  if (fs::is_regular_file(tc, ec)) {
    const json j = parse_json(read_file(tc, "tokenizer config"), tc);
    read_role(j, "bos_token", cfg.bos, cfg.tokens, tc);
    read_role(j, "eos_token", cfg.eos, cfg.tokens, tc);
    read_role(j, "unk_token", cfg.unk, cfg.tokens, tc);
    read_role(j, "pad_token", cfg.pad, cfg.tokens, tc);
    if (j.is_object() && j.contains("added_tokens_decoder") &&
        j["added_tokens_decoder"].is_object()) {
      for (const auto& [key, v] : j["added_tokens_decoder"].items()) {
        BGEVL_CHECK_ARG(v.is_object() && v.contains("content") && v["content"].is_string(),
                        "CLIP tokenizer: '", tc.string(), "': added_tokens_decoder[\"", key,
                        "\"] has no string \"content\"");
        int64_t id = -1;
        try {
          std::size_t used = 0;
          id = std::stoll(key, &used);
          if (used != key.size()) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        BGEVL_CHECK_ARG(id >= 0 && id <= std::numeric_limits<int32_t>::max(), "CLIP tokenizer: '",
                        tc.string(), "': added_tokens_decoder key \"", key, "\" is not a token id");
        const std::string content = v["content"].get<std::string>();
        for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
          BGEVL_CHECK_ARG(!(v.contains(flag) && v[flag].is_boolean() && v[flag].get<bool>()),
                          "CLIP tokenizer: '", tc.string(), "': added token '", content, "' sets ",
                          flag, "=true, which is not supported");
        }
        std::optional<bool> normalized;
        if (v.contains("normalized") && v["normalized"].is_boolean())
          normalized = v["normalized"].get<bool>();
        cfg.tokens.push_back({content, {normalized, id}});
      }
    }
  }
  // special_tokens_map.json overrides tokenizer_config.json (transformers' from_pretrained order).
  const fs::path sm = dir / "special_tokens_map.json";
  if (fs::is_regular_file(sm, ec)) {
    const json j = parse_json(read_file(sm, "special tokens map"), sm);
    read_role(j, "bos_token", cfg.bos, from_map, sm);
    read_role(j, "eos_token", cfg.eos, from_map, sm);
    read_role(j, "unk_token", cfg.unk, from_map, sm);
    read_role(j, "pad_token", cfg.pad, from_map, sm);
  }
  // Flags from added_tokens_decoder win over the ones in the role dicts: put them last.
  from_map.insert(from_map.end(), cfg.tokens.begin(), cfg.tokens.end());
  cfg.tokens = std::move(from_map);
  return cfg;
}

}  // namespace

std::unique_ptr<ClipTokenizer::Impl> ClipTokenizer::Impl::build(const fs::path& vocab_path,
                                                                const fs::path& merges_path,
                                                                const SpecialConfig& cfg) {
  auto impl = std::make_unique<Impl>();

  // vocab.json
  const json vj = parse_json(read_file(vocab_path, "vocabulary file"), vocab_path);
  BGEVL_CHECK_ARG(vj.is_object(), "CLIP tokenizer: '", vocab_path.string(),
                  "' must be a JSON object mapping tokens to ids, got ", vj.type_name());
  impl->vocab.reserve(vj.size() * 2);
  for (const auto& [token, v] : vj.items()) {
    BGEVL_CHECK_ARG(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                        v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                    "CLIP tokenizer: '", vocab_path.string(), "': the id of token '", token,
                    "' must be a non-negative integer below 2^31, got ", v.dump());
    impl->vocab[token] = static_cast<int32_t>(v.get<int64_t>());
  }
  BGEVL_CHECK_ARG(!impl->vocab.empty(), "CLIP tokenizer: '", vocab_path.string(), "' is empty");
  impl->vocab_entries = static_cast<int64_t>(impl->vocab.size());

  const auto alphabet = byte_alphabet();
  for (int b = 0; b < 256; ++b) {
    const auto it = impl->vocab.find(alphabet[b]);
    impl->byte_id[b] = it == impl->vocab.end() ? -1 : it->second;
    const auto it2 = impl->vocab.find(alphabet[b] + kEndOfWord);
    impl->byte_eow_id[b] = it2 == impl->vocab.end() ? -1 : it2->second;
  }

  // merges.txt
  std::string text = read_file(merges_path, "merges file");
  {
    std::size_t bad = 0;
    std::u32string tmp;
    BGEVL_CHECK_ARG(unicode::decode_utf8(text, tmp, &bad), "CLIP tokenizer: '",
                    merges_path.string(), "' is not valid UTF-8 (byte offset ", bad, ")");
  }
  // Python text mode turns \r\n and \r into \n.
  std::string lines_text;
  lines_text.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      lines_text.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      lines_text.push_back(text[i]);
    }
  }
  std::size_t b = 0, e = lines_text.size();
  while (b < e && py_space(static_cast<unsigned char>(lines_text[b]))) ++b;
  while (e > b && py_space(static_cast<unsigned char>(lines_text[e - 1]))) --e;
  const std::string_view body(lines_text.data() + b, e - b);
  impl->merges.reserve(std::min<std::size_t>(kMaxMerges, body.size() / 4 + 1));
  std::size_t line_no = 0;  // 0-based index into body lines; line 0 is the header
  std::size_t pos = 0;
  int32_t rank = 0;
  while (pos <= body.size() && !body.empty()) {
    std::size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    const std::string_view line = body.substr(pos, nl - pos);
    if (line_no >= 1) {
      if (line_no > kMaxMerges) break;
      std::vector<std::string_view> parts;
      std::size_t k = 0;
      while (k < line.size()) {
        while (k < line.size() && py_space(static_cast<unsigned char>(line[k]))) ++k;
        const std::size_t start = k;
        while (k < line.size() && !py_space(static_cast<unsigned char>(line[k]))) ++k;
        if (k > start) parts.push_back(line.substr(start, k - start));
      }
      // The line number in the file, 1-based, assuming no leading blank lines.
      BGEVL_CHECK_ARG(parts.size() == 2, "CLIP tokenizer: '", merges_path.string(), "' line ",
                      line_no + 1, ": expected two tokens separated by a space, got '",
                      std::string(line), "'");
      const auto ia = impl->vocab.find(std::string(parts[0]));
      const auto ib = impl->vocab.find(std::string(parts[1]));
      const std::string merged = std::string(parts[0]) + std::string(parts[1]);
      const auto im = impl->vocab.find(merged);
      BGEVL_CHECK_ARG(ia != impl->vocab.end() && ib != impl->vocab.end() && im != impl->vocab.end(),
                      "CLIP tokenizer: '", merges_path.string(), "' line ", line_no + 1,
                      ": merge '", std::string(line), "' uses a token that is not in vocab.json ('",
                      ia == impl->vocab.end()   ? std::string(parts[0])
                      : ib == impl->vocab.end() ? std::string(parts[1])
                                                : merged,
                      "')");
      // A repeated pair keeps its first rank (bpe_ranks is a dict; the converter lists its keys).
      if (impl->merges.insert(ia->second, ib->second, rank, im->second)) ++rank;
    }
    ++line_no;
    pos = nl + 1;
    if (nl == body.size()) break;
  }

  // Special and added tokens.
  auto lookup = [&](const std::string& content) -> int32_t {
    const auto it = impl->vocab.find(content);
    if (it != impl->vocab.end()) return it->second;
    for (const auto& t : cfg.tokens) {
      if (t.first == content && t.second.second) return static_cast<int32_t>(*t.second.second);
    }
    return -1;
  };
  auto role_id = [&](const std::string& content, const char* role) {
    const int32_t id = lookup(content);
    BGEVL_CHECK_ARG(id >= 0, "CLIP tokenizer: the ", role, " token '", content, "' is not in '",
                    vocab_path.string(), "'");
    return id;
  };
  impl->bos = role_id(cfg.bos, "begin");
  impl->eos = role_id(cfg.eos, "end");
  impl->pad = role_id(cfg.pad, "padding");
  impl->unk_token = cfg.unk;
  impl->unk_id = lookup(cfg.unk);

  std::vector<std::string> contents{cfg.bos, cfg.eos, cfg.unk, cfg.pad};
  for (const auto& t : cfg.tokens) contents.push_back(t.first);
  std::vector<std::string> done;
  for (const std::string& content : contents) {
    if (content.empty() || std::find(done.begin(), done.end(), content) != done.end()) continue;
    done.push_back(content);
    const int32_t id = lookup(content);
    if (id < 0) continue;
    bool normalized = true;  // CLIPTokenizer's AddedToken default
    for (const auto& t : cfg.tokens) {
      if (t.first == content && t.second.first) normalized = *t.second.first;
    }
    AddedToken tok;
    tok.id = id;
    tok.normalized = normalized;
    std::size_t bad = 0;
    std::u32string cps;
    BGEVL_CHECK_ARG(unicode::decode_utf8(content, cps, &bad), "CLIP tokenizer: token '", content,
                    "' is not valid UTF-8");
    if (normalized) {
      normalize(content, tok.content);
      if (tok.content.empty()) continue;
      impl->normalized_tokens.push_back(std::move(tok));
    } else {
      tok.content = std::move(cps);
      impl->raw_tokens.push_back(std::move(tok));
    }
  }
  return impl;
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
  BGEVL_CHECK_ARG(max_length >= 2,
                  "CLIP tokenizer: max_length must be at least 2 (room for the "
                  "begin and end tokens), got ",
                  max_length);
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  std::size_t longest = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids = impl_->encode(texts[i], i, true);
    if (static_cast<int64_t>(ids.size()) > max_length) {
      BGEVL_CHECK_ARG(truncate, "CLIP tokenizer: text ", i, " has ", ids.size(),
                      " tokens (with the begin and end tokens), more than max_length ", max_length,
                      "; shorten it or pass truncate=true to cut it to ", max_length,
                      " tokens (keeping the end token)");
      ids.resize(static_cast<std::size_t>(max_length));
      ids.back() = impl_->eos;
    }
    longest = std::max(longest, ids.size());
    rows.push_back(std::move(ids));
  }
  TokenBatch batch;
  batch.rows = static_cast<int64_t>(rows.size());
  batch.length = static_cast<int64_t>(longest);
  batch.input_ids.assign(rows.size() * longest, impl_->pad);
  batch.attention_mask.assign(rows.size() * longest, 0);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::copy(rows[r].begin(), rows[r].end(), batch.input_ids.begin() + r * longest);
    std::fill_n(batch.attention_mask.begin() + r * longest, rows[r].size(), 1);
  }
  return batch;
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
int64_t ClipTokenizer::vocab_size() const { return impl_->vocab_entries; }

}  // namespace bgevl::text
