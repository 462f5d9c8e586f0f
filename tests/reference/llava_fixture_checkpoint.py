"""Write the tiny LLaVA-NeXT checkpoint folders (config, processor and tokenizer files, F16
weights in two shards + index) for gen_llava_fixtures.py.
"""

import json
import os
import shutil
import zlib

import numpy as np

import mistral_tokenizer_files  # tests/reference/mistral_tokenizer_files.py
import safetensors_io  # tests/reference/safetensors_io.py
from llava_fixture_cases import (
    DIMS, IMAGE_TOKEN_ID, PAD_TOKEN_ID, SEED, SHARED_WEIGHT_FILES, WEIGHTS_FROM,
)

# save_pretrained's sharding rule (huggingface_hub split_torch_state_dict_into_shards) with this
# limit gives 2 shards and splits language-model layer 0 between them (shard 2 starts at
# layers.0.mlp.down_proj), so a loader must really read both shards
MAX_SHARD_SIZE = "224KB"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
GRID_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


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
        vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN_ID, projector_hidden_act="gelu",
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
    llava-hf/llava-v1.6-mistral-7b-hf / BGE-VL-MLLM (tests/reference/mistral_tokenizer_files.py),
    with the tiny model's <image> / <pad> ids; tokenizer.model is written by write_checkpoint."""
    _write_json(os.path.join(folder, "tokenizer_config.json"),
                mistral_tokenizer_files.tokenizer_config(legacy, IMAGE_TOKEN_ID, PAD_TOKEN_ID))
    _write_json(os.path.join(folder, "special_tokens_map.json"), mistral_tokenizer_files.special_tokens_map())
    _write_json(os.path.join(folder, "added_tokens.json"),
                mistral_tokenizer_files.added_tokens(IMAGE_TOKEN_ID, PAD_TOKEN_ID))


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


def write_checkpoint(folder, legacy, cfg, tokenizer_model, weights_from=None):
    """Write one checkpoint folder. With weights_from (a sibling folder name) the shards, the
    index and tokenizer.model are relative symlinks into that folder instead of files."""
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from transformers import GenerationConfig, LlavaNextForConditionalGeneration

    if os.path.lexists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(cfg.to_json_string(use_diff=True))
    gen = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=PAD_TOKEN_ID)
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

    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(tokenizer_model)

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
    first2 = [n for n in tensors if split.tensor_to_filename[n] == SHARED_WEIGHT_FILES[1]][0]
    assert first2 == "language_model.model.layers.0.mlp.down_proj.weight", first2
    for fn, names in split.filename_to_tensors.items():
        safetensors_io.save_torch({n: tensors[n] for n in names}, os.path.join(folder, fn), {"format": "pt"})
    index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return tensors


def shard_summary(llava_dir):
    with open(os.path.join(llava_dir, WEIGHTS_FROM, "model.safetensors.index.json"), encoding="utf-8") as f:
        wm = json.load(f)["weight_map"]
    out = {}
    for fn in SHARED_WEIGHT_FILES[:2]:
        names = sorted(k for k, v in wm.items() if v == fn)
        out[fn] = {"n_tensors": len(names),
                   "bytes": os.path.getsize(os.path.join(llava_dir, WEIGHTS_FROM, fn))}
    return out
