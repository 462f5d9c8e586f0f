// BGE-VL-CLIP's Embedder: the model card's encode on the batch engine, plus the processor and
// get_text_features / get_image_features.

#include "bgevl/clip_embedder.h"
#include "bgevl/errors.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/clip/config.h"
#include "models/clip/model.h"
#include "models/clip/processor.h"
#include "models/common.h"
#include "models/registry.h"
#include "nn/load.h"
#include "runtime/engine.h"
#include "runtime/inputs.h"
#include "runtime/thread_pool.h"

namespace bgevl {

namespace {

using runtime::with_item_context;

// One batch on the host. Rows with a text and rows with an image: all rows when `*_rows` is
// undefined, else the listed rows (a batch that mixes texts, images and composed items).
struct ClipBatch : runtime::HostBatch {
  int64_t rows = 0;
  torch::Tensor input_ids, attention_mask, text_rows;
  torch::Tensor pixels, image_rows;
};

torch::Tensor rows_tensor(const std::vector<int64_t>& rows, int64_t all,
                          const runtime::Staging& staging) {
  if (static_cast<int64_t>(rows.size()) == all) return {};
  return staging.int64s(rows, {static_cast<int64_t>(rows.size())});
}

// Features of some rows placed into a [rows, D] tensor (zeros elsewhere), or added to `into`.
torch::Tensor place(torch::Tensor into, const torch::Tensor& feats, const torch::Tensor& rows,
                    int64_t n, const runtime::Staging& staging) {
  if (!rows.defined()) return into.defined() ? into + feats : feats;
  if (!into.defined()) into = torch::zeros({n, feats.size(1)}, feats.options());
  return into.index_add_(0, staging.to_device(rows), feats);
}

}  // namespace

struct ClipEmbedder::Impl final : runtime::BatchModel {
  models::Checkpoint checkpoint;
  clip::Config config;
  clip::ClipModel model{nullptr};
  models::ProcessorSlot<clip::Processor> processors{
      "vocab.json, merges.txt or preprocessor_config.json"};

  std::shared_ptr<const clip::Processor> processor() const { return processors.get(); }

  int64_t default_batch_size() const override { return 32; }
  torch::Device device() const override { return model->logit_scale.device(); }

  std::vector<int64_t> check(const std::vector<EmbedItem>& items,
                             const EncodeOptions& options) const override {
    bool any_text = false, any_image = false;
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& it = items[i];
      BGEVL_CHECK_ARG(it.image || it.text, "item ", i, " has neither an image nor a text");
      BGEVL_CHECK_ARG(!it.prompt.instruction, "item ", i,
                      ": BGE-VL-CLIP takes no instruction (task instructions are part of "
                      "BGE-VL-MLLM's prompts)");
      if (it.image) runtime::check_image(*it.image, i);
      any_text |= it.text.has_value();
      any_image |= it.image.has_value();
    }
    const auto proc = processor();
    if (any_text) proc->tokenizer();
    if (any_image) proc->image();
    // A long list: every text is tokenized now, so that a text too long for the model fails
    // before anything is computed, and its length orders the batches (less padding).
    const int64_t bs = options.batch_size > 0 ? options.batch_size : default_batch_size();
    const int64_t n = static_cast<int64_t>(items.size());
    if (!any_text || n <= bs) return {};
    std::vector<int64_t> cost(items.size(), 0);
    runtime::pool()->parallel_for(n, [&](int64_t i) {
      if (!items[i].text) return;
      with_item_context(i, [&] {
        cost[i] =
            static_cast<int64_t>(proc->tokens(*items[i].text, options.truncate, "the text").size());
      });
    });
    return cost;
  }

  std::unique_ptr<runtime::HostBatch> prepare(const runtime::BatchItems& b,
                                              const EncodeOptions& options,
                                              const runtime::Staging& staging) const override {
    const auto proc = processor();
    auto out = std::make_unique<ClipBatch>();
    out->rows = static_cast<int64_t>(b.size());
    std::vector<int64_t> text_rows, image_rows;
    for (size_t j = 0; j < b.size(); ++j) {
      if (b[j].text) text_rows.push_back(static_cast<int64_t>(j));
      if (b[j].image) image_rows.push_back(static_cast<int64_t>(j));
    }
    if (!text_rows.empty()) {
      std::vector<std::vector<int64_t>> ids;
      for (int64_t j : text_rows)
        with_item_context(b.index[j], [&] {
          ids.push_back(proc->tokens(*b[j].text, options.truncate, "the text"));
        });
      const auto tb = proc->pad(ids);
      out->input_ids = staging.int64s(tb.input_ids, {tb.rows, tb.length});
      out->attention_mask = staging.int64s(tb.attention_mask, {tb.rows, tb.length});
      out->text_rows = rows_tensor(text_rows, out->rows, staging);
    }
    if (!image_rows.empty()) {
      const auto& cfg = proc->image();
      const int64_t n = static_cast<int64_t>(image_rows.size());
      out->pixels = staging.empty({n, 3, cfg.crop_height, cfg.crop_width}, torch::kFloat32);
      float* base = out->pixels.data_ptr<float>();
      const int64_t stride = 3 * cfg.crop_height * cfg.crop_width;
      runtime::pool()->parallel_for(n, [&](int64_t k) {
        const auto j = image_rows[k];
        with_item_context(b.index[j], [&] {
          vision::clip_preprocess(runtime::decode(*b[j].image), cfg, base + k * stride);
        });
      });
      out->image_rows = rows_tensor(image_rows, out->rows, staging);
    }
    return out;
  }

  torch::Tensor run(runtime::HostBatch& batch, const runtime::Staging& staging) const override {
    auto& b = static_cast<ClipBatch&>(batch);
    torch::Tensor feats;
    if (b.input_ids.defined()) {
      auto f =
          model->text_features(staging.to_device(b.input_ids), staging.to_device(b.attention_mask));
      feats = place(feats, f, b.text_rows, b.rows, staging);
    }
    if (b.pixels.defined()) {
      auto f = model->image_features(staging.to_device(b.pixels));
      feats = place(feats, f, b.image_rows, b.rows, staging);  // composed: the two summed
    }
    return runtime::l2_normalize(feats);
  }
};

ClipEmbedder::ClipEmbedder(const std::string& path_or_id, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.checkpoint = models::open_checkpoint(path_or_id, options, Family::Clip);
  m.config = clip::load_config(m.checkpoint.config_json);
  m.model = clip::ClipModel(m.config);
  const auto weights = io::WeightSet::open_dir(m.checkpoint.dir);
  nn::load_weights(*m.model, weights, options.dtype, options.device, "",
                   {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"},
                   {}, options.progress);
  m.model->eval();
  m.processors.load_if_present(m.checkpoint.dir, m.config);
}

ClipEmbedder::~ClipEmbedder() = default;

torch::Tensor ClipEmbedder::encode(const std::vector<EmbedItem>& items,
                                   const EncodeOptions& options) const {
  return runtime::encode(*impl_, items, options);
}

torch::Tensor ClipEmbedder::encode(const std::vector<ImageInput>& images,
                                   const std::vector<std::string>& texts,
                                   const EncodeOptions& options) const {
  return encode(make_items(images, texts), options);
}

void ClipEmbedder::set_processor(const std::string& path_or_id, const std::string& revision) {
  const auto dir = models::processor_dir(path_or_id, revision, impl_->checkpoint, Family::Clip);
  impl_->processors.set(std::make_shared<const clip::Processor>(dir, impl_->config));
}

TextInputs ClipEmbedder::tokenize(const std::vector<std::string>& texts, bool truncate) const {
  BGEVL_CHECK_ARG(!texts.empty(), "no texts given (empty list)");
  const auto proc = impl_->processor();
  std::vector<std::vector<int64_t>> ids;
  for (size_t i = 0; i < texts.size(); ++i)
    ids.push_back(proc->tokens(texts[i], truncate, "text " + std::to_string(i)));
  const auto tb = proc->pad(ids);
  const runtime::Staging host(torch::kCPU);
  return {host.int64s(tb.input_ids, {tb.rows, tb.length}),
          host.int64s(tb.attention_mask, {tb.rows, tb.length})};
}

torch::Tensor ClipEmbedder::pixel_values(const std::vector<ImageInput>& images) const {
  BGEVL_CHECK_ARG(!images.empty(), "no images given (empty list)");
  for (size_t i = 0; i < images.size(); ++i) runtime::check_image(images[i], i);
  const auto proc = impl_->processor();
  const auto& cfg = proc->image();
  const int64_t n = static_cast<int64_t>(images.size());
  auto out = torch::empty({n, 3, cfg.crop_height, cfg.crop_width}, torch::kFloat32);
  float* base = out.data_ptr<float>();
  const int64_t stride = 3 * cfg.crop_height * cfg.crop_width;
  runtime::pool()->parallel_for(n, [&](int64_t i) {
    runtime::with_item_context(
        i, [&] { vision::clip_preprocess(runtime::decode(images[i]), cfg, base + i * stride); });
  });
  return out;
}

torch::Tensor ClipEmbedder::get_text_features(const TextInputs& inputs) const {
  const auto& ids = inputs.input_ids;
  BGEVL_CHECK_ARG(ids.defined() && ids.dim() == 2 && ids.numel() > 0,
                  "input_ids must be a non-empty [batch, length] tensor");
  const int64_t vocab = impl_->config.text.vocab_size;
  BGEVL_CHECK_ARG(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < vocab,
                  "input_ids outside the vocabulary [0, ", vocab, ")");
  c10::InferenceMode guard;
  const auto dev = device();
  const auto mask = inputs.attention_mask.defined() ? inputs.attention_mask.to(dev, torch::kLong)
                                                    : torch::Tensor();
  return impl_->model->text_features(ids.to(dev, torch::kLong), mask);
}

torch::Tensor ClipEmbedder::get_image_features(const torch::Tensor& pixel_values) const {
  BGEVL_CHECK_ARG(pixel_values.defined(), "pixel_values is undefined");
  c10::InferenceMode guard;
  return impl_->model->image_features(pixel_values.to(device()));
}

void ClipEmbedder::to(const torch::Device& device, torch::ScalarType dtype) {
  models::check_dtype(dtype, device);
  impl_->model->to(device, dtype);
}

int64_t ClipEmbedder::embedding_dim() const { return impl_->config.projection_dim; }
int64_t ClipEmbedder::default_batch_size() const { return impl_->default_batch_size(); }
torch::Device ClipEmbedder::device() const { return impl_->device(); }
torch::ScalarType ClipEmbedder::dtype() const { return impl_->model->logit_scale.scalar_type(); }
const std::string& ClipEmbedder::model_dir() const { return impl_->checkpoint.dir; }
const std::string& ClipEmbedder::revision() const { return impl_->checkpoint.revision; }

namespace clip {
models::FamilyEntry family_entry() {
  return {Family::Clip,
          "BGE-VL-CLIP",
          {"clip"},
          {"CLIPModel", "MMRet_CLIP"},
          {"CLIPImageProcessor"},
          {"vocab.json", "merges.txt"},
          [](const std::string& dir, const LoadOptions& options) -> std::unique_ptr<Embedder> {
            return std::make_unique<ClipEmbedder>(dir, options);
          }};
}
}  // namespace clip

}  // namespace bgevl
