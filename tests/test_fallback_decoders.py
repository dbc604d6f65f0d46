"""scripts/fallback_decoders.py: a personalized slot served by the generic baseline's files, with the real
shipped ONNX decoders in a copied models folder."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pnsc.receiver.reference_decoder import find_decoder
from pnsc.receiver.runtime.stream import StreamingDecoder
from pnsc.shared.checksum import sha256_file
from pnsc.shared.paths import models_dir

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("fallback_decoders", REPO / "scripts" / "fallback_decoders.py")
fd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fd)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """The shipped manifest, group maps and the S decoders' files (a fallback changes no other file)."""
    src, dst = models_dir(), tmp_path / "models"
    (dst / "decoders").mkdir(parents=True)
    man = json.loads((src / "manifest.json").read_text())
    keep = []
    for e in man["models"]:
        if e.get("kind") != "decoder" or e.get("family") in ("lpcnet-bl-s", "plpcnet-s"):
            for rel in (e.get("files") or ({"file": e["file"]} if "file" in e else {})).values():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src / rel, dst / rel)
            keep.append(e)
    man["models"] = keep
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


def test_a_fallback_slot_decodes_exactly_as_the_baseline_and_says_so(models, capsys):
    old = find_decoder(models, "plpcnet-s", 1)
    assert fd.main(["plpcnet-s-g1", "--reason", "its fine-tunes decoded worse", "--models-dir", str(models)]) == 0
    assert not old.frame.exists() and not old.sample.exists()  # no entry uses the group's old files
    assert "removed decoders/plpcnet-s-g1.onnx" in capsys.readouterr().out
    entry = next(e for e in json.loads((models / "manifest.json").read_text())["models"] if e["name"] == "plpcnet-s-g1")
    base = find_decoder(models, "lpcnet-bl-s", None)
    assert entry["variant"] == "baseline-fallback" and entry["serves_as"] == "lpcnet-bl-s" and entry["group"] == 1
    assert entry["training_note"] == "its fine-tunes decoded worse"
    assert entry["classifier_groups_sha256"] == sha256_file(models / "speaker_groups.json")
    slot = find_decoder(models, "plpcnet-s", 1)
    assert (slot.frame, slot.sample) == (base.frame, base.sample)
    assert slot.name == "plpcnet-s-g1" and slot.serves_as == "lpcnet-bl-s" and base.serves_as is None
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 0.5, (12, 20)).astype(np.float32)
    a = StreamingDecoder("plpcnet-s", 1, seed=3, models_dir=models, precision="fp32")
    b = StreamingDecoder("lpcnet-bl-s", None, seed=3, models_dir=models, precision="fp32")
    assert a.name == "plpcnet-s-g1"  # the slot keeps its name in calls and logs
    assert a.serves_as == "lpcnet-bl-s" and b.serves_as is None
    from pnsc.live.loopback import decoder_variant

    assert decoder_variant(a.name, True, a.serves_as) == "personalized slot, served by lpcnet-bl-s"
    assert decoder_variant("plpcnet-s-g0", True, None) == "personalized"
    assert decoder_variant(b.name, False, None) == "baseline (A/B)"
    assert np.array_equal(a.decode(feats), b.decode(feats))
    # the other groups keep their own fine-tunes
    assert find_decoder(models, "plpcnet-s", 0).sample.name == "plpcnet-s-g0.onnx"


def test_pnsc_decode_says_which_baseline_serves_the_slot(models, tmp_path):
    import subprocess
    import sys

    import soundfile as sf

    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", (0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    fd.main(["plpcnet-s-g1", "--reason", "x", "--models-dir", str(models)])
    run = lambda *a: subprocess.run([sys.executable, "-m", "pnsc", *a], capture_output=True, text=True)  # noqa: E731
    assert run("encode", str(tmp_path / "a.wav"), str(tmp_path / "a.pnsc")).returncode == 0
    r = run("decode", "--decoder", "plpcnet-s", "--group", "1", "--models-dir", str(models), str(tmp_path / "a.pnsc"),
            str(tmp_path / "b.wav"))
    assert r.returncode == 0 and "with plpcnet-s-g1 (served by lpcnet-bl-s) (speaker group 1)" in r.stderr, r.stderr
    r = run("decode", "--reference", "--decoder", "plpcnet-s", "--group", "1", "--models-dir", str(models),
            str(tmp_path / "a.pnsc"), str(tmp_path / "r.wav"))
    assert r.returncode == 0 and "with plpcnet-s-g1 (served by lpcnet-bl-s) (speaker group 1)" in r.stderr, r.stderr
    r = run("decode", "--decoder", "plpcnet-s", "--group", "0", "--models-dir", str(models), str(tmp_path / "a.pnsc"),
            str(tmp_path / "c.wav"))
    assert r.returncode == 0 and "served by" not in r.stderr


def test_bad_names_and_a_missing_baseline_are_refused(models, capsys):
    for bad in ("lpcnet-bl-s", "plpcnet-s-gx", "plpcnet-m-g1"):
        with pytest.raises(SystemExit) as exc:
            fd.main([bad, "--reason", "x", "--models-dir", str(models)])
        assert exc.value.code == 2 and "not a personalized decoder name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the L baseline is not in this folder
        fd.main(["plpcnet-l-g3", "--reason", "x", "--models-dir", str(models)])
    assert exc.value.code == 2 and "no lpcnet-bl-l" in capsys.readouterr().err
    (models / "decoders" / "lpcnet-bl-s.onnx").write_bytes(b"broken")
    with pytest.raises(SystemExit):
        fd.main(["plpcnet-s-g2", "--reason", "x", "--models-dir", str(models)])
    assert "differs from the manifest" in capsys.readouterr().err
