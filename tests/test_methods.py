import pytest
import torch

from encoders import build_encoder
from methods import build_method
from methods.base import cosine_momentum

TINY = dict(ndf=8, n_1x1=0, head_dim=32)
SMALL_HEADS = {"hidden_dim": 64, "out_dim": 32}
OVERRIDES = {"vdim": {"head_dim": 32}, "rho_simclr": SMALL_HEADS, "rho_moco": {**SMALL_HEADS, "queue_size": 40},
             "rho_byol": {**SMALL_HEADS, "predictor_hidden_dim": 64}, "rho_swav": {**SMALL_HEADS, "prototypes": 16},
             "supervised": {}}


def _make(name):
    torch.manual_seed(0)
    enc = build_encoder("vdim_small", **TINY)
    return build_method(name, enc, num_classes=4, **OVERRIDES[name])


def _views(n=2, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 16, 64, 64, generator=g) for _ in range(n)]


@pytest.mark.parametrize("name", list(OVERRIDES))
def test_loss_falls_over_20_steps_on_a_fixed_batch(name):
    m = _make(name)
    views, labels = _views(), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(20):
        out = m(views, labels)
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        m.before_optimizer_step(step)
        opt.step()
        m.after_optimizer_step(step + 1, 20)
        losses.append(out["loss"].item())
    # MoCo's first losses are scored against the queue's random initial keys; compare from the
    # first step whose queue holds only keys of this batch (queue 40 / 8 keys a step = step 5).
    start = OVERRIDES[name].get("queue_size", 0) // (2 * len(labels))
    assert min(losses[-3:]) < losses[start]


def test_momentum_target_follows_cosine_schedule():
    m = _make("rho_byol")
    online, target = m.projector[0].weight, m.target_projector[0].weight
    with torch.no_grad():
        online.add_(1.0)
    before = target.clone()
    logs = m.after_optimizer_step(5, 10)
    tau = cosine_momentum(m.cfg.momentum, 5, 10)
    assert logs["tau"] == pytest.approx(tau)
    assert torch.allclose(target, tau * before + (1 - tau) * online)
    assert cosine_momentum(0.996, 0, 10) == pytest.approx(0.996) and cosine_momentum(0.996, 10, 10) == pytest.approx(1.0)


def test_moco_queue_stores_each_steps_momentum_keys_and_wraps():
    """Each step enqueues the momentum encoder's normalised keys of every clip (before that step's
    momentum update), at the pointer, wrapping around the 40 slots."""
    import torch.nn.functional as F
    m = _make("rho_moco")  # queue 40, 2 clips x 4 = 8 keys per step
    expected = torch.zeros(40, m.queue.shape[1])
    for step in range(6):
        views = _views(seed=step)
        with torch.no_grad():  # the target in training mode: batch statistics, as the method's forward
            keys = F.normalize(torch.cat(m.target_embed(views)), dim=1)
        slots = (torch.arange(8) + step * 8) % 40
        expected[slots] = keys
        m(views, None)
        m.after_optimizer_step(step + 1, 10)
    assert int(m.queue_ptr) == (6 * 8) % 40
    torch.testing.assert_close(m.queue, expected, rtol=1e-5, atol=1e-6)


def test_swav_prototypes_normalised_and_frozen():
    m = _make("rho_swav")
    m.cfg.freeze_prototypes_steps = 5
    out = m(_views(), None)
    out["loss"].backward()
    m.before_optimizer_step(0)
    assert m.prototypes.weight.grad is None
    assert torch.allclose(m.prototypes.weight.norm(dim=1), torch.ones(16), atol=1e-5)


def test_vdim_temporal_difference_on_block8_fails_clearly():
    from benchmark.errors import UserError
    enc = build_encoder("vdim_small", **TINY)
    with pytest.raises(UserError, match="temporal_difference"):
        build_method("vdim", enc, head_dim=32, temporal_difference=True)
    out = build_method("vdim", build_encoder("vdim_small", **TINY), head_dim=32, temporal_difference=True,
                       consequent=["block6"], symmetric=False)(_views(), None)
    assert torch.isfinite(out["loss"])


def test_unknown_method():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="valid choices"):
        build_method("nope", build_encoder("vdim_small", **TINY))


def test_default_vdim_trains_the_phi8_that_evaluation_reads():
    """The embedded default (vdim_small + method vdim): the loss's phi_8 is the encoder's own global head,
    so the linear probe evaluates phi_8 o Psi as trained (VDIM sec. 4.1), not a randomly initialised phi_8."""
    from conftest import compose_run
    from encoders import build_encoder_from_config

    cfg = compose_run([])
    enc = build_encoder_from_config(cfg.encoder)
    m = build_method("vdim", enc, cfg=cfg.method)
    assert "block8" in m.shared_phi and "block8" not in m.phi
    views = [torch.randn(2, 3, cfg.encoder.frames, cfg.encoder.size, cfg.encoder.size) for _ in range(2)]
    m(views)["loss"].backward()
    assert enc.global_head.phi.shortcut.weight.grad.abs().sum() > 0


def test_swav_freezes_prototypes_for_one_epoch_by_default():
    """freeze_prototypes_steps: null (the default) = one epoch, told by the trainer through set_epoch_steps."""
    torch.manual_seed(0)
    m = build_method("rho_swav", build_encoder("vdim_small", **TINY), **{**OVERRIDES["rho_swav"]})
    assert m.cfg.freeze_prototypes_steps is None
    m.set_epoch_steps(21)
    for step, frozen in ((0, True), (20, True), (21, False)):
        m.zero_grad()
        m(_views(), None)["loss"].backward()
        m.before_optimizer_step(step)
        assert (m.prototypes.weight.grad is None) == frozen, step
    other = _make("rho_moco")
    other.set_epoch_steps(21)  # a no-op for methods without an epoch-based setting


def test_rho_online_clips_are_separate_batches():
    """As SlowFast's ContrastiveModel: the online backbone runs once per clip (batch-norm statistics
    per clip); the target's batching is method.target_batches (test_target_batches_...)."""
    m = _make("rho_byol").train()
    a, b = _views()
    c = torch.randn_like(b)
    with torch.no_grad():
        online_ab, online_ac = m.embed([a, b])[0], m.embed([a, c])[0]
        target_ab, target_ac = m.target_embed([a, b])[0], m.target_embed([a, c])[0]
    torch.testing.assert_close(online_ab, online_ac)  # clip 0's embedding does not see clip 1
    assert (target_ab - target_ac).abs().max() > 1e-3  # target_batches=together: clip 1 moves clip 0's statistics


def test_swav_queue_fills_newest_first_and_is_used_once_full():
    torch.manual_seed(0)
    m = build_method("rho_swav", build_encoder("vdim_small", **TINY), **OVERRIDES["rho_swav"], swav_queue_length=8)
    views = _views()  # batch 4: the queue of 8 is full after two steps
    seen = []
    for step in range(3):
        used = m.queued_scores(2) is not None
        with torch.no_grad():
            z = [torch.nn.functional.normalize(x, dim=1) for x in m.embed(views)]
        m(views)
        seen.append(used)
        torch.testing.assert_close(m.queue[0, :4], z[0], atol=1e-5, rtol=1e-4)  # the newest batch in front
    assert seen == [False, False, True]


def test_negative_swav_queue_length_is_a_clear_error():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="method.swav_queue_length and method.swav_queue_start_step must be >= 0"):
        build_method("rho_swav", build_encoder("vdim_small", **TINY), **OVERRIDES["rho_swav"], swav_queue_length=-3)


def test_byol_predictor_learns_at_its_own_rate_and_every_weight_is_optimised_once():
    from benchmark.optim import build_optimizer
    m = build_method("rho_byol", build_encoder("vdim_small", **TINY), **OVERRIDES["rho_byol"], predictor_lr_scale=10.0)
    opt = build_optimizer("adam", m.param_groups(), lr=1e-3)
    by_id = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(by_id)  # none twice
    assert set(by_id) == {id(p) for p in m.parameters() if p.requires_grad}  # targets excluded, all others in
    assert all(by_id[id(p)] == pytest.approx(1e-2) for p in m.predictor.parameters())
    assert all(by_id[id(p)] == pytest.approx(1e-3) for p in m.encoder.parameters())
    sgd = build_optimizer("sgd", build_method("rho_simclr", build_encoder("vdim_small", **TINY),
                                              **OVERRIDES["rho_simclr"]).param_groups(), lr=0.1)
    assert [g["lr"] for g in sgd.param_groups] == [0.1]


@pytest.mark.parametrize("name", ["rho_moco", "rho_byol"])
def test_target_batches_together_or_clip_by_clip(name):
    """method.target_batches: one batch of every clip (one set of BN statistics) or each clip as
    its own batch (SlowFast's compute_key_feat under CONTRASTIVE.SEQUENTIAL)."""
    m = _make(name).train()
    views = _views()
    target = lambda x: m.target_projector(m.target_encoder(x)["global"]).float()  # noqa: E731
    with torch.no_grad():
        together = m.target_embed(views)
        m.cfg.target_batches = "per_clip"
        per_clip = m.target_embed(views)
        torch.testing.assert_close(per_clip[1], target(views[1]))
        torch.testing.assert_close(together[1], target(torch.cat(views))[4:])
    assert not torch.allclose(together[1], per_clip[1], atol=1e-3)  # batch norm sees other statistics


def test_moco_queue_per_process_or_gathered(monkeypatch):
    import methods.base as base
    import methods.rho_moco as moco
    m = _make("rho_moco")  # queue 40
    keys = torch.nn.functional.normalize(torch.randn(8, 32), dim=1)
    gathered = []
    monkeypatch.setattr(moco, "world_size", lambda: 2)
    monkeypatch.setattr(base, "world_size", lambda: 2)
    monkeypatch.setattr(base.dist, "all_gather", lambda out, k: (gathered.append(1), [o.copy_(k) for o in out]))
    m.cfg.queue_scope = "per_process"
    m.enqueue(keys)
    assert not gathered and int(m.queue_ptr) == 8 and torch.equal(m.queue[:8], keys)
    m.cfg.queue_scope = "global"
    m.enqueue(keys)
    assert gathered and int(m.queue_ptr) == 24 and torch.equal(m.queue[8:24], torch.cat([keys, keys]))


def test_moco_makes_no_update_until_its_queue_is_full():
    """SlowFast's contrastive_parameter_surgery: queue_size // global batch steps without an update."""
    torch.manual_seed(0)
    m = build_method("rho_moco", build_encoder("vdim_small", **TINY), **{**OVERRIDES["rho_moco"], "queue_size": 16},
                     frozen_until_queue_full=True)
    views = _views(b=4)  # 16 // 4 = 4 frozen steps
    for step in range(6):
        m(views)["loss"].backward()
        m.before_optimizer_step(step)
        with_grad = [p.grad is not None for p in m.parameters() if p.requires_grad]
        assert not any(with_grad) if step < 4 else all(with_grad)
        m.zero_grad(set_to_none=True)


def test_unknown_queue_scope_and_target_batches_name_the_choices():
    from benchmark.errors import UserError
    with pytest.raises(UserError, match="method.queue_scope.*per_process"):
        build_method("rho_moco", build_encoder("vdim_small", **TINY), **OVERRIDES["rho_moco"], queue_scope="local")
    with pytest.raises(UserError, match="method.target_batches.*per_clip"):
        build_method("rho_byol", build_encoder("vdim_small", **TINY), **OVERRIDES["rho_byol"], target_batches="x")
