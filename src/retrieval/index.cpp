// Index::open and searching: queries embedded by the model (an indexed id reuses the stored
// image features for CLIP), exact search by libtorch (matmul + top-k) or FAISS.
#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "bgevl/errors.h"
#include "io/npy.h"
#include "retrieval/store.h"
#include "runtime/inputs.h"

namespace bgevl {

using namespace retrieval;

struct Index::Impl {
  std::string dir;
  Manifest manifest;
  std::string manifest_text;
  std::vector<IndexRecord> records;
  std::unordered_map<std::string, size_t> by_id;
  std::vector<std::vector<size_t>> ids_of_row;  // row -> records
  std::vector<torch::Tensor> shards, feature_shards;
  mutable std::mutex ann_mutex;
  mutable AnnPtr ann;  // hnsw / ivfpq read at open; flat built on the first FAISS search

  torch::Tensor features_row(int64_t row) const { return row_of(feature_shards, row); }
  static torch::Tensor row_of(const std::vector<torch::Tensor>& shards, int64_t row) {
    for (const auto& t : shards) {
      if (row < t.size(0)) return t[row];
      row -= t.size(0);
    }
    throw Error("internal: row outside the features");
  }
};

Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;
Index::~Index() = default;

Index Index::open(const std::string& dir) {
  auto m = std::make_unique<Impl>();
  m->dir = dir;
  m->manifest = read_manifest(dir);
  m->manifest_text = io::read_file(join(dir, "manifest.json"));
  m->records = read_records(join(dir, m->manifest.metadata));
  m->ids_of_row.resize(static_cast<size_t>(m->manifest.rows));
  for (size_t i = 0; i < m->records.size(); ++i) {
    const auto& r = m->records[i];
    BGEVL_CHECK_ARG(r.row >= 0 && r.row < m->manifest.rows, dir, ": record '", r.id, "' names row ",
                    r.row, " of ", m->manifest.rows);
    BGEVL_CHECK_ARG(m->by_id.emplace(r.id, i).second, dir, ": the id '", r.id, "' is listed twice");
    m->ids_of_row[static_cast<size_t>(r.row)].push_back(i);
  }
  const auto dtype = dtype_from_name(m->manifest.dtype);
  auto map_all = [&](const std::vector<ShardFile>& files, std::vector<torch::Tensor>& out) {
    for (const auto& s : files) {
      auto t = io::map_npy(join(dir, s.file));
      BGEVL_CHECK_ARG(
          t.size(0) == s.rows && t.size(1) == m->manifest.dim && t.scalar_type() == dtype,
          join(dir, s.file), ": does not match the manifest (", s.rows, " x ", m->manifest.dim, " ",
          m->manifest.dtype, ")");
      out.push_back(t);
    }
  };
  map_all(m->manifest.shards, m->shards);
  map_all(m->manifest.feature_shards, m->feature_shards);
  if (!m->manifest.ann_file.empty()) {
    BGEVL_CHECK_ARG(has_faiss(), dir, " is a ", m->manifest.index_type,
                    " index: this bgevl was built without FAISS, which searches it");
    m->ann = ann_read(join(dir, m->manifest.ann_file));
    BGEVL_CHECK_ARG(ann_rows(*m->ann) == m->manifest.rows, dir, ": the FAISS index holds ",
                    ann_rows(*m->ann), " vectors, the manifest ", m->manifest.rows);
  }
  return Index(std::move(m));
}

const std::string& Index::dir() const { return impl_->dir; }
std::string Index::manifest_json() const { return impl_->manifest_text; }
std::string Index::model_ref() const { return impl_->manifest.model; }
std::string Index::revision() const { return impl_->manifest.revision; }
Family Index::family() const {
  return impl_->manifest.family == family_name(Family::Clip) ? Family::Clip : Family::LlavaNext;
}
int64_t Index::dim() const { return impl_->manifest.dim; }
int64_t Index::rows() const { return impl_->manifest.rows; }
torch::ScalarType Index::dtype() const { return dtype_from_name(impl_->manifest.dtype); }
std::string Index::index_type() const { return impl_->manifest.index_type; }
const std::vector<IndexRecord>& Index::records() const { return impl_->records; }
const std::vector<SkippedEntry>& Index::skipped() const { return impl_->manifest.skipped; }

const IndexRecord* Index::find(const std::string& id) const {
  auto it = impl_->by_id.find(id);
  return it == impl_->by_id.end() ? nullptr : &impl_->records[it->second];
}

std::vector<std::string> Index::shard_files() const {
  std::vector<std::string> out;
  for (const auto& s : impl_->manifest.shards) out.push_back(join(impl_->dir, s.file));
  return out;
}

torch::Tensor Index::embeddings(std::optional<int64_t> shard) const {
  const auto& s = impl_->shards;
  if (shard) {
    BGEVL_CHECK_ARG(*shard >= 0 && *shard < static_cast<int64_t>(s.size()), "shard ", *shard,
                    " out of range (the index has ", s.size(), ")");
    return s[*shard];
  }
  if (s.size() == 1) return s[0];
  if (s.empty()) return torch::zeros({0, dim()}, dtype());
  return torch::cat(s, 0);
}

torch::Tensor Index::embeddings_of(const std::vector<std::string>& ids) const {
  std::vector<torch::Tensor> rows;
  for (const auto& id : ids) {
    const auto* r = find(id);
    BGEVL_CHECK_ARG(r, "no entry '", id, "' in the index ", impl_->dir);
    rows.push_back(Impl::row_of(impl_->shards, r->row).to(torch::kFloat32));
  }
  return rows.empty() ? torch::zeros({0, dim()}) : torch::stack(rows, 0);
}

torch::Tensor Index::image_features(const std::vector<std::string>& ids) const {
  BGEVL_CHECK_ARG(!impl_->feature_shards.empty(),
                  "this index keeps no image features (only BGE-VL-CLIP indexes do)");
  std::vector<torch::Tensor> rows;
  for (const auto& id : ids) {
    const auto* r = find(id);
    BGEVL_CHECK_ARG(r, "no entry '", id, "' in the index ", impl_->dir);
    rows.push_back(impl_->features_row(r->row).to(torch::kFloat32));
  }
  return torch::stack(rows, 0);
}

std::string preset_instruction(const std::string& name) {
  if (name == "cir") return kComposedRetrievalInstruction;
  if (name == "t2i") return "Find me an image that matches the given caption: ";
  if (name == "i2t") return "Find an image caption describing the given image: ";
  return name;
}

torch::Tensor Index::embed_queries(const Embedder& model, const std::vector<Query>& queries) const {
  BGEVL_CHECK_ARG(!queries.empty(), "no queries given (empty list)");
  BGEVL_CHECK_ARG(
      family_name(model.family()) == impl_->manifest.family && model.embedding_dim() == dim(),
      "the index was built with a ", impl_->manifest.family, " model of dimension ", dim(), " (",
      model_ref(), "), not this ", family_name(model.family()), " model of dimension ",
      model.embedding_dim());
  const bool clip = model.family() == Family::Clip;
  std::vector<EmbedItem> items(queries.size());
  std::vector<int64_t> feature_row(queries.size(), -1);
  for (size_t i = 0; i < queries.size(); ++i) {
    const auto& q = queries[i];
    BGEVL_CHECK_ARG(!(q.image && q.query_id), "query ", i,
                    ": give an image or an indexed id (query_id), not both");
    BGEVL_CHECK_ARG(q.image || q.query_id || q.text, "query ", i,
                    ": empty (give an image, a query_id or a text)");
    BGEVL_CHECK_ARG(!(clip && q.instruction), "query ", i,
                    ": BGE-VL-CLIP takes no instruction (instructions are BGE-VL-MLLM's)");
    auto& it = items[i];
    it.text = q.text;
    if (!clip) {
      it.prompt.role = Role::Query;
      if (q.instruction) it.prompt.instruction = preset_instruction(*q.instruction);
    }
    if (q.image) it.image = *q.image;
    if (q.query_id) {
      const auto* r = find(*q.query_id);
      BGEVL_CHECK_ARG(r, "query ", i, ": no entry '", *q.query_id, "' in the index ", impl_->dir);
      if (clip && !impl_->feature_shards.empty())
        feature_row[i] = r->row;
      else
        it.image = ImageInput::path(r->path);
    }
  }
  // CLIP queries on an indexed image: its stored features + the text's projected features.
  std::vector<EmbedItem> direct;
  std::vector<size_t> direct_at, reuse_at;
  std::vector<EmbedItem> reuse_texts;
  for (size_t i = 0; i < items.size(); ++i) {
    if (feature_row[i] < 0) {
      direct.push_back(items[i]);
      direct_at.push_back(i);
    } else {
      reuse_at.push_back(i);
      if (items[i].text) reuse_texts.push_back(EmbedItem(*items[i].text));
    }
  }
  torch::Tensor out =
      torch::empty({static_cast<int64_t>(items.size()), dim()},
                   torch::TensorOptions().dtype(torch::kFloat32).device(model.device()));
  if (!direct.empty()) {
    const auto e = model.encode(direct, {});
    for (size_t k = 0; k < direct_at.size(); ++k) out[static_cast<int64_t>(direct_at[k])] = e[k];
  }
  if (!reuse_at.empty()) {
    torch::Tensor texts;
    if (!reuse_texts.empty()) {
      EncodeOptions eo;
      eo.normalize = false;
      texts = model.encode(reuse_texts, eo);
    }
    int64_t t = 0;
    for (size_t i : reuse_at) {
      auto f = impl_->features_row(feature_row[i]).to(model.device(), torch::kFloat32);
      if (items[i].text) f = f + texts[t++];
      out[static_cast<int64_t>(i)] = runtime::l2_normalize(f.unsqueeze(0))[0];
    }
  }
  return out;
}

std::vector<std::vector<SearchHit>> Index::search(const torch::Tensor& queries, int64_t k,
                                                  const SearchOptions& o) const {
  const auto& m = *impl_;
  BGEVL_CHECK_ARG(k >= 1, "k must be at least 1, got ", k);
  BGEVL_CHECK_ARG(queries.dim() == 2 && queries.size(1) == dim(), "queries must be [Q, ", dim(),
                  "], got ", queries.sizes());
  BGEVL_CHECK_ARG(o.backend == "auto" || o.backend == "faiss" || o.backend == "torch",
                  "search backend must be auto, faiss or torch, got '", o.backend, "'");
  BGEVL_CHECK_ARG(o.backend != "faiss" || has_faiss(),
                  "the faiss backend needs a build with FAISS (this one has none): use torch");
  const int64_t Q = queries.size(0);
  std::vector<std::vector<SearchHit>> out(static_cast<size_t>(Q));
  if (rows() == 0 || Q == 0) return out;

  std::vector<int64_t> excluded_rows;
  for (const auto& id : o.exclude)
    if (const auto* r = find(id)) excluded_rows.push_back(r->row);
  std::sort(excluded_rows.begin(), excluded_rows.end());
  auto excluded_id = [&](const std::string& id) {
    return std::find(o.exclude.begin(), o.exclude.end(), id) != o.exclude.end();
  };
  auto row_allowed = [&](int64_t row) {
    if (!o.group) return true;
    for (size_t ri : m.ids_of_row[static_cast<size_t>(row)])
      if (m.records[ri].group == o.group) return true;
    return false;
  };
  const int64_t want = std::min<int64_t>(rows(), k + static_cast<int64_t>(excluded_rows.size()));

  torch::Tensor scores, labels;  // [Q, want], CPU
  const bool has_ann = static_cast<bool>(m.ann);
  const bool use_faiss =
      !o.group && (o.backend == "faiss" ||
                   (o.backend == "auto" && has_faiss() && (has_ann || queries.device().is_cpu())));
  if (use_faiss) {
    std::lock_guard<std::mutex> lock(m.ann_mutex);
    if (!m.ann) m.ann = ann_flat(embeddings().to(torch::kFloat32).contiguous());
    if (index_type() == "ivfpq") {
      // PQ codes only approximate the vectors: take more candidates and rank them by their
      // exact scores against the stored vectors (FAISS's "refine" step).
      const int64_t cand = std::min<int64_t>(rows(), std::max<int64_t>(16 * want, 256));
      auto [approx, rows_] = ann_search(*m.ann, queries, cand, o.ef_search, o.nprobe);
      const auto q = queries.to(torch::kCPU, torch::kFloat32);
      auto exact = torch::full({Q, cand}, -std::numeric_limits<float>::infinity());
      for (int64_t qi = 0; qi < Q; ++qi) {
        // The candidates' stored vectors, gathered shard by shard.
        const auto r = rows_[qi];
        int64_t base = 0;
        for (const auto& shard : m.shards) {
          const auto in = (r >= base) & (r < base + shard.size(0));
          const auto pos = in.nonzero().squeeze(1);
          if (pos.numel() > 0) {
            const auto vec =
                shard.index_select(0, r.index_select(0, pos) - base).to(torch::kFloat32);
            exact[qi].index_put_({pos}, vec.matmul(q[qi]));
          }
          base += shard.size(0);
        }
      }
      auto [v, pos] = exact.topk(want, 1);
      scores = v;
      labels = rows_.gather(1, pos);
      auto sa = scores.accessor<float, 2>();
      auto la = labels.accessor<int64_t, 2>();
      for (int64_t qi = 0; qi < Q; ++qi)  // candidates FAISS did not fill stay -1
        for (int64_t j = 0; j < want; ++j)
          if (std::isinf(sa[qi][j])) la[qi][j] = -1;
    } else {
      std::tie(scores, labels) = ann_search(*m.ann, queries, want, o.ef_search, o.nprobe);
    }
  } else {
    c10::InferenceMode guard;
    const auto q = queries.to(torch::kFloat32);
    std::vector<torch::Tensor> best_s, best_i;
    int64_t offset = 0;
    torch::Tensor mask;
    if (o.group) {
      std::vector<uint8_t> allow(static_cast<size_t>(rows()));
      for (int64_t r = 0; r < rows(); ++r) allow[static_cast<size_t>(r)] = row_allowed(r);
      mask =
          torch::from_blob(allow.data(), {rows()}, torch::kUInt8).to(q.device()).to(torch::kBool);
    }
    for (const auto& shard : m.shards) {
      for (int64_t r = 0; r < shard.size(0); r += 65536) {
        const auto block =
            shard.slice(0, r, std::min(shard.size(0), r + 65536)).to(q.device(), torch::kFloat32);
        auto s = q.matmul(block.t());
        if (mask.defined())
          s.masked_fill_(~mask.slice(0, offset + r, offset + r + block.size(0)).unsqueeze(0),
                         -std::numeric_limits<float>::infinity());
        const int64_t kk = std::min<int64_t>(want, block.size(0));
        auto [v, i] = s.topk(kk, 1);
        best_s.push_back(v);
        best_i.push_back(i + offset + r);
      }
      offset += shard.size(0);
    }
    auto s = torch::cat(best_s, 1), i = torch::cat(best_i, 1);
    auto [v, pos] = s.topk(want, 1);
    scores = v.cpu();
    labels = i.gather(1, pos).cpu();
  }
  const auto sa = scores.accessor<float, 2>();
  const auto la = labels.accessor<int64_t, 2>();
  for (int64_t qi = 0; qi < Q; ++qi) {
    auto& hits = out[static_cast<size_t>(qi)];
    for (int64_t j = 0; j < labels.size(1) && static_cast<int64_t>(hits.size()) < k; ++j) {
      const int64_t row = la[qi][j];
      if (row < 0 || row >= rows()) continue;
      if (std::isinf(sa[qi][j]) && sa[qi][j] < 0) continue;  // masked out (group)
      for (size_t ri : m.ids_of_row[static_cast<size_t>(row)]) {
        const auto& r = m.records[ri];
        if (excluded_id(r.id) || (o.group && r.group != o.group)) continue;
        if (static_cast<int64_t>(hits.size()) == k) break;
        hits.push_back({static_cast<int64_t>(hits.size()) + 1, r.id, r.path, sa[qi][j], row});
      }
    }
  }
  return out;
}

std::vector<std::vector<SearchHit>> Index::search(const Embedder& model,
                                                  const std::vector<Query>& queries, int64_t k,
                                                  const SearchOptions& options) const {
  return search(embed_queries(model, queries), k, options);
}

}  // namespace bgevl
