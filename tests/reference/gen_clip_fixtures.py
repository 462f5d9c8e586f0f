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

The work is split over helper modules in tests/reference/: clip_fixture_cases.py (the cases),
clip_fixture_images.py (the test images), clip_fixture_checkpoint.py (writing the checkpoint
folders), clip_fixture_reference.py (running the reference model) and clip_fixture_readme.py
(writing the README).
"""

import argparse
import hashlib
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io  # noqa: E402  (tests/reference/safetensors_io.py)
import tiny_clip_vocab  # noqa: E402
from clip_fixture_cases import N_MERGES, SEED, case_list  # noqa: E402
from clip_fixture_checkpoint import CKPTS, write_checkpoint  # noqa: E402
from clip_fixture_images import IMAGE_NOTES, list_images, make_images, quirk_report, skimage_data_dir  # noqa: E402
from clip_fixture_readme import write_readme  # noqa: E402
from clip_fixture_reference import load_mmret, load_reference_model, run_case  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
REQUIRED_TRANSFORMERS = "4.45.2"


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
        images = make_images(img_dir, skimage_data_dir(args.skimage_data))

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


if __name__ == "__main__":
    main()
