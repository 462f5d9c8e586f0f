// Internals shared by the image decoders (decode.cpp, decode_png.cpp; built only with
// BGEVL_WITH_DECODING, the decoders' libraries come with that option) and the header probe
// (probe.cpp, every build: it uses the byte readers only).
#pragma once

#include <cstdint>
#include <string>

#include "bgevl/errors.h"
#include "vision/image.h"

namespace bgevl::vision::decode_detail {

// PIL's Image.MAX_IMAGE_PIXELS: above twice this, Image.open raises DecompressionBombError.
inline constexpr uint64_t kMaxPixels = 2ull * 89478485ull;

[[noreturn]] inline void fail(const std::string& name, const std::string& why) {
  throw InvalidArgumentError("cannot decode image '" + name + "': " + why);
}

inline uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
inline uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

inline void check_pixels(const std::string& name, uint64_t w, uint64_t h) {
  if (w == 0 || h == 0) fail(name, "image has no pixels");
  if (w * h > kMaxPixels)
    fail(name, detail::concat("image of ", w, "x", h, " pixels exceeds the limit of ", kMaxPixels,
                              " pixels (PIL: DecompressionBombError)"));
}

// PngImagePlugin as PIL 9.4 reads it, through libpng (decode_png.cpp).
Image decode_png(const uint8_t* data, size_t size, const std::string& name);

}  // namespace bgevl::vision::decode_detail
