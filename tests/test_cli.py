import json

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
