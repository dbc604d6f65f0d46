"""ONNX export of LPCNet decoders vs the torch model; reference decoder; manifest; ``pnsc decode``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
torch.set_num_threads(1)

from pnsc.training.lpcnet.export import build_frame_graph, build_step_graph, export_model  # noqa: E402
from pnsc.training.lpcnet.model import LPCNet, config_for, synthesize  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _sess(model_proto):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _features(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(T, 20, generator=g)
    f[:, 18] = torch.rand(T, generator=g) * 224 + 32
    f[:, 19] = torch.rand(T, generator=g)
    return f


@pytest.fixture(scope="module")
def model_s():
    torch.manual_seed(0)
    m = LPCNet(config_for("S")).eval()
    with torch.no_grad():  # larger than init weights, so that errors would show
        m.dual_fc.factor.mul_(3.0)
    return m


def test_frame_rate_graph_matches_torch(model_s):
    f = torch.stack([_features(11, 1), _features(11, 2)])
    got = _sess(build_frame_graph(model_s)).run(["cond"], {"features": f.numpy()})[0]
    ref = model_s.frame_rate(f).detach().numpy()
    assert got.shape == (2, 7, 128)
    assert np.max(np.abs(got - ref)) < 1e-4


def test_single_step_probabilities_match_torch(model_s):
    sess = _sess(build_step_graph(model_s))
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        cond = torch.rand(1, 128, generator=g) * 2 - 1
        ha, hb = torch.randn(1, 256, generator=g) * 0.5, torch.randn(1, 16, generator=g) * 0.5
        ids = torch.randint(0, 256, (3,), generator=g)
        probs, ha2, hb2 = sess.run(None, {"cond": cond.numpy(), "ids": ids.numpy(), "ha": ha.numpy(),
                                          "hb": hb.numpy()})
        logits, ta, tb = model_s.step(cond, ids[0:1], ids[1:2], ids[2:3], ha, hb)
        ref = torch.softmax(logits[0], -1).detach().numpy()
        assert np.max(np.abs(probs - ref)) < 1e-4 and np.max(ref) > 0.01
        assert np.max(np.abs(ha2 - ta.detach().numpy())) < 1e-4
        assert np.max(np.abs(hb2 - tb.detach().numpy())) < 1e-4


def test_frame_loop_graph_matches_torch_synthesis(model_s, tmp_path):
    from pnsc.receiver.reference_decoder import ReferenceDecoder

    files = export_model(model_s, tmp_path, "t")
    dec = ReferenceDecoder(files["frame"], files["sample"], seed=7)
    T = 3
    f = _features(T, 4)
    lpc = np.zeros((T, 16), np.float32)
    lpc[:, 0], lpc[:, 1] = 1.1, -0.4
    y = dec.synthesize(f.numpy(), lpc)
    rng = np.random.default_rng(7)
    u = np.concatenate([rng.random(160, dtype=np.float32) for _ in range(T)])
    padded = torch.cat([f[:1], f[:1], f, f[-1:], f[-1:]])
    ref = synthesize(model_s, padded, torch.from_numpy(lpc), torch.from_numpy(u)).numpy()
    assert y.shape == (T * 160,) and np.all(np.isfinite(y))
    assert np.std(ref) > 10  # a non-trivial signal
    assert np.max(np.abs(y - ref)) <= 1e-3 * max(1.0, np.max(np.abs(ref)))
    # seeded: same seed same audio, other seed other audio
    assert np.array_equal(dec.synthesize(f.numpy(), lpc), y)
    assert not np.array_equal(dec.synthesize(f.numpy(), lpc, seed=8), y)


def _fake_run(root: Path, name: str, size: str, val: float, init=None, taps: int = 0, gate: float = 0.0):
    torch.manual_seed(len(name))
    m = LPCNet(config_for(size, taps, gate))
    d = root / name
    d.mkdir(parents=True)
    torch.save({"model": m.state_dict(), "config": m.cfg.to_dict(), "name": name, "step": 5, "epoch": 1,
                "val_loss": val, "args": {"init_from": init, "val_features": "qfeatures"},
                "data_summary": {"train": {"sequences": 10}}}, d / "best.pt")
    (d / "history.json").write_text(json.dumps([{"epoch": 0, "val_loss": val + 0.1, "val_speakers": 2},
                                                {"epoch": 1, "val_loss": val, "val_speakers": 2}]))


def test_export_script_manifest_reference_decode_and_cli(tmp_path):
    pytest.importorskip("pnsc.shared.lpc")
    from pnsc.receiver.reference_decoder import ReferenceDecoder

    runs, models = tmp_path / "runs", tmp_path / "models"
    models.mkdir()
    (models / "manifest.json").write_text(json.dumps({"models": [{"name": "speaker-encoder", "kind": "encoder"}]}))
    _fake_run(runs, "lpcnet-bl-s", "tiny", 5.0)
    _fake_run(runs, "plpcnet-s-g1-scratch", "tiny", 4.95)
    _fake_run(runs, "plpcnet-s-g1-ft", "tiny", 4.90, init="x/best.pt", taps=3, gate=0.4)  # gated LTP
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "export_decoders.py"), str(runs),
                        "--models-dir", str(models), "--fig5", str(tmp_path / "fig5.png")],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    man = json.loads((models / "manifest.json").read_text())["models"]
    names = {m["name"]: m for m in man}
    assert set(names) == {"speaker-encoder", "lpcnet-bl-s", "plpcnet-s-g1"}
    p = names["plpcnet-s-g1"]
    assert p["variant"] == "ft" and p["val_loss"] == 4.90 and p["alternatives"] == {"scratch": 4.95, "ft": 4.90}
    assert p["group"] == 1 and names["lpcnet-bl-s"]["group"] == "generic"
    assert p["params"] == sum(t.numel() for t in LPCNet(config_for("tiny", 3)).parameters())
    assert p["ltp_taps"] == 3 and names["lpcnet-bl-s"]["ltp_taps"] == 0
    assert p["ltp_gate"] == 0.4 and names["lpcnet-bl-s"]["ltp_gate"] == 0.0 and p["config"]["ltp_gate"] == 0.4
    from pnsc.receiver.runtime.model import LoadedModel, locate

    loaded = LoadedModel(locate("plpcnet-s", 1, models))
    assert loaded.ltp_taps == 3 and loaded.ltp_gate == 0.4
    assert LoadedModel(locate("lpcnet-bl-s", None, models)).ltp_gate == 0.0
    assert (tmp_path / "fig5.png").stat().st_size > 1000

    dec = ReferenceDecoder.from_manifest("plpcnet-s", 1, models)
    feats = _features(8, 5).numpy()
    feats[:, :18] *= 0.3
    pcm = dec.decode(feats)
    assert pcm.dtype == np.int16 and pcm.shape == (8 * 160,) and np.any(pcm != 0)

    # pnsc decode end to end: real packets from the codec
    from pnsc.cli import main as pnsc_main
    from pnsc.shared.pnscfile import write_pnsc
    from pnsc.shared.quantizer import quantize_features
    from pnsc.shared.features import extract_features
    import soundfile as sf

    t = np.arange(3200) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    packets, _ = quantize_features(extract_features(audio))
    src = tmp_path / "in.pnsc"
    write_pnsc(src, packets, group=1)
    wav = tmp_path / "out.wav"
    assert pnsc_main(["decode", str(src), str(wav), "--models-dir", str(models)]) == 0
    x, sr = sf.read(wav, dtype="int16")
    assert sr == 16000 and len(x) == len(packets) * 640 and np.all(np.isfinite(x))
    # no group in the header -> generic decoder; bad group -> user error; missing decoder -> user error
    write_pnsc(src, packets)
    assert pnsc_main(["decode", str(src), str(wav), "--models-dir", str(models)]) == 0
    assert pnsc_main(["decode", str(src), str(wav), "--models-dir", str(models), "--group", "9"]) == 2
    assert pnsc_main(["decode", str(src), str(wav), "--models-dir", str(models), "--decoder", "lpcnet-bl-l"]) == 2


def test_export_keep_others_replaces_only_the_exported_decoders(tmp_path):
    # round 7 ships PLPCNet-S alone: the other families' entries (and files) must stay as they were
    runs, models = tmp_path / "runs", tmp_path / "models"
    models.mkdir()
    old = [{"name": "speaker-encoder", "kind": "encoder"},
           {"name": "lpcnet-bl-s", "kind": "decoder", "val_loss": 9.0},
           {"name": "plpcnet-s-g1", "kind": "decoder", "val_loss": 9.0}]
    (models / "manifest.json").write_text(json.dumps({"models": old}))
    _fake_run(runs, "plpcnet-s-g1-ft", "tiny", 4.90, init="x/best.pt")
    cmd = [sys.executable, str(REPO / "scripts" / "export_decoders.py"), str(runs), "--models-dir", str(models)]
    r = subprocess.run(cmd + ["--keep-others"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    names = {m["name"]: m for m in json.loads((models / "manifest.json").read_text())["models"]}
    assert set(names) == {"speaker-encoder", "lpcnet-bl-s", "plpcnet-s-g1"}
    assert names["lpcnet-bl-s"]["val_loss"] == 9.0 and names["plpcnet-s-g1"]["val_loss"] == 4.90
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)  # default: all replaced
    assert r.returncode == 0, r.stderr[-2000:]
    assert {m["name"] for m in json.loads((models / "manifest.json").read_text())["models"]} == \
        {"speaker-encoder", "plpcnet-s-g1"}


def test_run_info_of_a_run_that_ended_on_its_best_weights_describes_those_weights(tmp_path):
    # train.py --patience: last.pt holds the best validation's weights, its meta the run's final step and
    # hours; the manifest must say where the weights are from (round 11 shipped such a run)
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_decoders", REPO / "scripts" / "export_decoders.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    d = tmp_path / "plpcnet-l-g0-ft"
    d.mkdir()
    hist = [{"kind": "epoch", "epoch": e, "step": 30 * (e + 1), "val_loss": v, "audio_hours_total": 400.0 + e}
            for e, v in enumerate([2.43, 2.42, 2.44])]
    meta = {"model": {}, "step": 90, "epoch": 3, "val_loss": 2.42, "audio_seconds": 3.0 * 3600,
            "init_audio_seconds": 400.0 * 3600, "history": hist, "args": {}}
    torch.save(meta, d / "last.pt")
    info = ex.run_info(d)
    assert (info["step"], info["epoch"], info["audio_hours"]) == (90, 3, 403.0)  # no weights_epoch: the end
    torch.save({**meta, "weights_epoch": 1}, d / "last.pt")
    info = ex.run_info(d)
    assert (info["step"], info["epoch"], info["audio_hours"], info["val_loss"]) == (60, 1, 401.0, 2.42)


def test_export_of_a_baseline_moves_the_slots_it_serves_to_its_new_files(tmp_path):
    # round 12 re-exported LPCNet-BL-L while it served PLPCNet-L group 3: the slot's sha256 must follow
    from pnsc.shared.checksum import sha256_file

    runs, models = tmp_path / "runs", tmp_path / "models"
    models.mkdir()
    files = {"frame": "decoders/lpcnet-bl-s.frame.onnx", "sample": "decoders/lpcnet-bl-s.onnx"}
    old_base = {"name": "lpcnet-bl-s", "kind": "decoder", "size": "S", "files": files,
                "sha256": {"frame": "0" * 64, "sample": "1" * 64}}
    slot = {"name": "plpcnet-s-g3", "kind": "decoder", "family": "plpcnet-s", "group": 3,
            "variant": "baseline-fallback", "serves_as": "lpcnet-bl-s", "training_note": "its fine-tunes decoded worse",
            "files": dict(files), "sha256": dict(old_base["sha256"])}
    other = {"name": "plpcnet-l-g3", "kind": "decoder", "family": "plpcnet-l", "group": 3,
             "variant": "baseline-fallback", "serves_as": "lpcnet-bl-l", "sha256": {"frame": "2" * 64}}
    (models / "manifest.json").write_text(json.dumps({"models": [old_base, slot, other]}))
    _fake_run(runs, "lpcnet-bl-s", "tiny", 4.9)
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "export_decoders.py"), str(runs), "--models-dir",
                        str(models), "--keep-others"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "plpcnet-s-g3: served by the new lpcnet-bl-s" in r.stdout
    names = {m["name"]: m for m in json.loads((models / "manifest.json").read_text())["models"]}
    new = names["plpcnet-s-g3"]
    assert new["sha256"] == names["lpcnet-bl-s"]["sha256"] != old_base["sha256"]
    assert new["sha256"]["sample"] == sha256_file(models / "decoders" / "lpcnet-bl-s.onnx")
    assert new["variant"] == "baseline-fallback" and new["training_note"] == "its fine-tunes decoded worse"
    assert names["plpcnet-l-g3"] == other  # served by a baseline that was not exported: untouched
