"""LTP decoders (GRU-A sees the excitations one pitch lag back) through export and the run-time decoder:
the C loop (every ISA path this CPU runs) and the ONNX loop graph draw the same samples as the torch
reference synthesis given the same uniforms; a stream split over many calls equals one shot and the torch
reference; a model without taps is unchanged; a widened model decodes exactly like its origin; files whose
``ltp_taps`` metadata disagrees with their weights are refused.  The voicing gate (``ltp_gate``): the same
agreements for gated decoders (frames on both sides of the gate), and bad ``ltp_gate`` metadata is refused."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
torch.set_num_threads(1)

from pnsc.receiver.reference_decoder import ReferenceDecoder  # noqa: E402
from pnsc.receiver.runtime import ModelFileError, StreamingDecoder  # noqa: E402
from pnsc.receiver.runtime.backends import SynthState  # noqa: E402
from pnsc.receiver.runtime.ckernel import cpu_kernels  # noqa: E402
from pnsc.receiver.runtime.model import LoadedModel, ModelFiles, ltp_lag  # noqa: E402
from pnsc.shared.constants import LTP_HISTORY  # noqa: E402
from pnsc.training.lpcnet.export import build_step_graph, export_model  # noqa: E402
from pnsc.training.lpcnet.model import (LPCNet, LPCNetConfig, config_for, ltp_lag as torch_lag,  # noqa: E402
                                        synthesize, widen_for_ltp)
from tests.conftest import SAMPLES  # noqa: E402

# GRU-A and conditioning sizes the C frame-rate network takes (conditioning a multiple of 64), kept small
SMALL = LPCNetConfig(gru_a=32, gru_b=8, embed=8, cond=64, pitch_embed=4)
C_KERNELS = [k for k in ("avx512", "avx2", "generic") if {"avx512": "avx512-vnni"}.get(k, k) in cpu_kernels()]


def _ltp_model(cfg: LPCNetConfig, taps: int, seed: int = 0, half: bool = False, gate: float = 0.0) -> LPCNet:
    """A random model whose tap columns are non-zero (so that the taps matter); ``half``: every weight
    rounded to float16 (the shipped files' storage, then exported losslessly); ``gate``: its voicing gate."""
    torch.manual_seed(seed)
    m = LPCNet(LPCNetConfig(**{**cfg.to_dict(), "ltp_taps": taps, "ltp_gate": gate})).eval()
    with torch.no_grad():
        m.dual_fc.factor.mul_(3.0)  # sharper distributions than at init, so that errors would show
        e = m.cfg.embed
        w = m.gru_a.weight_ih_l0
        w[:, 3 * e:(3 + taps) * e] = torch.randn(w.shape[0], taps * e) * 0.5
        if half:
            for p in m.parameters():
                p.copy_(p.half().float())
    return m


def _install(model: LPCNet, models: Path, name: str = "lpcnet-bl-s", fp16: bool = False) -> Path:
    """Export ``model`` as the lpcnet-bl-s decoder of a models folder with its manifest."""
    files = export_model(model, models / "decoders", name, {"name": name}, fp16_weights=fp16)
    entry = {"name": name, "kind": "decoder", "family": "lpcnet-bl-s", "group": "generic",
             "ltp_taps": model.cfg.ltp_taps, "files": {k: str(p.relative_to(models)) for k, p in files.items()}}
    (models / "manifest.json").write_text(json.dumps({"models": [entry]}))
    return models


def _loaded(models: Path, name: str = "lpcnet-bl-s") -> LoadedModel:
    d = models / "decoders"
    return LoadedModel(ModelFiles(name, "lpcnet-bl-s", None, d / f"{name}.frame.onnx", d / f"{name}.onnx"))


def _random_features(T: int, seed: int, alternate: bool = False) -> torch.Tensor:
    """``alternate``: pitch correlations 0.3, 0.7, 0.3, ... (frames on both sides of a 0.5 gate)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(T, 20, generator=g)
    f[:, 18] = 20 + 260 * torch.rand(T, generator=g)  # lags below 160 reach into the same frame; both clamps hit
    f[:, 19] = torch.rand(T, generator=g)
    if alternate:
        f[:, 19] = torch.where(torch.arange(T) % 2 == 0, 0.3, 0.7)
    return f


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """0.5 s of real coded speech (dequantized features), for stable LPC."""
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:16000]
    return quantize_features(extract_features(pcm))[1]


def _torch_frames(model: LPCNet, feats, lpc: np.ndarray, u: np.ndarray) -> np.ndarray:
    f = torch.as_tensor(np.asarray(feats, np.float32))
    padded = torch.cat([f[:1], f[:1], f, f[-1:], f[-1:]])
    with torch.no_grad():
        return synthesize(model, padded, torch.from_numpy(lpc), torch.from_numpy(u)).numpy()


def test_lag_rule_is_the_training_rule():
    p = np.array([0.0, 31.4, 31.5, 99.5, 100.49, 254.5, 255.49, 300.0, 180.49999], np.float32)
    assert [ltp_lag(v) for v in p] == torch_lag(torch.from_numpy(p)).tolist()


def test_step_graph_with_taps_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _ltp_model(config_for("tiny"), 5)
    sess = ort.InferenceSession(build_step_graph(m).SerializeToString(), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    cond = torch.rand(1, 16, generator=g) * 2 - 1
    ha, hb = torch.randn(1, 24, generator=g) * 0.5, torch.randn(1, 8, generator=g) * 0.5
    ids = torch.randint(0, 256, (8,), generator=g)
    probs, ha2, _ = sess.run(None, {"cond": cond.numpy(), "ids": ids.numpy(), "ha": ha.numpy(), "hb": hb.numpy()})
    with torch.no_grad():
        logits, ta, _ = m.step(cond, ids[0:1], ids[1:2], ids[2:3], ha, hb, ids[None, 3:])
    assert np.max(np.abs(probs - torch.softmax(logits[0], -1).numpy())) < 1e-5
    assert np.max(np.abs(ha2 - ta.numpy())) < 1e-5


@pytest.mark.parametrize("taps,gate", [(5, 0.0), (0, 0.0), (5, 0.5)])
def test_c_loop_and_onnx_graph_follow_the_torch_reference(taps, gate, tmp_path):
    """Same uniforms, same conditioning: every C path (fp32) draws the torch reference's samples; the ONNX loop
    graph too, within float rounding. With taps, the taps change the signal (they are used). With a gate
    (pitch correlation alternating across it), the gate changes the signal too."""
    m = _ltp_model(config_for("tiny"), taps, gate=gate)
    lm = _loaded(_install(m, tmp_path))
    assert lm.ltp_taps == taps and lm.ltp_gate == gate
    T = 6
    f = _random_features(T, 4, alternate=bool(gate))
    lpc = np.zeros((T, 16), np.float32)
    lpc[:, 0], lpc[:, 1] = 0.8, -0.3
    rng = np.random.default_rng(7)
    u = rng.random(T * 160, dtype=np.float32)
    ref = _torch_frames(m, f, lpc, u)
    assert np.std(ref) > 100 and np.mean(np.abs(ref) >= 32767) < 0.05  # a real, mostly unclipped signal
    padded = torch.cat([f[:1], f[:1], f, f[-1:], f[-1:]]).numpy()
    cond = lm.frame_net.run_sequence(padded)
    for kernel in C_KERNELS + ["onnx"]:
        b = lm.backend("fp32", kernel)
        st = SynthState.zeros(*lm.size)
        y = np.concatenate([b.run_frame(cond[t], lpc[t], float(f[t, 19]), u[t * 160:(t + 1) * 160], st,
                                        period=float(f[t, 18])) for t in range(T)])
        assert np.max(np.abs(y - ref)) <= 1e-3 * np.max(np.abs(ref)), kernel
        if taps:
            assert not np.all(st.past == 128) and st.past.dtype == np.int32
    if gate:  # the same weights without the gate draw other samples from the first gated frame on
        plain = _ltp_model(config_for("tiny"), taps)
        plain.load_state_dict(m.state_dict())
        ungated = _torch_frames(plain, f, lpc, u)
        assert np.mean(ungated[:160 * T] != ref) > 0.5
        return
    if taps:
        with torch.no_grad():
            m.gru_a.weight_ih_l0[:, 3 * 8:8 * 8] = 0
        assert np.mean(_torch_frames(m, f, lpc, u) != ref) > 0.5


def test_history_is_the_drawn_excitations_and_int8_runs(tmp_path):
    """After a frame, ``past`` ends with the frame's 160 excitation indices (mu-law of x - u, as drawn)."""
    lm = _loaded(_install(_ltp_model(config_for("tiny"), 3), tmp_path))
    b = lm.backend("fp32", None)
    st = SynthState.zeros(*lm.size)
    lpc = np.zeros(16, np.float32)  # u = 0: the sample is the excitation's value
    rng = np.random.default_rng(0)
    y = b.run_frame(np.zeros(16, np.float32), lpc, 0.5, rng.random(160, dtype=np.float32), st, period=40.0)
    assert np.all(st.past[:LTP_HISTORY - 160] == 128)
    assert st.exc[0] == st.past[-1]
    # x = ulaw2lin(e): each drawn index maps back to its sample
    d = st.past[-160:].astype(np.float64) - 128
    x = np.sign(d) * (32768.0 / 255.0) * (np.exp(np.abs(d) * np.log(256.0) / 128.0) - 1.0)
    assert np.allclose(x, y, atol=0.05)
    q = lm.backend("int8", None)
    st8 = SynthState.zeros(*lm.size)
    y8 = q.run_frame(np.zeros(16, np.float32), lpc, 0.5, rng.random(160, dtype=np.float32), st8, period=200.0)
    assert np.isfinite(y8).all() and not np.all(st8.past[-160:] == 128)


@pytest.mark.parametrize("gate", [0.0, 0.45])
def test_stream_in_many_calls_equals_one_shot_and_the_torch_reference(speech, gate, tmp_path):
    """Real coded speech, float16-stored weights, the frame-rate network in C: pushing frame by frame in
    irregular chunks equals one ``decode``, which equals the torch reference synthesis (same uniforms:
    the stream's seeded PCG64, 160 per frame) after de-emphasis; reset clears the excitation history.
    Gate 0.45: the clip's first 8 frames (pitch correlation 0.21, 0.36) are gated, the rest not."""
    from pnsc.receiver.runtime.stream import _deemph, _lpc

    m = _ltp_model(SMALL, 5, seed=2, half=True, gate=gate)
    models = _install(m, tmp_path, fp16=True)
    feats = speech[:36]
    if gate:
        assert 0 < np.sum(feats[:10, 19] < gate) < 10
    dec = StreamingDecoder("lpcnet-bl-s", models_dir=models, precision="fp32", seed=3)
    assert dec.model.ltp_taps == 5 and dec.backend.c_frame_net and dec.kernel != "onnx"
    assert dec.model.ltp_gate == gate
    one = dec.decode(feats)
    dec.reset()
    parts, i = [], 0
    for n in (1, 4, 2, 9, 3, 17):
        parts += [dec.push(f) for f in feats[i:i + n]]
        i += n
    parts.append(dec.flush())
    assert i == len(feats) and np.array_equal(np.concatenate(parts), one)
    dec.reset()
    assert np.all(dec._state.past == 128)
    assert np.array_equal(dec.decode(feats), one)

    # the torch reference, and the onnxruntime loop graph (stream kernel onnx, reference decoder) on the same
    # file. Free-running sampling parts for good at the first near-tie (a draw within float rounding of a CDF
    # step: the C tables fold the embeddings, the conditioning comes from another frame-net implementation);
    # on this saturating random model that comes after 11-12 frames for some seeds, so: the first 10 frames
    # (step-by-step agreement over long runs: the teacher-forced test below)
    rng = np.random.default_rng(3)
    u = np.concatenate([rng.random(160, dtype=np.float32) for _ in feats])
    lpc = np.stack([_lpc(f) for f in feats])
    ref, _ = _deemph(_torch_frames(m, feats, lpc, u), 0.0)
    n = 10 * 160
    assert np.std(ref[:n]) > 50
    onnx_out = StreamingDecoder("lpcnet-bl-s", models_dir=models, precision="fp32", seed=3, kernel="onnx").decode(feats)
    refdec = ReferenceDecoder.from_manifest("lpcnet-bl-s", None, models, seed=3).decode(feats)
    for out in (one, onnx_out, refdec):
        assert np.max(np.abs(out[:n].astype(int) - ref[:n])) <= 1
    if gate:  # the gate is used: the ungated twin decodes otherwise from the start (frame 0 is gated)
        twin = _install(_ltp_model(SMALL, 5, seed=2, half=True), tmp_path / "ungated", fp16=True)
        plain = StreamingDecoder("lpcnet-bl-s", models_dir=twin, precision="fp32", seed=3).decode(feats)
        assert np.mean(plain[:160] != one[:160]) > 0.5
    # another sampling floor: the loop graph's floor constant is rewritten (pnsc.receiver.sampling) with the LTP
    # inputs in place; the C path takes it per call
    for kernel in ("onnx", None):
        low = StreamingDecoder("lpcnet-bl-s", models_dir=models, precision="fp32", seed=3, kernel=kernel,
                               pdf_floor=0.003).decode(feats[:8])
        assert low.shape == (8 * 160,) and not np.array_equal(low, one[:8 * 160])


@pytest.mark.parametrize("gate", [0.0, 0.5])
@pytest.mark.parametrize("kernel", C_KERNELS)
def test_c_loop_follows_the_onnx_graph_step_by_step(kernel, gate, tmp_path):
    """Teacher-forced along the onnxruntime loop graph's free-running samples (verify.py's method; LPC 0, so no
    sample clips and the forced excitation is the drawn one): fp32 picks the same sample at every step, ends
    with the same excitation history and GRU state; int8 mostly (its state quantization moves near-ties).
    Gate 0.5: pitch correlations alternate across it (the C loop's gated frames fold the taps' rows)."""
    lm = _loaded(_install(_ltp_model(SMALL, 5, seed=2, half=True, gate=gate), tmp_path, fp16=True))
    T = 40
    f = _random_features(T, 9, alternate=bool(gate)).numpy()
    cond = lm.frame_net.run_sequence(np.concatenate([f[:1], f[:1], f, f[-1:], f[-1:]]))
    lpc = np.zeros(16, np.float32)
    ref = lm.backend("fp32", "onnx")
    for prec, want in (("fp32", 1.0), ("int8", 0.85)):
        b = lm.backend(prec, kernel)
        st, st_ref = SynthState.zeros(*lm.size), SynthState.zeros(*lm.size)
        rng = np.random.default_rng(1)
        ok = []
        for t in range(T):
            u = rng.random(160, dtype=np.float32)
            y_ref = ref.run_frame(cond[t], lpc, float(f[t, 19]), u, st_ref, period=float(f[t, 18]))
            y = b.run_frame(cond[t], lpc, float(f[t, 19]), u, st, force=y_ref, period=float(f[t, 18]))
            ok.append(np.abs(y - y_ref) <= 1)
        assert np.mean(ok) >= want, (prec, np.mean(ok))
        assert np.array_equal(st.past, st_ref.past) and np.array_equal(st.exc, st_ref.exc)
        if prec == "fp32":
            assert np.abs(st.ha - st_ref.ha).max() < 1e-5


def test_widened_model_decodes_exactly_like_its_origin(speech, tmp_path):
    base = _ltp_model(SMALL, 0, seed=5)
    wide = LPCNet(LPCNetConfig(**{**SMALL.to_dict(), "ltp_taps": 5})).eval()
    wide.load_state_dict(widen_for_ltp(base.state_dict(), wide.cfg))
    a, b = _install(base, tmp_path / "a"), _install(wide, tmp_path / "b")
    for prec in ("fp32", "int8"):
        outs = [StreamingDecoder("lpcnet-bl-s", models_dir=d, precision=prec, seed=1).decode(speech[:20])
                for d in (a, b)]
        assert np.array_equal(outs[0], outs[1]), prec
        assert np.abs(outs[0]).max() > 0
    onnx_outs = [StreamingDecoder("lpcnet-bl-s", models_dir=d, precision="fp32", seed=1, kernel="onnx")
                 .decode(speech[:20]) for d in (a, b)]
    assert np.mean(np.abs(onnx_outs[0].astype(int) - onnx_outs[1]) <= 1) > 0.99


def _set_meta(path: Path, key: str, value: str) -> None:
    m = onnx.load(path)
    for p in m.metadata_props:
        if p.key == key:
            p.value = value
    onnx.save(m, path)


@pytest.mark.parametrize("claim", ["3", "0", "7", "2", "five"])
def test_metadata_that_disagrees_with_the_weights_is_refused(claim, tmp_path):
    models = _install(_ltp_model(config_for("tiny"), 5), tmp_path)
    _set_meta(models / "decoders" / "lpcnet-bl-s.onnx", "ltp_taps", claim)
    with pytest.raises(ModelFileError, match="ltp_taps"):
        StreamingDecoder("lpcnet-bl-s", models_dir=models)


@pytest.mark.parametrize("claim", ["-0.1", "1.0", "1.5", "nan", "inf", "half"])
def test_bad_gate_metadata_is_refused(claim, tmp_path):
    models = _install(_ltp_model(config_for("tiny"), 5, gate=0.5), tmp_path)
    _set_meta(models / "decoders" / "lpcnet-bl-s.onnx", "ltp_gate", claim)
    with pytest.raises(ModelFileError, match=r"bad ltp_gate metadata .*\[0, 1\)"):
        StreamingDecoder("lpcnet-bl-s", models_dir=models)


def test_gate_without_taps_is_refused_and_files_before_the_gate_load(tmp_path):
    models = _install(_ltp_model(config_for("tiny"), 0), tmp_path)
    path = models / "decoders" / "lpcnet-bl-s.onnx"
    m = onnx.load(path)
    kept = [p for p in m.metadata_props if p.key != "ltp_gate"]  # an export before the gate existed
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    onnx.save(m, path)
    assert _loaded(models).ltp_gate == 0.0
    m.metadata_props.add(key="ltp_gate", value="0.3")
    onnx.save(m, path)
    with pytest.raises(ModelFileError, match="ltp_gate 0.3 but no LTP taps"):
        _loaded(models)


def test_taps_claimed_by_a_model_without_them_is_refused(tmp_path):
    models = _install(_ltp_model(config_for("tiny"), 0), tmp_path)
    _set_meta(models / "decoders" / "lpcnet-bl-s.onnx", "ltp_taps", "5")
    with pytest.raises(ModelFileError, match=r"ltp_taps=5.*0 tap blocks"):
        LoadedModel(ModelFiles("x", "lpcnet-bl-s", None, models / "decoders" / "lpcnet-bl-s.frame.onnx",
                               models / "decoders" / "lpcnet-bl-s.onnx"))


def test_the_c_loop_needs_history_and_lag(tmp_path):
    lm = _loaded(_install(_ltp_model(config_for("tiny"), 5), tmp_path))
    b = lm.backend("fp32", None)
    st = SynthState.zeros(*lm.size)
    args = (np.zeros(3 * 24, np.float32), np.zeros(24, np.float32), np.zeros(16, np.float32), 1.0,
            np.full(160, 0.5, np.float32), st.ha, st.hb, st.hist, st.exc, np.empty(160, np.float32))
    with pytest.raises(ValueError, match="LTP taps"):
        b.net.frame(*args, pdf_floor=0.0)
    with pytest.raises(ValueError, match="LTP taps"):
        b.net.frame(*args, pdf_floor=0.0, past=st.past, lag=20)
    with pytest.raises(ValueError, match="past"):
        b.net.frame(*args, pdf_floor=0.0, past=np.full(LTP_HISTORY, 300, np.int32), lag=40)
    with pytest.raises(ValueError, match="LTP taps"):  # past without a lag
        b.net.frame(*args, pdf_floor=0.0, past=st.past)
    with pytest.raises(ValueError, match="period"):
        b.run_frame(np.zeros(16, np.float32), np.zeros(16, np.float32), 0.5, np.full(160, 0.5, np.float32), st)
    b.net.frame(*args, pdf_floor=0.0, past=st.past, lag=40)
    b.net.frame(*args, pdf_floor=0.0, past=st.past, lag=0)  # 0: the voicing gate silences the frame's taps
    assert not np.all(st.past[-320:] == 128)  # both frames' draws recorded
