// Image sizes from the first bytes of a file, without decoding (vision/image.h: probe_image).
#include <algorithm>
#include <cstring>

#include "vision/decode_detail.h"
#include "vision/image.h"

namespace bgevl::vision {

namespace {

using decode_detail::be32;
using decode_detail::le16;
using decode_detail::le32;
uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }

bool starts(const uint8_t* d, size_t n, const char* magic, size_t len) {
  return n >= len && std::memcmp(d, magic, len) == 0;
}

void jpeg_size(const uint8_t* d, size_t n, ImageHeader& h) {
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return;  // not at a marker: corrupt, the decoder will say so
    const uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // no length
      i += 2;
      continue;
    }
    const size_t len = be16(d + i + 2);
    if (len < 2) return;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): P(1) Y(2) X(2).
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (i + 9 > n) return;
      h.height = be16(d + i + 5);
      h.width = be16(d + i + 7);
      return;
    }
    i += 2 + len;
  }
}

// The size of a VP8 or VP8L bitstream chunk at c (n bytes left), 0x0 if it is neither.
void webp_bitstream_size(const uint8_t* c, size_t n, int64_t& w, int64_t& h) {
  if (n >= 13 && std::memcmp(c, "VP8L", 4) == 0) {
    const uint32_t b = le32(c + 9);
    w = 1 + (b & 0x3FFF);
    h = 1 + ((b >> 14) & 0x3FFF);
  } else if (n >= 18 && std::memcmp(c, "VP8 ", 4) == 0) {
    w = le16(c + 14) & 0x3FFF;
    h = le16(c + 16) & 0x3FFF;
  }
}

void webp_size(const uint8_t* d, size_t n, ImageHeader& h) {
  if (n < 30) return;
  const uint8_t* c = d + 12;
  if (std::memcmp(c, "VP8X", 4) == 0) {
    // 24-bit canvas width and height minus one at bytes 24..26 and 27..29 (n >= 30)
    h.width = 1 + int64_t(d[24] | (d[25] << 8) | (uint32_t(d[26]) << 16));
    h.height = 1 + int64_t(d[27] | (d[28] << 8) | (uint32_t(d[29]) << 16));
    // The bitstream chunk after it carries its own size: the larger of the two counts.
    for (size_t at = 12 + 8 + size_t(le32(c + 4)) + (le32(c + 4) & 1); at + 8 <= n;) {
      int64_t w = 0, ht = 0;
      webp_bitstream_size(d + at, n - at, w, ht);
      if (w > 0 || ht > 0) {
        h.width = std::max(h.width, w);
        h.height = std::max(h.height, ht);
        break;
      }
      const uint64_t next = uint64_t(at) + 8 + le32(d + at + 4) + (le32(d + at + 4) & 1);
      if (next > n) break;
      at = size_t(next);
    }
  } else {
    webp_bitstream_size(c, n - 12, h.width, h.height);
  }
}

void tiff_size(const uint8_t* d, size_t n, ImageHeader& h) {
  const bool le = d[0] == 'I';
  auto u16 = [&](size_t at) { return le ? le16(d + at) : be16(d + at); };
  auto u32 = [&](size_t at) { return le ? le32(d + at) : be32(d + at); };
  if (n < 8) return;
  const size_t ifd = u32(4);
  if (ifd + 2 > n) return;
  const size_t count = u16(ifd);
  for (size_t e = 0; e < count; ++e) {
    const size_t at = ifd + 2 + 12 * e;
    if (at + 12 > n) return;
    const uint32_t tag = u16(at), type = u16(at + 2);
    if (tag != 256 && tag != 257) continue;
    const int64_t v = type == 3 ? int64_t(u16(at + 8)) : type == 4 ? int64_t(u32(at + 8)) : 0;
    int64_t& dim = tag == 256 ? h.width : h.height;
    dim = std::max(dim, v);  // a repeated tag: the larger (the limit must hold for either)
  }
}

}  // namespace

ImageHeader probe_image(const uint8_t* d, size_t n) {
  ImageHeader h;
  if (starts(d, n, "\xFF\xD8\xFF", 3)) {
    h.format = "jpeg";
    jpeg_size(d, n, h);
  } else if (starts(d, n, "\x89PNG\r\n\x1A\n", 8)) {
    h.format = "png";
    if (n >= 24 && std::memcmp(d + 12, "IHDR", 4) == 0) {
      h.width = be32(d + 16);
      h.height = be32(d + 20);
    }
  } else if (starts(d, n, "BM", 2)) {
    h.format = "bmp";
    if (n >= 26 && le32(d + 14) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
      h.width = le16(d + 18);
      h.height = le16(d + 20);
    } else if (n >= 26) {
      const int32_t w = static_cast<int32_t>(le32(d + 18)), ht = static_cast<int32_t>(le32(d + 22));
      h.width = w < 0 ? -int64_t(w) : w;
      h.height = ht < 0 ? -int64_t(ht) : ht;
    }
  } else if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    h.format = "webp";
    webp_size(d, n, h);
  } else if (starts(d, n, "II*\0", 4) || starts(d, n, "MM\0*", 4)) {
    h.format = "tiff";
    tiff_size(d, n, h);
  } else if (starts(d, n, "GIF87a", 6) || starts(d, n, "GIF89a", 6)) {
    h.format = "gif";
    if (n >= 10) {
      h.width = le16(d + 6);
      h.height = le16(d + 8);
    }
  }
  return h;
}

std::string mime_type(const ImageHeader& h) {
  return h.format.empty() ? "application/octet-stream" : "image/" + h.format;
}

}  // namespace bgevl::vision
