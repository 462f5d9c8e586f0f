"""bgevl: BGE-VL multimodal embeddings on libtorch, with the transformers model-card API.

BGE-VL-CLIP (BGE-VL-base, BGE-VL-large):

    import bgevl, torch
    model = bgevl.AutoModel.from_pretrained("BAAI/BGE-VL-base")   # or a checkpoint folder
    model.set_processor("BAAI/BGE-VL-base"); model.eval()
    with torch.no_grad():
        q = model.encode(images="q.png", text="make the background dark")
        c = model.encode(images=["a.png", "b.png"])
    scores = q @ c.T

BGE-VL-MLLM (BGE-VL-MLLM-S1/S2, BGE-VL-v1.5): `model.data_process(...)` then
`model(**inputs, output_hidden_states=True)[:, -1, :]`, or `model.encode(..., q_or_c=...)`.

Constructing a model changes no process-wide setting; `bgevl.set_num_threads(n)` sets libtorch's
and bgevl's threads, `bgevl.tune_cpu_allocator()` the CPU allocator (10-20% faster on the CPU).
"""
import json
import os
import sys

import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C
from ._inputs import BgevlTypeError, _fs_name, _to_device_str, _to_dtype_str
from ._model import Model, progress_callback, wrap
from .clip import BatchEncoding, CLIPModel, CLIPProcessor
from .index import Index, SearchResult, average_precision_at_k, convert_dataset, has_faiss, recall_at_k
from .mllm import COMPOSED_RETRIEVAL_INSTRUCTION, MLLMModel

__version__ = _C.__version__
__all__ = ["AutoModel", "CLIPModel", "CLIPProcessor", "MLLMModel", "Model", "BatchEncoding",
           "BgevlTypeError", "COMPOSED_RETRIEVAL_INSTRUCTION", "load", "model_family",
           "set_num_threads", "get_num_threads", "tune_cpu_allocator", "__version__",
           "Index", "SearchResult", "has_faiss", "recall_at_k", "average_precision_at_k",
           "convert_dataset", "resolve", "hub_cache_dir"]

set_num_threads = _C.set_num_threads
hub_cache_dir = _C.hub_cache_dir  # hub_cache_dir(cache_dir=""): where hub ids are cached
get_num_threads = _C.get_num_threads
tune_cpu_allocator = _C.tune_cpu_allocator


def model_family(path_or_id, revision="main"):
    """'clip' or 'llava_next', from the checkpoint's config.json."""
    return _C.model_family(os.fspath(path_or_id), revision)


def download_progress(progress):
    """A (file, done, total) callback for hub downloads: a tqdm bar per file (a line on stderr
    without tqdm) unless progress is False; a callable(done, total) gets the bytes."""
    if progress is False:
        return None
    if callable(progress) and progress is not True:
        return lambda name, done, total: progress(done, total)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state = {}

    def report(name, done, total):
        if tqdm is not None:
            bar = state.get(name)
            if bar is None:
                bar = state[name] = tqdm(total=total or None, desc=name, unit="B", unit_scale=True)
            bar.update(done - bar.n)
            if total and done >= total:
                bar.close()
            return
        if total and (done >= total or done - state.get(name, 0) > (8 << 20)):
            state[name] = done
            sys.stderr.write(f"\rdownloading {name}: {done >> 20}/{total >> 20} MiB")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return report


def resolve(path_or_id, revision="main", cache_dir=None, token=None, local_files_only=False,
            progress=None):
    """The local folder of a checkpoint path or hub id: a hub id is looked up in the Hugging Face
    cache and downloaded into it when absent (only the files bgevl reads), as huggingface_hub
    does; `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE=1` are honoured."""
    if not isinstance(path_or_id, (str, os.PathLike)):
        raise BgevlTypeError("path_or_id must be a str or os.PathLike, got "
                             f"{type(path_or_id).__name__}")
    if token is True or token is False:
        token = None  # transformers' token=True: the saved token (HF_TOKEN, HF_HOME/token)
    return _C.resolve_model(_fs_name(path_or_id), revision or "main",
                            os.fspath(cache_dir) if cache_dir is not None else "", token or "",
                            bool(local_files_only), download_progress(progress))


def load(path_or_id, device=None, dtype=None, revision="main", progress=None, cache_dir=None,
         token=None, local_files_only=False):
    """Loads a checkpoint folder or hub id (downloaded into the Hugging Face cache when absent)
    with the class its config.json's family needs (CLIPModel, MLLMModel)."""
    folder = resolve(path_or_id, revision, cache_dir, token, local_files_only, progress)
    core = _C.load(_fs_name(folder), _to_device_str(device) or "cpu", _to_dtype_str(dtype) or "default",
                   revision or "main", progress_callback(progress, "loaded"))
    return wrap(core)


def _auto_dtype(folder, device):
    """torch_dtype="auto": the dtype config.json records (the checkpoint's own)."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    name = cfg.get("torch_dtype") or (cfg.get("text_config") or {}).get("torch_dtype") or "float32"
    if name == "float16" and (device is None or str(device).startswith("cpu")):
        raise ValueError(f"torch_dtype='auto': {folder} is float16, which bgevl runs on CUDA only; "
                         "on the CPU pass torch_dtype=torch.float32 (the reference) or torch.bfloat16")
    return name


def _device_of_map(device_map):
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        raise ValueError("device_map as a dict (a model split across devices) is not supported: "
                         "give one device ('cpu', 'cuda', 'cuda:1' or 'auto')")
    if device_map == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return _to_device_str(device_map)


class AutoModel:
    """`AutoModel.from_pretrained(path_or_id, ...)` picks the bgevl class."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, device=None, dtype=None, torch_dtype=None,
                        trust_remote_code=None, num_threads=None, revision="main", progress=None,
                        cache_dir=None, local_files_only=False, token=None, device_map=None,
                        use_auth_token=None, **kwargs):
        """transformers' arguments are honoured or refused, never ignored: `cache_dir`,
        `revision`, `local_files_only`, `token` (`use_auth_token`), `torch_dtype` (a dtype or
        "auto": the checkpoint's), `device_map` ("cpu", "cuda", "cuda:N", "auto": CUDA when
        visible); `trust_remote_code` is accepted (bgevl has the model code built in). Any other
        keyword: TypeError naming it. `num_threads`: when given, bgevl.set_num_threads (process-
        wide, as torch.set_num_threads)."""
        if kwargs:
            raise TypeError("from_pretrained got unsupported keyword arguments "
                            f"{sorted(kwargs)} (bgevl honours cache_dir, revision, local_files_only, "
                            "token, torch_dtype, device_map, trust_remote_code; see help(bgevl.AutoModel))")
        if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
            raise ValueError("give dtype or torch_dtype, not both")
        mapped = _device_of_map(device_map)
        if device is not None and mapped is not None and _to_device_str(device) != mapped:
            raise ValueError(f"device={device!r} and device_map={device_map!r} disagree")
        device = device if device is not None else mapped
        if token is None and use_auth_token is not None:
            token = use_auth_token
        if num_threads is not None:
            set_num_threads(int(num_threads))
        folder = resolve(pretrained_model_name_or_path, revision, cache_dir, token, local_files_only,
                         progress)
        dtype = dtype if dtype is not None else torch_dtype
        if dtype == "auto":
            dtype = _auto_dtype(folder, _to_device_str(device))
        core = _C.load(_fs_name(folder), _to_device_str(device) or "cpu", _to_dtype_str(dtype) or "default",
                       revision or "main", progress_callback(progress, "loaded"))
        return wrap(core)
