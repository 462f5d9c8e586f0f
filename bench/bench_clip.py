#!/usr/bin/env python3
"""End-to-end BGE-VL-CLIP benchmark: bgevl against the transformers model-card usage.

Both sides get the same random-weight checkpoint with the full BAAI/BGE-VL-base geometry
(ViT-B/16 224 px vision tower 768x12, text tower 512x12, projection 512, vocabulary 49408,
half-precision safetensors), the same image files and the same texts, and the same number of
CPU threads. Each side runs in its own process so load time and peak memory are its own.
Timed: image files -> normalised embeddings (`model.encode(images=[paths])`) and texts ->
embeddings (`model.encode(text=[...])`), in batches of --batch.

The reference side imports transformers like any user script (it must be 4.45.2; set it up
beside, never from this repo) and loads the BGE-VL model code `modeling_MMRet_CLIP.py`
(--mmret-code) with trust_remote_code, exactly as the model card does.

    /usr/bin/python3 bench/bench_clip.py --mmret-code PATH/modeling_MMRet_CLIP.py [--threads 2]
    /usr/bin/python3 bench/bench_clip.py --only bgevl            # bgevl alone

Results go to stdout as a Markdown table (and to --json FILE).
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

BASE_TEXT = dict(hidden=512, inter=2048, layers=12, heads=8)
BASE_VISION = dict(hidden=768, inter=3072, layers=12, heads=12, image=224, patch=16)
BASE_PROJ = 512

CAPTIONS = [
    "A photo of a cat sitting on a wooden table next to a window.",
    "Make the background dark, as if the camera has taken the photo at night",
    "two cups of coffee on a white saucer, one with milk",
    "a rocket lifting off from the launch pad with a plume of smoke",
    "an astronaut in a white suit holding a helmet, standing in front of a flag",
    "change the color of the shirt to red and remove the logo",
    "a busy street market in the evening with lanterns and people walking",
    "the same dog but running on a beach at sunset",
]


def peak_rss_mib():
    """This process's peak RSS: VmHWM (ru_maxrss would carry the parent's peak across exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_checkpoint(folder):
    import tiny_clip
    import tiny_clip_vocab

    shared = os.path.join(ROOT, "..", "shared", "data", "tokenizers", "clip")
    vocab, merges = tiny_clip_vocab.build_vocab(420, special_ids={tiny_clip_vocab.SOT: 49406,
                                                                  tiny_clip_vocab.EOT: 49407})
    tiny_clip.write_checkpoint(folder, vocab, merges, BASE_TEXT, BASE_VISION, BASE_PROJ, seed=11,
                               name="BGE-VL-base geometry (random weights)")
    if os.path.isdir(shared):  # the real CLIP vocabulary, when present, for realistic token counts
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(shared, f), os.path.join(folder, f))


def image_files(folder=None):
    """Photo files like a retrieval corpus holds: COCO-sized 640x480 JPEGs and some larger ones.

    Made from the photos in tests/fixtures/images (skimage's samples) into `folder`; without a
    folder, the fixture files themselves."""
    d = os.path.join(ROOT, "tests", "fixtures", "images")
    names = ["chelsea.jpg", "coffee_large_1500x1000.jpg", "rocket.jpg", "crop_333x211.jpg",
             "exif_orient6.jpg", "photo.webp", "astronaut_96x128.png", "cmyk.jpg"]
    if folder is None:
        return [os.path.join(d, n) for n in names]
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    out = []
    for i, n in enumerate(names):
        im = Image.open(os.path.join(d, n)).convert("RGB")
        size = (1280, 960) if i % 4 == 3 else (640, 480)
        if i % 2:
            size = size[::-1]  # portrait
        p = os.path.join(folder, f"photo{i}_{size[0]}x{size[1]}.jpg")
        im.resize(size, Image.BICUBIC).save(p, quality=90)
        out.append(p)
    return out


def top_ops(prof, n=10):
    """The operators with the most self CPU time, as (name, share of the total, calls)."""
    ev = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ev) or 1
    ev.sort(key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / total, e.count) for e in ev[:n]]


def run_side(impl, ckpt, n_images, n_texts, batch, threads, profile=False):
    import contextlib

    import torch

    torch.set_num_threads(threads)
    files = sorted(os.path.join(ckpt, "images", f) for f in os.listdir(os.path.join(ckpt, "images")))
    imgs = (files * (n_images // len(files) + 1))[:n_images]
    texts = (CAPTIONS * (n_texts // len(CAPTIONS) + 1))[:n_texts]
    t0 = time.perf_counter()
    if impl == "bgevl":
        import bgevl

        bgevl.tune_cpu_allocator()  # process-wide and explicit: what a user after speed calls
        model = bgevl.AutoModel.from_pretrained(ckpt, num_threads=threads)
    else:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(ckpt, trust_remote_code=True)
        try:
            model.set_processor(ckpt)
        except ImportError:  # no fast-tokenizer library in this environment: the slow one
            from transformers import CLIPProcessor
            model.processor = CLIPProcessor.from_pretrained(ckpt, use_fast=False)
    model.eval()
    load_s = time.perf_counter() - t0
    out = {"impl": impl, "load_s": load_s, "threads": torch.get_num_threads()}
    def profiler():  # --profile: libtorch's operators on both sides (bgevl links the same libtorch)
        if not profile:
            return contextlib.nullcontext()
        return torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    with torch.no_grad():
        model.encode(images=imgs[:batch])  # warm-up with a full batch
        model.encode(text=texts[:batch])
        if profile:  # one batch each: longer profiles slow down under the profiler's own buffers
            with profiler() as p:
                model.encode(images=imgs[:batch])
            out["profile_images"] = top_ops(p)
            with profiler() as p:
                model.encode(text=texts[:batch])
            out["profile_texts"] = top_ops(p)
        t0 = time.perf_counter()
        embs = [model.encode(images=imgs[i:i + batch]) for i in range(0, len(imgs), batch)]
        out["images_s"] = len(imgs) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        tembs = [model.encode(text=texts[i:i + batch]) for i in range(0, len(texts), batch)]
        out["texts_s"] = len(texts) / (time.perf_counter() - t0)
    out["peak_rss_mib"] = peak_rss_mib()
    torch.save({"images": torch.cat(embs), "texts": torch.cat(tembs)}, os.path.join(ckpt, f"out_{impl}.pt"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mmret-code", help="path to modeling_MMRet_CLIP.py (needed for the reference)")
    ap.add_argument("--only", choices=["bgevl", "reference"])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per side, alternating; the medians are reported")
    ap.add_argument("--json")
    ap.add_argument("--profile", action="store_true",
                    help="after the rounds, one more run of each side with one batch of images and one of "
                         "texts under torch.profiler first: the operators with the most CPU time")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.side:  # child process
        print(json.dumps(run_side(args.side, args.ckpt, args.images, args.texts, args.batch, args.threads,
                                  args.profile)))
        return

    sides = [args.only] if args.only else ["reference", "bgevl"]
    if "reference" in sides and not args.mmret_code:
        ap.error("the reference needs --mmret-code PATH/modeling_MMRet_CLIP.py (or use --only bgevl)")
    tmp = tempfile.mkdtemp(prefix="bgevl_bench_")
    try:
        ckpt = os.path.join(tmp, "bge-vl-base-random")
        make_checkpoint(ckpt)
        image_files(os.path.join(ckpt, "images"))
        if args.mmret_code:
            shutil.copy(args.mmret_code, os.path.join(ckpt, "modeling_MMRet_CLIP.py"))
        runs = {side: [] for side in sides}

        def child(side, *extra):
            cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--ckpt", ckpt,
                   "--images", str(args.images), "--texts", str(args.texts),
                   "--batch", str(args.batch), "--threads", str(args.threads), *extra]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                sys.exit(f"{side} failed:\n{res.stderr}")
            return json.loads(res.stdout.strip().splitlines()[-1])

        for _ in range(args.rounds):  # sides alternate; the median of each side's rounds
            for side in sides:
                runs[side].append(child(side))
        profiles = {side: child(side, "--profile") for side in sides} if args.profile else {}
        results = {side: {k: (statistics.median(r[k] for r in rs)
                              if isinstance(rs[0][k], (int, float)) else rs[0][k]) for k in rs[0]}
                   for side, rs in runs.items()}
        for side, rs in runs.items():
            results[side]["rounds"] = {k: [r[k] for r in rs] for k in ("images_s", "texts_s")}
        agree = None
        if len(sides) == 2:
            import torch

            a = torch.load(os.path.join(ckpt, "out_reference.pt"))
            b = torch.load(os.path.join(ckpt, "out_bgevl.pt"))
            agree = max((a[k] - b[k]).abs().max().item() for k in a)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, {os.cpu_count()} cores; threads {args.threads}; batch {args.batch}; "
          f"{args.images} JPEG files (640x480 and 1280x960), {args.texts} texts; medians of {args.rounds} "
          "alternating runs; BGE-VL-base geometry, random fp16 weights, fp32 compute")
    print("| implementation | load (s) | images/s | texts/s | peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for side in sides:
        r = results[side]
        print(f"| {side} | {r['load_s']:.2f} | {r['images_s']:.2f} | {r['texts_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    if len(sides) == 2:
        r, b = results["reference"], results["bgevl"]
        print(f"| **bgevl / reference** | {r['load_s'] / b['load_s']:.1f}x faster | "
              f"{b['images_s'] / r['images_s']:.2f}x | {b['texts_s'] / r['texts_s']:.2f}x | "
              f"{b['peak_rss_mib'] / r['peak_rss_mib']:.2f}x |")
        print(f"max |embedding difference| between the two: {agree:.2e}")
    for side in sides:
        rr = results[side]["rounds"]
        print(f"{side} rounds: images/s {', '.join(f'{v:.2f}' for v in rr['images_s'])}; "
              f"texts/s {', '.join(f'{v:.1f}' for v in rr['texts_s'])}")
    for side, pr in profiles.items():
        for what in ("images", "texts"):
            print(f"profile, {side}, {what}, one batch (share of libtorch's self CPU time; calls): " +
                  ", ".join(f"{name} {share:.1%} ({calls})" for name, share, calls in pr[f"profile_{what}"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "max_abs_diff": agree,
                       "profiles": {side: {k: v for k, v in pr.items() if k.startswith("profile_")}
                                    for side, pr in profiles.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
