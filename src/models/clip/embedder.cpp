#include "bgevl/clip_embedder.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "bgevl/errors.h"
#include "embedders/common.h"
#include "io/config.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "nn/clip.h"
#include "text/clip_tokenizer.h"
#include "vision/image.h"

namespace bgevl {

namespace fs = std::filesystem;

struct ClipEmbedder::Impl {
  std::string dir;
  io::ClipConfig config;
  nn::ClipModel model{nullptr};
  std::shared_ptr<text::ClipTokenizer> tokenizer;
  std::shared_ptr<vision::ClipImageConfig> image_config;
  std::string processor_dir;

  void load_processor(const std::string& d) {
    tokenizer.reset();
    image_config.reset();
    if (fs::exists(fs::path(d) / "vocab.json") || fs::exists(fs::path(d) / "merges.txt"))
      tokenizer = std::make_shared<text::ClipTokenizer>(text::ClipTokenizer::from_dir(d));
    const auto pp = fs::path(d) / "preprocessor_config.json";
    if (fs::exists(pp))
      image_config = std::make_shared<vision::ClipImageConfig>(vision::load_clip_image_config(pp.string()));
    processor_dir = d;
  }
  const text::ClipTokenizer& tok() const {
    BGEVL_CHECK_ARG(tokenizer != nullptr, "no tokenizer: ", processor_dir,
                    " has no vocab.json/merges.txt; call set_processor(path) with a folder that has");
    return *tokenizer;
  }
  const vision::ClipImageConfig& img() const {
    BGEVL_CHECK_ARG(image_config != nullptr, "no image processor: ", processor_dir,
                    " has no preprocessor_config.json; call set_processor(path) with a folder that has");
    return *image_config;
  }
  torch::Device device() const { return model->logit_scale.device(); }
};

ClipEmbedder::ClipEmbedder(const std::string& path_or_id, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  const auto cfg_path = detail::prepare_load(path_or_id, options, io::ModelKind::Clip, &impl_->dir);
  impl_->config = io::load_clip_config(cfg_path);
  impl_->model = nn::ClipModel(impl_->config);
  const auto weights = io::WeightSet::open_dir(impl_->dir);
  nn::load_weights(*impl_->model, weights, options.dtype, options.device, "",
                   {"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"},
                   {}, options.progress);
  impl_->model->eval();
  impl_->load_processor(impl_->dir);
}

ClipEmbedder::~ClipEmbedder() = default;
ClipEmbedder::ClipEmbedder(ClipEmbedder&&) noexcept = default;
ClipEmbedder& ClipEmbedder::operator=(ClipEmbedder&&) noexcept = default;

void ClipEmbedder::set_processor(const std::string& path_or_id) {
  impl_->load_processor(io::resolve_model_dir(path_or_id));
}

TextInputs ClipEmbedder::tokenize(const std::vector<std::string>& texts, bool truncate) const {
  BGEVL_CHECK_ARG(!texts.empty(), "no texts given (empty list)");
  const auto batch = impl_->tok().encode_batch(texts, truncate,
                                               impl_->config.text.max_position_embeddings);
  auto opts = torch::TensorOptions().dtype(torch::kLong);
  TextInputs out;
  out.input_ids = torch::from_blob(const_cast<int64_t*>(batch.input_ids.data()),
                                   {batch.rows, batch.length}, opts).clone();
  out.attention_mask = torch::from_blob(const_cast<int64_t*>(batch.attention_mask.data()),
                                        {batch.rows, batch.length}, opts).clone();
  return out;
}

torch::Tensor ClipEmbedder::pixel_values(const std::vector<ImageInput>& images) const {
  BGEVL_CHECK_ARG(!images.empty(), "no images given (empty list)");
  const auto& cfg = impl_->img();
  const int64_t n = static_cast<int64_t>(images.size());
  auto out = torch::empty({n, 3, cfg.crop_height, cfg.crop_width}, torch::kFloat32);
  float* base = out.data_ptr<float>();
  const int64_t stride = 3 * cfg.crop_height * cfg.crop_width;
  detail::parallel_items(n, [&](int64_t i) {
    vision::clip_preprocess(detail::decode_input(images[i]), cfg, base + i * stride);
  });
  return out;
}

torch::Tensor ClipEmbedder::text_features(const TextInputs& inputs) const {
  c10::InferenceMode guard;
  return impl_->model->text_features(inputs.input_ids, inputs.attention_mask);
}

torch::Tensor ClipEmbedder::image_features(const torch::Tensor& pixel_values) const {
  c10::InferenceMode guard;
  return impl_->model->image_features(pixel_values);
}

torch::Tensor ClipEmbedder::encode(const std::vector<ImageInput>& images,
                                   const std::vector<std::string>& texts,
                                   const EncodeOptions& options) const {
  BGEVL_CHECK_ARG(!images.empty() || !texts.empty(),
                  "encode needs images, texts or both (got two empty lists)");
  BGEVL_CHECK_ARG(images.empty() || texts.empty() || images.size() == texts.size(),
                  "images and texts must be lists of the same length for composed queries (got ",
                  images.size(), " images and ", texts.size(), " texts)");
  BGEVL_CHECK_ARG(options.batch_size > 0, "batch_size must be positive, got ", options.batch_size);
  c10::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(std::max(images.size(), texts.size()));
  // Long text lists are batched by token count (less padding), results put back in input order.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!texts.empty() && n > options.batch_size) {
    std::vector<size_t> len(n);
    for (int64_t i = 0; i < n; ++i) len[i] = impl_->tok().encode(texts[i]).size();
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return len[a] < len[b]; });
  }
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < n; start += options.batch_size) {
    const int64_t end = std::min(n, start + options.batch_size);
    torch::Tensor feats;
    if (!texts.empty()) {
      std::vector<std::string> chunk;
      for (int64_t i = start; i < end; ++i) chunk.push_back(texts[order[i]]);
      feats = text_features(tokenize(chunk, options.truncate));
    }
    if (!images.empty()) {
      std::vector<ImageInput> chunk;
      for (int64_t i = start; i < end; ++i) chunk.push_back(images[order[i]]);
      auto f = image_features(pixel_values(chunk));
      feats = feats.defined() ? feats + f : f;  // composed: projected vectors summed
    }
    parts.push_back(detail::l2_normalize(feats));
    if (options.progress) options.progress(end, n);
  }
  auto out = parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
  if (std::is_sorted(order.begin(), order.end())) return out;
  auto index = torch::empty({n}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) index[order[i]] = i;  // row of input i in `out`
  return out.index_select(0, index.to(out.device()));
}

torch::Tensor ClipEmbedder::encode_images(const std::vector<ImageInput>& images,
                                          const EncodeOptions& options) const {
  BGEVL_CHECK_ARG(!images.empty(), "no images given (empty list)");
  return encode(images, {}, options);
}

torch::Tensor ClipEmbedder::encode_texts(const std::vector<std::string>& texts,
                                         const EncodeOptions& options) const {
  BGEVL_CHECK_ARG(!texts.empty(), "no texts given (empty list)");
  return encode({}, texts, options);
}

void ClipEmbedder::to(const torch::Device& device, torch::ScalarType dtype) {
  detail::check_model_dtype(dtype);
  impl_->model->to(device, dtype);
}

torch::Device ClipEmbedder::device() const { return impl_->device(); }
torch::ScalarType ClipEmbedder::dtype() const { return impl_->model->logit_scale.scalar_type(); }
int64_t ClipEmbedder::embedding_dim() const { return impl_->config.projection_dim; }
const std::string& ClipEmbedder::model_dir() const { return impl_->dir; }

}  // namespace bgevl
