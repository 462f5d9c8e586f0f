#!/usr/bin/env python3
"""Check the trained default model (models/bgevl-tiny-clip) against bgevl and measure retrieval.

    .venv/bin/python models/eval_default_model.py            # about 30 seconds
    .venv/bin/python models/eval_default_model.py --no-bgevl # the torch side only (any python3)

1. Tokenizer: bgevl's processor ids and attention masks equal tiny_clip.Tokenizer's on every
   text of the toy world (every caption and modification paraphrase).
2. Pixels and embeddings: bgevl's pixel_values equal tiny_clip.pixel_values on gallery PNGs, and
   its image, text and composed embeddings agree with tiny_clip.CLIP's (float32 maths on the
   checkpoint's float16 weights) to 1e-3.
3. Recall@1 / Recall@5 on models/queries/heldout.jsonl, scored query @ gallery.T over the whole
   gallery (models/gallery), per query type, computed by the torch model and by bgevl.

Exits non-zero when a check fails or composed Recall@1 is below 0.9. Needs torch, numpy,
Pillow, regex (Debian: python3-torch python3-numpy python3-pil python3-regex) and, for the bgevl
side, the built bgevl package (the project's .venv).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tiny_clip  # noqa: E402
import toy_world as world  # noqa: E402

ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "bgevl-tiny-clip")
GALLERY = os.path.join(HERE, "gallery")
HELDOUT = os.path.join(HERE, "queries", "heldout.jsonl")
MIN_COMPOSED_R1 = 0.9
TOL = 1e-3


def load_queries(path=HELDOUT):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gallery_ids(folder=GALLERY):
    """Every PNG under the gallery, as ids relative to it, sorted."""
    return sorted(os.path.relpath(os.path.join(d, f), folder).replace(os.sep, "/")
                  for d, _, fs in os.walk(folder) for f in fs if f.endswith(".png"))


def query_type(q):
    """'composed/<attribute>' (the attribute the text changes), 'text' or 'image'."""
    if q["image"] is None:
        return "text"
    if q["text"] is None:
        return "image"
    src, dst = world.scene_of_id(q["image"]), world.scene_of_id(q["targets"][0])
    changed = [a for a in world.ATTRIBUTES if getattr(src, a) != getattr(dst, a)]
    return "composed/" + "+".join(changed)


def recall_table(queries, scores, ids):
    """{type: (n, R@1, R@5)} with 'composed' and 'all' totals; scores [Q, G]."""
    top = scores.topk(5, dim=1).indices.tolist()
    hits = {}
    for q, t in zip(queries, top):
        ranked = [ids[k] for k in t]
        h = (ranked[0] in q["targets"], any(r in q["targets"] for r in ranked))
        typ = query_type(q)
        for key in {typ, typ.split("/")[0], "all"}:
            hits.setdefault(key, []).append(h)
    order = sorted(hits, key=lambda k: (k == "all", k.split("/")[0] != "composed", k != "composed", k))
    return {k: (len(hits[k]), float(np.mean([a for a, _ in hits[k]])), float(np.mean([b for _, b in hits[k]])))
            for k in order}


def print_table(title, table):
    print(f"{title}:")
    print(f"  {'query type':<22} {'n':>4}  {'R@1':>6}  {'R@5':>6}")
    for k, (n, r1, r5) in table.items():
        print(f"  {k:<22} {n:>4}  {r1:6.3f}  {r5:6.3f}")


def _path(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


def _arrays(paths):
    from PIL import Image

    return np.stack([np.asarray(Image.open(_path(p)).convert("RGB")) for p in paths])


class TorchEncoder:
    """encode(images=..., text=...) like bgevl's, with tiny_clip.CLIP (batches of 64)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model.eval(), tokenizer

    @torch.no_grad()
    def encode(self, images=None, text=None):
        n = len(images if images is not None else text)
        out = []
        for i in range(0, n, 64):
            px = None if images is None else tiny_clip.pixel_values(_arrays(images[i:i + 64]))
            ids = mask = None
            if text is not None:
                ids, mask = self.tok(text[i:i + 64])
            out.append(self.model.embed(px, ids, mask))
        return torch.cat(out)


def score_queries(enc, queries, ids):
    """[Q, G] scores: each query type encoded in one call, then query @ gallery.T."""
    gal = enc.encode(images=[os.path.join(GALLERY, g) for g in ids])
    q = torch.zeros(len(queries), gal.shape[1])
    groups = {"both": [], "image": [], "text": []}
    for i, x in enumerate(queries):
        groups["both" if x["image"] and x["text"] else "image" if x["image"] else "text"].append(i)
    for kind, rows in groups.items():
        if not rows:
            continue
        imgs = [_path(queries[i]["image"]) for i in rows] if kind != "text" else None
        txts = [queries[i]["text"] for i in rows] if kind != "image" else None
        q[rows] = enc.encode(images=imgs, text=txts).float().cpu()
    return q @ gal.float().cpu().T


def evaluate_torch(folder=MODEL, queries=None, quiet=False):
    """Recall table of the checkpoint in `folder`, with tiny_clip.CLIP on its float16 weights."""
    model, tok = tiny_clip.load_checkpoint(folder)
    queries = queries or load_queries()
    ids = gallery_ids()
    table = recall_table(queries, score_queries(TorchEncoder(model, tok), queries, ids), ids)
    if not quiet:
        print_table("torch (tiny_clip.CLIP, float16 weights in float32)", table)
    return table


def _load_bgevl(folder, tries=10):
    import importlib

    for k in range(tries):  # the library may be being rebuilt next door: wait and retry
        try:
            bgevl = importlib.import_module("bgevl")
            return bgevl.load(folder)
        except (ImportError, OSError) as e:
            if k == tries - 1:
                raise
            print(f"import bgevl failed ({e}); retrying in 10 s")
            time.sleep(10)


def check_bgevl(folder=MODEL, queries=None):
    """Tokenizer, pixel and embedding parity with bgevl, then bgevl's recall table."""
    model, tok = tiny_clip.load_checkpoint(folder)
    m = _load_bgevl(folder)
    ok = True
    texts = world.world_texts()
    bad = 0
    for i in range(0, len(texts), 256):
        chunk = texts[i:i + 256]
        got = m.processor(text=chunk)
        ids, mask = tok(chunk)
        bad += int(not (torch.equal(got["input_ids"], ids) and torch.equal(got["attention_mask"], mask)))
    print(f"tokenizer: {len(texts)} world texts, {'all equal' if not bad else f'{bad} batches differ'}")
    ok &= bad == 0

    ids = gallery_ids()
    sample = [os.path.join(GALLERY, g) for g in ids[::37]]
    px_diff = (m.processor(images=sample)["pixel_values"] - tiny_clip.pixel_values(_arrays(sample))).abs().max().item()
    print(f"pixel_values: {len(sample)} gallery images, max |diff| {px_diff:.2e}")
    ok &= px_diff <= 1e-6
    ref = TorchEncoder(model, tok)
    words = ["make the background dark", "a red circle on the left, at night", "change the star to a triangle",
             "two blue squares in the middle, during the day", "move them to the right", "paint it purple",
             "Make the background dark, as if the camera has taken the photo at night"]
    cases = {"image": dict(images=sample[:len(words)]), "text": dict(text=words),
             "composed": dict(images=sample[:len(words)], text=words)}
    worst = 0.0
    with torch.no_grad():
        for name, kw in cases.items():
            d = (m.encode(**kw).float() - ref.encode(**kw)).abs().max().item()
            print(f"embeddings ({name}, {len(words)} inputs): max |torch - bgevl| {d:.2e}")
            worst = max(worst, d)
    ok &= worst <= TOL
    queries = queries or load_queries()
    with torch.no_grad():
        table = recall_table(queries, score_queries(m, queries, ids), ids)
    print_table("bgevl (bgevl.load, float32)", table)
    return ok, table, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--no-bgevl", action="store_true", help="only the torch side")
    args = ap.parse_args()
    queries = load_queries()
    t = evaluate_torch(args.model, queries)
    ok = t["composed"][1] >= MIN_COMPOSED_R1
    if not args.no_bgevl:
        good, tb, _ = check_bgevl(args.model, queries)
        ok &= good and tb["composed"][1] >= MIN_COMPOSED_R1
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
