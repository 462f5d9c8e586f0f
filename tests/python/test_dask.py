"""Scale-out: bgevl.dask.index on a LocalCluster of two worker processes, the shard jobs of
`bgevl index --num-shards N --shard-index I`, and `bgevl index --dask-scheduler`: each gives the
index of a single-process build (same ids, rows, embeddings to 1e-6); a worker killed midway is
survived; a rerun after the whole job stopped continues."""
import os
import subprocess

import numpy as np
import pytest

import bgevl
from conftest import ROOT, TOY_GALLERY, TOY_MODEL, cli

distributed = pytest.importorskip("distributed")  # Debian: python3-distributed
import bgevl.dask  # noqa: E402

PART = 40  # 300 gallery images: 8 partitions


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    """BGEVL_TEST_KILL_ONCE_FILE for the workers: a worker dies in its next partition once this
    file is removed (then it is written again)."""
    m = tmp_path_factory.mktemp("kill") / "killed"
    m.write_text("armed later\n")
    return m


@pytest.fixture(scope="module")
def client(marker):
    old = os.environ.get("BGEVL_TEST_KILL_ONCE_FILE")
    os.environ["BGEVL_TEST_KILL_ONCE_FILE"] = str(marker)  # inherited by the worker processes
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    if old is None:
        os.environ.pop("BGEVL_TEST_KILL_ONCE_FILE", None)
    else:
        os.environ["BGEVL_TEST_KILL_ONCE_FILE"] = old


def assert_same_index(got_dir, want_dir):
    got, want = bgevl.Index.load(got_dir), bgevl.Index.load(want_dir)
    g, w = got.records(), want.records()
    assert [r["id"] for r in g] == [r["id"] for r in w]
    assert [r["row"] for r in g] == [r["row"] for r in w]
    assert [r["sha256"] for r in g] == [r["sha256"] for r in w]
    mg, mw = got.manifest, want.manifest
    for k in ("counts", "dim", "family", "dtype", "index_type", "skipped", "model_dir"):
        assert mg[k] == mw[k], k
    np.testing.assert_allclose(np.asarray(got.embeddings()), np.asarray(want.embeddings()), atol=1e-6, rtol=0)
    assert not os.path.exists(os.path.join(got_dir, "build"))


def test_dask_index_equals_single_process(client, gallery_index, tmp_path):
    out = tmp_path / "dask.index"
    r = bgevl.dask.index(TOY_GALLERY, model=TOY_MODEL, out=out, client=client,
                         partition_size=PART, progress=False)
    assert r["partitions"] == 8 and r["ran"] == 8 and r["resumed"] == 0
    assert r["workers"] == 2, "both worker processes should have taken partitions"
    assert_same_index(out, gallery_index)
    assert len(r["index"]) == 300


def test_a_worker_killed_midway_is_survived(client, marker, gallery_index, tmp_path):
    out = tmp_path / "killed.index"
    marker.unlink()  # the next partition's worker dies after embedding, before committing it
    r = bgevl.dask.index(TOY_GALLERY, model=TOY_MODEL, out=out, client=client,
                         partition_size=PART, progress=False, retries=2)
    assert marker.exists(), "no worker was killed"
    assert r["ran"] == 8
    assert_same_index(out, gallery_index)  # complete: no row missing, none twice


def test_shard_jobs_and_a_rerun_after_the_job_stopped(client, gallery_index, tmp_path):
    # Shard jobs (no scheduler): 0 and 1 of 3 run; the index is not written yet.
    out = tmp_path / "shards.index"
    for i in (0, 1):
        res = subprocess.run([cli(), "index", "--model", TOY_MODEL, "--images", TOY_GALLERY, "--out", str(out),
                              "--chunk-size", str(PART), "--num-shards", "3", "--shard-index", str(i), "--quiet"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert "partitions done" in res.stderr and not (out / "manifest.json").exists()
    # The whole job stopped there; a Dask run continues it: only the partitions left (2, 5).
    r = bgevl.dask.index(TOY_GALLERY, model=TOY_MODEL, out=out, client=client, partition_size=PART,
                         progress=False)
    assert (r["resumed"], r["ran"]) == (6, 2)
    assert_same_index(out, gallery_index)
    # All shard jobs of another folder: the last one writes the index.
    out2 = tmp_path / "shards2.index"
    for i in (2, 0, 1):
        res = subprocess.run([cli(), "index", "--model", TOY_MODEL, "--images", TOY_GALLERY, "--out", str(out2),
                              "--chunk-size", str(PART), "--num-shards", "3", "--shard-index", str(i), "--quiet"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert "merged from 8 partitions" in res.stderr
    assert_same_index(out2, gallery_index)
    # Other settings on a folder with partitions of a plan: refused, naming the way out.
    res = subprocess.run([cli(), "index", "--model", TOY_MODEL, "--images", TOY_GALLERY, "--out", str(tmp_path / "x"),
                          "--chunk-size", "40", "--num-shards", "2", "--shard-index", "0", "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 0
    res = subprocess.run([cli(), "index", "--model", TOY_MODEL, "--images", TOY_GALLERY, "--out", str(tmp_path / "x"),
                          "--chunk-size", "50", "--num-shards", "2", "--shard-index", "1", "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "other entries or settings" in res.stderr


def test_command_line_with_a_scheduler(client, gallery_index, tmp_path):
    out = tmp_path / "cli.index"
    res = subprocess.run([cli(), "index", "--dask-scheduler", client.scheduler.address, "--model", TOY_MODEL,
                          "--images", TOY_GALLERY, "--out", str(out), "--chunk-size", str(PART), "--quiet"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "8 partitions run on" in res.stderr
    assert_same_index(out, gallery_index)


def test_duplicates_across_partitions_and_skipped_files(client, model, tmp_path):
    """Contents repeated in later partitions share the first one's row, unreadable files are
    listed as skipped: as in a single-process build."""
    files = sorted(os.path.join(d, n) for d, _, ns in os.walk(TOY_GALLERY) for n in ns)[:100]
    lines = [{"id": f"img{i}", "path": p} for i, p in enumerate(files)]
    lines += [{"id": f"dup{i}", "path": files[i * 5]} for i in range(20)]  # later partitions
    lines += [{"id": "gone", "path": str(tmp_path / "missing.png")}]
    (tmp_path / "empty.png").write_bytes(b"")
    lines += [{"id": "empty", "path": str(tmp_path / "empty.png")}]
    manifest = tmp_path / "gallery.jsonl"
    import json
    manifest.write_text("".join(json.dumps(l) + "\n" for l in lines))
    single = bgevl.Index.build(model, str(manifest), path=tmp_path / "single.index", chunk_size=25)
    r = bgevl.dask.index(str(manifest), model=TOY_MODEL, out=tmp_path / "dask.index", client=client,
                         partition_size=25, progress=False)
    assert r["partitions"] == 5
    m = bgevl.Index.load(tmp_path / "dask.index").manifest
    assert m["counts"] == {"entries": 120, "rows": 100, "duplicates": 20, "skipped": 2}
    assert_same_index(tmp_path / "dask.index", single.path)
