// Writing .npy files (NumPy's format, version 1.0) and their companions atomically: into a
// temporary file beside the destination, renamed over it only once everything is written.
#pragma once

#include <torch/torch.h>

#include <cstdio>
#include <string>

namespace bgevl::app {

// A file being written: opened at once (so an unwritable destination fails before any work),
// and moved to its name by commit(). Destroyed without commit(), it leaves nothing behind.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // Flushes, syncs, closes and renames; bgevl::Error on any failure (a full disk included).
  void commit();
  const std::string& path() const { return path_; }
  // A device or a pipe, written in place (no temporary file, nothing renamed).
  bool in_place() const { return tmp_ == path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// A float32 [N, D] tensor as .npy bytes written to `out`.
void write_npy(AtomicFile& out, const torch::Tensor& t);

}  // namespace bgevl::app
