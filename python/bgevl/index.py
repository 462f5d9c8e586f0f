"""bgevl.Index: a gallery embedded once and searched with composed, text or image queries.

    import bgevl
    model = bgevl.load("models/bgevl-tiny-clip")
    index = bgevl.Index.build(model, "models/gallery", path="gallery.index")
    hits = index.search(images="models/gallery/day/one_red_circle_left.png",
                        text="make the background dark", k=5)
    print(hits.ids, hits.scores)

The index is the folder `bgevl index` writes (the CLI and this class run the same C++), so one
built here is searched by `bgevl search`, and the reverse.
"""
import json
import os
import shutil
import tempfile

import numpy as np
import torch

from . import _C
from ._inputs import BgevlTypeError, image_input
from ._model import Model, progress_callback

__all__ = ["Index", "SearchResult", "has_faiss", "recall_at_k", "average_precision_at_k",
           "convert_dataset", "preset_instruction"]

has_faiss = _C.has_faiss
recall_at_k = _C.recall_at_k
average_precision_at_k = _C.average_precision_at_k
preset_instruction = _C.preset_instruction


def convert_dataset(name, root, split, out_dir):
    """CIRCO / CIRR / FashionIQ from their published layout -> out_dir/gallery.jsonl and
    out_dir/queries.jsonl; returns (gallery entries, queries)."""
    return _C.convert_dataset(name, os.fspath(root), split, os.fspath(out_dir))


class SearchResult:
    """The hits of one query: `ids`, `paths` (lists), `scores` (float32 numpy array), `rows` and
    `metadata` (the index records of the hits, dicts), ranked best first."""

    def __init__(self, hits, index):
        self.ids = [h[1] for h in hits]
        self.paths = [h[2] for h in hits]
        self.scores = np.array([h[3] for h in hits], dtype=np.float32)
        self.rows = np.array([h[4] for h in hits], dtype=np.int64)
        self._index = index

    @property
    def metadata(self):
        return [self._index.find(i) for i in self.ids]

    def __len__(self):
        return len(self.ids)

    def __iter__(self):
        return iter(zip(self.ids, self.scores.tolist()))

    def __repr__(self):
        top = ", ".join(f"{i!r}: {s:.4f}" for i, s in list(self)[:5])
        return f"SearchResult({top}{', ...' if len(self) > 5 else ''})"


def _core(model):
    if isinstance(model, Model):
        return model._core
    if isinstance(model, _C.Embedder):
        return model
    raise BgevlTypeError(f"model must be a bgevl model (bgevl.load(...)), got {type(model).__name__}")


def _entries(images, ids, captions, groups):
    if isinstance(images, (str, os.PathLike)) and (ids is None and captions is None):
        return _C.list_gallery(os.fspath(images))  # a folder or a JSONL manifest
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    images = [os.path.abspath(os.fspath(p)) for p in images]
    n = len(images)
    if ids is None:
        ids = [os.path.basename(p) for p in images]
    for name, values in (("ids", ids), ("captions", captions), ("groups", groups)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} images")
    captions = captions or [None] * n
    groups = groups or [None] * n
    return [(str(i), p, c, g) for i, p, c, g in zip(ids, images, captions, groups)]


class Index:
    """An index folder. `Index.build(...)` / `Index.load(path)` make one; `.search(...)` ranks
    it; `.add(...)` appends; `.save(path)` copies it; `.embeddings()` maps the vectors."""

    def __init__(self, core, model=None, owned_dir=None):
        self._idx = core
        self._model = model
        self._owned_dir = owned_dir  # a temporary folder of Index.build(path=None)

    def __del__(self):
        d = getattr(self, "_owned_dir", None)
        if d:
            shutil.rmtree(d, ignore_errors=True)

    # ---- making one -----------------------------------------------------------------------
    @classmethod
    def build(cls, model, images, ids=None, captions=None, path=None, groups=None,
              dtype="float32", index_type="flat", strict=False, chunk_size=1024,
              shard_size=1 << 20, batch_size=None, progress=None):
        """Embeds `images` (a folder, a JSONL manifest, or a list of image files with optional
        `ids` (default: the file names) and `captions`) into the index folder `path` (a
        temporary folder when None: `.save(path)` keeps it). Resumes an interrupted build of
        the same inputs. `progress`: True (a tqdm bar when installed) or callable(dict)."""
        owned = None
        if path is None:
            owned = path = tempfile.mkdtemp(prefix="bgevl-index-")
        cls._run_build(model, images, ids, captions, groups, path, dtype, index_type, strict,
                       chunk_size, shard_size, batch_size, progress, add=False)
        return cls(_C.Index.open(os.fspath(path)), model, owned)

    @staticmethod
    def _run_build(model, images, ids, captions, groups, path, dtype, index_type, strict,
                   chunk_size, shard_size, batch_size, progress, add):
        core = _core(model)
        entries = _entries(images, ids, captions, groups)
        return _C.Index.build(core, entries, os.fspath(path), dtype, index_type, strict, add,
                              int(chunk_size), int(shard_size), int(batch_size or 0), "",
                              _progress(progress))

    @classmethod
    def from_vectors(cls, vectors, ids, path, dtype="float32", index_type="flat"):
        """An index of vectors made elsewhere (L2-normalised [N, D] torch tensor or array) under
        `ids`, searched with query vectors (`search_vectors`)."""
        t = torch.as_tensor(np.asarray(vectors) if not torch.is_tensor(vectors) else vectors)
        _C.Index.build_from_vectors(t, [str(i) for i in ids], os.fspath(path), dtype, index_type)
        return cls(_C.Index.open(os.fspath(path)))

    def search_vectors(self, queries, k=10, backend="auto"):
        """SearchResult per row of `queries` ([Q, D] normalised)."""
        q = torch.as_tensor(queries, dtype=torch.float32)
        return [SearchResult(h, self) for h in self._idx.search(q, int(k), backend, [], None)]

    @classmethod
    def load(cls, path, model=None):
        """A complete index folder; `model` is loaded from the manifest on the first search
        unless given."""
        return cls(_C.Index.open(os.fspath(path)), model)

    def add(self, images, ids=None, captions=None, groups=None, model=None, strict=False,
            batch_size=None, progress=None):
        """Appends the entries whose ids are not in the index yet; returns the build's counts."""
        model = model or self.model
        counts = self._run_build(model, images, ids, captions, groups, self.path, "float32", "flat",
                                 strict, 1024, 1 << 20, batch_size, progress, add=True)
        self._idx = _C.Index.open(self.path)
        return counts

    def save(self, path):
        """Copies the index folder to `path` (which must not exist) and continues from there."""
        path = os.fspath(path)
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; give a new folder")
        # Copied beside and renamed once complete: an interrupted save leaves no partial index.
        tmp = f"{path.rstrip(os.sep)}.partial-{os.getpid()}"
        try:
            shutil.copytree(self.path, tmp)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
        self._idx = _C.Index.open(path)
        return self

    # ---- what it holds --------------------------------------------------------------------
    @property
    def path(self):
        return self._idx.dir

    @property
    def manifest(self):
        return json.loads(self._idx.manifest_json)

    @property
    def model(self):
        """The model queries are embedded with: the one given, else the manifest's (loaded once)."""
        if self._model is None:
            from . import load
            self._model = load(self._idx.model_ref, revision=self._idx.revision or "main")
        return self._model

    @property
    def dim(self):
        return self._idx.dim

    def __len__(self):
        return len(self._idx.records())

    def records(self):
        """One dict per indexed id: id, path, size, sha256, row, caption, group."""
        return self._idx.records()

    def find(self, id):
        return self._idx.find(str(id))

    def embeddings(self, shard=None):
        """The stored L2-normalised vectors as a read-only numpy memory map [rows, D] (float32 or
        float16). An index of several shards (more than shard_size rows): pass `shard`."""
        files = self._idx.shard_files
        if shard is None:
            if len(files) > 1:
                raise ValueError(f"the index has {len(files)} shards: pass shard=0..{len(files) - 1}")
            if not files:
                return np.zeros((0, self.dim), dtype=np.float32)
            shard = 0
        return np.load(files[shard], mmap_mode="r")

    # ---- searching ------------------------------------------------------------------------
    def search(self, images=None, text=None, query_id=None, k=10, instruction=None, model=None,
               backend="auto", exclude=None):
        """Ranks the index for a query: an image (path, bytes, PIL image, array) or an indexed
        `query_id`, a text, or both (composed). Lists give a batch of queries. Returns a
        SearchResult, or for a batch a list of them plus `ids` / `scores` numpy arrays [Q, k]
        through `Index.search_batch`."""
        batch = any(isinstance(v, (list, tuple)) for v in (images, text, query_id))
        if batch:
            return self.search_batch(images, text, query_id, k, instruction, model, backend, exclude)[0]
        q = [(None if images is None else image_input(images), query_id, text, instruction)]
        hits = self._search(q, k, model, backend, exclude)
        return SearchResult(hits[0], self)

    def search_batch(self, images=None, text=None, query_id=None, k=10, instruction=None,
                     model=None, backend="auto", exclude=None):
        """A batch of queries: (list of SearchResult, ids [Q, k] object array, scores [Q, k]
        float32 array; NaN / None where an index holds fewer than k entries)."""
        n = max(len(v) for v in (images, text, query_id) if isinstance(v, (list, tuple)))

        def col(v):
            if v is None:
                return [None] * n
            if not isinstance(v, (list, tuple)) or len(v) != n:
                raise ValueError("the lists of a batch of queries must have equal lengths")
            return list(v)

        imgs, txts, qids = col(images), col(text), col(query_id)
        q = [(None if i is None else image_input(i), qid, t, instruction)
             for i, t, qid in zip(imgs, txts, qids)]
        results = [SearchResult(h, self) for h in self._search(q, k, model, backend, exclude)]
        ids = np.full((n, k), None, dtype=object)
        scores = np.full((n, k), np.nan, dtype=np.float32)
        for r, res in enumerate(results):
            ids[r, :len(res)] = res.ids
            scores[r, :len(res)] = res.scores
        return results, ids, scores

    def _search(self, queries, k, model, backend, exclude):
        core = _core(model or self.model)
        emb = self._idx.embed_queries(core, queries)
        return self._idx.search(emb, int(k), backend, list(exclude or []), None)

    def embed_queries(self, images=None, text=None, query_id=None, instruction=None, model=None):
        """The query embeddings [Q, D] (torch, on the model's device), as search uses them."""
        imgs = images if isinstance(images, (list, tuple)) else [images]
        n = len(imgs)
        txts = text if isinstance(text, (list, tuple)) else [text] * n
        qids = query_id if isinstance(query_id, (list, tuple)) else [query_id] * n
        q = [(None if i is None else image_input(i), qid, t, instruction)
             for i, t, qid in zip(imgs, txts, qids)]
        return self._idx.embed_queries(_core(model or self.model), q)

    def evaluate(self, queries, k=(1, 5, 10, 25, 50), model=None, image_root="", backend="auto"):
        """`bgevl evaluate` on a queries JSONL file: ({"R@1": ..., "mAP@5": ...}, rankings)."""
        return _C.evaluate(self._idx, _core(model or self.model), os.fspath(queries),
                           [int(x) for x in k], image_root, backend)

    def __repr__(self):
        m = self.manifest
        return (f"Index({self.path!r}, {len(self)} entries, {m['counts']['rows']} rows, dim "
                f"{self.dim}, {m['index_type']}, {m['dtype']}, model {m['model']!r})")


def _progress(progress):
    """None/False: none; a callable(dict) as is; True: a bar (tqdm when installed) of the counts."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    report = progress_callback(True, "indexed")
    return lambda p: report(p["done"], p["total"])
