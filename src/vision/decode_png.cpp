// PNG decoding with PIL 9.4's PngImagePlugin semantics, through libpng (see decode.cpp's header).
#ifdef BGEVL_WITH_DECODING
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "vision/decode_detail.h"

namespace bgevl::vision::decode_detail {

namespace {

// ---- PNG (libpng) ------------------------------------------------------------------------------
//
// PngImagePlugin's reading of the file is reproduced here chunk by chunk; libpng does what PIL's
// ZipDecode does (inflate, unfilter, Adam7 passes). It is fed a canonical stream: the signature, an
// IHDR rebuilt from the fields PIL uses, a placeholder PLTE for palette images (the palette is
// applied here, by PIL's rules) and the image data, cut into IDAT chunks where PIL's 64 KiB reads
// cut it, so that zlib is called on the same pieces as in PIL. libpng therefore never sees the
// ancillary chunks (nothing to warn about) and its messages are never printed. What PIL 9.4 does:
//  - chunks before the first IDAT must be complete with a valid CRC, ancillary or not ("broken PNG
//    file"); a few handlers reject malformed chunks (short tRNS, gAMA, pHYs, ...); unknown chunks,
//    critical or not, are skipped;
//  - the image data is the run of IDAT chunks that follows (their CRCs are not checked); decoding
//    stops as soon as the last row is complete, so the zlib checksum, the IEND chunk or the end of
//    the file may be missing; a zlib stream that ends right after a complete row leaves the other
//    rows zero (palette index 0); anything else that ends the data early is an error;
//  - the chunks after the image data, up to IEND, must be complete (CRCs not checked); the file
//    may end at any chunk header or CRC.
// Not reproduced: the 1 MB limits on decompressed text and ICC chunks, frame data (fdAT) standing
// in for IDAT, DDAT chunks.

constexpr size_t kPilReadBlock = 65536;  // ImageFile.MAXBLOCK: PIL reads image data in such blocks
constexpr int kAdam7XStart[7] = {0, 4, 0, 2, 0, 1, 0};
constexpr int kAdam7XStep[7] = {8, 8, 4, 4, 2, 2, 1};
constexpr int kAdam7YStart[7] = {0, 0, 4, 0, 2, 0, 1};
constexpr int kAdam7YStep[7] = {8, 8, 8, 4, 4, 2, 2};

uint64_t adam7_count(uint64_t size, int start, int step) {
  return size > uint64_t(start) ? (size - uint64_t(start) + uint64_t(step) - 1) / uint64_t(step)
                                : 0;
}

bool png_type_is(const uint8_t* type, const char* t) { return std::memcmp(type, t, 4) == 0; }

// PngImagePlugin's is_cid: four ASCII word characters.
bool png_is_cid(const uint8_t* t) {
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = t[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

std::string png_type_name(const uint8_t* t) {
  return std::string(reinterpret_cast<const char*>(t), 4);
}

// PngImagePlugin._MODES: the (bit depth, colour type) pairs PIL opens.
bool png_pil_knows(int bit_depth, int colour_type) {
  switch (colour_type) {
    case 0:
      return bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8 ||
             bit_depth == 16;
    case 3:
      return bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8;
    case 2:
    case 4:
    case 6:
      return bit_depth == 8 || bit_depth == 16;
    default:
      return false;
  }
}

// What PngStream keeps from the chunks it has handled (the parts that decide the pixels or make a
// later handler raise).
struct PngStreamState {
  bool has_ihdr = false;
  uint64_t width = 0, height = 0;  // im_size
  bool has_mode = false;           // im_mode set by an IHDR with a known (bit depth, colour type)
  int bit_depth = 0, colour_type = 0;
  bool interlaced = false;
  bool has_palette = false;  // a PLTE seen while im_mode was "P"
  const uint8_t* palette = nullptr;
  uint32_t palette_size = 0;
  bool has_bbox = false;  // fcTL: the frame box the IDAT image is decoded into
  uint64_t bbox[4] = {0, 0, 0, 0};
  bool has_frames = false;  // acTL: im_n_frames is not None
  uint32_t n_frames = 0;
  bool has_seq = false;  // APNG sequence number (_seq_num)
  int64_t seq = 0;
};

// PngStream's chunk handlers: the state they keep and the malformed chunks they raise on.
void png_handle_chunk(PngStreamState& st, const uint8_t* type, const uint8_t* d, uint32_t n,
                      const std::string& name) {
  auto broken = [&](const std::string& why) {
    fail(name, "broken PNG file (" + png_type_name(type) + " chunk: " + why + ")");
  };
  if (png_type_is(type, "IHDR")) {
    if (n < 13) broken("truncated");
    // One IHDR per file: a second one (after an APNG frame control, say) would change the size
    // the buffers were checked against (Pillow refuses such a file too).
    if (st.has_ihdr) broken("a second IHDR chunk");
    st.has_ihdr = true;
    st.width = be32(d);
    st.height = be32(d + 4);
    if (png_pil_knows(d[8], d[9])) {
      st.has_mode = true;
      st.bit_depth = d[8];
      st.colour_type = d[9];
    }
    if (d[12]) st.interlaced = true;
    if (d[11]) broken("unknown filter category");
  } else if (png_type_is(type, "PLTE")) {
    if (st.has_mode && st.colour_type == 3) {
      st.has_palette = true;
      st.palette = d;
      st.palette_size = n;
    }
  } else if (png_type_is(type, "tRNS")) {
    if (st.has_mode && st.colour_type == 0 && n < 2) broken("truncated");
    if (st.has_mode && st.colour_type == 2 && n < 6) broken("truncated");
  } else if (png_type_is(type, "gAMA")) {
    if (n < 4) broken("truncated");
  } else if (png_type_is(type, "cHRM")) {
    if (n % 4 != 0) broken("bad length");
  } else if (png_type_is(type, "sRGB")) {
    if (n < 1) broken("truncated");
  } else if (png_type_is(type, "pHYs")) {
    if (n < 9) broken("truncated");
  } else if (png_type_is(type, "iCCP")) {
    if (n == 0 || std::memchr(d, 0, n) == nullptr) broken("unknown compression method");
  } else if (png_type_is(type, "zTXt")) {
    const auto* z = static_cast<const uint8_t*>(std::memchr(d, 0, n));
    if (z != nullptr && z + 1 < d + n && z[1] != 0) broken("unknown compression method");
  } else if (png_type_is(type, "acTL")) {
    if (n < 8) broken("truncated");
    if (st.has_frames) {
      st.has_frames = false;  // a second acTL: "Invalid APNG"
    } else {
      const uint32_t frames = be32(d);
      if (frames != 0 && frames <= 0x80000000u) {
        st.has_frames = true;
        st.n_frames = frames;
      }
    }
  } else if (png_type_is(type, "fcTL") || png_type_is(type, "fdAT")) {
    const bool fctl = png_type_is(type, "fcTL");
    if (n < (fctl ? 26u : 4u)) broken("truncated");
    const int64_t seq = be32(d);
    if ((!st.has_seq && (!fctl || seq != 0)) || (st.has_seq && st.seq != seq - 1))
      broken("APNG frame sequence error");
    st.has_seq = true;
    st.seq = seq;
    if (fctl) {
      const uint64_t w = be32(d + 4), h = be32(d + 8), x = be32(d + 12), y = be32(d + 16);
      if (x + w > st.width || y + h > st.height) broken("APNG frame outside the image");
      st.has_bbox = true;
      st.bbox[0] = x;
      st.bbox[1] = y;
      st.bbox[2] = x + w;
      st.bbox[3] = y + h;
    }
  }
}

// A piece of image data: one IDAT chunk's data, cut short where the file ends.
struct PngSegment {
  const uint8_t* data;
  size_t size;
  uint64_t data_end;  // file offset just past the chunk's declared data (its CRC), maybe past EOF
};

// Everything the libpng callbacks and the setjmp frame share: plain data only, so that a longjmp
// skips no destructor.
struct PngRun {
  uint32_t width, height;  // of the decoded tile (the frame box of an APNG, else the image)
  int bit_depth, colour_type;
  bool interlaced;
  const uint8_t* palette;  // 256 RGB entries
  uint8_t* out;            // the tile's first pixel in the output image
  size_t out_stride;       // bytes per output row
  int out_channels;
  uint64_t rows_expected, rows_done;  // rows of every non-empty pass
  size_t done_segment;                // the segment in which the last row was completed
  char error[256];
};

// One decoded (unfiltered) row of n pixels in PNG's packed big-endian layout, stored as PIL holds
// it (rawmodes "1", "L;2", "L;4", "L", "I;16B", "RGB(;16B)", "P;1".."P", "LA", "LA;16B",
// "RGBA(;16B)"), `step` bytes apart.
void png_store_row(const PngRun& r, const uint8_t* s, uint32_t n, uint8_t* d, size_t step) {
  const int bd = r.bit_depth;
  auto packed = [&](uint32_t i) -> unsigned {  // sample i of a 1/2/4/8-bit row
    if (bd == 8) return s[i];
    const size_t bit = size_t(i) * size_t(bd);
    return (unsigned(s[bit >> 3]) >> (8 - bd - int(bit & 7))) & ((1u << bd) - 1u);
  };
  const int cn = r.out_channels;
  if (bd == 8 && r.colour_type != 3 && step == size_t(cn)) {  // same layout
    std::memcpy(d, s, size_t(n) * size_t(cn));
    return;
  }
  switch (r.colour_type) {
    case 0:
      if (bd == 16) {  // "I" clamped to 0..255, as convert("L") does
        for (uint32_t i = 0; i < n; ++i, d += step) {
          const unsigned v = (unsigned(s[2 * i]) << 8) | s[2 * i + 1];
          d[0] = uint8_t(v > 255 ? 255 : v);
        }
      } else {
        const unsigned scale = bd == 1 ? 255 : bd == 2 ? 85 : bd == 4 ? 17 : 1;
        for (uint32_t i = 0; i < n; ++i, d += step) d[0] = uint8_t(packed(i) * scale);
      }
      break;
    case 3:
      for (uint32_t i = 0; i < n; ++i, d += step) std::memcpy(d, r.palette + 3 * packed(i), 3);
      break;
    case 2: {
      const int bpp = bd == 16 ? 6 : 3, inc = bd == 16 ? 2 : 1;
      for (uint32_t i = 0; i < n; ++i, d += step, s += bpp) {
        d[0] = s[0];
        d[1] = s[inc];
        d[2] = s[2 * inc];
      }
      break;
    }
    case 4:
      if (bd == 16) {  // "LA;16B" opens as RGBA
        for (uint32_t i = 0; i < n; ++i, d += step, s += 4) {
          d[0] = d[1] = d[2] = s[0];
          d[3] = s[2];
        }
      } else {
        for (uint32_t i = 0; i < n; ++i, d += step, s += 2) {
          d[0] = s[0];
          d[1] = s[1];
        }
      }
      break;
    default: {  // 6
      const int bpp = bd == 16 ? 8 : 4, inc = bd == 16 ? 2 : 1;
      for (uint32_t i = 0; i < n; ++i, d += step, s += bpp) {
        d[0] = s[0];
        d[1] = s[inc];
        d[2] = s[2 * inc];
        d[3] = s[3 * inc];
      }
      break;
    }
  }
}

void png_on_error(png_structp png, png_const_charp message) {
  auto* run = static_cast<PngRun*>(png_get_error_ptr(png));
  std::snprintf(run->error, sizeof(run->error), "%s", message ? message : "libpng error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // PIL is silent too

void png_on_info(png_structp png, png_infop) { png_start_read_image(png); }

// Without libpng's interlace handling every row of every non-empty Adam7 pass comes here once.
void png_on_row(png_structp png, png_bytep row, png_uint_32 row_num, int pass) {
  auto* r = static_cast<PngRun*>(png_get_progressive_ptr(png));
  if (row == nullptr || r->rows_done >= r->rows_expected) return;
  uint64_t y = row_num, x0 = 0, xstep = 1, n = r->width;
  if (r->interlaced) {
    if (pass < 0 || pass > 6) return;
    y = uint64_t(kAdam7YStart[pass]) + uint64_t(row_num) * uint64_t(kAdam7YStep[pass]);
    x0 = uint64_t(kAdam7XStart[pass]);
    xstep = uint64_t(kAdam7XStep[pass]);
    n = adam7_count(r->width, kAdam7XStart[pass], kAdam7XStep[pass]);
  }
  if (y >= r->height) return;
  const size_t cn = size_t(r->out_channels);
  png_store_row(*r, row, uint32_t(n), r->out + size_t(y) * r->out_stride + size_t(x0) * cn,
                size_t(xstep) * cn);
  ++r->rows_done;
}

// Runs libpng's progressive reader over the canonical stream. Returns false, with run->error set,
// when libpng fails. No object with a destructor lives in this frame.
bool png_run_libpng(PngRun* run, const PngSegment* segs, size_t n_segs) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, run, png_on_error, png_on_warning);
  if (png == nullptr) {
    std::snprintf(run->error, sizeof(run->error), "%s", "cannot create a libpng decoder");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(run->error, sizeof(run->error), "%s", "cannot create a libpng decoder");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);  // CRCs were checked as PIL does
  png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);  // the pixel limit is PIL's, checked before
  png_set_option(png, PNG_MAXIMUM_INFLATE_WINDOW, PNG_OPTION_ON);  // zlib as PIL calls it
  png_set_benign_errors(png, 1);
  png_set_progressive_read_fn(png, run, png_on_info, png_on_row, nullptr);

  // Signature, IHDR and (palette images) a PLTE of zeros; CRC fields are left zero.
  uint8_t head[8 + 25 + 12 + 3 * 256];
  std::memset(head, 0, sizeof(head));
  std::memcpy(head, "\x89PNG\r\n\x1A\n", 8);
  uint8_t* p = head + 8;
  auto put32 = [](uint8_t* q, uint32_t v) {
    q[0] = uint8_t(v >> 24);
    q[1] = uint8_t(v >> 16);
    q[2] = uint8_t(v >> 8);
    q[3] = uint8_t(v);
  };
  put32(p, 13);
  std::memcpy(p + 4, "IHDR", 4);
  put32(p + 8, run->width);
  put32(p + 12, run->height);
  p[16] = uint8_t(run->bit_depth);
  p[17] = uint8_t(run->colour_type);
  p[20] = run->interlaced ? 1 : 0;
  p += 25;
  if (run->colour_type == 3) {
    const uint32_t len = 3u << run->bit_depth;
    put32(p, len);
    std::memcpy(p + 4, "PLTE", 4);
    p += 12 + len;
  }
  png_process_data(png, info, head, size_t(p - head));
  uint8_t idat[8] = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
  uint8_t crc[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n_segs && run->rows_done < run->rows_expected; ++i) {
    for (size_t off = 0; off < segs[i].size && run->rows_done < run->rows_expected;
         off += kPilReadBlock) {
      const size_t n = std::min(kPilReadBlock, segs[i].size - off);
      put32(idat, uint32_t(n));
      png_process_data(png, info, idat, 8);
      png_process_data(png, info, const_cast<uint8_t*>(segs[i].data + off), n);
      png_process_data(png, info, crc, 4);
    }
    if (run->rows_done == run->rows_expected) run->done_segment = i;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

// How PIL's ZipDecode ends on data that did not give every row: its inflate calls replayed (one
// 64 KiB read of one chunk at a time, output one row at a time).
struct PilZipEnd {
  enum Kind { Truncated, Broken, Ended } kind = Truncated;
  uint64_t rows = 0;   // complete rows (of all passes)
  size_t segment = 0;  // Ended: the segment holding the end of the zlib stream
  std::string why;
};

PilZipEnd png_replay_pil_inflate(const PngSegment* segs, size_t n_segs, uint64_t width,
                                 uint64_t height, int bits_per_pixel, bool interlaced) {
  PilZipEnd end;
  auto row_len = [&](int pass) -> uint64_t {
    const uint64_t n =
        interlaced ? adam7_count(width, kAdam7XStart[pass], kAdam7XStep[pass]) : width;
    return (n * uint64_t(bits_per_pixel) + 7) / 8;
  };
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit(&zs) != Z_OK) {
    end.kind = PilZipEnd::Broken;
    end.why = "cannot initialise zlib";
    return end;
  }
  std::vector<uint8_t> buf(size_t((width * uint64_t(bits_per_pixel) + 7) / 8) + 1);
  int pass = 0;
  uint64_t y = 0, len = row_len(0), last = 0;
  for (size_t s = 0; s < n_segs; ++s) {
    for (size_t off = 0; off < segs[s].size; off += kPilReadBlock) {
      zs.next_in = const_cast<Bytef*>(segs[s].data + off);
      zs.avail_in = uInt(std::min(kPilReadBlock, segs[s].size - off));
      while (zs.avail_in > 0) {
        zs.next_out = buf.data() + last;
        zs.avail_out = uInt(len + 1 - last);
        const int err = inflate(&zs, Z_NO_FLUSH);
        if (err < 0) {
          end.kind = PilZipEnd::Broken;
          end.why = zs.msg ? zs.msg : "zlib error";
          inflateEnd(&zs);
          return end;
        }
        const uint64_t produced = len + 1 - zs.avail_out;
        if (produced < len + 1) {
          last = produced;
          break;
        }
        if (buf[0] > 4) {
          end.kind = PilZipEnd::Broken;
          end.why = "bad filter type";
          inflateEnd(&zs);
          return end;
        }
        ++end.rows;
        if (interlaced) {
          y += uint64_t(kAdam7YStep[pass]);
          while (y >= height || len == 0) {
            if (++pass == 7) {
              y = height;
              break;
            }
            y = uint64_t(kAdam7YStart[pass]);
            len = row_len(pass);
          }
        } else {
          ++y;
        }
        last = 0;
        if (y >= height || err == Z_STREAM_END) {
          end.kind = PilZipEnd::Ended;
          end.segment = s;
          inflateEnd(&zs);
          return end;
        }
      }
    }
  }
  inflateEnd(&zs);
  return end;
}

}  // namespace

// PngImageFile.load_end: the chunks after the image data, from the CRC of the chunk in which
// decoding ended, are read up to IEND (or, in an animated PNG, the next frame).
void png_check_after_data(const uint8_t* d, size_t size, uint64_t pos, PngStreamState& st,
                          bool animated, const std::string& name) {
  for (;;) {
    pos += 4;  // the CRC, unchecked
    if (pos + 8 > size) return;
    const uint8_t* type = d + pos + 4;
    if (!png_is_cid(type)) return;
    if (png_type_is(type, "IEND") || (animated && png_type_is(type, "fcTL"))) return;
    const uint32_t len = be32(d + pos);
    if (pos + 8 + len > size)
      fail(name, "truncated PNG file (" + png_type_name(type) + " chunk after the image data)");
    png_handle_chunk(st, type, d + pos + 8, len, name);
    pos += 8 + uint64_t(len);
  }
}

Image decode_png(const uint8_t* data, size_t size, const std::string& name) {
  // PngImageFile._open: the chunks up to the first IDAT.
  PngStreamState st;
  size_t pos = 8;
  for (;;) {
    if (size - pos < 8) fail(name, "truncated PNG file (no image data)");
    const uint8_t* type = data + pos + 4;
    if (!png_is_cid(type)) fail(name, "broken PNG file (invalid chunk type)");
    if (png_type_is(type, "IDAT")) break;
    if (png_type_is(type, "IEND")) fail(name, "PNG file without image data");
    if (png_type_is(type, "fdAT"))
      fail(name, "unsupported APNG file (frame data before the IDAT chunk)");
    const uint32_t len = be32(data + pos);
    if (uint64_t(len) + 12 > size - pos)
      fail(name, "truncated PNG file (" + png_type_name(type) + " chunk)");
    png_handle_chunk(st, type, data + pos + 8, len, name);
    uLong crc = crc32_z(0L, type, 4);
    crc = crc32_z(crc, data + pos + 8, len);
    if (uint32_t(crc) != be32(data + pos + 8 + len))
      fail(name, "broken PNG file (bad checksum in " + png_type_name(type) + " chunk)");
    pos += 12 + size_t(len);
  }
  if (!st.has_mode) fail(name, "unsupported PNG bit depth / colour type, or no IHDR chunk");
  check_pixels(name, st.width, st.height);
  const int bd = st.bit_depth, ct = st.colour_type;

  // The image data: the IDAT chunks that follow each other.
  std::vector<PngSegment> segs;
  for (uint64_t at = pos;;) {
    const uint32_t len = be32(data + at);
    const uint64_t start = at + 8;
    segs.push_back({data + start, size_t(std::min<uint64_t>(len, size - start)), start + len});
    at = start + len + 4;
    if (at + 8 > size || !png_type_is(data + at + 4, "IDAT")) break;
  }

  // PIL's mode and what the image holds before decoding: zeros (palette index 0).
  PilMode mode;
  switch (ct) {
    case 0:
      mode = bd == 1 ? PilMode::One : PilMode::L;  // 16-bit "I" is held as L, clamped
      break;
    case 2:
      mode = PilMode::RGB;
      break;
    case 3:
      mode = PilMode::P;
      break;
    case 4:
      mode = bd == 16 ? PilMode::RGBA : PilMode::LA;
      break;
    default:
      mode = PilMode::RGBA;
      break;
  }
  // The palette as Image.putpalette leaves it: the file's entries, then the grey ramp.
  uint8_t palette[3 * 256];
  for (int i = 0; i < 256; ++i)
    palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = uint8_t(i);
  if (st.has_palette) {
    if (st.palette_size / 3 > 256) fail(name, "invalid palette size");
    std::memcpy(palette, st.palette, st.palette_size / 3 * 3);
  }
  Image im;
  im.width = int(st.width);
  im.height = int(st.height);
  im.mode = mode;
  im.channels = channels_of(mode);
  const size_t cn = size_t(im.channels);
  im.data.resize(size_t(im.width) * size_t(im.height) * cn);
  if (mode == PilMode::P) {
    for (size_t i = 0; i < im.data.size(); i += 3) std::memcpy(&im.data[i], palette, 3);
  } else {
    std::fill(im.data.begin(), im.data.end(), uint8_t(0));
  }

  // An APNG's fcTL before the IDAT chunk: the IDAT image fills that box only.
  uint64_t x0 = 0, y0 = 0, tw = st.width, th = st.height;
  if (st.has_bbox) {
    x0 = st.bbox[0];
    y0 = st.bbox[1];
    tw = st.bbox[2] - st.bbox[0];
    th = st.bbox[3] - st.bbox[1];
    if (tw == 0 || th == 0) fail(name, "APNG frame without pixels");
    // (fcTL checked its box against the IHDR; the buffer is sized from the same IHDR)
    if (st.bbox[2] > st.width || st.bbox[3] > st.height) fail(name, "APNG frame outside the image");
  }
  const bool default_image = st.has_frames && !st.has_bbox;
  const bool animated = (st.has_frames ? uint64_t(st.n_frames) : 1u) + (default_image ? 1 : 0) > 1;

  PngRun run;
  std::memset(&run, 0, sizeof(run));
  run.width = uint32_t(tw);
  run.height = uint32_t(th);
  run.bit_depth = bd;
  run.colour_type = ct;
  run.interlaced = st.interlaced;
  run.palette = palette;
  run.out_channels = im.channels;
  run.out_stride = size_t(im.width) * cn;
  run.out = im.data.data() + size_t(y0) * run.out_stride + size_t(x0) * cn;
  if (st.interlaced) {
    for (int p = 0; p < 7; ++p)
      if (adam7_count(tw, kAdam7XStart[p], kAdam7XStep[p]) > 0)
        run.rows_expected += adam7_count(th, kAdam7YStart[p], kAdam7YStep[p]);
  } else {
    run.rows_expected = th;
  }
  if (!png_run_libpng(&run, segs.data(), segs.size()))
    fail(name, std::string("corrupt PNG image data (") + run.error + ")");
  size_t end_segment = run.done_segment;
  if (run.rows_done < run.rows_expected) {
    const int channels_in_file = ct == 0 || ct == 3 ? 1 : ct == 2 ? 3 : ct == 4 ? 2 : 4;
    const PilZipEnd end = png_replay_pil_inflate(segs.data(), segs.size(), tw, th,
                                                 bd * channels_in_file, st.interlaced);
    if (end.kind == PilZipEnd::Broken) fail(name, "corrupt PNG image data (" + end.why + ")");
    if (end.kind == PilZipEnd::Truncated) fail(name, "image file is truncated");
    if (end.rows != run.rows_done) fail(name, "corrupt PNG image data");
    end_segment = end.segment;  // the stream ended early: PIL leaves the other rows as they are
  }
  png_check_after_data(data, size, segs[end_segment].data_end, st, animated, name);
  return im;
}

}  // namespace bgevl::vision::decode_detail

#endif  // BGEVL_WITH_DECODING
