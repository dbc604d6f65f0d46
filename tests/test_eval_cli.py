"""``pnsc eval`` end to end on a small folder: real decoders, real peer codecs, a report with audio."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from pnsc.cli import main
from tests.conftest import SAMPLES

SR = 16000


def _refs(tmp_path, seconds=3.0):
    d = tmp_path / "refs"
    d.mkdir()
    from pnsc.shared.audio import load_audio

    for p in sorted(SAMPLES.glob("*.flac"))[:2]:
        x = load_audio(p, quiet=True)[: int(seconds * SR)]
        sf.write(d / f"{p.stem}.wav", x, SR)
    return d


def test_missing_codec_program_exits_2_naming_the_package(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pystoi")
    refs = _refs(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    rc = main(["eval", "--refs", str(refs), "--out", str(tmp_path / "o"), "--systems", "codec2-1600",
               "--metrics", "stoi", "--loss", ""])
    assert rc == 2
    assert "install the Debian package codec2" in capsys.readouterr().err


def test_bad_references_exit_2_with_a_message(tmp_path, capsys):
    assert main(["eval", "--refs", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "reference folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--refs", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no .wav or .flac" in capsys.readouterr().err
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(silent / "s.wav", np.zeros(3 * SR, np.float32), SR)
    assert main(["eval", "--refs", str(silent), "--out", str(tmp_path / "o")]) == 2
    assert "reference s: silent" in capsys.readouterr().err
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "t.wav", 0.1 * np.ones(SR // 4, np.float32), SR)
    assert main(["eval", "--refs", str(short), "--out", str(tmp_path / "o")]) == 2
    assert "too short" in capsys.readouterr().err
    refs = _refs(tmp_path)
    assert main(["eval", "--refs", str(refs), "--systems", "mp3", "--out", str(tmp_path / "o")]) == 2
    assert "unknown system" in capsys.readouterr().err
    assert main(["eval", "--refs", str(refs), "--loss", "0,1.5", "--out", str(tmp_path / "o")]) == 2
    assert "--loss rates" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("opusenc") is None or shutil.which("c2enc") is None,
                    reason="Debian packages opus-tools and codec2 needed")
def test_eval_writes_report_with_players_and_scores(tmp_path, capsys):
    for mod in ("pesq", "pystoi", "matplotlib", "tqdm"):
        pytest.importorskip(mod)
    refs = _refs(tmp_path)
    out = tmp_path / "report"
    rc = main(["eval", "--refs", str(refs), "--out", str(out), "--no-wrong-group", "--jobs", "1",
               "--systems", "plpcnet-s,lpcnet-bl-s,opus-9k,codec2-1600", "--metrics", "pesq_wb,stoi",
               "--loss", "0,0.2", "--loss-utterances", "1", "--players", "2"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "PESQ-WB" in cap.out and "Opus 9 kb/s" in cap.out
    res = json.loads((out / "scores.json").read_text())
    assert set(res["systems"]) == {"plpcnet-s", "lpcnet-bl-s", "opus-9k", "codec2-1600"}
    assert res["decoder_backend"].split()[0] in ("runtime", "reference")
    for s in res["systems"]:
        st = res["summary"][s]["pesq_wb"]
        assert st["n"] == 2 and 1.0 <= st["mean"] <= 4.65
    assert res["summary"]["opus-9k"]["stoi"]["mean"] > res["summary"]["lpcnet-bl-s"]["stoi"]["mean"] - 0.3
    assert res["systems"]["lpcnet-bl-s"]["params"] > 100_000 and res["systems"]["lpcnet-bl-s"]["rtf"] > 0
    assert res["systems"]["codec2-1600"]["bitrate"] == 1600
    assert "plpcnet-s - lpcnet-bl-s" in res["paired"]
    assert res["classification"]["speaker_group"]
    assert res["reading"] and any("PESQ-WB ranks" in r for r in res["reading"])
    curves = res["loss"]["curves"]
    assert any(k.startswith("opus-9k PLC, random") for k in curves)
    from pnsc.evaluation.loss import receiver_path_available

    if receiver_path_available()[0]:  # runtime built: the decoder benchmark ran too
        assert {r["family"] for r in res["decoder_bench"]} == {"plpcnet-s", "lpcnet-bl-s"}
        assert 0 < res["systems"]["plpcnet-s"]["cpu_rtf"] < 5
        assert {"PLPCNet-S receiver, no redundancy, random", "PLPCNet-S receiver, redundancy 2, random"} <= set(curves)
        assert res["loss"]["missing"] is None
    c = curves["opus-9k PLC, random"]
    assert c["rates"] == [0.0, 0.2] and c["stats"][0]["pesq_wb"]["mean"] > c["stats"][1]["pesq_wb"]["mean"]
    page = (out / "index.html").read_text()
    assert page.count("<audio") == 2 * 5  # 2 utterances x (original + 4 systems)
    assert [d["name"] for d in res["decoders"]][:2] == ["lpcnet-bl-s", "plpcnet-s-g0"]  # the manifest's decoders
    assert "<h2>Decoders</h2>" in page and "<code>plpcnet-s-g3</code>" in page and "the lpcnet-bl-s decoder" in page
    for name in ("quality.png", "loss.png"):
        assert (out / "media" / name).stat().st_size > 1000
    media = {p.name for p in (out / "media").iterdir()}
    assert {f"{p.stem}-ref.flac" for p in refs.iterdir()} <= media
    assert any(n.endswith("-plpcnet-s.flac") for n in media)


def test_bad_postfilter_spec_exits_2(tmp_path, capsys):
    refs = _refs(tmp_path)
    assert main(["eval", "--refs", str(refs), "--postfilter", "0.9,0.5", "--out", str(tmp_path / "o")]) == 2
    assert "G_N,G_D,MU" in capsys.readouterr().err
    assert main(["eval", "--refs", str(refs), "--postfilter", "0.9,0.5,0", "--out", str(tmp_path / "o")]) == 2
    assert "g_n <= g_d" in capsys.readouterr().err
    assert main(["eval", "--refs", str(refs), "--quiet-floor", "0.002,3,1", "--out", str(tmp_path / "o")]) == 2
    assert "--quiet-floor" in capsys.readouterr().err
    assert main(["eval", "--refs", str(refs), "--quiet-floor", "lots", "--out", str(tmp_path / "o")]) == 2
    assert "FLOOR,QUIET_C0,LOUD_C0" in capsys.readouterr().err
