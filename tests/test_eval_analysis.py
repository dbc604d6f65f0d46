"""pnsc.evaluation pieces around the scores: decoder backends, wrong-group analysis, parallel scoring,
reference discovery."""
from __future__ import annotations

import numpy as np
import pytest

from pnsc.evaluation.errors import EvalError
from pnsc.evaluation.refs import Utterance, load_folder, speaker_of
from pnsc.evaluation.runner import _run_scoring, wrong_group_analysis
from pnsc.evaluation.systems import PnscSystem, ReferenceBackend, encode, make_backend, runtime_available


def test_backends_decode_the_same_length(speech_clip):
    _, feats = encode(speech_clip[:8000])
    assert feats.shape == (52, 20)  # ceil(8000 / 640) packets x 4 frames
    ref = ReferenceBackend().decode("lpcnet-bl-s", None, feats[:8])
    assert ref.dtype == np.int16 and len(ref) == 8 * 160
    ok, why = runtime_available()
    if not ok:
        pytest.skip(f"runtime not built: {why}")
    rt = make_backend("runtime")
    a = rt.decode("lpcnet-bl-s", None, feats[:8], seed=3)
    b = rt.decode("lpcnet-bl-s", None, feats[:8], seed=3)  # reset between utterances: same seed, same audio
    assert len(a) == 8 * 160 and np.array_equal(a, b)
    with pytest.raises(EvalError, match="plpcnet-s/9"):
        rt.decode("plpcnet-s", 9, feats[:8])


def test_unknown_backend_and_personalized_fallback():
    with pytest.raises(EvalError, match="unknown decoder backend"):
        make_backend("gpu")
    assert PnscSystem("plpcnet-l").decoder_for(None) == ("lpcnet-bl-l", None)
    assert PnscSystem("plpcnet-l").decoder_for(3) == ("plpcnet-l", 3)
    assert PnscSystem("lpcnet-bl-s").decoder_for(2) == ("lpcnet-bl-s", None)


def test_wrong_group_analysis_counts_ranks():
    utts = [Utterance(f"u{i}", "a" if i < 2 else "b", "t", np.zeros(1)) for i in range(3)]
    cls = {"num_groups": 3, "utterance_group": {"u0": 0, "u1": 0, "u2": 2}}
    vals = {"u0": [2.0, 1.0, 1.5], "u1": [1.0, 3.0, 2.0], "u2": [1.0, 1.2, 1.4]}  # ranks 1, 3, 1
    per = {f"plpcnet-s@g{g}": {u: {"pesq_wb": v[g]} for u, v in vals.items()} for g in range(3)}
    w = wrong_group_analysis(utts, per, cls, [PnscSystem("plpcnet-s"), PnscSystem("lpcnet-bl-s")])
    assert set(w) == {"plpcnet-s"}
    r = w["plpcnet-s"]["pesq_wb"]
    assert r["classified_best"] == 2 and r["n"] == 3 and r["mean_rank"] == pytest.approx(5 / 3)
    assert r["classified_minus_others"]["mean"] == pytest.approx(np.mean([0.75, -1.5, 0.3]))
    assert r["speaker_by_group"]["a"] == pytest.approx([1.5, 2.0, 1.75])


def test_parallel_scoring_matches_serial(speech_clip):
    pytest.importorskip("pystoi")
    from pnsc.evaluation.metrics import Scorer

    rng = np.random.default_rng(0)
    todo = [("x", f"u{i}", speech_clip, speech_clip + 0.01 * i * rng.standard_normal(len(speech_clip)), None,
             ("stoi",)) for i in range(3)]
    todo.append(("x", "bad", speech_clip, np.zeros_like(speech_clip), None, ("stoi",)))
    serial = {(s, u): r for s, u, r in _run_scoring(todo, 1, {("stoi",): Scorer(("stoi",))})}
    parallel = {(s, u): r for s, u, r in _run_scoring(todo, 2, {})}
    assert serial == parallel
    assert "silent" in serial[("x", "bad")] and serial[("x", "u0")]["stoi"] == pytest.approx(1.0)


def test_reference_folder_and_speaker_names(tmp_path, speech_clip):
    import soundfile as sf

    (tmp_path / "spk7").mkdir()
    sf.write(tmp_path / "spk7" / "hello.flac", speech_clip, 16000)
    sf.write(tmp_path / "1688-142285-0003.wav", speech_clip[:16000], 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    u = load_folder(tmp_path, max_seconds=2.0)
    assert [x.id for x in u] == ["1688-142285-0003", "hello"]
    assert [x.speaker for x in u] == ["1688", "spk7"]
    assert u[1].seconds == pytest.approx(2.0)
    assert speaker_of(tmp_path / "a" / "b.wav") == "a"


def _res(plp: float, bl: float) -> dict:
    st = lambda m: {"mean": m, "ci95": 0.01, "n": 10}  # noqa: E731
    return {"metrics": ["pesq_wb"], "utterances": [{"id": str(i)} for i in range(10)],
            "systems": {"plpcnet-s": {"kind": "pnsc", "bitrate": 1600.0},
                        "lpcnet-bl-s": {"kind": "pnsc", "bitrate": 1600.0},
                        "opus-9k": {"kind": "opus", "bitrate": 8500.0}},
            "summary": {"plpcnet-s": {"pesq_wb": st(plp)}, "lpcnet-bl-s": {"pesq_wb": st(bl)},
                        "opus-9k": {"pesq_wb": st(2.9)}},
            "paired": {"plpcnet-s - lpcnet-bl-s": {"pesq_wb": {"mean": plp - bl, "ci95": 0.01, "n": 10,
                                                               "wins": 9 if plp > bl else 1,
                                                               "significant": abs(plp - bl) > 0.01}}},
            "loss": {"metrics": ["estoi"], "curves": {
                "PLPCNet-S receiver, no redundancy, random": {"rates": [0, 0.3], "stats": [
                    {"estoi": st(0.6)}, {"estoi": st(0.4)}]},
                "PLPCNet-S receiver, redundancy 2, random": {"rates": [0, 0.3], "stats": [
                    {"estoi": st(0.6)}, {"estoi": st(0.55)}]}}}}


def test_reading_follows_the_numbers():
    from pnsc.evaluation.reading import reading

    a = " ".join(reading(_res(1.3, 1.1)))
    b = " ".join(reading(_res(1.1, 1.3)))
    assert "ranks the systems: Opus 9 kb/s 2.90, PLPCNet-S 1.30, LPCNet-BL-S 1.10" in a
    assert "ranks the systems: Opus 9 kb/s 2.90, LPCNet-BL-S 1.30, PLPCNet-S 1.10" in b
    assert "PESQ-WB +0.200" in a and "higher on 9 of 10 (the 95% interval excludes zero)" in a
    assert "PESQ-WB -0.200" in b and "higher on 1 of 10" in b
    assert "5.3 times the bitrate" in a
    assert "keeps ESTOI at 0.55 at 30% random loss, against 0.40 without redundancy" in a


def test_runtime_backend_postfilter_changes_the_output_and_reference_refuses_it(speech_clip):
    ok, why = runtime_available()
    if not ok:
        pytest.skip(f"runtime not built: {why}")
    _, feats = encode(speech_clip[:8000])
    plain = make_backend("runtime").decode("lpcnet-bl-s", None, feats[:12], seed=1)
    pf = make_backend("runtime", postfilter=(0.7, 0.85, 0.0))
    a = pf.decode("lpcnet-bl-s", None, feats[:12], seed=1)
    b = pf.decode("lpcnet-bl-s", None, feats[:12], seed=1)  # its state is reset with the decoder's
    assert len(a) == len(plain) and np.array_equal(a, b) and not np.array_equal(a, plain)
    with pytest.raises(EvalError, match="needs the C runtime"):
        make_backend("reference", postfilter=(0.7, 0.85, 0.0))


def test_runtime_backend_quiet_floor_changes_only_quiet_frames_and_reference_refuses_it(speech_clip):
    ok, why = runtime_available()
    if not ok:
        pytest.skip(f"runtime not built: {why}")
    # 0.3 s of near-silence (faint noise) first: from digital zeros a decoder may sample exact zeros whatever the
    # floor (round 19's BL-S does), and there would be nothing for the quiet floor to change
    faint = (1e-4 * np.random.default_rng(3).standard_normal(4800)).astype(speech_clip.dtype)
    clip = np.concatenate([faint, speech_clip[:8000]])
    _, feats = encode(clip)
    plain = make_backend("runtime").decode("lpcnet-bl-s", None, feats[:30], seed=2)
    same = make_backend("runtime", quiet_floor=(0.0005, -2.0, 1.5)).decode("lpcnet-bl-s", None, feats[:30], seed=2)
    assert np.array_equal(plain, same)  # quiet floor == the default floor: nothing changes
    qf = make_backend("runtime", quiet_floor=(0.003, -2.0, 1.5)).decode("lpcnet-bl-s", None, feats[:30], seed=2)
    assert len(qf) == len(plain) and not np.array_equal(qf, plain)
    with pytest.raises(EvalError, match="needs the C runtime"):
        make_backend("reference", quiet_floor=(0.002, -2.0, 1.5))
