// Small torch-free helpers of the io layer: an exclusive lock file, base64, whitespace trimming.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace bgevl::io {

// An exclusive flock on `path` (created, with its folder), held until destroyed: processes
// that write the same file (a hub blob, an index merge) take turns. Error when it cannot be
// created.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// Standard base64 with padding.
std::string base64_encode(const void* data, size_t size);
inline std::string base64_encode(const std::string& s) { return base64_encode(s.data(), s.size()); }
// Standard or URL-safe alphabet, padding optional, whitespace ignored; nullopt when malformed.
std::optional<std::string> base64_decode(const std::string& s);

// s without leading and trailing whitespace.
std::string trim_space(std::string s);

}  // namespace bgevl::io
