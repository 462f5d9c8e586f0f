"""BGE-VL-MLLM (LLaVA-NeXT + Mistral) with the transformers model card's interface."""
import warnings

from . import _C
from ._inputs import items as _items
from ._model import Model, register_family
from .clip import BatchEncoding

COMPOSED_RETRIEVAL_INSTRUCTION = _C.COMPOSED_RETRIEVAL_INSTRUCTION


def _warn_without_instruction(q_or_c, task_instruction):
    # the reference prints this warning; C++ checks everything else
    if q_or_c in ("q", "query") and task_instruction is None:
        warnings.warn("BGE-VL-MLLM queries work best with a task instruction, e.g. "
                      "bgevl.COMPOSED_RETRIEVAL_INSTRUCTION for composed image retrieval",
                      stacklevel=3)


@register_family("llava_next")
class MLLMModel(Model):
    """Returned by `bgevl.AutoModel.from_pretrained` for BGE-VL-MLLM-S1/S2 and BGE-VL-v1.5."""

    _core_class = _C.MllmEmbedder

    @property
    def hidden_size(self):
        return self._core.embedding_dim

    def prepare_text_input(self, image=None, text=None, q_or_c=None, task_instruction=None):
        """The reference's prompt for one item."""
        return _C.MllmEmbedder.prompt(text, image is not None, q_or_c, task_instruction)

    def data_process(self, images=None, text=None, q_or_c=None, task_instruction=None):
        """The model card's data_process: a dict of tensors on the model's device. `q_or_c` is
        required ('q'/'query' or 'c'/'candidate'), as in the card; a list of texts may hold None
        for items without a text."""
        _warn_without_instruction(q_or_c, task_instruction)
        img, txt = _items(images, text, keep_mode=True)  # the 512 resize comes before convert("RGB")
        ids, mask, px, sizes = self._core.data_process(img, txt, q_or_c, task_instruction)
        out = BatchEncoding(input_ids=ids, attention_mask=mask)
        if px is not None:
            out["pixel_values"], out["image_sizes"] = px, sizes
        return out.to(self.device)

    def __call__(self, input_ids=None, attention_mask=None, pixel_values=None, image_sizes=None,
                 output_hidden_states=True, **kwargs):
        """model(**inputs, output_hidden_states=True): the final hidden states [B, L, H]."""
        if input_ids is None:
            raise ValueError("input_ids is required")
        return self._core.forward(input_ids, attention_mask, pixel_values, image_sizes)

    forward = __call__

    def encode(self, images=None, text=None, q_or_c=None, task_instruction=None, batch_size=None,
               truncate=False, progress=None):
        """Normalised last-token embeddings [N, H] (float32, on the model's device), computing
        only what the last position needs. `q_or_c` is required, as in the card's data_process;
        `batch_size` defaults to 8."""
        _warn_without_instruction(q_or_c, task_instruction)
        return self._encode(images, text, q_or_c, task_instruction, batch_size, truncate, progress,
                            keep_mode=True)
