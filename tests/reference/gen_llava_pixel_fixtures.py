#!/usr/bin/python3
"""Generate the LLaVA-NeXT pixel fixtures for tests/cpp/test_llava_processor.cpp.

Reference: Hugging Face transformers 4.45.2 (asserted), its slow LlavaNextImageProcessor and
select_best_resolution, with Pillow 9.4 (asserted) and numpy; nothing in here calls bgevl. The
BGE-VL-MLLM code (LLaVANextForEmbedding.data_process) opens every image as
    Image.open(p).resize((512, 512)).convert("RGB")
and hands it to the processor of llava-hf/llava-v1.6-mistral-7b-hf: that is `presize` 512 below.
Cases with presize 0 (Image.open(p).convert("RGB") straight into the processor) cover the other
grid choices, non-square inputs and odd padding; a few use other configs (other pinpoints, small
tiles, do_resize / do_normalize off).

Requirements (not installed or vendored by this script): a Python where `import transformers`
gives 4.45.2, with numpy and Pillow 9.4. Here: Debian's /usr/bin/python3 with the reference
environment described in /work/refenv/README.md:

    source /work/refenv/activate.sh
    cd <repo> && /usr/bin/python3 tests/reference/gen_llava_pixel_fixtures.py

Inputs: tests/fixtures/images/* (and tests/fixtures/vision/l16.png); a few derived inputs are
written to tests/fixtures/llava/inputs/ (crops of the coffee photo, saved by PIL).

Outputs, in tests/fixtures/llava/:
  preprocessor_config.json   llava-hf/llava-v1.6-mistral-7b-hf's image processor config
  pixel_cases.json           configs, value tables, cases, select_best_resolution table, notes
  pixel_values.safetensors   per case "<name>.idx" (I64) / "<name>.val" (F32): the reference's
                             pixel_values (flattened, C order) at a deterministic sample of
                             positions; "<name>.full" (F32): the whole tensor, for two cases
                             with small tiles

The full pixel_values are verified through two SHA-256 digests per case:
  float32_sha256  of the reference's float32 pixel_values (bit-exact parity);
  uint8_sha256    of the uint8 value behind every element. Every output value is
                  normalize(rescale(u8)) of one byte u8 per channel, so the reference's tensor
                  is exactly value_tables[config][channel][u8]; this script recovers u8 and
                  asserts the identity for every element. A test that maps its own values back
                  to u8 within 1e-6 of the table and gets this digest agrees with the
                  reference on every element to 1e-6.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
import PIL
from PIL import Image

import transformers
from transformers import LlavaNextImageProcessor
from transformers.image_processing_utils import select_best_resolution
from transformers.models.llava_next.image_processing_llava_next import _get_patch_output_size

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_numpy  # noqa: E402

assert transformers.__version__ == "4.45.2", transformers.__version__
assert PIL.__version__.startswith("9.4"), PIL.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
OUT = os.path.join(FIX, "llava")
INPUTS = os.path.join(OUT, "inputs")
N_SAMPLES = 512

# llava-hf/llava-v1.6-mistral-7b-hf preprocessor_config.json (BGE-VL-MLLM ships the same).
MISTRAL = {
    "aspect_ratio_setting": "anyres",
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "LlavaNextImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "processor_class": "LlavaNextProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 336},
}


def variant(**kw):
    c = dict(MISTRAL)
    c.update(kw)
    return c


CONFIGS = {
    "mistral": MISTRAL,
    # More pinpoints (the 3x3 "anyres_max" style list), in an order where ties matter.
    "grid9": variant(image_grid_pinpoints=[[336, 336], [336, 672], [672, 336], [672, 672],
                                           [1008, 336], [336, 1008], [672, 1008], [1008, 672],
                                           [1008, 1008]]),
    # Small tiles (the full tensors fit in the fixture).
    "small_a": variant(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64},
                       image_grid_pinpoints=[[64, 128], [128, 64], [128, 128], [192, 64],
                                             [64, 192]]),
    # Tiles that need a real resize and a crop that pads: shortest_edge 60 < crop height 64,
    # crop width 56, pinpoints that are not multiples of the tile, other mean/std.
    "small_b": variant(size={"shortest_edge": 60}, crop_size={"height": 64, "width": 56},
                       image_grid_pinpoints=[[64, 64], [100, 150], [150, 100], [128, 192]],
                       image_mean=[0.5, 0.25, 0.75], image_std=[0.2, 0.3, 0.4]),
    # do_resize and do_normalize off: tiles are only cropped (and padded) and rescaled.
    "small_c": variant(size={"shortest_edge": 50}, crop_size={"height": 48, "width": 40},
                       image_grid_pinpoints=[[96, 96], [48, 144], [144, 48]],
                       do_resize=False, do_normalize=False),
}

# Derived inputs: (file, source, crop box or None, size (w, h)).
DERIVED = [
    ("tall_120x700.jpg", "images/coffee_large_1500x1000.jpg", (600, 0, 800, 1000), (120, 700)),
    ("wide_700x120.jpg", "images/coffee_large_1500x1000.jpg", (0, 300, 1500, 560), (700, 120)),
    ("tall_400x800.jpg", "images/coffee_large_1500x1000.jpg", (400, 0, 900, 1000), (400, 800)),
    # 336 / 18 * 27 = 504.00000000000006 in float64: ceil gives 505, not 504.
    ("float_ceil_27x18.png", "images/chelsea.jpg", None, (27, 18)),
]

# (case name, input (relative to tests/fixtures), presize, config, store the full tensor)
CASES = [
    # What BGE-VL-MLLM does: 512 x 512 first, every mode.
    ("p512_chelsea", "images/chelsea.jpg", 512, "mistral", False),
    ("p512_rocket", "images/rocket.jpg", 512, "mistral", False),
    ("p512_palette", "images/palette_P.png", 512, "mistral", False),
    ("p512_bilevel", "images/bilevel_1.png", 512, "mistral", False),
    ("p512_grey", "images/grey_L.png", 512, "mistral", False),
    ("p512_grey_alpha", "images/grey_alpha_LA.png", 512, "mistral", False),
    ("p512_rgba", "images/rgba.png", 512, "mistral", False),
    ("p512_cmyk", "images/cmyk.jpg", 512, "mistral", False),
    ("p512_crop_333x211", "images/crop_333x211.jpg", 512, "mistral", False),
    ("p512_thin_300x2", "images/thin_300x2.png", 512, "mistral", False),
    ("p512_thin_2x300", "images/thin_2x300.png", 512, "mistral", False),
    ("p512_coffee_1500x1000", "images/coffee_large_1500x1000.jpg", 512, "mistral", False),
    ("p512_astronaut", "images/astronaut_96x128.png", 512, "mistral", False),
    ("p512_height3", "images/quirks/height3_100x3.png", 512, "mistral", False),
    ("p512_one_pixel", "images/quirks/one_pixel_1x1.png", 512, "mistral", False),
    ("p512_webp", "images/photo.webp", 512, "mistral", False),
    # 16-bit grey opens as mode "I": resized in 32-bit before convert("RGB") clips it to 0..255.
    ("p512_grey16", "vision/l16.png", 512, "mistral", False),
    # No pre-resize: every pinpoint, odd padding (671 / 335 canvases), the float ceil quirk.
    ("raw_chelsea", "images/chelsea.jpg", 0, "mistral", False),
    ("raw_crop_333x211", "images/crop_333x211.jpg", 0, "mistral", False),
    ("raw_coffee_1500x1000", "images/coffee_large_1500x1000.jpg", 0, "mistral", False),
    ("raw_tall_400x800", "llava/inputs/tall_400x800.jpg", 0, "mistral", False),
    ("raw_tall_120x700", "llava/inputs/tall_120x700.jpg", 0, "mistral", False),
    ("raw_wide_700x120", "llava/inputs/wide_700x120.jpg", 0, "mistral", False),
    ("raw_thin_2x300", "images/thin_2x300.png", 0, "mistral", False),
    ("raw_thin_300x2", "images/thin_300x2.png", 0, "mistral", False),
    ("raw_float_ceil_27x18", "llava/inputs/float_ceil_27x18.png", 0, "mistral", False),
    ("raw_palette", "images/palette_P.png", 0, "mistral", False),
    # Other configs.
    ("grid9_p512_rocket", "images/rocket.jpg", 512, "grid9", False),
    ("grid9_raw_coffee_1500x1000", "images/coffee_large_1500x1000.jpg", 0, "grid9", False),
    ("grid9_raw_astronaut", "images/astronaut_96x128.png", 0, "grid9", False),
    ("small_a_raw_rocket", "images/rocket.jpg", 0, "small_a", True),
    ("small_a_p100_cmyk", "images/cmyk.jpg", 100, "small_a", False),
    ("small_a_raw_tall_120x700", "llava/inputs/tall_120x700.jpg", 0, "small_a", False),
    ("small_b_raw_chelsea", "images/chelsea.jpg", 0, "small_b", True),
    ("small_b_raw_tall_400x800", "llava/inputs/tall_400x800.jpg", 0, "small_b", False),
    ("small_b_p77_rgba", "images/rgba.png", 77, "small_b", False),
    ("small_c_raw_crop_333x211", "images/crop_333x211.jpg", 0, "small_c", False),
    ("small_c_raw_thin_2x300", "images/thin_2x300.png", 0, "small_c", False),
]

# Cases bgevl does not reproduce (yet); the test reports them without failing.
KNOWN_DEVIATIONS = {
    "p512_grey16": "PIL opens 16-bit grey PNGs as mode I and resizes them in 32-bit before "
                   "convert('RGB') clips to 0..255; bgevl decodes them to L (clipped) first, "
                   "so the 512 pre-resize sees different values",
}


def open_input(rel, presize):
    im = Image.open(os.path.join(FIX, rel))
    if presize:
        im = im.resize((presize, presize))
    return im.convert("RGB")


def processor(name):
    # The same path as from_pretrained(folder): the config dict is the constructor's kwargs.
    return LlavaNextImageProcessor(**CONFIGS[name])


def value_table(name):
    """The reference's rescale + normalize for every byte value, per channel: (3, 256) float32."""
    ip = processor(name)
    c = CONFIGS[name]
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
    x = ramp
    if c["do_rescale"]:
        x = ip.rescale(x, scale=c["rescale_factor"], input_data_format="channels_last")
    if c["do_normalize"]:
        x = ip.normalize(x, mean=c["image_mean"], std=c["image_std"],
                         input_data_format="channels_last")
    t = np.ascontiguousarray(x[0].T).astype(np.float32)  # (3, 256)
    assert np.all(np.diff(t, axis=1) > 0), "value table must be increasing"
    return t


def recover_uint8(pv, table):
    """The byte behind every element of pixel_values (N, 3, h, w); asserts exact identity."""
    u8 = np.empty(pv.shape, dtype=np.uint8)
    for c in range(3):
        v = pv[:, c]
        idx = np.clip(np.searchsorted(table[c], v), 0, 255)
        assert np.array_equal(table[c][idx], v), "pixel value outside the value table"
        u8[:, c] = idx
    return u8


def make_derived():
    os.makedirs(INPUTS, exist_ok=True)
    for fname, src, box, size in DERIVED:
        im = Image.open(os.path.join(FIX, src)).convert("RGB")
        if box:
            im = im.crop(box)
        im = im.resize(size, Image.Resampling.LANCZOS)
        path = os.path.join(INPUTS, fname)
        if fname.endswith(".jpg"):
            im.save(path, quality=85)
        else:
            im.save(path)


def sbr_table():
    lists = {
        "mistral": MISTRAL["image_grid_pinpoints"],
        "grid9": CONFIGS["grid9"]["image_grid_pinpoints"],
        "small_b": CONFIGS["small_b"]["image_grid_pinpoints"],
        "ties": [[336, 672], [672, 336]],
        "reordered": [[672, 672], [1008, 336], [336, 1008], [672, 336], [336, 672]],
        "odd": [[100, 300], [300, 100], [200, 200], [7, 9], [333, 333], [1, 5000]],
    }
    rng = np.random.default_rng(20241127)
    sizes = [(1, 1), (1, 5000), (5000, 1), (512, 512), (336, 672), (672, 336), (337, 673),
             (672, 672), (673, 673), (1008, 336), (336, 1008), (2, 300), (300, 2), (3, 100),
             (211, 333), (1000, 1500), (18, 27), (800, 400), (700, 120), (120, 700),
             (335, 671), (4000, 4000), (1, 1008), (1008, 1), (224, 224), (100000, 3)]
    for _ in range(220):
        h = int(math.exp(rng.uniform(0, math.log(4000))))
        w = int(math.exp(rng.uniform(0, math.log(4000))))
        sizes.append((max(h, 1), max(w, 1)))
    rows = []
    for lname, pp in lists.items():
        for h, w in sizes:
            bh, bw = select_best_resolution((h, w), pp)
            rows.append([lname, h, w, bh, bw])
    return {"pinpoint_lists": lists, "rows_are": "[list, height, width, best_height, best_width]",
            "rows": rows}


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump(MISTRAL, f, indent=2, sort_keys=True)
        f.write("\n")
    make_derived()

    tables = {name: value_table(name) for name in CONFIGS}
    rng = np.random.default_rng(512)
    tensors = {}
    cases = []
    for name, rel, presize, cfg, full in CASES:
        ip = processor(cfg)
        im = open_input(rel, presize)
        out = ip.preprocess(im)
        pv = out["pixel_values"][0]
        assert pv.dtype == np.float32 and pv.ndim == 4 and pv.shape[1] == 3, (name, pv.shape)
        h_img, w_img = (int(v) for v in out["image_sizes"][0])
        # the intermediate sizes, for the record
        best = select_best_resolution((h_img, w_img), CONFIGS[cfg]["image_grid_pinpoints"])
        arr = np.zeros((h_img, w_img, 3), dtype=np.uint8)
        nh, nw = _get_patch_output_size(arr, best, "channels_last")
        py, px = (best[0] - nh) // 2, (best[1] - nw) // 2
        u8 = recover_uint8(pv, tables[cfg])
        flat = pv.reshape(-1)
        idx = np.unique(np.concatenate([
            rng.integers(0, flat.size, N_SAMPLES - 4),
            np.array([0, flat.size - 1, flat.size // 2, flat.size // 3])]))
        tensors[name + ".idx"] = idx.astype(np.int64)
        tensors[name + ".val"] = flat[idx].copy()
        if full:
            tensors[name + ".full"] = np.ascontiguousarray(pv)
        cases.append({
            "name": name, "image": rel, "presize": presize, "config": cfg,
            "shape": list(pv.shape), "image_size": [h_img, w_img],
            "best_resolution": list(best), "resized": [nh, nw],
            "canvas": [nh + 2 * py, nw + 2 * px],
            "float32_sha256": hashlib.sha256(np.ascontiguousarray(pv).tobytes()).hexdigest(),
            "uint8_sha256": hashlib.sha256(np.ascontiguousarray(u8).tobytes()).hexdigest(),
            "full": full,
        })
        if name in KNOWN_DEVIATIONS:
            cases[-1]["known_deviation"] = KNOWN_DEVIATIONS[name]
        print(f"{name:32s} {str(tuple(pv.shape)):20s} image {h_img}x{w_img} best {best} "
              f"resized {nh}x{nw} canvas {nh + 2 * py}x{nw + 2 * px}")

    # Batching: do_pad pads the tile axis with zeros (0.0, not normalised black) to the batch's
    # largest tile count.
    ip = processor("mistral")
    a = open_input("images/chelsea.jpg", 512)
    b = open_input("images/tiny_2x2.png", 0)  # 336x672 -> 3 tiles
    batch = ip.preprocess([a, b])
    single_a = ip.preprocess(a)["pixel_values"][0]
    single_b = ip.preprocess(b)["pixel_values"][0]
    pa, pb = batch["pixel_values"]
    assert pa.shape == pb.shape == (5, 3, 336, 336), (pa.shape, pb.shape)
    assert np.array_equal(pa, single_a) and np.array_equal(pb[:3], single_b)
    assert np.all(pb[3:] == 0.0)
    try:  # 4.45.2 only assigns its result inside `if do_pad:`
        no_pad = ip.preprocess([a, b], do_pad=False)
        no_pad_result = "shapes " + str([list(x.shape) for x in no_pad["pixel_values"]])
    except Exception as e:  # noqa: BLE001
        no_pad_result = f"raises {type(e).__name__}: {e}"
    batching = {
        "images": ["images/chelsea.jpg presize 512", "images/tiny_2x2.png presize 0"],
        "tiles": [int(single_a.shape[0]), int(single_b.shape[0])],
        "padded_to": int(pb.shape[0]),
        "pad_value": 0.0,
        "real_tiles_equal_single_image": True,
        "image_sizes": [list(map(int, s)) for s in batch["image_sizes"]],
        "do_pad_false": no_pad_result,
        "note": "do_pad=True (the config) appends all-zero tiles (0.0, not normalised black) "
                "after the real ones, up to the largest tile count in the call. "
                "do_pad=False fails in 4.45.2 (see do_pad_false).",
    }

    # Quirk: presize 0 and an image of height 1 or 3 -> numpy (3, W, 3) is taken as channels-first
    # (infer_channel_dimension_format): the processor then sees a W-wide, 3-channel image of
    # height... the rows. bgevl does not reproduce this (BGE-VL always pre-resizes to 512).
    try:
        r = processor("mistral").preprocess(open_input("images/quirks/height3_100x3.png", 0))
        quirk = f"ran: pixel_values {r['pixel_values'][0].shape}, image_sizes {r['image_sizes']}"
    except Exception as e:  # noqa: BLE001
        quirk = f"raises {type(e).__name__}: {e}"

    doc = {
        "generator": "tests/reference/gen_llava_pixel_fixtures.py",
        "transformers": transformers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "configs": CONFIGS,
        "value_tables": {k: [[float(x) for x in row] for row in v.tolist()]
                         for k, v in tables.items()},
        "value_tables_note": "float32 values (exact in JSON as float64): value_tables[config][c][u8]",
        "cases": cases,
        "select_best_resolution": sbr_table(),
        "batching": batching,
        "quirks": {
            "height3_presize0": quirk,
        },
    }
    with open(os.path.join(OUT, "pixel_cases.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    save_numpy(tensors, os.path.join(OUT, "pixel_values.safetensors"),
               metadata={"generator": "tests/reference/gen_llava_pixel_fixtures.py",
                         "transformers": transformers.__version__})
    print("height3 presize 0:", quirk)


if __name__ == "__main__":
    main()
