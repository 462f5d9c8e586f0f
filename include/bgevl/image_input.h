// An image given to an embedder: a file, encoded bytes, or decoded pixels.
#pragma once

#include <torch/torch.h>

#include <string>

namespace bgevl {

class ImageInput {
 public:
  enum class Kind { Path, Bytes, Pixels };
  // A file to decode (JPEG, PNG, BMP, WebP, TIFF), as PIL's Image.open(path).
  static ImageInput path(std::string p) { return ImageInput(Kind::Path, std::move(p), {}, {}); }
  // The encoded bytes of such a file.
  static ImageInput bytes(std::string data) {
    return ImageInput(Kind::Bytes, std::move(data), {}, {});
  }
  // Decoded pixels, uint8 on the CPU: [H, W] or [H, W, 1] grey ("L"), [H, W, 2] grey + alpha
  // ("LA"), [H, W, 3] RGB, [H, W, 4] RGBA.
  static ImageInput pixels(torch::Tensor hwc) {
    return ImageInput(Kind::Pixels, {}, std::move(hwc), {});
  }
  // Pixels of a PIL image in `mode`, for pipelines that resize before converting to RGB
  // (BGE-VL-MLLM): "L", "LA", "RGB", "RGBA", "CMYK" (numpy.asarray(im)), "P" (a palette image
  // as its RGB expansion: it keeps PIL's nearest-neighbour resizing) and "1" (a bilevel image as
  // grey 0/255, likewise nearest). InvalidArgumentError for other modes or shapes, when used.
  static ImageInput pixels(torch::Tensor hwc, std::string mode) {
    return ImageInput(Kind::Pixels, {}, std::move(hwc), std::move(mode));
  }

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }  // the path or the bytes
  const torch::Tensor& tensor() const { return tensor_; }
  const std::string& mode() const { return mode_; }  // pixels: the PIL mode given, or empty

 private:
  ImageInput(Kind k, std::string t, torch::Tensor p, std::string mode)
      : kind_(k), text_(std::move(t)), tensor_(std::move(p)), mode_(std::move(mode)) {}
  Kind kind_;
  std::string text_;
  torch::Tensor tensor_;
  std::string mode_;
};

}  // namespace bgevl
