"""Packing training runs to bring them back from a GPU lease: size caps, what is left out first, only the
runs a call changed, and unpacking that stays inside its folder."""
from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from pnsc.training.lpcnet.pack import follow_log, join_logs, main, pack, unpack


def _run(root: Path, name: str, weights_mib: float, optim_mib: float, mtime: float | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "last.pt").write_bytes(os.urandom(int(weights_mib * 2**20)))
    (d / "last-optim.pt").write_bytes(os.urandom(int(optim_mib * 2**20)))
    (d / "status.json").write_text('{"step": 1}')
    (d / "history.json").write_text("[]")
    if mtime is not None:
        for p in d.iterdir():
            os.utime(p, (mtime, mtime))
    return d


def _members(paths):
    out = set()
    for p in paths:
        with tarfile.open(p) as tf:
            out |= {m.name for m in tf.getmembers()}
    return out


def test_round_trip_and_caps(tmp_path):
    root = tmp_path / "runs"
    _run(root, "a", 3.0, 1.0)
    _run(root, "b", 3.0, 1.0)
    paths = pack(root, tmp_path / "out", max_mib=5.0, optim=True)
    assert all(p.stat().st_size <= 5 * 2**20 for p in paths)
    assert _members(paths) == {f"{r}/{f}" for r in "ab" for f in ("last.pt", "last-optim.pt", "status.json",
                                                                   "history.json")}
    back = tmp_path / "back"
    assert unpack(paths, back) == 8
    assert (back / "a" / "last.pt").read_bytes() == (root / "a" / "last.pt").read_bytes()


def test_optimizer_moments_go_first_when_over_the_total(tmp_path, capsys):
    root = tmp_path / "runs"
    _run(root, "a", 3.0, 2.0)
    paths = pack(root, tmp_path / "out", max_mib=5.0, optim=True, max_total_mib=4.0)
    assert "a/last-optim.pt" not in _members(paths) and "a/last.pt" in _members(paths)
    assert "left out a/last-optim.pt" in capsys.readouterr().err


def _checkpoint(path: Path, n: int, ema: bool = True, mtime: float | None = None) -> dict:
    """A train.py-like last.pt of ``n`` float32 weights (with their average when ``ema``)."""
    import torch
    ck = {"model": {"w": torch.randn(n), "steps": torch.tensor(7)}, "step": 1234, "epoch": 5}
    if ema:
        ck["ema"] = {"w": torch.randn(n)}
    torch.save(ck, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return ck


def test_weights_over_the_total_travel_as_float16_averages_and_come_back_float32(tmp_path, capsys):
    import torch
    root = tmp_path / "runs"
    t = time.time() - 3600
    a, b = _run(root, "a", 0.0, 0.0), _run(root, "b", 0.0, 0.0)
    ck_a = _checkpoint(a / "last.pt", 600_000, ema=True, mtime=t)  # 2.3 MiB each as float32
    ck_b = _checkpoint(b / "last.pt", 600_000, ema=False, mtime=t)
    # 4.6 MiB of float32 weights, over 4 MiB: both travel as float16 (a: its average alone), 2.3 MiB together
    paths = pack(root, tmp_path / "out", max_mib=5.0, max_total_mib=4.0)
    assert {"a/last.fp16.pt", "b/last.fp16.pt"} <= _members(paths) and "a/last.pt" not in _members(paths)
    assert "each last.pt travels as float16" in capsys.readouterr().err
    back = tmp_path / "back"
    unpack(paths, back)
    assert sorted(p.name for p in (back / "a").iterdir()) == ["history.json", "last.pt", "status.json"]
    ra = torch.load(back / "a" / "last.pt", weights_only=False)
    rb = torch.load(back / "b" / "last.pt", weights_only=False)
    # a resumes from its average (what ships and what the committed state keeps); b from its weights
    assert ra["averaged_only"] and "ema" not in ra and ra["step"] == 1234 and "state_format" not in ra
    assert ra["model"]["w"].dtype == torch.float32 and ra["model"]["steps"].item() == 7
    assert torch.allclose(ra["model"]["w"], ck_a["ema"]["w"], rtol=1e-3, atol=1e-4)
    assert not torch.equal(ra["model"]["w"], ck_a["ema"]["w"])  # it did travel as float16
    assert torch.allclose(rb["model"]["w"], ck_b["model"]["w"], rtol=1e-3, atol=1e-4) and "averaged_only" not in rb
    assert abs((back / "a" / "last.pt").stat().st_mtime - t) < 1  # the checkpoint's time, as the state keeps it


def test_weights_over_the_total_even_as_float16_are_refused(tmp_path):
    root = tmp_path / "runs"
    _checkpoint(_run(root, "a", 0.0, 0.0) / "last.pt", 600_000, ema=False)  # 1.1 MiB as float16
    with pytest.raises(ValueError, match="weights and logs alone"):
        pack(root, tmp_path / "out", max_mib=5.0, max_total_mib=1.0)


def test_changed_since_packs_only_what_the_call_trained(tmp_path):
    root = tmp_path / "runs"
    call_start = time.time() - 10
    _run(root, "carried", 3.0, 2.0, mtime=call_start - 3600)  # came with the call's state
    _run(root, "trained", 3.0, 2.0)
    paths = pack(root, tmp_path / "out", max_mib=5.0, optim=True, max_total_mib=7.0, since=call_start)
    assert _members(paths) == {f"trained/{f}" for f in ("last.pt", "last-optim.pt", "status.json", "history.json")}
    # without it the carried run's weights crowd out the trained run's moments
    paths = pack(root, tmp_path / "out2", max_mib=5.0, optim=True, max_total_mib=7.0)
    assert "trained/last-optim.pt" not in _members(paths)
    assert main([str(root), str(tmp_path / "out3"), "--optim", "--changed-since", str(call_start)]) == 0
    assert {m.split("/")[0] for m in _members((tmp_path / "out3").glob("*.tar"))} == {"trained"}


def test_unpack_skips_members_that_escape(tmp_path):
    evil = tmp_path / "evil.tar"
    src = tmp_path / "x.txt"
    src.write_text("x")
    with tarfile.open(evil, "w") as tf:
        tf.add(src, arcname="../outside.txt")
        tf.add(src, arcname="run/ok.txt")
    assert unpack([evil], tmp_path / "root") == 1
    assert (tmp_path / "root" / "run" / "ok.txt").is_file() and not (tmp_path / "outside.txt").exists()


def test_unpack_keeps_a_run_that_is_further_on_than_the_tars(tmp_path, capsys):
    # round 13: a call's tars unpacked after a later call's rolled five runs back by up to 1,000 steps
    early, late = tmp_path / "early", tmp_path / "late"
    for d, step in ((early, 10), (late, 20)):
        r = _run(d, "a", 0.1, 0.1)
        (r / "status.json").write_text(f'{{"step": {step}}}')
        _run(d, "b", 0.1, 0.1)  # same step in both: the later tars' files win
    late_tars = pack(late, tmp_path / "out-late", max_mib=5.0, optim=True)
    early_tars = pack(early, tmp_path / "out-early", max_mib=5.0, optim=True)
    back = tmp_path / "back"
    assert unpack(late_tars, back) == 8
    assert unpack(early_tars, back) == 4  # only b's files
    assert (back / "a" / "last.pt").read_bytes() == (late / "a" / "last.pt").read_bytes()
    assert (back / "b" / "last.pt").read_bytes() == (early / "b" / "last.pt").read_bytes()
    assert '"step": 20' in (back / "a" / "status.json").read_text()
    assert "kept" in capsys.readouterr().err
    assert unpack(early_tars, tmp_path / "fresh") == 8  # nothing there yet: everything


def _adam_moments(path: Path, n: int) -> None:
    import torch
    w = torch.nn.Parameter(torch.randn(n))
    opt = torch.optim.Adam([w])
    w.grad = torch.randn(n)
    opt.step()
    torch.save({"optimizer": opt.state_dict(), "step": 1}, path)


def test_baselines_moments_go_first_as_bfloat16_and_come_back_float32(tmp_path, capsys):
    import torch
    root = tmp_path / "runs"
    base = _run(root, "lpcnet-bl-s", 1.0, 0.0)
    _adam_moments(base / "last-optim.pt", 500_000)  # 2 x 2 MB of float32 moments
    _run(root, "plpcnet-s-g0-ft", 1.0, 2.5)  # a fine-tune's moments: no later call reads them
    # 2.6 MiB left after weights and logs: the baseline's moments (3.8 MiB as float32) fit only as bfloat16, and
    # go before the fine-tune's (which took the room in round 12)
    paths = pack(root, tmp_path / "out", max_mib=5.0, optim=True, max_total_mib=4.6)
    got = _members(paths)
    assert "lpcnet-bl-s/last-optim.bf16.pt" in got and "plpcnet-s-g0-ft/last-optim.pt" not in got
    assert "left out plpcnet-s-g0-ft/last-optim.pt" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob(".*")) and sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        [p.name for p in paths]
    back = tmp_path / "back"
    unpack(paths, back)
    assert not (back / "lpcnet-bl-s" / "last-optim.bf16.pt").exists()
    orig = torch.load(base / "last-optim.pt", weights_only=False)["optimizer"]["state"][0]
    restored = torch.load(back / "lpcnet-bl-s" / "last-optim.pt", weights_only=False)["optimizer"]["state"][0]
    for k in ("exp_avg", "exp_avg_sq"):
        assert restored[k].dtype == torch.float32
        assert torch.allclose(restored[k], orig[k], rtol=1e-2, atol=0)
        assert not torch.equal(restored[k], orig[k])  # it did travel as bfloat16


_lines = st.lists(st.integers(0, 10**6), unique=True, max_size=12).map(
    lambda xs: [f'{{"step": {x}}}\n'.encode() for x in xs])


@given(_lines, _lines, _lines)
def test_join_logs_keeps_each_line_once_however_the_device_copy_began(old, call1, call2):
    # unique lines, as log.jsonl's are (each carries its step and losses)
    seen = set(old)
    call1 = [x for x in call1 if x not in seen]
    seen |= set(call1)
    call2 = [x for x in call2 if x not in seen]
    j = lambda a, b: join_logs(b"".join(a), b"".join(b))  # noqa: E731
    assert j(old, call1) == b"".join(old + call1)  # carried without logs: the call's lines appended
    assert j(old + call1, call1 + call2) == b"".join(old + call1 + call2)  # a warm machine's second call
    assert j(old, old + call1) == b"".join(old + call1)  # carried with its log: the longer one
    assert j(old + call1, old) == b"".join(old + call1)  # an older copy adds nothing
    assert j(old, old) == b"".join(old)


def test_join_logs_ends_an_unterminated_last_line_before_appending():
    assert join_logs(b"a\nb", b"c\n") == b"a\nb\nc\n"


def test_unpack_joins_the_logs_a_call_began_from_nothing_to_the_ones_here(tmp_path):
    here = _run(tmp_path / "runs", "a", 0.1, 0.0)
    (here / "log.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (here / "stdout.log").write_text("call 1\n")
    device = _run(tmp_path / "device", "a", 0.1, 0.0)
    (device / "status.json").write_text('{"step": 3}')
    (device / "log.jsonl").write_text('{"step": 3}\n')  # the call's state went without logs
    (device / "stdout.log").write_text("call 2\n")
    tars = pack(tmp_path / "device", tmp_path / "out", max_mib=5.0)
    unpack(tars, tmp_path / "runs")
    assert (here / "log.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    assert (here / "stdout.log").read_text() == "call 1\ncall 2\n"
    unpack(tars, tmp_path / "runs")  # the same tars twice: nothing doubled
    assert (here / "log.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    assert '"step": 3' in (here / "status.json").read_text()


def test_a_log_that_left_without_its_lines_follows_exactly_where_it_left(tmp_path):
    # the seam join_logs cannot tell: the call's first lines equal the last ones here (a repeated stdout line)
    assert join_logs(b"load\nready\n", b"ready\ntrained\n") == b"load\nready\ntrained\n"
    assert follow_log(b"load\nready\n", b"ready\ntrained\n", 11) == b"load\nready\nready\ntrained\n"
    # a warm machine's second call: its log holds both calls' lines, after the same point here
    assert follow_log(b"load\nready\nready\n", b"ready\ntrained\n", 11) == b"load\nready\nready\ntrained\n"
    assert follow_log(b"a", b"b\n", 1) == b"a\nb\n"
    assert follow_log(b"a\n", b"a\nb\n", None) == b"a\nb\n"  # no note: the lines they share, once
    assert follow_log(b"a\n", b"b\n", 9) == b"a\nb\n"  # a note past the end here: the same


def test_unpack_follows_a_call_s_note_of_where_its_logs_began_and_keeps_no_note(tmp_path):
    from pnsc.training.lpcnet.state import load_state, save_state
    from tests.conftest import fake_training_run
    fake_training_run(tmp_path / "runs", "a", False)
    here = tmp_path / "runs" / "a"
    (here / "stdout.log").write_text("examples ready\n")
    (here / "log.jsonl").write_text('{"step": 1}\n')
    save_state(tmp_path / "runs", tmp_path / "call.tar", without_logs=True)
    names = load_state(tmp_path / "call.tar", tmp_path / "device")
    assert "a/logs-from.json" in names and "a/stdout.log" not in names
    device = tmp_path / "device" / "a"
    assert json.loads((device / "logs-from.json").read_text()) == {"log.jsonl": 12, "stdout.log": 15}
    (device / "stdout.log").write_text("examples ready\ntrained\n")  # the same first line, written there
    (device / "log.jsonl").write_text('{"step": 2}\n')
    (device / "status.json").write_text('{"step": 8}')
    tars = pack(tmp_path / "device", tmp_path / "out", max_mib=5.0)
    for _ in range(2):  # the same tars twice: nothing doubled
        unpack(tars, tmp_path / "runs")
        assert (here / "stdout.log").read_text() == "examples ready\nexamples ready\ntrained\n"
        assert (here / "log.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
        assert not (here / "logs-from.json").exists()
    save_state(tmp_path / "runs", tmp_path / "committed")  # and the committed state never holds the note
    with tarfile.open(tmp_path / "committed" / "a.tar") as tf:
        assert "a/logs-from.json" not in tf.getnames() and "a/stdout.log" in tf.getnames()
