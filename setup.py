"""The CMake build behind `pip install .` / `pip wheel .` (pyproject.toml names setuptools).

The C++ (libbgevl.so, the bgevl._C extension, the bgevl program) is built by CMake against the
torch that the building Python imports (Debian's here; a CUDA torch 2.x on a GPU machine), then
installed into a staging folder and laid out as the wheel carries it:

    bgevl/__init__.py ...        the pure-Python package (python/bgevl)
    bgevl/_C*.so, *.pyi, py.typed
    bgevl/libbgevl.so.0          found by _C through its RPATH ($ORIGIN)
    bgevl/bin/bgevl              the command-line program, started by the `bgevl` entry point

Environment: BGEVL_CMAKE_BUILD_DIR reuses a configured build folder (scripts/setup.sh's build/:
the wheel then costs an install, not a rebuild); BGEVL_CMAKE_ARGS adds CMake arguments;
CMAKE_BUILD_PARALLEL_LEVEL the jobs (default: every core).
"""
import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(bgevl VERSION ([0-9.]+)", f.read())
    if not m:
        raise RuntimeError("CMakeLists.txt: no project(bgevl VERSION x.y.z)")
    return m.group(1)


class CMakeExtension(Extension):
    def __init__(self):
        super().__init__("bgevl._C", sources=[])


class CMakeBuild(build_ext):
    def run(self):
        for ext in self.extensions:
            self.build_cmake(ext)

    def build_cmake(self, ext):
        import torch  # the torch this Python sees is the one to build against

        build = os.environ.get("BGEVL_CMAKE_BUILD_DIR") or os.path.join(os.path.abspath(self.build_temp), "cmake")
        os.makedirs(build, exist_ok=True)
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")) or not os.environ.get("BGEVL_CMAKE_BUILD_DIR"):
            args = ["-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                    f"-DPython_EXECUTABLE={sys.executable}",
                    f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                    "-DBGEVL_BUILD_TESTS=OFF", "-DBGEVL_CHECK_LAYERS=OFF"]
            args += shlex.split(os.environ.get("BGEVL_CMAKE_ARGS", ""))
            subprocess.check_call(["cmake", *args])
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", build, "-j", jobs,
                               "--target", "bgevl_python", "bgevl_cli"])
        stage = os.path.join(os.path.abspath(self.build_temp), "stage")
        shutil.rmtree(stage, ignore_errors=True)
        subprocess.check_call(["cmake", "--install", build, "--prefix", stage], stdout=subprocess.DEVNULL)
        # Wherever the build's BGEVL_PYTHON_INSTALL_DIR put the package:
        pkg = None
        for d, _, files in os.walk(stage):
            if os.path.basename(d) == "bgevl" and any(f.startswith("_C") and f.endswith(".so") for f in files):
                pkg = d
        if pkg is None:
            raise RuntimeError(f"cmake --install wrote no bgevl/_C*.so under {stage}")
        out = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))  # .../bgevl
        os.makedirs(os.path.join(out, "bin"), exist_ok=True)
        for f in os.listdir(pkg):
            if f.startswith("_C") and f.endswith(".so"):
                shutil.copy2(os.path.join(pkg, f), os.path.join(out, f))
        libdir = os.path.join(stage, "lib")
        soname = next(f for f in os.listdir(libdir) if re.fullmatch(r"libbgevl\.so\.\d+", f))
        shutil.copy2(os.path.join(libdir, soname), os.path.join(out, soname))  # the file, not the link
        shutil.copy2(os.path.join(stage, "bin", "bgevl"), os.path.join(out, "bin", "bgevl"))


setup(
    version=version(),
    ext_modules=[CMakeExtension()],
    cmdclass={"build_ext": CMakeBuild},
    package_data={"bgevl": ["py.typed", "*.pyi"]},
    zip_safe=False,
    options={"build": {"build_base": os.path.join("build", "pip")}},  # beside CMake's build/
)
