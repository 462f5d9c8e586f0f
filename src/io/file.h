// Files, read and written safely (torch-free, shared by every layer that touches the disk):
// only regular files are read (checked with fstat on the open descriptor, which is opened without
// blocking, so a FIFO or a device never hangs or streams forever), reads are capped by the file's
// size and a limit, paths with NUL bytes are refused, and files are written beside their
// destination and renamed over it only once every byte, the flush and the close succeeded.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace bgevl::io {

// The most a whole-file read takes by default (2 GiB).
inline constexpr uint64_t kMaxFileBytes = uint64_t(1) << 31;

// InvalidArgumentError "<what> path '...' contains a NUL byte" when `path` has one (the C library
// would open the name cut at it).
void check_path(const std::string& path, const char* what = "file");

// The whole of a regular file. FileNotFoundError "<what> not found: 'PATH'" when absent;
// InvalidArgumentError when it is a folder, a FIFO, a device or a socket, larger than
// `max_bytes`, unreadable, or when it changes size while being read. `what` names the file's
// role in messages ("image file", "vocabulary file", ...).
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxFileBytes,
                      const char* what = "file");

// Whether `path` names something that exists (false for an empty or NUL-containing name).
bool path_exists(const std::string& path);

// A file being written: opened at once (so an unwritable destination fails before any work),
// and moved to its name by commit(). Destroyed without commit(), it leaves nothing behind and
// whatever was at `path` before is untouched.
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

// `s` written to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& s);

// The SHA-256 of bytes, as 64 lowercase hex digits.
std::string sha256_hex(const std::string& data);

}  // namespace bgevl::io
