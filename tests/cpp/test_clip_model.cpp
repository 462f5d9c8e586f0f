// BGE-VL-CLIP end to end against the transformers 4.45.2 fixtures (tests/reference/gen_clip_fixtures.py):
// token ids, pixel values, features and embeddings, for both tiny checkpoints.
#include <gtest/gtest.h>

#include "bgevl/bgevl.h"
#include "io/safetensors.h"
#include "test_util.h"

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
  for (const auto& x : v) out.push_back(ImageInput::path(fixtures("images/" + x.get<std::string>())));
  return out;
}

std::vector<std::string> texts_of(const json& v) {
  if (v.is_null()) return {};
  if (v.is_string()) return {v.get<std::string>()};
  return v.get<std::vector<std::string>>();
}

class ClipParity : public ::testing::TestWithParam<std::string> {
 protected:
  static std::map<std::string, std::shared_ptr<ClipEmbedder>>& models() {
    static std::map<std::string, std::shared_ptr<ClipEmbedder>> m;
    return m;
  }
  ClipEmbedder& model() {
    auto& m = models()[GetParam()];
    if (!m) m = std::make_shared<ClipEmbedder>(fixtures("clip/" + GetParam()));
    return *m;
  }
  io::SafetensorsFile& expected() {
    static std::map<std::string, std::shared_ptr<io::SafetensorsFile>> files;
    auto& f = files[GetParam()];
    if (!f) f = std::make_shared<io::SafetensorsFile>(fixtures("clip/" + GetParam() + ".expected.safetensors"));
    return *f;
  }
  torch::Tensor want(const std::string& name) {
    return expected().load(name, torch::kFloat64, torch::kCPU);
  }
};

}  // namespace

TEST_P(ClipParity, EveryCase) {
  auto& m = model();
  for (const auto& c : cases()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(GetParam() + " / " + name);
    const auto images = image_inputs(c["images"]);
    const auto texts = texts_of(c["text"]);
    if (!texts.empty()) {
      auto t = m.tokenize(texts);
      EXPECT_TRUE(torch::equal(t.input_ids, want(name + "/input_ids").to(torch::kLong))) << "input_ids";
      EXPECT_TRUE(torch::equal(t.attention_mask, want(name + "/attention_mask").to(torch::kLong)));
      EXPECT_LE(max_abs_diff(m.text_features(t), want(name + "/text_features")), kFloat32Tol);
    }
    if (!images.empty()) {
      EXPECT_LE(max_abs_diff(m.image_features(m.pixel_values(images)), want(name + "/image_features")),
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

INSTANTIATE_TEST_SUITE_P(Checkpoints, ClipParity,
                         ::testing::Values("tiny-fp16-quickgelu", "tiny-bf16-gelu"));

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
  EXPECT_THROW(m.encode({}, {}), InvalidArgumentError);
  EXPECT_THROW(m.encode({img, img}, {"one text"}), InvalidArgumentError);
  EXPECT_THROW(m.encode_images({}), InvalidArgumentError);
  EXPECT_THROW(m.encode_texts({}), InvalidArgumentError);
  EXPECT_THROW(m.encode({ImageInput::path("/no/such.jpg")}, {}), FileNotFoundError);
  EncodeOptions bad;
  bad.batch_size = 0;
  EXPECT_THROW(m.encode({}, {"x"}, bad), InvalidArgumentError);
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
  EXPECT_THROW(m.pixel_values({ImageInput::pixels(torch::zeros({4, 4, 2}, torch::kUInt8))}),
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
    for (const auto& [name, info] : f.tensors()) t[name] = f.load(name, torch::kFloat32, torch::kCPU);
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
  EXPECT_THROW(parse_dtype("int8"), InvalidArgumentError);
  EXPECT_THROW(parse_device("tpu"), InvalidArgumentError);
}
