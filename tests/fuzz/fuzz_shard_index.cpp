// io::parse_shard_index on arbitrary text (model.safetensors.index.json). An index it accepts
// names each shard once, as a plain file name, and maps every tensor to one of them.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string_view>

#include "fuzz_util.h"
#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bgevl::fuzz::guarded([&] {
    const auto idx = bgevl::io::parse_shard_index(
        std::string_view(reinterpret_cast<const char*>(data), size), "<fuzz input>");
    BGEVL_FUZZ_CHECK(!idx.shards.empty());
    const std::set<std::string> unique(idx.shards.begin(), idx.shards.end());
    BGEVL_FUZZ_CHECK(unique.size() == idx.shards.size());
    for (const auto& s : idx.shards) {
      BGEVL_FUZZ_CHECK(!s.empty() && s != "." && s != "..");
      BGEVL_FUZZ_CHECK(s.find('/') == std::string::npos && s.find('\0') == std::string::npos);
    }
    std::set<std::string> used;
    for (const auto& [tensor, shard] : idx.weight_map) {
      BGEVL_FUZZ_CHECK(unique.count(shard) == 1);
      used.insert(shard);
    }
    BGEVL_FUZZ_CHECK(used == unique);
  });
  return 0;
}
