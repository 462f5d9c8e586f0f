#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "bgevl/errors.h"

namespace bgevl::io {

void check_path(const std::string& path, const char* what) {
  BGEVL_CHECK_ARG(path.find('\0') == std::string::npos, what, " path '", path.c_str(),
                  "...' contains a NUL byte");
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return !path.empty() && path.find('\0') == std::string::npos && ::stat(path.c_str(), &st) == 0;
}

namespace {
struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};
}  // namespace

std::string read_file(const std::string& path, uint64_t max_bytes, const char* what) {
  check_path(path, what);
  // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      throw FileNotFoundError(detail::concat(what, " not found: '", path, "'"));
    throw InvalidArgumentError(
        detail::concat("cannot open ", what, " '", path, "': ", std::strerror(e)));
  }
  Fd guard{fd};
  struct stat st {};
  BGEVL_CHECK_ARG(::fstat(fd, &st) == 0, "cannot stat ", what, " '", path,
                  "': ", std::strerror(errno));
  BGEVL_CHECK_ARG(!S_ISDIR(st.st_mode), what, " '", path, "' is a directory, not a file");
  BGEVL_CHECK_ARG(S_ISREG(st.st_mode), what, " '", path,
                  "' is not a regular file (a FIFO, device or socket)");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  BGEVL_CHECK_ARG(size <= max_bytes, what, " '", path, "' is ", size,
                  " bytes, larger than the limit of ", max_bytes, " bytes");
  std::string out(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    BGEVL_CHECK_ARG(n >= 0, "cannot read ", what, " '", path, "': ", std::strerror(errno));
    BGEVL_CHECK_ARG(n > 0, what, " '", path, "' became shorter while being read (", done, " of ",
                    size, " bytes)");
    done += static_cast<size_t>(n);
  }
  return out;
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  check_path(path_, "output file");
  static std::atomic<uint64_t> serial{0};  // threads of one process writing the same name
  struct stat st {};
  const bool exists = ::stat(path_.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) throw Error(path_ + " is a folder; give a file name");
  // A device or a pipe (/dev/stdout, /dev/full) is written in place; a regular file is written
  // beside and renamed over, so that a failure never leaves a half-written file behind.
  tmp_ = exists && !S_ISREG(st.st_mode)
             ? path_
             : path_ + ".tmp" + std::to_string(::getpid()) + "." + std::to_string(serial++);
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

void write_file_atomic(const std::string& path, const std::string& s) {
  AtomicFile f(path);
  f.write(s);
  f.commit();
}

// SHA-256 (FIPS 180-4).
std::string sha256_hex(const std::string& data) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::string msg = data;
  const uint64_t bits = uint64_t(data.size()) * 8;
  msg.push_back('\x80');
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* b = reinterpret_cast<const unsigned char*>(msg.data() + off + 4 * i);
      w[i] = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 =
          hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h)
    for (int i = 28; i >= 0; i -= 4) out.push_back(hex[(v >> i) & 0xf]);
  return out;
}

}  // namespace bgevl::io
