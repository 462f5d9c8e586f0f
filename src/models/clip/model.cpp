#include "models/clip/model.h"

#include "bgevl/errors.h"
#include "nn/attention.h"

namespace bgevl::clip {

AttentionImpl::AttentionImpl(int64_t hidden, int64_t heads)
    : heads_(heads), head_dim_(hidden / heads), scale_(std::pow(double(hidden / heads), -0.5)) {
  q_proj = register_module("q_proj", nn::Linear(hidden, hidden, true));
  k_proj = register_module("k_proj", nn::Linear(hidden, hidden, true));
  v_proj = register_module("v_proj", nn::Linear(hidden, hidden, true));
  out_proj = register_module("out_proj", nn::Linear(hidden, hidden, true));
  qkv_ = nn::FusedLinear({q_proj.get(), k_proj.get(), v_proj.get()});
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                     const torch::Tensor& query_index, bool causal) const {
  const int64_t B = x.size(0);
  torch::Tensor xq;  // the queried rows only, when asked
  if (query_index.defined())
    xq = x.index({torch::arange(B, query_index.options()), query_index}).unsqueeze(1);
  // transformers scales the queries before the product, and so does this. Q, K and V come from one
  // product (the last layer's few queries: K and V from one, Q from another).
  const auto qkv = qkv_.qkv(x, xq);
  return out_proj->forward(attend(qkv[0], qkv[1], qkv[2], mask, causal));
}

torch::Tensor AttentionImpl::attend(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                                    const torch::Tensor& mask, bool causal) const {
  const int64_t B = q.size(0), Lq = q.size(1), L = k.size(1), H = q.size(2);
  q = (q * scale_).view({B, Lq, heads_, head_dim_}).transpose(1, 2);
  k = k.reshape({B, L, heads_, head_dim_}).transpose(1, 2);
  v = v.reshape({B, L, heads_, head_dim_}).transpose(1, 2);
  nn::AttentionSpec spec;
  spec.causal = causal;
  return nn::attention(q, k, v, mask, spec).transpose(1, 2).reshape({B, Lq, H});
}

torch::Tensor AttentionImpl::forward_packed(const torch::Tensor& x, const torch::Tensor& index,
                                            int64_t B, int64_t L, const torch::Tensor& mask,
                                            bool causal, const torch::Tensor& query_rows) const {
  const int64_t H = x.size(1);
  // [T, n] rows -> [B, L, n], zeros at the padding
  auto unpack = [&](const torch::Tensor& t) {
    return torch::zeros({B * L, t.size(1)}, t.options())
        .index_copy_(0, index, t)
        .view({B, L, t.size(1)});
  };
  if (query_rows.defined()) {  // the last layer: K and V of every position, Q of the queried rows
    const auto kv = unpack(qkv_.forward(x, 1, 3));
    const auto q = qkv_.forward(x.index_select(0, query_rows), 0, 1).view({B, 1, H});
    const auto out = attend(q, kv.narrow(-1, 0, H), kv.narrow(-1, H, H), mask, false);
    return out_proj->forward(out.view({B, H}));
  }
  const auto qkv = unpack(qkv_.forward(x, 0, 3));
  const auto out =
      attend(qkv.narrow(-1, 0, H), qkv.narrow(-1, H, H), qkv.narrow(-1, 2 * H, H), mask, causal);
  return out_proj->forward(out.view({B * L, H}).index_select(0, index));
}

EncoderLayerImpl::EncoderLayerImpl(const EncoderConfig& c) {
  self_attn = register_module("self_attn", Attention(c.hidden_size, c.num_attention_heads));
  layer_norm1 = register_module("layer_norm1", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", nn::Mlp(c.hidden_size, c.intermediate_size, c.hidden_act));
  layer_norm2 = register_module("layer_norm2", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                        const torch::Tensor& query_index, bool causal) const {
  torch::Tensor residual = x;
  if (query_index.defined())
    residual = x.index({torch::arange(x.size(0), query_index.options()), query_index}).unsqueeze(1);
  auto h = residual + self_attn->forward(layer_norm1->forward(x), mask, query_index, causal);
  return h + mlp->forward(layer_norm2->forward(h));
}

torch::Tensor EncoderLayerImpl::forward_packed(const torch::Tensor& x, const torch::Tensor& index,
                                               int64_t B, int64_t L, const torch::Tensor& mask,
                                               bool causal, const torch::Tensor& query_rows) const {
  const torch::Tensor residual = query_rows.defined() ? x.index_select(0, query_rows) : x;
  auto h = residual + self_attn->forward_packed(layer_norm1->forward(x), index, B, L, mask, causal,
                                                query_rows);
  return h + mlp->forward(layer_norm2->forward(h));
}

namespace {
// The rows of an additive [B or 1, heads or 1, L, L] mask that the queried positions (one per
// sequence, query_index [B]) read: [B, heads or 1, 1, L]. A mask with one row stays as it is.
torch::Tensor query_mask_rows(const torch::Tensor& mask, const torch::Tensor& query_index) {
  if (!mask.defined() || mask.size(2) == 1) return mask;
  const int64_t B = query_index.size(0);
  return mask.expand({B, mask.size(1), mask.size(2), mask.size(3)})
      .index({torch::arange(B, query_index.options()), torch::indexing::Slice(), query_index})
      .unsqueeze(2);
}
}  // namespace

EncoderImpl::EncoderImpl(const EncoderConfig& c) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(EncoderLayer(c));
}

torch::Tensor EncoderImpl::forward(torch::Tensor x, const torch::Tensor& mask, int64_t num_layers,
                                   const torch::Tensor& query_index, bool causal) const {
  const int64_t n = num_layers < 0 ? size() : num_layers;
  TORCH_CHECK(n <= size(), "asked for ", n, " layers of ", size());
  for (int64_t i = 0; i < n; ++i) {
    const auto& layer = layers->ptr<EncoderLayerImpl>(i);
    if (i == n - 1 && query_index.defined())  // one row per sequence: an explicit mask row
      return layer->forward(x, query_mask_rows(mask, query_index), query_index);
    x = layer->forward(x, mask, {}, causal);
  }
  return x;
}

TextEmbeddingsImpl::TextEmbeddingsImpl(const TextConfig& c) {
  token_embedding = register_module("token_embedding", nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding = register_module("position_embedding",
                                       nn::Embedding(c.max_position_embeddings, c.hidden_size));
}

TextTransformerImpl::TextTransformerImpl(const TextConfig& c) : cfg_(c) {
  embeddings = register_module("embeddings", TextEmbeddings(c));
  encoder = register_module("encoder", Encoder(c));
  final_layer_norm =
      register_module("final_layer_norm", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor TextTransformerImpl::forward(const torch::Tensor& input_ids,
                                           const torch::Tensor& attention_mask, bool right_padded,
                                           const torch::Tensor& packed_index) const {
  BGEVL_CHECK_ARG(input_ids.dim() == 2 && input_ids.size(0) > 0 && input_ids.size(1) > 0,
                  "input_ids must be a non-empty [batch, length] tensor, got ", input_ids.sizes());
  const int64_t B = input_ids.size(0), L = input_ids.size(1);
  BGEVL_CHECK_ARG(L <= cfg_.max_position_embeddings, "text of ", L,
                  " tokens is longer than the model's ", cfg_.max_position_embeddings,
                  " positions");
  const auto dev = embeddings->token_embedding->weight.device();
  const auto dtype = embeddings->token_embedding->weight.scalar_type();
  auto ids = input_ids.to(dev, torch::kLong);
  auto pos = torch::arange(L, ids.options());
  auto x = embeddings->token_embedding->forward(ids) +
           embeddings->position_embedding->forward(pos).unsqueeze(0);

  // Causal mask plus padding mask, additive. Right padding: the causal mask alone, [1, 1, L, L]
  // (every position up to the end of text sees only real tokens; the rows past it are unused).
  auto allowed = torch::ones({L, L}, torch::TensorOptions().dtype(torch::kBool).device(dev)).tril();
  allowed = allowed.unsqueeze(0).unsqueeze(0);
  if (attention_mask.defined()) {
    BGEVL_CHECK_ARG(attention_mask.sizes() == input_ids.sizes(), "attention_mask shape ",
                    attention_mask.sizes(), " differs from input_ids shape ", input_ids.sizes());
  }
  const bool causal_only = right_padded || !attention_mask.defined();
  if (!causal_only) {
    auto keep = attention_mask.to(dev).to(torch::kBool).view({B, 1, 1, L});
    allowed = allowed.expand({B, 1, L, L}).logical_and(keep);
  }
  auto mask = torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(dev))
                  .masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());

  // The pooled position: argmax of the ids for OpenAI-style configs (eos_token_id == 2), else
  // the first occurrence of eos_token_id (transformers 4.45 CLIPTextTransformer).
  torch::Tensor eos_pos;
  if (cfg_.eos_token_id == 2)
    eos_pos = ids.argmax(-1);
  else
    eos_pos = (ids == cfg_.eos_token_id).to(torch::kInt).argmax(-1).to(torch::kLong);

  const int64_t n = encoder->size();
  if (packed_index.defined() && right_padded && attention_mask.defined() && n > 0) {
    // The real tokens only, row by row: each layer's projections and MLP skip the padding.
    const auto index = packed_index.to(dev, torch::kLong);
    auto xp = x.view({B * L, x.size(2)}).index_select(0, index);
    const auto lengths = attention_mask.to(dev, torch::kLong).sum(1);
    const auto rows = lengths.cumsum(0).sub_(lengths).add_(eos_pos);  // packed row of each pool
    const auto layer = [&](int64_t i) { return encoder->layers->ptr<EncoderLayerImpl>(i); };
    for (int64_t i = 0; i + 1 < n; ++i)
      xp = layer(i)->forward_packed(xp, index, B, L, mask, /*causal=*/true);
    // the last layer: the pooled rows only, with their mask rows
    return final_layer_norm->forward(layer(n - 1)->forward_packed(
        xp, index, B, L, query_mask_rows(mask, eos_pos), /*causal=*/false, rows));
  }
  // [B, 1, H]: only the pooled rows at the last layer
  auto h = encoder->forward(x, mask, -1, eos_pos, causal_only);
  return final_layer_norm->forward(h.squeeze(1));
}

VisionEmbeddingsImpl::VisionEmbeddingsImpl(const VisionConfig& c) : cfg_(c) {
  class_embedding = declare("class_embedding", {c.hidden_size});
  patch_ = register_module(
      "patch_embedding", std::make_shared<PatchImpl>(c.hidden_size, c.num_channels, c.patch_size));
  const int64_t n = (c.image_size / c.patch_size) * (c.image_size / c.patch_size) + 1;
  position_embedding = register_module("position_embedding", nn::Embedding(n, c.hidden_size));
}

torch::Tensor VisionEmbeddingsImpl::forward(const torch::Tensor& pixel_values) const {
  BGEVL_CHECK_ARG(pixel_values.dim() == 4 && pixel_values.size(1) == cfg_.num_channels &&
                      pixel_values.size(2) == cfg_.image_size &&
                      pixel_values.size(3) == cfg_.image_size,
                  "pixel_values must be [batch, ", cfg_.num_channels, ", ", cfg_.image_size, ", ",
                  cfg_.image_size, "], got ", pixel_values.sizes());
  const auto& w = patch_->weight;
  auto px = pixel_values.to(w.device(), w.scalar_type());
  auto patches = torch::conv2d(px, w, {}, cfg_.patch_size);  // [B, H, g, g]
  patches = patches.flatten(2).transpose(1, 2);              // [B, g*g, H]
  const int64_t B = px.size(0);
  auto cls = class_embedding.view({1, 1, -1}).expand({B, 1, class_embedding.size(0)});
  auto x = torch::cat({cls, patches}, 1);
  return x + position_embedding->weight.unsqueeze(0);
}

VisionTransformerImpl::VisionTransformerImpl(const VisionConfig& c, bool with_post_layernorm) {
  embeddings = register_module("embeddings", VisionEmbeddings(c));
  pre_layrnorm = register_module("pre_layrnorm", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
  encoder = register_module("encoder", Encoder(c));
  if (with_post_layernorm)
    post_layernorm =
        register_module("post_layernorm", nn::LayerNorm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& pixel_values) const {
  auto x = pre_layrnorm->forward(embeddings->forward(pixel_values));
  auto cls =
      torch::zeros({x.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  auto h = encoder->forward(x, {}, -1, cls);  // only the class token goes through the last layer
  return post_layernorm->forward(h.squeeze(1));
}

torch::Tensor VisionTransformerImpl::hidden_states_at(const torch::Tensor& pixel_values,
                                                      int64_t num_layers) const {
  auto x = pre_layrnorm->forward(embeddings->forward(pixel_values));
  return encoder->forward(x, {}, num_layers);
}

ClipModelImpl::ClipModelImpl(const Config& c) {
  text_model = register_module("text_model", TextTransformer(c.text));
  vision_model = register_module("vision_model", VisionTransformer(c.vision));
  visual_projection = register_module("visual_projection",
                                      nn::Linear(c.vision.hidden_size, c.projection_dim, false));
  text_projection =
      register_module("text_projection", nn::Linear(c.text.hidden_size, c.projection_dim, false));
  logit_scale = declare("logit_scale", {});
}

torch::Tensor ClipModelImpl::text_features(const torch::Tensor& input_ids,
                                           const torch::Tensor& attention_mask, bool right_padded,
                                           const torch::Tensor& packed_index) const {
  return text_projection->forward(
      text_model->forward(input_ids, attention_mask, right_padded, packed_index));
}

torch::Tensor ClipModelImpl::image_features(const torch::Tensor& pixel_values) const {
  return visual_projection->forward(vision_model->forward(pixel_values));
}

}  // namespace bgevl::clip
