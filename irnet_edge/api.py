"""The Python API: what the command line does, from Python.

    model = irnet_edge.convert("runs/mcu_m4-fashion-mnist/model.pt")
    print(model.summary())
    logits = model.predict(images)          # computed by the generated C, compiled once on the host
    model.save("generated")                 # what `irnet-edge codegen --out generated` writes
    assert model.verify(images).exact == len(images)
    model.verify(target="cortex-a", isa="aarch64")   # on the first 100 test images of its dataset, under qemu-user

Inputs are a batch in one of two layouts, told apart by dtype:

- ``uint8``: raw pixels, NHWC ``(N, H, W, C)``, as the generated ``NAME_infer`` takes them;
- floating point: NCHW ``(N, C, H, W)`` values in [0, 1], as torchvision's ``ToTensor`` gives them. They are
  converted to pixels with ``round(x * 255)`` (exact for ``k / 255``, so ``ToTensor`` output round-trips); values
  outside [0, 1], NaN or infinities are refused.

Both numpy arrays and torch tensors are accepted. Every wrong input raises one
:class:`irnet_edge.errors.IrnetEdgeError` with a one-line message.
"""
import dataclasses
import hashlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import IrnetEdgeError

__all__ = ["CompiledModel", "convert", "evaluate"]


def _codegen_target(target):
    """The codegen Target of a target name or a resolved Deployment; IrnetEdgeError for anything else."""
    from .codegen import get_target
    from .verify.deployment import Deployment

    if isinstance(target, Deployment):
        return target.target
    return get_target(_check_target_name(target))


def _check_target_name(target) -> str:
    if not isinstance(target, str):
        raise IrnetEdgeError(f"target must be a string, one of host, cortex-m, cortex-a; got {target!r:.40}")
    return target


def _check_prefix(prefix: str) -> str:
    from .codegen import check_prefix

    if not isinstance(prefix, str):
        raise IrnetEdgeError(f"prefix must be a string (a C identifier), got {type(prefix).__name__}")
    try:
        return check_prefix(prefix)
    except IrnetEdgeError as exc:
        raise IrnetEdgeError(str(exc).replace("--prefix", "prefix")) from None


def _check_flag(value, what: str) -> bool:
    """A boolean argument: True or False (numpy's too), not a string such as "none" that Python reads as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise IrnetEdgeError(f"{what} must be True or False, got {value!r:.40}")
    return bool(value)


def _check_path(value, what: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise IrnetEdgeError(f"{what} must be a path (str or pathlib.Path), got {type(value).__name__}")
    return Path(value)


def _check_count(value, what: str, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or (high and value > high):
        limit = f"from 1 to {high:,}" if high else "of at least 1"
        raise IrnetEdgeError(f"{what} must be an integer {limit}, got {value!r:.40}")
    return int(value)


def _check_dataset(dataset, input_shape: tuple[int, int, int], num_classes: int) -> str:
    """A dataset name whose images have the model's input shape and whose classes the model's logits cover."""
    from .data import get_dataset_info

    if not isinstance(dataset, str):
        raise IrnetEdgeError(f"dataset must be a dataset's name, got {type(dataset).__name__}")
    info = get_dataset_info(dataset)
    if (info.channels, info.size, info.size) != tuple(input_shape) or info.num_classes > num_classes:
        raise IrnetEdgeError(f"{dataset} has {info.channels}x{info.size}x{info.size} images and {info.num_classes} "
                             f"classes, the model takes {'x'.join(map(str, input_shape))} and gives {num_classes} "
                             "logits")
    return dataset


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    ok = (isinstance(input_shape, (tuple, list)) and len(input_shape) == 3
          and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape))
    if not ok:
        raise IrnetEdgeError(f"input_shape must be (channels, height, width) as three positive integers, got "
                             f"{input_shape!r:.80}")
    return tuple(input_shape)


def _checkpoint_of_module(module: nn.Module, input_shape: tuple[int, int, int], name: str):
    """An in-memory checkpoint of module (weights and BatchNorm statistics as they are), serialised and read back
    through load_checkpoint, so it is checked like a file and has a SHA-256 for the generated banner."""
    from .nn import binary_layers, describe_module
    from .nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    for key, value in module.state_dict().items():  # named as the user's module names them, before any renaming
        if value.is_floating_point() and value.dtype != torch.float32:
            raise IrnetEdgeError(f"the module's {key} is {value.dtype}; irnet-edge deploys float32: call "
                                 "module.float() first")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise IrnetEdgeError(f"the module's {key} holds NaN or infinite values; re-train it or load finite "
                                 "weights")
    spec, state = describe_module(module, input_shape, name)  # copies, keyed as the model the spec builds
    binary = list(binary_layers(module))
    ede = {"k": float(getattr(binary[0], "k", 1.0)), "t": float(getattr(binary[0], "t", 1.0))} if binary else \
        {"k": 1.0, "t": 1.0}
    with tempfile.TemporaryDirectory(prefix="irnet-edge-convert-") as tmp:
        path = Path(tmp) / "model.pt"
        save_checkpoint(Checkpoint(spec=spec, state_dict=state, ede=ede, config={"arch": name}), path)
        try:
            return load_checkpoint(path)
        except IrnetEdgeError as exc:  # say "the module", not the temporary file's name
            message = str(exc).replace(f"checkpoint {path}: ", "the module: ")
            raise IrnetEdgeError(message.replace(str(path), "the module")) from None


def convert(checkpoint_or_module, *, input_shape=None, name: str | None = None,
            dataset: str | None = None) -> "CompiledModel":
    """Export a trained model to its deployment graph, ready to summarise, save as C, run, verify and bench.

    checkpoint_or_module: a checkpoint path (``str`` or ``Path``, as written by ``irnet-edge train``), a
        :class:`irnet_edge.nn.checkpoint.Checkpoint`, or an ``nn.Module`` that starts with
        :class:`irnet_edge.nn.InputNorm`: an ``nn.Sequential`` of supported layers, or any module whose forward
        ``torch.fx`` traces into supported layers, adds and the option-A shortcut (its weights and BatchNorm
        statistics are used as they are).
    input_shape: ``(channels, height, width)`` of one input; required for a module, optional otherwise (then it
        must match the checkpoint's).
    name: the model's name (default: the checkpoint's, or ``"custom"`` for a module); the default C prefix is
        derived from it.
    dataset: the dataset the model was trained on (one of irnet_edge.data.DATASETS), for a module or a checkpoint
        that does not say: ``verify`` and ``firmware`` then take its test images, ``save`` its first one for the
        self-test. It must have the model's input shape.

    Raises IrnetEdgeError for a missing or damaged checkpoint, an unsupported layer, or a model export cannot
    handle.
    """
    from .ir import export
    from .nn.checkpoint import Checkpoint, load_checkpoint

    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise IrnetEdgeError(f"name must be a non-empty string, got {name!r:.60}")
    if input_shape is not None:
        input_shape = _check_input_shape(input_shape)
    if isinstance(checkpoint_or_module, (str, Path)):
        ckpt = load_checkpoint(checkpoint_or_module)
    elif isinstance(checkpoint_or_module, Checkpoint):
        ckpt = checkpoint_or_module
    elif isinstance(checkpoint_or_module, nn.Module):
        if input_shape is None:
            raise IrnetEdgeError("convert(module) needs input_shape=(channels, height, width), e.g. (1, 28, 28)")
        ckpt = _checkpoint_of_module(checkpoint_or_module, input_shape, name or "custom")
    else:
        raise IrnetEdgeError("convert takes a checkpoint path, an irnet_edge Checkpoint or an nn.Module, got "
                             f"{type(checkpoint_or_module).__name__}")
    if name is not None and ckpt.spec.get("name") != name:
        ckpt = dataclasses.replace(ckpt, spec={**ckpt.spec, "name": name})
    shape = (ckpt.spec["input"]["channels"], ckpt.spec["input"]["height"], ckpt.spec["input"]["width"])
    if input_shape is not None and input_shape != shape:
        raise IrnetEdgeError(f"input_shape {input_shape} differs from the checkpoint's input {shape}; leave it out")
    if dataset is not None:
        trained_on = ckpt.config.get("dataset")
        if trained_on and trained_on != dataset:
            raise IrnetEdgeError(f"dataset={dataset!r}, but the checkpoint was trained on {trained_on}; leave it out")
        _check_dataset(dataset, shape, int(ckpt.spec["num_classes"]))
        ckpt = dataclasses.replace(ckpt, config={**ckpt.config, "dataset": dataset})
    if not ckpt.sha256:  # a Checkpoint made in memory: hash its serialised form
        buffer = io.BytesIO()
        torch.save(ckpt.to_dict(), buffer)
        ckpt = dataclasses.replace(ckpt, sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    return CompiledModel(ckpt, export(ckpt))


def evaluate(checkpoint, dataset: str | None = None, data_dir=None) -> dict:
    """Test accuracy of a trained model in PyTorch (``irnet-edge evaluate``).

    checkpoint: a path or a Checkpoint. dataset: one of irnet_edge.data.DATASETS (default: the one it was
    trained on). data_dir: a local copy of the dataset (default: the usual data locations).
    Returns ``{"dataset", "trained_on" (or None), "accuracy" (a fraction), "correct", "total", "loss" (mean
    cross-entropy)}``. Raises
    IrnetEdgeError for a damaged checkpoint, a dataset it does not fit, or data that cannot be found.
    """
    from .data import load_split
    from .nn.checkpoint import Checkpoint, load_checkpoint
    from .train import evaluate as accuracy_and_loss

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(_check_path(checkpoint,
                                                                                              "checkpoint"))
    dataset = dataset or ckpt.config.get("dataset")
    if dataset is None:
        where = checkpoint if isinstance(checkpoint, (str, Path)) else f"the checkpoint of {ckpt.spec['name']!r}"
        raise IrnetEdgeError(f"{where} does not say which dataset it was trained on; name one (dataset=, or "
                             "--dataset on the command line)")
    trained_on = ckpt.config.get("dataset")
    test = load_split(dataset, "test", data_dir)
    inp = ckpt.spec["input"]
    shape = (inp["channels"], inp["height"], inp["width"])
    got = tuple(test.images.shape[1:])
    labels = int(test.labels.max()) + 1 if len(test) else 0
    if got != shape or labels > ckpt.spec["num_classes"]:
        what = (f"{'x'.join(map(str, got))} images" if got != shape else f"{labels} classes")
        model = f"{'x'.join(map(str, shape))} images, {ckpt.spec['num_classes']} classes"
        raise IrnetEdgeError(f"{dataset} has {what}, the model takes {model}"
                             + (f" (it was trained on {trained_on})" if trained_on else "")
                             + "; evaluate it on a dataset of that shape")
    accuracy, loss = accuracy_and_loss(ckpt.build(), test.images, test.labels)
    return {"dataset": dataset, "trained_on": trained_on, "accuracy": accuracy,
            "correct": round(accuracy * len(test)), "total": len(test), "loss": loss}


class CompiledModel:
    """A model exported to irnet-edge's deployment graph (use :func:`convert`).

    Attributes: ``checkpoint`` (the Checkpoint), ``graph`` (the deployment graph), ``prefix`` (the default C
    symbol prefix).
    """

    def __init__(self, checkpoint, graph):
        from .codegen import default_prefix

        self.checkpoint = checkpoint
        self.graph = graph
        self.prefix = default_prefix(checkpoint.spec["name"])
        self._work: tempfile.TemporaryDirectory | None = None  # removed with the object
        self._runner: Path | None = None
        self._calls = 0

    def __repr__(self) -> str:
        return (f"CompiledModel({self.name!r}, input {'x'.join(map(str, self.input_shape))}, "
                f"{self.num_classes} classes, weights {self.weight_bytes:,} B, arena {self.arena_bytes:,} B)")

    # --- properties -----------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The model's name (from its spec)."""
        return self.checkpoint.spec["name"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one input."""
        inp = self.checkpoint.spec["input"]
        return (inp["channels"], inp["height"], inp["width"])

    @property
    def num_classes(self) -> int:
        """Number of logits per input."""
        return int(self.graph.num_classes)

    @property
    def arena_bytes(self) -> int:
        """Bytes of the static activation arena (RAM) of the host target's C, as planned exactly (fused ops,
        tensors in place). Each target fuses what its kernels do best, so its arena differs:
        ``plan("cortex-m").arena`` for a microcontroller, ``plan("cortex-a").arena`` (with the NEON binary
        convolutions' scratch) for a Cortex-A board."""
        return self.plan().arena

    @property
    def weight_bytes(self) -> int:
        """Bytes of constants (bit-packed weights, thresholds, folded transforms, the normalisation table) the
        generated C keeps in flash: those of the fused ops it runs (every target fuses the same constants)."""
        from .ir import ops

        return ops.weight_bytes(self.plan().graph)

    # --- inputs ---------------------------------------------------------------------------------------------

    def _pixels(self, x, what: str = "x") -> torch.Tensor:
        """x (see the module docstring) as a uint8 NHWC tensor."""
        c, h, w = self.input_shape
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        elif not isinstance(x, np.ndarray):
            raise IrnetEdgeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")
        if x.dtype == np.uint8:
            if x.ndim != 4 or x.shape[1:] != (h, w, c):
                hint = " (NCHW? uint8 pixels are NHWC: permute to (N, H, W, C))" if x.shape[1:] == (c, h, w) else ""
                raise IrnetEdgeError(f"{what}: uint8 pixels must be NHWC (N, {h}, {w}, {c}), got {x.shape}{hint}")
            pixels = np.ascontiguousarray(x)
        elif np.issubdtype(x.dtype, np.floating):
            if x.ndim != 4 or x.shape[1:] != (c, h, w):
                hint = " (NHWC? float inputs are NCHW: permute to (N, C, H, W))" if x.shape[1:] == (h, w, c) else ""
                raise IrnetEdgeError(f"{what}: float inputs must be NCHW (N, {c}, {h}, {w}) in [0, 1], got "
                                     f"{x.shape}{hint}")
            values = x.astype(np.float64)
            if not np.isfinite(values).all():
                raise IrnetEdgeError(f"{what} holds NaN or infinite values; float inputs must lie in [0, 1]")
            if values.size and (values.min() < 0 or values.max() > 1):
                raise IrnetEdgeError(f"{what} holds values in [{values.min():.4g}, {values.max():.4g}]; float inputs "
                                     "must lie in [0, 1] (pixels / 255), or pass uint8 pixels NHWC")
            pixels = np.ascontiguousarray(np.rint(values * 255).astype(np.uint8).transpose(0, 2, 3, 1))
        else:
            raise IrnetEdgeError(f"{what} has dtype {x.dtype}: pass uint8 pixels NHWC (N, {h}, {w}, {c}) or float "
                                 f"values in [0, 1] NCHW (N, {c}, {h}, {w})")
        if pixels.shape[0] == 0:
            raise IrnetEdgeError(f"{what} is an empty batch; pass at least one input")
        return torch.from_numpy(pixels)

    # --- what the CLI does --------------------------------------------------------------------------------

    def summary(self) -> str:
        """The per-layer table of ``irnet-edge summary``: output shapes, binary and full-precision parameters,
        bytes as deployed, binary and float MACs, totals. The bytes are the constants of the fused ops the C runs
        as codegen stores them (their total is ``save``'s manifest "weight_bytes"): each op's go to its main layer,
        of the layers it implements the one with the most parameters (a conv's, not the BatchNorm folded into it);
        the input normalisation's table, which the stem reads, to the normalisation.

        Raises IrnetEdgeError for an op with constants whose source names no layer of the model."""
        from .ir import ops
        from .nn.summary import format_summary, summarize

        shape = self.input_shape
        title = f"{self.name}: input {'x'.join(map(str, shape))}, {self.num_classes} classes"
        rows = summarize(self.checkpoint.build(), shape)
        by_name = {row.name: row for row in rows}
        for row in rows:
            row.deployed_bytes = 0
        for op in self.plan().graph.ops:
            nbytes = ops.get(op.kind).const_bytes(op)
            layers = [by_name[path] for path in ops.source_layers(op) if path in by_name]
            if nbytes and not layers:
                raise IrnetEdgeError(f"op {op.name} ({op.kind}) holds {nbytes} bytes of constants but its source "
                                     f"{op.source!r} names no layer of {self.name}")
            if "norm" in op.consts:  # the normalisation's table: its layer is the first the fused stem names
                layers[0].deployed_bytes += int(op.consts["norm"].nbytes)
                nbytes -= int(op.consts["norm"].nbytes)
            if nbytes:
                max(layers, key=lambda row: row.binary_params + row.float_params).deployed_bytes += nbytes
        return format_summary(rows, title)

    def plan(self, target: str = "host"):
        """The memory plan of target's C (``irnet-edge codegen --plan`` prints it): a Schedule with ``graph`` (the
        fused ops the C runs), ``placements`` (tensor name -> offset, size in bytes, first and last op index),
        ``arena`` (bytes), ``scratch`` (op index -> bytes) and ``format(title)``. Raises IrnetEdgeError for an
        unknown target."""
        from .codegen.schedule import schedule

        return schedule(self.graph, _codegen_target(target))

    def save(self, directory, target: str = "host", prefix: str | None = None, force: bool = False,
             selftest_input=None, data_dir=None) -> dict:
        """Write what ``irnet-edge codegen`` writes (C99 sources, the irnet runtime, build files, manifest.json)
        into directory, atomically.

        target: ``"host"``, ``"cortex-m"`` or ``"cortex-a"``. prefix: C symbol prefix (default: ``self.prefix``).
        force: replace a non-empty directory. selftest_input: the input embedded for ``NAME_selftest`` (one input,
        or a batch of one, in either layout); default: the first test image of the checkpoint's dataset when it
        is found in data_dir or the usual data locations, else seeded pseudo-random pixels (the manifest's
        "selftest" entry says which).

        Returns the manifest (a dict, as in manifest.json). Raises IrnetEdgeError for an unknown target, an
        invalid prefix, a non-empty directory without force or an unwritable one.
        """
        from .codegen import check_out_dir, render, write_tree

        out = _check_path(directory, "directory")
        chosen = _codegen_target(target)
        check_out_dir(out, _check_flag(force, "force"))
        prefix = _check_prefix(self.prefix if prefix is None else prefix)
        pixels, source = None, ""
        if selftest_input is not None:
            if isinstance(selftest_input, (np.ndarray, torch.Tensor)) and selftest_input.ndim == 3:
                selftest_input = selftest_input[None]
            batch = self._pixels(selftest_input, "selftest_input")
            if batch.shape[0] != 1:
                raise IrnetEdgeError(f"selftest_input must be one input, got a batch of {batch.shape[0]}")
            pixels, source = batch[0].numpy(), "an input given to CompiledModel.save"
        else:
            pixels, source = self._dataset_image(data_dir)
        files, manifest = render(self.graph, chosen, prefix, self.checkpoint.sha256, pixels, source)
        write_tree(files, out, force)
        return manifest

    def _dataset_image(self, data_dir=None):
        from .data import load_split

        dataset = self.checkpoint.config.get("dataset")
        if not dataset:
            return None, ""
        try:
            image = load_split(dataset, "test", data_dir, download=False).images[0].permute(1, 2, 0).numpy()
        except IrnetEdgeError:
            if data_dir is not None:  # asked for by name: its fault is the answer, not a random self-test
                raise
            return None, ""
        c, h, w = self.input_shape
        if image.shape == (h, w, c):
            return image, f"{dataset} test image 0"
        if data_dir is not None:
            raise IrnetEdgeError(f"the {dataset} images in {data_dir} are {'x'.join(map(str, image.shape))} (HWC), but "
                                 f"{self.name} takes {h}x{w}x{c}: pass the folder of the dataset it was trained on")
        return None, ""

    def predict(self, x) -> np.ndarray:
        """Logits computed by the generated C, compiled once with gcc on the host (cached for this object's life).

        x: uint8 pixels NHWC (N, H, W, C), or floats in [0, 1] NCHW (N, C, H, W); numpy or torch.
        Returns float32 logits, shape (N, num_classes). Raises IrnetEdgeError for a wrong shape, dtype or value,
        or when gcc or make is missing.
        """
        from .verify import toolchain
        from .verify.host import build_runner

        pixels = self._pixels(x)
        if self._runner is None:
            if self._work is None:
                self._work = tempfile.TemporaryDirectory(prefix="irnet-edge-predict-")
            self._runner, _ = build_runner(self.graph, self.prefix, self.checkpoint.sha256,
                                           Path(self._work.name) / "c")
        self._calls += 1
        work = Path(self._work.name)
        inputs, outputs = work / f"inputs{self._calls}.bin", work / f"outputs{self._calls}.bin"
        try:
            pixels.numpy().tofile(inputs)
            toolchain.run(self._runner, inputs, outputs)
            logits = np.fromfile(outputs, dtype=np.float32)
        finally:
            inputs.unlink(missing_ok=True)
            outputs.unlink(missing_ok=True)
        return logits.reshape(pixels.shape[0], self.num_classes)

    def reference(self, x) -> np.ndarray:
        """Logits of the reference executor (the deployed arithmetic in PyTorch) for the same inputs as
        :meth:`predict`: float32, shape (N, num_classes), bit for bit what the C computes."""
        from .ir import reference

        return reference.run_batched(self.graph, self._pixels(x)).numpy().astype(np.float32, copy=False)

    @property
    def dataset(self) -> str:
        """The dataset the model was trained on (its checkpoint's config); IrnetEdgeError when it does not say."""
        dataset = self.checkpoint.config.get("dataset")
        if not dataset:
            raise IrnetEdgeError(f"the checkpoint of {self.name!r} does not say which dataset it was trained on, so "
                                 "its test images cannot be chosen (from Python, pass the inputs)")
        return dataset

    def test_inputs(self, samples: int, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``samples`` test images of the model's dataset as uint8 pixels NHWC (N, H, W, C) and their
        labels (N,), integers. Raises IrnetEdgeError when the dataset cannot be found or does not fit the model."""
        from .data import load_split

        test = load_split(self.dataset, "test", data_dir)
        n = min(_check_count(samples, "samples"), len(test))
        c, h, w = self.input_shape
        if tuple(test.images.shape[1:]) != (c, h, w):
            raise IrnetEdgeError(f"{self.dataset} images are {'x'.join(map(str, test.images.shape[1:]))}, the model "
                                 f"takes {c}x{h}x{w}")
        return (test.images[:n].permute(0, 2, 3, 1).contiguous().numpy(),
                test.labels[:n].numpy())

    def agreement(self, samples: int = 10000, data_dir=None) -> tuple[int, float, float]:
        """How well the reference executor (the deployed arithmetic) matches the trained PyTorch model on the first
        ``samples`` test images: (images, top-1 agreement as a fraction, largest absolute logit difference)."""
        from .verify.compare import agreement

        pixels, _ = self.test_inputs(samples, data_dir)
        top1, worst = agreement(self.checkpoint, self.graph, torch.from_numpy(pixels).permute(0, 3, 1, 2))
        return len(pixels), top1, worst

    def verify(self, x=None, target: str = "host", isa: str | None = None, board: str | None = None,
               cpu: str | None = None, *, samples: int = 100, data_dir=None, prefix: str | None = None,
               arch: str | None = None):
        """Build the generated C for a target, run it on inputs and compare every logit bit for bit with the
        reference executor.

        x: the inputs (see the module docstring); default: the first ``samples`` test images of the model's
        dataset (from data_dir or the usual data locations). target: ``"host"`` (gcc), ``"cortex-a"`` (needs isa
        ``"aarch64"`` or ``"armv7"``; qemu-user) or ``"cortex-m"`` (needs an emulated board, e.g.
        ``"mps2-an386"``; optional cpu; qemu-system-arm), or a Deployment from
        ``irnet_edge.verify.deployment.resolve``. arch: deprecated spelling of isa.
        Returns a VerifyResult: ``samples``, ``exact`` (bit-exact samples), ``first_bad`` (index or None),
        ``mismatch`` (the first differing op, or None), ``where`` (the target as named in messages). Raises
        IrnetEdgeError for wrong inputs or options.
        """
        deployment = self._deployment(target, isa, board, cpu, arch)
        prefix = _check_prefix(self.prefix if prefix is None else prefix)
        labels, dataset = None, self.checkpoint.config.get("dataset") or ""
        if x is None:
            pixels, labels = self.test_inputs(_check_count(samples, "samples"), data_dir)
            pixels = torch.from_numpy(pixels)
        else:
            if samples != 100 or data_dir is not None:
                raise IrnetEdgeError("samples= and data_dir= choose test images; with inputs x, leave them out")
            pixels = self._pixels(x)
        result = deployment.verify(self.graph, prefix, self.checkpoint.sha256, pixels, dataset, labels)
        result.where = deployment.describe()
        return result

    def bench(self, target: str = "host", isa: str | None = None, board: str | None = None,
              cpu: str | None = None, baseline: bool = False, *, prefix: str | None = None, log=None,
              arch: str | None = None):
        """Count the instructions of one inference exactly, per op, under QEMU (``irnet-edge bench``).

        target, isa, board, cpu: as for :meth:`verify`. baseline: also measure the float32 baseline. log: called
        with progress messages (str). Returns a BenchResult (``.to_json()`` gives schema irnet-edge-bench/2;
        ``irnet_edge.bench.to_text`` the table). Raises IrnetEdgeError for wrong options or missing tools.
        """
        from .bench import bench as run_bench

        deployment = self._deployment(target, isa, board, cpu, arch, counting=True)
        prefix = _check_prefix(self.prefix if prefix is None else prefix)
        return run_bench(self.graph, prefix, self.checkpoint.sha256, deployment, _check_flag(baseline, "baseline"),
                         log=log or (lambda message: None))

    def firmware(self, directory, board: str, cpu: str | None = None, *, samples: int = 8, data_dir=None,
                 prefix: str | None = None, force: bool = False, clock: str = "full") -> str:
        """Write and build a firmware project for a board (``irnet-edge firmware``): app.elf, app.bin, app.hex,
        with the first ``samples`` test images of the model's dataset embedded for its demo. The project is built
        in a staging directory and appears whole or not at all. clock: ``"full"`` sets up the board's full clock
        (PLL or crystal, with fallback to the reset clock), ``"reset"`` keeps the clock the chip starts on.

        Returns the size report (flash and RAM against the board's). Raises IrnetEdgeError for an unknown board or
        core, a model that does not fit, a prefix that clashes with the project's files, a non-empty directory
        without force, or a failed build.
        """
        from .codegen import check_out_dir, default_prefix, write_tree
        from .codegen.firmware import (check_firmware_prefix, check_fit, load_board, project_names, render_firmware,
                                       resolve_cpu)
        from .verify.qemu import build_firmware, size_report

        out = _check_path(directory, "directory")
        check_out_dir(out, _check_flag(force, "force"))
        samples = _check_count(samples, "samples", 255)
        prefix = check_firmware_prefix(prefix or default_prefix(self.name, project_names()))
        chosen = load_board(board)
        check_fit(self.graph, chosen, samples, resolve_cpu(chosen, cpu)[0])  # the board's limits before the data
        pixels, labels = self.test_inputs(samples, data_dir)
        files = render_firmware(self.graph, prefix, self.checkpoint.sha256, chosen, cpu, pixels, labels,
                                self.dataset, clock=clock)
        write_tree(files, out, force, build=build_firmware)  # built in the staging directory, then renamed
        return size_report(out, chosen)

    @staticmethod
    def _deployment(target: str, isa, board, cpu, arch, counting: bool = False):
        """The target with its options, checked once (irnet_edge.verify.deployment); arch= is isa's old name."""
        from .verify.deployment import Deployment, resolve

        if isinstance(target, Deployment):  # resolved already (the command line does, to name its options)
            if any(option is not None for option in (isa, board, cpu, arch)):
                raise IrnetEdgeError("give the target's options to resolve(), not beside a resolved Deployment")
            return target
        aliases = {}
        if arch is not None:
            warnings.warn("arch= is deprecated, use isa=", DeprecationWarning, stacklevel=3)
            if isa not in (None, arch):
                raise IrnetEdgeError(f"isa={isa!r} and arch={arch!r} disagree; give isa= only")
            isa, aliases = arch, {"isa": "arch"}
        return resolve(_check_target_name(target), isa=isa, board=board, cpu=cpu, aliases=aliases, counting=counting)
