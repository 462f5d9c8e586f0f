#!/usr/bin/env python3
"""CLIP image preprocessing alone: JPEG bytes -> pixel_values [N, 3, 224, 224] float32.

Sides, each in its own worker process on one thread:
  * pil:          PIL + numpy doing the slow CLIPImageProcessor's steps (transformers 4.45):
                  Image.open(...).convert("RGB"), resize of the shortest edge to 224 (PIL BICUBIC),
                  center crop 224, rescale 1/255 (float64, then float32), normalize with the CLIP
                  mean/std (float32), channels first.
  * bgevl:        `model.processor(images=[bytes, ...])["pixel_values"]` of the bundled tiny CLIP
                  checkpoint (models/bgevl-tiny-clip: the BGE-VL preprocessor_config.json), with
                  bgevl.set_num_threads(1); the resampler's AVX2 passes on (the default).
  * bgevl-scalar: the same with BGEVL_NO_SIMD=1 (the scalar passes).
The images: --count JPEGs (quality 90) of smooth random content, half 640x480, half 1280x960,
made with PIL. Each round times one pass over all of them on every side, the sides in a rotating
order; the table gives the median over --rounds. The outputs are checked against the PIL side.

    .venv/bin/python bench/bench_preprocess.py [--count 64] [--rounds 7]
"""
import argparse
import io
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "bgevl-tiny-clip")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SIZES = [(640, 480), (1280, 960)]


def make_jpegs(count, seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        small = rng.integers(0, 256, size=(6 + i % 5, 8 + i % 7, 3), dtype=np.uint8)
        im = Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)
        arr = np.asarray(im).astype(np.int16)
        arr += rng.integers(-6, 7, size=arr.shape, dtype=np.int16)  # a little sensor noise
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


# ---- the worker sides ----------------------------------------------------------------------------

def pil_side():
    import numpy as np
    from PIL import Image

    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)

    def one(data):
        im = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(224 * long / short)
        size = (224, new_long) if w <= h else (new_long, 224)
        im = im.resize(size, resample=Image.BICUBIC, reducing_gap=None)
        a = np.array(im)
        top, left = (a.shape[0] - 224) // 2, (a.shape[1] - 224) // 2
        a = a[top:top + 224, left:left + 224]
        a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
        a = (a - mean) / std
        return a.transpose(2, 0, 1)

    return lambda images: np.stack([one(d) for d in images])


def bgevl_side():
    import bgevl

    bgevl.set_num_threads(1)
    model = bgevl.AutoModel.from_pretrained(MODEL)
    return lambda images: model.processor(images=images)["pixel_values"].numpy()


def worker(side, path):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy as np

    with open(path, "rb") as f:
        blob = f.read()
    images, pos = [], 0
    while pos < len(blob):
        n = int.from_bytes(blob[pos:pos + 8], "little")
        images.append(blob[pos + 8:pos + 8 + n])
        pos += 8 + n
    run = pil_side() if side == "pil" else bgevl_side()
    if side != "pil":
        import torch

        torch.set_num_threads(1)
    run(images[:2])  # warm-up (the model's first call, page faults)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            t0 = time.perf_counter()
            run(images)
            print(f"{time.perf_counter() - t0:.6f}", flush=True)
        elif cmd[0] == "dump":
            np.save(cmd[1], run(images))
            print("ok", flush=True)


# ---- the driver ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "IMAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)

    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bgevl_bench_pre_") as tmp:
        jpegs = make_jpegs(args.count)
        path = os.path.join(tmp, "images.bin")
        with open(path, "wb") as f:
            for d in jpegs:
                f.write(len(d).to_bytes(8, "little") + d)
        sides = {"pil": {}, "bgevl": {}, "bgevl-scalar": {"BGEVL_NO_SIMD": "1"}}
        procs = {}
        for name, env in sides.items():
            e = dict(os.environ, **env)
            if name != "bgevl-scalar":
                e.pop("BGEVL_NO_SIMD", None)
            side = "pil" if name == "pil" else "bgevl"
            procs[name] = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", side, path], env=e,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for name, p in procs.items():
            if p.stdout.readline().strip() != "ready":
                sys.exit(f"worker {name} failed to start")

        def ask(name, cmd):
            p = procs[name]
            p.stdin.write(cmd + "\n")
            p.stdin.flush()
            return p.stdout.readline().strip()

        # The outputs first: bgevl (both paths) against PIL + numpy.
        outs = {}
        for name in procs:
            f = os.path.join(tmp, name + ".npy")
            ask(name, "dump " + f)
            outs[name] = np.load(f)
        for name in ("bgevl", "bgevl-scalar"):
            d = float(np.abs(outs[name] - outs["pil"]).max())
            print(f"{name}: max |pixel_values - PIL's| = {d:.3g}"
                  f"{' (identical)' if d == 0 else ''}")
        print("bgevl AVX2 vs scalar pixel_values identical:",
              bool(np.array_equal(outs["bgevl"], outs["bgevl-scalar"])))

        names = list(procs)
        times = {n: [] for n in names}
        for r in range(args.rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                times[n].append(float(ask(n, "run")))
        for p in procs.values():
            p.stdin.close()
            p.wait()

    med = {n: statistics.median(t) for n, t in times.items()}
    ips = {n: args.count / med[n] for n in names}
    print(f"\n{args.count} JPEGs (half 640x480, half 1280x960) -> pixel_values, one thread each, "
          f"median of {args.rounds} rounds")
    print("| side | images/s | ms/image |")
    print("|---|---:|---:|")
    for n in names:
        print(f"| {n} | {ips[n]:.1f} | {1e3 * med[n] / args.count:.2f} |")
    print(f"\nbgevl (AVX2) / PIL: {ips['bgevl'] / ips['pil']:.2f}x   "
          f"bgevl scalar / PIL: {ips['bgevl-scalar'] / ips['pil']:.2f}x   "
          f"bgevl AVX2 / scalar: {ips['bgevl'] / ips['bgevl-scalar']:.2f}x")


if __name__ == "__main__":
    main()
