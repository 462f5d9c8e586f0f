#!/usr/bin/env python3
"""The BGE-VL-CLIP model card's composed-retrieval example, on bgevl.

    .venv/bin/python examples/composed_retrieval.py                 # bundled tiny model, demo query 0
    .venv/bin/python examples/composed_retrieval.py --demo 3        # another of models/queries/demo.jsonl
    .venv/bin/python examples/composed_retrieval.py --model BAAI/BGE-VL-base \
        --query-image q.png --text "make it night" --candidates a.png b.png

The default model (models/bgevl-tiny-clip) is a toy trained on the project's procedural world of
coloured shapes (models/train_default_model.py). By default the query is one of the held-out
composed queries of models/queries/demo.jsonl (a gallery image and a modification text, never
seen in training), and the candidates are its target, the query image itself and a near miss (the
target with one more thing changed).
"""
import argparse
import json
import os
import sys
import time

import torch

import bgevl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_query(k):
    """(query image, text, candidates) of line k of models/queries/demo.jsonl."""
    sys.path.insert(0, os.path.join(ROOT, "models"))
    import toy_world

    with open(os.path.join(ROOT, "models", "queries", "demo.jsonl"), encoding="utf-8") as f:
        q = [json.loads(line) for line in f if line.strip()][k]
    target = toy_world.scene_of_id(q["targets"][0])
    source = toy_world.scene_of_id(q["image"])
    changed = next(a for a in toy_world.ATTRIBUTES if getattr(source, a) != getattr(target, a))
    miss = next(e for e in toy_world.edits(target) if e.attribute != changed)
    gallery = os.path.join(ROOT, "models", "gallery")
    candidates = [os.path.join(gallery, q["targets"][0]), os.path.join(ROOT, q["image"]),
                  os.path.join(gallery, toy_world.gallery_id(toy_world.apply(target, miss)))]
    return os.path.join(ROOT, q["image"]), q["text"], candidates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "bgevl-tiny-clip"),
                    help="checkpoint folder or hub id in the local Hugging Face cache")
    ap.add_argument("--demo", type=int, default=0, help="line of models/queries/demo.jsonl (default 0)")
    ap.add_argument("--query-image", help="default: the demo query's image")
    ap.add_argument("--text", help="default: the demo query's text")
    ap.add_argument("--candidates", nargs="+",
                    help="default: the demo query's target, its image and a near miss")
    ap.add_argument("--device", default=None, help="cpu (default) or cuda")
    args = ap.parse_args()
    image, text, candidates = demo_query(args.demo)
    args.query_image = args.query_image or image
    args.text = args.text or text
    args.candidates = args.candidates or candidates

    t0 = time.perf_counter()
    model = bgevl.AutoModel.from_pretrained(args.model, device=args.device)
    model.set_processor(args.model)
    model.eval()
    t1 = time.perf_counter()
    with torch.no_grad():
        query = model.encode(images=args.query_image, text=args.text)
        candidates = model.encode(images=args.candidates)
        scores = query @ candidates.T
    t2 = time.perf_counter()

    print(f"model: {model}")
    print(f"query: {os.path.relpath(args.query_image, ROOT)} + {args.text!r}")
    print(f"loaded in {t1 - t0:.2f} s, encoded {1 + len(args.candidates)} inputs in {t2 - t1:.2f} s")
    print("scores (query @ candidates.T):")
    print(scores)
    for s, c in sorted(zip(scores[0].tolist(), args.candidates), reverse=True):
        print(f"  {s:+.4f}  {os.path.relpath(c, ROOT)}")


if __name__ == "__main__":
    main()
