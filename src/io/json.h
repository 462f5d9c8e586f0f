// The one JSON reader of every file bgevl reads (config.json, tokenizer and preprocessor configs,
// safetensors headers and shard indexes, index manifests, dataset annotations): regular files
// only, nesting limited to kMaxJsonDepth levels, and messages that name the file and the key and
// describe a bad value briefly (`brief`) instead of re-serialising it. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "bgevl/errors.h"

namespace bgevl::io {

// Deeper nesting is refused (no file bgevl reads nests more than a few levels).
inline constexpr int kMaxJsonDepth = 64;
// JSON files larger than this are refused.
inline constexpr uint64_t kMaxJsonFileBytes = uint64_t(1) << 30;

// Parses `text`: InvalidArgumentError "<source> is not valid JSON (...)" when malformed, or when it
// nests deeper than kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, const std::string& source);

// Reads and parses a JSON file (io::read_file's checks): FileNotFoundError if absent,
// InvalidArgumentError if not a regular file, too large or malformed.
nlohmann::json read_json_file(const std::string& path, const char* what = "file");

// A short description of a value for error messages: a number, true/false/null, a string cut
// to 40 bytes, or "an array of N values" / "an object with N keys" (never the whole value).
std::string brief(const nlohmann::json& v);

// Reads obj[key] into `out` when present and not null (else `out` keeps its default, as
// transformers' config classes do); a value of the wrong type is an InvalidArgumentError naming
// the file and `where` + key.
template <typename T>
void get_opt(const nlohmann::json& obj, const char* key, T& out, const std::string& file,
             const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw std::runtime_error("not a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw std::runtime_error("not true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw std::runtime_error("not an integer");
      const bool fits =
          it->is_number_unsigned()
              ? it->template get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
              : it->template get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                    (std::is_unsigned_v<T> ||
                     it->template get<int64_t>() <= int64_t(std::numeric_limits<T>::max()));
      if (!fits) throw std::runtime_error("out of range");
    } else {
      if (!it->is_number()) throw std::runtime_error("not a number");
    }
    out = it->get<T>();
  } catch (const std::exception& e) {
    throw InvalidArgumentError(detail::concat(file, ": key '", where, key, "' has the wrong type (",
                                              e.what(), "): ", brief(*it)));
  }
}

// InvalidArgumentError "<file>: <key> is V, outside [lo, hi] (<why>)" unless lo <= v <= hi: config
// values are range-checked before anything is sized by them.
void check_range(int64_t v, int64_t lo, int64_t hi, const std::string& file, const std::string& key,
                 const char* why = nullptr);
// The same for a real number that must be finite and in (0, hi].
void check_positive(double v, double hi, const std::string& file, const std::string& key);

// obj[key], which must be a JSON object; InvalidArgumentError naming the file otherwise.
const nlohmann::json& need_object(const nlohmann::json& obj, const char* key,
                                  const std::string& file);

// obj[key] as a string; nullopt when absent or null. InvalidArgumentError naming `where` when it
// is another type.
std::optional<std::string> opt_string(const nlohmann::json& obj, const char* key,
                                      const std::string& where);

// Calls fn(object, where) for each non-blank line of a JSONL file, `where` being "PATH line N"
// (for messages). FileNotFoundError "PATH: cannot read <what>" when the file cannot be opened;
// InvalidArgumentError naming the line when one is not a JSON object.
void for_each_jsonl(const std::string& path, const std::string& what,
                    const std::function<void(const nlohmann::json&, const std::string&)>& fn);

// The "model_type" and "architectures" of a config.json, for the family registry.
struct ModelTypeInfo {
  std::string model_type;
  std::vector<std::string> architectures;
};
ModelTypeInfo read_model_type(const std::string& config_json_path);

}  // namespace bgevl::io
