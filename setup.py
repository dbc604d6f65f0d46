"""Package layout: the repository folders ship inside the ``pnsc`` package (no generic top-level names)."""
from __future__ import annotations

from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
MAPPED = {"shared": "pnsc.shared", "sender": "pnsc.sender", "receiver": "pnsc.receiver",
          "training": "pnsc.training"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = ["pnsc"], {"pnsc": "pnsc"}
    for init in sorted((HERE / "pnsc").rglob("__init__.py")):
        rel = init.parent.relative_to(HERE)
        if rel.parts != ("pnsc",):
            packages.append(".".join(rel.parts))
    for folder, name in MAPPED.items():
        for init in sorted((HERE / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(HERE / folder)
            pkg = ".".join((name, *rel.parts))
            packages.append(pkg)
            package_dir[pkg] = str(Path(folder, *rel.parts))
    packages.append("pnsc.models")
    package_dir["pnsc.models"] = "models"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

# The decoder runtime's sample loop (receiver/runtime/csrc). Built for the baseline instruction set;
# the AVX2 and AVX-512 VNNI kernels carry their own target pragmas and are chosen at run time, so the
# same binary runs on any x86-64 CPU (never -march=native).
_CSRC = Path("receiver", "runtime", "csrc")
EXTENSIONS = [Extension(
    "pnsc.receiver.runtime._lpcnet",
    sources=[str(_CSRC / f) for f in ("module.c", "isa_generic.c", "isa_avx2.c", "isa_avx512.c")],
    depends=[str(_CSRC / f) for f in ("lpcnet.h", "frame_impl.h")],
    extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off", "-fno-math-errno"],
)]

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"pnsc.models": ["*.npz", "*.json", "decoders/*.onnx", "decoders/*.json", "*.onnx"]},
    include_package_data=False,
    ext_modules=EXTENSIONS,
)
