#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "bgevl/errors.h"

namespace bgevl::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

torch::ScalarType to_torch_dtype(const std::string& dtype, const std::string& path,
                                 const std::string& name) {
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F64") return torch::kFloat64;
  if (dtype == "I64") return torch::kInt64;
  if (dtype == "I32") return torch::kInt32;
  if (dtype == "I16") return torch::kInt16;
  if (dtype == "I8") return torch::kInt8;
  if (dtype == "U8") return torch::kUInt8;
  if (dtype == "BOOL") return torch::kBool;
  throw InvalidArgumentError(detail::concat("safetensors file ", path, ": tensor '", name,
                                            "' has unsupported dtype '", dtype, "'"));
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2},  {"U32", 4}, {"U64", 8}};
  auto it = sizes.find(dtype);
  BGEVL_CHECK_ARG(it != sizes.end(), "unknown safetensors dtype '", dtype, "'");
  return it->second;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::error_code ec;
  BGEVL_CHECK(fs::exists(path, ec), FileNotFoundError, "safetensors file not found: ", path);
  BGEVL_CHECK_ARG(fs::is_regular_file(path, ec), "not a regular file: ", path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  BGEVL_CHECK(fd_ >= 0, Error, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    ::close(fd_);
    throw Error(detail::concat("cannot stat ", path, ": ", std::strerror(errno)));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  try {
    BGEVL_CHECK_ARG(size_ >= 8, "safetensors file ", path, " is too small (", size_,
                    " bytes) to hold a header");
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    BGEVL_CHECK(m != MAP_FAILED, Error, "cannot mmap ", path, ": ", std::strerror(errno));
    map_ = static_cast<uint8_t*>(m);

    uint64_t header_len = 0;
    std::memcpy(&header_len, map_, 8);  // little-endian, as the format and every target are
    BGEVL_CHECK_ARG(header_len <= size_ - 8, "safetensors file ", path, ": header length ",
                    header_len, " runs past the end of the file (", size_, " bytes)");
    BGEVL_CHECK_ARG(header_len <= (uint64_t{100} << 20), "safetensors file ", path,
                    ": header length ", header_len, " exceeds 100 MiB");
    data_start_ = 8 + header_len;
    const uint64_t data_size = size_ - data_start_;

    json header;
    try {
      header = json::parse(reinterpret_cast<const char*>(map_ + 8),
                           reinterpret_cast<const char*>(map_ + 8 + header_len));
    } catch (const json::exception& e) {
      throw InvalidArgumentError(
          detail::concat("safetensors file ", path, ": header is not valid JSON (", e.what(), ")"));
    }
    BGEVL_CHECK_ARG(header.is_object(), "safetensors file ", path, ": header is not a JSON object");

    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        BGEVL_CHECK_ARG(entry.is_object(), "safetensors file ", path,
                        ": __metadata__ is not an object");
        for (auto& [k, v] : entry.items()) {
          if (v.is_string()) metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      const std::string where = detail::concat("safetensors file ", path, ": tensor '", name, "'");
      BGEVL_CHECK_ARG(entry.is_object() && entry.contains("dtype") && entry["dtype"].is_string() &&
                          entry.contains("shape") && entry["shape"].is_array() &&
                          entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                          entry["data_offsets"].size() == 2,
                      where, " needs dtype, shape and data_offsets [begin, end]");
      TensorInfo info;
      info.dtype = entry["dtype"].get<std::string>();
      to_torch_dtype(info.dtype, path, name);
      uint64_t numel = 1;
      for (auto& d : entry["shape"]) {
        BGEVL_CHECK_ARG(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                        where, " has an invalid shape ", entry["shape"].dump());
        const uint64_t v = d.get<uint64_t>();
        BGEVL_CHECK_ARG(v == 0 || numel <= std::numeric_limits<uint64_t>::max() / v, where,
                        " has a shape too large to address");
        numel *= v;
        info.shape.push_back(static_cast<int64_t>(v));
      }
      for (auto& o : entry["data_offsets"]) {
        BGEVL_CHECK_ARG(o.is_number_unsigned() || (o.is_number_integer() && o.get<int64_t>() >= 0),
                        where, " has invalid data_offsets ", entry["data_offsets"].dump());
      }
      info.begin = entry["data_offsets"][0].get<uint64_t>();
      info.end = entry["data_offsets"][1].get<uint64_t>();
      BGEVL_CHECK_ARG(info.begin <= info.end, where, " has data_offsets with begin ", info.begin,
                      " > end ", info.end);
      BGEVL_CHECK_ARG(info.end <= data_size, where, " has data_offsets [", info.begin, ", ",
                      info.end, "] outside the data section (", data_size,
                      " bytes): the file is truncated or corrupt");
      const uint64_t esize = dtype_size(info.dtype);
      BGEVL_CHECK_ARG(numel <= std::numeric_limits<uint64_t>::max() / esize &&
                          numel * esize == info.end - info.begin,
                      where, " of dtype ", info.dtype, " and shape ", entry["shape"].dump(),
                      " needs ", numel * esize, " bytes but its data_offsets span ",
                      info.end - info.begin);
      ranges.emplace_back(info.begin, info.end);
      tensors_.emplace(name, std::move(info));
    }
    // The format requires the tensors to cover the data section exactly: no overlap, no gap,
    // nothing after the last (a header length off by a byte would otherwise shift every weight).
    std::sort(ranges.begin(), ranges.end());
    uint64_t covered = 0;
    for (const auto& [begin, end] : ranges) {
      BGEVL_CHECK_ARG(begin >= covered, "safetensors file ", path, ": tensors overlap at bytes [",
                      begin, ", ", covered, ") of the data section");
      BGEVL_CHECK_ARG(begin == covered, "safetensors file ", path, ": bytes [", covered, ", ",
                      begin,
                      ") of the data section belong to no tensor (the format allows no gaps)");
      covered = end;
    }
    BGEVL_CHECK_ARG(covered == data_size, "safetensors file ", path, ": the data section has ",
                    data_size - covered, " bytes after the last tensor (", data_size,
                    " bytes, tensors end at ", covered,
                    "): the header length or the offsets are wrong");
  } catch (...) {
    if (map_) ::munmap(map_, size_);
    ::close(fd_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
  if (fd_ >= 0) ::close(fd_);
}

torch::Tensor SafetensorsFile::load(const std::string& name, torch::ScalarType dtype,
                                    const torch::Device& device) const {
  auto it = tensors_.find(name);
  BGEVL_CHECK_ARG(it != tensors_.end(), "safetensors file ", path_, " has no tensor '", name, "'");
  const TensorInfo& info = it->second;
  uint8_t* ptr = map_ + data_start_ + info.begin;
  const uint64_t nbytes = info.end - info.begin;
  const auto src_dtype = to_torch_dtype(info.dtype, path_, name);
  torch::Tensor out;
  const bool aligned = reinterpret_cast<uintptr_t>(ptr) % dtype_size(info.dtype) == 0;
  if (aligned) {
    auto view = torch::from_blob(ptr, info.shape, torch::TensorOptions().dtype(src_dtype));
    out = view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
  } else {  // the format does not promise alignment: copy the bytes out first
    auto tmp = torch::empty(info.shape, torch::TensorOptions().dtype(src_dtype));
    std::memcpy(tmp.data_ptr(), ptr, nbytes);
    out = tmp.to(device, dtype, false, /*copy=*/false);
    if (out.data_ptr() == tmp.data_ptr()) out = tmp;
  }
  // Drop the file pages just read: the loader never holds the checkpoint twice.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t abs_begin = data_start_ + info.begin;
  const uint64_t first = (abs_begin + page - 1) / page * page;  // whole pages only
  const uint64_t last = (abs_begin + nbytes) / page * page;
  if (last > first) ::madvise(map_ + first, last - first, MADV_DONTNEED);
  return out;
}

WeightSet WeightSet::open_files(const std::vector<std::string>& files) {
  BGEVL_CHECK_ARG(!files.empty(), "no safetensors files given");
  WeightSet ws;
  for (const auto& f : files) {
    auto file = std::make_shared<SafetensorsFile>(f);
    const size_t idx = ws.files_.size();
    for (const auto& [name, info] : file->tensors()) {
      auto [it, inserted] = ws.where_.emplace(name, idx);
      BGEVL_CHECK_ARG(inserted, "tensor '", name, "' appears in both ", ws.file_paths_[it->second],
                      " and ", f);
    }
    ws.files_.push_back(std::move(file));
    ws.file_paths_.push_back(f);
  }
  return ws;
}

WeightSet WeightSet::open_dir(const std::string& dir) {
  const fs::path d(dir);
  const fs::path index = d / "model.safetensors.index.json";
  const fs::path single = d / "model.safetensors";
  if (fs::exists(index)) {
    json j;
    {
      std::ifstream in(index);
      BGEVL_CHECK(in.good(), Error, "cannot read ", index.string());
      try {
        in >> j;
      } catch (const json::exception& e) {
        throw InvalidArgumentError(
            detail::concat(index.string(), " is not valid JSON (", e.what(), ")"));
      }
    }
    BGEVL_CHECK_ARG(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                    index.string(), " has no \"weight_map\" object");
    std::vector<std::string> shard_names;
    std::map<std::string, std::string> expected;
    for (auto& [tensor, shard] : j["weight_map"].items()) {
      BGEVL_CHECK_ARG(shard.is_string(), index.string(), ": weight_map entry '", tensor,
                      "' is not a file name");
      const auto s = shard.get<std::string>();
      BGEVL_CHECK_ARG(s.find('/') == std::string::npos, index.string(), ": shard name '", s,
                      "' must be a plain file name");
      if (std::find(shard_names.begin(), shard_names.end(), s) == shard_names.end())
        shard_names.push_back(s);
      expected[tensor] = s;
    }
    BGEVL_CHECK_ARG(!shard_names.empty(), index.string(), " names no shards");
    std::vector<std::string> paths;
    for (const auto& s : shard_names) {
      const fs::path p = d / s;
      BGEVL_CHECK(fs::exists(p), FileNotFoundError, "shard ", p.string(), " named by ",
                  index.string(), " is missing");
      paths.push_back(p.string());
    }
    WeightSet ws = open_files(paths);
    for (const auto& [tensor, shard] : expected) {
      auto it = ws.where_.find(tensor);
      BGEVL_CHECK_ARG(it != ws.where_.end(), index.string(), " says tensor '", tensor, "' is in ",
                      shard, " but no shard holds it");
      BGEVL_CHECK_ARG(fs::path(ws.file_paths_[it->second]).filename() == shard, index.string(),
                      " says tensor '", tensor, "' is in ", shard, " but it is in ",
                      ws.file_paths_[it->second]);
    }
    return ws;
  }
  BGEVL_CHECK(fs::exists(single), FileNotFoundError, "no model.safetensors or ",
              "model.safetensors.index.json in ", dir,
              " (only safetensors checkpoints are supported)");
  return open_files({single.string()});
}

std::vector<std::string> WeightSet::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const TensorInfo& WeightSet::info(const std::string& name) const {
  auto it = where_.find(name);
  BGEVL_CHECK_ARG(it != where_.end(), "no tensor '", name, "' in the checkpoint");
  return files_[it->second]->tensors().at(name);
}

torch::Tensor WeightSet::load(const std::string& name, torch::ScalarType dtype,
                              const torch::Device& device) const {
  auto it = where_.find(name);
  BGEVL_CHECK_ARG(it != where_.end(), "no tensor '", name, "' in the checkpoint");
  return files_[it->second]->load(name, dtype, device);
}

}  // namespace bgevl::io
