#include "embedders/common.h"

#include <ATen/Parallel.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "bgevl/bgevl.h"
#include "bgevl/errors.h"
#include "io/config.h"
#include "io/model_dir.h"

namespace bgevl {

const char* version() { return "0.1.0"; }

ModelFamily model_family(const std::string& path_or_id, const std::string& revision) {
  const auto dir = io::resolve_model_dir(path_or_id, revision);
  return io::detect_model_kind(dir + "/config.json") == io::ModelKind::Clip ? ModelFamily::Clip
                                                                           : ModelFamily::Mllm;
}

torch::Device parse_device(const std::string& name) {
  try {
    torch::Device d(name);
    BGEVL_CHECK_ARG(d.is_cpu() || d.is_cuda(), "device '", name, "' is not supported (cpu, cuda)");
    if (d.is_cuda()) {
      BGEVL_CHECK_ARG(torch::cuda::is_available(), "device '", name,
                      "' asked for, but this libtorch has no CUDA or no GPU is visible");
      BGEVL_CHECK_ARG(!d.has_index() || d.index() < static_cast<int>(torch::cuda::device_count()),
                      "device '", name, "' does not exist (", torch::cuda::device_count(),
                      " GPUs visible)");
    }
    return d;
  } catch (const c10::Error&) {
    throw InvalidArgumentError(detail::concat("invalid device '", name, "' (cpu, cuda, cuda:N)"));
  }
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return torch::kFloat32;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kFloat16;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  throw InvalidArgumentError(
      detail::concat("invalid dtype '", name, "' (float32, float16 or bfloat16)"));
}

namespace detail {

void configure_threads(int num_threads) {
  BGEVL_CHECK_ARG(num_threads >= 0, "num_threads must be >= 0 (0: every core), got ", num_threads);
  const int want = num_threads > 0 ? num_threads
                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (at::get_num_threads() != want) at::set_num_threads(want);
}

void tune_cpu_allocator() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // A ViT-B/16 batch of 16 allocates and frees ~40 MB activations per layer. Above glibc's
    // mmap threshold each is a fresh mapping whose pages fault in again every time.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
#endif
}

void check_model_dtype(torch::ScalarType dtype) {
  BGEVL_CHECK_ARG(dtype == torch::kFloat32 || dtype == torch::kFloat16 || dtype == torch::kBFloat16,
                  "dtype must be float32, float16 or bfloat16, got ", dtype);
}

std::string prepare_load(const std::string& path_or_id, const LoadOptions& options,
                         io::ModelKind kind, std::string* model_dir) {
  configure_threads(options.num_threads);
  if (options.tune_cpu_allocator && options.device.is_cpu()) tune_cpu_allocator();
  check_model_dtype(options.dtype);
  *model_dir = io::resolve_model_dir(path_or_id, options.revision);
  const std::string cfg = *model_dir + "/config.json";
  BGEVL_CHECK(std::filesystem::exists(cfg), FileNotFoundError, "no config.json in ", *model_dir);
  BGEVL_CHECK_ARG(io::detect_model_kind(cfg) == kind, cfg,
                  kind == io::ModelKind::Clip
                      ? " is not a BGE-VL-CLIP checkpoint (load LLaVA-NeXT checkpoints with "
                        "MllmEmbedder or bgevl.AutoModel)"
                      : " is not a BGE-VL-MLLM (LLaVA-NeXT) checkpoint (load CLIP checkpoints with "
                        "ClipEmbedder or bgevl.AutoModel)");
  return cfg;
}

vision::Image decode_input(const ImageInput& in) {
  switch (in.kind()) {
    case ImageInput::Kind::Path:
      return vision::decode_file(in.text());
    case ImageInput::Kind::Bytes:
      return vision::decode_bytes(reinterpret_cast<const uint8_t*>(in.text().data()),
                                  in.text().size());
    case ImageInput::Kind::Pixels: {
      const auto& t = in.tensor();
      BGEVL_CHECK_ARG(t.defined(), "image pixels tensor is undefined");
      BGEVL_CHECK_ARG(t.scalar_type() == torch::kUInt8, "image pixels must be uint8, got ",
                      t.scalar_type());
      BGEVL_CHECK_ARG(t.dim() == 2 || (t.dim() == 3 && (t.size(2) == 1 || t.size(2) == 3 ||
                                                         t.size(2) == 4)),
                      "image pixels must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got ",
                      t.sizes());
      auto c = t.to(torch::kCPU).contiguous();
      const int ch = c.dim() == 2 ? 1 : static_cast<int>(c.size(2));
      return vision::from_pixels(c.data_ptr<uint8_t>(), static_cast<int>(c.size(0)),
                                 static_cast<int>(c.size(1)), ch);
    }
  }
  throw Error("unknown image input kind");
}

void parallel_items(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || at::get_num_threads() == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Own threads rather than at::parallel_for: the exception keeps its type, and it is the one of
  // the lowest failing index (every lower index was claimed before the failure and still runs),
  // so the error does not depend on timing.
  const int64_t workers = std::min<int64_t>(n, at::get_num_threads());
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  int64_t error_index = n;
  std::mutex mu;
  auto run = [&] {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < error_index) {
          error = std::current_exception();
          error_index = i;
        }
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

torch::Tensor l2_normalize(const torch::Tensor& x) {
  auto f = x.to(torch::kFloat32);
  return f / f.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace detail
}  // namespace bgevl
