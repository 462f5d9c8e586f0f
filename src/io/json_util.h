#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace bgevl::io {
// Parses a JSON file: FileNotFoundError if absent, InvalidArgumentError if malformed.
nlohmann::json read_json_file(const std::string& path);
}  // namespace bgevl::io
