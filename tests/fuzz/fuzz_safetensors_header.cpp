// io::parse_safetensors_header on arbitrary bytes (a whole safetensors file: the 8-byte length,
// the JSON header, the data section). A header it accepts must describe the data section as the
// format requires: every tensor inside it with the byte size of its dtype and shape, the tensors
// covering it exactly.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "fuzz_util.h"
#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bgevl::fuzz::guarded([&] {
    const auto h = bgevl::io::parse_safetensors_header(data, size, "<fuzz input>");
    BGEVL_FUZZ_CHECK(h.data_start >= 8 && h.data_start <= size);
    const uint64_t data_size = size - h.data_start;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [name, t] : h.tensors) {
      BGEVL_FUZZ_CHECK(t.begin <= t.end && t.end <= data_size);
      uint64_t numel = 1;
      for (const int64_t d : t.shape) {
        BGEVL_FUZZ_CHECK(d >= 0);
        numel *= uint64_t(d);
      }
      BGEVL_FUZZ_CHECK(numel * bgevl::io::dtype_size(t.dtype) == t.end - t.begin);
      ranges.emplace_back(t.begin, t.end);
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t covered = 0;
    for (const auto& [b, e] : ranges) {
      BGEVL_FUZZ_CHECK(b == covered);
      covered = e;
    }
    BGEVL_FUZZ_CHECK(covered == data_size);
  });
  return 0;
}
