"""The BGE-VL-CLIP fixture cases (texts, images, composed pairs as passed to encode) and the
seeds / vocabulary size they rely on; shared by gen_clip_fixtures.py and its clip_fixture_*.py
helper modules.
"""

N_MERGES = 400
SEED = 20241127

# A text that is exactly 77 tokens long (with <|startoftext|> and
# <|endoftext|>) under the tiny vocabulary (N_MERGES merges); asserted by gen_clip_fixtures.py.
TEXT_77 = (
    "A long caption: the small grey cat sits on the wooden table by the window, "
    "the red bicycle leans against a brick wall, two cups of coffee stand on a white "
    "plate, and the rocket rises into the blue sky over the hills at 9:41. Two children "
    "play with a red ball on the green grass."
)

TEXTS_SINGLE = "A photo of a cat sitting on a wooden table."
TEXTS_LIST4 = [
    "dog",
    "Two cups of coffee, one with milk & sugar!",
    "photo #3 of 10: a red   bicycle\tleaning against a brick wall, isn't it?",
    "The rocket launched at 9:41 a.m. on July 16, 1969 \u2014 carrying three "
    "astronauts from the launch pad to the Moon; a caf\u00e9 crowd watched.",
]
COMPOSED_SINGLE = ("coffee_large_1500x1000.jpg", "Make it a cup of tea with lemon.")
COMPOSED_LIST3 = [
    ("exif_orient6.jpg", "Show the same cat at night."),
    ("astronaut_96x128.png", TEXT_77),
    ("rgba.png", "remove the background, keep the cat"),
]


def case_list():
    return [
        {"name": "image_single", "kind": "images", "images": "chelsea.jpg", "text": None},
        {"name": "image_list3", "kind": "images",
         "images": ["rocket.jpg", "palette_P.png", "cmyk.jpg"], "text": None},
        {"name": "text_single", "kind": "text", "images": None, "text": TEXTS_SINGLE},
        {"name": "text_list4", "kind": "text", "images": None, "text": list(TEXTS_LIST4)},
        {"name": "text_77", "kind": "text", "images": None, "text": TEXT_77},
        {"name": "composed_single", "kind": "composed",
         "images": COMPOSED_SINGLE[0], "text": COMPOSED_SINGLE[1]},
        {"name": "composed_list3", "kind": "composed",
         "images": [p for p, _ in COMPOSED_LIST3], "text": [t for _, t in COMPOSED_LIST3]},
    ]
