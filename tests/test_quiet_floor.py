"""The energy-dependent sampling floor (pnsc.receiver.quiet_floor): the mapping, its checks, and real decodes."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SR

from pnsc.receiver.quiet_floor import C0_INDEX, QuietFloor, decode_with_floor
from pnsc.shared.constants import FEATURE_DIM, FRAME_SIZE, PDF_FLOOR
from pnsc.shared.features import extract_features
from pnsc.shared.quantizer import quantize_features


def test_mapping_above_below_ramp_monotone():
    r = QuietFloor(0.003, -2.0, 2.0)
    assert r.base == PDF_FLOOR
    assert r(np.full(FEATURE_DIM, 5.0)) == pytest.approx(PDF_FLOOR)
    assert r(np.full(FEATURE_DIM, 2.0)) == pytest.approx(PDF_FLOOR)
    assert r(np.full(FEATURE_DIM, -2.0)) == pytest.approx(0.003)
    assert r(np.full(FEATURE_DIM, -11.0)) == pytest.approx(0.003)
    assert r.floor_of_c0(0.0) == pytest.approx((0.003 + PDF_FLOOR) / 2)  # linear in c0 between
    c0 = np.linspace(-15, 15, 301)
    fl = r.floor_of_c0(c0)
    assert np.all(np.diff(fl) <= 0) and fl[0] > fl[-1]  # quieter -> larger floor, monotone
    feats = np.zeros((4, FEATURE_DIM), np.float32)
    feats[:, C0_INDEX] = [-5, -1, 1, 6]
    feats[:, 1:] = 99.0  # only c0 counts
    assert np.allclose(r.floors(feats), r.floor_of_c0([-5, -1, 1, 6]))


@pytest.mark.parametrize("args, msg", [
    ((0.004, -2, 2), "quiet_floor"),  # >= 1/256
    ((-0.001, -2, 2), "quiet_floor"),
    ((0.002, -2, 2, 0.0040), "base"),
    ((0.002, 2, -2), "ordered"),
    ((0.002, 1, 1), "ordered"),
    ((0.002, float("nan"), 2), "quiet_c0"),
    ((0.002, -2, "x"), "loud_c0"),
])
def test_bad_parameters_raise(args, msg):
    with pytest.raises(ValueError, match=msg):
        QuietFloor(*args)


def test_bad_inputs_raise():
    r = QuietFloor(0.002, -2, 2)
    with pytest.raises(ValueError, match="features"):
        r.floors(np.zeros((3, 5)))


@pytest.fixture(scope="module")
def speech_with_silence(speech_clip):
    """1 s speech, 0.8 s digital near-silence (faint noise), 0.5 s speech -> quantized features, silence frames."""
    rng = np.random.default_rng(3)
    quiet = (1e-4 * rng.standard_normal(int(0.8 * SR))).astype(np.float32)
    x = np.concatenate([speech_clip[SR // 2: 3 * SR // 2], quiet, speech_clip[2 * SR: 5 * SR // 2]])
    feats = quantize_features(extract_features(x))[1]
    silent = slice(SR // FRAME_SIZE + 10, SR // FRAME_SIZE + 70)  # inside the silence, away from its edges
    return feats, silent


def test_decoder_silence_is_quieter_same_length(speech_with_silence):
    from pnsc.receiver.runtime import StreamingDecoder

    feats, silent = speech_with_silence
    rule = QuietFloor(0.003, -2.0, 1.5)
    fl = rule.floors(feats)
    assert np.all(fl[silent] == pytest.approx(0.003)) and np.mean(fl == PDF_FLOOR) > 0.4
    s = slice(silent.start * FRAME_SIZE, silent.stop * FRAME_SIZE)
    e_flat = e_quiet = 0.0
    for seed in (5, 6, 7):  # one draw varies (round 22's BL-S: 0.60-0.94 of the energy over seeds 0-9)
        dec = StreamingDecoder("lpcnet-bl-s", seed=seed)
        flat = dec.decode(feats)
        dec.reset()
        quiet = decode_with_floor(dec, feats, fl)
        assert dec.pdf_floor == PDF_FLOOR  # restored
        assert quiet.dtype == np.int16 and quiet.shape == flat.shape == (len(feats) * FRAME_SIZE,)
        e_flat += np.mean(flat[s].astype(np.float64) ** 2)
        e_quiet += np.mean(quiet[s].astype(np.float64) ** 2)
    # the silence's energy over seeds 0-9: 0.77 of the flat decoder's (round 22's BL-S), 0.89 (round 26's, 0.86-0.92)
    assert e_quiet < 0.95 * e_flat
    # the same rule with quiet_floor == base is the flat decoder, sample for sample
    dec.reset()
    same = decode_with_floor(dec, feats, QuietFloor(PDF_FLOOR, -2.0, 1.5).floors(feats))
    assert np.array_equal(same, flat)


def test_floor_reaches_the_right_frame(speech_with_silence):
    """A floor changed for frame j alone changes nothing before frame j's samples (the lookahead mapping)."""
    from pnsc.receiver.runtime import StreamingDecoder

    feats, silent = speech_with_silence
    feats = feats[:95]  # the first second's speech: in near-silence a floor may change no sample (round 19's BL-S)
    dec = StreamingDecoder("lpcnet-bl-s", seed=2)
    flat = dec.decode(feats)
    for j in (0, 1, 60, len(feats) - 3, len(feats) - 1):
        fl = np.full(len(feats), PDF_FLOOR)
        fl[j] = 0.0038
        if j == len(feats) - 1:  # flush decodes the last two frames with one floor: the smaller of theirs
            fl[j - 1] = 0.0038
        dec.reset()
        y = decode_with_floor(dec, feats, fl)
        first = j - 1 if j == len(feats) - 1 else j
        assert np.array_equal(y[: first * FRAME_SIZE], flat[: first * FRAME_SIZE]), j
        assert not np.array_equal(y[first * FRAME_SIZE: (first + 1) * FRAME_SIZE],
                                  flat[first * FRAME_SIZE: (first + 1) * FRAME_SIZE]), j
    fl = np.full(len(feats), PDF_FLOOR)
    fl[-1] = 0.0038  # the louder of the two flushed frames wins: no change at all
    dec.reset()
    assert np.array_equal(decode_with_floor(dec, feats, fl), flat)
    with pytest.raises(ValueError, match="one floor per frame"):
        decode_with_floor(dec, feats, np.zeros(3))


def test_parse_quiet_floor_spec():
    from pnsc.receiver.quiet_floor import parse_quiet_floor

    assert parse_quiet_floor("off") is None
    assert parse_quiet_floor("0.002,-2,1.5") == (0.002, -2.0, 1.5)
    with pytest.raises(ValueError, match="FLOOR,QUIET_C0,LOUD_C0"):
        parse_quiet_floor("0.002,-2")
    with pytest.raises(ValueError, match="ordered"):
        parse_quiet_floor("0.002,3,1")
