#!/usr/bin/env python3
"""Generate the BGE-VL-MLLM (LLaVA-NeXT) test fixtures from the *reference* implementation.

The expected outputs come only from Hugging Face transformers 4.45.2 (its
LlavaNextProcessor / LlavaNextImageProcessor / slow LlamaTokenizer and
LlavaNextForConditionalGeneration + MistralForCausalLM) and the BGE-VL-MLLM model
code `modeling_llavanext_for_embedding.py` (class LLaVANextForEmbedding, shipped in
the BAAI/BGE-VL-MLLM-* model repositories), used exactly as the model card does:

    model = LLaVANextForEmbedding.from_pretrained(folder)     # float32, eval
    model.set_processor(folder)
    inputs = model.data_process(images=..., text=..., q_or_c=..., task_instruction=...)
    emb = normalize(model(**inputs, output_hidden_states=True)[:, -1, :], dim=-1)

Nothing in here calls bgevl.

Requirements (not installed or vendored by this script):
  * a Python where `import transformers` gives exactly 4.45.2 (asserted), with
    torch, numpy, Pillow, sentencepiece, protobuf (LlamaTokenizer legacy=False);
  * the file modeling_llavanext_for_embedding.py, passed with --mllm-code PATH;
  * the Mistral SentencePiece model, --tokenizer-model PATH (default
    ../shared/data/tokenizers/mistral/tokenizer.model beside the repository).
    It is NOT copied into the fixture folders (shared/data/README.md: do not copy
    these files into the project); the script runs the reference on a temporary
    copy of each checkpoint folder with tokenizer.model added, as the tests do.

Usage (from the repository root; the environment used for the committed
fixtures is described in tests/fixtures/llava/README.md):

    python3 tests/reference/gen_llava_fixtures.py --mllm-code /path/to/modeling_llavanext_for_embedding.py

What it writes (see tests/fixtures/llava/README.md for details):
  tests/fixtures/llava/tiny-llava-next-legacy/      tiny random checkpoint (legacy tokenizer),
                                                    F16 weights in two shards + index
  tests/fixtures/llava/tiny-llava-next/             the same weights (relative symlinks to the
                                                    shards and index above), legacy=false tokenizer
  tests/fixtures/llava/<ckpt>.expected.safetensors  per-case reference outputs
  tests/fixtures/llava/images.expected.safetensors  per-image vision/projector stages (shared)
  tests/fixtures/llava/cases.json                   the cases (inputs, tensor names, versions)
  tests/fixtures/llava/README.md

It does not touch tests/fixtures/llava/{pixel_values.safetensors,pixel_cases.json,
preprocessor_config.json} (written by another generator).

Everything is deterministic: fixed seeds, no timestamps, one torch thread;
rerunning in the same environment rewrites identical bytes.
"""

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mistral_tokenizer_files  # noqa: E402  (tests/reference/mistral_tokenizer_files.py)
import safetensors_io  # noqa: E402  (tests/reference/safetensors_io.py)

REPO = os.path.dirname(os.path.dirname(HERE))
REQUIRED_TRANSFORMERS = "4.45.2"
SEED = 20241203
TOKENIZER_MODEL_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
# save_pretrained's sharding rule (huggingface_hub split_torch_state_dict_into_shards) with this
# limit gives 2 shards and splits language-model layer 0 between them (shard 2 starts at
# layers.0.mlp.down_proj), so a loader must really read both shards
MAX_SHARD_SIZE = "2200KB"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]

WEIGHTS_FROM = "tiny-llava-next-legacy"  # the folder that holds the real shard files
CKPTS = {
    "tiny-llava-next-legacy": {"legacy": True},
    "tiny-llava-next": {"legacy": False},
}
SHARED_WEIGHT_FILES = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                       "model.safetensors.index.json"]

# real geometry (336 px tiles, patch 14 -> 576 features per tile, 5 tiles for a 512 square),
# narrow layers
DIMS = dict(
    image=336, patch=14, v_hidden=32, v_layers=3, v_heads=4, v_inter=64,
    t_hidden=32, t_layers=2, t_heads=4, t_kv_heads=2, t_inter=64, vocab=32064,
)

# the composed-image-retrieval instruction of the model card (trailing space included)
CIR = ("Retrieve the target image that best meets the combined criteria by using both the "
       "provided image and the image retrieval instructions: ")


def case_list():
    """Inputs exactly as passed to data_process (image names relative to tests/fixtures/images)."""
    return [
        {"name": "q_text_image", "q_or_c": "q", "task_instruction": CIR,
         "images": "chelsea.jpg", "text": "Make the cat sleep on a red sofa."},
        {"name": "q_image", "q_or_c": "q", "task_instruction": CIR,
         "images": "palette_P.png", "text": None},
        {"name": "q_text", "q_or_c": "query", "task_instruction": CIR,
         "images": None, "text": "A grey cat sleeping on a red sofa next to the window."},
        {"name": "q_text_image_noinst", "q_or_c": "query", "task_instruction": None,
         "images": "cmyk.jpg", "text": "Show the same cups from above."},
        {"name": "c_text_image", "q_or_c": "c", "task_instruction": None,
         "images": "grey_alpha_LA.png", "text": "A black and white photo of a cat."},
        {"name": "c_image", "q_or_c": "candidate", "task_instruction": None,
         "images": "crop_333x211.jpg", "text": None},
        {"name": "c_text", "q_or_c": "c", "task_instruction": None,
         "images": None, "text": "Two cups of coffee on a wooden table in a caf\u00e9."},
        {"name": "q_text_image_list3", "q_or_c": "q", "task_instruction": CIR,
         "images": ["chelsea.jpg", "cmyk.jpg", "grey_alpha_LA.png"],
         "text": ["Night.",
                  "Make it a cup of tea with lemon, on a blue plate next to a croissant and a newspaper.",
                  "The same cat in colour, please"]},
        {"name": "q_image_list2", "q_or_c": "q", "task_instruction": CIR,
         "images": ["palette_P.png", "crop_333x211.jpg"], "text": None},
        {"name": "c_text_image_list2", "q_or_c": "c", "task_instruction": None,
         "images": ["crop_333x211.jpg", "palette_P.png"],
         "text": ["A cup.", "Two cups of coffee with milk foam on saucers, seen from above on a dark table."]},
        {"name": "q_text_list3", "q_or_c": "q", "task_instruction": CIR, "images": None,
         "text": ["A dog.",
                  "A small grey cat sits on the wooden table by the window while it rains outside.",
                  "Red bicycle"]},
        {"name": "c_text_list2", "q_or_c": "candidate", "task_instruction": None, "images": None,
         "text": ["A cat sleeping on a red sofa in the afternoon sun, next to a green plant.", "Coffee"]},
    ]


# --------------------------------------------------------------------------
# checkpoint files


def make_config():
    from transformers import LlavaNextConfig

    d = DIMS
    text = dict(
        model_type="mistral", architectures=["MistralForCausalLM"],
        hidden_size=d["t_hidden"], intermediate_size=d["t_inter"], num_hidden_layers=d["t_layers"],
        num_attention_heads=d["t_heads"], num_key_value_heads=d["t_kv_heads"], vocab_size=d["vocab"],
        max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-5, sliding_window=None,
        hidden_act="silu", tie_word_embeddings=False, torch_dtype="float16",
    )
    vision = dict(
        model_type="clip_vision_model", hidden_size=d["v_hidden"], intermediate_size=d["v_inter"],
        num_hidden_layers=d["v_layers"], num_attention_heads=d["v_heads"], image_size=d["image"],
        patch_size=d["patch"], hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=32,
        vocab_size=32000,
    )
    cfg = LlavaNextConfig(
        vision_config=vision, text_config=text, image_token_index=32000, projector_hidden_act="gelu",
        vision_feature_select_strategy="default", vision_feature_layer=-2,
        image_grid_pinpoints=GRID_PINPOINTS, tie_word_embeddings=False, image_seq_length=576,
    )
    cfg.architectures = ["LLaVANextForEmbedding"]
    cfg.auto_map = {"AutoModel": "modeling_llavanext_for_embedding.LLaVANextForEmbedding"}
    cfg.use_image_newline_parameter = True
    cfg.torch_dtype = "float16"
    cfg.ignore_index = -100
    return cfg


PREPROCESSOR_CONFIG = {  # llava-hf/llava-v1.6-mistral-7b-hf
    "aspect_ratio_setting": "anyres",
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_grid_pinpoints": GRID_PINPOINTS,
    "image_mean": CLIP_MEAN,
    "image_processor_type": "LlavaNextImageProcessor",
    "image_std": CLIP_STD,
    "processor_class": "LlavaNextProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}


def write_tokenizer_files(folder, legacy):
    """tokenizer_config.json, special_tokens_map.json, added_tokens.json as shipped with
    llava-hf/llava-v1.6-mistral-7b-hf / BGE-VL-MLLM (tests/reference/mistral_tokenizer_files.py);
    tokenizer.model is not written (added to a temporary copy at run time)."""
    _write_json(os.path.join(folder, "tokenizer_config.json"), mistral_tokenizer_files.tokenizer_config(legacy))
    _write_json(os.path.join(folder, "special_tokens_map.json"), mistral_tokenizer_files.special_tokens_map())
    _write_json(os.path.join(folder, "added_tokens.json"), mistral_tokenizer_files.added_tokens())


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _param(name, shape, seed):
    """Deterministic random values (float32) for one parameter, scaled by role so that the
    hidden states stay O(1) and the last position depends clearly on the whole input."""
    rng = np.random.RandomState((seed * 1000003 + zlib.crc32(name.encode())) % (2**32))
    z = rng.standard_normal(size=shape).astype(np.float64)
    leaf = name.rsplit(".", 1)[-1]
    is_ln = any(k in name for k in ("layer_norm", "layrnorm", "layernorm"))
    if name == "image_newline":
        v = 0.5 * z
    elif name.startswith("language_model.") and "norm" in name:  # Mistral RMSNorm weights
        v = 1.0 + 0.3 * z
    elif is_ln and leaf == "weight":
        v = 1.0 + 0.3 * z
    elif is_ln and leaf == "bias":
        v = 0.2 * z
    elif name.endswith("embed_tokens.weight"):
        v = 1.0 * z
    elif name.endswith("lm_head.weight"):
        v = z / np.sqrt(shape[1])
    elif name.endswith("position_embedding.weight"):
        v = 0.3 * z
    elif name.endswith("class_embedding"):
        v = 0.5 * z
    elif name.endswith("patch_embedding.weight"):
        v = 1.5 * z / np.sqrt(int(np.prod(shape[1:])))
    elif name == "multi_modal_projector.linear_2.bias":
        # a shared direction in all image rows: some language-model heads then keep away from
        # the image positions and attend to the text (otherwise the ~2900 image rows drown it)
        v = PROJ_BIAS * z
    elif leaf == "bias":
        v = 0.1 * z
    elif leaf == "weight" and len(shape) == 2:
        if ".q_proj." in name or ".k_proj." in name:
            gain = T_QK_GAIN if name.startswith("language_model.") else V_QK_GAIN
        elif ".v_proj." in name or ".out_proj." in name or ".o_proj." in name:
            gain = 2.0
        else:
            gain = 1.0
        v = gain * z / np.sqrt(shape[1])
    else:
        raise ValueError(f"no init rule for {name} {shape}")
    return np.asarray(v, dtype=np.float32).reshape(shape)


V_QK_GAIN = 3.0  # vision tower q/k (as the CLIP fixtures)
PROJ_BIAS = 4.0
T_QK_GAIN = 3.0  # language model q/k: sharper attention, so the last position depends on the text (higher gains amplify float32 rounding past 1e-5)


def write_checkpoint(folder, legacy, cfg, weights_from=None):
    """Write one checkpoint folder. With weights_from (a sibling folder name) the shards and
    the index are relative symlinks into that folder instead of files."""
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from transformers import GenerationConfig, LlavaNextForConditionalGeneration

    if os.path.lexists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(cfg.to_json_string(use_diff=True))
    gen = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=32001)
    gen._from_model_config = True
    with open(os.path.join(folder, "generation_config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(gen.to_json_string(use_diff=True))
    _write_json(os.path.join(folder, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    _write_json(os.path.join(folder, "processor_config.json"), {"processor_class": "LlavaNextProcessor"})
    write_tokenizer_files(folder, legacy)

    if weights_from is not None:
        for fn in SHARED_WEIGHT_FILES:
            os.symlink(os.path.join("..", weights_from, fn), os.path.join(folder, fn))
        return None

    # names/shapes/order: transformers' own LlavaNextForConditionalGeneration state_dict
    torch.manual_seed(SEED)
    ref = LlavaNextForConditionalGeneration(cfg)
    tensors = {}
    for name, t in ref.state_dict().items():
        v = _param(name, tuple(t.shape), SEED)
        tensors[name] = torch.from_numpy(v).to(torch.float16).clone()
    del ref
    split = split_torch_state_dict_into_shards(
        tensors, filename_pattern="model{suffix}.safetensors", max_shard_size=MAX_SHARD_SIZE)
    assert split.is_sharded and sorted(split.filename_to_tensors) == SHARED_WEIGHT_FILES[:2], \
        sorted(split.filename_to_tensors)
    assert split.tensor_to_filename["language_model.model.norm.weight"] == SHARED_WEIGHT_FILES[1]
    assert split.tensor_to_filename["language_model.model.layers.0.self_attn.q_proj.weight"] == SHARED_WEIGHT_FILES[0]
    for fn, names in split.filename_to_tensors.items():
        safetensors_io.save_torch({n: tensors[n] for n in names}, os.path.join(folder, fn), {"format": "pt"})
    index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return tensors


def runnable_copy(folder, tokenizer_model, tmp_root):
    """A temporary copy of a checkpoint folder (symlinks resolved) plus tokenizer.model."""
    dst = os.path.join(tmp_root, os.path.basename(folder))
    shutil.copytree(folder, dst, symlinks=False)
    shutil.copyfile(tokenizer_model, os.path.join(dst, "tokenizer.model"))
    return dst


# --------------------------------------------------------------------------
# reference


def load_mllm(path):
    spec = importlib.util.spec_from_file_location("modeling_llavanext_for_embedding", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["modeling_llavanext_for_embedding"] = mod
    spec.loader.exec_module(mod)
    return mod


def load_reference_model(mllm, folder, tensors):
    import torch

    model, info = mllm.LLaVANextForEmbedding.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise RuntimeError(f"LLaVANextForEmbedding from {folder}: loading info not clean: {bad}")
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    sd = model.state_dict()
    if set(sd) != set(tensors):
        raise RuntimeError(f"state_dict keys differ: {sorted(set(sd) ^ set(tensors))}")
    for name, t in tensors.items():
        if sd[name].dtype != torch.float32 or not torch.equal(sd[name], t.float()):
            raise RuntimeError(f"{folder}: {name} did not round-trip (dtype {sd[name].dtype})")
    model.eval()
    try:
        model.set_processor(folder)
        tok_note = "set_processor(folder)"
    except (ImportError, ValueError) as e:
        model.processor = mllm.LlavaNextProcessor.from_pretrained(folder, use_fast=False)
        tok_note = f"LlavaNextProcessor.from_pretrained(folder, use_fast=False) (set_processor raised {type(e).__name__})"
    tok = model.processor.tokenizer
    tok_note += f"; tokenizer class {type(tok).__name__}, legacy={tok.legacy}, padding_side={tok.padding_side}"
    return model, tok_note


class Capture:
    """Wraps submodules' forward (instance attributes) to record what the reference computes
    inside model(**inputs): vision tower hidden states, projector output, packed features,
    and the language model's inputs after the image merge."""

    def __init__(self, model):
        self.model = model
        self.rec = {}

    def __enter__(self):
        m, rec = self.model, self.rec

        def wrap(obj, attr, fn):
            orig = getattr(obj, attr)

            def w(*a, **k):
                out = orig(*a, **k)
                fn(a, k, out)
                return out
            setattr(obj, attr, w)

        def on_vision(a, k, out):
            rec["vision_hidden_states"] = out.hidden_states
            rec["vision_pixel_values"] = a[0] if a else k["pixel_values"]

        def on_proj(a, k, out):
            rec["projector_output"] = out

        def on_pack(a, k, out):
            rec["packed_features"], rec["feature_lens"] = out

        def on_lm(a, k, out):
            rec["lm_inputs_embeds"] = k["inputs_embeds"]
            rec["lm_attention_mask"] = k["attention_mask"]
            rec["lm_position_ids"] = k["position_ids"]

        wrap(m.vision_tower, "forward", on_vision)
        wrap(m.multi_modal_projector, "forward", on_proj)
        wrap(m, "pack_image_features", on_pack)
        wrap(m.language_model, "forward", on_lm)
        return rec

    def __exit__(self, *exc):
        for obj in (self.model.vision_tower, self.model.multi_modal_projector, self.model.language_model):
            del obj.forward
        del self.model.pack_image_features
        return False


def _paths(x, img_dir):
    if x is None:
        return None
    return os.path.join(img_dir, x) if isinstance(x, str) else [os.path.join(img_dir, p) for p in x]


def build_inputs(model, case, img_dir):
    """model.data_process as the model card calls it. A list of texts without images crashes
    there (zip(None, text)); that case builds the prompts with the model's own
    prepare_text_input and calls the processor as data_process would."""
    images, text = _paths(case["images"], img_dir), case["text"]
    note = {}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        if images is None and isinstance(text, list):
            try:
                model.data_process(images=None, text=text, q_or_c=case["q_or_c"],
                                   task_instruction=case["task_instruction"])
                raise RuntimeError("data_process unexpectedly accepted a text list without images")
            except TypeError as e:
                note["data_process_error"] = f"{type(e).__name__}: {e}"
            prompts = [model.prepare_text_input(None, t, case["q_or_c"], case["task_instruction"])
                       for t in text]
            inputs = model.processor(text=prompts, return_tensors="pt", padding=True)
            note["built_with"] = ("prepare_text_input per text + processor(text=prompts, "
                                  "return_tensors='pt', padding=True)")
        else:
            inputs = model.data_process(images=images, text=text, q_or_c=case["q_or_c"],
                                        task_instruction=case["task_instruction"])
            note["built_with"] = "data_process"
    printed = stdout.getvalue()
    if printed:
        note["printed"] = printed
    return inputs, note


def run_case(model, case, img_dir):
    import torch

    inputs, note = build_inputs(model, case, img_dir)
    with torch.no_grad(), Capture(model) as rec:
        hidden = model(**inputs, output_hidden_states=True)
    assert torch.is_tensor(hidden) and hidden.dtype == torch.float32, type(hidden)
    last = hidden[:, -1, :]
    emb = torch.nn.functional.normalize(last, dim=-1)
    out = {
        "input_ids": inputs["input_ids"].to(torch.int64),
        "attention_mask": inputs["attention_mask"].to(torch.int64),
        "embeddings": emb,
        "last_hidden": last,
    }
    stages = {}
    if "pixel_values" in inputs:
        out["image_sizes"] = inputs["image_sizes"].to(torch.int64)
        out["feature_lens"] = rec["feature_lens"].to(torch.int64)
        am = rec["lm_attention_mask"]
        out["merged_seq_len"] = torch.tensor([rec["lm_inputs_embeds"].shape[1]], dtype=torch.int64)
        out["merged_lengths"] = am.sum(-1).to(torch.int64)
        # the first image's tiles are the first rows of the vision batch
        n0 = int(inputs["pixel_values"].shape[1])  # 5 for every 512x512 image
        stages = {
            "vision_features": rec["vision_hidden_states"][-2][:n0, 1:].contiguous(),
            "projector_output": rec["projector_output"][:n0].contiguous(),
            "packed_features": rec["packed_features"][: int(rec["feature_lens"][0])].contiguous(),
            "pixel_values": rec["vision_pixel_values"][:n0].contiguous(),
        }
        note["lm_position_ids_rule"] = _check_position_ids(rec, left_padded_text_only=False)
    else:
        note["lm_position_ids_rule"] = _check_position_ids(rec, left_padded_text_only=True)
    return {k: v.detach().contiguous() for k, v in out.items()}, stages, note


def _check_position_ids(rec, left_padded_text_only):
    import torch

    pos = rec["lm_position_ids"]
    am = rec["lm_attention_mask"]
    if left_padded_text_only:
        if pos is not None:
            raise RuntimeError("text-only: expected position_ids None")
        return "None passed to the language model: positions 0..L-1 for every row, pads included"
    expect = (am.cumsum(-1) - 1).masked_fill(am == 0, 1)
    if not torch.equal(pos, expect):
        raise RuntimeError("merged position_ids differ from cumsum(mask)-1 (pads 1)")
    return "cumsum(merged attention_mask) - 1, pads set to 1: counts only real positions"


# --------------------------------------------------------------------------


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def _items(case):
    """Single-item versions of a batched case, in order."""
    imgs, txts = case["images"], case["text"]
    n = len(imgs) if isinstance(imgs, list) else len(txts)
    out = []
    for i in range(n):
        out.append(dict(case, name=f"{case['name']}[{i}]",
                        images=imgs[i] if isinstance(imgs, list) else None,
                        text=txts[i] if isinstance(txts, list) else None))
    return out


def prompts_of(model, case):
    """The prompt strings data_process builds (prepare_text_input), one per item."""
    items = _items(case) if _is_batch(case) else [case]
    with contextlib.redirect_stdout(io.StringIO()):
        return [model.prepare_text_input(it["images"], it["text"], it["q_or_c"], it["task_instruction"])
                for it in items]


def _is_batch(case):
    return isinstance(case["images"] if case["images"] is not None else case["text"], list)


def fp64_embeddings(model, case, img_dir):
    """The same case with the model upcast to float64 (conditioning check, not a fixture).
    Batches are run item by item: in float64 the eager attention's float32 softmax turns the
    float64 mask minimum into -inf, fully masked (left pad) rows become NaN and 0 * NaN then
    reaches the real rows of the next layer; float32, as the reference runs, is not affected."""
    import torch

    if _is_batch(case):
        return torch.cat([fp64_embeddings(model, it, img_dir) for it in _items(case)])
    inputs, _ = build_inputs(model, case, img_dir)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].double()
    with torch.no_grad():
        hidden = model(**inputs)
    return torch.nn.functional.normalize(hidden[:, -1, :], dim=-1)


def image_stage_tensors(stages):
    """What is kept per image (see README): the base tile (tile 0, the whole image squashed to
    336x336) in full, per-tile checksums, and per-row checksums of the packed features."""
    import torch

    vf, po, pk = stages["vision_features"], stages["projector_output"], stages["packed_features"]

    def tile_sums(x):
        x = x.double()
        return torch.stack([x.sum(dim=(1, 2)), x.abs().sum(dim=(1, 2))], dim=1)

    return {
        "vision_features_tile0": vf[0].contiguous(),
        "projector_output_tile0": po[0].contiguous(),
        "vision_features_tile_sums": tile_sums(vf),
        "projector_output_tile_sums": tile_sums(po),
        "packed_features_row_sums": pk.double().sum(dim=1).float(),
        "packed_features_row_abs_sums": pk.double().abs().sum(dim=1).float(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mllm-code", required=True, help="path to modeling_llavanext_for_embedding.py")
    ap.add_argument("--tokenizer-model", default=None,
                    help="Mistral tokenizer.model (default: ../shared/data/tokenizers/mistral/tokenizer.model)")
    ap.add_argument("--out-root", default=REPO, help="repository root (default: this checkout)")
    args = ap.parse_args()

    import PIL
    import torch
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        raise SystemExit(f"transformers {transformers.__version__} found, need exactly {REQUIRED_TRANSFORMERS}")
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reduction order independent of the machine's core count

    tok_model = args.tokenizer_model or os.path.join(
        os.path.dirname(os.path.abspath(args.out_root)), "shared", "data", "tokenizers", "mistral",
        "tokenizer.model")
    if not os.path.isfile(tok_model):
        raise SystemExit(f"tokenizer.model not found: {tok_model} (pass --tokenizer-model)")
    if sha256(tok_model) != TOKENIZER_MODEL_SHA256:
        raise SystemExit(f"{tok_model}: unexpected sha256 (want the Mistral v1 tokenizer.model)")

    img_dir = os.path.join(args.out_root, "tests", "fixtures", "images")
    llava_dir = os.path.join(args.out_root, "tests", "fixtures", "llava")
    os.makedirs(llava_dir, exist_ok=True)

    other_pp = os.path.join(llava_dir, "preprocessor_config.json")  # the pixel generator's copy
    if os.path.isfile(other_pp):
        with open(other_pp, encoding="utf-8") as f:
            if json.load(f) != PREPROCESSOR_CONFIG:
                print(f"NOTE: {other_pp} differs from this script's PREPROCESSOR_CONFIG")

    mllm = load_mllm(args.mllm_code)
    cfg = make_config()
    cases = case_list()

    # the two folders: weights written once, symlinked from the second
    tensors = None
    for ckpt, spec in CKPTS.items():
        folder = os.path.join(llava_dir, ckpt)
        t = write_checkpoint(folder, spec["legacy"], cfg,
                             weights_from=None if ckpt == WEIGHTS_FROM else WEIGHTS_FROM)
        tensors = t if t is not None else tensors
    # both committed folders load as they are (symlinks included), no tokenizer needed for that
    for ckpt in CKPTS:
        m, info = mllm.LLaVANextForEmbedding.from_pretrained(os.path.join(llava_dir, ckpt),
                                                             output_loading_info=True)
        if any(info.values()):
            raise RuntimeError(f"{ckpt}: loading info not clean: {info}")
        del m

    meta = {
        "format": 1,
        "generator": "tests/reference/gen_llava_fixtures.py",
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "mllm_code": "modeling_llavanext_for_embedding.py (class LLaVANextForEmbedding, BAAI/BGE-VL-MLLM-*)",
            "mllm_code_sha256": sha256(args.mllm_code),
            "tokenizer_model": "../shared/data/tokenizers/mistral/tokenizer.model (not in the fixture folders)",
            "tokenizer_model_sha256": TOKENIZER_MODEL_SHA256,
            "dtype": "float32 (F16 checkpoint upcast: from_pretrained without torch_dtype)",
            "attention": "eager",
            "threads": 1,
        },
        "images_dir": "tests/fixtures/images",
        "instructions": {"cir": CIR},
        "checkpoints": {},
        "image_stages": {"file": "tests/fixtures/llava/images.expected.safetensors", "images": {}},
        "cases": [],
    }

    image_stages = {}  # image name -> stage tensors (the same for both checkpoints: same weights)
    outputs_by_ckpt = {}
    notes_by_ckpt = {}
    tmp_root = tempfile.mkdtemp(prefix="bgevl_llava_")
    try:
        for ckpt, spec in CKPTS.items():
            folder = runnable_copy(os.path.join(llava_dir, ckpt), tok_model, tmp_root)
            model, tok_note = load_reference_model(mllm, folder, tensors)
            assert model.processor.tokenizer.legacy == spec["legacy"]
            assert model.padding_side == "left"
            newline_dtype = str(dict(model.named_parameters())["image_newline"].dtype)
            outputs, notes = {}, {}
            for case in cases:
                res, stages, note = run_case(model, case, img_dir)
                for k, v in res.items():
                    outputs[f"{case['name']}/{k}"] = v
                notes[case["name"]] = note
                case["prompts"] = prompts_of(model, case)
                if stages:
                    first = case["images"] if isinstance(case["images"], str) else case["images"][0]
                    prev = image_stages.get(first)
                    if prev is None:
                        image_stages[first] = dict(stages, from_case=case["name"], from_ckpt=ckpt)
                    else:
                        diffs = {k: float((prev[k].double() - stages[k].double()).abs().max())
                                 for k in ("vision_features", "projector_output", "packed_features",
                                           "pixel_values")}
                        case.setdefault("first_image_stages_max_abs_diff", {})[ckpt] = diffs
                        if max(diffs.values()) > 1e-4:
                            raise RuntimeError(f"{case['name']}: stages of {first} differ: {diffs}")

            # batched vs one by one (data_process with a single item)
            for case in cases:
                if not _is_batch(case):
                    continue
                singles = []
                for item in _items(case):
                    r, _, _ = run_case(model, item, img_dir)
                    singles.append(r["embeddings"])
                d = float((torch.cat(singles) - outputs[f"{case['name']}/embeddings"]).abs().max())
                case.setdefault("batched_vs_single_max_abs_diff", {})[ckpt] = d
                if d > 1e-4:
                    raise RuntimeError(f"{case['name']}: batched and single embeddings differ by {d}")

            # conditioning: the same cases in float64
            model.double()
            for case in cases:
                e64 = fp64_embeddings(model, case, img_dir)
                d = float((e64 - outputs[f"{case['name']}/embeddings"].double()).abs().max())
                case.setdefault("fp32_vs_fp64_max_abs_diff", {})[ckpt] = d
            del model

            outputs_by_ckpt[ckpt] = outputs
            notes_by_ckpt[ckpt] = notes
            meta["checkpoints"][ckpt] = {
                "dir": f"tests/fixtures/llava/{ckpt}",
                "expected": f"tests/fixtures/llava/{ckpt}.expected.safetensors",
                "tokenizer_legacy": spec["legacy"],
                "weights": ("files" if ckpt == WEIGHTS_FROM else
                            f"relative symlinks to ../{WEIGHTS_FROM}/ ({', '.join(SHARED_WEIGHT_FILES)})"),
                "tokenizer_used": tok_note,
                "image_newline_dtype_after_load": newline_dtype,
            }
    finally:
        shutil.rmtree(tmp_root)

    finish(args, meta, cases, outputs_by_ckpt, notes_by_ckpt, image_stages, cfg, tensors, llava_dir)


def finish(args, meta, cases, outputs_by_ckpt, notes_by_ckpt, image_stages, cfg, tensors, llava_dir):
    import torch
    import transformers

    ckpts = list(CKPTS)
    for ckpt in ckpts:
        safetensors_io.save_torch(outputs_by_ckpt[ckpt],
                                  os.path.join(llava_dir, f"{ckpt}.expected.safetensors"),
                                  {"format": "pt", "transformers": transformers.__version__, "checkpoint": ckpt})

    img_tensors = {}
    for name in sorted(image_stages):
        st = image_stages[name]
        for k, v in image_stage_tensors(st).items():
            img_tensors[f"{name}/{k}"] = v
        pv = st["pixel_values"]
        meta["image_stages"]["images"][name] = {
            "from_case": f"{st['from_ckpt']}/{st['from_case']}",
            "image_size": [512, 512],
            "n_tiles": int(pv.shape[0]),
            "feature_len": int(st["packed_features"].shape[0]),
            "pixel_values_shape": list(pv.shape),
            "pixel_values_f32_sha256": hashlib.sha256(pv.float().numpy().tobytes()).hexdigest(),
            "tensors": [f"{name}/{k}" for k in image_stage_tensors(st)],
        }
    safetensors_io.save_torch(img_tensors, os.path.join(llava_dir, "images.expected.safetensors"),
                              {"format": "pt", "transformers": transformers.__version__})

    # the weights are the same for both checkpoints, so every image stage is too: the stage
    # tensors were taken from the first checkpoint; the second's equal them (checked above
    # whenever an image came back); the embeddings differ only through the token ids.
    for case in cases:
        o = [outputs_by_ckpt[c] for c in ckpts]
        n = case["name"]
        same_ids = all(torch.equal(o[0][f"{n}/input_ids"], x[f"{n}/input_ids"]) for x in o[1:])
        case["input_ids_equal_across_checkpoints"] = same_ids
        if same_ids and not all(torch.equal(o[0][f"{n}/embeddings"], x[f"{n}/embeddings"]) for x in o[1:]):
            raise RuntimeError(f"{n}: same ids, different embeddings across checkpoints")
        case["n_tokens"] = {c: [int(v) for v in outputs_by_ckpt[c][f"{n}/attention_mask"].sum(1)]
                            for c in ckpts}
        case["batch"] = int(o[0][f"{n}/embeddings"].shape[0])
        names = ["input_ids", "attention_mask", "embeddings", "last_hidden"]
        if case["images"] is not None:
            names += ["image_sizes", "feature_lens", "merged_seq_len", "merged_lengths"]
            first = case["images"] if isinstance(case["images"], str) else case["images"][0]
            case["first_image"] = first
            case["first_image_stages"] = meta["image_stages"]["images"][first]["tensors"]
            case["merged_seq_len"] = {c: int(outputs_by_ckpt[c][f"{n}/merged_seq_len"][0]) for c in ckpts}
        case["tensors"] = [f"{n}/{k}" for k in names]
        nt = notes_by_ckpt[ckpts[0]][n]
        case["built_with"] = nt["built_with"]
        if "data_process_error" in nt:
            case["data_process_error"] = nt["data_process_error"]
        case["reference_printed"] = nt.get("printed")
        case["lm_position_ids"] = nt["lm_position_ids_rule"]
        case["embedding_rule"] = "normalize(model(**inputs, output_hidden_states=True)[:, -1, :], dim=-1)"

    # pairwise cosine of all (case, row) embeddings: inputs must be distinguishable
    keys, rows = [], []
    o = outputs_by_ckpt[ckpts[0]]
    for case in cases:
        e = o[f"{case['name']}/embeddings"]
        for i in range(e.shape[0]):
            keys.append((case, i))
            rows.append(e[i])
    E = torch.stack(rows).double()
    C = E @ E.T
    worst = (-2.0, None)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            if _item_key(*keys[a]) == _item_key(*keys[b]):
                continue  # the same input in two cases
            if C[a, b] > worst[0]:
                worst = (float(C[a, b]), (f"{keys[a][0]['name']}[{keys[a][1]}]", f"{keys[b][0]['name']}[{keys[b][1]}]"))
    if worst[0] > 0.995:  # distinct enough: 1 - 0.995 is far above float32 noise
        raise RuntimeError(f"embeddings of different inputs too similar: {worst}")
    meta["max_cosine_between_different_inputs"] = {"checkpoint": ckpts[0], "cosine": round(worst[0], 4),
                                                   "pair": list(worst[1])}

    meta["cases"] = cases
    meta["model"] = {
        "vision": "CLIP ViT, image 336, patch 14 (576 patches + CLS), hidden 32, 3 layers, 4 heads, MLP 64, quick_gelu",
        "text": "Mistral, hidden 32, 2 layers, 4 heads, 2 KV heads (head_dim 8), MLP 64, silu, vocab 32064, "
                "rope_theta 1e6, rms_norm_eps 1e-5, no sliding window",
        "projector": "32 -> 32 -> 32, GELU (erf)",
        "weights": "F16, every parameter random (fixed seed), two shards + model.safetensors.index.json",
        "n_parameters": int(sum(t.numel() for t in tensors.values())),
        "shards": _shard_summary(llava_dir),
    }
    with open(os.path.join(llava_dir, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_readme(llava_dir, meta, args)
    print("done:", llava_dir)
    print("max cosine between different inputs:", meta["max_cosine_between_different_inputs"])
    for case in cases:
        print(f"  {case['name']:24s} n_tokens={case['n_tokens']} ids_equal={case['input_ids_equal_across_checkpoints']}"
              f" batched_vs_single={case.get('batched_vs_single_max_abs_diff')} fp64={case['fp32_vs_fp64_max_abs_diff']}")


def _item_key(case, i):
    imgs, txts = case["images"], case["text"]
    img = imgs[i] if isinstance(imgs, list) else imgs
    txt = txts[i] if isinstance(txts, list) else txts
    return (case["q_or_c"][0], case["task_instruction"], img, txt)


def _shard_summary(llava_dir):
    with open(os.path.join(llava_dir, WEIGHTS_FROM, "model.safetensors.index.json"), encoding="utf-8") as f:
        wm = json.load(f)["weight_map"]
    out = {}
    for fn in SHARED_WEIGHT_FILES[:2]:
        names = sorted(k for k, v in wm.items() if v == fn)
        out[fn] = {"n_tensors": len(names),
                   "bytes": os.path.getsize(os.path.join(llava_dir, WEIGHTS_FROM, fn))}
    return out


OWN_FILES = ("cases.json", "images.expected.safetensors") + tuple(f"{c}.expected.safetensors" for c in CKPTS)


def write_readme(llava_dir, meta, args):
    files = []
    for p in sorted(OWN_FILES + tuple(f"{c}/" for c in CKPTS)):
        full = os.path.join(llava_dir, p)
        if p.endswith("/"):
            for fn in sorted(os.listdir(full)):
                fp = os.path.join(full, fn)
                if os.path.islink(fp):
                    files.append((p + fn, f"symlink -> `{os.readlink(fp)}`", 0))
                else:
                    files.append((p + fn, str(os.path.getsize(fp)), os.path.getsize(fp)))
        else:
            files.append((p, str(os.path.getsize(full)), os.path.getsize(full)))
    total = sum(n for _, _, n in files)
    r = meta["reference"]
    ck = meta["checkpoints"]
    m = meta["model"]
    lines = [
        "# LLaVA-NeXT fixtures (BGE-VL-MLLM reference outputs)",
        "",
        "Generated by `tests/reference/gen_llava_fixtures.py`; do not edit by hand. Every expected",
        "value here was computed by the reference implementation: Hugging Face transformers",
        f"{r['transformers']} (`LlavaNextProcessor`, slow `LlamaTokenizer`, `LlavaNextImageProcessor` with",
        "PIL resampling, `LlavaNextForConditionalGeneration`, `MistralForCausalLM`) and the BGE-VL-MLLM model",
        "code `modeling_llavanext_for_embedding.py` (class `LLaVANextForEmbedding`), run as the model card",
        "does: `from_pretrained(folder)` (float32), `set_processor(folder)`,",
        "`inputs = model.data_process(images=..., text=..., q_or_c=..., task_instruction=...)`,",
        "`normalize(model(**inputs, output_hidden_states=True)[:, -1, :])`. bgevl took no part.",
        "",
        "`pixel_values.safetensors`, `pixel_cases.json` and `preprocessor_config.json` in this folder",
        "come from a different generator and are not described here.",
        "",
        "## Environment used",
        "",
        f"- transformers {r['transformers']} (source of tag v4.45.2, commit 53fad641cfdb5105e2470bcf3ef17ea8e25cc300), huggingface_hub 0.25.2",
        f"- torch {r['torch']} (CPU, eager attention, 1 thread), numpy {r['numpy']}, Pillow {r['pillow']}, sentencepiece 0.1.97",
        f"- modeling_llavanext_for_embedding.py sha256 `{r['mllm_code_sha256']}`",
        f"- tokenizer.model sha256 `{r['tokenizer_model_sha256']}` (Mistral v1, `../shared/data/tokenizers/mistral/`)",
        f"- processor: {ck[WEIGHTS_FROM]['tokenizer_used']}",
        "",
        "Command (repository root, with `import transformers` giving 4.45.2; `../shared` beside the checkout):",
        "",
        "    python3 tests/reference/gen_llava_fixtures.py --mllm-code PATH/modeling_llavanext_for_embedding.py",
        "",
        "(`--tokenizer-model PATH` if the Mistral `tokenizer.model` is elsewhere.) Rerunning in the same",
        "environment rewrites identical bytes.",
        "",
        "## Checkpoints",
        "",
        "Two tiny LLaVA-NeXT models in the folder layout of BAAI/BGE-VL-MLLM-S1: `config.json`",
        "(`model_type: llava_next`, `architectures: [LLaVANextForEmbedding]`, `auto_map: {AutoModel:",
        "modeling_llavanext_for_embedding.LLaVANextForEmbedding}`, image_grid_pinpoints, image_token_index",
        "32000, vision_feature_layer -2, `default` strategy, image_seq_length 576, `use_image_newline_parameter`,",
        "tie_word_embeddings false; written as `save_pretrained` does, non-default keys only),",
        "`generation_config.json`, `preprocessor_config.json` (LlavaNextImageProcessor of",
        "llava-hf/llava-v1.6-mistral-7b-hf: shortest_edge 336, crop 336, CLIP mean/std, do_pad, resample 3),",
        "`processor_config.json` (`processor_class` only: no `patch_size`, so the processor does not",
        "expand `<image>` and the model takes its legacy merge path, as with the real checkpoints),",
        "`tokenizer_config.json` (LlamaTokenizer, `<image>` 32000 and `<pad>` 32001 special added tokens,",
        "add_bos_token, no EOS, padding_side left), `special_tokens_map.json`, `added_tokens.json`,",
        "`model-00001-of-00002.safetensors`, `model-00002-of-00002.safetensors`,",
        "`model.safetensors.index.json`. Not included: the modeling file, `tokenizer.json`, and",
        "**`tokenizer.model`**: `shared/data/README.md` forbids copying it into the project, so tests copy",
        "`../shared/data/tokenizers/mistral/tokenizer.model` into a temporary copy of the folder (or point",
        "their tokenizer at it) and skip when it is absent.",
        "",
        f"Geometry is real, layers are narrow: vision {m['vision']}; text {m['text']}; projector",
        f"{m['projector']}. {m['weights']} ({m['n_parameters']} parameters; tensor names as",
        "`LlavaNextForConditionalGeneration.state_dict()`: `image_newline`, `vision_tower.vision_model.*`,",
        "`multi_modal_projector.linear_{1,2}.*`, `language_model.model.*`, `language_model.lm_head.weight`).",
        "Sharded with save_pretrained's rule (`split_torch_state_dict_into_shards`, max_shard_size",
        f"{MAX_SHARD_SIZE}): shard 2 starts inside language-model layer 0 (at `mlp.down_proj`) and holds the",
        "rest of the language model and `lm_head`, so a loader must read both. Layer norms and RMSNorm",
        "weights are around 1, biases, class/position embeddings and `image_newline` random; the language",
        f"model's q/k projections are sharpened (gain {T_QK_GAIN}) and the projector's output bias is large",
        f"(scale {PROJ_BIAS}) so that the last position depends clearly on the text as well as on the image",
        "rows. Loading back into `LLaVANextForEmbedding.from_pretrained` gives no missing/unexpected keys",
        "and every value equals the F16 value upcast to float32 (checked by the generator).",
        "",
        "| folder | tokenizer `legacy` | weights |",
        "| --- | --- | --- |",
    ]
    for c, v in ck.items():
        lines.append(f"| `{c}/` | {str(v['tokenizer_legacy']).lower()} | {v['weights']} |")
    lines += [
        "",
        "The two folders differ only in `tokenizer_config.json` (`legacy`). To keep the repository small",
        f"the weights exist once, in `{WEIGHTS_FROM}/`; the other folder holds relative symlinks to the",
        "two shards and the index. git stores symlinks as such (mode 120000; `git ls-files -s` shows it);",
        "on a checkout without symlink support (Windows with `core.symlinks=false`) they become small text",
        "files holding the target path, and tests must then resolve them or use the legacy folder.",
        "",
        "## Expected outputs",
        "",
        "- `<checkpoint>.expected.safetensors`, per case `<case>/...`:",
        "  - `input_ids`, `attention_mask` (I64, `[B, L]`, left padded with `<pad>` 32001): the processor's",
        "    output, before the image merge; every prompt holds one `<image>` 32000 per image;",
        "  - `embeddings` (F32 `[B, 32]`): `normalize(hidden[:, -1, :])`, the BGE-VL embedding;",
        "  - `last_hidden` (F32 `[B, 32]`): `hidden[:, -1, :]` before normalising (the patched",
        "    `MistralForCausalLM.forward` returns the final hidden states after the last RMSNorm);",
        "  - image cases also: `image_sizes` (I64 `[B, 2]`, always 512x512 since data_process resizes",
        "    every image to 512 x 512 first), `feature_lens` (I64 `[B]`, rows per image after",
        "    `pack_image_features`: 2928), `merged_seq_len` (I64 `[1]`, the sequence length reaching the",
        "    language model after the legacy merge), `merged_lengths` (I64 `[B]`, real positions per row",
        "    after the merge).",
        "- `images.expected.safetensors`, per image `<image file>/...`, the same for both checkpoints",
        "  (same weights; taken from the first case whose first image it is; every other case with that",
        "  first image is checked against it):",
        "  - `vision_features_tile0` (F32 `[576, 32]`): `vision_tower(pixel_values).hidden_states[-2][0, 1:]`,",
        "    the selected features (layer -2, CLS dropped) of tile 0 (the whole image squashed to 336);",
        "  - `projector_output_tile0` (F32 `[576, 32]`): `multi_modal_projector` of those;",
        "  - `vision_features_tile_sums`, `projector_output_tile_sums` (F64 `[5, 2]`): per tile, sum and",
        "    sum of absolute values over all 576 x 32 values (all 5 tiles);",
        "  - `packed_features_row_sums`, `packed_features_row_abs_sums` (F32 `[2928]`, summed in F64): per row of the",
        "    packed image features (base tile 576 rows, then 48 rows x (48 + 1 newline) columns, row-major),",
        "    sum and sum of absolute values: ordering, unpadding and newline placement show up here.",
        "  Only tile 0 is kept in full to stay small: every tile goes through the same vision tower, so",
        "  tile 0 checks the tower and projector; the sums check the other tiles and the packing. The",
        "  per-image `pixel_values_f32_sha256` in `cases.json` identifies the exact `[5, 3, 336, 336]` input.",
        "- `cases.json`: `reference` (versions, hashes), `checkpoints`, `image_stages` (per image: tensor",
        "  names, n_tiles, feature_len, pixel hash), `model`, `max_cosine_between_different_inputs`, and",
        "  `cases`, each with `name`, `q_or_c`, `task_instruction`, `images` and `text` exactly as passed to",
        "  `data_process` (a string or a list; image names relative to `tests/fixtures/images/`),",
        "  `prompts` (what `prepare_text_input` built), `tensors`, `batch`, `n_tokens` per checkpoint,",
        "  `input_ids_equal_across_checkpoints`, `built_with`, `data_process_error`, `reference_printed`",
        "  (stdout of the reference), `lm_position_ids`, `first_image`, `first_image_stages`,",
        "  `merged_seq_len`, `batched_vs_single_max_abs_diff`, `fp32_vs_fp64_max_abs_diff` (the same case",
        "  with the model in float64: how well conditioned the tiny model is), `first_image_stages_max_abs_diff`.",
        "",
        "| case | q_or_c | instruction | images | batch | tokens (legacy / non-legacy) | merged length | same ids |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in meta["cases"]:
        ins = "CIR" if c["task_instruction"] == CIR else ("none" if c["task_instruction"] is None else "other")
        imgs = c["images"] if c["images"] is None or isinstance(c["images"], str) else ", ".join(c["images"])
        nt = " / ".join(str(c["n_tokens"][k]) for k in CKPTS)
        ml = " / ".join(str(v) for v in c["merged_seq_len"].values()) if "merged_seq_len" in c else ""
        lines.append(f"| `{c['name']}` | {c['q_or_c']} | {ins} | {imgs or ''} | {c['batch']} | {nt} | {ml} | "
                     f"{'yes' if c['input_ids_equal_across_checkpoints'] else 'no'} |")
    mc = meta["max_cosine_between_different_inputs"]
    lines += [
        "",
        f"Largest cosine between embeddings of different inputs: {mc['cosine']} ({mc['pair'][0]} vs",
        f"{mc['pair'][1]}).",
        "",
        "## What the reference does (worth knowing when matching it)",
        "",
    ] + NOTES_MD + [
        "",
        "## Files",
        "",
        "| file | bytes |",
        "| --- | --- |",
    ]
    for p, s, _ in files:
        lines.append(f"| `{p}` | {s} |")
    lines += ["", f"Total (without this README): {total} bytes.", ""]
    with open(os.path.join(llava_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


NOTES_MD = [
    "- **Processor.** `set_processor(folder)` (`LlavaNextProcessor.from_pretrained`) raises ImportError",
    "  here because it picks `LlamaTokenizerFast` and the Rust `tokenizers` package is absent; the",
    "  generator then uses `LlavaNextProcessor.from_pretrained(folder, use_fast=False)` (slow",
    "  `LlamaTokenizer` + sentencepiece). The real checkpoints ship `tokenizer.json`, so the real",
    "  reference tokenises with the fast tokenizer; for these prompt templates its ids equal the slow",
    "  tokenizer's with `legacy=True` (docs/bge-vl-reference.md).",
    "- **`legacy` matters only right after `<image>`.** With `legacy=true` the text `\" [/INST]\"` that",
    "  follows the special token is encoded with SentencePiece's dummy prefix: `▁` 28705 then `▁[` 733;",
    "  with `legacy=false` it is just `▁[` 733. So every image prompt is one token shorter with",
    "  `legacy=false`; text-only prompts (no added token inside) give identical ids. The double space",
    "  before `<image>` in image-only prompts is `▁▁` 259 in both.",
    "- **Query without instruction** prints a multi-line warning to stdout (`reference_printed`), and its",
    "  prompt has two spaces after `<instruct>` and one (not two) between `<query>` and the text",
    "  (`prompts` in cases.json).",
    "- **Legacy merge path.** `processor_config.json` has no `patch_size`, so the processor leaves one",
    "  `<image>` per image and logs \"Expanding inputs for image tokens in LLaVa-NeXT should be done in",
    "  processing...\" (the model logs it again); `(input_ids == 32000).sum(1).max() < image_seq_length`",
    "  (576) makes `LLaVANextForEmbedding.forward` call `_merge_input_ids_with_image_features`: each",
    "  `<image>` is replaced by its `feature_lens` rows (2928 for a 512 x 512 image), every row is",
    "  re-padded **on the left** (`model.padding_side` is \"left\" by default, whatever the tokenizer says)",
    "  to the longest merged row (`merged_seq_len`), and `position_ids = cumsum(mask) - 1` with pads set",
    "  to 1: positions count only real tokens. With rows of equal length nothing is padded.",
    "- **Text-only batches** take no merge: the language model gets `position_ids=None`, i.e. positions",
    "  0..L-1 **including the left pads**, so a padded row's first real token sits at position = number",
    "  of pads. RoPE being relative, results still agree with one-by-one runs up to rounding",
    "  (`batched_vs_single_max_abs_diff`: ~1e-5 for the text lists against <= 4e-7 for the image lists).",
    "- **`data_process` with a list of texts and no images crashes** (`TypeError: 'NoneType' object is",
    "  not iterable`, from `zip(None, text)`). `q_text_list3` and `c_text_list2` were built with the",
    "  model's own `prepare_text_input` per text and `model.processor(text=prompts, return_tensors=\"pt\",",
    "  padding=True)` (`built_with`, `data_process_error`), which is what `data_process` would do.",
    "- **Masking.** The causal/padding mask holds `torch.finfo(float32).min`, not -inf: fully masked",
    "  rows (left pads as queries) get finite, uniform softmax weights. A -inf mask makes those rows NaN,",
    "  and the next layer's `weights @ V` then spreads `0 * NaN = NaN` into the real rows. (Seen when",
    "  running the reference in float64: its eager softmax runs in float32, where the float64 minimum",
    "  becomes -inf.)",
    "- **Images.** `data_process` resizes every image to 512 x 512 with PIL's default filter *before*",
    "  `convert(\"RGB\")` (nearest for `P`; `LA` is resized premultiplied; `CMYK` resized as CMYK), so",
    "  `image_sizes` is always `[512, 512]`: 672 x 672 grid, 5 tiles, no unpadding, 2928 feature rows.",
    "- **Vision layer -2** with 3 layers is the output of the second layer (hidden_states[0] is the",
    "  embeddings after `pre_layrnorm`); the third layer and `post_layernorm` are computed and unused.",
    "- **dtypes.** Everything, `image_newline` included, is float32 after loading the F16 checkpoint",
    "  without `torch_dtype` (`image_newline` is created with the model's dtype; `pack_image_features`",
    "  casts it to the features' dtype anyway). `output_hidden_states=True`, as the model card passes it,",
    "  changes nothing: the patched `MistralForCausalLM.forward` returns `outputs[0]`, the final hidden",
    "  states after the last RMSNorm. That patch is installed on the class by",
    "  `LLaVANextForEmbedding.__init__`, so it affects every `MistralForCausalLM` in the process.",
    "- The embedding is the last column, which with left padding is the `]` of `[/INST]` in every row.",
]


if __name__ == "__main__":
    main()
