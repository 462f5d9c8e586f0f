"""bgevl serve over real HTTP on loopback: each test starts the server on a free port and stops
it. Embeddings are compared with the Python API's encode of the same inputs; search results with
`bgevl search --json`."""
import base64
import concurrent.futures
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
import torch

import bgevl
from conftest import FLOAT32_TOL, ROOT, TOY_GALLERY, TOY_MODEL, cli

MODEL, GALLERY = TOY_MODEL, TOY_GALLERY
MLLM = os.path.join(ROOT, "tests", "fixtures", "llava", "tiny-llava-next")
ARTIFACTS = os.path.join(ROOT, "build", "test-artifacts")


class Server:
    """`bgevl serve ... --port 0`; the port is read from its first stdout line."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([cli(), "serve", "--port", "0", "--quiet", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=dict(os.environ, **(env or {})))
        line = self.proc.stdout.readline()
        m = re.match(r"listening on (http://[\d.]+:\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError("server did not start: " + line + self.proc.stderr.read())
        self.url = m.group(1)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def request(self, path, body=None, headers=None, raw=None, method=None):
        """(status, parsed JSON or bytes, headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, content, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, content, hdrs = e.code, e.read(), e.headers
        if hdrs.get("Content-Type", "").startswith("application/json"):
            content = json.loads(content)
        return status, content, hdrs

    def metrics(self):
        _, text, _ = self.request("/metrics")
        out = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


@pytest.fixture(scope="module")
def server(gallery_index):
    s = Server("--index", str(gallery_index), "--max-wait-ms", "20", "--max-items", "8",
               "--max-body-bytes", str(4 << 20), "--max-image-pixels", "1000000")
    yield s
    assert s.stop() == 0


def data_uri(path):
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def gallery(*names):
    return [os.path.join(GALLERY, n) for n in names]


def png_header(width, height):
    """A PNG signature and IHDR claiming width x height (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def test_health_models_and_page(server):
    status, h, _ = server.request("/health")
    assert status == 200 and h["status"] == "ok" and h["family"] == "clip" and h["dim"] == 32
    assert h["index"]["entries"] == 300 and h["auth"] is False
    status, m, _ = server.request("/v1/models")
    assert status == 200 and m["data"][0]["id"] == "bgevl-tiny-clip"
    status, page, hdrs = server.request("/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert b"/v1/search" in page and b"<script>" in page


def test_embeddings_equal_encode(server, model):
    texts = ["a red circle on the left", "two green stars at night", "make it blue"]
    status, out, _ = server.request("/v1/embeddings", {"model": "bgevl-tiny-clip", "input": texts})
    assert status == 200, out
    assert out["object"] == "list" and out["model"] == "bgevl-tiny-clip"
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in out["data"])
    with torch.no_grad():
        want = model.encode(text=texts)
        tokens = model.processor(text=texts, padding=True)["attention_mask"].sum().item()
    got = torch.tensor([d["embedding"] for d in out["data"]])
    assert torch.allclose(got, want, atol=FLOAT32_TOL, rtol=0)
    assert out["usage"]["prompt_tokens"] == out["usage"]["total_tokens"] == tokens
    # A single string, and base64 (little-endian float32, as OpenAI's client decodes it).
    status, one, _ = server.request("/v1/embeddings", {"input": texts[0], "encoding_format": "base64"})
    assert status == 200 and len(one["data"]) == 1
    vec = np.frombuffer(base64.b64decode(one["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, want[0].numpy(), atol=FLOAT32_TOL, rtol=0)


def test_chat_form_composed_embedding_equals_encode(server, model):
    img = gallery("day/one_red_circle_left.png")[0]
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri(img)}},
        {"type": "text", "text": "make the background dark"}]}]}
    status, out, _ = server.request("/v1/embeddings", body)
    assert status == 200, out
    with torch.no_grad():
        want = model.encode(images=img, text="make the background dark")[0]
    assert len(out["data"]) == 1
    assert torch.allclose(torch.tensor(out["data"][0]["embedding"]), want, atol=FLOAT32_TOL, rtol=0)
    # An image alone, content as a string (text alone).
    status, im, _ = server.request("/v1/embeddings", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_uri(img)}}]}]})
    assert status == 200
    with torch.no_grad():
        assert torch.allclose(torch.tensor(im["data"][0]["embedding"]), model.encode(images=img)[0],
                              atol=FLOAT32_TOL, rtol=0)
    status, tx, _ = server.request("/v1/embeddings", {"messages": [{"role": "user", "content": "a red circle"}]})
    assert status == 200
    with torch.no_grad():
        assert torch.allclose(torch.tensor(tx["data"][0]["embedding"]), model.encode(text="a red circle")[0],
                              atol=FLOAT32_TOL, rtol=0)


def test_search_equals_cli_json(server, gallery_index):
    img = gallery("day/one_red_circle_left.png")[0]
    for body, args in [
        ({"image": data_uri(img), "text": "make the background dark", "k": 7},
         ["--image", img, "--text", "make the background dark", "-k", "7"]),
        ({"query_id": "day/one_red_circle_left.png", "text": "make the background dark", "k": 5},
         ["--query-id", "day/one_red_circle_left.png", "--text", "make the background dark", "-k", "5"]),
        ({"text": "two green stars on the right at night"}, ["--text", "two green stars on the right at night"]),
    ]:
        status, out, _ = server.request("/v1/search", body)
        assert status == 200, out
        res = subprocess.run([cli(), "search", "--index", str(gallery_index), *args, "--json"],
                             capture_output=True, text=True, check=True)
        want = json.loads(res.stdout)["results"]
        assert [(r["rank"], r["id"], r["path"]) for r in out["results"]] == \
               [(r["rank"], r["id"], r["path"]) for r in want]
        np.testing.assert_allclose([r["score"] for r in out["results"]], [r["score"] for r in want],
                                   atol=FLOAT32_TOL)
        assert list(out) == ["results"] and list(out["results"][0]) == ["rank", "id", "path", "score"]
    assert out["results"][0]["id"] == "night/two_green_stars_right.png"
    # The images of the index, for the page's thumbnails.
    status, content, hdrs = server.request("/v1/images/day/one_red_circle_left.png")
    assert status == 200 and hdrs["Content-Type"] == "image/png"
    assert content == open(img, "rb").read()
    status, err, _ = server.request("/v1/images/no/such.png")
    assert status == 404 and "no entry" in err["error"]["message"]


def test_with_curl(server):
    assert shutil.which("curl"), "curl is needed (Debian: curl)"
    res = subprocess.run(["curl", "-sS", "-f", server.url + "/v1/embeddings", "-H",
                          "Content-Type: application/json", "-d", '{"input": "a red circle"}'],
                         capture_output=True, text=True, check=True)
    assert len(json.loads(res.stdout)["data"][0]["embedding"]) == 32
    res = subprocess.run(["curl", "-sS", server.url + "/v1/search", "-d",
                          '{"query_id": "day/one_red_circle_left.png", "text": "make the background dark", "k": 3}'],
                         capture_output=True, text=True, check=True)
    assert json.loads(res.stdout)["results"][0]["id"] == "night/one_red_circle_left.png"
    res = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", server.url + "/health"],
                         capture_output=True, text=True, check=True)
    assert res.stdout == "200"
    res = subprocess.run(["curl", "-sS", server.url + "/metrics"], capture_output=True, text=True, check=True)
    assert "# TYPE bgevl_request_duration_seconds histogram" in res.stdout
    res = subprocess.run(["curl", "-sS", server.url + "/"], capture_output=True, text=True, check=True)
    assert "<title>bgevl search</title>" in res.stdout
    res = subprocess.run(["curl", "-sS", server.url + "/v1/models"], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout)["data"][0]["object"] == "model"
    res = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{content_type}",
                          server.url + "/v1/images/day%2Fone_red_circle_left.png"],
                         capture_output=True, text=True, check=True)
    assert res.stdout == "200 image/png"  # ids with a slash, escaped as the page does


def test_64_concurrent_clients_are_batched_and_exact(gallery_index, model):
    s = Server("--index", str(gallery_index), "--max-batch", "32", "--max-wait-ms", "50")
    try:
        files = sorted(os.path.join(GALLERY, "day", n) for n in os.listdir(os.path.join(GALLERY, "day")))[:22]
        words = ["make it red", "make the background dark", "change the circle to a square",
                 "two blue stars", "one yellow cross on the right"]
        jobs = []
        for i in range(64):
            kind = i % 3
            if kind == 0:
                jobs.append(("text", None, words[i % len(words)] + " " * (i % 4)))
            elif kind == 1:
                jobs.append(("image", files[i % len(files)], None))
            else:
                jobs.append(("composed", files[i % len(files)], words[i % len(words)]))
        before = s.metrics()
        barrier = threading.Barrier(64)

        def call(job):
            kind, img, text = job
            content = []
            if img:
                content.append({"type": "image_url", "image_url": {"url": data_uri(img)}})
            if text:
                content.append({"type": "text", "text": text})
            body = {"messages": [{"role": "user", "content": content}]} if kind != "text" else {"input": text}
            barrier.wait()
            status, out, _ = s.request("/v1/embeddings", body)
            assert status == 200, out
            return out["data"][0]["embedding"]

        with concurrent.futures.ThreadPoolExecutor(64) as ex:
            got = list(ex.map(call, jobs))
        with torch.no_grad():
            for (kind, img, text), g in zip(jobs, got):
                want = model.encode(images=img, text=text) if img and text else \
                    model.encode(images=img) if img else model.encode(text=text)
                assert torch.allclose(torch.tensor(g), want[0], atol=FLOAT32_TOL, rtol=0), (kind, img, text)
        m = s.metrics()
        batches = m["bgevl_batches_total"] - before["bgevl_batches_total"]
        items = m["bgevl_items_total"] - before["bgevl_items_total"]
        assert items == 64
        assert batches < 64 / 4, f"64 requests ran in {batches} batches: the batcher did not batch"
        assert m["bgevl_batch_requests_count"] >= batches
        assert m['bgevl_requests_total{endpoint="/v1/embeddings",code="200"}'] == 64
    finally:
        assert s.stop() == 0


def test_unbatched_server_runs_each_request_alone(gallery_index):
    s = Server("--max-batch", "1", "--model", MODEL)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            outs = list(ex.map(lambda i: s.request("/v1/embeddings", {"input": f"text {i}"})[0], range(16)))
        assert outs == [200] * 16
        m = s.metrics()
        assert m["bgevl_batches_total"] == 16 and m["bgevl_batch_size_sum"] == 16
        status, err, _ = s.request("/v1/search", {"text": "x"})
        assert status == 404 and "--index" in err["error"]["message"]
    finally:
        assert s.stop() == 0


BIG = "data:image/png;base64," + base64.b64encode(png_header(5000, 5000)).decode()
SMALL = data_uri(os.path.join(GALLERY, "day", "one_red_circle_left.png"))
BAD_INPUTS = [
    ("malformed JSON", "/v1/embeddings", b'{"input": ["a", }', 400, "not valid JSON"),
    ("not an object", "/v1/embeddings", b'["a"]', 400, "must be a JSON object"),
    ("empty body", "/v1/embeddings", b"", 400, "no body"),
    ("wrong type", "/v1/embeddings", {"input": 42}, 400, "'input' must be a string or an array"),
    ("wrong item type", "/v1/embeddings", {"input": ["a", None]}, 400, "'input'[1] must be a string"),
    ("token ids", "/v1/embeddings", {"input": [1, 2, 3]}, 400, "token id inputs"),
    ("empty list", "/v1/embeddings", {"input": []}, 400, "empty array"),
    ("unknown field", "/v1/embeddings", {"input": "a", "temperature": 0.5}, 400, "unknown field 'temperature'"),
    ("both forms", "/v1/embeddings", {"input": "a", "messages": []}, 400, "either 'input'"),
    ("bad format", "/v1/embeddings", {"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ("too many items", "/v1/embeddings", {"input": ["a"] * 9}, 400, "at most 8 per request"),
    ("text too long", "/v1/embeddings", {"input": "word " * 100}, 400, "77"),
    ("bad role", "/v1/embeddings", {"messages": [{"role": "assistant", "content": "x"}]}, 400, "'role' must be"),
    ("bad base64", "/v1/search", {"image": "data:image/png;base64,@@@@", "text": "x"}, 400, "base64 is malformed"),
    ("not base64 URI", "/v1/search", {"image": "data:image/png,abc"}, 400, "only base64 data URIs"),
    ("non-image bytes", "/v1/search", {"image": "data:image/png;base64," + base64.b64encode(b"hello world, not an image").decode()},
     400, "not an image"),
    ("truncated image", "/v1/search", {"image": "data:image/png;base64," + base64.b64encode(png_header(8, 8)).decode()},
     400, "cannot decode"),
    ("over the pixel limit", "/v1/search", {"image": BIG}, 400, "exceeds the server's limit of 1000000 pixels"),
    ("a file path", "/v1/search", {"image": "/etc/passwd"}, 400, "file paths are refused"),
    ("a remote URL", "/v1/search", {"image": "http://example.com/a.png"}, 400, "remote URLs are not fetched"),
    ("two images", "/v1/embeddings", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": SMALL}}, {"type": "image_url", "image_url": {"url": SMALL}}]}]},
     400, "one image per query"),
    ("bad k", "/v1/search", {"text": "x", "k": 0}, 400, "'k' must be"),
    ("k not a number", "/v1/search", {"text": "x", "k": "5"}, 400, "'k' must be"),
    ("empty query", "/v1/search", {"k": 3}, 400, "give 'image', 'query_id' or 'text'"),
    ("unknown id", "/v1/search", {"query_id": "nope.png"}, 404, "no entry 'nope.png'"),
    ("instruction for CLIP", "/v1/search", {"text": "x", "instruction": "cir"}, 400, "takes no instruction"),
    ("unknown route", "/v1/nothing", {"input": "a"}, 404, "no route POST /v1/nothing"),
    ("oversized body", "/v1/embeddings", {"input": "a" * (5 << 20)}, 413, "too large"),
    ("deep nesting", "/v1/embeddings", b'{"input": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400,
     "nests deeper than 32 levels"),
    ("brackets in strings are text", "/v1/embeddings", {"input": "[" * 100, "encoding_format": 1}, 400,
     "'encoding_format' must be a string"),
]


@pytest.mark.parametrize("name,path,body,status,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_4xx_and_the_server_keeps_serving(server, name, path, body, status, message):
    raw = body if isinstance(body, bytes) else None
    got, out, _ = server.request(path, None if raw is not None else body, raw=raw)
    assert got == status, out
    assert set(out) == {"error"} and out["error"]["type"] == "invalid_request_error"
    assert message in out["error"]["message"], out["error"]["message"]
    ok, h, _ = server.request("/health")
    assert ok == 200 and h["status"] == "ok"
    assert server.metrics()["bgevl_requests_in_flight"] == 1  # this /metrics request alone


def test_one_bad_image_in_a_batch_fails_only_its_request(gallery_index, model):
    """A corrupt image whose header passes the checks fails in the batch; the batch is rerun
    request by request, so the other requests of that batch still get their embeddings."""
    s = Server("--model", MODEL, "--max-batch", "16", env={"BGEVL_TEST_BATCH_DELAY_MS": "300"})
    try:
        good = gallery("day/one_red_circle_left.png")[0]
        raw = open(good, "rb").read()
        corrupt = "data:image/png;base64," + base64.b64encode(raw[: len(raw) // 2]).decode()
        bodies = [{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": u}}]}]}
                  for u in [data_uri(good), corrupt, data_uri(good)]] + [{"input": "a red circle"}]
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            res = list(ex.map(lambda b: s.request("/v1/embeddings", b), bodies))
        assert [r[0] for r in res] == [200, 400, 200, 200]
        assert "cannot decode" in res[1][1]["error"]["message"]
        with torch.no_grad():
            want = model.encode(images=good)[0]
        assert torch.allclose(torch.tensor(res[0][1]["data"][0]["embedding"]), want, atol=FLOAT32_TOL, rtol=0)
    finally:
        assert s.stop() == 0


def test_file_paths_only_inside_the_allowed_folder(gallery_index, tmp_path, model):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(os.path.join(GALLERY, "day", "one_red_circle_left.png"), allowed / "q.png")
    (allowed / "escape.png").symlink_to(os.path.join(GALLERY, "day", "one_red_square_left.png"))
    (tmp_path / "outside.png").write_bytes((allowed / "q.png").read_bytes())
    s = Server("--index", str(gallery_index), "--allow-file-paths", str(allowed))
    try:
        status, out, _ = s.request("/v1/search", {"image": "q.png", "text": "make the background dark", "k": 1})
        assert status == 200 and out["results"][0]["id"] == "night/one_red_circle_left.png"
        status, out, _ = s.request("/v1/search", {"image": str(allowed / "q.png"), "k": 1})
        assert status == 200
        status, out, _ = s.request("/v1/search", {"image": "file://" + str(allowed / "q.png"), "k": 1})
        assert status == 200
        for bad in ["../outside.png", str(tmp_path / "outside.png"), "escape.png", "/etc/passwd"]:
            status, out, _ = s.request("/v1/search", {"image": bad})
            assert status in (400, 403), (bad, out)
            assert "outside the allowed folder" in out["error"]["message"] or "no such file" in out["error"]["message"]
        status, out, _ = s.request("/v1/search", {"image": "../outside.png"})
        assert status == 403
        status, out, _ = s.request("/v1/search", {"image": "missing.png"})
        assert status == 400 and "no such file" in out["error"]["message"]
    finally:
        assert s.stop() == 0


def test_api_key(gallery_index):
    s = Server("--index", str(gallery_index), "--api-key", "s3cret")
    try:
        status, out, hdrs = s.request("/v1/embeddings", {"input": "a"})
        assert status == 401 and out["error"]["code"] == "invalid_api_key"
        assert hdrs["WWW-Authenticate"] == "Bearer"
        status, _, _ = s.request("/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, _ = s.request("/metrics")
        assert status == 401
        status, out, _ = s.request("/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and len(out["data"]) == 1
        status, h, _ = s.request("/health")  # open, for load balancers and the page
        assert status == 200 and h["auth"] is True
    finally:
        assert s.stop() == 0


def test_binds_to_loopback_by_default_and_refuses_a_port_in_use():
    s = Server("--model", MODEL)
    try:
        assert s.url.startswith("http://127.0.0.1:")
        port = s.url.rsplit(":", 1)[1]
        res = subprocess.run([cli(), "serve", "--model", MODEL, "--port", port], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 1 and "cannot listen on 127.0.0.1:" + port in res.stderr
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_requests_in_flight(sig):
    # A slow model (1 s per batch) keeps the requests in flight when the signal arrives.
    s = Server("--model", MODEL, "--max-batch", "4", env={"BGEVL_TEST_BATCH_DELAY_MS": "1000"})
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            futures = [ex.submit(s.request, "/v1/embeddings", {"input": f"a text {i}"}) for i in range(8)]
            deadline = time.time() + 10
            while s.metrics()["bgevl_requests_in_flight"] < 9 and time.time() < deadline:
                time.sleep(0.02)
            assert s.metrics()["bgevl_requests_in_flight"] == 9  # the 8 and this /metrics request
            s.proc.send_signal(sig)
            results = [f.result(timeout=30) for f in futures]
        assert [r[0] for r in results] == [200] * 8
        assert all(len(r[1]["data"]) == 1 for r in results)
        assert s.proc.wait(30) == 0
        assert "stopping" in s.proc.stderr.read()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(s.url + "/health", timeout=5)
    finally:
        s.stop()


def test_mllm_server_q_or_c_and_instruction(tmp_path):
    img = gallery("day/one_red_circle_left.png")[0]
    s = Server("--model", MLLM, "--max-wait-ms", "1")
    model = bgevl.load(MLLM)
    try:
        body = {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri(img)}},
            {"type": "text", "text": "make it dark"}]}], "instruction": "cir"}
        status, out, _ = s.request("/v1/embeddings", body)
        assert status == 200, out
        status, cand, _ = s.request("/v1/embeddings", {"input": ["a red thing", "a blue thing"], "q_or_c": "c"})
        assert status == 200, cand
        status, default, _ = s.request("/v1/embeddings", {"input": ["a red thing", "a blue thing"]})
        assert default["data"] == cand["data"]
        with torch.no_grad():
            q = model.encode(images=img, text="make it dark", q_or_c="q",
                             task_instruction=bgevl.COMPOSED_RETRIEVAL_INSTRUCTION)[0]
            c = model.encode(text=["a red thing", "a blue thing"], q_or_c="c")
        assert torch.allclose(torch.tensor(out["data"][0]["embedding"]), q, atol=FLOAT32_TOL, rtol=0)
        assert torch.allclose(torch.tensor([d["embedding"] for d in cand["data"]]), c, atol=FLOAT32_TOL, rtol=0)
        assert cand["usage"]["prompt_tokens"] > 0
        status, err, _ = s.request("/v1/embeddings", {"input": "x", "q_or_c": "maybe"})
        assert status == 400 and "maybe" in err["error"]["message"], err
        status, err, _ = s.request("/v1/embeddings", {"input": "x", "q_or_c": "c", "instruction": "cir"})
        assert status == 400 and "instruction" in err["error"]["message"]
    finally:
        assert s.stop() == 0


def test_bad_arguments(gallery_index, tmp_path):
    for args, message in [(["--model", MODEL, "--port", "70000"], "--port needs a whole number"),
                          (["--model", MODEL, "--max-batch", "0"], "--max-batch needs"),
                          (["--model", MODEL, "--allow-file-paths", str(tmp_path / "nope")], "not a folder"),
                          (["--index", str(tmp_path / "none")], "no such index folder"),
                          (["--index", str(gallery_index), "--model", MLLM], "built with a clip model"),
                          (["--bogus"], "unknown argument")]:
        res = subprocess.run([cli(), "serve", *args], capture_output=True, text=True, timeout=60)
        assert res.returncode in (1, 2) and message in res.stderr, (args, res.stderr)


def test_search_page_in_chromium(server):
    """The page driven in headless Chromium: pick an image, type a text, the grid shows the
    expected top hit; the screenshot is kept in build/test-artifacts/."""
    node_modules = os.path.join(ROOT, "tests", "browser", "node_modules", "playwright-core")
    missing = [w for w, ok in [("chromium", os.path.exists("/usr/bin/chromium")), ("node", shutil.which("node")),
                               ("playwright-core (npm ci in tests/browser)", os.path.isdir(node_modules))] if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail("the browser test needs " + ", ".join(missing) + " (scripts/test.sh installs them)")
        pytest.skip("needs " + ", ".join(missing))
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "search_page.png")
    if os.path.exists(shot):
        os.remove(shot)
    res = subprocess.run(["node", os.path.join(ROOT, "tests", "browser", "search_page.mjs"), server.url + "/",
                          gallery("day/one_red_circle_left.png")[0], "make the background dark",
                          "night/one_red_circle_left.png", shot], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["hits"][0] == "night/one_red_circle_left.png" and len(out["hits"]) == 10
    assert os.path.getsize(shot) > 10000
