// The public entry points above the layers: load and model_family (through the registry), option
// parsing, the version.
#include <torch/torch.h>

#include "bgevl/bgevl.h"
#include "bgevl/errors.h"
#include "models/common.h"
#include "models/registry.h"

namespace bgevl {

const char* version() { return "0.1.0"; }

std::unique_ptr<Embedder> load(const std::string& path_or_id, const LoadOptions& options) {
  models::check_dtype(models::requested_dtype(options), options.device);
  const auto c = models::resolve_checkpoint(path_or_id, options);
  return models::detect(c.config_json).load(c.dir, options);
}

Family model_family(const std::string& path_or_id, const std::string& revision) {
  LoadOptions o;
  o.revision = revision;
  return models::detect(models::resolve_checkpoint(path_or_id, o).config_json).family;
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
  if (name.empty() || name == "default") return torch::ScalarType::Undefined;
  if (name == "float32" || name == "fp32" || name == "float") return torch::kFloat32;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kFloat16;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  throw InvalidArgumentError(
      detail::concat("invalid dtype '", name, "' (float32, float16, bfloat16 or default)"));
}

}  // namespace bgevl
