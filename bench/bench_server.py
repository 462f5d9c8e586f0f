#!/usr/bin/env python3
"""Load benchmark of `bgevl serve` (not a test): requests/s and p50/p99 latency of text, image
and composed /v1/embeddings requests at 1, 8 and 64 concurrent clients, with dynamic batching
(the default) and without (--max-batch 1), on one machine over loopback.

Each client is a thread with its own keep-alive connection (http.client), spread over
min(clients, cores) processes; it sends one request, waits for the answer, sends the next, until
--seconds have passed and it has made --min-requests (requests/s: the requests answered over
the time until the last answer). The
clients run on the same machine as the server and take CPU from it: on a 2-core machine that
lowers every figure, the batched more than the unbatched (the batcher needs the cores it shares
with the clients). The mean batch size comes from the server's /metrics.

    /usr/bin/python3 bench/bench_server.py                      # the bundled tiny model
    /usr/bin/python3 bench/bench_server.py --model base         # BGE-VL-base geometry, random weights
    /usr/bin/python3 bench/bench_server.py --bgevl build/bgevl --seconds 5 --json out.json

Images are 640x480 JPEGs (bench_clip.image_files); composed requests are image + text (vLLM's
chat form); texts are bench_clip.CAPTIONS.
"""
import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_clip  # noqa: E402


def bodies(kind, images):
    """A cycle of request bodies of one kind."""
    texts = bench_clip.CAPTIONS
    uris = ["data:image/jpeg;base64," + base64.b64encode(open(p, "rb").read()).decode() for p in images]
    out = []
    for i in range(8):
        if kind == "text":
            b = {"input": texts[i % len(texts)]}
        else:
            content = [{"type": "image_url", "image_url": {"url": uris[i % len(uris)]}}]
            if kind == "composed":
                content.append({"type": "text", "text": texts[i % len(texts)]})
            b = {"messages": [{"role": "user", "content": content}]}
        out.append(json.dumps(b).encode())
    return out


def client_process(args):
    host, port, threads, seconds, payloads, start_at, min_requests = args
    lat, errors, last = [], [0], [start_at]
    lock = threading.Lock()

    def run(t):
        conn = http.client.HTTPConnection(host, port, timeout=120)
        mine, i = [], t
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end or len(mine) < min_requests:
            body = payloads[i % len(payloads)]
            i += 1
            t0 = time.perf_counter()
            conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                with lock:
                    errors[0] += 1
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            lat.extend(mine)
            last[0] = max(last[0], time.time())

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors[0], last[0] - start_at


def metrics(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def start_server(bgevl, model, extra):
    proc = subprocess.Popen([bgevl, "serve", "--model", model, "--port", "0", "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on http://([\d.]+):(\d+)", line)
    if not m:
        raise SystemExit("server did not start: " + line + proc.stderr.read())
    return proc, m.group(1), int(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bgevl", default=os.path.join(ROOT, ".venv", "bin", "bgevl"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "bgevl-tiny-clip"),
                    help="checkpoint folder, or 'base' (BGE-VL-base geometry, random weights)")
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--kinds", default="text,image,composed")
    ap.add_argument("--modes", default="batched,unbatched")
    ap.add_argument("--seconds", type=float, default=4.0, help="per cell (at least)")
    ap.add_argument("--min-requests", type=int, default=3,
                    help="each client goes on until it has made this many requests")
    ap.add_argument("--max-batch", type=int, default=0, help="batched mode's --max-batch (0: model default)")
    ap.add_argument("--max-wait-ms", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_server_")
    model = a.model
    if model == "base":
        model = os.path.join(tmp, "base")
        bench_clip.make_checkpoint(model)
    images = bench_clip.image_files(os.path.join(tmp, "images"))
    clients = [int(c) for c in a.clients.split(",")]
    rows = []
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; model {a.model}; device {a.device} {a.dtype}; "
          f"{a.seconds:g} s and {a.min_requests} requests per client per cell", flush=True)
    print("| batching | request | clients | requests/s | p50 ms | p99 ms | mean batch (items) | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for mode in a.modes.split(","):
        extra = ["--device", a.device, "--dtype", a.dtype, "--max-wait-ms", str(a.max_wait_ms)]
        if mode == "unbatched":
            extra += ["--max-batch", "1"]
        elif a.max_batch:
            extra += ["--max-batch", str(a.max_batch)]
        proc, host, port = start_server(a.bgevl, model, extra)
        try:
            for kind in a.kinds.split(","):
                payloads = bodies(kind, images)
                for c in clients:
                    procs = min(c, os.cpu_count() or 1)
                    per = [c // procs + (1 if i < c % procs else 0) for i in range(procs)]
                    # warm-up: one request per client
                    client_process((host, port, c, 0.0, payloads, time.time(), 1))
                    before = metrics(host, port)
                    start_at = time.time() + 0.5
                    with mp.get_context("fork").Pool(procs) as pool:
                        res = pool.map(client_process, [(host, port, n, a.seconds, payloads, start_at, a.min_requests) for n in per])
                    after = metrics(host, port)
                    lat = [x for r in res for x in r[0]]
                    errors = sum(r[1] for r in res)
                    # the last requests end after the cell's time: rate over the whole span
                    span = max(r[2] for r in res)
                    batches = after["bgevl_batches_total"] - before["bgevl_batches_total"]
                    items = after["bgevl_items_total"] - before["bgevl_items_total"]
                    row = dict(batching=mode, request=kind, clients=c, rps=len(lat) / span,
                               p50_ms=1000 * percentile(lat, 0.5), p99_ms=1000 * percentile(lat, 0.99),
                               mean_batch=items / batches if batches else 0.0, errors=errors,
                               requests=len(lat))
                    rows.append(row)
                    print(f"| {mode} | {kind} | {c} | {row['rps']:.0f} | {row['p50_ms']:.1f} | "
                          f"{row['p99_ms']:.1f} | {row['mean_batch']:.1f} | {errors} |", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(machine=platform.node(), cores=os.cpu_count(), model=a.model, device=a.device,
                           dtype=a.dtype, seconds=a.seconds, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
