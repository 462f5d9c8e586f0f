"""A tiny CLIP in plain torch, its tokenizer and its checkpoint folder (the BGE-VL-CLIP layout).

Used by train_default_model.py (training), eval_default_model.py (checks against bgevl) and
bench/bench_clip.py (random-weight checkpoints of other geometries). Not a script.

- `CLIP`: exactly Hugging Face CLIPModel's forward (transformers 4.45, eager attention) for
  quick_gelu models: the same parameter names, so `state_dict()` is the checkpoint. Vision:
  patch conv (no bias) + class token + position embeddings, pre_layrnorm, pre-LN encoder layers,
  post_layernorm on the class token, visual_projection (no bias). Text: token + position
  embeddings, causal mask (+ padding mask), final_layer_norm, pooled at the first
  <|endoftext|>, text_projection (no bias). BGE-VL-CLIP's composed query is
  normalize(image_features + text_features); `CLIP.embed` returns that. (Initialisation is
  ours, not Hugging Face's: it only matters for training from scratch.)
- `Tokenizer`: CLIP's tokenisation from vocab.json / merges.txt (lower case, whitespace
  collapsed, CLIP's regex, byte-level BPE by merge rank, <|startoftext|> ... <|endoftext|>,
  padded with <|endoftext|> to the longest text).
- `pixel_values`: CLIPImageProcessor on 224x224 RGB (resize and centre crop are then the
  identity): pixels / 255, then (x - mean) / std with CLIP's mean and std.
- `write_checkpoint`: config.json, preprocessor_config.json, tokenizer files and
  model.safetensors (float16) as BAAI/BGE-VL-base ships them.

Needs torch, numpy, regex (Debian: python3-torch python3-numpy python3-regex).
"""
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import safetensors_io  # noqa: E402
import tiny_clip_vocab  # noqa: E402

TEXT = dict(hidden=64, inter=128, layers=2, heads=4)
VISION = dict(hidden=64, inter=128, layers=2, heads=4, image=224, patch=32)
PROJ = 32
MAX_POSITIONS = 77
EPS = 1e-5
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


# ----------------------------------------------------------------------------- the model

class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads, self.scale = heads, (hidden // heads) ** -0.5
        self.q_proj, self.k_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.v_proj, self.out_proj = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, x, mask=None):
        b, n, h = x.shape
        split = lambda t: t.view(b, n, self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(x) * self.scale), split(self.k_proj(x)), split(self.v_proj(x))
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w + mask
        out = w.softmax(-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h))


class MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(hidden, inter), nn.Linear(inter, hidden)

    def forward(self, x):
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))  # quick_gelu


class EncoderLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.self_attn = Attention(d["hidden"], d["heads"])
        self.layer_norm1 = nn.LayerNorm(d["hidden"], eps=EPS)
        self.mlp = MLP(d["hidden"], d["inter"])
        self.layer_norm2 = nn.LayerNorm(d["hidden"], eps=EPS)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d) for _ in range(d["layers"]))

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x


class VisionEmbeddings(nn.Module):
    def __init__(self, d):
        super().__init__()
        h, p = d["hidden"], d["patch"]
        self.class_embedding = nn.Parameter(torch.randn(h) * h ** -0.5)
        self.patch_embedding = nn.Conv2d(3, h, kernel_size=p, stride=p, bias=False)
        self.position_embedding = nn.Embedding((d["image"] // p) ** 2 + 1, h)
        # std 1 rather than Hugging Face's 0.02: a tiny ViT trained from scratch then learns
        # where things are in a few hundred steps instead of a few thousand
        nn.init.normal_(self.position_embedding.weight, std=1.0)

    def forward(self, pixel_values):
        x = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + self.position_embedding.weight


class VisionModel(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.embeddings = VisionEmbeddings(d)
        self.pre_layrnorm = nn.LayerNorm(d["hidden"], eps=EPS)  # (sic: Hugging Face's name)
        self.encoder = Encoder(d)
        self.post_layernorm = nn.LayerNorm(d["hidden"], eps=EPS)

    def forward(self, pixel_values):
        x = self.encoder(self.pre_layrnorm(self.embeddings(pixel_values)))
        return self.post_layernorm(x[:, 0])


class TextEmbeddings(nn.Module):
    def __init__(self, vocab_size, d):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d["hidden"])
        self.position_embedding = nn.Embedding(MAX_POSITIONS, d["hidden"])
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)

    def forward(self, input_ids):
        return self.token_embedding(input_ids) + self.position_embedding.weight[: input_ids.shape[1]]


class TextModel(nn.Module):
    def __init__(self, vocab_size, d, eos_token_id):
        super().__init__()
        self.eos_token_id = eos_token_id
        self.embeddings = TextEmbeddings(vocab_size, d)
        self.encoder = Encoder(d)
        self.final_layer_norm = nn.LayerNorm(d["hidden"], eps=EPS)

    def forward(self, input_ids, attention_mask=None):
        b, n = input_ids.shape
        x = self.embeddings(input_ids)
        neg = torch.finfo(x.dtype).min
        mask = torch.full((n, n), neg, dtype=x.dtype).triu(1)[None, None]  # causal
        if attention_mask is not None:  # padding (never changes the pooled token: it comes later)
            pad = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * neg
            mask = (mask + pad).clamp(min=neg)
        x = self.final_layer_norm(self.encoder(x, mask))
        first_eos = (input_ids == self.eos_token_id).int().argmax(-1)
        return x[torch.arange(b), first_eos]


class CLIP(nn.Module):
    """Hugging Face CLIPModel (quick_gelu) with the same parameter names."""

    def __init__(self, vocab_size, eos_token_id, text=TEXT, vision=VISION, proj=PROJ):
        super().__init__()
        self.text_model = TextModel(vocab_size, text, eos_token_id)
        self.vision_model = VisionModel(vision)
        self.visual_projection = nn.Linear(vision["hidden"], proj, bias=False)
        self.text_projection = nn.Linear(text["hidden"], proj, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def get_image_features(self, pixel_values):
        return self.visual_projection(self.vision_model(pixel_values))

    def get_text_features(self, input_ids, attention_mask=None):
        return self.text_projection(self.text_model(input_ids, attention_mask))

    def embed(self, pixel_values=None, input_ids=None, attention_mask=None):
        """BGE-VL-CLIP's encode: normalize(image features [+ text features])."""
        f = 0
        if pixel_values is not None:
            f = f + self.get_image_features(pixel_values)
        if input_ids is not None:
            f = f + self.get_text_features(input_ids, attention_mask)
        return F.normalize(f, dim=-1)


# ----------------------------------------------------------------------------- processing

class Tokenizer:
    """CLIP's tokenizer for a vocab.json / merges.txt pair (no ftfy: plain ASCII texts)."""

    def __init__(self, vocab, merges):
        self.vocab = dict(vocab)
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.sot, self.eot = self.vocab[tiny_clip_vocab.SOT], self.vocab[tiny_clip_vocab.EOT]
        self.b2u = tiny_clip_vocab.bytes_to_unicode()
        self.cache = {}

    @classmethod
    def from_folder(cls, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line.strip()]
        return cls(vocab, merges)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = [self.b2u[b] for b in token.encode("utf-8")]
        word[-1] += "</w>"
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, _ = min(pairs)
            if rank == math.inf:
                break
            a, b = next((word[i], word[i + 1]) for r, i in pairs if r == rank)
            word = list(tiny_clip_vocab._merge_word(word, a, b))
        self.cache[token] = word
        return word

    def ids(self, text):
        text = " ".join(text.split()).lower()
        toks = [t for w in tiny_clip_vocab.CLIP_PATTERN.findall(text) for t in self.bpe(w)]
        return [self.sot] + [self.vocab[t] for t in toks][: MAX_POSITIONS - 2] + [self.eot]

    def __call__(self, texts):
        """(input_ids, attention_mask) int64 tensors, padded with <|endoftext|> to the longest."""
        rows = [self.ids(t) for t in texts]
        n = max(len(r) for r in rows)
        ids = torch.full((len(rows), n), self.eot, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask


_MEAN = torch.tensor(MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(STD).view(1, 3, 1, 1)


def pixel_values(images):
    """CLIPImageProcessor for 224x224 RGB: a uint8 array or tensor [N, 224, 224, 3] (or one
    HxWx3 image) -> float32 [N, 3, 224, 224]."""
    x = torch.as_tensor(np.asarray(images))
    if x.dim() == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2).contiguous().float()
    return x.div_(255.0).sub_(_MEAN).div_(_STD)


# ----------------------------------------------------------------------------- checkpoints

def param_shapes(vocab_size, text=TEXT, vision=VISION, proj=PROJ):
    """Hugging Face CLIPModel parameter names -> shapes for the given geometry (those of
    CLIP(...).state_dict(), without building the model)."""
    s = {}

    def encoder(prefix, d):
        h, i = d["hidden"], d["inter"]
        for layer in range(d["layers"]):
            p = f"{prefix}.encoder.layers.{layer}."
            for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                s[p + f"self_attn.{name}.weight"], s[p + f"self_attn.{name}.bias"] = (h, h), (h,)
            for ln in ("layer_norm1", "layer_norm2"):
                s[p + f"{ln}.weight"], s[p + f"{ln}.bias"] = (h,), (h,)
            s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (i, h), (i,)
            s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (h, i), (h,)

    t, v = text["hidden"], vision["hidden"]
    s["text_model.embeddings.token_embedding.weight"] = (vocab_size, t)
    s["text_model.embeddings.position_embedding.weight"] = (MAX_POSITIONS, t)
    encoder("text_model", text)
    s["text_model.final_layer_norm.weight"] = s["text_model.final_layer_norm.bias"] = (t,)
    s["vision_model.embeddings.class_embedding"] = (v,)
    s["vision_model.embeddings.patch_embedding.weight"] = (v, 3, vision["patch"], vision["patch"])
    s["vision_model.embeddings.position_embedding.weight"] = ((vision["image"] // vision["patch"]) ** 2 + 1, v)
    s["vision_model.pre_layrnorm.weight"] = s["vision_model.pre_layrnorm.bias"] = (v,)
    encoder("vision_model", vision)
    s["vision_model.post_layernorm.weight"] = s["vision_model.post_layernorm.bias"] = (v,)
    s["visual_projection.weight"] = (proj, v)
    s["text_projection.weight"] = (proj, t)
    s["logit_scale"] = ()
    return s


def random_init(name, shape, seed):
    """Random weights (those of the former models/make_demo_model.py), per tensor name."""
    rng = np.random.RandomState((seed * 1000003 + zlib.crc32(name.encode())) % 2**32)
    z = rng.standard_normal(size=shape)
    leaf = name.rsplit(".", 1)[-1]
    if name == "logit_scale":
        return np.asarray(np.log(1 / 0.07), dtype=np.float32)
    if "norm" in name:
        return (1.0 + 0.1 * z if leaf == "weight" else 0.05 * z).astype(np.float32)
    if leaf == "bias":
        return (0.02 * z).astype(np.float32)
    if "embedding" in name:
        fan = int(np.prod(shape[1:])) if "patch" in name else 1
        return (z * (1.0 / np.sqrt(fan) if "patch" in name else 0.2)).astype(np.float32)
    return (z / np.sqrt(shape[1])).astype(np.float32)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_checkpoint(out, vocab, merges, text=TEXT, vision=VISION, proj=PROJ, seed=7,
                     name="bgevl-tiny-clip (random weights)", tensors=None):
    """A checkpoint folder in the BGE-VL-CLIP layout with half-precision weights: `tensors`
    (name -> tensor, e.g. CLIP.state_dict()), or random ones drawn from `seed`."""
    os.makedirs(out, exist_ok=True)
    vocab_size = max(vocab.values()) + 1
    sot, eot = vocab[tiny_clip_vocab.SOT], vocab[tiny_clip_vocab.EOT]
    tiny_clip_vocab.write_vocab_files(out, vocab, merges)
    enc = lambda d: {  # noqa: E731
        "hidden_size": d["hidden"], "intermediate_size": d["inter"], "num_hidden_layers": d["layers"],
        "num_attention_heads": d["heads"], "hidden_act": "quick_gelu", "layer_norm_eps": EPS,
        "projection_dim": proj}
    write_json(os.path.join(out, "config.json"), {
        "_name_or_path": name,
        "architectures": ["CLIPModel"],
        "auto_map": {"AutoModel": "modeling_MMRet_CLIP.CLIPModel"},
        "initializer_factor": 1.0, "logit_scale_init_value": 2.6592,
        "model_type": "clip", "projection_dim": proj, "torch_dtype": "float16",
        "transformers_version": "4.45.2",
        "text_config": dict(enc(text), vocab_size=vocab_size, max_position_embeddings=MAX_POSITIONS,
                            bos_token_id=sot, eos_token_id=eot, pad_token_id=eot, model_type="clip_text_model"),
        "vision_config": dict(enc(vision), image_size=vision["image"], patch_size=vision["patch"],
                              num_channels=3, model_type="clip_vision_model"),
    })
    write_json(os.path.join(out, "preprocessor_config.json"), {
        "crop_size": {"height": vision["image"], "width": vision["image"]}, "do_center_crop": True,
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": MEAN, "image_processor_type": "CLIPImageProcessor", "image_std": STD,
        "processor_class": "CLIPProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": vision["image"]}})
    special = {"content": "", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    write_json(os.path.join(out, "special_tokens_map.json"), {
        "bos_token": dict(special, content=tiny_clip_vocab.SOT, normalized=True),
        "eos_token": dict(special, content=tiny_clip_vocab.EOT),
        "pad_token": tiny_clip_vocab.EOT, "unk_token": dict(special, content=tiny_clip_vocab.EOT)})
    write_json(os.path.join(out, "tokenizer_config.json"), {
        "bos_token": tiny_clip_vocab.SOT, "eos_token": tiny_clip_vocab.EOT, "pad_token": tiny_clip_vocab.EOT,
        "unk_token": tiny_clip_vocab.EOT, "do_lower_case": True, "errors": "replace",
        "model_max_length": MAX_POSITIONS, "processor_class": "CLIPProcessor", "tokenizer_class": "CLIPTokenizer"})
    shapes = param_shapes(vocab_size, text, vision, proj)
    if tensors is None:
        tensors = {n: torch.from_numpy(np.array(random_init(n, s, seed), dtype=np.float32)) for n, s in shapes.items()}
    got = {n: tuple(x.shape) for n, x in tensors.items()}
    assert got == shapes, f"tensors differ from CLIPModel's: {sorted(set(got.items()) ^ set(shapes.items()))[:4]}"
    half = {n: tensors[n].detach().to(torch.float16).contiguous() for n in sorted(shapes)}
    safetensors_io.save_torch(half, os.path.join(out, "model.safetensors"), {"format": "pt"})


def load_checkpoint(folder, dtype=torch.float32):
    """(CLIP with the folder's weights in `dtype`, Tokenizer) for a folder in this layout."""
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    geo = lambda c: dict(hidden=c["hidden_size"], inter=c["intermediate_size"],  # noqa: E731
                         layers=c["num_hidden_layers"], heads=c["num_attention_heads"])
    t, v = cfg["text_config"], cfg["vision_config"]
    model = CLIP(t["vocab_size"], t["eos_token_id"], geo(t),
                 dict(geo(v), image=v["image_size"], patch=v["patch_size"]), cfg["projection_dim"])
    state = safetensors_io.load_torch(os.path.join(folder, "model.safetensors"))
    model.load_state_dict({n: x.to(dtype) for n, x in state.items()})
    return model.to(dtype).eval(), Tokenizer.from_folder(folder)
