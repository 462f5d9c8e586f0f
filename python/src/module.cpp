// bgevl._C: a thin pybind11 layer over the C++ API. Conveniences live in python/bgevl; checks
// live in C++ (this layer only converts).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include "bgevl/bgevl.h"
#include "io/model_dir.h"
#include "runtime/inputs.h"

namespace py = pybind11;
using namespace bgevl;

namespace {

// A Python progress callable called from C++ code: take the GIL around each call.
template <typename... A>
std::function<void(A...)> with_gil(py::object fn) {
  if (fn.is_none()) return {};
  auto shared = std::shared_ptr<py::object>(new py::object(std::move(fn)), [](py::object* o) {
    py::gil_scoped_acquire gil;  // the last copy may die on a thread without the GIL
    delete o;
  });
  return [shared](A... args) {
    py::gil_scoped_acquire gil;
    (*shared)(args...);
  };
}

LoadOptions load_options(const std::string& device, const std::string& dtype,
                         const std::string& revision, py::object progress) {
  LoadOptions o;
  o.device = parse_device(device);
  o.dtype = parse_dtype(dtype);
  o.revision = revision;
  o.progress = with_gil<size_t, size_t>(std::move(progress));
  return o;
}

EncodeOptions encode_options(int64_t batch_size, bool truncate, py::object progress) {
  EncodeOptions o;
  o.batch_size = batch_size;
  o.truncate = truncate;
  o.progress = with_gil<int64_t, int64_t>(std::move(progress));
  return o;
}

Prompt prompt_of(const std::optional<std::string>& q_or_c,
                 const std::optional<std::string>& instruction) {
  Prompt p;
  if (q_or_c) p.role = parse_role(*q_or_c);
  p.instruction = instruction;
  return p;
}

using Images = std::vector<std::optional<ImageInput>>;
using Texts = std::vector<std::optional<std::string>>;

std::string dtype_name(torch::ScalarType t) { return c10::toString(t); }

}  // namespace

void bind_index(py::module_& m);  // index_bindings.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "bgevl C++ core (use the `bgevl` package, not this module)";
  m.attr("__version__") = bgevl::version();

  // Errors: the Python types a user expects.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const bgevl::FileNotFoundError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const bgevl::InvalidArgumentError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const bgevl::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("set_num_threads", &bgevl::set_num_threads, py::arg("num_threads"),
        py::arg("force") = false);
  m.def("available_cores", &bgevl::available_cores);
  m.def("get_num_threads", &bgevl::num_threads);
  m.def("tune_cpu_allocator", &bgevl::tune_cpu_allocator);
  m.def(
      "model_family",
      [](const std::string& path_or_id, const std::string& revision) {
        return std::string(family_name(model_family(path_or_id, revision)));
      },
      py::arg("path_or_id"), py::arg("revision") = "main",
      "The model family of a checkpoint folder or cached hub id: 'clip' or 'llava_next'.");
  m.def(
      "resolve_model",
      [](const std::string& path_or_id, const std::string& revision, const std::string& cache_dir,
         const std::string& token, bool local_files_only, py::object progress) {
        io::HubAccess a;
        a.cache_dir = cache_dir;
        a.token = token;
        a.local_files_only = local_files_only;
        a.progress = with_gil<const std::string&, int64_t, int64_t>(std::move(progress));
        std::string dir;
        {
          py::gil_scoped_release nogil;
          dir = io::resolve_model_dir(path_or_id, revision, a);
        }
        // A file-system name, as os.fsdecode gives it (surrogate escapes for non-UTF-8 bytes).
        return py::reinterpret_steal<py::str>(
            PyUnicode_DecodeFSDefaultAndSize(dir.data(), static_cast<Py_ssize_t>(dir.size())));
      },
      py::arg("path_or_id"), py::arg("revision") = "main", py::arg("cache_dir") = "",
      py::arg("token") = "", py::arg("local_files_only") = false, py::arg("progress") = py::none(),
      "The folder of a checkpoint path or hub id: from the Hugging Face cache, downloaded into it "
      "when absent (unless local_files_only or HF_HUB_OFFLINE=1).");
  m.def(
      "hub_cache_dir",
      [](const std::string& cache_dir) {
        io::HubAccess a;
        a.cache_dir = cache_dir;
        return io::hub_cache_dir(a);
      },
      py::arg("cache_dir") = "");
  m.def(
      "load",
      [](const std::string& path, const std::string& device, const std::string& dtype,
         const std::string& revision, py::object progress) {
        auto opts = load_options(device, dtype, revision, std::move(progress));
        py::gil_scoped_release nogil;
        return bgevl::load(path, opts);
      },
      py::arg("path_or_id"), py::arg("device") = "cpu", py::arg("dtype") = "float32",
      py::arg("revision") = "main", py::arg("progress") = py::none(),
      "Loads a checkpoint with the family its config.json names (ClipEmbedder, MllmEmbedder).");

  py::class_<ImageInput>(m, "ImageInput")
      .def_static("path", &ImageInput::path, py::arg("path"))
      .def_static(
          "bytes", [](py::bytes b) { return ImageInput::bytes(std::string(b)); }, py::arg("data"))
      .def_static("pixels", py::overload_cast<torch::Tensor>(&ImageInput::pixels),
                  py::arg("hwc_uint8"))
      .def_static("pixels", py::overload_cast<torch::Tensor, std::string>(&ImageInput::pixels),
                  py::arg("hwc_uint8"), py::arg("mode"))
      .def_property_readonly("kind", [](const ImageInput& in) {
        switch (in.kind()) {
          case ImageInput::Kind::Path:
            return "path";
          case ImageInput::Kind::Bytes:
            return "bytes";
          case ImageInput::Kind::Pixels:
            return "pixels";
        }
        return "unknown";
      });

  py::class_<Embedder>(m, "Embedder")
      .def(
          "encode",
          [](const Embedder& self, const Images& images, const Texts& texts,
             const std::optional<std::string>& q_or_c,
             const std::optional<std::string>& instruction, int64_t batch_size, bool truncate,
             py::object progress) {
            auto items = runtime::zip_items(images, texts, prompt_of(q_or_c, instruction));
            auto opts = encode_options(batch_size, truncate, std::move(progress));
            py::gil_scoped_release nogil;
            return self.encode(items, opts);
          },
          py::arg("images"), py::arg("texts"), py::arg("q_or_c") = py::none(),
          py::arg("instruction") = py::none(), py::arg("batch_size") = 0,
          py::arg("truncate") = false, py::arg("progress") = py::none(),
          "L2-normalised embeddings [N, D] of parallel lists of images and texts (None entries "
          "allowed).")
      .def(
          "to",
          [](Embedder& self, const std::string& device, const std::string& dtype) {
            auto d = parse_device(device);
            auto t = parse_dtype(dtype);
            py::gil_scoped_release nogil;
            self.to(d, t);
          },
          py::arg("device"), py::arg("dtype"))
      .def("set_processor", &Embedder::set_processor, py::arg("path_or_id"),
           py::arg("revision") = "", py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("family", [](const Embedder& s) { return family_name(s.family()); })
      .def_property_readonly("device", [](const Embedder& s) { return s.device().str(); })
      .def_property_readonly("dtype", [](const Embedder& s) { return dtype_name(s.dtype()); })
      .def_property_readonly("embedding_dim", &Embedder::embedding_dim)
      .def_property_readonly("default_batch_size", &Embedder::default_batch_size)
      .def_property_readonly("model_dir", &Embedder::model_dir)
      .def_property_readonly("revision", &Embedder::revision);

  py::class_<ClipEmbedder, Embedder>(m, "ClipEmbedder")
      .def(py::init([](const std::string& path, const std::string& device, const std::string& dtype,
                       const std::string& revision, py::object progress) {
             auto opts = load_options(device, dtype, revision, std::move(progress));
             py::gil_scoped_release nogil;
             return std::make_unique<ClipEmbedder>(path, opts);
           }),
           py::arg("path_or_id"), py::arg("device") = "cpu", py::arg("dtype") = "float32",
           py::arg("revision") = "main", py::arg("progress") = py::none())
      .def(
          "tokenize",
          [](const ClipEmbedder& self, const std::vector<std::string>& texts, bool truncate) {
            py::gil_scoped_release nogil;
            auto t = self.tokenize(texts, truncate);
            return std::make_pair(t.input_ids, t.attention_mask);
          },
          py::arg("texts"), py::arg("truncate") = false)
      .def("pixel_values", &ClipEmbedder::pixel_values, py::arg("images"),
           py::call_guard<py::gil_scoped_release>())
      .def(
          "get_text_features",
          [](const ClipEmbedder& self, torch::Tensor ids, std::optional<torch::Tensor> mask) {
            py::gil_scoped_release nogil;
            return self.get_text_features({ids, mask.value_or(torch::Tensor())});
          },
          py::arg("input_ids"), py::arg("attention_mask") = py::none())
      .def("get_image_features", &ClipEmbedder::get_image_features, py::arg("pixel_values"),
           py::call_guard<py::gil_scoped_release>());

  py::class_<MllmEmbedder, Embedder>(m, "MllmEmbedder")
      .def(py::init([](const std::string& path, const std::string& device, const std::string& dtype,
                       const std::string& revision, py::object progress) {
             auto opts = load_options(device, dtype, revision, std::move(progress));
             py::gil_scoped_release nogil;
             return std::make_unique<MllmEmbedder>(path, opts);
           }),
           py::arg("path_or_id"), py::arg("device") = "cpu", py::arg("dtype") = "float32",
           py::arg("revision") = "main", py::arg("progress") = py::none())
      .def_static(
          "prompt",
          [](const std::optional<std::string>& text, bool has_image,
             const std::optional<std::string>& q_or_c,
             const std::optional<std::string>& instruction) {
            return MllmEmbedder::prompt(text, has_image, prompt_of(q_or_c, instruction));
          },
          py::arg("text"), py::arg("has_image"), py::arg("q_or_c"), py::arg("instruction"))
      .def(
          "data_process",
          [](const MllmEmbedder& self, const Images& images, const Texts& texts,
             const std::optional<std::string>& q_or_c,
             const std::optional<std::string>& instruction) {
            auto items = runtime::zip_items(images, texts, prompt_of(q_or_c, instruction));
            py::gil_scoped_release nogil;
            auto in = self.data_process(items);
            return std::make_tuple(in.input_ids, in.attention_mask, in.pixel_values,
                                   in.image_sizes);
          },
          py::arg("images"), py::arg("texts"), py::arg("q_or_c"), py::arg("instruction"))
      .def(
          "forward",
          [](const MllmEmbedder& self, torch::Tensor ids, std::optional<torch::Tensor> mask,
             std::optional<torch::Tensor> px, std::optional<torch::Tensor> sizes) {
            py::gil_scoped_release nogil;
            return self.forward({ids, mask.value_or(torch::Tensor()), px.value_or(torch::Tensor()),
                                 sizes.value_or(torch::Tensor())});
          },
          py::arg("input_ids"), py::arg("attention_mask") = py::none(),
          py::arg("pixel_values") = py::none(), py::arg("image_sizes") = py::none());
  m.attr("COMPOSED_RETRIEVAL_INSTRUCTION") = bgevl::kComposedRetrievalInstruction;
  bind_index(m);
}
