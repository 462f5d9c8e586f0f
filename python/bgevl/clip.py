"""BGE-VL-CLIP with the transformers model card's interface."""
from . import _C
from ._inputs import items as _items
from ._model import Model, register_family


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
            _, txt = _items(None, text)
            out["input_ids"], out["attention_mask"] = self._core.tokenize(txt, bool(truncation))
        if images is not None:
            img, _ = _items(images, None)
            out["pixel_values"] = self._core.pixel_values(img)
        return out


@register_family("clip")
class CLIPModel(Model):
    """Returned by `bgevl.AutoModel.from_pretrained` for BGE-VL-base / BGE-VL-large checkpoints."""

    _core_class = _C.ClipEmbedder

    def _init_core(self, core):
        super()._init_core(core)
        self.processor = CLIPProcessor(core)

    # --- the model card's API ------------------------------------------------------------------
    def encode(self, images=None, text=None, batch_size=None, truncate=False, progress=None):
        """L2-normalised embeddings [N, D] (float32, on the model's device).

        images only, text only, or both (composed query: the projected vectors are summed, then
        normalised). A single item gives N = 1; lists of images and texts must have equal lengths
        (a None entry leaves that item's text or image out). `batch_size`: items per forward pass
        (default 32). `progress`: True for a progress bar, or a callable (done, total)."""
        return self._encode(images, text, batch_size=batch_size, truncate=truncate,
                            progress=progress)

    def get_text_features(self, input_ids=None, attention_mask=None, **kwargs):
        if input_ids is None:
            raise ValueError("input_ids is required")
        return self._core.get_text_features(input_ids, attention_mask)

    def get_image_features(self, pixel_values=None, **kwargs):
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return self._core.get_image_features(pixel_values)
