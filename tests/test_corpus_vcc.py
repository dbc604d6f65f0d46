"""VCC 2016 corpus source: linked in LibriSpeech layout, sex from its table; clear errors on a bad folder."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pnsc.training.corpus.librispeech import scan_corpus
from pnsc.training.corpus.sources.vcc2016 import SUBSET, VccError, link_corpus, speaker_sex


def _fake_vcc(root):
    root.mkdir(parents=True)
    (root / "SPEAKERS.txt").write_text("speaker\tsex\tfiles\tminutes\nSF1\tF\t2\t0.1\nTM2\tM\t2\t0.1\n")
    for spk in ("SF1", "TM2"):
        (root / spk).mkdir(parents=True)
        for utt in ("100001", "200001"):
            sf.write(root / spk / f"{spk}-{utt}.flac", np.zeros(1600, np.int16), 16000)


def test_link_corpus_and_scan(tmp_path):
    _fake_vcc(tmp_path / "vcc")
    speakers = link_corpus(tmp_path / "vcc", tmp_path / "corpus")
    assert [(s.speaker, s.sex, s.files) for s in speakers] == [("SF1", "F", 2), ("TM2", "M", 2)]
    link_corpus(tmp_path / "vcc", tmp_path / "corpus")  # idempotent
    utts = scan_corpus(tmp_path / "corpus", [SUBSET])
    assert sorted(u.utt_id for u in utts) == ["SF1-vcc2016-100001", "SF1-vcc2016-200001",
                                              "TM2-vcc2016-100001", "TM2-vcc2016-200001"]
    assert speaker_sex(tmp_path / "corpus") == {"SF1": "F", "TM2": "M"}


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(VccError, match="speaker table not found"):
        link_corpus(tmp_path / "nothing", tmp_path / "corpus")
    _fake_vcc(tmp_path / "vcc")
    for f in (tmp_path / "vcc" / "TM2").iterdir():
        f.unlink()
    with pytest.raises(VccError, match="no FLAC files for speaker TM2"):
        link_corpus(tmp_path / "vcc", tmp_path / "corpus")
