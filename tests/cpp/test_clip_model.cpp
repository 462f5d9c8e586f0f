// BGE-VL-CLIP end to end against the transformers 4.45.2 fixtures
// (tests/reference/gen_clip_fixtures.py): token ids, pixel values, features and embeddings, for
// both tiny checkpoints.
#include <gtest/gtest.h>

#include "bgevl/bgevl.h"
#include "io/safetensors.h"
#include "runtime/inputs.h"
#include "test_util.h"
#include "vision/image.h"

namespace fs = std::filesystem;
using namespace bgevl;
using namespace bgevl::test;
using json = nlohmann::json;

namespace {

const json& cases() {
  static const json j = read_json(fixtures("clip/cases.json"));
  return j;
}

std::vector<ImageInput> image_inputs(const json& v) {
  std::vector<ImageInput> out;
  if (v.is_null()) return out;
  if (v.is_string()) return {ImageInput::path(fixtures("images/" + v.get<std::string>()))};
  for (const auto& x : v)
    out.push_back(ImageInput::path(fixtures("images/" + x.get<std::string>())));
  return out;
}

std::vector<std::string> texts_of(const json& v) {
  if (v.is_null()) return {};
  if (v.is_string()) return {v.get<std::string>()};
  return v.get<std::vector<std::string>>();
}

class ClipParity : public ::testing::TestWithParam<DeviceParam> {
 protected:
  void SetUp() override { BGEVL_SKIP_WITHOUT_DEVICE(GetParam().device); }
  ClipEmbedder& model() {
    static std::map<std::string, std::shared_ptr<ClipEmbedder>> models;
    auto& m = models[GetParam().checkpoint + "@" + GetParam().device];
    if (!m) {
      LoadOptions o;
      o.device = device_of(GetParam().device);
      m = std::make_shared<ClipEmbedder>(fixtures("clip/" + GetParam().checkpoint), o);
    }
    return *m;
  }
  torch::Tensor want(const std::string& name) {
    static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
    auto& f = files[GetParam().checkpoint];
    if (!f)
      f = std::make_shared<io::SafetensorsFile>(
          fixtures("clip/" + GetParam().checkpoint + ".expected.safetensors"));
    return f->load(name, torch::kFloat64, torch::kCPU);
  }
};

}  // namespace

TEST_P(ClipParity, EveryCase) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(GetParam().checkpoint + " / " + name);
    const auto images = image_inputs(c["images"]);
    const auto texts = texts_of(c["text"]);
    if (!texts.empty()) {
      auto t = m.tokenize(texts);
      EXPECT_TRUE(torch::equal(t.input_ids, want(name + "/input_ids").to(torch::kLong)))
          << "input_ids";
      EXPECT_TRUE(torch::equal(t.attention_mask, want(name + "/attention_mask").to(torch::kLong)));
      EXPECT_LE(max_abs_diff(m.get_text_features(t), want(name + "/text_features")), kFloat32Tol);
    }
    if (!images.empty()) {
      EXPECT_LE(max_abs_diff(m.get_image_features(m.pixel_values(images)),
                             want(name + "/image_features")),
                kFloat32Tol);
    }
    const auto emb = m.encode(images, texts);
    EXPECT_EQ(emb.scalar_type(), torch::kFloat32);
    EXPECT_EQ(emb.size(0), c["batch"].get<int64_t>());
    EXPECT_LE(max_abs_diff(emb, want(name + "/embeddings")), kFloat32Tol);
  }
}

TEST_P(ClipParity, BatchedEqualsOneByOne) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    if (c["batch"].get<int64_t>() < 2) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto images = image_inputs(c["images"]);
    const auto texts = texts_of(c["text"]);
    const auto batched = m.encode(images, texts);
    for (int64_t i = 0; i < batched.size(0); ++i) {
      std::vector<ImageInput> im;
      std::vector<std::string> tx;
      if (!images.empty()) im.push_back(images[i]);
      if (!texts.empty()) tx.push_back(texts[i]);
      EXPECT_LE(max_abs_diff(m.encode(im, tx)[0], batched[i]), kFloat32Tol) << "row " << i;
    }
    // and through a batch size that splits the list
    EncodeOptions small;
    small.batch_size = 2;
    EXPECT_LE(max_abs_diff(m.encode(images, texts, small), batched), kFloat32Tol);
  }
}

const std::vector<std::string> kClipCheckpoints = {"tiny-fp16-quickgelu", "tiny-bf16-gelu"};
INSTANTIATE_TEST_SUITE_P(CPU, ClipParity, ::testing::ValuesIn(on_device(kClipCheckpoints, "cpu")),
                         param_name);
INSTANTIATE_TEST_SUITE_P(CUDA, ClipParity, ::testing::ValuesIn(on_device(kClipCheckpoints, "cuda")),
                         param_name);

// Images, texts and composed items mixed in one list (and in one batch) give each item's own
// embedding, in the caller's order, also when the list is long enough to be sorted by length.
TEST_P(ClipParity, MixedItemsEqualOneByOne) {
  auto& m = model();
  const auto img = [](const char* n) {
    return ImageInput::path(fixtures(std::string("images/") + n));
  };
  std::vector<EmbedItem> items = {
      EmbedItem(img("chelsea.jpg")),
      EmbedItem("a photo of a cat on a very long and winding road at night"),
      {img("rocket.jpg"), "make it night"},
      EmbedItem("dog"),
      {img("cmyk.jpg"), "a red one, but larger and with the background blurred away"},
  };
  for (int64_t bs : {0, 2}) {
    EncodeOptions o;
    o.batch_size = bs;
    const auto all = m.encode(items, o);
    ASSERT_EQ(all.size(0), 5);
    for (size_t i = 0; i < items.size(); ++i)
      EXPECT_LE(max_abs_diff(m.encode({items[i]})[0], all[i]), kFloat32Tol) << "item " << i;
  }
}

TEST(ClipPixels, EqualReferenceForEveryImage) {
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  io::SafetensorsFile expected(fixtures("clip/pixel_values.safetensors"));
  ASSERT_GE(expected.tensors().size(), 15u);
  for (const auto& [name, info] : expected.tensors()) {
    SCOPED_TRACE(name);
    auto got = m.pixel_values({ImageInput::path(fixtures("images/" + name))});
    auto want = expected.load(name, torch::kFloat32, torch::kCPU);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE(max_abs_diff(got, want), kPixelTol);
  }
}

// The embedder stages uint8 crops and turns them into pixel values on the model's device with the
// per-channel table: the same floats as the processor's host path (vision::clip_preprocess), bit
// for bit, on the CPU and (when there is one) on CUDA; pixel_values gives them too.
TEST(ClipPixels, DeviceSideNormalisationIsBitIdentical) {
  const auto cfg =
      vision::load_clip_image_config(fixtures("clip/tiny-fp16-quickgelu/preprocessor_config.json"));
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  const auto lut = vision::clip_pixel_table(cfg);
  const auto table = torch::from_blob(const_cast<float*>(lut.data()), {768}, torch::kFloat32);
  int n = 0;
  for (const auto& e : fs::directory_iterator(fixtures("images"))) {
    const auto name = e.path().filename().string();
    if (name.find(".jpg") == std::string::npos && name.find(".png") == std::string::npos) continue;
    SCOPED_TRACE(name);
    const auto im = vision::decode_file(e.path().string());
    auto want = torch::empty({1, 3, cfg.crop_height, cfg.crop_width}, torch::kFloat32);
    vision::clip_preprocess(im, cfg, want.data_ptr<float>());
    EXPECT_TRUE(torch::equal(m.pixel_values({ImageInput::path(e.path().string())}), want));
    auto crop = torch::empty({1, 3, cfg.crop_height, cfg.crop_width}, torch::kByte);
    vision::clip_preprocess_u8(im, cfg, crop.data_ptr<uint8_t>());
    EXPECT_TRUE(torch::equal(runtime::pixels_from_crops(crop, table), want));
    if (torch::cuda::is_available()) {
      const auto got = runtime::pixels_from_crops(crop.to(torch::kCUDA), table.to(torch::kCUDA));
      EXPECT_TRUE(got.is_cuda());
      EXPECT_TRUE(torch::equal(got.cpu(), want));
    }
    ++n;
  }
  EXPECT_GE(n, 5);
  // bad shapes and types are errors, not wrong pixels
  EXPECT_THROW(runtime::pixels_from_crops(torch::zeros({3, 4, 4}, torch::kByte), table),
               InvalidArgumentError);
  EXPECT_THROW(runtime::pixels_from_crops(torch::zeros({1, 3, 4, 4}), table), InvalidArgumentError);
  EXPECT_THROW(
      runtime::pixels_from_crops(torch::zeros({1, 3, 4, 4}, torch::kByte), table.narrow(0, 0, 256)),
      InvalidArgumentError);
}

// encode's texts go through the causal mask alone (right padding, the fast attention path);
// get_text_features with the tokenizer's mask through the dense causal + padding mask: the same
// features, bit for bit on the CPU.
TEST(ClipText, EncodePathEqualsTheDenseMaskPath) {
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  const std::vector<std::string> texts = {"a", "a photo of a cat sitting on a mat", "two dogs",
                                          "make the background dark and the sky a bit bluer"};
  EncodeOptions o;
  o.normalize = false;
  const auto a = m.encode({}, texts, o);
  const auto b = m.get_text_features(m.tokenize(texts));
  EXPECT_TRUE(torch::equal(a, b.to(torch::kFloat32))) << max_abs_diff(a, b);
}

TEST(ClipPixels, BytesAndPixelInputsMatchPaths) {
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  const auto path = fixtures("images/chelsea.jpg");
  auto a = m.pixel_values({ImageInput::path(path)});
  auto b = m.pixel_values({ImageInput::bytes(read_bytes(path))});
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(ClipEmbedderErrors, BadInputs) {
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  const auto img = ImageInput::path(fixtures("images/chelsea.jpg"));
  EXPECT_THROW(m.encode(std::vector<ImageInput>{}, {}), InvalidArgumentError);
  EXPECT_THROW(m.encode({img, img}, {"one text"}), InvalidArgumentError);
  EXPECT_THROW(m.encode(std::vector<EmbedItem>{}), InvalidArgumentError);
  EXPECT_THROW(m.encode({EmbedItem()}), InvalidArgumentError);  // neither image nor text
  EXPECT_THROW(m.encode({EmbedItem("x", Prompt::query("an instruction"))}), InvalidArgumentError);
  EXPECT_THROW(m.encode({ImageInput::path("/no/such.jpg")}, {}), FileNotFoundError);
  EncodeOptions bad;
  bad.batch_size = -1;
  EXPECT_THROW(m.encode({}, {"x"}, bad), InvalidArgumentError);
  // a missing image among many is reported before anything is computed, with its index
  std::vector<ImageInput> many(40, img);
  many[37] = ImageInput::path("/no/such/photo.jpg");
  int calls = 0;
  EncodeOptions counting;
  counting.progress = [&](int64_t, int64_t) { ++calls; };
  try {
    m.encode(many, {}, counting);
    ADD_FAILURE() << "no exception";
  } catch (const FileNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("item 37"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calls, 0);
  // likewise a text too long for the model, with the fix in the message
  std::vector<std::string> texts(40, "a cat");
  std::string too_long;
  for (int i = 0; i < 100; ++i) too_long += "cat ";
  texts[33] = too_long;
  try {
    m.encode({}, texts, counting);
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("item 33"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--truncate"), std::string::npos) << msg;
  }
  EXPECT_EQ(calls, 0);
  // a text longer than 77 tokens: an error by default, cut to 77 with truncate
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "cat ";
  EXPECT_THROW(m.encode({}, {long_text}), InvalidArgumentError);
  EncodeOptions cut;
  cut.truncate = true;
  EXPECT_EQ(m.encode({}, {long_text}, cut).size(0), 1);
  EXPECT_EQ(m.tokenize({long_text}, true).input_ids.size(1), 77);
  // pixels of the wrong type or shape
  EXPECT_THROW(m.pixel_values({ImageInput::pixels(torch::zeros({4, 4, 3}))}), InvalidArgumentError);
  EXPECT_THROW(m.pixel_values({ImageInput::pixels(torch::zeros({4, 4, 5}, torch::kUInt8))}),
               InvalidArgumentError);
  EXPECT_THROW(m.pixel_values({ImageInput::pixels(torch::zeros({4, 4, 3}, torch::kUInt8), "P2")}),
               InvalidArgumentError);
}

TEST(ClipEmbedderErrors, BadCheckpoints) {
  EXPECT_THROW(ClipEmbedder("/no/such/model"), FileNotFoundError);
  const auto src = fs::path(fixtures("clip/tiny-fp16-quickgelu"));
  auto dir = scratch_dir("bad_ckpt");
  for (const auto& e : fs::directory_iterator(src)) fs::copy(e.path(), dir / e.path().filename());

  // a weight missing, one unexpected, one mis-shaped: one error lists all three
  {
    io::SafetensorsFile f((src / "model.safetensors").string());
    std::map<std::string, torch::Tensor> t;
    for (const auto& [name, info] : f.tensors())
      t[name] = f.load(name, torch::kFloat32, torch::kCPU);
    t.erase("text_model.final_layer_norm.bias");
    t["extra.weight"] = torch::ones({2});
    t["visual_projection.weight"] = torch::ones({3, 3});
    write_bytes(dir / "model.safetensors", safetensors_bytes(t, "F16"));
    try {
      ClipEmbedder m(dir.string());
      ADD_FAILURE() << "no exception";
    } catch (const InvalidArgumentError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("1 missing"), std::string::npos) << msg;
      EXPECT_NE(msg.find("text_model.final_layer_norm.bias"), std::string::npos) << msg;
      EXPECT_NE(msg.find("1 unexpected"), std::string::npos) << msg;
      EXPECT_NE(msg.find("extra.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("1 mis-shaped"), std::string::npos) << msg;
      EXPECT_NE(msg.find("visual_projection.weight"), std::string::npos) << msg;
    }
  }
  // truncated weights
  {
    const auto bytes = read_bytes(src / "model.safetensors");
    write_bytes(dir / "model.safetensors", bytes.substr(0, bytes.size() / 2));
    EXPECT_THROW(ClipEmbedder(dir.string()), InvalidArgumentError);
    fs::remove(dir / "model.safetensors");
    EXPECT_THROW(ClipEmbedder(dir.string()), FileNotFoundError);
    fs::copy(src / "model.safetensors", dir / "model.safetensors");
  }
  // config.json missing a needed key / not JSON / absent
  {
    auto cfg = read_json((src / "config.json").string());
    cfg.erase("vision_config");
    write_bytes(dir / "config.json", cfg.dump());
    EXPECT_THROW(ClipEmbedder(dir.string()), InvalidArgumentError);
    write_bytes(dir / "config.json", "{");
    EXPECT_THROW(ClipEmbedder(dir.string()), InvalidArgumentError);
    fs::remove(dir / "config.json");
    EXPECT_THROW(ClipEmbedder(dir.string()), FileNotFoundError);
  }
}

TEST(ClipEmbedderApi, PixelModesMatchDecodedFiles) {
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"));
  const auto file = ImageInput::path(fixtures("images/grey_alpha_LA.png"));
  const auto decoded = vision::decode_file(fixtures("images/grey_alpha_LA.png"));
  ASSERT_EQ(decoded.mode, vision::PilMode::LA);
  auto t = torch::from_blob(const_cast<uint8_t*>(decoded.data.data()),
                            {decoded.height, decoded.width, 2}, torch::kUInt8)
               .clone();
  EXPECT_TRUE(torch::equal(m.pixel_values({file}), m.pixel_values({ImageInput::pixels(t)})));
  EXPECT_TRUE(torch::equal(m.pixel_values({file}), m.pixel_values({ImageInput::pixels(t, "LA")})));
}

TEST(ClipEmbedderApi, DtypeAndDevice) {
  LoadOptions o;
  o.dtype = torch::kBFloat16;
  ClipEmbedder m(fixtures("clip/tiny-fp16-quickgelu"), o);
  EXPECT_EQ(m.dtype(), torch::kBFloat16);
  EXPECT_TRUE(m.device().is_cpu());
  auto e = m.encode({}, {"a photo of a cat"});
  EXPECT_EQ(e.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(e.norm().item<double>(), 1.0, 1e-5);
  m.to(torch::kCPU, torch::kFloat32);
  EXPECT_EQ(m.dtype(), torch::kFloat32);
  // float16 on the CPU: refused with the way out, at load and in to()
  LoadOptions half;
  half.dtype = torch::kFloat16;
  try {
    ClipEmbedder h(fixtures("clip/tiny-fp16-quickgelu"), half);
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("bfloat16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.to(torch::kCPU, torch::kFloat16), InvalidArgumentError);
  EXPECT_EQ(m.dtype(), torch::kFloat32);
  EXPECT_THROW(parse_dtype("int8"), InvalidArgumentError);
  // the default dtype: float32 on the CPU (exact), bfloat16 on CUDA
  EXPECT_EQ(parse_dtype("default"), torch::ScalarType::Undefined);
  EXPECT_EQ(LoadOptions().dtype, torch::ScalarType::Undefined);
  EXPECT_EQ(default_dtype(torch::kCPU), torch::kFloat32);
  EXPECT_EQ(default_dtype(torch::Device(torch::kCUDA, 0)), torch::kBFloat16);
  EXPECT_EQ(ClipEmbedder(fixtures("clip/tiny-fp16-quickgelu")).dtype(), torch::kFloat32);
  EXPECT_THROW(parse_device("tpu"), InvalidArgumentError);
}
