"""Retrieval: bgevl index / search / evaluate / dataset and bgevl.Index, on the bundled model and
gallery (models/), compared with the Python API's encode."""
import json
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
import torch

import bgevl
from conftest import FLOAT32_TOL, ROOT, TOY_GALLERY, TOY_MODEL, cli

MODEL, GALLERY = TOY_MODEL, TOY_GALLERY
HELDOUT = os.path.join(ROOT, "models", "queries", "heldout.jsonl")


def run(*args, env=None, check=True):
    res = subprocess.run([cli(), *args], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, **(env or {})))
    if check:
        assert res.returncode == 0, res.stderr
    return res


def gallery_files():
    out = []
    for d, _, names in os.walk(GALLERY):
        out += [os.path.join(d, n) for n in names if n.endswith(".png")]
    return sorted(out, key=lambda p: os.path.relpath(p, GALLERY))


def test_search_json_equals_python_encode(model, gallery_index):
    files = gallery_files()
    ids = [os.path.relpath(p, GALLERY) for p in files]
    query, text = files[3], "make the background dark"
    res = run("search", "--index", str(gallery_index), "--image", query, "--text", text,
              "-k", "10", "--json")
    out = json.loads(res.stdout)  # stdout holds the JSON and nothing else
    assert list(out) == ["results"] and len(out["results"]) == 10
    assert [r["rank"] for r in out["results"]] == list(range(1, 11))
    with torch.no_grad():
        scores = (model.encode(images=query, text=text) @ model.encode(images=files).T)[0]
    for r in out["results"]:
        assert set(r) == {"rank", "id", "path", "score"}
        assert abs(r["score"] - scores[ids.index(r["id"])].item()) <= FLOAT32_TOL
        assert os.path.samefile(r["path"], files[ids.index(r["id"])])
    top = torch.topk(scores, 10).indices.tolist()
    assert [r["id"] for r in out["results"]] == [ids[i] for i in top]
    # The Python Index over the same folder gives the same ranking and scores.
    index = bgevl.Index.load(gallery_index, model=model)
    hits = index.search(images=query, text=text, k=10)
    assert hits.ids == [r["id"] for r in out["results"]]
    np.testing.assert_allclose(hits.scores, [r["score"] for r in out["results"]], atol=FLOAT32_TOL)
    # An indexed id as the query image reuses the stored features: the same scores.
    by_id = index.search(query_id=ids[3], text=text, k=10)
    assert by_id.ids == hits.ids
    np.testing.assert_allclose(by_id.scores, hits.scores, atol=FLOAT32_TOL)


def test_text_and_image_queries_and_table(gallery_index):
    res = run("search", "--index", str(gallery_index), "--text", "a red circle on the left", "-k", "3")
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["rank", "score", "id", "path"] and len(lines) == 4
    one = run("search", "--index", str(gallery_index), "--query-id", "day/one_red_circle_left.png",
              "-k", "1", "--json")
    assert json.loads(one.stdout)["results"][0]["id"] == "day/one_red_circle_left.png"


def test_html_page(gallery_index, tmp_path):
    page = tmp_path / "hits.html"
    run("search", "--index", str(gallery_index), "--query-id", "day/one_red_circle_left.png",
        "--text", "make the background dark", "-k", "4", "--html", str(page))
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("data:image/png;base64,") == 5  # the query and 4 hits, embedded
    assert "make the background dark" in html and "#4" in html


def test_evaluate_heldout_recall_and_python_agree(model, gallery_index):
    res = run("evaluate", "--index", str(gallery_index), "--queries", HELDOUT, "-k", "1,5,10", "--json")
    metrics = json.loads(res.stdout)
    assert list(metrics) == ["R@1", "R@5", "R@10", "mAP@1", "mAP@5", "mAP@10"]
    assert metrics["R@1"] >= 0.9, metrics  # the trained toy model retrieves (README states it)
    py, rankings = bgevl.Index.load(gallery_index, model=model).evaluate(HELDOUT, k=(1, 5, 10))
    assert py == metrics
    # Recompute the metrics from encode's scores with numpy: the definitions, independently.
    queries = [json.loads(line) for line in open(HELDOUT)]
    files = gallery_files()
    ids = np.array([os.path.relpath(p, GALLERY) for p in files])
    with torch.no_grad():
        gal = model.encode(images=files)
        r1 = ap5 = 0.0
        for q in queries:
            img = os.path.join(ROOT, q["image"]) if q["image"] else None
            e = model.encode(images=img, text=q["text"])
            ranked = ids[torch.argsort(-(e @ gal.T)[0]).numpy()]
            r1 += ranked[0] in q["targets"]
            rel = [i for i in range(5) if ranked[i] in q["targets"]]
            ap5 += sum((n + 1) / (i + 1) for n, i in enumerate(rel)) / min(5, len(q["targets"]))
    assert abs(metrics["R@1"] - r1 / len(queries)) < 1e-9
    assert abs(metrics["mAP@5"] - ap5 / len(queries)) < 1e-9


def small_gallery(tmp_path, n=40):
    g = tmp_path / "g"
    g.mkdir()
    for p in gallery_files()[:n]:
        shutil.copy(p, g / os.path.basename(p).replace(".png", f"_{len(os.listdir(g))}.png"))
    return g


def test_resume_after_kill_gives_the_identical_index(tmp_path):
    g = small_gallery(tmp_path)
    (g / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    shutil.copy(sorted(g.iterdir())[0], g / "zz_duplicate.png")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run("index", "--model", MODEL, "--images", str(g), "--out", str(whole), "--chunk-size", "8", "--quiet")
    killed = run("index", "--model", MODEL, "--images", str(g), "--out", str(cut), "--chunk-size", "8",
                 "--quiet", env={"BGEVL_TEST_KILL_AFTER_PARTS": "3"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert not (cut / "manifest.json").exists() and (cut / "build" / "progress.json").exists()
    with pytest.raises(FileNotFoundError, match="unfinished build"):
        bgevl.Index.load(cut)
    resumed = run("index", "--model", MODEL, "--images", str(g), "--out", str(cut), "--chunk-size", "8")
    assert "24 resumed" in resumed.stderr
    names = sorted(str(p.relative_to(whole)) for p in whole.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(cut)) for p in cut.rglob("*") if p.is_file())
    for n in names:
        assert (whole / n).read_bytes() == (cut / n).read_bytes(), n
    m = json.loads((cut / "manifest.json").read_text())
    assert m["counts"] == {"entries": 41, "rows": 40, "duplicates": 1, "skipped": 1}
    assert m["skipped"][0]["id"] == "zz_broken.jpg" and "decode" in m["skipped"][0]["reason"]
    # --strict makes the unreadable file fatal; a rerun on a complete index needs --add.
    res = run("index", "--model", MODEL, "--images", str(g), "--out", str(tmp_path / "s"), "--strict",
              check=False)
    assert res.returncode == 1 and "zz_broken.jpg" in res.stderr
    res = run("index", "--model", MODEL, "--images", str(g), "--out", str(cut), check=False)
    assert res.returncode == 1 and "--add" in res.stderr


def test_add_and_python_build(model, tmp_path):
    g = small_gallery(tmp_path, 12)
    files = sorted(str(p) for p in g.iterdir())
    index = bgevl.Index.build(model, files[:6])
    assert len(index) == 6 and index.dim == model.embedding_dim
    counts = index.add(files)
    assert counts["already"] == 6 and counts["embedded"] == 6 and len(index) == 12
    emb = index.embeddings()
    assert isinstance(emb, np.memmap) and emb.shape == (12, model.embedding_dim)
    with torch.no_grad():
        ref = model.encode(images=files).numpy()
    rows = [index.find(os.path.basename(f))["row"] for f in files]
    np.testing.assert_allclose(np.asarray(emb)[rows], ref, atol=FLOAT32_TOL)
    saved = index.save(tmp_path / "saved")
    assert bgevl.Index.load(tmp_path / "saved").manifest["counts"]["entries"] == 12
    results, ids, scores = saved.search_batch(text=["make it red", "a blue square"], k=3)
    assert ids.shape == (2, 3) and scores.dtype == np.float32 and results[0].ids == list(ids[0])


def test_backends_and_index_types_agree(model, gallery_index, tmp_path):
    index = bgevl.Index.load(gallery_index, model=model)
    q = dict(query_id="night/one_blue_square_centre.png", text="make it yellow", k=10)
    torch_hits = index.search(backend="torch", **q)
    if not bgevl.has_faiss():
        pytest.skip("built without FAISS")
    faiss_hits = index.search(backend="faiss", **q)
    assert torch_hits.ids == faiss_hits.ids
    np.testing.assert_allclose(torch_hits.scores, faiss_hits.scores, atol=FLOAT32_TOL)
    for t in ("hnsw", "ivfpq"):
        out = tmp_path / t
        run("index", "--model", MODEL, "--images", GALLERY, "--out", str(out), "--index-type", t, "--quiet")
        m = json.loads((out / "manifest.json").read_text())
        assert m["index_type"] == t and m["ann_file"] and m["ann_params"]
        hits = bgevl.Index.load(out, model=model).search(**q)
        assert hits.ids[0] == torch_hits.ids[0], t
    f16 = tmp_path / "f16"
    run("index", "--model", MODEL, "--images", GALLERY, "--out", str(f16), "--index-dtype", "float16", "--quiet")
    assert bgevl.Index.load(f16).embeddings().dtype == np.float16


def test_bad_arguments(gallery_index, tmp_path):
    assert run("search", "--index", str(gallery_index), check=False).returncode == 2
    res = run("search", "--index", str(gallery_index), "--query-id", "nope.png", check=False)
    assert res.returncode == 1 and "nope.png" in res.stderr
    res = run("search", "--index", str(tmp_path / "none"), "--text", "x", check=False)
    assert res.returncode == 1 and "no such index" in res.stderr
    res = run("index", "--model", MODEL, "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
              check=False)
    assert res.returncode == 1 and "no such folder" in res.stderr
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"text": "x", "targets": [], "colour": 1}\n')
    res = run("evaluate", "--index", str(gallery_index), "--queries", str(bad), check=False)
    assert res.returncode == 1 and "unknown field" in res.stderr
    with pytest.raises(ValueError, match="instruction"):
        bgevl.Index.load(gallery_index).search(text="x", instruction="cir")


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_dataset_adapters_and_submissions(tmp_path):
    files = gallery_files()[:6]
    # CIRR layout: captions/, image_splits/, images under dev/.
    cirr = tmp_path / "cirr_root"
    (cirr / "dev").mkdir(parents=True)
    names = [f"dev-{i}" for i in range(6)]
    for n, f in zip(names, files):
        shutil.copy(f, cirr / "dev" / f"{n}.png")
    write_json(cirr / "cirr" / "image_splits" / "split.rc2.val.json", {n: f"./dev/{n}.png" for n in names})
    write_json(cirr / "cirr" / "captions" / "cap.rc2.val.json", [
        {"pairid": 7, "reference": names[0], "target_hard": names[1], "caption": "make it red",
         "img_set": {"id": 1, "members": names[:4]}}])
    out = tmp_path / "cirr_out"
    run("dataset", "cirr", "--root", str(cirr), "--split", "val", "--out", str(out))
    q = json.loads((out / "queries.jsonl").read_text())
    assert q == {"image": None, "query_id": names[0], "text": "make it red", "instruction": None,
                 "targets": [names[1]], "exclude": [names[0]], "subset": names[1:4], "qid": "7"}
    idx = tmp_path / "cirr_idx"
    run("index", "--model", MODEL, "--images", str(out / "gallery.jsonl"), "--out", str(idx), "--quiet")
    sub = tmp_path / "sub.json"
    res = run("evaluate", "--index", str(idx), "--queries", str(out / "queries.jsonl"), "-k", "1,5",
              "--json", "--submission", str(sub), "--submission-format", "cirr")
    metrics = json.loads(res.stdout)
    assert set(metrics) == {"R@1", "R@5", "mAP@1", "mAP@5", "R_subset@1", "R_subset@2", "R_subset@3"}
    assert metrics["R@5"] == 1.0 and metrics["R_subset@3"] == 1.0  # 5 candidates, 3 in the subset
    s = json.loads(sub.read_text())
    assert s["version"] == "rc2" and s["metric"] == "recall" and len(s["7"]) == 5
    assert names[0] not in s["7"]  # the reference is never ranked

    # CIRCO layout, test split (no targets): submission with numeric ids.
    circo = tmp_path / "circo_root"
    coco = circo / "COCO2017_unlabeled"
    (coco / "unlabeled2017").mkdir(parents=True)
    for i, f in enumerate(files):
        shutil.copy(f, coco / "unlabeled2017" / f"{i:012d}.png")
    write_json(coco / "annotations" / "image_info_unlabeled2017.json",
               {"images": [{"id": i, "file_name": f"{i:012d}.png"} for i in range(6)]})
    write_json(circo / "annotations" / "test.json", [
        {"id": 3, "reference_img_id": 0, "relative_caption": "is red", "shared_concept": "has a circle"}])
    out = tmp_path / "circo_out"
    run("dataset", "circo", "--root", str(circo), "--split", "test", "--out", str(out))
    q = json.loads((out / "queries.jsonl").read_text())
    assert q["text"] == "Find a picture that also has a circle, but is red" and q["targets"] == []
    idx = tmp_path / "circo_idx"
    run("index", "--model", MODEL, "--images", str(out / "gallery.jsonl"), "--out", str(idx), "--quiet")
    res = run("evaluate", "--index", str(idx), "--queries", str(out / "queries.jsonl"), "--json",
              "--submission", str(sub), "--submission-format", "circo")
    assert json.loads(res.stdout) == {}
    assert sorted(json.loads(sub.read_text())["3"]) == list(range(6))

    # FashionIQ layout: per-category groups and their mean.
    fiq = tmp_path / "fiq"
    (fiq / "images").mkdir(parents=True)
    for i, f in enumerate(files):
        shutil.copy(f, fiq / "images" / f"a{i}.png")
    for c, members in (("dress", [0, 1]), ("shirt", [2, 3]), ("toptee", [4, 5])):
        write_json(fiq / "image_splits" / f"split.{c}.val.json", [f"a{i}" for i in members])
        write_json(fiq / "captions" / f"cap.{c}.val.json", [
            {"candidate": f"a{members[0]}", "target": f"a{members[1]}", "captions": ["is RED.", "has stripes?"]}])
    out = tmp_path / "fiq_out"
    run("dataset", "fashioniq", "--root", str(fiq), "--split", "val", "--out", str(out))
    qs = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert qs[0]["text"] == "Is red and has stripes" and qs[0]["group"] == "dress"
    idx = tmp_path / "fiq_idx"
    run("index", "--model", MODEL, "--images", str(out / "gallery.jsonl"), "--out", str(idx), "--quiet")
    res = run("evaluate", "--index", str(idx), "--queries", str(out / "queries.jsonl"), "-k", "2", "--json")
    metrics = json.loads(res.stdout)
    # Each category's gallery holds 2 images: the target is always in its top 2.
    assert metrics["dress/R@2"] == metrics["mean/R@2"] == 1.0


def test_mllm_index_with_captions_matches_encode(tmp_path):
    """BGE-VL-MLLM: candidates with captions are embedded as image + text (q_or_c="c"); queries
    get the query prompt with the instruction preset; scores equal the Python API's."""
    ckpt = os.path.join(ROOT, "tests", "fixtures", "llava", "tiny-llava-next")
    imgs = sorted(os.path.join(ROOT, "models", "gallery", "day", n)
                  for n in os.listdir(os.path.join(ROOT, "models", "gallery", "day")))[:3]
    manifest = tmp_path / "m.jsonl"
    caps = ["a red thing", None, "two shapes"]
    manifest.write_text("".join(json.dumps({"id": f"c{i}", "path": p, **({"caption": c} if c else {})}) + "\n"
                                for i, (p, c) in enumerate(zip(imgs, caps))))
    out = tmp_path / "mllm.index"
    run("index", "--model", ckpt, "--images", str(manifest), "--out", str(out), "--quiet")
    model = bgevl.load(ckpt)
    index = bgevl.Index.load(out, model=model)
    assert index.manifest["family"] == "llava_next" and not index.manifest["feature_shards"]
    hits = index.search(images=imgs[1], text="make it dark", instruction="cir", k=3)
    with torch.no_grad():
        q = model.encode(images=imgs[1], text="make it dark", q_or_c="q",
                         task_instruction=bgevl.COMPOSED_RETRIEVAL_INSTRUCTION)
        c = model.encode(images=imgs, text=caps, q_or_c="c")
    scores = (q @ c.T)[0]
    for i, s in zip(hits.ids, hits.scores):
        assert abs(s - scores[int(i[1:])].item()) <= FLOAT32_TOL
    # An indexed id as the query image: its file is encoded again with the query prompt.
    by_id = index.search(query_id="c1", text="make it dark", instruction="cir", k=3)
    np.testing.assert_allclose(by_id.scores, hits.scores, atol=FLOAT32_TOL)
    res = run("search", "--index", str(out), "--text", "x", "--instruction", "t2i", "--json")
    assert len(json.loads(res.stdout)["results"]) == 3


def test_without_faiss(gallery_index, tmp_path):
    """BGEVL_NO_FAISS=1: the paths of a build without FAISS (exact search by libtorch)."""
    env = {"BGEVL_NO_FAISS": "1"}
    out = tmp_path / "nofaiss"
    run("index", "--model", MODEL, "--images", GALLERY, "--out", str(out), "--quiet", env=env)
    args = ["--query-id", "day/one_red_circle_left.png", "--text", "make it red", "-k", "8", "--json"]
    plain = json.loads(run("search", "--index", str(out), *args, env=env).stdout)
    with_faiss = json.loads(run("search", "--index", str(gallery_index), *args).stdout)
    assert [r["id"] for r in plain["results"]] == [r["id"] for r in with_faiss["results"]]
    for a, b in zip(plain["results"], with_faiss["results"]):
        assert abs(a["score"] - b["score"]) <= FLOAT32_TOL
    res = run("index", "--model", MODEL, "--images", GALLERY, "--out", str(tmp_path / "h"),
              "--index-type", "hnsw", env=env, check=False)
    assert res.returncode == 1 and "without FAISS" in res.stderr
    res = run("search", "--index", str(out), "--backend", "faiss", "--text", "x", env=env, check=False)
    assert res.returncode == 1 and "FAISS" in res.stderr
