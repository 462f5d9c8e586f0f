// bgevl._C.Index and the retrieval functions: conversions only (python/bgevl/index.py is the API).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include "bgevl/bgevl.h"
#include "retrieval/store.h"

namespace py = pybind11;
using namespace bgevl;

namespace {

py::dict progress_dict(const IndexProgress& p) {
  py::dict d;
  d["done"] = p.done;
  d["total"] = p.total;
  d["embedded"] = p.embedded;
  d["duplicates"] = p.duplicates;
  d["skipped"] = p.skipped;
  d["resumed"] = p.resumed;
  d["already"] = p.already;
  return d;
}

py::dict record_dict(const IndexRecord& r) {
  py::dict d;
  d["id"] = r.id;
  d["path"] = r.path;
  d["size"] = r.size;
  d["sha256"] = r.sha256;
  d["row"] = r.row;
  d["caption"] = r.caption ? py::object(py::str(*r.caption)) : py::object(py::none());
  d["group"] = r.group ? py::object(py::str(*r.group)) : py::object(py::none());
  return d;
}

using QueryTuple = std::tuple<std::optional<ImageInput>, std::optional<std::string>,
                              std::optional<std::string>, std::optional<std::string>>;

std::vector<Query> queries_of(const std::vector<QueryTuple>& qs) {
  std::vector<Query> out;
  for (const auto& [image, id, text, instruction] : qs)
    out.push_back({image, id, text, instruction});
  return out;
}

// A gallery entry as Python passes it: (id, path, caption or None, group or None).
using Entry =
    std::tuple<std::string, std::string, std::optional<std::string>, std::optional<std::string>>;

std::vector<GalleryEntry> gallery_entries(const std::vector<Entry>& entries) {
  std::vector<GalleryEntry> es;
  for (const auto& [id, path, caption, group] : entries) es.push_back({id, path, caption, group});
  return es;
}

}  // namespace

void bind_index(py::module_& m) {
  m.def("list_gallery", [](const std::string& p) {
    std::vector<Entry> out;
    for (auto& e : list_gallery(p)) out.emplace_back(e.id, e.path, e.caption, e.group);
    return out;
  });
  m.def("has_faiss", &has_faiss);
  m.def("preset_instruction", &preset_instruction);
  m.def("recall_at_k", &recall_at_k, py::arg("ranked"), py::arg("targets"), py::arg("k"));
  m.def("average_precision_at_k", &average_precision_at_k, py::arg("ranked"), py::arg("targets"),
        py::arg("k"));
  m.def(
      "evaluate",
      [](const Index& index, const Embedder& model, const std::string& queries,
         const std::vector<int64_t>& ks, const std::string& image_root,
         const std::string& backend) {
        EvalOptions o;
        o.ks = ks;
        o.search.backend = backend;
        std::vector<EvalQuery> qs = read_eval_queries(queries, image_root);
        EvalResult r;
        {
          py::gil_scoped_release nogil;
          r = evaluate(index, model, qs, o);
        }
        py::dict metrics;
        for (const auto& [name, v] : r.metrics) metrics[py::str(name)] = v;
        return py::make_tuple(metrics, r.rankings);
      },
      py::arg("index"), py::arg("model"), py::arg("queries"), py::arg("ks"),
      py::arg("image_root") = "", py::arg("backend") = "auto");
  m.def("convert_dataset", &convert_dataset, py::arg("name"), py::arg("root"), py::arg("split"),
        py::arg("out_dir"));

  py::class_<Index>(m, "Index")
      .def_static(
          "build",
          [](const Embedder& model, const std::vector<Entry>& entries, const std::string& dir,
             const std::string& dtype, const std::string& index_type, bool strict, bool add,
             int64_t chunk_size, int64_t shard_size, int64_t batch_size,
             const std::string& model_ref, py::object progress) {
            const auto es = gallery_entries(entries);
            IndexOptions o;
            o.dtype = retrieval::dtype_from_name(dtype);
            o.index_type = index_type;
            o.strict = strict;
            o.add = add;
            o.chunk_size = chunk_size;
            o.shard_size = shard_size;
            o.batch_size = batch_size;
            o.model_ref = model_ref;
            if (!progress.is_none()) {
              auto fn = std::make_shared<py::object>(progress);
              o.progress = [fn](const IndexProgress& p) {
                py::gil_scoped_acquire gil;
                (*fn)(progress_dict(p));
              };
            }
            IndexProgress p;
            {
              py::gil_scoped_release nogil;
              p = Index::build(model, es, dir, o);
            }
            return progress_dict(p);
          },
          py::arg("model"), py::arg("entries"), py::arg("dir"), py::arg("dtype") = "float32",
          py::arg("index_type") = "flat", py::arg("strict") = false, py::arg("add") = false,
          py::arg("chunk_size") = 1024, py::arg("shard_size") = 1 << 20, py::arg("batch_size") = 0,
          py::arg("model_ref") = "", py::arg("progress") = py::none())
      .def_static(
          "plan_partitions",
          [](const std::vector<Entry>& entries, const std::string& dir,
             const std::string& model_ref, const std::string& dtype, const std::string& index_type,
             int64_t chunk_size) {
            const auto es = gallery_entries(entries);
            IndexOptions o;
            o.dtype = retrieval::dtype_from_name(dtype);
            o.index_type = index_type;
            o.chunk_size = chunk_size;
            PartitionPlan plan;
            {
              py::gil_scoped_release nogil;
              plan = Index::plan_partitions(es, dir, model_ref, o);
            }
            return py::make_tuple(plan.partitions, plan.done, plan.missing);
          },
          py::arg("entries"), py::arg("dir"), py::arg("model_ref"), py::arg("dtype") = "float32",
          py::arg("index_type") = "flat", py::arg("chunk_size") = 1024)
      .def_static(
          "build_partition",
          [](const Embedder& model, const std::vector<Entry>& entries, const std::string& dir,
             int64_t partition, const std::string& dtype, const std::string& index_type,
             bool strict, int64_t batch_size) {
            const auto es = gallery_entries(entries);
            IndexOptions o;
            o.dtype = retrieval::dtype_from_name(dtype);
            o.index_type = index_type;
            o.strict = strict;
            o.batch_size = batch_size;
            IndexProgress p;
            {
              py::gil_scoped_release nogil;
              p = Index::build_partition(model, es, dir, partition, o);
            }
            return progress_dict(p);
          },
          py::arg("model"), py::arg("entries"), py::arg("dir"), py::arg("partition"),
          py::arg("dtype") = "float32", py::arg("index_type") = "flat", py::arg("strict") = false,
          py::arg("batch_size") = 0)
      .def_static(
          "merge_partitions",
          [](const std::string& dir, int64_t shard_size) {
            IndexOptions o;
            o.shard_size = shard_size;
            py::gil_scoped_release nogil;
            return Index::merge_partitions(dir, o);
          },
          py::arg("dir"), py::arg("shard_size") = 1 << 20)
      .def_static(
          "build_from_vectors",
          [](const torch::Tensor& vectors, const std::vector<std::string>& ids,
             const std::string& dir, const std::string& dtype, const std::string& index_type,
             int64_t shard_size) {
            IndexOptions o;
            o.dtype = retrieval::dtype_from_name(dtype);
            o.index_type = index_type;
            o.shard_size = shard_size;
            py::gil_scoped_release nogil;
            Index::build_from_vectors(vectors, ids, dir, o);
          },
          py::arg("vectors"), py::arg("ids"), py::arg("dir"), py::arg("dtype") = "float32",
          py::arg("index_type") = "flat", py::arg("shard_size") = 1 << 20)
      .def_static("open", &Index::open, py::arg("dir"))
      .def_property_readonly("dir", &Index::dir)
      .def_property_readonly("manifest_json", &Index::manifest_json)
      .def_property_readonly("model_ref", &Index::model_ref)
      .def_property_readonly("revision", &Index::revision)
      .def_property_readonly("family", [](const Index& i) { return family_name(i.family()); })
      .def_property_readonly("dim", &Index::dim)
      .def_property_readonly("rows", &Index::rows)
      .def_property_readonly("index_type", &Index::index_type)
      .def_property_readonly("shard_files", &Index::shard_files)
      .def("records",
           [](const Index& i) {
             py::list out;
             for (const auto& r : i.records()) out.append(record_dict(r));
             return out;
           })
      .def("find",
           [](const Index& i, const std::string& id) -> py::object {
             const auto* r = i.find(id);
             return r ? py::object(record_dict(*r)) : py::object(py::none());
           })
      .def("image_features", &Index::image_features)
      .def(
          "embed_queries",
          [](const Index& i, const Embedder& model, const std::vector<QueryTuple>& qs) {
            auto q = queries_of(qs);
            py::gil_scoped_release nogil;
            return i.embed_queries(model, q);
          },
          py::arg("model"), py::arg("queries"))
      .def(
          "search",
          [](const Index& i, const torch::Tensor& q, int64_t k, const std::string& backend,
             const std::vector<std::string>& exclude, const std::optional<std::string>& group) {
            SearchOptions o;
            o.backend = backend;
            o.exclude = exclude;
            o.group = group;
            std::vector<std::vector<SearchHit>> hits;
            {
              py::gil_scoped_release nogil;
              hits = i.search(q, k, o);
            }
            py::list out;
            for (const auto& hs : hits) {
              py::list l;
              for (const auto& h : hs)
                l.append(py::make_tuple(h.rank, h.id, h.path, h.score, h.row));
              out.append(l);
            }
            return out;
          },
          py::arg("queries"), py::arg("k"), py::arg("backend") = "auto",
          py::arg("exclude") = std::vector<std::string>(), py::arg("group") = py::none());
}
