"""scripts/exposure_bias.py --group: the clips of one group's speakers, and a clear error for an empty group."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("exposure_bias", REPO / "scripts" / "exposure_bias.py")
eb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eb)


def test_group_speakers_are_those_the_grouping_assigns(tmp_path):
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"assignment": {"19": 0, "26": 1, "27": 0, "32": 2}}))
    assert eb.group_speakers(groups, 0) == {"19", "27"}
    with pytest.raises(SystemExit):
        eb.group_speakers(groups, 3)


def test_the_shipped_grouping_has_validation_speakers_in_every_group():
    from pnsc.training.lpcnet.data import load_group_map, load_splits

    val = set(load_splits(REPO / "models" / "speaker_splits.json")["validation"])
    for g in range(4):
        assert eb.group_speakers(REPO / "models" / "training_groups.json", g) & val


def test_a_test_shard_is_refused(tmp_path, capsys):
    ck = tmp_path / "last.pt"
    ck.write_bytes(b"")
    shard = tmp_path / "audio-test-00000.tar"
    shard.write_bytes(b"")
    with pytest.raises(SystemExit):
        eb.main(["--checkpoint", str(ck), "--val-shard", str(shard), "--train-limit", "0"])
    assert "test material" in capsys.readouterr().err
