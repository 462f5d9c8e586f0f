#!/usr/bin/env python3
"""Train the bundled default model, models/bgevl-tiny-clip, on the bgevl toy world.

    .venv/bin/python models/train_default_model.py      # ~8.5 minutes on 2 idle CPU cores
    /usr/bin/python3 models/train_default_model.py      # the same without the bgevl checks

(2000 steps of ~0.23 s on two idle cores; other work on the machine slows it a lot, since both
torch threads then wait on each other; --threads 1 may then be faster.)

The model is a tiny BGE-VL-CLIP (Hugging Face CLIPModel, quick_gelu; text and vision: width 64,
2 layers, 4 heads; 224-pixel images in 32-pixel patches; 32-dim embeddings; ~0.8 MB of float16)
trained from scratch for composed image retrieval in the procedural world of toy_world.py:
normalize(image_features(picture) + text_features("make it night")) should find the picture's
scene at night. The steps:

1. make_gallery.main(): the gallery (models/gallery) and the query files (models/queries).
2. A byte-level BPE vocabulary learned from every text of the world (tests/reference/
   tiny_clip_vocab.py), so every world word is one token.
3. A pool of fresh renders of every scene (24 each; seeds of the "train" kind: disjoint from
   the gallery's and the queries'), and training with AdamW (peak lr 1e-3, cosine) on three
   symmetric InfoNCE losses with in-batch negatives and a learnt temperature (logit scale from
   30): (composed query -> target render; the source renders are extra negatives), (caption ->
   render) and (render -> another render of the same scene). Renders of the same scene are
   never counted as negatives; half of each batch are near misses of the other half (class
   Batches). The (scene, modification) pairs and caption strings of models/queries/heldout.jsonl
   are never trained on.
4. The weights, rounded to float16, in the BGE-VL-CLIP folder layout (tiny_clip.write_checkpoint)
   in models/bgevl-tiny-clip; then eval_default_model.py's checks: Recall@1/@5 on the held-out
   queries with the torch model and, when bgevl is importable, bgevl's tokenizer, pixels,
   embeddings and recall.

Deterministic given --seed for the gallery, the queries and the vocabulary (pure functions of
their seeds). The weights also depend on the float summation order, which changes with the
number of threads (--threads) and the CPU's BLAS kernels: another machine may train slightly
different weights, with the same recall up to noise.

Needs torch, numpy, Pillow, regex (Debian: python3-torch python3-numpy python3-pil
python3-regex).
"""
import argparse
import multiprocessing
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import eval_default_model  # noqa: E402
import make_gallery  # noqa: E402
import tiny_clip  # noqa: E402
import tiny_clip_vocab  # noqa: E402  (on sys.path through tiny_clip)
import toy_world as world  # noqa: E402

OUT = os.path.join(HERE, "bgevl-tiny-clip")
NAME = "bgevl-tiny-clip (trained on the bgevl toy world)"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="training seed (renders, batches, init)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64, help="composed queries per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--scale", type=float, default=30.0, help="initial logit scale (learnt)")
    ap.add_argument("--renders", type=int, default=24, help="training renders per scene")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--eval-every", type=int, default=500, help="held-out recall every N steps (0: off)")
    ap.add_argument("--out", default=OUT)
    return ap.parse_args()


def world_vocab():
    """(vocab, merges): every merge the world's texts support, so each world word is one token."""
    texts = world.world_texts()
    vocab, merges = tiny_clip_vocab.build_vocab(None, corpus="\n".join(texts))
    tok = tiny_clip.Tokenizer(vocab, merges)
    words = {w for t in texts for w in tiny_clip_vocab.CLIP_PATTERN.findall(t)}
    assert all(len(tok.bpe(w)) == 1 for w in words), "a world word is more than one token"
    return vocab, merges


def _render_scene(args):
    seed, k, n = args
    s = world.all_scenes()[k]
    return np.stack([world.render_array(s, world.render_seed("train", s, j, seed)) for j in range(n)])


def render_pool(seed, n):
    """uint8 [scenes, n, 224, 224, 3]: n training renders of every scene."""
    jobs = [(seed, k, n) for k in range(len(world.all_scenes()))]
    pool = np.empty((len(jobs), n, world.SIZE, world.SIZE, 3), np.uint8)
    with multiprocessing.Pool(min(2, os.cpu_count() or 1)) as p:
        for k, renders in enumerate(p.imap(_render_scene, jobs, chunksize=10)):
            pool[k] = renders
    return pool


class Batches:
    """Random training batches from the pool, the allowed (scene, edit) pairs and captions.

    Half of each batch is random pairs (the attribute an edit changes is drawn uniformly, then
    the pair: edits of the background and the count are as frequent as the others); each of
    them has a "twin" in the other half: the same
    edit on a source that differs in one other attribute (shape more often than the others,
    the hardest to see), so every target has a near miss among the in-batch negatives."""

    TWIN_WEIGHTS = {"shape": 3, "colour": 1, "background": 1, "position": 1, "count": 1}

    def __init__(self, pool, tok, rng):
        self.pool, self.tok, self.rng = pool, tok, rng
        self.scenes = world.all_scenes()
        held = {(s, e) for s, e, _ in world.heldout_edits()}
        self.pairs = [(s, e) for s in self.scenes for e in world.edits(s) if (s, e) not in held]
        self.allowed = set(self.pairs)
        self.by_attribute = [[p for p in self.pairs if p[1].attribute == a] for a in world.ATTRIBUTES]
        held_caps = {t for _, t in world.heldout_captions()}
        self.captions = [[c for c in world.captions(s) if c not in held_caps] for s in self.scenes]
        self.values = dict(zip(world.ATTRIBUTES, (world.SHAPES, world.COLOURS, world.BACKGROUNDS,
                                                  world.POSITIONS, world.COUNTS)))
        print(f"training pairs: {len(self.pairs)} (scene, edit) of {len(self.pairs) + len(held)}; "
              f"{sum(map(len, self.captions))} captions")

    def pick(self, options):
        return options[self.rng.integers(len(options))]

    def twin(self, pair):
        s, e = pair
        attrs = [a for a in world.ATTRIBUTES if a != e.attribute]
        w = np.array([self.TWIN_WEIGHTS[a] for a in attrs], float)
        for _ in range(8):
            a = attrs[self.rng.choice(len(attrs), p=w / w.sum())]
            t = (s._replace(**{a: self.pick([v for v in self.values[a] if v != getattr(s, a)])}), e)
            if t in self.allowed:
                return t
        return self.pick(self.pairs)

    def __call__(self, b):
        rng, n = self.rng, self.pool.shape[1]
        rows = [self.pick(self.by_attribute[a]) for a in rng.integers(len(world.ATTRIBUTES), size=b - b // 2)]
        rows += [self.twin(r) for r in rows[: b // 2]]
        src = np.array([world.scene_index(s) for s, _ in rows])
        tgt = np.array([world.scene_index(world.apply(s, e)) for s, e in rows])
        k1, k2 = rng.integers(n, size=b), rng.integers(n, size=b)
        k3 = (k2 + rng.integers(1, n, size=b)) % n  # another render of the target
        images = np.concatenate([self.pool[src, k1], self.pool[tgt, k2], self.pool[tgt, k3]])
        edit_ids = self.tok([self.pick(world.edit_texts(s, e)) for s, e in rows])
        cap_ids = self.tok([self.pick(self.captions[t]) for t in tgt])
        return (tiny_clip.pixel_values(images), edit_ids, cap_ids,
                torch.from_numpy(src), torch.from_numpy(tgt))


def info_nce(a, b, a_scene, b_scene, scale):
    """Cross-entropy of row i of scale * a @ b.T against column i; columns j != i of the same scene
    as row i's positive are left out (they are not negatives)."""
    logits = scale * a @ b.T
    same = a_scene[:, None] == b_scene[None, :]
    same[torch.arange(len(a)), torch.arange(len(a))] = False
    return F.cross_entropy(logits.masked_fill(same, float("-inf")), torch.arange(len(a)))


def losses(model, batch):
    px, (e_ids, e_mask), (c_ids, c_mask), src, tgt = batch
    b = len(src)
    img = model.get_image_features(px)
    s_f, t_f, t2_f = img[:b], img[b:2 * b], img[2 * b:]
    q = F.normalize(s_f + model.get_text_features(e_ids, e_mask), dim=-1)
    cap = F.normalize(model.get_text_features(c_ids, c_mask), dim=-1)
    s, t, t2 = (F.normalize(x, dim=-1) for x in (s_f, t_f, t2_f))
    scale = model.logit_scale.exp().clamp(max=100)
    comp = (info_nce(q, torch.cat([t, s]), tgt, torch.cat([tgt, src]), scale)
            + info_nce(t, q, tgt, tgt, scale)) / 2
    capl = (info_nce(cap, t, tgt, tgt, scale) + info_nce(t, cap, tgt, tgt, scale)) / 2
    imgl = (info_nce(t2, t, tgt, tgt, scale) + info_nce(t, t2, tgt, tgt, scale)) / 2
    return comp, capl, imgl


def optimizer(model, lr):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98), eps=1e-6)


def lr_at(step, steps, lr, warmup=100):
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))


def half_rounded(model):
    """A copy of the model with its weights rounded through float16 (what the checkpoint holds)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m.eval()


def quick_recall(model, tok, queries, ids):
    enc = eval_default_model.TorchEncoder(half_rounded(model), tok)
    t = eval_default_model.recall_table(queries, eval_default_model.score_queries(enc, queries, ids), ids)
    model.train()
    return " ".join(f"{k} {t[k][1]:.3f}" for k in ("composed", "text", "image", "all") if k in t)


def main():
    args = parse_args()
    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng([args.seed, 99])

    make_gallery.main()
    vocab, merges = world_vocab()
    tok = tiny_clip.Tokenizer(vocab, merges)
    print(f"vocabulary: {len(vocab)} tokens ({len(merges)} merges)")
    pool = render_pool(args.seed, args.renders)
    print(f"rendered {pool.shape[0] * pool.shape[1]} training images in {time.time() - t0:.0f} s")

    model = tiny_clip.CLIP(len(vocab), tok.eot).train()
    with torch.no_grad():
        model.logit_scale.fill_(np.log(args.scale))
    print(f"model: {sum(p.numel() for p in model.parameters())} parameters")
    opt = optimizer(model, args.lr)
    batches = Batches(pool, tok, rng)
    queries, ids = eval_default_model.load_queries(), eval_default_model.gallery_ids()
    run = np.zeros(3)
    t1 = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        parts = losses(model, batches(args.batch))
        loss = parts[0] + parts[1] + 0.5 * parts[2]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run = 0.9 * run + 0.1 * np.array([p.item() for p in parts]) if step else np.array([p.item() for p in parts])
        if (step + 1) % 50 == 0 or step == 0:
            el = time.time() - t1
            print(f"step {step + 1:5d}/{args.steps}  loss composed {run[0]:.3f} caption {run[1]:.3f} "
                  f"image {run[2]:.3f}  scale {model.logit_scale.exp().item():5.1f}  "
                  f"{el:4.0f} s (eta {el / (step + 1) * (args.steps - step - 1):3.0f} s)", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            print("  held-out R@1:", quick_recall(model, tok, queries, ids), flush=True)
    print(f"trained {args.steps} steps in {time.time() - t1:.0f} s")

    tiny_clip.write_checkpoint(args.out, vocab, merges, name=NAME, tensors=model.state_dict())
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"wrote {os.path.relpath(args.out)} (model.safetensors {size} bytes); total {time.time() - t0:.0f} s")

    table = eval_default_model.evaluate_torch(args.out, queries)
    ok = table["composed"][1] >= eval_default_model.MIN_COMPOSED_R1
    try:
        import bgevl  # noqa: F401
    except ImportError:
        print("bgevl not importable here: run .venv/bin/python models/eval_default_model.py for its checks")
    else:
        good, tb, _ = eval_default_model.check_bgevl(args.out, queries)
        ok &= good and tb["composed"][1] >= eval_default_model.MIN_COMPOSED_R1
    print("OK" if ok else "FAILED", f"({time.time() - t0:.0f} s in all)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
