// ClipTokenizer::Impl and the types its two halves share: text/clip_vocab.cpp reads vocab.json,
// merges.txt and the token configuration into it, text/clip_tokenizer.cpp encodes with it. Private
// to the CLIP tokenizer. No libtorch here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/clip_tokenizer.h"

namespace bgevl::text {

namespace clip {

inline constexpr const char* kDefaultBos = "<|startoftext|>";
inline constexpr const char* kDefaultEos = "<|endoftext|>";

struct AddedToken {
  std::u32string content;  // the pattern (for normalized tokens: the normalized content)
  int32_t id = -1;
  bool normalized = true;
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

// Reads the optional tokenizer_config.json / special_tokens_map.json of a model folder.
SpecialConfig read_special_config(const std::filesystem::path& dir);

}  // namespace clip

// Both CLIP tokenizer files (and only they) include this header and use the short names.
using clip::AddedToken;
using clip::MergeMap;
using clip::read_special_config;
using clip::SpecialConfig;

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

  // text/clip_tokenizer.cpp: the normalizer, added tokens, pre-tokenizer, BPE model and encode.
  static void normalize(std::string_view s, std::u32string& out);
  template <typename Str, typename Emit>
  static void split_added(const Str& text, const std::vector<AddedToken>& tokens, Emit&& emit);
  template <typename Piece>
  static void split_words(const std::u32string& s, Piece&& piece);
  void bpe(std::string_view bytes, std::vector<int32_t>& out) const;
  void encode_word(const std::string& bytes, std::vector<int64_t>& out) const;
  void encode_normalized(const std::u32string& text, std::vector<int64_t>& out) const;
  std::vector<int64_t> encode(std::string_view text, std::size_t index, bool batch) const;

  // text/clip_vocab.cpp: reads vocab.json and merges.txt, resolves the special and added tokens.
  static std::unique_ptr<Impl> build(const std::filesystem::path& vocab_path,
                                     const std::filesystem::path& merges_path,
                                     const SpecialConfig& cfg);
};

}  // namespace bgevl::text
