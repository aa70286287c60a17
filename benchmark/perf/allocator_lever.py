"""The host-allocator lever (``trainer.allocator``, :mod:`benchmark.allocator`): each setting in a
spawned process of its own, the two stepped in turns."""
from __future__ import annotations

import statistics
import time


def allocator_child(conn, allocator: str, build, cfg_container: dict, precision: str) -> None:
    """A fresh (spawned) process whose malloc has run under ``allocator`` from its start: builds
    ``build(cfg, precision)``'s steps, names them (or says why it could not), then times the step
    named in each message, answering ``(clips/s, pages faulted in)``, until it receives None."""
    from omegaconf import OmegaConf

    from benchmark.allocator import minor_page_faults, use_allocator
    use_allocator(allocator)
    try:
        steps = build(OmegaConf.create(cfg_container), precision)
    except Exception as ex:  # reported by the parent as the lever's note
        conn.send(f"{type(ex).__name__}: {ex}")
        return
    conn.send(list(steps))
    while (name := conn.recv()) is not None:
        step, clips = steps[name]
        before, start = minor_page_faults(), time.perf_counter()
        step()
        conn.send((clips / (time.perf_counter() - start), minor_page_faults() - before))


def allocator_lever_rows(section: str, build, cfg, precision: str) -> list:
    """``trainer.allocator`` flipped (benchmark/allocator.py) on the steps ``build(cfg, precision)``
    makes. malloc's settings hold for a whole process and its heap keeps what they did, so each
    setting gets a fresh process of its own (spawned: a forked one would inherit this process's
    heap); the two hold their models side by side and step one at a time, in turns, as
    :func:`benchmark.perf.timing.round_rates_in_turns` does within a process (two untimed rounds first). ``ratio``: the
    median over rounds of the flipped setting's clips/s over the trainer's setting's, each pair
    timed back to back; ``page_faults_per_step``: the flipped setting's, beside the trainer's."""
    import multiprocessing

    from omegaconf import OmegaConf
    mine, other = cfg.trainer.allocator, "system" if cfg.trainer.allocator == "retain" else "retain"
    container = OmegaConf.to_container(cfg, resolve=True)
    ctx = multiprocessing.get_context("spawn")
    procs, conns = {}, {}
    try:
        for setting in (mine, other):
            conns[setting], theirs = ctx.Pipe()
            procs[setting] = ctx.Process(target=allocator_child, args=(theirs, setting, build, container, precision),
                                         daemon=True)
            procs[setting].start()
        names, other_names = (conns[s].recv() for s in (mine, other))
        for built in (names, other_names):
            if isinstance(built, str):
                raise ChildProcessError(built)
        rates = {(n, s): [] for n in names for s in (mine, other)}
        faults = {(n, s): [] for n in names for s in (mine, other)}
        for r in range(-2, cfg.repeats):
            for name in names:
                for setting in ((other, mine) if r % 2 == 0 else (mine, other)):
                    conns[setting].send(name)
                    rate, faulted = conns[setting].recv()
                    if r >= 0:
                        rates[(name, setting)].append(rate)
                        faults[(name, setting)].append(faulted)
    except (ChildProcessError, EOFError, OSError) as ex:
        return [{"section": section, "what": f"allocator {other}", "precision": precision,
                 "note": f"unavailable: {ex if isinstance(ex, ChildProcessError) else type(ex).__name__}"[:120]}]
    finally:
        for setting, conn in conns.items():
            try:
                conn.send(None)
            except OSError:
                pass
            procs[setting].join(timeout=30)
            if procs[setting].is_alive():
                procs[setting].terminate()
    med = statistics.median
    return [{"section": section, "what": f"{name}, allocator {other}", "precision": precision,
             "clips_per_s": med(rates[(name, other)]),
             "ratio": med([a / b for a, b in zip(rates[(name, other)], rates[(name, mine)])]),
             "page_faults_per_step": int(med(faults[(name, other)])),
             "page_faults_per_step_default": int(med(faults[(name, mine)]))}
            for name in names]
