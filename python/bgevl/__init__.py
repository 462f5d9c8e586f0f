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
"""
import os

import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C
from ._inputs import BgevlTypeError
from .clip import BatchEncoding, CLIPModel, CLIPProcessor
from .mllm import COMPOSED_RETRIEVAL_INSTRUCTION, MLLMModel

__version__ = _C.__version__
__all__ = ["AutoModel", "CLIPModel", "CLIPProcessor", "MLLMModel", "BatchEncoding",
           "BgevlTypeError", "COMPOSED_RETRIEVAL_INSTRUCTION", "__version__"]


class AutoModel:
    """`AutoModel.from_pretrained(path_or_id, device=None, dtype=None)` picks the bgevl class."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, device=None, dtype=None, torch_dtype=None,
                        trust_remote_code=None, num_threads=0, revision="main", progress=None,
                        **kwargs):
        if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
            raise BgevlTypeError("pretrained_model_name_or_path must be a str or os.PathLike, got "
                                 f"{type(pretrained_model_name_or_path).__name__}")
        path = os.fspath(pretrained_model_name_or_path)
        dtype = dtype if dtype is not None else torch_dtype
        kind = _C.model_kind(path, revision)  # FileNotFoundError / ValueError for bad folders
        cls = MLLMModel if kind == "llava_next" else CLIPModel
        return cls(path, device=device, dtype=dtype, num_threads=num_threads, revision=revision,
                   progress=progress)
