"""The Python API against the transformers 4.45.2 fixtures, its conveniences, and its errors."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import bgevl
from conftest import FLOAT32_TOL, PIXEL_TOL, ROOT, cli, fixture_path, image_arg, safetensors_io

CHECKPOINTS = ["tiny-fp16-quickgelu", "tiny-bf16-gelu"]


def maxdiff(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item()


@pytest.fixture(scope="module", params=CHECKPOINTS)
def ckpt(request):
    path = fixture_path("clip", request.param)
    model = bgevl.AutoModel.from_pretrained(path)
    model.set_processor(path)
    model.eval()
    return request.param, model


def test_import_from_any_directory():
    out = subprocess.run([sys.executable, "-c", "import bgevl; print(bgevl.__version__)"],
                         cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == bgevl.__version__


def test_encode_matches_reference(ckpt, cases, expected):
    name, model = ckpt
    ref = expected(name)
    for case in cases["cases"]:
        with torch.no_grad():
            emb = model.encode(images=image_arg(case["images"]), text=case["text"])
        want = ref[case["name"] + "/embeddings"]
        assert emb.shape == want.shape, case["name"]
        assert emb.dtype == torch.float32
        assert maxdiff(emb, want) <= FLOAT32_TOL, case["name"]


def test_processor_matches_reference(ckpt, cases, expected):
    name, model = ckpt
    ref = expected(name)
    for case in cases["cases"]:
        if case["text"] is None:
            continue
        enc = model.processor(text=case["text"], return_tensors="pt", padding=True)
        assert torch.equal(enc["input_ids"], ref[case["name"] + "/input_ids"].long()), case["name"]
        assert torch.equal(enc.attention_mask, ref[case["name"] + "/attention_mask"].long())
        feats = model.get_text_features(**enc)
        assert maxdiff(feats, ref[case["name"] + "/text_features"]) <= FLOAT32_TOL


def test_pixel_values_match_reference():
    model = bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"))
    want = safetensors_io.load_torch(fixture_path("clip", "pixel_values.safetensors"))
    assert len(want) >= 15
    for name, ref in want.items():
        got = model.processor(images=fixture_path("images", name), return_tensors="pt")["pixel_values"]
        assert got.shape == ref.shape, name
        assert maxdiff(got, ref) <= PIXEL_TOL, name


def test_pil_numpy_bytes_and_path_agree():
    model = bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"))
    for name in ("chelsea.jpg", "palette_P.png", "grey_alpha_LA.png", "cmyk.jpg"):
        path = fixture_path("images", name)
        by_path = model.encode(images=path)
        with open(path, "rb") as f:
            by_bytes = model.encode(images=f.read())
        by_pil = model.encode(images=Image.open(path))
        by_array = model.encode(images=np.asarray(Image.open(path).convert("RGB")))
        assert torch.equal(by_path, by_bytes), name
        assert maxdiff(by_path, by_pil) <= FLOAT32_TOL, name
        assert torch.equal(by_pil, by_array), name


def test_single_vs_list_and_batching(ckpt):
    _, model = ckpt
    imgs = image_arg(["chelsea.jpg", "rocket.jpg", "photo.webp"])
    texts = ["a cat", "a rocket over the hills", "grey and white"]
    full = model.encode(images=imgs, text=texts)
    assert full.shape[0] == 3
    assert torch.allclose(full.norm(dim=-1), torch.ones(3), atol=1e-5)
    for i in range(3):
        one = model.encode(images=imgs[i], text=texts[i])
        assert one.shape == (1, full.shape[1])
        assert maxdiff(one[0], full[i]) <= FLOAT32_TOL
    assert maxdiff(model.encode(images=imgs, text=texts, batch_size=1), full) <= FLOAT32_TOL


def test_progress_callback():
    model = bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"))
    seen = []
    model.encode(text=["a", "b", "c", "d", "e"], batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_dtype_and_device_handling():
    model = bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"), dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16 and model.device == torch.device("cpu")
    e = model.encode(text="a cat")
    assert e.dtype == torch.float32
    model.float()
    assert model.dtype == torch.float32
    with pytest.raises(ValueError, match="bfloat16"):  # no float16 matrix kernels on the CPU
        model.to("cpu", torch.float16)
    assert model.dtype == torch.float32
    with pytest.raises(ValueError, match="bfloat16"):
        bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"), dtype=torch.float16)
    with pytest.raises(ValueError):
        model.to(torch.int8)
    with pytest.raises(ValueError):
        bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"), device="tpu")
    # the default dtype: float32 on the CPU (the exact mode; bfloat16 is CUDA's default)
    assert bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu")).dtype == torch.float32
    assert bgevl.load(fixture_path("clip", "tiny-fp16-quickgelu"), dtype="default").dtype == torch.float32


def test_truncate_option():
    model = bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"))
    long_text = "cat " * 100
    with pytest.raises(ValueError, match="77"):
        model.encode(text=long_text)
    enc = model.processor(text=long_text, truncation=True)
    assert enc["input_ids"].shape == (1, 77)
    assert model.encode(text=long_text, truncate=True).shape[0] == 1


# ---- bad input -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return bgevl.AutoModel.from_pretrained(fixture_path("clip", "tiny-fp16-quickgelu"))


def test_missing_image_file(tiny):
    with pytest.raises(FileNotFoundError):
        tiny.encode(images="/no/such/image.jpg")


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"GIF89a\x01\x00"])
def test_corrupt_image_bytes(tiny, tmp_path, content):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ValueError):
        tiny.encode(images=str(p))
    with pytest.raises(ValueError):
        tiny.encode(images=content)


def test_truncated_image(tiny, tmp_path):
    data = open(fixture_path("images", "chelsea.jpg"), "rb").read()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        tiny.encode(images=str(p))


def test_mismatched_and_empty_lists(tiny):
    img = fixture_path("images", "chelsea.jpg")
    with pytest.raises(ValueError):
        tiny.encode(images=[img, img], text=["one"])
    with pytest.raises(ValueError):
        tiny.encode(images=img, text=["one"])
    with pytest.raises(ValueError):
        tiny.encode(images=[])
    with pytest.raises(ValueError):
        tiny.encode(text=[])
    with pytest.raises(ValueError):
        tiny.encode()


def test_item_without_image_or_text(tiny):
    with pytest.raises(ValueError, match="item 1 has neither"):
        tiny.encode(images=[fixture_path("images", "chelsea.jpg"), None], text=["a", None])


@pytest.mark.parametrize("bad", [3, 4.5, {"a": 1}, [3], object()])
def test_wrong_types(tiny, bad):
    with pytest.raises(TypeError):
        tiny.encode(images=bad)
    with pytest.raises(ValueError):  # BgevlTypeError is both
        tiny.encode(text=bad if not isinstance(bad, list) else [3])


def test_bad_array_images(tiny):
    with pytest.raises(ValueError):
        tiny.encode(images=np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        tiny.encode(images=np.zeros((4, 4, 5), dtype=np.uint8))
    assert tiny.encode(images=np.zeros((4, 4, 2), dtype=np.uint8)).shape[0] == 1  # grey + alpha


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError):
        bgevl.AutoModel.from_pretrained(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError):
        bgevl.AutoModel.from_pretrained("BAAI/not-in-the-cache")
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(ValueError):
        bgevl.AutoModel.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "clip", "text_config": {}, "vision_config": {}}')
    with pytest.raises(FileNotFoundError):  # no weights
        bgevl.AutoModel.from_pretrained(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(ValueError, match="past the end"):
        bgevl.AutoModel.from_pretrained(str(tmp_path))
    with pytest.raises(TypeError):
        bgevl.AutoModel.from_pretrained(42)


# ---- the command line ------------------------------------------------------------------------

def test_cli_matches_python_api(tmp_path):
    model_dir = fixture_path("clip", "tiny-bf16-gelu")
    imgs = image_arg(["chelsea.jpg", "rocket.jpg"])
    texts = ["make it night", "a red rocket"]
    out = tmp_path / "emb.npy"
    args = [cli(), "encode", "--model", model_dir, "--out", str(out),
            "--threads", str(torch.get_num_threads())]  # the same threads: the same bits
    for i, t in zip(imgs, texts):
        args += ["--image", i, "--text", t]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "[2, 16]" in res.stderr
    got = torch.from_numpy(np.load(out))
    model = bgevl.AutoModel.from_pretrained(model_dir)
    want = model.encode(images=imgs, text=texts)
    assert got.shape == want.shape
    assert torch.equal(got, want)  # the same C++ code path: identical bits


def test_cli_help_and_errors(tmp_path):
    res = subprocess.run([cli(), "encode", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--model" in res.stdout and "--out" in res.stdout
    res = subprocess.run([cli(), "encode", "--model", fixture_path("clip", "tiny-fp16-quickgelu")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--out is required" in res.stderr
    res = subprocess.run([cli(), "encode", "--model", str(tmp_path / "none"), "--text", "x",
                          "--out", str(tmp_path / "o.npy")], capture_output=True, text=True)
    assert res.returncode == 1 and "not found" in res.stderr
    assert not (tmp_path / "o.npy").exists() and not list(tmp_path.glob("o.npy*"))
    res = subprocess.run([cli(), "encode", "--model", fixture_path("clip", "tiny-fp16-quickgelu"),
                          "--text", "cat " * 100, "--out", str(tmp_path / "o.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "--truncate" in res.stderr, res.stderr
    res = subprocess.run([cli(), "encode", "--model", fixture_path("clip", "tiny-fp16-quickgelu"),
                          "--threads", "4294967297", "--text", "x", "--out", str(tmp_path / "o.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--threads" in res.stderr


def test_cli_checks_inputs_and_output_before_computing(tmp_path):
    model = fixture_path("clip", "tiny-fp16-quickgelu")
    good = fixture_path("images", "chelsea.jpg")
    # an output folder that does not exist: refused at once, before the model loads
    res = subprocess.run([cli(), "encode", "--model", model, "--image", good,
                          "--out", str(tmp_path / "absent" / "e.npy")], capture_output=True, text=True)
    assert res.returncode == 1 and "cannot write" in res.stderr and "encoded" not in res.stderr
    # a missing image among many: named, and nothing encoded or written
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([good] * 39 + ["/no/such/photo.jpg"]) + "\n")
    res = subprocess.run([cli(), "encode", "--model", model, "--images-from", str(listing),
                          "--out", str(tmp_path / "e.npy")], capture_output=True, text=True)
    assert res.returncode == 1 and "item 39" in res.stderr and "encoded" not in res.stderr
    assert not list(tmp_path.glob("e.*"))
    # a full device: an error, not a success message
    if os.path.exists("/dev/full"):
        res = subprocess.run([cli(), "encode", "--model", model, "--text", "x", "--out", "/dev/full"],
                             capture_output=True, text=True)
        assert res.returncode == 1 and "wrote" not in res.stderr, res.stderr
        assert "failed writing /dev/full" in res.stderr and "No space left" in res.stderr, res.stderr
    # a pipe: the .npy bytes on stdout, no row list beside it
    res = subprocess.run([cli(), "encode", "--model", model, "--text", "x", "--out", "/dev/stdout",
                          "--quiet"], capture_output=True)
    assert res.returncode == 0, res.stderr
    assert np.load(io.BytesIO(res.stdout)).shape == (1, 16)


def test_cli_images_from_and_row_names(tmp_path):
    model = fixture_path("clip", "tiny-fp16-quickgelu")
    imgs = image_arg(["chelsea.jpg", "rocket.jpg", "photo.webp"])
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(imgs[1:]) + "\n\n")
    out = tmp_path / "cands.npy"
    res = subprocess.run([cli(), "encode", "--model", model, "--image", imgs[0], "--images-from",
                          str(listing), "--out", str(out), "--quiet",
                          "--threads", str(torch.get_num_threads())], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (tmp_path / "cands.jsonl").read_text().splitlines()]
    assert rows == [{"row": i, "image": p} for i, p in enumerate(imgs)]
    got = torch.from_numpy(np.load(out))
    assert torch.equal(got, bgevl.AutoModel.from_pretrained(model).encode(images=imgs))


def test_model_card_example_runs():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "composed_retrieval.py")],
                         capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert "scores (query @ candidates.T)" in res.stdout


MODEL_CARD = '''
import torch
import bgevl

MODEL_NAME = "{model}"

model = bgevl.AutoModel.from_pretrained(MODEL_NAME, trust_remote_code=True) # You must set trust_remote_code=True
model.set_processor(MODEL_NAME)
model.eval()

with torch.no_grad():
    query = model.encode(
        images = "./assets/cir_query.png",
        text = "Make the background dark, as if the camera has taken the photo at night"
    )

    candidates = model.encode(
        images = ["./assets/cir_candi_1.png", "./assets/cir_candi_2.png"]
    )

    scores = query @ candidates.T
print(scores)
'''


def test_model_card_snippet_verbatim(tmp_path):
    """The BGE-VL-CLIP model card's code, changed only in its import, on the bundled model."""
    assets = tmp_path / "assets"
    assets.mkdir()
    imgs = os.path.join(ROOT, "models", "gallery")
    Image.open(os.path.join(imgs, "day", "one_red_circle_left.png")).save(assets / "cir_query.png")
    Image.open(os.path.join(imgs, "night", "one_red_circle_left.png")).save(assets / "cir_candi_1.png")
    Image.open(os.path.join(imgs, "day", "two_blue_squares_right.png")).save(assets / "cir_candi_2.png")
    script = tmp_path / "card.py"
    script.write_text(MODEL_CARD.format(model=os.path.join(ROOT, "models", "bgevl-tiny-clip")))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("tensor([[") and res.stdout.count(",") == 1, res.stdout


def test_first_bad_image_decides_the_error(tiny, tmp_path):
    """Files are checked before anything is decoded (a missing one is reported first, wherever it
    is); images decode in parallel, and the error raised is always the one of the first bad image."""
    good = fixture_path("images", "chelsea.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    other = tmp_path / "other.png"
    other.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for _ in range(5):
        with pytest.raises(FileNotFoundError, match="item 2"):
            tiny.encode(images=[good, str(corrupt), "/no/such.png", good])
        with pytest.raises(ValueError, match="item 1: .*corrupt.jpg"):
            tiny.encode(images=[good, str(corrupt), str(other), good])


def test_text_given_as_image_gets_a_hint(tiny):
    with pytest.raises(FileNotFoundError, match="text="):
        tiny.encode("a photo of a cat")


def test_mixed_list_matches_one_by_one(tiny):
    img = fixture_path("images", "chelsea.jpg")
    mixed = tiny.encode(images=[img, None, img], text=[None, "a cat", "make it night"])
    assert maxdiff(mixed[0], tiny.encode(images=img)[0]) <= FLOAT32_TOL
    assert maxdiff(mixed[1], tiny.encode(text="a cat")[0]) <= FLOAT32_TOL
    assert maxdiff(mixed[2], tiny.encode(images=img, text="make it night")[0]) <= FLOAT32_TOL
