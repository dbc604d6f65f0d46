"""A personalized decoder trained for another speaker grouping than the shipped classifier's is refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pnsc.receiver.reference_decoder import DecoderNotFound, find_decoder
from pnsc.shared.checksum import sha256_file
from pnsc.shared.paths import models_dir


def _copy_models(tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(models_dir(), dst)
    return dst


def test_shipped_personalized_decoders_match_the_classifier_grouping():
    man = json.loads((models_dir() / "manifest.json").read_text())
    have = sha256_file(models_dir() / "speaker_groups.json")
    pers = [m for m in man["models"] if m.get("kind") == "decoder" and m["family"].startswith("plpcnet")]
    assert pers and all(m.get("classifier_groups_sha256") == have for m in pers)
    for m in pers:
        assert find_decoder(models_dir(), m["family"], m["group"]).name == m["name"]


def test_changed_grouping_is_refused(tmp_path):
    md = _copy_models(tmp_path)
    groups = json.loads((md / "speaker_groups.json").read_text())
    groups["regrouped"] = True  # any change: another grouping than the decoders were trained for
    (md / "speaker_groups.json").write_text(json.dumps(groups))
    with pytest.raises(DecoderNotFound, match="another speaker grouping"):
        find_decoder(md, "plpcnet-s", 1)
    assert find_decoder(md, "lpcnet-bl-s", None).name == "lpcnet-bl-s"  # generic decoders are unaffected
