"""Personalized decoders follow the shipped classifier's grouping: the manifest records the sha256 of the
``speaker_groups.json`` a decoder was trained for, and loading refuses a decoder trained for another one."""
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


def _set_hash(md: Path, name: str, value: str) -> None:
    man = json.loads((md / "manifest.json").read_text())
    for m in man["models"]:
        if m.get("name") == name:
            m["classifier_groups_sha256"] = value
    (md / "manifest.json").write_text(json.dumps(man))


def test_shipped_personalized_decoders_state_their_grouping():
    man = json.loads((models_dir() / "manifest.json").read_text())
    have = sha256_file(models_dir() / "speaker_groups.json")
    pers = [m for m in man["models"] if m.get("kind") == "decoder" and m["family"].startswith("plpcnet")]
    assert len(pers) == 8
    for m in pers:
        # either trained for the shipped grouping (checked at load) or honest about which map it was trained with
        assert m.get("classifier_groups_sha256") == have or (m.get("grouping_note") and m.get("training_groups_sha256"))
        assert find_decoder(models_dir(), m["family"], m["group"]).name == m["name"]


def test_decoder_for_another_grouping_is_refused(tmp_path):
    md = _copy_models(tmp_path)
    _set_hash(md, "plpcnet-s-g1", sha256_file(md / "speaker_groups.json"))
    assert find_decoder(md, "plpcnet-s", 1).name == "plpcnet-s-g1"
    groups = json.loads((md / "speaker_groups.json").read_text())
    groups["regrouped"] = True  # any change of the classifier's grouping
    (md / "speaker_groups.json").write_text(json.dumps(groups))
    with pytest.raises(DecoderNotFound, match="another speaker grouping"):
        find_decoder(md, "plpcnet-s", 1)
    assert find_decoder(md, "lpcnet-bl-s", None).name == "lpcnet-bl-s"  # generic decoders are unaffected
