"""Corpus reader, speaker splits, sources and distinctness check on tiny generated fixtures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from corpus_fixture import make_generated, make_librispeech, voice  # noqa: E402

from pnsc.training.corpus.librispeech import CorpusError, by_speaker, read_speakers_txt, scan_corpus  # noqa: E402
from pnsc.training.corpus.manifest import build_manifest, collect_speakers  # noqa: E402
from pnsc.training.corpus.splits import SplitError, check_splits, load_splits, make_splits, save_splits  # noqa: E402


@pytest.fixture(scope="module")
def libri(tmp_path_factory) -> Path:
    return make_librispeech(tmp_path_factory.mktemp("libri"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return make_generated(tmp_path_factory.mktemp("gen"))


def test_reader_finds_layout(libri):
    utts = scan_corpus(libri)
    assert len(utts) == 16
    groups = by_speaker(utts)
    assert sorted(groups) == ["101", "102", "103", "104", "105", "106", "201", "202"]
    assert {u.subset for u in groups["201"]} == {"test-other"}
    table = read_speakers_txt(libri / "SPEAKERS.TXT")
    assert table["102"].sex == "M" and table["201"].subset == "test-other"
    assert [u.speaker for u in scan_corpus(libri, ["test-other"])] == ["201"] * 2 + ["202"] * 2


def test_reader_errors(tmp_path, libri):
    with pytest.raises(CorpusError, match="not found"):
        scan_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no audio"):
        scan_corpus(tmp_path)
    with pytest.raises(CorpusError, match="dev-clean"):
        scan_corpus(libri, ["dev-clean"])
    bad = tmp_path / "SPEAKERS.TXT"
    bad.write_text("101 | F | train-clean-100 | lots | X\n")
    with pytest.raises(CorpusError, match="bad minutes"):
        read_speakers_txt(bad)
    with pytest.raises(CorpusError, match="not found"):
        read_speakers_txt(tmp_path / "missing.txt")


def _records(n_f: int, n_m: int, subset: str = "train-clean-100") -> list[dict]:
    out = [{"speaker": f"f{i}", "sex": "F", "subset": subset, "source": "librispeech", "real": True} for i in range(n_f)]
    out += [{"speaker": f"m{i}", "sex": "M", "subset": subset, "source": "librispeech", "real": True} for i in range(n_m)]
    return out


def test_paper_split_sizes_and_stratification():
    speakers = _records(125, 126) + [{"speaker": f"t{i}", "sex": "F", "subset": "dev-clean",
                                      "source": "librispeech", "real": True} for i in range(40)]
    s = make_splits(speakers, seed=0, n_val=20)
    assert (len(s["train"]), len(s["validation"]), len(s["test"])) == (231, 20, 40)
    assert sum(v.startswith("f") for v in s["validation"]) == 10
    assert set(s["test"]) == {f"t{i}" for i in range(40)}
    assert make_splits(speakers, seed=0) == s
    assert make_splits(speakers, seed=1)["validation"] != s["validation"]


def test_synthetic_and_studio_speakers_go_to_train(libri, generated):
    speakers = collect_speakers(generated, libri)
    s = make_splits(speakers, seed=0, n_val=2)
    check_splits(s)
    assert "ast_fr" in s["train"]
    synth = [x["speaker"] for x in speakers if x["source"] == "piper"]
    assert sum(x in s["validation"] for x in synth) == 1  # 5 pseudo-speakers: one to validation
    assert set(s["test"]) == {"201", "202"}
    assert len([v for v in s["validation"] if v.isdigit()]) == 2


def test_no_speaker_in_two_splits(tmp_path):
    with pytest.raises(SplitError, match="both"):
        check_splits({"train": ["1", "2"], "validation": ["2"], "test": []})
    with pytest.raises(SplitError, match="missing"):
        check_splits({"train": ["1"], "validation": []})
    path = tmp_path / "splits.json"
    with pytest.raises(SplitError):
        save_splits({"train": ["1"], "validation": ["1"], "test": []}, path)
    assert not path.exists()
    path.write_text('{"train": ["1"], "validation": ["1"], "test": []}')
    with pytest.raises(SplitError, match="both"):
        load_splits(path)
    path.write_text("{not json")
    with pytest.raises(SplitError, match="JSON"):
        load_splits(path)
    conflict = _records(2, 2) + [{"speaker": "f0", "sex": "F", "subset": "test-other", "source": "librispeech",
                                  "real": True}]
    with pytest.raises(SplitError, match="appears in subsets"):
        make_splits(conflict)


def test_manifest_and_saved_splits(tmp_path, libri, generated):
    man = build_manifest(generated, libri, seed=0, n_val=2, splits_path=tmp_path / "splits.json",
                         splits_copy=tmp_path / "copy.json")
    assert json.loads((tmp_path / "splits.json").read_text()) == json.loads((tmp_path / "copy.json").read_text())
    splits = load_splits(tmp_path / "splits.json")
    on_disk = json.loads((generated / "manifest.json").read_text())
    assert on_disk["totals"]["speakers"] == 8 + 1 + 5
    for s in on_disk["speakers"]:
        assert s["speaker"] in splits[s["split"]]
        assert s["minutes"] > 0 and s["sex"] in ("F", "M", "?")
    src = on_disk["sources"]
    assert src["librispeech"]["real"] and src["asterisk"]["real"] and not src["piper"]["real"]
    assert "ast_fr|F|studio-asterisk" in (generated / "SPEAKERS.TXT").read_text()
    assert man["totals"]["real_hours"] > 0


def test_asterisk_refuses_held_out_languages_and_decodes_g722():
    G722 = pytest.importorskip("G722")
    from pnsc.training.corpus.sources.asterisk import AsteriskError, decode_g722, package_name, trim_silence

    for lang in ("en", "es", "de"):
        with pytest.raises(AsteriskError):
            package_name(lang)
    assert package_name("it") == "asterisk-core-sounds-it-g722"
    x = voice(180, ((700, 90), (1200, 80), (2600, 150)), 0.5, 3)
    pcm = (x * 32767).astype(np.int16)
    coded = G722.G722(16000, 64000).encode(pcm)
    assert len(coded) == len(pcm) // 2  # 64 kb/s: 4 bits per sample
    y = decode_g722(bytes(coded))
    assert len(y) == len(x)
    lag = int(np.argmax(np.correlate(y[:4000], x[:2000], "valid")))
    assert np.corrcoef(y[lag:lag + 6000], x[:6000])[0, 1] > 0.9
    with pytest.raises(AsteriskError, match="empty"):
        decode_g722(b"")
    padded = np.concatenate([np.zeros(16000, np.float32), x, np.zeros(16000, np.float32)])
    assert len(x) <= len(trim_silence(padded)) < len(x) + 2 * 1600 + 640


def test_distinctness_drops_duplicates():
    from pnsc.training.corpus.distinct import embedding, select_separable

    def utts(f0, formants, seeds):
        return np.stack([embedding(voice(f0, formants, 0.8, seed)) for seed in seeds])

    a = ((800, 90), (1300, 80), (2900, 150))
    b = ((500, 90), (1000, 80), (2300, 150))
    c = ((650, 90), (1800, 80), (2600, 150))
    # "a" and "a_copy" draw their utterances from one voice (interleaved seeds)
    embs = {"a": utts(210, a, range(0, 12, 2)), "a_copy": utts(210, a, range(1, 12, 2)),
            "b": utts(100, b, range(20, 26)), "c": utts(150, c, range(30, 36))}
    kept, report = select_separable(embs, min_accuracy=0.8)
    assert {"b", "c"} <= set(kept)
    assert ("a" in kept) != ("a_copy" in kept)  # two copies of one voice are not two speakers
    assert report["b"]["kept"] and report["c"]["kept"]


def test_textgen_is_deterministic_and_varied():
    from pnsc.training.corpus.textgen import sentence, utterance_text

    assert utterance_text("spk", 3) == utterance_text("spk", 3)
    assert len({sentence(0, i) for i in range(500)}) > 450
    assert utterance_text("a", 0) != utterance_text("b", 0)


def test_warp_changes_length_and_pitch():
    from pnsc.training.corpus.sources.common import warp_to_16k

    x = np.sin(2 * np.pi * 200 * np.arange(24000) / 24000).astype(np.float32)
    y = warp_to_16k(x, 24000, 1.1)
    assert abs(len(y) - 16000 / 1.1) < 20
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spec) * 16000 / len(y)
    assert abs(peak_hz - 220) < 3
