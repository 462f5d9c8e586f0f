// The shared transformer blocks (src/nn/) and the layers built on them, one at a time, against
// transformers 4.45.2's own modules (tests/reference/gen_nn_fixtures.py): attention with and
// without masks, grouped-query attention, RoPE, RMSNorm, the MLPs, both encoder/decoder layers,
// the LLaVA-NeXT projector. Instantiated per device; the CUDA instance skips without a GPU.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <limits>

#include "io/safetensors.h"
#include "models/clip/model.h"
#include "models/llava_next/mistral.h"
#include "models/llava_next/model.h"
#include "nn/attention.h"
#include "nn/load.h"
#include "nn/module.h"
#include "nn/rope.h"
#include "test_util.h"

using namespace bgevl;
using namespace bgevl::test;
using json = nlohmann::json;

namespace {

const json& nn_case(const std::string& name) {
  static const json cases = read_json(fixtures("nn/cases.json"));
  for (const auto& c : cases["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no nn fixture case " + name);
}

class Blocks : public ::testing::TestWithParam<DeviceParam> {
 protected:
  void SetUp() override { BGEVL_SKIP_WITHOUT_DEVICE(GetParam().device); }
  torch::Device device() const { return device_of(GetParam().device); }

  // The case's tensors: its weights go into `module`, its inputs come back on the device.
  void open(const std::string& name) {
    file_ = std::make_unique<io::WeightSet>(
        io::WeightSet::open_files({fixtures("nn/" + name + ".safetensors")}));
    config_ = nn_case(name)["config"];
  }
  void load(torch::nn::Module& module) {
    nn::load_weights(module, *file_, torch::kFloat32, device(), "weights.", {}, {});
    module.to(device());
  }
  torch::Tensor in(const std::string& n) {
    const auto& info = file_->info("in." + n);
    return file_->load("in." + n, info.dtype == "I64" ? torch::kLong : torch::kFloat32, device());
  }
  torch::Tensor out(const std::string& n) {
    return file_->load("out." + n, torch::kFloat32, torch::kCPU);
  }
  int64_t cfg(const char* key) const { return config_[key].get<int64_t>(); }
  clip::EncoderConfig clip_config() const {
    clip::EncoderConfig c;
    c.hidden_size = cfg("hidden_size");
    c.num_attention_heads = cfg("num_attention_heads");
    c.intermediate_size = cfg("intermediate_size");
    c.num_hidden_layers = 1;
    c.hidden_act = config_["hidden_act"].get<std::string>();
    c.layer_norm_eps = config_["layer_norm_eps"].get<double>();
    return c;
  }
  llava_next::MistralConfig mistral_config() const {
    llava_next::MistralConfig c;
    c.hidden_size = cfg("hidden_size");
    c.num_attention_heads = cfg("num_attention_heads");
    c.num_key_value_heads = cfg("num_key_value_heads");
    c.head_dim = cfg("head_dim");
    c.intermediate_size = cfg("intermediate_size");
    c.rms_norm_eps = config_["rms_norm_eps"].get<double>();
    c.rope_theta = config_["rope_theta"].get<double>();
    c.sliding_window = 0;
    return c;
  }
  static void expect_close(const torch::Tensor& got, const torch::Tensor& want) {
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE(max_abs_diff(got, want), scaled_tol(want));
  }

  std::unique_ptr<io::WeightSet> file_;
  json config_;
};

}  // namespace

TEST_P(Blocks, ClipAttentionWithoutMask) {
  c10::InferenceMode guard;
  open("clip_attention_nomask");
  clip::Attention attn(cfg("hidden_size"), cfg("num_attention_heads"));
  load(*attn);
  expect_close(attn->forward(in("hidden_states"), {}), out("attn_output"));
}

TEST_P(Blocks, ClipAttentionCausalAndPadding) {
  c10::InferenceMode guard;
  open("clip_attention_causal_padding");
  clip::Attention attn(cfg("hidden_size"), cfg("num_attention_heads"));
  load(*attn);
  const auto mask = in("causal_attention_mask") + in("attention_mask_4d");
  const auto want = out("attn_output");
  expect_close(attn->forward(in("hidden_states"), mask), want);
  // only some query rows (what the last layer of the text tower computes)
  const auto rows =
      torch::tensor({8, 0, 2}, torch::TensorOptions().dtype(torch::kLong).device(device()));
  const auto some = attn->forward(
      in("hidden_states"),
      mask.index({torch::arange(3, rows.options()), torch::indexing::Slice(), rows}).unsqueeze(2),
      rows);
  const auto want_rows = want.index({torch::arange(3), rows.cpu()}).unsqueeze(1);
  expect_close(some, want_rows);
}

TEST_P(Blocks, ClipMlps) {
  c10::InferenceMode guard;
  for (const char* name : {"clip_mlp_quick_gelu", "clip_mlp_gelu"}) {
    SCOPED_TRACE(name);
    open(name);
    nn::Mlp mlp(cfg("hidden_size"), cfg("intermediate_size"),
                config_["hidden_act"].get<std::string>());
    load(*mlp);
    expect_close(mlp->forward(in("hidden_states")), out("hidden_states"));
  }
}

TEST_P(Blocks, ClipEncoderLayers) {
  c10::InferenceMode guard;
  open("clip_encoder_layer_nomask");
  clip::EncoderLayer plain(clip_config());
  load(*plain);
  expect_close(plain->forward(in("hidden_states"), {}), out("hidden_states"));
  open("clip_encoder_layer_masked");
  clip::EncoderLayer masked(clip_config());
  load(*masked);
  expect_close(
      masked->forward(in("hidden_states"), in("causal_attention_mask") + in("attention_mask_4d")),
      out("hidden_states"));
}

TEST_P(Blocks, RmsNorm) {
  c10::InferenceMode guard;
  open("mistral_rmsnorm");
  nn::RmsNorm norm(cfg("hidden_size"), config_["rms_norm_eps"].get<double>());
  load(*norm);
  expect_close(norm->forward(in("hidden_states")), out("hidden_states"));
}

TEST_P(Blocks, RotaryTablesAndApply) {
  c10::InferenceMode guard;
  open("mistral_rotary");
  nn::RotaryEmbedding rope(cfg("head_dim"), config_["rope_theta"].get<double>());
  rope->to(device());
  const auto t = rope->forward(in("position_ids"), torch::kFloat32);
  expect_close(t.cos, out("cos"));
  expect_close(t.sin, out("sin"));
  open("mistral_apply_rotary");
  expect_close(nn::apply_rope(in("q"), in("cos"), in("sin")), out("q_embed"));
  expect_close(nn::apply_rope(in("k"), in("cos"), in("sin")), out("k_embed"));
}

TEST_P(Blocks, MistralAttentionGqaWithLeftPadding) {
  c10::InferenceMode guard;
  open("mistral_attention_gqa");
  const auto c = mistral_config();
  // the 4-D mask bgevl builds from the 2-D one is transformers' (finfo.min, never -inf)
  const auto mask = llava_next::causal_mask(in("attention_mask"), 0, torch::kFloat32);
  EXPECT_TRUE(torch::equal(mask.cpu(), in("attention_mask_4d").cpu()));
  llava_next::MistralAttention attn(c);
  load(*attn);
  nn::RotaryEmbedding rope(c.head_dim, c.rope_theta);
  rope->to(device());
  const auto tables = rope->forward(in("position_ids"), torch::kFloat32);
  const auto want = out("attn_output");
  expect_close(attn->forward(in("hidden_states"), mask, tables, false), want);
  // the last row alone (the embedding's)
  expect_close(attn->forward(in("hidden_states"), mask, tables, true),
               want.narrow(1, want.size(1) - 1, 1));
}

TEST_P(Blocks, GroupedQueryAttentionEqualsRepeatedHeads) {
  c10::InferenceMode guard;
  const auto opts = torch::TensorOptions().device(device());
  torch::manual_seed(3);
  const auto q = torch::randn({2, 4, 5, 8}, opts), k = torch::randn({2, 2, 5, 8}, opts),
             v = torch::randn({2, 2, 5, 8}, opts);
  nn::AttentionSpec spec;
  spec.scale = 0.25;
  const auto gqa = nn::attention(q, k, v, {}, spec);
  const auto full =
      nn::attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), {}, spec);
  EXPECT_LE(max_abs_diff(gqa, full), 1e-6);
  // and by hand: softmax(q k^T * scale) v for head 3, which reads key-value head 1
  const auto w =
      torch::softmax(torch::matmul(q.select(1, 3), k.select(1, 1).transpose(-1, -2)) * 0.25, -1);
  EXPECT_LE(max_abs_diff(gqa.select(1, 3), torch::matmul(w, v.select(1, 1))), 1e-5);
}

TEST_P(Blocks, MistralMlpAndDecoderLayer) {
  c10::InferenceMode guard;
  open("mistral_mlp");
  nn::GatedMlp mlp(cfg("hidden_size"), cfg("intermediate_size"));
  load(*mlp);
  expect_close(mlp->forward(in("hidden_states")), out("hidden_states"));
  open("mistral_decoder_layer");
  const auto c = mistral_config();
  llava_next::MistralDecoderLayer layer(c);
  load(*layer);
  nn::RotaryEmbedding rope(c.head_dim, c.rope_theta);
  rope->to(device());
  const auto mask = llava_next::causal_mask(in("attention_mask"), 0, torch::kFloat32);
  expect_close(layer->forward(in("hidden_states"), mask,
                              rope->forward(in("position_ids"), torch::kFloat32), false),
               out("hidden_states"));
}

// Q/K/V and gate/up as one product each (fused by load_weights, as the embedders load): the same
// results against the transformers fixtures, the parts' own tensors freed, and the fused weights
// follow the module through to().
TEST_P(Blocks, FusedProjectionsMatchTheFixtures) {
  c10::InferenceMode guard;
  open("clip_attention_causal_padding");
  clip::Attention attn(cfg("hidden_size"), cfg("num_attention_heads"));
  load(*attn);
  EXPECT_EQ(attn->q_proj->weight.numel(), 0);
  EXPECT_EQ(attn->v_proj->bias.numel(), 0);
  const auto mask = in("causal_attention_mask") + in("attention_mask_4d");
  const auto want = out("attn_output");
  expect_close(attn->forward(in("hidden_states"), mask), want);
  const auto rows =
      torch::tensor({8, 0, 2}, torch::TensorOptions().dtype(torch::kLong).device(device()));
  expect_close(
      attn->forward(in("hidden_states"),
                    mask.index({torch::arange(3, rows.options()), torch::indexing::Slice(), rows})
                        .unsqueeze(2),
                    rows),
      want.index({torch::arange(3), rows.cpu()}).unsqueeze(1));
  const auto params = attn->named_parameters();
  ASSERT_TRUE(params.contains("qkv_proj_fused_weight"));
  EXPECT_EQ(params["qkv_proj_fused_weight"].size(0), 3 * cfg("hidden_size"));
  attn->to(torch::kBFloat16);
  EXPECT_EQ(attn->named_parameters()["qkv_proj_fused_weight"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(attn->forward(in("hidden_states").to(torch::kBFloat16), {}).scalar_type(),
            torch::kBFloat16);

  open("mistral_attention_gqa");
  const auto c = mistral_config();
  llava_next::MistralAttention mattn(c);
  load(*mattn);
  EXPECT_EQ(mattn->k_proj->weight.numel(), 0);
  nn::RotaryEmbedding rope(c.head_dim, c.rope_theta);
  rope->to(device());
  const auto tables = rope->forward(in("position_ids"), torch::kFloat32);
  const auto mmask = llava_next::causal_mask(in("attention_mask"), 0, torch::kFloat32);
  const auto mwant = out("attn_output");
  expect_close(mattn->forward(in("hidden_states"), mmask, tables, false), mwant);
  expect_close(mattn->forward(in("hidden_states"), mmask, tables, true),
               mwant.narrow(1, mwant.size(1) - 1, 1));

  open("mistral_mlp");
  nn::GatedMlp mlp(cfg("hidden_size"), cfg("intermediate_size"));
  load(*mlp);
  EXPECT_EQ(mlp->gate_proj->weight.numel(), 0);
  EXPECT_EQ(mlp->up_proj->weight.numel(), 0);
  expect_close(mlp->forward(in("hidden_states")), out("hidden_states"));
}

// CLIP text with right padding: the causal mask alone ([1, 1, L, L], causal) gives the pooled
// rows of the dense causal + padding mask exactly (no position up to the end of text sees a pad).
TEST_P(Blocks, ClipCausalOnlyMaskEqualsTheDenseMaskForRightPadding) {
  c10::InferenceMode guard;
  open("clip_encoder_layer_masked");
  clip::EncoderLayer layer(clip_config());
  load(*layer);
  auto empty = clip_config();
  empty.num_hidden_layers = 0;
  clip::Encoder enc(empty);
  enc->layers->push_back(layer);  // one layer: the fixture's
  const auto x = in("hidden_states");
  const int64_t B = x.size(0), L = x.size(1);
  const auto opts = torch::TensorOptions().device(device());
  // right padding: row b has L - b real tokens (at least 1)
  auto keep = torch::ones({B, L}, opts.dtype(torch::kBool));
  for (int64_t b = 0; b < B; ++b)
    if (b > 0)
      keep[b].narrow(0, std::max<int64_t>(1, L - b), L - std::max<int64_t>(1, L - b)).fill_(false);
  const auto causal = torch::ones({L, L}, opts.dtype(torch::kBool)).tril().view({1, 1, L, L});
  const auto inf = -std::numeric_limits<float>::infinity();
  const auto dense =
      torch::zeros({B, 1, L, L}, opts)
          .masked_fill(causal.logical_and(keep.view({B, 1, 1, L})).logical_not(), inf);
  const auto alone = torch::zeros({1, 1, L, L}, opts).masked_fill(causal.logical_not(), inf);
  const auto last = keep.sum(1).sub(1);  // the last real position of each row
  // exact on the CPU (the same arithmetic on every row that counts); CUDA: other kernels
  const double tol = device().is_cpu() ? 0.0 : 1e-5;
  // a layer before the last: every row up to the end of text
  const auto full_a = layer->forward(x, dense), full_b = layer->forward(x, alone, {}, true);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = last[b].item<int64_t>() + 1;
    EXPECT_LE(max_abs_diff(full_a[b].narrow(0, 0, n), full_b[b].narrow(0, 0, n)), tol) << b;
  }
  // the last layer: the pooled rows only
  const auto a = enc->forward(x, dense, -1, last), b = enc->forward(x, alone, -1, last, true);
  EXPECT_LE(max_abs_diff(a, b), tol);
}

// Mistral without padding (one query per forward, or rows of one length): one [1, 1, L, L]
// causal mask for every row, marked causal (is_causal with scaled_dot_product_attention), gives
// the dense [B, 1, L, L] mask's results, and the last query alone (query_last) none at all:
// exactly on the CPU.
TEST_P(Blocks, MistralUnpaddedCausalMaskEqualsTheDenseMask) {
  c10::InferenceMode guard;
  open("mistral_attention_gqa");
  const auto c = mistral_config();
  llava_next::MistralAttention attn(c);
  load(*attn);
  nn::RotaryEmbedding rope(c.head_dim, c.rope_theta);
  rope->to(device());
  const auto ones = torch::ones_like(in("attention_mask"));
  const int64_t B = ones.size(0), L = ones.size(1);
  const auto pos = torch::arange(L, ones.options()).unsqueeze(0).expand({B, L});
  const auto tables = rope->forward(pos, torch::kFloat32);
  const auto dense = llava_next::causal_mask(ones, 0, torch::kFloat32);
  const auto one = llava_next::causal_mask(ones.narrow(0, 0, 1), 0, torch::kFloat32);
  ASSERT_EQ(one.size(0), 1);
  const double tol = device().is_cpu() ? 0.0 : 1e-5;
  for (bool last : {false, true}) {
    const auto a = attn->forward(in("hidden_states"), dense, tables, last);
    const auto b = attn->forward(in("hidden_states"), one, tables, last, /*causal=*/true);
    EXPECT_LE(max_abs_diff(a, b), tol) << last;
  }
}

TEST_P(Blocks, LlavaProjector) {
  c10::InferenceMode guard;
  open("llava_next_projector");
  llava_next::Projector proj(cfg("vision_hidden_size"), cfg("text_hidden_size"),
                             config_["projector_hidden_act"].get<std::string>());
  load(*proj);
  expect_close(proj->forward(in("image_features")), out("hidden_states"));
}

INSTANTIATE_TEST_SUITE_P(CPU, Blocks, ::testing::ValuesIn(on_device({"nn"}, "cpu")), param_name);
INSTANTIATE_TEST_SUITE_P(CUDA, Blocks, ::testing::ValuesIn(on_device({"nn"}, "cuda")), param_name);

// CLIP's activation computed in place, in cache-sized chunks on the CPU: bit-identical to
// transformers' expression x * sigmoid(1.702 * x) (as libtorch computes it on one thread, where
// no thread boundary adds scalar tails) for the activations' shapes (a multiple of 64 elements),
// in float32 and bfloat16; within two float32 ulps for any length; and the other paths (small,
// strided, with autograd, not in place).
TEST(QuickGelu, InPlaceChunksAreBitIdenticalToTheExpression) {
  c10::InferenceMode guard;
  struct Threads {
    int before = at::get_num_threads();
    ~Threads() { at::set_num_threads(before); }
  } restore;
  torch::manual_seed(7);
  auto expression = [&restore](const torch::Tensor& x) {
    at::set_num_threads(1);
    auto y = x * torch::sigmoid(1.702 * x);
    at::set_num_threads(restore.before);
    return y;
  };
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{3152, 3072}, {2, 197, 3072}, {5, 7, 64}, {3, 13}}) {
      SCOPED_TRACE(::testing::Message() << dtype << " " << at::IntArrayRef(shape));
      const auto x = (torch::randn(shape) * 4).to(dtype);
      const auto want = expression(x);
      auto mine = x.clone();
      const auto got = nn::quick_gelu_(mine);
      EXPECT_EQ(got.data_ptr(), mine.data_ptr());  // in place
      EXPECT_TRUE(torch::equal(got, want));
    }
  }
  // any length: the last chunk's tail goes through libtorch's scalar loop
  const auto x = torch::randn({3 * 65536 + 37}) * 4;
  const auto want = expression(x);
  const auto got = nn::quick_gelu_(x.clone());
  EXPECT_TRUE(((got - want).abs() <= want.abs() * 2.4e-7 + 1e-30).all().item<bool>());
  // strided: computed as a whole, still equal; the view's base sees the result
  auto base = torch::randn({512, 1024});
  const auto want_t = expression(base.t());
  EXPECT_TRUE(torch::equal(nn::quick_gelu_(base.t()), want_t));
  EXPECT_TRUE(torch::equal(base.t(), want_t));
}

TEST(QuickGelu, WithAutogradLeavesItsInputAlone) {
  auto x = torch::randn({300, 1024}, torch::requires_grad());
  const auto before = x.detach().clone();
  const auto y = nn::quick_gelu_(x);
  EXPECT_TRUE(torch::equal(x.detach(), before));
  EXPECT_TRUE(torch::allclose(y.detach(), before * torch::sigmoid(1.702 * before)));
}
