"""Installing a retrained speaker classifier: stale personalized decoders are refused unless asked,
then refused at load; decoders trained for the new map load with it (real shipped models, copied)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pnsc.receiver.reference_decoder import DecoderNotFound, find_decoder
from pnsc.shared.checksum import sha256_file
from pnsc.shared.paths import models_dir

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install_speaker_classifier.py"


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shipped models/ and a candidate folder whose grouping differs from it."""
    md = tmp_path / "models"
    shutil.copytree(models_dir(), md)
    cand = tmp_path / "cand"
    cand.mkdir()
    shutil.copyfile(md / "speaker_encoder.onnx", cand / "speaker_encoder.onnx")
    for f in ("speaker_groups.json", "training_groups.json"):
        d = json.loads((md / f).read_text())
        d["regrouped"] = True
        (cand / f).write_text(json.dumps(d))
    return md, cand


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_stale_decoders_refuse_install_unless_allowed(tmp_path):
    md, cand = _setup(tmp_path)
    before = sha256_file(md / "speaker_groups.json")
    r = _run(cand, "--models", md)
    assert r.returncode == 2 and r.stderr.startswith("pnsc: error:") and "Traceback" not in r.stderr
    assert sha256_file(md / "speaker_groups.json") == before  # nothing copied
    r = _run(cand, "--models", md, "--allow-stale")
    assert r.returncode == 0, r.stderr
    assert sha256_file(md / "speaker_groups.json") == sha256_file(cand / "speaker_groups.json")
    man = {m["name"]: m for m in json.loads((md / "manifest.json").read_text())["models"]}
    assert man["speaker-groups"]["sha256"] == sha256_file(cand / "speaker_groups.json")
    assert man["training-groups"]["sha256"] == sha256_file(cand / "training_groups.json")
    assert man["plpcnet-s-g1"]["classifier_groups_sha256"] == before
    with pytest.raises(DecoderNotFound, match="another speaker grouping"):
        find_decoder(md, "plpcnet-s", 1)
    assert find_decoder(md, "lpcnet-bl-s", None).name == "lpcnet-bl-s"


def test_decoders_trained_for_the_new_map_load(tmp_path):
    md, cand = _setup(tmp_path)
    new_map = sha256_file(cand / "training_groups.json")
    man = json.loads((md / "manifest.json").read_text())
    for m in man["models"]:
        if str(m.get("family", "")).startswith("plpcnet"):
            m["training_groups_sha256"] = new_map
    (md / "manifest.json").write_text(json.dumps(man))
    r = _run(cand, "--models", md)
    assert r.returncode == 0, r.stderr
    entry = find_decoder(md, "plpcnet-l", 2)
    assert entry.name == "plpcnet-l-g2"
    m = {x["name"]: x for x in json.loads((md / "manifest.json").read_text())["models"]}["plpcnet-l-g2"]
    assert m["classifier_groups_sha256"] == sha256_file(md / "speaker_groups.json") and "grouping_note" not in m


def test_missing_candidate_is_a_clear_error(tmp_path):
    r = _run(tmp_path / "nothing", "--models", tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("pnsc: error: candidate file(s) not found")


def _train_script():
    spec = importlib.util.spec_from_file_location("train_speaker_encoder", REPO / "scripts" / "train_speaker_encoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_extra_speakers_only_train_split_and_capped(tmp_path):
    mod = _train_script()
    root = tmp_path / "corpus"
    for spk in ("SF1", "TM2", "ast_en"):
        d = root / "studio-x" / spk / "c"
        d.mkdir(parents=True)
        for i in range(3):
            sf.write(d / f"{spk}-c-{i}.flac", np.zeros(160, np.int16), 16000)
    (root / "manifest.json").write_text(json.dumps({"speakers": [{"speaker": "SF1", "sex": "F"}]}))
    utts, sexes = mod.extra_speakers(root, ["studio-x"], {"SF1"}, 2)  # TM2 is not a train speaker
    assert [u.utt_id for u in utts] == ["SF1-c-0", "SF1-c-1"] and sexes == {"SF1": "F"}
    with pytest.raises(SystemExit, match="refusing held-out speakers"):
        mod.extra_speakers(root, ["studio-x"], {"SF1", "ast_en"}, 2)
    assert sorted(["SF1", "103", "19", "ast_fr"], key=mod.speaker_key) == ["19", "103", "SF1", "ast_fr"]
