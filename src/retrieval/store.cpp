#include "retrieval/store.h"

#include <sys/stat.h>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl::retrieval {

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || name.empty() || name[0] == '/') return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

torch::ScalarType dtype_from_name(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float16") return torch::kHalf;
  throw InvalidArgumentError("index dtype must be float32 or float16, got '" + name + "'");
}

const char* dtype_name(torch::ScalarType t) {
  if (t == torch::kFloat32) return "float32";
  if (t == torch::kHalf) return "float16";
  throw InvalidArgumentError("index vectors are stored as float32 or float16");
}

std::string dump_line(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

namespace {
nlohmann::ordered_json shards_json(const std::vector<ShardFile>& s) {
  auto out = nlohmann::ordered_json::array();
  for (const auto& f : s) out.push_back({{"file", f.file}, {"rows", f.rows}});
  return out;
}

std::vector<ShardFile> shards_from(const nlohmann::json& j, const std::string& where) {
  std::vector<ShardFile> out;
  if (j.is_null()) return out;
  BGEVL_CHECK_ARG(j.is_array(), where, " is not a list");
  for (const auto& s : j) {
    BGEVL_CHECK_ARG(s.is_object() && s.value("file", nlohmann::json()).is_string() &&
                        s.value("rows", nlohmann::json()).is_number_integer(),
                    where, ": each shard needs \"file\" and \"rows\"");
    out.push_back({s["file"].get<std::string>(), s["rows"].get<int64_t>()});
    BGEVL_CHECK_ARG(out.back().rows >= 0, where, ": negative row count");
  }
  return out;
}
}  // namespace

nlohmann::ordered_json Manifest::to_json(int64_t entries) const {
  nlohmann::ordered_json j;
  j["format"] = "bgevl-index";
  j["format_version"] = kFormatVersion;
  j["bgevl_version"] = BGEVL_VERSION_STRING;
  j["model"] = model;
  j["model_dir"] = model_dir;
  j["revision"] = revision;
  j["family"] = family;
  j["dtype"] = dtype;
  j["dim"] = dim;
  j["index_type"] = index_type;
  j["ann_params"] = ann_params;
  j["counts"] = {{"entries", entries},
                 {"rows", rows},
                 {"duplicates", duplicates},
                 {"skipped", static_cast<int64_t>(skipped.size())}};
  j["generation"] = generation;
  j["metadata"] = metadata;
  j["shards"] = shards_json(shards);
  j["feature_shards"] = shards_json(feature_shards);
  j["ann_file"] = ann_file.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(ann_file);
  auto sk = nlohmann::ordered_json::array();
  for (const auto& s : skipped)
    sk.push_back({{"id", s.id}, {"path", s.path}, {"reason", s.reason}});
  j["skipped"] = sk;
  return j;
}

bool has_manifest(const std::string& dir) {
  struct stat st {};
  return ::stat(join(dir, "manifest.json").c_str(), &st) == 0;
}

Manifest read_manifest(const std::string& dir) {
  const std::string path = join(dir, "manifest.json");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw FileNotFoundError(dir + ": no such index folder");
  if (::stat(path.c_str(), &st) != 0)
    throw FileNotFoundError(dir + " holds no complete index (no manifest.json" +
                            std::string(::stat(join(dir, "build").c_str(), &st) == 0
                                            ? "; an unfinished build is there: rerun `bgevl "
                                              "index` with the same arguments to finish it)"
                                            : ")"));
  const auto j = io::read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object() && j.value("format", "") == "bgevl-index", path,
                  ": not a bgevl index manifest");
  BGEVL_CHECK_ARG(j.value("format_version", 0) == kFormatVersion, path, ": index format version ",
                  j.value("format_version", 0), " is not the one this bgevl reads (",
                  kFormatVersion, ")");
  Manifest m;
  const std::string w = path + ": ";
  io::get_opt(j, "model", m.model, path, "");
  io::get_opt(j, "model_dir", m.model_dir, path, "");
  io::get_opt(j, "revision", m.revision, path, "");
  io::get_opt(j, "family", m.family, path, "");
  io::get_opt(j, "dtype", m.dtype, path, "");
  io::get_opt(j, "dim", m.dim, path, "");
  io::get_opt(j, "index_type", m.index_type, path, "");
  io::get_opt(j, "generation", m.generation, path, "");
  io::get_opt(j, "metadata", m.metadata, path, "");
  io::get_opt(j, "ann_file", m.ann_file, path, "");
  if (j.contains("ann_params") && j["ann_params"].is_object()) m.ann_params = j["ann_params"];
  const auto& counts = j.value("counts", nlohmann::json::object());
  if (counts.is_object()) {
    io::get_opt(counts, "rows", m.rows, path, "counts.");
    io::get_opt(counts, "duplicates", m.duplicates, path, "counts.");
  }
  m.shards = shards_from(j.value("shards", nlohmann::json()), w + "shards");
  m.feature_shards = shards_from(j.value("feature_shards", nlohmann::json()), w + "feature_shards");
  for (const auto& s : j.value("skipped", nlohmann::json::array()))
    if (s.is_object())
      m.skipped.push_back({s.value("id", ""), s.value("path", ""), s.value("reason", "")});
  dtype_from_name(m.dtype);
  BGEVL_CHECK_ARG(m.dim > 0 && !m.metadata.empty(), w, "no dimension or metadata file");
  int64_t rows = 0;
  for (const auto& s : m.shards) rows += s.rows;
  BGEVL_CHECK_ARG(rows == m.rows, w, "the shards hold ", rows, " rows, the counts say ", m.rows);
  return m;
}

nlohmann::ordered_json record_json(const IndexRecord& r) {
  nlohmann::ordered_json j = {
      {"id", r.id}, {"path", r.path}, {"size", r.size}, {"sha256", r.sha256}, {"row", r.row}};
  if (r.caption) j["caption"] = *r.caption;
  if (r.group) j["group"] = *r.group;
  return j;
}

IndexRecord record_from_json(const nlohmann::json& j, const std::string& where) {
  BGEVL_CHECK_ARG(j.is_object() && j.value("id", nlohmann::json()).is_string() &&
                      j.value("row", nlohmann::json()).is_number_integer(),
                  where, ": not an index record (needs \"id\" and \"row\")");
  IndexRecord r;
  r.id = j["id"].get<std::string>();
  r.path = j.value("path", "");
  r.size = j.value("size", int64_t(0));
  r.sha256 = j.value("sha256", "");
  r.row = j["row"].get<int64_t>();
  if (j.contains("caption") && j["caption"].is_string())
    r.caption = j["caption"].get<std::string>();
  if (j.contains("group") && j["group"].is_string()) r.group = j["group"].get<std::string>();
  return r;
}

std::vector<IndexRecord> read_records(const std::string& path) {
  std::vector<IndexRecord> out;
  io::for_each_jsonl(path, "the index metadata",
                     [&](const nlohmann::json& j, const std::string& w) {
                       out.push_back(record_from_json(j, w));
                     });
  return out;
}

}  // namespace bgevl::retrieval
