"""The LLaVA-NeXT fixture set: seed, token ids, checkpoint folders, model sizes and the cases.

Shared by gen_llava_fixtures.py and its helper modules (llava_fixture_checkpoint.py,
llava_fixture_reference.py, llava_fixture_readme.py), with small helpers on cases.
"""

import gen_tiny_sentencepiece  # tests/reference/gen_tiny_sentencepiece.py

SEED = 20241203

# the tiny SentencePiece model's size fixes the added tokens' ids (as Mistral's 32000 pieces give
# <image> 32000, <pad> 32001)
SP_VOCAB = gen_tiny_sentencepiece.VOCAB_SIZE
IMAGE_TOKEN_ID = SP_VOCAB
PAD_TOKEN_ID = SP_VOCAB + 1

WEIGHTS_FROM = "tiny-llava-next-legacy"  # the folder that holds the real shard files
CKPTS = {
    "tiny-llava-next-legacy": {"legacy": True},
    "tiny-llava-next": {"legacy": False},
}
SHARED_WEIGHT_FILES = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                       "model.safetensors.index.json", "tokenizer.model"]

# real geometry (336 px tiles, patch 14 -> 576 features per tile, 5 tiles for a 512 square),
# narrow layers
DIMS = dict(
    image=336, patch=14, v_hidden=32, v_layers=3, v_heads=4, v_inter=64,
    t_hidden=32, t_layers=2, t_heads=4, t_kv_heads=2, t_inter=64, vocab=1216,
)
assert DIMS["vocab"] >= PAD_TOKEN_ID + 1

# the composed-image-retrieval instruction of the model card (trailing space included)
CIR = ("Retrieve the target image that best meets the combined criteria by using both the "
       "provided image and the image retrieval instructions: ")


def case_list():
    """Inputs exactly as passed to data_process (image names relative to tests/fixtures/images)."""
    return [
        {"name": "q_text_image", "q_or_c": "q", "task_instruction": CIR,
         "images": "chelsea.jpg", "text": "Make the cat sleep on a red sofa."},
        {"name": "q_image", "q_or_c": "q", "task_instruction": CIR,
         "images": "palette_P.png", "text": None},
        {"name": "q_text", "q_or_c": "query", "task_instruction": CIR,
         "images": None, "text": "A grey cat sleeping on a red sofa next to the window."},
        {"name": "q_text_image_noinst", "q_or_c": "query", "task_instruction": None,
         "images": "cmyk.jpg", "text": "Show the same cups from above."},
        {"name": "c_text_image", "q_or_c": "c", "task_instruction": None,
         "images": "grey_alpha_LA.png", "text": "A black and white photo of a cat."},
        {"name": "c_image", "q_or_c": "candidate", "task_instruction": None,
         "images": "crop_333x211.jpg", "text": None},
        {"name": "c_text", "q_or_c": "c", "task_instruction": None,
         "images": None, "text": "Two cups of coffee on a wooden table in a caf\u00e9."},
        {"name": "q_text_image_list3", "q_or_c": "q", "task_instruction": CIR,
         "images": ["chelsea.jpg", "cmyk.jpg", "grey_alpha_LA.png"],
         "text": ["Night.",
                  "Make it a cup of tea with lemon, on a blue plate next to a croissant and a newspaper.",
                  "The same cat in colour, please"]},
        {"name": "q_image_list2", "q_or_c": "q", "task_instruction": CIR,
         "images": ["palette_P.png", "crop_333x211.jpg"], "text": None},
        {"name": "c_text_image_list2", "q_or_c": "c", "task_instruction": None,
         "images": ["crop_333x211.jpg", "palette_P.png"],
         "text": ["A cup.", "Two cups of coffee with milk foam on saucers, seen from above on a dark table."]},
        {"name": "q_text_list3", "q_or_c": "q", "task_instruction": CIR, "images": None,
         "text": ["A dog.",
                  "A small grey cat sits on the wooden table by the window while it rains outside.",
                  "Red bicycle"]},
        {"name": "c_text_list2", "q_or_c": "candidate", "task_instruction": None, "images": None,
         "text": ["A cat sleeping on a red sofa in the afternoon sun, next to a green plant.", "Coffee"]},
        # lists of images whose texts are partly None: data_process builds each prompt on its own
        # (prepare_text_input(image, text) per pair), so None items get the image-only prompt
        {"name": "c_mixed_captions", "q_or_c": "c", "task_instruction": None,
         "images": ["chelsea.jpg", "crop_333x211.jpg", "grey_alpha_LA.png"],
         "text": ["A cat with green eyes.", None, "A black and white photo of a cat."]},
        {"name": "q_mixed_text_none", "q_or_c": "q", "task_instruction": CIR,
         "images": ["cmyk.jpg", "chelsea.jpg", "palette_P.png"],
         "text": [None, "Make the cat sleep on a red sofa.", "Make the cup blue and add a spoon."]},
        {"name": "q_mixed_noinst4", "q_or_c": "query", "task_instruction": None,
         "images": ["grey_alpha_LA.png", "rocket.jpg", "crop_333x211.jpg", "chelsea.jpg"],
         "text": ["The same cat in colour, please", None, "Show the same cups from above.", None]},
        {"name": "c_mixed_long5", "q_or_c": "candidate", "task_instruction": None,
         "images": ["palette_P.png", "rocket.jpg", "palette_P.png", "cmyk.jpg", "chelsea.jpg"],
         "text": [None, "A rocket on the launch pad at night.", "A cup of coffee on a red saucer.", None,
                  "A cat."]},
    ]


def single_items(case):
    """Single-item versions of a batched case, in order."""
    imgs, txts = case["images"], case["text"]
    n = len(imgs) if isinstance(imgs, list) else len(txts)
    out = []
    for i in range(n):
        out.append(dict(case, name=f"{case['name']}[{i}]",
                        images=imgs[i] if isinstance(imgs, list) else None,
                        text=txts[i] if isinstance(txts, list) else None))
    return out


def is_batch(case):
    return isinstance(case["images"] if case["images"] is not None else case["text"], list)


def item_key(case, i):
    imgs, txts = case["images"], case["text"]
    img = imgs[i] if isinstance(imgs, list) else imgs
    txt = txts[i] if isinstance(txts, list) else txts
    return (case["q_or_c"][0], case["task_instruction"], img, txt)
