#!/usr/bin/env python3
"""Write tests/fixtures/tokenizer/mistral_parity.json: BGE-VL-MLLM token ids from the reference
(and, with --tiny, tests/fixtures/tokenizer/mistral_tiny_parity.json, the same for the project's
tiny SentencePiece model).

The expected ids come from Hugging Face transformers **4.45.2** (asserted):
  * slow: `LlamaTokenizer.from_pretrained(folder)` where `folder` holds the Mistral
    tokenizer.model plus the tokenizer_config.json / special_tokens_map.json / added_tokens.json
    that a BGE-VL-MLLM (llava-v1.6-mistral-7b-hf) checkpoint ships (tests/reference/
    mistral_tokenizer_files.py writes them: <image> 32000 and <pad> 32001 as added tokens, BOS
    added, no EOS, pad <pad>, padding side left), once with legacy=True and once with legacy=False;
  * fast: the Rust `tokenizers` library (its Node binding, tests/reference/
    gen_mistral_tokenizer_fast.mjs) on a tokenizer.json built as transformers 4.45.2's
    LlamaConverter + LlamaTokenizerFast build it from the same files
    (mistral_tokenizer_files.tokenizer_json: legacy=True -> normalizer Prepend("▁") +
    Replace(" ", "▁"), no pre-tokenizer; legacy=False -> no normalizer, pre-tokenizer
    Metaspace("▁", prepend_scheme="first", split=False); BPE with byte fallback; BOS added by
    the TemplateProcessing post-processor).
Nothing here calls bgevl. Batches (left padding + attention mask) come from the slow tokenizer's
`tokenizer(texts, padding=True)`.

Requirements (nothing is installed or vendored by this script):
  * a Python where `import transformers` gives exactly 4.45.2, with `sentencepiece` and
    `google.protobuf` (LlamaTokenizer with legacy=False edits the SentencePiece model proto;
    Debian: python3-sentencepiece, python3-protobuf). transformers falls back to its slow
    tokenizers when the Rust `tokenizers` Python package is absent; if it is present, only the
    slow classes are used here anyway;
  * for the fast ids: Node.js and the npm package `tokenizers` (0.23.2 was used), e.g.
    `mkdir -p /tmp/tok && cd /tmp/tok && npm install tokenizers@0.23.2`, passed with
    --node-modules /tmp/tok/node_modules (or NODE_PATH); --no-fast leaves the fast ids out;
  * the Mistral tokenizer.model (default: ../shared/data/tokenizers/mistral/tokenizer.model
    beside the repository; sha256 dadfd56d...134055), or with --tiny the project's tiny
    SentencePiece BPE model (tests/reference/gen_tiny_sentencepiece.py; committed as
    tests/fixtures/llava/tiny-llava-next-legacy/tokenizer.model by gen_llava_fixtures.py).
    With --tiny, <image> and <pad> get the two ids after the model's last piece (1200, 1201 for
    its 1,200 pieces) instead of 32000, 32001; everything else (texts, batches, variants, JSON
    layout) is the same, so that tokenizer tests can run on a fresh clone.

Usage, from the repository root:

    python3 tests/reference/gen_mistral_tokenizer_parity.py --node-modules /tmp/tok/node_modules
    python3 tests/reference/gen_mistral_tokenizer_parity.py --tiny --node-modules /tmp/tok/node_modules

Deterministic: rerunning in the same environment rewrites identical bytes.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import mistral_tokenizer_files as files  # noqa: E402

REQUIRED_TRANSFORMERS = "4.45.2"
MODEL_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
TINY_MODEL = os.path.join(REPO, "tests", "fixtures", "llava", "tiny-llava-next-legacy", "tokenizer.model")

CIR_INSTRUCTION = (
    "Retrieve the target image that best meets the combined criteria by using both the provided "
    "image and the image retrieval instructions: "
)


def prepare_text_input(image, text, q_or_c, task_instruction):
    """LLaVANextForEmbedding.prepare_text_input of BGE-VL-MLLM (modeling_llavanext_for_embedding.py),
    without its warning print."""
    assert q_or_c in ["query", "candidate", "q", "c"]
    if "q" in q_or_c:
        if task_instruction is None:
            text_input = "[INST] \n <instruct>  <query>"
        else:
            text_input = f"[INST] \n <instruct> {task_instruction} <query> "
        if text is not None:
            text_input = f"{text_input} {text} \n"
        if image is not None:
            text_input = f"{text_input} <image>"
        text_input = f"{text_input} [/INST]"
    else:
        text_input = "[INST] "
        if text is not None:
            text_input = f"{text_input} {text} \n"
        if image is not None:
            text_input = f"{text_input} <image>"
        text_input = f"{text_input} [/INST]"
    return text_input


PROMPT_TEXTS = [
    "A dog",
    "Make the background dark, as if the camera has taken the photo at night",
    "a red bicycle leaning against a brick wall.",
    "  two spaces before, one after ",
    "Ein Café in Köln — 3 Tassen",
    "夜の東京タワー",
    "<image>",
    "line one\nline two",
]
INSTRUCTIONS = [
    CIR_INSTRUCTION,
    "Retrieve an image that matches the given caption: ",
    "Find a Wikipedia image that answers this question.",
]


def prompt_cases():
    out = []
    seen = set()

    def add(name, s):
        if s not in seen:
            seen.add(s)
            out.append((name, s))

    for qc in ["q", "query", "c", "candidate"]:
        for txt in [None] + PROMPT_TEXTS:
            for img in [None, "img"]:
                if txt is None and img is None:
                    continue
                for ins in ([None] + INSTRUCTIONS) if "q" in qc else [None]:
                    kind = ("text+image" if txt is not None and img else "image" if img else "text")
                    name = f"prompt {qc} {kind} ins={'none' if ins is None else repr(ins[:20])}"
                    add(name, prepare_text_input(img, txt, qc, ins))
    return out


VARIED_TEXTS = [
    # plain
    "Hello world", "hello world", "HELLO WORLD", "Hello", "world", "a", "I", "The quick brown fox jumps over the lazy dog.",
    "A photo of a cat sitting on a wooden table.", "two dogs playing in the snow",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.",
    "supercalifragilisticexpialidocious", "antidisestablishmentarianism", "tokenization", "Tokenizer",
    "don't", "it's", "I'm", "we'll", "they've", "O'Neill", "rock'n'roll", "e-mail", "state-of-the-art",
    # punctuation
    "Hello, world!", "Wait... what?!", "(parentheses) [brackets] {braces}", "quotes \"double\" 'single'",
    "a/b\\c|d", "#hashtag @mention $dollar %percent ^caret &amp *star", "~tilde `backtick` _under_",
    "semi;colon:colon", "<>", "< >", "<<>>", "<", ">", "<s", "s>", "</", "<im", "image>", "<imag e>",
    "<IMAGE>", "< image >", "<img>", "<images>", "<image", "image", "<pad", "<PAD>",
    "!!!", "???", "...", "---", "***", "==>", "->", "=>", "::", "//", "/* */",
    # digits
    "0", "1", "12", "123", "1234567890", "3.14159", "1,000,000", "-42", "+7", "1e-5", "0x1F", "2024-11-27",
    "12:30", "v4.45.2", "abc123def", "123abc", "R2D2", "9:41 a.m.", "50%", "$5.99", "1st 2nd 3rd 4th",
    # whitespace
    " ", "  ", "   ", "    ", "\t", "\n", "\n\n", " \n ", "\r\n", "\t\tindented", " leading", "  two leading",
    "trailing ", "trailing  ", "double  space", "triple   space", "many        spaces", " both ",
    "line1\nline2", "line1\n\nline2", "tab\tseparated\tvalues", "a \n b", "end with newline\n",
    "\nstarts with newline", "mixed \t \n whitespace", "\u00a0nbsp", "a\u00a0b", "thin\u2009space",
    "ideographic\u3000space", "zero\u200bwidth", "a\u200db", "\u2028line sep", "\u3000",
    # accents / scripts
    "café", "naïve", "Crème brûlée", "Ångström", "Straße", "ÆØÅ æøå", "résumé", "piñata", "Zürich",
    "e\u0301", "cafe\u0301", "İstanbul", "ǅ", "ﬁ ligature", "Ω≈ç√∫", "Привет, мир!", "Ελληνικά",
    "שלום עולם", "مرحبا بالعالم", "नमस्ते दुनिया", "ภาษาไทย", "Tiếng Việt có dấu", "한국어 텍스트",
    "中文测试", "你好，世界！", "日本語のテキスト", "カタカナ", "ひらがな", "漢字かなまじり文", "東京 2020",
    "中文 English 混合", "全角ＡＢＣ１２３",
    # emoji and symbols
    "😀", "🙂 smile", "👍🏽", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "❤️", "I ❤ NY", "emoji🎉in🎉text", "★☆♥♦",
    "→ ← ↑ ↓", "∑∏∫", "©®™", "°C", "½ ¼ ¾", "€£¥", "\U0001F600\U0001F601", "\U00010348 gothic",
    # code
    "def f(x):\n    return x + 1", "int main() { return 0; }", "for (int i = 0; i < n; ++i) {}",
    "<div class=\"a\">text</div>", "SELECT * FROM t WHERE id = 1;", "x = [1, 2, 3]",
    "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32", "snake_case_name",
    "camelCaseName", "PascalCaseName", "kebab-case-name", "$HOME/.bashrc", "#include <vector>",
    "if (a <= b && c >= d) {}", "{\"key\": \"value\"}", "import numpy as np",
    # prompt fragments
    "[INST]", "[/INST]", "[INST] hi [/INST]", "[INST] \n <instruct>", "<instruct>", "<query>",
    " <query> ", "<instruct>  <query>", "[INST]  <image> [/INST]", "[INST]\n[/INST]",
    # added tokens inside text
    "<image>", " <image>", "<image> ", " <image> ", "  <image>  ", "<image>hello", "hello<image>",
    "<image> hello", "hello <image>", "hello <image> world", "hello<image>world", "hello  <image>  world",
    "<image><image>", "<image> <image>", "<image>\n<image>", "\n<image>\n", "a<image>b<image>c",
    "<<image>>", "<image>>", "<<image>", "<ima<image>ge>", "<pad>", " <pad>", "<pad> ", "<pad>hello",
    "hello<pad>", "hello <pad> world", "<pad><image>", "<image><pad>", "<pad> <image> <pad>",
    "<s>", "</s>", "<unk>", "<s> hello", "hello</s>", "x<s>y", "a <unk> b", "<s><s>", "</s><s>",
    "<s>[INST] hi [/INST]</s>", "<image>.", "<image>,", "<image>!", "<image>1", "1<image>",
    "<image>\n", "\n<image>", "<image>\t", "é<image>é", "中<image>文", "😀<image>😀",
    # SentencePiece markers and byte fallback
    "\u2581", "\u2581hello", "hello\u2581world", "\u2581\u2581", " \u2581 ", "\u2581<image>", "<image>\u2581",
    "\x00", "\x01\x02", "\x7f", "bell\x07", "\ufeffBOM", "\ufffd", "\U0010FFFF", "\ue000 private use",
    # longer / mixed
    "A man in a red shirt is riding a bike down the street, while a woman walks her dog; "
    "they both seem happy. #sunny #weekend",
    "Change the color of the car to blue and add snow on the ground",
    "Show me a similar dress but in green with long sleeves",
    "What is the capital of France? Answer: Paris.",
    "The rocket launched at 9:41 a.m. on July 16, 1969 \u2014 carrying three astronauts.",
    "Numbers 1 2 3 4 5 6 7 8 9 10 and words",
    "Mixed:\tTabs,\nNewlines,  double spaces and <image> tokens.",
    "  <image> Make the background dark, as if the camera has taken the photo at night  ",
]


def _assert_transformers():
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        raise SystemExit(f"transformers {REQUIRED_TRANSFORMERS} required, found {transformers.__version__}")
    return transformers


def slow_ids(folder, texts):
    from transformers import LlamaTokenizer

    tok = LlamaTokenizer.from_pretrained(folder)
    assert type(tok).__name__ == "LlamaTokenizer"
    return tok, [tok(t)["input_ids"] for t in texts]


def fast_ids(tokenizer_json_path, texts, node_modules, workdir):
    texts_path = os.path.join(workdir, "texts.json")
    out_path = os.path.join(workdir, "fast_ids.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    env = dict(os.environ)
    if node_modules:
        env["NODE_PATH"] = node_modules
    subprocess.run(
        ["node", os.path.join(HERE, "gen_mistral_tokenizer_fast.mjs"), tokenizer_json_path, texts_path, out_path],
        check=True,
        env=env,
        cwd=workdir,
    )
    with open(out_path, encoding="utf-8") as f:
        res = json.load(f)
    assert len(res["ids"]) == len(texts)
    return res["tokenizers"], res["ids"]


BATCHES = [
    ["Hello world", "A photo of a cat sitting on a wooden table."],
    ["[INST]  A dog \n [/INST]", "[INST]  <image> [/INST]", "[INST]  two dogs playing in the snow \n <image> [/INST]"],
    [prepare_text_input("img", "Make the background dark", "q", CIR_INSTRUCTION), prepare_text_input("img", None, "c", None)],
    ["", "a", "  <image>  "],
    ["same length", "same length"],
]


def _dump(doc):
    """JSON with one case / batch per line (ASCII, so every odd character is visible as an escape)."""
    lines = ["{"]
    items = list(doc.items())
    for k, (key, value) in enumerate(items):
        end = "," if k + 1 < len(items) else ""
        if isinstance(value, list):
            lines.append(f" {json.dumps(key)}: [")
            for j, v in enumerate(value):
                lines.append("  " + json.dumps(v, ensure_ascii=True) + ("," if j + 1 < len(value) else ""))
            lines.append(" ]" + end)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# Further tokenizer_config.json variants (not BGE-VL's, but settings the C++ port reads): each is
# the checkpoint's config with these changes, checked on the texts that touch added tokens or
# start with whitespace / "▁".
def config_variants(image_id=files.IMAGE_TOKEN_ID, pad_id=files.PAD_TOKEN_ID):
    def _variant(legacy, image=None, **changes):
        cfg = files.tokenizer_config(legacy, image_id, pad_id)
        if image:
            cfg["added_tokens_decoder"][str(image_id)].update(image)
        cfg.update(changes)
        return cfg

    return [
        ("nonlegacy_image_is_additional_special", _variant(False, additional_special_tokens=["<image>"])),
        ("nonlegacy_no_prefix_space", _variant(False, add_prefix_space=False)),
        ("nonlegacy_prefix_space_null", _variant(False, add_prefix_space=None)),
        ("legacy_image_lstrip_rstrip", _variant(True, image={"lstrip": True, "rstrip": True})),
        ("nonlegacy_image_lstrip_rstrip", _variant(False, image={"lstrip": True, "rstrip": True})),
        ("legacy_image_single_word", _variant(True, image={"single_word": True})),
        ("nonlegacy_eos_no_bos", _variant(False, add_bos_token=False, add_eos_token=True)),
        ("legacy_unset", {k: v for k, v in files.tokenizer_config(True, image_id, pad_id).items() if k != "legacy"}),
    ]


def variant_texts(texts):
    def touches(t):
        return any(x in t for x in ["<image>", "<pad>", "<s>", "</s>", "<unk>", "\u2581"]) or (
            t[:1].isspace() or t[-1:].isspace())

    return [t for t in texts if touches(t)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true",
                    help="the project's tiny SentencePiece model (default --model " + os.path.relpath(TINY_MODEL, REPO)
                    + ", --out tests/fixtures/tokenizer/mistral_tiny_parity.json)")
    ap.add_argument("--model", default=None,
                    help="tokenizer.model (default: ../shared/data/tokenizers/mistral/tokenizer.model, or the tiny one)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--node-modules", default=os.environ.get("NODE_PATH"))
    ap.add_argument("--no-fast", action="store_true", help="leave the fast ids out")
    args = ap.parse_args()
    if args.model is None:
        args.model = TINY_MODEL if args.tiny else os.path.join(
            REPO, "..", "shared", "data", "tokenizers", "mistral", "tokenizer.model")
    if args.out is None:
        args.out = os.path.join(REPO, "tests", "fixtures", "tokenizer",
                                "mistral_tiny_parity.json" if args.tiny else "mistral_parity.json")

    transformers = _assert_transformers()
    import sentencepiece

    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    if not args.tiny and sha != MODEL_SHA256:
        raise SystemExit(f"{args.model}: sha256 {sha}, expected {MODEL_SHA256} (--tiny for another model)")
    if args.tiny and sha == MODEL_SHA256:
        raise SystemExit("--tiny given with the Mistral model")
    image_id, pad_id = files.added_token_ids(args.model)
    if not args.tiny:
        assert (image_id, pad_id) == (files.IMAGE_TOKEN_ID, files.PAD_TOKEN_ID)
    hello = [1] + sentencepiece.SentencePieceProcessor(model_file=args.model).encode("Hello world")
    if not args.tiny:
        assert hello == [1, 22557, 1526]

    named = prompt_cases() + [("text", t) for t in VARIED_TEXTS]
    texts, names, seen = [], [], set()
    for name, t in named:
        if t in seen:
            continue
        seen.add(t)
        texts.append(t)
        names.append(name)
    n_prompts = sum(1 for n in names if n.startswith("prompt"))

    results = {}
    batches = []
    tokenizers_version = None
    with tempfile.TemporaryDirectory() as tmp:
        for legacy in [True, False]:
            key = "true" if legacy else "false"
            folder = os.path.join(tmp, f"legacy_{key}")
            files.write_tokenizer_files(folder, args.model, legacy, image_id=image_id, pad_id=pad_id)
            tok, slow = slow_ids(folder, texts)
            assert tok.legacy == legacy and tok.padding_side == "left"
            assert tok.convert_tokens_to_ids(["<image>", "<pad>"]) == [image_id, pad_id]
            assert slow[texts.index("Hello world")] == hello
            fast = None
            if not args.no_fast:
                tj = os.path.join(tmp, f"tokenizer_{key}.json")
                files.write_tokenizer_json(tj, args.model, legacy, image_id=image_id, pad_id=pad_id)
                tokenizers_version, fast = fast_ids(tj, texts, args.node_modules, tmp)
            results[key] = (slow, fast)
            for b in BATCHES:
                enc = tok(b, padding=True)
                # Left padding: each row equals its own encoding, preceded by <pad>s.
                for row, mask, t in zip(enc["input_ids"], enc["attention_mask"], b):
                    own = tok(t)["input_ids"]
                    n_pad = len(row) - len(own)
                    assert row == [pad_id] * n_pad + own and mask == [0] * n_pad + [1] * len(own)
                batches.append({"legacy": legacy, "texts": b, "input_ids": enc["input_ids"],
                                "attention_mask": enc["attention_mask"]})

    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        vtexts = variant_texts(texts)
        for vname, cfg in config_variants(image_id, pad_id):
            folder = os.path.join(tmp, vname)
            files.write_tokenizer_files(folder, args.model, cfg.get("legacy", True), image_id=image_id, pad_id=pad_id)
            with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(cfg, f)
            _, ids = slow_ids(folder, vtexts)
            variants.append({"name": vname, "tokenizer_config": cfg, "texts": vtexts, "ids": ids})

    cases = []
    summary = {}
    for key in ["true", "false"]:
        summary[key] = {"cases": len(texts), "prompts": n_prompts, "slow_fast_differ": 0, "prompts_differ": 0}
    for i, (name, t) in enumerate(zip(names, texts)):
        case = {"name": name, "text": t, "slow": {}, "fast": {}, "slow_fast_differ": []}
        for key in ["true", "false"]:
            slow, fast = results[key]
            case["slow"][key] = slow[i]
            if fast is not None:
                case["fast"][key] = fast[i]
                if fast[i] != slow[i]:
                    case["slow_fast_differ"].append(key)
                    summary[key]["slow_fast_differ"] += 1
                    if name.startswith("prompt"):
                        summary[key]["prompts_differ"] += 1
        if not case["fast"]:
            del case["fast"]
            del case["slow_fast_differ"]
        cases.append(case)

    model_note = (
        "the project's tiny SentencePiece BPE model (tests/fixtures/llava/tiny-llava-next-legacy/tokenizer.model, "
        f"tests/reference/gen_tiny_sentencepiece.py; <image> {image_id}, <pad> {pad_id}) with BGE-VL-MLLM's "
        "tokenizer settings" if args.tiny else "Mistral (BGE-VL-MLLM)")
    doc = {
        "about": (
            f"{model_note} token ids: 'slow' from transformers LlamaTokenizer.from_pretrained on "
            "tokenizer.model + the checkpoint's tokenizer files (tests/reference/mistral_tokenizer_files.py), "
            "'fast' from the Rust tokenizers library on the tokenizer.json that LlamaConverter builds; "
            "keys 'true'/'false' are tokenizer_config.json's `legacy`. slow_fast_differ lists the legacy "
            "settings where the two disagree. Batches: slow tokenizer(texts, padding=True), padding side "
            "left. Written by tests/reference/gen_mistral_tokenizer_parity.py"
            f"{' --tiny' if args.tiny else ''}; do not edit."
        ),
        "transformers": transformers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "tokenizers_fast": tokenizers_version,
        "tokenizer_model_sha256": sha,
        "summary": summary,
        "cases": cases,
        "batches": batches,
        "variants": variants,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(_dump(doc))
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}: {len(cases)} cases, {len(batches)} batches")


if __name__ == "__main__":
    main()
