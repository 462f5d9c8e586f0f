#!/usr/bin/env python3
"""GPU check for BGE-VL-CLIP (run by scripts/gpu_check.sh on a CUDA machine).

1. Parity: both tiny fixture checkpoints, every case of tests/fixtures/clip/cases.json, on CPU
   and CUDA (float32), against the transformers 4.45.2 expected embeddings; CUDA vs CPU; and
   CUDA float16/bfloat16 against CPU float32 (cosine).
2. Throughput at the full BGE-VL-base geometry (random weights): bgevl on CUDA (fp32, fp16)
   against the installed transformers' CLIPModel + CLIPProcessor on the same GPU, images from
   files (PIL decodes for both: this build has no OpenCV) and texts.
Prints Markdown.
"""
import json
import os
import sys
import tempfile
import time

import torch
from PIL import Image

import bgevl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import safetensors_io  # noqa: E402

FIX = os.path.join(ROOT, "tests", "fixtures")


def images_arg(v):
    if v is None:
        return None
    if isinstance(v, str):
        return Image.open(os.path.join(FIX, "images", v))
    return [Image.open(os.path.join(FIX, "images", x)) for x in v]


def parity():
    cases = json.load(open(os.path.join(FIX, "clip", "cases.json")))["cases"]
    print("## Parity (tiny fixture checkpoints, every case)\n")
    print("| checkpoint | device / dtype | max abs diff vs transformers 4.45.2 | vs bgevl CPU fp32 |")
    print("| --- | --- | ---: | ---: |")
    worst = 0.0
    for ckpt in ("tiny-fp16-quickgelu", "tiny-bf16-gelu"):
        d = os.path.join(FIX, "clip", ckpt)
        ref = safetensors_io.load_torch(os.path.join(FIX, "clip", ckpt + ".expected.safetensors"))
        outs = {}
        for dev, dt in (("cpu", torch.float32), ("cuda", torch.float32), ("cuda", torch.float16),
                        ("cuda", torch.bfloat16)):
            m = bgevl.AutoModel.from_pretrained(d, device=dev, dtype=dt)
            outs[(dev, dt)] = {c["name"]: m.encode(images=images_arg(c["images"]), text=c["text"]).cpu()
                               for c in cases}
        base = outs[("cpu", torch.float32)]
        for key, o in outs.items():
            vs_ref = max((o[n] - ref[n + "/embeddings"]).abs().max().item() for n in o)
            if key[1] == torch.float32:
                vs_cpu = f"{max((o[n] - base[n]).abs().max().item() for n in o):.2e}"
                worst = max(worst, vs_ref)
            else:
                cos = min(torch.nn.functional.cosine_similarity(o[n], base[n]).min().item() for n in o)
                vs_cpu = f"min cosine {cos:.5f}"
            print(f"| {ckpt} | {key[0]} {str(key[1])[6:]} | {vs_ref:.2e} | {vs_cpu} |")
    print(f"\nfloat32 worst max|diff| vs reference: {worst:.2e} ({'PASS' if worst <= 1e-5 else 'FAIL'} at 1e-5)\n")


def throughput():
    import bench_clip

    tmp = tempfile.mkdtemp()
    ckpt = os.path.join(tmp, "base")
    bench_clip.make_checkpoint(ckpt)
    files = bench_clip.image_files(os.path.join(tmp, "images"))
    n_img, n_txt, batch = 512, 2048, 64
    paths = (files * (n_img // len(files) + 1))[:n_img]
    texts = (bench_clip.CAPTIONS * (n_txt // len(bench_clip.CAPTIONS) + 1))[:n_txt]
    print("## Throughput, BGE-VL-base geometry (random weights), "
          f"{torch.cuda.get_device_name()}, batch {batch}, {n_img} image files, {n_txt} texts\n")
    print("| implementation | dtype | load (s) | images/s | texts/s |")
    print("| --- | --- | ---: | ---: | ---: |")

    def timeit(fn, items):
        fn(items[:batch])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, len(items), batch):
            fn(items[i:i + batch])
        torch.cuda.synchronize()
        return len(items) / (time.perf_counter() - t0)

    for dt in (torch.float32, torch.float16):
        t0 = time.perf_counter()
        m = bgevl.AutoModel.from_pretrained(ckpt, device="cuda", dtype=dt)
        load = time.perf_counter() - t0
        ips = timeit(lambda b: m.encode(images=[Image.open(p) for p in b]), paths)
        tps = timeit(lambda b: m.encode(text=b), texts)
        print(f"| bgevl | {str(dt)[6:]} | {load:.2f} | {ips:.1f} | {tps:.1f} |")
        del m
    try:
        import transformers
        from transformers import CLIPModel, CLIPProcessor

        def feats(x):
            return x if torch.is_tensor(x) else x.pooler_output

        for dt in (torch.float32, torch.float16):
            t0 = time.perf_counter()
            model = CLIPModel.from_pretrained(ckpt, torch_dtype=dt).cuda().eval()
            proc = CLIPProcessor.from_pretrained(ckpt)
            load = time.perf_counter() - t0

            def enc_img(b):
                with torch.no_grad():
                    px = proc(images=[Image.open(p).convert("RGB") for p in b], return_tensors="pt")
                    f = feats(model.get_image_features(pixel_values=px["pixel_values"].cuda().to(dt)))
                    return torch.nn.functional.normalize(f, dim=-1)

            def enc_txt(b):
                with torch.no_grad():
                    t = proc(text=b, return_tensors="pt", padding=True).to("cuda")
                    f = feats(model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]))
                    return torch.nn.functional.normalize(f, dim=-1)

            ips, tps = timeit(enc_img, paths), timeit(enc_txt, texts)
            print(f"| transformers {transformers.__version__} | {str(dt)[6:]} | {load:.2f} | {ips:.1f} | {tps:.1f} |")
            del model
    except Exception as e:  # noqa: BLE001 - report, keep the bgevl numbers
        print(f"\n(transformers side failed: {type(e).__name__}: {e})")


if __name__ == "__main__":
    assert torch.cuda.is_available(), "no CUDA device"
    parity()
    throughput()
