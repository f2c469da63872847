import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from irnet_edge import __version__
from irnet_edge.cli import main


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_version_and_help():
    assert __version__ in _run("--version").output
    help_text = _run("train", "--help").output
    for option in ("--arch", "--dataset", "--data-dir", "--epochs", "--recipe", "--out", "--resume", "--seed"):
        assert option in help_text


def test_train_evaluate_summary_end_to_end(mnist_dir, tmp_path):
    out = tmp_path / "run"
    result = _run("train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", 1,
                  "--train-limit", 3000, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "final test accuracy" in result.output and (out / "model.pt").is_file()
    accuracy = json.loads((out / "metrics.json").read_text())["test_accuracy"]

    result = _run("evaluate", out / "model.pt", "--data-dir", mnist_dir)
    assert result.exit_code == 0, result.output
    assert f"test accuracy {accuracy:.4f} ({round(accuracy * 10000)}/10000) on mnist" in result.output

    result = _run("summary", out / "model.pt")
    assert result.exit_code == 0, result.output
    for text in ("mcu_m0: input 1x28x28, 10 classes", "IRConv2d", "binary share of MACs", "total"):
        assert text in result.output

    # resuming a finished run does nothing and says how to extend it
    result = _run("train", "--out", out, "--resume", "--no-progress")
    assert result.exit_code == 0 and "pass a larger --epochs" in result.output


def test_custom_spec_file(mnist_dir, tmp_path):
    spec = {"name": "tiny", "layers": [
        {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1,
         "bias": False},
        {"type": "batchnorm2d", "num_features": 8, "eps": 1e-5}, {"type": "hardtanh"},
        {"type": "irconv2d", "in_channels": 8, "out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1,
         "bias": False, "binary_act": True, "padding_value": "one"},
        {"type": "batchnorm2d", "num_features": 16, "eps": 1e-5}, {"type": "flatten"},
        {"type": "linear", "in_features": 784, "out_features": 10, "bias": True}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    result = _run("train", "--spec", path, "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", 1,
                  "--train-limit", 2000, "--out", tmp_path / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "training tiny on mnist" in result.output
    assert _run("summary", tmp_path / "run" / "model.pt").exit_code == 0


def test_errors_are_one_clean_line(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    result = _run("evaluate", bad)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "not a readable checkpoint" in result.output
    assert "Traceback" not in result.output
    result = _run("train", "--arch", "resnet9000")
    assert result.exit_code == 1 and "resnet9000" in result.output and result.output.startswith("Error: ")
    result = _run("train", "--dataset", "cifar10", "--arch", "resnet20", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "cifar10 is not available offline" in result.output
    assert not (tmp_path / "r").exists()


def _commands():
    from irnet_edge.cli import main as group

    return [((), group)] + [((name,), command) for name, command in sorted(group.commands.items())]


@pytest.mark.parametrize("path, command", _commands(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_option_has_help_and_every_help_ends_with_examples(path, command):
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"irnet-edge {' '.join(path)} {param.opts[0]} has no help"
    result = _run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    examples = result.output.split("Examples:")[1].strip().splitlines()
    assert 2 <= len(examples) <= 3 and all(line.strip().startswith("irnet-edge ") for line in examples), examples


def test_choice_names_match_the_modules_that_define_them():
    from irnet_edge import names
    from irnet_edge.codegen import TARGETS
    from irnet_edge.codegen.firmware import board_names, cpu_names
    from irnet_edge.data import DATASETS
    from irnet_edge.nn.zoo import ARCHS
    from irnet_edge.train.ede import EDE_PER
    from irnet_edge.train.recipes import RECIPE_NAMES
    from irnet_edge.verify.toolchain import CROSS

    assert list(names.ARCHS) == list(ARCHS) and list(names.DATASETS) == list(DATASETS)
    assert list(names.TARGETS) == list(TARGETS) and list(names.ISAS) == list(CROSS)
    assert names.EDE_PER == EDE_PER and names.RECIPES == RECIPE_NAMES
    assert names.board_names() == board_names() and names.cpu_names() == cpu_names()


def test_the_cli_imports_no_torch():
    code = "import sys, irnet_edge.cli; sys.exit(sorted(m for m in ('torch', 'numpy') if m in sys.modules) or 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args, named", [
    (["verify", "m.pt", "--target", "host", "--board", "rpi-pico"], "--board applies only to --target cortex-m"),
    (["verify", "m.pt", "--cpu", "cortex-m4"], "--cpu applies only to --target cortex-m"),
    (["verify", "m.pt", "--target", "host", "--isa", "aarch64"], "--isa applies only to --target cortex-a"),
    (["verify", "m.pt", "--target", "cortex-m", "--board", "mps2-an386", "--isa", "armv7"], "--isa applies only"),
    (["verify", "m.pt", "--target", "cortex-a", "--isa", "armv7", "--board", "mps2-an386"], "--board applies only"),
    (["bench", "m.pt", "--target", "cortex-a", "--isa", "aarch64", "--cpu", "cortex-m4"], "--cpu applies only"),
    (["bench", "m.pt", "--target", "host", "--board", "mps2-an386"], "--board applies only"),
    (["bench", "m.pt", "--arch", "aarch64"], "--arch applies only to --target cortex-a"),
    (["bench", "m.pt", "--target", "cortex-a"], "needs --isa aarch64 or --isa armv7"),
    (["verify", "m.pt", "--target", "cortex-a", "--isa", "armv7", "--arch", "aarch64"], "disagree; give --isa only"),
])
def test_options_that_do_not_apply_to_the_target_are_refused(args, named, tmp_path):
    result = _run(*args)  # refused before the (missing) checkpoint is read
    assert result.exit_code == 1, result.output
    notice = ["irnet-edge: --arch for the instruction set is deprecated, use --isa"] if "--arch" in args else []
    assert result.stdout == "" and result.stderr.splitlines()[:-1] == notice
    assert result.stderr.splitlines()[-1].startswith("Error: ") and named in result.stderr


def test_the_old_arch_spelling_of_isa_still_works_with_a_notice(tmp_path):
    missing = tmp_path / "m.pt"
    result = _run("verify", missing, "--target", "cortex-a", "--arch", "aarch64")
    assert result.exit_code == 1
    notice, error = result.stderr.splitlines()  # past the target check: the checkpoint is what fails
    assert notice == "irnet-edge: --arch for the instruction set is deprecated, use --isa"
    assert error.startswith("Error: ") and str(missing) in error and "--isa" not in error
    result = _run("verify", "--help")
    assert "--isa [aarch64|armv7]" in result.output and "--arch" not in result.output
