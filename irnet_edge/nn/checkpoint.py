"""The checkpoint format: one torch file holding only plain data and tensors.

It is always read with torch.load(weights_only=True), so a checkpoint cannot run code. The architecture
travels as a spec (data), never as pickled classes.

Before anything uses a file, load_checkpoint checks it: every zip member's CRC-32 (torch.load does not),
the container's entries and their types, and the state_dict against the model the spec builds (on the
meta device, so a spec declaring absurd sizes allocates nothing): keys, shapes, dtypes, storage, finiteness.
"""
import hashlib
import io
import math
import os
import pickle
import zipfile
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
MAX_NESTING = 64  # the zoo's checkpoints nest 7 levels deep
MAX_OBJECTS = 1_000_000  # containers and values in one checkpoint (the zoo's: a few thousand)


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
        problem = state_dict_problem(self.spec, model.state_dict(), self.state_dict)
        if problem:
            raise IrnetEdgeError(f"checkpoint weights do not match its architecture ({problem}); the file was "
                                 "edited or is damaged")
        model.load_state_dict(self.state_dict)
        set_ede(model, self.ede["k"], self.ede["t"])
        return model.eval()


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename, so a crash never leaves a half-written file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise IrnetEdgeError(f"cannot write {path}: {reason[:1].lower()}{reason[1:]}") from None
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    # serialised in memory first: torch.save reports a full disk as a RuntimeError, a plain write as the OSError
    # (ENOSPC) that the CLI turns into one line naming the path
    buffer = io.BytesIO()
    torch.save(checkpoint.to_dict(), buffer)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(buffer.getvalue()))


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


def _damaged(path: Path, what: str) -> IrnetEdgeError:
    return IrnetEdgeError(f"{path} is damaged: {what}; re-save or re-train it")


def _verified_bytes(path: Path) -> bytes:
    """The file's bytes, once every zip member has been read back against its CRC-32 and declared size."""
    data = path.read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # not a zip file (truncated, garbage, a bare pickle, the pre-1.6 torch format)
        raise _corrupt(path, exc) from None
    with archive:
        members = archive.infolist()
        if not members:
            raise _corrupt(path, ValueError("an empty zip archive"))
        for info in members:
            if max(info.file_size, info.compress_size) > len(data):
                raise _damaged(path, f"member {info.filename} declares {info.file_size:,} bytes in a file of "
                                     f"{len(data):,} bytes")
        if all(info.CRC == 0 for info in members if info.file_size):
            raise IrnetEdgeError(f"{path} carries no CRC-32 checksums (saved with torch.serialization.config.save."
                                 "compute_crc32 = False?), so its integrity cannot be checked; re-save it with "
                                 "irnet_edge.nn.checkpoint.save_checkpoint")
        for info in members:
            try:
                with archive.open(info) as member:
                    while member.read(1 << 20):
                        pass
            except zipfile.BadZipFile as exc:
                if "CRC" in str(exc):
                    raise _damaged(path, f"member {info.filename} fails its CRC check") from None
                raise _damaged(path, f"member {info.filename} is unreadable ({exc})") from None
            except Exception as exc:  # zlib.error, EOFError, NotImplementedError (compression), RuntimeError ...
                detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
                raise _damaged(path, f"member {info.filename} is unreadable ({detail})") from None
    return data


def _check_nesting(raw, where: str) -> None:
    """Iteratively, so that deep nesting, reference cycles or shared-reference bombs end in one clear error."""
    stack, seen = [(raw, 1)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if depth > MAX_NESTING:
            raise IrnetEdgeError(f"{where} nests containers more than {MAX_NESTING} levels deep (or in a cycle); "
                                 "irnet-edge never writes that: the file was edited or is damaged")
        if seen > MAX_OBJECTS:
            raise IrnetEdgeError(f"{where} holds more than {MAX_OBJECTS:,} objects; irnet-edge never writes that: "
                                 "the file was edited or is damaged")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend((item, depth + 1) for item in value)


def _kind(value) -> str:
    return "None" if value is None else type(value).__name__


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_container(raw: dict, where: str) -> None:
    """The checkpoint's own entries (the spec's layer fields are the spec's business: build_model)."""
    expected = {"spec": dict, "state_dict": dict, "ede": dict, "config": dict, "metrics": dict,
                "train_state": (dict, type(None)), "package_version": str}
    for name, kind in expected.items():
        if name not in raw:
            raise IrnetEdgeError(f"{where} lacks its {name!r} entry; the file was edited or was not written by "
                                 "irnet_edge.nn.checkpoint.save_checkpoint")
        if not isinstance(raw[name], kind):
            wanted = "a dict or None" if name == "train_state" else f"a {kind.__name__}"
            raise IrnetEdgeError(f"{where}: its {name!r} entry is {_kind(raw[name])}, expected {wanted}; the file "
                                 "was edited or is damaged")
    ede = raw["ede"]
    for name in ("k", "t"):
        if not _is_number(ede.get(name)):
            raise IrnetEdgeError(f"{where}: ede[{name!r}] is {ede.get(name)!r}, expected a finite number; the file "
                                 "was edited or is damaged")
    spec = raw["spec"]
    inp = spec.get("input")
    if not isinstance(spec.get("layers"), list):
        raise IrnetEdgeError(f"{where}: its spec has no 'layers' list; the file was edited or is damaged")
    if not isinstance(inp, dict) or not all(_is_count(inp.get(n)) for n in ("channels", "height", "width")):
        raise IrnetEdgeError(f"{where}: spec['input'] is {inp!r:.120}, expected positive integers channels, height "
                             "and width; the file was edited or is damaged")
    if not _is_count(spec.get("num_classes")) or not isinstance(spec.get("name"), str):
        raise IrnetEdgeError(f"{where}: its spec needs a string 'name' and a positive integer 'num_classes' "
                             f"(found {spec.get('name')!r:.60} and {spec.get('num_classes')!r:.60}); the file was "
                             "edited or is damaged")
    for key, value in raw["state_dict"].items():
        if not isinstance(key, str):
            raise IrnetEdgeError(f"{where}: state_dict key {key!r:.60} is {_kind(key)}, not a string; the file was "
                                 "edited or is damaged")
        if not isinstance(value, torch.Tensor):
            raise IrnetEdgeError(f"{where}: state_dict entry {key!r} is {_kind(value)}, not a tensor; the file was "
                                 "edited or is damaged")


def _layer_of(spec: dict, key: str) -> str:
    """'3.weight' -> '3 (irconv2d)'; '2.body.0.weight' -> '2.body.0 (conv2d)' (best effort)."""
    parts = key.split(".")[:-1]
    nodes, node = spec.get("layers"), None
    for part in parts:
        if isinstance(node, dict) and node.get("type") == "residual" and part in ("body", "shortcut"):
            nodes = node.get(part)
            continue
        if not part.isdigit() or not isinstance(nodes, list) or int(part) >= len(nodes):
            return ".".join(parts)
        node = nodes[int(part)]
        if isinstance(node, dict) and node.get("type") == "sequential":
            nodes = node.get("layers")
    kind = node.get("type") if isinstance(node, dict) else None
    return f"{'.'.join(parts)} ({kind})" if kind else ".".join(parts)


def _some(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def state_dict_problem(spec: dict, expected: dict, state_dict: dict) -> str | None:
    """What is wrong with state_dict as the weights of the model whose state_dict() is `expected`, or None:
    keys, types, shapes, dtypes, layout and backing storage (finiteness is load_checkpoint's)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = ([f"lacks {_some(missing)}"] if missing else []) + (
            [f"has {_some(unexpected)}, which the spec's model does not"] if unexpected else [])
        return "the state_dict " + " and ".join(parts)
    for key, want in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            return f"state_dict entry {key!r} is {_kind(value)}, not a tensor"
        layer = _layer_of(spec, key)
        if tuple(value.shape) != tuple(want.shape):
            return f"state_dict entry {key!r} has shape {tuple(value.shape)}, the spec's layer {layer} needs " \
                   f"{tuple(want.shape)}"
        if value.dtype != want.dtype:
            return f"state_dict entry {key!r} has dtype {value.dtype}, the spec's layer {layer} needs {want.dtype}"
        if value.layout != torch.strided or value.device.type == "meta":
            return f"state_dict entry {key!r} is a {value.layout} tensor on {value.device}, not plain strided data"
        stored = value.untyped_storage().nbytes()
        if value.numel() * value.element_size() > stored:  # a zero-stride view: no file backs its values
            return f"state_dict entry {key!r} declares {value.numel():,} values on {stored:,} bytes of data"
    return None


def _check_weights(spec: dict, state_dict: dict, where: str) -> None:
    """The state_dict against the model the spec builds on the meta device (nothing allocated), then a
    shape-only forward pass of the declared input, so export and codegen meet no surprises."""
    try:
        with torch.device("meta"):
            model = build_model(spec)
    except IrnetEdgeError as exc:
        raise IrnetEdgeError(f"{where}: {exc}") from None
    except Exception as exc:  # a spec field of the wrong type or value
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise IrnetEdgeError(f"{where}: its spec does not build a model ({type(exc).__name__}: {detail}); the file "
                             "was edited or is damaged") from None
    problem = state_dict_problem(spec, model.state_dict(), state_dict)
    if problem:
        raise IrnetEdgeError(f"{where}: {problem}; the file was edited or is damaged")
    for key, value in state_dict.items():
        if value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise IrnetEdgeError(f"{where}: state_dict entry {key!r} (layer {_layer_of(spec, key)}) holds {bad} "
                                     "non-finite value(s) (NaN or inf); training diverged or the file was edited: "
                                     "re-train it")
    inp = spec["input"]
    shape = (inp["channels"], inp["height"], inp["width"])
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros((1, *shape), device="meta"))
    except Exception as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise IrnetEdgeError(f"{where}: its spec does not fit its declared input {shape} ({detail}); the file was "
                             "edited or is damaged") from None
    if tuple(out.shape) != (1, spec["num_classes"]):
        raise IrnetEdgeError(f"{where}: its model gives output {tuple(out.shape)[1:]} per input, the spec declares "
                             f"{spec['num_classes']} classes; the file was edited or is damaged")


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        raise IrnetEdgeError(f"checkpoint {path} is a directory; pass the checkpoint file in it "
                             f"(e.g. {path / 'model.pt'})")
    if not path.is_file():
        raise IrnetEdgeError(f"checkpoint {path} does not exist; train one with `irnet-edge train --out DIR` "
                             "and pass DIR/model.pt")
    data = _verified_bytes(path)
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported global" in line), "")
        if not reason:  # damaged bytes, not a refused class or function
            raise _corrupt(path, exc) from None
        raise IrnetEdgeError(f"{path} holds objects that could run code, so it was not loaded "
                             f"(weights_only=True refused it: {reason.strip()[:160]}). "
                             "Only checkpoints written by irnet-edge are accepted") from None
    except Exception as exc:  # torch.load on damaged bytes fails with almost any exception type
        raise _corrupt(path, exc) from None
    where = f"checkpoint {path}"
    _check_nesting(raw, where)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise IrnetEdgeError(f"{path} is a PyTorch file but not an irnet-edge checkpoint; export a custom "
                             "model with irnet_edge.nn.checkpoint.save_checkpoint (see README)")
    if raw.get("format_version") != CHECKPOINT_VERSION:
        raise IrnetEdgeError(f"{path} uses checkpoint format {raw.get('format_version')!r:.40}, this irnet-edge "
                             f"({__version__}) reads format {CHECKPOINT_VERSION}; upgrade irnet-edge")
    _check_container(raw, where)
    _check_weights(raw["spec"], raw["state_dict"], where)
    return Checkpoint(spec=raw["spec"], state_dict=raw["state_dict"], ede=raw["ede"], config=raw["config"],
                      metrics=raw["metrics"], train_state=raw["train_state"],
                      package_version=raw["package_version"], sha256=hashlib.sha256(data).hexdigest())
