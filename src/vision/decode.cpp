// Image file decoding that reproduces what PIL 9.4's Image.open(...) holds (mode and pixels).
//
// JPEG goes through libjpeg directly, configured as Pillow's JpegDecode.c configures it (default
// DCT method and upsampling, out_color_space L/RGB/CMYK from the number of components, Adobe
// "CMYK;I" inversion for 4-component files), so that CMYK/YCCK files convert with PIL's formula
// and a truncated file is an error (PIL: "image file is truncated") instead of a half-grey image.
// PNG goes through libpng directly, with PngImagePlugin's chunk handling reproduced here (see the
// PNG section): every colour type and bit depth gives PIL's mode and pixels, and libpng never
// prints anything. BMP, WebP and TIFF go through OpenCV's imdecode (IMREAD_UNCHANGED, orientation
// ignored); the PIL mode is recovered from the BMP header where OpenCV loses it (palette and bit
// fields). All OpenCV/libjpeg/libpng use is confined to this file.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "vision/image.h"

#ifdef BGEVL_WITH_OPENCV
#include <csetjmp>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "vision/decode_detail.h"

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
}
#endif

namespace bgevl::vision {

#ifndef BGEVL_WITH_OPENCV

Image decode_file(const std::string& path) {
  throw Error("cannot decode image '" + path +
              "': this build of bgevl has no image decoding (built with BGEVL_WITH_OPENCV=OFF); "
              "pass decoded pixels instead");
}

Image decode_bytes(const uint8_t*, size_t, const std::string& name) {
  throw Error("cannot decode image '" + name +
              "': this build of bgevl has no image decoding (built with BGEVL_WITH_OPENCV=OFF); "
              "pass decoded pixels instead");
}

#else  // BGEVL_WITH_OPENCV

namespace {

using namespace decode_detail;

enum class Format { Jpeg, Png, Bmp, WebP, Tiff, Gif, Unknown };

Format sniff(const uint8_t* d, size_t n) {
  const std::string f = probe_image(d, n).format;  // the magic numbers live in probe.cpp
  return f == "jpeg"   ? Format::Jpeg
         : f == "png"  ? Format::Png
         : f == "bmp"  ? Format::Bmp
         : f == "webp" ? Format::WebP
         : f == "tiff" ? Format::Tiff
         : f == "gif"  ? Format::Gif
                       : Format::Unknown;
}

// ---- JPEG (libjpeg) ----------------------------------------------------------------------------

struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  cinfo->err->format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// libjpeg reports warnings through emit_message(-1). Pillow ignores them (corrupt data still
// decodes) except running out of data, which PIL's loader reports as "image file is truncated":
// jpeg_mem_src signals that with JWRN_JPEG_EOF (and then inserts a fake EOI).
void jpeg_on_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    err->truncated = true;
    std::snprintf(err->message, sizeof(err->message), "%s", "image file is truncated");
    std::longjmp(err->jump, 1);
  }
}

// Everything with a non-trivial destructor lives in the caller (`out`), constructed before
// setjmp, so the longjmp skips no destructor.
void decode_jpeg_into(const uint8_t* data, size_t size, Image& out, std::string& error) {
  jpeg_decompress_struct cinfo;
  JpegError jerr;
  std::memset(&jerr, 0, sizeof(jerr));
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = jpeg_on_error;
  jerr.pub.emit_message = jpeg_on_message;
  if (setjmp(jerr.jump)) {
    jpeg_destroy_decompress(&cinfo);
    error = jerr.message[0] ? jerr.message : "corrupt JPEG data";
    return;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  // JpegImagePlugin: 1 layer -> "L", 3 -> "RGB", 4 -> "CMYK" read with rawmode "CMYK;I";
  // JpegDecode.c sets out_color_space from the rawmode and leaves everything else at libjpeg's
  // defaults (the file's colour space is trusted).
  switch (cinfo.num_components) {
    case 1:
      cinfo.out_color_space = JCS_GRAYSCALE;
      out.mode = PilMode::L;
      out.channels = 1;
      break;
    case 3:
      cinfo.out_color_space = JCS_RGB;
      out.mode = PilMode::RGB;
      out.channels = 3;
      break;
    case 4:
      cinfo.out_color_space = JCS_CMYK;
      out.mode = PilMode::CMYK;
      out.channels = 4;
      break;
    default:
      std::snprintf(jerr.message, sizeof(jerr.message), "cannot handle %d-layer JPEG images",
                    cinfo.num_components);
      std::longjmp(jerr.jump, 1);
  }
  if (uint64_t(cinfo.image_width) * uint64_t(cinfo.image_height) > kMaxPixels) {
    std::snprintf(jerr.message, sizeof(jerr.message),
                  "image of %ux%u pixels exceeds the limit of %llu pixels (PIL: "
                  "DecompressionBombError)",
                  unsigned(cinfo.image_width), unsigned(cinfo.image_height),
                  static_cast<unsigned long long>(kMaxPixels));
    std::longjmp(jerr.jump, 1);
  }
  jpeg_start_decompress(&cinfo);
  if (int(cinfo.output_components) != out.channels) {
    std::snprintf(jerr.message, sizeof(jerr.message), "unexpected JPEG output (%d components)",
                  cinfo.output_components);
    std::longjmp(jerr.jump, 1);
  }
  out.width = int(cinfo.output_width);
  out.height = int(cinfo.output_height);
  const size_t stride = size_t(out.width) * size_t(out.channels);
  out.data.resize(stride * size_t(out.height));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.data.data() + size_t(cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (out.mode == PilMode::CMYK) {  // "CMYK;I": Adobe files store inverted CMYK
    for (uint8_t& v : out.data) v = uint8_t(~v);
  }
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
  Image out;
  std::string error;
  decode_jpeg_into(data, size, out, error);
  if (!error.empty()) fail(name, error);
  return out;
}

// ---- OpenCV-decoded formats ------------------------------------------------------------------

cv::Mat cv_decode(const uint8_t* data, size_t size) {
  if (size > size_t(std::numeric_limits<int>::max())) return cv::Mat();
  const cv::Mat buf(1, int(size), CV_8UC1, const_cast<uint8_t*>(data));
  try {
    return cv::imdecode(buf, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception&) {
    return cv::Mat();
  }
}

// 16-bit samples as PIL reads them: colour and alpha keep the high byte ("RGB;16B" and friends);
// a lone grey channel opens as mode "I" whose conversion to L/RGB clamps to 0..255.
cv::Mat to_8bit(const cv::Mat& m, bool grey_clamps, const std::string& name) {
  if (m.depth() == CV_8U) return m;
  if (m.depth() != CV_16U)
    fail(name, "unsupported sample format (only 8- and 16-bit integer images are supported)");
  cv::Mat out(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
  const size_t n = size_t(m.cols) * size_t(m.channels());
  for (int y = 0; y < m.rows; ++y) {
    const uint16_t* s = m.ptr<uint16_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    if (grey_clamps) {
      for (size_t i = 0; i < n; ++i) d[i] = uint8_t(s[i] > 255 ? 255 : s[i]);
    } else {
      for (size_t i = 0; i < n; ++i) d[i] = uint8_t(s[i] >> 8);
    }
  }
  return out;
}

// An 8-bit OpenCV image (grey, grey+alpha, BGR or BGRA) as `mode`, in PIL's channel order.
Image from_cv(const cv::Mat& m, PilMode mode, const std::string& name) {
  const int cn = m.channels();
  if (cn < 1 || cn > 4) fail(name, detail::concat("unsupported channel count ", cn));
  check_pixels(name, uint64_t(m.cols), uint64_t(m.rows));
  Image im;
  im.width = m.cols;
  im.height = m.rows;
  im.mode = mode;
  im.channels = channels_of(mode);
  const int C = im.channels;
  im.data.resize(size_t(im.width) * size_t(im.height) * size_t(C));
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* s = m.ptr<uint8_t>(y);
    uint8_t* d = im.data.data() + size_t(y) * size_t(im.width) * C;
    for (int x = 0; x < m.cols; ++x, s += cn, d += C) {
      // Source as (grey or b, g, r, alpha).
      uint8_t r, g, b, a = 255;
      if (cn <= 2) {
        r = g = b = s[0];
        if (cn == 2) a = s[1];
      } else {
        b = s[0];
        g = s[1];
        r = s[2];
        if (cn == 4) a = s[3];
      }
      switch (C) {
        case 1:
          d[0] = cn <= 2 ? s[0] : r;  // grey files come back with B = G = R
          break;
        case 2:
          d[0] = cn <= 2 ? s[0] : r;
          d[1] = a;
          break;
        case 3:
          d[0] = r;
          d[1] = g;
          d[2] = b;
          break;
        default:
          d[0] = r;
          d[1] = g;
          d[2] = b;
          d[3] = a;
          break;
      }
    }
  }
  return im;
}

// BmpImagePlugin: palette images (1/4/8 bit) are "1" or "L" when the palette is the identity
// grey ramp (0/255 for two colours), "P" otherwise; 32-bit images are "RGB" unless their bit
// fields have an alpha mask ("RGBA").
PilMode bmp_mode(const uint8_t* d, size_t n, int channels) {
  PilMode fallback = channels == 1 ? PilMode::L : (channels == 4 ? PilMode::RGBA : PilMode::RGB);
  if (n < 26) return fallback;
  const uint32_t header_size = le32(d + 14);
  int bits;
  uint32_t colors = 0, compression = 0;
  size_t padding;
  if (header_size == 12) {
    bits = le16(d + 24);
    padding = 3;
  } else if (header_size >= 40 && n >= 14 + 40) {
    bits = le16(d + 28);
    compression = le32(d + 30);
    colors = le32(d + 46);
    padding = 4;
  } else {
    return fallback;
  }
  if (bits == 32) {
    if (compression != 3) return PilMode::RGB;  // BI_RGB: "BGRX"
    uint32_t masks[4] = {0, 0, 0, 0};
    if (header_size >= 52 && n >= 14 + 56) {
      for (int i = 0; i < 4; ++i) masks[i] = le32(d + 14 + 40 + 4 * i);
    } else if (n >= 14 + header_size + 12) {
      for (int i = 0; i < 3; ++i) masks[i] = le32(d + 14 + header_size + 4 * i);
    }
    const bool all_zero = !masks[0] && !masks[1] && !masks[2] && !masks[3];
    return (masks[3] != 0 || all_zero) ? PilMode::RGBA : PilMode::RGB;
  }
  if (bits > 8) return PilMode::RGB;
  if (colors == 0) colors = 1u << bits;
  const size_t pal = 14 + header_size;
  if (colors > 256 || pal + padding * colors > n) return PilMode::P;
  bool greyscale = true;
  for (uint32_t i = 0; i < colors && greyscale; ++i) {
    const uint32_t val = colors == 2 ? (i ? 255 : 0) : i;
    const uint8_t* e = d + pal + padding * i;
    if (e[0] != val || e[1] != val || e[2] != val) greyscale = false;
  }
  if (!greyscale) return PilMode::P;
  return colors == 2 ? PilMode::One : PilMode::L;
}

Image decode_with_opencv(const uint8_t* data, size_t size, Format f, const std::string& name) {
  const cv::Mat m = cv_decode(data, size);
  const char* kind = f == Format::Bmp ? "BMP" : (f == Format::WebP ? "WebP" : "TIFF");
  if (m.empty()) fail(name, std::string("corrupt, truncated or unsupported ") + kind + " data");
  const cv::Mat m8 = to_8bit(m, m.channels() == 1, name);
  PilMode mode;
  if (f == Format::Bmp) {
    mode = bmp_mode(data, size, m8.channels());
  } else {
    const int cn = m8.channels();
    mode = cn == 1 ? PilMode::L : cn == 2 ? PilMode::LA : cn == 3 ? PilMode::RGB : PilMode::RGBA;
  }
  return from_cv(m8, mode, name);
}

}  // namespace

Image decode_bytes(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "the file is empty");
  if (data == nullptr) fail(name, "null data pointer");
  switch (sniff(data, size)) {
    case Format::Jpeg:
      return decode_jpeg(data, size, name);
    case Format::Png:
      return decode_png(data, size, name);
    case Format::Bmp:
      return decode_with_opencv(data, size, Format::Bmp, name);
    case Format::WebP:
      return decode_with_opencv(data, size, Format::WebP, name);
    case Format::Tiff:
      return decode_with_opencv(data, size, Format::Tiff, name);
    case Format::Gif:
      fail(name, "GIF images are not supported (supported: JPEG, PNG, BMP, WebP, TIFF)");
    case Format::Unknown:
      break;
  }
  fail(name, "not an image file in a supported format (JPEG, PNG, BMP, WebP, TIFF)");
}

Image decode_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw FileNotFoundError("image file not found: '" + path + "'");
    throw InvalidArgumentError("cannot open image file '" + path + "': " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) fail(path, "it is a directory, not an image file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgumentError("cannot open image file '" + path + "'");
  std::vector<uint8_t> bytes;
  if (S_ISREG(st.st_mode)) {
    bytes.resize(size_t(st.st_size));
    f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    bytes.resize(size_t(f.gcount()));
  } else {  // a pipe or device: read to the end
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  if (f.bad()) throw InvalidArgumentError("cannot read image file '" + path + "'");
  return decode_bytes(bytes.data(), bytes.size(), path);
}

#endif  // BGEVL_WITH_OPENCV

}  // namespace bgevl::vision
