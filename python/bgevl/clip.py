"""BGE-VL-CLIP with the transformers model card's interface."""
import torch

from . import _C
from ._inputs import _to_device_str, _to_dtype_str, images as _images, texts as _texts
from ._model import _Model, _progress


class BatchEncoding(dict):
    """A dict of tensors with attribute access and .to(), like transformers' BatchEncoding."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def to(self, device):
        return BatchEncoding({k: v.to(device) for k, v in self.items()})


class CLIPProcessor:
    """The processor of a BGE-VL-CLIP model: `processor(images=..., text=..., return_tensors="pt")`."""

    def __init__(self, core):
        self._core = core

    def __call__(self, images=None, text=None, return_tensors="pt", padding=True, truncation=False,
                 **kwargs):
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt', got {return_tensors!r}")
        if padding not in (True, "longest"):
            raise ValueError("only padding=True (pad to the longest text) is supported")
        if images is None and text is None:
            raise ValueError("You have to specify either text or images. Both cannot be none.")
        out = BatchEncoding()
        if text is not None:
            items, _ = _texts(text)
            ids, mask = self._core.tokenize(items, bool(truncation))
            out["input_ids"], out["attention_mask"] = ids, mask
        if images is not None:
            items, _ = _images(images)
            out["pixel_values"] = self._core.pixel_values(items)
        return out


class CLIPModel(_Model):
    """Returned by `bgevl.AutoModel.from_pretrained` for BGE-VL-base / BGE-VL-large checkpoints."""

    def __init__(self, path_or_id, device=None, dtype=None, num_threads=0, revision="main",
                 progress=None):
        self._core = _C.ClipEmbedder(str(path_or_id), _to_device_str(device) or "cpu",
                                     _to_dtype_str(dtype) or "float32", int(num_threads), revision,
                                     progress)
        self.processor = CLIPProcessor(self._core)

    @property
    def embedding_dim(self):
        return self._core.embedding_dim

    # --- the model card's API ------------------------------------------------------------------
    def encode(self, images=None, text=None, batch_size=32, truncate=False, progress=None):
        """L2-normalised embeddings [N, D] (float32, on the model's device).

        images only, text only, or both (composed query: the projected vectors are summed, then
        normalised). A single item gives N = 1; lists of images and texts must have equal lengths.
        `progress`: True for a progress bar on stderr, or a callable (done, total)."""
        if images is None and text is None:
            raise ValueError("images and text cannot both be None")
        if images is not None and text is not None:
            if isinstance(images, (list, tuple)) != isinstance(text, (list, tuple)):
                raise ValueError("images and text must be the same type: list or single item")
        img, _ = _images(images)
        txt, _ = _texts(text)
        if img and txt and len(img) != len(txt):
            raise ValueError(
                f"images and text must be lists of the same length ({len(img)} images, {len(txt)} texts)")
        return self._core.encode(img, txt, int(batch_size), bool(truncate), _progress(progress))

    def get_text_features(self, input_ids=None, attention_mask=None, **kwargs):
        if input_ids is None:
            raise ValueError("input_ids is required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self._core.text_features(input_ids, attention_mask)

    def get_image_features(self, pixel_values=None, **kwargs):
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return self._core.image_features(pixel_values)

    def __repr__(self):
        return (f"bgevl.CLIPModel({self._core.model_dir!r}, device={self._core.device}, "
                f"dtype={self.dtype}, dim={self.embedding_dim})")
