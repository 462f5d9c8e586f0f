"""A small CLIP-style byte-level BPE vocabulary of our own.

Nothing here is copied from a real CLIP vocabulary: the merges are learned by
the tiny trainer below from the short built-in corpus `CORPUS`.

Layout (the same as OpenAI CLIP's `vocab.json` / `merges.txt`):

    ids 0..255      the 256 byte-level unicode characters, in GPT-2
                    `bytes_to_unicode()` order
    ids 256..511    the same 256 characters with "</w>" appended
    ids 512..       one token per learned merge (the merged string), in merge
                    order
    then            "<|startoftext|>", "<|endoftext|>"  (contiguous), unless
                    `special_ids` places them elsewhere (e.g. 49406 / 49407)

Pre-tokenisation used for training is CLIP's: lower-cased, whitespace
collapsed, split with CLIP's regex, UTF-8 bytes mapped through
`bytes_to_unicode()`, the last symbol of each word carrying "</w>".

Public API:
    build_vocab(n_merges, special_ids=None, corpus=CORPUS)
                                            -> (vocab: dict[str, int],
                                                merges: list[tuple[str, str]])
                    (n_merges=None: every merge the corpus supports, so
                    that each of its words becomes a single token)
    write_vocab_files(folder, vocab, merges)  -> writes vocab.json, merges.txt
    bytes_to_unicode()
"""

import json
import os
from collections import Counter

import regex

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"

# CLIP's pre-tokenisation pattern (tokenization_clip.py / the CLIP repo).
CLIP_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)

# Written for this project. Plain English about everyday scenes and pictures,
# so that common words in test captions become whole tokens while rarer words
# still split into several pieces.
CORPUS = """
A photo of a cat sitting on a wooden table next to a window. The cat is grey
and white, and it looks at the camera with large green eyes. Behind the cat
there is a small plant in a red pot, and the light from the window falls on
the table.

Two cups of coffee stand on a white plate. One cup is full of black coffee,
the other one has milk in it and a little heart drawn in the foam. A spoon,
some sugar and a piece of cake are on the plate as well. It is a quiet
morning in a small cafe in the city.

The rocket stands on the launch pad, white and tall against a clear blue
sky. People watch from far away as the engines start, and a bright cloud of
smoke and fire grows under it. Then the rocket rises slowly, faster and
faster, until it is only a small light high in the sky.

A woman in a white space suit smiles at the camera. She holds her helmet
under one arm, and a flag is on the wall behind her. This picture was taken
before her first flight into space, many years ago.

A red bicycle is leaning against a brick wall in a narrow street. The street
is wet after the rain, and the lights of the shops shine in the water. A man
with an umbrella walks past a green door, and a dog follows him.

In the picture you can see a house with a garden, some trees, a blue car and
two children who play with a ball on the grass. The sun is low, the shadows
are long, and the sky is orange and pink over the hills.

Find an image that shows the same scene at night. Make the photo brighter,
change the colour of the car to yellow, and remove the people from the
street. Show me a similar picture with more light and fewer clouds.

Numbers and signs: 0 1 2 3 4 5 6 7 8 9 10 12 20 24 36 42 50 100 224 1969 2024
3.14 9:41 a.m. 50% $12 #3 (1) [2] {3} "yes" 'no' - -- ... !? ?! & @ * + = / , ; :
It's a dog's life, isn't it? We're here, they've gone, I'm sure you'll see, he'd go.
"""


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode character map (insertion order
    matters: it is the order of the first 256 vocabulary entries)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _words(text):
    """CLIP pre-tokenisation into byte-level words (tuples of symbols)."""
    b2u = bytes_to_unicode()
    text = " ".join(text.split()).lower()
    out = Counter()
    for tok in CLIP_PATTERN.findall(text):
        chars = [b2u[b] for b in tok.encode("utf-8")]
        chars[-1] = chars[-1] + "</w>"
        out[tuple(chars)] += 1
    return out


def _merge_word(word, a, b):
    out = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_merges(n_merges, corpus=CORPUS, taken=()):
    """Greedy BPE: repeatedly merge the most frequent adjacent pair.

    Ties are broken by the pair itself (lexicographically smallest first), so
    the result is deterministic. Pairs whose merged string is already a token
    (in `taken` or learned earlier) are skipped, keeping vocabulary entries
    unique. n_merges=None merges until no pair is left (every word of the
    corpus is then one token).
    """
    words = _words(corpus)
    known = set(taken)
    merges = []
    while n_merges is None or len(merges) < n_merges:
        pairs = Counter()
        for w, f in words.items():
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] += f
        candidates = [(-c, p) for p, c in pairs.items() if p[0] + p[1] not in known]
        if not candidates:
            if n_merges is None:
                break
            raise ValueError(f"corpus only supports {len(merges)} merges, asked for {n_merges}")
        _, (a, b) = min(candidates)
        merges.append((a, b))
        known.add(a + b)
        words = Counter({_merge_word(w, a, b): f for w, f in words.items()})
    return merges


def build_vocab(n_merges, special_ids=None, corpus=CORPUS):
    """Return (vocab, merges).

    n_merges, corpus: as for train_merges (the built-in CORPUS by default).
    vocab: dict token -> id, in id order. merges: list of (left, right).
    special_ids: None for contiguous ids (specials right after the merges), or
    a dict {"<|startoftext|>": id, "<|endoftext|>": id}; ids must not collide
    with the ordinary tokens (gaps are allowed).
    """
    base = list(bytes_to_unicode().values())
    base = base + [c + "</w>" for c in base]
    merges = train_merges(n_merges, corpus, taken=base)
    tokens = base + [a + b for a, b in merges]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate vocabulary entries"
    if special_ids is None:
        special_ids = {SOT: len(tokens), EOT: len(tokens) + 1}
    for tok in (SOT, EOT):
        i = int(special_ids[tok])
        if i < len(tokens) or i in vocab.values():
            raise ValueError(f"special id {i} for {tok} collides with ordinary tokens")
        vocab[tok] = i
    return vocab, merges


def write_vocab_files(folder, vocab, merges, pretty=False):
    """Write vocab.json and merges.txt (first line "#version: 0.2").

    pretty=False writes one compact line (like OpenAI's vocab.json);
    pretty=True writes `json.dumps(indent=2, sort_keys=True)` like
    transformers' CLIPTokenizer.save_vocabulary. Both are UTF-8, not escaped.
    """
    os.makedirs(folder, exist_ok=True)
    if pretty:
        text = json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(vocab, ensure_ascii=False, separators=(", ", ": "))
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    v, m = build_vocab(n)
    print(len(v), "tokens;", len(m), "merges; last merges:", m[-5:])
