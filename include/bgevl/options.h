// Options shared by the bgevl embedders.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

namespace bgevl {

struct LoadOptions {
  torch::Device device = torch::kCPU;          // where the weights live and the model runs
  torch::ScalarType dtype = torch::kFloat32;   // float32 (the reference), float16 or bfloat16
  int num_threads = 0;                         // CPU threads for libtorch; 0: every core
  std::string revision = "main";               // hub-cache revision when loading by hub id
  // On CPU, keep freed activation buffers in the heap (glibc mallopt: no per-allocation mmap,
  // no trimming) instead of faulting fresh pages in for every layer: 10-20% faster on CPU.
  // Process-wide; set false to leave the allocator alone.
  bool tune_cpu_allocator = true;
  // Called as tensors are loaded: (tensors done, tensors in all). Optional.
  std::function<void(size_t, size_t)> progress;
};

struct EncodeOptions {
  int64_t batch_size = 32;   // inputs per forward pass; long lists are split into batches
  bool truncate = false;     // cut texts longer than the model's positions instead of failing
  // Called after each batch: (inputs done, inputs in all). Optional.
  std::function<void(int64_t, int64_t)> progress;
};

// "cpu", "cuda", "cuda:1" -> torch::Device; InvalidArgumentError otherwise.
torch::Device parse_device(const std::string& name);
// "float32"/"fp32", "float16"/"fp16"/"half", "bfloat16"/"bf16" -> dtype; InvalidArgumentError otherwise.
torch::ScalarType parse_dtype(const std::string& name);

}  // namespace bgevl
