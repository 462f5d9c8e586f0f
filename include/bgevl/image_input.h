// An image given to an embedder: a file, encoded bytes, or decoded RGB pixels.
#pragma once

#include <torch/torch.h>

#include <string>

namespace bgevl {

class ImageInput {
 public:
  enum class Kind { Path, Bytes, Pixels };
  // A file to decode (JPEG, PNG, BMP, WebP, TIFF), as PIL's Image.open(path).convert("RGB").
  static ImageInput path(std::string p) { return ImageInput(Kind::Path, std::move(p), {}); }
  // The encoded bytes of such a file.
  static ImageInput bytes(std::string data) { return ImageInput(Kind::Bytes, std::move(data), {}); }
  // Decoded pixels: uint8 [H, W, 3] RGB (or [H, W] grey, [H, W, 4] RGBA), on the CPU.
  static ImageInput pixels(torch::Tensor hwc) { return ImageInput(Kind::Pixels, {}, std::move(hwc)); }

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }  // the path or the bytes
  const torch::Tensor& tensor() const { return tensor_; }

 private:
  ImageInput(Kind k, std::string t, torch::Tensor p)
      : kind_(k), text_(std::move(t)), tensor_(std::move(p)) {}
  Kind kind_;
  std::string text_;
  torch::Tensor tensor_;
};

}  // namespace bgevl
