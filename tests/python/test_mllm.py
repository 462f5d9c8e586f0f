"""The BGE-VL-MLLM Python API against the transformers 4.45.2 fixtures (tests/fixtures/llava)."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import bgevl
from conftest import FLOAT32_TOL, ROOT, fixture_path, image_arg, safetensors_io

CKPTS = ["tiny-llava-next-legacy", "tiny-llava-next"]


def maxdiff(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item()


@pytest.fixture(scope="module")
def llava_cases():
    with open(fixture_path("llava", "cases.json")) as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="module", params=CKPTS)
def mllm(request):
    path = fixture_path("llava", request.param)
    model = bgevl.AutoModel.from_pretrained(path)
    model.set_processor(path)
    model.eval()
    ref = safetensors_io.load_torch(fixture_path("llava", request.param + ".expected.safetensors"))
    return model, ref, path


def test_auto_model_picks_mllm(mllm):
    model, _, _ = mllm
    assert isinstance(model, bgevl.MLLMModel)
    assert model.hidden_size == 32


def test_model_card_flow_matches_reference(mllm, llava_cases):
    model, ref, _ = mllm
    for c in llava_cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = model.data_process(images=image_arg(c["images"]), text=c["text"], q_or_c=c["q_or_c"],
                                        task_instruction=c["task_instruction"])
        assert torch.equal(inputs["input_ids"], ref[c["name"] + "/input_ids"].long()), c["name"]
        assert torch.equal(inputs["attention_mask"], ref[c["name"] + "/attention_mask"].long())
        with torch.no_grad():
            emb = model(**inputs, output_hidden_states=True)[:, -1, :]
        emb = torch.nn.functional.normalize(emb, dim=-1)
        assert maxdiff(emb, ref[c["name"] + "/embeddings"]) <= FLOAT32_TOL, c["name"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the no-instruction query case warns, as the reference prints
            direct = model.encode(images=image_arg(c["images"]), text=c["text"], q_or_c=c["q_or_c"],
                                  task_instruction=c["task_instruction"])
        assert direct.shape == emb.shape and direct.dtype == torch.float32
        assert maxdiff(direct, ref[c["name"] + "/embeddings"]) <= FLOAT32_TOL, c["name"]


def test_mixed_texts_and_none_match_reference_and_one_by_one(mllm, llava_cases):
    """Candidates of which only some carry captions: each item's prompt is built on its own."""
    model, ref, _ = mllm
    mixed = [c for c in llava_cases if isinstance(c["text"], list) and None in c["text"]]
    assert mixed, "the fixtures have cases mixing texts and None"
    for c in mixed:
        imgs = image_arg(c["images"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            emb = model.encode(images=imgs, text=c["text"], q_or_c=c["q_or_c"],
                               task_instruction=c["task_instruction"])
            assert maxdiff(emb, ref[c["name"] + "/embeddings"]) <= FLOAT32_TOL, c["name"]
            for i, (im, t) in enumerate(zip(imgs, c["text"])):
                one = model.encode(images=im, text=t, q_or_c=c["q_or_c"],
                                   task_instruction=c["task_instruction"])
                assert maxdiff(one[0], emb[i]) <= FLOAT32_TOL, (c["name"], i)


def test_pil_images_keep_their_mode(mllm):
    """A PIL image is resized in its own mode, as the reference does with a path (P: nearest;
    LA/RGBA: premultiplied), so PIL objects and paths give the same embeddings."""
    from PIL import Image

    model, _, _ = mllm
    for name in ("palette_P.png", "grey_alpha_LA.png", "rgba.png", "bilevel_1.png", "chelsea.jpg"):
        path = fixture_path("images", name)
        assert torch.equal(model.encode(images=Image.open(path), q_or_c="c"),
                           model.encode(images=path, q_or_c="c")), name


def test_query_without_instruction_warns(mllm):
    model, _, _ = mllm
    with pytest.warns(UserWarning, match="instruction"):
        model.encode(text="a cat", q_or_c="q")


def test_bad_input(mllm):
    model, _, _ = mllm
    img = fixture_path("images", "chelsea.jpg")
    with pytest.raises(ValueError):
        model.encode(images=img, q_or_c="x")
    with pytest.raises(ValueError, match="q_or_c"):  # required, as in the card's data_process
        model.encode(images=img)
    with pytest.raises(ValueError, match="q_or_c"):
        model.data_process(images=img)
    with pytest.raises(ValueError, match="truncate"):  # refused, not silently ignored
        model.encode(text="x", q_or_c="c", truncate=True)
    with pytest.raises(ValueError):
        model.encode(q_or_c="c")
    with pytest.raises(ValueError):  # the reference zips the string's characters with the images
        model.data_process(images=[img, img], text="one text", q_or_c="c")
    with pytest.raises(ValueError):
        model.encode(images=[img, img], text=["a"], q_or_c="c")
    with pytest.raises(ValueError):
        model.encode(images=[], q_or_c="c")
    with pytest.raises(FileNotFoundError):
        model.encode(images="/no/such.png", q_or_c="c")
    with pytest.raises(TypeError):
        model.encode(images=42, q_or_c="c")


def test_cli_mllm_matches_python(mllm, tmp_path):
    model, _, path = mllm
    cli = os.path.join(sys.prefix, "bin", "bgevl")
    if not os.path.exists(cli):
        cli = os.path.join(ROOT, "build", "bgevl")
    img = fixture_path("images", "chelsea.jpg")
    out = tmp_path / "q.npy"
    res = subprocess.run([cli, "encode", "--model", path, "--image", img, "--text", "make it night",
                          "--q-or-c", "q", "--instruction", "cir", "--out", str(out), "--quiet",
                          "--threads", str(torch.get_num_threads())],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    got = torch.from_numpy(np.load(out))
    want = model.encode(images=img, text="make it night", q_or_c="q",
                        task_instruction=bgevl.COMPOSED_RETRIEVAL_INSTRUCTION)
    assert torch.equal(got, want)
    # the role is required on the command line too
    res = subprocess.run([cli, "encode", "--model", path, "--image", img, "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "q_or_c" in res.stderr, res.stderr
