#include "io/json.h"

#include <cmath>

#include "io/file.h"

namespace bgevl::io {

using json = nlohmann::json;

namespace {
struct TooDeep {};
}  // namespace

json parse_json(std::string_view text, const std::string& source) {
  // The parser itself keeps its own stack, but anything that walks a value recursively (dump,
  // comparisons, the config readers) would not: depth is limited while parsing.
  const json::parser_callback_t limit = [](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw TooDeep{};
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const TooDeep&) {
    throw InvalidArgumentError(detail::concat(
        source, " is not valid JSON here: it nests deeper than ", kMaxJsonDepth, " levels"));
  } catch (const json::exception& e) {
    throw InvalidArgumentError(detail::concat(source, " is not valid JSON (", e.what(), ")"));
  }
}

json read_json_file(const std::string& path, const char* what) {
  return parse_json(read_file(path, kMaxJsonFileBytes, what), path);
}

std::string brief(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      return detail::concat("an array of ", v.size(), v.size() == 1 ? " value" : " values");
    case json::value_t::object:
      return detail::concat("an object with ", v.size(), v.size() == 1 ? " key" : " keys");
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (s.size() <= 40) return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      size_t cut = 40;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole chars
      return json(s.substr(0, cut)).dump(-1, ' ', false, json::error_handler_t::replace) +
             detail::concat("... (", s.size(), " bytes)");
    }
    case json::value_t::discarded:
      return "nothing";
    default:
      return v.dump();  // a number, true, false or null
  }
}

void check_range(int64_t v, int64_t lo, int64_t hi, const std::string& file, const std::string& key,
                 const char* why) {
  BGEVL_CHECK_ARG(v >= lo && v <= hi, file, ": ", key, " is ", v, ", outside [", lo, ", ", hi, "]",
                  why ? detail::concat(" (", why, ")") : std::string());
}

void check_positive(double v, double hi, const std::string& file, const std::string& key) {
  BGEVL_CHECK_ARG(std::isfinite(v) && v > 0 && v <= hi, file, ": ", key, " is ", v,
                  ", but must be a finite number in (0, ", hi, "]");
}

const json& need_object(const json& obj, const char* key, const std::string& file) {
  auto it = obj.find(key);
  BGEVL_CHECK_ARG(it != obj.end(), file, ": missing needed key '", key, "'");
  BGEVL_CHECK_ARG(it->is_object(), file, ": key '", key, "' must be an object, got ", brief(*it));
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
  const std::string text = read_file(path, kMaxFileBytes, what.c_str());
  int64_t n = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + " line " + std::to_string(n);
    json j;
    try {
      j = parse_json(line, where);
    } catch (const InvalidArgumentError&) {
      throw InvalidArgumentError(where + ": not a JSON object");
    }
    BGEVL_CHECK_ARG(j.is_object(), where, ": not a JSON object");
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
