"""The checkpoint format: one torch file holding only plain data and tensors.

It is always read with torch.load(weights_only=True), so a checkpoint cannot run code. The architecture
travels as a spec (data), never as pickled classes.
"""
import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..errors import IrnetEdgeError
from .layers import set_ede
from .spec import build_model

CHECKPOINT_FORMAT = "irnet-edge-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    spec: dict
    state_dict: dict
    ede: dict  # {"k", "t", "t_min", "t_max", "per"}
    config: dict = field(default_factory=dict)  # how it was trained: arch, dataset, recipe, seed ...
    metrics: dict = field(default_factory=dict)
    train_state: dict | None = None  # optimizer, scheduler, epoch, rng: only what resuming needs
    package_version: str = __version__
    sha256: str = ""  # of the file it was read from

    def to_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "package_version": self.package_version, "spec": self.spec, "state_dict": self.state_dict,
                "ede": self.ede, "config": self.config, "metrics": self.metrics, "train_state": self.train_state}

    def build(self) -> nn.Sequential:
        """The trained model in eval mode with its saved EDE state."""
        model = build_model(self.spec)
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if missing or unexpected:
            raise IrnetEdgeError(f"checkpoint weights do not match its architecture (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}); the file was edited or is damaged")
        set_ede(model, self.ede["k"], self.ede["t"])
        return model.eval()


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename, so a crash never leaves a half-written file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(checkpoint.to_dict(), tmp))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _corrupt(path: Path, exc: Exception) -> IrnetEdgeError:
    detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
    return IrnetEdgeError(f"{path} is not a readable checkpoint (truncated or corrupt: {detail}); "
                          "re-train or copy it again")


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise IrnetEdgeError(f"checkpoint {path} does not exist; train one with `irnet-edge train --out DIR` "
                             "and pass DIR/model.pt")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported global" in line), "")
        if not reason:  # damaged bytes, not a refused class or function
            raise _corrupt(path, exc) from None
        raise IrnetEdgeError(f"{path} holds objects that could run code, so it was not loaded "
                             f"(weights_only=True refused it: {reason.strip()[:160]}). "
                             "Only checkpoints written by irnet-edge are accepted") from None
    except Exception as exc:  # torch.load on damaged bytes fails with almost any exception type
        raise _corrupt(path, exc) from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise IrnetEdgeError(f"{path} is a PyTorch file but not an irnet-edge checkpoint; export a custom "
                             "model with irnet_edge.nn.checkpoint.save_checkpoint (see README)")
    if raw.get("format_version") != CHECKPOINT_VERSION:
        raise IrnetEdgeError(f"{path} uses checkpoint format {raw.get('format_version')}, this irnet-edge "
                             f"({__version__}) reads format {CHECKPOINT_VERSION}; upgrade irnet-edge")
    return Checkpoint(spec=raw["spec"], state_dict=raw["state_dict"], ede=raw["ede"], config=raw["config"],
                      metrics=raw["metrics"], train_state=raw["train_state"],
                      package_version=raw["package_version"], sha256=file_sha256(path))
