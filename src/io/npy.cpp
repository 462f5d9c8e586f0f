#include "io/npy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "bgevl/errors.h"

namespace bgevl::io {

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

std::string npy_header(int64_t rows, int64_t cols, torch::ScalarType dtype) {
  BGEVL_CHECK_ARG(dtype == torch::kFloat32 || dtype == torch::kHalf,
                  ".npy files are written as float32 or float16");
  std::string header = std::string("{'descr': '") + (dtype == torch::kHalf ? "<f2" : "<f4") +
                       "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
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
  return std::string(magic, sizeof(magic)) + header;
}

void write_npy(AtomicFile& out, const torch::Tensor& t, torch::ScalarType dtype) {
  BGEVL_CHECK_ARG(t.dim() == 2, "write_npy takes a [N, D] tensor");
  auto c = t.to(torch::kCPU, dtype).contiguous();
  out.write(npy_header(c.size(0), c.size(1), dtype));
  out.write(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
}

void write_file_atomic(const std::string& path, const std::string& s) {
  AtomicFile f(path);
  f.write(s);
  f.commit();
}

namespace {
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, size);
  }
};
}  // namespace

torch::Tensor map_npy(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw FileNotFoundError(path + ": no such file");
    throw InvalidArgumentError(path + ": cannot open (" + std::strerror(errno) + ")");
  }
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  auto map = std::make_shared<Mapping>();
  if (ok && st.st_size > 0) {
    map->size = static_cast<size_t>(st.st_size);
    map->addr = ::mmap(nullptr, map->size, PROT_READ, MAP_SHARED, fd, 0);
    if (map->addr == MAP_FAILED) map->addr = nullptr;
  }
  ::close(fd);
  BGEVL_CHECK_ARG(ok && map->addr, path, ": not a readable .npy file");
  const auto* p = static_cast<const unsigned char*>(map->addr);
  BGEVL_CHECK_ARG(map->size >= 10 && std::memcmp(p, "\x93NUMPY", 6) == 0, path,
                  ": not a .npy file (bad magic)");
  size_t hlen = 0, off = 0;
  if (p[6] == 1) {
    hlen = p[8] | (p[9] << 8);
    off = 10;
  } else {
    BGEVL_CHECK_ARG(map->size >= 12, path, ": truncated .npy header");
    hlen = p[8] | (p[9] << 8) | (size_t(p[10]) << 16) | (size_t(p[11]) << 24);
    off = 12;
  }
  BGEVL_CHECK_ARG(off + hlen <= map->size, path, ": truncated .npy header");
  const std::string h(reinterpret_cast<const char*>(p + off), hlen);
  const bool f4 = h.find("'descr': '<f4'") != std::string::npos;
  const bool f2 = h.find("'descr': '<f2'") != std::string::npos;
  BGEVL_CHECK_ARG(f4 || f2, path, ": only little-endian float32/float16 .npy files are read");
  BGEVL_CHECK_ARG(h.find("'fortran_order': False") != std::string::npos, path,
                  ": Fortran-order arrays are not read");
  long long rows = -1, cols = -1;
  const auto s = h.find("'shape': (");
  BGEVL_CHECK_ARG(s != std::string::npos &&
                      std::sscanf(h.c_str() + s, "'shape': (%lld, %lld)", &rows, &cols) == 2 &&
                      rows >= 0 && cols > 0,
                  path, ": the .npy shape is not [rows, columns]");
  const size_t esize = f4 ? 4 : 2;
  const size_t data = off + hlen;
  BGEVL_CHECK_ARG(map->size - data == size_t(rows) * size_t(cols) * esize, path,
                  ": the file size does not match its .npy header (", rows, " x ", cols,
                  "): truncated or corrupt");
  void* ptr = const_cast<unsigned char*>(p + data);
  return torch::from_blob(
      ptr, {rows, cols}, [map](void*) {},
      torch::TensorOptions().dtype(f4 ? torch::kFloat32 : torch::kHalf));
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw FileNotFoundError(path + ": no such file");
    throw InvalidArgumentError(path + ": " + std::strerror(errno));
  }
  BGEVL_CHECK_ARG(S_ISREG(st.st_mode), path, ": not a regular file");
  BGEVL_CHECK_ARG(uint64_t(st.st_size) <= max_bytes, path, ": larger than ", max_bytes, " bytes");
  std::ifstream in(path, std::ios::binary);
  BGEVL_CHECK_ARG(bool(in), path, ": cannot read (", std::strerror(errno), ")");
  std::string out(static_cast<size_t>(st.st_size), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  BGEVL_CHECK_ARG(in.gcount() == static_cast<std::streamsize>(out.size()), path,
                  ": read fewer bytes than its size");
  return out;
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
