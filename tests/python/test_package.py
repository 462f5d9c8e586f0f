"""The pip package: `pip wheel --no-build-isolation .` (reusing the CMake build of
scripts/setup.sh), the wheel installed into a fresh virtual environment, and a smoke test run
from another directory with that environment's Python and `bgevl` program."""
import ast
import os
import subprocess
import sys
import zipfile

import pytest

import bgevl
from conftest import ROOT, TOY_MODEL

BUILD = os.path.join(ROOT, "build")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        pytest.skip("no CMake build in build/ (scripts/setup.sh makes it)")
    out = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, BGEVL_CMAKE_BUILD_DIR=BUILD)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                          "--no-index", "--disable-pip-version-check", "-w", str(out), ROOT],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels = list(out.glob("bgevl-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    assert wheel.name.startswith(f"bgevl-{bgevl.__version__}-cp{sys.version_info.major}{sys.version_info.minor}-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(f"bgevl-{bgevl.__version__}.dist-info/entry_points.txt").decode()
        meta = z.read(f"bgevl-{bgevl.__version__}.dist-info/METADATA").decode()
        program = z.getinfo("bgevl/bin/bgevl")
    for f in ["bgevl/__init__.py", "bgevl/index.py", "bgevl/py.typed", "bgevl/__init__.pyi",
              "bgevl/libbgevl.so.0", "bgevl/bin/bgevl", "bgevl_cli.py"]:
        assert f in names, f
    assert any(n.startswith("bgevl/_C.") and n.endswith(".so") for n in names)
    assert (program.external_attr >> 16) & 0o111, "bgevl/bin/bgevl is not executable in the wheel"
    assert "bgevl = bgevl_cli:main" in entry_points
    assert "Requires-Dist: torch" in meta and "Requires-Dist: numpy" in meta
    assert f"Version: {bgevl.__version__}" in meta


def test_stubs_declare_the_public_api():
    tree = ast.parse(open(os.path.join(ROOT, "python", "bgevl", "__init__.pyi")).read())
    declared = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, (ast.AnnAssign, ast.Assign)):
            for t in ([node.target] if isinstance(node, ast.AnnAssign) else node.targets):
                if isinstance(t, ast.Name):
                    declared.add(t.id)
    missing = [n for n in bgevl.__all__ if n not in declared]
    assert not missing, f"bgevl/__init__.pyi lacks {missing}"


def test_wheel_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    # --system-site-packages: the torch and numpy the wheel was built against (Debian's here).
    base_python = os.path.join(sys.base_prefix, "bin", "python3")  # not this venv's
    subprocess.run([base_python, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py, prog = str(venv / "bin" / "python"), str(venv / "bin" / "bgevl")
    res = subprocess.run([py, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", str(wheel)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    smoke = (
        "import bgevl, os, torch\n"
        f"assert bgevl.__file__.startswith({str(venv)!r}), bgevl.__file__\n"
        f"m = bgevl.load({TOY_MODEL!r})\n"
        f"e = m.encode(images=os.path.join({ROOT!r}, 'models', 'gallery', 'day', 'one_red_circle_left.png'),"
        " text='make the background dark')\n"
        "assert e.shape == (1, 32) and abs(float(e.norm()) - 1) < 1e-5\n"
        "print('ok', bgevl.__version__)\n")
    res = subprocess.run([py, "-c", smoke], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == f"ok {bgevl.__version__}", res.stderr
    res = subprocess.run([prog, "--version"], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == f"bgevl {bgevl.__version__}", res.stderr
    res = subprocess.run([prog, "encode", "--model", TOY_MODEL, "--text", "a red circle", "--out", "e.npy",
                          "--quiet"], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    import numpy as np
    assert np.load(elsewhere / "e.npy").shape == (1, 32)
    res = subprocess.run([prog, "frobnicate"], cwd=elsewhere, capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "unknown command" in res.stderr
