"""A seeded synthetic action dataset written as real encoded videos (PyAV, MPEG-4 in .avi).

Each class is an actor doing a motion, as real actions show both an object and a movement:
the actor's outline (bar, triangle, ellipse, cross, ring, L, diamond, arrow head: one per
class) and its motion over time carry the label. Colour (actor and background gradient),
brightness, position, scale (0.4-0.55 of the frame), speed and direction vary within every
class: they are what colour jitter, greying and random crops remove. Backgrounds are smooth
with faint noise, so no texture identifies a video better than its actor does. The actor
always stands out: a dark background (luma 10-110) gets a light actor (luma 160-250) and a
light one (145-245) a dark actor (5-95), whatever the hues. (Format 2, motion only on photo
backgrounds, left a supervised encoder at chance after 300 CPU steps. In format 5 actor and
background could share a brightness: the default `supervised` run reached 23.6% on split 1,
against 38.9% on format 6. docs/synthetic.md gives the figures.)

========================  ==========================================================
HorizontalSlide           constant-speed translation along x (left or right)
VerticalSlide             constant-speed translation along y (up or down)
Spin                      rotation in place (either direction)
Pulse                     periodic growth and shrinking in place
Shake                     fast periodic back-and-forth along x
Orbit                     circular path around a centre
Approach                  two sprites move towards each other and meet
Bounce                    falls and bounces (|sin| height: speed changes over time)
========================  ==========================================================

Every motion is closed under horizontal flips, so flip augmentation keeps the label.
Lengths vary between ``min_frames`` and ``max_frames`` (some shorter than a 32-frame
window). The folders follow UCF-101 (``UCF-101/<Class>/v_<Class>_gXX_cYY.avi``,
``ucfTrainTestlist/``) and HMDB-51 (``hmdb51/<class>/*.avi`` hard links,
``hmdb51/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt``). Split k tests on
groups 3k-2 .. 3k, so groups never cross train/test within a split.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import av
import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["HorizontalSlide", "VerticalSlide", "Spin", "Pulse", "Shake", "Orbit", "Approach", "Bounce"]
FORMAT_VERSION = 6


def _luma_colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A random RGB colour whose luma (ITU-R 601) lies in ``[lo, hi]``."""
    while True:
        c = rng.uniform(0, 255, 3)
        if lo <= c @ np.array([0.299, 0.587, 0.114]) <= hi:
            return c


def _background(rng: np.random.Generator, size: int, dark: bool) -> Image.Image:
    """A smooth gradient between two random colours with faint noise: colour and brightness
    vary from video to video (what colour jitter and greying remove), texture barely does."""
    lo, hi = (10, 110) if dark else (145, 245)
    a, b = _luma_colour(rng, lo, hi), _luma_colour(rng, lo, hi)
    ramp = np.linspace(0, 1, size)[:, None] if rng.random() < 0.5 else np.linspace(0, 1, size)[None, :]
    arr = a + (b - a) * ramp[..., None]
    arr = arr + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _actor_mask(shape: int, px: int) -> Image.Image:
    """The silhouette of class ``shape``'s actor: one of eight outlines, each asymmetric enough
    that rotation shows."""
    mask = Image.new("L", (px, px), 0)
    draw = ImageDraw.Draw(mask)
    q, h, e = px // 4, px // 2, px - 1
    outlines = [
        lambda: draw.rectangle((0, q, e, e - q), fill=255),                               # bar
        lambda: draw.polygon([(h, 0), (e, e), (0, e)], fill=255),                         # triangle
        lambda: draw.ellipse((0, px // 5, e, e - px // 5), fill=255),                     # ellipse
        lambda: (draw.rectangle((q + q // 2, 0, e - q - q // 2, e), fill=255),
                 draw.rectangle((0, q + q // 2, e, e - q - q // 2), fill=255)),           # cross
        lambda: (draw.ellipse((0, 0, e, e), fill=255), draw.ellipse((q, q, e - q, e - q), fill=0)),  # ring
        lambda: (draw.rectangle((0, 0, q + q // 2, e), fill=255), draw.rectangle((0, e - q - q // 2, e, e), fill=255)),  # L
        lambda: draw.polygon([(h, 0), (e, h), (h, e), (0, h)], fill=255),                 # diamond
        lambda: draw.polygon([(0, 0), (e, h), (0, e), (q, h)], fill=255),                 # arrow head
    ]
    outlines[shape % len(outlines)]()
    return mask


def _sprite(rng: np.random.Generator, px: int, shape: int, dark_background: bool) -> Image.Image:
    """An RGBA sprite: the class's actor outline in a random colour of the opposite brightness
    to the background (the silhouette always stands out), with a stripe that shows rotation."""
    base = _luma_colour(rng, 160, 250) if dark_background else _luma_colour(rng, 5, 95)
    colour = tuple(int(c) for c in base)
    rgb = Image.new("RGB", (px, px), colour)
    stripe = base + (255 - base) * 0.4 if dark_background else base * 0.6  # further from the background still
    ImageDraw.Draw(rgb).line((0, 0, px, px), fill=tuple(int(c) for c in stripe), width=max(2, px // 8))
    sprite = rgb.convert("RGBA")
    sprite.putalpha(_actor_mask(shape, px))
    return sprite


def _trajectory(cls: str, n: int, size: int, rng: np.random.Generator) -> List[List[Tuple[float, float, float, float]]]:
    """Per frame, a list of (x, y, angle_deg, scale) for each sprite of class ``cls``."""
    t = np.arange(n, dtype=np.float64)
    c = size / 2
    jitter = lambda a: rng.uniform(-a, a)  # noqa: E731
    sign = rng.choice([-1.0, 1.0])
    speed = rng.uniform(0.6, 1.4) * size / 48
    x0, y0 = c + jitter(size / 8), c + jitter(size / 8)
    still = lambda: np.full(n, 0.0)  # noqa: E731
    ones = np.ones(n)
    if cls == "HorizontalSlide":
        x = x0 + sign * (t - n / 2) * speed
        return [list(zip(x, y0 + still(), still(), ones))]
    if cls == "VerticalSlide":
        y = y0 + sign * (t - n / 2) * speed
        return [list(zip(x0 + still(), y, still(), ones))]
    if cls == "Spin":
        ang = rng.uniform(0, 360) + sign * t * rng.uniform(8, 16)
        return [list(zip(x0 + still(), y0 + still(), ang, ones))]
    if cls == "Pulse":
        period = rng.uniform(8, 14)
        s = 1 + 0.45 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        return [list(zip(x0 + still(), y0 + still(), still(), s))]
    if cls == "Shake":
        period = rng.uniform(4, 7)
        x = x0 + size / 7 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        return [list(zip(x, y0 + still(), still(), ones))]
    if cls == "Orbit":
        r = size * rng.uniform(0.18, 0.28)
        phase = rng.uniform(0, 2 * np.pi) + sign * t * rng.uniform(0.15, 0.3)
        return [list(zip(c + r * np.cos(phase), c + r * np.sin(phase), still(), ones))]
    if cls == "Approach":
        horizontal = rng.random() < 0.5
        d = np.clip(size * 0.42 - t * speed * 0.6, size * 0.1, None)
        a = (c - d, c + still()) if horizontal else (c + still(), c - d)
        b = (c + d, c + still()) if horizontal else (c + still(), c + d)
        return [list(zip(a[0], a[1], still(), ones * 0.8)), list(zip(b[0], b[1], still(), ones * 0.8))]
    if cls == "Bounce":
        period = rng.uniform(12, 20)
        h = size * 0.35 * np.abs(np.sin(np.pi * t / period + rng.uniform(0, np.pi)))
        return [list(zip(x0 + still(), c + size * 0.25 - h, still(), ones))]
    raise ValueError(cls)


def render_video(cls: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    dark = bool(rng.random() < 0.5)
    bg = _background(rng, size, dark)
    px = int(size * rng.uniform(0.4, 0.55))
    paths = _trajectory(cls, n, size, rng)
    sprites = [_sprite(rng, px, CLASSES.index(cls), dark) for _ in paths]
    frames = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        frame = bg.copy()
        for sprite, path in zip(sprites, paths):
            x, y, ang, s = path[i]
            spr = sprite
            if s != 1:
                spr = spr.resize((max(2, int(px * s)),) * 2, Image.BILINEAR)
            if ang:
                spr = spr.rotate(float(ang), resample=Image.BILINEAR, expand=True)
            frame.paste(spr, (int(round(x - spr.width / 2)), int(round(y - spr.height / 2))), spr)
        frames[i] = np.asarray(frame)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    tmp = path.with_suffix(".tmp.avi")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def test_groups(split: int) -> range:
    return range(3 * split - 2, 3 * split + 1)


def spec_of(cfg) -> Dict:
    keys = ("classes", "groups", "clips_per_group", "min_frames", "max_frames", "size", "fps", "seed")
    return {"version": FORMAT_VERSION, **{k: int(cfg[k]) for k in keys}}


def write_synthetic(out: Path, spec: Dict, progress: bool = True) -> Path:
    """Write the dataset under ``out`` (atomically: a temp folder renamed at the end)."""
    from tqdm import tqdm

    if spec["classes"] > len(CLASSES) or spec["classes"] < 2:
        from benchmark.errors import UserError
        raise UserError(f"synthetic classes must be 2..{len(CLASSES)}, got {spec['classes']}")
    if spec["groups"] < 10:
        from benchmark.errors import UserError
        raise UserError(f"synthetic groups must be >= 10 (splits test on groups 1-3, 4-6, 7-9), got {spec['groups']}")
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    ucf, lists, hmdb = tmp / "UCF-101", tmp / "ucfTrainTestlist", tmp / "hmdb51"
    hsplits = hmdb / "testTrainMulti_7030_splits"
    for d in (ucf, lists, hsplits):
        d.mkdir(parents=True)
    classes = CLASSES[: spec["classes"]]
    rng = np.random.default_rng(spec["seed"])
    jobs = [(ci, g, k) for ci in range(len(classes)) for g in range(1, spec["groups"] + 1)
            for k in range(1, spec["clips_per_group"] + 1)]
    names: Dict[str, List[Tuple[str, int]]] = {c: [] for c in classes}
    for ci, g, k in tqdm(jobs, desc="synthetic videos", disable=not progress, leave=False):
        cls = classes[ci]
        name = f"v_{cls}_g{g:02d}_c{k:02d}.avi"
        n = int(rng.integers(spec["min_frames"], spec["max_frames"] + 1))
        (ucf / cls).mkdir(exist_ok=True)
        write_video(ucf / cls / name, render_video(cls, n, spec["size"], rng), spec["fps"])
        names[cls].append((name, g))
        (hmdb / cls.lower()).mkdir(exist_ok=True)
        try:
            os.link(ucf / cls / name, hmdb / cls.lower() / name)
        except OSError:
            shutil.copy2(ucf / cls / name, hmdb / cls.lower() / name)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    for split in (1, 2, 3):
        tg = test_groups(split)
        train = [f"{c}/{n} {i + 1}\n" for i, c in enumerate(classes) for n, g in names[c] if g not in tg]
        test = [f"{c}/{n}\n" for c in classes for n, g in names[c] if g in tg]
        (lists / f"trainlist0{split}.txt").write_text("".join(train))
        (lists / f"testlist0{split}.txt").write_text("".join(test))
        for c in classes:
            # last clip of the last group is unused (0), as HMDB-51 marks some clips
            marks = ["0" if (g == spec["groups"] and n.endswith(f"c{spec['clips_per_group']:02d}.avi"))
                     else ("2" if g in tg else "1") for n, g in names[c]]
            (hsplits / f"{c.lower()}_test_split{split}.txt").write_text(
                "".join(f"{n} {m} \n" for (n, _), m in zip(names[c], marks)))
    (tmp / "spec.json").write_text(json.dumps(spec, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def default_cache_dir() -> Path:
    return Path(os.environ.get("VDIM_BENCH_CACHE", Path.home() / ".cache" / "vdim-bench"))


def ensure_synthetic(cfg, progress: bool = True) -> Path:
    """The synthetic dataset for this config, written on first use and reused after."""
    spec = spec_of(cfg)
    base = Path(cfg.root) if cfg.get("root") else Path(cfg.get("cache_dir") or default_cache_dir())
    root = base if cfg.get("root") else base / ("synthetic_" + "_".join(str(v) for v in spec.values()))
    marker = root / "spec.json"
    if cfg.get("root"):
        # a user-given folder is read as it is, never rewritten
        if marker.exists():
            return root
        if root.exists() and any(root.iterdir()):
            from benchmark.errors import UserError
            raise UserError(f"dataset.root {root} exists and is not a synthetic dataset (no spec.json)")
    elif marker.exists() and json.loads(marker.read_text()) == spec:
        return root
    import fcntl
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:  # several processes: one writer
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and json.loads(marker.read_text()) == spec):
            write_synthetic(root, spec, progress)
    return root
