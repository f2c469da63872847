"""Every foreseeable bad input to the CLI: exactly one 'Error:' line, exit status 1, no traceback, nothing
written (the output path absent or unchanged). And model names that are hostile to C still give C that
compiles and firmware that prints them verbatim."""
import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.codegen.render import MAX_PREFIX, c_comment, c_string, line_comment
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import zoo_spec

from .helpers import calibrated

CLI = Path(sys.executable).parent / "irnet-edge"
HOSTILE = 'kws "small" */ bnn\\v2 é'


def _checkpoint(path: Path, name: str | None = None) -> Path:
    spec = zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25])
    if name is not None:
        spec["name"] = name
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    calibrated(spec, None, images, "mnist", path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _snapshot(path: Path):
    """What is at path: None, a link target, a file's bytes, or a directory's files, modes included."""
    if path.is_symlink():
        return ("link", os.readlink(path))
    if not path.exists():
        return None
    if path.is_file():
        return ("file", path.read_bytes())
    return ("dir", path.stat().st_mode, sorted((str(p.relative_to(path)), p.stat().st_mode,
                                               p.read_bytes() if p.is_file() else None) for p in path.rglob("*")))


def _leftovers(folder: Path) -> list[str]:
    """Staging or backup directories a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


def fails(args, *unchanged: Path, match: str = "", log_lines: bool = False) -> str:
    """Runs the CLI; asserts exit status 1, exactly one line of output starting with 'Error:' (and, unless
    log_lines, no other line), no traceback, and every path in unchanged as it was. Returns the error line."""
    before = [_snapshot(p) for p in unchanged]
    parents = {p.parent: _leftovers(p.parent) for p in unchanged if p.parent.is_dir()}
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and (log_lines or len(lines) == 1), result.output
    assert lines[-1] == errors[0] and "Traceback" not in result.output
    assert match in errors[0], errors[0]
    assert [_snapshot(p) for p in unchanged] == before
    assert {parent: _leftovers(parent) for parent in parents} == parents
    return errors[0]


# --- 5. usage errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    (["--bogus"], "No such option"),
    (["nope"], "No such command"),
    (["codegen", "--bogus"], "No such option"),
    (["codegen"], "Missing argument"),
    (["codegen", "m.pt"], "Missing option '--out'"),
    (["codegen", "m.pt", "--out", "o", "--target", "nope"], "'nope' is not one of"),
    (["train", "--arch", "resnet9000"], "resnet9000"),
    (["train", "--epochs", "zero"], "'zero' is not a valid integer"),
    (["firmware", "m.pt", "--out", "o"], "Missing option '--board'"),
    (["firmware", "m.pt", "--board", "nope", "--out", "o"], "--board"),
    (["run"], "Missing argument"),
])
def test_usage_errors_are_one_line(args, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = fails(args, tmp_path / "o", match=match)
    assert "--help" in line
    assert not (tmp_path / "o").exists()


def test_bare_command_still_prints_its_help():
    result = CliRunner().invoke(main, [])
    assert "Commands:" in result.output and "Error" not in result.output


# --- 1. and 2. prefixes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["codegen", "firmware"])
@pytest.mark.parametrize("prefix, match", [
    ("x" * 300, f"the limit is {MAX_PREFIX}"),
    ("x" * (MAX_PREFIX + 1), f"the limit is {MAX_PREFIX}"),
    ("irnet", "irnet runtime's namespace"),
    ("irnet_conv", "irnet runtime's namespace"),
    ("IRNET", "irnet runtime's namespace"),
    ("1abc", "not a valid"),
    ("a b", "not a valid"),
    ("int", "not a valid"),
])
def test_bad_prefix(command, prefix, match, ckpt, tmp_path):
    extra = ["--board", "mps2-an386"] if command == "firmware" else []
    fails([command, ckpt, "--out", tmp_path / "out", "--prefix", prefix, *extra], tmp_path / "out", match=match)


@pytest.mark.parametrize("prefix", ["board", "console", "samples", "startup", "linker", "app", "Board", "boot2"])
def test_firmware_prefix_colliding_with_project_files(prefix, ckpt, tmp_path):
    fails(["firmware", ckpt, "--board", "mps2-an386", "--out", tmp_path / "out", "--prefix", prefix],
          tmp_path / "out", match="collides with the firmware project's own files")


def test_firmware_prefix_main_is_refused(ckpt, tmp_path):
    fails(["firmware", ckpt, "--board", "mps2-an386", "--out", tmp_path / "out", "--prefix", "main"],
          tmp_path / "out")


def test_longest_prefix_is_accepted(ckpt, mnist_dir, tmp_path):
    prefix = "p" * MAX_PREFIX
    result = CliRunner().invoke(main, ["codegen", str(ckpt), "--out", str(tmp_path / "out"), "--prefix", prefix,
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "src" / f"{prefix}.h").is_file()


def test_escaping_filters():
    assert c_string('a"b\\c') == '"a\\"b\\\\c"'
    assert c_string("é1") == '"\\303\\2511"'  # octal: the digit after cannot join the escape
    assert c_string("??=\n\x01") == '"\\?\\?=\\n\\001"'
    for text in ("*/", "/*", "a*", "/a", "x\n*/y", "??/"):
        escaped = c_comment(text)
        wrapped = f"/*{escaped}*/"  # also where the template puts the name right against its own comment marks
        assert wrapped.count("*/") == 1 and wrapped.count("/*") == 1 and "\n" not in escaped and "??" not in escaped
    assert line_comment("a\nb\\") == "a\\x0ab\\ "


def test_evaluate_on_a_dataset_of_another_shape(ckpt, cifar_dir):
    fails(["evaluate", ckpt, "--dataset", "cifar10", "--data-dir", cifar_dir],
          match="cifar10 has 3x32x32 images, the model takes 1x28x28 images, 10 classes (it was trained on mnist)")


def test_evaluate_on_another_dataset_of_the_same_shape_says_so(ckpt, mnist_dir, tmp_path):
    (tmp_path / "fashion").symlink_to(mnist_dir)  # idx files of the same layout: the command reads them alike
    result = CliRunner().invoke(main, ["evaluate", str(ckpt), "--dataset", "fashion-mnist", "--data-dir",
                                       str(tmp_path / "fashion")])
    assert result.exit_code == 0 and "on fashion-mnist (trained on mnist)" in result.output, result.output


def test_run_of_a_project_with_a_damaged_firmware_json(tmp_path):
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "firmware.json").write_text("{")
    fails(["run", tmp_path / "fw"], tmp_path / "fw", match="firmware.json is not valid JSON")
    (tmp_path / "fw" / "firmware.json").write_text("[1, 2]")
    fails(["run", tmp_path / "fw"], tmp_path / "fw", match="does not name its board")


def test_train_on_cuda_without_a_device_is_refused_before_anything(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU or driver
    fails(["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir", mnist_dir, "--device", "cuda",
           "--out", tmp_path / "run"], tmp_path / "run", match="--device cuda: this machine has no usable CUDA")


def test_train_refuses_arch_beside_spec(tmp_path, mnist_dir):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"name": "tiny", "layers": [{"type": "flatten"}, {"type": "linear", "in_features": 784,
                                                                                   "out_features": 10}]}))
    fails(["train", "--spec", spec, "--arch", "resnet20", "--dataset", "mnist", "--data-dir", mnist_dir, "--out",
           tmp_path / "run"], tmp_path / "run", match="--arch and --spec both choose the model")


def test_fit_train_into_an_existing_run_is_refused_before_the_search(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(b"a run")
    result = CliRunner().invoke(main, ["fit", "--board", "nucleo-f446re", "--train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output  # no search, no progress line
    assert "already holds a training run; pass --force to replace it" in result.output


@pytest.mark.parametrize("args, match", [
    (["bench", "--target", "cortex-m", "--board", "nucleo-f446re"], "count on mps2-an386 (the same core)"),
    (["bench", "--target", "cortex-m", "--board", "rpi-pico"], "rpi-pico is a real board; bench runs on an emulated"),
    (["verify", "--target", "cortex-m", "--board", "nrf52840dk"], "nrf52840dk is a real board that no emulator here"),
])
def test_target_boards_qemu_cannot_run_are_refused_before_any_work(ckpt, args, match):
    fails([args[0], ckpt, *args[1:]], match=match)


def test_a_firmware_project_in_a_folder_with_spaces_runs(ckpt, mnist_dir, tmp_path):
    """QEMU hands the ELF's path to the firmware as the first word of its semihosting command line."""
    out = tmp_path / "my boards" / "sp ace"
    result = CliRunner().invoke(main, [str(a) for a in _firmware(ckpt, out, mnist_dir)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["run", str(out)])
    assert result.exit_code == 0 and "selftest: passed" in result.output, result.output


# --- 4. output paths --------------------------------------------------------------------------------------

def _codegen(ckpt, out, mnist_dir, *extra):
    return ["codegen", ckpt, "--out", out, "--data-dir", mnist_dir, *extra]


def _firmware(ckpt, out, mnist_dir, *extra):
    return ["firmware", ckpt, "--board", "mps2-an386", "--out", out, "--data-dir", mnist_dir, "--samples", 2, *extra]


@pytest.mark.parametrize("command", [_codegen, _firmware])
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_out_is_the_current_directory(command, force, ckpt, mnist_dir, tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "keep").mkdir(parents=True)
    (work / "keep" / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    fails(command(ckpt, ".", mnist_dir, *force), work, match="current directory")
    fails(command(ckpt, "..", mnist_dir, *force), tmp_path, match="current directory")
    monkeypatch.chdir(work / "keep")
    fails(command(ckpt, work / "keep", mnist_dir, *force), work / "keep", match="current directory")


@pytest.mark.parametrize("command", [_codegen, _firmware])
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_out_through_a_symlink_is_refused(command, force, ckpt, mnist_dir, tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("unrelated")
    link = tmp_path / "out"
    link.symlink_to(target)
    fails(command(ckpt, link, mnist_dir, *force), link, target, match="symbolic link")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    fails(command(ckpt, dangling, mnist_dir, *force), dangling, match="symbolic link")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("command", [_codegen, _firmware])
def test_out_is_a_file(command, ckpt, mnist_dir, tmp_path):
    (tmp_path / "out").write_text("a file")
    fails(command(ckpt, tmp_path / "out", mnist_dir), tmp_path / "out", match="is a file")
    (tmp_path / "file").write_text("a file")
    fails(command(ckpt, tmp_path / "file" / "out", mnist_dir), tmp_path / "file", match="not a directory")


def test_non_empty_out_is_refused_and_unchanged(ckpt, mnist_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.c").write_text("int x;")
    fails(_codegen(ckpt, tmp_path / "out", mnist_dir), tmp_path / "out", match="--force")


@contextlib.contextmanager
def _mounted(folder: Path, options: str):
    """A tmpfs at folder (root in a sandbox that allows it), else skip."""
    folder.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    with _mounted(tmp_path / "full", "size=64k") as folder:
        yield folder


@pytest.fixture
def read_only(tmp_path):
    if os.geteuid() != 0:  # permissions bind an ordinary user; root needs a read-only mount
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with _mounted(tmp_path / "ro", "ro,size=64k") as folder:
        yield folder


@pytest.mark.parametrize("command", [_codegen, _firmware])
def test_full_disk(command, ckpt, mnist_dir, full_disk):
    fails(command(ckpt, full_disk / "out", mnist_dir), full_disk / "out",
          match=f"cannot write {full_disk / 'out'}: no space left on device")
    assert not any(full_disk.iterdir())


@pytest.mark.parametrize("command", [_codegen, _firmware])
def test_full_disk_keeps_the_previous_tree_with_force(command, ckpt, mnist_dir, full_disk):
    (full_disk / "out").mkdir()
    (full_disk / "out" / "old.c").write_text("int old;")
    fails(command(ckpt, full_disk / "out", mnist_dir, "--force"), full_disk / "out", match="no space left on device")


@pytest.mark.parametrize("command", [_codegen, _firmware])
def test_read_only_directory(command, ckpt, mnist_dir, read_only):
    fails(command(ckpt, read_only / "out", mnist_dir), read_only / "out", match=f"cannot write {read_only / 'out'}")
    fails(command(ckpt, read_only / "a" / "b", mnist_dir), read_only / "a", match="cannot write")


def _train_into(out: Path, mnist_dir: Path) -> None:
    fails(["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", 1,
           "--train-limit", 256, "--batch-size", 128, "--device", "cpu", "--out", out, "--no-progress"],
          match=f"{out}", log_lines=True)  # train logs its setup first
    assert not (out / "model.pt").exists()


def test_train_into_a_read_only_directory(mnist_dir, read_only):
    _train_into(read_only / "run", mnist_dir)


def test_train_into_a_read_only_directory_is_refused_before_training(mnist_dir, read_only):
    """The run could never be saved: refused before the data is read or an epoch spent (no log line at all)."""
    for out in (read_only / "run", read_only / "a" / "b"):
        error = fails(["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", 1,
                       "--device", "cpu", "--out", out, "--no-progress"], match="choose another --out")
        assert f"cannot write to {read_only}" in error


def test_train_into_a_file_is_refused_before_training(mnist_dir, tmp_path):
    (tmp_path / "taken").write_text("a file")
    fails(["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir", mnist_dir, "--out",
           tmp_path / "taken" / "run"], tmp_path / "taken", match="is not a folder")


def test_train_on_a_full_disk(mnist_dir, full_disk):
    _train_into(full_disk / "run", mnist_dir)


def test_no_space_simulated(ckpt, mnist_dir, tmp_path, monkeypatch):
    """The same without a tmpfs: the fourth file written hits ENOSPC."""
    calls = []
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    fails(_codegen(ckpt, tmp_path / "out", mnist_dir), tmp_path / "out",
          match=f"cannot write {tmp_path / 'out'}: no space left on device")
    assert _leftovers(tmp_path) == []


# --- 3. firmware builds in staging --------------------------------------------------------------------------

def test_failed_firmware_build_writes_nothing(ckpt, mnist_dir, tmp_path, monkeypatch):
    from irnet_edge.verify import qemu

    def broken_build(tree, *args, **kwargs):
        (tree / "app.o").write_text("half")
        raise IrnetEdgeError(f"building the firmware in {tree} failed: make said no")

    monkeypatch.setattr(qemu, "build_firmware", broken_build)
    out = tmp_path / "fw"
    line = fails(_firmware(ckpt, out, mnist_dir), out, match=f"nothing was written to {out}")
    assert f"building the firmware in {out} failed" in line
    out.mkdir()
    (out / "old.txt").write_text("previous project")
    fails(_firmware(ckpt, out, mnist_dir, "--force"), out, match="nothing was written")


def test_killed_firmware_build_leaves_out_absent(ckpt, mnist_dir, tmp_path):
    out = tmp_path / "fw"
    proc = subprocess.Popen([str(CLI), "firmware", str(ckpt), "--board", "mps2-an386", "--out", str(out),
                             "--data-dir", str(mnist_dir), "--samples", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(1200):  # until make has produced an object file in the staging directory
            if any(tmp_path.glob(".fw.*/**/*.o")) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the build finished before it could be killed"
        os.killpg(proc.pid, 9)
    finally:
        proc.wait()
    assert not out.exists()
    result = CliRunner().invoke(main, [str(a) for a in _firmware(ckpt, out, mnist_dir)])
    assert result.exit_code == 0, result.output
    assert (out / "app.elf").is_file()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_output_directory_follows_the_umask(mask, ckpt, mnist_dir, tmp_path):
    previous = os.umask(mask)
    try:
        result = CliRunner().invoke(main, [str(a) for a in _codegen(ckpt, tmp_path / "out", mnist_dir)])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "out" / "src").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "out" / "Makefile").stat().st_mode & 0o777 == 0o666 & ~mask


# --- real processes: nothing reaches stderr but the one line ------------------------------------------------

@pytest.mark.parametrize("args", [
    ["codegen", "--bogus"],
    ["codegen", "{ckpt}", "--out", "{tmp}/link", "--force"],
    ["codegen", "{ckpt}", "--out", "{tmp}/o", "--prefix", "x" * 300],
    ["firmware", "{ckpt}", "--board", "mps2-an386", "--out", "{tmp}/o", "--prefix", "board"],
])
def test_subprocess_one_line_no_traceback(args, ckpt, tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    done = subprocess.run([str(CLI), *(a.format(ckpt=ckpt, tmp=tmp_path) for a in args)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "target" / "keep.txt").read_text() == "keep" and (tmp_path / "link").is_symlink()
    assert not (tmp_path / "o").exists()


# --- 1. hostile model names: C that compiles, firmware that prints them verbatim ------------------------------

def test_hostile_model_name_compiles_and_runs(mnist_dir, tmp_path):
    ckpt = _checkpoint(tmp_path / "hostile.pt", HOSTILE)
    runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in _codegen(ckpt, tmp_path / "c", mnist_dir)])
    assert result.exit_code == 0, result.output
    prefix = "kws_small_bnn_v2"
    header = (tmp_path / "c" / "src" / f"{prefix}.h").read_text(encoding="utf-8")
    assert 'kws "small" * / bnn\\v2 é' in header
    make = subprocess.run(["make", "-C", str(tmp_path / "c"), "-j2"], capture_output=True, text=True)
    assert make.returncode == 0, make.stdout + make.stderr
    selftest = subprocess.run([str(tmp_path / "c" / f"{prefix}_run"), "--selftest"], capture_output=True, text=True)
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr

    result = runner.invoke(main, [str(a) for a in _firmware(ckpt, tmp_path / "fw", mnist_dir)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fw" / "app.elf").is_file() and _leftovers(tmp_path) == []
    assert 'BOARD_CPU "): " "kws \\"small\\" */ bnn\\\\v2 \\303\\251" "\\n"' in (tmp_path / "fw" / "main.c").read_text()
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm is not installed")
    run = subprocess.run([str(CLI), "run", str(tmp_path / "fw")], capture_output=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"): {HOSTILE}\n".encode() in run.stdout, run.stdout


def test_names_hostile_to_every_context_compile(mnist_dir, tmp_path):
    name = "a\n??=/* b */ \x01\x0b\\ \"q\" ?? 'é\u2028' *"
    ckpt = _checkpoint(tmp_path / "m.pt", name)
    result = CliRunner().invoke(main, [str(a) for a in _codegen(ckpt, tmp_path / "c", mnist_dir)])
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "c").rglob("*"):
        if path.is_file() and path.suffix in (".c", ".h", ".txt", ".properties", "") and path.name != "Makefile":
            for line in path.read_text(encoding="utf-8").splitlines():
                assert "\x01" not in line and "\x0b" not in line
    make = subprocess.run(["make", "-C", str(tmp_path / "c"), "-j2"], capture_output=True, text=True)
    assert make.returncode == 0, make.stdout + make.stderr
