"""The `bgevl` console entry point of the pip package: runs the compiled program the package
carries (bgevl/bin/bgevl). A module of its own, so that starting the program does not import
bgevl (and torch)."""
import importlib.util
import os
import sys


def program():
    spec = importlib.util.find_spec("bgevl")  # locates the package without importing it
    for d in (spec.submodule_search_locations or []) if spec else []:
        exe = os.path.join(d, "bin", "bgevl")
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    sys.exit("bgevl: the bgevl program is not in this installation (no bgevl/bin/bgevl)")


def main():
    args = sys.argv[1:]
    if args[:1] == ["index"] and any(a == "--dask-scheduler" or a.startswith("--dask-scheduler=")
                                     for a in args):
        from bgevl.dask import main as dask_main  # the cluster is driven from Python
        return dask_main(args[1:])
    exe = program()
    os.execv(exe, [sys.argv[0], *sys.argv[1:]])


if __name__ == "__main__":
    main()
