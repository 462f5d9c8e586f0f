"""Paths that are no regular files, and paths with NUL bytes: a clear ValueError at once, never a
hang (a FIFO blocks an open until a writer comes) or an endless read (/dev/zero). Each case runs in
a child process with a timeout, so that a regression fails instead of hanging the suite."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import TOY_MODEL

CASES = {
    "image_fifo": "m.encode(images=FIFO)",
    "image_dev_zero": "m.encode(images='/dev/zero')",
    "image_nul_byte": f"m.encode(images={os.path.join(TOY_MODEL, 'config.json')!r} + '\\0.png')",
    "model_nul_byte": f"bgevl.load({TOY_MODEL!r} + '\\0')",
    "config_fifo": "bgevl.load(FIFO_MODEL)",
}
MESSAGES = {
    "image_fifo": "not a regular file",
    "image_dev_zero": "not a regular file",
    "image_nul_byte": "NUL byte",
    "model_nul_byte": "NUL byte",
    "config_fifo": "not a regular file",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_a_clear_error(case, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    model = tmp_path / "model"
    shutil.copytree(TOY_MODEL, model)
    os.remove(model / "config.json")
    os.mkfifo(model / "config.json")
    code = (f"import bgevl\nFIFO = {str(fifo)!r}\nFIFO_MODEL = {str(model)!r}\n"
            f"m = bgevl.load({TOY_MODEL!r})\n"
            f"try:\n    {CASES[case]}\nexcept ValueError as e:\n    print('ValueError:', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ValueError:") and MESSAGES[case] in res.stdout, res.stdout
