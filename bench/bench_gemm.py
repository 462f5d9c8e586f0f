#!/usr/bin/env python3
"""Where the CPU time of BGE-VL-CLIP goes: the float32 GEMM rate of this machine's libtorch.

The towers are matrix products almost entirely, so the images/s any exact float32 implementation
can reach on a CPU is bounded by (GEMM FLOP/s) / (FLOPs per image). This measures, with the same
libtorch and thread count as the benchmarks:
  * torch.nn.functional.linear (libtorch -> BLAS: Debian's OpenBLAS-OpenMP) on the ViT-B/16 MLP
    shape (197 tokens x 16 images = 3152 rows, 768 -> 3072) and the QKV shape (768 -> 2304);
  * the same products through oneDNN (MKL-DNN, bundled in libtorch): torch._C._nn.mkldnn_linear
    with the weight converted once, with and without the per-call conversions of the input;
and prints the roofline of BGE-VL-base image encoding at the best of them (FLOPs per image
counted as bgevl computes them: 11 full layers and the last layer's K/V for every position and
Q/O/MLP for the class token only, plus the patch embedding).

    .venv/bin/python bench/bench_gemm.py [--threads 2] [--rounds 5]
"""
import argparse
import platform
import time

import torch


def rate(fn, flops, rounds):
    fn()
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def vit_b_image_flops(tokens=197, hidden=768, inter=3072, layers=12, patch_dim=768):
    full = 2 * tokens * (4 * hidden * hidden + 2 * hidden * inter) + 4 * tokens * tokens * hidden
    last = 2 * tokens * 2 * hidden * hidden + 2 * (2 * hidden * hidden + 2 * hidden * inter) \
        + 4 * tokens * hidden
    return (layers - 1) * full + last + 2 * (tokens - 1) * patch_dim * hidden


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cpu = platform.processor() or "cpu"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, torch {torch.__version__}, {a.threads} threads, float32; best of {a.rounds}")
    print("| product | BLAS (GFLOP/s) | oneDNN, weight packed once (GFLOP/s) | oneDNN + input conversions (GFLOP/s) |")
    print("| --- | ---: | ---: | ---: |")
    best = 0.0
    for name, (m, k, n) in {"MLP fc1 3152x768 -> 3072": (3152, 768, 3072),
                            "QKV 3152x768 -> 2304": (3152, 768, 2304),
                            "MLP fc2 3152x3072 -> 768": (3152, 3072, 768)}.items():
        torch.manual_seed(0)
        x, w, b = torch.randn(m, k), torch.randn(n, k) * 0.02, torch.randn(n)
        fl = 2 * m * k * n
        blas = rate(lambda: torch.nn.functional.linear(x, w, b), fl, a.rounds)
        wm, xm = w.to_mkldnn(), x.to_mkldnn()
        dnn = rate(lambda: torch._C._nn.mkldnn_linear(xm, wm, b), fl, a.rounds)
        dnn_conv = rate(lambda: torch._C._nn.mkldnn_linear(x.to_mkldnn(), wm, b).to_dense(), fl, a.rounds)
        best = max(best, blas, dnn)
        print(f"| {name} | {blas:.0f} | {dnn:.0f} | {dnn_conv:.0f} |")
    f = vit_b_image_flops()
    print(f"\nBGE-VL-base image tower: {f / 1e9:.2f} GFLOP per image as bgevl computes it; at the best "
          f"rate above ({best:.0f} GFLOP/s) at most {best * 1e9 / f:.2f} images/s for the model alone.")


if __name__ == "__main__":
    main()
