// Retrieval: metrics (hand-computed answers), the .npy and SHA-256 helpers, gallery listing,
// building, opening and searching an index with the bundled model, and FAISS's ANN recall.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "bgevl/bgevl.h"
#include "io/npy.h"
#include "retrieval/store.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string tmpdir(const std::string& name) { return bgevl::test::scratch_dir(name).string(); }

void write(const std::string& path, const std::string& s) {
  fs::create_directories(fs::path(path).parent_path());
  bgevl::test::write_bytes(path, s);
}

const std::string kModel = BGEVL_MODELS_DIR "/bgevl-tiny-clip";
const std::string kGallery = BGEVL_MODELS_DIR "/gallery";

// A small gallery: six images of the bundled gallery, a copy of one (a duplicate), a corrupt
// file and an empty one.
std::string small_gallery(const std::string& name) {
  const std::string d = tmpdir(name);
  std::vector<fs::path> src;
  for (const auto& e : fs::recursive_directory_iterator(kGallery))
    if (e.is_regular_file()) src.push_back(e.path());
  std::sort(src.begin(), src.end());
  for (size_t i = 0; i < 6; ++i)
    fs::copy_file(src[i * 7], fs::path(d) / ("img" + std::to_string(i) + ".png"));
  fs::create_directories(fs::path(d) / "sub");
  fs::copy_file(src[0], fs::path(d) / "sub" / "copy_of_img0.png");
  write(d + "/broken.png", "\x89PNG\r\n\x1a\n not really a png");
  write(d + "/empty.jpg", "");
  write(d + "/notes.txt", "not an image: not listed");
  return d;
}

}  // namespace

TEST(Metrics, RecallAndAveragePrecisionByHand) {
  const std::vector<std::string> ranked = {"a", "b", "c", "d", "e"};
  const std::vector<std::string> targets = {"b", "d", "x"};
  EXPECT_EQ(bgevl::recall_at_k(ranked, targets, 1), 0.0);
  EXPECT_EQ(bgevl::recall_at_k(ranked, targets, 2), 1.0);
  EXPECT_EQ(bgevl::recall_at_k(ranked, {"z"}, 5), 0.0);
  // AP@k = sum of precision@r at the relevant ranks r <= k, / min(k, |targets|).
  EXPECT_DOUBLE_EQ(bgevl::average_precision_at_k(ranked, targets, 1), 0.0);
  EXPECT_DOUBLE_EQ(bgevl::average_precision_at_k(ranked, targets, 2), (1.0 / 2) / 2);
  EXPECT_DOUBLE_EQ(bgevl::average_precision_at_k(ranked, targets, 5), (1.0 / 2 + 2.0 / 4) / 3);
  EXPECT_DOUBLE_EQ(bgevl::average_precision_at_k(ranked, {"a"}, 5), 1.0);
  EXPECT_DOUBLE_EQ(bgevl::average_precision_at_k(ranked, {"a", "b"}, 1), 1.0);
  EXPECT_THROW(bgevl::recall_at_k(ranked, targets, 0), bgevl::InvalidArgumentError);
}

TEST(IoHelpers, Sha256KnownAnswers) {
  EXPECT_EQ(bgevl::io::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(bgevl::io::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(bgevl::io::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(IoHelpers, NpyRoundTripAndCorruption) {
  const std::string d = tmpdir("npy");
  const auto t = torch::randn({5, 3});
  for (auto dt : {torch::kFloat32, torch::kHalf}) {
    const std::string p = d + "/a.npy";
    bgevl::io::AtomicFile f(p);
    bgevl::io::write_npy(f, t, dt);
    f.commit();
    const auto back = bgevl::io::map_npy(p);
    EXPECT_EQ(back.scalar_type(), dt);
    EXPECT_TRUE(torch::equal(back.to(torch::kFloat32), t.to(dt).to(torch::kFloat32)));
  }
  const std::string good = bgevl::test::read_bytes(d + "/a.npy");
  write(d + "/short.npy", good.substr(0, good.size() - 2));
  EXPECT_THROW(bgevl::io::map_npy(d + "/short.npy"), bgevl::InvalidArgumentError);
  write(d + "/junk.npy", "hello");
  EXPECT_THROW(bgevl::io::map_npy(d + "/junk.npy"), bgevl::InvalidArgumentError);
  EXPECT_THROW(bgevl::io::map_npy(d + "/absent.npy"), bgevl::FileNotFoundError);
}

TEST(Gallery, FolderAndManifest) {
  const std::string d = small_gallery("gallery");
  const auto es = bgevl::list_gallery(d);
  std::vector<std::string> ids;
  for (const auto& e : es) ids.push_back(e.id);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"broken.png", "empty.jpg", "img0.png", "img1.png", "img2.png",
                                      "img3.png", "img4.png", "img5.png", "sub/copy_of_img0.png"}));
  EXPECT_TRUE(fs::path(es[0].path).is_absolute());
  write(d + "/m.jsonl",
        "{\"id\": \"x\", \"path\": \"img1.png\", \"caption\": \"a caption\"}\n\n{\"path\": "
        "\"img2.png\"}\n");
  const auto m = bgevl::list_gallery(d + "/m.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].id, "x");
  EXPECT_EQ(*m[0].caption, "a caption");
  EXPECT_EQ(m[1].id, "img2.png");
  EXPECT_EQ(fs::path(m[1].path), fs::path(d) / "img2.png");
  write(d + "/dup.jsonl", "{\"id\": \"x\", \"path\": \"a\"}\n{\"id\": \"x\", \"path\": \"b\"}\n");
  EXPECT_THROW(bgevl::list_gallery(d + "/dup.jsonl"), bgevl::InvalidArgumentError);
  write(d + "/bad.jsonl", "{\"id\": \"x\"}\n");
  EXPECT_THROW(bgevl::list_gallery(d + "/bad.jsonl"), bgevl::InvalidArgumentError);
  EXPECT_THROW(bgevl::list_gallery(d + "/nope"), bgevl::FileNotFoundError);
}

class IndexTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = bgevl::load(kModel).release(); }
  static void TearDownTestSuite() { delete model_; }
  static bgevl::Embedder* model_;
};
bgevl::Embedder* IndexTest::model_ = nullptr;

TEST_F(IndexTest, BuildSkipsDedupsAndSearchesLikeEncode) {
  const std::string g = small_gallery("build_g"), dir = tmpdir("build_i");
  bgevl::IndexOptions o;
  o.chunk_size = 3;
  const auto p = bgevl::Index::build(*model_, bgevl::list_gallery(g), dir, o);
  EXPECT_EQ(p.embedded, 6);
  EXPECT_EQ(p.duplicates, 1);
  EXPECT_EQ(p.skipped, 2);
  EXPECT_FALSE(fs::exists(dir + "/build"));
  const auto index = bgevl::Index::open(dir);
  EXPECT_EQ(index.rows(), 6);
  EXPECT_EQ(index.records().size(), 7u);
  ASSERT_EQ(index.skipped().size(), 2u);
  EXPECT_EQ(index.skipped()[0].id, "broken.png");
  EXPECT_FALSE(index.skipped()[0].reason.empty());
  EXPECT_EQ(index.find("sub/copy_of_img0.png")->row, index.find("img0.png")->row);

  // Scores equal encode(query) @ encode(gallery).T, for both backends.
  bgevl::Query q;
  q.image = bgevl::ImageInput::path(g + "/img3.png");
  q.text = "make the background dark";
  const auto qe = model_->encode({bgevl::EmbedItem(*q.image, *q.text)});
  std::vector<bgevl::EmbedItem> items;
  std::vector<std::string> ids;
  for (const auto& r : index.records()) {
    items.emplace_back(bgevl::ImageInput::path(r.path));
    ids.push_back(r.id);
  }
  const auto expect = qe.matmul(model_->encode(items).t())[0];
  for (const std::string backend : {"torch", "faiss"}) {
    if (backend == "faiss" && !bgevl::has_faiss()) continue;
    bgevl::SearchOptions so;
    so.backend = backend;
    const auto hits = index.search(*model_, {q}, 7, so)[0];
    ASSERT_EQ(hits.size(), 7u) << backend;
    for (const auto& h : hits) {
      const size_t i = std::find(ids.begin(), ids.end(), h.id) - ids.begin();
      EXPECT_NEAR(h.score, expect[i].item<float>(), bgevl::test::kFloat32Tol) << backend << h.id;
    }
    for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);
  }
  // An indexed id reuses the stored CLIP image features: the same as encoding its file.
  bgevl::Query by_id;
  by_id.query_id = "img3.png";
  by_id.text = "make the background dark";
  const auto e = index.embed_queries(*model_, {by_id});
  EXPECT_LE((e - qe).abs().max().item<float>(), bgevl::test::kFloat32Tol);
  // Exclusions, and k larger than the index.
  bgevl::SearchOptions ex;
  ex.exclude = {"img0.png"};
  const auto excluded = index.search(*model_, {by_id}, 20, ex);
  EXPECT_EQ(excluded[0].size(), 6u);  // the id is left out (its duplicate, another id, is not)
  for (const auto& h : excluded[0]) EXPECT_NE(h.id, "img0.png");
  EXPECT_EQ(index.search(*model_, {by_id}, 20)[0].size(), 7u);
}

TEST_F(IndexTest, StrictAddAndRefusals) {
  const std::string g = small_gallery("strict_g");
  bgevl::IndexOptions strict;
  strict.strict = true;
  EXPECT_THROW(bgevl::Index::build(*model_, bgevl::list_gallery(g), tmpdir("strict_i"), strict),
               bgevl::InvalidArgumentError);
  auto all = bgevl::list_gallery(g);
  const std::vector<bgevl::GalleryEntry> half(all.begin(), all.begin() + 4);
  const std::string dir = tmpdir("add_i");
  bgevl::Index::build(*model_, half, dir, {});
  EXPECT_THROW(bgevl::Index::build(*model_, all, dir, {}), bgevl::InvalidArgumentError);
  bgevl::IndexOptions add;
  add.add = true;
  const auto p = bgevl::Index::build(*model_, all, dir, add);
  EXPECT_EQ(p.already, 4);
  const auto index = bgevl::Index::open(dir);
  EXPECT_EQ(index.records().size(), 7u);
  // The same vectors as one build of everything.
  const std::string one = tmpdir("add_one");
  bgevl::Index::build(*model_, all, one, {});
  const auto ref = bgevl::Index::open(one);
  for (const auto& r : ref.records())
    EXPECT_TRUE(torch::equal(index.embeddings_of({r.id}), ref.embeddings_of({r.id}))) << r.id;
  // Only the current generation's files remain.
  EXPECT_FALSE(fs::exists(dir + "/metadata.g1.jsonl"));
  EXPECT_TRUE(fs::exists(dir + "/metadata.g2.jsonl"));
  EXPECT_THROW(bgevl::Index::open(tmpdir("empty_i")), bgevl::FileNotFoundError);
  bgevl::IndexOptions bad;
  bad.index_type = "lsh";
  EXPECT_THROW(bgevl::Index::build(*model_, all, tmpdir("bad_i"), bad),
               bgevl::InvalidArgumentError);
}

TEST(Ann, RecallAtTenAgainstExactSearch) {
  if (!bgevl::has_faiss()) GTEST_SKIP() << "built without FAISS";
  // 20000 vectors of dimension 64 around 200 cluster centres, normalised; 200 queries.
  torch::manual_seed(0);
  const int64_t n = 20000, d = 64, nq = 200;
  const auto centres = torch::randn({200, d});
  auto x = centres.index_select(0, torch::randint(200, {n})) + 0.5 * torch::randn({n, d});
  x = x / x.norm(2, 1, true);
  auto q = centres.index_select(0, torch::randint(200, {nq})) + 0.5 * torch::randn({nq, d});
  q = q / q.norm(2, 1, true);
  const auto exact = std::get<1>(q.matmul(x.t()).topk(10, 1));
  auto recall = [&](const torch::Tensor& got) {
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < 10; ++j) hit += (got[i] == exact[i][j]).any().item<bool>();
    return double(hit) / double(nq * 10);
  };
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back("v" + std::to_string(i));
  for (const std::string type : {"flat", "hnsw", "ivfpq"}) {
    const std::string dir = tmpdir("ann_" + type);
    bgevl::IndexOptions o;
    o.index_type = type;
    bgevl::Index::build_from_vectors(x, ids, dir, o);
    const auto index = bgevl::Index::open(dir);
    const auto hits = index.search(q, 10);
    auto got = torch::full({nq, 10}, -1, torch::kLong);
    for (int64_t i = 0; i < nq; ++i)
      for (size_t j = 0; j < hits[i].size(); ++j) got[i][static_cast<int64_t>(j)] = hits[i][j].row;
    const double r = recall(got);
    const auto manifest = nlohmann::json::parse(index.manifest_json());
    std::cout << "[ ANN ] " << type << " " << manifest["ann_params"].dump()
              << ": recall@10 against exact search = " << r << " (20000 x 64, 200 queries)\n";
    EXPECT_GE(r, type == "flat" ? 1.0 : 0.9) << type;
  }
}
