// Files written atomically (a temporary file beside the destination, renamed over it only once
// everything is written), NumPy's .npy format (version 1.0: float32 / float16 [N, D]) written and
// read back through a memory map, and the small file helpers the index needs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace bgevl::io {

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

// The .npy header of a C-order [rows, cols] array of `dtype` (kFloat32 or kHalf).
std::string npy_header(int64_t rows, int64_t cols, torch::ScalarType dtype);
// A [N, D] tensor as .npy bytes written to `out`, converted to `dtype` (kFloat32 or kHalf).
void write_npy(AtomicFile& out, const torch::Tensor& t, torch::ScalarType dtype = torch::kFloat32);
// `s` written to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& s);

// A 2-D float32 / float16 .npy file mapped into memory: `tensor` is a CPU view of the file's
// data that keeps the mapping alive. InvalidArgumentError for anything else (other dtypes,
// Fortran order, a size that does not match the header); FileNotFoundError if absent.
torch::Tensor map_npy(const std::string& path);

// The SHA-256 of bytes, as 64 lowercase hex digits.
std::string sha256_hex(const std::string& data);

// Whole file into memory; FileNotFoundError / InvalidArgumentError (a folder, unreadable, or
// larger than `max_bytes`) with the reason.
std::string read_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 31);

}  // namespace bgevl::io
