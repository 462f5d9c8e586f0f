#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (corpus/<target>/): small synthetic inputs, a few copies
of the test fixtures and a trimmed copy of the fixture SentencePiece model. Deterministic; rerun
after changing a fixture (python3 tests/fuzz/make_seeds.py) and commit the result."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(rel):
    with open(os.path.join(FIX, rel), "rb") as f:
        return f.read()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---- safetensors_header: whole files (length, header, data section) ---------------------------
def safetensors(header, data=b"", pad=True):
    h = compact(header).encode()
    if pad:
        h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors_header", "one_f32", safetensors(
    {"w": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}}, bytes(range(8))))
put("safetensors_header", "several_dtypes_metadata", safetensors({
    "__metadata__": {"format": "pt", "n": "1"},
    "a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
    "b": {"dtype": "BF16", "shape": [], "data_offsets": [6, 8]},
    "c": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]},
    "d": {"dtype": "U8", "shape": [2, 2], "data_offsets": [16, 20]},
    "e": {"dtype": "I32", "shape": [1], "data_offsets": [20, 24]},
    "z": {"dtype": "BOOL", "shape": [0, 4], "data_offsets": [24, 24]},
}, bytes(24)))
put("safetensors_header", "empty", safetensors({}))
put("safetensors_header", "gap_refused", safetensors({
    "a": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]}}, bytes(16)))
put("safetensors_header", "u16_refused", safetensors({
    "a": {"dtype": "U16", "shape": [1], "data_offsets": [0, 2]}}, bytes(2), pad=False))

# ---- shard_index ----------------------------------------------------------------------------
put("shard_index", "two_shards.json", compact({
    "metadata": {"total_size": 332800},
    "weight_map": {
        "language_model.lm_head.weight": "model-00002-of-00002.safetensors",
        "language_model.model.norm.weight": "model-00002-of-00002.safetensors",
        "vision_tower.vision_model.embeddings.class_embedding": "model-00001-of-00002.safetensors",
        "image_newline": "model-00001-of-00002.safetensors"}}))
put("shard_index", "one_shard.json", '{"weight_map": {"w": "model.safetensors"}}')
put("shard_index", "bad_name.json", '{"weight_map": {"w": "../model.safetensors", "v": 3}}')

# ---- json_configs: config.json and preprocessor_config.json of both families ------------------
for rel, name in [("clip/tiny-fp16-quickgelu/config.json", "clip_config.json"),
                  ("clip/tiny-fp16-quickgelu/preprocessor_config.json", "clip_preprocessor.json"),
                  ("llava/tiny-llava-next/config.json", "llava_config.json"),
                  ("llava/tiny-llava-next/preprocessor_config.json", "llava_preprocessor.json")]:
    put("json_configs", name, compact(json.loads(fixture(rel))))
put("json_configs", "small_clip_preprocessor.json", compact({
    "size": 8, "crop_size": 6, "image_mean": 0.5, "image_std": [0.5, 0.25, 1.0],
    "do_rescale": True, "rescale_factor": 0.00392156862745098, "resample": 3}))
put("json_configs", "small_llava_preprocessor.json", compact({
    "size": {"shortest_edge": 8}, "crop_size": {"height": 8, "width": 8}, "do_pad": True,
    "image_grid_pinpoints": [[8, 16], [16, 8], [16, 16], [24, 8]], "do_normalize": False}))
put("json_configs", "minimal_llava_config.json", compact({
    "model_type": "llava_next", "image_token_index": 32000,
    "text_config": {"model_type": "mistral", "sliding_window": None},
    "vision_config": {"hidden_size": 32, "image_size": 336, "patch_size": 14,
                      "num_attention_heads": 4, "intermediate_size": 64,
                      "num_hidden_layers": 3}}))

# ---- tokenizer_configs: the tokenizers' JSON files --------------------------------------------
# The target reads its input as file number (length % 6): 0 CLIP tokenizer_config.json, 1 CLIP
# special_tokens_map.json, 2 Mistral tokenizer_config.json, 3 Mistral special_tokens_map.json,
# 4 added_tokens.json, 5 tokenizer.json; each seed is padded with spaces to its file's number.
ROLE = {"clip_tokenizer_config.json": 0, "clip_special_tokens_map.json": 1,
        "mistral_tokenizer_config.json": 2, "mistral_special_tokens_map.json": 3,
        "mistral_added_tokens.json": 4, "tokenizer_json_prepend.json": 5,
        "tokenizer_json_metaspace.json": 5}


def put_role(name, text):
    data = text.encode("utf-8") + b"\n"
    put("tokenizer_configs", name, data + b" " * ((ROLE[name] - len(data)) % 6))


for rel, name in [("clip/tiny-fp16-quickgelu/tokenizer_config.json", "clip_tokenizer_config.json"),
                  ("clip/tiny-fp16-quickgelu/special_tokens_map.json", "clip_special_tokens_map.json"),
                  ("llava/tiny-llava-next/tokenizer_config.json", "mistral_tokenizer_config.json"),
                  ("llava/tiny-llava-next/special_tokens_map.json", "mistral_special_tokens_map.json"),
                  ("llava/tiny-llava-next/added_tokens.json", "mistral_added_tokens.json")]:
    put_role(name, compact(json.loads(fixture(rel))))
put_role("tokenizer_json_prepend.json", compact({
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "content": "\u2581"}]},
    "pre_tokenizer": None}))
put_role("tokenizer_json_metaspace.json", compact({
    "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}}))

# ---- clip_vocab: vocab.json NUL merges.txt [NUL text] -----------------------------------------
def byte_alphabet():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


alpha = byte_alphabet()
vocab = {}
for ch in "abcdefghijklmnopqrstuvwxyz0123456789.,!'":
    vocab.setdefault(alpha[ord(ch)], len(vocab))
for ch in "abcdefghijklmnopqrstuvwxyz.!":
    vocab.setdefault(alpha[ord(ch)] + "</w>", len(vocab))
merges = ["t h", "th e</w>", "p h", "ph o", "o t", "pho t", "phot o</w>", "o f</w>", "c a",
          "ca t</w>", "a n", "an d</w>"]
for m in merges:
    a, b = m.split(" ")
    vocab.setdefault(a + b, len(vocab))
vocab["<|startoftext|>"] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
merges_txt = "#version: 0.2\n" + "\n".join(merges) + "\n"
put("clip_vocab", "small", compact(vocab) + "\0" + merges_txt + "\0" + "a photo of the cat and 2 dogs!")
put("clip_vocab", "crlf_no_specials", compact({k: v for k, v in vocab.items() if "|" not in k})
    + "\0" + merges_txt.replace("\n", "\r\n"))

# ---- clip_encode / mistral_encode: texts ------------------------------------------------------
clip_texts = {
    "photo": "a photo of a cat",
    "modification": "Make the background DARK, and change the circle to a square!",
    "specials": "<|startoftext|>two red stars<|endoftext|> on the left",
    "contractions": "it's I'll we've they're don't 'S 'LL",
    "numbers_punct": "12345 3.14 $5 #tag @user ... ?!",
    "unicode": "na\u00efve caf\u00e9 e\u0301 \u65e5\u672c\u8a9e \U0001F600 \u00df \u0130",
    "whitespace": " \t\n  spaced   out\u3000words\u00a0 ",
    "invalid_utf8": b"abc \xff\xfe \xc3",
}
for k, v in clip_texts.items():
    put("clip_encode", k, v)
mistral_texts = {
    "image_prompt": "[INST] <image>\nRepresent the given image with the following question: "
                    "what is it? [/INST]",
    "specials": "<s><pad></s><unk><image><image>",
    "hello": "Hello world",
    "spaces": "   leading and trailing spaces   \t\n",
    "unicode": "\u65e5\u672c\u8a9e \u2603 \U0001F600 \u2581 na\u00efve",
    "added_in_word": "foo<image>bar<pad>baz",
    "invalid_utf8": b"\xed\xa0\x80 x \xf4\x90\x80\x80",
}
for k, v in mistral_texts.items():
    put("mistral_encode", k, v)

# ---- sentencepiece_model: trimmed copies of the fixture's tokenizer.model ---------------------
def varint_at(d, i):
    r = s = 0
    while True:
        b = d[i]
        i += 1
        r |= (b & 0x7F) << s
        s += 7
        if b < 0x80:
            return r, i


def pb_fields(d):
    i, out = 0, []
    while i < len(d):
        start = i
        tag, i = varint_at(d, i)
        f, w = tag >> 3, tag & 7
        if w == 0:
            v, i = varint_at(d, i)
        elif w == 1:
            v, i = d[i:i + 8], i + 8
        elif w == 2:
            n, i = varint_at(d, i)
            v, i = d[i:i + n], i + n
        elif w == 5:
            v, i = d[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % w)
        out.append((f, w, v, d[start:i]))
    return out


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def piece(text, score, kind):
    p = ld(1, text.encode()) + varint(2 << 3 | 5) + struct.pack("<f", score)
    return ld(1, p + (varint(3 << 3) + varint(kind) if kind != 1 else b""))


model = fixture("llava/tiny-llava-next-legacy/tokenizer.model")
fields = pb_fields(model)
pieces = [raw for f, _, _, raw in fields if f == 1]
rest = b"".join(raw for f, _, _, raw in fields if f != 1)
put("sentencepiece_model", "trimmed_byte_fallback.model", b"".join(pieces[:259 + 48]) + rest)
normalizer = [raw for f, _, _, raw in fields if f == 3][0]
trainer = ld(2, varint(3 << 3) + varint(2))  # model_type BPE, byte_fallback off
small = (piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) +
         piece("<image>", 0, 4) +
         b"".join(piece(t, -i, 1) for i, t in enumerate(
             ["\u2581", "e", "l", "o", "h", "w", "r", "d", "\u2581h", "ll", "he", "\u2581w",
              "or", "ld", "\u2581he", "llo", "\u2581hello", "\u2581wor", "\u2581world"])))
put("sentencepiece_model", "tiny_user_defined.model", small + trainer + normalizer)

# ---- image_decode: small fixture images of every format and PNG variant -----------------------
for name in ["rgb.jpg", "rgb_prog.jpg", "l.jpg", "ycck.jpg", "rgb.png", "apng_box.png",
             "il_rgb.png", "il_l4.png", "rgb16.png", "l16_trns.png", "p2.png", "rgb.bmp",
             "rgb_lossless.webp", "rgb_lossy.webp", "rgb.tif"]:
    put("image_decode", name, fixture("vision/" + name))

print("seeds written under", OUT)
