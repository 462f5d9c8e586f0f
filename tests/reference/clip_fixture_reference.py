"""Run the reference (transformers 4.45.2 + modeling_MMRet_CLIP.py's CLIPModel) on one case
for gen_clip_fixtures.py: load the model as the model card does, encode, keep the stages.
"""

import importlib.util
import os
import sys


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
