"""Tiny pure-Python reader/writer for the safetensors file format.

Used by the fixture generators to write checkpoints and expected outputs
without depending on the `safetensors` wheel (not packaged by Debian).

Format (https://github.com/huggingface/safetensors):
    8 bytes   little-endian u64 N = length of the JSON header
    N bytes   UTF-8 JSON: {"__metadata__": {str: str}, name: {"dtype": "F32",
              "shape": [..], "data_offsets": [begin, end]}, ...}; the
              header is padded with spaces to a multiple of 8 bytes
    rest      raw little-endian tensor data, offsets relative to its start

Tensors are written in the same order as the Rust library writes them (wider
dtypes first, then by name), so output bytes depend only on the tensors and
metadata (deterministic) and every tensor is aligned to its item size.

numpy API:  save_numpy(dict[str, np.ndarray], path, metadata=None)
            load_numpy(path) -> dict[str, np.ndarray]   (BF16 -> float32)
torch API:  save_torch(dict[str, torch.Tensor], path, metadata=None)
            load_torch(path) -> dict[str, torch.Tensor]
            read_header(path) -> (header dict without __metadata__, metadata)
"""

import json
import struct

import numpy as np

# safetensors dtype name -> (numpy dtype or None for BF16, item size)
_NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    "BF16": np.dtype("<u2"),  # raw bits; converted explicitly
}
_NP_TO_ST = {v: k for k, v in _NP_DTYPES.items() if k != "BF16"}


# The Rust library writes tensors sorted by dtype (this enum order, descending),
# then by name: 8-byte types come first, so every tensor stays naturally aligned.
_ORDER = ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"]


def _torch_maps():
    import torch

    to_st = {
        torch.float64: "F64",
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }
    return to_st, {v: k for k, v in to_st.items()}


def _build(entries, metadata):
    """entries: list of (name, dtype_str, shape, bytes) -> file bytes."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, dtype, shape, data in sorted(entries, key=lambda e: (-_ORDER.index(e[1]), e[0])):
        header[name] = {
            "dtype": dtype,
            "shape": [int(s) for s in shape],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def _parse(buf):
    if len(buf) < 8:
        raise ValueError("safetensors: file too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("safetensors: header length exceeds file size")
    header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    data_start = 8 + n
    for name, info in header.items():
        b, e = info["data_offsets"]
        if not (0 <= b <= e and data_start + e <= len(buf)):
            raise ValueError(f"safetensors: bad offsets for {name!r}")
    return header, metadata, data_start


def read_header(path):
    with open(path, "rb") as f:
        buf = f.read()
    header, metadata, _ = _parse(buf)
    return header, metadata


# ----------------------------------------------------------------- numpy


def _bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def save_numpy(tensors, path, metadata=None):
    entries = []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        st = _NP_TO_ST.get(arr.dtype.newbyteorder("<"))
        if st is None:
            raise TypeError(f"safetensors: unsupported numpy dtype {arr.dtype} for {name!r}")
        data = np.ascontiguousarray(arr, dtype=_NP_DTYPES[st]).tobytes()
        entries.append((name, st, arr.shape, data))
    with open(path, "wb") as f:
        f.write(_build(entries, metadata))


def load_numpy(path, bf16_as_float32=True):
    with open(path, "rb") as f:
        buf = f.read()
    header, _, start = _parse(buf)
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = _NP_DTYPES[info["dtype"]]
        arr = np.frombuffer(buf, dtype=dt, count=(e - b) // dt.itemsize, offset=start + b)
        arr = arr.reshape(info["shape"]).copy()
        if info["dtype"] == "BF16" and bf16_as_float32:
            arr = _bf16_bits_to_f32(arr)
        out[name] = arr
    return out


# ----------------------------------------------------------------- torch


def _tensor_bytes(t):
    import torch

    to_st, _ = _torch_maps()
    st = to_st.get(t.dtype)
    if st is None:
        raise TypeError(f"safetensors: unsupported torch dtype {t.dtype}")
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        arr = t.view(torch.int16).numpy()
    elif t.dtype == torch.bool:
        arr = t.numpy().astype(np.uint8)
    else:
        arr = t.numpy()
    return st, arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def save_torch(tensors, path, metadata=None):
    entries = []
    for name, t in tensors.items():
        st, data = _tensor_bytes(t)
        entries.append((name, st, tuple(t.shape), data))
    with open(path, "wb") as f:
        f.write(_build(entries, metadata))


def _torch_from(buf, start, info):
    import torch

    _, from_st = _torch_maps()
    b, e = info["data_offsets"]
    st = info["dtype"]
    dt = _NP_DTYPES[st]
    arr = np.frombuffer(buf, dtype=dt, count=(e - b) // dt.itemsize, offset=start + b).copy()
    if st == "BF16":
        t = torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    elif st == "BOOL":
        t = torch.from_numpy(arr.astype(np.bool_))
    else:
        t = torch.from_numpy(arr.astype(dt.newbyteorder("="), copy=False))
    assert t.dtype == from_st[st]
    return t.reshape(info["shape"])


def load_torch(path):
    with open(path, "rb") as f:
        buf = f.read()
    header, _, start = _parse(buf)
    return {name: _torch_from(buf, start, info) for name, info in header.items()}
