// A tokenized batch, padded to its longest row (the tokenizer decides on which side).
#pragma once

#include <cstdint>
#include <vector>

namespace bgevl::text {

struct TokenBatch {
  int64_t rows = 0;
  int64_t length = 0;                   // columns: the longest row
  std::vector<int64_t> input_ids;       // rows * length, row-major
  std::vector<int64_t> attention_mask;  // rows * length, 1 for real tokens, 0 for padding
};

}  // namespace bgevl::text
