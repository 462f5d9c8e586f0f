"""Eight Python threads calling encode on one model give what sequential calls give, bit for bit
(both families), and a failing call in one thread leaves the model usable for the others."""
import threading

import pytest

import bgevl
from conftest import TOY_MODEL, fixture_path

IMAGES = [fixture_path("images", n) for n in ("chelsea.jpg", "rocket.jpg", "rgba.png", "grey_L.png")]


def calls(mllm):
    out = []
    for t in range(8):
        img = IMAGES[t % 4]
        if mllm:
            out.append(dict(images=[img, img], text=[None, f"make it darker {t}"], q_or_c="q",
                            task_instruction="Retrieve the target image."))
        else:
            out.append(dict(images=[img, img, None], text=[None, f"make it darker {t}", f"a cat {t}"]))
    return out


def run_threads(fn, n):
    results, errors = [None] * n, [None] * n
    barrier = threading.Barrier(n)

    def work(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 (recorded, asserted below)
            errors[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
        assert not th.is_alive(), "a thread hung"
    return results, errors


@pytest.mark.parametrize("path", [TOY_MODEL, fixture_path("llava", "tiny-llava-next")],
                         ids=["clip", "mllm"])
def test_eight_threads_bit_identical_to_sequential(path):
    model = bgevl.load(path)
    cs = calls(mllm=path != TOY_MODEL)
    want = [model.encode(**c) for c in cs]
    got, errors = run_threads(lambda i: [model.encode(**cs[i]) for _ in range(2)][-1], len(cs))
    assert errors == [None] * len(cs)
    for i in range(len(cs)):
        assert got[i].equal(want[i]), f"thread {i} differs from the sequential call"


def test_a_failing_thread_leaves_the_model_usable(model):
    cs = calls(mllm=False)
    want = [model.encode(**c) for c in cs]

    def call(i):
        c = dict(cs[i])
        if i % 2:
            c["images"] = [c["images"][0], b"\x89PNG\r\n\x1a\n broken", None]
        return model.encode(**c)

    got, errors = run_threads(call, len(cs))
    for i in range(len(cs)):
        if i % 2:
            assert isinstance(errors[i], ValueError) and "item 1" in str(errors[i]), errors[i]
        else:
            assert errors[i] is None and got[i].equal(want[i])
    assert all(model.encode(**c).equal(w) for c, w in zip(cs, want))
