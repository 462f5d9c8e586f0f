#!/usr/bin/env python3
"""BGE-VL-MLLM benchmark: loading (time, peak memory) and end-to-end embeddings per second,
bgevl against the transformers model-card usage, on the same random-weight checkpoint.

The checkpoint has the REAL widths of BGE-VL-MLLM (Mistral 4096 wide, 32 heads, 8 KV heads, MLP
14336, vocabulary 32064; CLIP ViT-L/14-336 vision tower, 24 layers) but only --text-layers
decoder layers (default 2 of 32), in 4 half-precision shards: a few GB, so that loading is
dominated by reading bytes as at 7B, and a forward pass takes seconds, not minutes, on 2 cores.

Loading: each side loads in its own process; peak RSS (ru_maxrss) minus the RSS before loading
minus the bytes of the loaded weights is the loader's own overhead, to compare with the largest
shard and the largest tensor. Throughput: --n composed queries (image + text + the card's
instruction) and --n candidates (image only), one item per call as the model card does.

    source <an env where transformers 4.45.2 imports>
    .venv/bin/python bench/bench_mllm.py --mllm-code PATH/modeling_llavanext_for_embedding.py
    .venv/bin/python bench/bench_mllm.py --only bgevl

Needs the Mistral tokenizer.model (--tokenizer, default ../shared/data/tokenizers/mistral).
"""
import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
INSTRUCTION = ("Retrieve the target image that best meets the combined criteria by using both the "
               "provided image and the image retrieval instructions: ")
TEXTS = ["Make the background dark, as if the camera has taken the photo at night",
         "show the same scene in winter with snow on the ground"]


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_side(side, ckpt, dtype_name, n, threads, measure_only_load):
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    images = sorted(os.path.join(ckpt, "images", f) for f in os.listdir(os.path.join(ckpt, "images")))
    base_rss = rss_mib()
    t0 = time.perf_counter()
    if side == "bgevl":
        import bgevl

        bgevl.tune_cpu_allocator()  # process-wide and explicit: what a user after speed calls
        model = bgevl.AutoModel.from_pretrained(ckpt, dtype=dtype, num_threads=threads)
        weights_mib = None  # the parent counts the tensors bgevl keeps
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("mllm_code", os.path.join(ckpt, "modeling_llavanext_for_embedding.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = mod.LLaVANextForEmbedding.from_pretrained(ckpt, torch_dtype=dtype)
        weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    model.eval()
    load_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"side": side, "dtype": dtype_name, "load_s": load_s, "base_rss_mib": base_rss,
           "peak_rss_load_mib": peak, "rss_after_load_mib": rss_mib(), "weights_mib": weights_mib}
    if measure_only_load:
        return out
    try:
        model.set_processor(ckpt)
    except ImportError:  # no fast-tokenizer library in this environment: the slow one
        from transformers import LlavaNextProcessor
        model.processor = LlavaNextProcessor.from_pretrained(ckpt, use_fast=False)
    embs = []
    with torch.no_grad():
        t0 = time.perf_counter()
        for i in range(n):
            args = [dict(images=images[i % len(images)], text=TEXTS[i % 2], q_or_c="q", task_instruction=INSTRUCTION),
                    dict(images=images[(i + 1) % len(images)], q_or_c="c")]
            for a in args:
                if side == "bgevl":
                    embs.append(model.encode(**a))
                else:
                    inputs = model.data_process(**a)
                    h = model(**inputs, output_hidden_states=True)[:, -1, :]
                    embs.append(torch.nn.functional.normalize(h, dim=-1))
        out["embeddings_s"] = 2 * n / (time.perf_counter() - t0)
    torch.save(torch.cat(embs).float(), os.path.join(ckpt, f"out_{side}.pt"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mllm-code", help="modeling_llavanext_for_embedding.py (needed for the reference)")
    ap.add_argument("--only", choices=["bgevl", "reference"])
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--n", type=int, default=2, help="queries and candidates per side")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "..", "shared", "data", "tokenizers",
                                                        "mistral", "tokenizer.model"))
    ap.add_argument("--json")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    ap.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.side:
        print(json.dumps(run_side(args.side, args.ckpt, args.dtype, args.n, args.threads, args.load_only)))
        return
    sides = [args.only] if args.only else ["reference", "bgevl"]
    if "reference" in sides and not args.mllm_code:
        ap.error("the reference needs --mllm-code (or use --only bgevl)")
    if not os.path.exists(args.tokenizer):
        sys.exit(f"no Mistral tokenizer.model at {args.tokenizer} (--tokenizer)")
    import llava_checkpoint
    import bench_clip

    tmp = tempfile.mkdtemp(prefix="bgevl_bench_mllm_")
    try:
        ckpt = os.path.join(tmp, "mllm")
        t0 = time.perf_counter()
        total = llava_checkpoint.write_random_llava(ckpt, text_layers=args.text_layers, tokenizer_model=args.tokenizer)
        gen_s = time.perf_counter() - t0
        bench_clip.image_files(os.path.join(ckpt, "images"))
        if args.mllm_code:
            shutil.copy(args.mllm_code, os.path.join(ckpt, "modeling_llavanext_for_embedding.py"))
        shard_sizes = [os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt) if f.endswith(".safetensors")]
        shapes = llava_checkpoint.shapes(text_layers=args.text_layers)
        largest = max(2 * math.prod(s) for s in shapes.values())
        runs = []
        for side in sides:
            for dtype, load_only in (("float32", False), ("bfloat16", True)):
                if side == "reference" and dtype == "bfloat16":
                    continue
                cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--ckpt", ckpt, "--dtype", dtype,
                       "--n", str(args.n), "--threads", str(args.threads)] + (["--load-only"] if load_only else [])
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    sys.exit(f"{side} {dtype} failed:\n{res.stderr[-3000:]}")
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        diff = None
        if len(sides) == 2:
            import torch

            a, b = torch.load(os.path.join(ckpt, "out_reference.pt")), torch.load(os.path.join(ckpt, "out_bgevl.pt"))
            diff = (a - b).abs().max().item()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_params = sum(math.prod(s) for s in shapes.values())
    # bgevl never loads lm_head, post_layernorm or the vision layer after vision_feature_layer (-2)
    unused = ("language_model.lm_head.", "vision_tower.vision_model.post_layernorm.",
              "vision_tower.vision_model.encoder.layers.23.")
    used = n_params - sum(math.prod(s) for k, s in shapes.items() if k.startswith(unused))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, threads {args.threads}; checkpoint: real BGE-VL-MLLM "
          f"widths, {args.text_layers} of 32 Mistral layers, {n_params / 1e9:.2f}B parameters, "
          f"{total / 2**30:.2f} GiB fp16 in {len(shard_sizes)} shards (largest {max(shard_sizes) / 2**20:.0f} MiB, "
          f"largest tensor {largest / 2**20:.0f} MiB); written in {gen_s:.0f} s")
    print("| side | dtype | load (s) | weights in memory (MiB) | peak RSS while loading (MiB) | loader overhead (MiB) | embeddings/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        w = r["weights_mib"] if r["weights_mib"] is not None else used * (4 if r["dtype"] == "float32" else 2) / 2**20
        over = r["peak_rss_load_mib"] - r["base_rss_mib"] - w
        eps = f"{r['embeddings_s']:.3f}" if "embeddings_s" in r else "-"
        print(f"| {r['side']} | {r['dtype']} | {r['load_s']:.1f} | {w:.0f} | {r['peak_rss_load_mib']:.0f} | {over:.0f} | {eps} |")
    if diff is not None:
        print(f"max |embedding difference| bgevl vs reference (float32): {diff:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "max_abs_diff": diff}, f, indent=2)


if __name__ == "__main__":
    main()
