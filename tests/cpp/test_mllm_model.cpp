// BGE-VL-MLLM end to end against the transformers 4.45.2 fixtures (tests/reference/gen_llava_fixtures.py):
// token ids, the merged sequence, the vision stages, last hidden states and embeddings, for the
// legacy and non-legacy tokenizer checkpoints. The fixtures hold no tokenizer.model (it is the
// real Mistral one in ../shared/data): tests copy it in and skip when it is absent.
#include <gtest/gtest.h>

#include "bgevl/bgevl.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "nn/llava_next.h"
#include "test_util.h"
#include "vision/llava_processor.h"

namespace fs = std::filesystem;
using namespace bgevl;
using namespace bgevl::test;
using json = nlohmann::json;

namespace {

const json& cases() {
  static const json j = read_json(fixtures("llava/cases.json"));
  return j;
}

std::string tokenizer_model() { return shared_data("tokenizers/mistral/tokenizer.model"); }

// A runnable copy of a fixture checkpoint: its files (symlinks followed) plus tokenizer.model.
std::string checkpoint(const std::string& name) {
  static std::map<std::string, std::string> made;
  auto& dir = made[name];
  if (dir.empty()) {
    const auto d = scratch_dir("mllm_" + name);
    for (const auto& e : fs::directory_iterator(fixtures("llava/" + name)))
      fs::copy_file(fs::canonical(e.path()), d / e.path().filename());
    fs::copy_file(tokenizer_model(), d / "tokenizer.model");
    dir = d.string();
  }
  return dir;
}

std::vector<ImageInput> image_inputs(const json& v) {
  std::vector<ImageInput> out;
  if (v.is_string()) out.push_back(ImageInput::path(fixtures("images/" + v.get<std::string>())));
  if (v.is_array())
    for (const auto& x : v) out.push_back(ImageInput::path(fixtures("images/" + x.get<std::string>())));
  return out;
}

std::vector<std::string> texts_of(const json& v) {
  if (v.is_string()) return {v.get<std::string>()};
  if (v.is_array()) return v.get<std::vector<std::string>>();
  return {};
}

std::optional<std::string> instruction_of(const json& c) {
  if (c["task_instruction"].is_null()) return std::nullopt;
  return c["task_instruction"].get<std::string>();
}

class MllmParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(tokenizer_model()))
      GTEST_SKIP() << "the Mistral tokenizer.model is not at " << tokenizer_model()
                   << " (../shared/data): BGE-VL-MLLM parity tests skipped";
  }
  MllmEmbedder& model() {
    static std::map<std::string, std::shared_ptr<MllmEmbedder>> models;
    auto& m = models[GetParam()];
    if (!m) m = std::make_shared<MllmEmbedder>(checkpoint(GetParam()));
    return *m;
  }
  torch::Tensor want(const std::string& name) {
    static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
    auto& f = files[GetParam()];
    if (!f) f = std::make_shared<io::SafetensorsFile>(fixtures("llava/" + GetParam() + ".expected.safetensors"));
    return f->load(name, torch::kFloat64, torch::kCPU);
  }
};

}  // namespace

TEST_P(MllmParity, EveryCase) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(GetParam() + " / " + name);
    const auto images = image_inputs(c["images"]);
    const auto texts = texts_of(c["text"]);
    const std::string q_or_c = c["q_or_c"];
    const auto inputs = m.data_process(images, texts, q_or_c, instruction_of(c));
    ASSERT_TRUE(torch::equal(inputs.input_ids, want(name + "/input_ids").to(torch::kLong))) << "input_ids";
    EXPECT_TRUE(torch::equal(inputs.attention_mask, want(name + "/attention_mask").to(torch::kLong)));
    if (!images.empty())
      EXPECT_TRUE(torch::equal(inputs.image_sizes, want(name + "/image_sizes").to(torch::kLong)));
    const auto hidden = m.forward(inputs);
    if (!images.empty()) EXPECT_EQ(hidden.size(1), want(name + "/merged_seq_len").item<int64_t>());
    const auto last = want(name + "/last_hidden");
    EXPECT_LE(max_abs_diff(hidden.select(1, hidden.size(1) - 1), last), scaled_tol(last));
    const auto emb = m.encode(images, texts, q_or_c, instruction_of(c));
    EXPECT_EQ(emb.scalar_type(), torch::kFloat32);
    EXPECT_LE(max_abs_diff(emb, want(name + "/embeddings")), kFloat32Tol);
  }
}

TEST_P(MllmParity, BatchedEqualsOneByOne) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    if (c["batch"].get<int64_t>() < 2) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto images = image_inputs(c["images"]);
    const auto texts = texts_of(c["text"]);
    const auto batched = m.encode(images, texts, c["q_or_c"], instruction_of(c));
    for (int64_t i = 0; i < batched.size(0); ++i) {
      std::vector<ImageInput> im;
      std::vector<std::string> tx;
      if (!images.empty()) im.push_back(images[i]);
      if (!texts.empty()) tx.push_back(texts[i]);
      EXPECT_LE(max_abs_diff(m.encode(im, tx, c["q_or_c"], instruction_of(c))[0], batched[i]),
                kFloat32Tol)
          << "row " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, MllmParity,
                         ::testing::Values("tiny-llava-next-legacy", "tiny-llava-next"));

// Stage by stage on the first image of each image case: vision tower, projector, packing.
TEST(MllmStages, VisionProjectorPacking) {
  const auto dir = fixtures("llava/tiny-llava-next-legacy");
  const auto cfg = io::load_llava_next_config(dir + "/config.json");
  nn::LlavaNext model(cfg);
  nn::load_weights(*model, io::WeightSet::open_dir(dir), torch::kFloat32, torch::kCPU, "",
                   {}, model->unused_prefixes());
  io::SafetensorsFile expected(fixtures("llava/images.expected.safetensors"));
  const auto icfg = vision::load_llava_image_config(fixtures("llava/preprocessor_config.json"));
  c10::InferenceMode guard;
  int checked = 0;
  for (const auto& [image, info] : cases()["image_stages"]["images"].items()) {
    SCOPED_TRACE(image);
    const auto px = vision::llava_preprocess(vision::decode_file(fixtures("images/" + image)), icfg, 512);
    auto pixels = torch::from_blob(const_cast<float*>(px.data.data()),
                                   {px.num_tiles, 3, px.tile_height, px.tile_width}).clone();
    auto want = [&](const std::string& n) { return expected.load(image + "/" + n, torch::kFloat64, torch::kCPU); };
    auto hidden = model->vision_tower->vision_model->hidden_states_at(pixels, cfg.vision_layers_used());
    auto feats = hidden.index({torch::indexing::Slice(), torch::indexing::Slice(1)});
    const auto vf = want("vision_features_tile0"), pf = want("projector_output_tile0");
    EXPECT_LE(max_abs_diff(feats[0], vf), scaled_tol(vf));
    auto proj = model->multi_modal_projector->forward(feats);
    EXPECT_LE(max_abs_diff(proj[0], pf), scaled_tol(pf));
    // per tile: (sum, sum of |x|) over all 576 x H values, for the tiles not stored whole
    const auto sums = want("projector_output_tile_sums");
    EXPECT_LE(max_abs_diff(proj.sum({1, 2}), sums.select(1, 0)), scaled_tol(sums));
    EXPECT_LE(max_abs_diff(proj.abs().sum({1, 2}), sums.select(1, 1)), scaled_tol(sums));
    const auto sizes = torch::tensor({{int64_t(px.image_height), int64_t(px.image_width)}});
    const auto packed = model->image_features(pixels.unsqueeze(0), sizes);
    ASSERT_EQ(packed.size(), 1u);
    EXPECT_EQ(packed[0].size(0), info["feature_len"].get<int64_t>());
    const auto rows = want("packed_features_row_sums"), abs_rows = want("packed_features_row_abs_sums");
    EXPECT_LE(max_abs_diff(packed[0].sum(1), rows), scaled_tol(abs_rows));
    EXPECT_LE(max_abs_diff(packed[0].abs().sum(1), abs_rows), scaled_tol(abs_rows));
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(MllmErrors, BadInputs) {
  if (!fs::exists(tokenizer_model())) GTEST_SKIP() << "no Mistral tokenizer.model in ../shared/data";
  MllmEmbedder m(checkpoint("tiny-llava-next-legacy"));
  const auto img = ImageInput::path(fixtures("images/chelsea.jpg"));
  EXPECT_THROW(m.encode({}, {}, "c"), InvalidArgumentError);
  EXPECT_THROW(m.encode({img}, {"a", "b"}, "c"), InvalidArgumentError);
  EXPECT_THROW(m.encode({img}, {}, "x"), InvalidArgumentError);
  EXPECT_THROW(m.data_process({img}, {}, "candidates"), InvalidArgumentError);
  EXPECT_THROW(m.encode({ImageInput::path("/no/such.png")}, {}, "c"), FileNotFoundError);
  EncodeOptions bad;
  bad.batch_size = 0;
  EXPECT_THROW(m.encode({}, {"x"}, "c", std::nullopt, bad), InvalidArgumentError);
  // an <image> token without pixels
  auto in = m.data_process({img}, {}, "c");
  in.pixel_values = torch::Tensor();
  EXPECT_THROW(m.forward(in), InvalidArgumentError);
}

TEST(MllmErrors, BadCheckpoints) {
  EXPECT_THROW(MllmEmbedder("/no/such/model"), FileNotFoundError);
  // a CLIP folder is not an MLLM
  EXPECT_THROW(MllmEmbedder(fixtures("clip/tiny-fp16-quickgelu")), InvalidArgumentError);
  auto dir = scratch_dir("mllm_bad");
  for (const auto& e : fs::directory_iterator(fixtures("llava/tiny-llava-next-legacy")))
    fs::copy_file(fs::canonical(e.path()), dir / e.path().filename());
  // a shard missing
  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THROW(MllmEmbedder(dir.string()), FileNotFoundError);
  // a truncated shard
  const auto bytes = read_bytes(fs::canonical(fixtures("llava/tiny-llava-next-legacy/model-00002-of-00002.safetensors")));
  write_bytes(dir / "model-00002-of-00002.safetensors", bytes.substr(0, bytes.size() - 1000));
  EXPECT_THROW(MllmEmbedder(dir.string()), InvalidArgumentError);
  write_bytes(dir / "model-00002-of-00002.safetensors", bytes);
  // config.json without text_config
  auto cfg = read_json((dir / "config.json").string());
  cfg.erase("text_config");
  write_bytes(dir / "config.json", cfg.dump());
  try {
    MllmEmbedder m(dir.string());
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("text_config"), std::string::npos) << e.what();
  }
}

TEST(MllmPrompt, Templates) {
  const std::string ins = MllmEmbedder::kComposedRetrievalInstruction;
  const std::string t = "TXT";
  EXPECT_EQ(MllmEmbedder::prompt(&t, true, "q", ins), "[INST] \n <instruct> " + ins + " <query>  TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(nullptr, true, "query", ins), "[INST] \n <instruct> " + ins + " <query>  <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(&t, false, "q", ins), "[INST] \n <instruct> " + ins + " <query>  TXT \n [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(&t, true, "q", std::nullopt), "[INST] \n <instruct>  <query> TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(&t, true, "c", std::nullopt), "[INST]  TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(nullptr, true, "candidate", std::nullopt), "[INST]  <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(&t, false, "c", std::nullopt), "[INST]  TXT \n [/INST]");
  EXPECT_THROW(MllmEmbedder::prompt(&t, false, "z", std::nullopt), InvalidArgumentError);
}
