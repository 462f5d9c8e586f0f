// bgevl index / search / evaluate / dataset: a thin layer over bgevl/index.h and evaluate.h.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bgevl/bgevl.h"
#include "bgevl/evaluate.h"
#include "bgevl/index.h"
#include "cli_common.h"
#include "io/npy.h"

namespace bgevl::cli {

namespace {

const char* kIndexUsage =
    R"(usage: bgevl index --model M --images DIR_OR_MANIFEST --out INDEX_DIR [options]

Embeds every image of a folder (recursively: .jpg .jpeg .png .webp .bmp .tif .tiff; ids are the
paths relative to the folder) or of a JSONL manifest ({"id": ..., "path": ..., "caption": ...}
per line) and writes an index folder: sharded embeddings (.npy), metadata.gN.jsonl (id, path,
size, sha256, row), manifest.json and the nearest-neighbour index. A rerun after an interruption
continues where it stopped; files with the same content are embedded once; unreadable files are
listed in the manifest as skipped.

  --model M            checkpoint folder or hub id (with --add: default the index's model)
  --images P           folder or .jsonl manifest
  --out INDEX_DIR      the index folder (created)
  --add                append the files not yet in the (complete) index
  --index-type T       flat (default; exact), hnsw, ivfpq (FAISS builds)
  --index-dtype T      float32 (default) or float16: how the vectors are stored
  --strict             an unreadable file is an error (default: skipped and listed)
  --chunk-size N       entries per resumable part (default 1024)
  --shard-size N       rows per embeddings shard (default 1048576)
  --device, --dtype, --batch-size, --threads, --revision   as for bgevl encode
  --num-shards N --shard-index I
                       one job of N (SLURM / Kubernetes arrays, no scheduler): embeds the
                       partitions (of --chunk-size entries) p with p % N == I into
                       INDEX_DIR/build/partitions; the job that completes the last one writes the
                       index (equal to a single-process run's)
  --dask-scheduler ADDR  the same on a Dask cluster (the pip package's bgevl: bgevl.dask)
  --quiet              no progress
)";

const char* kSearchUsage =
    R"(usage: bgevl search --index INDEX_DIR [--image Q | --query-id ID] [--text T] [options]

Ranks the index against a composed query (an image or an indexed id, plus a text), a text, or
an image, and prints rank, score, id and path.

  --index INDEX_DIR    the index folder
  --model M            default: the model recorded in the index
  --image PATH         query image
  --query-id ID        an indexed entry as the query image (CLIP reuses its stored features)
  --text T             query text (modification text for composed queries)
  --instruction I      MLLM: the query's task instruction; presets: cir (composed retrieval),
                       t2i (text to image), i2t (image to text); any other text as it is
  -k K                 number of results (default 10)
  --json               print {"results": [{"rank", "id", "path", "score"}, ...]} only
  --html OUT.html      also write a page with the query and the hits as thumbnails
  --backend B          auto (default), faiss, torch
  --device, --dtype, --threads, --revision   as for bgevl encode
)";

const char* kEvaluateUsage =
    R"(usage: bgevl evaluate --index INDEX_DIR --queries QUERIES.jsonl [options]

Runs every query of QUERIES.jsonl ({"image": path-or-null, "query_id": id-or-null, "text":
str-or-null, "instruction": str-or-null, "targets": [id, ...]} per line; optional "exclude",
"subset", "group", "qid") and prints Recall@k (share of queries with a target in the top k) and
mAP@k (CIRCO's definition), plus subset recall (CIRR) and per-group recall with their mean
(FashionIQ) when the queries have those.

  -k LIST              comma-separated ks (default 1,5,10,25,50)
  --json               print {"R@1": ..., "mAP@5": ..., ...} only
  --image-root DIR     relative query image paths are relative to DIR (default: the current folder)
  --submission OUT     write the benchmark's submission JSON (--submission-format circo, cirr,
                       cirr_subset)
  --model, --backend, --device, --dtype, --threads, --batch-size   as for bgevl search
)";

const char* kDatasetUsage =
    R"(usage: bgevl dataset circo|cirr|fashioniq --root DIR --split SPLIT --out DIR

Reads a benchmark from its published folder layout and writes OUT/gallery.jsonl (for bgevl index
--images) and OUT/queries.jsonl (for bgevl evaluate --queries).
  circo      splits val, test (CIRCO's query template "Find a picture that also
             {shared_concept}, but {relative_caption}")
  cirr       splits val, test1, train (reference excluded from ranking; subset recall)
  fashioniq  splits val, test, train (dress, shirt, toptee as groups; captions joined as
             CLIP4Cir does)
)";

std::string clock(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const long long t = static_cast<long long>(s + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

// A progress bar on a terminal (rate and ETA); a line every ~10% otherwise.
struct ProgressBar {
  bool tty = ::isatty(2), quiet = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int last_decile = -1;
  void operator()(const IndexProgress& p) {
    if (quiet || p.total == 0) return;
    const double el =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t fresh = p.done - p.resumed;
    const double rate = el > 0 ? fresh / el : 0;
    const double eta = rate > 0 ? (p.total - p.done) / rate : -1;
    const int width = 30;
    const int fill = static_cast<int>(width * p.done / p.total);
    char line[256];
    std::snprintf(
        line, sizeof(line),
        "indexing [%s%s] %lld/%lld  %.1f img/s  ETA %s  (skipped %lld, duplicates %lld%s)",
        std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(),
        static_cast<long long>(p.done), static_cast<long long>(p.total), rate, clock(eta).c_str(),
        static_cast<long long>(p.skipped), static_cast<long long>(p.duplicates),
        p.resumed ? (", resumed " + std::to_string(p.resumed)).c_str() : "");
    if (tty) {
      std::fprintf(stderr, "\r%s\x1b[K", line);
      if (p.done == p.total) std::fputc('\n', stderr);
    } else {
      const int decile = static_cast<int>(10 * p.done / p.total);
      if (decile != last_decile) std::fprintf(stderr, "%s\n", line);
      last_decile = decile;
    }
  }
};

std::string fmt_score(float s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", s);
  return buf;
}

}  // namespace

int index_main(int argc, char** argv) {
  ModelArgs m;
  std::string images, out;
  IndexOptions o;
  bool quiet = false;
  long long num_shards = 0, shard_index = -1;
  for (Args a(argc, argv, 2); a.next();) {
    const std::string s = a.arg();
    if (m.parse(a)) continue;
    if (s == "--images")
      images = a.value();
    else if (s == "--out")
      out = a.value();
    else if (s == "--add")
      o.add = true;
    else if (s == "--index-type")
      o.index_type = a.value();
    else if (s == "--index-dtype") {
      const std::string v = a.value();
      if (v != "float32" && v != "float16") throw UsageError("--index-dtype is float32 or float16");
      o.dtype = v == "float16" ? torch::kHalf : torch::kFloat32;
    } else if (s == "--strict")
      o.strict = true;
    else if (s == "--chunk-size")
      o.chunk_size = a.number(1, 1 << 24);
    else if (s == "--shard-size")
      o.shard_size = a.number(1, 1LL << 40);
    else if (s == "--batch-size")
      o.batch_size = a.number(1, 1 << 20);
    else if (s == "--quiet")
      quiet = true;
    else if (s == "--num-shards")
      num_shards = a.number(1, 1 << 20);
    else if (s == "--shard-index")
      shard_index = a.number(0, (1 << 20) - 1);
    else if (s == "--dask-scheduler")
      throw UsageError(
          "index: --dask-scheduler is run by the pip package's `bgevl` (python -m bgevl.dask); "
          "this program is the bare binary");
    else if (s == "--help" || s == "-h") {
      std::cout << kIndexUsage;
      return 0;
    } else
      throw UsageError("index: unknown argument '" + s + "'");
  }
  if (images.empty()) throw UsageError("index: --images is required");
  if ((num_shards > 0) != (shard_index >= 0))
    throw UsageError("index: --num-shards and --shard-index go together");
  if (num_shards > 0 && shard_index >= num_shards)
    throw UsageError("index: --shard-index must be below --num-shards");
  if (num_shards > 0 && o.add) throw UsageError("index: --add does not combine with shards");
  if (out.empty()) throw UsageError("index: --out is required");
  if (o.index_type != "flat" && o.index_type != "hnsw" && o.index_type != "ivfpq")
    throw UsageError("--index-type is flat, hnsw or ivfpq");
  std::string fallback, fallback_rev;
  if (o.add && m.model.empty()) {
    const auto existing = Index::open(out);
    fallback = existing.model_ref();
    fallback_rev = existing.revision();
  }
  if (m.model.empty() && fallback.empty()) throw UsageError("index: --model is required");
  const auto entries = list_gallery(images);  // before loading: a bad folder fails at once
  const auto model = m.load(fallback, fallback_rev);
  o.model_ref = m.model.empty() ? fallback : m.model;
  ProgressBar bar;
  bar.quiet = quiet;
  o.progress = [&](const IndexProgress& p) { bar(p); };
  const auto t0 = std::chrono::steady_clock::now();
  if (num_shards > 0) {
    // One job of an array: the partitions p with p % N == I, then the merge when all are done
    // (whichever job finishes last does it).
    const auto plan = Index::plan_partitions(entries, out, o.model_ref, o);
    int64_t ran = 0;
    for (int64_t p = shard_index; p < plan.partitions; p += num_shards) {
      const int64_t lo = p * o.chunk_size;
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(entries.size()), lo + o.chunk_size);
      const std::vector<GalleryEntry> slice(entries.begin() + lo, entries.begin() + hi);
      const auto r = Index::build_partition(*model, slice, out, p, o);
      ran += r.resumed == 0;
    }
    const auto after = Index::plan_partitions(entries, out, o.model_ref, o);
    std::cerr << "index " << out << ": shard " << shard_index << " of " << num_shards
              << " embedded " << ran << " partitions; " << after.done << " of " << after.partitions
              << " partitions done\n";
    if (!after.missing.empty()) {
      std::cerr << "  the job that finishes the last partition writes the index\n";
      return 0;
    }
    if (!Index::merge_partitions(out, o)) {
      std::cerr << "  another job wrote the index\n";
      return 0;
    }
    const auto index = Index::open(out);
    std::cerr << "index " << out << ": " << index.records().size() << " entries, " << index.rows()
              << " rows of dimension " << index.dim() << " (merged from " << after.partitions
              << " partitions)\n";
    return 0;
  }
  const auto p = Index::build(*model, entries, out, o);
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto index = Index::open(out);
  std::cerr << "index " << out << ": " << index.records().size() << " entries, " << index.rows()
            << " rows of dimension " << index.dim() << " (" << index.index_type() << ", "
            << (index.dtype() == torch::kHalf ? "float16" : "float32")
            << "); this run: " << p.embedded << " embedded, " << p.duplicates << " duplicates, "
            << p.skipped << " skipped, " << p.resumed << " resumed, " << p.already
            << " already indexed, in " << fmt_score(static_cast<float>(el)) << " s\n";
  for (const auto& s : index.skipped())
    if (!quiet) std::cerr << "  skipped " << s.id << ": " << s.reason << "\n";
  return 0;
}

namespace {
nlohmann::ordered_json hits_json(const std::vector<SearchHit>& hits) {
  auto arr = nlohmann::ordered_json::array();
  for (const auto& h : hits)
    arr.push_back({{"rank", h.rank}, {"id", h.id}, {"path", h.path}, {"score", h.score}});
  return {{"results", arr}};
}
}  // namespace

int search_main(int argc, char** argv) {
  ModelArgs m;
  std::string dir, html;
  Query q;
  long long k = 10;
  bool json = false;
  SearchOptions so;
  for (Args a(argc, argv, 2); a.next();) {
    const std::string s = a.arg();
    if (m.parse(a)) continue;
    if (s == "--index")
      dir = a.value();
    else if (s == "--image")
      q.image = ImageInput::path(a.value());
    else if (s == "--query-id")
      q.query_id = a.value();
    else if (s == "--text")
      q.text = a.value();
    else if (s == "--instruction")
      q.instruction = a.value();
    else if (s == "-k" || s == "--k")
      k = a.number(1, 1 << 20);
    else if (s == "--json")
      json = true;
    else if (s == "--html")
      html = a.value();
    else if (s == "--backend")
      so.backend = a.value();
    else if (s == "--help" || s == "-h") {
      std::cout << kSearchUsage;
      return 0;
    } else
      throw UsageError("search: unknown argument '" + s + "'");
  }
  if (dir.empty()) throw UsageError("search: --index is required");
  if (!q.image && !q.query_id && !q.text)
    throw UsageError("search: give --image, --query-id or --text (or an image/id with a text)");
  if (q.image && q.query_id) throw UsageError("search: give --image or --query-id, not both");
  std::unique_ptr<io::AtomicFile> page;
  if (!html.empty()) page = std::make_unique<io::AtomicFile>(html);  // unwritable: fail now
  const auto index = Index::open(dir);
  const auto model = m.load(index.model_ref(), index.revision());
  const auto hits = index.search(*model, {q}, k, so)[0];
  if (json) {
    std::cout << hits_json(hits).dump(-1, ' ', false,
                                      nlohmann::ordered_json::error_handler_t::replace)
              << "\n";
  } else {
    std::printf("%4s  %7s  %-32s  %s\n", "rank", "score", "id", "path");
    for (const auto& h : hits)
      std::printf("%4lld  %7s  %-32s  %s\n", static_cast<long long>(h.rank),
                  fmt_score(h.score).c_str(), h.id.c_str(), h.path.c_str());
  }
  if (page) {
    Query shown = q;
    if (q.query_id)
      if (const auto* r = index.find(*q.query_id)) shown.image = ImageInput::path(r->path);
    page->write(search_html(shown, hits, "bgevl search: " + dir));
    page->commit();
    std::cerr << "wrote " << html << "\n";
  }
  return 0;
}

int evaluate_main(int argc, char** argv) {
  ModelArgs m;
  std::string dir, queries_path, image_root, submission, format;
  bool json = false;
  EvalOptions eo;
  for (Args a(argc, argv, 2); a.next();) {
    const std::string s = a.arg();
    if (m.parse(a)) continue;
    if (s == "--index")
      dir = a.value();
    else if (s == "--queries")
      queries_path = a.value();
    else if (s == "-k" || s == "--k") {
      eo.ks.clear();
      std::stringstream ss(a.value());
      for (std::string part; std::getline(ss, part, ',');) {
        try {
          size_t used = 0;
          const long long v = std::stoll(part, &used);
          if (used != part.size() || v < 1 || v > (1 << 20)) throw std::invalid_argument(part);
          eo.ks.push_back(v);
        } catch (const std::exception&) {
          throw UsageError("-k takes comma-separated whole numbers >= 1, got '" + part + "'");
        }
      }
      if (eo.ks.empty()) throw UsageError("-k needs at least one number");
    } else if (s == "--json")
      json = true;
    else if (s == "--image-root")
      image_root = a.value();
    else if (s == "--submission")
      submission = a.value();
    else if (s == "--submission-format")
      format = a.value();
    else if (s == "--backend")
      eo.search.backend = a.value();
    else if (s == "--batch-size")
      eo.batch_size = a.number(1, 1 << 20);
    else if (s == "--help" || s == "-h") {
      std::cout << kEvaluateUsage;
      return 0;
    } else
      throw UsageError("evaluate: unknown argument '" + s + "'");
  }
  if (dir.empty() || queries_path.empty())
    throw UsageError("evaluate: --index and --queries are required");
  if (!submission.empty() && format.empty())
    throw UsageError("--submission needs --submission-format circo, cirr or cirr_subset");
  std::unique_ptr<io::AtomicFile> sub;
  if (!submission.empty()) sub = std::make_unique<io::AtomicFile>(submission);
  const auto queries = read_eval_queries(queries_path, image_root);
  const auto index = Index::open(dir);
  const auto model = m.load(index.model_ref(), index.revision());
  const auto res = evaluate(index, *model, queries, eo);
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    for (const auto& [name, v] : res.metrics) j[name] = v;
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%lld queries (%lld with targets) against %lld entries of %s\n",
                static_cast<long long>(res.queries), static_cast<long long>(res.labelled),
                static_cast<long long>(index.records().size()), dir.c_str());
    for (const auto& [name, v] : res.metrics) std::printf("  %-16s %.4f\n", name.c_str(), v);
  }
  if (sub) {
    sub->write(submission_json(format, queries, res));
    sub->commit();
    std::cerr << "wrote " << submission << "\n";
  }
  return 0;
}

int dataset_main(int argc, char** argv) {
  std::string name, root, split, out;
  for (Args a(argc, argv, 2); a.next();) {
    const std::string s = a.arg();
    if (s == "--root")
      root = a.value();
    else if (s == "--split")
      split = a.value();
    else if (s == "--out")
      out = a.value();
    else if (s == "--help" || s == "-h") {
      std::cout << kDatasetUsage;
      return 0;
    } else if (name.empty() && !s.empty() && s[0] != '-')
      name = s;
    else
      throw UsageError("dataset: unknown argument '" + s + "'");
  }
  if (name.empty() || root.empty() || split.empty() || out.empty())
    throw UsageError("dataset: give the name, --root, --split and --out");
  const auto [g, q] = convert_dataset(name, root, split, out);
  std::cerr << "wrote " << out << "/gallery.jsonl (" << g << " images) and " << out
            << "/queries.jsonl (" << q << " queries)\n";
  return 0;
}

}  // namespace bgevl::cli
