// Options of bgevl::load and Embedder::encode. Neither changes any process-wide setting: threads
// and the allocator are set by the explicit calls in bgevl/runtime.h.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

namespace bgevl {

struct LoadOptions {
  torch::Device device = torch::kCPU;  // where the weights live and the model runs
  // float32 (the reference, the parity mode; on CUDA with TF32 off), bfloat16, float16 (CUDA), or
  // Undefined: the device's default, default_dtype(device) (float32 on the CPU, bfloat16 on CUDA).
  torch::ScalarType dtype = torch::ScalarType::Undefined;
  std::string revision = "main";  // hub revision (branch, tag, commit) of a hub id
  // A hub id not in the Hugging Face cache is downloaded into it (configs, tokenizer files,
  // safetensors), as huggingface_hub does; these change where and how:
  std::string cache_dir;          // empty: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/...
  std::string token;              // empty: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, $HF_HOME/token
  bool local_files_only = false;  // the cache only (also when HF_HUB_OFFLINE=1)
  // Called as tensors are loaded: (tensors done, tensors in all). Optional.
  std::function<void(size_t, size_t)> progress;
  // Called while a file downloads: (file name, bytes done, bytes in all, 0 if unknown). Optional.
  std::function<void(const std::string&, int64_t, int64_t)> download_progress;
};

struct EncodeOptions {
  int64_t batch_size = 0;  // items per forward pass; 0: the model's default_batch_size()
  // Cut texts longer than the model's positions (CLIP: 77 tokens) instead of failing. Families
  // without such a limit (BGE-VL-MLLM) refuse it.
  bool truncate = false;
  // false: the unnormalised vectors (BGE-VL-CLIP: the projected features, summed for composed
  // items), as an index keeps them so that a composed query can reuse an indexed image. Families
  // whose embedding is not such a sum (BGE-VL-MLLM) refuse it.
  bool normalize = true;
  // Called after each batch: (items done, items in all). Optional.
  std::function<void(int64_t, int64_t)> progress;
};

// "cpu", "cuda", "cuda:1" -> torch::Device; InvalidArgumentError otherwise.
torch::Device parse_device(const std::string& name);
// "float32"/"fp32", "float16"/"fp16"/"half", "bfloat16"/"bf16" -> dtype; "default" or "" ->
// Undefined (the device's default dtype); InvalidArgumentError otherwise.
torch::ScalarType parse_dtype(const std::string& name);
// The dtype a model loads in when LoadOptions::dtype is Undefined: float32 on the CPU (exact, as
// the reference), bfloat16 on CUDA (the fast path; ask for float32 for the parity mode).
torch::ScalarType default_dtype(const torch::Device& device);

}  // namespace bgevl
