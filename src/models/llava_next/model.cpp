#include "nn/llava_next.h"

#include "bgevl/errors.h"
#include "vision/llava_processor.h"

namespace bgevl::nn {

using torch::indexing::Slice;

LlavaProjectorImpl::LlavaProjectorImpl(int64_t in, int64_t out, const std::string& act)
    : act_(activation(act)) {
  linear_1 = register_module("linear_1", Linear(in, out, true));
  linear_2 = register_module("linear_2", Linear(out, out, true));
}

namespace {
// The vision config with only the layers hidden_states[vision_feature_layer] needs.
io::ClipVisionConfig truncated(const io::LlavaNextConfig& c) {
  io::ClipVisionConfig v = c.vision;
  v.num_hidden_layers = c.vision_layers_used();
  return v;
}
}  // namespace

VisionTowerImpl::VisionTowerImpl(const io::ClipVisionConfig& c) {
  vision_model = register_module("vision_model", ClipVisionTransformer(c, /*post_layernorm=*/false));
}

LanguageModelImpl::LanguageModelImpl(const io::MistralConfig& c) {
  model = register_module("model", MistralModel(c));
}

LlavaNextImpl::LlavaNextImpl(const io::LlavaNextConfig& c) : cfg_(c) {
  vision_tower = register_module("vision_tower", VisionTower(truncated(c)));
  multi_modal_projector = register_module(
      "multi_modal_projector",
      LlavaProjector(c.vision.hidden_size, c.text.hidden_size, c.projector_hidden_act));
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

namespace {
std::pair<int64_t, int64_t> best_resolution(const io::LlavaNextConfig& c, int64_t h, int64_t w) {
  std::vector<std::pair<int, int>> pins;
  for (const auto& p : c.image_grid_pinpoints) pins.emplace_back(int(p.first), int(p.second));
  const auto r = vision::select_best_resolution(int(h), int(w), pins);
  return {r.first, r.second};
}
}  // namespace

int64_t LlavaNextImpl::num_tiles(int64_t height, int64_t width) const {
  // image_size_to_num_patches: ceil-counted grid over the best resolution, plus the base tile.
  const auto [bh, bw] = best_resolution(cfg_, height, width);
  const int64_t p = cfg_.vision.image_size;
  return ((bh + p - 1) / p) * ((bw + p - 1) / p) + 1;
}

std::vector<torch::Tensor> LlavaNextImpl::image_features(const torch::Tensor& pixel_values,
                                                         const torch::Tensor& image_sizes) const {
  BGEVL_CHECK_ARG(image_sizes.dim() == 2 && image_sizes.size(1) == 2,
                  "image_sizes must be [N, 2] (height, width), got ", image_sizes.sizes());
  const auto sizes = image_sizes.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = sizes.size(0);
  std::vector<int64_t> tiles(n);
  for (int64_t i = 0; i < n; ++i) tiles[i] = num_tiles(sizes[i][0].item<int64_t>(), sizes[i][1].item<int64_t>());
  torch::Tensor px;
  if (pixel_values.dim() == 5) {
    BGEVL_CHECK_ARG(pixel_values.size(0) == n, "pixel_values holds ", pixel_values.size(0),
                    " images but image_sizes ", n);
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < n; ++i) {
      BGEVL_CHECK_ARG(tiles[i] <= pixel_values.size(1), "image ", i, " needs ", tiles[i],
                      " tiles but pixel_values has ", pixel_values.size(1));
      parts.push_back(pixel_values[i].narrow(0, 0, tiles[i]));
    }
    px = torch::cat(parts, 0);
  } else {
    BGEVL_CHECK_ARG(pixel_values.dim() == 4, "pixel_values must be 4-D or 5-D, got ",
                    pixel_values.dim(), "-D");
    px = pixel_values;
  }
  int64_t total = 0;
  for (auto t : tiles) total += t;
  BGEVL_CHECK_ARG(px.size(0) == total, "pixel_values has ", px.size(0), " tiles, image_sizes need ",
                  total);

  auto hidden = vision_tower->vision_model->hidden_states_at(px, cfg_.vision_layers_used());
  if (cfg_.vision_feature_select_strategy == "default") hidden = hidden.index({Slice(), Slice(1)});
  auto feats = multi_modal_projector->forward(hidden);  // [total, P, H]

  const int64_t side = cfg_.vision.image_size / cfg_.vision.patch_size;
  const auto newline = image_newline;
  std::vector<torch::Tensor> out;
  int64_t start = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto f = feats.narrow(0, start, tiles[i]);
    start += tiles[i];
    const int64_t H = f.size(-1);
    if (tiles[i] > 1) {
      auto base = f[0];
      auto grid = f.narrow(0, 1, tiles[i] - 1);
      BGEVL_CHECK_ARG(base.size(0) == side * side,
                      "The number of patches is not consistent with the image size.");
      const int64_t h = sizes[i][0].item<int64_t>(), w = sizes[i][1].item<int64_t>();
      const auto [bh, bw] = best_resolution(cfg_, h, w);
      const int64_t gh = bh / cfg_.vision.image_size, gw = bw / cfg_.vision.image_size;
      auto g = grid.reshape({gh, gw, side, side, H}).permute({4, 0, 2, 1, 3}).contiguous();
      g = g.flatten(1, 2).flatten(2, 3);  // [H, gh*side, gw*side]
      // unpad_image: back to the original aspect ratio (Python floats: double).
      const int64_t ch = g.size(1), cw = g.size(2);
      const double orig_aspect = double(w) / double(h), cur_aspect = double(cw) / double(ch);
      if (orig_aspect > cur_aspect) {
        const double scale = double(cw) / double(w);
        const int64_t new_h = static_cast<int64_t>(double(h) * scale);
        const int64_t pad = (ch - new_h) / 2;
        g = g.index({Slice(), Slice(pad, ch - pad), Slice()});
      } else {
        const double scale = double(ch) / double(h);
        const int64_t new_w = static_cast<int64_t>(double(w) * scale);
        const int64_t pad = (cw - new_w) / 2;
        g = g.index({Slice(), Slice(), Slice(pad, cw - pad)});
      }
      auto nl = newline.view({H, 1, 1}).expand({H, g.size(1), 1}).to(g.scalar_type());
      g = torch::cat({g, nl}, -1).flatten(1, 2).transpose(0, 1);  // [rows * (cols + 1), H]
      out.push_back(torch::cat({base, g}, 0));
    } else {
      out.push_back(torch::cat({f[0], newline.view({1, H}).to(f.scalar_type())}, 0));
    }
  }
  return out;
}

MergedInputs LlavaNextImpl::merge(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                  const std::vector<torch::Tensor>& image_features) const {
  auto& lm = language_model->model;
  const auto dev = lm->embed_tokens->weight.device();
  BGEVL_CHECK_ARG(input_ids.dim() == 2 && input_ids.size(0) > 0 && input_ids.size(1) > 0,
                  "input_ids must be a non-empty [batch, length] tensor, got ", input_ids.sizes());
  auto ids = input_ids.to(dev, torch::kLong);
  auto mask = attention_mask.defined() ? attention_mask.to(dev, torch::kLong) : torch::ones_like(ids);
  BGEVL_CHECK_ARG(mask.sizes() == ids.sizes(), "attention_mask shape ", mask.sizes(),
                  " differs from input_ids shape ", ids.sizes());
  BGEVL_CHECK_ARG(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < lm->config().vocab_size,
                  "input_ids outside the vocabulary [0, ", lm->config().vocab_size, ")");
  auto embeds = lm->embed_tokens->forward(ids);
  const int64_t B = ids.size(0), L = ids.size(1);
  if (image_features.empty()) {
    BGEVL_CHECK_ARG(!(ids == cfg_.image_token_index).any().item<bool>(),
                    "input_ids hold <image> tokens but no pixel_values were given");
    // Positions count only real tokens, as the reference computes them for image prompts. (For
    // text-only batches it uses 0..L-1, pads included, which offsets RoPE by the padding: the
    // same up to float rounding, but then batched results drift from one-by-one ones.)
    auto pos = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1);
    return {embeds, mask, pos};
  }
  // transformers' legacy merge with left padding: each row's real tokens, with every <image>
  // token replaced by the next image's rows, right-aligned in a zero-filled row.
  const auto ids_cpu = ids.to(torch::kCPU);
  const auto mask_cpu = mask.to(torch::kCPU);
  std::vector<torch::Tensor> rows;
  size_t next_image = 0;
  int64_t max_len = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<torch::Tensor> pieces;
    int64_t run_start = -1;
    auto flush = [&](int64_t end) {
      if (run_start >= 0) pieces.push_back(embeds[b].narrow(0, run_start, end - run_start));
      run_start = -1;
    };
    const auto* id = ids_cpu[b].contiguous().data_ptr<int64_t>();
    const auto mrow = mask_cpu[b].contiguous();
    const auto* m = mrow.data_ptr<int64_t>();
    for (int64_t t = 0; t < L; ++t) {
      if (m[t] == 0) {
        flush(t);
        continue;
      }
      if (id[t] == cfg_.image_token_index) {
        flush(t);
        BGEVL_CHECK_ARG(next_image < image_features.size(), "input_ids hold more <image> tokens than the ",
                        image_features.size(), " images given");
        pieces.push_back(image_features[next_image++].to(embeds.scalar_type()));
      } else if (run_start < 0) {
        run_start = t;
      }
    }
    flush(L);
    auto row = pieces.empty() ? embeds.new_zeros({0, embeds.size(2)}) : torch::cat(pieces, 0);
    max_len = std::max(max_len, row.size(0));
    rows.push_back(row);
  }
  BGEVL_CHECK_ARG(next_image == image_features.size(), "Number of image tokens in input_ids (",
                  next_image, ") different from num_images (", image_features.size(), ").");
  const int64_t H = embeds.size(2);
  auto out = torch::zeros({B, max_len, H}, embeds.options());
  auto out_mask = torch::zeros({B, max_len}, ids.options());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = rows[b].size(0);
    out[b].narrow(0, max_len - n, n).copy_(rows[b]);
    out_mask[b].narrow(0, max_len - n, n).fill_(1);
  }
  auto pos = (out_mask.cumsum(-1) - 1).masked_fill_(out_mask == 0, 1);
  return {out, out_mask, pos};
}

torch::Tensor LlavaNextImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                     const torch::Tensor& pixel_values, const torch::Tensor& image_sizes,
                                     bool last_only) const {
  std::vector<torch::Tensor> feats;
  if (pixel_values.defined() && pixel_values.numel() > 0) {
    BGEVL_CHECK_ARG(image_sizes.defined(), "pixel_values given without image_sizes");
    feats = image_features(pixel_values, image_sizes);
  }
  auto merged = merge(input_ids, attention_mask, feats);
  return language_model->model->forward(merged.inputs_embeds, merged.attention_mask,
                                        merged.position_ids, last_only);
}

}  // namespace bgevl::nn
