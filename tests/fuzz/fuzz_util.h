// Shared by the libFuzzer targets of tests/fuzz: a per-process scratch folder, input files,
// fixture paths, and the one rule every target follows: bgevl::Error (a refused input) is the
// only acceptable outcome besides success; any other exception, a sanitizer report, a broken
// invariant (BGEVL_FUZZ_CHECK) or a timeout is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bgevl/errors.h"

#ifndef BGEVL_FIXTURES_DIR
#define BGEVL_FIXTURES_DIR "tests/fixtures"
#endif
#ifndef BGEVL_FUZZ_DIR
#define BGEVL_FUZZ_DIR "tests/fuzz"
#endif
#ifndef BGEVL_SHARED_DATA_DIR
#define BGEVL_SHARED_DATA_DIR "../shared/data"
#endif

// An invariant of a successful call: abort (libFuzzer saves the input) when it does not hold.
#define BGEVL_FUZZ_CHECK(cond)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace bgevl::fuzz {

namespace fs = std::filesystem;

// Runs fn(); a bgevl::Error is the documented refusal of a bad input and is swallowed, anything
// else propagates (libFuzzer reports the uncaught exception as a crash).
template <typename Fn>
bool guarded(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const bgevl::Error&) {
    return false;
  }
}

// This process's scratch folder: $BGEVL_FUZZ_TMP (scripts/fuzz.sh sets it), else /dev/shm, else
// the temp dir; named by the pid (libFuzzer's -jobs/-fork run several processes); removed at exit.
inline const fs::path& scratch() {
  // Never destroyed: the exit handler that removes the folder runs after static destructors.
  static const fs::path* const dir = [] {
    std::error_code ec;
    fs::path base;
    if (const char* t = std::getenv("BGEVL_FUZZ_TMP"); t && *t) {
      base = t;
    } else if (fs::is_directory("/dev/shm", ec)) {
      base = "/dev/shm";
    } else {
      base = fs::temp_directory_path();
    }
    auto* d = new fs::path(base / ("bgevl-fuzz-" + std::to_string(::getpid())));
    fs::remove_all(*d, ec);
    fs::create_directories(*d);
    std::atexit([] {
      std::error_code e;
      fs::remove_all(scratch(), e);
    });
    return d;
  }();
  return *dir;
}

// A folder under scratch(), created once.
inline fs::path scratch_dir(const std::string& name) {
  const fs::path d = scratch() / name;
  fs::create_directories(d);
  return d;
}

inline void write_file(const fs::path& p, const void* data, size_t size) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  BGEVL_FUZZ_CHECK(f != nullptr);
  BGEVL_FUZZ_CHECK(size == 0 || std::fwrite(data, 1, size, f) == size);
  BGEVL_FUZZ_CHECK(std::fclose(f) == 0);
}
inline void write_file(const fs::path& p, std::string_view s) { write_file(p, s.data(), s.size()); }

inline void remove_file(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
}

inline std::string fixture(const std::string& rel) {
  return std::string(BGEVL_FIXTURES_DIR) + "/" + rel;
}
// The real vocabularies beside the checkout (CI has them); "" when absent.
inline std::string shared_data(const std::string& rel) {
  const std::string p = std::string(BGEVL_SHARED_DATA_DIR) + "/" + rel;
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p : std::string();
}

inline std::string read_fixture(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  BGEVL_FUZZ_CHECK(f != nullptr);
  std::string out;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  std::fclose(f);
  return out;
}

// Copies fixture files (symbolic links followed) into `dir`.
inline void copy_fixtures(const std::string& from_dir, const fs::path& dir,
                          const std::vector<std::string>& names) {
  for (const auto& n : names)
    fs::copy_file(fixture(from_dir + "/" + n), dir / n, fs::copy_options::overwrite_existing);
}

// The input cut at its first `max_parts - 1` NUL bytes (a text format's files, one after another).
inline std::vector<std::string_view> split_nul(const uint8_t* data, size_t size, size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < max_parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  parts.push_back(rest);
  return parts;
}

}  // namespace bgevl::fuzz
