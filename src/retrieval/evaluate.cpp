// Metrics over an index, the queries file, and submission files.
#include "bgevl/evaluate.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "bgevl/errors.h"
#include "io/json.h"

namespace fs = std::filesystem;

namespace bgevl {

namespace {

std::vector<std::string> str_list(const nlohmann::json& j, const char* key, const std::string& w) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  BGEVL_CHECK_ARG(it->is_array(), w, ": \"", key, "\" must be a list of ids");
  for (const auto& v : *it) {
    if (v.is_string())
      out.push_back(v.get<std::string>());
    else if (v.is_number_integer())
      out.push_back(std::to_string(v.get<int64_t>()));
    else
      throw InvalidArgumentError(w + ": \"" + key + "\" must hold ids (strings)");
  }
  return out;
}

}  // namespace

std::vector<EvalQuery> read_eval_queries(const std::string& path, const std::string& image_root) {
  static const std::set<std::string> known = {
      "image", "query_id", "text", "instruction", "targets", "exclude", "subset", "group", "qid"};
  std::vector<EvalQuery> out;
  io::for_each_jsonl(path, "the queries file", [&](const nlohmann::json& j, const std::string& w) {
    for (const auto& kv : j.items())
      BGEVL_CHECK_ARG(known.count(kv.key()), w, ": unknown field \"", kv.key(), "\"");
    EvalQuery q;
    if (auto img = io::opt_string(j, "image", w)) {
      std::string p = *img;
      if (!image_root.empty() && !fs::path(p).is_absolute())
        p = (fs::path(image_root) / p).string();
      q.query.image = ImageInput::path(p);
    }
    q.query.query_id = io::opt_string(j, "query_id", w);
    q.query.text = io::opt_string(j, "text", w);
    q.query.instruction = io::opt_string(j, "instruction", w);
    BGEVL_CHECK_ARG(q.query.image || q.query.query_id || q.query.text, w,
                    ": a query needs an image, a query_id or a text");
    BGEVL_CHECK_ARG(!(q.query.image && q.query.query_id), w,
                    ": give \"image\" or \"query_id\", not both");
    q.targets = str_list(j, "targets", w);
    q.exclude = str_list(j, "exclude", w);
    q.subset = str_list(j, "subset", w);
    q.group = io::opt_string(j, "group", w).value_or("");
    q.qid = io::opt_string(j, "qid", w).value_or(std::to_string(out.size()));
    out.push_back(std::move(q));
  });
  BGEVL_CHECK_ARG(!out.empty(), path, ": holds no queries");
  return out;
}

double recall_at_k(const std::vector<std::string>& ranked, const std::vector<std::string>& targets,
                   int64_t k) {
  BGEVL_CHECK_ARG(k >= 1, "k must be at least 1");
  const std::unordered_set<std::string> t(targets.begin(), targets.end());
  for (int64_t r = 0; r < std::min<int64_t>(k, static_cast<int64_t>(ranked.size())); ++r)
    if (t.count(ranked[static_cast<size_t>(r)])) return 1.0;
  return 0.0;
}

double average_precision_at_k(const std::vector<std::string>& ranked,
                              const std::vector<std::string>& targets, int64_t k) {
  BGEVL_CHECK_ARG(k >= 1, "k must be at least 1");
  const std::unordered_set<std::string> t(targets.begin(), targets.end());
  if (t.empty()) return 0.0;
  double sum = 0;
  int64_t hits = 0;
  for (int64_t r = 0; r < std::min<int64_t>(k, static_cast<int64_t>(ranked.size())); ++r)
    if (t.count(ranked[static_cast<size_t>(r)])) sum += double(++hits) / double(r + 1);
  return sum / double(std::min<int64_t>(k, static_cast<int64_t>(t.size())));
}

EvalResult evaluate(const Index& index, const Embedder& model,
                    const std::vector<EvalQuery>& queries, const EvalOptions& o) {
  BGEVL_CHECK_ARG(!queries.empty(), "no queries to evaluate");
  BGEVL_CHECK_ARG(!o.ks.empty(), "no k given");
  for (int64_t k : o.ks) BGEVL_CHECK_ARG(k >= 1, "every k must be at least 1, got ", k);
  for (int64_t k : o.subset_ks) BGEVL_CHECK_ARG(k >= 1, "every subset k must be at least 1");
  for (size_t i = 0; i < queries.size(); ++i)
    for (const auto& t : queries[i].targets)
      BGEVL_CHECK_ARG(index.find(t), "query ", i, " (", queries[i].qid, "): target '", t,
                      "' is not in the index");
  const int64_t kmax = std::max(*std::max_element(o.ks.begin(), o.ks.end()), o.keep);
  const int64_t Q = static_cast<int64_t>(queries.size());
  EvalResult res;
  res.queries = Q;
  res.rankings.resize(queries.size());
  res.subset_rankings.resize(queries.size());
  const int64_t bs = std::max<int64_t>(1, o.batch_size);
  for (int64_t lo = 0; lo < Q; lo += bs) {
    const int64_t hi = std::min(Q, lo + bs);
    std::vector<Query> qs;
    for (int64_t i = lo; i < hi; ++i) qs.push_back(queries[i].query);
    const auto emb = index.embed_queries(model, qs);
    // Queries of one group are searched together; exclusions are applied to a longer list.
    std::map<std::string, std::vector<int64_t>> by_group;
    for (int64_t i = lo; i < hi; ++i) by_group[queries[i].group].push_back(i);
    for (const auto& [group, members] : by_group) {
      size_t max_excl = 0;
      for (int64_t i : members) max_excl = std::max(max_excl, queries[i].exclude.size());
      SearchOptions so = o.search;
      if (!group.empty()) so.group = group;
      std::vector<int64_t> rows;
      for (int64_t i : members) rows.push_back(i - lo);
      const auto sel = emb.index_select(0, torch::tensor(rows).to(emb.device()));
      const auto hits = index.search(sel, kmax + static_cast<int64_t>(max_excl), so);
      for (size_t m = 0; m < members.size(); ++m) {
        const auto& q = queries[members[m]];
        auto& ranked = res.rankings[members[m]];
        for (const auto& h : hits[m]) {
          if (std::find(q.exclude.begin(), q.exclude.end(), h.id) != q.exclude.end()) continue;
          if (static_cast<int64_t>(ranked.size()) < kmax) ranked.push_back(h.id);
        }
        if (!q.subset.empty()) {
          std::vector<std::string> ids;
          for (const auto& s : q.subset)
            if (std::find(q.exclude.begin(), q.exclude.end(), s) == q.exclude.end() &&
                index.find(s))
              ids.push_back(s);
          const auto scores = index.embeddings_of(ids).matmul(
              sel[static_cast<int64_t>(m)].cpu().to(torch::kFloat32));
          std::vector<size_t> order(ids.size());
          for (size_t k = 0; k < order.size(); ++k) order[k] = k;
          const auto acc = scores.accessor<float, 1>();
          std::stable_sort(order.begin(), order.end(),
                           [&](size_t a, size_t b) { return acc[a] > acc[b]; });
          for (size_t k : order) res.subset_rankings[members[m]].push_back(ids[k]);
        }
      }
    }
    if (o.progress) o.progress(hi, Q);
  }

  auto add_metrics = [&](const std::string& prefix, const std::vector<int64_t>& which) {
    std::vector<int64_t> lab;
    for (int64_t i : which)
      if (!queries[i].targets.empty()) lab.push_back(i);
    if (lab.empty()) return;
    for (int64_t k : o.ks) {
      double s = 0;
      for (int64_t i : lab) s += recall_at_k(res.rankings[i], queries[i].targets, k);
      res.metrics.push_back({prefix + "R@" + std::to_string(k), s / double(lab.size())});
    }
    if (!prefix.empty()) return;
    for (int64_t k : o.ks) {
      double s = 0;
      for (int64_t i : lab) s += average_precision_at_k(res.rankings[i], queries[i].targets, k);
      res.metrics.push_back({"mAP@" + std::to_string(k), s / double(lab.size())});
    }
  };
  std::vector<int64_t> all(queries.size());
  for (int64_t i = 0; i < Q; ++i) all[i] = i;
  for (int64_t i : all) res.labelled += queries[i].targets.empty() ? 0 : 1;
  add_metrics("", all);
  std::vector<int64_t> with_subset;
  for (int64_t i : all)
    if (!queries[i].subset.empty() && !queries[i].targets.empty()) with_subset.push_back(i);
  for (int64_t k : o.subset_ks) {
    if (with_subset.empty()) break;
    double s = 0;
    for (int64_t i : with_subset) s += recall_at_k(res.subset_rankings[i], queries[i].targets, k);
    res.metrics.push_back({"R_subset@" + std::to_string(k), s / double(with_subset.size())});
  }
  std::map<std::string, std::vector<int64_t>> groups;
  for (int64_t i : all)
    if (!queries[i].group.empty()) groups[queries[i].group].push_back(i);
  if (!groups.empty()) {
    std::map<std::string, std::pair<double, int>> mean;
    for (const auto& [g, members] : groups) {
      const size_t before = res.metrics.size();
      add_metrics(g + "/", members);
      for (size_t m = before; m < res.metrics.size(); ++m) {
        const std::string name = res.metrics[m].first.substr(g.size() + 1);
        mean[name].first += res.metrics[m].second;
        mean[name].second += 1;
      }
    }
    for (int64_t k : o.ks) {
      const std::string name = "R@" + std::to_string(k);
      if (mean.count(name))
        res.metrics.push_back({"mean/" + name, mean[name].first / mean[name].second});
    }
  }
  return res;
}

std::string submission_json(const std::string& format, const std::vector<EvalQuery>& queries,
                            const EvalResult& result) {
  BGEVL_CHECK_ARG(format == "circo" || format == "cirr" || format == "cirr_subset",
                  "submission format must be circo, cirr or cirr_subset, got '", format, "'");
  BGEVL_CHECK_ARG(result.rankings.size() == queries.size(), "the result is of other queries");
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (format != "circo") {
    j["version"] = "rc2";
    j["metric"] = format == "cirr" ? "recall" : "recall_subset";
  }
  for (size_t i = 0; i < queries.size(); ++i) {
    const auto& ranked = format == "cirr_subset" ? result.subset_rankings[i] : result.rankings[i];
    const size_t n = format == "cirr_subset" ? 3 : 50;
    auto list = nlohmann::ordered_json::array();
    for (size_t r = 0; r < std::min(n, ranked.size()); ++r) {
      const std::string& id = ranked[r];
      // CIRCO's server takes COCO image ids as numbers.
      const bool numeric = format == "circo" && !id.empty() &&
                           id.find_first_not_of("0123456789") == std::string::npos &&
                           id.size() < 18;
      if (numeric)
        list.push_back(std::stoll(id));
      else
        list.push_back(id);
    }
    j[queries[i].qid] = list;
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace bgevl
