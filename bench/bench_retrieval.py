#!/usr/bin/env python3
"""Retrieval benchmark: indexing speed, index size, search latency and ANN recall.

1. Indexing: `bgevl index` on a folder of photo-sized JPEGs (COCO-like 640x480, some larger)
   with a random-weight checkpoint of the full BAAI/BGE-VL-base geometry, against `bgevl encode`
   of the same files (what indexing costs beyond the encoder: hashing, parts, shards, metadata).
2. Search on generated vectors (clustered, normalised; the search part does not need a model):
   for each N x D, each index type (flat by libtorch, flat by FAISS, hnsw, ivfpq): build time,
   size on disk, single-query latency p50/p99 (k=10) and recall@10 against exact search.
   Combinations that do not fit this machine's memory are listed as such, not run.

    .venv/bin/python bench/bench_retrieval.py --sizes 100000,1000000 --dims 512,4096 --threads 2
    .venv/bin/python bench/bench_retrieval.py --sizes 100000 --dims 512 --skip-indexing   # quick

Results go to stdout as Markdown tables (and --json FILE).
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import bgevl  # noqa: E402


def cli():
    cand = os.path.join(sys.prefix, "bin", "bgevl")
    return cand if os.path.exists(cand) else os.path.join(ROOT, "build", "bgevl")


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def indexing(n_images, threads, work):
    import bench_clip
    from PIL import Image

    ckpt = os.path.join(work, "base")
    bench_clip.make_checkpoint(ckpt)
    photos = bench_clip.image_files(os.path.join(work, "src"))
    folder = os.path.join(work, "photos")
    os.makedirs(folder)
    for i in range(n_images):  # distinct contents (no duplicates): shifted crops of the photos
        im = Image.open(photos[i % len(photos)])
        w, h = im.size
        dx = i // len(photos)
        im.crop((dx, 0, w - (i // len(photos)) % 7, h)).resize((w, h)).save(
            os.path.join(folder, f"p{i:05d}.jpg"), quality=90)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    lst = os.path.join(work, "list.txt")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    t = ["--threads", str(threads)]
    runs = {}
    for name, args in (("bgevl encode", ["encode", "--model", ckpt, "--images-from", lst,
                                          "--out", os.path.join(work, "e.npy"), "--quiet"]),
                       ("bgevl index", ["index", "--model", ckpt, "--images", folder,
                                        "--out", os.path.join(work, "idx"), "--quiet"])):
        t0 = time.perf_counter()
        subprocess.run([cli(), *args, *t], check=True, capture_output=True)
        runs[name] = n_images / (time.perf_counter() - t0)
    return {"images": n_images, "encode_img_s": runs["bgevl encode"],
            "index_img_s": runs["bgevl index"], "index_bytes": du(os.path.join(work, "idx"))}


def clustered(n, d, seed, centres):
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, d, dtype=torch.float16 if n * d > 2e8 else torch.float32)
    for lo in range(0, n, 65536):
        m = min(n, lo + 65536) - lo
        x = centres[torch.randint(len(centres), (m,), generator=g)] + 0.6 * torch.randn(m, d, generator=g)
        out[lo:lo + m] = (x / x.norm(dim=1, keepdim=True)).to(out.dtype)
    return out


def fits(kind, n, d, mem_gib):
    # FAISS flat and HNSW keep a float32 copy of every vector in memory.
    need = n * d * 4 / 2**30 * (1.3 if kind == "hnsw" else 1.0)
    return kind in ("torch", "ivfpq") or need < 0.6 * mem_gib


def search_bench(n, d, kinds, work, n_queries, mem_gib):
    centres = torch.randn(max(64, n // 500), d, generator=torch.Generator().manual_seed(1))
    x = clustered(n, d, 2, centres)
    q = clustered(n_queries, d, 3, centres).float()
    ids = [str(i) for i in range(n)]
    dtype = "float16" if x.dtype == torch.float16 else "float32"
    flat_dir = os.path.join(work, f"flat_{n}_{d}")
    t0 = time.perf_counter()
    flat = bgevl.Index.from_vectors(x, ids, flat_dir, dtype=dtype)
    flat_build = time.perf_counter() - t0
    del x
    exact = [r.rows for r in flat.search_vectors(q, 10, backend="torch")]
    rows = []
    for kind in kinds:
        if not fits(kind, n, d, mem_gib):
            rows.append({"n": n, "d": d, "kind": kind, "skipped": "a float32 copy does not fit in memory"})
            continue
        if kind in ("torch", "faiss"):
            idx, build, size = flat, flat_build, du(flat_dir)
            backend = kind
        else:
            if not bgevl.has_faiss():
                continue
            x = clustered(n, d, 2, centres)
            t0 = time.perf_counter()
            path = os.path.join(work, f"{kind}_{n}_{d}")
            idx = bgevl.Index.from_vectors(x, ids, path, dtype=dtype, index_type=kind)
            build = time.perf_counter() - t0
            size = du(path)
            del x
            backend = "auto"
        idx.search_vectors(q[:2], 10, backend=backend)  # warm-up (FAISS flat builds its copy)
        lat, got = [], []
        for i in range(n_queries):
            t0 = time.perf_counter()
            r = idx.search_vectors(q[i:i + 1], 10, backend=backend)[0]
            lat.append(time.perf_counter() - t0)
            got.append(r.rows)
        recall = np.mean([len(set(g.tolist()) & set(e.tolist())) / 10 for g, e in zip(got, exact)])
        rows.append({"n": n, "d": d, "kind": kind, "dtype": dtype, "build_s": build,
                     "bytes": size, "p50_ms": 1e3 * np.percentile(lat, 50),
                     "p99_ms": 1e3 * np.percentile(lat, 99), "recall10": float(recall),
                     "params": idx.manifest["ann_params"]})
        print(rows[-1], file=sys.stderr, flush=True)
        if kind not in ("torch", "faiss"):
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(flat_dir, ignore_errors=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dims", default="512,4096")
    ap.add_argument("--kinds", default="torch,faiss,hnsw,ivfpq")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--skip-indexing", action="store_true")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--json")
    args = ap.parse_args()
    bgevl.set_num_threads(args.threads)
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    work = args.work or tempfile.mkdtemp(prefix="bgevl-bench-")
    os.makedirs(work, exist_ok=True)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                      f"{mem_gib:.0f} GiB", "threads": args.threads, "faiss": bgevl.has_faiss()}
    try:
        if not args.skip_indexing:
            out["indexing"] = indexing(args.images, args.threads, os.path.join(work, "indexing"))
            i = out["indexing"]
            print(f"\n| {i['images']} photos, BGE-VL-base geometry | images/s |\n|---|---|\n"
                  f"| bgevl encode | {i['encode_img_s']:.2f} |\n| bgevl index | {i['index_img_s']:.2f} "
                  f"({i['index_img_s'] / i['encode_img_s']:.2f}x of encode) |\n"
                  f"| index size | {i['index_bytes'] / 2**20:.1f} MiB |\n", flush=True)
        out["search"] = []
        for n in [int(s) for s in args.sizes.split(",")]:
            for d in [int(s) for s in args.dims.split(",")]:
                out["search"] += search_bench(n, d, args.kinds.split(","), work, args.queries, mem_gib)
        print("| N | D | index | stored | build s | size MiB | p50 ms | p99 ms | recall@10 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in out["search"]:
            if "skipped" in r:
                print(f"| {r['n']} | {r['d']} | {r['kind']} | - | - | - | - | - | not run: {r['skipped']} |")
                continue
            print(f"| {r['n']} | {r['d']} | {r['kind']} | {r['dtype']} | {r['build_s']:.1f} | "
                  f"{r['bytes'] / 2**20:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['recall10']:.3f} |")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
