// Host memory for batches on their way to the model's device: page-locked (pinned) when the model
// is on CUDA, so the copy is asynchronous and the host never waits for the GPU; ordinary memory
// on the CPU, where "copying" is a no-op. On CUDA the copies run on a copy stream of their own,
// so that batch k+1's copy overlaps batch k's compute (BGEVL_COPY_STREAM=0: on the compute
// stream, for comparison).
#pragma once

#include <c10/core/Stream.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace bgevl::runtime {

class Staging {
 public:
  explicit Staging(torch::Device device);

  const torch::Device& device() const { return device_; }

  torch::Tensor empty(at::IntArrayRef sizes, torch::ScalarType dtype) const {
    return torch::empty(sizes,
                        torch::TensorOptions().dtype(dtype).pinned_memory(device_.is_cuda()));
  }

  // An int64 tensor of `sizes` holding `values` (row-major).
  torch::Tensor int64s(const std::vector<int64_t>& values, at::IntArrayRef sizes) const {
    auto t = empty(sizes, torch::kLong);
    if (!values.empty()) std::memcpy(t.data_ptr<int64_t>(), values.data(), values.size() * 8);
    return t;
  }

  // On the device: a non-blocking copy out of pinned memory (the caching host allocator keeps
  // the block until the copy is done), or the tensor itself when the device is the CPU. With a
  // copy stream, work queued on the caller's (compute) stream after this call waits for the copy,
  // and nothing queued before it does; the host never waits.
  torch::Tensor to_device(const torch::Tensor& host) const;

  // Whether copies go through a copy stream of their own (CUDA, unless BGEVL_COPY_STREAM=0).
  bool has_copy_stream() const { return copy_stream_.has_value(); }

 private:
  torch::Device device_;
  std::optional<c10::Stream> copy_stream_;
};

}  // namespace bgevl::runtime
