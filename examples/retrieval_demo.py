#!/usr/bin/env python3
"""The main job, end to end, through the bgevl command line: index a gallery, run composed
queries (an image + a modification text) against it, and evaluate held-out queries.

    .venv/bin/python examples/retrieval_demo.py                     # bundled toy model + gallery
    .venv/bin/python examples/retrieval_demo.py --model BAAI/BGE-VL-base \\
        --gallery photos/ --queries my_queries.jsonl                # real weights, your images

Each command it runs is printed first, so it can be pasted. The queries files hold one JSON
object per line: {"image": path, "text": ..., "targets": [gallery ids]} (see README).
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bgevl_cli():
    cand = os.path.join(sys.prefix, "bin", "bgevl")
    return cand if os.path.exists(cand) else os.path.join(ROOT, "build", "bgevl")


def run(args, capture=False):
    print("$ bgevl " + " ".join(shlex.quote(a) for a in args), flush=True)
    res = subprocess.run([bgevl_cli(), *args], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE if capture else None)
    if res.returncode != 0:
        sys.exit(res.returncode)
    return res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/bgevl-tiny-clip")
    ap.add_argument("--gallery", default="models/gallery")
    ap.add_argument("--demo-queries", default="models/queries/demo.jsonl",
                    help="queries whose top hits are printed")
    ap.add_argument("--queries", default="models/queries/heldout.jsonl", help="queries to evaluate")
    ap.add_argument("--index", default="build/demo.index")
    ap.add_argument("-k", type=int, default=3)
    args = ap.parse_args()

    index = os.path.join(ROOT, args.index)
    if os.path.exists(os.path.join(index, "manifest.json")):
        import shutil
        shutil.rmtree(index)  # a fresh index each run
    run(["index", "--model", args.model, "--images", args.gallery, "--out", args.index])
    with open(os.path.join(ROOT, args.demo_queries)) as f:
        demo = [json.loads(line) for line in f if line.strip()]
    for q in demo:
        cmd = ["search", "--index", args.index, "-k", str(args.k), "--json"]
        if q.get("image"):
            cmd += ["--image", q["image"]]
        if q.get("text"):
            cmd += ["--text", q["text"]]
        print()
        hits = json.loads(run(cmd, capture=True))["results"]
        print(f"  query: {q.get('image') or '-'} + {q.get('text')!r}")
        for h in hits:
            mark = "  <- target" if h["id"] in q.get("targets", []) else ""
            print(f"  {h['rank']}. {h['score']:.4f}  {h['id']}{mark}")
    print()
    run(["evaluate", "--index", args.index, "--queries", args.queries, "-k", "1,5,10"])


if __name__ == "__main__":
    main()
