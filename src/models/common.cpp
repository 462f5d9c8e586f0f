#include "models/common.h"

#include <filesystem>

#include "bgevl/errors.h"
#include "io/model_dir.h"
#include "models/registry.h"
#include "runtime/thread_pool.h"

namespace bgevl {

torch::ScalarType default_dtype(const torch::Device& device) {
  return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
}

}  // namespace bgevl

namespace bgevl::models {

void check_dtype(torch::ScalarType dtype, const torch::Device& device) {
  BGEVL_CHECK_ARG(dtype == torch::kFloat32 || dtype == torch::kFloat16 || dtype == torch::kBFloat16,
                  "dtype must be float32, float16 or bfloat16, got ", dtype);
  BGEVL_CHECK_ARG(!(dtype == torch::kFloat16 && device.is_cpu()),
                  "float16 runs on CUDA only (libtorch's CPU kernels have no float16 matrix "
                  "products): on the CPU use bfloat16 or float32");
}

torch::ScalarType requested_dtype(const LoadOptions& options) {
  return options.dtype == torch::ScalarType::Undefined ? default_dtype(options.device)
                                                       : options.dtype;
}

torch::ScalarType load_dtype(const LoadOptions& options) {
  const auto dtype = requested_dtype(options);
  // The float32 parity mode on CUDA: no TF32 in cuBLAS and cuDNN (the patch convolution),
  // whatever the process set before (libtorch's default lets cuDNN use TF32).
  if (dtype == torch::kFloat32 && options.device.is_cuda()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  return dtype;
}

Checkpoint resolve_checkpoint(const std::string& path_or_id, const LoadOptions& options) {
  Checkpoint c;
  c.revision = options.revision;
  io::HubAccess access;
  access.cache_dir = options.cache_dir;
  access.token = options.token;
  access.local_files_only = options.local_files_only;
  access.progress = options.download_progress;
  c.dir = io::resolve_model_dir(path_or_id, options.revision, access);
  c.config_json = c.dir + "/config.json";
  BGEVL_CHECK(std::filesystem::exists(c.config_json), FileNotFoundError, "no config.json in ",
              c.dir);
  return c;
}

Checkpoint open_checkpoint(const std::string& path_or_id, const LoadOptions& options,
                           Family family) {
  runtime::after_fork_fixups();
  check_dtype(requested_dtype(options), options.device);
  auto c = resolve_checkpoint(path_or_id, options);
  const auto& found = detect(c.config_json);
  BGEVL_CHECK_ARG(found.family == family, c.config_json, " is a ", found.title, " checkpoint, not ",
                  entry(family).title, " (bgevl::load and bgevl.AutoModel pick the family)");
  return c;
}

void check_tokenizer_fits(int64_t max_id, int64_t vocab_size, const std::string& dir) {
  BGEVL_CHECK_ARG(max_id < vocab_size, dir, ": the tokenizer's ids go up to ", max_id,
                  ", past the model's vocabulary of ", vocab_size,
                  " (text_config.vocab_size): it is another model's");
}

std::string processor_dir(const std::string& path_or_id, const std::string& revision,
                          const Checkpoint& checkpoint, Family family) {
  const auto dir =
      io::resolve_model_dir(path_or_id, revision.empty() ? checkpoint.revision : revision);
  const auto found = processor_family(dir);
  BGEVL_CHECK_ARG(!found || *found == family, "set_processor: ", dir, " holds a ",
                  entry(*found).title, " processor, and this model is ", entry(family).title);
  return dir;
}

}  // namespace bgevl::models
