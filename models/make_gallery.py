#!/usr/bin/env python3
"""Write the toy world's gallery and its query files (see models/toy_world.py).

    /usr/bin/python3 models/make_gallery.py      # about 5 seconds

Writes
  models/gallery/<background>/<count>_<colour>_<shape>_<position>.png
        one render of each of the 300 scenes (224x224 PNG, ~400 KB in all); a gallery id is the
        path relative to models/gallery, e.g. "night/two_red_circles_left.png". Never used in
        training (its renders come from seeds of their own kind, toy_world.render_seed).
  models/queries/images/...png
        the image-only queries: other renders of 40 scenes (not in the gallery, not trained on).
  models/queries/heldout.jsonl
        one query a line: {"image": path from the repository root or null, "query_id": null,
        "text": str or null, "instruction": null, "targets": [gallery ids]}:
        composed queries (gallery image + modification text; toy_world.heldout_edits(): training
        never sees these (scene, modification) pairs, in any wording), text-only caption queries
        (toy_world.heldout_captions(): training never sees these caption strings) and image-only
        queries. Targets: every gallery image of the intended scene (one, one render a scene).
  models/queries/demo.jsonl
        five readable composed queries of the held-out set (toy_world.DEMO), for the README and
        examples/composed_retrieval.py.

Deterministic: renders are pure functions of their seeds, so a rerun makes the same bytes (with
the same Pillow and zlib) and leaves the files as they are; only changed files are rewritten. Needs numpy and Pillow (Debian: python3-numpy python3-pil).
"""
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import toy_world as world  # noqa: E402

ROOT = os.path.dirname(HERE)
GALLERY = os.path.join(HERE, "gallery")
QUERIES = os.path.join(HERE, "queries")
QUERY_IMAGES = os.path.join(QUERIES, "images")


def rel(path):
    """A path relative to the repository root, with forward slashes."""
    return os.path.relpath(path, ROOT).replace(os.sep, "/")


def gallery_path(scene):
    return os.path.join(GALLERY, *world.gallery_id(scene).split("/"))


def write_if_changed(path, data):
    """Write bytes to path unless it already holds them (a rerun leaves the files alone)."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_png(img, path):
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    write_if_changed(path, buf.getvalue())


def remove_others(folder, keep):
    """Delete the files under folder that are not in keep (renders of an older world)."""
    for d, _, fs in os.walk(folder):
        for f in fs:
            if os.path.join(d, f) not in keep:
                os.remove(os.path.join(d, f))


def query(image=None, text=None, targets=()):
    return {"image": image, "query_id": None, "text": text, "instruction": None, "targets": list(targets)}


def composed_queries():
    return [query(rel(gallery_path(s)), t, [world.gallery_id(world.apply(s, e))])
            for s, e, t in world.heldout_edits()]


def demo_queries():
    return [query(rel(gallery_path(s)), t, [world.gallery_id(world.apply(s, e))]) for s, e, t in world.DEMO]


def write_jsonl(path, rows):
    write_if_changed(path, "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8"))


def main():
    written = set()
    for s in world.all_scenes():
        written.add(gallery_path(s))
        save_png(world.render(s, world.render_seed("gallery", s)), gallery_path(s))
    rows = composed_queries()
    rows += [query(text=t, targets=[world.gallery_id(s)]) for s, t in world.heldout_captions()]
    for s in world.heldout_image_scenes():
        path = os.path.join(QUERY_IMAGES, *world.gallery_id(s).split("/"))
        written.add(path)
        save_png(world.render(s, world.render_seed("query", s)), path)
        rows.append(query(image=rel(path), targets=[world.gallery_id(s)]))
    remove_others(GALLERY, written)
    remove_others(QUERY_IMAGES, written)
    write_jsonl(os.path.join(QUERIES, "heldout.jsonl"), rows)
    write_jsonl(os.path.join(QUERIES, "demo.jsonl"), demo_queries())
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(GALLERY) for f in fs)
    print(f"wrote {rel(GALLERY)}/ ({len(world.all_scenes())} PNGs, {size} bytes), "
          f"{rel(QUERIES)}/heldout.jsonl ({len(rows)} queries), demo.jsonl ({len(world.DEMO)})")


if __name__ == "__main__":
    main()
