#!/usr/bin/env python3
"""Generate tests/fixtures/nn/: unit-test fixtures for the transformer blocks BGE-VL shares.

Every expected value comes from Hugging Face transformers 4.45.2's own modules (asserted),
run in float32 with eager attention on random weights and inputs (fixed seeds) at tiny
sizes: CLIP attention / MLP / encoder layer (BGE-VL-CLIP and the LLaVA-NeXT vision tower),
Mistral RMSNorm / rotary embedding / attention with GQA / MLP / decoder layer (the
BGE-VL-MLLM language model) and the LLaVA-NeXT multimodal projector. Nothing here calls bgevl.

Requirements (not installed or vendored by this script): a Python where `import transformers`
gives exactly 4.45.2, with torch and numpy. No model code, tokenizer or checkpoint is needed.

Usage (repository root; tests/fixtures/nn/README.md records the environment used):

    python3 tests/reference/gen_nn_fixtures.py [--out-dir tests/fixtures/nn]

Writes one safetensors file per case, `cases.json` and `README.md`. In each file:
  weights.<name>  the module's parameters, named as in its state_dict() (F32);
  in.<name>       what the module (or function) was given: hidden_states, attention_mask (2-D,
                  I64, 1 = real token), attention_mask_4d / causal_attention_mask (the additive
                  F32 masks transformers builds from it), position_ids (I64), q, k, cos, sin, ...;
  out.<name>      what it returned (for attention modules the attention output only).

Deterministic: weights and inputs come from numpy RandomState streams seeded by case and tensor
name (no torch RNG), one torch thread; rerunning in the same environment rewrites identical bytes.
"""

import argparse
import json
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io  # noqa: E402  (tests/reference/safetensors_io.py)

REPO = os.path.dirname(os.path.dirname(HERE))
REQUIRED_TRANSFORMERS = "4.45.2"
SEED = 20250301

HIDDEN = 32
HEADS = 4
HEAD_DIM = 8
KV_HEADS = 2
CLIP_INTER = 64
MISTRAL_INTER = 56
EPS = 1e-5
THETA = 1000000.0
QK_GAIN = 1.5  # q/k weights a little sharper than 1/sqrt(fan_in): softmax rows far from uniform


def _rng(case, name):
    return np.random.RandomState((SEED * 1000003 + zlib.crc32(f"{case}/{name}".encode())) % (2**32))


def randn(case, name, shape, scale=1.0):
    import torch

    return torch.from_numpy((scale * _rng(case, name).standard_normal(size=shape)).astype(np.float32))


def randomize(case, module):
    """Every parameter random (the modules' own init leaves norms at 1 and biases at 0)."""
    import torch

    norms = {mname for mname, mod in module.named_modules() if "Norm" in type(mod).__name__}
    with torch.no_grad():
        for name, p in module.named_parameters():
            z = _rng(case, "weights." + name).standard_normal(size=tuple(p.shape))
            owner, _, leaf = name.rpartition(".")
            if owner in norms and leaf == "weight":  # LayerNorm / RMSNorm gains
                v = 1.0 + 0.3 * z
            elif owner in norms and leaf == "bias":
                v = 0.2 * z
            elif leaf == "bias":
                v = 0.1 * z
            elif p.dim() == 2:
                gain = QK_GAIN if (".q_proj" in "." + name or ".k_proj" in "." + name) else 1.0
                v = gain * z / np.sqrt(p.shape[1])
            else:
                raise ValueError(f"no init rule for {name}")
            p.copy_(torch.from_numpy(v.astype(np.float32)))
    module.eval()
    return module


# --------------------------------------------------------------------------- configs


def clip_config(act="quick_gelu"):
    from transformers import CLIPTextConfig

    cfg = CLIPTextConfig(hidden_size=HIDDEN, intermediate_size=CLIP_INTER, num_attention_heads=HEADS,
                         num_hidden_layers=1, hidden_act=act, layer_norm_eps=EPS, attention_dropout=0.0,
                         vocab_size=64, max_position_embeddings=16)
    cfg._attn_implementation = "eager"
    return cfg


def mistral_config():
    from transformers import MistralConfig

    cfg = MistralConfig(hidden_size=HIDDEN, intermediate_size=MISTRAL_INTER, num_attention_heads=HEADS,
                        num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, num_hidden_layers=1, hidden_act="silu",
                        rms_norm_eps=EPS, rope_theta=THETA, sliding_window=None, max_position_embeddings=32768,
                        vocab_size=64, attention_dropout=0.0)
    cfg._attn_implementation = "eager"
    return cfg


def _clip_cfg_json(cfg):
    return {"hidden_size": cfg.hidden_size, "num_attention_heads": cfg.num_attention_heads,
            "head_dim": cfg.hidden_size // cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
            "hidden_act": cfg.hidden_act, "layer_norm_eps": cfg.layer_norm_eps,
            "scale": (cfg.hidden_size // cfg.num_attention_heads) ** -0.5, "attn_implementation": "eager"}


def _mistral_cfg_json(cfg):
    return {"hidden_size": cfg.hidden_size, "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads, "head_dim": cfg.head_dim,
            "intermediate_size": cfg.intermediate_size, "hidden_act": cfg.hidden_act,
            "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": cfg.rope_theta, "sliding_window": cfg.sliding_window,
            "attn_implementation": "eager"}


# --------------------------------------------------------------------------- masks


def right_padded_mask(lengths, L):
    import torch

    return torch.tensor([[1] * n + [0] * (L - n) for n in lengths], dtype=torch.int64)


def left_padded_mask(lengths, L):
    import torch

    return torch.tensor([[0] * (L - n) + [1] * n for n in lengths], dtype=torch.int64)


def clip_masks(mask2d):
    """What CLIPTextTransformer.forward builds (eager): the causal mask and the expanded padding
    mask, both additive F32 [B, 1, L, L] with torch.finfo(float32).min; CLIPAttention adds them
    one after the other (where both apply the sum is -inf)."""
    import torch
    from transformers.modeling_attn_mask_utils import _create_4d_causal_attention_mask, _prepare_4d_attention_mask

    causal = _create_4d_causal_attention_mask(tuple(mask2d.shape), torch.float32, device=torch.device("cpu"))
    padding = _prepare_4d_attention_mask(mask2d, torch.float32)
    return causal, padding


def mistral_mask_and_positions(mask2d, hidden):
    """The 4-D additive mask MistralModel._update_causal_mask builds for eager attention (causal +
    padding, torch.finfo(float32).min, never -inf; rows of left pads are entirely masked) and the
    position ids LLaVA-NeXT's legacy merge passes (cumsum(mask) - 1, pads set to 1)."""
    import torch
    from transformers import MistralModel

    cfg = mistral_config()
    model = MistralModel(cfg).eval()
    L = mask2d.shape[1]
    mask4d = model._update_causal_mask(mask2d, hidden, torch.arange(L), None, False, False)
    assert mask4d.dtype == torch.float32 and tuple(mask4d.shape) == (mask2d.shape[0], 1, L, L)
    assert torch.isfinite(mask4d).all()
    pos = (mask2d.cumsum(-1) - 1).masked_fill(mask2d == 0, 1)
    return mask4d.contiguous(), pos


# --------------------------------------------------------------------------- cases


def case_clip_attention_nomask(name):
    import torch
    from transformers.models.clip.modeling_clip import CLIPAttention

    cfg = clip_config()
    m = randomize(name, CLIPAttention(cfg))
    x = randn(name, "in.hidden_states", (2, 7, HIDDEN))
    with torch.no_grad():
        out = m(hidden_states=x)[0]
    return dict(module=m, config=_clip_cfg_json(cfg), inputs={"hidden_states": x}, outputs={"attn_output": out},
                call="CLIPAttention(config)(hidden_states=in.hidden_states)[0]",
                checks="CLIP attention without any mask (the vision tower's): q/k/v/out projections with biases, "
                       "q scaled by head_dim^-0.5 before q.k, softmax, heads merged.")


def case_clip_attention_causal_padding(name):
    import torch
    from transformers.models.clip.modeling_clip import CLIPAttention

    cfg = clip_config()
    m = randomize(name, CLIPAttention(cfg))
    B, L = 3, 9
    mask2d = right_padded_mask([9, 6, 3], L)
    causal, padding = clip_masks(mask2d)
    x = randn(name, "in.hidden_states", (B, L, HIDDEN))
    with torch.no_grad():
        out = m(hidden_states=x, attention_mask=padding, causal_attention_mask=causal)[0]
    return dict(module=m, config=_clip_cfg_json(cfg),
                inputs={"hidden_states": x, "attention_mask": mask2d, "causal_attention_mask": causal,
                        "attention_mask_4d": padding},
                outputs={"attn_output": out},
                call=("CLIPAttention(config)(hidden_states=in.hidden_states, attention_mask=in.attention_mask_4d, "
                      "causal_attention_mask=in.causal_attention_mask)[0]"),
                checks=("CLIP text attention on a right-padded batch (lengths 9, 6, 3): "
                        "in.causal_attention_mask = _create_4d_causal_attention_mask((B, L), float32), "
                        "in.attention_mask_4d = _prepare_4d_attention_mask(in.attention_mask, float32), both "
                        "[B, 1, L, L] with finfo(float32).min, added to the scores in that order (where both "
                        "apply the sum is -inf; no row is fully masked). Pad positions' outputs are included: "
                        "they attend to the real tokens before them."))


def case_clip_mlp(name, act):
    import torch
    from transformers.models.clip.modeling_clip import CLIPMLP

    cfg = clip_config(act)
    m = randomize(name, CLIPMLP(cfg))
    x = randn(name, "in.hidden_states", (2, 5, HIDDEN), scale=2.0)
    with torch.no_grad():
        out = m(x)
    return dict(module=m, config=_clip_cfg_json(cfg), inputs={"hidden_states": x}, outputs={"hidden_states": out},
                call="CLIPMLP(config)(in.hidden_states)",
                checks=f"fc1 -> {act} -> fc2 with biases" + (
                    " (quick_gelu = x * sigmoid(1.702 x), BGE-VL-CLIP's and the LLaVA-NeXT vision tower's)"
                    if act == "quick_gelu" else " (exact erf GELU)") + "; inputs with std 2 reach the tails.")


def case_clip_encoder_layer(name, masked):
    import torch
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer

    cfg = clip_config("quick_gelu")
    m = randomize(name, CLIPEncoderLayer(cfg))
    if masked:
        B, L = 3, 8
        mask2d = right_padded_mask([8, 5, 2], L)
        causal, padding = clip_masks(mask2d)
        x = randn(name, "in.hidden_states", (B, L, HIDDEN))
        with torch.no_grad():
            out = m(x, attention_mask=padding, causal_attention_mask=causal)[0]
        inputs = {"hidden_states": x, "attention_mask": mask2d, "causal_attention_mask": causal,
                  "attention_mask_4d": padding}
        call = ("CLIPEncoderLayer(config)(in.hidden_states, attention_mask=in.attention_mask_4d, "
                "causal_attention_mask=in.causal_attention_mask)[0]")
        checks = ("pre-LN CLIP layer x + attn(ln1(x)), then x + mlp(ln2(x)), with the text tower's causal + "
                  "padding masks (right-padded batch, lengths 8, 5, 2; masks as in clip_attention_causal_padding).")
    else:
        x = randn(name, "in.hidden_states", (2, 6, HIDDEN))
        with torch.no_grad():
            out = m(x, attention_mask=None, causal_attention_mask=None)[0]
        inputs = {"hidden_states": x}
        call = "CLIPEncoderLayer(config)(in.hidden_states, attention_mask=None, causal_attention_mask=None)[0]"
        checks = "pre-LN CLIP layer without masks (as in the vision tower)."
    return dict(module=m, config=_clip_cfg_json(cfg), inputs=inputs, outputs={"hidden_states": out}, call=call,
                checks=checks)


def case_mistral_rmsnorm(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralRMSNorm

    m = randomize(name, MistralRMSNorm(HIDDEN, eps=EPS))
    z = randn(name, "in.hidden_states", (2, 6, HIDDEN))
    # one scale per position, from 1e-4 (eps dominates mean(x^2)) to 1e4
    scales = torch.tensor([1e-4, 3e-3, 1.0, 30.0, 1e3, 1e4, 1e-3, 0.1, 1.0, 10.0, 300.0, 5e3]).reshape(2, 6, 1)
    x = (z * scales).to(torch.float32)
    with torch.no_grad():
        out = m(x)
    return dict(module=m, config={"hidden_size": HIDDEN, "rms_norm_eps": EPS}, inputs={"hidden_states": x},
                outputs={"hidden_states": out}, call="MistralRMSNorm(hidden_size, eps)(in.hidden_states)",
                checks=("weight * (x * rsqrt(mean(x^2) + eps)) in float32, on positions whose scales run from "
                        "1e-4 (where eps matters) to 1e4."))


def _rotary_positions():
    import torch

    mask2d = left_padded_mask([7, 4], 7)
    pos = (mask2d.cumsum(-1) - 1).masked_fill(mask2d == 0, 1)
    # a third row: the tail of a ~2930-position merged LLaVA-NeXT prompt (large angles)
    pos = torch.cat([pos, torch.arange(2925, 2932, dtype=torch.int64)[None]], dim=0)
    mask2d = torch.cat([mask2d, torch.ones(1, 7, dtype=torch.int64)], dim=0)
    return mask2d, pos


def case_mistral_rotary(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralRotaryEmbedding

    m = MistralRotaryEmbedding(HEAD_DIM, max_position_embeddings=32768, base=THETA).eval()
    mask2d, pos = _rotary_positions()
    x = torch.zeros(3, KV_HEADS, 7, HEAD_DIM)  # only its dtype/device are used
    with torch.no_grad():
        cos, sin = m(x, pos)
    return dict(module=m, config={"head_dim": HEAD_DIM, "rope_theta": THETA}, inputs={"attention_mask": mask2d,
                                                                                     "position_ids": pos},
                outputs={"cos": cos, "sin": sin},
                call="MistralRotaryEmbedding(head_dim, max_position_embeddings=32768, base=rope_theta)(x, in.position_ids)",
                checks=("cos/sin [B, L, head_dim] (the half-size angle table repeated twice, computed in float32: "
                        "inv_freq = 1 / theta^(arange(0, d, 2) / d), angles = inv_freq x position). Rows: a full "
                        "row 0..6; a left-padded row (in.attention_mask) whose position ids count real tokens "
                        "only with pads set to 1, as LLaVA-NeXT's merge makes them: [1, 1, 1, 0, 1, 2, 3]; and "
                        "positions 2925..2931 (large angles). No weights (inv_freq is a non-persistent buffer)."))


def case_mistral_apply_rotary(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralRotaryEmbedding, apply_rotary_pos_emb

    rope = MistralRotaryEmbedding(HEAD_DIM, max_position_embeddings=32768, base=THETA)
    _, pos = _rotary_positions()
    q = randn(name, "in.q", (3, HEADS, 7, HEAD_DIM))
    k = randn(name, "in.k", (3, KV_HEADS, 7, HEAD_DIM))
    with torch.no_grad():
        cos, sin = rope(k, pos)
        q2, k2 = apply_rotary_pos_emb(q, k, cos, sin)
    return dict(module=None, config={"head_dim": HEAD_DIM, "rope_theta": THETA, "num_attention_heads": HEADS,
                                     "num_key_value_heads": KV_HEADS},
                inputs={"q": q, "k": k, "cos": cos, "sin": sin, "position_ids": pos},
                outputs={"q_embed": q2, "k_embed": k2},
                call="apply_rotary_pos_emb(in.q, in.k, in.cos, in.sin) (unsqueeze_dim=1)",
                checks=("rotate-half RoPE: q * cos + rotate_half(q) * sin with rotate_half(x) = cat(-x2, x1), cos/sin "
                        "broadcast over heads; q has 4 heads, k 2 (GQA, before repeat_kv); cos/sin are "
                        "mistral_rotary's for in.position_ids."))


def _mistral_attn_inputs(name):
    B, L = 3, 8
    mask2d = left_padded_mask([8, 5, 2], L)
    x = randn(name, "in.hidden_states", (B, L, HIDDEN))
    mask4d, pos = mistral_mask_and_positions(mask2d, x)
    return x, mask2d, mask4d, pos


_MASK_NOTE = ("in.attention_mask_4d = MistralModel._update_causal_mask(in.attention_mask, hidden_states, "
              "cache_position=arange(L), None, use_cache=False, output_attentions=False): [B, 1, L, L], 0 or "
              "finfo(float32).min (never -inf; the allowed entries are -0.0, as min * False); the left pads' rows are entirely masked, so their softmax is "
              "uniform over all L keys and their outputs are finite. in.position_ids = cumsum(mask) - 1 with pads "
              "set to 1 (LLaVA-NeXT's merge). Left-padded batch, lengths 8, 5, 2.")


def case_mistral_attention(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralAttention

    cfg = mistral_config()
    m = randomize(name, MistralAttention(cfg, layer_idx=0))
    x, mask2d, mask4d, pos = _mistral_attn_inputs(name)
    with torch.no_grad():
        out = m(hidden_states=x, attention_mask=mask4d, position_ids=pos)[0]
    return dict(module=m, config=_mistral_cfg_json(cfg),
                inputs={"hidden_states": x, "attention_mask": mask2d, "attention_mask_4d": mask4d, "position_ids": pos},
                outputs={"attn_output": out},
                call=("MistralAttention(config, layer_idx=0)(hidden_states=in.hidden_states, "
                      "attention_mask=in.attention_mask_4d, position_ids=in.position_ids)[0]"),
                checks=("eager Mistral attention: q/k/v/o without biases, 4 query heads sharing 2 KV heads (GQA, "
                        "repeat_kv), RoPE from position_ids (theta 1e6), scores / sqrt(head_dim) + mask, softmax "
                        "in float32. " + _MASK_NOTE))


def case_mistral_mlp(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralMLP

    cfg = mistral_config()
    m = randomize(name, MistralMLP(cfg))
    x = randn(name, "in.hidden_states", (2, 5, HIDDEN), scale=2.0)
    with torch.no_grad():
        out = m(x)
    return dict(module=m, config=_mistral_cfg_json(cfg), inputs={"hidden_states": x}, outputs={"hidden_states": out},
                call="MistralMLP(config)(in.hidden_states)",
                checks="down_proj(silu(gate_proj(x)) * up_proj(x)), no biases, intermediate 56.")


def case_mistral_decoder_layer(name):
    import torch
    from transformers.models.mistral.modeling_mistral import MistralDecoderLayer

    cfg = mistral_config()
    m = randomize(name, MistralDecoderLayer(cfg, layer_idx=0))
    x, mask2d, mask4d, pos = _mistral_attn_inputs(name)
    with torch.no_grad():
        out = m(x, attention_mask=mask4d, position_ids=pos)[0]
    return dict(module=m, config=_mistral_cfg_json(cfg),
                inputs={"hidden_states": x, "attention_mask": mask2d, "attention_mask_4d": mask4d, "position_ids": pos},
                outputs={"hidden_states": out},
                call=("MistralDecoderLayer(config, layer_idx=0)(in.hidden_states, attention_mask=in.attention_mask_4d, "
                      "position_ids=in.position_ids)[0]"),
                checks="x + self_attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x)). " + _MASK_NOTE)


def case_llava_projector(name):
    import torch
    from transformers import LlavaNextConfig
    from transformers.models.llava_next.modeling_llava_next import LlavaNextMultiModalProjector

    text_hidden = 48
    cfg = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=HIDDEN, intermediate_size=CLIP_INTER,
                           num_attention_heads=HEADS, num_hidden_layers=1, image_size=28, patch_size=14),
        text_config=dict(model_type="mistral", hidden_size=text_hidden, intermediate_size=MISTRAL_INTER,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, num_hidden_layers=1, vocab_size=64),
        projector_hidden_act="gelu")
    m = randomize(name, LlavaNextMultiModalProjector(cfg))
    x = randn(name, "in.image_features", (3, 6, HIDDEN), scale=1.5)
    with torch.no_grad():
        out = m(x)
    return dict(module=m, config={"vision_hidden_size": HIDDEN, "text_hidden_size": text_hidden,
                                  "projector_hidden_act": "gelu"},
                inputs={"image_features": x}, outputs={"hidden_states": out},
                call="LlavaNextMultiModalProjector(config)(in.image_features)",
                checks=("linear_1 (vision 32 -> text 48, bias) -> GELU (erf) -> linear_2 (48 -> 48, bias), on "
                        "[tiles, positions, 32] features."))


CASES = [
    ("clip_attention_nomask", "transformers.models.clip.modeling_clip.CLIPAttention", case_clip_attention_nomask),
    ("clip_attention_causal_padding", "transformers.models.clip.modeling_clip.CLIPAttention",
     case_clip_attention_causal_padding),
    ("clip_mlp_quick_gelu", "transformers.models.clip.modeling_clip.CLIPMLP", lambda n: case_clip_mlp(n, "quick_gelu")),
    ("clip_mlp_gelu", "transformers.models.clip.modeling_clip.CLIPMLP", lambda n: case_clip_mlp(n, "gelu")),
    ("clip_encoder_layer_masked", "transformers.models.clip.modeling_clip.CLIPEncoderLayer",
     lambda n: case_clip_encoder_layer(n, True)),
    ("clip_encoder_layer_nomask", "transformers.models.clip.modeling_clip.CLIPEncoderLayer",
     lambda n: case_clip_encoder_layer(n, False)),
    ("mistral_rmsnorm", "transformers.models.mistral.modeling_mistral.MistralRMSNorm", case_mistral_rmsnorm),
    ("mistral_rotary", "transformers.models.mistral.modeling_mistral.MistralRotaryEmbedding", case_mistral_rotary),
    ("mistral_apply_rotary", "transformers.models.mistral.modeling_mistral.apply_rotary_pos_emb",
     case_mistral_apply_rotary),
    ("mistral_attention_gqa", "transformers.models.mistral.modeling_mistral.MistralAttention", case_mistral_attention),
    ("mistral_mlp", "transformers.models.mistral.modeling_mistral.MistralMLP", case_mistral_mlp),
    ("mistral_decoder_layer", "transformers.models.mistral.modeling_mistral.MistralDecoderLayer",
     case_mistral_decoder_layer),
    ("llava_next_projector", "transformers.models.llava_next.modeling_llava_next.LlavaNextMultiModalProjector",
     case_llava_projector),
]


def _dtype(t):
    return {"torch.float32": "F32", "torch.int64": "I64"}[str(t.dtype)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "tests", "fixtures", "nn"))
    args = ap.parse_args()

    import torch
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        raise SystemExit(f"transformers {transformers.__version__} found, need exactly {REQUIRED_TRANSFORMERS}")
    torch.set_num_threads(1)
    torch.manual_seed(SEED)  # not used for values (numpy streams are), only so module init is repeatable
    os.makedirs(args.out_dir, exist_ok=True)
    versions = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__}

    meta = {
        "format": 1,
        "generator": "tests/reference/gen_nn_fixtures.py",
        "reference": dict(versions, dtype="float32", attention="eager", threads=1,
                          note="transformers' own modules, random weights and inputs (numpy RandomState, fixed seeds)"),
        "naming": {"weights.<name>": "module parameters as in state_dict()", "in.<name>": "inputs",
                   "out.<name>": "outputs"},
        "cases": [],
    }
    for name, cls, fn in CASES:
        r = fn(name)
        tensors = {}
        weights = {} if r["module"] is None else r["module"].state_dict()
        for k, v in weights.items():
            tensors[f"weights.{k}"] = v.detach().float().contiguous()
        for k, v in r["inputs"].items():
            tensors[f"in.{k}"] = v.detach().contiguous()
        for k, v in r["outputs"].items():
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), (name, k)
            tensors[f"out.{k}"] = v.detach().contiguous()
        fn_out = f"{name}.safetensors"
        safetensors_io.save_torch(tensors, os.path.join(args.out_dir, fn_out),
                                  dict(versions, format="pt", case=name, module=cls))
        meta["cases"].append({
            "name": name,
            "file": f"tests/fixtures/nn/{fn_out}",
            "module": cls,
            "call": r["call"],
            "config": r["config"],
            "tensors": {k: {"dtype": _dtype(v), "shape": list(v.shape)} for k, v in tensors.items()},
            "checks": r["checks"],
            **versions,
        })
    with open(os.path.join(args.out_dir, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_readme(args.out_dir, meta)
    total = sum(os.path.getsize(os.path.join(args.out_dir, f)) for f in os.listdir(args.out_dir))
    print(f"wrote {len(CASES)} cases to {args.out_dir} ({total} bytes)")


def write_readme(out_dir, meta):
    r = meta["reference"]
    lines = [
        "# Transformer-block fixtures (transformers 4.45.2 modules)",
        "",
        "Generated by `tests/reference/gen_nn_fixtures.py`; do not edit by hand. Every `out.*` tensor was",
        f"computed by Hugging Face transformers {r['transformers']}'s own modules (or functions), in float32",
        "with eager attention, on random weights and inputs (numpy `RandomState` streams with fixed seeds,",
        "set into the modules with `copy_`); bgevl took no part. Sizes are tiny: hidden 32, 4 heads of 8",
        "(Mistral: 2 KV heads), sequences of 5 to 9, batches of 2 or 3.",
        "",
        "## Environment used",
        "",
        f"- transformers {r['transformers']} (source of tag v4.45.2, commit 53fad641cfdb5105e2470bcf3ef17ea8e25cc300)",
        f"- torch {r['torch']} (Debian's python3-torch 1.13.1, CPU, 1 thread), numpy {r['numpy']}",
        "",
        "Command (repository root, with `import transformers` giving 4.45.2; no model code, tokenizer or",
        "checkpoint is needed):",
        "",
        "    python3 tests/reference/gen_nn_fixtures.py",
        "",
        "Rerunning in the same environment rewrites identical bytes.",
        "",
        "## Layout",
        "",
        "One safetensors file per case (`__metadata__`: versions, case, module). Tensor names:",
        "",
        "- `weights.<name>`: the module's parameters, named as in its `state_dict()` (F32);",
        "- `in.<name>`: its inputs: `hidden_states` (F32 `[B, L, C]`), `attention_mask` (I64 `[B, L]`, 1 = real",
        "  token), `attention_mask_4d` / `causal_attention_mask` (the additive F32 `[B, 1, L, L]` masks",
        "  transformers builds from it and passes to the module), `position_ids` (I64 `[B, L]`), `q`, `k`, `cos`,",
        "  `sin`, `image_features`;",
        "- `out.<name>`: what it returned (`attn_output` for attention modules, the attention output only;",
        "  `hidden_states` for layers, norms and MLPs; `cos`, `sin`; `q_embed`, `k_embed`).",
        "",
        "`cases.json` lists per case the module class, the call, the config values (hidden size, heads, KV",
        "heads, head_dim, eps, activation, theta), every tensor's dtype and shape, and the versions.",
        "",
        "## Cases",
        "",
        "| case | module | what it checks |",
        "| --- | --- | --- |",
    ]
    for c in meta["cases"]:
        lines.append(f"| `{c['name']}` | `{c['module'].rsplit('.', 1)[-1]}` | {c['checks']} |")
    lines += ["", "## Tensors", ""]
    for c in meta["cases"]:
        desc = ", ".join(f"`{k}` {v['dtype']} {v['shape']}" for k, v in c["tensors"].items())
        lines.append(f"- `{c['name']}`: {desc}")
    lines += ["", "## Files", "", "| file | bytes |", "| --- | --- |"]
    total = 0
    for fn in sorted(os.listdir(out_dir)):
        if fn == "README.md":
            continue
        n = os.path.getsize(os.path.join(out_dir, fn))
        total += n
        lines.append(f"| `{fn}` | {n} |")
    lines += ["", f"Total (without this README): {total} bytes.", ""]
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
