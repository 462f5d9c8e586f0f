"""Index a gallery on a Dask cluster (Debian: python3-dask, python3-distributed).

    from dask.distributed import Client, LocalCluster
    import bgevl.dask
    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    bgevl.dask.index("photos/", model="BAAI/BGE-VL-base", out="photos.index", client=client)

The entries are cut into partitions of `partition_size`; each partition is one task, which
embeds it with a model loaded once per worker process and writes it into
OUT/build/partitions/ (atomically: a task whose worker dies leaves nothing and is run again
elsewhere); when all are done, the partitions are merged into the index (the format of
`bgevl index`, equal to a single-process build of the same entries). A rerun after the whole job
was stopped runs only the partitions not done. GPU workers: start them with
`--resources GPU=1` (one per GPU, each with its CUDA_VISIBLE_DEVICES) and pass device="cuda":
the tasks then ask for resources={"GPU": 1}. CPU workers: Dask starts its worker processes with
OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1 (`distributed.nanny.pre-spawn-environ`); for workers of
several threads each, raise those there (bench/bench_dask.py shows how) and pass `threads`.

The command line: `bgevl index --dask-scheduler ADDR --model M --images DIR --out INDEX_DIR`.
"""
import argparse
import os
import sys

from . import _C
from .index import Index, _entries

__all__ = ["index", "main"]

_MODELS = {}  # in each worker process: one loaded model per (model, device, dtype, revision)


def _worker_model(spec):
    key = (spec["model"], spec["device"], spec["dtype"], spec["revision"])
    core = _MODELS.get(key)
    if core is None:
        from . import load, set_num_threads, tune_cpu_allocator
        if spec.get("threads"):
            set_num_threads(int(spec["threads"]))
        if str(spec["device"]).startswith("cpu"):
            tune_cpu_allocator()  # a worker process is bgevl's alone (as the CLI does)
        core = _MODELS[key] = load(spec["model"], device=spec["device"], dtype=spec["dtype"],
                                   revision=spec["revision"], progress=False)._core
    return core


def _run_partition(spec, entries, out, partition, opts):
    core = _worker_model(spec)
    counts = _C.Index.build_partition(core, entries, out, partition, opts["index_dtype"],
                                      opts["index_type"], opts["strict"], opts["batch_size"])
    return partition, counts, os.getpid()


def _gallery(paths_or_bag, ids, captions, groups):
    items = paths_or_bag
    if hasattr(items, "compute") and hasattr(items, "npartitions"):  # a dask Bag
        items = items.compute()
    if isinstance(items, (list, tuple)) and items and isinstance(items[0], dict):
        return [(str(d["id"]) if d.get("id") is not None else os.path.basename(d["path"]),
                 os.path.abspath(os.fspath(d["path"])), d.get("caption"), d.get("group"))
                for d in items]
    return _entries(items, ids, captions, groups)


def index(paths_or_bag, model, out, client=None, ids=None, captions=None, groups=None,
          device="cpu", dtype=None, revision="main", index_type="flat",
          index_dtype="float32", partition_size=1024, shard_size=1 << 20, batch_size=None,
          strict=False, retries=3, resources=None, threads=None, progress=True):
    """Builds the index `out` of `paths_or_bag` (a folder, a JSONL manifest, a list of image
    files with optional ids/captions/groups, or a dask Bag of paths or of {"id", "path",
    "caption", "group"} dicts) with `model` (a folder or hub id, loaded on the workers) on the
    cluster of `client` (default: the current one). Returns a dict: partitions, resumed (done
    by an earlier run), ran, workers (processes that ran tasks), index (a bgevl.Index).
    `threads`: bgevl.set_num_threads(threads) in each worker process (default: every core)."""
    from dask.distributed import as_completed, get_client

    client = client or get_client()
    out = os.path.abspath(os.fspath(out))
    entries = _gallery(paths_or_bag, ids, captions, groups)
    if not entries:
        raise ValueError("no gallery entries to index (empty list)")
    C = int(partition_size)
    model_ref = os.path.abspath(model) if os.path.isdir(os.fspath(model)) else os.fspath(model)
    partitions, done, missing = _C.Index.plan_partitions(entries, out, model_ref, index_dtype,
                                                         index_type, C)
    spec = dict(model=model_ref, device=device, dtype=dtype, revision=revision, threads=threads)
    opts = dict(index_dtype=index_dtype, index_type=index_type, strict=bool(strict),
                batch_size=int(batch_size or 0))
    if resources is None and str(device).startswith("cuda"):
        resources = {"GPU": 1}
    futures = [client.submit(_run_partition, spec, entries[p * C:(p + 1) * C], out, p, opts,
                             key=f"bgevl-partition-{os.path.basename(out)}-{p}-{os.getpid()}",
                             retries=retries, resources=resources, pure=False)
               for p in missing]
    bar = None
    if progress and futures:
        try:
            from tqdm import tqdm
            bar = tqdm(total=partitions, initial=done, desc="partitions", unit="part")
        except ImportError:
            bar = None
    workers = set()
    for f in as_completed(futures):
        _, _, pid = f.result()  # raises the task's error after its retries
        workers.add(pid)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    _C.Index.merge_partitions(out, int(shard_size))
    return dict(partitions=partitions, resumed=done, ran=len(missing), workers=len(workers),
                index=Index.load(out))


def main(argv=None):
    """`bgevl index --dask-scheduler ADDR ...` (the pip package's bgevl runs this)."""
    ap = argparse.ArgumentParser(prog="bgevl index --dask-scheduler",
                                 description="Index a gallery on a Dask cluster (bgevl.dask.index).")
    ap.add_argument("--dask-scheduler", required=True, help="scheduler address (tcp://host:8786)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True, help="folder or JSONL manifest")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="model dtype (default: float32 on cpu, bfloat16 on cuda)")
    ap.add_argument("--revision", default="main")
    ap.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivfpq"])
    ap.add_argument("--index-dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--chunk-size", type=int, default=1024, help="entries per partition (task)")
    ap.add_argument("--shard-size", type=int, default=1 << 20)
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    from dask.distributed import Client
    with Client(a.dask_scheduler) as client:
        r = index(a.images, a.model, a.out, client=client, device=a.device, dtype=a.dtype,
                  revision=a.revision, index_type=a.index_type, index_dtype=a.index_dtype,
                  partition_size=a.chunk_size, shard_size=a.shard_size, batch_size=a.batch_size,
                  strict=a.strict, progress=not a.quiet)
    idx = r["index"]
    print(f"index {a.out}: {len(idx)} entries of dimension {idx.dim}; {r['ran']} partitions run "
          f"on {r['workers']} workers, {r['resumed']} resumed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
