#!/usr/bin/env python3
"""Indexing throughput against Dask workers (not a test): the same gallery of distinct photo-sized
JPEGs indexed by a single process (`bgevl.Index.build`), then by `bgevl.dask.index` on a
LocalCluster of 1 and of 2 worker processes, on the random-weight BGE-VL-base geometry
checkpoint of bench_clip.py. Each worker loads the model once (that time is inside the job's
time, as it is for a real job); the threads are split so that every run uses the machine's
cores once: 1 worker x all cores, 2 workers x half.

    .venv/bin/python bench/bench_dask.py [--images 96] [--partition 12] [--json out.json]
"""
import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_clip  # noqa: E402


def photos(folder, n):
    """n distinct 640x480 JPEGs: the fixture photos with a random coloured patch each."""
    from PIL import Image, ImageDraw
    base = [Image.open(p).convert("RGB").resize((640, 480)) for p in bench_clip.image_files()]
    rng = random.Random(5)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        im = base[i % len(base)].copy()
        x, y = rng.randrange(600), rng.randrange(440)
        ImageDraw.Draw(im).rectangle([x, y, x + 40, y + 40], fill=(rng.randrange(256), rng.randrange(256), 0))
        im.save(os.path.join(folder, f"photo{i:04d}.jpg"), quality=90)
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--partition", type=int, default=12)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json")
    a = ap.parse_args()
    import bgevl
    import bgevl.dask
    import dask
    from distributed import Client, LocalCluster

    tmp = tempfile.mkdtemp(prefix="bench_dask_")
    ckpt = os.path.join(tmp, "base")
    bench_clip.make_checkpoint(ckpt)
    gallery = photos(os.path.join(tmp, "photos"), a.images)
    cores = os.cpu_count()
    rows = []
    print(f"machine: {platform.node()}, {cores} cores; BGE-VL-base geometry (random weights), float32; "
          f"{a.images} distinct 640x480 JPEGs, partitions of {a.partition}", flush=True)
    print("| run | worker processes x threads | seconds | images/s | vs single process |")
    print("|---|---|---:|---:|---:|")
    bgevl.set_num_threads(cores)
    bgevl.tune_cpu_allocator()  # as the CLI and the Dask workers do
    t0 = time.perf_counter()
    model = bgevl.load(ckpt)
    bgevl.Index.build(model, gallery, path=os.path.join(tmp, "single.index"), chunk_size=a.partition)
    single = time.perf_counter() - t0
    rows.append(dict(run="single process (bgevl.Index.build)", workers=1, threads=cores, seconds=single))
    for w in [int(x) for x in a.workers.split(",")]:
        threads = max(1, cores // w)
        # Dask's nanny starts workers with OMP/OpenBLAS/MKL threads at 1: give each its share.
        env = {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "MALLOC_TRIM_THRESHOLD_": 65536}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}), LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=40) as cluster, Client(cluster) as client:
            t0 = time.perf_counter()
            r = bgevl.dask.index(gallery, model=ckpt, out=os.path.join(tmp, f"dask{w}.index"), client=client,
                                 partition_size=a.partition, threads=threads, progress=False)
            el = time.perf_counter() - t0
        assert len(r["index"]) == a.images
        rows.append(dict(run="bgevl.dask.index", workers=w, threads=threads, seconds=el))
    for r in rows:
        r["images_per_s"] = a.images / r["seconds"]
        print(f"| {r['run']} | {r['workers']} x {r['threads']} | {r['seconds']:.1f} | {r['images_per_s']:.2f} | "
              f"{single / r['seconds']:.2f}x |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(machine=platform.node(), cores=cores, images=a.images, partition=a.partition,
                           rows=rows), f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
