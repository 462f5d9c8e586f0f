// Retrieval metrics over an index: Recall@k, mAP@k (CIRCO's definition), CIRR's subset recall,
// per-group figures and their mean (FashionIQ), and the benchmarks' folder layouts read into
// galleries and queries, with the submission files their test servers take.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bgevl/index.h"

namespace bgevl {

// One evaluation query: the query, the ids that count as hits, and optionally ids never ranked
// (CIRR: the reference image), a subset to rank within as well (CIRR's img_set), a group whose
// entries alone are ranked (FashionIQ's category), and the benchmark's query id (submissions).
struct EvalQuery {
  Query query;
  std::vector<std::string> targets, exclude, subset;
  std::string group, qid;
};

// A queries JSONL file: {"image": path-or-null, "query_id": id-or-null, "text": str-or-null,
// "instruction": str-or-null, "targets": [id, ...]} per line (and optionally "exclude",
// "subset", "group", "qid"). Relative image paths are relative to `image_root` when given, else
// to the current folder. InvalidArgumentError naming the line.
std::vector<EvalQuery> read_eval_queries(const std::string& path,
                                         const std::string& image_root = "");

// 1 when one of `targets` is among the first k of `ranked`, else 0.
double recall_at_k(const std::vector<std::string>& ranked, const std::vector<std::string>& targets,
                   int64_t k);
// CIRCO's AP@k: the sum over ranks r <= k holding a target of precision@r, divided by
// min(k, number of targets).
double average_precision_at_k(const std::vector<std::string>& ranked,
                              const std::vector<std::string>& targets, int64_t k);

struct EvalOptions {
  std::vector<int64_t> ks = {1, 5, 10, 25, 50};
  std::vector<int64_t> subset_ks = {1, 2, 3};  // for queries with a subset
  int64_t keep = 50;                           // ranked ids kept per query (submissions)
  int64_t batch_size = 64;                     // queries embedded together
  SearchOptions search;
  std::function<void(int64_t, int64_t)> progress;  // (queries done, all)
};

struct EvalResult {
  // "R@k", "mAP@k" over queries with targets; "R_subset@k" over those with a subset; per group
  // "<group>/R@k" and "mean/R@k" (the mean over groups) when queries have groups.
  std::vector<std::pair<std::string, double>> metrics;
  int64_t queries = 0, labelled = 0;
  std::vector<std::vector<std::string>> rankings;         // first `keep` ids per query
  std::vector<std::vector<std::string>> subset_rankings;  // the subset, ranked
};

EvalResult evaluate(const Index& index, const Embedder& model,
                    const std::vector<EvalQuery>& queries, const EvalOptions& options = {});

// The JSON a benchmark's test server takes: "circo" ({qid: [ids]}), "cirr" ({"version": "rc2",
// "metric": "recall", pairid: [names]}), "cirr_subset" (metric "recall_subset", the subset
// rankings).
std::string submission_json(const std::string& format, const std::vector<EvalQuery>& queries,
                            const EvalResult& result);

// A benchmark's published folder layout read into a gallery manifest and a queries file:
// `out_dir`/gallery.jsonl and `out_dir`/queries.jsonl. name: "circo" (split val|test), "cirr"
// (val|test1|train), "fashioniq" (val|test|train; all three categories, each its group).
// Returns the numbers of gallery entries and queries.
std::pair<int64_t, int64_t> convert_dataset(const std::string& name, const std::string& root,
                                            const std::string& split, const std::string& out_dir);

}  // namespace bgevl
