#include "models/llava_next/model.h"

#include <algorithm>

#include "bgevl/errors.h"
#include "vision/llava_processor.h"

namespace bgevl::llava_next {

ImageLayout image_layout(const Config& c, int64_t height, int64_t width) {
  BGEVL_CHECK_ARG(height > 0 && width > 0, "image size must be positive, got ", height, "x", width);
  BGEVL_CHECK_ARG(c.vision_feature_select_strategy == "default",
                  "vision_feature_select_strategy 'full' cannot pack anyres images (the reference "
                  "raises 'The number of patches is not consistent with the image size.')");
  ImageLayout l;
  l.height = height;
  l.width = width;
  const auto best = vision::select_best_resolution(static_cast<int>(height),
                                                   static_cast<int>(width), c.image_grid_pinpoints);
  const int64_t p = c.vision.image_size, side = c.tile_side();
  // image_size_to_num_patches: the ceil-counted grid over the best resolution, plus the base tile;
  // get_anyres_image_grid_shape: the floor-counted grid (the same: pinpoints are tile multiples).
  l.tiles = ((best.first + p - 1) / p) * ((best.second + p - 1) / p) + 1;
  l.grid_rows = best.first / p;
  l.grid_cols = best.second / p;
  if (l.tiles == 1) {  // the base tile and one image_newline row
    l.feature_len = side * side + 1;
    return l;
  }
  // unpad_image: back to the original aspect ratio (Python floats: double; int() truncates).
  const int64_t ch = l.grid_rows * side, cw = l.grid_cols * side;
  l.rows = ch;
  l.cols = cw;
  const double orig_aspect = double(width) / double(height), cur_aspect = double(cw) / double(ch);
  if (orig_aspect > cur_aspect) {
    const int64_t new_h = static_cast<int64_t>(double(height) * (double(cw) / double(width)));
    l.row0 = (ch - new_h) / 2;
    l.rows = ch - 2 * l.row0;
  } else {
    const int64_t new_w = static_cast<int64_t>(double(width) * (double(ch) / double(height)));
    l.col0 = (cw - new_w) / 2;
    l.cols = cw - 2 * l.col0;
  }
  l.feature_len = side * side + l.rows * (l.cols + 1);
  return l;
}

MergePlan plan_merge(const std::vector<int64_t>& ids, const std::vector<int64_t>& mask,
                     int64_t batch, int64_t length, int64_t image_token,
                     const std::vector<ImageLayout>& images) {
  BGEVL_CHECK_ARG(
      batch > 0 && length > 0 && ids.size() == size_t(batch * length) && mask.size() == ids.size(),
      "input_ids and attention_mask must be non-empty [batch, length] tensors");
  std::vector<int64_t> offset(images.size());
  int64_t total = 0;
  for (size_t k = 0; k < images.size(); ++k) {
    offset[k] = batch * length + total;
    total += images[k].feature_len;
  }
  MergePlan plan;
  plan.batch = batch;
  if (images.empty()) {
    // No image: nothing is merged, the rows stay as given (the reference's text-only path), with
    // positions counting real tokens only (pads: 1), as its image prompts count them.
    BGEVL_CHECK_ARG(std::find(ids.begin(), ids.end(), image_token) == ids.end(),
                    "input_ids hold <image> tokens but no pixel_values were given");
    plan.length = length;
    plan.attention_mask = mask;
    plan.source.resize(ids.size());
    plan.position_ids.assign(ids.size(), 1);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t p = 0;
      for (int64_t t = 0; t < length; ++t) {
        const int64_t i = b * length + t;
        plan.source[i] = i;
        if (mask[i] != 0) plan.position_ids[i] = p++;
      }
    }
    return plan;
  }
  const int64_t zero_row = batch * length + total;
  std::vector<std::vector<int64_t>> rows(batch);
  size_t next = 0;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < length; ++t) {
      const int64_t i = b * length + t;
      if (mask[i] == 0) continue;
      if (ids[i] != image_token) {
        rows[b].push_back(i);
        continue;
      }
      BGEVL_CHECK_ARG(next < images.size(), "input_ids hold more <image> tokens than the ",
                      images.size(), " images given");
      for (int64_t r = 0; r < images[next].feature_len; ++r) rows[b].push_back(offset[next] + r);
      ++next;
    }
  }
  BGEVL_CHECK_ARG(next == images.size(), "Number of image tokens in input_ids (", next,
                  ") different from num_images (", images.size(), ").");
  for (const auto& r : rows) plan.length = std::max<int64_t>(plan.length, r.size());
  BGEVL_CHECK_ARG(plan.length > 0, "attention_mask has no real token in any row");
  plan.source.assign(batch * plan.length, zero_row);
  plan.attention_mask.assign(batch * plan.length, 0);
  plan.position_ids.assign(batch * plan.length, 1);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = static_cast<int64_t>(rows[b].size()),
                  start = b * plan.length + plan.length - n;
    for (int64_t i = 0; i < n; ++i) {
      plan.source[start + i] = rows[b][i];
      plan.attention_mask[start + i] = 1;
      plan.position_ids[start + i] = i;
    }
  }
  return plan;
}

ProjectorImpl::ProjectorImpl(int64_t in, int64_t out, const std::string& act)
    : act_(nn::activation(act)) {
  linear_1 = register_module("linear_1", nn::Linear(in, out, true));
  linear_2 = register_module("linear_2", nn::Linear(out, out, true));
}

VisionTowerImpl::VisionTowerImpl(const clip::VisionConfig& c) {
  vision_model =
      register_module("vision_model", clip::VisionTransformer(c, /*with_post_layernorm=*/false));
}

LanguageModelImpl::LanguageModelImpl(const MistralConfig& c) {
  model = register_module("model", MistralModel(c));
}

namespace {
// The vision config with only the layers hidden_states[vision_feature_layer] needs.
clip::VisionConfig truncated(const Config& c) {
  clip::VisionConfig v = c.vision;
  v.num_hidden_layers = c.vision_layers_used();
  return v;
}
}  // namespace

LlavaNextImpl::LlavaNextImpl(const Config& c) : cfg_(c) {
  vision_tower = register_module("vision_tower", VisionTower(truncated(c)));
  multi_modal_projector =
      register_module("multi_modal_projector",
                      Projector(c.vision.hidden_size, c.text.hidden_size, c.projector_hidden_act));
  image_newline = declare("image_newline", {c.text.hidden_size});
  language_model = register_module("language_model", LanguageModel(c.text));
}

std::vector<std::string> LlavaNextImpl::unused_prefixes() const {
  std::vector<std::string> out = {"vision_tower.vision_model.post_layernorm.",
                                  "language_model.lm_head."};
  for (int64_t i = cfg_.vision_layers_used(); i < cfg_.vision.num_hidden_layers; ++i)
    out.push_back("vision_tower.vision_model.encoder.layers." + std::to_string(i) + ".");
  return out;
}

torch::Tensor LlavaNextImpl::projected_tiles(const torch::Tensor& tiles) const {
  auto hidden = vision_tower->vision_model->hidden_states_at(tiles, cfg_.vision_layers_used());
  if (cfg_.vision_feature_select_strategy == "default")
    hidden = hidden.narrow(1, 1, hidden.size(1) - 1);
  return multi_modal_projector->forward(hidden);
}

torch::Tensor LlavaNextImpl::image_features(const torch::Tensor& tiles,
                                            const std::vector<ImageLayout>& images) const {
  int64_t total = 0;
  for (const auto& im : images) total += im.tiles;
  BGEVL_CHECK_ARG(tiles.dim() == 4 && tiles.size(0) == total, "pixel_values has ",
                  tiles.dim() == 4 ? tiles.size(0) : -1, " tiles, the images need ", total);
  const auto feats = projected_tiles(tiles);  // [tiles, patches, H]
  const int64_t side = cfg_.tile_side(), H = feats.size(-1);
  const auto newline = image_newline.to(feats.scalar_type());
  std::vector<torch::Tensor> out;
  int64_t start = 0;
  for (const auto& im : images) {
    const auto f = feats.narrow(0, start, im.tiles);
    start += im.tiles;
    if (im.tiles == 1) {
      out.push_back(torch::cat({f[0], newline.view({1, H})}, 0));
      continue;
    }
    BGEVL_CHECK_ARG(f.size(1) == side * side,
                    "The number of patches is not consistent with the image size.");
    // The grid tiles as one feature map [H, rows * side, cols * side], unpadded, with an
    // image_newline column per row, flattened row-major.
    auto g = f.narrow(0, 1, im.tiles - 1)
                 .reshape({im.grid_rows, im.grid_cols, side, side, H})
                 .permute({4, 0, 2, 1, 3})
                 .contiguous()
                 .flatten(1, 2)
                 .flatten(2, 3);
    g = g.narrow(1, im.row0, im.rows).narrow(2, im.col0, im.cols);
    auto nl = newline.view({H, 1, 1}).expand({H, im.rows, 1});
    g = torch::cat({g, nl}, -1).flatten(1, 2).transpose(0, 1);  // [rows * (cols + 1), H]
    out.push_back(torch::cat({f[0], g}, 0));
  }
  return out.size() == 1 ? out[0] : torch::cat(out, 0);
}

torch::Tensor LlavaNextImpl::forward(const DeviceBatch& batch, bool last_only) const {
  auto& lm = language_model->model;
  const auto embeds = lm->embed_tokens->forward(batch.input_ids);  // [B, L, H]
  const int64_t H = embeds.size(2);
  std::vector<torch::Tensor> table = {embeds.view({-1, H})};
  if (!batch.images.empty())
    table.push_back(image_features(batch.tiles, batch.images).to(embeds.scalar_type()));
  table.push_back(torch::zeros({1, H}, embeds.options()));
  const auto merged = torch::cat(table, 0)
                          .index_select(0, batch.source.reshape({-1}))
                          .view({batch.source.size(0), batch.source.size(1), H});
  return lm->forward(merged, batch.attention_mask, batch.position_ids, last_only, batch.unpadded);
}

}  // namespace bgevl::llava_next
