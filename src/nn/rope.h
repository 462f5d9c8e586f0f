// Rotary position embeddings, rotate-half form (transformers' LlamaRotaryEmbedding /
// MistralRotaryEmbedding with the default rope type): inv_freq = 1 / theta^(2i / d) in float32,
// cos/sin tables computed in float32 and cast to the model's dtype.
#pragma once

#include <torch/torch.h>

#include "nn/module.h"

namespace bgevl::nn {

struct RopeTables {
  torch::Tensor cos, sin;  // [B, L, head_dim]
};

// Holds inv_freq (not a checkpoint tensor). Moving the module keeps it float32, as transformers'
// non-persistent buffer stays.
class RotaryEmbeddingImpl : public ModuleBase {
 public:
  RotaryEmbeddingImpl(int64_t head_dim, double theta);
  // position_ids [B, L] (int64, on inv_freq's device) -> tables in `dtype`.
  RopeTables forward(const torch::Tensor& position_ids, torch::ScalarType dtype) const;
  const torch::Tensor& inv_freq() const { return inv_freq_; }

  using torch::nn::Module::to;
  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
  void to(torch::Device device, bool non_blocking = false) override;

 private:
  torch::Tensor inv_freq_;  // float32 [head_dim / 2]
};
TORCH_MODULE(RotaryEmbedding);

// x * cos + rotate_half(x) * sin for x [B, heads, L, d] and tables [B, L, d].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin);

}  // namespace bgevl::nn
