"""End to end with the shipped models through the ``pnsc`` CLI: a bundled clip is encoded with the
talker classified (the default) and decoded by every shipped decoder family (reference decoder)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from pnsc.cli import main
from pnsc.shared.pnscfile import read_pnsc
from tests.conftest import SAMPLES

CLIP_SAMPLES = 24_000  # 1.5 s, not a whole number of 40 ms packets (37.5), so trimming matters


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """(input wav, its .pnsc encoded with the default options, folder) for 1.5 s of a bundled clip."""
    from pnsc.shared.audio import load_audio

    tmp = tmp_path_factory.mktemp("e2e")
    x = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:8000 + CLIP_SAMPLES]
    wav = tmp / "clip.wav"
    sf.write(wav, x, 16000, subtype="PCM_16")
    pnsc = tmp / "clip.pnsc"
    assert main(["encode", str(wav), str(pnsc)]) == 0
    return wav, pnsc, tmp


def test_encode_classifies_by_default(encoded, capfd):
    wav, _, tmp = encoded
    out = tmp / "again.pnsc"
    assert main(["encode", str(wav), str(out)]) == 0
    err = capfd.readouterr().err
    header, packets = read_pnsc(out)
    assert header.version == 2 and header.num_samples == CLIP_SAMPLES and len(packets) == 38
    assert 0 <= header.group < 4
    assert re.search(rf"talker classified into group {header.group} \(confidence 0\.\d\d, \d\.\d\d s of speech\)", err)
    assert "less reliable" in err  # about 1 s of speech: below the sender's 3 s


@pytest.mark.parametrize("family", ["plpcnet-s", "plpcnet-l", "lpcnet-bl-s", "lpcnet-bl-l"])
def test_every_shipped_family_decodes_to_the_input_length(encoded, capfd, family):
    wav, pnsc, tmp = encoded
    capfd.readouterr()
    group = read_pnsc(pnsc)[0].group
    out = tmp / f"{family}.wav"
    assert main(["decode", str(pnsc), str(out), "--decoder", family]) == 0
    err = capfd.readouterr().err
    expected = f"{family}-g{group}" if family.startswith("plpcnet") else family
    assert f"{len(read_pnsc(pnsc)[1])} packets -> {CLIP_SAMPLES} samples (1.50 s) with {expected}" in err
    assert "note:" not in err  # the decoder asked for is the one that ran
    y, rate = sf.read(out, dtype="float32")
    x, _ = sf.read(wav, dtype="float32")
    assert rate == 16000 and len(y) == len(x) == CLIP_SAMPLES
    assert np.isfinite(y).all()
    level_db = 10 * np.log10(np.mean(y ** 2))
    assert -45 < level_db < 0, level_db  # speech comes out (not silence, not clipping noise)
