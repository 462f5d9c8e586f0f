#include "io/model_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "bgevl/errors.h"

namespace bgevl::io {

namespace fs = std::filesystem;

namespace {

fs::path hub_cache_dir() {
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return fs::path(c);
  if (const char* h = std::getenv("HF_HOME"); h && *h) return fs::path(h) / "hub";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return fs::path(x) / "huggingface" / "hub";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".cache" / "huggingface" / "hub";
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

std::string resolve_model_dir(const std::string& path_or_id, const std::string& revision) {
  BGEVL_CHECK_ARG(!path_or_id.empty(), "model path or hub id is empty");
  std::error_code ec;
  if (fs::is_directory(path_or_id, ec)) return path_or_id;
  BGEVL_CHECK_ARG(!fs::exists(path_or_id, ec), "model path ", path_or_id,
                  " is a file; give the checkpoint folder");

  static const std::regex hub_id(R"(^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$)");
  BGEVL_CHECK(std::regex_match(path_or_id, hub_id), FileNotFoundError,
              "model folder not found: ", path_or_id);

  const fs::path cache = hub_cache_dir();
  std::string repo = path_or_id;
  const auto slash = repo.find('/');
  const fs::path model_root =
      cache / ("models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1));
  BGEVL_CHECK(fs::is_directory(model_root, ec), FileNotFoundError, "'", path_or_id,
              "' is neither a folder nor in the Hugging Face cache (looked for ",
              model_root.string(),
              "; bgevl never downloads: fetch it with `huggingface-cli download ", path_or_id,
              "` or give the folder)");
  std::string rev = revision;
  const fs::path ref = model_root / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) {
    std::ifstream in(ref);
    std::string line;
    std::getline(in, line);
    rev = trim(line);
  }
  const fs::path snap = model_root / "snapshots" / rev;
  BGEVL_CHECK(!rev.empty() && fs::is_directory(snap, ec), FileNotFoundError, "'", path_or_id,
              "' is in the Hugging Face cache at ", model_root.string(), " but revision '",
              revision, "' has no snapshot (looked for ", snap.string(), ")");
  return snap.string();
}

}  // namespace bgevl::io
