"""models/manifest.json describes the shipped files: each listed file exists and has the recorded sha256."""
from __future__ import annotations

import json

from pnsc.shared.checksum import sha256_file
from pnsc.shared.paths import models_dir


def test_every_manifest_file_matches_its_sha256():
    md = models_dir()
    entries = json.loads((md / "manifest.json").read_text())["models"]
    checked = 0
    for e in entries:
        files = e["files"] if "files" in e else {"file": e["file"]}
        hashes = e["sha256"] if isinstance(e["sha256"], dict) else {"file": e["sha256"]}
        for kind, rel in files.items():
            assert (md / rel).is_file(), f"{e['name']}: {rel} missing"
            assert sha256_file(md / rel) == hashes[kind], f"{e['name']}: {rel} differs from the manifest"
            checked += 1
    assert checked >= 25  # 10 decoders x 2 files + codebooks, encoder, groups, group map, splits
