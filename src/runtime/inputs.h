// The items an embedder is given, on their way in: checks that need no decoding (run on every
// item before anything is computed), decoding as PIL would open an image, normalising outputs.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/image_input.h"
#include "vision/image.h"

namespace bgevl::runtime {

// What can be told about an image input without decoding it: a path names a readable file (not a
// folder), bytes are not empty, pixels have a supported dtype, shape and mode. `item` is the
// item's index, for the message. FileNotFoundError / InvalidArgumentError.
void check_image(const ImageInput& in, size_t item);

// check_image for every item's image, after checking that each item has an image or a text.
// At most kMaxItemsPerCall items (an encode call holds all its embeddings in memory at once).
inline constexpr size_t kMaxItemsPerCall = size_t(1) << 20;
void check_items(const std::vector<EmbedItem>& items);

// Decodes one input as PIL would open it (mode kept; no RGB conversion yet).
vision::Image decode(const ImageInput& in);

// Items from parallel lists, as encode(images=..., text=...) takes them: either list may be empty,
// else they have equal lengths; an entry may be absent (a candidate without a caption). Every
// item gets `prompt`. InvalidArgumentError when both lists are empty or their lengths differ.
std::vector<EmbedItem> zip_items(const std::vector<std::optional<ImageInput>>& images,
                                 const std::vector<std::optional<std::string>>& texts,
                                 const Prompt& prompt);

// F.normalize(x, dim=-1) in float32.
torch::Tensor l2_normalize(const torch::Tensor& x);

// Pixel values from uint8 crops, on the crops' device: out[n][c][i] = table[c * 256 +
// crops[n][c][i]] for [N, C, H, W] uint8 crops and a [C * 256] float32 table
// (vision::clip_pixel_table): the same floats the host path writes, bit for bit, with a quarter of
// the bytes to copy to the device.
torch::Tensor pixels_from_crops(const torch::Tensor& crops, const torch::Tensor& table);

}  // namespace bgevl::runtime
