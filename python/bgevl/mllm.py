"""BGE-VL-MLLM (LLaVA-NeXT + Mistral) with the transformers model card's interface."""
import warnings

import torch

from . import _C
from ._inputs import _to_device_str, _to_dtype_str, images as _images, texts as _texts
from ._model import _Model, _progress
from .clip import BatchEncoding

COMPOSED_RETRIEVAL_INSTRUCTION = _C.COMPOSED_RETRIEVAL_INSTRUCTION
_Q_OR_C = ("q", "query", "c", "candidate")


class MLLMModel(_Model):
    """Returned by `bgevl.AutoModel.from_pretrained` for BGE-VL-MLLM-S1/S2 and BGE-VL-v1.5."""

    def __init__(self, path_or_id, device=None, dtype=None, num_threads=0, revision="main",
                 progress=None):
        self._core = _C.MllmEmbedder(str(path_or_id), _to_device_str(device) or "cpu",
                                     _to_dtype_str(dtype) or "float32", int(num_threads), revision,
                                     progress)

    @property
    def hidden_size(self):
        return self._core.hidden_size

    @staticmethod
    def _check(images, text, q_or_c, task_instruction):
        if q_or_c not in _Q_OR_C:
            raise ValueError(f"q_or_c must be one of {_Q_OR_C}, got {q_or_c!r}")
        if images is None and text is None:
            raise ValueError("images and text cannot be both None.")
        if images is not None and text is not None and \
                isinstance(images, (list, tuple)) != isinstance(text, (list, tuple)):
            raise ValueError("images and text must both be lists or both be single items "
                             "(the reference would zip a string's characters with the images)")
        if task_instruction is not None and not isinstance(task_instruction, str):
            raise ValueError("task_instruction must be a str or None")
        if q_or_c in ("q", "query") and task_instruction is None:
            warnings.warn("BGE-VL-MLLM queries work best with a task instruction, e.g. "
                          "bgevl.mllm.COMPOSED_RETRIEVAL_INSTRUCTION for composed image retrieval",
                          stacklevel=3)
        img, _ = _images(images, keep_mode=True)  # the 512 resize comes before convert("RGB")
        txt, _ = _texts(text)
        if img and txt and len(img) != len(txt):
            raise ValueError(f"images and text must be lists of the same length "
                             f"({len(img)} images, {len(txt)} texts)")
        return img, txt

    def prepare_text_input(self, image=None, text=None, q_or_c=None, task_instruction=None):
        """The reference's prompt for one item."""
        return _C.MllmEmbedder.prompt(text, image is not None, q_or_c, task_instruction)

    def data_process(self, images=None, text=None, q_or_c=None, task_instruction=None):
        """The model card's data_process: a dict of tensors on the model's device."""
        img, txt = self._check(images, text, q_or_c, task_instruction)
        ids, mask, px, sizes = self._core.data_process(img, txt, q_or_c, task_instruction)
        out = BatchEncoding(input_ids=ids, attention_mask=mask)
        if img:
            out["pixel_values"], out["image_sizes"] = px, sizes
        return out.to(self.device)

    def __call__(self, input_ids=None, attention_mask=None, pixel_values=None, image_sizes=None,
                 output_hidden_states=True, **kwargs):
        """model(**inputs, output_hidden_states=True): the final hidden states [B, L, H]."""
        if input_ids is None:
            raise ValueError("input_ids is required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        empty = torch.empty(0)
        return self._core.forward(input_ids, attention_mask,
                                  empty if pixel_values is None else pixel_values,
                                  empty if image_sizes is None else image_sizes)

    forward = __call__

    def encode(self, images=None, text=None, q_or_c="c", task_instruction=None, batch_size=8,
               progress=None):
        """Normalised last-token embeddings [N, H] (float32, on the model's device), computing
        only what the last position needs."""
        img, txt = self._check(images, text, q_or_c, task_instruction)
        return self._core.encode(img, txt, q_or_c, task_instruction, int(batch_size), _progress(progress))

    def __repr__(self):
        return (f"bgevl.MLLMModel({self._core.model_dir!r}, device={self._core.device}, "
                f"dtype={self.dtype}, hidden={self.hidden_size})")
