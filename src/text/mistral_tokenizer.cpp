// Mistral tokenizer of BGE-VL-MLLM with the semantics of transformers 4.45.2's slow
// LlamaTokenizer (models/llama/tokenization_llama.py + tokenization_utils.py), SentencePiece
// 0.1.97's BPE encoder (re-implemented below, see "SentencePiece") doing the subword work:
//
//   1. legacy=False only: every "▁" in the text becomes " ", and "▁" is put in front of the text
//      when add_prefix_space (default true; null in tokenizer_config.json counts as false, as in
//      Python). Empty texts are left alone.
//   2. The text is cut around the added tokens (<unk> <s> </s> <image> <pad> and any other) with
//      transformers' Trie.split (ported as is, on UTF-8 bytes), then lstrip/rstrip/single_word of
//      each matched added token are applied to its neighbours as PreTrainedTokenizer.tokenize does
//      (Python str.strip whitespace).
//   3. Each other piece goes through SentencePiece:
//        legacy=True:  the model as shipped (dummy prefix "▁" added in front of every piece);
//        legacy=False: the model with normalizer_spec.add_dummy_prefix=false; a piece that starts
//                      with "▁" or " " is encoded as unk_token + piece and the first
//                      len(encode(unk_token)) pieces are dropped (the "<unk>" trick).
//   4. legacy=False: a leading lone "▁" followed by a special token (bos/eos/unk/sep/pad/cls/mask
//      and additional_special_tokens; <image> is not one of them unless the config says so) is
//      dropped.
//   5. Pieces become ids (added tokens first, then the SentencePiece vocabulary), BOS in front when
//      add_bos_token (default true), EOS at the end when add_eos_token (default false).
// Batches are padded on the left with the pad token, with an attention mask.
//
// The fast tokenizer (tokenizer.json, Rust `tokenizers`) gives the same ids for legacy=True; for
// legacy=False it differs only at the very start of a text (leading spaces or "▁", an added token
// first), never for BGE-VL-MLLM's prompts, which all start with "[INST]"
// (tests/fixtures/tokenizer/mistral_parity.json records both).
//
// Files read from the model folder (as LlamaTokenizer.from_pretrained reads them):
//   tokenizer.model          required;
//   tokenizer_config.json    legacy, add_bos_token, add_eos_token, add_prefix_space, special
//                            tokens, additional_special_tokens, added_tokens_decoder;
//   special_tokens_map.json, added_tokens.json
//                            only when tokenizer_config.json has no added_tokens_decoder (the
//                            older format; transformers ignores them otherwise).
#include "text/mistral_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "bgevl/errors.h"
#include "text/unicode.h"

namespace bgevl::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kUnderline = "\xE2\x96\x81";  // U+2581 "▁" (SPIECE_UNDERLINE)

std::string read_file(const fs::path& p, const char* what) {
  std::error_code ec;
  BGEVL_CHECK(fs::is_regular_file(p, ec), FileNotFoundError, "Mistral tokenizer: ", what, " '",
              p.string(), "' does not exist or is not a file");
  std::ifstream in(p, std::ios::binary);
  BGEVL_CHECK(in.good(), FileNotFoundError, "Mistral tokenizer: cannot open ", what, " '",
              p.string(), "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The JSON object in `p`, or nullopt when the file does not exist.
std::optional<json> read_json_object(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  const std::string text = read_file(p, "file");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidArgumentError(
        detail::concat("Mistral tokenizer: '", p.string(), "' is not valid JSON: ", e.what()));
  }
  BGEVL_CHECK_ARG(j.is_object(), "Mistral tokenizer: '", p.string(),
                  "' must hold a JSON object, got ", j.type_name());
  return j;
}

// Python's str.isspace(): Unicode White_Space plus U+001C..U+001F (bidi classes B and S).
bool py_isspace(char32_t c) { return unicode::is_space(c) || (c >= 0x1C && c <= 0x1F); }

// Length in bytes of the UTF-8 sequence that starts with `lead` (the text is well-formed).
std::size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  return 4;
}

char32_t decode_at(const std::string& s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

// str.lstrip() / str.rstrip() of well-formed UTF-8.
std::string py_lstrip(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t n = utf8_len(static_cast<unsigned char>(s[i]));
    if (!py_isspace(decode_at(s, i, n))) break;
    i += n;
  }
  return s.substr(i);
}

std::string py_rstrip(const std::string& s) {
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!py_isspace(decode_at(s, start, end - start))) break;
    end = start;
  }
  return s.substr(0, end);
}

// transformers' tokenization_utils.Trie, on UTF-8 bytes. Every token is well-formed UTF-8, so a
// match always starts and ends on character boundaries and the byte-wise walk cuts exactly where
// the character-wise one does.
class Trie {
 public:
  void add(const std::string& word) {
    if (word.empty()) return;
    int node = 0;
    for (unsigned char c : word) {
      auto it = nodes_[node].next.find(c);
      if (it == nodes_[node].next.end()) {
        nodes_.push_back(Node{});
        const int child = static_cast<int>(nodes_.size()) - 1;
        nodes_[node].next.emplace(c, child);
        node = child;
      } else {
        node = it->second;
      }
    }
    nodes_[node].terminal = true;
  }

  std::vector<std::string> split(const std::string& text) const {
    // states: (start, node) in insertion order (Python's OrderedDict).
    std::vector<std::pair<std::size_t, int>> states;
    std::vector<std::size_t> offsets{0};
    std::size_t skip = 0;
    const std::size_t n = text.size();
    for (std::size_t current = 0; current < n; ++current) {
      const unsigned char current_char = static_cast<unsigned char>(text[current]);
      if (skip && current < skip) continue;
      std::vector<std::size_t> to_remove;
      bool reset = false;
      for (std::size_t si = 0; si < states.size(); ++si) {
        std::size_t start = states[si].first;
        const int trie_pointer = states[si].second;
        if (nodes_[trie_pointer].terminal) {
          std::size_t end = 0;
          for (const auto& [lookstart, lookptr0] : states) {
            int looktrie_pointer = lookptr0;
            std::size_t lookahead_index;
            if (lookstart > start) {
              break;
            } else if (lookstart < start) {
              lookahead_index = current + 1;
              end = current + 1;
            } else {
              lookahead_index = current;
              end = current;
            }
            int next_char =
                lookahead_index < n ? static_cast<unsigned char>(text[lookahead_index]) : -1;
            if (nodes_[looktrie_pointer].terminal) {
              start = lookstart;
              end = lookahead_index;
              skip = lookahead_index;
            }
            while (next_char >= 0) {
              const int child = child_of(looktrie_pointer, static_cast<unsigned char>(next_char));
              if (child < 0) break;
              looktrie_pointer = child;
              lookahead_index += 1;
              if (nodes_[looktrie_pointer].terminal) {
                start = lookstart;
                end = lookahead_index;
                skip = lookahead_index;
              }
              if (lookahead_index == n) break;
              next_char = static_cast<unsigned char>(text[lookahead_index]);
            }
          }
          offsets.push_back(start);
          offsets.push_back(end);
          reset = true;
          break;
        }
        const int child = child_of(trie_pointer, current_char);
        if (child >= 0) {
          states[si].second = child;
        } else {
          to_remove.push_back(start);
        }
      }
      if (reset) {
        states.clear();
      } else if (!to_remove.empty()) {
        states.erase(std::remove_if(states.begin(), states.end(),
                                    [&](const std::pair<std::size_t, int>& s) {
                                      return std::find(to_remove.begin(), to_remove.end(),
                                                       s.first) != to_remove.end();
                                    }),
                     states.end());
      }
      if (current >= skip) {
        const int child = child_of(0, current_char);
        if (child >= 0) set_state(states, current, child);
      }
    }
    for (const auto& [start, ptr] : states) {
      if (nodes_[ptr].terminal) {
        offsets.push_back(start);
        offsets.push_back(n);
        break;
      }
    }
    // cut_text
    offsets.push_back(n);
    std::vector<std::string> tokens;
    std::size_t start = 0;
    for (std::size_t end : offsets) {
      if (start > end) continue;  // "a bug in Trie algorithm": Python logs and skips
      if (start == end) continue;
      tokens.push_back(text.substr(start, end - start));
      start = end;
    }
    return tokens;
  }

 private:
  struct Node {
    std::map<unsigned char, int> next;
    bool terminal = false;
  };

  int child_of(int node, unsigned char c) const {
    auto it = nodes_[node].next.find(c);
    return it == nodes_[node].next.end() ? -1 : it->second;
  }

  static void set_state(std::vector<std::pair<std::size_t, int>>& states, std::size_t key, int v) {
    for (auto& s : states) {
      if (s.first == key) {
        s.second = v;
        return;
      }
    }
    states.emplace_back(key, v);
  }

  std::vector<Node> nodes_{Node{}};
};

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool special = false;
};

struct Piece {
  std::string piece;
  int64_t id;
};

// The content of a special-token entry: "<s>", {"content": "<s>", ...} or null.
std::optional<std::string> token_content(const json& v, const fs::path& file,
                                         const std::string& key) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", file.string(), "': ", key,
                                            " must be a string, a token object or null"));
}

bool get_bool(const json& cfg, const char* key, bool dflt, const fs::path& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return dflt;
  BGEVL_CHECK_ARG(cfg[key].is_boolean(), "Mistral tokenizer: '", file.string(), "': ", key,
                  " must be true, false or null");
  return cfg[key].get<bool>();
}

// ---- SentencePiece ------------------------------------------------------------------------------
// The encoder of SentencePiece 0.1.97 (google/sentencepiece: normalizer.cc Normalize, bpe_model.cc
// SampleEncode with alpha 0, sentencepiece_processor.cc PopulateSentencePieceText) for BPE models
// with the identity normalizer, which is what Mistral's tokenizer.model is. It is written out here
// rather than linked: Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite with
// exported symbols, and in a process that also loads libtorch's libprotobuf the two collide
// (libprotobuf's static initialisers crash inside sentencepiece's MergeFromImpl).

// Protobuf wire format reader (just what ModelProto needs).
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail("truncated varint");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }

  // Next field: (number, wire type).
  std::pair<uint32_t, int> tag() {
    const uint64_t t = varint();
    const auto number = static_cast<uint32_t>(t >> 3);
    if (number == 0) fail("field number 0");
    return {number, static_cast<int>(t & 7)};
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > data_.size() - pos_) fail("truncated length-delimited field");
    std::string_view v = data_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return v;
  }

  uint32_t fixed32() {
    if (data_.size() - pos_ < 4) fail("truncated fixed32");
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    pos_ += 4;
    return v;
  }

  void skip(int wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        break;
      case 1:
        if (data_.size() - pos_ < 8) fail("truncated fixed64");
        pos_ += 8;
        break;
      case 2:
        bytes();
        break;
      case 5:
        fixed32();
        break;
      default:
        fail("unsupported wire type " + std::to_string(wire_type));
    }
  }

  void expect(int got, int want) {
    if (got != want) fail("unexpected wire type " + std::to_string(got));
  }

  [[noreturn]] static void fail(const std::string& what) { throw std::runtime_error(what); }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

class SentencePieceBpe {
 public:
  enum Type { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

  struct Result {
    std::string piece;
    int id;
  };

  // Parses a serialized ModelProto; std::runtime_error with the reason when it is not a usable
  // SentencePiece BPE model.
  SentencePieceBpe(const SentencePieceBpe&) = delete;  // the maps view into pieces_
  SentencePieceBpe& operator=(const SentencePieceBpe&) = delete;

  explicit SentencePieceBpe(std::string_view proto) {
    int model_type = 1;  // UNIGRAM unless set
    WireReader top(proto);
    while (!top.done()) {
      const auto [field, wt] = top.tag();
      if (field == 1) {  // pieces
        top.expect(wt, 2);
        Piece p;
        WireReader r(top.bytes());
        while (!r.done()) {
          const auto [f, w] = r.tag();
          if (f == 1) {
            r.expect(w, 2);
            p.piece = std::string(r.bytes());
          } else if (f == 2) {
            r.expect(w, 5);
            const uint32_t bits = r.fixed32();
            std::memcpy(&p.score, &bits, sizeof p.score);
          } else if (f == 3) {
            r.expect(w, 0);
            p.type = static_cast<int>(r.varint());
          } else {
            r.skip(w);
          }
        }
        pieces_.push_back(std::move(p));
      } else if (field == 2) {  // trainer_spec (repeated occurrences merge)
        top.expect(wt, 2);
        WireReader r(top.bytes());
        while (!r.done()) {
          const auto [f, w] = r.tag();
          if (f == 3 && w == 0) {
            model_type = static_cast<int>(r.varint());
          } else if (f == 24 && w == 0) {
            treat_whitespace_as_suffix_ = r.varint() != 0;
          } else if (f == 35 && w == 0) {
            byte_fallback_ = r.varint() != 0;
          } else {
            r.skip(w);
          }
        }
      } else if (field == 3) {  // normalizer_spec
        top.expect(wt, 2);
        WireReader r(top.bytes());
        while (!r.done()) {
          const auto [f, w] = r.tag();
          if (f == 2 && w == 2) {
            has_charsmap_ = !r.bytes().empty();
          } else if (f == 3 && w == 0) {
            add_dummy_prefix_ = r.varint() != 0;
          } else if (f == 4 && w == 0) {
            remove_extra_whitespaces_ = r.varint() != 0;
          } else if (f == 5 && w == 0) {
            escape_whitespaces_ = r.varint() != 0;
          } else {
            r.skip(w);
          }
        }
      } else {
        top.skip(wt);
      }
    }
    if (pieces_.empty()) WireReader::fail("no pieces");
    if (model_type != 2)
      WireReader::fail("model type " + std::to_string(model_type) +
                       " is not supported (only BPE, as Mistral's tokenizer.model)");
    if (has_charsmap_)
      WireReader::fail("normalization rules (precompiled_charsmap) are not supported");
    // ModelInterface::InitializePieces
    std::vector<bool> byte_found(256, false);
    for (std::size_t i = 0; i < pieces_.size(); ++i) {
      const Piece& p = pieces_[i];
      if (p.piece.empty()) WireReader::fail("piece must not be empty");
      const bool normal = p.type == kNormal || p.type == kUserDefined || p.type == kUnused;
      auto& map = normal ? pieces_map_ : reserved_map_;
      if (!map.emplace(p.piece, static_cast<int>(i)).second)
        WireReader::fail(p.piece + " is already defined");
      if (p.type == kUserDefined) user_defined_.push_back(p.piece);
      if (p.type == kUnknown) {
        if (unk_id_ >= 0) WireReader::fail("unk is already defined");
        unk_id_ = static_cast<int>(i);
      }
      if (p.type == kByte) {
        if (!byte_fallback_)
          WireReader::fail("byte piece " + p.piece + " is found although byte_fallback is false");
        const int b = piece_to_byte(p.piece);
        if (b < 0) WireReader::fail("byte piece " + p.piece + " is invalid");
        byte_found[b] = true;
      }
    }
    if (unk_id_ < 0) WireReader::fail("unk is not defined");
    if (byte_fallback_ &&
        std::find(byte_found.begin(), byte_found.end(), false) != byte_found.end())
      WireReader::fail("there are not 256 byte pieces although byte_fallback is true");
  }

  // LlamaTokenizer(legacy=False) loads the model with normalizer_spec.add_dummy_prefix = false.
  void set_add_dummy_prefix(bool v) { add_dummy_prefix_ = v; }

  int size() const { return static_cast<int>(pieces_.size()); }
  int unk_id() const { return unk_id_; }
  const std::string& id_to_piece(int id) const {
    return pieces_[static_cast<std::size_t>(id)].piece;
  }

  int piece_to_id(std::string_view piece) const {
    if (auto it = reserved_map_.find(piece); it != reserved_map_.end()) return it->second;
    if (auto it = pieces_map_.find(piece); it != pieces_map_.end()) return it->second;
    return unk_id_;
  }

  // SentencePieceProcessor::Encode(text) -> pieces with ids. `text` is well-formed UTF-8.
  std::vector<Result> encode(std::string_view text) const {
    const std::string normalized = normalize(text);
    std::vector<Result> out;
    bool prev_unk = false;
    for (const auto& [w, id] : bpe(normalized)) {
      const int type = pieces_[static_cast<std::size_t>(id)].type;
      const bool unk = type == kUnknown;
      if (type == kControl) {
        out.push_back({std::string(w), id});
      } else if (unk && byte_fallback_) {
        for (unsigned char b : w) {
          const std::string piece = byte_to_piece(b);
          out.push_back({piece, piece_to_id(piece)});
        }
      } else if (prev_unk && unk) {
        out.back().piece += std::string(w);  // runs of unknown pieces are merged
      } else {
        out.push_back({std::string(w), id});
      }
      prev_unk = unk;
    }
    return out;
  }

 private:
  struct Piece {
    std::string piece;
    float score = 0.0f;
    int type = kNormal;
  };

  static std::string byte_to_piece(unsigned char b) {
    static const char* hex = "0123456789ABCDEF";
    return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
  }

  static int piece_to_byte(const std::string& p) {
    for (int b = 0; b < 256; ++b)
      if (byte_to_piece(static_cast<unsigned char>(b)) == p) return b;
    return -1;
  }

  // PrefixMatcher::PrefixMatch: the longest user-defined symbol at the start of `w` (found), else
  // one UTF-8 character.
  std::size_t prefix_match(std::string_view w, bool* found) const {
    std::size_t best = 0;
    for (const std::string& u : user_defined_)
      if (u.size() > best && w.substr(0, u.size()) == u) best = u.size();
    *found = best > 0;
    if (best) return best;
    return std::min(w.size(), utf8_len(static_cast<unsigned char>(w[0])));
  }

  // Normalizer::Normalize with no normalization rules.
  std::string normalize(std::string_view input) const {
    std::string out;
    if (input.empty()) return out;
    const std::string_view space = "\xE2\x96\x81";
    if (remove_extra_whitespaces_) {
      while (!input.empty() && input.front() == ' ') input.remove_prefix(1);
      if (input.empty()) return out;
    }
    auto add_ws = [&] { out += escape_whitespaces_ ? space : std::string_view(" "); };
    if (!treat_whitespace_as_suffix_ && add_dummy_prefix_) add_ws();
    bool is_prev_space = remove_extra_whitespaces_;
    while (!input.empty()) {
      bool found = false;
      const std::size_t n = prefix_match(input, &found);
      std::string_view sp = input.substr(0, n);
      while (is_prev_space && !sp.empty() && sp.front() == ' ') sp.remove_prefix(1);
      if (!sp.empty()) {
        for (char c : sp) {
          if (escape_whitespaces_ && c == ' ') {
            out += space;
          } else {
            out += c;
          }
        }
        is_prev_space = sp.back() == ' ';
      }
      input.remove_prefix(n);
      if (!remove_extra_whitespaces_) is_prev_space = false;
    }
    if (remove_extra_whitespaces_) {
      const std::string_view sym = escape_whitespaces_ ? space : std::string_view(" ");
      while (out.size() >= sym.size() &&
             std::string_view(out).substr(out.size() - sym.size()) == sym)
        out.resize(out.size() - sym.size());
    }
    if (treat_whitespace_as_suffix_ && add_dummy_prefix_) add_ws();
    return out;
  }

  // bpe_model.cc Model::SampleEncode(normalized, alpha = 0).
  std::vector<std::pair<std::string_view, int>> bpe(std::string_view normalized) const {
    struct Symbol {
      int prev;
      int next;
      bool freeze;
      std::string_view piece;
    };
    struct Pair {
      int left;
      int right;
      float score;
      std::size_t size;
    };
    struct Lower {  // SymbolPairComparator: the highest score first, then the leftmost
      bool operator()(const Pair& a, const Pair& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
      }
    };
    std::vector<std::pair<std::string_view, int>> output;
    if (normalized.empty()) return output;
    std::vector<Symbol> symbols;
    symbols.reserve(normalized.size());
    std::priority_queue<Pair, std::vector<Pair>, Lower> agenda;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

    auto maybe_add = [&](int left, int right) {
      if (left == -1 || right == -1 || symbols[left].freeze || symbols[right].freeze) return;
      const std::string_view piece(symbols[left].piece.data(),
                                   symbols[left].piece.size() + symbols[right].piece.size());
      const auto it = pieces_map_.find(piece);
      if (it == pieces_map_.end()) return;
      agenda.push(
          Pair{left, right, pieces_[static_cast<std::size_t>(it->second)].score, piece.size()});
      if (pieces_[static_cast<std::size_t>(it->second)].type == kUnused)
        rev_merge[piece] = {symbols[left].piece, symbols[right].piece};
    };

    int index = 0;
    while (!normalized.empty()) {
      Symbol s;
      const std::size_t n = prefix_match(normalized, &s.freeze);
      s.piece = normalized.substr(0, n);
      s.prev = index == 0 ? -1 : index - 1;
      normalized.remove_prefix(n);
      s.next = normalized.empty() ? -1 : index + 1;
      ++index;
      symbols.push_back(s);
    }
    for (std::size_t i = 1; i < symbols.size(); ++i)
      maybe_add(static_cast<int>(i) - 1, static_cast<int>(i));

    while (!agenda.empty()) {
      const Pair top = agenda.top();
      agenda.pop();
      Symbol& l = symbols[top.left];
      Symbol& r = symbols[top.right];
      if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size)
        continue;
      l.piece = std::string_view(l.piece.data(), l.piece.size() + r.piece.size());
      l.next = r.next;
      if (r.next >= 0) symbols[r.next].prev = top.left;
      r.piece = std::string_view();
      maybe_add(l.prev, top.left);
      maybe_add(top.left, l.next);
    }

    std::function<void(std::string_view)> resegment = [&](std::string_view w) {
      const int id = piece_to_id(w);
      if (id == -1 || pieces_[static_cast<std::size_t>(id)].type != kUnused) {
        output.emplace_back(w, id);
        return;
      }
      const auto p = rev_merge.find(w);
      if (p == rev_merge.end()) {
        output.emplace_back(w, id);
        return;
      }
      resegment(p->second.first);
      resegment(p->second.second);
    };
    for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i].piece);
    return output;
  }

  std::vector<Piece> pieces_;
  std::unordered_map<std::string_view, int> pieces_map_;    // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string_view, int> reserved_map_;  // the others
  std::vector<std::string> user_defined_;
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  bool treat_whitespace_as_suffix_ = false;
  bool has_charsmap_ = false;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
};

}  // namespace

struct MistralTokenizer::Impl {
  std::unique_ptr<SentencePieceBpe> sp;
  bool legacy = true;
  bool add_prefix_space = true;
  bool add_bos = true;
  bool add_eos = false;
  std::string unk_token = "<unk>";
  std::size_t unk_token_length = 0;
  int64_t bos = -1;
  int64_t eos = -1;
  int64_t pad = -1;
  std::vector<AddedToken> added;                             // by id
  std::unordered_map<std::string, std::size_t> added_index;  // content -> index in `added`
  std::set<std::string> all_special_tokens;
  Trie trie;

  std::vector<Piece> sp_encode(const std::string& text) const {
    std::vector<Piece> out;
    for (auto& r : sp->encode(text)) out.push_back({std::move(r.piece), r.id});
    return out;
  }

  // LlamaTokenizer._tokenize
  std::vector<Piece> tokenize_piece(const std::string& text) const {
    if (legacy || !(text.rfind(kUnderline, 0) == 0 || text.rfind(' ', 0) == 0))
      return sp_encode(text);
    std::vector<Piece> tokens = sp_encode(unk_token + text);
    if (tokens.size() >= unk_token_length)
      tokens.erase(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(unk_token_length));
    return tokens;
  }

  const AddedToken* find_added(const std::string& s) const {
    auto it = added_index.find(s);
    return it == added_index.end() ? nullptr : &added[it->second];
  }

  // PreTrainedTokenizer.tokenize (+ LlamaTokenizer.tokenize), pieces with their ids.
  std::vector<Piece> tokenize(std::string text) const {
    const bool prefix_handling = !legacy && !text.empty();
    if (prefix_handling) {
      std::string replaced;
      replaced.reserve(text.size());
      for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, kUnderline.size(), kUnderline) == 0) {
          replaced.push_back(' ');
          i += kUnderline.size();
        } else {
          replaced.push_back(text[i++]);
        }
      }
      text = std::move(replaced);
      if (add_prefix_space) text = std::string(kUnderline) + text;
    }
    const std::vector<std::string> tokens = split_added(text);

    std::vector<Piece> out;
    for (const std::string& token : tokens) {
      if (token.empty()) continue;
      if (const AddedToken* tok = find_added(token)) {
        out.push_back({token, tok->id});
      } else {
        for (Piece& p : tokenize_piece(token)) {
          if (const AddedToken* a = find_added(p.piece)) p.id = a->id;
          out.push_back(std::move(p));
        }
      }
    }
    if (prefix_handling && out.size() > 1 && out[0].piece == kUnderline &&
        all_special_tokens.count(out[1].piece))
      out.erase(out.begin());
    return out;
  }

  // Trie.split, then the lstrip / rstrip / single_word loop of PreTrainedTokenizer.tokenize (each
  // matched added token edits its neighbours; "" entries are skipped later).
  std::vector<std::string> split_added(const std::string& text) const {
    std::vector<std::string> tokens = trie.split(text);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string token = tokens[i];
      const AddedToken* tok = find_added(token);
      if (!tok) continue;
      std::optional<std::string> left, right;
      if (i > 0) left = tokens[i - 1];
      if (i + 1 < tokens.size()) right = tokens[i + 1];
      const bool left_ok = left && !left->empty();
      const bool right_ok = right && !right->empty();
      if (tok->rstrip && right_ok) tokens[i + 1] = py_lstrip(*right);
      if (tok->lstrip && left_ok) tokens[i - 1] = py_rstrip(*left);
      if (tok->single_word && left_ok && left->back() != ' ') {
        tokens[i - 1] += token;
        tokens[i].clear();
      } else if (tok->single_word && right_ok && right->front() != ' ') {
        tokens[i + 1] = token + tokens[i + 1];
        tokens[i].clear();
      }
    }
    return tokens;
  }

  std::vector<int64_t> encode(const std::string& text) const {
    std::size_t bad = 0;
    std::u32string cps;
    BGEVL_CHECK_ARG(unicode::decode_utf8(text, cps, &bad),
                    "Mistral tokenizer: the text is not valid UTF-8 (byte offset ", bad, ")");
    std::vector<int64_t> ids;
    if (add_bos) ids.push_back(bos);
    for (const Piece& p : tokenize(text)) ids.push_back(p.id);
    if (add_eos) ids.push_back(eos);
    return ids;
  }

  // convert_tokens_to_ids of one token string: added tokens first, then the SentencePiece vocab.
  int64_t token_to_id(const std::string& token) const {
    if (const AddedToken* a = find_added(token)) return a->id;
    return sp->piece_to_id(token);
  }

  void add_token(AddedToken t) {
    auto it = added_index.find(t.content);
    if (it != added_index.end()) {
      added[it->second] = std::move(t);
      return;
    }
    added_index.emplace(t.content, added.size());
    added.push_back(std::move(t));
  }
};

MistralTokenizer::MistralTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MistralTokenizer::MistralTokenizer(MistralTokenizer&&) noexcept = default;
MistralTokenizer& MistralTokenizer::operator=(MistralTokenizer&&) noexcept = default;
MistralTokenizer::~MistralTokenizer() = default;

namespace {
// Whether a tokenizer.json (LlamaConverter's output) encodes legacy (true) or non-legacy (false)
// prefix handling; nullopt when there is no such file or it says neither.
std::optional<bool> legacy_from_tokenizer_json(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  const auto j = read_json_object(path);
  if (!j) return std::nullopt;
  std::function<bool(const json&, const char*)> has_type = [&](const json& node, const char* type) {
    if (!node.is_object()) return false;
    if (node.value("type", "") == type) return true;
    for (const char* list : {"normalizers", "pretokenizers"})
      if (node.contains(list) && node[list].is_array())
        for (const auto& n : node[list])
          if (has_type(n, type)) return true;
    return false;
  };
  if (j->contains("normalizer") && has_type((*j)["normalizer"], "Prepend")) return true;
  if (j->contains("pre_tokenizer") && has_type((*j)["pre_tokenizer"], "Metaspace")) return false;
  return std::nullopt;
}
}  // namespace

MistralTokenizer MistralTokenizer::from_dir(const std::string& dir) {
  std::error_code ec;
  BGEVL_CHECK(fs::is_directory(dir, ec), FileNotFoundError, "Mistral tokenizer: model folder '",
              dir, "' does not exist or is not a folder");
  const fs::path d(dir);
  const fs::path model_path = d / "tokenizer.model";
  const fs::path config_path = d / "tokenizer_config.json";
  const fs::path map_path = d / "special_tokens_map.json";
  const fs::path added_path = d / "added_tokens.json";

  auto impl = std::make_unique<Impl>();
  const std::string model_bytes = read_file(model_path, "SentencePiece model");
  const json cfg = read_json_object(config_path).value_or(json::object());

  impl->legacy = get_bool(cfg, "legacy", true, config_path);
  // With a tokenizer.json beside it, transformers uses LlamaTokenizerFast, which loads that file as
  // it is and ignores `legacy` (unless add_prefix_space is set, which makes it rebuild from the
  // slow tokenizer): the file's normalizer then decides. Prepend("▁") is the legacy behaviour; a
  // Metaspace pre-tokenizer without it is the non-legacy one.
  if (!(cfg.contains("add_prefix_space") && cfg["add_prefix_space"].is_boolean())) {
    if (const auto fast = legacy_from_tokenizer_json(d / "tokenizer.json")) impl->legacy = *fast;
  }
  impl->add_bos = get_bool(cfg, "add_bos_token", true, config_path);
  impl->add_eos = get_bool(cfg, "add_eos_token", false, config_path);
  // LlamaTokenizer(add_prefix_space=True) by default; an explicit null reaches it as None (falsy).
  impl->add_prefix_space = true;
  if (cfg.contains("add_prefix_space")) {
    const json& v = cfg["add_prefix_space"];
    BGEVL_CHECK_ARG(v.is_null() || v.is_boolean(), "Mistral tokenizer: '", config_path.string(),
                    "': add_prefix_space must be true, false or null");
    impl->add_prefix_space = v.is_boolean() && v.get<bool>();
  }

  try {
    impl->sp = std::make_unique<SentencePieceBpe>(model_bytes);
  } catch (const std::runtime_error& e) {
    throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", model_path.string(),
                                              "' is not a valid SentencePiece model (", e.what(),
                                              ")"));
  }
  // LlamaTokenizer.get_spm_processor: legacy=False loads the model with add_dummy_prefix=false.
  if (!impl->legacy) impl->sp->set_add_dummy_prefix(false);
  const int64_t sp_size = impl->sp->size();

  // Special tokens: LlamaTokenizer's defaults, then tokenizer_config.json.
  std::map<std::string, std::optional<std::string>> special{
      {"bos_token", "<s>"},        {"eos_token", "</s>"},       {"unk_token", "<unk>"},
      {"pad_token", std::nullopt}, {"sep_token", std::nullopt}, {"cls_token", std::nullopt},
      {"mask_token", std::nullopt}};
  std::vector<std::string> additional;
  auto read_special = [&](const json& j, const fs::path& file) {
    for (auto& [key, value] : special) {
      if (j.contains(key)) value = token_content(j[key], file, key);
    }
    if (j.contains("additional_special_tokens") && !j["additional_special_tokens"].is_null()) {
      const json& a = j["additional_special_tokens"];
      BGEVL_CHECK_ARG(a.is_array(), "Mistral tokenizer: '", file.string(),
                      "': additional_special_tokens must be a list");
      for (const json& t : a) {
        auto c = token_content(t, file, "additional_special_tokens");
        if (c && std::find(additional.begin(), additional.end(), *c) == additional.end())
          additional.push_back(*c);
      }
    }
  };
  read_special(cfg, config_path);

  // Added tokens.
  if (cfg.contains("added_tokens_decoder") && !cfg["added_tokens_decoder"].is_null()) {
    const json& dec = cfg["added_tokens_decoder"];
    BGEVL_CHECK_ARG(dec.is_object(), "Mistral tokenizer: '", config_path.string(),
                    "': added_tokens_decoder must be an object");
    std::vector<AddedToken> toks;
    for (const auto& [idx, t] : dec.items()) {
      AddedToken a;
      try {
        std::size_t used = 0;
        a.id = std::stoll(idx, &used);
        if (used != idx.size()) throw std::invalid_argument(idx);
      } catch (const std::exception&) {
        throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", config_path.string(),
                                                  "': added_tokens_decoder key '", idx,
                                                  "' is not a token id"));
      }
      BGEVL_CHECK_ARG(t.is_object() && t.contains("content") && t["content"].is_string(),
                      "Mistral tokenizer: '", config_path.string(), "': added_tokens_decoder[", idx,
                      "] must be an object with a string \"content\"");
      a.content = t["content"].get<std::string>();
      a.lstrip = get_bool(t, "lstrip", false, config_path);
      a.rstrip = get_bool(t, "rstrip", false, config_path);
      a.single_word = get_bool(t, "single_word", false, config_path);
      a.special = get_bool(t, "special", false, config_path);
      toks.push_back(std::move(a));
    }
    std::sort(toks.begin(), toks.end(),
              [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
    for (AddedToken& a : toks) impl->add_token(std::move(a));
  } else {
    // Older checkpoints: special_tokens_map.json overrides, then added_tokens.json.
    if (auto m = read_json_object(map_path)) read_special(*m, map_path);
    if (auto a = read_json_object(added_path)) {
      std::set<std::string> specials(additional.begin(), additional.end());
      for (const auto& [k, v] : special)
        if (v) specials.insert(*v);
      std::vector<AddedToken> toks;
      for (const auto& [content, id] : a->items()) {
        BGEVL_CHECK_ARG(id.is_number_integer(), "Mistral tokenizer: '", added_path.string(),
                        "': the id of '", content, "' must be an integer");
        AddedToken t;
        t.content = content;
        t.id = id.get<int64_t>();
        t.special = specials.count(content) > 0;
        toks.push_back(std::move(t));
      }
      std::sort(toks.begin(), toks.end(),
                [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
      for (AddedToken& t : toks) impl->add_token(std::move(t));
    }
  }
  // PreTrainedTokenizer.__init__ step 4: special tokens missing from the added tokens are added
  // (with their SentencePiece id when the vocabulary has them, else after the last id).
  std::vector<std::string> all_special;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (special[key]) all_special.push_back(*special[key]);
  }
  for (const std::string& a : additional) all_special.push_back(a);
  for (const std::string& s : all_special) {
    impl->all_special_tokens.insert(s);
    if (impl->find_added(s) || s.empty()) continue;
    AddedToken t;
    t.content = s;
    t.special = true;
    const int id = impl->sp->piece_to_id(s);
    if (id != impl->sp->unk_id() || s == impl->sp->id_to_piece(impl->sp->unk_id())) {
      t.id = id;
    } else {
      int64_t next = sp_size;
      for (const AddedToken& x : impl->added) next = std::max(next, x.id + 1);
      t.id = next;
    }
    impl->add_token(std::move(t));
  }
  for (const AddedToken& a : impl->added) impl->trie.add(a.content);

  impl->unk_token = special["unk_token"].value_or("");
  if (!impl->legacy) impl->unk_token_length = impl->sp_encode(impl->unk_token).size();
  auto id_of = [&](const char* key) -> int64_t {
    return special[key] ? impl->token_to_id(*special[key]) : -1;
  };
  impl->bos = id_of("bos_token");
  impl->eos = id_of("eos_token");
  impl->pad = id_of("pad_token");
  BGEVL_CHECK_ARG(!impl->add_bos || impl->bos >= 0, "Mistral tokenizer: '", config_path.string(),
                  "': add_bos_token is true but there is no bos_token");
  BGEVL_CHECK_ARG(!impl->add_eos || impl->eos >= 0, "Mistral tokenizer: '", config_path.string(),
                  "': add_eos_token is true but there is no eos_token");
  return MistralTokenizer(std::move(impl));
}

std::vector<int64_t> MistralTokenizer::encode(const std::string& text) const {
  return impl_->encode(text);
}

TokenBatch MistralTokenizer::encode_batch(const std::vector<std::string>& texts) const {
  BGEVL_CHECK_ARG(!texts.empty(),
                  "Mistral tokenizer: encode_batch needs at least one text, got none");
  BGEVL_CHECK_ARG(
      impl_->pad >= 0,
      "Mistral tokenizer: padding needs a pad_token, and tokenizer_config.json has none");
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  std::size_t longest = 0;
  for (const std::string& t : texts) {
    rows.push_back(impl_->encode(t));
    longest = std::max(longest, rows.back().size());
  }
  TokenBatch b;
  b.rows = static_cast<int64_t>(rows.size());
  b.length = static_cast<int64_t>(longest);
  b.input_ids.assign(rows.size() * longest, impl_->pad);
  b.attention_mask.assign(rows.size() * longest, 0);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::size_t offset = r * longest + (longest - rows[r].size());
    std::copy(rows[r].begin(), rows[r].end(),
              b.input_ids.begin() + static_cast<std::ptrdiff_t>(offset));
    std::fill_n(b.attention_mask.begin() + static_cast<std::ptrdiff_t>(offset), rows[r].size(), 1);
  }
  return b;
}

int64_t MistralTokenizer::bos_id() const { return impl_->bos; }
int64_t MistralTokenizer::pad_id() const { return impl_->pad; }

int64_t MistralTokenizer::added_token_id(const std::string& content) const {
  const AddedToken* a = impl_->find_added(content);
  BGEVL_CHECK_ARG(a != nullptr, "Mistral tokenizer: '", content, "' is not an added token");
  return a->id;
}

bool MistralTokenizer::legacy() const { return impl_->legacy; }

}  // namespace bgevl::text
