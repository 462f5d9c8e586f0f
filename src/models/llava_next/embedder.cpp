// BGE-VL-MLLM's Embedder: the model card's data_process + forward, and encode on the batch
// engine (host plan, last position only in the last layer).
#include <algorithm>
#include <cstring>

#include "bgevl/errors.h"
#include "bgevl/mllm_embedder.h"
#include "io/safetensors.h"
#include "models/common.h"
#include "models/llava_next/config.h"
#include "models/llava_next/model.h"
#include "models/llava_next/processor.h"
#include "models/registry.h"
#include "nn/load.h"
#include "runtime/engine.h"
#include "runtime/inputs.h"
#include "runtime/thread_pool.h"

namespace bgevl {

namespace {

using llava_next::ImageLayout;
using runtime::with_item_context;

// What data_process and the engine both make on the host for a list of items.
struct HostInputs {
  text::TokenBatch tokens;
  std::vector<vision::LlavaPixels> pixels;  // one per item with an image, in order
  std::vector<ImageLayout> layouts;
};

HostInputs host_inputs(const runtime::BatchItems& b, const llava_next::Processor& proc,
                       const llava_next::Config& config) {
  HostInputs h;
  std::vector<std::string> prompts;
  std::vector<size_t> with_image;
  for (size_t j = 0; j < b.size(); ++j) {
    with_item_context(b.index[j], [&] {
      prompts.push_back(
          llava_next::Processor::prompt(b[j].text, b[j].image.has_value(), b[j].prompt));
    });
    if (b[j].image) with_image.push_back(j);
  }
  h.tokens = proc.tokenizer().encode_batch(prompts);
  h.pixels.resize(with_image.size());
  runtime::pool()->parallel_for(static_cast<int64_t>(with_image.size()), [&](int64_t k) {
    const size_t j = with_image[k];
    with_item_context(b.index[j], [&] { h.pixels[k] = proc.pixels(*b[j].image); });
  });
  for (const auto& px : h.pixels) {
    h.layouts.push_back(llava_next::image_layout(config, px.image_height, px.image_width));
    BGEVL_CHECK(h.layouts.back().tiles == px.num_tiles, Error, "the processor made ", px.num_tiles,
                " tiles where the model expects ", h.layouts.back().tiles);
  }
  return h;
}

runtime::BatchItems all_of(const std::vector<EmbedItem>& items) {
  runtime::BatchItems b;
  for (size_t i = 0; i < items.size(); ++i) {
    b.items.push_back(&items[i]);
    b.index.push_back(i);
  }
  return b;
}

struct MllmContext : runtime::EncodeContext {
  std::shared_ptr<const llava_next::Processor> processor;
};

// The engine's batch: token ids, the tiles of every image back to back (no padding tiles), and
// the merge plan.
struct MllmBatch : runtime::HostBatch {
  torch::Tensor input_ids, tiles, source, attention_mask, position_ids;
  std::vector<ImageLayout> images;
  bool unpadded = false;  // no zero in attention_mask
};

}  // namespace

struct MllmEmbedder::Impl final : runtime::BatchModel {
  models::Checkpoint checkpoint;
  llava_next::Config config;
  llava_next::LlavaNext model{nullptr};
  models::ProcessorSlot<llava_next::Processor> processors{
      "tokenizer.model or preprocessor_config.json"};

  std::shared_ptr<const llava_next::Processor> processor() const { return processors.get(); }

  int64_t default_batch_size() const override { return 8; }
  torch::Device device() const override { return model->image_newline.device(); }

  std::unique_ptr<runtime::EncodeContext> check(const std::vector<EmbedItem>& items,
                                                const EncodeOptions& options,
                                                int64_t batch_size) const override {
    BGEVL_CHECK_ARG(options.normalize,
                    "BGE-VL-MLLM gives normalised embeddings only (normalize=false is for "
                    "BGE-VL-CLIP's projected features)");
    BGEVL_CHECK_ARG(!options.truncate,
                    "truncate is not supported by BGE-VL-MLLM: its prompts have no token limit "
                    "short of the model's positions, and cutting one would drop the [/INST] whose "
                    "last position is the embedding");
    for (size_t i = 0; i < items.size(); ++i)
      with_item_context(
          i, [&] { llava_next::Processor::prompt(items[i].text, false, items[i].prompt); });
    auto context = std::make_unique<MllmContext>();
    const auto& proc = *(context->processor = processor());
    proc.tokenizer();
    // Long lists are ordered by cost: each item's merged length.
    check_lengths(items, proc,
                  static_cast<int64_t>(items.size()) > batch_size ? &context->costs : nullptr);
    return context;
  }

  // The merged length of each item (prompt tokens plus, with an image, its rows but one: every
  // image is resized to pre_resize x pre_resize first, so they all take the same), which the
  // model's positions limit. A prompt has at most one token per byte plus BOS and a prefix space,
  // so only prompts that could be too long are tokenized, unless every length is wanted in
  // `lengths`.
  void check_lengths(const std::vector<EmbedItem>& items, const llava_next::Processor& proc,
                     std::vector<int64_t>* lengths) const {
    const bool any_image =
        std::any_of(items.begin(), items.end(), [](const EmbedItem& it) { return bool(it.image); });
    const int64_t image_rows =
        any_image
            ? (proc.image(),
               llava_next::image_layout(config, config.pre_resize, config.pre_resize).feature_len)
            : 0;
    const int64_t limit = config.text.max_position_embeddings;
    if (lengths) lengths->assign(items.size(), 0);
    runtime::pool()->parallel_for(static_cast<int64_t>(items.size()), [&](int64_t i) {
      const auto& it = items[i];
      const int64_t rows = it.image ? image_rows - 1 : 0;
      const auto p = llava_next::Processor::prompt(it.text, it.image.has_value(), it.prompt);
      if (!lengths && static_cast<int64_t>(p.size()) + 2 + rows <= limit) return;
      const int64_t tokens = static_cast<int64_t>(proc.tokenizer().encode(p).size());
      if (lengths) (*lengths)[i] = tokens + rows;
      BGEVL_CHECK_ARG(
          tokens + rows <= limit, "item ", i, ": the prompt is ", tokens + rows, " tokens long (",
          tokens, " text tokens",
          it.image ? " and the image's " + std::to_string(image_rows) + " rows" : std::string(),
          "), more than the model's limit of ", limit,
          " (text_config.max_position_embeddings in config.json)");
    });
  }

  std::unique_ptr<runtime::HostBatch> prepare(const runtime::BatchItems& b,
                                              const runtime::EncodeContext& context,
                                              const EncodeOptions&,
                                              const runtime::Staging& staging) const override {
    const auto& proc = *static_cast<const MllmContext&>(context).processor;
    const auto h = host_inputs(b, proc, config);
    auto out = std::make_unique<MllmBatch>();
    out->input_ids = staging.int64s(h.tokens.input_ids, {h.tokens.rows, h.tokens.length});
    if (!h.pixels.empty()) {
      const auto& p0 = h.pixels.front();
      int64_t tiles = 0;
      for (const auto& px : h.pixels) tiles += px.num_tiles;
      out->tiles = staging.empty({tiles, 3, p0.tile_height, p0.tile_width}, torch::kFloat32);
      auto* dst = static_cast<char*>(out->tiles.data_ptr());
      for (const auto& px : h.pixels) {
        std::memcpy(dst, px.data.data(), px.data.size() * sizeof(float));
        dst += px.data.size() * sizeof(float);
      }
    }
    const auto plan =
        llava_next::plan_merge(h.tokens.input_ids, h.tokens.attention_mask, h.tokens.rows,
                               h.tokens.length, config.image_token_index, h.layouts);
    out->source = staging.int64s(plan.source, {plan.batch, plan.length});
    out->attention_mask = staging.int64s(plan.attention_mask, {plan.batch, plan.length});
    out->unpadded = std::find(plan.attention_mask.begin(), plan.attention_mask.end(), int64_t(0)) ==
                    plan.attention_mask.end();
    out->position_ids = staging.int64s(plan.position_ids, {plan.batch, plan.length});
    out->images = h.layouts;
    return out;
  }

  torch::Tensor run(runtime::HostBatch& batch, const runtime::Staging& staging) const override {
    auto& b = static_cast<MllmBatch&>(batch);
    llava_next::DeviceBatch d;
    d.input_ids = staging.to_device(b.input_ids);
    d.tiles = staging.to_device(b.tiles);
    d.images = b.images;
    d.source = staging.to_device(b.source);
    d.attention_mask = staging.to_device(b.attention_mask);
    d.position_ids = staging.to_device(b.position_ids);
    d.unpadded = b.unpadded;
    const auto h = model->forward(d, /*last_only=*/true);  // [B, 1, H]
    return runtime::l2_normalize(h.select(1, h.size(1) - 1));
  }
};

MllmEmbedder::MllmEmbedder(const std::string& path_or_id, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.checkpoint = models::open_checkpoint(path_or_id, options, Family::LlavaNext);
  m.config = llava_next::load_config(m.checkpoint.config_json);
  m.model = llava_next::LlavaNext(m.config);
  const auto weights = io::WeightSet::open_dir(m.checkpoint.dir);
  nn::load_weights(*m.model, weights, models::load_dtype(options), options.device, "",
                   {"vision_tower.vision_model.embeddings.position_ids"},
                   m.model->unused_prefixes(), options.progress);
  m.model->to(options.device);  // the tensors that are not weights (RoPE's inv_freq)
  m.model->eval();
  m.processors.load_if_present(m.checkpoint.dir, m.config);
}

MllmEmbedder::~MllmEmbedder() = default;

torch::Tensor MllmEmbedder::encode(const std::vector<EmbedItem>& items,
                                   const EncodeOptions& options) const {
  return runtime::encode(*impl_, items, options);
}

torch::Tensor MllmEmbedder::encode(const std::vector<ImageInput>& images,
                                   const std::vector<std::string>& texts, const Prompt& prompt,
                                   const EncodeOptions& options) const {
  return encode(make_items(images, texts, prompt), options);
}

void MllmEmbedder::set_processor(const std::string& path_or_id, const std::string& revision) {
  const auto dir =
      models::processor_dir(path_or_id, revision, impl_->checkpoint, Family::LlavaNext);
  impl_->processors.set(std::make_shared<const llava_next::Processor>(dir, impl_->config));
}

std::string MllmEmbedder::prompt(const std::optional<std::string>& text, bool has_image,
                                 const Prompt& prompt) {
  return llava_next::Processor::prompt(text, has_image, prompt);
}

MllmInputs MllmEmbedder::data_process(const std::vector<EmbedItem>& items) const {
  runtime::after_fork_fixups();
  BGEVL_CHECK_ARG(!items.empty(), "data_process needs at least one item (got an empty list)");
  runtime::check_items(items);
  const auto proc = impl_->processor();
  impl_->check_lengths(items, *proc, nullptr);
  const auto h = host_inputs(all_of(items), *proc, impl_->config);
  const runtime::Staging host(torch::kCPU);
  MllmInputs out;
  out.input_ids = host.int64s(h.tokens.input_ids, {h.tokens.rows, h.tokens.length});
  out.attention_mask = host.int64s(h.tokens.attention_mask, {h.tokens.rows, h.tokens.length});
  if (!h.pixels.empty()) {
    int max_tiles = 0;
    for (const auto& p : h.pixels) max_tiles = std::max(max_tiles, p.num_tiles);
    const int64_t n = static_cast<int64_t>(h.pixels.size());
    const auto& p0 = h.pixels.front();
    // padded to the most tiles in the batch with zeros, as LlavaNextImageProcessor does
    out.pixel_values = torch::zeros({n, max_tiles, 3, p0.tile_height, p0.tile_width});
    out.image_sizes = torch::empty({n, 2}, torch::kLong);
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(out.pixel_values[i].data_ptr<float>(), h.pixels[i].data.data(),
                  h.pixels[i].data.size() * sizeof(float));
      out.image_sizes[i][0] = h.pixels[i].image_height;
      out.image_sizes[i][1] = h.pixels[i].image_width;
    }
  }
  return out;
}

MllmInputs MllmEmbedder::data_process(const std::vector<ImageInput>& images,
                                      const std::vector<std::string>& texts,
                                      const Prompt& prompt) const {
  return data_process(make_items(images, texts, prompt));
}

torch::Tensor MllmEmbedder::forward(const MllmInputs& inputs) const {
  runtime::after_fork_fixups();
  const auto& cfg = impl_->config;
  BGEVL_CHECK_ARG(
      inputs.input_ids.defined() && inputs.input_ids.dim() == 2 && inputs.input_ids.numel() > 0,
      "input_ids must be a non-empty [batch, length] tensor");
  const auto ids = inputs.input_ids.to(torch::kCPU, torch::kLong).contiguous();
  const auto mask = inputs.attention_mask.defined()
                        ? inputs.attention_mask.to(torch::kCPU, torch::kLong).contiguous()
                        : torch::ones_like(ids);
  BGEVL_CHECK_ARG(mask.sizes() == ids.sizes(), "attention_mask shape ", mask.sizes(),
                  " differs from input_ids shape ", ids.sizes());
  const int64_t vocab = cfg.text.vocab_size;
  BGEVL_CHECK_ARG(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < vocab,
                  "input_ids outside the vocabulary [0, ", vocab, ")");
  llava_next::DeviceBatch d;
  const auto dev = device();
  torch::Tensor tiles;
  if (inputs.pixel_values.defined() && inputs.pixel_values.numel() > 0) {
    BGEVL_CHECK_ARG(inputs.image_sizes.defined() && inputs.image_sizes.dim() == 2 &&
                        inputs.image_sizes.size(1) == 2,
                    "pixel_values given without image_sizes [images, 2] (height, width)");
    const auto sizes = inputs.image_sizes.to(torch::kCPU, torch::kLong).contiguous();
    const auto* s = sizes.data_ptr<int64_t>();
    for (int64_t i = 0; i < sizes.size(0); ++i)
      d.images.push_back(llava_next::image_layout(cfg, s[2 * i], s[2 * i + 1]));
    const auto& px = inputs.pixel_values;
    if (px.dim() == 5) {  // [images, tiles, ...] padded: each image's own tiles
      BGEVL_CHECK_ARG(px.size(0) == sizes.size(0), "pixel_values holds ", px.size(0),
                      " images but image_sizes ", sizes.size(0));
      std::vector<torch::Tensor> parts;
      for (int64_t i = 0; i < px.size(0); ++i) {
        BGEVL_CHECK_ARG(d.images[i].tiles <= px.size(1), "image ", i, " needs ", d.images[i].tiles,
                        " tiles but pixel_values has ", px.size(1));
        parts.push_back(px[i].narrow(0, 0, d.images[i].tiles));
      }
      tiles = torch::cat(parts, 0);
    } else {
      BGEVL_CHECK_ARG(px.dim() == 4, "pixel_values must be 4-D or 5-D, got ", px.dim(), "-D");
      tiles = px;
    }
  }
  const auto plan = llava_next::plan_merge(
      std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel()),
      std::vector<int64_t>(mask.data_ptr<int64_t>(), mask.data_ptr<int64_t>() + mask.numel()),
      ids.size(0), ids.size(1), cfg.image_token_index, d.images);
  const runtime::Staging host(torch::kCPU);
  c10::InferenceMode guard;
  d.input_ids = ids.to(dev);
  if (tiles.defined()) d.tiles = tiles.to(dev, torch::kFloat32);
  d.source = host.int64s(plan.source, {plan.batch, plan.length}).to(dev);
  d.attention_mask = host.int64s(plan.attention_mask, {plan.batch, plan.length}).to(dev);
  d.position_ids = host.int64s(plan.position_ids, {plan.batch, plan.length}).to(dev);
  return impl_->model->forward(d, /*last_only=*/false);
}

void MllmEmbedder::to(const torch::Device& device, torch::ScalarType dtype) {
  models::check_dtype(dtype, device);
  impl_->model->to(device, dtype);
}

int64_t MllmEmbedder::embedding_dim() const { return impl_->config.text.hidden_size; }
int64_t MllmEmbedder::default_batch_size() const { return impl_->default_batch_size(); }
torch::Device MllmEmbedder::device() const { return impl_->device(); }
torch::ScalarType MllmEmbedder::dtype() const { return impl_->model->image_newline.scalar_type(); }
const std::string& MllmEmbedder::model_dir() const { return impl_->checkpoint.dir; }
const std::string& MllmEmbedder::revision() const { return impl_->checkpoint.revision; }

namespace llava_next {
models::FamilyEntry family_entry() {
  return {Family::LlavaNext,
          "BGE-VL-MLLM (LLaVA-NeXT)",
          {"llava_next"},
          {"LLaVANextForEmbedding", "LlavaNextForConditionalGeneration"},
          {"LlavaNextImageProcessor"},
          {"tokenizer.model"},
          [](const std::string& dir, const LoadOptions& options) -> std::unique_ptr<Embedder> {
            return std::make_unique<MllmEmbedder>(dir, options);
          }};
}
}  // namespace llava_next

}  // namespace bgevl
