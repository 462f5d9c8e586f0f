"""Hub downloads (src/io/hub.cpp, libcurl) against a fake hub served on loopback by the test
(tests/python/fake_hub.py): the cache layout huggingface_hub writes and reads, only the files a
model needs, HF_ENDPOINT / HF_TOKEN / HF_HUB_OFFLINE / local_files_only, another revision, a 404,
a 401, an interrupted download resumed with a Range request; and from_pretrained's arguments."""
import hashlib
import os
import subprocess

import pytest
import torch

import bgevl
from conftest import ROOT, TOY_MODEL, cli
from fake_hub import FakeHub

LLAVA = os.path.join(ROOT, "tests", "fixtures", "llava", "tiny-llava-next")
EXTRA = {"README.md": b"# a model card\n", "pytorch_model.bin": b"\0" * 1000,
         "modeling_MMRet_CLIP.py": b"# remote code\n"}


@pytest.fixture()
def hub(monkeypatch, tmp_path):
    h = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no saved token
    yield h
    h.close()


def cached_file(cache, repo, filename, revision="main"):
    """huggingface_hub's try_to_load_from_cache rules, written out: refs/<revision> holds the
    commit, snapshots/<commit>/<filename> the file (a link into blobs/)."""
    root = os.path.join(cache, "models--" + repo.replace("/", "--"))
    ref = os.path.join(root, "refs", revision)
    commit = open(ref).read().strip() if os.path.isfile(ref) else revision
    path = os.path.join(root, "snapshots", commit, filename)
    return path if os.path.isfile(path) else None


def test_download_layout_then_cache_and_offline(hub, tmp_path, monkeypatch):
    refs = hub.add_repo("BAAI/tiny-clip", TOY_MODEL, extra=EXTRA)
    commit = refs["main"]
    got = bgevl.load("BAAI/tiny-clip", progress=False)
    want = bgevl.load(TOY_MODEL)
    with torch.no_grad():
        assert torch.equal(got.encode(text=["a red circle", "make it blue"]),
                           want.encode(text=["a red circle", "make it blue"]))
    cache = str(tmp_path / "cache")
    root = os.path.join(cache, "models--BAAI--tiny-clip")
    assert open(os.path.join(root, "refs", "main")).read() == commit
    snap = os.path.join(root, "snapshots", commit)
    assert sorted(os.listdir(snap)) == sorted(os.listdir(TOY_MODEL))  # not README, .bin, .py
    for name in os.listdir(snap):
        link = os.path.join(snap, name)
        assert os.path.islink(link) and os.readlink(link).startswith("../../blobs/"), name
        data = open(os.path.join(TOY_MODEL, name), "rb").read()
        etag = os.path.basename(os.readlink(link))
        if name.endswith(".safetensors"):
            assert etag == hashlib.sha256(data).hexdigest()  # LFS: the sha256
        else:
            assert etag == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # the ETag
        assert open(link, "rb").read() == data
        assert cached_file(cache, "BAAI/tiny-clip", name) == link
    assert not [f for f in os.listdir(os.path.join(root, "blobs")) if f.endswith(".incomplete")]
    # Cached: no request to the hub, also offline.
    n = len(hub.log)
    bgevl.load("BAAI/tiny-clip", local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bgevl.load("BAAI/tiny-clip")
    assert len(hub.log) == n
    # Absent and offline: a clear error, no request.
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        bgevl.load("BAAI/other")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(FileNotFoundError, match="local_files_only"):
        bgevl.load("BAAI/other", local_files_only=True)
    assert len(hub.log) == n


def test_a_cache_laid_out_by_huggingface_hub_is_read(hub, tmp_path):
    """The reverse direction: blobs + relative symlinks + refs as huggingface_hub writes them."""
    cache = tmp_path / "cache"
    root = cache / "models--BAAI--handmade"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (root / "blobs").mkdir(parents=True)
    (root / "snapshots" / commit).mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for name in os.listdir(TOY_MODEL):
        data = open(os.path.join(TOY_MODEL, name), "rb").read()
        blob = hashlib.sha256(data).hexdigest()
        (root / "blobs" / blob).write_bytes(data)
        os.symlink(os.path.join("..", "..", "blobs", blob), root / "snapshots" / commit / name)
    m = bgevl.load("BAAI/handmade", local_files_only=True)
    assert m.encode(text="a red circle").shape == (1, 32)
    assert not hub.log  # found in the cache: no request


def test_other_revision_sharded_weights_and_cli(hub, tmp_path):
    refs = hub.add_repo("BAAI/tiny-llava", LLAVA, revisions=("main", "v2"))
    m = bgevl.load("BAAI/tiny-llava", revision="v2", progress=False)
    assert m.family == "llava_next"
    root = tmp_path / "cache" / "models--BAAI--tiny-llava"
    assert (root / "refs" / "v2").read_text() == refs["v2"]
    assert not (root / "refs" / "main").exists()
    snap = root / "snapshots" / refs["v2"]
    assert (snap / "model-00001-of-00002.safetensors").is_file()  # shards from the index
    assert (snap / "model-00002-of-00002.safetensors").is_file()
    assert not (snap / "generation_config.json").exists()  # bgevl does not read it
    # The command line downloads too (main this time), with a progress line per file.
    hub.add_repo("BAAI/tiny-clip", TOY_MODEL)
    out = tmp_path / "e.npy"
    res = subprocess.run([cli(), "encode", "--model", "BAAI/tiny-clip", "--text", "a red circle",
                          "--out", str(out), "--quiet"], capture_output=True, text=True, env=os.environ)
    assert res.returncode == 0, res.stderr
    assert "downloading model.safetensors" in res.stderr
    assert out.exists()


def test_404_and_401(hub, monkeypatch):
    hub.add_repo("BAAI/private", TOY_MODEL, private_token="s3cret")
    with pytest.raises(FileNotFoundError, match="not found on the hub"):
        bgevl.load("BAAI/nope")
    with pytest.raises(FileNotFoundError, match="not found on the hub"):
        bgevl.load("BAAI/private", revision="no-such-branch", token="s3cret")
    with pytest.raises(RuntimeError, match="401.*HF_TOKEN"):
        bgevl.load("BAAI/private")
    with pytest.raises(RuntimeError, match="401.*no access"):
        bgevl.load("BAAI/private", token="wrong")
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    assert bgevl.load("BAAI/private", progress=False).embedding_dim == 32
    api = [e for e in hub.log if e[1].startswith("/api/models/BAAI/private/revision/main")]
    assert api[-1][2].get("Authorization") == "Bearer s3cret"


def test_interrupted_download_resumes_with_a_range_request(hub, tmp_path):
    hub.add_repo("BAAI/tiny-clip", TOY_MODEL)
    data = open(os.path.join(TOY_MODEL, "model.safetensors"), "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    hub.cut_once.add(sha)
    with pytest.raises(RuntimeError, match="stopped after .* bytes.*run again"):
        bgevl.load("BAAI/tiny-clip", progress=False)
    blobs = tmp_path / "cache" / "models--BAAI--tiny-clip" / "blobs"
    part = blobs / (sha + ".incomplete")
    assert part.stat().st_size == len(data) // 2
    assert not (tmp_path / "cache" / "models--BAAI--tiny-clip" / "refs" / "main").exists()
    m = bgevl.load("BAAI/tiny-clip", progress=False)
    ranges = [e[2].get("Range") for e in hub.requests("/cdn/" + sha)]
    assert ranges[-1] == f"bytes={len(data) // 2}-"
    assert hashlib.sha256((blobs / sha).read_bytes()).hexdigest() == sha
    assert not part.exists()
    with torch.no_grad():
        assert torch.equal(m.encode(text="a red circle"), bgevl.load(TOY_MODEL).encode(text="a red circle"))


def test_from_pretrained_arguments(hub, tmp_path):
    hub.add_repo("BAAI/tiny-clip", TOY_MODEL)
    with pytest.raises(TypeError, match="attn_implementation"):
        bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", attn_implementation="sdpa")
    other = tmp_path / "elsewhere"
    m = bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", cache_dir=other, device_map="cpu",
                                        trust_remote_code=True, progress=False)
    assert (other / "models--BAAI--tiny-clip" / "refs" / "main").is_file()
    assert not (tmp_path / "cache" / "models--BAAI--tiny-clip").exists()
    assert m.device == torch.device("cpu") and m.dtype == torch.float32
    m = bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", cache_dir=other, device_map="auto",
                                        local_files_only=True)
    assert m.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    # The toy checkpoint is float16: "auto" on the CPU says why it cannot, instead of ignoring it.
    with pytest.raises(ValueError, match="float16"):
        bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", cache_dir=other, torch_dtype="auto")
    with pytest.raises(ValueError, match="dict"):
        bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", cache_dir=other, device_map={"": 0})
    assert bgevl.AutoModel.from_pretrained("BAAI/tiny-clip", cache_dir=other,
                                           torch_dtype=torch.bfloat16).dtype == torch.bfloat16
