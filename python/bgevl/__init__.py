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
import os

import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C
from ._inputs import BgevlTypeError, _to_device_str, _to_dtype_str
from ._model import Model, progress_callback, wrap
from .clip import BatchEncoding, CLIPModel, CLIPProcessor
from .index import Index, SearchResult, average_precision_at_k, convert_dataset, has_faiss, recall_at_k
from .mllm import COMPOSED_RETRIEVAL_INSTRUCTION, MLLMModel

__version__ = _C.__version__
__all__ = ["AutoModel", "CLIPModel", "CLIPProcessor", "MLLMModel", "Model", "BatchEncoding",
           "BgevlTypeError", "COMPOSED_RETRIEVAL_INSTRUCTION", "load", "model_family",
           "set_num_threads", "get_num_threads", "tune_cpu_allocator", "__version__",
           "Index", "SearchResult", "has_faiss", "recall_at_k", "average_precision_at_k",
           "convert_dataset"]

set_num_threads = _C.set_num_threads
get_num_threads = _C.get_num_threads
tune_cpu_allocator = _C.tune_cpu_allocator


def model_family(path_or_id, revision="main"):
    """'clip' or 'llava_next', from the checkpoint's config.json."""
    return _C.model_family(os.fspath(path_or_id), revision)


def load(path_or_id, device=None, dtype=None, revision="main", progress=None):
    """Loads a checkpoint folder or cached hub id with the class its config.json's family needs
    (CLIPModel, MLLMModel), through the C++ registry."""
    if not isinstance(path_or_id, (str, os.PathLike)):
        raise BgevlTypeError("path_or_id must be a str or os.PathLike, got "
                             f"{type(path_or_id).__name__}")
    core = _C.load(os.fspath(path_or_id), _to_device_str(device) or "cpu",
                   _to_dtype_str(dtype) or "float32", revision, progress_callback(progress, "loaded"))
    return wrap(core)


class AutoModel:
    """`AutoModel.from_pretrained(path_or_id, device=None, dtype=None)` picks the bgevl class."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, device=None, dtype=None, torch_dtype=None,
                        trust_remote_code=None, num_threads=None, revision="main", progress=None,
                        **kwargs):
        """`num_threads`: when given, bgevl.set_num_threads(num_threads) (process-wide, as
        torch.set_num_threads); left alone by default."""
        if num_threads is not None:
            set_num_threads(int(num_threads))
        return load(pretrained_model_name_or_path, device=device,
                    dtype=dtype if dtype is not None else torch_dtype, revision=revision,
                    progress=progress)
