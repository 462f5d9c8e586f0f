#!/usr/bin/env python3
"""Prints how far bgevl's embeddings are from the transformers 4.45.2 fixtures (the numbers the
tests only bound by 1e-5): every case of both families' tiny checkpoints, the MLLM lists that mix
texts and None, and batched against one-by-one.

    .venv/bin/python bench/parity_report.py [--device cpu|cuda] [--dtype float32]
"""
import argparse
import json
import os
import sys
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import safetensors_io  # noqa: E402  (reads the reference outputs)

import bgevl  # noqa: E402


def images(v):
    if v is None:
        return None
    if isinstance(v, str):
        return os.path.join(FIX, "images", v)
    return [None if x is None else os.path.join(FIX, "images", x) for x in v]


def diff(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item()


def report(family, ckpt, device, dtype):
    cases = json.load(open(os.path.join(FIX, family, "cases.json")))["cases"]
    ref = safetensors_io.load_torch(os.path.join(FIX, family, ckpt + ".expected.safetensors"))
    m = bgevl.AutoModel.from_pretrained(os.path.join(FIX, family, ckpt), device=device, dtype=dtype)
    mllm = family == "llava"
    worst = {"all": 0.0, "mixed": 0.0, "one_by_one": 0.0}
    for c in cases:
        kw = dict(q_or_c=c["q_or_c"], task_instruction=c["task_instruction"]) if mllm else {}
        imgs = images(c["images"])
        e = m.encode(images=imgs, text=c["text"], **kw)
        d = diff(e, ref[c["name"] + "/embeddings"])
        worst["all"] = max(worst["all"], d)
        if isinstance(c["text"], list) and None in c["text"]:
            worst["mixed"] = max(worst["mixed"], d)
        if e.shape[0] > 1:
            texts = c["text"] if isinstance(c["text"], list) else None
            for i in range(e.shape[0]):
                one = m.encode(images=None if imgs is None else imgs[i],
                               text=None if texts is None else texts[i], **kw)
                worst["one_by_one"] = max(worst["one_by_one"], diff(one[0], e[i]))
    mixed = f", lists mixing texts and None {worst['mixed']:.2e}" if mllm else ""
    print(f"| {ckpt} | {len(cases)} | {worst['all']:.2e}{mixed} | {worst['one_by_one']:.2e} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the reference's no-instruction warning
    print(f"device {args.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}\n")
    print("| checkpoint | cases | max abs diff vs transformers 4.45.2 | batched vs one-by-one |")
    print("| --- | ---: | --- | ---: |")
    for family, ckpts in (("clip", ("tiny-fp16-quickgelu", "tiny-bf16-gelu")),
                          ("llava", ("tiny-llava-next-legacy", "tiny-llava-next"))):
        for ckpt in ckpts:
            report(family, ckpt, args.device, args.dtype)


if __name__ == "__main__":
    main()
