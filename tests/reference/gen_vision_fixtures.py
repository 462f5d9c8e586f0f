#!/usr/bin/python3
"""Generate the PIL reference fixtures for tests/cpp/test_vision.cpp.

Run with Debian's Python and Pillow 9.4 (python3-pil), the Pillow that the reference stack uses:

    /usr/bin/python3 tests/reference/gen_vision_fixtures.py

It writes, under tests/fixtures/vision/:
  resize_cases.bin   Image.resize(size, BICUBIC) and Image.convert("RGB") on small random images
  decode_cases.bin   what Image.open(file) holds for each sample file below (mode and pixels)
  *.png *.jpg ...    the tiny sample files themselves (written by PIL, a few written by hand)

File format (little endian), read by test_vision.cpp:
  b"BGVF", u32 version (1), u32 record count, then per record:
  u16 name length, name (utf-8), u8 op (0 resize, 1 to_rgb, 2 decode),
  u8 in_mode, u32 in_w, u32 in_h, u32 in_c, u8 out_mode, u32 out_w, u32 out_h, u32 out_c,
  u8 out_storage, in_w*in_h*in_c bytes of input pixels, then the expected pixels: out_storage 0:
  all out_w*out_h*out_c bytes; 1 (outputs over 8 KB, to keep the fixture small): their 64-bit
  FNV-1a hash (u64) followed by the first output row (out_w*out_c bytes).
Modes use bgevl::vision::PilMode's order: L 0, LA 1, RGB 2, RGBA 3, CMYK 4, P 5, One 6. Pixels are
stored the way bgevl holds them: P expanded to RGB, "1" as L with 0/255, 16-bit grey ("I") as L
(clamped, as convert("L") does).
"""
import io
import os
import struct
import zlib

import numpy as np
import PIL
from PIL import Image

assert PIL.__version__.startswith("9.4"), f"expected Pillow 9.4, got {PIL.__version__}"

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "vision")
MODES = {"L": 0, "LA": 1, "RGB": 2, "RGBA": 3, "CMYK": 4, "P": 5, "1": 6}
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "P": 3, "1": 1}
rng = np.random.default_rng(20240611)


def stored(im):
    """The pixels of a PIL image as bgevl stores them, and bgevl's mode name."""
    mode = im.mode
    if mode == "P":
        a = np.asarray(im.convert("RGB"))
    elif mode == "1":
        a = np.asarray(im.convert("L"))
    elif mode == "I":
        a = np.asarray(im.convert("L"))
        mode = "L"
    else:
        a = np.asarray(im)
    a = np.ascontiguousarray(a, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    assert a.shape[2] == CHANNELS[mode], (mode, a.shape)
    return mode, a


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Writer:
    def __init__(self):
        self.records = []

    def add(self, name, op, in_mode, in_arr, out_mode, out_arr):
        nb = name.encode()
        rec = struct.pack("<H", len(nb)) + nb + struct.pack("<B", op)
        if in_arr is None:
            rec += struct.pack("<BIII", 0, 0, 0, 0)
        else:
            h, w, c = in_arr.shape
            rec += struct.pack("<BIII", MODES[in_mode], w, h, c)
        h, w, c = out_arr.shape
        big = out_arr.nbytes > 8 * 1024
        rec += struct.pack("<BIIIB", MODES[out_mode], w, h, c, 1 if big else 0)
        if in_arr is not None:
            rec += in_arr.tobytes()
        if big:
            rec += struct.pack("<Q", fnv1a64(out_arr.tobytes())) + out_arr[0].tobytes()
        else:
            rec += out_arr.tobytes()
        self.records.append(rec)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"BGVF" + struct.pack("<II", 1, len(self.records)))
            for r in self.records:
                f.write(r)
        print(f"{path}: {len(self.records)} records, {os.path.getsize(path)} bytes")


def random_image(mode, w, h, smooth=False):
    if smooth:
        y, x = np.mgrid[0:h, 0:w]
        base = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256,
                (x * y) % 256]
        a = np.dstack(base).astype(np.uint8)
    else:
        a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").convert("P")
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return im
    if mode == "1":
        return Image.fromarray(a[:, :, 0] > 127)
    if mode == "L":
        return Image.fromarray(a[:, :, 0], "L")
    if mode == "LA":
        return Image.fromarray(np.ascontiguousarray(a[:, :, :2]), "LA")
    if mode == "RGB":
        return Image.fromarray(np.ascontiguousarray(a[:, :, :3]), "RGB")
    if mode == "RGBA":
        b = a.copy()
        b[0, :, 3] = 0  # fully transparent and opaque rows, as in real images
        b[-1, :, 3] = 255
        return Image.fromarray(b, "RGBA")
    if mode == "CMYK":
        return Image.fromarray(a, "CMYK")
    raise ValueError(mode)


def resize_cases(w):
    cases = [
        # (mode, in_w, in_h, out_w, out_h, smooth)
        ("RGB", 50, 40, 224, 179, False),  # upscale
        ("RGB", 67, 41, 21, 13, False),  # downscale, odd factor
        ("RGB", 64, 48, 21, 16, True),  # downscale ~3x, smooth content
        ("L", 64, 48, 298, 224, True),  # CLIP-like 4:3 upscale
        ("RGB", 3, 2, 100, 67, False),  # extreme upscale
        ("L", 120, 90, 5, 4, False),  # extreme downscale (wide support)
        ("RGB", 1, 57, 224, 13, False),  # 1xN
        ("L", 83, 1, 7, 224, False),  # Nx1
        ("L", 1, 1, 224, 224, False),  # 1x1 -> 224
        ("RGB", 1, 1, 5, 3, False),
        ("RGB", 30, 20, 30, 20, False),  # same size: copy
        ("RGB", 40, 30, 17, 30, False),  # width only
        ("RGB", 40, 30, 40, 47, False),  # height only
        ("RGB", 33, 17, 224, 224, False),  # non-uniform
        ("L", 225, 2, 224, 2, False),  # near-identity
        ("RGBA", 20, 15, 33, 9, False),  # premultiplied path
        ("LA", 20, 15, 9, 31, False),
        ("CMYK", 20, 15, 11, 7, False),
        ("P", 20, 15, 33, 9, False),  # NEAREST
        ("P", 37, 29, 11, 13, False),
        ("1", 20, 15, 47, 11, False),  # NEAREST
        ("1", 61, 47, 9, 7, False),
    ]
    for _ in range(12):
        iw, ih = (int(v) for v in rng.integers(1, 33, 2))
        ow, oh = (int(v) for v in rng.integers(1, 41, 2))
        cases.append(("RGB", iw, ih, ow, oh, False))
    for mode, iw, ih, ow, oh, smooth in cases:
        im = random_image(mode, iw, ih, smooth)
        in_mode, in_arr = stored(im)
        r = im.resize((ow, oh), Image.BICUBIC)
        out_mode, out_arr = stored(r)
        assert out_mode == in_mode and out_arr.shape[:2] == (oh, ow)
        w.add(f"resize/{mode}/{iw}x{ih}->{ow}x{oh}", 0, in_mode, in_arr, out_mode, out_arr)


def to_rgb_cases(w):
    for mode in ["L", "LA", "RGB", "RGBA", "CMYK", "P", "1"]:
        im = random_image(mode, 32, 16)
        if mode == "CMYK":  # include every value of every channel
            a = np.asarray(im).copy()
            a.reshape(-1, 4)[:256, :] = np.arange(256, dtype=np.uint8)[:, None]
            a.reshape(-1, 4)[256:512, 3] = 0
            im = Image.fromarray(a, "CMYK")
        in_mode, in_arr = stored(im)
        out_mode, out_arr = stored(im.convert("RGB"))
        w.add(f"to_rgb/{mode}", 1, in_mode, in_arr, out_mode, out_arr)


# ---- sample files ------------------------------------------------------------------------------


def chunk(t, d, crc=None):
    """A PNG chunk; `crc` replaces the right checksum."""
    if crc is None:
        crc = zlib.crc32(t + d) & 0xFFFFFFFF
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", crc)


def ihdr(w, h, color_type, bit_depth, interlace=0):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(w, h, color_type, bit_depth, rows, extra=b"", iend=True):
    raw = b"".join(b"\0" + r for r in rows)
    s = PNG_SIGNATURE + ihdr(w, h, color_type, bit_depth)
    s += extra + chunk(b"IDAT", zlib.compress(raw))
    if iend:
        s += chunk(b"IEND", b"")
    return s


def sample_files():
    """name -> (bytes); every one decodes with PIL."""
    files = {}

    def save(name, im, **kw):
        b = io.BytesIO()
        im.save(b, format=kw.pop("format", None) or name.rsplit(".", 1)[1].upper().replace(
            "JPG", "JPEG").replace("TIF", "TIFF"), **kw)
        files[name] = b.getvalue()

    smooth = random_image("RGB", 45, 37, smooth=True)
    noisy = Image.fromarray(np.clip(np.asarray(smooth).astype(int) +
                                    rng.integers(-25, 25, (37, 45, 3)), 0, 255).astype(np.uint8))
    small = random_image("RGB", 13, 9)
    # PNG: every colour type
    save("rgb.png", small)
    save("l.png", random_image("L", 13, 9))
    save("la.png", random_image("LA", 13, 9))
    save("rgba.png", random_image("RGBA", 13, 9))
    p = random_image("P", 13, 9)
    save("p.png", p)
    save("p_trns.png", p, transparency=3)  # palette + tRNS: OpenCV gives 4 channels
    p4 = Image.fromarray(rng.integers(0, 5, (9, 13), dtype=np.uint8), "L").convert("P")
    p4.putpalette(rng.integers(0, 256, 15, dtype=np.uint8).tobytes())
    save("p4.png", p4)  # 5 colours: a 4-bit palette PNG
    save("one.png", random_image("1", 13, 9))  # 1-bit grey
    save("l_trns.png", random_image("L", 13, 9), transparency=7)
    save("rgb_trns.png", small, transparency=(1, 2, 3))  # RGB + tRNS: still RGB in PIL
    g4 = rng.integers(0, 16, (9, 13), dtype=np.uint8)  # 4-bit grey, packed by hand
    rows = []
    for r in g4:
        rr = np.append(r, 0).astype(np.uint8) if len(r) % 2 else r
        rows.append(((rr[0::2] << 4) | rr[1::2]).astype(np.uint8).tobytes())
    files["l4.png"] = png_bytes(13, 9, 0, 4, rows)
    for name, ct, ch in [("rgb16.png", 2, 3), ("rgba16.png", 6, 4), ("la16.png", 4, 2),
                         ("l16.png", 0, 1)]:
        a = rng.integers(0, 65536, (9, 13, ch), dtype=np.uint16)
        if ct == 0:
            a[0, :6, 0] = [0, 1, 254, 255, 256, 65535]  # PIL opens 16-bit grey as "I"
        files[name] = png_bytes(13, 9, ct, 16, [r.astype(">u2").tobytes() for r in a])
    # The file without its IEND chunk: PIL loads it (load_end tolerates the end).
    files["rgb_noiend.png"] = files["rgb.png"][:-12]
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW; PIL does not apply it
    save("exif6.png", small, exif=exif.tobytes())
    # JPEG
    save("rgb.jpg", noisy, quality=85)  # 4:2:0
    save("rgb444.jpg", noisy, quality=95, subsampling=0)
    save("rgb_prog.jpg", noisy, quality=85, progressive=True)
    save("l.jpg", noisy.convert("L"), quality=85)
    save("cmyk.jpg", noisy.convert("CMYK"), quality=90)  # Adobe CMYK, opened as "CMYK;I"
    save("exif6.jpg", noisy, quality=85, exif=exif.tobytes())
    # ycck.jpg (Adobe YCCK, transform 2) cannot be written by PIL; it was written once with
    # libjpeg (in_color_space JCS_CMYK, jpeg_set_colorspace(JCS_YCCK), quality 90, 37x29) and is
    # kept; only PIL's decoding of it is recorded here.
    with open(os.path.join(OUT, "ycck.jpg"), "rb") as f:
        files["ycck.jpg"] = f.read()
    # BMP
    save("rgb.bmp", small)
    save("l.bmp", random_image("L", 13, 9))
    save("p.bmp", p)
    save("one.bmp", random_image("1", 13, 9))
    save("rgba.bmp", random_image("RGBA", 13, 9))  # 32-bit BI_RGB: PIL reads it as RGB
    # WebP
    save("rgb_lossless.webp", small, lossless=True)
    save("rgb_lossy.webp", noisy, quality=80)
    save("rgba_lossy.webp", Image.fromarray(np.dstack([np.asarray(noisy),
                                                       np.asarray(noisy)[:, :, 0]])), quality=80)
    # TIFF
    save("rgb.tif", small)
    save("l.tif", random_image("L", 13, 9))
    png_variants(files)
    return files


# ---- PNG variants written by hand --------------------------------------------------------------
# PIL writes neither interlaced nor damaged PNGs; these are assembled here, from their own random
# generator so that the files above stay byte-identical.

PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]  # x0, y0, x step, y step of each pass


def png_pack_row(samples, bit_depth):
    """One row of samples (ints) in PNG's big-endian, MSB-first packing."""
    samples = [int(v) for v in samples]
    if bit_depth == 16:
        return b"".join(struct.pack(">H", v) for v in samples)
    if bit_depth == 8:
        return bytes(samples)
    per = 8 // bit_depth
    samples += [0] * (-len(samples) % per)
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for v in samples[i:i + per]:
            b = (b << bit_depth) | v
        out.append(b)
    return bytes(out)


def png_filter_rows(rows, bpp, first_filter):
    """Filters rows with types cycling from first_filter (None, Sub, Up, Average, Paeth)."""
    out = b""
    prev = bytes(len(rows[0]))
    for k, r in enumerate(rows):
        f = (first_filter + k) % 5
        o = bytearray()
        for i, x in enumerate(r):
            a = r[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            o.append((x - [0, a, b, (a + b) // 2, paeth][f]) & 255)
        out += bytes([f]) + bytes(o)
        prev = r
    return out


def png_image_data(a, color_type, bit_depth, interlace):
    """The uncompressed image data of an HxWxC array of samples, Adam7 passes if interlaced."""
    bpp = max(1, PNG_CHANNELS[color_type] * bit_depth // 8)

    def rows(sub):
        return [png_pack_row(sub[y].reshape(-1), bit_depth) for y in range(sub.shape[0])]

    if not interlace:
        return png_filter_rows(rows(a), bpp, 0)
    out = b""
    for p, (x0, y0, dx, dy) in enumerate(ADAM7):
        sub = a[y0::dy, x0::dx]
        if sub.size:  # empty passes have no data
            out += png_filter_rows(rows(sub), bpp, p)
    return out


def png_file(a, color_type, bit_depth, interlace=0, before=b"", idat=None, after=b"", iend=True):
    h, w = a.shape[:2]
    data = png_image_data(a, color_type, bit_depth, interlace)
    if idat is None:
        idat = chunk(b"IDAT", zlib.compress(data, 9))
    s = PNG_SIGNATURE + ihdr(w, h, color_type, bit_depth, interlace) + before + idat + after
    return s + (chunk(b"IEND", b"") if iend else b"")


def with_bad_crc(data, chunk_type, nth=0):
    """The file with the CRC of its nth chunk of that type changed."""
    pos = 8
    while True:
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == chunk_type:
            if nth == 0:
                c = pos + 8 + n
                return data[:c] + bytes([data[c] ^ 0x55]) + data[c + 1:]
            nth -= 1
        pos += 12 + n


PNG_VARIANT_CHECKS = {}  # name -> what PIL must have done with it (checked in decode_cases)
PNG_BAD = {}  # name -> bytes that PIL fails to open or load


def png_variants(files):
    prng = np.random.default_rng(20250611)

    def samples(color_type, bit_depth, w, h):
        return prng.integers(0, 1 << bit_depth, (h, w, PNG_CHANNELS[color_type]))

    plte = chunk(b"PLTE", prng.integers(0, 256, 3 * 16, dtype=np.uint8).tobytes())
    # Bit depths PIL did not write above.
    l2 = samples(0, 2, 13, 9)
    files["l2.png"] = png_file(l2, 0, 2)
    PNG_VARIANT_CHECKS["l2.png"] = ("L", l2[:, :, 0] * 85)
    for name, bits in [("p1.png", 1), ("p2.png", 2)]:
        im = Image.fromarray(prng.integers(0, 1 << bits, (9, 13), dtype=np.uint8), "L").convert("P")
        im.putpalette(prng.integers(0, 256, 3 << bits, dtype=np.uint8).tobytes())
        b = io.BytesIO()
        im.save(b, format="PNG")
        files[name] = b.getvalue()
        assert files[name][24] == bits, name
    # A palette shorter than the indices used: PIL's missing entries are the grey ramp.
    idx = samples(3, 2, 13, 9)
    files["p_short_plte.png"] = png_file(idx, 3, 2, before=chunk(b"PLTE", bytes([200, 10, 60])))
    PNG_VARIANT_CHECKS["p_short_plte.png"] = (
        "P", np.where(idx == 0, np.array([200, 10, 60]), np.repeat(idx, 3, axis=2)))
    # Transparency chunks PIL keeps aside: mode "1", "I" and "RGB" all the same.
    files["one_trns.png"] = png_file(samples(0, 1, 13, 9), 0, 1, before=chunk(b"tRNS", b"\0\1"))
    files["l16_trns.png"] = png_file(samples(0, 16, 13, 9) >> 8, 0, 16,
                                     before=chunk(b"tRNS", b"\0\7"))
    files["rgb16_trns.png"] = png_file(samples(2, 16, 13, 9), 2, 16,
                                       before=chunk(b"tRNS", bytes(range(6))))
    # Interlaced (Adam7) files, every packing; tiny sizes have empty passes.
    for name, ct, bd, w, h in [("il_rgb.png", 2, 8, 13, 9), ("il_rgba16.png", 6, 16, 13, 9),
                               ("il_la.png", 4, 8, 13, 9), ("il_one.png", 0, 1, 13, 9),
                               ("il_l4.png", 0, 4, 13, 9), ("il_p2.png", 3, 2, 13, 9),
                               ("il_l16.png", 0, 16, 6, 5), ("il_l_3x2.png", 0, 8, 3, 2),
                               ("il_rgb_1x1.png", 2, 8, 1, 1), ("il_p8_1x9.png", 3, 8, 1, 9)]:
        a = samples(ct, bd, w, h)
        if ct == 3:
            a %= 16
        if name == "il_l16.png":
            a >>= 7  # mostly over 255: "I" clamps
        before = plte if ct == 3 else b""
        files[name] = png_file(a, ct, bd, interlace=1, before=before)
        PNG_VARIANT_CHECKS[name] = ("interlaced", png_file(a, ct, bd, before=before))
    # How PIL reads the chunks around the image data.
    rgb = samples(2, 8, 13, 9)
    z = zlib.compress(png_image_data(rgb, 2, 8, 0), 9)
    after = chunk(b"tEXt", b"Comment\0after the image data")
    good = png_file(rgb, 2, 8, before=chunk(b"tEXt", b"Comment\0before"), after=after)
    files["rgb_crc_idat.png"] = with_bad_crc(good, b"IDAT")  # image data CRCs are not checked
    files["rgb_crc_after.png"] = with_bad_crc(with_bad_crc(good, b"tEXt", 1), b"IEND")
    cuts = [0, 17, 17, 60, len(z)]  # four IDAT chunks, one of them empty
    files["rgb_split_idat.png"] = png_file(
        rgb, 2, 8, idat=b"".join(chunk(b"IDAT", z[a:b]) for a, b in zip(cuts, cuts[1:])))
    files["rgb_no_adler.png"] = png_file(rgb, 2, 8, idat=chunk(b"IDAT", z[:-4]))
    files["rgb_cut_header.png"] = png_file(rgb, 2, 8, after=after, iend=False) + b"\0\0\0\0I"
    files["rgb_unknown_critical.png"] = png_file(rgb, 2, 8, before=chunk(b"ABCD", b"skipped"))
    for name in ["rgb_crc_idat.png", "rgb_crc_after.png", "rgb_split_idat.png", "rgb_no_adler.png",
                 "rgb_cut_header.png", "rgb_unknown_critical.png"]:
        PNG_VARIANT_CHECKS[name] = ("RGB", rgb)
    # A zlib stream that ends after 5 of 9 rows: PIL leaves the other rows zero (palette index 0).
    raw = png_image_data(rgb, 2, 8, 0)
    files["rgb_short_rows.png"] = png_file(rgb, 2, 8, idat=chunk(b"IDAT", zlib.compress(
        raw[:5 * (1 + 13 * 3)])))
    PNG_VARIANT_CHECKS["rgb_short_rows.png"] = ("RGB", np.concatenate([rgb[:5], rgb[5:] * 0]))
    idx = samples(3, 4, 13, 9) % 16
    raw = png_image_data(idx, 3, 4, 0)
    files["p_short_rows.png"] = png_file(idx, 3, 4, before=plte, idat=chunk(b"IDAT", zlib.compress(
        raw[:4 * (1 + 7)])))
    pal = np.frombuffer(plte[8:-4], np.uint8).reshape(-1, 3)
    PNG_VARIANT_CHECKS["p_short_rows.png"] = ("P", np.concatenate([pal[idx[:4, :, 0]],
                                                                   pal[idx[4:, :, 0] * 0]]))
    # APNG: frame 0 is the IDAT image, drawn in its frame box; later frames are not read.
    fctl = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 7, 4, 5, 3, 1, 10, 0, 0))
    actl = chunk(b"acTL", struct.pack(">II", 2, 0))
    box = samples(2, 8, 7, 4)
    frame1 = chunk(b"fcTL", struct.pack(">IIIIIHHBB", 1, 13, 9, 0, 0, 1, 10, 0, 0))
    frame1 += chunk(b"fdAT", struct.pack(">I", 2) + z)
    files["apng_box.png"] = png_file(box, 2, 8, iend=False)
    files["apng_box.png"] = (files["apng_box.png"][:8] + ihdr(13, 9, 2, 8) + actl + fctl +
                             files["apng_box.png"][33:] + frame1[:-20])  # cut in frame 1
    expect = np.zeros((9, 13, 3), np.int64)
    expect[3:7, 5:12] = box
    PNG_VARIANT_CHECKS["apng_box.png"] = ("RGB", expect)

    # Files PIL fails on.
    PNG_BAD["bad_crc_ihdr.png"] = with_bad_crc(good, b"IHDR")
    PNG_BAD["bad_crc_text.png"] = with_bad_crc(good, b"tEXt")  # ancillary, before the image data
    PNG_BAD["bad_chunk_type.png"] = png_file(rgb, 2, 8, before=chunk(b"t-XT", b""))
    PNG_BAD["bad_no_idat.png"] = PNG_SIGNATURE + ihdr(13, 9, 2, 8) + chunk(b"IEND", b"")
    PNG_BAD["bad_trns.png"] = png_file(l2, 0, 2, before=chunk(b"tRNS", b"\0"))
    PNG_BAD["bad_palette_size.png"] = png_file(idx, 3, 4, before=chunk(b"PLTE", bytes(3 * 257)))
    PNG_BAD["bad_idat_split_by_text.png"] = png_file(
        rgb, 2, 8, idat=chunk(b"IDAT", z[:40]) + after + chunk(b"IDAT", z[40:]))
    PNG_BAD["bad_trailing_chunk.png"] = png_file(rgb, 2, 8, after=after, iend=False)[:-10]
    PNG_BAD["bad_adler.png"] = png_file(rgb, 2, 8, idat=chunk(b"IDAT", z[:-1] + bytes([z[-1] ^ 1])))
    raw = bytearray(png_image_data(rgb, 2, 8, 0))
    raw[3 * (1 + 13 * 3)] = 5
    PNG_BAD["bad_filter.png"] = png_file(rgb, 2, 8, idat=chunk(b"IDAT", zlib.compress(bytes(raw))))
    raw = png_image_data(rgb, 2, 8, 0)
    PNG_BAD["bad_short_midrow.png"] = png_file(rgb, 2, 8, idat=chunk(b"IDAT", zlib.compress(
        raw[:5 * (1 + 13 * 3) + 7])))


def decode_cases(w, files):
    for name, data in files.items():
        im = Image.open(io.BytesIO(data))
        im.load()
        mode, arr = stored(im)
        w.add(name, 2, None, None, mode, arr)
    # sanity checks of what the C++ tests assume
    assert Image.open(io.BytesIO(files["p_trns.png"])).mode == "P"
    assert files["p4.png"][24] == 4, "p4.png should be a 4-bit palette PNG"
    assert Image.open(io.BytesIO(files["rgb_trns.png"])).mode == "RGB"
    assert Image.open(io.BytesIO(files["l16.png"])).mode == "I"
    assert Image.open(io.BytesIO(files["la16.png"])).mode == "RGBA"
    assert Image.open(io.BytesIO(files["rgba.bmp"])).mode == "RGB"
    ycck = Image.open(io.BytesIO(files["ycck.jpg"]))
    assert ycck.mode == "CMYK" and ycck.info.get("adobe_transform") == 2
    assert Image.open(io.BytesIO(files["exif6.jpg"])).getexif()[0x0112] == 6
    assert (np.asarray(Image.open(io.BytesIO(files["rgb_noiend.png"]))) ==
            np.asarray(Image.open(io.BytesIO(files["rgb.png"])))).all()
    for name, (what, expect) in PNG_VARIANT_CHECKS.items():
        im = Image.open(io.BytesIO(files[name]))
        if what == "interlaced":  # the same pixels as the non-interlaced file
            ref = Image.open(io.BytesIO(expect))
            assert im.info.get("interlace") and im.mode == ref.mode, name
            assert (np.asarray(im) == np.asarray(ref)).all(), name
        else:
            assert stored(im)[0] == what, name
            assert (stored(im)[1] == np.asarray(expect).reshape(stored(im)[1].shape)).all(), name
    for name, data in PNG_BAD.items():
        try:
            Image.open(io.BytesIO(data)).load()
        except Exception:
            pass
        else:
            raise AssertionError(f"PIL loaded {name}")
    for name in ["rgb.jpg", "rgb_prog.jpg", "rgb.png", "rgb.bmp", "rgb.tif"]:
        # truncated files fail in PIL (OSError: image file is truncated)
        try:
            Image.open(io.BytesIO(files[name][: len(files[name]) * 2 // 3])).load()
        except OSError:
            pass
        else:
            raise AssertionError(f"PIL loaded truncated {name}")


def main():
    os.makedirs(OUT, exist_ok=True)
    w = Writer()
    resize_cases(w)
    to_rgb_cases(w)
    w.save(os.path.join(OUT, "resize_cases.bin"))
    files = sample_files()
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    # GIF: PIL reads it, OpenCV 4.6 cannot; bgevl reports it as unsupported.
    b = io.BytesIO()
    random_image("RGB", 13, 9).save(b, format="GIF")
    with open(os.path.join(OUT, "unsupported.gif"), "wb") as f:
        f.write(b.getvalue())
    d = Writer()
    decode_cases(d, files)
    d.save(os.path.join(OUT, "decode_cases.bin"))
    # PNG files PIL fails on (test_vision.cpp expects an error for every bad_*.png).
    for name, data in PNG_BAD.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
