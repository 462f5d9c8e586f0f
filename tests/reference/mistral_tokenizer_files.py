"""The tokenizer files of a BGE-VL-MLLM (LLaVA-NeXT / llava-v1.6-mistral-7b-hf) checkpoint.

write_tokenizer_files(folder, tokenizer_model_path, legacy) writes, into `folder`:
  tokenizer.model          a copy of the SentencePiece model (Mistral's: 32,000 pieces);
  tokenizer_config.json    LlamaTokenizer settings: BOS added, no EOS, `legacy` as asked, pad <pad>,
                           padding on the left, added_tokens_decoder with <unk> 0, <s> 1, </s> 2,
                           <image> 32000, <pad> 32001 (all special, normalized/lstrip/rstrip false);
  added_tokens.json        {"<image>": 32000, "<pad>": 32001};
  special_tokens_map.json  bos/eos/unk/pad.
These mirror llava-hf/llava-v1.6-mistral-7b-hf's files as saved by transformers 4.4x (the chat
template and other keys a tokenizer does not read are left out). The real checkpoint also ships a
tokenizer.json; write_tokenizer_json() writes an equivalent one (transformers 4.45.2's
LlamaConverter) when asked, with include_tokenizer_json=True.

The ids of <image> and <pad> are those of the real checkpoints (32000, 32001: the two ids after
Mistral's 32,000 pieces) unless `image_id` / `pad_id` are given, as for the project's tiny
SentencePiece model (tests/reference/gen_tiny_sentencepiece.py: 1,200 pieces, so 1200 and 1201);
added_token_ids(tokenizer_model_path) gives the two ids after a model's last piece.

Only the standard library and `sentencepiece` (for tokenizer.json only) are used; nothing here is
installed or downloaded.
"""

import json
import os
import shutil

IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_ID = 32000
PAD_TOKEN = "<pad>"
PAD_TOKEN_ID = 32001


def _added(content):
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }


def added_token_ids(tokenizer_model_path):
    """(<image> id, <pad> id) for a SentencePiece model: its piece count and the next id, as in
    the real checkpoints (32000, 32001 after Mistral's 32,000 pieces)."""
    import sentencepiece as spm

    n = spm.SentencePieceProcessor(model_file=tokenizer_model_path).get_piece_size()
    return n, n + 1


def tokenizer_config(legacy, image_id=IMAGE_TOKEN_ID, pad_id=PAD_TOKEN_ID):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            "0": _added("<unk>"),
            "1": _added("<s>"),
            "2": _added("</s>"),
            str(image_id): _added(IMAGE_TOKEN),
            str(pad_id): _added(PAD_TOKEN),
        },
        "additional_special_tokens": [],
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": bool(legacy),
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": PAD_TOKEN,
        "padding_side": "left",
        "processor_class": "LlavaNextProcessor",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }


def special_tokens_map():
    def tok(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    return {
        "bos_token": tok("<s>"),
        "eos_token": tok("</s>"),
        "pad_token": tok(PAD_TOKEN),
        "unk_token": tok("<unk>"),
    }


def added_tokens(image_id=IMAGE_TOKEN_ID, pad_id=PAD_TOKEN_ID):
    return {IMAGE_TOKEN: image_id, PAD_TOKEN: pad_id}


def _dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def write_tokenizer_files(folder, tokenizer_model_path, legacy, include_tokenizer_json=False,
                          image_id=IMAGE_TOKEN_ID, pad_id=PAD_TOKEN_ID):
    """Writes the tokenizer files of a BGE-VL-MLLM checkpoint into `folder` (created if needed)."""
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, "tokenizer.model")
    if os.path.abspath(tokenizer_model_path) != os.path.abspath(dst):
        shutil.copyfile(tokenizer_model_path, dst)
    _dump(os.path.join(folder, "tokenizer_config.json"), tokenizer_config(legacy, image_id, pad_id))
    _dump(os.path.join(folder, "special_tokens_map.json"), special_tokens_map())
    _dump(os.path.join(folder, "added_tokens.json"), added_tokens(image_id, pad_id))
    if include_tokenizer_json:
        write_tokenizer_json(os.path.join(folder, "tokenizer.json"), tokenizer_model_path, legacy,
                             image_id=image_id, pad_id=pad_id)


def _generate_merges(vocab, vocab_scores):
    # transformers 4.45.2 convert_slow_tokenizer.generate_merges, with vocab_scores given.
    scores = dict(vocab_scores)
    merges = []
    for merge, piece_score in scores.items():
        local = []
        for index in range(1, len(merge)):
            piece_l, piece_r = merge[:index], merge[index:]
            if piece_l in vocab and piece_r in vocab:
                local.append((piece_l, piece_r, piece_score))
        local = sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges = sorted(merges, key=lambda val: (val[2], len(val[0]), len(val[1])), reverse=True)
    return [[a, b] for a, b, _ in merges]


def tokenizer_json(tokenizer_model_path, legacy, add_prefix_space=True, image_id=IMAGE_TOKEN_ID,
                   pad_id=PAD_TOKEN_ID):
    """The tokenizer.json that transformers 4.45.2 (LlamaConverter + LlamaTokenizerFast) makes from
    tokenizer.model with the added tokens <image> and <pad>, as a dict."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.Load(tokenizer_model_path)
    n = sp.GetPieceSize()
    # LlamaConverter.vocab: ids 0..2 as the slow tokenizer names them, then (piece, score).
    vocab_scores = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0)]
    vocab_scores += [(sp.IdToPiece(i), sp.GetScore(i)) for i in range(3, n)]
    bpe_vocab = {w: i for i, (w, _) in enumerate(vocab_scores)}
    extractor_vocab = {sp.IdToPiece(i): i for i in range(n)}
    merges = _generate_merges(extractor_vocab, vocab_scores)

    def added(i, content):
        d = _added(content)
        d["id"] = i
        return {k: d[k] for k in ["id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"]}

    if legacy:
        seq = []
        if add_prefix_space:
            seq.append({"type": "Prepend", "prepend": "\u2581"})
        seq.append({"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})
        normalizer = {"type": "Sequence", "normalizers": seq}
        pre_tokenizer = None
    else:
        normalizer = None
        scheme = "first" if add_prefix_space else "never"
        pre_tokenizer = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": False}
    decoders = [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if add_prefix_space:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            added(0, "<unk>"),
            added(1, "<s>"),
            added(2, "</s>"),
            added(image_id, IMAGE_TOKEN),
            added(pad_id, PAD_TOKEN),
        ],
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        # LlamaTokenizerFast.update_post_processor: add_bos_token=True, add_eos_token=False.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": bpe_vocab,
            "merges": merges,
        },
    }


def write_tokenizer_json(path, tokenizer_model_path, legacy, add_prefix_space=True, image_id=IMAGE_TOKEN_ID,
                         pad_id=PAD_TOKEN_ID):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(tokenizer_model_path, legacy, add_prefix_space, image_id, pad_id), f,
                  ensure_ascii=False)
