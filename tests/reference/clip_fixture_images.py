"""Create the test images (tests/fixtures/images/, from scikit-image's sample photos) and record
what the reference does with the quirks/ images, for gen_clip_fixtures.py.
"""

import hashlib
import importlib.util
import os
import shutil

import numpy as np

from clip_fixture_cases import SEED

IMAGE_NOTES = {}


def skimage_data_dir(explicit):
    if explicit:
        return explicit
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image not found: pass --skimage-data DIR or --keep-images")
    return os.path.join(os.path.dirname(spec.origin), "data")


def make_images(out_dir, data_dir):
    """Write the test images. Photos: scikit-image sample data, whose docs
    state chelsea and coffee are CC0 (photographers Stefan van der Walt and
    Rachel Michetti), astronaut (NASA) and rocket (SpaceX) public domain."""
    from PIL import Image, ImageDraw

    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    def src(name):
        return Image.open(os.path.join(data_dir, name))

    def put(name, im, note, **save):
        im.save(os.path.join(out_dir, name), **save)
        IMAGE_NOTES[name] = note

    chelsea = src("chelsea.png").convert("RGB")  # 451x300
    coffee = src("coffee.png").convert("RGB")  # 600x400
    astronaut = src("astronaut.png").convert("RGB")  # 512x512

    put("chelsea.jpg", chelsea, "skimage chelsea (CC0), RGB JPEG q90, 451x300", quality=90)
    shutil.copyfile(os.path.join(data_dir, "rocket.jpg"), os.path.join(out_dir, "rocket.jpg"))
    IMAGE_NOTES["rocket.jpg"] = "skimage rocket (public domain, SpaceX), original JPEG bytes, 640x427"
    put("coffee_large_1500x1000.jpg", coffee.resize((1500, 1000), Image.LANCZOS),
        "skimage coffee (CC0) upscaled to 1500x1000, JPEG q90: strong downscale (x0.224)", quality=90)
    put("astronaut_96x128.png", astronaut.resize((96, 128), Image.LANCZOS),
        "skimage astronaut (public domain) squeezed to 96x128 RGB PNG: upscale, portrait")
    put("crop_333x211.jpg", coffee.crop((150, 90, 483, 301)),
        "coffee crop 333x211, RGB JPEG q90", quality=90)

    cat = chelsea.crop((60, 20, 360, 220))  # 300x200
    put("grey_L.png", cat.convert("L"), "mode L (8-bit grey) PNG, 300x200")
    la = cat.convert("L").convert("LA")
    alpha = Image.linear_gradient("L").resize(cat.size).rotate(90)
    la.putalpha(alpha)
    put("grey_alpha_LA.png", la, "mode LA PNG, alpha gradient (alpha is dropped, not composited)")
    put("palette_P.png", coffee.crop((100, 50, 400, 250)).quantize(colors=64, method=Image.MEDIANCUT),
        "mode P (64-colour palette) PNG, 300x200")
    rgba = cat.copy()
    a = Image.radial_gradient("L").resize(cat.size)
    rgba.putalpha(a)
    put("rgba.png", rgba, "mode RGBA PNG, radial alpha (alpha dropped, not composited)")
    put("cmyk.jpg", coffee.crop((200, 100, 440, 280)).convert("CMYK"),
        "mode CMYK JPEG q90 (Pillow writes an Adobe APP14 marker, inverted CMYK), 240x180", quality=90)
    put("bilevel_1.png", cat.convert("1"), "mode 1 (1-bit, Floyd-Steinberg dithered) PNG, 300x200")
    put("tiny_2x2.png", Image.fromarray(np.array(
        [[[200, 30, 90], [10, 220, 40]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)),
        "2x2 RGB PNG (the smallest size the reference handles, see quirks/)")

    # Images the reference mishandles: transformers 4.45.2 guesses the channel
    # axis of the HxWx3 array and takes a height of 1 or 3 for channels first.
    os.makedirs(os.path.join(out_dir, "quirks"))
    put("quirks/one_pixel_1x1.png", Image.new("RGB", (1, 1), (200, 30, 90)), "1x1 RGB PNG")
    h3 = np.random.RandomState(SEED + 7).randint(0, 256, size=(3, 100, 3)).astype(np.uint8)
    put("quirks/height3_100x3.png", Image.fromarray(h3), "100 wide x 3 high RGB PNG")

    rng = np.random.RandomState(SEED)
    thin = rng.randint(0, 256, size=(2, 300, 3)).astype(np.uint8)
    thin[:, :, 0] = np.linspace(0, 255, 300).astype(np.uint8)[None, :]
    put("thin_300x2.png", Image.fromarray(thin), "300 wide x 2 high RGB PNG (extreme aspect)")
    put("thin_2x300.png", Image.fromarray(np.ascontiguousarray(thin.transpose(1, 0, 2))),
        "2 wide x 300 high RGB PNG (extreme aspect)")

    put("photo.bmp", chelsea.crop((100, 60, 300, 210)), "24-bit BMP, 200x150")
    put("photo.webp", coffee.crop((250, 150, 450, 300)), "lossy WebP q90, 200x150", quality=90)
    put("photo.tiff", chelsea.crop((150, 80, 350, 230)), "uncompressed RGB TIFF, 200x150")

    ex = Image.Exif()
    ex[0x0112] = 6  # Orientation: rotate 90 CW to display
    orient = chelsea.crop((80, 40, 400, 240)).copy()
    d = ImageDraw.Draw(orient)
    d.rectangle((0, 0, 40, 40), fill=(255, 0, 0))  # a marker in the stored top-left corner
    put("exif_orient6.jpg", orient,
        "320x200 JPEG q90 with EXIF Orientation=6; PIL does not rotate it, so neither may bgevl",
        quality=90, exif=ex)
    return list_images(out_dir)


def list_images(img_dir):
    """Top-level image files (quirks/ is handled separately)."""
    return sorted(f for f in os.listdir(img_dir)
                  if os.path.isfile(os.path.join(img_dir, f)) and not f.startswith(".") and f != "README.md")


def quirk_report(proc, img_dir):
    """What the reference does with the images under quirks/ (recorded, not
    used as expected values)."""
    from PIL import Image

    out = {}
    qdir = os.path.join(img_dir, "quirks")
    for name in sorted(os.listdir(qdir)) if os.path.isdir(qdir) else []:
        im = Image.open(os.path.join(qdir, name)).convert("RGB")
        try:
            t = proc(images=im, return_tensors="pt")["pixel_values"]
            out[f"quirks/{name}"] = {
                "reference": "no error, but the HxWx3 array is read as channels-first (C=H, H=W, W=3); "
                             "the pixel values are not a picture of the input",
                "pixel_values_shape": list(t.shape),
                "pixel_values_sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(),
            }
        except Exception as e:  # noqa: BLE001 - the error itself is the record
            out[f"quirks/{name}"] = {"reference": f"{type(e).__name__}: {e}"}
        out[f"quirks/{name}"]["note"] = IMAGE_NOTES.get(f"quirks/{name}", "")
    return out
