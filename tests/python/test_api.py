"""The family-agnostic Python API: bgevl.load / AutoModel through the C++ registry, process
settings, fork safety, inputs handed to C++ as they are."""
import multiprocessing
import subprocess
import sys

import pytest
import torch
from PIL import Image

import bgevl
from conftest import fixture_path

CLIP = fixture_path("clip", "tiny-fp16-quickgelu")
MLLM = fixture_path("llava", "tiny-llava-next-legacy")


def test_load_picks_the_class_through_the_registry():
    clip = bgevl.load(CLIP)
    assert isinstance(clip, bgevl.CLIPModel) and clip.family == "clip"
    assert clip.embedding_dim == 16
    mllm = bgevl.AutoModel.from_pretrained(MLLM)
    assert isinstance(mllm, bgevl.MLLMModel) and mllm.family == "llava_next"
    assert bgevl.model_family(MLLM) == "llava_next"
    assert torch.equal(bgevl.CLIPModel(CLIP).encode(text="a cat"), clip.encode(text="a cat"))
    with pytest.raises(ValueError, match="BGE-VL-MLLM"):  # the family-specific class checks
        bgevl.CLIPModel(MLLM)


SETTINGS_PROBE = r'''
import ctypes, sys, torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
torch.set_num_threads(1)
import bgevl
m = bgevl.AutoModel.from_pretrained(sys.argv[1])
m.encode(text="a cat")
if len(sys.argv) > 2:
    bgevl.tune_cpu_allocator()
before = libc.mallinfo2().hblks
p = libc.malloc(64 << 20)
ctypes.memset(p, 1, 1)
print(torch.get_num_threads(), libc.mallinfo2().hblks - before)
'''


def test_loading_leaves_threads_and_allocator_alone():
    out = subprocess.run([sys.executable, "-c", SETTINGS_PROBE, CLIP], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["1", "1"]  # one thread still; a 64 MiB block still its own mapping
    tuned = subprocess.run([sys.executable, "-c", SETTINGS_PROBE, CLIP, "tune"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert tuned == ["1", "0"]  # the explicit call does change it


def test_set_num_threads_is_explicit():
    before = torch.get_num_threads()
    try:
        bgevl.set_num_threads(2)
        assert torch.get_num_threads() == 2 and bgevl.get_num_threads() == 2
        bgevl.AutoModel.from_pretrained(CLIP, num_threads=1)  # asked for: set
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            bgevl.set_num_threads(100000)
    finally:
        torch.set_num_threads(before)


def test_progress_true_works(capsys):
    m = bgevl.AutoModel.from_pretrained(CLIP, progress=True)
    m.encode(text=["a", "b", "c"], batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err or "100%" in err, err


def _encode_in_child(queue):
    m = _FORK_STATE["model"]
    queue.put(m.encode(text="a cat", images=fixture_path("images", "chelsea.jpg")).tolist())


def _features_in_child(queue):
    m = _FORK_STATE["model"]
    queue.put(m.get_text_features(**m.processor(text="a cat")).tolist())


_FORK_STATE = {}


def test_forked_child_encodes():
    """multiprocessing's fork start method (gunicorn --preload alike): the child must not hang."""
    before = torch.get_num_threads()
    bgevl.set_num_threads(2)
    try:
        m = bgevl.AutoModel.from_pretrained(CLIP)
        want = m.encode(text="a cat", images=fixture_path("images", "chelsea.jpg"))
        _FORK_STATE["model"] = m
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_encode_in_child, args=(q,))
        p.start()
        got = q.get(timeout=120)
        p.join(timeout=30)
        assert p.exitcode == 0
        assert torch.allclose(torch.tensor(got), want, atol=1e-6)
        # a model built by its class, used through the processor first (the card's other calls)
        m = bgevl.CLIPModel(CLIP)
        want = m.get_text_features(**m.processor(text="a cat"))
        _FORK_STATE["model"] = m
        p = ctx.Process(target=_features_in_child, args=(q,))
        p.start()
        got = q.get(timeout=120)
        p.join(timeout=30)
        assert p.exitcode == 0
        assert torch.allclose(torch.tensor(got), want, atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_set_processor_checks_the_family():
    clip = bgevl.load(CLIP)
    with pytest.raises(ValueError, match="BGE-VL-MLLM"):
        clip.set_processor(MLLM)
    mllm = bgevl.load(MLLM)
    with pytest.raises(ValueError, match="BGE-VL-CLIP"):
        mllm.set_processor(CLIP)


def test_pil_images_go_to_cpp_as_pixels():
    from bgevl import _inputs

    for name in ("chelsea.jpg", "palette_P.png", "grey_alpha_LA.png", "rgba.png", "bilevel_1.png",
                 "grey_L.png", "cmyk.jpg"):
        im = Image.open(fixture_path("images", name))
        for keep in (False, True):
            assert _inputs.image_input(im, keep_mode=keep).kind == "pixels", (name, keep)
