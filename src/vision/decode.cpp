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
// fields). All OpenCV/libjpeg/libpng use is confined to this file. JPEG and PNG need only libjpeg
// and libpng (BGEVL_WITH_DECODING, every build that has them, the GPU build included); OpenCV
// (BGEVL_WITH_OPENCV) adds BMP, WebP and TIFF.
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
#include "io/file.h"
#include "vision/image.h"

#ifdef BGEVL_WITH_DECODING
#include <csetjmp>
#include <cstdio>

#include "vision/decode_detail.h"

extern "C" {
#include <jerror.h>
#include <jpeglib.h>
}
#ifdef BGEVL_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#endif
#ifdef BGEVL_WITH_LIBTIFF
#include <tiffio.h>

#include <mutex>
#include <optional>
#endif
#endif

namespace bgevl::vision {

#ifndef BGEVL_WITH_DECODING

Image decode_file(const std::string& path) {
  throw Error("cannot decode image '" + path +
              "': this build of bgevl has no image decoding (built without libjpeg/libpng, "
              "BGEVL_WITH_DECODING=OFF); pass decoded pixels instead");
}

Image decode_bytes(const uint8_t*, size_t, const std::string& name) {
  throw Error("cannot decode image '" + name +
              "': this build of bgevl has no image decoding (built without libjpeg/libpng, "
              "BGEVL_WITH_DECODING=OFF); pass decoded pixels instead");
}

#else  // BGEVL_WITH_DECODING

namespace {

using namespace decode_detail;

enum class Format { Jpeg, Png, Bmp, WebP, Tiff, Gif, Unknown };

Format sniff(const ImageHeader& h) {
  const std::string& f = h.format;  // the magic numbers live in probe.cpp
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

#ifdef BGEVL_WITH_OPENCV
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

// `header`: probe_image's, whose size is checked against the pixel limit before OpenCV allocates
// anything for the pixels.
Image decode_with_opencv(const uint8_t* data, size_t size, Format f, const ImageHeader& header,
                         const std::string& name) {
  const char* kind = f == Format::Bmp ? "BMP" : (f == Format::WebP ? "WebP" : "TIFF");
  if (header.width <= 0 || header.height <= 0)
    fail(name, std::string("corrupt or truncated ") + kind + " header (no image size)");
  check_pixels(name, uint64_t(header.width), uint64_t(header.height));
  const cv::Mat m = cv_decode(data, size);
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

#endif  // BGEVL_WITH_OPENCV

#ifdef BGEVL_WITH_LIBTIFF
// libtiff reading from memory.
struct MemTiff {
  const uint8_t* data;
  uint64_t size, pos;
};
tsize_t mem_read(thandle_t h, tdata_t buf, tsize_t n) {
  auto* m = static_cast<MemTiff*>(h);
  if (n <= 0 || m->pos >= m->size) return 0;
  const uint64_t k = std::min<uint64_t>(uint64_t(n), m->size - m->pos);
  std::memcpy(buf, m->data + m->pos, size_t(k));
  m->pos += k;
  return tsize_t(k);
}
tsize_t mem_write(thandle_t, tdata_t, tsize_t) { return 0; }
toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  auto* m = static_cast<MemTiff*>(h);
  const uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  if (off > std::numeric_limits<uint64_t>::max() - base) return toff_t(-1);
  m->pos = base + off;
  return m->pos;
}
int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return static_cast<MemTiff*>(h)->size; }
int mem_map(thandle_t, tdata_t*, toff_t*) { return 0; }
void mem_unmap(thandle_t, tdata_t, toff_t) {}

// An 8-bit, 4-sample, contiguous CMYK TIFF (PHOTOMETRIC_SEPARATED, ink set CMYK, in strips), as
// PIL reads it: the raw samples in mode "CMYK", converted to RGB with PIL's formula later
// (OpenCV's libtiff RGBA conversion rounds differently). nullopt for any other TIFF.
std::optional<Image> decode_tiff_cmyk(const uint8_t* data, size_t size, const std::string& name) {
  static std::once_flag quiet;
  std::call_once(quiet, [] {  // libtiff's handlers print to stderr; the errors are ours to give
    TIFFSetErrorHandler(nullptr);
    TIFFSetWarningHandler(nullptr);
  });
  MemTiff mem{data, size, 0};
  TIFF* t = TIFFClientOpen(name.c_str(), "rm", &mem, mem_read, mem_write, mem_seek, mem_close,
                           mem_size, mem_map, mem_unmap);
  if (!t) return std::nullopt;
  struct Close {
    TIFF* t;
    ~Close() { TIFFClose(t); }
  } close{t};
  uint16_t photometric = 0, spp = 0, bps = 0, planar = 0, inkset = 0;
  uint32_t w = 0, h = 0;
  if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric) || photometric != PHOTOMETRIC_SEPARATED)
    return std::nullopt;
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_INKSET, &inkset);
  if (spp != 4 || bps != 8 || planar != PLANARCONFIG_CONTIG || inkset != INKSET_CMYK ||
      TIFFIsTiled(t) || !TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) ||
      !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h))
    return std::nullopt;
  check_pixels(name, w, h);
  if (TIFFScanlineSize64(t) != uint64_t(w) * 4) return std::nullopt;
  Image im;
  im.width = int(w);
  im.height = int(h);
  im.mode = PilMode::CMYK;
  im.channels = 4;
  im.data.resize(size_t(w) * size_t(h) * 4);
  for (uint32_t y = 0; y < h; ++y)
    if (TIFFReadScanline(t, im.data.data() + size_t(y) * size_t(w) * 4, y, 0) < 0)
      fail(name, "corrupt or truncated TIFF data");
  return im;
}
#endif  // BGEVL_WITH_LIBTIFF

}  // namespace

Image decode_bytes(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "the file is empty");
  if (data == nullptr) fail(name, "null data pointer");
  const ImageHeader header = probe_image(data, size);
  const Format f = sniff(header);
  switch (f) {
    case Format::Jpeg:
      return decode_jpeg(data, size, name);
    case Format::Png:
      return decode_png(data, size, name);
#ifdef BGEVL_WITH_OPENCV
    case Format::Bmp:
    case Format::WebP:
      return decode_with_opencv(data, size, f, header, name);
#endif
    case Format::Tiff:
#ifdef BGEVL_WITH_LIBTIFF
      if (auto cmyk = decode_tiff_cmyk(data, size, name)) return std::move(*cmyk);
#endif
#ifdef BGEVL_WITH_OPENCV
      return decode_with_opencv(data, size, f, header, name);
#else
      [[fallthrough]];
    case Format::Bmp:
    case Format::WebP: {
      const std::string kind = f == Format::Bmp ? "BMP" : (f == Format::WebP ? "WebP" : "TIFF");
      fail(name, kind +
                     " images need OpenCV, which this build of bgevl was built without "
                     "(BGEVL_WITH_OPENCV=OFF; it decodes JPEG and PNG)");
    }
#endif
    case Format::Gif:
      fail(name, "GIF images are not supported (supported: JPEG, PNG, BMP, WebP, TIFF)");
    case Format::Unknown:
      break;
  }
  fail(name, "not an image file in a supported format (JPEG, PNG, BMP, WebP, TIFF)");
}

Image decode_file(const std::string& path) {
  // A regular file only, read up to its size (a FIFO or /dev/zero is refused, never waited on).
  const std::string bytes = io::read_file(path, io::kMaxFileBytes, "image file");
  return decode_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

#endif  // BGEVL_WITH_DECODING

}  // namespace bgevl::vision
