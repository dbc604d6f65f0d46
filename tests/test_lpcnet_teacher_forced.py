"""Teacher-forced whole-utterance decoding (training.lpcnet.teacher_forced): the vectorised sampler is the
runtime's rule, the batched pass equals the step-by-step loop fed the true past, and the chain with the true
excitation reconstructs the input (alignment)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pnsc.receiver.sampling import floored_pdf, sample_level  # noqa: E402
from pnsc.shared.constants import PDF_FLOOR  # noqa: E402
from pnsc.training.lpcnet.model import LPCNet, config_for, sample_from_logits, ulaw_index  # noqa: E402
from pnsc.training.lpcnet.teacher_forced import (cross_entropy_stats, excitation_to_pcm,  # noqa: E402
                                                 expected_excitation, sample_excitation, teacher_forced_pass)
from tests.conftest import SAMPLES  # noqa: E402


@pytest.fixture(scope="module")
def clip():
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:24000]
    return pcm, quantize_features(extract_features(pcm))[1]


@pytest.fixture(scope="module")
def tiny() -> LPCNet:
    torch.manual_seed(0)
    return LPCNet(config_for("tiny"), impl="fast").eval()


@pytest.mark.parametrize("floor", [0.0, PDF_FLOOR, 0.002])
def test_vectorised_sampler_is_the_runtime_rule(floor):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1500, 256, generator=g) * 4.0
    boost = 1.0 + torch.rand(1500, generator=g)
    u = torch.rand(1500, generator=g)
    got = sample_excitation(logits, boost, u, floor).numpy()
    want = np.array([sample_level(floored_pdf(logits[i].numpy(), float(boost[i]), floor), float(u[i]))
                     for i in range(len(u))])
    assert np.array_equal(got, want)
    if floor == PDF_FLOOR:  # the torch reference synthesis' rule too
        assert all(sample_from_logits(logits[i], float(boost[i]), float(u[i])) == got[i] for i in range(200))
    assert len(np.unique(got)) > 50  # the draws spread, not a constant


def test_true_excitation_reconstructs_the_input(tiny, clip):
    pcm, qf = clip
    tf = teacher_forced_pass(tiny, qf, pcm)
    n = len(qf) * 160
    assert tf.logits.shape == (n, 256) and tf.pred.shape == tf.target.shape == tf.boost.shape == (n,)
    y = excitation_to_pcm(tf.pred, tf.target)[: len(pcm)]
    snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum((pcm - y) ** 2))
    assert snr > 30.0  # only the 8-bit mu-law of the excitation and int16 rounding are lost
    y0 = excitation_to_pcm(tf.pred, torch.zeros(n), linear=True)[: len(pcm)]
    assert not np.allclose(y0, pcm, atol=1e-3)  # the prediction alone does not
    st = cross_entropy_stats(tf)
    assert 0.0 < st["entropy"] <= np.log(256) + 1e-4 and st["cross_entropy"] > 0.0
    assert expected_excitation(tf.logits).shape == (n,)


def test_batched_pass_equals_step_loop_on_the_true_past(tiny, clip):
    pcm, qf = clip
    tf = teacher_forced_pass(tiny, qf, pcm)
    padded = np.concatenate([qf[:1], qf[:1], qf, qf[-1:], qf[-1:]])
    cond = tiny.frame_rate(torch.from_numpy(padded)[None])[0]
    ha, hb = torch.zeros(1, tiny.cfg.gru_a), torch.zeros(1, tiny.cfg.gru_b)
    s = tf.signal
    with torch.no_grad():
        for t in range(400):
            prev = s[t - 1] if t > 0 else torch.tensor(0.0)
            prev_exc = prev - tf.pred[t - 1] if t > 0 else torch.tensor(0.0)
            logits, ha, hb = tiny.step(cond[t // 160][None], ulaw_index(prev[None]), ulaw_index(tf.pred[t][None]),
                                       ulaw_index(prev_exc[None]), ha, hb)
            assert torch.allclose(logits[0], tf.logits[t], atol=1e-4), t


def test_prediction_gain_is_zero_for_a_zero_mean_model_and_large_for_the_truth(tiny, clip):
    from pnsc.training.lpcnet.model import ulaw2lin
    from pnsc.training.lpcnet.teacher_forced import TeacherForced, prediction_gain_db

    pcm, qf = clip
    tf = teacher_forced_pass(tiny, qf, pcm)
    levels = ulaw2lin(torch.arange(256, dtype=torch.float32))
    # a model whose distribution is symmetric around 0 explains nothing (levels 1..255 are symmetric)
    sym = torch.zeros_like(tf.logits)
    sym[:, 0] = -1e4
    assert abs(prediction_gain_db(TeacherForced(sym, tf.pred, tf.target, tf.signal, tf.boost))) < 0.1
    # a model sure of the true mu-law excitation explains all but the 8-bit rounding
    sure = torch.full_like(tf.logits, -1e4).scatter_(1, tf.target[:, None], 0.0)
    assert prediction_gain_db(TeacherForced(sure, tf.pred, tf.target, tf.signal, tf.boost)) > 20.0
    assert torch.allclose(expected_excitation(sure), levels[tf.target])
