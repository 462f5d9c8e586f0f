"""Conversions from what Python users pass to what the C++ core takes."""
import os

import torch

from . import _C


class BgevlTypeError(TypeError, ValueError):
    """A wrong argument type. It is both a TypeError and a ValueError, so either except clause works."""


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


_DTYPES = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


def _to_dtype_str(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype}")
        return _DTYPES[dtype]
    if isinstance(dtype, str):
        return dtype[len("torch."):] if dtype.startswith("torch.") else dtype
    raise BgevlTypeError(f"dtype must be a torch.dtype or str, got {type(dtype).__name__}")


def _dtype_from_str(name):
    return {"Float": torch.float32, "Half": torch.float16, "BFloat16": torch.bfloat16}[name]


# PIL modes that survive a PNG round trip exactly (and that bgevl's decoder opens as PIL does).
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")


def image_input(obj, keep_mode=False):
    """One image: a path (str or os.PathLike), encoded bytes, a PIL image or an HxWx3 uint8 array.

    keep_mode: a PIL image keeps its mode (through a lossless PNG) instead of being converted to
    RGB first, for pipelines that resize before converting (BGE-VL-MLLM)."""
    if isinstance(obj, (str, os.PathLike)):
        return _C.ImageInput.path(os.fspath(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _C.ImageInput.bytes(bytes(obj))
    try:  # PIL is optional
        from PIL import Image as _PILImage

        if isinstance(obj, _PILImage.Image):
            import numpy as np

            if keep_mode and obj.mode in _PNG_MODES:
                import io

                buf = io.BytesIO()
                obj.save(buf, format="PNG")
                return _C.ImageInput.bytes(buf.getvalue())

            # What the reference does with a file: Image.open(p).convert("RGB").
            return _C.ImageInput.pixels(torch.from_numpy(np.array(obj.convert("RGB"), dtype=np.uint8)))
    except ImportError:
        pass
    if type(obj).__module__ == "numpy" and type(obj).__name__ == "ndarray":
        import numpy as np

        if obj.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 HxWx3 (RGB), got dtype {obj.dtype}")
        obj = torch.from_numpy(np.array(obj, copy=True, order="C"))
    if isinstance(obj, torch.Tensor):
        if obj.dtype != torch.uint8 or obj.dim() not in (2, 3):
            raise ValueError(
                f"image tensors must be uint8 HxWx3 (RGB), got {obj.dtype} {tuple(obj.shape)}")
        return _C.ImageInput.pixels(obj.detach().cpu().contiguous())
    raise BgevlTypeError(
        "an image must be a file path, bytes, a PIL.Image.Image or an HxWx3 uint8 numpy array, "
        f"got {type(obj).__name__}")


def as_list(value, what):
    """(items, was_single): a single item becomes a one-element list."""
    if value is None:
        return [], False
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{what} is an empty list")
        return list(value), False
    return [value], True


def texts(value):
    items, single = as_list(value, "text")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise BgevlTypeError(f"text[{i}] must be a str, got {type(t).__name__}")
    return items, single


def images(value, keep_mode=False):
    if isinstance(value, (list, tuple)):
        items, single = as_list(value, "images")
    elif value is None:
        return [], False
    else:
        items, single = [value], True
    return [image_input(x, keep_mode) for x in items], single
