"""Atomic files and checkpoints that load with ``torch.load(weights_only=True)``."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 -> what open() would give
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location="cpu") -> Dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_resumable(results_dir: Path, fingerprint: str, exclude: Optional[Path] = None) -> Optional[Path]:
    """Newest ``checkpoints/last.pt`` under ``results_dir`` whose run has the same fingerprint
    (method, encoder, data, trainer and seed) and has not finished pretraining."""
    best = None
    for fp_file in Path(results_dir).glob("**/checkpoints/fingerprint.txt"):
        ckpt = fp_file.parent / "last.pt"
        run = fp_file.parent.parent
        if exclude is not None and run.resolve() == Path(exclude).resolve():
            continue
        if fp_file.read_text().strip() != fingerprint or not ckpt.exists() or (fp_file.parent / "DONE").exists():
            continue
        if best is None or ckpt.stat().st_mtime > best.stat().st_mtime:
            best = ckpt
    return best
