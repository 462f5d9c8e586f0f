// Pieces every embedder uses: option parsing, thread set-up, image inputs -> decoded images.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "bgevl/image_input.h"
#include "bgevl/options.h"
#include "io/config.h"
#include "vision/image.h"

namespace bgevl::detail {

// Sets libtorch's intra-op threads (0: every core) once per process or on change.
void configure_threads(int num_threads);

// glibc: large blocks stay in the heap once freed (see LoadOptions::tune_cpu_allocator).
void tune_cpu_allocator();

// What every embedder does before building its model: threads, allocator, dtype check, the
// folder (hub cache resolved) and its config.json, which must describe a model of `kind`.
// Returns the config.json path.
std::string prepare_load(const std::string& path_or_id, const LoadOptions& options,
                         io::ModelKind kind, std::string* model_dir);

// The three dtypes the models run in; InvalidArgumentError otherwise.
void check_model_dtype(torch::ScalarType dtype);

// Decodes one input as PIL would open it (mode kept; no RGB conversion yet).
vision::Image decode_input(const ImageInput& in);

// Runs fn(i) for i in [0, n) on libtorch's thread pool; exceptions reach the caller.
void parallel_items(int64_t n, const std::function<void(int64_t)>& fn);

// F.normalize(x, dim=-1) in float32.
torch::Tensor l2_normalize(const torch::Tensor& x);

}  // namespace bgevl::detail
