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
  check_path(path, ".npy file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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

}  // namespace bgevl::io
