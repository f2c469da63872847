"""The training loop: seeded, resumable, CPU or CUDA, multi-GPU through torchrun (DDP).

Everything random is derived from (seed, epoch, rank), so an interrupted run resumed from its last
checkpoint ends with the same weights as one that was never interrupted.
"""
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import __version__
from ..data import get_dataset_info, load_split
from ..data.catalog import IMAGENET_MEAN, IMAGENET_STD
from ..errors import IrnetEdgeError
from ..nn.checkpoint import Checkpoint, atomic_write, load_checkpoint, save_checkpoint
from ..nn.layers import set_ede, use_traceable_ede
from ..nn.spec import build_model
from ..nn.zoo import check_input, zoo_spec
from .augment import random_crop_flip
from .ede import EDESchedule
from .plot import plot_history
from .recipes import resolve_recipe

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
CURVE_FILE = "training_curve.png"


@dataclass
class TrainConfig:
    arch: str = "mcu_m4"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    recipe: str = "paper"
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    ede_per: str | None = None
    padding_value: str = "zero"
    seed: int = 0
    train_limit: int | None = None  # train on the first N samples only (quick checks)
    spec: dict | None = None  # a custom model; arch then only names it
    # the compiled training step (torch.compile; on CUDA also channels-last and CUDA graphs): None = on for CUDA,
    # off for the CPU. How the run is executed, not what it computes: a resumed run may change it.
    compile: bool | None = None


EXECUTION_FIELDS = {"epochs", "compile"}  # may differ when a run is resumed

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str | None) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and not torch.cuda.is_available():
        raise IrnetEdgeError("--device cuda: this machine has no usable CUDA device (no GPU or no driver); train "
                             "with --device cpu or leave --device out")
    torch.backends.cudnn.benchmark = True
    if world == 1:
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return _Dist(device=chosen)
    local_rank = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return _Dist(rank=dist.get_rank(), world=world, device=chosen)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal conv and linear weights, as the official code; BN gamma 1, beta 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)


def model_spec(config: TrainConfig, normalization: str) -> dict:
    if config.spec is not None:
        return config.spec
    info = get_dataset_info(config.dataset)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalization == "imagenet" else (info.mean, info.std)
    if info.channels == 1 and normalization == "imagenet":
        mean, std = info.mean, info.std  # ImageNet statistics are RGB; grey images keep their own
    return zoo_spec(config.arch, info.channels, info.size, info.num_classes, mean, std, config.padding_value)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [0, 1]; the model's InputNorm does the rest."""
    return images.float() / 255.0


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000,
             device: torch.device | None = None) -> tuple[float, float]:
    """(accuracy as a fraction, mean cross-entropy) of a model in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, labels.shape[0], batch_size):
        x = to_input(images[start:start + batch_size].to(device))
        y = labels[start:start + batch_size].to(device)
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return correct / labels.shape[0], loss / labels.shape[0]


def _check_writable(out: Path) -> None:
    """Refuses, before any training, an --out that the checkpoint could not be written to: a file, or a folder
    (or the nearest existing parent of one to be made) without write permission or on a read-only file system."""
    where = out
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        raise IrnetEdgeError(f"{where} is not a folder, so {out} cannot hold a run; choose another --out")
    if not os.access(where, os.W_OK | os.X_OK):
        raise IrnetEdgeError(f"cannot write to {where} (read-only or no permission), so {out} cannot hold a run; "
                             "choose another --out")


def check_new_run(out: Path, force: bool) -> None:
    """Refuses, before any work, an --out a new run could not be written to or would replace without force."""
    _check_writable(Path(out))
    if (Path(out) / MODEL_FILE).exists() and not force:
        raise IrnetEdgeError(f"{out} already holds a training run; pass --force to replace it, or choose another "
                             "--out")


def _check_out_dir(out: Path, resume: bool, force: bool) -> Checkpoint | None:
    _check_writable(out)
    existing = out / MODEL_FILE
    if resume:
        if not existing.is_file():
            raise IrnetEdgeError(f"--resume: {existing} does not exist; start a new run without --resume")
        saved = load_checkpoint(existing)
        state = saved.train_state
        if (not isinstance(saved.config.get("train_config"), dict) or not isinstance(state, dict)
                or not isinstance(state.get("epoch"), int) or isinstance(state.get("epoch"), bool)
                or not all(isinstance(state.get(k), dict) for k in ("optimizer", "scheduler"))):
            raise IrnetEdgeError(f"--resume: {existing} holds no training state to continue (it was not written by "
                                 "`irnet-edge train`, or was edited); start a new run with --force")
        return saved
    if existing.exists() and not force:
        raise IrnetEdgeError(f"{out} already holds a training run; pass --resume to continue it "
                             "or --force to start over")
    return None


def _resumed_config(saved: Checkpoint, requested: TrainConfig, explicit: set[str]) -> TrainConfig:
    config = TrainConfig(**{f.name: saved.config["train_config"].get(f.name) for f in fields(TrainConfig)})
    clashes = [f"--{n.replace('_', '-')}" for n in sorted(explicit - EXECUTION_FIELDS)
               if getattr(requested, n) != getattr(config, n)]
    if clashes:
        raise IrnetEdgeError(f"--resume continues the saved run; {', '.join(clashes)} differ from it "
                             "(only --epochs may change, to extend a finished run)")
    if "epochs" in explicit:
        config.epochs = requested.epochs
    config.compile = requested.compile
    return config


@dataclass(frozen=True)
class StepPlan:
    """How the training step runs. Eager (the CPU default) is today's loop, bit for bit. Compiled: one
    torch.compile'd function (input scaling, the model with ede_sign_traceable, cross-entropy; AOTAutograd
    compiles its backward), and on CUDA channels-last activations and weights and CUDA graphs
    (mode="reduce-overhead", single process only). No mixed precision: see README, Training."""

    compiled: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False

    @property
    def mode(self) -> str | None:
        return "reduce-overhead" if self.cuda_graphs else None

    def describe(self) -> str:
        if not self.compiled:
            return "eager"
        extras = [name for name, on in (("channels-last", self.channels_last), ("CUDA graphs", self.cuda_graphs))
                  if on]
        return "compiled" + (f" ({', '.join(extras)})" if extras else "")


def step_plan(compile: bool | None, device: torch.device, world: int = 1) -> StepPlan:
    """compile None: on for CUDA, off for the CPU (where eager is bit-reproducible and compiling costs more
    than it saves on small models). torchrun (world > 1) runs eager: DDP under torch.compile is not tested here."""
    cuda = device.type == "cuda"
    if compile is None:
        compile = cuda and world == 1
    if compile and world > 1:
        raise IrnetEdgeError("--compile applies to single-process runs; under torchrun pass --no-compile (or leave "
                             "it out)")
    if not compile:
        return StepPlan()
    return StepPlan(compiled=True, channels_last=cuda, cuda_graphs=cuda)


def make_step(net: nn.Module, plan: StepPlan) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    """(uint8 images, labels) -> (mean cross-entropy, logits): the forward half of one training step."""
    def forward_loss(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_input(images)
        if plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = net(x)
        return F.cross_entropy(logits, labels), logits

    if not plan.compiled:
        return forward_loss
    return torch.compile(forward_loss, mode=plan.mode, fullgraph=True, dynamic=False)


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False, force: bool = False,
          explicit: set[str] | None = None, device: str | None = None, progress: bool = True,
          log: Callable[[str], None] = print, stop_after: int | None = None) -> dict:
    """Train, writing OUT/model.pt, OUT/metrics.json and OUT/training_curve.png after every epoch.

    stop_after ends this call after that many epochs (a time-boxed job); resume=True continues it.
    """
    out = Path(out_dir)
    if config.spec is None:  # the ImageNet networks: refused before anything is read or written
        info = get_dataset_info(config.dataset)
        check_input(config.arch, info.channels, info.size, info.num_classes, info.name)
    env = _setup_distributed(device)
    saved = _check_out_dir(out, resume, force)
    if saved is not None:
        config = _resumed_config(saved, config, explicit or set())
    recipe = resolve_recipe(config.arch if config.spec is None else None, config.recipe,
                            epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay,
                            batch_size=config.batch_size, ede_per=config.ede_per)
    schedule = EDESchedule(recipe.t_min, recipe.t_max, recipe.ede_per)
    for name in ("lr", "weight_decay"):
        value = getattr(recipe, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 and (value or name != "lr")):
            wanted = "positive" if name == "lr" else "non-negative"
            raise IrnetEdgeError(f"--{name.replace('_', '-')} {value!r} is not a finite, {wanted} number")
    if recipe.batch_size % env.world:
        raise IrnetEdgeError(f"batch size {recipe.batch_size} does not split over {env.world} processes")
    info = get_dataset_info(config.dataset)

    train_set = load_split(config.dataset, "train", config.data_dir)
    test_set = load_split(config.dataset, "test", config.data_dir)
    if config.train_limit:
        train_set.images, train_set.labels = (train_set.images[:config.train_limit],
                                              train_set.labels[:config.train_limit])
    # decoded once, kept on the device as uint8 (augmentation runs there too)
    train_images, train_labels = train_set.images.to(env.device), train_set.labels.to(env.device)
    test_images, test_labels = test_set.images.to(env.device), test_set.labels.to(env.device)
    plan = step_plan(config.compile, env.device, env.world)

    spec = model_spec(config, recipe.normalization)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    init_weights(model)
    model.to(env.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    # closed-form cosine (CosineAnnealingLR's values) so that extending a finished run stays well defined
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / recipe.epochs)))
    history, start_epoch = [], 0
    if saved is not None:
        model.load_state_dict(saved.state_dict)
        try:
            optimizer.load_state_dict(saved.train_state["optimizer"])
            scheduler.load_state_dict(saved.train_state["scheduler"])
        except Exception as exc:  # ValueError, KeyError, TypeError: a state of another model or an edited one
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise IrnetEdgeError(f"--resume: the optimizer state in {out / MODEL_FILE} does not fit its model "
                                 f"({detail}); start a new run with --force") from None
        history = saved.metrics.get("history", [])
        start_epoch = saved.train_state["epoch"]
        if start_epoch >= recipe.epochs:
            log(f"{out} is already trained for {start_epoch} epochs; pass a larger --epochs to extend it")
            return saved.metrics
    if plan.compiled:
        use_traceable_ede(model)
    net = nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    forward_loss = make_step(net, plan)

    per_rank_batch = recipe.batch_size // env.world
    batches = train_labels.shape[0] // env.world // per_rank_batch
    if batches == 0:  # refused rather than shrinking the batch: the recipe's lr belongs to its batch size
        limit = f"--train-limit {config.train_limit} leaves" if config.train_limit else f"{info.name} has"
        raise IrnetEdgeError(f"{limit} {train_labels.shape[0]} training images, fewer than one batch of "
                             f"{recipe.batch_size}{f' over {env.world} processes' if env.world > 1 else ''}; pass "
                             f"--batch-size {max(env.world, train_labels.shape[0] // env.world * env.world)} or "
                             "less, or a larger --train-limit")
    total_iters = recipe.epochs * batches
    k, t = schedule.at(start_epoch, recipe.epochs)
    train_config = asdict(config) | {"epochs": recipe.epochs}
    if env.main:
        log(f"training {spec['name']} on {info.name} ({train_labels.shape[0]} train / {len(test_set)} test) "
            f"on {env.device} x{env.world}: {recipe.epochs} epochs, lr {recipe.lr}, batch {recipe.batch_size}, "
            f"EDE t {recipe.t_min}->{recipe.t_max} per {recipe.ede_per}, {plan.describe()} step")
    last_epoch = recipe.epochs if stop_after is None else min(recipe.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, last_epoch):
        started = time.time()
        net.train()
        order = torch.randperm(train_labels.shape[0], generator=torch.Generator().manual_seed(config.seed * 100003
                                                                                               + epoch))
        mine = order[env.rank::env.world].to(env.device)
        augment_rng = torch.Generator().manual_seed((config.seed * 100003 + epoch) * 1009 + env.rank)
        loss_sum = torch.zeros((), device=env.device)
        bad_step = torch.full((), -1, dtype=torch.long, device=env.device)  # first step with a non-finite loss
        correct = torch.zeros((), device=env.device, dtype=torch.long)
        if recipe.ede_per == "epoch":
            k, t = schedule.at(epoch, recipe.epochs)
            set_ede(model, k, t)
        bar = tqdm(range(batches), desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False,
                   disable=None if progress and env.main else True, unit="batch")  # None: only on a terminal
        for i in bar:
            if recipe.ede_per == "iteration":
                k, t = schedule.at(epoch * batches + i, total_iters)
                set_ede(model, k, t)
            idx = mine[i * per_rank_batch:(i + 1) * per_rank_batch]
            images = random_crop_flip(train_images[idx], info.crop_padding, info.flip, augment_rng)
            y = train_labels[idx]
            if plan.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            loss, logits = forward_loss(images, y)
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss.detach()), i, bad_step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * y.shape[0]
            correct += (logits.argmax(1) == y).sum()
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if i % 20 == 19 or i == batches - 1:  # one synchronisation every 20 steps, as the progress bar's
                step = _first_bad_step(bad_step, batches, env)
                if step is not None:
                    bar.close()
                    raise _diverged(out, epoch, recipe.epochs,
                                    f"the loss became non-finite at step {step + 1}/{batches}", recipe.lr, env)
                name = _non_finite(model)  # binarization turns NaN activations into -1: the loss can stay finite
                if _agree(name is not None, env):
                    bar.close()
                    what = f"its weights became non-finite ({name or 'on another process'}) by step {i + 1}/{batches}"
                    raise _diverged(out, epoch, recipe.epochs, what, recipe.lr, env)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        seen = batches * per_rank_batch
        if env.world > 1:
            stats = torch.stack([loss_sum, correct.float()])
            dist.all_reduce(stats)
            loss_sum, correct, seen = stats[0], stats[1], seen * env.world
        name = _non_finite(model)
        problem = None if name is None else f"its weights became non-finite ({name})"
        if env.main and problem is None:
            test_acc, test_loss = evaluate(model, test_images, test_labels, device=env.device)
            if not (math.isfinite(test_loss) and math.isfinite(loss_sum.item())):
                problem = f"its test loss became {test_loss:.3g} (train loss {loss_sum.item() / seen:.3g})"
        if _agree(problem is not None, env):
            raise _diverged(out, epoch, recipe.epochs, problem or "another process's model became non-finite",
                            recipe.lr, env)
        if env.main:
            history.append({"epoch": epoch + 1, "train_loss": loss_sum.item() / seen,
                            "train_accuracy": correct.item() / seen, "test_loss": test_loss,
                            "test_accuracy": test_acc, "lr": lr, "k": k, "t": t,
                            "seconds": time.time() - started})
            metrics = _metrics(history, spec, config, recipe, env, len(train_labels), len(test_set), plan)
            ckpt = Checkpoint(spec=spec, state_dict={n: v.detach().cpu().contiguous()  # channels-last -> NCHW
                                                     for n, v in model.state_dict().items()},
                              ede=schedule.state(k, t),
                              config={"train_config": train_config, "recipe": asdict(recipe),
                                      "arch": spec["name"], "dataset": info.name},
                              metrics=metrics,
                              train_state={"epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                                           "scheduler": scheduler.state_dict()})
            _write_outputs(out, ckpt, metrics)
            h = history[-1]
            log(f"epoch {epoch + 1}/{recipe.epochs}: loss {h['train_loss']:.4f} train {h['train_accuracy']:.4f} "
                f"test {test_acc:.4f} ({h['seconds']:.1f} s, k {k:.3g}, t {t:.3g})")
        if env.world > 1:
            dist.barrier()
    if env.world > 1:
        dist.destroy_process_group()
    return json.loads((out / METRICS_FILE).read_text()) if env.main else {}


def _non_finite(model: nn.Module) -> str | None:
    """The first parameter or buffer holding NaN or inf, or None (one synchronisation on a GPU)."""
    values = [(name, value) for name, value in model.state_dict().items() if value.is_floating_point()]
    finite = torch.stack([torch.isfinite(value).all() for _, value in values])
    return None if bool(finite.all()) else values[int(torch.nonzero(~finite)[0, 0])][0]


def _first_bad_step(bad_step: torch.Tensor, batches: int, env: _Dist) -> int | None:
    """The first step of this epoch whose loss was non-finite on any process, or None."""
    first = torch.where(bad_step < 0, torch.full_like(bad_step, batches), bad_step)
    if env.world > 1:
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
    step = int(first.item())
    return None if step >= batches else step


def _agree(flag: bool, env: _Dist) -> bool:
    """True on every process when it is True on any (so that they stop together)."""
    if env.world == 1:
        return flag
    value = torch.tensor(int(flag), device=env.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _diverged(out: Path, epoch: int, epochs: int, what: str, lr: float, env: _Dist) -> IrnetEdgeError:
    """Training stops at the first non-finite loss or weight; what the last finite epoch wrote stays as it is."""
    saved = out / MODEL_FILE
    if epoch > 0 and saved.is_file():
        kept = f"{saved} still holds epoch {epoch}, the last finite one"
    elif saved.exists():
        kept = f"{saved} was left as it was"
    else:
        kept = "nothing was written"
    if env.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
    return IrnetEdgeError(f"training diverged in epoch {epoch + 1}/{epochs}: {what} with learning rate {lr:g}; "
                          f"{kept}. Lower the learning rate, e.g. --lr {lr / 10:g}")


def _metrics(history, spec, config, recipe, env, n_train, n_test, plan) -> dict:
    best = max(history, key=lambda h: h["test_accuracy"])
    return {"arch": spec["name"], "dataset": config.dataset, "epochs": len(history),
            "test_accuracy": history[-1]["test_accuracy"], "best_test_accuracy": best["test_accuracy"],
            "best_epoch": best["epoch"], "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history),
            "device": str(env.device), "world_size": env.world, "seed": config.seed, "train_samples": n_train,
            "test_samples": n_test, "recipe": asdict(recipe), "package_version": __version__,
            "step": plan.describe(),
            "history": history}


def _write_outputs(out: Path, ckpt: Checkpoint, metrics: dict) -> None:
    save_checkpoint(ckpt, out / MODEL_FILE)
    atomic_write(out / METRICS_FILE, lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))
    atomic_write(out / CURVE_FILE, lambda tmp: plot_history(metrics, tmp))
