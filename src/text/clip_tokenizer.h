// CLIP byte-level BPE tokenizer, matching the Hugging Face *fast* CLIPTokenizer (tokenizers' Rust
// implementation, as built by transformers' CLIPConverter) id for id. No libtorch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/token_batch.h"

namespace bgevl::text {

class ClipTokenizer {
 public:
  // Reads vocab.json + merges.txt from a model folder; bos/eos/pad tokens from
  // special_tokens_map.json / tokenizer_config.json when present (defaults: <|startoftext|>,
  // <|endoftext|>, pad = <|endoftext|>). Throws FileNotFoundError / InvalidArgumentError.
  static ClipTokenizer from_dir(const std::string& dir);
  static ClipTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // Ids of one text with <|startoftext|> first and <|endoftext|> last; never truncates.
  std::vector<int64_t> encode(const std::string& text) const;

  // A padded batch. A row longer than max_length raises InvalidArgumentError naming the text
  // index and its length, unless truncate is set: then it is cut to max_length keeping the
  // end token. An empty list raises InvalidArgumentError.
  TokenBatch encode_batch(const std::vector<std::string>& texts, bool truncate = false,
                          int64_t max_length = 77) const;
  // The same rule for one row of ids from encode(): longer than max_length is an
  // InvalidArgumentError (`what` names the text) unless truncate, which cuts it keeping the end
  // token.
  void fit(std::vector<int64_t>& ids, int64_t max_length, bool truncate,
           const std::string& what) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int64_t vocab_size() const;  // the number of entries in vocab.json
  int64_t max_id() const;      // the largest id encode() can give

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl::text
