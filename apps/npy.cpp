#include "npy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bgevl/errors.h"

namespace bgevl::app {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  struct stat st {};
  const bool exists = ::stat(path_.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) throw Error(path_ + " is a folder; give a file name");
  // A device or a pipe (/dev/stdout, /dev/full) is written in place; a regular file is written
  // beside and renamed over, so that a failure never leaves a half-written file behind.
  tmp_ = exists && !S_ISREG(st.st_mode) ? path_ : path_ + ".tmp" + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_)
    throw Error("cannot write " + path_ + " (" + std::strerror(errno) +
                "): check that its folder exists and is writable");
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    if (tmp_ != path_) std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t size) {
  if (size && std::fwrite(data, 1, size, f_) != size)
    throw Error("failed writing " + path_ + " (" + std::strerror(errno) + ")");
}

void AtomicFile::commit() {
  const bool in_place = tmp_ == path_;
  // fsync fails with EINVAL on pipes and some devices: only a regular file needs it.
  const bool ok = std::fflush(f_) == 0 && (in_place || ::fsync(::fileno(f_)) == 0);
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) {
    if (!in_place) std::remove(tmp_.c_str());
    throw Error("failed writing " + path_ + " (" + std::strerror(ok ? errno : err) + ")");
  }
  if (!in_place && std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp_.c_str());
    throw Error("cannot create " + path_ + " (" + std::strerror(e) + ")");
  }
}

void write_npy(AtomicFile& out, const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(c.size(0)) + ", " + std::to_string(c.size(1)) + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char magic[] = {'\x93',
                        'N',
                        'U',
                        'M',
                        'P',
                        'Y',
                        1,
                        0,
                        static_cast<char>(len & 0xff),
                        static_cast<char>(len >> 8)};
  out.write(magic, sizeof(magic));
  out.write(header);
  out.write(c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
}

}  // namespace bgevl::app
