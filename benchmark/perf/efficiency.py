"""The efficiency section: achieved FLOP/s of an encoder's training step as a share of the
machine's matrix-multiply peak in the same precision, beside two ceilings on it: the share its
convolutions alone reach (the ceiling the convolution library sets), and that share with the
batch norms' least memory traffic added (the ceiling that separate batch-norm kernels, however fast, keep)."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.perf.allocator_lever import allocator_lever_rows
from benchmark.perf.timing import against_target, copy_bandwidth, matmul_step, rates_in_turns, step_fn, synchronize

TARGET_PEAK_FRACTION = 0.40  # target: the VDIM encoder step at 32x128x128, bf16
# The fewest passes over its map a training batch norm that runs as its own kernel can make: forward,
# one read for the statistics and a read and a write for the normalised map (Ioffe & Szegedy 2015,
# Alg. 1); backward, one read each of the gradient and the input for the two per-channel sums, then
# two reads and a write for the input gradient. A ReLU fused into it adds none.
BATCH_NORM_PASSES = 8


def prepared_encoder(name: str, build, batch: int, cfg, device) -> tuple:
    """``(encoder, input, what)``: an encoder in the trainer's layout, a batch for it, its row name."""
    from benchmark.trainer import apply_speed_levers, in_layout
    torch.manual_seed(0)
    enc = build().to(device).train()
    t, h, w = enc.input_shape
    apply_speed_levers(enc, cfg.trainer.channels_last, compile=False)  # the layout the trainer runs in
    x = in_layout([torch.randn(batch, 3, t, h, w, device=device)], cfg.trainer.channels_last)[0]
    return enc, x, f"{name} encoder step {t}x{h}x{w}, batch {batch}"


def encoder_step(enc, x, device, precision: str):
    """A training step of the encoder alone (its global features squared as the loss)."""
    return step_fn(lambda: enc(x)["global"].float().square().mean(), list(enc.parameters()), device, precision)


def module_calls(enc, x, precision: str, kind: type, record) -> list:
    """``record(module, inputs, output)`` for every call of a ``kind`` module in one training
    forward of ``enc`` under the precision's autocast, in the order of the calls."""
    from benchmark.trainer import autocast_for
    calls = []
    hooks = [m.register_forward_hook(lambda m, args, out: calls.append(record(m, args, out)))
             for m in enc.modules() if isinstance(m, kind)]
    try:
        with autocast_for(x.device, precision):
            enc(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


def convolution_calls(enc, x, precision: str) -> list:
    """``(conv, input, output_grad, needs_input_grad)`` for every convolution call of one training
    forward of ``enc``: random tensors of the shape, dtype and memory layout that call met, the input
    a leaf that requires a gradient where that call's did."""
    def like_the_call(conv, args, out):
        like = args[0]
        inp = torch.empty_like(like).normal_().requires_grad_(like.requires_grad)
        return conv, inp, torch.empty_like(out).normal_(), like.requires_grad
    return module_calls(enc, x, precision, nn.modules.conv._ConvNd, like_the_call)


def batch_norm_map_bytes(enc, x, precision: str) -> list:
    """Bytes of the map each batch-norm call of one training forward of ``enc`` normalises (its
    output's: the same size and, under autocast, the same dtype as its input)."""
    return module_calls(enc, x, precision, nn.modules.batchnorm._BatchNorm,
                        lambda bn, args, out: out.numel() * out.element_size())


def convolutions_step(enc, x, device, precision: str):
    """Every convolution of :func:`encoder_step`, forward and backward, one after another and nothing
    else: each module called as the step calls it (autocast's weight cast and the first layer's
    reflection padding included) on an input like the one it met there. Its time is what the step
    would take if it were all convolution: the ceiling the convolution library (oneDNN on CPU, cuDNN
    on CUDA) sets on the step's share of the matmul peak."""
    from benchmark.trainer import autocast_for
    # what each call differentiates, gathered once, outside the timed step
    calls = [(conv, inp, grad, ([inp] if needs_input_grad else []) + [p for p in conv.parameters() if p.requires_grad])
             for conv, inp, grad, needs_input_grad in convolution_calls(enc, x, precision)]

    def step():
        for conv, inp, grad, wrt in calls:
            with autocast_for(device, precision):
                out = conv(inp)
            torch.autograd.grad(out, wrt, grad)
        synchronize(device)
    return step


def paper_encoder(cfg) -> tuple:
    """``(name, build, batch)`` of the Table 1 encoder at 32 x 128 x 128, which the target is set for."""
    from encoders import build_encoder
    return "vdim (Table 1)", lambda: build_encoder("vdim"), cfg.paper_batch


def paper_encoder_step(cfg, precision: str) -> dict:
    """The efficiency section's Table 1 encoder step (for a process of :func:`allocator_lever_rows`)."""
    from benchmark.distributed import resolve_device
    device = resolve_device(cfg.trainer.device)
    name, build, batch = paper_encoder(cfg)
    enc, x, what = prepared_encoder(name, build, batch, cfg, device)
    return {what: (encoder_step(enc, x, device, precision), batch)}


def efficiency_row(what: str, precision: str, clips_per_s: float, gflop_per_clip: float, peak: float, **extra) -> dict:
    """A row of the efficiency section: ``gflop_per_clip`` forward (x 3 with the backward) at
    ``clips_per_s``, over the ``peak`` FLOP/s timed in turns with it."""
    achieved = gflop_per_clip * 1e9 * 3 * clips_per_s
    return {"section": "efficiency", "what": what, "precision": precision, "clips_per_s": clips_per_s,
            "achieved_gflop_s": achieved / 1e9, "peak_gflop_s": peak / 1e9, "fraction_of_peak": achieved / peak, **extra}


def batch_norm_traffic(bn_bytes: list, device, repeats: int) -> tuple:
    """``(bytes, seconds)`` of the batch norms' least memory traffic: :data:`BATCH_NORM_PASSES`
    over each map, at the best bandwidth of a copy of that map's size (a map that fits the
    last-level cache passes about twice as fast as one that does not)."""
    bandwidth = {n: copy_bandwidth(device, n, repeats) for n in set(bn_bytes)}
    return BATCH_NORM_PASSES * sum(bn_bytes), sum(BATCH_NORM_PASSES * n / bandwidth[n] for n in bn_bytes)


def ceiling_rows(what: str, precision: str, rates: dict, batch: int, gflop: float, traffic: tuple | None) -> list:
    """The step's two ceilings: its FLOPs over its convolutions' time alone (``rates`` timed in turns
    with the step), with that time's share of the step's; and, where it has batch norms, over that time
    plus their least memory traffic (``(bytes, seconds)`` of :func:`batch_norm_traffic`)."""
    rows = [efficiency_row(f"{what}: its convolutions alone, forward and backward", precision, rates["convolutions"],
                           gflop, rates["peak"], share_of_step=rates["step"] / rates["convolutions"])]
    if traffic:
        nbytes, seconds = traffic
        rows.append(efficiency_row(f"{what}: its convolutions and its batch norms' least memory traffic", precision,
                                   batch / (batch / rates["convolutions"] + seconds), gflop, rates["peak"],
                                   batch_norm_traffic_gb=nbytes / 1e9, copy_gb_s=nbytes / seconds / 1e9))
    return rows


def section_efficiency(cfg, rows, device):
    """Achieved FLOP/s of an encoder training step (fvcore MACs x 2 x 3 for forward and
    backward, times clips/s) over the matmul peak in the same precision, timed in turns with the
    step's convolutions alone (:func:`convolutions_step`) and the peak, then the batch norms' least
    memory traffic (:func:`batch_norm_traffic`), and the two ceilings those set (:func:`ceiling_rows`):
    the run's encoder, and with ``paper_resolution`` the Table 1 encoder at 32 x 128 x 128."""
    from benchmark.run import count_flops
    from encoders import build_encoder_from_config
    encoders = [(cfg.encoder.name, lambda: build_encoder_from_config(cfg.encoder), cfg.batch_size, None)]
    if cfg.paper_resolution:  # the target is set for the Table 1 encoder in bf16
        encoders.append((*paper_encoder(cfg), TARGET_PEAK_FRACTION))
    for name, build, batch, target in encoders:
        enc, x, what = prepared_encoder(name, build, batch, cfg, device)
        t, h, _ = enc.input_shape
        gflop = count_flops(enc, t, h) * 2  # fvcore counts one multiply-add as one
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            bn_bytes = batch_norm_map_bytes(enc, x, precision)
            rates = rates_in_turns({"step": (encoder_step(enc, x, device, precision), batch),
                                    "convolutions": (convolutions_step(enc, x, device, precision), batch),
                                    "peak": matmul_step(device, dtype)}, cfg.repeats)
            traffic = batch_norm_traffic(bn_bytes, device, cfg.repeats) if bn_bytes else None
            step = efficiency_row(what, precision, rates["step"], gflop, rates["peak"])
            if target and precision == "bf16":
                step.update(against_target(step["fraction_of_peak"], target))
            rows += [step, *ceiling_rows(what, precision, rates, batch, gflop, traffic)]
            if target and "allocator" in cfg.levers and precision == cfg.trainer.precision:
                rows += allocator_lever_rows("efficiency", paper_encoder_step, cfg, precision)
