// Typed reads of preprocessor_config.json keys, shared by the CLIP and LLaVA-NeXT processors:
// each failure is an InvalidArgumentError naming the file and the key.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "bgevl/errors.h"
#include "io/json.h"

namespace bgevl::vision::config_json {

using nlohmann::json;

// The JSON object in a preprocessor_config.json (io::read_json_file): FileNotFoundError when
// absent, InvalidArgumentError when it is no regular file, unreadable, malformed or not an object.
inline json read_config(const std::string& path) {
  json j = io::read_json_file(path, "preprocessor config");
  if (!j.is_object())
    throw InvalidArgumentError("preprocessor config '" + path + "': expected a JSON object, got " +
                               io::brief(j));
  return j;
}

[[noreturn]] inline void bad_key(const std::string& path, const std::string& key,
                                 const std::string& why) {
  throw InvalidArgumentError("preprocessor config '" + path + "': key '" + key + "' " + why);
}

inline bool get_bool(const json& j, const std::string& path, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) bad_key(path, key, "must be true or false, got " + io::brief(*it));
  return it->get<bool>();
}

// The largest resize edge, crop side or grid tile count a preprocessor config may ask for: the
// BGE-VL models use 224 or 336, and a size of 100000 would only exhaust the memory.
inline constexpr int kMaxSide = 8192;

// A positive integer (JSON integers, or floats with an integral value as Python would accept).
inline int get_positive_int(const json& v, const std::string& path, const std::string& key) {
  if (v.is_number_integer()) {
    // (nlohmann stores a non-negative literal such as 0 as unsigned: check > 0 for both kinds)
    const bool too_big = v.is_number_unsigned()
                             ? v.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max())
                             : v.get<int64_t>() > std::numeric_limits<int>::max();
    if (!too_big && v.get<int64_t>() > 0) return int(v.get<int64_t>());
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == std::floor(d) && d > 0 && d <= double(std::numeric_limits<int>::max())) return int(d);
  }
  bad_key(path, key, "must be a positive integer, got " + io::brief(v));
}

// An image size in pixels: a positive integer of at most kMaxSide.
inline int get_side(const json& v, const std::string& path, const std::string& key) {
  const int n = get_positive_int(v, path, key);
  if (n > kMaxSide)
    bad_key(path, key,
            "is " + std::to_string(n) + ", more than the limit of " + std::to_string(kMaxSide) +
                " pixels");
  return n;
}

// A finite number (float32-representable: the processors compute in float).
inline double get_number(const json& v, const std::string& path, const std::string& key) {
  if (!v.is_number()) bad_key(path, key, "must be a number, got " + io::brief(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > double(std::numeric_limits<float>::max()))
    bad_key(path, key, "must be a finite number, got " + io::brief(v));
  return d;
}

inline std::array<float, 3> get_triplet(const json& j, const std::string& path, const char* key,
                                        const std::array<float, 3>& def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  std::array<float, 3> r{};
  if (it->is_number()) {  // a single value applies to every channel
    r.fill(static_cast<float>(get_number(*it, path, key)));
    return r;
  }
  if (!it->is_array() || it->size() != 3)
    bad_key(path, key, "must be a list of 3 numbers (one per RGB channel), got " + io::brief(*it));
  for (size_t i = 0; i < 3; ++i)
    r[i] = static_cast<float>(
        get_number((*it)[i], path, std::string(key) + "[" + std::to_string(i) + "]"));
  return r;
}

// "resample": only 3 (PIL bicubic) is supported; absent means the processors' default, 3.
inline void check_resample(const json& j, const std::string& path) {
  if (auto it = j.find("resample"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 3)
      bad_key(path, "resample",
              "must be 3 (PIL bicubic); other resampling filters are not supported, got " +
                  io::brief(*it));
  }
}

// "crop_size": an integer (square) or {"height": H, "width": W}; absent leaves h and w as they are.
inline void read_crop_size(const json& j, const std::string& path, int& h, int& w) {
  if (auto it = j.find("crop_size"); it != j.end() && !it->is_null()) {
    if (it->is_number()) {
      h = w = get_side(*it, path, "crop_size");
    } else if (it->is_object() && it->contains("height") && it->contains("width")) {
      h = get_side(it->at("height"), path, "crop_size.height");
      w = get_side(it->at("width"), path, "crop_size.width");
    } else {
      bad_key(path, "crop_size",
              "must be an integer or {\"height\": H, \"width\": W}, got " + io::brief(*it));
    }
  }
}

// do_rescale, rescale_factor, do_normalize, image_mean, image_std into any processor config
// with those fields; absent keys keep the values `c` holds.
template <typename Config>
void read_rescale_normalize(const json& j, const std::string& path, Config& c) {
  c.do_rescale = get_bool(j, path, "do_rescale", c.do_rescale);
  if (auto it = j.find("rescale_factor"); it != j.end() && !it->is_null())
    c.rescale_factor = get_number(*it, path, "rescale_factor");
  c.do_normalize = get_bool(j, path, "do_normalize", c.do_normalize);
  c.mean = get_triplet(j, path, "image_mean", c.mean);
  c.std = get_triplet(j, path, "image_std", c.std);
  // (x - mean) / std: a zero std gives Inf/NaN pixels (transformers would too, silently).
  if (c.do_normalize)
    for (int i = 0; i < 3; ++i)
      if (c.std[i] == 0.0f)
        bad_key(path, "image_std",
                "must not be 0 (channel " + std::to_string(i) + "): normalizing divides by it");
}

}  // namespace bgevl::vision::config_json
