// BGE-VL-CLIP's Embedder: the model card's encode on the batch engine, plus the processor and
// get_text_features / get_image_features.

#include <cstring>
#include <tuple>

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
  bool normalize = true;
  // packed_index: the flat positions of the real tokens when some rows are padded (the text
  // layers then skip the padding), else undefined.
  torch::Tensor input_ids, attention_mask, packed_index, text_rows;
  // The images as uint8 centre crops [images, 3, H, W] and the table that turns them into pixel
  // values on the device (a quarter of float32's bytes to copy).
  torch::Tensor crops, pixel_table, image_rows;
};

torch::Tensor rows_tensor(const std::vector<int64_t>& rows, int64_t all,
                          const runtime::Staging& staging) {
  if (static_cast<int64_t>(rows.size()) == all) return {};
  return staging.int64s(rows, {static_cast<int64_t>(rows.size())});
}

struct ClipContext : runtime::EncodeContext {
  std::shared_ptr<const clip::Processor> processor;
};

struct Tokens {
  torch::Tensor input_ids, attention_mask, packed_index;
};

// The token ids of texts (text k belongs to item index[k], for messages), right-padded, as
// [texts, L] int64 staging tensors, and the flat positions of the real tokens when any row is
// padded.
Tokens tokens(const clip::Processor& proc, const std::vector<const std::string*>& texts,
              const std::vector<size_t>& index, bool truncate, const runtime::Staging& staging) {
  std::vector<std::vector<int64_t>> ids(texts.size());
  for (size_t k = 0; k < texts.size(); ++k)
    with_item_context(index[k], [&] { ids[k] = proc.tokens(*texts[k], truncate, "the text"); });
  const auto tb = proc.pad(ids);
  Tokens out{staging.int64s(tb.input_ids, {tb.rows, tb.length}),
             staging.int64s(tb.attention_mask, {tb.rows, tb.length}),
             {}};
  std::vector<int64_t> real;
  for (size_t i = 0; i < tb.attention_mask.size(); ++i)
    if (tb.attention_mask[i]) real.push_back(static_cast<int64_t>(i));
  if (real.size() < tb.attention_mask.size())
    out.packed_index = staging.int64s(real, {static_cast<int64_t>(real.size())});
  return out;
}

// CLIPImageProcessor's images (image k belongs to item index[k]), decoded on the pool, as uint8
// centre crops (a [images, 3, H, W] staging tensor) and their [3 * 256] pixel table:
// runtime::pixels_from_crops turns them into the pixel values, on the model's device.
std::pair<torch::Tensor, torch::Tensor> crops(const clip::Processor& proc,
                                              const std::vector<const ImageInput*>& images,
                                              const std::vector<size_t>& index,
                                              const runtime::Staging& staging) {
  const auto& cfg = proc.image();
  const int64_t n = static_cast<int64_t>(images.size());
  auto out = staging.empty({n, 3, cfg.crop_height, cfg.crop_width}, torch::kByte);
  uint8_t* base = out.data_ptr<uint8_t>();
  const int64_t stride = 3 * cfg.crop_height * cfg.crop_width;
  runtime::pool()->parallel_for(n, [&](int64_t k) {
    with_item_context(index[k], [&] {
      vision::clip_preprocess_u8(runtime::decode(*images[k]), cfg, base + k * stride);
    });
  });
  const auto lut = vision::clip_pixel_table(cfg);
  auto table = staging.empty({static_cast<int64_t>(lut.size())}, torch::kFloat32);
  std::memcpy(table.data_ptr<float>(), lut.data(), lut.size() * sizeof(float));
  return {out, table};
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

  std::unique_ptr<runtime::EncodeContext> check(const std::vector<EmbedItem>& items,
                                                const EncodeOptions& options,
                                                int64_t batch_size) const override {
    bool any_text = false, any_image = false;
    for (size_t i = 0; i < items.size(); ++i) {
      BGEVL_CHECK_ARG(!items[i].prompt.instruction, "item ", i,
                      ": BGE-VL-CLIP takes no instruction (task instructions are part of "
                      "BGE-VL-MLLM's prompts)");
      any_text |= items[i].text.has_value();
      any_image |= items[i].image.has_value();
    }
    auto context = std::make_unique<ClipContext>();
    const auto& proc = *(context->processor = processor());
    if (any_text) proc.tokenizer();
    if (any_image) proc.image();
    // A long list: every text is tokenized now, so that a text too long for the model fails
    // before anything is computed, and its length orders the batches (less padding).
    const int64_t n = static_cast<int64_t>(items.size());
    if (!any_text || n <= batch_size) return context;
    context->costs.assign(items.size(), 0);
    runtime::pool()->parallel_for(n, [&](int64_t i) {
      if (!items[i].text) return;
      with_item_context(i, [&] {
        context->costs[i] =
            static_cast<int64_t>(proc.tokens(*items[i].text, options.truncate, "the text").size());
      });
    });
    return context;
  }

  std::unique_ptr<runtime::HostBatch> prepare(const runtime::BatchItems& b,
                                              const runtime::EncodeContext& context,
                                              const EncodeOptions& options,
                                              const runtime::Staging& staging) const override {
    const auto& proc = *static_cast<const ClipContext&>(context).processor;
    auto out = std::make_unique<ClipBatch>();
    out->rows = static_cast<int64_t>(b.size());
    out->normalize = options.normalize;
    std::vector<int64_t> text_rows, image_rows;
    std::vector<const std::string*> texts;
    std::vector<const ImageInput*> images;
    std::vector<size_t> text_index, image_index;
    for (size_t j = 0; j < b.size(); ++j) {
      if (b[j].text) {
        text_rows.push_back(static_cast<int64_t>(j));
        texts.push_back(&*b[j].text);
        text_index.push_back(b.index[j]);
      }
      if (b[j].image) {
        image_rows.push_back(static_cast<int64_t>(j));
        images.push_back(&*b[j].image);
        image_index.push_back(b.index[j]);
      }
    }
    if (!texts.empty()) {
      auto t = tokens(proc, texts, text_index, options.truncate, staging);
      out->input_ids = t.input_ids;
      out->attention_mask = t.attention_mask;
      out->packed_index = t.packed_index;
      out->text_rows = rows_tensor(text_rows, out->rows, staging);
    }
    if (!images.empty()) {
      std::tie(out->crops, out->pixel_table) = crops(proc, images, image_index, staging);
      out->image_rows = rows_tensor(image_rows, out->rows, staging);
    }
    return out;
  }

  torch::Tensor run(runtime::HostBatch& batch, const runtime::Staging& staging) const override {
    auto& b = static_cast<ClipBatch&>(batch);
    torch::Tensor feats;
    if (b.input_ids.defined()) {
      auto f =
          model->text_features(staging.to_device(b.input_ids), staging.to_device(b.attention_mask),
                               /*right_padded=*/true, staging.to_device(b.packed_index));
      feats = place(feats, f, b.text_rows, b.rows, staging);
    }
    if (b.crops.defined()) {
      const auto px =
          runtime::pixels_from_crops(staging.to_device(b.crops), staging.to_device(b.pixel_table));
      auto f = model->image_features(px);
      feats = place(feats, f, b.image_rows, b.rows, staging);  // composed: the two summed
    }
    return b.normalize ? runtime::l2_normalize(feats) : feats.to(torch::kFloat32);
  }
};

ClipEmbedder::ClipEmbedder(const std::string& path_or_id, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.checkpoint = models::open_checkpoint(path_or_id, options, Family::Clip);
  m.config = clip::load_config(m.checkpoint.config_json);
  m.model = clip::ClipModel(m.config);
  const auto weights = io::WeightSet::open_dir(m.checkpoint.dir);
  nn::load_weights(*m.model, weights, models::load_dtype(options), options.device, "",
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
  runtime::after_fork_fixups();
  BGEVL_CHECK_ARG(!texts.empty(), "no texts given (empty list)");
  std::vector<const std::string*> ptrs;
  std::vector<size_t> index;
  for (size_t i = 0; i < texts.size(); ++i) {
    ptrs.push_back(&texts[i]);
    index.push_back(i);
  }
  const auto t = tokens(*impl_->processor(), ptrs, index, truncate, runtime::Staging(torch::kCPU));
  return {t.input_ids, t.attention_mask};
}

torch::Tensor ClipEmbedder::pixel_values(const std::vector<ImageInput>& images) const {
  runtime::after_fork_fixups();
  BGEVL_CHECK_ARG(!images.empty(), "no images given (empty list)");
  std::vector<const ImageInput*> ptrs;
  std::vector<size_t> index;
  for (size_t i = 0; i < images.size(); ++i) {
    runtime::check_image(images[i], i);
    ptrs.push_back(&images[i]);
    index.push_back(i);
  }
  const auto [u8, table] = crops(*impl_->processor(), ptrs, index, runtime::Staging(torch::kCPU));
  return runtime::pixels_from_crops(u8, table);
}

torch::Tensor ClipEmbedder::get_text_features(const TextInputs& inputs) const {
  runtime::after_fork_fixups();
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
  runtime::after_fork_fixups();
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
