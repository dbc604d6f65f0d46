"""The lean training paths of LPCNet (fast, fold) compute what the first implementation computes:
loss, logits and every parameter's gradient."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

import torch.nn.functional as F  # noqa: E402

from pnsc.training.lpcnet import fused  # noqa: E402
from pnsc.training.lpcnet.model import DualFC, LPCNet, config_for  # noqa: E402


def _inputs(B=3, T=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, T + 4, 20, generator=g)
    feats[..., 18] = 60 + 100 * torch.rand(B, T + 4, generator=g)
    idx = [torch.randint(0, 256, (B, T * 160), generator=g) for _ in range(4)]
    return feats, *idx


def _pair(impls=("old", "fast"), size="tiny"):
    torch.manual_seed(0)
    a = LPCNet(config_for(size), impl=impls[0])
    b = LPCNet(config_for(size), impl=impls[1])
    b.load_state_dict(a.state_dict())
    return a, b


def _loss_and_grads(model, args):
    model.zero_grad(set_to_none=True)
    loss = model(*args)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("impl,chunk", [("fast", fused.ROW_CHUNK), ("fast", 317), ("fold", 317)])
def test_new_paths_match_old_loss_and_gradients_fp32(impl, chunk, monkeypatch):
    monkeypatch.setattr(fused, "ROW_CHUNK", chunk)
    old, new = _pair(("old", impl))
    args = _inputs()
    l0, g0 = _loss_and_grads(old, args)
    l1, g1 = _loss_and_grads(new, args)
    assert abs(l0 - l1) < 1e-5 * abs(l0)
    assert g0.keys() == g1.keys()
    for n in g0:
        scale = float(g0[n].abs().max())
        assert scale > 0, n  # every parameter gets a gradient
        assert float((g0[n] - g1[n]).abs().max()) <= 1e-5 * scale + 1e-9, n


@pytest.mark.parametrize("impl", ["fast", "fold"])
def test_logits_path_and_state_dict_interchangeable(impl):
    old, new = _pair(("old", impl))
    feats, sig, pred, exc, _ = _inputs()
    with torch.no_grad():
        assert torch.allclose(old(feats, sig, pred, exc), new(feats, sig, pred, exc), rtol=1e-5, atol=1e-5)
    sd_old, sd_new = old.state_dict(), new.state_dict()
    assert list(sd_old) == list(sd_new)
    assert all(sd_old[k].shape == sd_new[k].shape for k in sd_old)


def test_dual_fc_loss_equals_cross_entropy_of_the_dual_fc():
    torch.manual_seed(1)
    fc = DualFC(16)
    with torch.no_grad():
        fc.factor.uniform_(0.5, 1.5)
        fc.bias.normal_(0, 0.3)
    h = torch.randn(5, 101, 16, requires_grad=True)
    target = torch.randint(0, 256, (5, 101))
    ref = F.cross_entropy(fc(h).reshape(-1, 256), target.reshape(-1))
    ref_grads = torch.autograd.grad(ref * 3.0, [h, *fc.parameters()])
    got = fused.dual_fc_loss(h, fc.weight, fc.bias, fc.factor, target, chunk=64)
    got_grads = torch.autograd.grad(got * 3.0, [h, *fc.parameters()])  # grad_output scaling passes through
    assert abs(float(ref.detach()) - float(got.detach())) < 1e-6 * float(ref.detach())
    for r, g in zip(ref_grads, got_grads):
        assert torch.allclose(r, g, rtol=1e-5, atol=1e-8)
    with torch.no_grad():  # no gradients wanted: loss only
        assert abs(float(fused.dual_fc_loss(h, fc.weight, fc.bias, fc.factor, target)) - float(ref)) < 1e-6 * float(ref)


def test_dual_fc_loss_does_no_gradient_work_under_no_grad(monkeypatch):
    """Validation runs under torch.no_grad(), where autograd still reports needs_input_grad = True: the
    fused loss must not compute (or allocate) the gradients it would otherwise write in its forward pass."""
    fc = DualFC(16)
    h = torch.randn(3, 50, 16, requires_grad=True)
    target = torch.randint(0, 256, (3, 50))

    def no_gradient_buffers(*a, **k):
        raise AssertionError("gradient buffer allocated under no_grad")

    monkeypatch.setattr(torch, "empty_like", no_gradient_buffers)
    with torch.no_grad():
        loss = fused.dual_fc_loss(h, fc.weight, fc.bias, fc.factor, target, chunk=32)
    assert loss.grad_fn is None and torch.isfinite(loss)


@pytest.mark.parametrize("impl", ["fast", "fold"])
def test_bf16_autocast_paths_agree(impl):
    old, new = _pair(("old", impl))
    args = _inputs(seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        l0, g0 = _loss_and_grads(old, args)
        l1, g1 = _loss_and_grads(new, args)
    assert abs(l0 - l1) < 1e-3 * abs(l0)
    for n in g0:
        cos = F.cosine_similarity(g0[n].flatten().double(), g1[n].flatten().double(), dim=0)
        assert float(cos) > 0.99, (n, float(cos))


def test_frame_concat_repeats_conditioning_per_sample():
    x = torch.randn(2, 3 * 4, 5, requires_grad=True)
    cond = torch.randn(2, 3, 6, requires_grad=True)
    got = fused.frame_concat(x, cond, 4)
    ref = torch.cat([x, cond.repeat_interleave(4, dim=1)], dim=-1)
    assert torch.equal(got, ref)
    w = torch.randn_like(ref)
    assert torch.allclose(torch.autograd.grad((got * w).sum(), cond)[0], torch.autograd.grad((ref * w).sum(), cond)[0])


def test_unknown_impl_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="impl"):
        LPCNet(config_for("tiny"), impl="nope")
    monkeypatch.setenv("PNSC_LPCNET_IMPL", "old")
    assert LPCNet(config_for("tiny")).impl == "old"


def test_fold_with_compiled_cells_matches(monkeypatch):
    """PNSC_LPCNET_COMPILE=1 (torch.compile of the fold path's GRU cells) computes the same gradients."""
    pytest.importorskip("torch._inductor")
    monkeypatch.setenv("PNSC_LPCNET_COMPILE", "1")
    old, new = _pair(("old", "fold"))
    args = _inputs(B=2, T=1, seed=5)
    l0, g0 = _loss_and_grads(old, args)
    l1, g1 = _loss_and_grads(new, args)
    assert abs(l0 - l1) < 1e-5 * abs(l0)
    for n in g0:
        assert float((g0[n] - g1[n]).abs().max()) <= 1e-5 * float(g0[n].abs().max()) + 1e-9, n


def _teacher():
    torch.manual_seed(7)
    from pnsc.training.lpcnet.model import LPCNet as _L  # noqa: N813
    return _L(config_for("tiny"), impl="fast").eval()


@pytest.mark.parametrize("impl,chunk", [("fast", fused.ROW_CHUNK), ("fast", 317), ("fold", 317)])
def test_distillation_loss_and_gradients_match_the_plain_formula(impl, chunk, monkeypatch):
    """(1 - a) CE(target) + a CE(teacher's softmax): the fused chunked loss equals the plain path's, and so do
    the student's gradients; the teacher gets none."""
    from pnsc.training.lpcnet.model import teacher_head
    monkeypatch.setattr(fused, "ROW_CHUNK", chunk)
    old, new = _pair(("old", impl))
    feats, sig, pred, exc, target = _inputs()
    teacher = _teacher()
    head = teacher_head(teacher, feats, sig, pred, exc)
    for alpha in (0.0, 0.5, 1.0):
        l0, g0 = _loss_and_grads(old, (feats, sig, pred, exc, target, None, head, alpha))
        l1, g1 = _loss_and_grads(new, (feats, sig, pred, exc, target, None, head, alpha))
        assert abs(l0 - l1) < 1e-5 * abs(l0), alpha
        for n in g0:
            scale = float(g0[n].abs().max())
            assert float((g0[n] - g1[n]).abs().max()) <= 1e-5 * scale + 1e-9, (alpha, n)
    assert all(p.grad is None for p in teacher.parameters())
    # alpha 0 is the plain loss; the soft part is the cross-entropy against the teacher's own logits
    plain, _ = _loss_and_grads(new, (feats, sig, pred, exc, target))
    l_zero, _ = _loss_and_grads(new, (feats, sig, pred, exc, target, None, head, 0.0))
    assert l_zero == pytest.approx(plain, rel=1e-6)
    with torch.no_grad():
        zt = teacher(feats, sig, pred, exc).float().reshape(-1, 256)
        zs = new(feats, sig, pred, exc).float().reshape(-1, 256)
    soft = float(-(torch.softmax(zt, -1) * torch.log_softmax(zs, -1)).sum(-1).mean())
    l_one, _ = _loss_and_grads(new, (feats, sig, pred, exc, target, None, head, 1.0))
    assert l_one == pytest.approx(soft, rel=1e-5)


def test_a_student_that_is_its_teacher_has_the_teachers_entropy_as_soft_loss():
    """Soft CE of a model against itself is the entropy of its own distribution: the gradient of the soft part
    vanishes there (softmax - teacher's softmax = 0)."""
    from pnsc.training.lpcnet.model import teacher_head
    _, model = _pair(("old", "fast"))
    feats, sig, pred, exc, target = _inputs()
    head = teacher_head(model, feats, sig, pred, exc)
    model.zero_grad(set_to_none=True)
    model(feats, sig, pred, exc, target, None, head, 1.0).backward()
    assert max(float(p.grad.abs().max()) for p in model.dual_fc.parameters()) < 1e-6
    with pytest.raises(ValueError, match="alpha"):
        fused.dual_fc_loss(torch.zeros(4, 16), model.dual_fc.weight, model.dual_fc.bias, model.dual_fc.factor,
                           torch.zeros(4, dtype=torch.long), teacher=None, alpha=1.5)
