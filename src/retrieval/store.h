// The index folder on disk, shared by the builder (build.cpp) and the reader (index.cpp):
//
//   manifest.json             the commit point: model, family, dtype, dimension, counts, the
//                             files of the current generation, skipped entries
//   metadata.gN.jsonl         one line per indexed id: id, path, size, sha256, row (caption, group)
//   embeddings/SSSSS.gN.npy   L2-normalised embeddings, shard by shard ([rows, D])
//   features/SSSSS.gN.npy     CLIP only: the projected, unnormalised image features
//   ann.gN.faiss              the FAISS index (hnsw, ivfpq; flat has none)
//   build/                    while building: progress.json and the finished parts
//
// Files of a generation are never rewritten: a build writes generation N+1 beside N, renames
// manifest.json over the old one, then removes what it no longer names. An interruption at any
// point leaves either the old index or the new one, and the parts to resume from.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bgevl/index.h"

namespace bgevl::retrieval {

constexpr int kFormatVersion = 1;

struct ShardFile {
  std::string file;  // relative to the index folder
  int64_t rows = 0;
};

struct Manifest {
  std::string model, model_dir, revision, family, dtype = "float32", index_type = "flat";
  int64_t dim = 0, rows = 0, generation = 0;
  std::vector<ShardFile> shards, feature_shards;
  std::string metadata, ann_file;
  nlohmann::json ann_params = nlohmann::json::object();
  std::vector<SkippedEntry> skipped;
  int64_t duplicates = 0;
  nlohmann::ordered_json to_json(int64_t entries) const;
};

// manifest.json of `dir`; FileNotFoundError when absent, InvalidArgumentError when corrupt.
Manifest read_manifest(const std::string& dir);
bool has_manifest(const std::string& dir);

nlohmann::ordered_json record_json(const IndexRecord& r);
IndexRecord record_from_json(const nlohmann::json& j, const std::string& where);
std::vector<IndexRecord> read_records(const std::string& path);

std::string join(const std::string& dir, const std::string& name);
torch::ScalarType dtype_from_name(const std::string& name);
const char* dtype_name(torch::ScalarType t);
// A JSON line with invalid UTF-8 replaced, as every JSONL file of the index is written.
std::string dump_line(const nlohmann::ordered_json& j);

// FAISS (faiss.cpp; stubs that refuse when the build has none). `vectors` float32 [n, D] on the
// CPU, normalised. build_ann: a new index of `index_type` trained on `train` and holding nothing;
// add_ann appends; search_ann: scores and rows [Q, k] (row -1: fewer than k).
struct AnnIndex;
struct AnnDeleter {
  void operator()(AnnIndex* p) const;
};
using AnnPtr = std::unique_ptr<AnnIndex, AnnDeleter>;
AnnPtr ann_create(const std::string& index_type, int64_t dim, int64_t expected_rows,
                  nlohmann::json& params);
void ann_train(AnnIndex& ann, const torch::Tensor& train);
void ann_add(AnnIndex& ann, const torch::Tensor& vectors);
void ann_write(const AnnIndex& ann, const std::string& path);
AnnPtr ann_read(const std::string& path);
AnnPtr ann_flat(const torch::Tensor& vectors);  // exact inner product over a copy of `vectors`
int64_t ann_rows(const AnnIndex& ann);
std::pair<torch::Tensor, torch::Tensor> ann_search(const AnnIndex& ann, const torch::Tensor& q,
                                                   int64_t k, int64_t ef_search, int64_t nprobe);

}  // namespace bgevl::retrieval
