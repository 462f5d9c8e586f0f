"""Conversions from what Python users pass to what the C++ core takes. Checks live in C++."""
import os

import torch

from . import _C


class BgevlTypeError(TypeError, ValueError):
    """A wrong argument type. It is both a TypeError and a ValueError, so either except clause works."""


def _fs_name(path):
    """A path for the C++ core: its bytes as the file system has them (os.fsencode), so that a
    name that is not valid UTF-8 still opens; a hub id stays as it is."""
    p = os.fspath(path)
    return os.fsencode(p) if isinstance(p, str) and not p.isascii() else p


def _to_device_str(device):
    if device is None:
        return None
    if isinstance(device, int):
        return f"cuda:{device}"
    if isinstance(device, torch.device):
        return str(device)
    if isinstance(device, str):
        return device
    raise BgevlTypeError(f"device must be a str, int or torch.device, got {type(device).__name__}")


_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _to_dtype_str(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        return _DTYPES.get(dtype, str(dtype)[len("torch."):])
    if isinstance(dtype, str):
        return dtype[len("torch."):] if dtype.startswith("torch.") else dtype
    raise BgevlTypeError(f"dtype must be a torch.dtype or str, got {type(dtype).__name__}")


def _dtype_from_str(name):
    return {"Float": torch.float32, "Half": torch.float16, "BFloat16": torch.bfloat16}[name]


# PIL modes handed to C++ as pixels in their own mode (for pipelines that resize before
# converting to RGB); "P" and "1" go as their RGB / grey expansion and keep PIL's nearest resize.
_OWN_MODES = ("L", "LA", "RGB", "RGBA", "CMYK")


def _pil_input(im, keep_mode):
    import numpy as np

    def pixels(img, mode=None):
        t = torch.from_numpy(np.array(img, dtype=np.uint8))  # a writable, contiguous copy
        return _C.ImageInput.pixels(t) if mode is None else _C.ImageInput.pixels(t, mode)

    if not keep_mode:  # what the reference does with a file: Image.open(p).convert("RGB")
        return pixels(im if im.mode == "RGB" else im.convert("RGB"))
    if im.mode in _OWN_MODES:
        return pixels(im, im.mode)
    if im.mode == "P":
        return pixels(im.convert("RGB"), "P")
    if im.mode == "1":
        return pixels(im.convert("L"), "1")
    return pixels(im.convert("RGB"))  # 16-bit, float, YCbCr, ...: converted first


def image_input(obj, keep_mode=False):
    """One image: a path (str or os.PathLike), encoded bytes, a PIL image, or an HxW / HxWxC uint8
    array or tensor.

    keep_mode: a PIL image keeps its mode instead of being converted to RGB first, for pipelines
    that resize before converting (BGE-VL-MLLM)."""
    if isinstance(obj, (str, os.PathLike)):
        return _C.ImageInput.path(_fs_name(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _C.ImageInput.bytes(bytes(obj))
    try:  # PIL is optional
        from PIL import Image as _PILImage

        if isinstance(obj, _PILImage.Image):
            return _pil_input(obj, keep_mode)
    except ImportError:
        pass
    if type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray":
        try:
            obj = torch.from_numpy(obj.copy(order="C"))
        except TypeError as e:
            raise BgevlTypeError(f"image arrays must be uint8, got dtype {obj.dtype}") from e
    if isinstance(obj, torch.Tensor):
        return _C.ImageInput.pixels(obj.detach().cpu().contiguous())
    raise BgevlTypeError(
        "an image must be a file path, bytes, a PIL.Image.Image or an HxWx3 uint8 numpy array, "
        f"got {type(obj).__name__}")


def _is_list(value):
    return isinstance(value, (list, tuple))


def items(images, text, keep_mode=False):
    """Parallel lists (images, texts) for the core; None entries stay None. A single item becomes
    a one-element list; an image list with a single text (or the reverse) is refused, since the
    reference would zip a string's characters with the images."""
    if images is not None and text is not None and _is_list(images) != _is_list(text):
        raise ValueError("images and text must both be lists or both be single items")
    img = [] if images is None else (list(images) if _is_list(images) else [images])
    txt = [] if text is None else (list(text) if _is_list(text) else [text])
    for i, t in enumerate(txt):
        if t is not None and not isinstance(t, str):
            raise BgevlTypeError(f"text[{i}] must be a str or None, got {type(t).__name__}")
    return [None if x is None else image_input(x, keep_mode) for x in img], txt
