"""The command line: a thin Click layer over irnet_edge's modules.

torch (and every module that imports it) is imported inside the commands, so `irnet-edge --help` answers at
once; the names offered as choices come from irnet_edge.names.
"""
import json
from pathlib import Path

import click

from . import __version__
from .errors import IrnetEdgeError
from .names import ARCHS, DATASETS, EDE_PER, ISAS, RECIPES, TARGETS, board_names, cpu_names

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # a bare `irnet-edge` prints its help


def _usage_error(exc: click.UsageError) -> click.ClickException:
    """A usage error as one 'Error: ...' line (exit status 1) that says where the help is."""
    where = exc.ctx.command_path if exc.ctx is not None else "irnet-edge"
    return click.ClickException(f"{' '.join(exc.format_message().split())} (see `{where} --help`)")


class _Group(click.Group):
    """Every error is one clean 'Error: ...' line and exit status 1, never a traceback: IrnetEdgeError, an
    operating system error (a full disk, a read-only folder) and Click's usage errors (unknown option, missing
    argument, bad choice; Click alone would print usage, hint and error, exit status 2)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            raise _usage_error(exc) from None
        except IrnetEdgeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            reason = exc.strerror or str(exc)
            raise click.ClickException(f"cannot access{where}: {reason[:1].lower()}{reason[1:]}") from None


def _examples(*lines: str) -> str:
    """The end of a command's --help: two or three example command lines, kept as written (Click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


@click.group(cls=_Group, epilog=_examples(
    "irnet-edge train --arch mcu_m4 --dataset mnist --out runs/m4",
    "irnet-edge verify runs/m4/model.pt --target cortex-a --isa aarch64",
    "irnet-edge firmware runs/m4/model.pt --board mps2-an386 --out fw && irnet-edge run fw"))
@click.version_option(__version__, prog_name="irnet-edge")
def main():
    """Train IR-Net binary neural networks and deploy them as bit-exact C."""


@main.command(epilog=_examples(
    "irnet-edge train --arch mcu_m4 --dataset mnist --epochs 10 --out runs/m4",
    "irnet-edge train --spec mynet.json --dataset fashion-mnist --out runs/mynet",
    "irnet-edge train --out runs/m4 --resume --epochs 20"))
@click.option("--arch", type=click.Choice(ARCHS), default="mcu_m4", show_default=True,
              help="Zoo architecture (see README).")
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Train a custom model described by a JSON spec instead of a zoo architecture.")
@click.option("--dataset", type=click.Choice(DATASETS), default="fashion-mnist", show_default=True,
              help="Dataset to train and test on; the model's input and classes follow it.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Local copy of the dataset (idx files, CIFAR batches, or train/ and test/ class folders).")
@click.option("--recipe", type=click.Choice(RECIPES), default="paper", show_default=True,
              help="Training preset: the official IR-Net recipe of the architecture.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's epoch count.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Override the learning rate.")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="Override the weight decay.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the (global) batch size.")
@click.option("--ede-per", type=click.Choice(EDE_PER),
              help="Update EDE's k and t per epoch or per iteration [default: the recipe's].")
@click.option("--padding", "padding_value", type=click.Choice(["zero", "one"]), default="zero", show_default=True,
              help="Value padded around binarized activations (zero = official IR-Net).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: the same seed gives the same weights on the CPU.")
@click.option("--train-limit", type=click.IntRange(min=1), help="Train on the first N images only (quick checks).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: CUDA when available.")
@click.option("--compile/--no-compile", "compile", default=None,
              help="Compiled training step (torch.compile; on CUDA also channels-last and CUDA graphs), same "
                   "mathematics. Default: on for CUDA, off for the CPU (where eager is bit-reproducible).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory [default: runs/ARCH-DATASET].")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
@click.option("--force", is_flag=True, help="Overwrite a run already in --out.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar per epoch (on a terminal).")
@click.pass_context
def train(ctx, spec_file, out_dir, resume, force, device, progress, **options):
    """Train an IR-Net model; writes OUT/model.pt, OUT/metrics.json and OUT/training_curve.png.

    Multi-GPU: torchrun --nproc_per_node=K -m irnet_edge.cli train ...
    """
    from .train import TrainConfig
    from .train import train as run_training

    if spec_file is not None:
        if ctx.get_parameter_source("arch") == click.core.ParameterSource.COMMANDLINE:
            raise IrnetEdgeError("--arch and --spec both choose the model; give one of them")
        options["spec"] = _read_spec(spec_file, options["dataset"])
        options["arch"] = options["spec"]["name"]
    out_dir = out_dir or Path("runs") / f"{options['arch']}-{options['dataset']}"
    options["data_dir"] = str(options["data_dir"]) if options["data_dir"] else None
    explicit = {name for name in options
                if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    metrics = run_training(TrainConfig(**options), out_dir, resume=resume, force=force, explicit=explicit,
                           device=device, progress=progress, log=click.echo)
    if metrics:
        click.echo(f"final test accuracy {metrics['test_accuracy']:.4f} (best {metrics['best_test_accuracy']:.4f} "
                   f"at epoch {metrics['best_epoch']}); {metrics['seconds_per_epoch']:.1f} s per epoch; "
                   f"wrote {out_dir}/model.pt")


def _read_spec(path: Path, dataset: str) -> dict:
    from .data import DATASETS as INFO
    from .nn.spec import complete_spec

    def unique_keys(pairs):
        keys = [key for key, _ in pairs]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        if duplicated:
            raise IrnetEdgeError(f"{path} is not a valid model spec: {', '.join(duplicated)} given twice in one object")
        return dict(pairs)

    try:
        spec = json.loads(path.read_text(), object_pairs_hook=unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IrnetEdgeError(f"{path} is not valid JSON: {exc}") from None
    try:
        return complete_spec(spec, INFO[dataset])
    except IrnetEdgeError as exc:
        raise IrnetEdgeError(f"{path}: {exc}") from None


_DATA_DIR_HELP = "Local copy of the dataset [default: the usual data locations]."


@main.command(epilog=_examples(
    "irnet-edge evaluate runs/m4/model.pt",
    "irnet-edge evaluate runs/m4/model.pt --data-dir ~/data/mnist",
    "irnet-edge evaluate runs/m4/model.pt --dataset mnist"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=_DATA_DIR_HELP)
@click.option("--dataset", type=click.Choice(DATASETS), help="Default: the dataset it was trained on.")
def evaluate(checkpoint, data_dir, dataset):
    """Print the test accuracy of a checkpoint."""
    from .api import evaluate as run_evaluate

    result = run_evaluate(checkpoint, dataset, data_dir)
    other = f" (trained on {result['trained_on']})" if result["trained_on"] not in (None, result["dataset"]) else ""
    click.echo(f"test accuracy {result['accuracy']:.4f} ({result['correct']}/{result['total']}) on "
               f"{result['dataset']}{other}, loss {result['loss']:.4f}")


@main.command(epilog=_examples(
    "irnet-edge summary runs/m4/model.pt",
    "irnet-edge summary runs/resnet20-cifar10/model.pt"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
def summary(checkpoint):
    """Print a per-layer table: shapes, parameters, deployed bytes and MACs."""
    from .api import convert

    click.echo(convert(checkpoint).summary())


_TARGET_HELP = "What the C is for: portable C (host), Cortex-M kernels, or NEON for Linux on Cortex-A."


@main.command(epilog=_examples(
    "irnet-edge codegen runs/m4/model.pt --out generated",
    "irnet-edge codegen runs/m4/model.pt --target cortex-m --out generated --prefix net --plan",
    "irnet-edge codegen runs/m4/model.pt --target cortex-a --out generated --force"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(TARGETS), default="host", show_default=True, help=_TARGET_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the generated C (a non-empty one needs --force).")
@click.option("--prefix", help="C symbol prefix and file name stem [default: the model's name].")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the model's dataset is: its first test image becomes the self-test input.")
@click.option("--plan", "show_plan", is_flag=True,
              help="Also print the memory plan: the ops the C runs (with what each fuses) and every tensor's arena "
                   "offset, bytes, lifetime and the tensor whose memory it takes over in place.")
def codegen(checkpoint, target, out_dir, prefix, force, data_dir, show_plan):
    """Generate C99 for a trained model: src/NAME.{h,c}, its weights and self-test, the irnet runtime in
    src/irnet/, build files (Makefile, CMake, Zephyr, PlatformIO, Arduino) and manifest.json."""
    from .api import convert
    from .codegen import check_out_dir, check_prefix
    from .codegen.render import SELFTEST_RANDOM

    check_out_dir(out_dir, force)
    if prefix is not None:
        check_prefix(prefix)
    model = convert(checkpoint)
    if prefix is None and model.prefix != model.name:
        click.echo(f"the model's name {model.name!r} is not a C identifier: its prefix is {model.prefix} "
                   "(pass --prefix to choose another)")
    manifest = model.save(out_dir, target, prefix, force, data_dir=data_dir)
    if manifest["selftest"]["input"] == SELFTEST_RANDOM:
        click.echo("the model's test images were not found (pass --data-dir): the self-test input is seeded "
                   "pseudo-random pixels")
    files = manifest["files"]
    click.echo(f"wrote {len(files)} files to {out_dir}: {', '.join(sorted(files))}")
    click.echo(f"{len(manifest['ops'])} ops; weights {manifest['weight_bytes']:,} bytes (flash); "
               f"arena {manifest['arena_bytes']:,} bytes (RAM, planned exactly)")
    if show_plan:
        click.echo("")
        click.echo(model.plan(target).format(f"memory plan of {model.name} for {target}"))


def _deprecated_arch(ctx, param, value):
    """--arch for the instruction set (before --isa): still accepted, with one notice on stderr."""
    if value is not None:
        click.echo("irnet-edge: --arch for the instruction set is deprecated, use --isa", err=True)
    return value


def _target_options(command):
    """--target, --board, --cpu and --isa (and the deprecated --arch), shared by the commands that build and run
    for a target; _deployment refuses those the chosen target does not use."""
    for option in reversed((
            click.option("--target", type=click.Choice(TARGETS), default="host", show_default=True,
                         help="Where the C runs: gcc on this machine (host), a board under QEMU (cortex-m) or "
                              "Linux on Cortex-A under qemu-user (cortex-a)."),
            click.option("--board", type=click.Choice(board_names()),
                         help="Board for --target cortex-m: verify takes one QEMU runs (an emulated board, or a Nucleo "
                              "on an emulator of its chip), bench an emulated one."),
            click.option("--cpu", type=click.Choice(cpu_names()),
                         help="With --target cortex-m: build for a smaller core than the board's own."),
            click.option("--isa", type=click.Choice(ISAS), help="Instruction set for --target cortex-a."),
            click.option("--arch", "deprecated_arch", type=click.Choice(ISAS), hidden=True,
                         callback=_deprecated_arch, help="Deprecated spelling of --isa."))):
        command = option(command)
    return command


def _deployment(target: str, board: str | None, cpu: str | None, isa: str | None, deprecated_arch: str | None,
                counting: bool = False):
    """The target with its options, checked once by irnet_edge.verify.deployment and named as options are on the
    command line; --arch, the former spelling of --isa, counts as --isa. counting: for bench."""
    from .verify.deployment import CLI, resolve

    aliases = {}
    if deprecated_arch is not None:
        if isa not in (None, deprecated_arch):
            raise IrnetEdgeError(f"--isa {isa} and --arch {deprecated_arch} disagree; give --isa only")
        isa, aliases = deprecated_arch, {"isa": "arch"}
    return resolve(target, isa=isa, board=board, cpu=cpu, spelling=CLI, aliases=aliases, counting=counting)


@main.command(epilog=_examples(
    "irnet-edge verify runs/m4/model.pt",
    "irnet-edge verify runs/m4/model.pt --target cortex-m --board mps2-an386 --samples 20",
    "irnet-edge verify runs/m4/model.pt --target cortex-a --isa armv7"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@_target_options
@click.option("--samples", type=click.IntRange(min=1), default=100, show_default=True,
              help="Real test inputs run through the C and compared bit for bit.")
@click.option("--agreement-samples", type=click.IntRange(min=0), default=10000, show_default=True,
              help="Test inputs on which the reference is held against the trained model (0: skip).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=_DATA_DIR_HELP)
@click.option("--prefix", help="C symbol prefix [default: the model's name].")
def verify(checkpoint, target, board, cpu, isa, deprecated_arch, samples, agreement_samples, data_dir, prefix):
    """Compile the generated C, run it on real test inputs and compare every output bit for bit."""
    from .api import convert
    from .codegen import check_prefix

    deployment = _deployment(target, board, cpu, isa, deprecated_arch)
    if prefix is not None:
        check_prefix(prefix)
    model = convert(checkpoint)
    if agreement_samples:
        n, top1, worst = model.agreement(agreement_samples, data_dir)
        click.echo(f"reference vs trained model on {n} {model.dataset} test images: top-1 agreement {top1:.2%}, "
                   f"largest logit difference {worst:.3g}")
    result = model.verify(target=deployment, samples=samples, data_dir=data_dir, prefix=prefix)
    if result.exact != result.samples:
        raise IrnetEdgeError(result.describe())
    fewer = f" (the {model.dataset} test set has {result.samples:,} images)" if result.samples < samples else ""
    click.echo(result.describe() + fewer)


@main.command(epilog=_examples(
    "irnet-edge bench runs/m4/model.pt --target cortex-m --board mps2-an386",
    "irnet-edge bench runs/m4/model.pt --target cortex-a --isa aarch64 --baseline float32",
    "irnet-edge bench runs/m4/model.pt --json > bench.json"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@_target_options
@click.option("--baseline", type=click.Choice(["none", "float32"]), default="none", show_default=True,
              help="Also measure the same network with every binary layer as a float32 convolution.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema irnet-edge-bench/2).")
@click.option("--prefix", help="C symbol prefix [default: the model's name].")
def bench(checkpoint, target, board, cpu, isa, deprecated_arch, baseline, as_json, prefix):
    """Count the instructions of one inference exactly (per op), with flash and RAM, under QEMU."""
    from .api import convert
    from .bench import to_text
    from .codegen import check_prefix

    deployment = _deployment(target, board, cpu, isa, deprecated_arch, counting=True)
    if prefix is not None:
        check_prefix(prefix)
    result = convert(checkpoint).bench(deployment, baseline=baseline == "float32", prefix=prefix,
                                       log=lambda message: click.echo(message, err=True))
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else to_text(result))


@main.command(epilog=_examples(
    "irnet-edge firmware runs/m4/model.pt --board mps2-an386 --out fw",
    "irnet-edge firmware runs/m0/model.pt --board mps2-an385 --cpu cortex-m0plus --out fw",
    "irnet-edge firmware runs/m4/model.pt --board nucleo-f446re --out fw --samples 16 --clock reset --force"))
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--board", type=click.Choice(board_names()), required=True,
              help="Board to build for: an emulated one, or a real one whose chip QEMU emulates (nucleo-f446re, "
                   "nucleo-f411re), runs under `irnet-edge run`; a real one is flashed with `irnet-edge flash`.")
@click.option("--cpu", type=click.Choice(cpu_names()), help="Build for a smaller core than the board's own.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the project (a non-empty one needs --force).")
@click.option("--samples", type=click.IntRange(min=1, max=255), default=8, show_default=True,
              help="Real test images embedded for the demo run.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=_DATA_DIR_HELP)
@click.option("--prefix", help="C symbol prefix [default: the model's name].")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
@click.option("--clock", type=click.Choice(["full", "reset"]), default="full", show_default=True,
              help="full: set up the board's full clock (PLL or crystal; falls back to the reset clock if a ready bit "
                   "never comes); reset: keep the clock the chip starts on.")
def firmware(checkpoint, board, cpu, out_dir, samples, data_dir, prefix, force, clock):
    """Write and build a firmware project for a board: app.elf, app.bin, app.hex and a size report."""
    from .api import convert
    from .codegen import check_out_dir
    from .codegen.firmware import check_firmware_prefix

    check_out_dir(out_dir, force)
    if prefix is not None:
        check_firmware_prefix(prefix)
    click.echo(convert(checkpoint).firmware(out_dir, board, cpu, samples=samples, data_dir=data_dir, prefix=prefix,
                                            force=force, clock=clock))


@main.command(epilog=_examples(
    "irnet-edge fit --board nucleo-f446re",
    "irnet-edge fit --board rpi-pico --dataset mnist --latency-ms 20",
    "irnet-edge fit --board nrf52840dk --train --out runs/nrf --epochs 5"))
@click.option("--board", type=click.Choice(board_names()), required=True, help="The board the network must fit.")
@click.option("--dataset", type=click.Choice(DATASETS), default="fashion-mnist", show_default=True,
              help="Sets the input shape and classes (and what --train trains on).")
@click.option("--latency-ms", type=click.FloatRange(min=0, min_open=True),
              help="Also require this estimated time per inference at the board's clock.")
@click.option("--cpu", type=click.Choice(cpu_names()), help="Build for a smaller core than the board's own.")
@click.option("--json", "as_json", is_flag=True, help="Print the candidates and the pick as JSON.")
@click.option("--train", "then_train", is_flag=True, help="Train the pick and write its firmware into --out.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --train: the run's folder (model.pt, metrics) and its firmware in OUT/firmware.")
@click.option("--epochs", type=click.IntRange(min=1), help="With --train: override the recipe's epoch count.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=_DATA_DIR_HELP)
@click.option("--force", is_flag=True, help="With --train: replace a run already in --out.")
def fit(board, dataset, latency_ms, cpu, as_json, then_train, out_dir, epochs, data_dir, force):
    """Find the largest network of the MCU family that fits a board's flash and RAM (linked firmware, stack
    included) and, with --latency-ms, answers in time (exact instruction counts x the core's cycles per
    instruction at the board's clock); print the candidates and the pick."""
    from .fit import fit as run_fit
    from .fit import train_pick

    for name, value in (("--out", out_dir), ("--epochs", epochs), ("--force", force or None)):
        if value is not None and not then_train:
            raise IrnetEdgeError(f"{name} applies only with --train; leave it out")
    if then_train and out_dir is None:
        raise IrnetEdgeError("--train needs --out, the folder for the run and its firmware")
    if then_train:
        from .train import check_new_run

        check_new_run(out_dir, force)
    click.echo(f"linking and counting the MCU family for {board} (about a minute the first time)", err=True)
    result = run_fit(board, dataset, latency_ms, cpu)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else result.table())
    if then_train:
        click.echo(train_pick(result, out_dir, data_dir, epochs, force, log=click.echo))


@main.command("run", epilog=_examples(
    "irnet-edge run fw",
    "irnet-edge run fw --count-instructions",
    "irnet-edge run fw --timeout 600"))
@click.argument("project", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--timeout", type=click.IntRange(min=1), default=120, show_default=True,
              help="Seconds before the emulator is stopped.")
@click.option("--count-instructions", is_flag=True,
              help="Run with QEMU -icount so the demo's timer counts executed instructions.")
def run_firmware(project, timeout, count_instructions):
    """Run a firmware project's app.elf under QEMU and print its output: on its emulated board, or for a real board
    on an emulator of its chip (e.g. nucleo-f446re on netduinoplus2, an STM32F405), reading its console UART."""
    from .codegen.firmware import load_board, read_project, runs_on
    from .verify.qemu import emulator_clock_hz, instructions_per_inference, run_board

    info = read_project(project)
    chosen = load_board(info["board"])
    if runs_on(chosen) is None:
        raise IrnetEdgeError(f"{info['board']} is a real board that no emulator here runs; flash it with "
                             f"`irnet-edge flash {project}`")
    elf = project / "app.elf"
    if not elf.is_file():
        raise IrnetEdgeError(f"{elf} does not exist; build it with `make -C {project}`")
    if not chosen.emulator:
        emu = chosen.emulated_by
        click.echo(f"running {info['board']}'s firmware on QEMU {emu['machine']} (an {emu['chip']}, the same core "
                   "and console UART); QEMU stops at the demo's final line", err=True)
    rc, output = run_board(chosen, elf.resolve(), timeout=timeout, icount=count_instructions)
    click.echo(output, nl=False)
    clock_hz = emulator_clock_hz(chosen)
    count = instructions_per_inference(output, clock_hz)
    if count_instructions and count is not None:
        click.echo(f"instructions per inference: {count:,} (QEMU -icount shift=0, resolution "
                   f"{round(1e9 / clock_hz)} instructions)")
    if rc != 0:
        raise SystemExit(rc)


@main.command("flash", epilog=_examples(
    "irnet-edge flash fw",
    "irnet-edge flash fw --tool openocd",
    "irnet-edge flash fw --dry-run"))
@click.argument("project", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--board", type=click.Choice(board_names()), help="Default: the board the project was built for.")
@click.option("--tool", type=click.Choice(["pyocd", "openocd"]), default="pyocd", show_default=True,
              help="The flashing tool: pyOCD or OpenOCD.")
@click.option("--dry-run", is_flag=True, help="Print the exact commands instead of running them.")
def flash_firmware(project, board, tool, dry_run):
    """Flash a firmware project's app.elf onto a real board through pyOCD or OpenOCD."""
    from .codegen.firmware import load_board, read_project
    from .verify.flash import flash

    info = read_project(project)
    board = board or info["board"]
    if board != info["board"]:
        raise IrnetEdgeError(f"{project} was built for {info['board']}, not {board}; rebuild it with "
                             f"`irnet-edge firmware MODEL.pt --board {board} --out DIR`")
    chosen = load_board(board)
    if chosen.emulator:
        raise IrnetEdgeError(f"{board} is emulated; run it with `irnet-edge run {project}`")
    elf = (project / "app.elf").resolve()
    if not elf.is_file():
        raise IrnetEdgeError(f"{elf} does not exist; build it with `make -C {project}`")
    for line in flash(chosen, tool, elf, dry_run):
        click.echo(line)


def _official_arch_names():
    from .names import OFFICIAL_ARCHS

    return OFFICIAL_ARCHS


@main.command("import", epilog=_examples(
    "irnet-edge import save_temp/model.th --arch resnet20 --out runs/official/model.pt",
    "irnet-edge import vgg_small.pth --arch vgg_small --dataset cifar10 --out vgg.pt --force",
    "irnet-edge import resnet18_imagenet.pth.tar --arch resnet18_imagenet --out r18.pt"))
@click.argument("state_dict", type=click.Path(path_type=Path))
@click.option("--arch", type=click.Choice(_official_arch_names()), required=True,
              help="The zoo architecture the official model maps onto (official resnet20_1w1a: resnet20; "
                   "ImageNet resnet18/resnet34: resnet18_imagenet/resnet34_imagenet).")
@click.option("--dataset", type=click.Choice(DATASETS),
              help="Dataset of a CIFAR architecture, which sets its input and classes [default: cifar10]; not for "
                   "the ImageNet ones.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The irnet-edge checkpoint to write (an existing file needs --force).")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
def import_official_model(state_dict, arch, dataset, out_file, force):
    """Import a model trained with the official IR-Net code (htqin/IR-Net): read its state_dict (torch.save, with or
    without DataParallel's module. prefix, or the trainer's {'state_dict': ...}) with weights_only=True, map it onto
    the zoo architecture and write an irnet-edge checkpoint. The official code binarizes with torch.sign, whose
    sign(0) = 0; irnet-edge with sign(0) = +1 (see docs/official.md)."""
    from .nn.official import OFFICIAL
    from .official_import import import_official

    ckpt = import_official(state_dict, arch, dataset, out=out_file, force=force)
    inp = ckpt.spec["input"]
    count = sum(v.numel() for k, v in ckpt.state_dict.items() if not k.endswith("num_batches_tracked"))
    click.echo(f"imported the official IR-Net {OFFICIAL[arch]} from {state_dict} as {arch} "
               f"({inp['channels']}x{inp['height']}x{inp['width']} input, {ckpt.spec['num_classes']} classes, "
               f"{count:,} values); wrote {out_file}")
    click.echo("note: the official code binarizes with torch.sign (sign(0) = 0), irnet-edge with sign(0) = +1: an "
               "activation or centred weight exactly 0 is computed differently (docs/official.md)")


if __name__ == "__main__":
    main()
