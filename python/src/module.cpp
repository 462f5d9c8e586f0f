// bgevl._C: a thin pybind11 layer over the C++ embedders. Conveniences live in python/bgevl.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/extension.h>

#include "bgevl/bgevl.h"

namespace py = pybind11;
using namespace bgevl;

namespace {

// A Python progress callable called from C++ worker code: take the GIL around each call.
template <typename... A>
std::function<void(A...)> with_gil(py::object fn) {
  if (fn.is_none()) return {};
  auto shared = std::make_shared<py::object>(std::move(fn));
  return [shared](A... args) {
    py::gil_scoped_acquire gil;
    (*shared)(args...);
  };
}

LoadOptions load_options(const std::string& device, const std::string& dtype, int num_threads,
                         const std::string& revision, py::object progress) {
  LoadOptions o;
  o.device = parse_device(device);
  o.dtype = parse_dtype(dtype);
  o.num_threads = num_threads;
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

}  // namespace

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

  m.def(
      "model_kind",
      [](const std::string& path_or_id, const std::string& revision) {
        return model_family(path_or_id, revision) == ModelFamily::Clip ? "clip" : "llava_next";
      },
      py::arg("path_or_id"), py::arg("revision") = "main",
      "The model family of a checkpoint folder or cached hub id: 'clip' or 'llava_next'.");

  py::class_<ImageInput>(m, "ImageInput")
      .def_static("path", &ImageInput::path, py::arg("path"))
      .def_static("bytes", [](py::bytes b) { return ImageInput::bytes(std::string(b)); },
                  py::arg("data"))
      .def_static("pixels", &ImageInput::pixels, py::arg("hwc_uint8"));

  py::class_<ClipEmbedder>(m, "ClipEmbedder")
      .def(py::init([](const std::string& path, const std::string& device, const std::string& dtype,
                       int num_threads, const std::string& revision, py::object progress) {
             auto opts = load_options(device, dtype, num_threads, revision, std::move(progress));
             py::gil_scoped_release nogil;
             return std::make_unique<ClipEmbedder>(path, opts);
           }),
           py::arg("path_or_id"), py::arg("device") = "cpu", py::arg("dtype") = "float32",
           py::arg("num_threads") = 0, py::arg("revision") = "main", py::arg("progress") = py::none())
      .def("set_processor", &ClipEmbedder::set_processor, py::arg("path_or_id"),
           py::call_guard<py::gil_scoped_release>())
      .def(
          "encode",
          [](const ClipEmbedder& self, const std::vector<ImageInput>& images,
             const std::vector<std::string>& texts, int64_t batch_size, bool truncate,
             py::object progress) {
            auto opts = encode_options(batch_size, truncate, std::move(progress));
            py::gil_scoped_release nogil;
            return self.encode(images, texts, opts);
          },
          py::arg("images"), py::arg("texts"), py::arg("batch_size") = 32,
          py::arg("truncate") = false, py::arg("progress") = py::none(),
          "L2-normalised embeddings [N, D]: images only, texts only, or composed pairs.")
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
          "text_features",
          [](const ClipEmbedder& self, torch::Tensor ids, torch::Tensor mask) {
            py::gil_scoped_release nogil;
            return self.text_features({ids, mask});
          },
          py::arg("input_ids"), py::arg("attention_mask"))
      .def("image_features", &ClipEmbedder::image_features, py::arg("pixel_values"),
           py::call_guard<py::gil_scoped_release>())
      .def(
          "to",
          [](ClipEmbedder& self, const std::string& device, const std::string& dtype) {
            auto d = parse_device(device);
            auto t = parse_dtype(dtype);
            py::gil_scoped_release nogil;
            self.to(d, t);
          },
          py::arg("device"), py::arg("dtype"))
      .def_property_readonly("device", [](const ClipEmbedder& s) { return s.device().str(); })
      .def_property_readonly("dtype",
                             [](const ClipEmbedder& s) { return std::string(c10::toString(s.dtype())); })
      .def_property_readonly("embedding_dim", &ClipEmbedder::embedding_dim)
      .def_property_readonly("model_dir", &ClipEmbedder::model_dir);

  py::class_<MllmEmbedder>(m, "MllmEmbedder")
      .def(py::init([](const std::string& path, const std::string& device, const std::string& dtype,
                       int num_threads, const std::string& revision, py::object progress) {
             auto opts = load_options(device, dtype, num_threads, revision, std::move(progress));
             py::gil_scoped_release nogil;
             return std::make_unique<MllmEmbedder>(path, opts);
           }),
           py::arg("path_or_id"), py::arg("device") = "cpu", py::arg("dtype") = "float32",
           py::arg("num_threads") = 0, py::arg("revision") = "main", py::arg("progress") = py::none())
      .def("set_processor", &MllmEmbedder::set_processor, py::arg("path_or_id"),
           py::call_guard<py::gil_scoped_release>())
      .def_static(
          "prompt",
          [](std::optional<std::string> text, bool has_image, const std::string& q_or_c,
             std::optional<std::string> instruction) {
            return MllmEmbedder::prompt(text ? &*text : nullptr, has_image, q_or_c, instruction);
          },
          py::arg("text"), py::arg("has_image"), py::arg("q_or_c"), py::arg("task_instruction"))
      .def(
          "data_process",
          [](const MllmEmbedder& self, const std::vector<ImageInput>& images,
             const std::vector<std::string>& texts, const std::string& q_or_c,
             std::optional<std::string> instruction) {
            py::gil_scoped_release nogil;
            auto in = self.data_process(images, texts, q_or_c, instruction);
            return std::make_tuple(in.input_ids, in.attention_mask, in.pixel_values, in.image_sizes);
          },
          py::arg("images"), py::arg("texts"), py::arg("q_or_c"), py::arg("task_instruction"))
      .def(
          "forward",
          [](const MllmEmbedder& self, torch::Tensor ids, torch::Tensor mask, torch::Tensor px,
             torch::Tensor sizes) {
            py::gil_scoped_release nogil;
            return self.forward({ids, mask, px, sizes});
          },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("pixel_values"),
          py::arg("image_sizes"))
      .def(
          "encode",
          [](const MllmEmbedder& self, const std::vector<ImageInput>& images,
             const std::vector<std::string>& texts, const std::string& q_or_c,
             std::optional<std::string> instruction, int64_t batch_size, py::object progress) {
            auto opts = encode_options(batch_size, false, std::move(progress));
            py::gil_scoped_release nogil;
            return self.encode(images, texts, q_or_c, instruction, opts);
          },
          py::arg("images"), py::arg("texts"), py::arg("q_or_c"), py::arg("task_instruction"),
          py::arg("batch_size") = 8, py::arg("progress") = py::none())
      .def(
          "to",
          [](MllmEmbedder& self, const std::string& device, const std::string& dtype) {
            auto d = parse_device(device);
            auto t = parse_dtype(dtype);
            py::gil_scoped_release nogil;
            self.to(d, t);
          },
          py::arg("device"), py::arg("dtype"))
      .def_property_readonly("device", [](const MllmEmbedder& s) { return s.device().str(); })
      .def_property_readonly("dtype",
                             [](const MllmEmbedder& s) { return std::string(c10::toString(s.dtype())); })
      .def_property_readonly("hidden_size", &MllmEmbedder::hidden_size)
      .def_property_readonly("model_dir", &MllmEmbedder::model_dir);
  m.attr("COMPOSED_RETRIEVAL_INSTRUCTION") = MllmEmbedder::kComposedRetrievalInstruction;
}
