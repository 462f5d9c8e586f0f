// The FAISS indexes (hnsw, ivfpq, and flat for the "faiss" backend), behind store.h's small
// interface; without FAISS every call refuses with the way out.
#include <cmath>
#include <filesystem>

#include "bgevl/errors.h"
#include "io/file.h"
#include "retrieval/store.h"

#ifdef BGEVL_WITH_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#endif

namespace bgevl::retrieval {

#ifdef BGEVL_WITH_FAISS

struct AnnIndex {
  std::unique_ptr<faiss::Index> index;
  std::unique_ptr<faiss::Index> quantizer;  // IVF: owned by us when built here
};

void AnnDeleter::operator()(AnnIndex* p) const { delete p; }

namespace {
template <typename F>
auto faiss_call(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const faiss::FaissException& e) {
    throw Error(std::string("FAISS ") + what + ": " + e.what());
  }
}
const float* floats(const torch::Tensor& t) {
  BGEVL_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.device().is_cpu(), Error,
              "internal: FAISS takes contiguous float32 CPU tensors");
  return t.data_ptr<float>();
}
}  // namespace

AnnPtr ann_create(const std::string& type, int64_t dim, int64_t rows, nlohmann::json& params) {
  AnnPtr a(new AnnIndex);
  if (type == "hnsw") {
    const int m = params.value("M", 32);
    auto* h = new faiss::IndexHNSWFlat(static_cast<int>(dim), m, faiss::METRIC_INNER_PRODUCT);
    h->hnsw.efConstruction = params.value("efConstruction", 200);
    h->hnsw.efSearch = params.value("efSearch", 128);
    a->index.reset(h);
    params = {{"M", m}, {"efConstruction", h->hnsw.efConstruction}, {"efSearch", h->hnsw.efSearch}};
  } else if (type == "ivfpq") {
    // nlist ~ 4 sqrt(N) (FAISS's guideline 4..16 sqrt(N)), with >= 39 training points per list;
    // PQ: sub-vectors of 8 dimensions (or fewer sub-quantizers when D is not divisible), 8 bits
    // when there are >= 39 * 256 training points, fewer for small sets.
    const int64_t train = std::min<int64_t>(rows, 65536);
    int64_t nlist = std::max<int64_t>(
        1, std::min<int64_t>(static_cast<int64_t>(4 * std::sqrt(double(rows))), train / 39));
    nlist = params.value("nlist", nlist);
    int64_t m = params.value("m", int64_t(0));
    if (m == 0) {
      m = std::max<int64_t>(1, dim / 8);
      while (dim % m) --m;
    }
    int nbits = 8;
    while (nbits > 4 && train < 39 * (int64_t(1) << nbits)) --nbits;
    nbits = params.value("nbits", nbits);
    BGEVL_CHECK_ARG(dim % m == 0, "ivfpq: the dimension ", dim, " is not divisible by m = ", m);
    a->quantizer = std::make_unique<faiss::IndexFlatIP>(dim);
    auto* ivf = new faiss::IndexIVFPQ(a->quantizer.get(), dim, nlist, m, nbits,
                                      faiss::METRIC_INNER_PRODUCT);
    const int64_t nprobe =
        params.value("nprobe", std::min<int64_t>(nlist, std::max<int64_t>(8, nlist / 8)));
    ivf->nprobe = nprobe;
    a->index.reset(ivf);
    params = {{"nlist", nlist}, {"m", m}, {"nbits", nbits}, {"nprobe", nprobe}};
  } else {
    throw InvalidArgumentError("unknown FAISS index type '" + type + "'");
  }
  return a;
}

void ann_train(AnnIndex& a, const torch::Tensor& train) {
  if (a.index->is_trained) return;
  faiss_call("training", [&] { a.index->train(train.size(0), floats(train)); });
}

void ann_add(AnnIndex& a, const torch::Tensor& v) {
  const auto c = v.to(torch::kFloat32).contiguous();
  faiss_call("add", [&] { a.index->add(c.size(0), floats(c)); });
}

namespace {
// FAISS's own file writer ignores the result of fclose (a full disk would leave a truncated
// index renamed into place): its bytes go through io::AtomicFile, which checks every step.
struct AtomicWriter : faiss::IOWriter {
  io::AtomicFile& out;
  explicit AtomicWriter(io::AtomicFile& f) : out(f) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    out.write(ptr, size * nitems);
    return nitems;
  }
};
}  // namespace

void ann_write(const AnnIndex& a, const std::string& path) {
  io::AtomicFile f(path);
  AtomicWriter w(f);
  faiss_call("write", [&] { faiss::write_index(a.index.get(), &w); });
  f.commit();
}

AnnPtr ann_read(const std::string& path) {
  std::error_code ec;  // (FAISS would block on a FIFO)
  BGEVL_CHECK_ARG(std::filesystem::is_regular_file(path, ec), path, " is not a regular file");
  AnnPtr a(new AnnIndex);
  a->index.reset(faiss_call("read", [&] { return faiss::read_index(path.c_str()); }));
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(a->index.get())) ivf->own_fields = true;
  return a;
}

AnnPtr ann_flat(const torch::Tensor& vectors) {
  AnnPtr a(new AnnIndex);
  a->index = std::make_unique<faiss::IndexFlatIP>(vectors.size(1));
  ann_add(*a, vectors);
  return a;
}

int64_t ann_rows(const AnnIndex& a) { return a.index->ntotal; }

std::pair<torch::Tensor, torch::Tensor> ann_search(const AnnIndex& a, const torch::Tensor& q,
                                                   int64_t k, int64_t ef_search, int64_t nprobe) {
  const auto c = q.to(torch::kCPU, torch::kFloat32).contiguous();
  auto scores = torch::empty({c.size(0), k}, torch::kFloat32);
  auto labels = torch::empty({c.size(0), k}, torch::kInt64);
  faiss_call("search", [&] {
    std::unique_ptr<faiss::SearchParameters> params;
    if (auto* h = dynamic_cast<const faiss::IndexHNSW*>(a.index.get())) {
      auto p = std::make_unique<faiss::SearchParametersHNSW>();
      p->efSearch = static_cast<int>(ef_search > 0 ? ef_search : h->hnsw.efSearch);
      p->efSearch = std::max<int>(p->efSearch, static_cast<int>(k));
      params = std::move(p);
    } else if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(a.index.get())) {
      auto p = std::make_unique<faiss::SearchParametersIVF>();
      p->nprobe = static_cast<size_t>(nprobe > 0 ? nprobe : ivf->nprobe);
      params = std::move(p);
    }
    a.index->search(c.size(0), floats(c), k, scores.data_ptr<float>(), labels.data_ptr<int64_t>(),
                    params.get());
  });
  return {scores, labels};
}

#else  // no FAISS

struct AnnIndex {};
void AnnDeleter::operator()(AnnIndex* p) const { delete p; }
namespace {
[[noreturn]] void no_faiss() {
  throw InvalidArgumentError(
      "this bgevl was built without FAISS (hnsw / ivfpq indexes, the faiss backend): use "
      "index type flat and the torch backend, or rebuild with libfaiss-dev installed");
}
}  // namespace
AnnPtr ann_create(const std::string&, int64_t, int64_t, nlohmann::json&) { no_faiss(); }
void ann_train(AnnIndex&, const torch::Tensor&) { no_faiss(); }
void ann_add(AnnIndex&, const torch::Tensor&) { no_faiss(); }
void ann_write(const AnnIndex&, const std::string&) { no_faiss(); }
AnnPtr ann_read(const std::string&) { no_faiss(); }
AnnPtr ann_flat(const torch::Tensor&) { no_faiss(); }
int64_t ann_rows(const AnnIndex&) { no_faiss(); }
std::pair<torch::Tensor, torch::Tensor> ann_search(const AnnIndex&, const torch::Tensor&, int64_t,
                                                   int64_t, int64_t) {
  no_faiss();
}

#endif

}  // namespace bgevl::retrieval
