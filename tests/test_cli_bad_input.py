"""Bad input through the ``pnsc`` CLI: one line ``pnsc: error: ...`` on stderr, exit status 2, no
traceback, and nothing written; pure silence is not an error (it encodes and decodes to silence)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pnsc.cli import main
from pnsc.shared.audio import load_audio
from pnsc.shared.paths import models_dir
from pnsc.shared.pnscfile import read_pnsc
from tests.conftest import REPO, SAMPLES


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Good and bad inputs, made once per module."""
    tmp = tmp_path_factory.mktemp("bad")
    speech = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)
    f = {"tmp": tmp}
    f["empty"] = tmp / "empty.wav"
    f["empty"].write_bytes(b"")
    f["text"] = tmp / "notes.wav"
    f["text"].write_text("this is a text file, not audio\n" * 20)
    f["tiny"] = tmp / "tiny.wav"
    sf.write(f["tiny"], speech[20000:20300], 16000, subtype="PCM_16")  # 300 samples < 640 (one packet)
    f["clip"] = tmp / "clip.wav"
    sf.write(f["clip"], speech[8000:8000 + 8000], 16000, subtype="PCM_16")  # 0.5 s
    f["good"] = tmp / "good.pnsc"
    assert main(["encode", str(f["clip"]), str(f["good"]), "--group", "1"]) == 0
    data = f["good"].read_bytes()
    f["truncated"] = tmp / "truncated.pnsc"
    f["truncated"].write_bytes(data[:-5])
    f["header_only"] = tmp / "header-cut.pnsc"
    f["header_only"].write_bytes(data[:12])
    f["random"] = tmp / "random.pnsc"
    f["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes())
    f["future"] = tmp / "future.pnsc"
    f["future"].write_bytes(data[:4] + bytes([9]) + data[5:])
    f["empty_pnsc"] = tmp / "empty.pnsc"
    f["empty_pnsc"].write_bytes(b"")
    return f


# (argv with {placeholders}, start of the message after "pnsc: error: ")
CASES = {
    "encode-empty-file": (["encode", "{empty}", "{tmp}/o.pnsc"], "cannot read audio file {empty}: the file is empty"),
    "encode-not-audio": (["encode", "{text}", "{tmp}/o.pnsc"], "cannot read audio file {text}: format not recognised"),
    "encode-missing-input": (["encode", "{tmp}/nope.wav", "{tmp}/o.pnsc"], "audio file not found: {tmp}/nope.wav"),
    "encode-shorter-than-a-packet": (["encode", "{tiny}", "{tmp}/o.pnsc"],
                                     "{tiny}: audio is too short to encode: 0.019 s (300 samples at 16 kHz)"),
    "encode-group-17": (["encode", "{clip}", "{tmp}/o.pnsc", "--group", "17"],
                        "--group must be 'auto', 'unknown' or a group number 0..3, got '17'"),
    "encode-output-folder-missing": (["encode", "{clip}", "{tmp}/no/such/dir/o.pnsc"],
                                     "cannot write output {tmp}/no/such/dir/o.pnsc: folder {tmp}/no/such/dir does not exist"),
    "decode-truncated": (["decode", "{truncated}", "{tmp}/o.wav"],
                         "{truncated}: truncated: header announces 13 packets (104 bytes), payload has 99 bytes"),
    "decode-header-cut": (["decode", "{header_only}", "{tmp}/o.wav"],
                          "{header_only}: too short for a .pnsc header (12 bytes, version 2 needs 20)"),
    "decode-random-bytes": (["decode", "{random}", "{tmp}/o.wav"], "{random}: not a .pnsc file"),
    "decode-future-version": (["decode", "{future}", "{tmp}/o.wav"],
                              "{future}: .pnsc format version 9 is not supported (this pnsc reads versions 1..2) "
                              "(written by a newer pnsc; upgrade to read it)"),
    "decode-empty-file": (["decode", "{empty_pnsc}", "{tmp}/o.wav"], "{empty_pnsc}: too short for a .pnsc header (0 bytes)"),
    "decode-audio-as-pnsc": (["decode", "{clip}", "{tmp}/o.wav"], "{clip}: not a .pnsc file"),
    "decode-missing-input": (["decode", "{tmp}/nope.pnsc", "{tmp}/o.wav"], "no such file: {tmp}/nope.pnsc"),
    "decode-output-folder-missing": (["decode", "{good}", "{tmp}/no/dir/o.wav"],
                                     "cannot write output {tmp}/no/dir/o.wav: folder {tmp}/no/dir does not exist"),
    "decode-output-unknown-format": (["decode", "{good}", "{tmp}/o.mp3"],
                                     "cannot tell the format of output {tmp}/o.mp3 from its extension: use one of .wav, .flac"),
    "decode-group-out-of-range": (["decode", "{good}", "{tmp}/o.wav", "--group", "7"], "--group must be 0..3, got 7"),
    "decode-postfilter-bad": (["decode", "{good}", "{tmp}/o.wav", "--postfilter", "0.9,0.5,0"],
                              "--postfilter: postfilter needs g_n <= g_d (else it flattens the formants), got g_n 0.9 > g_d 0.5"),
    "decode-postfilter-reference": (["decode", "{good}", "{tmp}/o.wav", "--postfilter", "0.7,0.85,0", "--reference"],
                                    "--postfilter needs the runtime decoder (not --reference)"),
    "classify-not-audio": (["classify", "{text}"], "cannot read audio file {text}: format not recognised"),
    "receive-postfilter-bad": (["receive", "--listen", "127.0.0.1:0", "--output", "{tmp}/r.wav", "--no-pace",
                                "--postfilter", "0.7,0.85"],
                               "--postfilter: postfilter must be 'off' or G_N,G_D,MU (e.g. 0.7,0.85,0), got '0.7,0.85'"),
    "call-postfilter-bad": (["call", "--listen", "127.0.0.1:0", "--peer", "127.0.0.1:9", "--input", "{clip}",
                             "--output", "{tmp}/c.wav", "--postfilter", "0.9,0.5,0"],
                            "--postfilter: postfilter needs g_n <= g_d (else it flattens the formants), got g_n 0.9 > g_d 0.5"),
    "demo-postfilter-bad": (["demo", "--no-play", "--out", "{tmp}/demo", "--postfilter", "0.7,0.85,1"],
                            "--postfilter: postfilter mu must be in [0, 1), got 1.0"),
}


def _fmt(items, files):
    return [str(a).format(**{k: str(v) for k, v in files.items()}) for a in items]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_status_2(files, capsys, case):
    argv, message = CASES[case]
    before = sorted(p.name for p in files["tmp"].iterdir())
    assert main(_fmt(argv, files)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pnsc: error: " + _fmt([message], files)[0]), lines[0]
    assert sorted(p.name for p in files["tmp"].iterdir()) == before  # nothing written


@pytest.mark.parametrize("case", ["encode-empty-file", "decode-truncated", "decode-future-version",
                                  "receive-postfilter-bad"])
def test_real_process_exit_status_and_no_traceback(files, case):
    argv, message = CASES[case]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "pnsc", *_fmt(argv, files)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("pnsc: error: ") and "Traceback" not in proc.stderr


def test_pure_silence_encodes_and_decodes_to_silence(files, capsys):
    tmp = files["tmp"]
    wav = tmp / "silence.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    pnsc, out = tmp / "silence.pnsc", tmp / "silence-out.wav"
    assert main(["encode", str(wav), str(pnsc)]) == 0
    err = capsys.readouterr().err
    assert "pnsc: note: cannot classify the talker" in err and "no speech found" in err
    header, _ = read_pnsc(pnsc)
    assert header.group == 255 and header.num_samples == 16000
    assert main(["decode", str(pnsc), str(out)]) == 0
    err = capsys.readouterr().err
    assert "pnsc: note: using the generic lpcnet-bl-s instead of plpcnet-s: the file carries no speaker group" in err
    assert "with lpcnet-bl-s" in err
    y, _ = sf.read(out, dtype="float32")
    assert len(y) == 16000
    assert 10 * np.log10(np.mean(y.astype(np.float64) ** 2) + 1e-20) < -60 and np.abs(y).max() < 0.01


def test_classify_silence_says_there_is_no_speech(files, capsys):
    wav = files["tmp"] / "quiet.wav"
    sf.write(wav, np.zeros(32000, np.float32), 16000, subtype="PCM_16")
    assert main(["classify", str(wav)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pnsc: error: {wav}: no speech found: the audio is silent or stationary noise (voice activity detector)"


def test_decode_says_when_it_does_not_use_what_was_asked(files, capsys):
    good, tmp = files["good"], files["tmp"]
    assert main(["decode", str(good), str(tmp / "g2.wav"), "--group", "2"]) == 0
    err = capsys.readouterr().err
    assert "pnsc: note: using speaker group 2 from --group; the file header says group 1" in err
    assert "with plpcnet-s-g2 (speaker group 2)" in err
    assert main(["decode", str(good), str(tmp / "bl.wav"), "--decoder", "lpcnet-bl-s", "--group", "2"]) == 0
    err = capsys.readouterr().err
    assert "pnsc: note: --group 2 ignored: lpcnet-bl-s is the generic decoder" in err


def test_version1_file_still_decodes(files, capsys):
    fixture = REPO / "tests" / "fixtures" / "v1-3080-0.5s-group1.pnsc"
    out = files["tmp"] / "v1.wav"
    assert main(["decode", str(fixture), str(out)]) == 0
    err = capsys.readouterr().err
    assert "format version 1 (no stored length)" in err and "with plpcnet-s-g1" in err
    assert sf.info(out).frames == 13 * 640


def _broken_models(tmp, family: str = "lpcnet-bl-s"):
    """A models folder whose ``family`` decoder has NaN weights in its sample-rate GRU-B bias."""
    onnx = pytest.importorskip("onnx", reason="onnx (training extra) is needed to edit a model")
    from onnx import numpy_helper

    src = models_dir()
    entry = next(m for m in json.loads((src / "manifest.json").read_text())["models"]
                 if m.get("kind") == "decoder" and m.get("family") == family)
    dst = tmp / "broken-models"
    (dst / "decoders").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "codebooks-v1.npz", dst / "codebooks-v1.npz")
    shutil.copy(src / entry["files"]["frame"], dst / entry["files"]["frame"])
    model = onnx.load(str(src / entry["files"]["sample"]))
    init = next(i for i in model.graph.initializer if i.name.startswith("gru_b.bias_ih"))
    w = numpy_helper.to_array(init).copy()
    w[:] = np.nan
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(dst / entry["files"]["sample"]))
    broken = {k: v for k, v in entry.items() if k != "sha256"}
    (dst / "manifest.json").write_text(json.dumps({"models": [broken]}))
    return dst


def test_a_model_that_produces_nan_fails_loudly(files, capsys):
    models = _broken_models(files["tmp"])
    out = files["tmp"] / "nan.wav"
    # the C runtime refuses the weights at load; the reference decoder notices NaN while decoding
    assert main(["decode", str(files["good"]), str(out), "--decoder", "lpcnet-bl-s", "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pnsc: error: ") and "lpcnet-bl-s.onnx: corrupt weights" in err and "non-finite" in err
    assert len(err.splitlines()) == 1 and not out.exists()
    assert main(["decode", str(files["good"]), str(out), "--decoder", "lpcnet-bl-s", "--models-dir", str(models),
                 "--reference"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pnsc: error: decoder lpcnet-bl-s is broken: NaN/inf in its samples or GRU state at frame 0 of 52"
    assert not out.exists()


def test_encode_stores_the_input_length(files):
    """The v2 header of the 0.5 s clip: 8000 samples in 13 packets (8320 samples of codec time)."""
    header, packets = read_pnsc(files["good"])
    assert (header.num_samples, len(packets)) == (8000, 13)
    assert files["good"].read_bytes()[14:18] == struct.pack(">I", 8000)
