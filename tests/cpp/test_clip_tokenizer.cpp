// Tests of the CLIP tokenizer: id parity with the Hugging Face fast tokenizer on the fixture
// written by tests/reference/gen_clip_tokenizer_parity.mjs (needs the shared CLIP vocabulary),
// plus batching, errors and the BPE details on small vocabularies written here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bgevl/errors.h"
#include "text/clip_tokenizer.h"

namespace {

namespace fs = std::filesystem;
using bgevl::text::ClipTokenizer;
using bgevl::text::TokenBatch;

constexpr int64_t kBos = 49406;
constexpr int64_t kEos = 49407;

std::string clip_dir() { return std::string(BGEVL_SHARED_DATA_DIR) + "/tokenizers/clip"; }

bool have_clip_vocab() {
  return fs::is_regular_file(clip_dir() + "/vocab.json") &&
         fs::is_regular_file(clip_dir() + "/merges.txt");
}

#define SKIP_WITHOUT_CLIP_VOCAB()                                                        \
  do {                                                                                   \
    if (!have_clip_vocab()) {                                                            \
      GTEST_SKIP() << "the shared CLIP vocabulary is not here (" << clip_dir()           \
                   << "/vocab.json, merges.txt): it lives in ../shared/data beside the " \
                      "checkout, which only CI and the developers have";                 \
    }                                                                                    \
  } while (0)

const ClipTokenizer& clip() {
  static const ClipTokenizer tok = ClipTokenizer::from_dir(clip_dir());
  return tok;
}

// A scratch folder removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("bgevl_tok_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    const fs::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// A small vocabulary with non-contiguous ids and the special tokens at 49406/49407.
const char* kTinyVocab = R"({
  "a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5,
  "ab": 6, "abc</w>": 7, "bc</w>": 8, "!</w>": 9,
  "<|startoftext|>": 49406, "<|endoftext|>": 49407
})";

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---- parity with the reference -----------------------------------------------------------------

TEST(ClipTokenizerParity, MatchesHuggingFaceFastTokenizerOnEveryFixtureCase) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const std::string path = std::string(BGEVL_FIXTURES_DIR) + "/tokenizer/clip_parity.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing fixture " << path;
  const nlohmann::json doc = nlohmann::json::parse(in);
  const auto& cases = doc.at("cases");
  ASSERT_GE(cases.size(), 250u);
  std::size_t mismatches = 0;
  std::size_t longer_than_77 = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const std::vector<int64_t> expected = c.at("ids").get<std::vector<int64_t>>();
    const std::vector<int64_t> got = clip().encode(text);
    if (got != expected) {
      ++mismatches;
      ADD_FAILURE() << "ids differ for text " << nlohmann::json(text).dump() << ": got "
                    << nlohmann::json(got).dump() << ", expected "
                    << nlohmann::json(expected).dump();
    }
    if (expected.size() > 77) ++longer_than_77;
  }
  EXPECT_EQ(mismatches, 0u) << "of " << cases.size() << " cases";
  EXPECT_GE(longer_than_77, 3u) << "the fixture should hold texts longer than the context";
}

TEST(ClipTokenizerParity, BatchOfFixtureCasesEqualsSingleEncodes) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const std::string path = std::string(BGEVL_FIXTURES_DIR) + "/tokenizer/clip_parity.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing fixture " << path;
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<std::string> texts;
  for (const auto& c : doc.at("cases")) texts.push_back(c.at("text").get<std::string>());
  const TokenBatch batch = clip().encode_batch(texts, /*truncate=*/true, 77);
  ASSERT_EQ(batch.rows, static_cast<int64_t>(texts.size()));
  ASSERT_EQ(batch.length, 77);
  for (std::size_t r = 0; r < texts.size(); ++r) {
    std::vector<int64_t> want = doc["cases"][r]["ids"].get<std::vector<int64_t>>();
    if (want.size() > 77) {
      want.resize(77);
      want.back() = kEos;
    }
    std::vector<int64_t> got(batch.input_ids.begin() + r * 77,
                             batch.input_ids.begin() + r * 77 + static_cast<int64_t>(want.size()));
    EXPECT_EQ(got, want) << "row " << r;
    for (std::size_t k = 0; k < 77; ++k) {
      EXPECT_EQ(batch.attention_mask[r * 77 + k], k < want.size() ? 1 : 0)
          << "row " << r << " col " << k;
      if (k >= want.size()) {
        EXPECT_EQ(batch.input_ids[r * 77 + k], kEos);
      }
    }
  }
}

TEST(ClipTokenizer, KnownExample) {
  SKIP_WITHOUT_CLIP_VOCAB();
  EXPECT_EQ(clip().encode("a photo of a cat"),
            (std::vector<int64_t>{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(clip().bos_id(), kBos);
  EXPECT_EQ(clip().eos_id(), kEos);
  EXPECT_EQ(clip().pad_id(), kEos);
  EXPECT_EQ(clip().vocab_size(), 49408);
}

TEST(ClipTokenizer, FromFilesEqualsFromDir) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const ClipTokenizer tok =
      ClipTokenizer::from_files(clip_dir() + "/vocab.json", clip_dir() + "/merges.txt");
  for (const char* text : {"a photo of a cat", "İstanbul Straße 😀 <|endoftext|>", ""}) {
    EXPECT_EQ(tok.encode(text), clip().encode(text)) << text;
  }
}

TEST(ClipTokenizer, CaseWhitespaceAndSpecialTokens) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const auto base = clip().encode("a photo of a cat");
  // Lower-casing and whitespace collapsing happen before BPE.
  EXPECT_EQ(clip().encode("A PHOTO\tof\n\u00a0a   Cat "), base);
  // The special tokens are found in the normalized text.
  EXPECT_EQ(clip().encode("<|endoftext|>"), (std::vector<int64_t>{kBos, kEos, kEos}));
  EXPECT_EQ(clip().encode("<|ENDOFTEXT|>"), (std::vector<int64_t>{kBos, kEos, kEos}));
  EXPECT_EQ(clip().encode(""), (std::vector<int64_t>{kBos, kEos}));
  EXPECT_EQ(clip().encode(" \t\n "), (std::vector<int64_t>{kBos, kEos}));
}

TEST(ClipTokenizer, BatchPadsOnTheRightWithMask) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const TokenBatch b = clip().encode_batch({"a photo of a cat", "a dog", ""});
  ASSERT_EQ(b.rows, 3);
  ASSERT_EQ(b.length, 7);
  ASSERT_EQ(b.input_ids.size(), 21u);
  ASSERT_EQ(b.attention_mask.size(), 21u);
  const std::vector<int64_t> dog = clip().encode("a dog");
  ASSERT_EQ(dog.size(), 4u);
  const std::vector<int64_t> ids(b.input_ids.begin(), b.input_ids.end());
  const std::vector<int64_t> mask(b.attention_mask.begin(), b.attention_mask.end());
  EXPECT_EQ(ids, (std::vector<int64_t>{49406, 320,    1125,   539,   320,  2368, 49407,  //
                                       49406, dog[1], dog[2], 49407, kEos, kEos, kEos,   //
                                       49406, 49407,  kEos,   kEos,  kEos, kEos, kEos}));
  EXPECT_EQ(mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1,  //
                                        1, 1, 1, 1, 0, 0, 0,  //
                                        1, 1, 0, 0, 0, 0, 0}));
}

TEST(ClipTokenizer, TooLongTextErrorsUnlessTruncated) {
  SKIP_WITHOUT_CLIP_VOCAB();
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "word ";
  const std::vector<int64_t> full = clip().encode(long_text);
  ASSERT_EQ(full.size(), 102u);  // "word" is one token
  const std::vector<std::string> texts{"a photo of a cat", long_text};

  const std::string msg = message_of([&] { clip().encode_batch(texts); });
  EXPECT_THROW(clip().encode_batch(texts), bgevl::InvalidArgumentError);
  EXPECT_NE(msg.find("text 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("102"), std::string::npos) << msg;
  EXPECT_NE(msg.find("77"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncate"), std::string::npos) << msg;

  const TokenBatch b = clip().encode_batch(texts, /*truncate=*/true);
  ASSERT_EQ(b.rows, 2);
  ASSERT_EQ(b.length, 77);
  const std::vector<int64_t> row1(b.input_ids.begin() + 77, b.input_ids.end());
  std::vector<int64_t> want(full.begin(), full.begin() + 76);
  want.push_back(kEos);
  EXPECT_EQ(row1, want);
  EXPECT_EQ(row1.back(), kEos);
  for (int k = 0; k < 77; ++k) EXPECT_EQ(b.attention_mask[77 + k], 1);
  // Row 0 is padded to 77.
  EXPECT_EQ(b.attention_mask[6], 1);
  EXPECT_EQ(b.attention_mask[7], 0);
  EXPECT_EQ(b.input_ids[7], kEos);

  // Exactly max_length fits; other limits are honoured.
  EXPECT_NO_THROW(clip().encode_batch({long_text}, false, 102));
  EXPECT_THROW(clip().encode_batch({long_text}, false, 101), bgevl::InvalidArgumentError);
  const TokenBatch b10 = clip().encode_batch({long_text}, true, 10);
  EXPECT_EQ(b10.length, 10);
  EXPECT_EQ(b10.input_ids.back(), kEos);
  EXPECT_EQ(b10.input_ids.front(), kBos);
  EXPECT_THROW(clip().encode_batch({"a"}, true, 1), bgevl::InvalidArgumentError);
}

TEST(ClipTokenizer, EmptyBatchIsAnError) {
  SKIP_WITHOUT_CLIP_VOCAB();
  EXPECT_THROW(clip().encode_batch({}), bgevl::InvalidArgumentError);
}

TEST(ClipTokenizer, ConcurrentEncodesAgree) {
  SKIP_WITHOUT_CLIP_VOCAB();
  const ClipTokenizer tok = ClipTokenizer::from_dir(clip_dir());  // a cold cache
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) {
    texts.push_back("caption number " + std::to_string(i * 7919) + " of a café in İzmir, w" +
                    std::string(static_cast<std::size_t>(i % 13 + 1), 'o') + "w!");
  }
  std::vector<std::vector<int64_t>> want;
  for (const auto& t : texts) want.push_back(clip().encode(t));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < texts.size(); ++i) {
        const std::size_t k = (i + static_cast<std::size_t>(t) * 97) % texts.size();
        if (tok.encode(texts[k]) != want[k]) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(ClipTokenizer, InvalidUtf8IsAnError) {
  SKIP_WITHOUT_CLIP_VOCAB();
  EXPECT_THROW(clip().encode("abc\xff"), bgevl::InvalidArgumentError);
  EXPECT_THROW(clip().encode("\xc3"), bgevl::InvalidArgumentError);
  EXPECT_THROW(clip().encode("\xed\xa0\x80"), bgevl::InvalidArgumentError);  // a surrogate
  const std::string msg = message_of([] { clip().encode_batch({"ok", "bad \xc0\xaf"}); });
  EXPECT_NE(msg.find("text 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
}

// ---- small vocabularies: BPE details, loading and errors ---------------------------------------

TEST(ClipTokenizerTiny, NonContiguousIdsMergesAndUnknowns) {
  TempDir dir;
  dir.file("vocab.json", kTinyVocab);
  dir.file("merges.txt", "#version: 0.2\na b\nab c</w>\n");
  const ClipTokenizer tok = ClipTokenizer::from_dir(dir.str());
  EXPECT_EQ(tok.vocab_size(), 12);
  EXPECT_EQ(tok.bos_id(), kBos);
  EXPECT_EQ(tok.eos_id(), kEos);
  EXPECT_EQ(tok.pad_id(), kEos);
  EXPECT_EQ(tok.encode("abc"), (std::vector<int64_t>{kBos, 7, kEos}));
  EXPECT_EQ(tok.encode("ABC"), (std::vector<int64_t>{kBos, 7, kEos}));
  // "b</w>" has no merge with "a": the end-of-word form is a different symbol.
  EXPECT_EQ(tok.encode("ab"), (std::vector<int64_t>{kBos, 0, 4, kEos}));
  EXPECT_EQ(tok.encode("abcab"), (std::vector<int64_t>{kBos, 6, 2, 0, 4, kEos}));
  EXPECT_EQ(tok.encode("abc abc"), (std::vector<int64_t>{kBos, 7, 7, kEos}));
  EXPECT_EQ(tok.encode("abc!"), (std::vector<int64_t>{kBos, 7, 9, kEos}));
  // Characters without a token become the unknown token (<|endoftext|>) one by one.
  EXPECT_EQ(tok.encode("x"), (std::vector<int64_t>{kBos, kEos, kEos}));
  EXPECT_EQ(tok.encode("axb"), (std::vector<int64_t>{kBos, 0, kEos, 4, kEos}));
  EXPECT_EQ(tok.encode("é"), (std::vector<int64_t>{kBos, kEos, kEos, kEos}));  // two bytes
}

TEST(ClipTokenizerTiny, MergesApplyByRankNotByPosition) {
  TempDir dir;
  const std::string vocab = dir.file("vocab.json", kTinyVocab);
  // "b c</w>" has the better rank, so "abc" becomes a + bc</w>, not ab + c</w>.
  const std::string merges = dir.file("merges.txt", "#version: 0.2\nb c</w>\na b\n");
  const ClipTokenizer tok = ClipTokenizer::from_files(vocab, merges);
  EXPECT_EQ(tok.encode("abc"), (std::vector<int64_t>{kBos, 0, 8, kEos}));
  // With the other order the left pair wins.
  const std::string merges2 = dir.file("merges2.txt", "#version: 0.2\na b\nb c</w>\n");
  EXPECT_EQ(ClipTokenizer::from_files(vocab, merges2).encode("abc"),
            (std::vector<int64_t>{kBos, 6, 5, kEos}));
}

TEST(ClipTokenizerTiny, FirstLineOfMergesIsAlwaysAHeader) {
  // The slow CLIPTokenizer (and so the converted fast one) drops line 0 of merges.txt.
  TempDir dir;
  const std::string vocab = dir.file("vocab.json", kTinyVocab);
  const std::string merges = dir.file("merges.txt", "a b\nab c</w>\n");
  EXPECT_EQ(ClipTokenizer::from_files(vocab, merges).encode("abc"),
            (std::vector<int64_t>{kBos, 0, 1, 5, kEos}));
  // CRLF line ends and a repeated merge are fine.
  const std::string crlf = dir.file("crlf.txt", "#version: 0.2\r\na b\r\na b\r\nab c</w>\r\n");
  EXPECT_EQ(ClipTokenizer::from_files(vocab, crlf).encode("abc"),
            (std::vector<int64_t>{kBos, 7, kEos}));
}

TEST(ClipTokenizerTiny, SpecialTokensFromConfigFiles) {
  TempDir dir;
  dir.file("vocab.json",
           R"({"a": 5, "a</w>": 6, "<s>": 100, "</s>": 101, "<pad>": 102, "<|endoftext|>": 7})");
  dir.file("merges.txt", "#version: 0.2\n");
  dir.file("tokenizer_config.json",
           R"({"bos_token": "<s>", "eos_token": {"content": "</s>", "normalized": false},
               "pad_token": "</s>", "unk_token": "<|endoftext|>",
               "added_tokens_decoder": {"101": {"content": "</s>", "normalized": true,
                                                "lstrip": false, "rstrip": false,
                                                "single_word": false, "special": true}}})");
  // special_tokens_map.json wins over tokenizer_config.json.
  dir.file("special_tokens_map.json",
           R"({"pad_token": {"content": "<pad>", "normalized": false}})");
  const ClipTokenizer tok = ClipTokenizer::from_dir(dir.str());
  EXPECT_EQ(tok.bos_id(), 100);
  EXPECT_EQ(tok.eos_id(), 101);
  EXPECT_EQ(tok.pad_id(), 102);
  EXPECT_EQ(tok.encode("a"), (std::vector<int64_t>{100, 6, 101}));
  // </s> is normalized (added_tokens_decoder wins), so it is found after lower-casing.
  EXPECT_EQ(tok.encode("a</S>a"), (std::vector<int64_t>{100, 6, 101, 6, 101}));
  // <pad> is not normalized: found in the raw text only.
  EXPECT_EQ(tok.encode("<pad>"), (std::vector<int64_t>{100, 102, 101}));
  const std::vector<int64_t> upper = tok.encode("<PAD>");
  EXPECT_GT(upper.size(), 3u);
  EXPECT_EQ(std::count(upper.begin(), upper.end(), 102), 0);
  const TokenBatch b = tok.encode_batch({"a a", "a"});
  EXPECT_EQ(b.input_ids, (std::vector<int64_t>{100, 6, 6, 101, 100, 6, 101, 102}));
}

TEST(ClipTokenizerErrors, MissingFilesAreFileNotFound) {
  TempDir dir;
  const std::string vocab = dir.file("vocab.json", kTinyVocab);
  const std::string merges = dir.file("merges.txt", "#version: 0.2\na b\n");
  EXPECT_THROW(ClipTokenizer::from_files(dir.str() + "/nope.json", merges),
               bgevl::FileNotFoundError);
  EXPECT_THROW(ClipTokenizer::from_files(vocab, dir.str() + "/nope.txt"), bgevl::FileNotFoundError);
  EXPECT_THROW(ClipTokenizer::from_dir(dir.str() + "/no_such_folder"), bgevl::FileNotFoundError);
  const std::string msg =
      message_of([&] { ClipTokenizer::from_files(dir.str() + "/nope.json", merges); });
  EXPECT_NE(msg.find("nope.json"), std::string::npos) << msg;

  TempDir only_vocab;
  only_vocab.file("vocab.json", kTinyVocab);
  const std::string msg2 = message_of([&] { ClipTokenizer::from_dir(only_vocab.str()); });
  EXPECT_THROW(ClipTokenizer::from_dir(only_vocab.str()), bgevl::FileNotFoundError);
  EXPECT_NE(msg2.find("merges.txt"), std::string::npos) << msg2;
}

TEST(ClipTokenizerErrors, CorruptVocabIsInvalidArgument) {
  TempDir dir;
  const std::string merges = dir.file("merges.txt", "#version: 0.2\na b\n");
  for (const std::string& bad :
       {std::string("{\"a\": 0, "), std::string("[1, 2, 3]"), std::string("{\"a\": \"zero\"}"),
        std::string("{\"a\": -1}"), std::string("{}"), std::string("")}) {
    const std::string vocab = dir.file("vocab.json", bad);
    EXPECT_THROW(ClipTokenizer::from_files(vocab, merges), bgevl::InvalidArgumentError) << bad;
    const std::string msg = message_of([&] { ClipTokenizer::from_files(vocab, merges); });
    EXPECT_NE(msg.find("vocab.json"), std::string::npos) << msg;
  }
  // The special tokens must be in the vocabulary.
  const std::string no_specials = dir.file("v2.json", R"({"a": 0, "b": 1, "ab": 2})");
  const std::string msg = message_of([&] { ClipTokenizer::from_files(no_specials, merges); });
  EXPECT_THROW(ClipTokenizer::from_files(no_specials, merges), bgevl::InvalidArgumentError);
  EXPECT_NE(msg.find("<|startoftext|>"), std::string::npos) << msg;
}

TEST(ClipTokenizerErrors, CorruptMergesIsInvalidArgument) {
  TempDir dir;
  const std::string vocab = dir.file("vocab.json", kTinyVocab);
  struct Case {
    const char* merges;
    const char* expect_in_message;
  };
  for (const Case& c :
       {Case{"#version: 0.2\na b c\n", "line 2"}, Case{"#version: 0.2\na b\nlonely\n", "line 3"},
        Case{"#version: 0.2\na z\n", "'z'"}, Case{"#version: 0.2\nb a\n", "'ba'"},
        Case{"#version: 0.2\na b\n\nab c</w>\n", "line 3"},
        Case{"#version: 0.2\n\xff\xfe b\n", "UTF-8"}}) {
    const std::string merges = dir.file("merges.txt", c.merges);
    EXPECT_THROW(ClipTokenizer::from_files(vocab, merges), bgevl::InvalidArgumentError) << c.merges;
    const std::string msg = message_of([&] { ClipTokenizer::from_files(vocab, merges); });
    EXPECT_NE(msg.find(c.expect_in_message), std::string::npos) << msg;
  }
}

TEST(ClipTokenizerErrors, CorruptConfigIsInvalidArgument) {
  TempDir dir;
  dir.file("vocab.json", kTinyVocab);
  dir.file("merges.txt", "#version: 0.2\n");
  dir.file("tokenizer_config.json", "{not json");
  EXPECT_THROW(ClipTokenizer::from_dir(dir.str()), bgevl::InvalidArgumentError);
  dir.file("tokenizer_config.json", R"({"bos_token": 3})");
  EXPECT_THROW(ClipTokenizer::from_dir(dir.str()), bgevl::InvalidArgumentError);
  dir.file("tokenizer_config.json", R"({"pad_token": "<pad>"})");  // not in vocab.json
  const std::string msg = message_of([&] { ClipTokenizer::from_dir(dir.str()); });
  EXPECT_NE(msg.find("<pad>"), std::string::npos) << msg;
}

}  // namespace
