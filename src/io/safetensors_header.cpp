#include "io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl::io {

using json = nlohmann::json;

size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2},  {"U32", 4}, {"U64", 8}};
  auto it = sizes.find(dtype);
  BGEVL_CHECK_ARG(it != sizes.end(), "unknown safetensors dtype '", dtype, "'");
  return it->second;
}

namespace {

// The dtypes a tensor can be loaded from (libtorch has no unsigned types wider than a byte).
bool loadable(const std::string& d) {
  static const char* const names[] = {"F64", "F32", "F16", "BF16", "I64",
                                      "I32", "I16", "I8",  "U8",   "BOOL"};
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return d == n; });
}

bool non_negative_int(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, uint64_t size,
                                           const std::string& path) {
  const std::string file = "safetensors file " + path;
  BGEVL_CHECK_ARG(size >= 8, file, " is too small (", size, " bytes) to hold a header");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];  // little-endian
  BGEVL_CHECK_ARG(header_len <= size - 8, file, ": header length ", header_len,
                  " runs past the end of the file (", size, " bytes)");
  BGEVL_CHECK_ARG(header_len <= kMaxSafetensorsHeaderBytes, file, ": header length ", header_len,
                  " exceeds 100 MiB");
  SafetensorsHeader h;
  h.data_start = 8 + header_len;
  const uint64_t data_size = size - h.data_start;
  const json header = parse_json(
      std::string_view(reinterpret_cast<const char*>(data + 8), header_len), file + ": header");
  BGEVL_CHECK_ARG(header.is_object(), file, ": header is not a JSON object");

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      BGEVL_CHECK_ARG(entry.is_object(), file, ": __metadata__ is not an object");
      for (auto& [k, v] : entry.items())
        if (v.is_string()) h.metadata[k] = v.get<std::string>();
      continue;
    }
    const std::string where = detail::concat(file, ": tensor '", name, "'");
    BGEVL_CHECK_ARG(entry.is_object() && entry.contains("dtype") && entry["dtype"].is_string() &&
                        entry.contains("shape") && entry["shape"].is_array() &&
                        entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                        entry["data_offsets"].size() == 2,
                    where, " needs dtype, shape and data_offsets [begin, end]");
    TensorInfo info;
    info.dtype = entry["dtype"].get<std::string>();
    BGEVL_CHECK_ARG(loadable(info.dtype), where, " has unsupported dtype '", info.dtype, "'");
    uint64_t numel = 1;
    const json& shape = entry["shape"];
    for (size_t i = 0; i < shape.size(); ++i) {
      const json& d = shape[i];
      BGEVL_CHECK_ARG(non_negative_int(d), where, " has an invalid shape: dimension ", i, " is ",
                      brief(d));
      const uint64_t v = d.get<uint64_t>();
      BGEVL_CHECK_ARG(v <= uint64_t(std::numeric_limits<int64_t>::max()) &&
                          (v == 0 || numel <= std::numeric_limits<uint64_t>::max() / v),
                      where, " has a shape too large to address");
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    for (const auto& o : entry["data_offsets"])
      BGEVL_CHECK_ARG(non_negative_int(o), where, " has invalid data_offsets: ", brief(o),
                      " is not a byte offset");
    info.begin = entry["data_offsets"][0].get<uint64_t>();
    info.end = entry["data_offsets"][1].get<uint64_t>();
    BGEVL_CHECK_ARG(info.begin <= info.end, where, " has data_offsets with begin ", info.begin,
                    " > end ", info.end);
    BGEVL_CHECK_ARG(info.end <= data_size, where, " has data_offsets [", info.begin, ", ", info.end,
                    "] outside the data section (", data_size,
                    " bytes): the file is truncated or corrupt");
    const uint64_t esize = dtype_size(info.dtype);
    BGEVL_CHECK_ARG(numel <= std::numeric_limits<uint64_t>::max() / esize &&
                        numel * esize == info.end - info.begin,
                    where, " of dtype ", info.dtype, " and ", shape.size(), " dimensions (", numel,
                    " elements) needs ", numel * esize, " bytes but its data_offsets span ",
                    info.end - info.begin);
    ranges.emplace_back(info.begin, info.end);
    h.tensors.emplace(name, std::move(info));
  }
  // The format requires the tensors to cover the data section exactly: no overlap, no gap,
  // nothing after the last (a header length off by a byte would otherwise shift every weight).
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    BGEVL_CHECK_ARG(begin >= covered, file, ": tensors overlap at bytes [", begin, ", ", covered,
                    ") of the data section");
    BGEVL_CHECK_ARG(begin == covered, file, ": bytes [", covered, ", ", begin,
                    ") of the data section belong to no tensor (the format allows no gaps)");
    covered = end;
  }
  BGEVL_CHECK_ARG(covered == data_size, file, ": the data section has ", data_size - covered,
                  " bytes after the last tensor (", data_size, " bytes, tensors end at ", covered,
                  "): the header length or the offsets are wrong");
  return h;
}

ShardIndex parse_shard_index(std::string_view text, const std::string& path) {
  const json j = parse_json(text, path);
  BGEVL_CHECK_ARG(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), path,
                  " has no \"weight_map\" object");
  ShardIndex idx;
  for (auto& [tensor, shard] : j["weight_map"].items()) {
    BGEVL_CHECK_ARG(shard.is_string(), path, ": weight_map entry '", tensor,
                    "' is not a file name, got ", brief(shard));
    const auto s = shard.get<std::string>();
    BGEVL_CHECK_ARG(!s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
                        s.find('\0') == std::string::npos,
                    path, ": shard name '", s, "' must be a plain file name");
    if (std::find(idx.shards.begin(), idx.shards.end(), s) == idx.shards.end())
      idx.shards.push_back(s);
    idx.weight_map[tensor] = s;
  }
  BGEVL_CHECK_ARG(!idx.shards.empty(), path, " names no shards");
  return idx;
}

}  // namespace bgevl::io
