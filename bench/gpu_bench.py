#!/usr/bin/env python3
"""The prepared GPU benchmark: bgevl against transformers on one GPU, in one call (about 8 minutes
on an H200), every number measured and printed here, nothing assumed.

Sections (--sections, default all, in this order). Each runs in its own process, so that a CUDA
error (which poisons a process's CUDA context) or a crash in one loses none of the others; each
catches its own exceptions, writes them into the results and the run goes on. When a section ends
its Markdown is appended to OUT/gpu_bench.md and OUT/gpu_bench.json is rewritten with every number.

  env         GPU, driver, torch, CUDA, cuDNN, transformers, bgevl, host cores
  parity      float32 bgevl on the tiny fixture checkpoints (tests/fixtures/clip/*, llava/*, every
              case, image files decoded by bgevl) against the transformers 4.45.2 expected
              embeddings, and device vs CPU; the default dtype (dtype=None: bfloat16 on CUDA);
              bfloat16 vs float32 cosine on the full-size random BGE-VL-base checkpoint
  clip-base   BGE-VL-base geometry (ViT-B/16 224, text 512x12), random fp16 weights:
  clip-large  BGE-VL-large geometry (ViT-L/14 224, text 768x12), random fp16 weights:
              model-only images/s (get_image_features on pre-made pixel tensors), end-to-end
              images/s from a folder of photo-sized JPEG files (bgevl encode vs transformers' best
              usage: bf16, sdpa, DataLoader workers, pinned memory; vs the model card's seed usage:
              float32, processor on the whole list), texts/s
  mllm        BGE-VL-MLLM at full geometry (Mistral-7B + ViT-L/14-336, random bf16 weights):
              composed queries/s at batch 1 and 8, bgevl vs transformers LlavaNext, MFU

Each section has a seconds budget (scaled so the whole run fits --budget); every measurement
runs for a fixed time or a fixed count, whichever comes first, after a warm-up, with the device
synchronised after each step.

  python3 bench/gpu_bench.py --out OUT                            # the GPU machine (gpu_check.sh bench)
  .venv/bin/python bench/gpu_bench.py --quick --device cpu --out /tmp/gb   # CPU test, tiny sizes

--quick: tiny geometry, a handful of images and texts, a few seconds per section (tests every code
path that does not need CUDA). The transformers side is skipped, with a note, where transformers
cannot be imported. The full-size MLLM needs the Mistral tokenizer.model: $BGEVL_TOKENIZER_MODEL,
.devdeps/tokenizer.model or ../shared/data/tokenizers/mistral/tokenizer.model. The real CLIP
vocabulary (for realistic text lengths) comes from $BGEVL_CLIP_VOCAB_DIR, ../shared/data/tokenizers/clip
or .devdeps/clip (vocab.json + merges.txt); without it, the project's small BPE vocabulary.
"""
import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
for _p in (os.path.join(ROOT, "bench"), os.path.join(ROOT, "tests", "reference"), os.path.join(ROOT, "models")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

SECTIONS = ["env", "parity", "clip-base", "clip-large", "mllm"]
NOMINAL_S = {"env": 10, "parity": 60, "clip-base": 100, "clip-large": 120, "mllm": 160}  # 450 s
QUICK_S = {"env": 5, "parity": 30, "clip-base": 20, "clip-large": 20, "mllm": 30}

# dense bfloat16 tensor-core peaks (no sparsity), FLOP/s; first matching name wins
PEAK_BF16 = [("H200", 989.4e12), ("H100 PCIe", 756.5e12), ("H100", 989.4e12), ("A100", 312e12)]

CLIP_GEOMETRY = {
    "clip-base": dict(name="BGE-VL-base", text=dict(hidden=512, inter=2048, layers=12, heads=8),
                      vision=dict(hidden=768, inter=3072, layers=12, heads=12, image=224, patch=16), proj=512),
    "clip-large": dict(name="BGE-VL-large", text=dict(hidden=768, inter=3072, layers=12, heads=12),
                       vision=dict(hidden=1024, inter=4096, layers=24, heads=16, image=224, patch=14), proj=768),
}
CLIP_QUICK = {
    "clip-base": dict(name="BGE-VL-base (quick: tiny)", text=dict(hidden=64, inter=128, layers=2, heads=4),
                      vision=dict(hidden=64, inter=128, layers=2, heads=4, image=224, patch=32), proj=32),
    "clip-large": dict(name="BGE-VL-large (quick: tiny)", text=dict(hidden=64, inter=128, layers=2, heads=4),
                       vision=dict(hidden=96, inter=192, layers=2, heads=4, image=224, patch=16), proj=48),
}
MLLM_QUICK = dict(text_layers=2, vision_layers=3, shards=2, hidden=64, inter=128, heads=4, kv_heads=2,
                  v_hidden=64, v_inter=128)
MLLM_TEXT = "Make the background dark, as if the camera has taken the photo at night"
JPEG_SIZES = [(640, 480)] * 5 + [(800, 600)] * 3 + [(1280, 960)] * 2

WORDS = ("a the small large red blue green grey old young tall wooden white black shiny cat dog cup "
         "coffee table window street market rocket astronaut beach sunset night photo of with on in "
         "next to under over behind running sitting sleeping standing holding two three many people "
         "car bicycle tree mountain river city lights sky clouds snow rain morning evening garden "
         "house kitchen plate bowl fruit flowers shirt hat change make remove add brighter darker "
         "background foreground same but instead colour color logo text sign boat harbour bridge").split()


# ------------------------------------------------------------------------------------------------
# small helpers
def now():
    return time.perf_counter()


def log(section, *a):
    print(f"[{section} {time.strftime('%H:%M:%S')}]", *a, flush=True)


def short_err(e, n=300):
    s = " ".join(f"{type(e).__name__}: {e}".split()).replace("`", "'")
    return s if len(s) <= n else s[:n] + " ..."


def fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def ratio(a, b):
    return None if not a or not b else a / b


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


class Budget:
    """Seconds left until `end`, shared out among the named steps by weight as they start."""

    def __init__(self, seconds, weights):
        self.end = now() + seconds
        self.w = dict(weights)

    def left(self):
        return max(0.0, self.end - now())

    def take(self, key):
        total = sum(self.w.values())
        w = self.w.pop(key, 0)
        return self.left() * w / total if total else 0.0


def timed(step, seconds, max_iters, sync, min_iters=1):
    """Runs step(i) (returns the items it did) until `seconds` or `max_iters`, whichever first;
    syncs the device after each step. The caller warms up first."""
    n = it = 0
    t0 = now()
    while it < max_iters:
        n += step(it)
        it += 1
        sync()
        if now() - t0 >= seconds and it >= min_iters:
            break
    el = now() - t0
    return {"items": n, "seconds": round(el, 4), "iters": it, "per_s": n / el if el > 0 else None,
            "budget_s": round(seconds, 2), "max_iters": max_iters}


def cos_stats(a, b):
    import torch

    c = torch.nn.functional.cosine_similarity(a.float().cpu(), b.float().cpu(), dim=-1)
    return {"mean": c.mean().item(), "min": c.min().item(), "n": c.numel()}


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def peak_for(name):
    for key, v in PEAK_BF16:
        if key.lower() in (name or "").lower():
            return v, key
    return None, None


def free_memory():
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def clip_vocab_dir():
    for d in (os.environ.get("BGEVL_CLIP_VOCAB_DIR"), os.path.join(ROOT, "..", "shared", "data", "tokenizers", "clip"),
              os.path.join(ROOT, ".devdeps", "clip")):
        if d and all(os.path.isfile(os.path.join(d, f)) for f in ("vocab.json", "merges.txt")):
            return os.path.abspath(d)
    return None


def mistral_tokenizer_model():
    for p in (os.environ.get("BGEVL_TOKENIZER_MODEL"), os.path.join(ROOT, ".devdeps", "tokenizer.model"),
              os.path.join(ROOT, "..", "shared", "data", "tokenizers", "mistral", "tokenizer.model")):
        if p and os.path.isfile(p):
            return os.path.abspath(p)
    return None


def import_transformers():
    """(transformers module, None) or (None, why not)."""
    try:
        import transformers
        return transformers, None
    except Exception as e:  # noqa: BLE001
        return None, short_err(e)


def tf_major(tf):
    try:
        return int(tf.__version__.split(".")[0])
    except ValueError:
        return 0


def tf_load(tf, cls, path, dtype, device, attn=None, try_device_map=False):
    """from_pretrained with the dtype keyword of this transformers version (5.x: dtype=, 4.x:
    torch_dtype=; 4.x would silently ignore dtype=), attn_implementation when accepted (else the
    default, noted), the model on `device` in `dtype`. Returns (model, info)."""
    kw = {("dtype" if tf_major(tf) >= 5 else "torch_dtype"): dtype, "output_loading_info": True}
    notes = []
    extra = {}
    if attn:
        extra["attn_implementation"] = attn
    if try_device_map and device != "cpu":
        extra["device_map"] = device
    t0 = now()
    while True:
        try:
            model, info = cls.from_pretrained(path, **kw, **extra)
            break
        except Exception as e:  # noqa: BLE001 - drop the option the error names, else give up
            msg = str(e).lower()
            notes.append(f"from_pretrained({', '.join(f'{k}={v!r}' for k, v in extra.items()) or 'defaults'}) "
                         f"failed: {short_err(e, 200)}")
            if "device_map" in extra and ("accelerate" in msg or "device_map" in msg or "device map" in msg):
                extra.pop("device_map")
            elif "attn_implementation" in extra and ("sdpa" in msg or "attn" in msg or "attention" in msg):
                extra.pop("attn_implementation")
            elif "device_map" in extra:
                extra.pop("device_map")
            else:
                raise
    model = model.to(device).eval()
    if model.dtype != dtype:
        notes.append(f"loaded as {model.dtype}, converted to {dtype}")
        model = model.to(dtype)
    return model, {"load_s": now() - t0, "class": type(model).__name__, "dtype": dtype_name(model.dtype),
                   "attn": getattr(model.config, "_attn_implementation", None),
                   "missing_keys": len(info.get("missing_keys", [])),
                   "missing_examples": list(info.get("missing_keys", []))[:4],
                   "unexpected_keys": len(info.get("unexpected_keys", [])), "notes": notes}


def feats(x):
    """get_*_features returns a tensor in transformers 4.x, an output with pooler_output in 5.x."""
    import torch

    if torch.is_tensor(x):
        return x
    return x.pooler_output if getattr(x, "pooler_output", None) is not None else x[0]


# ------------------------------------------------------------------------------------------------
# shared resources in the work folder, made once by the first section that needs them
def resource(work, name, maker, section):
    path = os.path.join(work, name)
    done = path + ".done.json"
    if os.path.exists(done):
        with open(done) as f:
            info = json.load(f)
        info["reused"] = True
        return path, info
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
    log(section, f"making {name} ...")
    t0 = now()
    info = maker(path) or {}
    info["make_s"] = round(now() - t0, 2)
    with open(done, "w") as f:
        json.dump(info, f)
    log(section, f"made {name} in {info['make_s']:.1f} s")
    info["reused"] = False
    return path, info


def clip_init(name, shape, gen, device):
    """The statistics of tiny_clip.random_init (bench_clip.py's checkpoints), drawn by torch."""
    import torch

    if name == "logit_scale":
        return torch.tensor(math.log(1 / 0.07))
    z = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    if "norm" in name:
        return 1.0 + 0.1 * z if leaf == "weight" else 0.05 * z
    if leaf == "bias":
        return 0.02 * z
    if "embedding" in name:
        if "patch" in name:
            return z / math.sqrt(shape[1] * shape[2] * shape[3])
        return 0.2 * z
    return z / math.sqrt(shape[1])


def make_clip_checkpoint(folder, geo, device):
    """bench_clip.py's checkpoint (tiny_clip.write_checkpoint: BGE-VL-CLIP layout, fp16
    safetensors, vocabulary 49408, the real CLIP vocabulary when found) at geometry `geo`, the
    random tensors drawn by torch on `device` (seconds instead of a minute for ViT-L)."""
    import torch
    import tiny_clip
    import tiny_clip_vocab

    vocab, merges = tiny_clip_vocab.build_vocab(420, special_ids={tiny_clip_vocab.SOT: 49406,
                                                                  tiny_clip_vocab.EOT: 49407})
    shapes = tiny_clip.param_shapes(max(vocab.values()) + 1, geo["text"], geo["vision"], geo["proj"])
    gen = torch.Generator(device=device)
    gen.manual_seed(11)
    tensors = {n: clip_init(n, s, gen, device).to(torch.float16).cpu() for n, s in sorted(shapes.items())}
    tiny_clip.write_checkpoint(folder, vocab, merges, geo["text"], geo["vision"], geo["proj"],
                               name=f"{geo['name']} geometry (random weights)", tensors=tensors)
    vd = clip_vocab_dir()
    if vd:
        for f in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(vd, f), os.path.join(folder, f))
    n_params = sum(math.prod(s) for s in shapes.values())
    return {"vocab": vd or "the project's small BPE vocabulary (real CLIP vocab not found: unrealistic token counts)",
            "n_params": n_params, "bytes": os.path.getsize(os.path.join(folder, "model.safetensors"))}


def _jpeg_job(job):
    """One photo-like JPEG: smooth random colour fields at three scales, a few shapes, a slight
    blur, then luminance and colour noise; PIL quality 90 (about 0.3 bytes per pixel, as photos)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    i, folder = job
    w, h = JPEG_SIZES[i % len(JPEG_SIZES)]
    if i % 3 == 2:
        w, h = h, w  # portrait
    rng = np.random.default_rng(1000 + i)
    img = np.zeros((h, w, 3), np.float32)
    for gw, amp in ((3, 80), (10, 40), (36, 18)):
        gh = max(2, round(gw * h / w))
        small = rng.uniform(-1, 1, (gh, gw, 3)).astype(np.float32)
        img += amp * np.stack([np.asarray(Image.fromarray(small[..., c], mode="F").resize((w, h), Image.BICUBIC))
                               for c in range(3)], -1)
    im = Image.fromarray(np.clip(img + 128, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 20, w // 3)), y0 + int(rng.integers(h // 20, h // 3))
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=c)
    a = np.asarray(im.filter(ImageFilter.GaussianBlur(1.5)), np.float32)
    a = a + rng.normal(0, 7, (h, w, 1)).astype(np.float32) + rng.normal(0, 3, (h, w, 3)).astype(np.float32)
    path = os.path.join(folder, f"img{i:05d}_{w}x{h}.jpg")
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def make_jpegs(folder, n, procs):
    os.makedirs(folder, exist_ok=True)
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        paths = pool.map(_jpeg_job, [(i, folder) for i in range(n)], chunksize=4)
    sizes = {}
    for p in paths:
        k = p.rsplit("_", 1)[1][:-4]
        sizes[k] = sizes.get(k, 0) + 1
    total = sum(os.path.getsize(p) for p in paths)
    return {"n": n, "sizes": sizes, "bytes": total, "procs": procs,
            "bytes_per_pixel": total / sum(int(a) * int(b) for a, b in (p.rsplit("_", 1)[1][:-4].split("x") for p in paths))}


def jpeg_files(work, args, section):
    folder, info = resource(work, "jpegs", lambda p: make_jpegs(p, args.images, os.cpu_count() or 1), section)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg")), info


def make_captions(n, seed=0):
    """Captions of mixed lengths: 60% 3-14 words, 30% 15-40, 10% 41-90 (over CLIP's 77 tokens:
    truncated by both sides); every eighth one of bench_clip.py's captions."""
    import bench_clip

    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 8 == 0:
            out.append(bench_clip.CAPTIONS[(i // 8) % len(bench_clip.CAPTIONS)])
            continue
        r = rng.random()
        k = rng.randint(3, 14) if r < 0.6 else rng.randint(15, 40) if r < 0.9 else rng.randint(41, 90)
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + ".")
    return out


# ------------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, name, args, budget, result_path):
        import torch

        self.name, self.args, self.budget = name, args, budget
        self.dev = args.device
        self.cuda = self.dev.startswith("cuda")
        self.sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        self.work = args.work
        self.res = {"section": name, "budget_s": round(budget, 1), "status": "running"}
        self.md = []
        self.result_path = result_path
        self.t0 = now()

    def log(self, *a):
        log(self.name, *a)

    def save(self):
        """Partial results on disk after every step: a crash keeps what was measured."""
        self.res["wall_s"] = round(now() - self.t0, 2)
        tmp = self.result_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"res": self.res, "md": self.md}, f, indent=1, default=str)
        os.replace(tmp, self.result_path)

    def step_error(self, what, e):
        """A failed step: noted in the Markdown and the JSON, the section goes on."""
        self.log(f"{what} failed: {short_err(e, 2000)}")
        self.res.setdefault("errors", []).append({"step": what, "error": short_err(e, 2000),
                                                  "traceback": traceback.format_exc()[-3000:]})
        self.md.append(f"\n**{what} failed**: `{short_err(e, 400)}`\n")
        self.save()


# ------------------------------------------------------------------------------------------------
# 1. environment
def sec_env(ctx):
    import torch

    r = ctx.res
    r["host"] = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            r["host"]["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        with open("/proc/meminfo") as f:
            r["host"]["mem_gib"] = round(int(next(l for l in f if l.startswith("MemTotal")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    r["torch"] = torch.__version__
    r["cuda"] = torch.version.cuda
    r["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    r["device"] = ctx.dev
    r["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    if ctx.cuda:
        p = torch.cuda.get_device_properties(0)
        r["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "sm": f"{p.major}.{p.minor}",
                    "multiprocessors": p.multi_processor_count}
        peak, key = peak_for(p.name)
        r["gpu"]["peak_bf16_tflops"] = peak / 1e12 if peak else None
        try:
            r["gpu"]["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception as e:  # noqa: BLE001
            r["gpu"]["nvidia_smi"] = short_err(e)
    tf, why = import_transformers()
    r["transformers"] = tf.__version__ if tf else f"not importable ({why})"
    try:
        import bgevl

        r["bgevl"] = {"version": bgevl.__version__, "file": bgevl.__file__, "threads": bgevl.get_num_threads()}
    except Exception as e:  # noqa: BLE001
        r["bgevl"] = f"not importable ({short_err(e)})"
    for mod in ("numpy", "PIL", "torchvision", "tokenizers", "safetensors", "accelerate"):
        try:
            m = __import__(mod)
            r.setdefault("packages", {})[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001
            r.setdefault("packages", {})[mod] = None
    g = r.get("gpu", {})
    rows = [("device", ctx.dev), ("GPU", g.get("name", "-")), ("GPU memory", f"{g['memory_gib']} GiB" if g else "-"),
            ("nvidia-smi", g.get("nvidia_smi", "-")),
            ("peak dense bf16 (table)", f"{g['peak_bf16_tflops']} TFLOP/s" if g.get("peak_bf16_tflops") else "unknown"),
            ("torch", r["torch"]), ("CUDA", r["cuda"] or "-"), ("cuDNN", r["cudnn"] or "-"),
            ("TF32 matmul / cuDNN", f"{r['tf32']['matmul']} / {r['tf32']['cudnn']}"),
            ("transformers", r["transformers"]),
            ("bgevl", r["bgevl"] if isinstance(r["bgevl"], str) else
             f"{r['bgevl']['version']} ({r['bgevl']['file']}), {r['bgevl']['threads']} threads"),
            ("host", f"{r['host'].get('cpu', '?')}, {r['host']['cores']} cores, {r['host'].get('mem_gib', '?')} GiB"),
            ("python", r["host"]["python"]),
            ("packages", ", ".join(f"{k} {v}" for k, v in r["packages"].items() if v))]
    ctx.md += ["| item | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    ctx.save()


# ------------------------------------------------------------------------------------------------
# 2. parity
def fixture_images(v):
    if v is None:
        return None
    if isinstance(v, str):
        return os.path.join(FIX, "images", v)
    return [None if x is None else os.path.join(FIX, "images", x) for x in v]


def fixture_rows(ctx):
    """(device, dtype) rows: CPU float32 (the base), the device in float32, the device's default
    (dtype=None), and on a CPU-only run also CPU bfloat16 (the cosine path)."""
    import torch

    rows = [("cpu", torch.float32)]
    if ctx.dev != "cpu":
        rows.append((ctx.dev, torch.float32))
    rows.append((ctx.dev, None))
    if ctx.dev == "cpu":
        rows.append(("cpu", torch.bfloat16))
    return rows


def parity_fixtures(ctx, family):
    import torch
    import bgevl
    import safetensors_io

    sub = "clip" if family == "clip" else "llava"
    cases = json.load(open(os.path.join(FIX, sub, "cases.json")))["cases"]
    ckpts = ("tiny-fp16-quickgelu", "tiny-bf16-gelu") if family == "clip" else ("tiny-llava-next-legacy", "tiny-llava-next")
    out = []
    for ckpt in ckpts:
        ref = safetensors_io.load_torch(os.path.join(FIX, sub, ckpt + ".expected.safetensors"))
        base = None
        for dev, dt in fixture_rows(ctx):
            t0 = now()
            m = bgevl.load(os.path.join(FIX, sub, ckpt), device=dev, dtype=dt)
            resolved = m.dtype
            if dt is None and dev == "cpu" and resolved == torch.float32:
                out.append({"checkpoint": ckpt, "device": dev, "dtype": "default", "resolved_dtype": "float32",
                            "same_as": "cpu float32"})  # the row already measured
                del m
                continue
            got = {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the cases without an instruction
                for c in cases:
                    kw = dict(images=fixture_images(c["images"]), text=c["text"])
                    if family == "llava":
                        kw.update(q_or_c=c["q_or_c"], task_instruction=c["task_instruction"])
                    got[c["name"]] = m.encode(**kw).float().cpu()
            del m
            row = {"checkpoint": ckpt, "device": dev, "dtype": "default" if dt is None else dtype_name(dt),
                   "resolved_dtype": dtype_name(resolved), "cases": len(got), "seconds": round(now() - t0, 2),
                   "max_abs_vs_ref": max((got[n] - ref[n + "/embeddings"]).abs().max().item() for n in got),
                   "min_cos_vs_ref": min(torch.nn.functional.cosine_similarity(got[n], ref[n + "/embeddings"].float()).min().item()
                                         for n in got)}
            if base is None:
                base = got
            row["max_abs_vs_cpu_fp32"] = max((got[n] - base[n]).abs().max().item() for n in got)
            row["min_cos_vs_cpu_fp32"] = min(torch.nn.functional.cosine_similarity(got[n], base[n]).min().item() for n in got)
            out.append(row)
            ctx.log(f"{ckpt} {dev} {row['dtype']}->{row['resolved_dtype']}: {row['max_abs_vs_ref']:.2e}")
    return out


def sec_parity(ctx):
    import torch
    import bgevl

    B = Budget(ctx.budget, {"clip": 1, "llava": 2, "bf16": 3})
    r = ctx.res
    ctx.md += ["Tiny fixture checkpoints, every case of cases.json, images given as file paths (bgevl "
               "decodes them), against the transformers 4.45.2 expected embeddings stored in the fixtures. "
               "`default` = `dtype=None` (bfloat16 on CUDA in this build); float32 target: max |diff| <= 1e-5.", "",
               "| checkpoint | device | dtype (resolved) | cases | max abs diff vs 4.45.2 | min cosine vs 4.45.2 "
               "| vs bgevl CPU fp32 | s |",
               "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    r["fixtures"] = []
    worst = 0.0
    for fam in ("clip", "llava"):
        B.take(fam)
        try:
            rows = parity_fixtures(ctx, fam)
        except Exception as e:  # noqa: BLE001
            ctx.step_error(f"{fam} fixtures", e)
            continue
        r["fixtures"] += rows
        for w in rows:
            if "same_as" in w:
                ctx.md.append(f"| {w['checkpoint']} | {w['device']} | default ({w['resolved_dtype']}) | | "
                              f"same as {w['same_as']} (not rerun) | | | |")
                continue
            f32 = w["resolved_dtype"] == "float32"
            if f32:
                worst = max(worst, w["max_abs_vs_ref"], w["max_abs_vs_cpu_fp32"] if w["device"] != "cpu" else 0.0)
            vs_cpu = f"{w['max_abs_vs_cpu_fp32']:.2e}" if f32 else f"min cosine {w['min_cos_vs_cpu_fp32']:.5f}"
            ctx.md.append(f"| {w['checkpoint']} | {w['device']} | {w['dtype']} ({w['resolved_dtype']}) | {w['cases']} | "
                          f"{w['max_abs_vs_ref']:.2e} | {w['min_cos_vs_ref']:.5f} | {vs_cpu} | {w['seconds']:.1f} |")
        ctx.save()
    r["float32_worst_max_abs"] = worst
    r["float32_pass_1e-5"] = worst <= 1e-5
    ctx.md.append(f"\nfloat32 worst max |diff| (vs 4.45.2 and device vs CPU): {worst:.2e} "
                  f"(**{'PASS' if worst <= 1e-5 else 'FAIL'}** at 1e-5)\n")
    ctx.save()

    # bfloat16 (the default on CUDA) vs float32 on the full-size random BGE-VL-base checkpoint
    B.take("bf16")
    try:
        geo = (CLIP_QUICK if ctx.args.quick else CLIP_GEOMETRY)["clip-base"]
        files, jinfo = jpeg_files(ctx.work, ctx.args, ctx.name)
        ckpt, cinfo = resource(ctx.work, "clip-base", lambda p: make_clip_checkpoint(p, geo, ctx.dev), ctx.name)
        r.setdefault("setup", {})["jpegs"] = jinfo
        r["setup"]["clip-base"] = cinfo
        n_img, n_txt = (8, 32) if ctx.args.quick else (256, 1024)
        imgs = files[:n_img]
        texts = make_captions(n_txt, seed=1)
        m32 = bgevl.load(ckpt, device=ctx.dev, dtype=torch.float32)
        e32 = (m32.encode(images=imgs, batch_size=64).cpu(), m32.encode(text=texts, batch_size=256, truncate=True).cpu())
        del m32
        free_memory()
        variants = [("default", None)]
        if not ctx.cuda:
            variants.append(("bfloat16", torch.bfloat16))  # the CPU default is float32: also bf16 explicitly
        ctx.md += [f"bfloat16 vs float32 on {geo['name']} geometry (random fp16 weights, {n_img} of the JPEG files, "
                   f"{n_txt} captions; targets for approximate modes: mean >= 0.999, min >= 0.995, reported only):", "",
                   "| dtype asked (resolved) | images: mean cosine | min | texts: mean cosine | min |",
                   "| --- | ---: | ---: | ---: | ---: |"]
        r["bf16_vs_fp32"] = []
        for label, dt in variants:
            m = bgevl.load(ckpt, device=ctx.dev, dtype=dt)
            resolved = dtype_name(m.dtype)
            if label == "default" and resolved != "bfloat16" and ctx.cuda:
                variants.append(("bfloat16", torch.bfloat16))
            e = (m.encode(images=imgs, batch_size=64).cpu(), m.encode(text=texts, batch_size=256, truncate=True).cpu())
            del m
            free_memory()
            ci, ct = cos_stats(e[0], e32[0]), cos_stats(e[1], e32[1])
            r["bf16_vs_fp32"].append({"asked": label, "resolved": resolved, "images": ci, "texts": ct})
            ctx.md.append(f"| {label} ({resolved}) | {ci['mean']:.5f} | {ci['min']:.5f} | {ct['mean']:.5f} | {ct['min']:.5f} |")
            ctx.save()
    except Exception as e:  # noqa: BLE001
        ctx.step_error("bfloat16 vs float32 (BGE-VL-base geometry)", e)


# ------------------------------------------------------------------------------------------------
# 3. CLIP throughput
def clip_image_flops(geo):
    """Nominal FLOPs of one image through the vision tower + projection: per layer
    2 * params_layer * N + 4 * N^2 * hidden (QK^T and AV), N = patches + 1; patch conv
    2 * 3 * p^2 * hidden * patches; projection 2 * hidden * proj."""
    v = geo["vision"]
    d, i, p = v["hidden"], v["inter"], v["patch"]
    patches = (v["image"] // p) ** 2
    n = patches + 1
    per_layer = 4 * (d * d + d) + 2 * d * i + d + i + 4 * d
    return v["layers"] * (2 * per_layer * n + 4 * n * n * d) + 2 * 3 * p * p * d * patches + 2 * d * geo["proj"]


class _ImageFiles:
    """A Dataset: PIL open + convert("RGB") + the CLIP image processor, per item (runs in the
    DataLoader's worker processes)."""

    def __init__(self, files, image_processor):
        self.files, self.ip = files, image_processor

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return self.ip(images=im.convert("RGB"), return_tensors="pt")["pixel_values"][0]


def _worker_init(_):
    import torch

    torch.set_num_threads(1)


def sec_clip(ctx):
    import torch
    import torch.nn.functional as F
    import bgevl

    key = ctx.name
    args, dev, sync, r = ctx.args, ctx.dev, ctx.sync, ctx.res
    geo = (CLIP_QUICK if args.quick else CLIP_GEOMETRY)[key]
    B, TB = args.batch, args.text_batch
    S = geo["vision"]["image"]
    W = Budget(ctx.budget, {"setup": 0.6, "model_bgevl": 1, "e2e_bgevl": 3, "e2e_one_stream": 1, "text_bgevl": 1.5, "load_tf": 0.5,
                            "model_tf": 1, "e2e_best": 3, "text_tf": 1.5, "seed": 2})
    files, jinfo = jpeg_files(ctx.work, args, key)
    ckpt, cinfo = resource(ctx.work, key, lambda p: make_clip_checkpoint(p, geo, dev), key)
    W.take("setup")
    r["setup"] = {"jpegs": jinfo, "checkpoint": cinfo}
    captions = make_captions(args.texts)
    e2e_files = files * args.passes  # the folder, --passes times (the same order for every side)
    r["geometry"] = geo
    r["passes"] = args.passes
    r["batch"], r["text_batch"] = B, TB
    flops_img = clip_image_flops(geo)
    peak, peak_key = peak_for(torch.cuda.get_device_name() if ctx.cuda else "")
    r["image_flops"] = flops_img
    res = r["results"] = {}
    notes = []
    emb = {}

    # --- bgevl --------------------------------------------------------------------------------
    px_cpu = m = None
    try:
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = now()
        m = bgevl.load(ckpt, device=dev, dtype=None)
        sync()
        r["bgevl_load_s"], r["bgevl_dtype"] = round(now() - t0, 3), dtype_name(m.dtype)
        r["bgevl_threads"] = bgevl.get_num_threads()
        px_cpu = m.processor(images=files[:B])["pixel_values"]
    except Exception as e:  # noqa: BLE001
        ctx.step_error("bgevl load", e)
    if m is not None:
        try:  # model only
            if not hasattr(m, "get_image_features"):
                raise AttributeError("this bgevl has no CLIPModel.get_image_features: no model-only figure")
            pxb = px_cpu.to(dev).to(m.dtype)
            try:
                m.get_image_features(pixel_values=pxb)
            except Exception as e:  # noqa: BLE001 - a build that wants float32 pixels
                notes.append(f"bgevl get_image_features({dtype_name(m.dtype)} pixels) failed ({short_err(e, 120)}); float32 pixels")
                pxb = px_cpu.to(dev)
            emb["model_bgevl"] = F.normalize(m.get_image_features(pixel_values=pxb).float(), dim=-1).cpu()
            sync()
            res["model_bgevl"] = timed(lambda i: (m.get_image_features(pixel_values=pxb), B)[1], W.take("model_bgevl"),
                                       args.max_iters, sync, min_iters=2)
            ctx.log(f"bgevl model-only {res['model_bgevl']['per_s']:.1f} images/s")
            del pxb
            ctx.save()
        except Exception as e:  # noqa: BLE001
            ctx.step_error("bgevl model-only", e)
        try:  # end to end from the files
            chunk = max(B, min(len(files), 4 * B))
            chunks = [e2e_files[i:i + chunk] for i in range(0, len(e2e_files), chunk)]
            emb["e2e_bgevl"] = m.encode(images=files[:B], batch_size=B).cpu()  # warm-up
            sync()
            res["e2e_bgevl"] = timed(lambda i: len(m.encode(images=chunks[i], batch_size=B)), W.take("e2e_bgevl"),
                                     len(chunks), sync)
            ctx.log(f"bgevl end to end {res['e2e_bgevl']['per_s']:.1f} images/s")
            ctx.save()
        except Exception as e:  # noqa: BLE001
            ctx.step_error("bgevl end to end (encode from JPEG files)", e)
        budget = W.take("e2e_one_stream")
        if ctx.cuda and "e2e_bgevl" in res:  # the same, copies on the compute stream: what the copy stream gains
            os.environ["BGEVL_COPY_STREAM"] = "0"
            try:
                res["e2e_one_stream"] = timed(lambda i: len(m.encode(images=chunks[i], batch_size=B)), budget,
                                              len(chunks), sync)
                ctx.log(f"bgevl end to end, BGEVL_COPY_STREAM=0: {res['e2e_one_stream']['per_s']:.1f} images/s")
            except Exception as e:  # noqa: BLE001
                ctx.step_error("bgevl end to end with BGEVL_COPY_STREAM=0", e)
            finally:
                del os.environ["BGEVL_COPY_STREAM"]
            ctx.save()
        try:  # texts
            tchunk = 4 * TB
            tchunks = [captions[i:i + tchunk] for i in range(0, len(captions), tchunk)]
            emb["text_bgevl"] = m.encode(text=captions[:TB], batch_size=TB, truncate=True).cpu()
            sync()
            res["text_bgevl"] = timed(lambda i: len(m.encode(text=tchunks[i], batch_size=TB, truncate=True)),
                                      W.take("text_bgevl"), len(tchunks), sync)
            ctx.log(f"bgevl texts {res['text_bgevl']['per_s']:.1f} texts/s")
        except Exception as e:  # noqa: BLE001
            ctx.step_error("bgevl texts", e)
        if ctx.cuda:
            r["bgevl_peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        m = None
        free_memory()
        ctx.save()

    # --- transformers ---------------------------------------------------------------------------
    tf, why = import_transformers()
    tdtype = torch.bfloat16 if ctx.cuda else torch.float32  # bf16 on the CPU is slow: float32 there
    r["transformers"] = tf.__version__ if tf else None
    if tf is None:
        notes.append(f"transformers side skipped: transformers not importable ({why})")
        for k in ("load_tf", "model_tf", "e2e_best", "text_tf", "seed"):
            W.take(k)
    else:
        try:
            from transformers import CLIPModel, CLIPProcessor

            if ctx.cuda:
                torch.cuda.reset_peak_memory_stats()
            model, info = tf_load(tf, CLIPModel, ckpt, tdtype, dev, attn="sdpa")
            r["tf_best_load"] = info
            t0 = now()
            try:
                proc = CLIPProcessor.from_pretrained(ckpt)
            except ImportError as e:  # no Rust tokenizers here: the slow tokenizer, as bench_clip.py
                notes.append(f"CLIPProcessor.from_pretrained: {short_err(e, 80)}; use_fast=False")
                proc = CLIPProcessor.from_pretrained(ckpt, use_fast=False)
            r["tf_processor"] = {"load_s": round(now() - t0, 3), "image_processor": type(proc.image_processor).__name__,
                                 "tokenizer": type(proc.tokenizer).__name__}
            W.take("load_tf")
            ctx.save()
        except Exception as e:  # noqa: BLE001
            ctx.step_error("transformers CLIPModel load (bf16, sdpa)", e)
            model = None
        if model is not None:
            # model only, the same pixel tensors
            try:
                if px_cpu is None:  # the bgevl side failed before making them
                    from PIL import Image
                    px_cpu = proc(images=[Image.open(f).convert("RGB") for f in files[:B]], return_tensors="pt")["pixel_values"]
                pxt = px_cpu.to(dev).to(tdtype)
                with torch.inference_mode():
                    emb["model_tf"] = F.normalize(feats(model.get_image_features(pixel_values=pxt)).float(), dim=-1).cpu()
                    sync()
                    res["model_tf"] = timed(lambda i: (model.get_image_features(pixel_values=pxt), B)[1],
                                            W.take("model_tf"), args.max_iters, sync, min_iters=2)
                ctx.log(f"transformers model-only {res['model_tf']['per_s']:.1f} images/s")
                del pxt
                ctx.save()
            except Exception as e:  # noqa: BLE001
                ctx.step_error("transformers model-only", e)
            # end to end, best usage: DataLoader workers (PIL open + image processor per item),
            # pinned memory, non-blocking copies, bf16 + sdpa
            try:
                workers = os.cpu_count() or 1
                loader = torch.utils.data.DataLoader(
                    _ImageFiles(e2e_files, proc.image_processor), batch_size=B, num_workers=workers,
                    pin_memory=ctx.cuda, worker_init_fn=_worker_init, prefetch_factor=4)
                budget = W.take("e2e_best")
                t_start = now()
                it = iter(loader)
                first = next(it)
                startup = now() - t_start
                with torch.inference_mode():
                    def run(batch):
                        x = batch.to(dev, non_blocking=True).to(tdtype)
                        return F.normalize(feats(model.get_image_features(pixel_values=x)).float(), dim=-1)

                    emb["e2e_best"] = run(first).cpu()  # warm-up: the first batch (not timed)
                    sync()
                    n, iters, t0 = 0, 0, now()
                    for batch in it:
                        run(batch)
                        n += len(batch)
                        iters += 1
                        sync()
                        if now() - t0 >= budget:
                            break
                    el = now() - t0
                del it, loader
                res["e2e_best"] = {"items": n, "seconds": round(el, 4), "iters": iters, "per_s": n / el if el > 0 and n else None,
                                   "budget_s": round(budget, 2), "workers": workers,
                                   "startup_s": round(startup, 3), "note": "timed from the second batch (startup and first batch excluded)"}
                ctx.log(f"transformers best end to end {fmt(res['e2e_best']['per_s'])} images/s")
                ctx.save()
            except Exception as e:  # noqa: BLE001
                ctx.step_error("transformers best usage end to end", e)
            # texts: tokenizer + get_text_features
            try:
                tok = proc.tokenizer
                tb = [captions[i:i + TB] for i in range(0, len(captions), TB)]

                def enc_txt(batch):
                    t = tok(batch, padding=True, truncation=True, max_length=77, return_tensors="pt").to(dev)
                    return F.normalize(feats(model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])).float(), dim=-1)

                with torch.inference_mode():
                    emb["text_tf"] = enc_txt(tb[0]).cpu()
                    sync()
                    res["text_tf"] = timed(lambda i: (enc_txt(tb[i]), len(tb[i]))[1], W.take("text_tf"), len(tb), sync)
                ctx.log(f"transformers texts {res['text_tf']['per_s']:.1f} texts/s")
                ctx.save()
            except Exception as e:  # noqa: BLE001
                ctx.step_error("transformers texts", e)
            if ctx.cuda:
                r["tf_peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            del model
            free_memory()
            # the model card's seed usage: float32, default attention, the processor on the whole
            # list in the calling process, then the model, one call per list of B files
            try:
                from PIL import Image

                model32, info32 = tf_load(tf, CLIPModel, ckpt, torch.float32, dev)
                r["tf_seed_load"] = info32
                subset = files[:args.seed_images]
                lists = [subset[i:i + B] for i in range(0, len(subset), B)]

                def card(paths):
                    ims = [Image.open(p) for p in paths]
                    px = proc(images=ims, return_tensors="pt")["pixel_values"]
                    return F.normalize(feats(model32.get_image_features(pixel_values=px.to(dev))).float(), dim=-1)

                with torch.inference_mode():
                    card(lists[0][:8])  # warm-up
                    sync()
                    res["seed"] = timed(lambda i: (card(lists[i]), len(lists[i]))[1], W.take("seed"), len(lists), sync)
                ctx.log(f"transformers seed usage {res['seed']['per_s']:.1f} images/s")
                del model32
                free_memory()
                ctx.save()
            except Exception as e:  # noqa: BLE001
                ctx.step_error("transformers seed usage (float32)", e)

    # sanity: the two sides compute the same thing (random weights, different dtypes)
    agree = r["agreement"] = {}
    for a, b, what in (("model_bgevl", "model_tf", "image features (model only)"),
                       ("e2e_bgevl", "e2e_best", "end-to-end image embeddings, first batch"),
                       ("text_bgevl", "text_tf", "text embeddings, first batch")):
        if a in emb and b in emb and emb[a].shape == emb[b].shape:
            agree[what] = cos_stats(emb[a], emb[b])

    # --- table ------------------------------------------------------------------------------------
    def ps(k):
        return res.get(k, {}).get("per_s")

    bd, td = r.get("bgevl_dtype", "?"), dtype_name(tdtype)
    ba = r.get("tf_best_load", {}).get("attn") or "-"
    sa = r.get("tf_seed_load", {}).get("attn") or "-"
    ctx.md += [f"{geo['name']} geometry, random fp16 weights ({cinfo.get('n_params', 0) / 1e6:.0f}M parameters; vocab: "
               f"{cinfo.get('vocab')}); {len(files)} JPEG files ({jinfo.get('sizes')}, "
               f"{jinfo.get('bytes_per_pixel', 0):.2f} bytes/pixel, in the page cache); {len(captions)} captions of mixed "
               f"lengths (truncated at 77 tokens); end to end: the folder {args.passes} time(s) over; image batch {B}, text batch {TB}; device {dev}.", "",
               f"| measurement | bgevl ({bd}) | transformers best ({td}, {ba}) | transformers seed (float32, {sa}) "
               "| bgevl / best | bgevl / seed |",
               "| --- | ---: | ---: | ---: | ---: | ---: |",
               f"| model only: get_image_features on pre-made [{B}, 3, {S}, {S}] pixels, images/s | {fmt(ps('model_bgevl'))} | "
               f"{fmt(ps('model_tf'))} | - | {fmt_ratio(ratio(ps('model_bgevl'), ps('model_tf')))} | - |",
               f"| end to end from JPEG files, images/s | {fmt(ps('e2e_bgevl'))} | {fmt(ps('e2e_best'))} | {fmt(ps('seed'))} | "
               f"{fmt_ratio(ratio(ps('e2e_bgevl'), ps('e2e_best')))} | {fmt_ratio(ratio(ps('e2e_bgevl'), ps('seed')))} |",
               f"| texts: encode / tokenizer + get_text_features, texts/s | {fmt(ps('text_bgevl'))} | {fmt(ps('text_tf'))} | - | "
               f"{fmt_ratio(ratio(ps('text_bgevl'), ps('text_tf')))} | - |", ""]
    r["ratios"] = {"model_bgevl_over_tf": ratio(ps("model_bgevl"), ps("model_tf")),
                   "e2e_bgevl_over_best": ratio(ps("e2e_bgevl"), ps("e2e_best")),
                   "e2e_bgevl_over_seed": ratio(ps("e2e_bgevl"), ps("seed")),
                   "text_bgevl_over_tf": ratio(ps("text_bgevl"), ps("text_tf"))}
    detail = []
    if ps("e2e_one_stream"):
        detail.append(f"copy stream: end to end {fmt(ps('e2e_bgevl'))} images/s with it, {fmt(ps('e2e_one_stream'))} "
                      f"without (BGEVL_COPY_STREAM=0): {fmt_ratio(ratio(ps('e2e_bgevl'), ps('e2e_one_stream')))}")
    for k, what in (("model_bgevl", "bgevl model only"), ("model_tf", "transformers model only"),
                    ("e2e_bgevl", "bgevl `encode(images=paths, batch_size=B)`"),
                    ("e2e_one_stream", "bgevl the same with BGEVL_COPY_STREAM=0 (copies on the compute stream)"),
                    ("e2e_best", "transformers best (DataLoader)"), ("seed", "transformers seed (card usage)"),
                    ("text_bgevl", "bgevl `encode(text=...)`"), ("text_tf", "transformers texts")):
        if k in res:
            x = res[k]
            extra = f", {x['workers']} workers, worker startup + first batch {x['startup_s']:.2f} s (not timed)" if k == "e2e_best" else ""
            detail.append(f"{what}: {x['items']} items in {x['seconds']:.2f} s ({x['iters']} steps, budget {x['budget_s']:.1f} s){extra}")
    for k in ("model_bgevl", "model_tf"):
        if ps(k):
            tfl = ps(k) * flops_img / 1e12
            r.setdefault("model_only_tflops", {})[k] = tfl
            detail.append(f"{k}: {tfl:.1f} TFLOP/s nominal" + (f", MFU {tfl * 1e12 / peak:.1%} of {peak_key} {peak / 1e12:.1f} TFLOP/s bf16"
                                                                 if peak else ", MFU unknown (no peak for this device)"))
    detail.append(f"image FLOPs (nominal, every position through every layer: per layer 2 x params x N + 4 x N^2 x hidden, "
                  f"N = patches + 1, + patch conv + projection): {flops_img / 1e9:.2f} GFLOP/image")
    load = [f"bgevl {r['bgevl_load_s']:.2f} s" if "bgevl_load_s" in r else None]
    for k, what in (("tf_best_load", "transformers best"), ("tf_seed_load", "transformers seed")):
        if k in r:
            i = r[k]
            load.append(f"{what} {i['load_s']:.2f} s ({i['class']}, {i['dtype']}, attention {i['attn']}, missing keys "
                        f"{i['missing_keys']}{' ' + str(i['missing_examples']) if i['missing_keys'] else ''})")
            notes += i["notes"]
    detail.append("load: " + "; ".join(x for x in load if x))
    if "tf_processor" in r:
        detail.append(f"transformers processor: {r['tf_processor']['image_processor']} + {r['tf_processor']['tokenizer']}")
    for what, c in agree.items():
        detail.append(f"bgevl vs transformers, {what}: cosine mean {c['mean']:.5f}, min {c['min']:.5f} (n {c['n']})")
    for k in ("bgevl_peak_gpu_gib", "tf_peak_gpu_gib"):
        if k in r:
            detail.append(f"{k}: {r[k]} GiB")
    detail.append(f"bgevl threads: {r.get('bgevl_threads', '?')}; setup: JPEGs {'reused' if jinfo.get('reused') else 'made'} "
                  f"({jinfo.get('make_s', 0):.1f} s), checkpoint {'reused' if cinfo.get('reused') else 'made'} ({cinfo.get('make_s', 0):.1f} s)")
    ctx.md += [f"- {d}" for d in detail + notes]
    r["notes"] = notes
    ctx.save()


# ------------------------------------------------------------------------------------------------
# 4. BGE-VL-MLLM
def select_best_resolution(size, pinpoints):
    """transformers' select_best_resolution: size (height, width) -> the grid resolution."""
    h0, w0 = size
    best, best_eff, best_waste = None, 0, float("inf")
    for h, w in pinpoints:
        s = min(w / w0, h / h0)
        dw, dh = int(w0 * s), int(h0 * s)
        eff = min(dw * dh, w0 * h0)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (h, w), eff, waste
    return best


def llava_features(size, pinpoints, tile, patch):
    """(tiles, image features after unpadding and newlines) for one image of size (h, w), as
    LLaVA-NeXT's pack_image_features ('default' strategy, spatial_unpad, image_newline)."""
    side = tile // patch
    bh, bw = select_best_resolution(size, pinpoints)
    gh, gw = bh // tile, bw // tile
    ch, cw = gh * side, gw * side
    h, w = size
    if w / h > cw / ch:
        new_h = int(h * (cw / w))
        ch -= 2 * ((ch - new_h) // 2)
    else:
        new_w = int(w * (ch / h))
        cw -= 2 * ((cw - new_w) // 2)
    return gh * gw + 1, side * side + ch * (cw + 1)


def expand_image_tokens(inputs, counts, image_token):
    """The input_ids with each image's single <image> token repeated once per image feature (what
    newer processors emit and transformers 5.x requires); left padding kept."""
    import torch

    ids, mask = inputs["input_ids"].cpu(), inputs["attention_mask"].cpu()
    rows = []
    for b in range(ids.shape[0]):
        r, mk = ids[b], mask[b]
        pos = (r == image_token).nonzero().flatten().tolist()
        if len(pos) == 1 and counts[b] > 1:
            p = pos[0]
            r = torch.cat([r[:p], torch.full((counts[b],), image_token, dtype=r.dtype), r[p + 1:]])
            mk = torch.cat([mk[:p], torch.ones(counts[b], dtype=mk.dtype), mk[p + 1:]])
        rows.append(r[mk.bool()])
    L = max(len(x) for x in rows)
    out_ids = torch.zeros(len(rows), L, dtype=ids.dtype)
    out_mask = torch.zeros(len(rows), L, dtype=mask.dtype)
    for b, x in enumerate(rows):  # left padding, as the BGE-VL-MLLM processor
        out_ids[b, L - len(x):] = x
        out_mask[b, L - len(x):] = 1
    return out_ids, out_mask


def mllm_flops(shapes, cfg, tiles, seq_len):
    """Nominal FLOPs of one query, by term (see the section's text)."""
    v = cfg["vision_config"]
    t = cfg["text_config"]
    side = v["image_size"] // v["patch_size"]
    pv = side * side + 1
    n_v = v["num_hidden_layers"]
    fl = cfg.get("vision_feature_layer", -2)
    used = fl if fl >= 0 else n_v + 1 + fl
    pre_v = "vision_tower.vision_model.encoder.layers.0."
    pre_t = "language_model.model.layers.0."
    p_vlayer = sum(math.prod(s) for n, s in shapes.items() if n.startswith(pre_v))
    p_tlayer = sum(math.prod(s) for n, s in shapes.items() if n.startswith(pre_t))
    p_proj = sum(math.prod(s) for n, s in shapes.items() if n.startswith("multi_modal_projector."))
    d_v, h = v["hidden_size"], t["hidden_size"]
    n_t = t["num_hidden_layers"]
    terms = {
        "vision_linear": 2 * p_vlayer * used * pv * tiles,
        "vision_attention": 4 * used * pv * pv * d_v * tiles,
        "patch_conv": 2 * 3 * v["patch_size"] ** 2 * d_v * (pv - 1) * tiles,
        "projector": 2 * p_proj * (pv - 1) * tiles,
        "lm_linear": 2 * p_tlayer * n_t * seq_len,
        "lm_attention": 4 * n_t * seq_len * seq_len * h,
    }
    params = {"vision_layer": p_vlayer, "vision_layers_used": used, "vision_layers": n_v, "positions_per_tile": pv,
              "lm_layer": p_tlayer, "lm_layers": n_t, "projector": p_proj, "hidden": h}
    return sum(terms.values()), terms, params


def sec_mllm(ctx):
    import torch
    import torch.nn.functional as F
    import bgevl
    import llava_checkpoint

    args, dev, sync, r = ctx.args, ctx.dev, ctx.sync, ctx.res
    W = Budget(ctx.budget, {"setup": 2.5, "b1_bgevl": 1, "b8_bgevl": 1.2, "load_tf": 1.5, "b1_tf": 1, "b8_tf": 1.2})
    tok = mistral_tokenizer_model()
    if tok is None:
        raise FileNotFoundError("no Mistral tokenizer.model ($BGEVL_TOKENIZER_MODEL, .devdeps/tokenizer.model, "
                                "../shared/data/tokenizers/mistral/tokenizer.model)")
    geo = dict(MLLM_QUICK) if args.quick else {}
    files, jinfo = jpeg_files(ctx.work, args, ctx.name)
    ckpt, cinfo = resource(ctx.work, "mllm", lambda p: {"bytes": llava_checkpoint.write_random_llava(
        p, device=dev, dtype=torch.bfloat16, tokenizer_model=tok, **geo)}, ctx.name)
    W.take("setup")
    r["setup"] = {"jpegs": jinfo, "checkpoint": cinfo, "tokenizer_model": tok}
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    g = {k: v for k, v in geo.items() if k not in ("text_layers", "vision_layers", "shards")}
    shapes = llava_checkpoint.shapes(text_layers=cfg["text_config"]["num_hidden_layers"],
                                     vision_layers=cfg["vision_config"]["num_hidden_layers"], **g)
    n_params = sum(math.prod(s) for s in shapes.values())
    r["n_params"] = n_params
    bmax = 2 if args.quick else 8
    queries = files[:bmax]
    kw = dict(q_or_c="q", task_instruction=bgevl.COMPOSED_RETRIEVAL_INSTRUCTION)
    bdt = None if ctx.cuda else torch.float32
    tdt = torch.bfloat16 if ctx.cuda else torch.float32
    res = r["results"] = {}
    emb = {}
    inputs = None
    notes = []
    peak, peak_key = peak_for(torch.cuda.get_device_name() if ctx.cuda else "")

    # --- bgevl --------------------------------------------------------------------------------
    m = None
    try:
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = now()
        m = bgevl.load(ckpt, device=dev, dtype=bdt)
        sync()
        r["bgevl_load_s"], r["bgevl_dtype"] = round(now() - t0, 3), dtype_name(m.dtype)
        t0 = now()
        inputs = m.data_process(images=queries, text=[MLLM_TEXT] * bmax, **kw)  # for transformers
        r["bgevl_data_process_s_per_query"] = (now() - t0) / bmax
        inputs = {k: v.cpu() for k, v in inputs.items()}
    except Exception as e:  # noqa: BLE001
        ctx.step_error("bgevl load / data_process", e)
    if m is not None:
        try:
            m.encode(images=queries[0], text=MLLM_TEXT, **kw)  # warm-up
            sync()
            res["b1_bgevl"] = timed(lambda i: len(m.encode(images=queries[i % len(queries)], text=MLLM_TEXT, batch_size=1, **kw)),
                                    W.take("b1_bgevl"), 4 if args.quick else 32, sync)
            ctx.log(f"bgevl batch 1: {res['b1_bgevl']['per_s']:.2f} queries/s")
            ctx.save()
        except Exception as e:  # noqa: BLE001
            ctx.step_error("bgevl batch 1", e)
        try:
            emb["bgevl"] = m.encode(images=queries, text=[MLLM_TEXT] * bmax, batch_size=bmax, **kw).float().cpu()  # warm-up
            sync()
            res[f"b{bmax}_bgevl"] = timed(lambda i: len(m.encode(images=queries, text=[MLLM_TEXT] * bmax, batch_size=bmax, **kw)),
                                          W.take("b8_bgevl"), 3 if args.quick else 16, sync)
            ctx.log(f"bgevl batch {bmax}: {res[f'b{bmax}_bgevl']['per_s']:.2f} queries/s")
        except Exception as e:  # noqa: BLE001
            ctx.step_error(f"bgevl batch {bmax}", e)
        if ctx.cuda:
            r["bgevl_peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        m = None
        free_memory()
        ctx.save()

    # --- sequence length and FLOPs ---------------------------------------------------------------
    seq_len = tiles = None
    flop = None
    if inputs is not None:
        image_token = cfg["image_token_index"]
        sizes = [tuple(int(x) for x in s) for s in inputs["image_sizes"].tolist()]
        tf_counts = [llava_features(s, cfg["image_grid_pinpoints"], cfg["vision_config"]["image_size"],
                                    cfg["vision_config"]["patch_size"]) for s in sizes]
        counts = [c for _, c in tf_counts]
        tiles = tf_counts[0][0]
        ids_x, mask_x = expand_image_tokens(inputs, counts, image_token)
        seq_len = int(mask_x[0].sum())
        flop, terms, params = mllm_flops(shapes, cfg, tiles, seq_len)
        r["sequence"] = {"image_sizes": sizes[:2], "tiles": tiles, "image_features": counts[0],
                         "prompt_tokens_unexpanded": int(inputs["attention_mask"][0].sum()), "merged_length": seq_len,
                         "padded": bool((mask_x == 0).any())}
        r["flops_per_query"] = flop
        r["flop_terms"] = terms
        r["flop_params"] = params

    # --- transformers -----------------------------------------------------------------------------
    tf, why = import_transformers()
    r["transformers"] = tf.__version__ if tf else None
    if tf is None:
        notes.append(f"transformers side skipped: transformers not importable ({why})")
    elif inputs is None:
        notes.append("transformers side skipped: no inputs (the bgevl side failed before data_process)")
    else:
        model = None
        try:
            from transformers import LlavaNextForConditionalGeneration

            if ctx.cuda:
                torch.cuda.reset_peak_memory_stats()
            model, info = tf_load(tf, LlavaNextForConditionalGeneration, ckpt, tdt, dev, attn="sdpa", try_device_map=True)
            r["tf_load"] = info
            notes += info["notes"]
            W.take("load_tf")
            ctx.save()
        except Exception as e:  # noqa: BLE001
            ctx.step_error("transformers LlavaNextForConditionalGeneration load (bf16, sdpa)", e)
        if model is not None:
            def tinputs(b):
                return dict(input_ids=ids_x[:b].to(dev), attention_mask=mask_x[:b].to(dev),
                            pixel_values=inputs["pixel_values"][:b].to(dev).to(tdt), image_sizes=inputs["image_sizes"][:b].to(dev))

            inner = getattr(model, "model", None)
            use_inner = inner is not None and hasattr(inner, "language_model")  # 5.x: LlavaNextModel, no lm_head
            r["tf_forward"] = ("model.model(...) (LlavaNextModel: last_hidden_state, no lm_head)" if use_inner else
                               "model(..., output_hidden_states=True, num_logits_to_keep=1): hidden_states[-1]") + ", use_cache=False"

            keep = [{"num_logits_to_keep": 1}, {"logits_to_keep": 1}, {}]  # 4.45, 4.50+, older

            def run(inp):
                if use_inner:
                    return inner(**inp, use_cache=False).last_hidden_state
                while True:
                    try:
                        return model(**inp, output_hidden_states=True, use_cache=False, **keep[0]).hidden_states[-1]
                    except TypeError:
                        if len(keep) == 1:
                            raise
                        keep.pop(0)

            for bs, key, share, iters in ((1, "b1_tf", "b1_tf", 4 if args.quick else 32),
                                          (bmax, f"b{bmax}_tf", "b8_tf", 3 if args.quick else 16)):
                try:
                    with torch.inference_mode():
                        inp = tinputs(bs)
                        h = run(inp)  # warm-up (and, at the largest batch, the embeddings to compare)
                        sync()
                        r["tf_merged_length"] = int(h.shape[1])
                        if bs == bmax:
                            emb["tf"] = F.normalize(h[:, -1].float(), dim=-1).cpu()
                        del h
                        res[key] = timed(lambda i: (run(inp), bs)[1], W.take(share), iters, sync)
                    ctx.log(f"transformers batch {bs}: {res[key]['per_s']:.2f} queries/s")
                    ctx.save()
                except Exception as e:  # noqa: BLE001
                    ctx.step_error(f"transformers forward, batch {bs}", e)
            if not use_inner:
                r["tf_forward"] = (f"model(..., output_hidden_states=True, use_cache=False"
                                   f"{''.join(f', {k}={v}' for k, v in keep[0].items())}): hidden_states[-1]")
            if ctx.cuda:
                r["tf_peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            ctx.save()
            del model
            free_memory()
    if "bgevl" in emb and "tf" in emb:
        r["agreement"] = cos_stats(emb["bgevl"], emb["tf"])

    # --- report ------------------------------------------------------------------------------------
    def ps(k):
        return res.get(k, {}).get("per_s")

    def mfu(q):
        return None if q is None or flop is None or not peak else q * flop / peak

    def fmt_mfu(x):
        return "unknown" if not peak else "-" if x is None else f"{x:.1%}"

    geo_txt = ("Mistral-7B (4096 x 32 layers, 32 heads / 8 KV heads, MLP 14336, vocab 32064) + CLIP ViT-L/14-336 "
               "(1024 x 24) + projector" if not args.quick else f"quick tiny geometry {MLLM_QUICK}")
    ctx.md += [f"BGE-VL-MLLM, {geo_txt}; random bf16 weights, {n_params / 1e9:.2f}B parameters "
               f"({cinfo.get('bytes', 0) / 1e9:.2f} GB, written in {cinfo.get('make_s', 0):.1f} s). Composed queries: one "
               f"JPEG file (distinct files of the folder, {os.path.basename(queries[0])} ...; the pipeline resizes each to "
               f"512x512) + the text \"{MLLM_TEXT}\" + the composed-retrieval instruction, the same text for all: no "
               "padding. bgevl: "
               "`encode(images=..., text=..., q_or_c='q', task_instruction=..., batch_size=b)` from the files (decoding, "
               "the 512 resize, anyres tiling and tokenization included). transformers: "
               f"`LlavaNextForConditionalGeneration` on the same input tensors (bgevl's `data_process`, the `<image>` "
               "token expanded to the image's feature count): the model only, preprocessing excluded.", ""]
    rows = [("bgevl", r.get("bgevl_dtype", "?"), "bgevl", "b1_bgevl", f"b{bmax}_bgevl"),
            (f"transformers {r.get('transformers') or '-'}", r.get("tf_load", {}).get("dtype", dtype_name(tdt)),
             r.get("tf_load", {}).get("attn") or "-", "b1_tf", f"b{bmax}_tf")]
    ctx.md += [f"| implementation | dtype | attention | batch 1 queries/s | batch {bmax} queries/s | "
               f"TFLOP/s at batch {bmax} | MFU batch 1 | MFU batch {bmax} |",
               "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    r["mfu"] = {}
    for name, dt, attn, k1, k8 in rows:
        q1, q8 = ps(k1), ps(k8)
        tfl = None if q8 is None or flop is None else q8 * flop / 1e12
        m1, m8 = mfu(q1), mfu(q8)
        r["mfu"][name] = {"batch1": m1, f"batch{bmax}": m8, f"tflops_batch{bmax}": tfl}
        ctx.md.append(f"| {name} | {dt} | {attn} | {fmt(q1, 2)} | {fmt(q8, 2)} | {fmt(tfl)} | "
                      f"{fmt_mfu(m1)} | {fmt_mfu(m8)} |")
    r["ratios"] = {"batch1": ratio(ps("b1_bgevl"), ps("b1_tf")), f"batch{bmax}": ratio(ps(f"b{bmax}_bgevl"), ps(f"b{bmax}_tf"))}
    ctx.md.append(f"| **bgevl / transformers** | | | {fmt_ratio(r['ratios']['batch1'])} | {fmt_ratio(r['ratios'][f'batch{bmax}'])} | | | |")
    detail = []
    if flop is not None:
        p, t = r["flop_params"], r["flop_terms"]
        s = r["sequence"]
        detail += [
            f"sequence: images resized to {s['image_sizes'][0]}, {s['tiles']} tiles of {p['positions_per_tile']} positions, "
            f"{s['image_features']} image features after unpadding + newlines; prompt {s['prompt_tokens_unexpanded']} tokens "
            f"with one `<image>`; merged length L = {s['merged_length']}"
            + (f" (transformers' hidden states: {r['tf_merged_length']})" if "tf_merged_length" in r else ""),
            "FLOPs per query (nominal, the same count for both sides; multiply-add = 2 FLOPs): "
            f"vision 2 x {p['vision_layer'] / 1e6:.2f}M params/layer x {p['vision_layers_used']} layers (up to "
            f"vision_feature_layer, of {p['vision_layers']}) x {p['positions_per_tile']} positions x {s['tiles']} tiles "
            f"= {t['vision_linear'] / 1e12:.3f} T; vision attention 4 x {p['vision_layers_used']} x {p['positions_per_tile']}^2 x "
            f"hidden x tiles = {t['vision_attention'] / 1e12:.3f} T; patch conv {t['patch_conv'] / 1e12:.3f} T; projector "
            f"2 x {p['projector'] / 1e6:.1f}M x patches x tiles = {t['projector'] / 1e12:.3f} T; Mistral 2 x "
            f"{p['lm_layer'] / 1e6:.1f}M params/layer x {p['lm_layers']} layers x L = {t['lm_linear'] / 1e12:.3f} T; attention "
            f"4 x {p['lm_layers']} x L^2 x {p['hidden']} = {t['lm_attention'] / 1e12:.3f} T (not halved for the causal mask); "
            f"not counted: embeddings lookup, norms, activations, rotary, lm_head (an embedding needs none); "
            f"total {flop / 1e12:.3f} TFLOP/query. bgevl computes less than this (only the last position in the last "
            "decoder layer, no vision layer after vision_feature_layer), so its MFU is by the nominal count.",
            ("MFU = queries/s x FLOPs per query / peak, peak " + (f"{peak / 1e12:.1f} TFLOP/s dense bf16 ({peak_key}, from the table)"
                                                              if peak else "unknown for this device (not in the table)"))]
    if "agreement" in r:
        a = r["agreement"]
        detail.append(f"bgevl vs transformers embeddings (last position, normalised), {a['n']} queries: cosine mean "
                      f"{a['mean']:.5f}, min {a['min']:.5f}")
    for k, what in (("bgevl_load_s", "bgevl load"), ("bgevl_data_process_s_per_query", "bgevl data_process per query")):
        if k in r:
            detail.append(f"{what}: {r[k]:.3f} s")
    if "tf_load" in r:
        i = r["tf_load"]
        detail.append(f"transformers load: {i['load_s']:.1f} s ({i['class']}, {i['dtype']}, attention {i['attn']}, "
                      f"missing keys {i['missing_keys']}{' ' + str(i['missing_examples']) if i['missing_keys'] else ''}, "
                      f"unexpected {i['unexpected_keys']}); forward: {r.get('tf_forward')}")
    for k in ("b1_bgevl", f"b{bmax}_bgevl", "b1_tf", f"b{bmax}_tf"):
        if k in res:
            x = res[k]
            detail.append(f"{k}: {x['items']} queries in {x['seconds']:.2f} s ({x['iters']} calls, budget {x['budget_s']:.1f} s)")
    for k in ("bgevl_peak_gpu_gib", "tf_peak_gpu_gib"):
        if k in r:
            detail.append(f"{k}: {r[k]} GiB")
    ctx.md += [""] + [f"- {d}" for d in detail + notes]
    r["notes"] = notes
    ctx.save()


SECTION_FUNCS = {"env": (sec_env, "Environment"), "parity": (sec_parity, "Parity"),
                 "clip-base": (sec_clip, "BGE-VL-base (CLIP ViT-B/16) throughput"),
                 "clip-large": (sec_clip, "BGE-VL-large (CLIP ViT-L/14) throughput"),
                 "mllm": (sec_mllm, "BGE-VL-MLLM (LLaVA-NeXT, Mistral-7B) composed queries")}


def child(args):
    """One section in this process; results to WORK/results/NAME.json (partial ones as it goes)."""
    name = args.child
    path = os.path.join(args.work, "results", name + ".json")
    if args.threads:
        import torch
        import bgevl

        torch.set_num_threads(args.threads)
        bgevl.set_num_threads(args.threads)
    ctx = Ctx(name, args, args.child_budget, path)
    fn, _ = SECTION_FUNCS[name]
    try:
        ctx.save()
        for spec in args.test_fail or []:  # the failure paths, for the CPU test
            sec, _, mode = spec.partition(":")
            if sec == name and mode == "hang":
                ctx.md.append("(--test-fail: this process now hangs)")
                ctx.save()
                time.sleep(10**6)
            if sec == name and mode == "crash":
                ctx.md.append("(--test-fail: this process now aborts)")
                ctx.save()
                os.abort()
            if sec == name:
                raise RuntimeError(f"--test-fail {spec}")
        fn(ctx)
        ctx.res["status"] = "ok" if not ctx.res.get("errors") else "ok with step errors"
    except Exception as e:  # noqa: BLE001
        ctx.log(f"section failed: {short_err(e, 2000)}")
        ctx.res["status"] = "error"
        ctx.res["error"] = short_err(e, 2000)
        ctx.res["traceback"] = traceback.format_exc()[-4000:]
        ctx.md.append(f"\n**section failed**: `{short_err(e, 400)}`\n\n```\n{traceback.format_exc()[-1500:]}```")
    ctx.save()


# ------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/bgevl-gpu"), help="results folder")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny geometry and sizes (the CPU test)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated, of {','.join(SECTIONS)} ('clip' = both CLIP sections)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 450; quick 125)")
    ap.add_argument("--images", type=int, default=None, help="JPEG files to make (default 2000; quick 16)")
    ap.add_argument("--texts", type=int, default=None, help="captions (default 20000; quick 64)")
    ap.add_argument("--batch", type=int, default=None, help="image batch (default 128; quick 4)")
    ap.add_argument("--text-batch", type=int, default=None, help="text batch (default 512; quick 16)")
    ap.add_argument("--passes", type=int, default=2, help="end to end: times over the JPEG folder (default 2)")
    ap.add_argument("--seed-images", type=int, default=None, help="files for the seed usage (default 512; quick 8)")
    ap.add_argument("--max-iters", type=int, default=None, help="max steps of a model-only loop (default 200; quick 4)")
    ap.add_argument("--threads", type=int, default=None, help="torch/bgevl threads in the sections (default: theirs)")
    ap.add_argument("--work", default=None, help="folder for checkpoints and images (kept; default a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--test-fail", action="append", metavar="SECTION[:crash|:hang]",
                    help="make a section raise (abort its process: crash; never end: hang), to test that the others go on")
    ap.add_argument("--grace", type=float, default=None,
                    help="seconds past its budget before a section's process is killed (default 90; quick 120)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-budget", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    q = args.quick
    for k, full, quick in (("budget", 450, 125), ("images", 2000, 16), ("texts", 20000, 64), ("batch", 128, 4),
                           ("text_batch", 512, 16), ("seed_images", 512, 8), ("max_iters", 200, 4)):
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    if args.device is None:
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        child(args)
        return

    names = []
    for s in args.sections.split(","):
        s = s.strip()
        for x in (["clip-base", "clip-large"] if s == "clip" else [s] if s else []):
            if x not in SECTIONS:
                ap.error(f"unknown section {x!r} (choose from {', '.join(SECTIONS)}, clip)")
            if x not in names:
                names.append(x)
    names.sort(key=SECTIONS.index)
    os.makedirs(args.out, exist_ok=True)
    own_work = args.work is None
    if own_work:
        args.work = tempfile.mkdtemp(prefix="gpu_bench_")
    os.makedirs(os.path.join(args.work, "results"), exist_ok=True)
    md_path, js_path = os.path.join(args.out, "gpu_bench.md"), os.path.join(args.out, "gpu_bench.json")
    nominal = QUICK_S if q else NOMINAL_S
    t_start = now()
    end = t_start + args.budget
    data = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
            "args": {k: v for k, v in vars(args).items() if not k.startswith("child")}, "sections": {}}
    head = (f"# bgevl GPU benchmark ({data['started']})\n\n`{data['command']}`: device {args.device}"
            f"{', quick (tiny sizes)' if q else ''}; sections {', '.join(names)}; budget {args.budget:.0f} s\n")
    with open(md_path, "w") as f:
        f.write(head)
    print(head, flush=True)

    def save_json():
        data["total_wall_s"] = round(now() - t_start, 1)
        with open(js_path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(js_path + ".tmp", js_path)

    try:
        for i, name in enumerate(names):
            if name != "env" and "jpegs" not in data.setdefault("setup", {}):
                # the JPEG folder, made here before any section loads CUDA or bgevl (the pool forks)
                t0 = now()
                try:
                    files, info = jpeg_files(args.work, args, "main")
                    data["setup"]["jpegs"] = info
                    text = (f"\n_setup: {len(files)} JPEG files ({info.get('sizes')}, {info.get('bytes', 0) / 2**20:.0f} MiB, "
                            f"{info.get('bytes_per_pixel', 0):.2f} bytes/pixel, PIL quality 90) made with "
                            f"{info.get('procs')} processes in {now() - t0:.1f} s_\n")
                except Exception as e:  # noqa: BLE001 - the sections try again and report
                    data["setup"]["jpegs"] = {"error": short_err(e, 1000)}
                    text = f"\n_setup: making the JPEG files failed: `{short_err(e)}`_\n"
                with open(md_path, "a") as f:
                    f.write(text)
                print(text, flush=True)
                save_json()
            left = max(0.0, end - now())
            rest = sum(nominal[n] for n in names[i:])
            budget = max(0.3 * nominal[name], nominal[name] * min(1.0, left / rest))
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--child-budget", f"{budget:.1f}",
                   "--work", args.work, "--device", args.device]
            for k in ("images", "texts", "batch", "text_batch", "seed_images", "max_iters", "threads", "passes"):
                v = getattr(args, k)
                if v is not None:
                    cmd += ["--" + k.replace("_", "-"), str(v)]
            if q:
                cmd.append("--quick")
            for spec in args.test_fail or []:
                cmd += ["--test-fail", spec]
            log("main", f"section {name}: budget {budget:.0f} s")
            t0 = now()
            timeout = budget + (args.grace if args.grace is not None else 120 if q else 90)
            proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: workers die with it
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                rc = "timeout"
            except BaseException:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (a timed-out section)
                except ProcessLookupError:
                    pass
                proc.wait()
            wall = now() - t0
            rpath = os.path.join(args.work, "results", name + ".json")
            try:
                with open(rpath) as f:
                    got = json.load(f)
                res, md = got["res"], got["md"]
            except (OSError, ValueError) as e:
                res, md = {"section": name, "status": "error"}, [f"(no results from the section's process: {short_err(e)})"]
            if rc != 0:
                why = (f"killed after {timeout:.0f} s (budget {budget:.0f} s + grace)" if rc == "timeout"
                       else f"exited with code {rc}" + (f" (signal {-rc})" if isinstance(rc, int) and rc < 0 else ""))
                res["status"] = f"process {why}; results up to then kept"
                md.append(f"\n**the section's process {why}**; what it had measured is above.\n")
            res["wall_s"] = round(wall, 1)
            res["budget_s"] = round(budget, 1)
            data["sections"][name] = res
            text = (f"\n## {SECTION_FUNCS[name][1]}\n\n" + "\n".join(md) +
                    f"\n\n_section {name}: wall time {wall:.1f} s (budget {budget:.0f} s), status: {res.get('status')}_\n")
            with open(md_path, "a") as f:
                f.write(text)
            print(text, flush=True)
            save_json()
    finally:
        total = now() - t_start
        tail = f"\n_total wall time {total:.1f} s (budget {args.budget:.0f} s)_\n"
        with open(md_path, "a") as f:
            f.write(tail)
        print(tail, flush=True)
        data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        save_json()
        if own_work and not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
        elif own_work:
            print(f"work folder kept: {args.work}", flush=True)
    failed = [n for n, r in data["sections"].items() if not str(r.get("status", "")).startswith("ok")]
    if failed:
        print(f"sections that failed: {', '.join(failed)} (the others' results are in {md_path})", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
