// MistralTokenizer (BGE-VL-MLLM) against transformers 4.45.2 (tests/reference/
// gen_mistral_tokenizer_parity.py): ids for legacy=true and legacy=false, left-padded batches,
// tokenizer_config.json variants, and the errors. Every such check runs on two vocabularies: the
// project's tiny SentencePiece model (tests/fixtures/llava/tiny-llava-next-legacy/tokenizer.model,
// fixture mistral_tiny_parity.json), always, and the real Mistral tokenizer.model from
// BGEVL_SHARED_DATA_DIR (mistral_parity.json), skipped when that folder is absent. A few checks
// of known ids are for the real vocabulary only.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "bgevl/errors.h"
#include "test_files.h"
#include "text/mistral_tokenizer.h"

namespace fs = std::filesystem;
using bgevl::text::MistralTokenizer;
using bgevl::text::TokenBatch;
using json = nlohmann::json;

namespace {

struct Vocab {
  std::string name;
  std::string model;   // tokenizer.model
  std::string parity;  // the fixture of reference ids
  int64_t image, pad;  // the added tokens' ids
  bool available() const { return fs::is_regular_file(model); }
};

const Vocab& real_vocab() {
  static const Vocab v{"real", bgevl::test::shared_data("tokenizers/mistral/tokenizer.model"),
                       "tokenizer/mistral_parity.json", 32000, 32001};
  return v;
}
const Vocab& tiny_vocab() {
  static const Vocab v{"tiny",
                       bgevl::test::fixtures("llava/tiny-llava-next-legacy/tokenizer.model"),
                       "tokenizer/mistral_tiny_parity.json", 1200, 1201};
  return v;
}

const Vocab* g_vocab = &real_vocab();  // the vocabulary of the running test

#define SKIP_WITHOUT_MODEL()                                                             \
  do {                                                                                   \
    if (!g_vocab->available())                                                           \
      GTEST_SKIP() << "the Mistral tokenizer.model is not at " << g_vocab->model         \
                   << " (shared data folder absent; see ../shared/data/README.md); the " \
                   << "same checks run on the project's tiny vocabulary";                \
  } while (0)

// tokenizer_config.json as a BGE-VL-MLLM / llava-v1.6-mistral-7b-hf checkpoint has it
// (tests/reference/mistral_tokenizer_files.py writes the same for the Python side).
json tokenizer_config(bool legacy) {
  auto added = [](const std::string& content) {
    return json{{"content", content}, {"lstrip", false},      {"normalized", false},
                {"rstrip", false},    {"single_word", false}, {"special", true}};
  };
  return json{{"add_bos_token", true},
              {"add_eos_token", false},
              {"added_tokens_decoder",
               {{"0", added("<unk>")},
                {"1", added("<s>")},
                {"2", added("</s>")},
                {std::to_string(g_vocab->image), added("<image>")},
                {std::to_string(g_vocab->pad), added("<pad>")}}},
              {"additional_special_tokens", json::array()},
              {"bos_token", "<s>"},
              {"clean_up_tokenization_spaces", false},
              {"eos_token", "</s>"},
              {"legacy", legacy},
              {"model_max_length", 1e30},
              {"pad_token", "<pad>"},
              {"padding_side", "left"},
              {"processor_class", "LlavaNextProcessor"},
              {"sp_model_kwargs", json::object()},
              {"spaces_between_special_tokens", false},
              {"tokenizer_class", "LlamaTokenizer"},
              {"unk_token", "<unk>"},
              {"use_default_system_prompt", false}};
}

// A model folder in a scratch dir: a copy of tokenizer.model plus the given config files.
fs::path make_dir(const std::string& name, const json* config, bool with_model = true) {
  fs::path d = bgevl::test::scratch_dir("mistral_" + g_vocab->name + "_" + name);
  if (with_model) fs::copy_file(g_vocab->model, d / "tokenizer.model");
  if (config) bgevl::test::write_bytes(d / "tokenizer_config.json", config->dump(1));
  bgevl::test::write_bytes(d / "added_tokens.json",
                           json{{"<image>", g_vocab->image}, {"<pad>", g_vocab->pad}}.dump());
  return d;
}

MistralTokenizer load(bool legacy) {
  const json cfg = tokenizer_config(legacy);
  const fs::path d = make_dir(legacy ? "legacy" : "nonlegacy", &cfg);
  MistralTokenizer t = MistralTokenizer::from_dir(d.string());
  fs::remove_all(d);
  return t;
}

const json& parity() {
  static std::map<std::string, json> files;
  auto& j = files[g_vocab->parity];
  if (j.is_null()) j = bgevl::test::read_json(bgevl::test::fixtures(g_vocab->parity));
  return j;
}

std::string show(const std::string& s) { return json(s).dump(); }

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The checks that hold for any vocabulary, once per vocabulary.
class MistralVocab : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { g_vocab = GetParam() == "tiny" ? &tiny_vocab() : &real_vocab(); }
  void TearDown() override { g_vocab = &real_vocab(); }
};

}  // namespace

TEST(MistralTokenizer, HelloWorld) {
  SKIP_WITHOUT_MODEL();
  for (bool legacy : {true, false}) {
    MistralTokenizer t = load(legacy);
    EXPECT_EQ(t.legacy(), legacy);
    EXPECT_EQ(t.encode("Hello world"), (std::vector<int64_t>{1, 22557, 1526}));
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.pad_id(), 32001);
    EXPECT_EQ(t.added_token_id("<image>"), 32000);
    EXPECT_EQ(t.added_token_id("<pad>"), 32001);
    EXPECT_THROW(t.added_token_id("<query>"), bgevl::InvalidArgumentError);
    EXPECT_EQ(t.encode(""), (std::vector<int64_t>{1}));
  }
}

void check_parity(bool legacy) {
  SKIP_WITHOUT_MODEL();
  MistralTokenizer t = load(legacy);
  const std::string key = legacy ? "true" : "false";
  int checked = 0, prompts = 0, fast_checked = 0, failures = 0;
  for (const json& c : parity()["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto expected = c["slow"][key].get<std::vector<int64_t>>();
    const auto got = t.encode(text);
    if (got != expected && ++failures <= 25) {
      ADD_FAILURE() << "legacy=" << key << " " << c["name"].get<std::string>() << " " << show(text)
                    << "\n  expected " << json(expected).dump() << "\n  got      "
                    << json(got).dump();
    }
    ++checked;
    if (c["name"].get<std::string>().rfind("prompt", 0) == 0) ++prompts;
    // Where the fast tokenizer agrees with the slow one, that is checked as well (same ids).
    if (c.contains("fast") && c["fast"].contains(key) && c["fast"][key] == c["slow"][key])
      ++fast_checked;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GE(checked, 280);
  EXPECT_GE(prompts, 60);
  std::cout << "[ legacy=" << key << " ] " << checked << " cases (" << prompts
            << " prompts) match the slow "
            << "tokenizer; the fast one agrees on " << fast_checked << " of them\n";
}

TEST_P(MistralVocab, ParityLegacy) { check_parity(true); }
TEST_P(MistralVocab, ParityNonLegacy) { check_parity(false); }

TEST_P(MistralVocab, FixtureSlowFastAgreement) {
  // With legacy=true (what BGE-VL-MLLM ships) the fast tokenizer agrees with the slow one on
  // every case; with either setting, on every prompt template.
  int n = 0;
  for (const json& c : parity()["cases"]) {
    if (!c.contains("fast")) continue;
    ++n;
    EXPECT_EQ(c["fast"]["true"], c["slow"]["true"]) << show(c["text"].get<std::string>());
    if (c["name"].get<std::string>().rfind("prompt", 0) == 0) {
      EXPECT_EQ(c["fast"]["false"], c["slow"]["false"]) << show(c["text"].get<std::string>());
    }
  }
  EXPECT_GT(n, 0) << "the fixture has no fast ids";
}

TEST_P(MistralVocab, BatchesLeftPadded) {
  SKIP_WITHOUT_MODEL();
  MistralTokenizer tl = load(true);
  MistralTokenizer tn = load(false);
  int n = 0;
  for (const json& b : parity()["batches"]) {
    const MistralTokenizer& t = b["legacy"].get<bool>() ? tl : tn;
    const auto texts = b["texts"].get<std::vector<std::string>>();
    const TokenBatch got = t.encode_batch(texts);
    const auto ids = b["input_ids"].get<std::vector<std::vector<int64_t>>>();
    const auto mask = b["attention_mask"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(got.rows, static_cast<int64_t>(ids.size()));
    ASSERT_EQ(got.length, static_cast<int64_t>(ids[0].size()));
    std::vector<int64_t> flat_ids, flat_mask;
    for (const auto& r : ids) flat_ids.insert(flat_ids.end(), r.begin(), r.end());
    for (const auto& r : mask) flat_mask.insert(flat_mask.end(), r.begin(), r.end());
    EXPECT_EQ(got.input_ids, flat_ids) << b["texts"].dump();
    EXPECT_EQ(got.attention_mask, flat_mask) << b["texts"].dump();
    ++n;
  }
  EXPECT_GE(n, 4);
  if (g_vocab != &real_vocab()) return;

  const TokenBatch b = tl.encode_batch({"Hello world", "Hello"});
  ASSERT_EQ(b.rows, 2);
  ASSERT_EQ(b.length, 3);
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{1, 22557, 1526, 32001, 1, 22557}));
  EXPECT_EQ(b.attention_mask, (std::vector<int64_t>{1, 1, 1, 0, 1, 1}));
}

TEST_P(MistralVocab, EmptyBatchIsAnError) {
  SKIP_WITHOUT_MODEL();
  MistralTokenizer t = load(true);
  EXPECT_THROW(t.encode_batch({}), bgevl::InvalidArgumentError);
}

TEST_P(MistralVocab, InvalidUtf8IsAnError) {
  SKIP_WITHOUT_MODEL();
  MistralTokenizer t = load(true);
  EXPECT_THROW(t.encode(std::string("abc\xff")), bgevl::InvalidArgumentError);
}

TEST_P(MistralVocab, MissingFolderOrModel) {
  EXPECT_THROW(MistralTokenizer::from_dir("/nonexistent/bgevl/mistral"), bgevl::FileNotFoundError);
  const json cfg = tokenizer_config(true);
  const fs::path d = make_dir("nomodel", &cfg, /*with_model=*/false);
  const std::string msg = error_of([&] { MistralTokenizer::from_dir(d.string()); });
  EXPECT_NE(msg.find("tokenizer.model"), std::string::npos) << msg;
  EXPECT_THROW(MistralTokenizer::from_dir(d.string()), bgevl::FileNotFoundError);
  fs::remove_all(d);
}

TEST_P(MistralVocab, CorruptModel) {
  const json cfg = tokenizer_config(true);
  const fs::path d = make_dir("corrupt", &cfg, /*with_model=*/false);
  for (bool legacy : {true, false}) {
    const json c = tokenizer_config(legacy);
    bgevl::test::write_bytes(d / "tokenizer_config.json", c.dump());
    for (const std::string& bytes : {std::string("this is not a sentencepiece model"),
                                     std::string(), std::string("\x0a\x05\x0a\x03", 4)}) {
      bgevl::test::write_bytes(d / "tokenizer.model", bytes);
      EXPECT_THROW(MistralTokenizer::from_dir(d.string()), bgevl::InvalidArgumentError);
      const std::string msg = error_of([&] { MistralTokenizer::from_dir(d.string()); });
      EXPECT_NE(msg.find((d / "tokenizer.model").string()), std::string::npos) << msg;
    }
  }
  fs::remove_all(d);
}

TEST_P(MistralVocab, MalformedConfig) {
  SKIP_WITHOUT_MODEL();
  const fs::path d = make_dir("badcfg", nullptr);
  for (const std::string& bad :
       {std::string("{not json"), std::string("[1, 2]"), std::string(R"({"legacy": "yes"})"),
        std::string(R"({"added_tokens_decoder": {"x": {"content": "<image>"}}})"),
        std::string(R"({"added_tokens_decoder": {"32000": {"lstrip": false}}})"),
        std::string(R"({"bos_token": 5})")}) {
    bgevl::test::write_bytes(d / "tokenizer_config.json", bad);
    EXPECT_THROW(MistralTokenizer::from_dir(d.string()), bgevl::InvalidArgumentError) << bad;
    const std::string msg = error_of([&] { MistralTokenizer::from_dir(d.string()); });
    EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  }
  fs::remove_all(d);
}

TEST_P(MistralVocab, OlderFilesWithoutAddedTokensDecoder) {
  // No added_tokens_decoder: transformers takes the special tokens from special_tokens_map.json and
  // the added tokens from added_tokens.json. The ids are the same.
  SKIP_WITHOUT_MODEL();
  const json cfg = {{"legacy", true}, {"tokenizer_class", "LlamaTokenizer"}};
  const fs::path d = make_dir("older", &cfg);
  bgevl::test::write_bytes(
      d / "special_tokens_map.json",
      R"({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})");
  MistralTokenizer t = MistralTokenizer::from_dir(d.string());
  EXPECT_EQ(t.pad_id(), g_vocab->pad);
  EXPECT_EQ(t.encode("[INST]  <image> [/INST]"), load(true).encode("[INST]  <image> [/INST]"));
  EXPECT_EQ(t.encode("a <pad> b <s>"), load(true).encode("a <pad> b <s>"));
  fs::remove_all(d);
}

TEST(MistralTokenizer, ImageTokenAdjacency) {
  // The text on each side of <image> is encoded on its own. legacy=true: " [/INST]" gets
  // SentencePiece's dummy prefix, so "▁" (28705) + "▁[" (733); legacy=false: just "▁[".
  SKIP_WITHOUT_MODEL();
  MistralTokenizer t = load(true);
  EXPECT_EQ(
      t.encode("[INST]  <image> [/INST]"),
      (std::vector<int64_t>{1, 733, 16289, 28793, 259, 32000, 28705, 733, 28748, 16289, 28793}));
  MistralTokenizer n = load(false);
  EXPECT_EQ(n.encode("[INST]  <image> [/INST]"),
            (std::vector<int64_t>{1, 733, 16289, 28793, 259, 32000, 733, 28748, 16289, 28793}));
}

TEST(MistralTokenizer, ImageTokenAdjacencyTiny) {
  // The same rule on the tiny vocabulary (ids from mistral_tiny_parity.json's prompts): with
  // legacy=true " [/INST]" after <image> starts with the dummy-prefix piece.
  g_vocab = &tiny_vocab();
  const auto t = load(true), n = load(false);
  g_vocab = &real_vocab();
  const auto a = t.encode("[INST]  <image> [/INST]"), b = n.encode("[INST]  <image> [/INST]");
  ASSERT_GE(a.size(), 5u);
  ASSERT_GE(b.size(), 5u);
  EXPECT_EQ(std::vector<int64_t>(a.end() - 5, a.end()),
            (std::vector<int64_t>{1200, 259, 272, 264, 1075}));
  EXPECT_EQ(std::vector<int64_t>(b.end() - 5, b.end()),
            (std::vector<int64_t>{1200, 271, 1081, 264, 1075}));
}

TEST_P(MistralVocab, TokenizerJsonDecidesLegacy) {
  // transformers' LlamaTokenizerFast loads tokenizer.json as it is: its normalizer, not the
  // config's `legacy`, decides (unless add_prefix_space is set, which rebuilds from the slow one).
  SKIP_WITHOUT_MODEL();
  const std::string prompt = "[INST]  <image> [/INST]";
  const auto legacy_ids = load(true).encode(prompt);
  ASSERT_NE(legacy_ids, load(false).encode(prompt));
  const json legacy_json = {
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}}, {{"type", "Replace"}}}}}},
      {"pre_tokenizer", nullptr}};
  const json metaspace_json = {
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}}}};
  json cfg = tokenizer_config(false);
  fs::path d = make_dir("fast_legacy", &cfg);
  bgevl::test::write_bytes(d / "tokenizer.json", legacy_json.dump());
  auto t = MistralTokenizer::from_dir(d.string());
  EXPECT_TRUE(t.legacy());
  EXPECT_EQ(t.encode(prompt), legacy_ids);
  cfg = tokenizer_config(true);
  d = make_dir("fast_nonlegacy", &cfg);
  bgevl::test::write_bytes(d / "tokenizer.json", metaspace_json.dump());
  EXPECT_FALSE(MistralTokenizer::from_dir(d.string()).legacy());
  cfg["add_prefix_space"] = true;  // rebuilt from the slow tokenizer: the config decides again
  bgevl::test::write_bytes(d / "tokenizer_config.json", cfg.dump());
  EXPECT_TRUE(MistralTokenizer::from_dir(d.string()).legacy());
}

TEST_P(MistralVocab, ConfigVariants) {
  // Other tokenizer_config.json settings (additional_special_tokens, add_prefix_space, lstrip /
  // rstrip / single_word on <image>, add_bos/eos_token, legacy unset), against the slow tokenizer.
  SKIP_WITHOUT_MODEL();
  int n = 0, failures = 0;
  for (const json& v : parity()["variants"]) {
    const json cfg = v["tokenizer_config"];
    const fs::path d = make_dir("variant", &cfg);
    MistralTokenizer t = MistralTokenizer::from_dir(d.string());
    fs::remove_all(d);
    for (std::size_t i = 0; i < v["texts"].size(); ++i) {
      const std::string text = v["texts"][i].get<std::string>();
      const auto expected = v["ids"][i].get<std::vector<int64_t>>();
      const auto got = t.encode(text);
      if (got != expected && ++failures <= 25)
        ADD_FAILURE() << v["name"].get<std::string>() << " " << show(text) << "\n  expected "
                      << json(expected).dump() << "\n  got      " << json(got).dump();
      ++n;
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GE(n, 500);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, MistralVocab, ::testing::Values("tiny", "real"),
                         [](const auto& info) { return info.param; });
