// safetensors reading: memory-mapped, header validated before any tensor is made, single file or
// sharded (model.safetensors.index.json). Tensors are addressed by their Hugging Face names.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_header.h"

namespace bgevl::io {

// One memory-mapped .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor converted to dtype on device. The bytes are read straight from the mapping; the
  // pages are released again after the copy, so loading a model never holds a second copy.
  torch::Tensor load(const std::string& name, torch::ScalarType dtype,
                     const torch::Device& device) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All the weights of a model folder: model.safetensors, or the shards an index names.
class WeightSet {
 public:
  // Opens `dir/model.safetensors.index.json` (sharded) or `dir/model.safetensors`.
  static WeightSet open_dir(const std::string& dir);
  // Opens given files (tests, or checkpoints with other names).
  static WeightSet open_files(const std::vector<std::string>& files);

  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor load(const std::string& name, torch::ScalarType dtype,
                     const torch::Device& device) const;
  const std::vector<std::string>& files() const { return file_paths_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_paths_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace bgevl::io
