"""ONNX export of the speaker encoder agrees with torch; the shipped model is runnable by onnxruntime."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pnsc.sender.speaker_classifier import SpeakerEncoderRuntime  # noqa: E402
from pnsc.shared.paths import models_dir  # noqa: E402
from pnsc.training.speaker.export import export_onnx  # noqa: E402
from pnsc.training.speaker.model import SpeakerEncoder, pair_logits, siamese_bce  # noqa: E402


def test_onnx_matches_torch_random_model(tmp_path):
    torch.manual_seed(1)
    model = SpeakerEncoder(cmn=True)
    model.set_normalisation(torch.randn(model.n_bins), torch.rand(model.n_bins) + 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # larger weights than the init, so that errors would show
    path = export_onnx(model, tmp_path / "enc.onnx")
    rt = SpeakerEncoderRuntime(path)
    rng = np.random.default_rng(0)
    for t in (37, 300, 451):  # dynamic time axis
        x = rng.normal(-3.0, 2.0, size=(t, model.n_bins)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x[None])).numpy()[0]
        assert np.max(np.abs(rt.embed(x) - ref)) < 1e-4
    # batch axis is dynamic too
    xb = rng.normal(size=(3, 50, model.n_bins)).astype(np.float32)
    out = rt.session.run(None, {rt.input_name: xb})[0]
    with torch.no_grad():
        assert np.max(np.abs(out - model(torch.from_numpy(xb)).numpy())) < 1e-4


def test_siamese_loss_is_eq1():
    za = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    zb = torch.tensor([[0.5, 0.5], [1.0, 1.0]])
    same = torch.tensor([1.0, 0.0])
    logits = pair_logits(za, zb)
    assert torch.allclose(logits, torch.tensor([1.5, -0.5]))
    expected = -(torch.log(torch.sigmoid(torch.tensor(1.5))) + torch.log(1 - torch.sigmoid(torch.tensor(-0.5)))) / 2
    assert torch.allclose(siamese_bce(za, zb, same), expected)


def test_shipped_encoder_runs():
    path = models_dir() / "speaker_encoder.onnx"
    if not path.is_file():
        pytest.fail(f"shipped encoder missing: {path}")
    rt = SpeakerEncoderRuntime(path)
    z = rt.embed(np.random.default_rng(0).normal(-4, 1, size=(200, 257)).astype(np.float32))
    assert z.shape == (32,) and np.all(np.isfinite(z)) and np.all(np.abs(z) <= 1.0)
