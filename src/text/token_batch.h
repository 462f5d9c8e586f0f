// A tokenized batch, padded to its longest row.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace bgevl::text {

struct TokenBatch {
  int64_t rows = 0;
  int64_t length = 0;                   // columns: the longest row
  std::vector<int64_t> input_ids;       // rows * length, row-major
  std::vector<int64_t> attention_mask;  // rows * length, 1 for real tokens, 0 for padding
};

enum class PadSide { Right, Left };

// Rows of ids padded with `pad` to the longest row, on `side`, with their attention mask.
inline TokenBatch pad_rows(const std::vector<std::vector<int64_t>>& rows, int64_t pad,
                           PadSide side) {
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  TokenBatch b;
  b.rows = static_cast<int64_t>(rows.size());
  b.length = static_cast<int64_t>(longest);
  b.input_ids.assign(rows.size() * longest, pad);
  b.attention_mask.assign(rows.size() * longest, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    const size_t offset = r * longest + (side == PadSide::Left ? longest - rows[r].size() : 0);
    std::copy(rows[r].begin(), rows[r].end(), b.input_ids.begin() + static_cast<ptrdiff_t>(offset));
    std::fill_n(b.attention_mask.begin() + static_cast<ptrdiff_t>(offset), rows[r].size(), 1);
  }
  return b;
}

}  // namespace bgevl::text
