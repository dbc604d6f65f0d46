"""The codec commands end to end through the real ``pnsc`` entry point (in-process and as a subprocess)."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pnsc.cli import main
from pnsc.shared.pnscfile import HEADER_BYTES, read_pnsc
from tests.conftest import SAMPLES, harmonic_vowel


def test_encode_any_rate_and_channels(tmp_path, capsys):
    x = harmonic_vowel(140.0, seconds=1.3)
    stereo = np.stack([x, 0.5 * x], axis=1)
    from pnsc.shared.audio import resample

    wav = tmp_path / "in44k.wav"
    sf.write(wav, resample(stereo[:, 0], 16000, 44100)[:, None].repeat(2, axis=1), 44100)
    out = tmp_path / "out.pnsc"
    assert main(["encode", str(wav), str(out)]) == 0
    err = capsys.readouterr().err
    assert "resampling 44100 Hz to 16000 Hz" in err and "downmixing 2 channels" in err
    header, packets = read_pnsc(out)
    n = sf.info(wav).frames * 16000 / 44100
    assert len(packets) == int(np.ceil(round(n) / 640))
    assert out.stat().st_size == HEADER_BYTES + 8 * len(packets)
    assert "1600 b/s" in err


def test_encode_bundled_speech_is_exactly_1600_bps(tmp_path):
    clip = sorted(SAMPLES.glob("*.flac"))[0]
    out = tmp_path / "s.pnsc"
    assert main(["encode", str(clip), str(out), "--group", "2"]) == 0
    header, packets = read_pnsc(out)
    seconds = sf.info(clip).frames / 16000
    assert header.group == 2
    assert len(packets) == int(np.ceil(seconds / 0.04))
    assert (out.stat().st_size - HEADER_BYTES) * 8 / (len(packets) * 0.04) == 1600


def test_features_npz(tmp_path):
    wav = tmp_path / "v.wav"
    sf.write(wav, harmonic_vowel(200.0), 16000)
    out = tmp_path / "f.npz"
    assert main(["features", str(wav), str(out)]) == 0
    z = np.load(out)
    assert z["features"].shape == z["qfeatures"].shape == (100, 20)
    assert z["lpc"].shape == (100, 16) and z["packets"].shape == (25, 8)


@pytest.mark.parametrize("content", [b"", b"not audio at all" * 10, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_unreadable_input_is_a_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    assert main(["encode", str(bad), str(tmp_path / "o.pnsc")]) == 2
    err = capsys.readouterr().err
    assert "pnsc: error: cannot read audio file" in err
    assert not (tmp_path / "o.pnsc").exists()


def test_missing_input_and_subprocess_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pnsc", "encode", str(tmp_path / "nope.wav"), str(tmp_path / "o.pnsc")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "audio file not found" in proc.stderr


@pytest.mark.parametrize("extra", [[], ["--group", "auto"]])
def test_encode_classifies_the_talker_by_default(tmp_path, capsys, extra):
    clip = sorted(SAMPLES.glob("*.flac"))[0]
    out = tmp_path / "auto.pnsc"
    assert main(["encode", str(clip), str(out), *extra]) == 0
    header, _ = read_pnsc(out)
    assert 0 <= header.group < 4
    assert header.num_samples == sf.info(clip).frames
    err = capsys.readouterr().err
    assert f"classified into group {header.group}" in err and f"speaker group {header.group} ->" in err


def test_encode_group_unknown_and_number(tmp_path, capsys):
    clip = sorted(SAMPLES.glob("*.flac"))[0]
    assert main(["encode", str(clip), str(tmp_path / "u.pnsc"), "--group", "unknown"]) == 0
    assert read_pnsc(tmp_path / "u.pnsc")[0].group == 255
    assert main(["encode", str(clip), str(tmp_path / "3.pnsc"), "--group", "3"]) == 0
    assert read_pnsc(tmp_path / "3.pnsc")[0].group == 3
    assert "classified" not in capsys.readouterr().err


def test_encode_group_auto_on_silence_writes_unknown(tmp_path, capsys):
    wav = tmp_path / "silence.wav"
    sf.write(wav, np.zeros(32000, dtype=np.float32), 16000)
    out = tmp_path / "s.pnsc"
    assert main(["encode", str(wav), str(out)]) == 0
    assert read_pnsc(out)[0].group == 255
    assert "cannot classify the talker" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["x", "255", "-1", "4", "17"])
def test_encode_bad_group(tmp_path, capsys, bad):
    clip = sorted(SAMPLES.glob("*.flac"))[0]
    assert main(["encode", str(clip), str(tmp_path / "o.pnsc"), "--group", bad]) == 2
    assert "--group must be" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["encode", "{clip}", "{tmp}/o.pnsc", "--group", "1"], "codebook file not found"),
        (["encode", "{clip}", "{tmp}/o.pnsc"], "speaker encoder model not found"),
        (["classify", "{clip}"], "speaker encoder model not found"),
        (["decode", "{pnsc}", "{tmp}/o.wav"], "no model manifest"),
    ],
)
def test_missing_models_are_a_clear_error(tmp_path, capsys, monkeypatch, argv, message):
    clip = sorted(SAMPLES.glob("*.flac"))[0]
    pnsc = tmp_path / "in.pnsc"
    assert main(["encode", str(clip), str(pnsc), "--group", "1"]) == 0
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("PNSC_MODELS_DIR", str(empty))
    args = [a.format(clip=clip, tmp=tmp_path, pnsc=pnsc) for a in argv]
    assert main(args) == 2
    assert message in capsys.readouterr().err
