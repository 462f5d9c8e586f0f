#include "io/model_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/util.h"

namespace bgevl::io {

namespace fs = std::filesystem;

namespace {

bool offline_env() {
  const char* v = std::getenv("HF_HUB_OFFLINE");
  if (!v) return false;
  std::string s(v);
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s == "1" || s == "ON" || s == "YES" || s == "TRUE";
}

}  // namespace

std::string resolve_model_dir(const std::string& path_or_id, const std::string& revision,
                              const HubAccess& access) {
  BGEVL_CHECK_ARG(!path_or_id.empty(), "model path or hub id is empty");
  BGEVL_CHECK_ARG(path_or_id.find('\0') == std::string::npos, "the model path contains a NUL byte");
  std::error_code ec;
  if (fs::is_directory(path_or_id, ec)) return path_or_id;
  BGEVL_CHECK_ARG(!fs::exists(path_or_id, ec), "model path ", path_or_id,
                  " is a file; give the checkpoint folder");

  static const std::regex hub_id(R"(^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$)");
  BGEVL_CHECK(std::regex_match(path_or_id, hub_id), FileNotFoundError,
              "model folder not found: ", path_or_id);

  static const std::regex rev_ok(R"(^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$)");
  BGEVL_CHECK_ARG(std::regex_match(revision, rev_ok) && revision.find("..") == std::string::npos,
                  "revision '", revision, "' is not a branch, tag or commit name");
  const fs::path cache = hub_cache_dir(access);
  std::string repo = path_or_id;
  const auto slash = repo.find('/');
  const fs::path model_root =
      cache / ("models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1));
  std::string rev = revision;
  const fs::path ref = model_root / "refs" / revision;
  if (fs::is_regular_file(ref, ec)) {
    const std::string text = read_file(ref.string(), 1 << 16, "hub ref file");
    rev = trim_space(text.substr(0, text.find('\n')));
  }
  const fs::path snap = model_root / "snapshots" / rev;
  if (!rev.empty() && fs::is_directory(snap, ec)) return snap.string();
  const bool offline = access.local_files_only || offline_env();
  BGEVL_CHECK(!offline, FileNotFoundError, "'", path_or_id, "' at revision '", revision,
              "' is neither a folder nor in the Hugging Face cache (looked for ", snap.string(),
              ") and downloads are off (",
              access.local_files_only ? "local_files_only" : "HF_HUB_OFFLINE is set",
              "): download it where the network is reachable, or give the folder");
  return hub_download(path_or_id, revision, access);
}

}  // namespace bgevl::io
