"""Decoder runtime (pnsc.receiver.runtime): the compiled kernel on the real shipped decoders against the
onnxruntime reference loop, streaming timing, switching, bank, errors, and the decode / bench commands."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pnsc.receiver.reference_decoder import DecoderNotFound, ReferenceDecoder, read_manifest
from pnsc.receiver.runtime import DecoderBank, ModelFileError, StreamingDecoder
from pnsc.receiver.runtime.model import LoadedModel, locate
from pnsc.receiver.runtime.verify import compare_with_reference
from tests.conftest import SAMPLES

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DECODERS = [(m["family"], m["group"] if isinstance(m["group"], int) else None)
            for m in read_manifest(MODELS) if m.get("kind") == "decoder"]


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    """1 s of real coded speech: a bundled clip through analysis and 1.6 kb/s quantization.

    The clip is named, not taken by position: free-running sampling amplifies a one-ulp difference in the
    conditioning (the stream runs the frame graph per window, the reference over the whole sequence), so
    sample-level agreement with the reference holds on this clip but not on every clip (on
    1998-15444-0006 it drifts apart after about a third of the samples). Step-by-step agreement with
    identical inputs is checked for every decoder by the verify tests."""
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:24000]
    return quantize_features(extract_features(pcm))[1]


def _ckernels() -> list[str]:
    from pnsc.receiver.runtime.ckernel import cpu_kernels

    return cpu_kernels()


def test_extension_is_compiled_and_is_the_default_path():
    from pnsc.receiver.runtime import _lpcnet  # the compiled module itself, no fallback

    names = _lpcnet.available()
    assert names[-1] == "generic" and set(names) <= {"avx512-vnni", "avx2", "generic"}
    dec = StreamingDecoder("plpcnet-s", 0)
    assert dec.kernel == names[0] and dec.precision == "fp32"


@pytest.mark.parametrize("family,group", DECODERS, ids=[f"{f}-{g}" for f, g in DECODERS])
def test_fp32_kernel_follows_the_reference_loop_on_every_shipped_decoder(family, group, feats):
    # resync: each frame starts from the reference's state, so a rare near-tie of the LPC prediction at a mu-law
    # rounding boundary (summation order) moves the GRU state for one frame only (verify.py); with the
    # 0.0005 sampling floor plpcnet-l-3 meets one on this clip, and without resync its end state is 2e-4 off
    model = LoadedModel(locate(family, group))
    r = compare_with_reference(model, feats[:50], precision="fp32", resync=True)
    assert r["kernel"] != "onnx" and r["samples"] == 50 * 160
    assert r["choice_match"] >= 0.999, r
    assert r["max_abs_err"] < 0.1 and r["median_state_err"] < 2e-5 and r["max_state_err"] < 0.1, r


@pytest.mark.parametrize("kernel", ["avx512", "avx2", "generic"])
def test_each_kernel_path_this_cpu_runs(kernel, feats, monkeypatch):
    name = {"avx512": "avx512-vnni"}.get(kernel, kernel)
    if name not in _ckernels():
        pytest.skip(f"this CPU has no {name}")
    monkeypatch.setenv("PNSC_KERNEL", kernel)
    model = LoadedModel(locate("plpcnet-l", 2))
    r = compare_with_reference(model, feats[:30], precision="fp32")
    assert r["kernel"] == name and r["choice_match"] >= 0.999, r
    dec = StreamingDecoder("plpcnet-s", 1, precision="int8")
    assert dec.kernel == name
    pcm = dec.decode(feats[:20])
    assert pcm.dtype == np.int16 and pcm.shape == (20 * 160,) and np.abs(pcm).max() > 0


def test_int8_paths_compute_the_same_integer_products(feats):
    """The int8 kernels share their integer products and differ only in float activation rounding (exp/tanh
    approximations): fed the same history, they disagree with each other clearly less often than with the
    fp32 reference. Near-ties in flat output distributions are what flips, so the agreement depends on the
    weights: round-3 weights 96 % between kernels, 88 % with fp32; the round-6/7 S decoders 85-90 % and 74-80 %;
    round 18's group-1 S decoder (a --group-mix branch: more near-ties) 78 % and 67 % (its kernels'
    disagreement 0.67 of its disagreement with fp32). The 70 % floor catches a kernel that agrees with nothing;
    the relative condition, one whose integer products differ. Quality cost of int8: scripts/runtime_quality.py."""
    model = LoadedModel(locate("plpcnet-s", 1))
    ks = [k for k in ("avx512", "avx2", "generic") if {"avx512": "avx512-vnni"}.get(k, k) in _ckernels()]
    outs = [compare_with_reference(model, feats[:20], precision="int8", kernel=k) for k in ks]
    for o in outs[1:]:
        same = np.mean(np.abs(o["choices"] - outs[0]["choices"]) <= 1)
        assert same >= 0.7 and 1 - same < 0.75 * (1 - o["choice_match"]), (o["kernel"], same, o["choice_match"])


@pytest.mark.parametrize("family,group", [("plpcnet-s", 1), ("lpcnet-bl-l", None)])
def test_frame_net_in_c_matches_onnxruntime(family, group, feats):
    dec = StreamingDecoder(family, group)
    b, m = dec.backend, dec.model
    assert b.c_frame_net  # the stream runs the frame-rate network in C, not onnxruntime
    for t in range(0, feats.shape[0] - 5, 9):
        win = np.ascontiguousarray(feats[t:t + 5])
        b.net.cond(win, b._ga, b._gb)
        ra, rb = m.weights.cond_terms(m.frame_net.run(win))
        assert np.allclose(b._ga, ra, atol=2e-5, rtol=1e-5) and np.allclose(b._gb, rb, atol=2e-5, rtol=1e-5)


def test_push_timing_flush_and_reset(feats):
    dec = StreamingDecoder("plpcnet-s", 1, seed=5)
    assert dec.lookahead_frames == 2
    outs = [dec.push(f) for f in feats[:10]]
    assert [o.size for o in outs] == [0, 0] + [160] * 8 and all(o.dtype == np.int16 for o in outs)
    tail = dec.flush()
    assert tail.size == 320 and tail.dtype == np.int16
    first = np.concatenate(outs + [tail])
    dec.reset()
    assert np.array_equal(dec.decode(feats[:10]), first)
    dec.reset()
    assert dec.push(feats[0]).size == 0 and dec.flush().size == 160
    assert dec.flush().size == 0


def _level_db(x: np.ndarray) -> float:
    """Mean power of a signal in dB (int16 scale)."""
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9))


@pytest.mark.parametrize("family,group", [("plpcnet-s", 2), ("lpcnet-bl-s", None)])
def test_stream_equals_reference_decoder_on_the_onnx_path(feats, family, group):
    # Free-running sampling turns a one-ulp difference in the conditioning (the stream runs the frame graph
    # per window, the reference over the whole sequence) into a different sample once a draw lands on a
    # level boundary, and the two signals then part for good (with the round-4 plpcnet-s-g2 after 21 of 40
    # frames; never with the other decoders on this clip). So: equal within one LSB until they part, which
    # must not happen in the first 10 frames, and the same level over the whole clip.
    ref = ReferenceDecoder.from_manifest(family, group, seed=7).decode(feats[:40])
    out = StreamingDecoder(family, group, seed=7, precision="fp32", kernel="onnx").decode(feats[:40])
    assert out.shape == ref.shape
    apart = np.abs(out.astype(int) - ref) > 1
    first = int(np.argmax(apart)) if apart.any() else apart.size
    assert first >= 10 * 160, first

    assert abs(_level_db(out) - _level_db(ref)) < 1.0


def test_decode_command_runtime_agrees_with_reference(tmp_path, capsys):
    import soundfile as sf

    from pnsc.cli import main
    from pnsc.shared.audio import load_audio

    wav_in = tmp_path / "in.wav"
    sf.write(wav_in, load_audio(sorted(SAMPLES.glob("*.flac"))[0], quiet=True)[16000:20800], 16000)
    src = tmp_path / "in.pnsc"
    assert main(["encode", str(wav_in), str(src), "--group", "1"]) == 0
    a, b = tmp_path / "rt.wav", tmp_path / "ref.wav"
    assert main(["decode", str(src), str(a), "--precision", "fp32"]) == 0
    err = capsys.readouterr().err
    assert "fp32" in err and "kernel" in err
    assert main(["decode", str(src), str(b), "--reference"]) == 0
    x, y = sf.read(a, dtype="int16")[0].astype(int), sf.read(b, dtype="int16")[0].astype(int)
    assert x.shape == y.shape and x.size == 4800  # trimmed to the input length (8 packets hold 5120)
    # Same sampling choices until a near-tie in the sampling CDF (float rounding differs between the two
    # paths) flips one and the free-running streams part. Where is chance: round 22's group-1 decoder parts at
    # sample 1093 of this clip, earlier ones after the first half. Wrong wiring (another decoder, group or
    # feature set) differs from the first samples on, so the first two frames must match sample for sample.
    differ = np.nonzero(np.abs(x - y) > 1)[0]
    assert differ.size == 0 or differ[0] >= 2 * 160, f"runtime and reference part at sample {differ[0]}"

    assert abs(_level_db(x) - _level_db(y)) < 3.0  # after parting, both still decode the same speech
    assert main(["decode", str(src), str(a)]) == 0  # default: the fp32 runtime
    assert "fp32" in capsys.readouterr().err
    assert main(["decode", str(src), str(a), "--precision", "int8"]) == 0
    assert "int8" in capsys.readouterr().err
    c = tmp_path / "pf.wav"
    assert main(["decode", str(src), str(b)]) == 0
    assert main(["decode", str(src), str(c), "--postfilter", "0.7,0.85,0"]) == 0
    assert "formant postfilter 0.7/0.85/0" in capsys.readouterr().err
    plain, filtered = sf.read(b, dtype="int16")[0], sf.read(c, dtype="int16")[0]
    assert plain.shape == filtered.shape and not np.array_equal(plain, filtered)


def _boundary_ok(pcm: np.ndarray, at: int) -> bool:
    """The switch at sample ``at`` makes no jump larger than the utterance's own largest step elsewhere."""
    d = np.abs(np.diff(pcm.astype(np.float64)))
    win = slice(at - 40, at + 200)
    rest = np.concatenate([d[:win.start], d[win.stop:]])
    return d[win].max() <= rest.max()


@pytest.mark.parametrize("target", [("plpcnet-s", 3), ("lpcnet-bl-s", None), ("plpcnet-l", 0)])
def test_switch_between_frames_is_continuous(feats, target):
    dec = StreamingDecoder("plpcnet-s", 1, seed=3)
    out = [dec.push(f) for f in feats[:40]]
    dec.switch(*target)
    assert dec.family == target[0] and dec.group == target[1]
    out += [dec.push(f) for f in feats[40:]] + [dec.flush()]
    pcm = np.concatenate(out)
    assert pcm.size == feats.shape[0] * 160
    assert _boundary_ok(pcm, 38 * 160)


def test_switch_to_the_same_decoder_changes_nothing(feats):
    a = StreamingDecoder("plpcnet-s", 1, seed=3)
    b = StreamingDecoder("plpcnet-s", 1, seed=3)
    out_a = [a.push(f) for f in feats[:30]]
    out_b = [b.push(f) for f in feats[:15]]
    b.switch("plpcnet-s", 1)
    out_b += [b.push(f) for f in feats[15:30]]
    assert np.array_equal(np.concatenate(out_a), np.concatenate(out_b))


def test_bank_switches_without_loading(feats):
    bank = DecoderBank("s")
    assert ("lpcnet-bl-s", None) in bank.keys() and ("plpcnet-s", 3) in bank.keys()
    dec = bank.get("plpcnet-s", 0)
    assert dec.model is bank.model("plpcnet-s", 0)
    dec.push(feats[0])
    dec.switch("plpcnet-s", 2)
    assert dec.model is bank.model("plpcnet-s", 2) and dec.name == "plpcnet-s-g2"
    with pytest.raises(DecoderNotFound, match="not in this S bank"):
        bank.get("plpcnet-l", 0)


def _model_copy(tmp_path: Path, name: str = "plpcnet-s-g1") -> Path:
    models = tmp_path / "models"
    (models / "decoders").mkdir(parents=True)
    man = json.loads((MODELS / "manifest.json").read_text())
    man["models"] = [m for m in man["models"] if m.get("name") == name]
    (models / "manifest.json").write_text(json.dumps(man))
    for p in man["models"][0]["files"].values():
        shutil.copy(MODELS / p, models / p)
    shutil.copy(MODELS / "speaker_groups.json", models)  # personalized decoders are checked against it
    return models


def test_clear_errors_for_bad_model_files(tmp_path, feats):
    models = _model_copy(tmp_path)
    sample = models / "decoders" / "plpcnet-s-g1.onnx"
    data = sample.read_bytes()
    sample.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="sha256 does not match"):
        StreamingDecoder("plpcnet-s", 1, models_dir=models)
    man = json.loads((models / "manifest.json").read_text())
    man["models"][0].pop("sha256", None)
    (models / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="corrupt ONNX file|truncated"):
        StreamingDecoder("plpcnet-s", 1, models_dir=models)
    sample.unlink()
    with pytest.raises(DecoderNotFound, match="decoder file missing"):
        StreamingDecoder("plpcnet-s", 1, models_dir=models)
    with pytest.raises(DecoderNotFound, match="no decoder"):
        StreamingDecoder("plpcnet-l", 1, models_dir=models)


def test_unsupported_shape_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    models = _model_copy(tmp_path)
    path = models / "decoders" / "plpcnet-s-g1.onnx"
    m = onnx.load(path)
    for i, t in enumerate(m.graph.initializer):
        if t.name == "gru_a.weight_hh_l0__f16":
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(np.zeros((768, 200), np.float16), t.name))
    onnx.save(m, path)
    man = json.loads((models / "manifest.json").read_text())
    man["models"][0].pop("sha256", None)
    (models / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="unsupported decoder shape"):
        StreamingDecoder("plpcnet-s", 1, models_dir=models)


def test_bad_requests(monkeypatch, feats):
    monkeypatch.setenv("PNSC_KERNEL", "sse9")
    with pytest.raises(ValueError, match="unknown kernel 'sse9'"):
        StreamingDecoder("plpcnet-s", 1)
    monkeypatch.delenv("PNSC_KERNEL")
    with pytest.raises(ValueError, match="unknown precision"):
        StreamingDecoder("plpcnet-s", 1, precision="int4")
    dec = StreamingDecoder("plpcnet-s", 1)
    with pytest.raises(ValueError, match="20 values"):
        dec.push(np.zeros(18, np.float32))
    bad = feats[0].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        dec.push(bad)


def test_missing_cpu_path_falls_back_and_says_so(monkeypatch, capsys):
    from pnsc.receiver.runtime import ckernel

    monkeypatch.setattr(ckernel, "cpu_kernels", lambda: ["generic"])
    assert StreamingDecoder("plpcnet-s", 1, kernel="avx512").kernel == "generic"
    assert "available here: generic); running generic" in capsys.readouterr().err
    assert StreamingDecoder("plpcnet-s", 1).kernel == "generic"


def test_bench_command_json(capsys):
    from pnsc.cli import main

    assert main(["bench", "decoder", "--json", "--seconds", "0.5", "--families", "plpcnet-s",
                 "--precisions", "int8"]) == 0
    res = json.loads(capsys.readouterr().out)
    (row,) = res["results"]
    assert row["family"] == "plpcnet-s" and row["precision"] == "int8" and row["kernel"] == res["cpu_kernels"][0]
    assert 0 < row["rtf"] < 5 and 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert main(["bench", "decoder", "--families", "nope"]) == 2


def test_streams_sharing_a_bank_in_threads(feats):
    """Net.frame releases the GIL; two streams on one loaded model in two threads decode as they do alone."""
    import threading

    bank = DecoderBank("s", groups=[1])
    alone = [bank.get("plpcnet-s", 1, seed=s).decode(feats[:30]) for s in (1, 2)]
    got: dict[int, np.ndarray] = {}

    def run(s: int) -> None:
        got[s] = bank.get("plpcnet-s", 1, seed=s).decode(feats[:30])

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert np.array_equal(got[1], alone[0]) and np.array_equal(got[2], alone[1])
