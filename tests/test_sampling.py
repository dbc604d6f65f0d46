"""The sampling rule's probability floor (pnsc.receiver.sampling): its math, the same rule on every decode
path (C kernels, the ONNX loop graph with its floor rewritten, a numpy step of the network), and its
parameter on the stream, the reference decoder and ``pnsc decode``."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pnsc.receiver.reference_decoder import DecoderNotFound, ReferenceDecoder
from pnsc.receiver.runtime import StreamingDecoder
from pnsc.receiver.runtime.backends import SynthState, sampling_boost
from pnsc.receiver.runtime.model import CONTEXT, CORR_INDEX, FRAME_SIZE, LoadedModel, locate
from pnsc.receiver.runtime.verify import compare_with_reference
from pnsc.receiver.sampling import (MAX_PDF_FLOOR, GraphFloorError, check_pdf_floor, floored_pdf, loop_graph_floor,
                                    loop_graph_with_floor, sample_level)
from pnsc.shared.constants import PDF_FLOOR
from pnsc.shared.lpc import lpc_from_cepstrum
from pnsc.shared.mulaw import lin2ulaw, ulaw2lin
from tests.conftest import SAMPLES

FLOORS = (0.0, 0.001, PDF_FLOOR, 0.0035)


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:24000]
    return quantize_features(extract_features(pcm))[1]


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return LoadedModel(locate("lpcnet-bl-s", None))


# -- the math

logit_vectors = st.lists(st.floats(-30, 30, allow_nan=False, width=32), min_size=256, max_size=256)


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.floats(1.0, 2.0), st.sampled_from(FLOORS + (MAX_PDF_FLOOR * 0.999,)))
def test_floor_removes_every_level_below_it_and_the_rest_renormalises(logits, boost, floor):
    logits = np.array(logits, np.float32)
    plain = floored_pdf(logits, boost, 0.0)
    p = floored_pdf(logits, boost, floor)
    assert abs(plain.sum() - 1.0) < 1e-5 and np.all(p >= 0)
    assert np.all(p[plain <= floor] == 0)                            # nothing at or below the floor survives
    kept = plain > floor + 1e-6
    assert np.all(p[kept] > 0) and np.allclose(p[kept], plain[kept] - np.float32(floor), atol=1e-6)
    assert p[np.argmax(plain)] > 0                                   # the most probable level always does
    q = p / p.sum(dtype=np.float64)                                  # the distribution actually sampled
    assert abs(q.sum() - 1.0) < 1e-6


def test_the_largest_probability_survives_even_a_floor_just_under_one_over_256():
    flat = np.zeros(256, np.float32)  # uniform: every probability is exactly 1/256
    p = floored_pdf(flat, 1.0, np.nextafter(np.float32(MAX_PDF_FLOOR), np.float32(0)))
    assert np.all(p > 0)
    assert sample_level(p, 0.0) == 0 and sample_level(p, 0.999999) == 255


def test_sampling_hits_each_level_with_its_floored_probability():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.5, 256).astype(np.float32)
    p = floored_pdf(logits, 1.3, PDF_FLOOR)
    u = rng.random(40000, dtype=np.float32)
    counts = np.bincount([sample_level(p, x) for x in u], minlength=256)
    assert np.all(counts[p == 0] == 0)
    want = p / p.sum() * u.size
    big = want > 200
    assert np.all(np.abs(counts[big] - want[big]) < 5 * np.sqrt(want[big]))


def test_floor_zero_is_plain_softmax_sampling():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(0, 3, 256).astype(np.float32)
        x = logits * np.float32(1.4)
        e = np.exp(x - x.max())
        soft = (e * (np.float32(1) / e.sum(dtype=np.float32))).astype(np.float32)
        assert np.array_equal(floored_pdf(logits, 1.4, 0.0), soft)
        for u in rng.random(20, dtype=np.float32):
            plain = min(255, int(np.sum(np.cumsum(soft) < u * soft.sum())))
            assert sample_level(floored_pdf(logits, 1.4, 0.0), u) == plain


@pytest.mark.parametrize("bad", [-1e-6, MAX_PDF_FLOOR, 0.01, float("nan"), float("inf"), "x", None])
def test_invalid_floors_are_refused(bad):
    with pytest.raises(ValueError, match="pdf_floor"):
        check_pdf_floor(bad)


# -- the ONNX loop graph's floor constant

def test_loop_graph_floor_is_rewritten_in_place(model, tmp_path):
    path = model.files.sample
    baked = loop_graph_floor(path)  # the floor the decoder was exported with (training's PDF_FLOOR then)
    assert check_pdf_floor(baked) == baked and baked in (np.float32(PDF_FLOOR), np.float32(0.002))
    other = 0.001 if baked != np.float32(0.001) else 0.0005                # a floor other than the baked one
    before = path.read_bytes()
    after = loop_graph_with_floor(path, other)
    assert len(after) == len(before)
    diff = np.flatnonzero(np.frombuffer(before, np.uint8) != np.frombuffer(after, np.uint8))
    assert diff.size >= 1 and diff.max() - diff.min() < 4                  # only the 4 bytes of the constant
    out = tmp_path / "g.onnx"
    out.write_bytes(after)
    assert loop_graph_floor(out) == np.float32(other)
    with pytest.raises(GraphFloorError, match="no probability floor"):
        loop_graph_floor(model.files.frame)                                 # the frame-rate graph has none
    (tmp_path / "cut.onnx").write_bytes(before[: len(before) // 2])
    with pytest.raises(GraphFloorError, match="cut.onnx"):
        loop_graph_floor(tmp_path / "cut.onnx")


# -- every path applies the same rule

def _numpy_frame(w, ga, gb, lpc, boost, uniforms, s: SynthState, floor: float) -> np.ndarray:
    """The sample network step by step in numpy (float32), sampling with floored_pdf / sample_level."""
    n, tables = w.n_a, w.embedding_tables()

    def gru(gi, gh, h):
        r = 1 / (1 + np.exp(-(gi[:len(h)] + gh[:len(h)])))
        z = 1 / (1 + np.exp(-(gi[len(h):2 * len(h)] + gh[len(h):2 * len(h)])))
        c = np.tanh(gi[2 * len(h):] + r * gh[2 * len(h):])
        return (c + z * (h - c)).astype(np.float32)

    def index(v):
        return int(np.clip(np.floor(lin2ulaw(v) + np.float32(0.5)), 0, 255))

    out = np.empty(FRAME_SIZE, np.float32)
    for k in range(FRAME_SIZE):
        u = np.float32(np.dot(lpc, s.hist))
        gi = tables[0, index(s.hist[0])] + tables[1, index(u)] + tables[2, int(s.exc[0])] + ga
        s.ha = gru(gi, w.wa_hh @ s.ha + w.ba_hh, s.ha)
        s.hb = gru(w.wb_ih[:, :n] @ s.ha + gb, w.wb_hh @ s.hb + w.bb_hh, s.hb)
        y = np.tanh(w.dual_w @ s.hb + w.dual_b)
        logits = (y * w.dual_f).sum(axis=0)
        idx = sample_level(floored_pdf(logits, boost, floor), uniforms[k])
        out[k] = np.clip(u + ulaw2lin(idx), -32768, 32767)
        s.hist = np.concatenate([out[k:k + 1], s.hist[:-1]])
        s.exc = np.array([idx], np.int32)
    return out


def _c_against_numpy(model, feats, numpy_floor: float, c_floor: float, frames: int = 12) -> float:
    """Fraction of steps where the C kernel (fp32, teacher-forced along the numpy samples, the same uniform
    draws) picks the sample numpy picked."""
    w = model.weights
    f = feats[:frames]
    padded = np.concatenate([np.repeat(f[:1], CONTEXT, 0), f, np.repeat(f[-1:], CONTEXT, 0)])
    cond = model.frame_net.run_sequence(padded)
    lpc = lpc_from_cepstrum(f[:, :18])
    backend = model.backend("fp32", None)
    rng = np.random.default_rng(11)
    s_np, s_c = SynthState.zeros(*model.size), SynthState.zeros(*model.size)
    hits = []
    for t in range(frames):
        uni = rng.random(FRAME_SIZE, dtype=np.float32)
        ga, gb = w.cond_terms(cond[t])
        corr = float(f[t, CORR_INDEX])
        y = _numpy_frame(w, ga, gb, lpc[t], sampling_boost(corr), uni, s_np, numpy_floor)
        out = backend.run_frame(cond[t], lpc[t], corr, uni, s_c, force=y, pdf_floor=c_floor)
        hits.append(np.abs(out - y) <= 1.0)
    return float(np.concatenate(hits).mean())


@pytest.mark.parametrize("floor", [0.0, 0.003])
def test_c_kernel_samples_like_the_numpy_rule(model, feats, floor):
    assert _c_against_numpy(model, feats, floor, floor) >= 0.99
    other = 0.0015 if floor == 0.0 else 0.0
    assert _c_against_numpy(model, feats, floor, other) < 0.985  # the check can tell floors apart


@pytest.mark.parametrize("floor", [0.0, PDF_FLOOR, 0.001, 0.002, 0.0035])
def test_c_kernel_follows_the_onnx_graph_at_every_floor(model, feats, floor):
    # 0.002 is the floor the shipped graphs were exported with: there the reference runs the file unchanged,
    # i.e. the runtime's sampling before pdf_floor existed
    r = compare_with_reference(model, feats[:20], precision="fp32", pdf_floor=floor)
    assert r["kernel"] != "onnx" and r["choice_match"] >= 0.999, r


def test_the_c_kernel_needs_the_floor_given(model):
    net, (n_a, n_b) = model.backend("fp32", None).net, model.size
    args = [np.zeros(k, np.float32) for k in (3 * n_a, 3 * n_b, 16)] + [1.0, np.zeros(160, np.float32),
            np.zeros(n_a, np.float32), np.zeros(n_b, np.float32), np.zeros(16, np.float32),
            np.array([128], np.int32), np.zeros(160, np.float32)]
    with pytest.raises(TypeError, match="needs pdf_floor"):
        net.frame(*args)
    for bad in (0.01, -0.001, float("nan")):
        with pytest.raises(ValueError, match=r"pdf_floor must be in \[0, 1/256\)"):
            net.frame(*args, pdf_floor=bad)
    out = args[-1]
    net.frame(*args, pdf_floor=0.0)
    assert np.all(np.isfinite(out))


def test_every_c_path_applies_the_floor(model, feats):
    from pnsc.receiver.runtime.ckernel import cpu_kernels

    for kernel, name in (("avx512", "avx512-vnni"), ("avx2", "avx2"), ("generic", "generic")):
        if name in cpu_kernels():
            r = compare_with_reference(model, feats[:10], precision="fp32", kernel=kernel, pdf_floor=0.0)
            assert r["kernel"] == name and r["choice_match"] >= 0.999, r


def test_stream_floor_default_switch_and_onnx_path(feats):
    dec = StreamingDecoder("plpcnet-s", 1, precision="fp32", seed=4)
    assert dec.pdf_floor == PDF_FLOOR
    default = dec.decode(feats[:20])
    dec.pdf_floor, _ = 0.0, dec.reset()
    off = dec.decode(feats[:20])
    assert not np.array_equal(default, off)
    explicit = StreamingDecoder("plpcnet-s", 1, precision="fp32", seed=4, pdf_floor=PDF_FLOOR).decode(feats[:20])
    assert np.array_equal(explicit, default)
    onnx = StreamingDecoder("plpcnet-s", 1, precision="fp32", seed=4, kernel="onnx", pdf_floor=0.0)
    assert onnx.kernel == "onnx"

    def parts_at(a: np.ndarray, b: np.ndarray) -> int:
        apart = np.abs(a.astype(int) - b) > 1
        return int(np.argmax(apart)) if apart.any() else apart.size

    # free-running streams part for good once a draw lands within float rounding of a level boundary (see
    # tests/test_runtime.py; step-by-step agreement at each floor is checked above), so the ONNX stream with
    # the floor off must follow the C stream with the floor off far longer than the floor itself keeps two
    # streams together (a few hundred samples: the round-12 group-1 decoder parts at 196 and follows to 1,180)
    assert parts_at(onnx.decode(feats[:20]), off) > 2 * parts_at(default, off)
    with pytest.raises(ValueError, match="pdf_floor"):
        dec.pdf_floor = 0.004


def test_reference_decoder_takes_the_floor(feats):
    ref = ReferenceDecoder.from_manifest("lpcnet-bl-s", None, seed=2, pdf_floor=0.0).decode(feats[:12])
    onnx = StreamingDecoder("lpcnet-bl-s", None, precision="fp32", seed=2, kernel="onnx", pdf_floor=0.0)
    apart = np.abs(ref.astype(int) - onnx.decode(feats[:12])) > 1
    assert (int(np.argmax(apart)) if apart.any() else apart.size) >= 8 * 160
    default = ReferenceDecoder.from_manifest("lpcnet-bl-s", None, seed=2).decode(feats[:12])
    assert not np.array_equal(default, ref)
    with pytest.raises(ValueError, match="pdf_floor"):
        ReferenceDecoder.from_manifest("lpcnet-bl-s", None, pdf_floor=-0.1)


def test_a_graph_without_the_floor_pattern_is_refused_clearly():
    m = LoadedModel(locate("lpcnet-bl-s", None))
    sample = m.files.sample
    assert ReferenceDecoder(m.files.frame, sample, pdf_floor=0.001).pdf_floor == 0.001
    with pytest.raises(DecoderNotFound, match="no probability floor"):
        ReferenceDecoder(m.files.frame, m.files.frame, pdf_floor=0.001)  # a graph that has none


def test_decode_command_pdf_floor(tmp_path, capsys):
    from pnsc.cli import main

    src = tmp_path / "a.pnsc"
    assert main(["encode", str(SAMPLES / "3080-5032-0005.flac"), str(src), "--group", "1"]) == 0
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert main(["decode", str(src), str(a)]) == 0
    assert main(["decode", str(src), str(b), "--pdf-floor", "0"]) == 0
    assert "sampling floor 0" in capsys.readouterr().err
    import soundfile as sf

    assert not np.array_equal(sf.read(a, dtype="int16")[0], sf.read(b, dtype="int16")[0])
    assert main(["decode", str(src), str(b), "--pdf-floor", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pnsc: error: --pdf-floor:") and len(err.strip().splitlines()) == 1
