// The safetensors header and the sharded index (model.safetensors.index.json), parsed and
// checked as the format specifies before anything is mapped or allocated: a header of at most
// 100 MiB, every tensor with a known dtype, a shape whose byte size matches its data_offsets,
// and the tensors covering the data section exactly (no gap, no overlap, nothing after the last).
// Torch-free (the fuzz targets and the sanitizer build use it alone).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bgevl::io {

struct TensorInfo {
  std::string dtype;  // safetensors dtype name: F32, F16, BF16, I64, ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + the header length
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t(100) << 20;

// The header of a whole safetensors file of `size` bytes starting at `data` (only the first
// 8 + header-length bytes are read). InvalidArgumentError naming `path` and the tensor otherwise.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, uint64_t size,
                                           const std::string& path);

// Size in bytes of one element of a safetensors dtype; InvalidArgumentError on unknown dtypes.
size_t dtype_size(const std::string& dtype);

// model.safetensors.index.json: the shard files (in the order of the tensor names that first name
// them) and which shard holds each tensor. InvalidArgumentError naming `path` when malformed or a
// shard name is not a plain file name.
struct ShardIndex {
  std::vector<std::string> shards;
  std::map<std::string, std::string> weight_map;
};
ShardIndex parse_shard_index(std::string_view text, const std::string& path);

}  // namespace bgevl::io
