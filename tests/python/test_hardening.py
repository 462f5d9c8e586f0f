"""The bad-input suite of the hardening issue: one parametrised test per class of hostile input
(memory safety, stack depth, hangs, exhaustion, silent wrong answers, empty or undecodable error
texts, lost output). Each case asserts the exception type and that the message names the file,
key or limit. Cases that used to crash, hang or exhaust the machine run in a child process with a
timeout (and a memory cap), so that a regression fails the test instead of the suite."""
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import bgevl
from conftest import ROOT, TOY_MODEL, cli, fixture_path

TINY_MLLM = fixture_path("llava", "tiny-llava-next")
CHILD_TIMEOUT = 120
CHILD_MEMORY = 12 << 30  # address space of a child (libtorch alone maps a few GiB)


def run_child(code, timeout=CHILD_TIMEOUT):
    """Runs `code` in a fresh Python with bgevl, limited in time and memory; returns what it
    printed. The code prints 'EXC <type>: <message>' for the exception it expects."""
    prelude = ("import sys, bgevl\n"
               "def report(fn):\n"
               "    try:\n        fn()\n        print('NO EXCEPTION')\n"
               "    except Exception as e:\n        print('EXC', type(e).__name__ + ':', e)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    res = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                         timeout=timeout, preexec_fn=limit, cwd=ROOT)
    assert res.returncode == 0, f"child died ({res.returncode}): {res.stderr[-2000:]}"
    return res.stdout


def expect(out, exc_type, *parts):
    line = next((ln for ln in out.splitlines() if ln.startswith(("EXC", "NO EXCEPTION"))), out)
    assert line.startswith(f"EXC {exc_type}:"), line
    for p in parts:
        assert p in line, line


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def edit_json(path, fn):
    with open(path) as f:
        j = json.load(f)
    fn(j)
    with open(path, "w") as f:
        json.dump(j, f)


# ---- PNG writing ---------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(w, h, extra=b"", second_ihdr=None):
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    raw = b"".join(b"\0" + b"\x80" * (3 * w) for _ in range(h))
    second = b"" if second_ihdr is None else png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", *second_ihdr, 8, 2, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + ihdr + extra + second + png_chunk(b"IDAT", zlib.compress(raw)) +
            png_chunk(b"IEND", b""))


def apng_second_ihdr():
    actl = png_chunk(b"acTL", struct.pack(">II", 1, 0))
    fctl = png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 256, 256, 0, 0, 1, 1, 0, 0))
    return png_bytes(256, 256, actl + fctl, second_ihdr=(4, 4))


# ---- 1. memory safety ----------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["file", "bytes"])
def test_memory_safety_png_second_ihdr(source, tmp_path):
    data = apng_second_ihdr()
    p = tmp_path / "frame.png"
    p.write_bytes(data)
    arg = repr(str(p)) if source == "file" else repr(data)
    out = run_child(f"m = bgevl.load({TOY_MODEL!r})\nreport(lambda: m.encode(images={arg}))\n")
    expect(out, "ValueError", "second IHDR", str(p) if source == "file" else "item 0")


# ---- 2. stack depth ----------------------------------------------------------------------------

DEEP = "[" * 100000 + "]" * 100000


def _deep_case(tmp_path, where):
    if where in ("config.json", "preprocessor_config.json", "vocab.json"):
        d = copy_model(TOY_MODEL, tmp_path / "m")
        key = {"config.json": "projection_dim", "preprocessor_config.json": "image_mean",
               "vocab.json": "hello"}[where]
        with open(os.path.join(d, where)) as f:
            text = f.read()
        text = text.replace("{", "{" + json.dumps(key) + ": " + DEEP + ", ", 1)
        with open(os.path.join(d, where), "w") as f:
            f.write(text)
        return d, where
    d = copy_model(TINY_MLLM, tmp_path / "m")
    if where == "shard index":
        p = os.path.join(d, "model.safetensors.index.json")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace("{", '{"metadata": ' + DEEP + ", ", 1))
        return d, "model.safetensors.index.json"
    # a safetensors header's shape
    p = os.path.join(d, "model-00002-of-00002.safetensors")
    with open(p, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = "SHAPE"
    text = json.dumps(header).replace('"SHAPE"', DEEP).encode()
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])
    return d, "model-00002-of-00002.safetensors"


@pytest.mark.parametrize("where", ["config.json", "preprocessor_config.json", "vocab.json",
                                   "shard index", "safetensors shape"])
def test_stack_depth_deep_json(where, tmp_path):
    model, named = _deep_case(tmp_path, where)
    out = run_child(f"report(lambda: bgevl.load({model!r}))\n")
    expect(out, "ValueError", named, "nests deeper than 64 levels")


# ---- 3. hangs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["image", "config.json", "preprocessor_config.json",
                                  "model.safetensors.index.json"])
def test_hangs_fifo_is_refused(what, tmp_path):
    if what == "image":
        fifo = tmp_path / "pipe.png"
        os.mkfifo(fifo)
        code = f"m = bgevl.load({TOY_MODEL!r})\nreport(lambda: m.encode(images={str(fifo)!r}))\n"
    else:
        d = copy_model(TINY_MLLM if what.startswith("model.") else TOY_MODEL, tmp_path / "m")
        fifo = os.path.join(d, what)
        os.remove(fifo)
        os.mkfifo(fifo)
        code = f"report(lambda: bgevl.load({d!r}))\n"
    out = run_child(code, timeout=60)
    expect(out, "ValueError", "not a regular file", os.path.basename(str(fifo)))


# ---- 4. exhaustion ---------------------------------------------------------------------------------

def _webp_16k():
    bits = 16383 | (16383 << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\0" * 16
    return b"RIFF" + struct.pack("<I", 12 + len(vp8l)) + b"WEBPVP8L" + struct.pack("<I", len(vp8l)) + vp8l


EXHAUSTION = {
    "dev_zero_image": ("m.encode(images='/dev/zero')", "ValueError", ["/dev/zero", "not a regular file"]),
    "dev_urandom_image": ("m.encode(images='/dev/urandom')", "ValueError", ["not a regular file"]),
    "webp_bomb": (f"m.encode(images={_webp_16k()!r})", "ValueError",
                  ["16384x16384", "exceeds the limit of 178956970"]),
    "num_threads": ("bgevl.set_num_threads(100000)", "ValueError", ["num_threads", "1024"]),
    "threads_above_cores": ("bgevl.set_num_threads(bgevl._C.available_cores() + 1)", "ValueError",
                            ["cores of this machine", "force"]),
    "items_per_call": ("m.encode(text=['a'] * (2**20 + 1))", "ValueError",
                       ["at most 1048576 items per call"]),
}


@pytest.mark.parametrize("case", sorted(EXHAUSTION))
def test_exhaustion_call_limits(case):
    code, exc, parts = EXHAUSTION[case]
    out = run_child(f"m = bgevl.load({TOY_MODEL!r})\nreport(lambda: {code})\n")
    expect(out, exc, *parts)


CONFIG_LIMITS = {
    # (model, file, edit, key named in the message)
    "clip_layers": (TOY_MODEL, "config.json",
                    lambda j: j["text_config"].update(num_hidden_layers=2**31), "num_hidden_layers"),
    "clip_hidden": (TOY_MODEL, "config.json",
                    lambda j: j["vision_config"].update(hidden_size=10**9), "vision_config.hidden_size"),
    "clip_size": (TOY_MODEL, "preprocessor_config.json",
                  lambda j: j.update(size={"shortest_edge": 100000}), "size.shortest_edge"),
    "mllm_layers": (TINY_MLLM, "config.json",
                    lambda j: j["text_config"].update(num_hidden_layers=2**31),
                    "text_config.num_hidden_layers"),
    "mllm_grid": (TINY_MLLM, "preprocessor_config.json",
                  lambda j: j.update(image_grid_pinpoints=[[32768, 32768]]), "image_grid_pinpoints[0]"),
    "mllm_heads": (TINY_MLLM, "config.json",
                   lambda j: j["text_config"].update(num_key_value_heads=10**6),
                   "num_key_value_heads"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_LIMITS))
def test_exhaustion_config_limits(case, tmp_path):
    src, name, fn, key = CONFIG_LIMITS[case]
    d = copy_model(src, tmp_path / "m")
    edit_json(os.path.join(d, name), fn)
    out = run_child(f"report(lambda: bgevl.load({d!r}).encode(images="
                    f"{fixture_path('images', 'tiny_2x2.png')!r}))\n")
    expect(out, "ValueError", name, key)


@pytest.mark.parametrize("api", ["encode", "data_process"])
def test_exhaustion_mllm_text_token_limit(api, tmp_path):
    d = copy_model(TINY_MLLM, tmp_path / "m")
    edit_json(os.path.join(d, "config.json"),
              lambda j: j["text_config"].update(max_position_embeddings=512))
    out = run_child(f"m = bgevl.load({d!r})\n"
                    "print(m.encode(text='a short text', q_or_c='c').shape)\n"
                    f"report(lambda: m.{api}(text='word ' * 100000, q_or_c='c'))\n")
    expect(out, "ValueError", "tokens long", "limit of 512", "max_position_embeddings")


def test_exhaustion_cli_thread_count():
    res = subprocess.run([cli(), "encode", "--model", TOY_MODEL, "--text", "x", "--threads",
                          "4294967297", "--out", "/dev/null"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2, res.stderr
    assert "--threads needs a whole number from 0 to 1024" in res.stderr


# ---- 5. silent wrong answers -------------------------------------------------------------------

def _short_header(d):
    p = os.path.join(d, "model.safetensors")
    with open(p, "rb") as f:
        blob = bytearray(f.read())
    n = struct.unpack("<Q", bytes(blob[:8]))[0]
    blob[:8] = struct.pack("<Q", n - 1)
    with open(p, "wb") as f:
        f.write(blob)


SILENT = {
    "safetensors_length_one_short": (TOY_MODEL, "model.safetensors", _short_header, "model.safetensors"),
    "negative_layer_norm_eps": (TOY_MODEL, "config.json",
                                lambda j: j["text_config"].update(layer_norm_eps=-1e-5), "layer_norm_eps"),
    "zero_image_std": (TOY_MODEL, "preprocessor_config.json",
                       lambda j: j.update(image_std=[0.5, 0.0, 0.5]), "image_std"),
    "negative_rms_norm_eps": (TINY_MLLM, "config.json",
                              lambda j: j["text_config"].update(rms_norm_eps=-1e-6), "rms_norm_eps"),
    "zero_rope_theta": (TINY_MLLM, "config.json",
                        lambda j: j["text_config"].update(rope_theta=0), "rope_theta"),
}


@pytest.mark.parametrize("case", sorted(SILENT))
def test_silent_wrong_answers_are_errors(case, tmp_path):
    src, name, fn, key = SILENT[case]
    d = copy_model(src, tmp_path / "m")
    if name.endswith(".json"):
        edit_json(os.path.join(d, name), fn)
    else:
        fn(d)
    with pytest.raises(ValueError) as e:
        m = bgevl.load(d)
        m.encode(images=fixture_path("images", "tiny_2x2.png"))
    assert name in str(e.value) and key in str(e.value), str(e.value)


def test_silent_nul_byte_in_path():
    with pytest.raises(ValueError, match="NUL byte"):
        bgevl.load(TOY_MODEL + "\0/ignored")


def test_silent_cmyk_tiff_matches_pillow(model, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    cmyk = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), mode="CMYK")
    for compression in (None, "tiff_lzw", "tiff_adobe_deflate"):
        tif = tmp_path / f"cmyk_{compression}.tif"
        cmyk.save(tif, compression=compression) if compression else cmyk.save(tif)
        ref = tmp_path / "pillow_rgb.png"  # Pillow's own conversion, stored losslessly
        Image.open(tif).convert("RGB").save(ref)
        got = model.processor(images=str(tif))["pixel_values"]
        want = model.processor(images=str(ref))["pixel_values"]
        assert got.equal(want), (compression, (got - want).abs().max().item())


# ---- 6. error texts ------------------------------------------------------------------------------

def test_error_text_with_invalid_utf8_is_not_empty(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/\xff\xfe-missing.png"
    with pytest.raises(FileNotFoundError) as e:
        bgevl.load(TOY_MODEL).encode(images=os.fsdecode(name))
    assert str(e.value) and "\\xff\\xfe-missing.png" in str(e.value), str(e.value)


def test_non_utf8_file_name_opens(model, tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"
    with open(raw, "wb") as f, open(fixture_path("images", "tiny_2x2.png"), "rb") as src:
        f.write(src.read())
    got = model.encode(images=os.fsdecode(raw))
    want = model.encode(images=fixture_path("images", "tiny_2x2.png"))
    assert got.equal(want)
    corrupt = os.fsencode(str(tmp_path)) + b"/bad\xe9.png"
    with open(corrupt, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError) as e:
        model.encode(images=os.fsdecode(corrupt))
    assert "bad\\xe9.png" in str(e.value), str(e.value)


# ---- 7. lost output ------------------------------------------------------------------------------

def test_lost_output_full_disk_is_a_failure():
    res = subprocess.run([cli(), "encode", "--model", TOY_MODEL, "--text", "a", "--out", "/dev/full"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "/dev/full" in res.stderr, (res.returncode, res.stderr)


def test_lost_output_failed_encode_keeps_the_old_file(tmp_path):
    out = tmp_path / "emb.npy"
    ok = subprocess.run([cli(), "encode", "--model", TOY_MODEL, "--text", "a", "--out", str(out)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    before = out.read_bytes()
    bad = subprocess.run([cli(), "encode", "--model", TOY_MODEL, "--image", "/dev/zero",
                          "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not a regular file" in bad.stderr, bad.stderr
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["emb.jsonl", "emb.npy"]  # no temporary file left
