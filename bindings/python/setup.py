"""Bundles libknit into the package when it can find or build it (see README.md, "Install").

At build time, in this order: ``KNIT_LIB`` (a path to libknit.so) is copied in; else, inside
the Knit source tree, an existing build of libknit (scripts/build-c output or cargo's) is
copied in, or built with scripts/build-c when cargo is there. With none of these (or with
``KNIT_BUNDLE=0``) the package is pure Python and finds libknit at run time (KNIT_LIB, then
the system's library path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
NAMES = ("libknit.so", "libknit.dylib", "knit.dll")


def _repo() -> Path | None:
    root = HERE.parent.parent
    if (root / "scripts" / "build-c").is_file() and (root / "knit-ffi").is_dir():
        return root
    return None


def _built(root: Path) -> Path | None:
    targets = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    targets.append(root / "target")
    for t in targets:
        for profile in ("release", "debug"):
            for base in (t / "knit-c" / profile / "lib", t / profile):
                for n in NAMES:
                    if (base / n).is_file():
                        return base / n
    return None


def find_library() -> Path | None:
    """libknit to bundle, or None."""
    if os.environ.get("KNIT_BUNDLE") == "0":
        return None
    if os.environ.get("KNIT_LIB"):
        lib = Path(os.environ["KNIT_LIB"])
        if not lib.is_file():
            raise SystemExit(f"KNIT_LIB={lib} is not a file")
        return lib
    root = _repo()
    if root is None:
        return None
    found = _built(root)
    if found is None and shutil.which("cargo"):
        prefix = (
            subprocess.run(
                [str(root / "scripts" / "build-c")],
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        found = Path(prefix) / "lib" / "libknit.so"
    return found


LIBRARY = find_library()


class BuildWithLibrary(build_py):
    """Copies libknit into knit/_native/ of the build."""

    def run(self) -> None:
        super().run()
        if LIBRARY is not None:
            dest = Path(self.build_lib) / "knit" / "_native"
            dest.mkdir(parents=True, exist_ok=True)
            # libknit.so.0.1.0 and friends are installed under the plain name the loader is given.
            name = "libknit.so" if ".so" in LIBRARY.name else LIBRARY.name
            shutil.copy2(LIBRARY.resolve(), dest / name)


class PlatformDistribution(Distribution):
    """A wheel with a bundled shared library is platform-specific."""

    def has_ext_modules(self) -> bool:
        return LIBRARY is not None


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=PlatformDistribution)
