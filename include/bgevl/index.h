// Retrieval: an index of a gallery embedded once (sharded .npy embeddings, JSONL metadata, a
// manifest and a nearest-neighbour index in one folder), searched with composed, text or image
// queries.
//
//   auto model = bgevl::load("BAAI/BGE-VL-base");
//   bgevl::Index::build(*model, bgevl::list_gallery("photos/"), "photos.index");
//   auto index = bgevl::Index::open("photos.index");
//   bgevl::Query q;
//   q.image = bgevl::ImageInput::path("q.jpg");
//   q.text = "make the background dark";
//   for (const auto& hit : index.search(*model, {q}, 10)[0]) std::cout << hit.id << "\n";
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/image_input.h"

namespace bgevl {

// One image of a gallery: its id (unique in the index), its file and an optional caption (MLLM
// candidates with a caption are embedded as image + text; CLIP indexes the image alone).
struct GalleryEntry {
  std::string id;
  std::string path;
  std::optional<std::string> caption;
  // A part of the gallery queries can be restricted to (FashionIQ's categories).
  std::optional<std::string> group;
};

// A folder (searched recursively for .jpg .jpeg .png .webp .bmp .tif .tiff, sorted; ids are
// the paths relative to the folder) or a JSONL manifest ({"id": ..., "path": ..., "caption":
// ..., "group": ...} per line; "id" defaults to "path"; relative paths are relative to the
// manifest's folder). FileNotFoundError / InvalidArgumentError (bad line, duplicate id) naming the
// line.
std::vector<GalleryEntry> list_gallery(const std::string& dir_or_manifest);

// What Index::build reports while it works and when it is done.
struct IndexProgress {
  int64_t done = 0;        // entries handled in this run (embedded, duplicate or skipped)
  int64_t total = 0;       // entries to handle in this run
  int64_t embedded = 0;    // new rows embedded in this run
  int64_t duplicates = 0;  // entries whose content was already embedded (same SHA-256)
  int64_t skipped = 0;     // unreadable files (listed in the manifest with the reason)
  int64_t resumed = 0;     // entries found done by an earlier, interrupted run
  int64_t already = 0;     // entries already in the index (--add), left alone
};

struct IndexOptions {
  torch::ScalarType dtype = torch::kFloat32;  // stored vectors: float32 or float16
  // Nearest-neighbour index: "flat" (exact inner product), "hnsw" or "ivfpq" (FAISS builds).
  std::string index_type = "flat";
  bool strict = false;           // an unreadable file is an error instead of a skipped entry
  bool add = false;              // append the entries not yet in a complete index (by id)
  int64_t chunk_size = 1024;     // entries per resumable part (a rerun redoes at most one)
  int64_t shard_size = 1 << 20;  // rows per embeddings shard
  int64_t batch_size = 0;        // items per forward pass; 0: the model's default
  // What the manifest records as the model ("BAAI/BGE-VL-base" as given, or a folder); empty:
  // the model's folder.
  std::string model_ref;
  std::function<void(const IndexProgress&)> progress;
};

// A distributed build's partitions: how many, how many are done, which are not.
struct PartitionPlan {
  int64_t partitions = 0, done = 0;
  std::vector<int64_t> missing;
};

// An indexed entry.
struct IndexRecord {
  std::string id, path;
  std::optional<std::string> caption, group;
  int64_t size = 0;    // bytes of the file
  std::string sha256;  // of the file's bytes
  int64_t row = 0;     // its row in the embeddings (duplicates share one)
};

struct SkippedEntry {
  std::string id, path, reason;
};

// A query: an image (a file, bytes or pixels) or an indexed entry's id (its stored image
// features are reused for CLIP, its file for MLLM), a text, or both (composed). Instruction:
// MLLM only (the query's task instruction; see preset_instruction).
struct Query {
  std::optional<ImageInput> image;
  std::optional<std::string> query_id;
  std::optional<std::string> text;
  std::optional<std::string> instruction;
};

// The MLLM task instructions of the model card by name: "cir" (composed image retrieval),
// "t2i" (text to image: "Find me an image that matches the given caption"), "i2t" (image to
// text); any other string is returned as it is (a free-text instruction).
std::string preset_instruction(const std::string& name_or_text);

struct SearchHit {
  int64_t rank = 0;  // 1-based
  std::string id, path;
  float score = 0;  // inner product of the normalised embeddings (cosine)
  int64_t row = 0;
};

struct SearchOptions {
  // "auto" (FAISS when built and the queries are on the CPU, else libtorch), "faiss", "torch"
  // (exact: matmul + top-k, on the queries' device).
  std::string backend = "auto";
  // Ids never returned (e.g. the reference image of a CIRR query).
  std::vector<std::string> exclude;
  // Only entries of this group (exact search).
  std::optional<std::string> group;
  // HNSW efSearch / IVF nprobe; 0: the index's defaults.
  int64_t ef_search = 0, nprobe = 0;
};

class Index {
 public:
  // Builds the index of `entries` in `dir` (created if needed), or continues an interrupted
  // build of the same entries, or (options.add) appends to a complete one. The result is the
  // same as one uninterrupted run. Files are embedded by `model` through its batch engine in
  // parts of chunk_size entries; a part is written atomically and recorded before the next.
  static IndexProgress build(const Embedder& model, const std::vector<GalleryEntry>& entries,
                             const std::string& dir, const IndexOptions& options = {});
  // An index of vectors made elsewhere (L2-normalised [N, D], float32 or float16) under `ids`,
  // without a model: searched with query vectors (search(tensor, ...)). dtype, index_type and
  // shard_size are taken from `options`.
  static void build_from_vectors(const torch::Tensor& vectors, const std::vector<std::string>& ids,
                                 const std::string& dir, const IndexOptions& options = {});
  // A complete index. FileNotFoundError / InvalidArgumentError (incomplete or corrupt).
  static Index open(const std::string& dir);

  // Distributed builds (bgevl.dask.index; `bgevl index --num-shards N --shard-index I`): the
  // entries are cut into partitions of chunk_size, each embedded on its own by any process that
  // sees the folder (build/partitions/), then merged into an index equal to Index::build's of
  // the same entries (same ids, rows, duplicates and skipped entries).
  // plan_partitions writes (or checks: same entries and settings) the plan and says which
  // partitions are done; model_ref is what the manifest will record as the model.
  static PartitionPlan plan_partitions(const std::vector<GalleryEntry>& entries,
                                       const std::string& dir, const std::string& model_ref,
                                       const IndexOptions& options = {});
  // Embeds partition p (its entries: entries[p * chunk_size, ...) of the plan); a partition
  // already done is left alone. Written atomically: a process killed midway leaves nothing.
  static IndexProgress build_partition(const Embedder& model,
                                       const std::vector<GalleryEntry>& partition_entries,
                                       const std::string& dir, int64_t partition,
                                       const IndexOptions& options = {});
  // Writes the index from the done partitions (Error naming the missing ones); false when
  // another process merged it first. Uses options.shard_size.
  static bool merge_partitions(const std::string& dir, const IndexOptions& options = {});

  Index(Index&&) noexcept;
  Index& operator=(Index&&) noexcept;
  ~Index();

  const std::string& dir() const;
  std::string manifest_json() const;  // manifest.json as written
  std::string model_ref() const;      // the model recorded at build
  std::string revision() const;
  Family family() const;
  int64_t dim() const;
  int64_t rows() const;  // embedded rows (unique contents)
  torch::ScalarType dtype() const;
  std::string index_type() const;
  const std::vector<IndexRecord>& records() const;  // one per indexed id, in index order
  const std::vector<SkippedEntry>& skipped() const;
  const IndexRecord* find(const std::string& id) const;  // nullptr when absent
  std::vector<std::string> shard_files() const;          // absolute paths, in row order
  // The stored embeddings [rows, D] (memory-mapped, the stored dtype). With more than one shard:
  // concatenated in memory unless `shard` names one.
  torch::Tensor embeddings(std::optional<int64_t> shard = std::nullopt) const;
  // The stored embeddings of `ids` [n, D] float32.
  torch::Tensor embeddings_of(const std::vector<std::string>& ids) const;
  // CLIP: the stored projected, unnormalised image features of `ids` [n, D] float32.
  torch::Tensor image_features(const std::vector<std::string>& ids) const;

  // The L2-normalised query embeddings [Q, D] float32 on the model's device: equal to
  // model.encode of the same inputs (a query_id stands for its indexed image).
  torch::Tensor embed_queries(const Embedder& model, const std::vector<Query>& queries) const;
  // The k best entries per query vector ([Q, D], normalised): duplicates of a row are listed one
  // after another with the same score.
  std::vector<std::vector<SearchHit>> search(const torch::Tensor& queries, int64_t k,
                                             const SearchOptions& options = {}) const;
  std::vector<std::vector<SearchHit>> search(const Embedder& model, const std::vector<Query>& q,
                                             int64_t k, const SearchOptions& options = {}) const;

  struct Impl;

 private:
  explicit Index(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A self-contained HTML page showing a query (its image, if any, and text) and its hits as a
// grid of thumbnails with ranks, scores and ids. Images up to 2 MB are embedded as data URIs;
// larger ones are linked by their file:// path.
std::string search_html(const Query& query, const std::vector<SearchHit>& hits,
                        const std::string& title = "bgevl search");

// Whether this build has FAISS (hnsw / ivfpq indexes, the "faiss" search backend). The
// environment variable BGEVL_NO_FAISS=1 makes a FAISS build behave as one without.
bool has_faiss();

}  // namespace bgevl
