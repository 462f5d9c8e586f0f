"""What every bgevl model class shares: the family registry of the Python classes, device/dtype
handling like a torch module, encode, progress."""
import sys

import torch

from . import _C
from ._inputs import BgevlTypeError, _dtype_from_str, _to_device_str, _to_dtype_str, items

# family name (C++ registry, config.json's model_type) -> the Python class wrapping its core
_FAMILY_CLASSES = {}


def register_family(name):
    """Class decorator: the class that bgevl.AutoModel / bgevl.load return for that family."""
    def deco(cls):
        _FAMILY_CLASSES[name] = cls
        return cls
    return deco


def wrap(core):
    """A Python model around a loaded C++ embedder, of its family's class."""
    cls = _FAMILY_CLASSES.get(core.family, Model)
    obj = cls.__new__(cls)
    obj._init_core(core)
    return obj


def progress_callback(progress, what="encoded"):
    """None/False: none; a callable(done, total) as is; True: a tqdm bar when tqdm is installed,
    else a line on stderr."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    if progress is not True:
        raise BgevlTypeError("progress must be None, a bool or a callable(done, total)")
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state = {}

    def report(done, total):
        if tqdm is not None:
            bar = state.get("bar")
            if bar is None:
                bar = state["bar"] = tqdm(total=total, desc=what, unit="tensor" if what == "loaded" else "item")
            bar.update(done - bar.n)
            if done == total:
                bar.close()
                state.pop("bar")
            return
        sys.stderr.write(f"\r{what} {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


class Model:
    """Holds `self._core` (a bgevl._C embedder) and mirrors torch.nn.Module's housekeeping."""

    _core_class = None  # the _C class a family's constructor builds; the base loads any family

    def __init__(self, path_or_id, device=None, dtype=None, revision="main", progress=None):
        core = (self._core_class or _C.load)(str(path_or_id), _to_device_str(device) or "cpu",
                                             _to_dtype_str(dtype) or "default", revision,
                                             progress_callback(progress, "loaded"))
        self._init_core(core)

    def _init_core(self, core):
        self._core = core

    def _encode(self, images, text, q_or_c=None, task_instruction=None, batch_size=None,
                truncate=False, progress=None, keep_mode=False):
        img, txt = items(images, text, keep_mode)
        return self._core.encode(img, txt, q_or_c, task_instruction,
                                 0 if batch_size is None else int(batch_size), bool(truncate),
                                 progress_callback(progress))

    def encode(self, images=None, text=None, batch_size=None, truncate=False, progress=None):
        """L2-normalised embeddings [N, D] (float32, on the model's device)."""
        return self._encode(images, text, batch_size=batch_size, truncate=truncate, progress=progress)

    def set_processor(self, model_name, revision=None):
        self._core.set_processor(str(model_name), revision or "")

    def eval(self):
        return self

    def train(self, mode=True):
        if mode:
            raise ValueError("bgevl models are inference-only")
        return self

    def to(self, *args, **kwargs):
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs:
            raise BgevlTypeError(f"unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, torch.dtype):
                dtype = a
            else:
                device = a
        self._core.to(_to_device_str(device) or self._core.device,
                      _to_dtype_str(dtype) or _to_dtype_str(self.dtype))
        return self

    def cuda(self, device=None):
        return self.to("cuda" if device is None else _to_device_str(device))

    def cpu(self):
        return self.to("cpu")

    def half(self):
        return self.to(torch.float16)

    def float(self):
        return self.to(torch.float32)

    def bfloat16(self):
        return self.to(torch.bfloat16)

    @property
    def family(self):
        return self._core.family

    @property
    def device(self):
        return torch.device(self._core.device)

    @property
    def dtype(self):
        return _dtype_from_str(self._core.dtype)

    @property
    def embedding_dim(self):
        return self._core.embedding_dim

    @property
    def name_or_path(self):
        return self._core.model_dir

    def __repr__(self):
        return (f"bgevl.{type(self).__name__}({self._core.model_dir!r}, device={self._core.device}, "
                f"dtype={self.dtype}, dim={self.embedding_dim})")
