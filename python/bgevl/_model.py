"""What every bgevl model class shares: device/dtype handling like a torch module, progress."""
import sys

import torch

from ._inputs import BgevlTypeError, _dtype_from_str, _to_device_str, _to_dtype_str


class _Model:
    """Holds `self._core` (a bgevl._C embedder) and mirrors torch.nn.Module's housekeeping."""

    def set_processor(self, model_name):
        self._core.set_processor(str(model_name))

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
    def device(self):
        return torch.device(self._core.device)

    @property
    def dtype(self):
        return _dtype_from_str(self._core.dtype)

    @property
    def name_or_path(self):
        return self._core.model_dir


def _progress(progress):
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    if progress is True:
        def report(done, total):
            sys.stderr.write(f"\rencoded {done}/{total}")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        return report
    raise BgevlTypeError("progress must be None, a bool or a callable(done, total)")
