#include "io/json.h"

#include <filesystem>
#include <fstream>

namespace bgevl::io {

using json = nlohmann::json;

json read_json_file(const std::string& path) {
  std::error_code ec;
  BGEVL_CHECK(std::filesystem::exists(path, ec), FileNotFoundError, "file not found: ", path);
  // A FIFO or a device would block the open or never end: regular files only.
  BGEVL_CHECK_ARG(std::filesystem::is_regular_file(path, ec), path,
                  " is not a regular file (a FIFO, device or socket)");
  std::ifstream in(path);
  BGEVL_CHECK(in.good(), Error, "cannot read ", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw InvalidArgumentError(detail::concat(path, " is not valid JSON (", e.what(), ")"));
  }
}

const json& need_object(const json& obj, const char* key, const std::string& file) {
  auto it = obj.find(key);
  BGEVL_CHECK_ARG(it != obj.end(), file, ": missing needed key '", key, "'");
  BGEVL_CHECK_ARG(it->is_object(), file, ": key '", key, "' must be an object");
  return *it;
}

std::optional<std::string> opt_string(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  BGEVL_CHECK_ARG(it->is_string(), where, ": \"", key, "\" must be a string or null");
  return it->get<std::string>();
}

void for_each_jsonl(const std::string& path, const std::string& what,
                    const std::function<void(const json&, const std::string&)>& fn) {
  std::ifstream in(path);
  BGEVL_CHECK(bool(in), FileNotFoundError, path, ": cannot read ", what);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(n);
    const auto j = json::parse(line, nullptr, false);
    BGEVL_CHECK_ARG(!j.is_discarded() && j.is_object(), where, ": not a JSON object");
    fn(j, where);
  }
}

ModelTypeInfo read_model_type(const std::string& path) {
  const json j = read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object(), path, " is not a JSON object");
  ModelTypeInfo info;
  if (auto it = j.find("model_type"); it != j.end() && it->is_string())
    info.model_type = it->get<std::string>();
  if (auto it = j.find("architectures"); it != j.end() && it->is_array())
    for (const auto& a : *it)
      if (a.is_string()) info.architectures.push_back(a.get<std::string>());
  return info;
}

}  // namespace bgevl::io
