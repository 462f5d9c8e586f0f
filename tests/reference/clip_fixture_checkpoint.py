"""Write the two tiny CLIP checkpoint folders (config, preprocessor, tokenizer files, F16/BF16
model.safetensors) for gen_clip_fixtures.py and check that they load back exactly.
"""

import json
import os
import shutil
import zlib

import numpy as np

import safetensors_io  # tests/reference/safetensors_io.py
import tiny_clip_vocab  # tests/reference/tiny_clip_vocab.py
from clip_fixture_cases import SEED

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CKPTS = {
    "tiny-fp16-quickgelu": {
        "dtype": "F16",
        "hidden_act": "quick_gelu",
        "special_ids": None,  # contiguous: specials are the last two ids
        "text_ids": {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2},  # OpenAI-style
        "pooling": "argmax(input_ids) (text eos_token_id == 2)",
        "config_use_diff": True,
        "preprocessor": "current",
        "vocab_pretty": False,
        "seed": SEED + 1,
    },
    "tiny-bf16-gelu": {
        "dtype": "BF16",
        "hidden_act": "gelu",
        "special_ids": {tiny_clip_vocab.SOT: 49406, tiny_clip_vocab.EOT: 49407},
        "text_ids": {"bos_token_id": 49406, "pad_token_id": 1, "eos_token_id": 49407},
        "pooling": "first position where input_ids == 49407",
        "config_use_diff": False,
        "preprocessor": "legacy",
        "vocab_pretty": True,
        "seed": SEED + 2,
    },
}

DIMS = dict(hidden=32, inter=64, layers=2, heads=4, proj=16, image=224, patch=32, eps=1e-5)


def make_config(spec, vocab):
    from transformers import CLIPConfig

    vocab_size = max(vocab.values()) + 1
    common = dict(
        hidden_size=DIMS["hidden"], intermediate_size=DIMS["inter"], projection_dim=DIMS["proj"],
        num_hidden_layers=DIMS["layers"], num_attention_heads=DIMS["heads"],
        hidden_act=spec["hidden_act"], layer_norm_eps=DIMS["eps"],
    )
    text = dict(common, vocab_size=vocab_size, max_position_embeddings=77, **spec["text_ids"])
    vision = dict(common, num_channels=3, image_size=DIMS["image"], patch_size=DIMS["patch"])
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=DIMS["proj"],
                     logit_scale_init_value=2.6592)
    cfg.architectures = ["CLIPModel"]
    cfg.auto_map = {"AutoModel": "modeling_MMRet_CLIP.CLIPModel"}
    cfg.torch_dtype = "float16" if spec["dtype"] == "F16" else "bfloat16"
    return cfg


def _param(name, shape, seed, used_rows=None):
    """Deterministic random values (float32) for one parameter, scaled by role."""
    rng = np.random.RandomState((seed * 1000003 + zlib.crc32(name.encode())) % (2**32))
    z = rng.standard_normal(size=shape).astype(np.float64)
    leaf = name.rsplit(".", 1)[-1]
    is_norm = any(k in name for k in ("layer_norm", "layrnorm", "layernorm"))
    if name == "logit_scale":
        v = np.log(1 / 0.07) + 0.1 * z
    elif is_norm and leaf == "weight":
        v = 1.0 + 0.3 * z
    elif is_norm and leaf == "bias":
        v = 0.2 * z
    elif name.endswith("token_embedding.weight"):
        v = 0.5 * z
        if used_rows is not None:
            mask = np.zeros(shape[0], dtype=bool)
            mask[used_rows] = True
            v[~mask] = 0.0  # rows no token id maps to
    elif name.endswith("position_embedding.weight"):
        v = 0.3 * z
    elif name.endswith("class_embedding"):
        v = 0.5 * z
    elif name.endswith("patch_embedding.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = 1.5 * z / np.sqrt(fan_in)
    elif leaf == "bias":
        v = 0.1 * z
    elif leaf == "weight" and len(shape) == 2:
        # sharper attention and a stronger attention path, so that the class token
        # (and the pooled text token) depend clearly on the input
        if ".q_proj." in name or ".k_proj." in name:
            gain = 3.0
        elif ".v_proj." in name or ".out_proj." in name:
            gain = 2.0
        else:
            gain = 1.0
        v = gain * z / np.sqrt(shape[1])
    else:
        raise ValueError(f"no init rule for {name} {shape}")
    return np.asarray(v, dtype=np.float32).reshape(shape)


def write_checkpoint(folder, spec, vocab, merges):
    import torch
    from transformers import CLIPModel

    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    cfg = make_config(spec, vocab)

    # config.json exactly as save_pretrained would write it (diff or full form)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(cfg.to_json_string(use_diff=spec["config_use_diff"]))

    # preprocessor_config.json: the current CLIPImageProcessor form (as
    # BGE-VL-base) or the legacy openai/clip-vit-* form (int size, feature extractor).
    if spec["preprocessor"] == "current":
        pp = {
            "crop_size": {"height": 224, "width": 224},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": CLIP_MEAN,
            "image_processor_type": "CLIPImageProcessor",
            "image_std": CLIP_STD,
            "processor_class": "CLIPProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": 224},
        }
    else:
        pp = {
            "crop_size": 224,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
            "resample": 3,
            "size": 224,
        }
    with open(os.path.join(folder, "preprocessor_config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(pp, indent=2, sort_keys=True) + "\n")

    tiny_clip_vocab.write_vocab_files(folder, vocab, merges, pretty=spec["vocab_pretty"])
    sot, eot = vocab[tiny_clip_vocab.SOT], vocab[tiny_clip_vocab.EOT]

    def added(content, normalized):
        return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False,
                "single_word": False, "special": True}

    tok_cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(sot): added(tiny_clip_vocab.SOT, True),
            str(eot): added(tiny_clip_vocab.EOT, False),
        },
        "bos_token": tiny_clip_vocab.SOT,
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": tiny_clip_vocab.EOT,
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": tiny_clip_vocab.EOT,
        "processor_class": "CLIPProcessor",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": tiny_clip_vocab.EOT,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(tok_cfg, indent=2, sort_keys=True) + "\n")
    stm = {
        "bos_token": {k: v for k, v in added(tiny_clip_vocab.SOT, True).items() if k != "special"},
        "eos_token": {k: v for k, v in added(tiny_clip_vocab.EOT, False).items() if k != "special"},
        "pad_token": tiny_clip_vocab.EOT,
        "unk_token": {k: v for k, v in added(tiny_clip_vocab.EOT, False).items() if k != "special"},
    }
    with open(os.path.join(folder, "special_tokens_map.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(stm, indent=2, sort_keys=True) + "\n")

    # weights: names/shapes from transformers' own CLIPModel state_dict
    ref = CLIPModel(cfg)
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.endswith("position_ids")}
    used_rows = sorted(vocab.values())
    tdtype = {"F16": torch.float16, "BF16": torch.bfloat16}[spec["dtype"]]
    tensors = {}
    for name in sorted(shapes):
        v = _param(name, shapes[name], spec["seed"],
                   used_rows if name.endswith("token_embedding.weight") else None)
        tensors[name] = torch.from_numpy(v).to(tdtype)
    safetensors_io.save_torch(tensors, os.path.join(folder, "model.safetensors"), {"format": "pt"})

    # it must load back with no missing/unexpected/mismatched keys, values upcast exactly
    for cls in (CLIPModel,):
        m, info = cls.from_pretrained(folder, output_loading_info=True)
        bad = {k: v for k, v in info.items() if v}
        if bad:
            raise RuntimeError(f"{folder}: loading info not clean: {bad}")
        sd = m.state_dict()
        for name, t in tensors.items():
            if sd[name].dtype != torch.float32 or not torch.equal(sd[name], t.float()):
                raise RuntimeError(f"{folder}: {name} did not round-trip")
    return cfg, tensors
