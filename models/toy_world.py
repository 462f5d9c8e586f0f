"""The bgevl toy world: a small procedural world made for composed image retrieval.

A scene is one or two shapes of one colour, in one of three places, by day or by night:

    shape       circle, square, triangle, star, cross
    colour      red, green, blue, yellow, purple
    background  day (a light sky), night (a dark sky)
    position    left, centre, right
    count       1, 2 (two shapes are stacked in the same place)

5 * 5 * 2 * 3 * 2 = 300 scenes. `render(scene, seed)` draws one at exactly 224x224 RGB (the
size BGE-VL-CLIP's processor crops to, so its resize and crop leave the picture as it is), with
jitter drawn from the seed: the shape's size and exact place, the colours, the sky gradient and
the horizon, so that every render is distinct. Renders are pure functions of (scene, seed).

Texts: `captions(scene)` describe a scene ("a red circle on the left, at night");
`edits(scene)` are the one-attribute changes that apply to it, and `edit_texts(scene, edit)`
their paraphrases ("make the background dark", "make it night", "change the circle to a
square", "paint it red", "move it to the left", "add another one", ...).
`heldout_edits()` is the fixed set of (scene, edit) pairs that the gallery's held-out queries
use and that training never sees.

Gallery ids: "<background>/<count>_<colour>_<shape>_<position>.png", e.g.
"night/two_red_circles_left.png" (`gallery_id`, `scene_of_id`).

Needs numpy and Pillow (Debian: python3-numpy python3-pil). No torch.
"""
import collections
import itertools
import math

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
           "cross": "crosses"}
COLOURS = ("red", "green", "blue", "yellow", "purple")
BACKGROUNDS = ("day", "night")
POSITIONS = ("left", "centre", "right")
COUNTS = (1, 2)
COUNT_WORDS = {1: "one", 2: "two"}
ATTRIBUTES = ("shape", "colour", "background", "position", "count")

Scene = collections.namedtuple("Scene", ATTRIBUTES)
Edit = collections.namedtuple("Edit", "attribute value")  # the attribute and its new value

SIZE = 224  # the rendered picture, in pixels
_SS = 2  # drawn at twice the size, then averaged down: smooth edges

# Base colours (RGB); each render moves every channel by up to +-18.
_RGB = {"red": (215, 40, 40), "green": (40, 165, 60), "blue": (45, 85, 215),
        "yellow": (235, 205, 40), "purple": (145, 60, 185)}
# Sky at the top, sky at the horizon, ground; each moved by up to +-12 per channel.
_SKY = {"day": ((165, 205, 240), (215, 230, 245), (200, 215, 185)),
        "night": ((12, 16, 40), (35, 40, 75), (28, 30, 38))}
_X = {"left": 52, "centre": 112, "right": 172}


def all_scenes():
    """The 300 scenes, in a fixed order (background, count, colour, shape, position)."""
    return [Scene(s, c, b, p, n) for b, n, c, s, p in
            itertools.product(BACKGROUNDS, COUNTS, COLOURS, SHAPES, POSITIONS)]


_INDEX = {s: i for i, s in enumerate(all_scenes())}


def scene_index(scene):
    """The scene's place in all_scenes()."""
    return _INDEX[scene]


def gallery_id(scene):
    shape = scene.shape if scene.count == 1 else PLURALS[scene.shape]
    return f"{scene.background}/{COUNT_WORDS[scene.count]}_{scene.colour}_{shape}_{scene.position}.png"


_BY_ID = {gallery_id(s): s for s in all_scenes()}


def scene_of_id(gid):
    """The scene of a gallery id (a path ending in one also works)."""
    parts = gid.replace("\\", "/").split("/")
    return _BY_ID["/".join(parts[-2:])]


# ----------------------------------------------------------------------------- rendering

def _polygon(shape, cx, cy, r):
    """Corner points of a shape of half-size r around (cx, cy); None for the circle."""
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        h = r * 0.95
        return [(cx, cy - h), (cx + r, cy + h * 0.8), (cx - r, cy + h * 0.8)]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r * 1.08 if k % 2 == 0 else r * 0.42
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a) + r * 0.1))
        return pts
    if shape == "cross":
        w = r * 0.36
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
                (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
                (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w)]
    return None


def _jitter(rgb, rng, amount):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def render(scene, seed):
    """One render of `scene`: a 224x224 RGB PIL image, a pure function of (scene, seed).

    seed: an int or a sequence of ints (numpy SeedSequence entropy)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    n = SIZE * _SS
    top, low, ground = (_jitter(c, rng, 12) for c in _SKY[scene.background])
    horizon = int(n * rng.uniform(0.76, 0.86))
    t = np.linspace(0.0, 1.0, horizon)[:, None] ** rng.uniform(0.7, 1.4)
    sky = np.array(top, float) * (1 - t) + np.array(low, float) * t
    rows = np.concatenate([sky, np.tile(np.array(ground, float), (n - horizon, 1))])
    img = Image.fromarray(np.repeat(rows[:, None, :], n, axis=1).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    colour = _jitter(_RGB[scene.colour], rng, 18)
    if scene.count == 1:
        r = rng.uniform(37, 40)
        centres = [(_X[scene.position] + rng.uniform(-7, 7), rng.uniform(84, 108))]
    else:
        r = rng.uniform(30, 32)
        gap = rng.uniform(6, 12)
        cy = rng.uniform(90, 98)
        cx = _X[scene.position] + rng.uniform(-6, 6)
        centres = [(cx + rng.uniform(-4, 4), cy - r - gap / 2), (cx + rng.uniform(-4, 4), cy + r + gap / 2)]
    for cx, cy in centres:
        cx, cy, rr = cx * _SS, cy * _SS, r * _SS
        pts = _polygon(scene.shape, cx, cy, rr)
        if pts is None:
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=colour)
        else:
            draw.polygon(pts, fill=colour)
    return img.reduce(_SS)


def render_array(scene, seed):
    """render() as a HxWx3 uint8 array."""
    return np.asarray(render(scene, seed), dtype=np.uint8)


# ----------------------------------------------------------------------------- texts

_BG_PHRASES = {"day": ("during the day", "in daylight", "on a light background"),
               "night": ("at night", "in the dark", "on a dark background")}
_POS_PHRASES = {"left": ("on the left", "at the left"), "centre": ("in the centre", "in the middle"),
                "right": ("on the right", "at the right")}
_CAPTION_TEMPLATES = ("{thing} {pos}, {bg}", "{bg}, {thing} {pos}", "a picture of {thing} {pos} {bg}",
                      "{thing} {bg}, {pos}")


def captions(scene):
    """Every caption of a scene (48 for one shape, 24 for two), in a fixed order."""
    shape = scene.shape if scene.count == 1 else PLURALS[scene.shape]
    things = ([f"a {scene.colour} {shape}", f"one {scene.colour} {shape}"] if scene.count == 1
              else [f"two {scene.colour} {shape}"])
    out = []
    for tpl, thing, pos, bg in itertools.product(_CAPTION_TEMPLATES, things, _POS_PHRASES[scene.position],
                                                 _BG_PHRASES[scene.background]):
        out.append(tpl.format(thing=thing, pos=pos, bg=bg))
    return out


def edits(scene):
    """The one-attribute changes that apply to a scene (12: 4 shapes, 4 colours, the other
    background, 2 positions, the other count)."""
    out = []
    for attr, values in zip(ATTRIBUTES, (SHAPES, COLOURS, BACKGROUNDS, POSITIONS, COUNTS)):
        out += [Edit(attr, v) for v in values if v != getattr(scene, attr)]
    return out


def apply(scene, edit):
    return scene._replace(**{edit.attribute: edit.value})


_BG_EDITS = {
    "night": ("make the background dark", "make it night", "make the sky dark", "turn it into a night scene",
              "change the background to night", "as if the photo was taken at night",
              "make the background dark, as if the camera has taken the photo at night"),
    "day": ("make the background light", "make it day", "make the sky bright", "turn it into a day scene",
            "change the background to day", "as if the photo was taken during the day",
            "make the background light, as if the camera has taken the photo during the day"),
}
_POS_WORDS = {"left": ("the left", "the left side"), "right": ("the right", "the right side"),
              "centre": ("the centre", "the middle")}


def edit_texts(scene, edit):
    """The paraphrases of an edit applied to `scene` (they name the old value where it helps)."""
    one = scene.count == 1
    it = "it" if one else "them"
    old = scene.shape if one else PLURALS[scene.shape]
    a = "a " if one else ""
    if edit.attribute == "background":
        return list(_BG_EDITS[edit.value])
    if edit.attribute == "shape":
        new = edit.value if one else PLURALS[edit.value]
        return [f"change the {old} to {a}{new}", f"turn the {old} into {a}{new}",
                f"replace the {old} with {a}{new}", f"make {it} {a}{new}",
                f"{a}{new} instead of the {old}", f"make the {old} {a}{new}"]
    if edit.attribute == "colour":
        new = edit.value
        return [f"make {it} {new}", f"change the colour to {new}", f"change the color to {new}",
                f"paint {it} {new}", f"turn {it} {new}", f"make the {old} {new}",
                f"change the {scene.colour} to {new}", f"colour {it} {new}"]
    if edit.attribute == "position":
        where, side = _POS_WORDS[edit.value]
        out = [f"move {it} to {where}", f"put {it} on {side}", f"shift {it} to {where}",
               f"place {it} in {side}" if edit.value == "centre" else f"place {it} on {side}"]
        if edit.value == "centre":
            out.append(f"centre {it}")
        else:
            out.append(f"move the {old} to the {edit.value}")
        return out
    if edit.attribute == "count":
        if edit.value == 2:
            return ["add another one", "make it two", f"add a second {scene.shape}", "duplicate it",
                    f"two {PLURALS[scene.shape]} instead of one", "double it"]
        return ["remove one", "keep only one", "make it just one", f"remove one of the {old}",
                f"only one {scene.shape}", "take one away"]
    raise ValueError(edit)


def world_texts():
    """Every caption and every edit paraphrase of the world, sorted and without repeats."""
    out = set()
    for s in all_scenes():
        out.update(captions(s))
        for e in edits(s):
            out.update(edit_texts(s, e))
    return sorted(out)


# ----------------------------------------------------------------------------- seeds and the held-out split

WORLD_SEED = 2024
_KINDS = {"gallery": 0, "query": 1, "train": 2}


def render_seed(kind, scene, k=0, seed=WORLD_SEED):
    """The seed of render k of a scene for the gallery, the image-only queries or training: the
    kinds draw from disjoint seeds whatever `seed` is."""
    return [seed, _KINDS[kind], scene_index(scene), k]


# Readable held-out queries for the README demo (models/queries/demo.jsonl): scene, edit, text.
DEMO = [
    (Scene("circle", "red", "day", "left", 1), Edit("background", "night"), "make the background dark"),
    (Scene("square", "blue", "night", "centre", 1), Edit("colour", "yellow"), "make it yellow"),
    (Scene("star", "green", "day", "right", 1), Edit("shape", "triangle"), "change the star to a triangle"),
    (Scene("cross", "purple", "night", "right", 1), Edit("position", "left"), "move it to the left"),
    (Scene("triangle", "yellow", "day", "centre", 1), Edit("count", 2), "add another one"),
]
HELDOUT_PER_ATTRIBUTE = 60
HELDOUT_SEED = 20240


def heldout_edits(per_attribute=HELDOUT_PER_ATTRIBUTE, seed=HELDOUT_SEED):
    """The held-out (scene, edit, text) triples: the DEMO ones plus, per attribute, random
    (scene, edit) pairs with one of their paraphrases. Training never uses any of these
    (scene, edit) pairs, with any wording."""
    rng = np.random.default_rng(seed)
    chosen = {(s, e): t for s, e, t in DEMO}
    for attr in ATTRIBUTES:
        pairs = [(s, e) for s in all_scenes() for e in edits(s) if e.attribute == attr]
        have = sum(1 for s, e in chosen if e.attribute == attr)
        for k in rng.permutation(len(pairs)):
            if have >= per_attribute:
                break
            s, e = pairs[k]
            if (s, e) not in chosen:
                texts = edit_texts(s, e)
                chosen[(s, e)] = texts[rng.integers(len(texts))]
                have += 1
    return [(s, e, t) for (s, e), t in chosen.items()]


HELDOUT_CAPTIONS = 60
HELDOUT_IMAGES = 40


def heldout_captions(n=HELDOUT_CAPTIONS, seed=HELDOUT_SEED):
    """(scene, caption) text-only queries; training never uses these caption strings."""
    rng = np.random.default_rng([seed, 1])
    scenes = all_scenes()
    out = []
    for k in sorted(rng.choice(len(scenes), n, replace=False)):
        caps = captions(scenes[k])
        out.append((scenes[k], caps[rng.integers(len(caps))]))
    return out


def heldout_image_scenes(n=HELDOUT_IMAGES, seed=HELDOUT_SEED):
    """The scenes of the image-only queries (each a render of kind "query", not in the gallery)."""
    rng = np.random.default_rng([seed, 2])
    scenes = all_scenes()
    return [scenes[k] for k in sorted(rng.choice(len(scenes), n, replace=False))]


if __name__ == "__main__":
    texts = world_texts()
    print(len(all_scenes()), "scenes,", len(texts), "distinct texts, e.g.:")
    for t in texts[:: max(1, len(texts) // 12)]:
        print("  ", t)
