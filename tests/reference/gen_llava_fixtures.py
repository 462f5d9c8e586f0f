#!/usr/bin/env python3
"""Generate the BGE-VL-MLLM (LLaVA-NeXT) test fixtures from the *reference* implementation.

The expected outputs come only from Hugging Face transformers 4.45.2 (its
LlavaNextProcessor / LlavaNextImageProcessor / slow LlamaTokenizer and
LlavaNextForConditionalGeneration + MistralForCausalLM) and the BGE-VL-MLLM model
code `modeling_llavanext_for_embedding.py` (class LLaVANextForEmbedding, shipped in
the BAAI/BGE-VL-MLLM-* model repositories), used exactly as the model card does:

    model = LLaVANextForEmbedding.from_pretrained(folder)     # float32, eval
    model.set_processor(folder)
    inputs = model.data_process(images=..., text=..., q_or_c=..., task_instruction=...)
    emb = normalize(model(**inputs, output_hidden_states=True)[:, -1, :], dim=-1)

Nothing in here calls bgevl.

Requirements (not installed or vendored by this script):
  * a Python where `import transformers` gives exactly 4.45.2 (asserted), with
    torch, numpy, Pillow, sentencepiece (also its trainer), protobuf (LlamaTokenizer
    legacy=False);
  * the file modeling_llavanext_for_embedding.py, passed with --mllm-code PATH.

The tokenizer is the project's own tiny SentencePiece BPE model (1,200 pieces), trained
here by tests/reference/gen_tiny_sentencepiece.py's train() and written into the checkpoint
folder as tokenizer.model: the real Mistral model (32,000 pieces) may not be copied into the
project, and the fixtures must work on a fresh clone. `<image>` and `<pad>` are the two ids
after its last piece (1200, 1201), as 32000, 32001 follow Mistral's 32,000 pieces; the text
vocabulary is padded to 1216 rows, a multiple of 64 (the real checkpoints pad 32002 to 32064).

Usage (from the repository root; the environment used for the committed
fixtures is described in tests/fixtures/llava/README.md):

    python3 tests/reference/gen_llava_fixtures.py --mllm-code /path/to/modeling_llavanext_for_embedding.py

What it writes (see tests/fixtures/llava/README.md for details):
  tests/fixtures/llava/tiny-llava-next-legacy/      tiny random checkpoint (legacy tokenizer),
                                                    F16 weights in two shards + index, tokenizer.model
  tests/fixtures/llava/tiny-llava-next/             the same weights and tokenizer.model (relative
                                                    symlinks to the files above), legacy=false tokenizer
  tests/fixtures/llava/<ckpt>.expected.safetensors  per-case reference outputs
  tests/fixtures/llava/images.expected.safetensors  per-image vision/projector stages (shared)
  tests/fixtures/llava/cases.json                   the cases (inputs, tensor names, versions)
  tests/fixtures/llava/README.md

It does not touch tests/fixtures/llava/{pixel_values.safetensors,pixel_cases.json,
preprocessor_config.json} (written by another generator).

Everything is deterministic: fixed seeds, no timestamps, one torch thread;
rerunning in the same environment rewrites identical bytes.

The work is split over helper modules in tests/reference/: llava_fixture_cases.py (ids,
checkpoint folders, sizes, the cases), llava_fixture_checkpoint.py (writing the checkpoint
folders), llava_fixture_reference.py (running the reference model) and llava_fixture_readme.py
(writing the README).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen_tiny_sentencepiece  # noqa: E402  (tests/reference/gen_tiny_sentencepiece.py)
import safetensors_io  # noqa: E402  (tests/reference/safetensors_io.py)
from llava_fixture_cases import (  # noqa: E402
    CIR, CKPTS, DIMS, IMAGE_TOKEN_ID, PAD_TOKEN_ID, SEED, SHARED_WEIGHT_FILES, SP_VOCAB, WEIGHTS_FROM,
    case_list, is_batch, item_key, single_items,
)
from llava_fixture_checkpoint import PREPROCESSOR_CONFIG, make_config, shard_summary, write_checkpoint  # noqa: E402
from llava_fixture_readme import write_readme  # noqa: E402
from llava_fixture_reference import (  # noqa: E402
    blas_info, fp64_embeddings, image_stage_tensors, load_mllm, load_reference_model, prompts_of, run_case,
)

REPO = os.path.dirname(os.path.dirname(HERE))
REQUIRED_TRANSFORMERS = "4.45.2"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mllm-code", required=True, help="path to modeling_llavanext_for_embedding.py")
    ap.add_argument("--out-root", default=REPO, help="repository root (default: this checkout)")
    args = ap.parse_args()

    import PIL
    import sentencepiece
    import torch
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        raise SystemExit(f"transformers {transformers.__version__} found, need exactly {REQUIRED_TRANSFORMERS}")
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reduction order independent of the machine's core count

    # the project's tiny SentencePiece model (deterministic training, see gen_tiny_sentencepiece.py)
    tok_model = gen_tiny_sentencepiece.train()
    tok_sha = hashlib.sha256(tok_model).hexdigest()

    img_dir = os.path.join(args.out_root, "tests", "fixtures", "images")
    llava_dir = os.path.join(args.out_root, "tests", "fixtures", "llava")
    os.makedirs(llava_dir, exist_ok=True)

    other_pp = os.path.join(llava_dir, "preprocessor_config.json")  # the pixel generator's copy
    if os.path.isfile(other_pp):
        with open(other_pp, encoding="utf-8") as f:
            if json.load(f) != PREPROCESSOR_CONFIG:
                print(f"NOTE: {other_pp} differs from this script's PREPROCESSOR_CONFIG")

    mllm = load_mllm(args.mllm_code)
    cfg = make_config()
    cases = case_list()

    # the two folders: weights written once, symlinked from the second
    tensors = None
    for ckpt, spec in CKPTS.items():
        folder = os.path.join(llava_dir, ckpt)
        t = write_checkpoint(folder, spec["legacy"], cfg, tok_model,
                             weights_from=None if ckpt == WEIGHTS_FROM else WEIGHTS_FROM)
        tensors = t if t is not None else tensors
    # both committed folders load as they are (symlinks included)
    for ckpt in CKPTS:
        m, info = mllm.LLaVANextForEmbedding.from_pretrained(os.path.join(llava_dir, ckpt),
                                                             output_loading_info=True)
        if any(info.values()):
            raise RuntimeError(f"{ckpt}: loading info not clean: {info}")
        del m

    meta = {
        "format": 1,
        "generator": "tests/reference/gen_llava_fixtures.py",
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "sentencepiece": sentencepiece.__version__,
            "blas": blas_info(),
            "mllm_code": "modeling_llavanext_for_embedding.py (class LLaVANextForEmbedding, BAAI/BGE-VL-MLLM-*)",
            "mllm_code_sha256": sha256(args.mllm_code),
            "tokenizer_model": (f"tests/fixtures/llava/{WEIGHTS_FROM}/tokenizer.model: the project's tiny SentencePiece "
                                f"BPE model ({SP_VOCAB} pieces, trained by tests/reference/gen_tiny_sentencepiece.py)"),
            "tokenizer_model_sha256": tok_sha,
            "tokenizer_model_bytes": len(tok_model),
            "image_token_id": IMAGE_TOKEN_ID,
            "pad_token_id": PAD_TOKEN_ID,
            "dtype": "float32 (F16 checkpoint upcast: from_pretrained without torch_dtype)",
            "attention": "eager",
            "threads": 1,
        },
        "images_dir": "tests/fixtures/images",
        "instructions": {"cir": CIR},
        "checkpoints": {},
        "image_stages": {"file": "tests/fixtures/llava/images.expected.safetensors", "images": {}},
        "cases": [],
    }

    image_stages = {}  # image name -> stage tensors (the same for both checkpoints: same weights)
    outputs_by_ckpt = {}
    notes_by_ckpt = {}
    for ckpt, spec in CKPTS.items():
        folder = os.path.join(llava_dir, ckpt)  # the committed folder itself, symlinks included
        model, tok_note = load_reference_model(mllm, folder, tensors)
        assert model.processor.tokenizer.legacy == spec["legacy"]
        assert model.padding_side == "left"
        newline_dtype = str(dict(model.named_parameters())["image_newline"].dtype)
        outputs, notes = {}, {}
        for case in cases:
            res, stages, note = run_case(model, case, img_dir)
            for k, v in res.items():
                outputs[f"{case['name']}/{k}"] = v
            notes[case["name"]] = note
            case["prompts"] = prompts_of(model, case)
            if stages:
                first = case["images"] if isinstance(case["images"], str) else case["images"][0]
                prev = image_stages.get(first)
                if prev is None:
                    image_stages[first] = dict(stages, from_case=case["name"], from_ckpt=ckpt)
                else:
                    diffs = {k: float((prev[k].double() - stages[k].double()).abs().max())
                             for k in ("vision_features", "projector_output", "packed_features",
                                       "pixel_values")}
                    case.setdefault("first_image_stages_max_abs_diff", {})[ckpt] = diffs
                    if max(diffs.values()) > 1e-4:
                        raise RuntimeError(f"{case['name']}: stages of {first} differ: {diffs}")

        # batched vs one by one (data_process with a single item)
        for case in cases:
            if not is_batch(case):
                continue
            singles = []
            for item in single_items(case):
                r, _, _ = run_case(model, item, img_dir)
                singles.append(r["embeddings"])
            d = float((torch.cat(singles) - outputs[f"{case['name']}/embeddings"]).abs().max())
            case.setdefault("batched_vs_single_max_abs_diff", {})[ckpt] = d
            if d > 1e-4:
                raise RuntimeError(f"{case['name']}: batched and single embeddings differ by {d}")

        # conditioning: the same cases in float64
        model.double()
        for case in cases:
            e64 = fp64_embeddings(model, case, img_dir)
            d = float((e64 - outputs[f"{case['name']}/embeddings"].double()).abs().max())
            case.setdefault("fp32_vs_fp64_max_abs_diff", {})[ckpt] = d
        del model

        outputs_by_ckpt[ckpt] = outputs
        notes_by_ckpt[ckpt] = notes
        meta["checkpoints"][ckpt] = {
            "dir": f"tests/fixtures/llava/{ckpt}",
            "expected": f"tests/fixtures/llava/{ckpt}.expected.safetensors",
            "tokenizer_legacy": spec["legacy"],
            "weights": ("files" if ckpt == WEIGHTS_FROM else
                        f"relative symlinks to ../{WEIGHTS_FROM}/ ({', '.join(SHARED_WEIGHT_FILES)})"),
            "tokenizer_used": tok_note,
            "image_newline_dtype_after_load": newline_dtype,
        }

    finish(args, meta, cases, outputs_by_ckpt, notes_by_ckpt, image_stages, cfg, tensors, llava_dir, tok_model)


def tokenizer_summary(tok_model, outputs_by_ckpt):
    """What cases.json / README say about the tiny SentencePiece model, with the pieces that the
    prompts' fixed parts become (read from the c_image case's ids)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=tok_model)

    def piece(i):
        return {IMAGE_TOKEN_ID: "<image>", PAD_TOKEN_ID: "<pad>"}.get(i) or sp.id_to_piece(i)

    def split(ckpt, case, row=0):
        ids = [int(i) for i in outputs_by_ckpt[ckpt][f"{case}/input_ids"][row] if int(i) != PAD_TOKEN_ID]
        k = ids.index(IMAGE_TOKEN_ID)
        return [[i, piece(i)] for i in ids[:k]], [[i, piece(i)] for i in ids[k + 1:]]

    before, after_legacy = split("tiny-llava-next-legacy", "c_image")
    _, after_nonlegacy = split("tiny-llava-next", "c_image")
    before_text, _ = split("tiny-llava-next-legacy", "c_text_image")
    return {
        "file": f"tests/fixtures/llava/{WEIGHTS_FROM}/tokenizer.model (symlinked from tiny-llava-next/)",
        "generator": "tests/reference/gen_tiny_sentencepiece.py (train(), called by this script)",
        "sha256": hashlib.sha256(tok_model).hexdigest(),
        "bytes": len(tok_model),
        "model_type": "BPE",
        "pieces": sp.get_piece_size(),
        "special": {"<unk>": 0, "<s>": 1, "</s>": 2},
        "byte_pieces": "<0x00>..<0xFF> at ids 3..258",
        "added_tokens": {"<image>": IMAGE_TOKEN_ID, "<pad>": PAD_TOKEN_ID},
        "text_vocab_rows": DIMS["vocab"],
        "trainer_kwargs": {k: v for k, v in gen_tiny_sentencepiece.trainer_kwargs().items() if k != "minloglevel"},
        "corpus_lines": len(gen_tiny_sentencepiece.corpus()),
        "differs_from_mistral": [{"field": f"{spec}.{field}", "tiny": have, "mistral": want}
                                 for spec, field, have, want in gen_tiny_sentencepiece.spec_differences(tok_model)],
        "candidate_image_prompt_before_image": before,
        "after_image_legacy": after_legacy,
        "after_image_non_legacy": after_nonlegacy,
        "candidate_text_image_prompt_before_image": before_text,
    }


def finish(args, meta, cases, outputs_by_ckpt, notes_by_ckpt, image_stages, cfg, tensors, llava_dir, tok_model):
    import torch
    import transformers

    ckpts = list(CKPTS)
    for ckpt in ckpts:
        safetensors_io.save_torch(outputs_by_ckpt[ckpt],
                                  os.path.join(llava_dir, f"{ckpt}.expected.safetensors"),
                                  {"format": "pt", "transformers": transformers.__version__, "checkpoint": ckpt})

    img_tensors = {}
    for name in sorted(image_stages):
        st = image_stages[name]
        for k, v in image_stage_tensors(st).items():
            img_tensors[f"{name}/{k}"] = v
        pv = st["pixel_values"]
        meta["image_stages"]["images"][name] = {
            "from_case": f"{st['from_ckpt']}/{st['from_case']}",
            "image_size": [512, 512],
            "n_tiles": int(pv.shape[0]),
            "feature_len": int(st["packed_features"].shape[0]),
            "pixel_values_shape": list(pv.shape),
            "pixel_values_f32_sha256": hashlib.sha256(pv.float().numpy().tobytes()).hexdigest(),
            "tensors": [f"{name}/{k}" for k in image_stage_tensors(st)],
        }
    safetensors_io.save_torch(img_tensors, os.path.join(llava_dir, "images.expected.safetensors"),
                              {"format": "pt", "transformers": transformers.__version__})

    # the weights are the same for both checkpoints, so every image stage is too: the stage
    # tensors were taken from the first checkpoint; the second's equal them (checked above
    # whenever an image came back); the embeddings differ only through the token ids.
    for case in cases:
        o = [outputs_by_ckpt[c] for c in ckpts]
        n = case["name"]
        same_ids = all(torch.equal(o[0][f"{n}/input_ids"], x[f"{n}/input_ids"]) for x in o[1:])
        case["input_ids_equal_across_checkpoints"] = same_ids
        if same_ids and not all(torch.equal(o[0][f"{n}/embeddings"], x[f"{n}/embeddings"]) for x in o[1:]):
            raise RuntimeError(f"{n}: same ids, different embeddings across checkpoints")
        case["n_tokens"] = {c: [int(v) for v in outputs_by_ckpt[c][f"{n}/attention_mask"].sum(1)]
                            for c in ckpts}
        case["batch"] = int(o[0][f"{n}/embeddings"].shape[0])
        names = ["input_ids", "attention_mask", "embeddings", "last_hidden"]
        if case["images"] is not None:
            names += ["image_sizes", "feature_lens", "merged_seq_len", "merged_lengths"]
            first = case["images"] if isinstance(case["images"], str) else case["images"][0]
            case["first_image"] = first
            case["first_image_stages"] = meta["image_stages"]["images"][first]["tensors"]
            case["merged_seq_len"] = {c: int(outputs_by_ckpt[c][f"{n}/merged_seq_len"][0]) for c in ckpts}
        case["tensors"] = [f"{n}/{k}" for k in names]
        nt = notes_by_ckpt[ckpts[0]][n]
        case["built_with"] = nt["built_with"]
        if "data_process_error" in nt:
            case["data_process_error"] = nt["data_process_error"]
        case["reference_printed"] = nt.get("printed")
        case["lm_position_ids"] = nt["lm_position_ids_rule"]
        case["embedding_rule"] = "normalize(model(**inputs, output_hidden_states=True)[:, -1, :], dim=-1)"

    # pairwise cosine of all (case, row) embeddings: inputs must be distinguishable
    keys, rows = [], []
    o = outputs_by_ckpt[ckpts[0]]
    for case in cases:
        e = o[f"{case['name']}/embeddings"]
        for i in range(e.shape[0]):
            keys.append((case, i))
            rows.append(e[i])
    E = torch.stack(rows).double()
    C = E @ E.T
    worst = (-2.0, None)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            if item_key(*keys[a]) == item_key(*keys[b]):
                continue  # the same input in two cases
            if C[a, b] > worst[0]:
                worst = (float(C[a, b]), (f"{keys[a][0]['name']}[{keys[a][1]}]", f"{keys[b][0]['name']}[{keys[b][1]}]"))
    if worst[0] > 0.995:  # distinct enough: 1 - 0.995 is far above float32 noise
        raise RuntimeError(f"embeddings of different inputs too similar: {worst}")
    meta["max_cosine_between_different_inputs"] = {"checkpoint": ckpts[0], "cosine": round(worst[0], 4),
                                                   "pair": list(worst[1])}

    meta["tokenizer"] = tokenizer_summary(tok_model, outputs_by_ckpt)
    meta["cases"] = cases
    meta["model"] = {
        "vision": "CLIP ViT, image 336, patch 14 (576 patches + CLS), hidden 32, 3 layers, 4 heads, MLP 64, quick_gelu",
        "text": f"Mistral, hidden 32, 2 layers, 4 heads, 2 KV heads (head_dim 8), MLP 64, silu, vocab {DIMS['vocab']}, "
                "rope_theta 1e6, rms_norm_eps 1e-5, no sliding window",
        "projector": "32 -> 32 -> 32, GELU (erf)",
        "weights": "F16, every parameter random (fixed seed), two shards + model.safetensors.index.json",
        "n_parameters": int(sum(t.numel() for t in tensors.values())),
        "shards": shard_summary(llava_dir),
    }
    with open(os.path.join(llava_dir, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_readme(llava_dir, meta, args)
    print("done:", llava_dir)
    print("max cosine between different inputs:", meta["max_cosine_between_different_inputs"])
    for case in cases:
        print(f"  {case['name']:24s} n_tokens={case['n_tokens']} ids_equal={case['input_ids_equal_across_checkpoints']}"
              f" batched_vs_single={case.get('batched_vs_single_max_abs_diff')} fp64={case['fp32_vs_fp64_max_abs_diff']}")


if __name__ == "__main__":
    main()
