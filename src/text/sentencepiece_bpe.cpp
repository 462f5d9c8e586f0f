// SentencePiece 0.1.97's BPE encoder and model-file reader; see text/sentencepiece_bpe.h.
#include "text/sentencepiece_bpe.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <queue>
#include <stdexcept>

namespace bgevl::text {

namespace {

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

}  // namespace

SentencePieceBpe::SentencePieceBpe(std::string_view proto) {
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
  if (byte_fallback_ && std::find(byte_found.begin(), byte_found.end(), false) != byte_found.end())
    WireReader::fail("there are not 256 byte pieces although byte_fallback is true");
}

int SentencePieceBpe::piece_to_id(std::string_view piece) const {
  if (auto it = reserved_map_.find(piece); it != reserved_map_.end()) return it->second;
  if (auto it = pieces_map_.find(piece); it != pieces_map_.end()) return it->second;
  return unk_id_;
}

// SentencePieceProcessor::Encode(text) -> pieces with ids. `text` is well-formed UTF-8.
std::vector<SentencePieceBpe::Result> SentencePieceBpe::encode(std::string_view text) const {
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

std::string SentencePieceBpe::byte_to_piece(unsigned char b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

int SentencePieceBpe::piece_to_byte(const std::string& p) {
  for (int b = 0; b < 256; ++b)
    if (byte_to_piece(static_cast<unsigned char>(b)) == p) return b;
  return -1;
}

// PrefixMatcher::PrefixMatch: the longest user-defined symbol at the start of `w` (found), else
// one UTF-8 character.
std::size_t SentencePieceBpe::prefix_match(std::string_view w, bool* found) const {
  std::size_t best = 0;
  for (const std::string& u : user_defined_)
    if (u.size() > best && w.substr(0, u.size()) == u) best = u.size();
  *found = best > 0;
  if (best) return best;
  return std::min(w.size(), utf8_len(static_cast<unsigned char>(w[0])));
}

// Normalizer::Normalize with no normalization rules.
std::string SentencePieceBpe::normalize(std::string_view input) const {
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
    while (out.size() >= sym.size() && std::string_view(out).substr(out.size() - sym.size()) == sym)
      out.resize(out.size() - sym.size());
  }
  if (treat_whitespace_as_suffix_ && add_dummy_prefix_) add_ws();
  return out;
}

// bpe_model.cc Model::SampleEncode(normalized, alpha = 0).
std::vector<std::pair<std::string_view, int>> SentencePieceBpe::bpe(
    std::string_view normalized) const {
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
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) continue;
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

}  // namespace bgevl::text
