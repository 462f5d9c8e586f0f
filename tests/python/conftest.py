import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import safetensors_io  # noqa: E402  (reads the reference outputs; no bgevl involved)

# No test reaches the real Hugging Face hub: hub ids resolve from the cache only, unless a test
# (test_hub.py, against its own fake hub) lifts this.
os.environ["HF_HUB_OFFLINE"] = "1"

# Tolerance policy: as tests/cpp/test_util.h.
PIXEL_TOL = 1e-6
FLOAT32_TOL = 1e-5


@pytest.fixture(scope="session")
def cases():
    with open(os.path.join(FIXTURES, "clip", "cases.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def expected():
    cache = {}

    def load(ckpt):
        if ckpt not in cache:
            cache[ckpt] = safetensors_io.load_torch(os.path.join(FIXTURES, "clip", ckpt + ".expected.safetensors"))
        return cache[ckpt]

    return load


def fixture_path(*parts):
    return os.path.join(FIXTURES, *parts)


def image_arg(v):
    if v is None:
        return None
    if isinstance(v, str):
        return fixture_path("images", v)
    return [fixture_path("images", x) for x in v]


def cli():
    """The bgevl program: the one installed beside this Python, else the build tree's."""
    for cand in (os.path.join(sys.prefix, "bin", "bgevl"), os.path.join(ROOT, "build", "bgevl")):
        if os.path.exists(cand):
            return cand
    pytest.skip("bgevl command-line program not built")


# The bundled toy model and its gallery (the retrieval and server tests).
TOY_MODEL = os.path.join(ROOT, "models", "bgevl-tiny-clip")
TOY_GALLERY = os.path.join(ROOT, "models", "gallery")


@pytest.fixture(scope="session")
def model():
    """The bundled toy model, loaded once."""
    import bgevl

    return bgevl.load(TOY_MODEL)


@pytest.fixture(scope="session")
def gallery_index(tmp_path_factory):
    """`bgevl index` of the bundled gallery (read-only for the tests that share it)."""
    out = tmp_path_factory.mktemp("idx") / "gallery.index"
    subprocess.run([cli(), "index", "--model", TOY_MODEL, "--images", TOY_GALLERY, "--out", str(out),
                    "--quiet"], check=True, cwd=ROOT)
    return out
