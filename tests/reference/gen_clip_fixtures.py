#!/usr/bin/env python3
"""Generate the BGE-VL-CLIP test fixtures from the *reference* implementation.

The expected outputs come only from Hugging Face transformers 4.45.2 (its
CLIPProcessor / CLIPImageProcessor / CLIPTokenizer) and the BGE-VL model code
`modeling_MMRet_CLIP.py` (github.com/VectorSpaceLab/MegaPairs, also in
FlagOpen/FlagEmbedding research/BGE_VL), whose `CLIPModel.encode(images=...,
text=...)` is what BGE-VL-base/-large run with trust_remote_code. Nothing in
here calls bgevl.

Requirements (not installed or vendored by this script):
  * a Python where `import transformers` gives exactly 4.45.2 (asserted), with
    torch, numpy, Pillow, regex;
  * the file modeling_MMRet_CLIP.py, passed with --mmret-code PATH;
  * for (re)creating the test images: scikit-image's bundled sample photos
    (Debian package python3-skimage), or --keep-images to reuse the images
    already in tests/fixtures/images.

Usage (from the repository root; the environment used for the committed
fixtures is described in tests/fixtures/clip/README.md):

    python3 tests/reference/gen_clip_fixtures.py --mmret-code /path/to/modeling_MMRet_CLIP.py

What it writes (see tests/fixtures/clip/README.md for details):
  tests/fixtures/images/*                      test images (photos + edge cases)
  tests/fixtures/clip/tiny-fp16-quickgelu/     tiny random checkpoint, F16 weights
  tests/fixtures/clip/tiny-bf16-gelu/          tiny random checkpoint, BF16 weights
  tests/fixtures/clip/pixel_values.safetensors CLIPProcessor pixel values per image
  tests/fixtures/clip/<ckpt>.expected.safetensors  per-case reference outputs
  tests/fixtures/clip/cases.json               the cases (inputs and tensor names)
  tests/fixtures/clip/README.md

Everything is deterministic: fixed seeds, no timestamps; rerunning in the same
environment rewrites identical bytes.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io  # noqa: E402  (tests/reference/safetensors_io.py)
import tiny_clip_vocab  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
REQUIRED_TRANSFORMERS = "4.45.2"
N_MERGES = 400
SEED = 20241127

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# --------------------------------------------------------------------------
# test inputs

# A text that is exactly 77 tokens long (with <|startoftext|> and
# <|endoftext|>) under the tiny vocabulary (N_MERGES merges); asserted below.
TEXT_77 = (
    "A long caption: the small grey cat sits on the wooden table by the window, "
    "the red bicycle leans against a brick wall, two cups of coffee stand on a white "
    "plate, and the rocket rises into the blue sky over the hills at 9:41. Two children "
    "play with a red ball on the green grass."
)

TEXTS_SINGLE = "A photo of a cat sitting on a wooden table."
TEXTS_LIST4 = [
    "dog",
    "Two cups of coffee, one with milk & sugar!",
    "photo #3 of 10: a red   bicycle\tleaning against a brick wall, isn't it?",
    "The rocket launched at 9:41 a.m. on July 16, 1969 \u2014 carrying three "
    "astronauts from the launch pad to the Moon; a caf\u00e9 crowd watched.",
]
COMPOSED_SINGLE = ("coffee_large_1500x1000.jpg", "Make it a cup of tea with lemon.")
COMPOSED_LIST3 = [
    ("exif_orient6.jpg", "Show the same cat at night."),
    ("astronaut_96x128.png", TEXT_77),
    ("rgba.png", "remove the background, keep the cat"),
]


# A one-off check made when these cases were written (not repeated by this script).
FAST_TOKENIZER_NOTE = (
    "The `input_ids` of every case text were also compared, once, with Hugging Face `tokenizers`\n"
    "0.23.2 (Rust; the npm package) loading a `tokenizer.json` equivalent to transformers'\n"
    "`CLIPConverter` output for each tiny vocabulary: identical. Known slow/fast differences (CJK\n"
    "runs, zero-width joiners dropped by the slow `BasicTokenizer`) are kept out of the cases."
)


def case_list():
    return [
        {"name": "image_single", "kind": "images", "images": "chelsea.jpg", "text": None},
        {"name": "image_list3", "kind": "images",
         "images": ["rocket.jpg", "palette_P.png", "cmyk.jpg"], "text": None},
        {"name": "text_single", "kind": "text", "images": None, "text": TEXTS_SINGLE},
        {"name": "text_list4", "kind": "text", "images": None, "text": list(TEXTS_LIST4)},
        {"name": "text_77", "kind": "text", "images": None, "text": TEXT_77},
        {"name": "composed_single", "kind": "composed",
         "images": COMPOSED_SINGLE[0], "text": COMPOSED_SINGLE[1]},
        {"name": "composed_list3", "kind": "composed",
         "images": [p for p, _ in COMPOSED_LIST3], "text": [t for _, t in COMPOSED_LIST3]},
    ]


# --------------------------------------------------------------------------
# images

IMAGE_NOTES = {}


def _skimage_data_dir(explicit):
    if explicit:
        return explicit
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image not found: pass --skimage-data DIR or --keep-images")
    return os.path.join(os.path.dirname(spec.origin), "data")


def make_images(out_dir, data_dir):
    """Write the test images. Photos: scikit-image sample data, whose docs
    state chelsea and coffee are CC0 (photographers Stefan van der Walt and
    Rachel Michetti), astronaut (NASA) and rocket (SpaceX) public domain."""
    from PIL import Image, ImageDraw

    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    def src(name):
        return Image.open(os.path.join(data_dir, name))

    def put(name, im, note, **save):
        im.save(os.path.join(out_dir, name), **save)
        IMAGE_NOTES[name] = note

    chelsea = src("chelsea.png").convert("RGB")  # 451x300
    coffee = src("coffee.png").convert("RGB")  # 600x400
    astronaut = src("astronaut.png").convert("RGB")  # 512x512

    put("chelsea.jpg", chelsea, "skimage chelsea (CC0), RGB JPEG q90, 451x300", quality=90)
    shutil.copyfile(os.path.join(data_dir, "rocket.jpg"), os.path.join(out_dir, "rocket.jpg"))
    IMAGE_NOTES["rocket.jpg"] = "skimage rocket (public domain, SpaceX), original JPEG bytes, 640x427"
    put("coffee_large_1500x1000.jpg", coffee.resize((1500, 1000), Image.LANCZOS),
        "skimage coffee (CC0) upscaled to 1500x1000, JPEG q90: strong downscale (x0.224)", quality=90)
    put("astronaut_96x128.png", astronaut.resize((96, 128), Image.LANCZOS),
        "skimage astronaut (public domain) squeezed to 96x128 RGB PNG: upscale, portrait")
    put("crop_333x211.jpg", coffee.crop((150, 90, 483, 301)),
        "coffee crop 333x211, RGB JPEG q90", quality=90)

    cat = chelsea.crop((60, 20, 360, 220))  # 300x200
    put("grey_L.png", cat.convert("L"), "mode L (8-bit grey) PNG, 300x200")
    la = cat.convert("L").convert("LA")
    alpha = Image.linear_gradient("L").resize(cat.size).rotate(90)
    la.putalpha(alpha)
    put("grey_alpha_LA.png", la, "mode LA PNG, alpha gradient (alpha is dropped, not composited)")
    put("palette_P.png", coffee.crop((100, 50, 400, 250)).quantize(colors=64, method=Image.MEDIANCUT),
        "mode P (64-colour palette) PNG, 300x200")
    rgba = cat.copy()
    a = Image.radial_gradient("L").resize(cat.size)
    rgba.putalpha(a)
    put("rgba.png", rgba, "mode RGBA PNG, radial alpha (alpha dropped, not composited)")
    put("cmyk.jpg", coffee.crop((200, 100, 440, 280)).convert("CMYK"),
        "mode CMYK JPEG q90 (Pillow writes an Adobe APP14 marker, inverted CMYK), 240x180", quality=90)
    put("bilevel_1.png", cat.convert("1"), "mode 1 (1-bit, Floyd-Steinberg dithered) PNG, 300x200")
    put("tiny_2x2.png", Image.fromarray(np.array(
        [[[200, 30, 90], [10, 220, 40]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)),
        "2x2 RGB PNG (the smallest size the reference handles, see quirks/)")

    # Images the reference mishandles: transformers 4.45.2 guesses the channel
    # axis of the HxWx3 array and takes a height of 1 or 3 for channels first.
    os.makedirs(os.path.join(out_dir, "quirks"))
    put("quirks/one_pixel_1x1.png", Image.new("RGB", (1, 1), (200, 30, 90)), "1x1 RGB PNG")
    h3 = np.random.RandomState(SEED + 7).randint(0, 256, size=(3, 100, 3)).astype(np.uint8)
    put("quirks/height3_100x3.png", Image.fromarray(h3), "100 wide x 3 high RGB PNG")

    rng = np.random.RandomState(SEED)
    thin = rng.randint(0, 256, size=(2, 300, 3)).astype(np.uint8)
    thin[:, :, 0] = np.linspace(0, 255, 300).astype(np.uint8)[None, :]
    put("thin_300x2.png", Image.fromarray(thin), "300 wide x 2 high RGB PNG (extreme aspect)")
    put("thin_2x300.png", Image.fromarray(np.ascontiguousarray(thin.transpose(1, 0, 2))),
        "2 wide x 300 high RGB PNG (extreme aspect)")

    put("photo.bmp", chelsea.crop((100, 60, 300, 210)), "24-bit BMP, 200x150")
    put("photo.webp", coffee.crop((250, 150, 450, 300)), "lossy WebP q90, 200x150", quality=90)
    put("photo.tiff", chelsea.crop((150, 80, 350, 230)), "uncompressed RGB TIFF, 200x150")

    ex = Image.Exif()
    ex[0x0112] = 6  # Orientation: rotate 90 CW to display
    orient = chelsea.crop((80, 40, 400, 240)).copy()
    d = ImageDraw.Draw(orient)
    d.rectangle((0, 0, 40, 40), fill=(255, 0, 0))  # a marker in the stored top-left corner
    put("exif_orient6.jpg", orient,
        "320x200 JPEG q90 with EXIF Orientation=6; PIL does not rotate it, so neither may bgevl",
        quality=90, exif=ex)
    return list_images(out_dir)


def list_images(img_dir):
    """Top-level image files (quirks/ is handled separately)."""
    return sorted(f for f in os.listdir(img_dir)
                  if os.path.isfile(os.path.join(img_dir, f)) and not f.startswith(".") and f != "README.md")


def quirk_report(proc, img_dir):
    """What the reference does with the images under quirks/ (recorded, not
    used as expected values)."""
    from PIL import Image

    out = {}
    qdir = os.path.join(img_dir, "quirks")
    for name in sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []:
        im = Image.open(os.path.join(qdir, name)).convert("RGB")
        try:
            t = proc(images=im, return_tensors="pt")["pixel_values"]
            out[f"quirks/{name}"] = {
                "reference": "no error, but the HxWx3 array is read as channels-first (C=H, H=W, W=3); "
                             "the pixel values are not a picture of the input",
                "pixel_values_shape": list(t.shape),
                "pixel_values_sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
            }
        except Exception as e:  # noqa: BLE001 - the error itself is the record
            out[f"quirks/{name}"] = {"reference": f"{type(e).__name__}: {e}"}
        out[f"quirks/{name}"]["note"] = IMAGE_NOTES.get(f"quirks/{name}", "")
    return out


# --------------------------------------------------------------------------
# checkpoints

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


# --------------------------------------------------------------------------
# reference outputs


def load_mmret(path):
    spec = importlib.util.spec_from_file_location("modeling_MMRet_CLIP", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["modeling_MMRet_CLIP"] = mod
    spec.loader.exec_module(mod)
    return mod


def load_reference_model(mmret, folder):
    """The BGE-VL model class loaded exactly as the model card does (float32,
    no torch_dtype), then `set_processor(folder)`."""
    import torch

    model, info = mmret.CLIPModel.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise RuntimeError(f"MMRet CLIPModel from {folder}: loading info not clean: {bad}")
    assert next(model.parameters()).dtype == torch.float32
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    model.eval()
    try:
        model.set_processor(folder)
        tok_note = "set_processor(folder) (default fast/slow choice)"
    except (ImportError, ValueError) as e:
        # Without the Rust `tokenizers` package, transformers' default
        # CLIPProcessor choice (CLIPTokenizerFast) cannot load; fall back to
        # the slow CLIPTokenizer, which agrees with the fast one on the
        # English texts used here (checked against expected ids by tests).
        model.processor = mmret.CLIPProcessor.from_pretrained(folder, use_fast=False)
        tok_note = f"CLIPProcessor.from_pretrained(folder, use_fast=False) (set_processor raised {type(e).__name__})"
    return model, tok_note


def run_case(model, case, img_dir):
    import torch

    def paths(x):
        if x is None:
            return None
        return os.path.join(img_dir, x) if isinstance(x, str) else [os.path.join(img_dir, p) for p in x]

    images, text = paths(case["images"]), case["text"]
    out = {}
    with torch.no_grad():
        emb = model.encode(images=images, text=text)
        out["embeddings"] = emb
        pix, tok, kind = model.data_process(images, text)
        assert kind == {"images": "images", "text": "text", "composed": "multimodal"}[case["kind"]]
        if tok is not None:
            out["input_ids"] = tok["input_ids"].to(torch.int64)
            out["attention_mask"] = tok["attention_mask"].to(torch.int64)
            tm = model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
            out["text_pooled"] = tm[1]
            out["text_features"] = model.get_text_features(**tok)
        if pix is not None:
            out["pixel_values"] = pix
            vm = model.vision_model(pixel_values=pix)
            out["image_pooled"] = vm[1]
            out["image_features"] = model.get_image_features(pix)
        # the stages must recombine to the embeddings exactly as encode() does
        feats = out.get("text_features", 0) + out.get("image_features", 0)
        again = torch.nn.functional.normalize(feats, dim=-1)
        if not torch.equal(again, emb):
            raise RuntimeError(f"case {case['name']}: stages do not recombine to encode()")
    return {k: v.detach().contiguous() for k, v in out.items()}


# --------------------------------------------------------------------------


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmret-code", required=True, help="path to modeling_MMRet_CLIP.py")
    ap.add_argument("--out-root", default=REPO, help="repository root (default: this checkout)")
    ap.add_argument("--keep-images", action="store_true",
                    help="reuse tests/fixtures/images as is instead of recreating it")
    ap.add_argument("--skimage-data", default=None, help="scikit-image data dir (default: located)")
    args = ap.parse_args()

    import PIL
    import torch
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        raise SystemExit(f"transformers {transformers.__version__} found, need exactly {REQUIRED_TRANSFORMERS}")
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reduction order independent of the machine's core count

    img_dir = os.path.join(args.out_root, "tests", "fixtures", "images")
    clip_dir = os.path.join(args.out_root, "tests", "fixtures", "clip")
    os.makedirs(clip_dir, exist_ok=True)

    if args.keep_images:
        images = list_images(img_dir)
        old = os.path.join(clip_dir, "cases.json")
        if os.path.exists(old):  # keep the descriptions written when the images were made
            with open(old, encoding="utf-8") as f:
                prev = json.load(f)
            IMAGE_NOTES.update(prev.get("images", {}))
            IMAGE_NOTES.update({k: v.get("note", "") for k, v in prev.get("reference_quirks", {}).items()})
    else:
        images = make_images(img_dir, _skimage_data_dir(args.skimage_data))

    mmret = load_mmret(args.mmret_code)
    from PIL import Image

    cases = case_list()
    meta = {
        "format": 1,
        "generator": "tests/reference/gen_clip_fixtures.py",
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "mmret_code_sha256": sha256(args.mmret_code),
            "ftfy_installed": importlib.util.find_spec("ftfy") is not None,
        },
        "images_dir": "tests/fixtures/images",
        "pixel_values": {
            "file": "tests/fixtures/clip/pixel_values.safetensors",
            "processor_from": "tests/fixtures/clip/tiny-fp16-quickgelu",
            "tensor_names": "image file name",
            "shape": [1, 3, 224, 224],
            "dtype": "F32",
        },
        "checkpoints": {},
        "cases": [],
    }

    pixel_values = {}
    processors_used = {}
    per_ckpt_outputs = {}
    for ckpt, spec in CKPTS.items():
        folder = os.path.join(clip_dir, ckpt)
        vocab, merges = tiny_clip_vocab.build_vocab(N_MERGES, spec["special_ids"])
        cfg, _ = write_checkpoint(folder, spec, vocab, merges)
        model, tok_note = load_reference_model(mmret, folder)
        processors_used[ckpt] = tok_note
        proc = model.processor

        # pixel values for every image (MMRet data_process: open, convert RGB, processor)
        pv = {}
        for name in images:
            im = Image.open(os.path.join(img_dir, name)).convert("RGB")
            t = proc(images=im, return_tensors="pt")["pixel_values"]
            assert t.dtype == torch.float32 and tuple(t.shape) == (1, 3, 224, 224), (name, t.shape)
            pv[name] = t.contiguous()
        if not pixel_values:
            pixel_values = pv
        else:  # both preprocessor_config forms must give identical values
            for name in images:
                if not torch.equal(pv[name], pixel_values[name]):
                    raise RuntimeError(f"{ckpt}: pixel values for {name} differ between configs")

        # The quirk images (1 or 3 pixels high) fool the reference's channel-axis guess. The same
        # reference processor, told the layout (input_data_format="channels_last"), gives what a
        # correct pipeline must produce; bgevl is held to that.
        qdir = os.path.join(img_dir, "quirks")
        for name in sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []:
            im = Image.open(os.path.join(qdir, name)).convert("RGB")
            t = proc(images=im, return_tensors="pt", input_data_format="channels_last")["pixel_values"]
            assert tuple(t.shape) == (1, 3, 224, 224), (name, t.shape)
            key = "quirks/" + name
            if key in pixel_values and not torch.equal(pixel_values[key], t):
                raise RuntimeError(f"{ckpt}: pixel values for {key} differ between configs")
            pixel_values[key] = t.contiguous()

        quirks = quirk_report(proc, img_dir)
        if "reference_quirks" in meta and meta["reference_quirks"] != quirks:
            raise RuntimeError("quirk behaviour differs between the two preprocessor configs")
        meta["reference_quirks"] = quirks

        outputs = {}
        for case in cases:
            res = run_case(model, case, img_dir)
            if "pixel_values" in res:  # same as the per-image tensors, do not store twice
                names = [case["images"]] if isinstance(case["images"], str) else case["images"]
                if not torch.equal(res.pop("pixel_values"), torch.cat([pv[n] for n in names])):
                    raise RuntimeError(f"{case['name']}: batch pixel values differ from per-image ones")
            for k, v in res.items():
                outputs[f"{case['name']}/{k}"] = v
            if "input_ids" in res:
                case.setdefault("n_tokens", {})[ckpt] = [int(x) for x in res["attention_mask"].sum(1)]
        expected = os.path.join(clip_dir, f"{ckpt}.expected.safetensors")
        safetensors_io.save_torch(outputs, expected, {
            "format": "pt", "transformers": transformers.__version__, "checkpoint": ckpt})
        per_ckpt_outputs[ckpt] = outputs

        tc = cfg.text_config
        meta["checkpoints"][ckpt] = {
            "dir": f"tests/fixtures/clip/{ckpt}",
            "expected": f"tests/fixtures/clip/{ckpt}.expected.safetensors",
            "weights_dtype": spec["dtype"],
            "hidden_act": spec["hidden_act"],
            "text_eos_token_id": tc.eos_token_id,
            "pooling": spec["pooling"],
            "vocab_size": tc.vocab_size,
            "vocab_entries": len(vocab),
            "sot_id": vocab[tiny_clip_vocab.SOT],
            "eot_id": vocab[tiny_clip_vocab.EOT],
            "n_merges": len(merges),
            "config_json": "diff form (only non-default keys)" if spec["config_use_diff"] else "full form",
            "preprocessor_config": spec["preprocessor"],
            "tokenizer_used": tok_note,
        }

    # the 77-token text really is 77 tokens
    t77 = next(c for c in cases if c["name"] == "text_77")
    for ckpt, n in t77["n_tokens"].items():
        if n != [77]:
            raise SystemExit(f"TEXT_77 is {n} tokens with {ckpt}; adjust it to exactly 77")

    safetensors_io.save_torch(pixel_values, os.path.join(clip_dir, "pixel_values.safetensors"),
                              {"format": "pt", "transformers": transformers.__version__})

    for case in cases:
        names = ["embeddings"]
        if case["kind"] in ("text", "composed"):
            names += ["input_ids", "attention_mask", "text_pooled", "text_features"]
        if case["kind"] in ("images", "composed"):
            names += ["image_pooled", "image_features"]
        case["tensors"] = [f"{case['name']}/{n}" for n in names]
        b = 1 if isinstance(case["images"] if case["images"] is not None else case["text"], str) else \
            len(case["images"] if case["images"] is not None else case["text"])
        case["batch"] = b
    meta["cases"] = cases
    meta["images"] = {n: IMAGE_NOTES.get(n, "") for n in images}
    with open(os.path.join(clip_dir, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")

    write_readme(clip_dir, img_dir, meta, per_ckpt_outputs, args)
    print("done:", clip_dir)


def write_readme(clip_dir, img_dir, meta, outputs, args):
    def size(p):
        return os.path.getsize(p)

    files = []
    for root in (clip_dir, img_dir):
        for dp, _, fns in os.walk(root):
            for fn in fns:
                p = os.path.join(dp, fn)
                if fn == "README.md" and dp == clip_dir:
                    continue
                files.append((os.path.relpath(p, args.out_root), size(p)))
    files.sort()
    total = sum(s for _, s in files)
    r = meta["reference"]
    tok_used = "; ".join(sorted({c["tokenizer_used"] for c in meta["checkpoints"].values()}))
    lines = [
        "# CLIP fixtures (BGE-VL-CLIP reference outputs)",
        "",
        "Generated by `tests/reference/gen_clip_fixtures.py`; do not edit by hand. Every expected",
        "value here was computed by the reference implementation: Hugging Face transformers",
        f"{r['transformers']} (`CLIPProcessor`, slow `CLIPTokenizer`, `CLIPImageProcessor` with PIL",
        "resampling) and the BGE-VL model code `modeling_MMRet_CLIP.py` (MegaPairs), whose",
        "`CLIPModel.encode(images=..., text=...)` produced the embeddings. bgevl took no part.",
        "",
        "## Environment used",
        "",
        f"- transformers {r['transformers']} (source of tag v4.45.2, commit 53fad641cfdb5105e2470bcf3ef17ea8e25cc300), huggingface_hub 0.25.2",
        f"- torch {r['torch']} (CPU, eager attention, 1 thread), numpy {r['numpy']}, Pillow {r['pillow']}",
        f"- modeling_MMRet_CLIP.py sha256 `{r['mmret_code_sha256']}` (github.com/VectorSpaceLab/MegaPairs, HEAD)",
        f"- tokenizer: {tok_used}; ftfy "
        + ("installed" if r["ftfy_installed"] else "not installed (the slow tokenizer cleans text with `BasicTokenizer`)"),
        "",
        FAST_TOKENIZER_NOTE,
        "",
        "Command (repository root, with `import transformers` giving 4.45.2):",
        "",
        "    python3 tests/reference/gen_clip_fixtures.py --mmret-code PATH/modeling_MMRet_CLIP.py",
        "",
        "(`--keep-images` reuses the committed images instead of recreating them from",
        "scikit-image's sample photos.) Rerunning in the same environment rewrites identical bytes.",
        "",
        "## Checkpoints",
        "",
        "Two tiny CLIP models in the Hugging Face BGE-VL-CLIP folder layout (`config.json` with",
        "`architectures: [CLIPModel]` and `auto_map: {AutoModel: modeling_MMRet_CLIP.CLIPModel}`,",
        "`preprocessor_config.json`, `vocab.json`, `merges.txt`, `tokenizer_config.json`,",
        "`special_tokens_map.json`, `model.safetensors`; the modeling file itself and `tokenizer.json`",
        "are not included). Both: image 224, patch 32, width 32 for text and vision, 2 layers, 4 heads,",
        "MLP 64, projection 16, layer_norm_eps 1e-5, 77 text positions. Every parameter is random",
        "(fixed seed; layer norms around 1, biases, class/position embeddings, projections,",
        "logit_scale). The vocabulary is our own: `tests/reference/tiny_clip_vocab.py`,",
        f"{N_MERGES} merges learned from a short built-in English corpus.",
        "",
        "| folder | weights | act | text eos_token_id | pooling | vocab | config.json | preprocessor_config.json |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ck, c in meta["checkpoints"].items():
        lines.append(
            f"| `{ck}/` | {c['weights_dtype']} | {c['hidden_act']} | {c['text_eos_token_id']} | {c['pooling']} | "
            f"{c['vocab_entries']} entries, vocab_size {c['vocab_size']}, SOT {c['sot_id']} / EOT {c['eot_id']} | "
            f"{c['config_json']} | {c['preprocessor_config']} |")
    lines += [
        "",
        "`tiny-fp16-quickgelu` writes `config.json` the way `save_pretrained` does (only values that",
        "differ from the defaults, so e.g. `hidden_act: quick_gelu` is absent because it is the",
        "default), a compact one-line `vocab.json` and the current `preprocessor_config.json` form",
        "(`size: {shortest_edge: 224}`, `crop_size: {height, width}`). `tiny-bf16-gelu` has a full",
        "`config.json`, an indented `vocab.json` with ids 49406/49407 for the specials (rows between the",
        "last ordinary token and 49406 are zero in `token_embedding`), and the legacy openai form",
        "(`size: 224`, `crop_size: 224`, `feature_extractor_type`). Both give identical pixel values.",
        "",
        "## Expected outputs",
        "",
        "- `pixel_values.safetensors`: for every file in `tests/fixtures/images/`, tensor named by the",
        "  file name, F32 `(1, 3, 224, 224)`: `processor(images=Image.open(path).convert(\"RGB\"))`.",
        "- `<checkpoint>.expected.safetensors`: per case `<case>/embeddings` (F32, L2-normalised, from",
        "  `encode`), `<case>/text_features`, `<case>/image_features` (unnormalised projected vectors),",
        "  `<case>/text_pooled`, `<case>/image_pooled` (pooled outputs before the projections), and for",
        "  cases with text `<case>/input_ids`, `<case>/attention_mask` (I64, padded to the longest row).",
        "  Composed embeddings are `normalize(text_features + image_features)`.",
        "- `cases.json`: the cases (`images` and `text` are exactly what was passed to `encode`: a",
        "  string or a list; image names are relative to `tests/fixtures/images/`), token counts per",
        "  checkpoint, the tensor names, checkpoint facts and the reference versions.",
        "",
        "| case | kind | batch | tokens (fp16 / bf16 vocab) |",
        "| --- | --- | --- | --- |",
    ]
    for c in meta["cases"]:
        nt = c.get("n_tokens")
        nts = " / ".join(str(v) for v in nt.values()) if nt else ""
        lines.append(f"| `{c['name']}` | {c['kind']} | {c['batch']} | {nts} |")
    lines += [
        "",
        "`text_77` is exactly 77 tokens including `<|startoftext|>` and `<|endoftext|>` (the",
        "maximum); `composed_list3` contains it too, so that batch is padded to 77. The third text of",
        "`text_list4` contains `#`, which is token id 2: with `tiny-fp16-quickgelu` (eos_token_id 2,",
        "argmax pooling) a model that wrongly pooled at the first id 2 would pool there; elsewhere it",
        "would pool at position 0. Both checkpoints pool at the `<|endoftext|>` position.",
        "",
        "## Images (`tests/fixtures/images/`)",
        "",
        "Photos from scikit-image's bundled sample data (Debian python3-skimage): chelsea and coffee",
        "are CC0 (per skimage.data docs), astronaut (NASA) and rocket (SpaceX) public domain. The",
        "other files are derived from them with Pillow to cover PIL modes and formats.",
        "",
        "| file | what |",
        "| --- | --- |",
    ]
    for n, note in meta["images"].items():
        lines.append(f"| `{n}` | {note} |")
    lines += [
        "",
        "`quirks/` holds images the reference mishandles, so they have no expected pixel values.",
        "transformers 4.45.2 guesses where the channel axis of the `H x W x 3` array is and takes a",
        "height of 1 or 3 for channels-first (`infer_channel_dimension_format`, num_channels (1, 3)):",
        "",
        "| file | reference behaviour |",
        "| --- | --- |",
    ]
    for n, q in meta.get("reference_quirks", {}).items():
        lines.append(f"| `{n}` | {q['note']}: {q['reference']} |")
    lines += ["", "## Files", "", "| file | bytes |", "| --- | --- |"]
    for p, s in files:
        lines.append(f"| `{p}` | {s} |")
    lines += ["", f"Total (without this README): {total} bytes.", ""]
    with open(os.path.join(clip_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
