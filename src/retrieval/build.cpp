// Index::build: embeds a gallery part by part (resumable), then writes the next generation of
// the index folder (store.h) and commits it by renaming manifest.json.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "bgevl/errors.h"
#include "io/json.h"
#include "io/npy.h"
#include "io/util.h"
#include "retrieval/store.h"
#include "runtime/inputs.h"
#include "runtime/thread_pool.h"

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace bgevl {

bool has_faiss() {
#ifdef BGEVL_WITH_FAISS
  // BGEVL_NO_FAISS=1 makes a FAISS build behave as one without (the tests of that path).
  static const bool off = std::getenv("BGEVL_NO_FAISS") && *std::getenv("BGEVL_NO_FAISS") &&
                          std::string(std::getenv("BGEVL_NO_FAISS")) != "0";
  return !off;
#else
  return false;
#endif
}

namespace retrieval {
namespace {

// A folder as an absolute path (so that the index works from any folder); anything else (a hub
// id) as it is.
std::string absolute_if_dir(const std::string& p) {
  std::error_code ec;
  if (!fs::is_directory(p, ec)) return p;
  const auto c = fs::canonical(p, ec);
  return ec ? p : c.string();
}

std::string part_name(int64_t p, const char* ext) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "build/part-%06lld%s", static_cast<long long>(p), ext);
  return buf;
}

std::string shard_name(const char* sub, int64_t s, int64_t g) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s/%05lld.g%lld.npy", sub, static_cast<long long>(s),
                static_cast<long long>(g));
  return buf;
}

// The key of a build's inputs: a rerun continues the parts of an interrupted build only when
// it is given the same entries and settings.
std::string inputs_key(const std::vector<const GalleryEntry*>& todo, const Embedder& model,
                       const Manifest& base, const IndexOptions& o, const std::string& type,
                       torch::ScalarType dtype) {
  std::string s = absolute_if_dir(model.model_dir()) + "\n" + family_name(model.family()) + "\n" +
                  type + "\n" + dtype_name(dtype) + "\n" + std::to_string(o.chunk_size) + "\n" +
                  std::to_string(base.generation) + "\n";
  for (const auto* e : todo) {
    s += e->id + '\t' + e->path + '\t' + (e->caption ? "1" + *e->caption : "0") + '\t' +
         (e->group ? "1" + *e->group : "0") + '\n';
  }
  return io::sha256_hex(s);
}

struct Part {
  std::vector<IndexRecord> records;
  std::vector<SkippedEntry> skipped;
  int64_t rows = 0, duplicates = 0;
};

Part read_part_file(const std::string& path, const std::string& missing_hint) {
  BGEVL_CHECK(fs::exists(path), Error, path,
              ": a part the build recorded is missing: ", missing_hint);
  Part part;
  io::for_each_jsonl(
      path, "a part of the build", [&](const nlohmann::json& j, const std::string& w) {
        if (j.contains("skipped")) {
          const auto& s = j["skipped"];
          part.skipped.push_back({s.value("id", ""), s.value("path", ""), s.value("reason", "")});
          return;
        }
        part.records.push_back(record_from_json(j, w));
        if (j.value("new", false))
          ++part.rows;
        else
          ++part.duplicates;
      });
  return part;
}

Part read_part(const std::string& dir, int64_t p) {
  return read_part_file(join(dir, part_name(p, ".jsonl")),
                        "remove " + dir + "/build to start the build again");
}

// Encodes the items; when that fails, finds the items that fail on their own (an image that
// does not decode, a caption too long) and reports them in `failed` (index -> reason) instead.
torch::Tensor encode_skipping(const Embedder& model, const std::vector<EmbedItem>& items,
                              const EncodeOptions& eo, std::vector<std::string>& failed) {
  failed.assign(items.size(), "");
  if (items.empty()) return {};
  try {
    return model.encode(items, eo).to(torch::kCPU);
  } catch (const Error&) {
  }
  runtime::pool()->parallel_for(static_cast<int64_t>(items.size()), [&](int64_t i) {
    try {
      if (items[i].image) runtime::decode(*items[i].image);
    } catch (const std::exception& e) {
      failed[i] = e.what();
    }
  });
  std::vector<EmbedItem> good;
  for (size_t i = 0; i < items.size(); ++i)
    if (failed[i].empty()) good.push_back(items[i]);
  torch::Tensor out;
  try {
    out = good.empty() ? torch::Tensor() : model.encode(good, eo).to(torch::kCPU);
  } catch (const Error&) {  // not the decoding: find the items one by one
    std::vector<torch::Tensor> rows;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!failed[i].empty()) continue;
      try {
        rows.push_back(model.encode({items[i]}, eo).to(torch::kCPU));
      } catch (const Error& e) {
        failed[i] = e.what();
      }
    }
    out = rows.empty() ? torch::Tensor() : torch::cat(rows, 0);
  }
  return out;
}

struct PartOut {
  Part part;
  std::string jsonl;         // the part's lines: records ("new": first of its content) and skipped
  torch::Tensor emb, feats;  // the new rows (normalised; CLIP: also the unnormalised features)
};

// Hashes and embeds the entries `es` (a part): contents already in `row_of` (sha256 -> row) are
// duplicates of that row; new contents get rows next_row, next_row + 1, ... in order of first
// occurrence; unreadable entries are skipped (an error with opt.strict). on_done(entries done).
PartOut embed_part(const Embedder& model, const std::vector<const GalleryEntry*>& es, bool clip,
                   int64_t dim, const IndexOptions& opt,
                   const std::unordered_map<std::string, int64_t>& row_of, int64_t next_row,
                   const std::function<void(int64_t)>& on_done) {
  const int64_t m = static_cast<int64_t>(es.size());
  std::vector<std::string> hash(m), err(m);
  std::vector<int64_t> size(m);
  runtime::pool()->parallel_for(m, [&](int64_t i) {
    try {
      const std::string bytes = io::read_file(es[i]->path);
      BGEVL_CHECK_ARG(!bytes.empty(), "empty file");
      size[i] = static_cast<int64_t>(bytes.size());
      hash[i] = io::sha256_hex(bytes);
    } catch (const std::exception& e) {
      err[i] = e.what();
    }
  });
  // The new contents of this part, first occurrence first.
  std::vector<int64_t> first;  // entry index (in the part) of each item to embed
  std::unordered_map<std::string, int64_t> item_of;
  std::vector<EmbedItem> items;
  for (int64_t i = 0; i < m; ++i) {
    if (!err[i].empty() || row_of.count(hash[i]) || item_of.count(hash[i])) continue;
    item_of.emplace(hash[i], static_cast<int64_t>(items.size()));
    first.push_back(i);
    const auto& e = *es[i];
    EmbedItem it(ImageInput::path(e.path));
    if (!clip) {
      it.text = e.caption;
      it.prompt = Prompt::candidate();
    }
    items.push_back(std::move(it));
  }
  EncodeOptions eo;
  eo.batch_size = opt.batch_size;
  eo.normalize = !clip;
  eo.progress = [&](int64_t d, int64_t total) {
    if (on_done && d != total) on_done(d * m / std::max<int64_t>(total, 1));
  };
  std::vector<std::string> failed;
  const torch::Tensor out = encode_skipping(model, items, eo, failed);
  for (size_t k = 0; k < items.size(); ++k)
    if (!failed[k].empty()) err[first[k]] = failed[k];

  Part part;
  std::vector<int64_t> ok_items;
  std::unordered_map<int64_t, int64_t> new_row;  // item -> row
  for (size_t k = 0; k < items.size(); ++k)
    if (failed[k].empty()) {
      new_row[static_cast<int64_t>(k)] = next_row + static_cast<int64_t>(ok_items.size());
      ok_items.push_back(static_cast<int64_t>(k));
    }
  std::string jsonl;
  for (int64_t i = 0; i < m; ++i) {
    const auto& e = *es[i];
    std::string reason = err[i];
    int64_t row = -1;
    bool is_new = false;
    if (reason.empty()) {
      if (auto it = row_of.find(hash[i]); it != row_of.end()) {
        row = it->second;
      } else {
        const int64_t k = item_of.at(hash[i]);
        if (!failed[k].empty()) {
          reason = failed[k];  // the same bytes as an entry that failed
        } else {
          row = new_row.at(k);
          is_new = first[k] == i;
        }
      }
    }
    if (!reason.empty()) {
      BGEVL_CHECK_ARG(!opt.strict, "cannot index '", e.id, "' (", e.path, "): ", reason,
                      " (without --strict such files are skipped and listed)");
      part.skipped.push_back({e.id, e.path, reason});
      jsonl += dump_line({{"skipped", {{"id", e.id}, {"path", e.path}, {"reason", reason}}}});
      continue;
    }
    IndexRecord r{e.id, e.path, e.caption, e.group, size[i], hash[i], row};
    auto j = record_json(r);
    j["new"] = is_new;
    jsonl += dump_line(j);
    part.records.push_back(r);
    if (is_new)
      ++part.rows;
    else
      ++part.duplicates;
  }
  torch::Tensor emb, feats;
  if (!ok_items.empty()) {
    const auto rows = out;  // encode_skipping returned the good items' rows in order
    if (clip) {
      feats = rows;
      emb = runtime::l2_normalize(rows);
    } else {
      emb = rows;
    }
  } else {
    emb = torch::zeros({0, dim});
    feats = torch::zeros({0, dim});
  }
  BGEVL_CHECK(emb.size(0) == part.rows, Error, "internal: ", emb.size(0), " rows for ", part.rows,
              " new entries");
  BGEVL_CHECK(emb.size(0) == part.rows, Error, "internal: ", emb.size(0), " rows for ", part.rows,
              " new entries");
  return {std::move(part), std::move(jsonl), emb, feats};
}

void write_tensor(const std::string& path, const torch::Tensor& t, torch::ScalarType dtype) {
  io::AtomicFile f(path);
  io::write_npy(f, t, dtype);
  f.commit();
}

// Streams rows into shards of at most shard_size rows: the kept shards of the base, then (its
// last shard rewritten when it was not full) the rows of the parts.
std::vector<ShardFile> write_shards(const std::string& dir, const char* sub,
                                    const std::vector<ShardFile>& base,
                                    const std::vector<std::string>& parts, int64_t new_rows,
                                    int64_t shard_size, int64_t generation, int64_t dim,
                                    torch::ScalarType dtype) {
  std::vector<ShardFile> out = base;
  if (new_rows == 0) return out;
  std::vector<torch::Tensor> sources;
  if (!out.empty() && out.back().rows < shard_size) {
    sources.push_back(io::map_npy(join(dir, out.back().file)));
    out.pop_back();
  }
  for (const auto& p : parts) {
    auto t = io::map_npy(join(dir, p));
    if (t.size(0) > 0) sources.push_back(t);
  }
  int64_t total = 0;
  for (const auto& t : sources) {
    BGEVL_CHECK_ARG(t.size(1) == dim && t.scalar_type() == dtype, dir,
                    ": a part or shard does not match the index's dimension or dtype");
    total += t.size(0);
  }
  fs::create_directories(join(dir, sub));
  size_t src = 0;
  int64_t offset = 0;
  while (total > 0) {
    const int64_t rows = std::min(total, shard_size);
    ShardFile sf{shard_name(sub, static_cast<int64_t>(out.size()), generation), rows};
    io::AtomicFile f(join(dir, sf.file));
    f.write(io::npy_header(rows, dim, dtype));
    for (int64_t left = rows; left > 0;) {
      const auto& t = sources[src];
      const int64_t take = std::min(left, t.size(0) - offset);
      const auto piece = t.slice(0, offset, offset + take).contiguous();
      f.write(piece.data_ptr(), static_cast<size_t>(piece.numel()) * piece.element_size());
      left -= take;
      offset += take;
      if (offset == t.size(0)) ++src, offset = 0;
    }
    f.commit();
    out.push_back(sf);
    total -= rows;
  }
  return out;
}

void remove_unreferenced(const std::string& dir, const Manifest& m) {
  std::unordered_set<std::string> keep = {"manifest.json", m.metadata, m.ann_file};
  for (const auto& s : m.shards) keep.insert(s.file);
  for (const auto& s : m.feature_shards) keep.insert(s.file);
  std::error_code ec;
  fs::remove_all(join(dir, "build"), ec);
  for (const char* sub : {"", "embeddings", "features"}) {
    const std::string d = *sub ? join(dir, sub) : dir;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string name = e.path().filename().string();
      const std::string rel = *sub ? std::string(sub) + "/" + name : name;
      const bool ours = name.rfind("metadata.g", 0) == 0 || name.rfind("ann.g", 0) == 0 ||
                        (*sub && name.size() > 4 && name.substr(name.size() - 4) == ".npy");
      if (ours && e.is_regular_file(ec) && !keep.count(rel)) fs::remove(e.path(), ec);
    }
  }
}

void maybe_kill_for_tests(int64_t parts_done) {
  // Tests of resuming: the process kills itself (SIGKILL: nothing is cleaned up) after writing
  // this many parts, exactly as an interruption there would.
  const char* v = std::getenv("BGEVL_TEST_KILL_AFTER_PARTS");
  if (v && std::atoll(v) == parts_done) ::kill(::getpid(), SIGKILL);
}

// Writes the next generation from the base and the parts (in build/), commits it by renaming
// manifest.json, and removes what it no longer names.
void finalize(const std::string& dir, const Manifest& base,
              const std::vector<IndexRecord>& base_records, const std::vector<Part>& parts,
              bool clip, int64_t shard_size) {
  const int64_t n_parts = static_cast<int64_t>(parts.size());
  const int64_t dim = base.dim;
  const torch::ScalarType dtype = dtype_from_name(base.dtype);
  Manifest next = base;
  next.generation = base.generation + 1;
  int64_t new_rows = 0;
  std::vector<std::string> emb_parts, feat_parts;
  for (int64_t p = 0; p < n_parts; ++p) {
    new_rows += parts[p].rows;
    emb_parts.push_back(part_name(p, ".npy"));
    feat_parts.push_back(part_name(p, ".features.npy"));
  }
  next.shards = write_shards(dir, "embeddings", base.shards, emb_parts, new_rows, shard_size,
                             next.generation, dim, dtype);
  if (clip)
    next.feature_shards = write_shards(dir, "features", base.feature_shards, feat_parts, new_rows,
                                       shard_size, next.generation, dim, dtype);
  next.rows = base.rows + new_rows;
  next.metadata = "metadata.g" + std::to_string(next.generation) + ".jsonl";
  {
    io::AtomicFile meta(join(dir, next.metadata));
    for (const auto& r : base_records) meta.write(dump_line(record_json(r)));
    for (const auto& part : parts) {
      for (const auto& r : part.records) meta.write(dump_line(record_json(r)));
      next.duplicates += part.duplicates;
      next.skipped.insert(next.skipped.end(), part.skipped.begin(), part.skipped.end());
    }
    meta.commit();
  }
  if (next.index_type != "flat" && next.rows > 0) {
    AnnPtr ann;
    if (!base.ann_file.empty()) {
      ann = ann_read(join(dir, base.ann_file));
    } else {
      ann = ann_create(next.index_type, dim, next.rows, next.ann_params);
      // Training sample: evenly spaced rows, at most 65536 of them.
      const int64_t want = std::min<int64_t>(next.rows, 65536);
      std::vector<torch::Tensor> pieces;
      int64_t start = 0;
      for (const auto& s : next.shards) {
        auto t = io::map_npy(join(dir, s.file));
        const int64_t step = std::max<int64_t>(1, next.rows / want);
        const int64_t first = (step - start % step) % step;
        if (first < t.size(0))
          pieces.push_back(t.slice(0, first, t.size(0), step).to(torch::kFloat32));
        start += t.size(0);
      }
      ann_train(*ann, torch::cat(pieces, 0).contiguous());
    }
    int64_t have = ann_rows(*ann), start = 0;
    for (const auto& s : next.shards) {
      auto t = io::map_npy(join(dir, s.file));
      const int64_t from = std::max<int64_t>(0, have - start);
      for (int64_t r = from; r < t.size(0); r += 65536)
        ann_add(*ann, t.slice(0, r, std::min(t.size(0), r + 65536)).to(torch::kFloat32));
      start += t.size(0);
    }
    next.ann_file = "ann.g" + std::to_string(next.generation) + ".faiss";
    ann_write(*ann, join(dir, next.ann_file));
  }
  int64_t entries_total = static_cast<int64_t>(base_records.size());
  for (const auto& part : parts) entries_total += static_cast<int64_t>(part.records.size());
  io::write_file_atomic(join(dir, "manifest.json"), next.to_json(entries_total).dump(2) + "\n");
  remove_unreferenced(dir, next);
}

}  // namespace
}  // namespace retrieval

IndexProgress Index::build(const Embedder& model, const std::vector<GalleryEntry>& entries,
                           const std::string& dir, const IndexOptions& opt) {
  using namespace retrieval;
  runtime::after_fork_fixups();
  BGEVL_CHECK_ARG(!dir.empty(), "no index folder given");
  BGEVL_CHECK_ARG(!entries.empty(), "no gallery entries to index (empty list)");
  BGEVL_CHECK_ARG(opt.chunk_size >= 1 && opt.chunk_size <= (1 << 24),
                  "chunk_size must be from 1 to 16777216, got ", opt.chunk_size);
  BGEVL_CHECK_ARG(opt.shard_size >= 1, "shard_size must be positive, got ", opt.shard_size);
  BGEVL_CHECK_ARG(opt.index_type == "flat" || opt.index_type == "hnsw" || opt.index_type == "ivfpq",
                  "index type must be flat, hnsw or ivfpq, got '", opt.index_type, "'");
  dtype_name(opt.dtype);
  {
    std::unordered_set<std::string> ids;
    for (const auto& e : entries) {
      BGEVL_CHECK_ARG(!e.id.empty() && !e.path.empty(), "a gallery entry needs an id and a path");
      BGEVL_CHECK_ARG(ids.insert(e.id).second, "the id '", e.id, "' is given twice");
    }
  }
  const bool clip = model.family() == Family::Clip;
  const int64_t dim = model.embedding_dim();
  std::error_code ec;
  fs::create_directories(dir, ec);
  BGEVL_CHECK(!ec && fs::is_directory(dir), Error, "cannot create the index folder ", dir, " (",
              ec.message(), ")");

  Manifest base;
  std::vector<IndexRecord> base_records;
  if (has_manifest(dir)) {
    base = read_manifest(dir);
    BGEVL_CHECK_ARG(opt.add, dir, " already holds a complete index (", base.rows,
                    " rows): --add (IndexOptions::add) appends new files to it; give a new "
                    "folder for another index");
    BGEVL_CHECK_ARG(base.family == family_name(model.family()) && base.dim == dim, dir,
                    " was built with a ", base.family, " model of dimension ", base.dim,
                    ", not this ", family_name(model.family()), " model of dimension ", dim);
    BGEVL_CHECK_ARG(base.model_dir == absolute_if_dir(model.model_dir()), dir,
                    " was built with the model in ", base.model_dir,
                    "; load that model to add to it (this one is in ", model.model_dir(), ")");
    base_records = read_records(join(dir, base.metadata));
  } else {
    base.model = absolute_if_dir(opt.model_ref.empty() ? model.model_dir() : opt.model_ref);
    base.model_dir = absolute_if_dir(model.model_dir());
    base.revision = model.revision();
    base.family = family_name(model.family());
    base.dtype = dtype_name(opt.dtype);
    base.index_type = opt.index_type;
    base.dim = dim;
  }
  const torch::ScalarType dtype = dtype_from_name(base.dtype);
  BGEVL_CHECK_ARG(base.index_type == "flat" || has_faiss(),
                  "this bgevl was built without FAISS: ", base.index_type,
                  " needs it (flat, exact search, works in every build)");

  IndexProgress prog;
  std::vector<const GalleryEntry*> todo;
  {
    std::unordered_set<std::string> have;
    for (const auto& r : base_records) have.insert(r.id);
    for (const auto& s : base.skipped) have.insert(s.id);
    for (const auto& e : entries)
      if (have.count(e.id))
        ++prog.already;
      else
        todo.push_back(&e);
  }
  prog.total = static_cast<int64_t>(todo.size());
  if (todo.empty()) {
    if (opt.progress) opt.progress(prog);
    return prog;
  }

  // The build folder: resume the parts of an interrupted build of the same inputs.
  const std::string key = inputs_key(todo, model, base, opt, base.index_type, dtype);
  const std::string progress_path = join(dir, "build/progress.json");
  std::vector<Part> parts;
  if (fs::exists(progress_path)) {
    const auto j = io::read_json_file(progress_path);
    BGEVL_CHECK_ARG(j.value("key", "") == key, dir,
                    " holds an unfinished build of other inputs or settings: rerun it with the "
                    "same ones to finish it, or remove ",
                    dir, "/build to start over");
    const int64_t done = j.value("parts", int64_t(0));
    for (int64_t p = 0; p < done; ++p) parts.push_back(read_part(dir, p));
  } else {
    fs::create_directories(join(dir, "build"));
    io::write_file_atomic(progress_path, ojson({{"key", key}, {"parts", 0}}).dump(2) + "\n");
  }

  std::unordered_map<std::string, int64_t> row_of;  // sha256 -> row
  for (const auto& r : base_records) row_of.emplace(r.sha256, r.row);
  int64_t next_row = base.rows;
  const int64_t C = opt.chunk_size;
  for (const auto& part : parts) {
    for (const auto& r : part.records) row_of.emplace(r.sha256, r.row);
    next_row += part.rows;
    prog.resumed += static_cast<int64_t>(part.records.size() + part.skipped.size());
    prog.done = prog.resumed;
  }
  if (opt.progress) opt.progress(prog);

  const int64_t n_parts = (prog.total + C - 1) / C;
  for (int64_t p = static_cast<int64_t>(parts.size()); p < n_parts; ++p) {
    const int64_t lo = p * C, hi = std::min(prog.total, lo + C), m = hi - lo;
    const int64_t done_before = prog.done;
    const std::vector<const GalleryEntry*> slice(todo.begin() + lo, todo.begin() + hi);
    auto [part, jsonl, emb, feats] =
        embed_part(model, slice, clip, dim, opt, row_of, next_row, [&](int64_t d) {
          if (!opt.progress) return;
          IndexProgress now = prog;
          now.done = done_before + d;
          opt.progress(now);
        });
    write_tensor(join(dir, part_name(p, ".npy")), emb, dtype);
    if (clip) write_tensor(join(dir, part_name(p, ".features.npy")), feats, dtype);
    io::write_file_atomic(join(dir, part_name(p, ".jsonl")), jsonl);
    io::write_file_atomic(progress_path, ojson({{"key", key}, {"parts", p + 1}}).dump(2) + "\n");
    for (const auto& r : part.records) row_of.emplace(r.sha256, r.row);
    next_row += part.rows;
    prog.embedded += part.rows;
    prog.duplicates += part.duplicates;
    prog.skipped += static_cast<int64_t>(part.skipped.size());
    prog.done = done_before + m;
    parts.push_back(std::move(part));
    if (opt.progress) opt.progress(prog);
    maybe_kill_for_tests(p + 1);
  }

  finalize(dir, base, base_records, parts, clip, opt.shard_size);
  return prog;
}

void Index::build_from_vectors(const torch::Tensor& vectors, const std::vector<std::string>& ids,
                               const std::string& dir, const IndexOptions& opt) {
  using namespace retrieval;
  BGEVL_CHECK_ARG(vectors.dim() == 2 && vectors.size(0) == static_cast<int64_t>(ids.size()) &&
                      vectors.size(1) > 0,
                  "vectors must be [N, D] with one id per row");
  BGEVL_CHECK_ARG(!has_manifest(dir), dir, " already holds an index; give a new folder");
  BGEVL_CHECK_ARG(opt.index_type == "flat" || has_faiss(),
                  "this bgevl was built without FAISS: ", opt.index_type, " needs it");
  fs::create_directories(join(dir, "build"));
  Manifest base;
  base.family = "vectors";
  base.dtype = dtype_name(opt.dtype);
  base.index_type = opt.index_type;
  base.dim = vectors.size(1);
  Part part;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < ids.size(); ++i) {
    BGEVL_CHECK_ARG(seen.insert(ids[i]).second, "the id '", ids[i], "' is given twice");
    part.records.push_back(
        {ids[i], "", std::nullopt, std::nullopt, 0, "", static_cast<int64_t>(i)});
  }
  part.rows = vectors.size(0);
  write_tensor(join(dir, part_name(0, ".npy")), vectors, opt.dtype);
  finalize(dir, base, {}, {part}, false, opt.shard_size);
}

// ---- distributed builds: partitions embedded anywhere, merged into one index ------------------

namespace retrieval {
namespace {

std::string partition_name(int64_t p, const char* ext) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "build/partitions/p-%06lld%s", static_cast<long long>(p), ext);
  return buf;
}

std::string slice_key(const GalleryEntry* const* es, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s += es[i]->id + '\t' + es[i]->path + '\t' + (es[i]->caption ? "1" + *es[i]->caption : "0") +
         '\t' + (es[i]->group ? "1" + *es[i]->group : "0") + '\n';
  return io::sha256_hex(s);
}

std::string plan_path(const std::string& dir) { return join(dir, "build/partitions/plan.json"); }

nlohmann::json read_plan(const std::string& dir) {
  const std::string path = plan_path(dir);
  BGEVL_CHECK(fs::exists(path), FileNotFoundError, dir,
              " has no partition plan (build/partitions/plan.json): plan the build first "
              "(bgevl.dask.index, or bgevl index --num-shards N --shard-index I)");
  const auto j = io::read_json_file(path);
  BGEVL_CHECK_ARG(j.is_object() && j.contains("partitions") && j.contains("part_keys"), path,
                  ": not a partition plan");
  return j;
}

}  // namespace
}  // namespace retrieval

PartitionPlan Index::plan_partitions(const std::vector<GalleryEntry>& entries,
                                     const std::string& dir, const std::string& model_ref,
                                     const IndexOptions& opt) {
  using namespace retrieval;
  BGEVL_CHECK_ARG(!entries.empty(), "no gallery entries to index (empty list)");
  BGEVL_CHECK_ARG(opt.chunk_size >= 1 && opt.chunk_size <= (1 << 24),
                  "chunk_size must be from 1 to 16777216, got ", opt.chunk_size);
  BGEVL_CHECK_ARG(opt.index_type == "flat" || opt.index_type == "hnsw" || opt.index_type == "ivfpq",
                  "index type must be flat, hnsw or ivfpq, got '", opt.index_type, "'");
  BGEVL_CHECK_ARG(opt.index_type == "flat" || has_faiss(),
                  "this bgevl was built without FAISS: ", opt.index_type, " needs it");
  BGEVL_CHECK_ARG(!opt.add, "a distributed build makes a new index (no --add)");
  {
    std::unordered_set<std::string> ids;
    for (const auto& e : entries) {
      BGEVL_CHECK_ARG(!e.id.empty() && !e.path.empty(), "a gallery entry needs an id and a path");
      BGEVL_CHECK_ARG(ids.insert(e.id).second, "the id '", e.id, "' is given twice");
    }
  }
  BGEVL_CHECK_ARG(!has_manifest(dir), dir,
                  " already holds a complete index: give a new folder (a distributed build "
                  "does not add to one)");
  BGEVL_CHECK_ARG(!fs::exists(join(dir, "build/progress.json")), dir,
                  " holds an unfinished single-process build: finish it with bgevl index, or "
                  "remove ",
                  dir, "/build");
  fs::create_directories(join(dir, "build/partitions"));
  const int64_t n = static_cast<int64_t>(entries.size()), C = opt.chunk_size;
  std::vector<const GalleryEntry*> ptrs;
  for (const auto& e : entries) ptrs.push_back(&e);
  auto keys = nlohmann::ordered_json::array();
  for (int64_t lo = 0; lo < n; lo += C)
    keys.push_back(slice_key(ptrs.data() + lo, static_cast<size_t>(std::min(C, n - lo))));
  const std::string model = absolute_if_dir(model_ref);
  std::string all;
  for (const auto& k : keys) all += k.get<std::string>();
  const std::string key = io::sha256_hex(model + "\n" + dtype_name(opt.dtype) + "\n" +
                                         opt.index_type + "\n" + std::to_string(C) + "\n" + all);
  {
    io::FileLock lock(join(dir, "build/partitions/plan.lock"));
    if (fs::exists(plan_path(dir))) {
      const auto j = read_plan(dir);
      BGEVL_CHECK_ARG(j.value("key", "") == key, dir,
                      " holds the partitions of a distributed build of other entries or "
                      "settings: rerun that one to finish it, or remove ",
                      dir, "/build to start over");
    } else {
      ojson j = {{"key", key},
                 {"partitions", keys.size()},
                 {"entries", n},
                 {"chunk_size", C},
                 {"model", model},
                 {"dtype", dtype_name(opt.dtype)},
                 {"index_type", opt.index_type},
                 {"part_keys", keys}};
      io::write_file_atomic(plan_path(dir), j.dump(1) + "\n");
    }
  }
  PartitionPlan plan;
  plan.partitions = static_cast<int64_t>(keys.size());
  for (int64_t p = 0; p < plan.partitions; ++p) {
    if (fs::exists(join(dir, partition_name(p, ".jsonl"))))
      ++plan.done;
    else
      plan.missing.push_back(p);
  }
  return plan;
}

IndexProgress Index::build_partition(const Embedder& model, const std::vector<GalleryEntry>& part,
                                     const std::string& dir, int64_t p, const IndexOptions& opt) {
  using namespace retrieval;
  runtime::after_fork_fixups();
  const auto plan = read_plan(dir);
  const int64_t P = plan["partitions"].get<int64_t>();
  BGEVL_CHECK_ARG(p >= 0 && p < P, "partition ", p, " is not one of the plan's 0..", P - 1);
  std::vector<const GalleryEntry*> ptrs;
  for (const auto& e : part) ptrs.push_back(&e);
  BGEVL_CHECK_ARG(!ptrs.empty() && slice_key(ptrs.data(), ptrs.size()) ==
                                       plan["part_keys"][p].get<std::string>(),
                  "partition ", p, " was given other entries than the plan in ", dir, " holds");
  BGEVL_CHECK_ARG(plan["dtype"].get<std::string>() == dtype_name(opt.dtype) &&
                      plan["index_type"].get<std::string>() == opt.index_type,
                  "partition ", p, ": dtype or index type differ from the plan's");
  IndexProgress prog;
  prog.total = static_cast<int64_t>(part.size());
  const std::string done_file = join(dir, partition_name(p, ".jsonl"));
  if (fs::exists(done_file)) {  // done by an earlier run or another worker
    prog.done = prog.resumed = prog.total;
    return prog;
  }
  const bool clip = model.family() == Family::Clip;
  const auto [out, jsonl, emb, feats] =
      embed_part(model, ptrs, clip, model.embedding_dim(), opt, {}, 0, [&](int64_t d) {
        if (!opt.progress) return;
        IndexProgress now = prog;
        now.done = d;
        opt.progress(now);
      });
  const torch::ScalarType dtype = dtype_from_name(plan["dtype"].get<std::string>());
  write_tensor(join(dir, partition_name(p, ".npy")), emb, dtype);
  if (clip) write_tensor(join(dir, partition_name(p, ".features.npy")), feats, dtype);
  const ojson meta = {{"model_dir", absolute_if_dir(model.model_dir())},
                      {"revision", model.revision()},
                      {"family", family_name(model.family())},
                      {"dim", model.embedding_dim()}};
  io::write_file_atomic(join(dir, partition_name(p, ".json")), meta.dump(1) + "\n");
  // Tests of a worker killed mid-partition: die once (the marker file says it happened).
  if (const char* f = std::getenv("BGEVL_TEST_KILL_ONCE_FILE"); f && *f && !fs::exists(f)) {
    io::write_file_atomic(f, "killed\n");
    ::kill(::getpid(), SIGKILL);
  }
  io::write_file_atomic(done_file, jsonl);  // the partition's commit
  prog.done = prog.total;
  prog.embedded = out.rows;
  prog.duplicates = out.duplicates;
  prog.skipped = static_cast<int64_t>(out.skipped.size());
  return prog;
}

bool Index::merge_partitions(const std::string& dir, const IndexOptions& opt) {
  using namespace retrieval;
  const auto plan = read_plan(dir);
  io::FileLock lock(join(dir, "build/partitions/merge.lock"));
  if (has_manifest(dir)) return false;  // another process merged meanwhile
  const int64_t P = plan["partitions"].get<int64_t>();
  std::vector<int64_t> missing;
  for (int64_t p = 0; p < P; ++p)
    if (!fs::exists(join(dir, partition_name(p, ".jsonl")))) missing.push_back(p);
  BGEVL_CHECK(missing.empty(), Error, dir, ": ", missing.size(), " of ", P,
              " partitions are not done yet (the first: ", missing.front(),
              "); run the remaining ones, then merge");
  Manifest base;
  base.model = plan["model"].get<std::string>();
  base.dtype = plan["dtype"].get<std::string>();
  base.index_type = plan["index_type"].get<std::string>();
  const torch::ScalarType dtype = dtype_from_name(base.dtype);
  std::unordered_map<std::string, int64_t> row_of;
  int64_t next_row = 0;
  std::vector<Part> parts;
  bool clip = false;
  for (int64_t p = 0; p < P; ++p) {
    const auto meta = io::read_json_file(join(dir, partition_name(p, ".json")));
    if (p == 0) {
      base.model_dir = meta.value("model_dir", "");
      base.revision = meta.value("revision", "");
      base.family = meta.value("family", "");
      base.dim = meta.value("dim", int64_t(0));
      clip = base.family == "clip";
    }
    BGEVL_CHECK_ARG(meta.value("model_dir", "") == base.model_dir &&
                        meta.value("family", "") == base.family &&
                        meta.value("dim", int64_t(0)) == base.dim,
                    dir, ": partition ", p, " was embedded by another model (",
                    meta.value("model_dir", ""), ") than partition 0 (", base.model_dir, ")");
    Part local = read_part_file(join(dir, partition_name(p, ".jsonl")), "");
    const auto emb = io::map_npy(join(dir, partition_name(p, ".npy")));
    torch::Tensor feats;
    if (clip) feats = io::map_npy(join(dir, partition_name(p, ".features.npy")));
    BGEVL_CHECK_ARG(emb.size(0) == local.rows && emb.size(1) == base.dim, dir, ": partition ", p,
                    " holds ", emb.size(0), " rows for ", local.rows, " new entries");
    Part merged;
    merged.skipped = local.skipped;
    std::vector<int64_t> take;
    for (auto r : local.records) {
      if (auto it = row_of.find(r.sha256); it != row_of.end()) {
        r.row = it->second;
        ++merged.duplicates;
      } else {
        take.push_back(r.row);  // its local row: new within the partition too
        r.row = next_row++;
        row_of.emplace(r.sha256, r.row);
        ++merged.rows;
      }
      merged.records.push_back(std::move(r));
    }
    const auto idx = torch::tensor(take, torch::kLong);
    write_tensor(join(dir, part_name(p, ".npy")), emb.index_select(0, idx), dtype);
    if (clip)
      write_tensor(join(dir, part_name(p, ".features.npy")), feats.index_select(0, idx), dtype);
    parts.push_back(std::move(merged));
  }
  finalize(dir, base, {}, parts, clip, opt.shard_size);
  return true;
}

}  // namespace bgevl
