#!/usr/bin/env python3
"""The BGE-VL-CLIP model card's composed-retrieval example, on bgevl.

    .venv/bin/python examples/composed_retrieval.py                        # bundled tiny model
    .venv/bin/python examples/composed_retrieval.py --model BAAI/BGE-VL-base   # real weights

The default model (models/bgevl-tiny-clip) has RANDOM weights: the scores show the pipeline
runs, not what BGE-VL would rank first.
"""
import argparse
import os
import time

import torch

import bgevl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "bgevl-tiny-clip"),
                    help="checkpoint folder or hub id in the local Hugging Face cache")
    ap.add_argument("--query-image", default=os.path.join(ROOT, "models", "images", "query_cat.jpg"))
    ap.add_argument("--text", default="Make the background dark, as if the camera has taken the photo at night")
    ap.add_argument("--candidates", nargs="+", default=[
        os.path.join(ROOT, "models", "images", n)
        for n in ("candidate_cat_night.jpg", "candidate_coffee.jpg", "candidate_rocket.jpg")])
    ap.add_argument("--device", default=None, help="cpu (default) or cuda")
    args = ap.parse_args()

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
    print(f"query: {os.path.basename(args.query_image)} + {args.text!r}")
    print(f"loaded in {t1 - t0:.2f} s, encoded {1 + len(args.candidates)} inputs in {t2 - t1:.2f} s")
    print("scores (query @ candidates.T):")
    print(scores)
    for s, c in sorted(zip(scores[0].tolist(), args.candidates), reverse=True):
        print(f"  {s:+.4f}  {os.path.basename(c)}")


if __name__ == "__main__":
    main()
