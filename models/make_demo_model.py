#!/usr/bin/env python3
"""Write models/bgevl-tiny-clip: a tiny BGE-VL-CLIP checkpoint with RANDOM weights, plus demo images.

It has the exact folder layout of BAAI/BGE-VL-base (config.json, preprocessor_config.json,
vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json, model.safetensors in half
precision) and the real 224-pixel image processing, but narrow layers and a small vocabulary of
its own (byte-level BPE merges learned from a few paragraphs; tests/reference/tiny_clip_vocab.py).
Its embeddings are meaningless: it exists so the demo and the install test run anywhere.

    /usr/bin/python3 models/make_demo_model.py            # rewrites models/bgevl-tiny-clip, models/images

Needs numpy and Pillow (Debian: python3-numpy python3-pil; python3-skimage for the photos).
Deterministic: rerunning writes identical files.
"""
import json
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import safetensors_io  # noqa: E402
import tiny_clip_vocab  # noqa: E402

OUT = os.path.join(HERE, "bgevl-tiny-clip")
IMAGES = os.path.join(HERE, "images")
SEED = 7
TEXT = dict(hidden=64, inter=128, layers=2, heads=4)
VISION = dict(hidden=64, inter=128, layers=2, heads=4, image=224, patch=32)
PROJ = 32
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def param_shapes(vocab_size, text=TEXT, vision=VISION, proj=PROJ):
    """Hugging Face CLIPModel parameter names -> shapes for the given geometry."""
    s = {}

    def encoder(prefix, d):
        h, i = d["hidden"], d["inter"]
        for l in range(d["layers"]):
            p = f"{prefix}.encoder.layers.{l}."
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                s[p + f"self_attn.{proj}.weight"] = (h, h)
                s[p + f"self_attn.{proj}.bias"] = (h,)
            for ln in ("layer_norm1", "layer_norm2"):
                s[p + f"{ln}.weight"] = (h,)
                s[p + f"{ln}.bias"] = (h,)
            s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (i, h), (i,)
            s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (h, i), (h,)

    t, v = text["hidden"], vision["hidden"]
    s["text_model.embeddings.token_embedding.weight"] = (vocab_size, t)
    s["text_model.embeddings.position_embedding.weight"] = (77, t)
    encoder("text_model", text)
    s["text_model.final_layer_norm.weight"] = s["text_model.final_layer_norm.bias"] = (t,)
    n_pos = (vision["image"] // vision["patch"]) ** 2 + 1
    s["vision_model.embeddings.class_embedding"] = (v,)
    s["vision_model.embeddings.patch_embedding.weight"] = (v, 3, vision["patch"], vision["patch"])
    s["vision_model.embeddings.position_embedding.weight"] = (n_pos, v)
    s["vision_model.pre_layrnorm.weight"] = s["vision_model.pre_layrnorm.bias"] = (v,)
    encoder("vision_model", vision)
    s["vision_model.post_layernorm.weight"] = s["vision_model.post_layernorm.bias"] = (v,)
    s["visual_projection.weight"] = (proj, v)
    s["text_projection.weight"] = (proj, t)
    s["logit_scale"] = ()
    return s


def init(name, shape, seed=SEED):
    rng = np.random.RandomState((seed * 1000003 + zlib.crc32(name.encode())) % 2**32)
    z = rng.standard_normal(size=shape)
    leaf = name.rsplit(".", 1)[-1]
    if name == "logit_scale":
        return np.asarray(np.log(1 / 0.07), dtype=np.float32)
    if "norm" in name:
        return (1.0 + 0.1 * z if leaf == "weight" else 0.05 * z).astype(np.float32)
    if leaf == "bias":
        return (0.02 * z).astype(np.float32)
    if "embedding" in name:
        fan = int(np.prod(shape[1:])) if "patch" in name else 1
        return (z * (1.0 / np.sqrt(fan) if "patch" in name else 0.2)).astype(np.float32)
    return (z / np.sqrt(shape[1])).astype(np.float32)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_checkpoint(out, vocab, merges, text=TEXT, vision=VISION, proj=PROJ, seed=SEED,
                     name="bgevl-tiny-clip (random weights)"):
    """A random-weight checkpoint in the BGE-VL-CLIP folder layout, half-precision weights."""
    import torch

    os.makedirs(out, exist_ok=True)
    vocab_size = max(vocab.values()) + 1
    sot, eot = vocab[tiny_clip_vocab.SOT], vocab[tiny_clip_vocab.EOT]
    tiny_clip_vocab.write_vocab_files(out, vocab, merges)
    enc = lambda d: {  # noqa: E731
        "hidden_size": d["hidden"], "intermediate_size": d["inter"], "num_hidden_layers": d["layers"],
        "num_attention_heads": d["heads"], "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": proj}
    write_json(os.path.join(out, "config.json"), {
        "_name_or_path": name,
        "architectures": ["CLIPModel"],
        "auto_map": {"AutoModel": "modeling_MMRet_CLIP.CLIPModel"},
        "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
        "model_type": "clip", "projection_dim": proj, "torch_dtype": "float16",
        "transformers_version": "4.45.2",
        "text_config": dict(enc(text), vocab_size=vocab_size, max_position_embeddings=77,
                            bos_token_id=sot, eos_token_id=eot, pad_token_id=eot, model_type="clip_text_model"),
        "vision_config": dict(enc(vision), image_size=vision["image"], patch_size=vision["patch"],
                              num_channels=3, model_type="clip_vision_model"),
    })
    write_json(os.path.join(out, "preprocessor_config.json"), {
        "crop_size": {"height": vision["image"], "width": vision["image"]}, "do_center_crop": True,
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": MEAN, "image_processor_type": "CLIPImageProcessor", "image_std": STD,
        "processor_class": "CLIPProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": vision["image"]}})
    special = {"content": "", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    write_json(os.path.join(out, "special_tokens_map.json"), {
        "bos_token": dict(special, content=tiny_clip_vocab.SOT, normalized=True),
        "eos_token": dict(special, content=tiny_clip_vocab.EOT),
        "pad_token": tiny_clip_vocab.EOT, "unk_token": dict(special, content=tiny_clip_vocab.EOT)})
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "bos_token": tiny_clip_vocab.SOT, "eos_token": tiny_clip_vocab.EOT, "pad_token": tiny_clip_vocab.EOT,
        "unk_token": tiny_clip_vocab.EOT, "do_lower_case": True, "errors": "replace",
        "model_max_length": 77, "processor_class": "CLIPProcessor", "tokenizer_class": "CLIPTokenizer"})
    tensors = {n: torch.from_numpy(np.array(init(n, s, seed), dtype=np.float32)).to(torch.float16)
               for n, s in sorted(param_shapes(vocab_size, text, vision, proj).items())}
    safetensors_io.save_torch(tensors, os.path.join(out, "model.safetensors"), {"format": "pt"})


def write_model():
    vocab, merges = tiny_clip_vocab.build_vocab(420)
    write_checkpoint(OUT, vocab, merges)


def write_images():
    from PIL import Image, ImageEnhance

    try:
        import skimage.data as data
    except ImportError:
        print("python3-skimage missing: keeping the existing demo images")
        return
    os.makedirs(IMAGES, exist_ok=True)
    cat = Image.fromarray(data.chelsea())
    cat.save(os.path.join(IMAGES, "query_cat.jpg"), quality=90)
    ImageEnhance.Brightness(cat).enhance(0.35).save(os.path.join(IMAGES, "candidate_cat_night.jpg"), quality=90)
    Image.fromarray(data.coffee()).resize((300, 200), Image.BICUBIC).save(
        os.path.join(IMAGES, "candidate_coffee.jpg"), quality=90)
    Image.fromarray(data.rocket()).resize((214, 142), Image.BICUBIC).save(
        os.path.join(IMAGES, "candidate_rocket.jpg"), quality=90)


if __name__ == "__main__":
    write_model()
    write_images()
    print("wrote", OUT, "and", IMAGES)
