#!/usr/bin/env python3
"""Train the project's own tiny SentencePiece BPE model (a stand-in for Mistral's tokenizer.model).

The BGE-VL-MLLM checkpoints tokenise with Mistral's SentencePiece BPE model (32,000 pieces), which
the project may not copy. The tiny LLaVA-NeXT fixture checkpoints (tests/fixtures/llava/) and the
tokenizer parity fixture tests/fixtures/tokenizer/mistral_tiny_parity.json use this model instead,
so their tests run on a fresh clone. Nothing in it comes from Mistral's model: the merges are
learned by SentencePiece's own trainer (Debian's python3-sentencepiece, 0.1.97 was used) from the
corpus built below, which was written for this project.

Trainer settings follow the Mistral model's trainer_spec / normalizer_spec wherever they make
sense for a tiny corpus (compare with `sentencepiece_model_pb2.ModelProto` of the real file):

  same as Mistral:  model_type BPE, byte_fallback true (pieces <0x00>..<0xFF>, ids 3..258),
                    split_digits true, allow_whitespace_only_pieces true, split_by_whitespace
                    true, split_by_number true, split_by_unicode_script true,
                    treat_whitespace_as_suffix false, max_sentencepiece_length 16,
                    character_coverage 0.99995, max_sentence_length 4192,
                    vocabulary_output_piece_score true, hard_vocab_limit true, use_all_vocab
                    false, unk 0 `<unk>`, bos 1 `<s>`, eos 2 `</s>`, no pad piece (pad_id -1),
                    input_format text, input_sentence_size 200000000 and
                    shuffle_input_sentence true (the corpus is far smaller, so every sentence is
                    used, in order), self_test_sample_size 0, seed_sentencepiece_size 1000000,
                    shrinking_factor 0.75, num_sub_iterations 2 (the last three are unigram-only);
                    normalizer: name identity, add_dummy_prefix true, remove_extra_whitespaces
                    false, no precompiled charsmap, no denormalizer;
  different:        vocab_size VOCAB_SIZE (Mistral 32000); num_threads 1 (80); input and
                    model_prefix empty (the corpus is passed as a sentence iterator and the
                    model written to memory; Mistral's file records its training paths).
  (spec_differences() lists them from a model file; MISTRAL_SPEC holds the Mistral values.)

The corpus has no newline or tab characters (they stay byte-fallback pieces <0x0A>, <0x09>, as
in Mistral's model) and no `<image>` / `<pad>` (added tokens, split off before SentencePiece).

Deterministic: a fixed corpus, one thread, no sampling; the same sentencepiece version rewrites
identical bytes.

Usage (repository root; only `sentencepiece` and `google.protobuf` are needed, no transformers):

    python3 tests/reference/gen_tiny_sentencepiece.py [--out PATH]

writes PATH (default: a file `tiny_sentencepiece.model` in the current directory) and prints its
size, sha256 and a few encodings. tests/reference/gen_llava_fixtures.py calls train() itself and
writes the model into the checkpoint folder, so this script is only needed to inspect it.
"""

import argparse
import hashlib
import io
import os

# 1,200 pieces: enough merges that common words are one piece and rarer ones split into several
# multi-character pieces, and a model of under 20 KB. (Of 900, 1000, 1100 and 1200, trained on this
# corpus, 1200 gave the tiny LLaVA-NeXT fixtures the best float32-vs-float64 agreement: the ids
# pick the rows of the random embedding, and with them how well conditioned the cases are.)
VOCAB_SIZE = 1200

CIR = ("Retrieve the target image that best meets the combined criteria by using both the "
       "provided image and the image retrieval instructions: ")
OTHER_INSTRUCTIONS = [
    "Retrieve an image that matches the given caption: ",
    "Find a Wikipedia image that answers this question.",
    "Represent the given image for retrieval: ",
    "Find a picture that shows the same object in a different setting: ",
]

# Written for this project: everyday scenes and photo-editing requests, the kind of text
# the BGE-VL models see as captions and modification instructions.
SENTENCES = [
    "A photo of a cat sitting on a wooden table next to a window.",
    "A grey cat sleeping on a red sofa next to the window.",
    "Make the cat sleep on a red sofa.",
    "The same cat in colour, please",
    "A black and white photo of a cat.",
    "A small grey cat sits on the wooden table by the window while it rains outside.",
    "A cat sleeping on a red sofa in the afternoon sun, next to a green plant.",
    "Two cups of coffee on a wooden table in a caf\u00e9.",
    "Two cups of coffee with milk foam on saucers, seen from above on a dark table.",
    "Make it a cup of tea with lemon, on a blue plate next to a croissant and a newspaper.",
    "Show the same cups from above.",
    "Make the background dark, as if the camera has taken the photo at night",
    "Change the color of the car to blue and add snow on the ground",
    "Show me a similar dress but in green with long sleeves",
    "A red bicycle leaning against a brick wall in a narrow street.",
    "The street is wet after the rain, and the lights of the shops shine in the water.",
    "A man with an umbrella walks past a green door, and a dog follows him.",
    "The rocket stands on the launch pad, white and tall against a clear blue sky.",
    "People watch from far away as the engines start and a bright cloud of smoke grows.",
    "A woman in a white space suit smiles at the camera and holds her helmet.",
    "In the picture you can see a house with a garden, some trees and a blue car.",
    "Two children play with a ball on the grass while the sun goes down.",
    "The sky is orange and pink over the hills, and the shadows are long.",
    "Find an image that shows the same scene at night.",
    "Make the photo brighter and remove the people from the street.",
    "Show me a similar picture with more light and fewer clouds.",
    "Replace the dog with a cat and keep everything else the same.",
    "The same building in winter, covered with snow.",
    "A bowl of fresh fruit: apples, oranges, bananas and grapes.",
    "An old man reading a newspaper on a bench in the park.",
    "A young woman riding a horse along the beach at sunset.",
    "A plate of pasta with tomato sauce and basil on a white table.",
    "A yellow taxi waiting at a traffic light in a busy city.",
    "A mountain lake with clear water and tall pine trees around it.",
    "A little boy eating an ice cream in front of a shop.",
    "The kitchen has white walls, a wooden floor and a large window.",
    "Add a rainbow in the sky and make the grass greener.",
    "Turn the photo into a drawing with soft pencil lines.",
    "The dog is running on the beach with a stick in its mouth.",
    "A train crossing a bridge over a wide river in the morning.",
    "What is the capital of France? Answer: Paris.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, hello again.",
    "A dog.", "Night.", "A cup.", "Coffee", "Red bicycle", "A dog", "Two dogs playing in the snow",
    "It's a dog's life, isn't it? We're here, they've gone, I'm sure you'll see.",
    "Don't stop: the state-of-the-art model runs on the GPU, doesn't it?",
    "Please send an e-mail to the team before Monday.",
    "The meeting starts at 9:30 and ends at 11:45.",
    "The rocket launched at 9:41 a.m. on July 16, 1969, carrying three astronauts.",
    "It costs $5.99, or 50% less than last year.",
    "Version v4.45.2 was released on 2024-10-07.",
    "Numbers 1 2 3 4 5 6 7 8 9 10 and words.",
    "The image is 512 x 512 pixels, cut into 336 x 336 tiles.",
    "Room 101, floor 3, building 42.",
    "Call 555-0123 or write to user@example.com.",
    "Pi is about 3.14159 and e is about 2.71828.",
    "The 1st, 2nd, 3rd and 4th place winners.",
    "Question (one) [two] {three} <four> \"five\" 'six'.",
    "Wait... what?! Really? Yes! No; maybe: later.",
    "a/b, c|d, e+f=g, h*i, j-k, l_m, n~o, p^q, r&s, t#u, v@w.",
    "Use ** for bold, __ for italics, and ``` for code.",
    "if (a <= b && c >= d) { return x + 1; }",
    "x = [1, 2, 3]; y = {\"key\": \"value\"}",
    "https://example.com/path?q=1&r=2",
    "Ein Caf\u00e9 in K\u00f6ln mit drei Tassen.",
    "Cr\u00e8me br\u00fbl\u00e9e and a na\u00efve r\u00e9sum\u00e9.",
    "Stra\u00dfe, \u00c5ngstr\u00f6m, Z\u00fcrich, pi\u00f1ata.",
    "\u00c6\u00d8\u00c5 \u00e6\u00f8\u00e5, \u00e0 la carte, fa\u00e7ade.",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b1\u03b9 \u03bb\u03ad\u03be\u03b5\u03b9\u03c2.",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u591c\u306e\u6771\u4eac\u30bf\u30ef\u30fc",
    "Temperature: 21\u00b0C, price: 12\u20ac or \u00a310.",
    "Arrows \u2192 \u2190 and a heart \u2764.",
    "I \u2764 NY \U0001F600",
]

# Combinations: short captions built from a few word lists (deterministic, no RNG).
_SUBJECTS = ["a cat", "a dog", "two birds", "a horse", "a little girl", "an old car", "a red bus",
             "a white boat", "three cups", "a small house", "a tall tree", "the moon"]
_ACTIONS = ["sitting on", "standing next to", "lying under", "running across", "looking at",
            "waiting near", "sleeping on", "jumping over"]
_PLACES = ["the table", "a wooden bench", "the green grass", "a stone wall", "the old bridge",
           "the river", "a blue chair", "the window", "the beach", "a snowy road"]
_EDITS = ["Make it brighter", "Change the colour to red", "Add more people", "Remove the car",
          "Show it at night", "Make it look older", "Zoom in on the face", "Turn it upside down",
          "Add snow", "Make the sky blue", "Use warmer colours", "Show it from the side"]


def _captions():
    out = []
    for i, s in enumerate(_SUBJECTS):
        for j, a in enumerate(_ACTIONS):
            p = _PLACES[(i * 3 + j * 7) % len(_PLACES)]
            out.append(f"{s[0].upper()}{s[1:]} {a} {p}.")
    for i, e in enumerate(_EDITS):
        out.append(f"{e}, and keep {_SUBJECTS[i % len(_SUBJECTS)]} on {_PLACES[i % len(_PLACES)]}.")
    return out


def prepare_text_input(image, text, q_or_c, task_instruction):
    """LLaVANextForEmbedding.prepare_text_input of BGE-VL-MLLM (modeling_llavanext_for_embedding.py),
    without its warning print."""
    if "q" in q_or_c:
        if task_instruction is None:
            text_input = "[INST] \n <instruct>  <query>"
        else:
            text_input = f"[INST] \n <instruct> {task_instruction} <query> "
    else:
        text_input = "[INST] "
    if text is not None:
        text_input = f"{text_input} {text} \n"
    if image is not None:
        text_input = f"{text_input} <image>"
    return f"{text_input} [/INST]"


def _prompts(texts):
    """BGE-VL-MLLM prompts around the texts, cut into lines at each newline (a byte-fallback
    character, as in Mistral's model, whose training text came in lines) and at `<image>` (an
    added token: SentencePiece sees the text before and after it separately)."""
    out = []
    instructions = [CIR] + OTHER_INSTRUCTIONS
    for k, t in enumerate(texts):
        variants = [
            ("q", instructions[k % len(instructions)] if k % 4 else None, t, k % 2 == 0),
            ("c", None, t, k % 2 == 1),
        ]
        if k % 5 == 0:
            variants.append(("q", CIR, None, True))
            variants.append(("c", None, None, True))
        for q_or_c, ins, text, image in variants:
            prompt = prepare_text_input("img" if image else None, text, q_or_c, ins)
            for line in prompt.replace("<image>", "\n").split("\n"):
                if line.strip():
                    out.append(line)
    return out


def _misc():
    out = []
    out.append(" ".join(str(i) for i in range(0, 101)))
    out.append(" ".join(str(1900 + 7 * i) for i in range(20)))
    out.append("0123456789 9876543210 3.14 2.5 0.001 1,000,000 -42 +7 1e-5 0x1F 12:30 50%")
    out.append("! \" # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \\ ] ^ _ ` { | } ~")
    out.append("!!! ??? ... --- *** ==> -> => :: // /* */ <> << >> [] {} ()")
    out.append("two  spaces,  four    spaces,  and   three   here.")
    out.append("    indented text with four spaces")
    out.append("        eight spaces, then text")
    return out


def corpus():
    """The training sentences, in order (each a line of text)."""
    base = SENTENCES + _captions()
    return base + _prompts(base) + _misc()


def trainer_kwargs():
    return dict(
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        character_coverage=0.99995,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_by_whitespace=True,
        split_by_number=True,
        treat_whitespace_as_suffix=False,
        max_sentencepiece_length=16,
        max_sentence_length=4192,
        vocabulary_output_piece_score=True,
        hard_vocab_limit=True,
        use_all_vocab=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        seed_sentencepiece_size=1000000,
        shrinking_factor=0.75,
        num_sub_iterations=2,
        input_format="text",
        input_sentence_size=200000000,
        shuffle_input_sentence=True,
        self_test_sample_size=0,
        num_threads=1,
        minloglevel=2,
    )


# Mistral v1 tokenizer.model's trainer_spec and normalizer_spec (read with sentencepiece_model_pb2;
# values only, for comparison). Fields not listed here are unset in both models.
MISTRAL_SPEC = {
    "trainer_spec": dict(
        input=["/mnt/test/datasets/tokenizer_training/8T_train_data/shuffled.txt"], input_format="text",
        model_prefix="tok_v0", model_type="BPE", vocab_size=32000, self_test_sample_size=0,
        character_coverage=0.9999499917030334, input_sentence_size=200000000, seed_sentencepiece_size=1000000,
        shrinking_factor=0.75, num_threads=80, num_sub_iterations=2, max_sentence_length=4192,
        shuffle_input_sentence=True, max_sentencepiece_length=16, split_by_unicode_script=True,
        split_by_whitespace=True, split_by_number=True, treat_whitespace_as_suffix=False, split_digits=True,
        allow_whitespace_only_pieces=True, vocabulary_output_piece_score=True, hard_vocab_limit=True,
        use_all_vocab=False, byte_fallback=True, required_chars="", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        unk_surface=" \u2047 ", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>",
        train_extremely_large_corpus=False, enable_differential_privacy=False,
        differential_privacy_noise_level=0.0, differential_privacy_clipping_threshold=0),
    "normalizer_spec": dict(name="identity", precompiled_charsmap=b"", add_dummy_prefix=True,
                            remove_extra_whitespaces=False, normalization_rule_tsv=""),
}


def spec_differences(data):
    """[(spec, field, this model's value, Mistral's value)] for the fields whose values differ."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString(data)
    out = []
    for spec, ref in MISTRAL_SPEC.items():
        msg = getattr(m, spec)
        for field, want in ref.items():
            have = getattr(msg, field)
            if field == "model_type":
                have = pb.TrainerSpec.ModelType.Name(have)
            elif field == "input":
                have = list(have)
            if have != want:
                out.append((spec, field, have, want))
    return out


def train():
    """The serialized model (bytes)."""
    import sentencepiece as spm

    lines = corpus()
    for s in lines:
        assert "\n" not in s and "\t" not in s and "<image>" not in s and "<pad>" not in s, s
    w = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=w, **trainer_kwargs())
    data = w.getvalue()
    check(data)
    return data


def check(data):
    """The properties the fixtures rely on."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=data)
    assert sp.get_piece_size() == VOCAB_SIZE
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    for b in range(256):
        assert sp.id_to_piece(3 + b) == f"<0x{b:02X}>" and sp.is_byte(3 + b)
    for s in ["<image>", "<pad>", "\n", "\t"]:
        assert sp.piece_to_id(s) == 0, s  # not pieces: added tokens / byte fallback


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tiny_sentencepiece.model")
    args = ap.parse_args()
    import sentencepiece as spm

    data = train()
    with open(args.out, "wb") as f:
        f.write(data)
    sp = spm.SentencePieceProcessor(model_proto=data)
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}, "
          f"{sp.get_piece_size()} pieces, sentencepiece {spm.__version__}, {len(corpus())} corpus lines")
    for spec, field, have, want in spec_differences(data):
        print(f"  differs from Mistral's model: {spec}.{field} = {have!r} (Mistral {want!r})")
    prompt = prepare_text_input("img", "Make it night", "q", CIR).split("<image>")
    for t in ["Hello world"] + prompt + ["Two cups of coffee in a caf\u00e9 in K\u00f6ln", "supercalifragilistic 1234",
                                         "\u4e2d\u6587 \U0001F600"]:
        print(repr(t), sp.encode(t, out_type=str))


if __name__ == "__main__":
    main()
