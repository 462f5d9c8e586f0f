// safetensors reading, config.json parsing and model folder resolution.
#include <gtest/gtest.h>

#include <cstdlib>

#include "bgevl/bgevl.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/clip/config.h"
#include "models/registry.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bgevl;
using namespace bgevl::test;

TEST(Safetensors, ReadsAndConvertsDtypes) {
  auto dir = scratch_dir("st_ok");
  auto a = torch::arange(12, torch::kFloat32).view({3, 4}) / 7.0;
  for (std::string dt : {"F32", "F16", "BF16"}) {
    write_bytes(dir / (dt + ".safetensors"), safetensors_bytes({{"x.weight", a}}, dt));
    io::SafetensorsFile f((dir / (dt + ".safetensors")).string());
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(f.tensors().at("x.weight").dtype, dt);
    auto t = f.load("x.weight", torch::kFloat32, torch::kCPU);
    EXPECT_EQ(t.sizes(), a.sizes());
    const double tol = dt == "F32" ? 0.0 : (dt == "F16" ? 1e-3 : 1e-2);
    EXPECT_LE(max_abs_diff(t, a), tol) << dt;
    // the half-precision values are exactly what torch's own conversion gives
    if (dt == "F16") {
      EXPECT_EQ(max_abs_diff(t, a.to(torch::kFloat16).to(torch::kFloat32)), 0.0);
    }
    if (dt == "BF16") {
      EXPECT_EQ(max_abs_diff(t, a.to(torch::kBFloat16).to(torch::kFloat32)), 0.0);
    }
    auto h = f.load("x.weight", torch::kFloat16, torch::kCPU);
    EXPECT_EQ(h.scalar_type(), torch::kFloat16);
  }
}

TEST(Safetensors, MissingFileIsFileNotFound) {
  EXPECT_THROW(io::SafetensorsFile("/nonexistent/model.safetensors"), FileNotFoundError);
}

// Each corruption gives InvalidArgumentError with a message naming the problem.
TEST(Safetensors, RejectsCorruptHeaders) {
  auto dir = scratch_dir("st_bad");
  const std::string data(48, '\0');  // room for 12 floats
  struct Case {
    std::string name, bytes, expect;
  } cases[] = {
      {"too_small", std::string("\x05\x00", 2), "too small"},
      {"len_past_end",
       raw_safetensors("{}", "").replace(0, 8, std::string("\xff\xff\x00\x00\x00\x00\x00\x00", 8)),
       "runs past the end"},
      {"not_json", raw_safetensors("{not json", data), "not valid JSON"},
      {"not_object", raw_safetensors("[1,2]", data), "not a JSON object"},
      {"offsets_outside",
       raw_safetensors(R"({"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})", data),
       "outside the data section"},
      {"begin_after_end",
       raw_safetensors(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data), "begin"},
      {"size_mismatch",
       raw_safetensors(R"({"w":{"dtype":"F32","shape":[3,3],"data_offsets":[0,48]}})", data),
       "needs 36 bytes"},
      {"dtype_shape_mismatch",  // F16 [12] is 24 bytes, not 48
       raw_safetensors(R"({"w":{"dtype":"F16","shape":[12],"data_offsets":[0,48]}})", data),
       "needs 24 bytes"},
      {"bad_dtype",
       raw_safetensors(R"({"w":{"dtype":"Q4","shape":[12],"data_offsets":[0,48]}})", data),
       "unsupported dtype"},
      {"negative_shape",
       raw_safetensors(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", data),
       "invalid shape"},
      {"missing_fields", raw_safetensors(R"({"w":{"dtype":"F32"}})", data), "needs dtype, shape"},
      {"overlap",
       raw_safetensors(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},)"
                       R"("b":{"dtype":"F32","shape":[8],"data_offsets":[16,48]}})",
                       data),
       "overlap"},
      {"gap",
       raw_safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                       R"("b":{"dtype":"F32","shape":[4],"data_offsets":[32,48]}})",
                       data),
       "belong to no tensor"},
      {"bytes_after_the_last",
       raw_safetensors(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data),
       "16 bytes after the last tensor"},
      {"header_length_one_short",
       [&] {
         // A header padded with a space (as writers do), its length field one byte short: the
         // JSON still parses and the data section would start a byte early.
         auto b =
             raw_safetensors(R"({"a":{"dtype":"F32","shape":[12],"data_offsets":[0,48]}} )", data);
         b[0] = static_cast<char>(b[0] - 1);
         return b;
       }(),
       "1 bytes after the last tensor"},
  };
  for (const auto& c : cases) {
    const auto p = dir / (c.name + ".safetensors");
    write_bytes(p, c.bytes);
    try {
      io::SafetensorsFile f(p.string());
      ADD_FAILURE() << c.name << ": no exception";
    } catch (const InvalidArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos)
          << c.name << ": " << e.what();
    }
  }
}

TEST(Safetensors, TruncatedFileIsRejected) {
  auto dir = scratch_dir("st_trunc");
  auto bytes = safetensors_bytes({{"w", torch::ones({16, 16})}});
  write_bytes(dir / "t.safetensors", bytes.substr(0, bytes.size() - 100));
  EXPECT_THROW(io::SafetensorsFile((dir / "t.safetensors").string()), InvalidArgumentError);
}

TEST(Safetensors, ShardedIndex) {
  auto dir = scratch_dir("st_shards");
  write_bytes(dir / "model-00001-of-00002.safetensors",
              safetensors_bytes({{"a.weight", torch::ones({2, 2})}}, "F16"));
  write_bytes(dir / "model-00002-of-00002.safetensors",
              safetensors_bytes({{"b.weight", torch::full({3}, 2.0)}}, "BF16"));
  nlohmann::json idx = {{"metadata", {{"total_size", 14}}},
                        {"weight_map",
                         {{"a.weight", "model-00001-of-00002.safetensors"},
                          {"b.weight", "model-00002-of-00002.safetensors"}}}};
  write_bytes(dir / "model.safetensors.index.json", idx.dump());
  auto ws = io::WeightSet::open_dir(dir.string());
  EXPECT_EQ(ws.names(), (std::vector<std::string>{"a.weight", "b.weight"}));
  EXPECT_EQ(ws.load("b.weight", torch::kFloat32, torch::kCPU).sum().item<float>(), 6.0f);

  // an index naming a shard that is not there
  idx["weight_map"]["c.weight"] = "model-00003-of-00002.safetensors";
  write_bytes(dir / "model.safetensors.index.json", idx.dump());
  EXPECT_THROW(io::WeightSet::open_dir(dir.string()), FileNotFoundError);
  // an index that puts a tensor in the wrong shard
  idx["weight_map"].erase("c.weight");
  idx["weight_map"]["a.weight"] = "model-00002-of-00002.safetensors";
  write_bytes(dir / "model.safetensors.index.json", idx.dump());
  EXPECT_THROW(io::WeightSet::open_dir(dir.string()), InvalidArgumentError);
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": 3}");
  EXPECT_THROW(io::WeightSet::open_dir(dir.string()), InvalidArgumentError);
}

TEST(Safetensors, FolderWithoutWeights) {
  auto dir = scratch_dir("st_none");
  EXPECT_THROW(io::WeightSet::open_dir(dir.string()), FileNotFoundError);
}

TEST(Config, ParsesFixtureWithDefaults) {
  auto c = clip::load_config(fixtures("clip/tiny-fp16-quickgelu/config.json"));
  EXPECT_EQ(c.text.eos_token_id, 2);
  EXPECT_EQ(c.text.hidden_act, "quick_gelu");
  EXPECT_EQ(c.vision.patch_size, 32);
  EXPECT_EQ(c.projection_dim, 16);
  auto g = clip::load_config(fixtures("clip/tiny-bf16-gelu/config.json"));
  EXPECT_EQ(g.text.eos_token_id, 49407);
  EXPECT_EQ(g.text.hidden_act, "gelu");
  EXPECT_EQ(g.text.vocab_size, 49408);
}

TEST(Config, DefaultsAreTransformers) {
  auto dir = scratch_dir("cfg_defaults");
  write_bytes(dir / "config.json",
              R"({"model_type": "clip", "text_config": {}, "vision_config": {}})");
  auto c = clip::load_config((dir / "config.json").string());
  EXPECT_EQ(c.text.hidden_size, 512);
  EXPECT_EQ(c.text.num_attention_heads, 8);
  EXPECT_EQ(c.text.eos_token_id, 49407);
  EXPECT_EQ(c.vision.hidden_size, 768);
  EXPECT_EQ(c.vision.patch_size, 32);
  EXPECT_EQ(c.projection_dim, 512);
}

TEST(Config, ErrorsNameKeyAndFile) {
  auto dir = scratch_dir("cfg_bad");
  const auto p = (dir / "config.json").string();
  auto expect_error = [&](const std::string& content, const std::string& needle) {
    write_bytes(p, content);
    try {
      clip::load_config(p);
      ADD_FAILURE() << "no exception for " << content;
    } catch (const InvalidArgumentError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
    }
  };
  expect_error(R"({"model_type": "clip", "vision_config": {}})", "text_config");
  expect_error(R"({"model_type": "clip", "text_config": {}})", "vision_config");
  expect_error(
      R"({"model_type": "clip", "text_config": {"hidden_size": "big"}, "vision_config": {}})",
      "text_config.hidden_size");
  expect_error(
      R"({"model_type": "clip", "text_config": {}, "vision_config": {"hidden_act": "swish9"}})",
      "hidden_act");
  expect_error(
      R"({"model_type": "clip", "text_config": {"hidden_size": 30, "num_attention_heads": 4},
                   "vision_config": {}})",
      "multiple of num_attention_heads");
  expect_error("{ not json", "not valid JSON");
  EXPECT_THROW(clip::load_config((dir / "absent.json").string()), FileNotFoundError);
}

TEST(Registry, DetectsTheFamily) {
  auto dir = scratch_dir("cfg_kind");
  const auto p = (dir / "config.json").string();
  write_bytes(p, R"({"model_type": "llava_next"})");
  EXPECT_EQ(models::detect(p).family, Family::LlavaNext);
  write_bytes(p, R"({"architectures": ["LLaVANextForEmbedding"]})");
  EXPECT_EQ(models::detect(p).family, Family::LlavaNext);
  write_bytes(p, R"({"model_type": "clip"})");
  EXPECT_EQ(models::detect(p).family, Family::Clip);
  EXPECT_EQ(model_family(dir.string()), Family::Clip);
  write_bytes(p, R"({"model_type": "bert"})");
  try {
    models::detect(p);
    ADD_FAILURE();
  } catch (const InvalidArgumentError& e) {  // names what bgevl knows
    EXPECT_NE(std::string(e.what()).find("'clip', 'llava_next'"), std::string::npos) << e.what();
  }
  write_bytes(p, R"({"hidden_size": 3})");
  try {
    models::detect(p);
    ADD_FAILURE();
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("model_type"), std::string::npos);
  }
  EXPECT_STREQ(family_name(Family::Clip), "clip");
  EXPECT_STREQ(family_name(Family::LlavaNext), "llava_next");
}

TEST(ModelDir, ResolvesHubCache) {
  auto cache = scratch_dir("hf_home");
  const auto snap = cache / "hub" / "models--BAAI--BGE-VL-base" / "snapshots" / "abc123";
  fs::create_directories(snap);
  fs::create_directories(cache / "hub" / "models--BAAI--BGE-VL-base" / "refs");
  write_bytes(cache / "hub" / "models--BAAI--BGE-VL-base" / "refs" / "main", "abc123\n");
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_HOME", cache.c_str(), 1);
  ::setenv("HF_HUB_OFFLINE", "1", 1);  // the cache only: never the real hub from a test
  EXPECT_EQ(fs::path(io::resolve_model_dir("BAAI/BGE-VL-base")), snap);
  EXPECT_EQ(fs::path(io::resolve_model_dir("BAAI/BGE-VL-base", "abc123")), snap);
  EXPECT_THROW(io::resolve_model_dir("BAAI/BGE-VL-large"), FileNotFoundError);
  EXPECT_THROW(io::resolve_model_dir("BAAI/BGE-VL-base", "v2"), FileNotFoundError);
  EXPECT_THROW(io::resolve_model_dir("/no/such/folder"), FileNotFoundError);
  EXPECT_THROW(io::resolve_model_dir(""), InvalidArgumentError);
  // a folder path wins over the cache
  EXPECT_EQ(io::resolve_model_dir(snap.string()), snap.string());
  io::HubAccess local;
  local.local_files_only = true;
  ::unsetenv("HF_HUB_OFFLINE");
  try {
    io::resolve_model_dir("BAAI/BGE-VL-large", "main", local);
    ADD_FAILURE();
  } catch (const FileNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("local_files_only"), std::string::npos) << e.what();
  }
  EXPECT_THROW(io::resolve_model_dir("BAAI/BGE-VL-base", "../../etc"), InvalidArgumentError);
  ::unsetenv("HF_HOME");
}
