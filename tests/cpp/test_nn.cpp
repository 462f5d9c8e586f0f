// The shared transformer blocks (src/nn/) and the layers built on them, one at a time, against
// transformers 4.45.2's own modules (tests/reference/gen_nn_fixtures.py): attention with and
// without masks, grouped-query attention, RoPE, RMSNorm, the MLPs, both encoder/decoder layers,
// the LLaVA-NeXT projector. Instantiated per device; the CUDA instance skips without a GPU.
#include <gtest/gtest.h>

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
