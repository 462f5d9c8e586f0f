// Torch-free helpers shared by the C++ tests: fixture paths, scratch folders, small file readers
// and writers (test_util.h adds the libtorch ones; the torch-free tests include only this).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

namespace bgevl::test {

inline std::string fixtures(const std::string& rel) {
  return std::string(BGEVL_FIXTURES_DIR) + "/" + rel;
}
inline std::string shared_data(const std::string& rel) {
  return std::string(BGEVL_SHARED_DATA_DIR) + "/" + rel;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A fresh scratch directory under the system temp dir.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           ("bgevl_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace bgevl::test
