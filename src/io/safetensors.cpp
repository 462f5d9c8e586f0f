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

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/json.h"

namespace bgevl::io {

namespace fs = std::filesystem;

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

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  check_path(path, "safetensors file");
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0 && (errno == ENOENT || errno == ENOTDIR))
    throw FileNotFoundError("safetensors file not found: " + path);
  BGEVL_CHECK(fd_ >= 0, Error, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd_, &st) == 0;
  if (!stat_ok || !S_ISREG(st.st_mode)) {
    const int e = errno;
    ::close(fd_);
    if (stat_ok) throw InvalidArgumentError("not a regular file: " + path);
    throw Error(detail::concat("cannot stat ", path, ": ", std::strerror(e)));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  try {
    BGEVL_CHECK_ARG(size_ >= 8, "safetensors file ", path, " is too small (", size_,
                    " bytes) to hold a header");
    void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    BGEVL_CHECK(m != MAP_FAILED, Error, "cannot mmap ", path, ": ", std::strerror(errno));
    map_ = static_cast<uint8_t*>(m);

    SafetensorsHeader h = parse_safetensors_header(map_, size_, path);
    data_start_ = h.data_start;
    tensors_ = std::move(h.tensors);
    metadata_ = std::move(h.metadata);
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
  if (path_exists(index.string())) {
    const ShardIndex idx = parse_shard_index(
        read_file(index.string(), kMaxJsonFileBytes, "shard index"), index.string());
    const auto& shard_names = idx.shards;
    const auto& expected = idx.weight_map;
    std::vector<std::string> paths;
    for (const auto& s : shard_names) {
      const fs::path p = d / s;
      BGEVL_CHECK(path_exists(p.string()), FileNotFoundError, "shard ", p.string(), " named by ",
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
  BGEVL_CHECK(path_exists(single.string()), FileNotFoundError, "no model.safetensors or ",
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
