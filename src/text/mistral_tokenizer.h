// The BGE-VL-MLLM tokenizer: Mistral's SentencePiece model plus the added tokens of the checkpoint
// (<image> 32000, <pad> 32001), matching transformers' LlamaTokenizer(Fast) as the reference
// uses it: BOS added, no EOS, added tokens split out before SentencePiece, `legacy` honoured,
// batches padded on the LEFT with <pad>. No libtorch here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/token_batch.h"

namespace bgevl::text {

class MistralTokenizer {
 public:
  // Reads tokenizer.model, tokenizer_config.json (legacy, add_bos_token, add_eos_token, pad,
  // added_tokens_decoder), added_tokens.json and special_tokens_map.json from a model folder.
  // FileNotFoundError / InvalidArgumentError with the file named.
  static MistralTokenizer from_dir(const std::string& dir);

  MistralTokenizer(MistralTokenizer&&) noexcept;
  MistralTokenizer& operator=(MistralTokenizer&&) noexcept;
  ~MistralTokenizer();

  // Ids of one text: BOS first (when add_bos_token), no EOS.
  std::vector<int64_t> encode(const std::string& text) const;
  // Left-padded batch with pad_id and an attention mask. Empty list: InvalidArgumentError.
  TokenBatch encode_batch(const std::vector<std::string>& texts) const;

  int64_t bos_id() const;
  int64_t pad_id() const;
  int64_t max_id() const;  // the largest id encode() can give (a piece or an added token)
  // The id of an added token such as "<image>"; InvalidArgumentError if there is none.
  int64_t added_token_id(const std::string& content) const;
  bool legacy() const;

 private:
  struct Impl;
  explicit MistralTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bgevl::text
