// BGE-VL-MLLM end to end against the transformers 4.45.2 fixtures
// (tests/reference/gen_llava_fixtures.py): token ids, the merged sequence, the vision stages, last
// hidden states and embeddings, for the legacy and non-legacy tokenizer checkpoints (the project's
// own tiny SentencePiece model).
#include <gtest/gtest.h>

#include "bgevl/bgevl.h"
#include "io/safetensors.h"
#include "models/llava_next/config.h"
#include "models/llava_next/model.h"
#include "nn/load.h"
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

std::string checkpoint(const std::string& name) { return fixtures("llava/" + name); }

// The items of a case as the reference got them: images and texts zipped, None texts absent.
std::vector<EmbedItem> items_of(const json& c) {
  std::vector<std::optional<std::string>> texts;
  std::vector<std::optional<std::string>> images;
  auto add = [](const json& v, auto& out) {
    if (v.is_string()) out.push_back(v.get<std::string>());
    if (v.is_array())
      for (const auto& x : v)
        out.push_back(x.is_null() ? std::nullopt
                                  : std::optional<std::string>(x.get<std::string>()));
  };
  add(c["images"], images);
  add(c["text"], texts);
  Prompt p;
  p.role = parse_role(c["q_or_c"].get<std::string>());
  if (!c["task_instruction"].is_null()) p.instruction = c["task_instruction"].get<std::string>();
  std::vector<EmbedItem> out(std::max(images.size(), texts.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (!images.empty()) out[i].image = ImageInput::path(fixtures("images/" + *images[i]));
    if (!texts.empty()) out[i].text = texts[i];
    out[i].prompt = p;
  }
  return out;
}

class MllmParity : public ::testing::TestWithParam<DeviceParam> {
 protected:
  void SetUp() override { BGEVL_SKIP_WITHOUT_DEVICE(GetParam().device); }
  MllmEmbedder& model() {
    static std::map<std::string, std::shared_ptr<MllmEmbedder>> models;
    auto& m = models[GetParam().checkpoint + "@" + GetParam().device];
    if (!m) {
      LoadOptions o;
      o.device = device_of(GetParam().device);
      m = std::make_shared<MllmEmbedder>(checkpoint(GetParam().checkpoint), o);
    }
    return *m;
  }
  torch::Tensor want(const std::string& name) {
    static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
    auto& f = files[GetParam().checkpoint];
    if (!f)
      f = std::make_shared<io::SafetensorsFile>(
          fixtures("llava/" + GetParam().checkpoint + ".expected.safetensors"));
    return f->load(name, torch::kFloat64, torch::kCPU);
  }
};

}  // namespace

TEST_P(MllmParity, EveryCase) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(GetParam().checkpoint + " / " + name);
    const auto items = items_of(c);
    const auto inputs = m.data_process(items);
    ASSERT_TRUE(torch::equal(inputs.input_ids, want(name + "/input_ids").to(torch::kLong)))
        << "input_ids";
    EXPECT_TRUE(
        torch::equal(inputs.attention_mask, want(name + "/attention_mask").to(torch::kLong)));
    const bool images = inputs.pixel_values.defined();
    const auto hidden = m.forward(inputs);
    if (images) {
      EXPECT_TRUE(torch::equal(inputs.image_sizes, want(name + "/image_sizes").to(torch::kLong)));
      EXPECT_EQ(hidden.size(1), want(name + "/merged_seq_len").item<int64_t>());
    }
    const auto last = want(name + "/last_hidden");
    EXPECT_LE(max_abs_diff(hidden.select(1, hidden.size(1) - 1), last), scaled_tol(last));
    const auto emb = m.encode(items);
    EXPECT_EQ(emb.scalar_type(), torch::kFloat32);
    EXPECT_LE(max_abs_diff(emb, want(name + "/embeddings")), kFloat32Tol);
  }
}

TEST_P(MllmParity, BatchedEqualsOneByOne) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    if (c["batch"].get<int64_t>() < 2) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto items = items_of(c);
    const auto batched = m.encode(items);
    for (size_t i = 0; i < items.size(); ++i)
      EXPECT_LE(max_abs_diff(m.encode({items[i]})[0], batched[i]), kFloat32Tol) << "row " << i;
  }
}

// Every case in one list: queries and candidates, with and without images and texts, in
// batches that the engine orders by length; each row is its case's reference embedding.
TEST_P(MllmParity, AllCasesInOneMixedList) {
  auto& m = model();
  std::vector<EmbedItem> all;
  std::vector<torch::Tensor> expected;
  for (const auto& c : cases()["cases"]) {
    const auto items = items_of(c);
    const auto e = want(c["name"].get<std::string>() + "/embeddings");
    for (size_t i = 0; i < items.size(); ++i) {
      all.push_back(items[i]);
      expected.push_back(e[i]);
    }
  }
  EncodeOptions o;
  o.batch_size = 3;
  const auto got = m.encode(all, o);
  ASSERT_EQ(got.size(0), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_LE(max_abs_diff(got[i], expected[i]), kFloat32Tol) << "row " << i;
}

const std::vector<std::string> kMllmCheckpoints = {"tiny-llava-next-legacy", "tiny-llava-next"};
INSTANTIATE_TEST_SUITE_P(CPU, MllmParity, ::testing::ValuesIn(on_device(kMllmCheckpoints, "cpu")),
                         param_name);
INSTANTIATE_TEST_SUITE_P(CUDA, MllmParity, ::testing::ValuesIn(on_device(kMllmCheckpoints, "cuda")),
                         param_name);

// Stage by stage on the first image of each image case: vision tower, projector, packing.
TEST(MllmStages, VisionProjectorPacking) {
  const auto dir = fixtures("llava/tiny-llava-next-legacy");
  const auto cfg = llava_next::load_config(dir + "/config.json");
  llava_next::LlavaNext model(cfg);
  nn::load_weights(*model, io::WeightSet::open_dir(dir), torch::kFloat32, torch::kCPU, "", {},
                   model->unused_prefixes());
  io::SafetensorsFile expected(fixtures("llava/images.expected.safetensors"));
  const auto icfg = llava_next::load_image_config(fixtures("llava/preprocessor_config.json"), cfg);
  c10::InferenceMode guard;
  int checked = 0;
  for (const auto& [image, info] : cases()["image_stages"]["images"].items()) {
    SCOPED_TRACE(image);
    const auto px =
        vision::llava_preprocess(vision::decode_file(fixtures("images/" + image)), icfg, 512);
    auto pixels = torch::from_blob(const_cast<float*>(px.data.data()),
                                   {px.num_tiles, 3, px.tile_height, px.tile_width})
                      .clone();
    auto want = [&](const std::string& n) {
      return expected.load(image + "/" + n, torch::kFloat64, torch::kCPU);
    };
    auto hidden =
        model->vision_tower->vision_model->hidden_states_at(pixels, cfg.vision_layers_used());
    auto feats = hidden.index({torch::indexing::Slice(), torch::indexing::Slice(1)});
    const auto vf = want("vision_features_tile0"), pf = want("projector_output_tile0");
    EXPECT_LE(max_abs_diff(feats[0], vf), scaled_tol(vf));
    auto proj = model->projected_tiles(pixels);
    EXPECT_LE(max_abs_diff(proj[0], pf), scaled_tol(pf));
    // per tile: (sum, sum of |x|) over all 576 x H values, for the tiles not stored whole
    const auto sums = want("projector_output_tile_sums");
    EXPECT_LE(max_abs_diff(proj.sum({1, 2}), sums.select(1, 0)), scaled_tol(sums));
    EXPECT_LE(max_abs_diff(proj.abs().sum({1, 2}), sums.select(1, 1)), scaled_tol(sums));
    const auto layout = llava_next::image_layout(cfg, px.image_height, px.image_width);
    EXPECT_EQ(layout.tiles, px.num_tiles);
    EXPECT_EQ(layout.feature_len, info["feature_len"].get<int64_t>());
    const auto packed = model->image_features(pixels, {layout});
    EXPECT_EQ(packed.size(0), info["feature_len"].get<int64_t>());
    const auto rows = want("packed_features_row_sums"),
               abs_rows = want("packed_features_row_abs_sums");
    EXPECT_LE(max_abs_diff(packed.sum(1), rows), scaled_tol(abs_rows));
    EXPECT_LE(max_abs_diff(packed.abs().sum(1), abs_rows), scaled_tol(abs_rows));
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(MllmErrors, BadInputs) {
  MllmEmbedder m(checkpoint("tiny-llava-next-legacy"));
  const auto img = ImageInput::path(fixtures("images/chelsea.jpg"));
  const auto c = Prompt::candidate();
  EXPECT_THROW(m.encode({}, {}, c), InvalidArgumentError);
  EXPECT_THROW(m.encode({img}, {"a", "b"}, c), InvalidArgumentError);
  EXPECT_THROW(parse_role("x"), InvalidArgumentError);
  EXPECT_THROW(parse_role("candidates"), InvalidArgumentError);
  EXPECT_THROW(m.encode({ImageInput::path("/no/such.png")}, {}, c), FileNotFoundError);
  EncodeOptions bad;
  bad.batch_size = -3;
  EXPECT_THROW(m.encode({}, {"x"}, c, bad), InvalidArgumentError);
  // the role is required, as the card's data_process requires q_or_c
  try {
    m.encode({img}, {}, Prompt{});
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("q_or_c"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.data_process({img}, {}, Prompt{}), InvalidArgumentError);
  // truncate is refused, not ignored
  EncodeOptions cut;
  cut.truncate = true;
  EXPECT_THROW(m.encode({}, {"x"}, c, cut), InvalidArgumentError);
  // an <image> token without pixels
  auto in = m.data_process({img}, {}, c);
  in.pixel_values = torch::Tensor();
  EXPECT_THROW(m.forward(in), InvalidArgumentError);
  // input ids outside the vocabulary
  auto ids = m.data_process({}, {"x"}, c);
  ids.input_ids[0][0] = 1 << 20;
  EXPECT_THROW(m.forward(ids), InvalidArgumentError);
}

TEST(MllmErrors, BadCheckpoints) {
  EXPECT_THROW(MllmEmbedder("/no/such/model"), FileNotFoundError);
  // a CLIP folder is not an MLLM, and the message says so
  try {
    MllmEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("BGE-VL-CLIP"), std::string::npos) << e.what();
  }
  auto dir = scratch_dir("mllm_bad");
  for (const auto& e : fs::directory_iterator(fixtures("llava/tiny-llava-next-legacy")))
    fs::copy_file(fs::canonical(e.path()), dir / e.path().filename());
  // a shard missing
  fs::remove(dir / "model-00002-of-00002.safetensors");
  EXPECT_THROW(MllmEmbedder(dir.string()), FileNotFoundError);
  // a truncated shard
  const auto bytes = read_bytes(
      fs::canonical(fixtures("llava/tiny-llava-next-legacy/model-00002-of-00002.safetensors")));
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
  const std::string ins = kComposedRetrievalInstruction;
  const std::string t = "TXT";
  const auto q = Prompt::query(ins), q0 = Prompt::query(), c = Prompt::candidate();
  EXPECT_EQ(MllmEmbedder::prompt(t, true, q),
            "[INST] \n <instruct> " + ins + " <query>  TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(std::nullopt, true, q),
            "[INST] \n <instruct> " + ins + " <query>  <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(t, false, q),
            "[INST] \n <instruct> " + ins + " <query>  TXT \n [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(t, true, q0),
            "[INST] \n <instruct>  <query> TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(t, true, c), "[INST]  TXT \n <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(std::nullopt, true, c), "[INST]  <image> [/INST]");
  EXPECT_EQ(MllmEmbedder::prompt(t, false, c), "[INST]  TXT \n [/INST]");
  EXPECT_THROW(MllmEmbedder::prompt(t, false, Prompt{}), InvalidArgumentError);
  EXPECT_STREQ(MllmEmbedder::kComposedRetrievalInstruction, kComposedRetrievalInstruction);
}

// The host plan of the legacy merge: image rows at the <image> token, rows right-aligned,
// positions over real tokens only.
TEST(MllmPlan, MergeLayout) {
  llava_next::ImageLayout im;
  im.feature_len = 3;
  // row 0: pad, 5, <image>, 6; row 1: 7, 8, 9, 10 (no image)
  const std::vector<int64_t> ids = {0, 5, 99, 6, 7, 8, 9, 10}, mask = {0, 1, 1, 1, 1, 1, 1, 1};
  const auto p = llava_next::plan_merge(ids, mask, 2, 4, 99, {im});
  ASSERT_EQ(p.length, 5);  // 2 tokens + 3 image rows
  const int64_t img0 = 8;  // the image rows follow the 2 x 4 token rows in the table
  EXPECT_EQ(p.source, (std::vector<int64_t>{1, img0, img0 + 1, img0 + 2, 3, 11, 4, 5, 6, 7}));
  EXPECT_EQ(p.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 0, 1, 1, 1, 1}));
  EXPECT_EQ(p.position_ids, (std::vector<int64_t>{0, 1, 2, 3, 4, 1, 0, 1, 2, 3}));
  EXPECT_THROW(llava_next::plan_merge(ids, mask, 2, 4, 99, {}), InvalidArgumentError);
  // no image: the rows stay as given (here right-padded), positions over real tokens only
  const auto t = llava_next::plan_merge({5, 6, 0, 7, 0, 0}, {1, 1, 0, 1, 0, 0}, 2, 3, 99, {});
  EXPECT_EQ(t.length, 3);
  EXPECT_EQ(t.source, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(t.attention_mask, (std::vector<int64_t>{1, 1, 0, 1, 0, 0}));
  EXPECT_EQ(t.position_ids, (std::vector<int64_t>{0, 1, 1, 0, 1, 1}));
  EXPECT_THROW(llava_next::plan_merge(ids, mask, 2, 4, 99, {im, im}), InvalidArgumentError);
}
