"""Package layout: the repository folders ship inside the ``pnsc`` package (no generic top-level names)."""
from __future__ import annotations

from pathlib import Path

from setuptools import setup

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

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"pnsc.models": ["*.npz", "*.json", "decoders/*.onnx", "decoders/*.json", "*.onnx"]},
    include_package_data=False,
)
