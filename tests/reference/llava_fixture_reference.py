"""Run the reference (transformers 4.45.2 + LLaVANextForEmbedding) on the LLaVA-NeXT cases for
gen_llava_fixtures.py: load the model, build the inputs as data_process does, record the
intermediate stages, float64 conditioning runs.
"""

import contextlib
import importlib.util
import io
import os
import sys

from llava_fixture_cases import IMAGE_TOKEN_ID, PAD_TOKEN_ID, SP_VOCAB, is_batch, single_items


def load_mllm(path):
    spec = importlib.util.spec_from_file_location("modeling_llavanext_for_embedding", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["modeling_llavanext_for_embedding"] = mod
    spec.loader.exec_module(mod)
    return mod


def blas_info():
    """The BLAS torch uses (Debian's torch links the system libblas.so.3; OpenBLAS picks its
    kernels by CPU, and float32 sums then differ in the last bits between kernel sets)."""
    import ctypes

    import torch  # noqa: F401  (loads libblas)

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            libs = sorted({ln.split()[-1] for ln in f if "blas" in ln.rsplit("/", 1)[-1]})
    except OSError:
        libs = []
    for lib in libs:
        try:
            h = ctypes.CDLL(lib)
            h.openblas_get_corename.restype = ctypes.c_char_p
            h.openblas_get_config.restype = ctypes.c_char_p
            return (f"{h.openblas_get_config().decode()} (core {h.openblas_get_corename().decode()}, "
                    f"{os.path.realpath(lib)})")
        except (OSError, AttributeError):
            continue
    return ", ".join(libs) or "unknown"


def load_reference_model(mllm, folder, tensors):
    import torch

    model, info = mllm.LLaVANextForEmbedding.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise RuntimeError(f"LLaVANextForEmbedding from {folder}: loading info not clean: {bad}")
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    sd = model.state_dict()
    if set(sd) != set(tensors):
        raise RuntimeError(f"state_dict keys differ: {sorted(set(sd) ^ set(tensors))}")
    for name, t in tensors.items():
        if sd[name].dtype != torch.float32 or not torch.equal(sd[name], t.float()):
            raise RuntimeError(f"{folder}: {name} did not round-trip (dtype {sd[name].dtype})")
    model.eval()
    try:
        model.set_processor(folder)
        tok_note = "set_processor(folder)"
    except (ImportError, ValueError) as e:
        model.processor = mllm.LlavaNextProcessor.from_pretrained(folder, use_fast=False)
        tok_note = f"LlavaNextProcessor.from_pretrained(folder, use_fast=False) (set_processor raised {type(e).__name__})"
    tok = model.processor.tokenizer
    assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [IMAGE_TOKEN_ID, PAD_TOKEN_ID]
    assert tok.sp_model.get_piece_size() == SP_VOCAB and len(tok) == SP_VOCAB + 2
    tok_note += f"; tokenizer class {type(tok).__name__}, legacy={tok.legacy}, padding_side={tok.padding_side}"
    return model, tok_note


class Capture:
    """Wraps submodules' forward (instance attributes) to record what the reference computes
    inside model(**inputs): vision tower hidden states, projector output, packed features,
    and the language model's inputs after the image merge."""

    def __init__(self, model):
        self.model = model
        self.rec = {}

    def __enter__(self):
        m, rec = self.model, self.rec

        def wrap(obj, attr, fn):
            orig = getattr(obj, attr)

            def w(*a, **k):
                out = orig(*a, **k)
                fn(a, k, out)
                return out
            setattr(obj, attr, w)

        def on_vision(a, k, out):
            rec["vision_hidden_states"] = out.hidden_states
            rec["vision_pixel_values"] = a[0] if a else k["pixel_values"]

        def on_proj(a, k, out):
            rec["projector_output"] = out

        def on_pack(a, k, out):
            rec["packed_features"], rec["feature_lens"] = out

        def on_lm(a, k, out):
            rec["lm_inputs_embeds"] = k["inputs_embeds"]
            rec["lm_attention_mask"] = k["attention_mask"]
            rec["lm_position_ids"] = k["position_ids"]

        wrap(m.vision_tower, "forward", on_vision)
        wrap(m.multi_modal_projector, "forward", on_proj)
        wrap(m, "pack_image_features", on_pack)
        wrap(m.language_model, "forward", on_lm)
        return rec

    def __exit__(self, *exc):
        for obj in (self.model.vision_tower, self.model.multi_modal_projector, self.model.language_model):
            del obj.forward
        del self.model.pack_image_features
        return False


def _paths(x, img_dir):
    if x is None:
        return None
    return os.path.join(img_dir, x) if isinstance(x, str) else [os.path.join(img_dir, p) for p in x]


def build_inputs(model, case, img_dir):
    """model.data_process as the model card calls it. A list of texts without images crashes
    there (zip(None, text)); that case builds the prompts with the model's own
    prepare_text_input and calls the processor as data_process would."""
    images, text = _paths(case["images"], img_dir), case["text"]
    note = {}
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        if images is None and isinstance(text, list):
            try:
                model.data_process(images=None, text=text, q_or_c=case["q_or_c"],
                                   task_instruction=case["task_instruction"])
                raise RuntimeError("data_process unexpectedly accepted a text list without images")
            except TypeError as e:
                note["data_process_error"] = f"{type(e).__name__}: {e}"
            prompts = [model.prepare_text_input(None, t, case["q_or_c"], case["task_instruction"])
                       for t in text]
            inputs = model.processor(text=prompts, return_tensors="pt", padding=True)
            note["built_with"] = ("prepare_text_input per text + processor(text=prompts, "
                                  "return_tensors='pt', padding=True)")
        else:
            inputs = model.data_process(images=images, text=text, q_or_c=case["q_or_c"],
                                        task_instruction=case["task_instruction"])
            note["built_with"] = "data_process"
    printed = stdout.getvalue()
    if printed:
        note["printed"] = printed
    return inputs, note


def run_case(model, case, img_dir):
    import torch

    inputs, note = build_inputs(model, case, img_dir)
    with torch.no_grad(), Capture(model) as rec:
        hidden = model(**inputs, output_hidden_states=True)
    assert torch.is_tensor(hidden) and hidden.dtype == torch.float32, type(hidden)
    last = hidden[:, -1, :]
    emb = torch.nn.functional.normalize(last, dim=-1)
    out = {
        "input_ids": inputs["input_ids"].to(torch.int64),
        "attention_mask": inputs["attention_mask"].to(torch.int64),
        "embeddings": emb,
        "last_hidden": last,
    }
    stages = {}
    if "pixel_values" in inputs:
        out["image_sizes"] = inputs["image_sizes"].to(torch.int64)
        out["feature_lens"] = rec["feature_lens"].to(torch.int64)
        am = rec["lm_attention_mask"]
        out["merged_seq_len"] = torch.tensor([rec["lm_inputs_embeds"].shape[1]], dtype=torch.int64)
        out["merged_lengths"] = am.sum(-1).to(torch.int64)
        # the first image's tiles are the first rows of the vision batch
        n0 = int(inputs["pixel_values"].shape[1])  # 5 for every 512x512 image
        stages = {
            "vision_features": rec["vision_hidden_states"][-2][:n0, 1:].contiguous(),
            "projector_output": rec["projector_output"][:n0].contiguous(),
            "packed_features": rec["packed_features"][: int(rec["feature_lens"][0])].contiguous(),
            "pixel_values": rec["vision_pixel_values"][:n0].contiguous(),
        }
        note["lm_position_ids_rule"] = _check_position_ids(rec, left_padded_text_only=False)
    else:
        note["lm_position_ids_rule"] = _check_position_ids(rec, left_padded_text_only=True)
    return {k: v.detach().contiguous() for k, v in out.items()}, stages, note


def _check_position_ids(rec, left_padded_text_only):
    import torch

    pos = rec["lm_position_ids"]
    am = rec["lm_attention_mask"]
    if left_padded_text_only:
        if pos is not None:
            raise RuntimeError("text-only: expected position_ids None")
        return "None passed to the language model: positions 0..L-1 for every row, pads included"
    expect = (am.cumsum(-1) - 1).masked_fill(am == 0, 1)
    if not torch.equal(pos, expect):
        raise RuntimeError("merged position_ids differ from cumsum(mask)-1 (pads 1)")
    return "cumsum(merged attention_mask) - 1, pads set to 1: counts only real positions"


def prompts_of(model, case):
    """The prompt strings data_process builds (prepare_text_input), one per item."""
    items = single_items(case) if is_batch(case) else [case]
    with contextlib.redirect_stdout(io.StringIO()):
        return [model.prepare_text_input(it["images"], it["text"], it["q_or_c"], it["task_instruction"])
                for it in items]


def fp64_embeddings(model, case, img_dir):
    """The same case with the model upcast to float64 (conditioning check, not a fixture).
    Batches are run item by item: in float64 the eager attention's float32 softmax turns the
    float64 mask minimum into -inf, fully masked (left pad) rows become NaN and 0 * NaN then
    reaches the real rows of the next layer; float32, as the reference runs, is not affected."""
    import torch

    if is_batch(case):
        return torch.cat([fp64_embeddings(model, it, img_dir) for it in single_items(case)])
    inputs, _ = build_inputs(model, case, img_dir)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].double()
    with torch.no_grad():
        hidden = model(**inputs)
    return torch.nn.functional.normalize(hidden[:, -1, :], dim=-1)


def image_stage_tensors(stages):
    """What is kept per image (see README): the base tile (tile 0, the whole image squashed to
    336x336) in full, per-tile checksums, and per-row checksums of the packed features."""
    import torch

    vf, po, pk = stages["vision_features"], stages["projector_output"], stages["packed_features"]

    def tile_sums(x):
        x = x.double()
        return torch.stack([x.sum(dim=(1, 2)), x.abs().sum(dim=(1, 2))], dim=1)

    return {
        "vision_features_tile0": vf[0].contiguous(),
        "projector_output_tile0": po[0].contiguous(),
        "vision_features_tile_sums": tile_sums(vf),
        "projector_output_tile_sums": tile_sums(po),
        "packed_features_row_sums": pk.double().sum(dim=1).float(),
        "packed_features_row_abs_sums": pk.double().abs().sum(dim=1).float(),
    }

