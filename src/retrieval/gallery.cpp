// list_gallery: the entries of a folder of images or of a JSONL manifest.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "bgevl/errors.h"
#include "bgevl/index.h"
#include "io/json.h"

namespace fs = std::filesystem;

namespace bgevl {

namespace {

bool is_image_name(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const std::unordered_set<std::string> kExt = {"jpg", "jpeg", "png", "webp",
                                                       "bmp", "tif",  "tiff"};
  return kExt.count(ext) > 0;
}

std::vector<GalleryEntry> read_manifest_lines(const std::string& path) {
  const fs::path base = fs::path(path).parent_path();
  std::vector<GalleryEntry> out;
  io::for_each_jsonl(path, "the manifest", [&](const nlohmann::json& j, const std::string& where) {
    GalleryEntry e;
    const auto p = io::opt_string(j, "path", where);
    BGEVL_CHECK_ARG(p && !p->empty(), where, ": \"path\" is required");
    std::error_code ec;
    e.path = fs::absolute(fs::path(*p).is_absolute() || base.empty() ? fs::path(*p) : base / *p, ec)
                 .lexically_normal()
                 .string();
    e.id = io::opt_string(j, "id", where).value_or(*p);
    BGEVL_CHECK_ARG(!e.id.empty(), where, ": empty \"id\"");
    e.caption = io::opt_string(j, "caption", where);
    e.group = io::opt_string(j, "group", where);
    out.push_back(std::move(e));
  });
  BGEVL_CHECK_ARG(!out.empty(), path, ": lists no images");
  return out;
}

}  // namespace

std::vector<GalleryEntry> list_gallery(const std::string& dir_or_manifest) {
  std::error_code ec;
  const fs::path root(dir_or_manifest);
  if (!fs::exists(root, ec)) throw FileNotFoundError(dir_or_manifest + ": no such folder or file");
  std::vector<GalleryEntry> out;
  if (fs::is_directory(root, ec)) {
    for (fs::recursive_directory_iterator
             it(root, fs::directory_options::skip_permission_denied, ec),
         end;
         it != end; it.increment(ec)) {
      if (ec) break;
      const auto& p = it->path();
      if (!it->is_regular_file(ec) || !is_image_name(p.filename().string())) continue;
      out.push_back({fs::relative(p, root, ec).generic_string(), fs::absolute(p, ec).string(),
                     std::nullopt, std::nullopt});
    }
    BGEVL_CHECK(!ec, Error, dir_or_manifest, ": cannot list (", ec.message(), ")");
    std::sort(out.begin(), out.end(),
              [](const GalleryEntry& a, const GalleryEntry& b) { return a.id < b.id; });
    BGEVL_CHECK_ARG(!out.empty(), dir_or_manifest,
                    ": no images (.jpg .jpeg .png .webp .bmp .tif .tiff) in it or below it");
  } else {
    out = read_manifest_lines(dir_or_manifest);
  }
  std::unordered_set<std::string> ids;
  for (const auto& e : out)
    BGEVL_CHECK_ARG(ids.insert(e.id).second, dir_or_manifest, ": the id '", e.id,
                    "' is listed twice");
  return out;
}

}  // namespace bgevl
