#include "bgevl/mllm_embedder.h"

#include <filesystem>

#include "bgevl/errors.h"
#include "embedders/common.h"
#include "io/config.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "nn/llava_next.h"
#include "text/mistral_tokenizer.h"
#include "vision/llava_processor.h"

namespace bgevl {

namespace fs = std::filesystem;

const char* const MllmEmbedder::kComposedRetrievalInstruction =
    "Retrieve the target image that best meets the combined criteria by using both the provided "
    "image and the image retrieval instructions: ";

struct MllmEmbedder::Impl {
  std::string dir;
  io::LlavaNextConfig config;
  nn::LlavaNext model{nullptr};
  std::shared_ptr<text::MistralTokenizer> tokenizer;
  std::shared_ptr<vision::LlavaImageConfig> image_config;
  std::string processor_dir;

  void load_processor(const std::string& d) {
    tokenizer.reset();
    image_config.reset();
    if (fs::exists(fs::path(d) / "tokenizer.model"))
      tokenizer = std::make_shared<text::MistralTokenizer>(text::MistralTokenizer::from_dir(d));
    const auto pp = fs::path(d) / "preprocessor_config.json";
    if (fs::exists(pp))
      image_config =
          std::make_shared<vision::LlavaImageConfig>(vision::load_llava_image_config(pp.string()));
    processor_dir = d;
  }
  const text::MistralTokenizer& tok() const {
    BGEVL_CHECK_ARG(tokenizer != nullptr, "no tokenizer: ", processor_dir,
                    " has no tokenizer.model; call set_processor(path) with a folder that has");
    return *tokenizer;
  }
  const vision::LlavaImageConfig& img() const {
    BGEVL_CHECK_ARG(image_config != nullptr, "no image processor: ", processor_dir,
                    " has no preprocessor_config.json; call set_processor(path) with a folder that has");
    return *image_config;
  }
};

MllmEmbedder::MllmEmbedder(const std::string& path_or_id, const LoadOptions& options)
    : impl_(std::make_unique<Impl>()) {
  const auto cfg_path =
      detail::prepare_load(path_or_id, options, io::ModelKind::LlavaNext, &impl_->dir);
  impl_->config = io::load_llava_next_config(cfg_path);
  impl_->model = nn::LlavaNext(impl_->config);
  const auto weights = io::WeightSet::open_dir(impl_->dir);
  nn::load_weights(*impl_->model, weights, options.dtype, options.device, "",
                   {"vision_tower.vision_model.embeddings.position_ids"},
                   impl_->model->unused_prefixes(), options.progress);
  impl_->model->eval();
  impl_->load_processor(impl_->dir);
}

MllmEmbedder::~MllmEmbedder() = default;
MllmEmbedder::MllmEmbedder(MllmEmbedder&&) noexcept = default;
MllmEmbedder& MllmEmbedder::operator=(MllmEmbedder&&) noexcept = default;

void MllmEmbedder::set_processor(const std::string& path_or_id) {
  impl_->load_processor(io::resolve_model_dir(path_or_id));
}

std::string MllmEmbedder::prompt(const std::string* text, bool has_image, const std::string& q_or_c,
                                 const std::optional<std::string>& task_instruction) {
  const bool query = q_or_c == "q" || q_or_c == "query";
  BGEVL_CHECK_ARG(query || q_or_c == "c" || q_or_c == "candidate", "q_or_c must be 'q', 'query', ",
                  "'c' or 'candidate', got '", q_or_c, "'");
  std::string s;
  if (query)
    s = task_instruction ? "[INST] \n <instruct> " + *task_instruction + " <query> "
                         : "[INST] \n <instruct>  <query>";
  else
    s = "[INST] ";
  if (text) s += " " + *text + " \n";
  if (has_image) s += " <image>";
  return s + " [/INST]";
}

MllmInputs MllmEmbedder::data_process(const std::vector<ImageInput>& images,
                                      const std::vector<std::string>& texts, const std::string& q_or_c,
                                      const std::optional<std::string>& task_instruction) const {
  BGEVL_CHECK_ARG(!images.empty() || !texts.empty(), "images and text cannot both be empty");
  BGEVL_CHECK_ARG(images.empty() || texts.empty() || images.size() == texts.size(),
                  "images and texts must be lists of the same length (got ", images.size(),
                  " images and ", texts.size(), " texts)");
  const size_t n = std::max(images.size(), texts.size());
  std::vector<std::string> prompts;
  for (size_t i = 0; i < n; ++i)
    prompts.push_back(prompt(texts.empty() ? nullptr : &texts[i], !images.empty(), q_or_c, task_instruction));
  const auto batch = impl_->tok().encode_batch(prompts);
  auto opts = torch::TensorOptions().dtype(torch::kLong);
  MllmInputs out;
  out.input_ids = torch::from_blob(const_cast<int64_t*>(batch.input_ids.data()),
                                   {batch.rows, batch.length}, opts).clone();
  out.attention_mask = torch::from_blob(const_cast<int64_t*>(batch.attention_mask.data()),
                                        {batch.rows, batch.length}, opts).clone();
  if (!images.empty()) {
    const auto& cfg = impl_->img();
    std::vector<vision::LlavaPixels> px(n);
    detail::parallel_items(static_cast<int64_t>(n), [&](int64_t i) {
      px[i] = vision::llava_preprocess(detail::decode_input(images[i]), cfg, 512);
    });
    int max_tiles = 0;
    for (const auto& p : px) max_tiles = std::max(max_tiles, p.num_tiles);
    const int th = px[0].tile_height, tw = px[0].tile_width;
    // padded to the most tiles in the batch with zeros, as LlavaNextImageProcessor does
    out.pixel_values = torch::zeros({int64_t(n), max_tiles, 3, th, tw}, torch::kFloat32);
    out.image_sizes = torch::empty({int64_t(n), 2}, torch::kLong);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(out.pixel_values[i].data_ptr<float>(), px[i].data.data(),
                  px[i].data.size() * sizeof(float));
      out.image_sizes[i][0] = px[i].image_height;
      out.image_sizes[i][1] = px[i].image_width;
    }
  }
  return out;
}

torch::Tensor MllmEmbedder::forward(const MllmInputs& inputs) const {
  c10::InferenceMode guard;
  return impl_->model->forward(inputs.input_ids, inputs.attention_mask, inputs.pixel_values,
                               inputs.image_sizes, /*last_only=*/false);
}

torch::Tensor MllmEmbedder::encode(const std::vector<ImageInput>& images,
                                   const std::vector<std::string>& texts, const std::string& q_or_c,
                                   const std::optional<std::string>& task_instruction,
                                   const EncodeOptions& options) const {
  BGEVL_CHECK_ARG(options.batch_size > 0, "batch_size must be positive, got ", options.batch_size);
  BGEVL_CHECK_ARG(!images.empty() || !texts.empty(), "encode needs images, texts or both");
  BGEVL_CHECK_ARG(images.empty() || texts.empty() || images.size() == texts.size(),
                  "images and texts must be lists of the same length (got ", images.size(),
                  " images and ", texts.size(), " texts)");
  c10::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(std::max(images.size(), texts.size()));
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < n; s += options.batch_size) {
    const int64_t e = std::min(n, s + options.batch_size);
    std::vector<ImageInput> im;
    std::vector<std::string> tx;
    if (!images.empty()) im.assign(images.begin() + s, images.begin() + e);
    if (!texts.empty()) tx.assign(texts.begin() + s, texts.begin() + e);
    const auto in = data_process(im, tx, q_or_c, task_instruction);
    auto h = impl_->model->forward(in.input_ids, in.attention_mask, in.pixel_values, in.image_sizes,
                                   /*last_only=*/true);
    parts.push_back(detail::l2_normalize(h.select(1, h.size(1) - 1)));
    if (options.progress) options.progress(e, n);
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

void MllmEmbedder::to(const torch::Device& device, torch::ScalarType dtype) {
  detail::check_model_dtype(dtype);
  impl_->model->to(device, dtype);
}
torch::Device MllmEmbedder::device() const { return impl_->model->image_newline.device(); }
torch::ScalarType MllmEmbedder::dtype() const { return impl_->model->image_newline.scalar_type(); }
int64_t MllmEmbedder::hidden_size() const { return impl_->config.text.hidden_size; }
const std::string& MllmEmbedder::model_dir() const { return impl_->dir; }

}  // namespace bgevl
