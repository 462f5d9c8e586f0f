#!/usr/bin/env python3
"""GPU check for BGE-VL-MLLM (run by scripts/gpu_check.sh on a CUDA machine).

1. The tiny LLaVA-NeXT fixtures: CUDA float32 against CPU float32 and against the transformers
   4.45.2 expected embeddings (RGB JPEG cases: this build decodes through PIL, which must not
   change the mode before the reference's 512 resize), plus CUDA bfloat16 (cosine).
2. A full-size random-weight BGE-VL-MLLM (7.57B parameters, Mistral-7B + ViT-L/14-336), written as
   4 bfloat16 shards, loaded by bgevl on CUDA in bfloat16: load time, peak host memory, GPU memory,
   and embeddings per second for composed queries and image candidates.
The full-size random checkpoint needs the Mistral tokenizer.model: $BGEVL_TOKENIZER_MODEL (the tiny
fixtures carry their own).
"""
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import torch
from PIL import Image

import bgevl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import safetensors_io  # noqa: E402

FIX = os.path.join(ROOT, "tests", "fixtures")
TOK = os.environ.get("BGEVL_TOKENIZER_MODEL", os.path.join(ROOT, "..", "shared", "data", "tokenizers", "mistral", "tokenizer.model"))


def runnable(name, tmp):
    """The fixture checkpoint, as it is (it carries its own tiny tokenizer.model)."""
    return os.path.join(FIX, "llava", name)


def images_arg(v):
    if v is None:
        return None
    names = [v] if isinstance(v, str) else v
    ims = [None if n is None else Image.open(os.path.join(FIX, "images", n)) for n in names]
    return ims[0] if isinstance(v, str) else ims


def tiny(tmp):
    cases = json.load(open(os.path.join(FIX, "llava", "cases.json")))["cases"]
    rgb = lambda v: v is None or all(n is None or n.endswith(".jpg") and n != "cmyk.jpg" for n in ([v] if isinstance(v, str) else v))  # noqa: E731
    cases = [c for c in cases if rgb(c["images"])]
    print(f"## Tiny LLaVA-NeXT fixtures ({len(cases)} cases with RGB JPEG or no images)\n")
    print("| checkpoint | device / dtype | max abs diff vs transformers 4.45.2 | vs bgevl CPU fp32 |")
    print("| --- | --- | ---: | ---: |")
    for ckpt in ("tiny-llava-next-legacy", "tiny-llava-next"):
        d = runnable(ckpt, tmp)
        ref = safetensors_io.load_torch(os.path.join(FIX, "llava", ckpt + ".expected.safetensors"))
        outs = {}
        for dev, dt in (("cpu", torch.float32), ("cuda", torch.float32), ("cuda", torch.bfloat16)):
            m = bgevl.AutoModel.from_pretrained(d, device=dev, dtype=dt)
            outs[(dev, dt)] = {c["name"]: m.encode(images=images_arg(c["images"]), text=c["text"], q_or_c=c["q_or_c"],
                                                   task_instruction=c["task_instruction"]).cpu() for c in cases}
        base = outs[("cpu", torch.float32)]
        for (dev, dt), o in outs.items():
            vs_ref = max((o[n] - ref[n + "/embeddings"]).abs().max().item() for n in o)
            if dt == torch.float32:
                vs_cpu = f"{max((o[n] - base[n]).abs().max().item() for n in o):.2e}"
            else:
                vs_cpu = "min cosine %.5f" % min(torch.nn.functional.cosine_similarity(o[n], base[n]).min().item() for n in o)
            print(f"| {ckpt} | {dev} {str(dt)[6:]} | {vs_ref:.2e} | {vs_cpu} |")
    print()


def full_size(tmp):
    import llava_checkpoint

    d = os.path.join(tmp, "bge-vl-mllm-7b-random")
    t0 = time.perf_counter()
    total = llava_checkpoint.write_random_llava(d, device="cuda", dtype=torch.bfloat16, tokenizer_model=TOK)
    gen = time.perf_counter() - t0
    shards = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    print(f"## Full-size random BGE-VL-MLLM on {torch.cuda.get_device_name()}\n")
    print(f"checkpoint: {total / 1e9:.2f} GB bfloat16 in {len(shards)} shards (largest "
          f"{max(os.path.getsize(os.path.join(d, s)) for s in shards) / 2**30:.2f} GiB), written in {gen:.0f} s")
    torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    m = bgevl.AutoModel.from_pretrained(d, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    load = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"bgevl load on cuda bfloat16: {load:.1f} s, GPU memory {torch.cuda.memory_allocated() / 2**30:.2f} GiB, "
          f"process peak RSS {rss0:.1f} GiB before -> {rss1:.1f} GiB after loading")
    img = Image.open(os.path.join(FIX, "images", "chelsea.jpg"))
    kw = dict(images=img, text="Make the background dark, as if the camera has taken the photo at night",
              q_or_c="q", task_instruction=bgevl.COMPOSED_RETRIEVAL_INSTRUCTION)
    q = m.encode(**kw)
    torch.cuda.synchronize()
    n = 8
    t0 = time.perf_counter()
    for _ in range(n):
        q = m.encode(**kw)
    torch.cuda.synchronize()
    qps = n / (time.perf_counter() - t0)
    cands = [Image.open(os.path.join(FIX, "images", f)) for f in ("chelsea.jpg", "crop_333x211.jpg", "rocket.jpg", "coffee_large_1500x1000.jpg")] * 4
    m.encode(images=cands[:4], q_or_c="c", batch_size=4)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    c = m.encode(images=cands, q_or_c="c", batch_size=8)
    torch.cuda.synchronize()
    cps = len(cands) / (time.perf_counter() - t0)
    print(f"composed queries (image + text + instruction, one per call): {qps:.2f}/s; image candidates "
          f"(batch 8): {cps:.2f}/s; embeddings finite: {bool(torch.isfinite(q).all() and torch.isfinite(c).all())}, "
          f"dim {q.shape[1]}, peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"scores (query @ candidates[:4].T): {[round(x, 4) for x in (q @ c[:4].T)[0].tolist()]}")


if __name__ == "__main__":
    assert torch.cuda.is_available(), "no CUDA device"
    tmp = tempfile.mkdtemp()
    try:
        tiny(tmp)
        if os.environ.get("BGEVL_SKIP_FULL") != "1":
            full_size(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
