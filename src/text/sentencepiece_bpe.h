// The encoder of SentencePiece 0.1.97 (google/sentencepiece: normalizer.cc Normalize, bpe_model.cc
// SampleEncode with alpha 0, sentencepiece_processor.cc PopulateSentencePieceText) for BPE models
// with the identity normalizer, which is what Mistral's tokenizer.model is. It is written out here
// rather than linked: Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite with
// exported symbols, and in a process that also loads libtorch's libprotobuf the two collide
// (libprotobuf's static initialisers crash inside sentencepiece's MergeFromImpl).
// Private to the Mistral tokenizer (text/mistral_tokenizer.cpp). No libtorch here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bgevl::text {

// Length in bytes of the UTF-8 sequence that starts with `lead` (the text is well-formed).
inline std::size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  return 4;
}

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

  explicit SentencePieceBpe(std::string_view proto);

  // LlamaTokenizer(legacy=False) loads the model with normalizer_spec.add_dummy_prefix = false.
  void set_add_dummy_prefix(bool v) { add_dummy_prefix_ = v; }

  int size() const { return static_cast<int>(pieces_.size()); }
  int unk_id() const { return unk_id_; }
  const std::string& id_to_piece(int id) const {
    return pieces_[static_cast<std::size_t>(id)].piece;
  }

  int piece_to_id(std::string_view piece) const;

  // SentencePieceProcessor::Encode(text) -> pieces with ids. `text` is well-formed UTF-8.
  std::vector<Result> encode(std::string_view text) const;

 private:
  struct Piece {
    std::string piece;
    float score = 0.0f;
    int type = kNormal;
  };

  static std::string byte_to_piece(unsigned char b);
  static int piece_to_byte(const std::string& p);

  // PrefixMatcher::PrefixMatch: the longest user-defined symbol at the start of `w` (found), else
  // one UTF-8 character.
  std::size_t prefix_match(std::string_view w, bool* found) const;

  // Normalizer::Normalize with no normalization rules.
  std::string normalize(std::string_view input) const;

  // bpe_model.cc Model::SampleEncode(normalized, alpha = 0).
  std::vector<std::pair<std::string_view, int>> bpe(std::string_view normalized) const;

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

}  // namespace bgevl::text
