// Decoded images and PIL-exact pixel operations. No libtorch here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace bgevl::vision {

// The PIL mode the file would open as. Pixels are stored interleaved, row-major:
//   L: 1 channel, LA: 2, RGB: 3, RGBA: 4, CMYK: 4 (as PIL holds it, i.e. already inverted for
//   Adobe JPEGs), P: a palette image, stored expanded to RGB (3 channels; palette
//   transparency ignored, as convert("RGB") does), One: a 1-bit image stored as L with 0/255.
// P and One matter for Image.resize: PIL uses NEAREST for them whatever filter is asked.
enum class PilMode { L, LA, RGB, RGBA, CMYK, P, One };

// Channels an image of that mode holds in bgevl's layout (P is stored expanded to RGB).
inline int channels_of(PilMode m) {
  switch (m) {
    case PilMode::L:
    case PilMode::One:
      return 1;
    case PilMode::LA:
      return 2;
    case PilMode::RGB:
    case PilMode::P:
      return 3;
    case PilMode::RGBA:
    case PilMode::CMYK:
      return 4;
  }
  return 0;
}

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  PilMode mode = PilMode::RGB;
  std::vector<uint8_t> data;  // height * width * channels
};

// Decode JPEG, PNG, BMP, WebP or TIFF (first frame) without applying EXIF orientation.
// Missing file: FileNotFoundError. Unreadable, truncated or unsupported data: InvalidArgumentError.
Image decode_file(const std::string& path);
Image decode_bytes(const uint8_t* data, size_t size, const std::string& name = "<bytes>");

// What the first bytes of an encoded image say, without decoding: the format ("jpeg", "png",
// "bmp", "webp", "tiff", "gif"; empty when none of these) and the size (0 when the header does
// not give it, e.g. truncated). For limits checked before any pixel is allocated.
struct ImageHeader {
  std::string format;
  int64_t width = 0, height = 0;
};
ImageHeader probe_image(const uint8_t* data, size_t size);
// "image/jpeg", "image/png", ... for a probed header; "application/octet-stream" when unknown.
std::string mime_type(const ImageHeader& header);

// Image from caller pixels (HxWxC uint8, C = 1, 3 or 4 as L/RGB/RGBA). InvalidArgumentError on
// bad sizes.
Image from_pixels(const uint8_t* data, int height, int width, int channels);
// Image from caller pixels in `mode`'s layout (channels_of(mode) channels: P as its RGB
// expansion, One as grey 0/255).
Image from_pixels(const uint8_t* data, int height, int width, PilMode mode);

// PIL's im.convert("RGB") for every mode above.
Image to_rgb(const Image& im);

// Pillow's Image.resize(size, BICUBIC) on an 8-bit image of any channel count treated channel by
// channel (separable, antialiased, fixed-point coefficients, uint8 rounding after each pass).
Image resize_bicubic(const Image& im, int width, int height);

// What transformers' CLIPImageProcessor reads from preprocessor_config.json.
struct ClipImageConfig {
  bool do_resize = true;
  int shortest_edge = 224;
  bool do_center_crop = true;
  int crop_height = 224;
  int crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  bool do_convert_rgb = true;
  int resample = 3;  // only 3 (bicubic) is supported
};
ClipImageConfig load_clip_image_config(const std::string& preprocessor_config_json_path);

// CLIPImageProcessor on one image: RGB, shortest-edge resize, centre crop, rescale, normalise.
// Writes 3 * crop_height * crop_width floats, CHW, equal to transformers' pixel_values.
void clip_preprocess(const Image& im, const ClipImageConfig& cfg, float* out);
// The same in two steps, for pipelines that normalise on the device: the centre crop as
// 3 * crop_height * crop_width bytes, CHW (zeros where the crop lies outside the image), and the
// per-channel table (rescale + normalise of each byte value, channel c at c * 256) that turns
// them into exactly clip_preprocess's floats: out[c][i] = table[c * 256 + crop[c][i]].
void clip_preprocess_u8(const Image& im, const ClipImageConfig& cfg, uint8_t* out);
std::array<float, 3 * 256> clip_pixel_table(const ClipImageConfig& cfg);

}  // namespace bgevl::vision
