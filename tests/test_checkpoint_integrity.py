"""Damaged checkpoints, malformed checkpoint structure, non-finite deploy constants and diverging training:
each gives exactly one IrnetEdgeError (one `Error:` line from the CLI), never a traceback or a silent result."""
import copy
import random
import struct
import zipfile

import pytest
import torch
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from irnet_edge.train import TrainConfig, train

from .helpers import calibrated


def _spec():
    return zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25])


@pytest.fixture
def saved(tmp_path):
    """A real checkpoint written by save_checkpoint: (path, the Checkpoint it holds)."""
    spec = _spec()
    torch.manual_seed(3)
    model = build_model(spec)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    ckpt = Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0},
                      config={"dataset": "mnist", "arch": "mcu_m0"})
    path = tmp_path / "model.pt"
    save_checkpoint(ckpt, path)
    return path, ckpt


def _members(path) -> list[tuple[str, int, int]]:
    """(name, first byte, end) of every zip member's data, from the local headers."""
    data = path.read_bytes()
    out = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
            start = info.header_offset + 30 + name_len + extra_len
            out.append((info.filename, start, start + info.compress_size))
    return out


def _flip(path, offset: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _assert_one_error_line(result, *needles) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---- 1. integrity: CRC-32 of every zip member ------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_a_bit_flip_in_tensor_data_is_refused(saved, seed):
    path, _ = saved
    rng = random.Random(seed)
    tensors = [m for m in _members(path) if "/data/" in m[0] and m[2] > m[1]]
    name, start, end = rng.choice(tensors)
    _flip(path, rng.randrange(start, end), rng.randrange(8))
    with pytest.raises(IrnetEdgeError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path} is damaged: member {name} fails its CRC check; re-save or re-train it"


def test_a_flip_in_the_pickle_is_refused_too(saved):
    path, _ = saved
    name, start, end = next(m for m in _members(path) if m[0].endswith("data.pkl"))
    _flip(path, (start + end) // 2, 0)
    with pytest.raises(IrnetEdgeError, match=f"member {name} fails its CRC check"):
        load_checkpoint(path)


@pytest.mark.parametrize("seed", range(40))
def test_a_flip_anywhere_is_refused_or_harmless(saved, seed):
    """Headers, directory, padding: a flip is either refused with one clear error or touches nothing that is
    loaded (a timestamp, alignment padding), never a silently different checkpoint."""
    path, original = saved
    rng = random.Random(1000 + seed)
    _flip(path, rng.randrange(path.stat().st_size), rng.randrange(8))
    try:
        ckpt = load_checkpoint(path)
    except IrnetEdgeError as exc:
        assert "\n" not in str(exc)
        return
    assert ckpt.spec == original.spec and ckpt.ede == original.ede and ckpt.config == original.config
    assert ckpt.state_dict.keys() == original.state_dict.keys()
    for key, value in original.state_dict.items():
        assert torch.equal(ckpt.state_dict[key], value), key


@pytest.mark.parametrize("seed", range(3))
def test_cli_refuses_a_damaged_checkpoint(saved, tmp_path, seed):
    path, _ = saved
    rng = random.Random(seed)
    name, start, end = rng.choice([m for m in _members(path) if "/data/" in m[0] and m[2] > m[1]])
    _flip(path, rng.randrange(start, end), rng.randrange(8))
    out = tmp_path / "gen"
    result = CliRunner().invoke(main, ["codegen", str(path), "--out", str(out)])
    _assert_one_error_line(result, f"member {name} fails its CRC check")
    assert not out.exists()
    result = CliRunner().invoke(main, ["verify", str(path), "--samples", "1"])
    _assert_one_error_line(result, f"member {name} fails its CRC check")


def _patch_central_directory(path, edit) -> None:
    """edit(bytearray, offset of a central directory record) for every record."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        edit(data, pos)
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))


def test_a_checkpoint_without_crcs_is_refused(saved):
    path, _ = saved
    _patch_central_directory(path, lambda data, pos: data.__setitem__(slice(pos + 16, pos + 20), b"\0\0\0\0"))
    with pytest.raises(IrnetEdgeError, match="carries no CRC-32 checksums .* re-save it"):
        load_checkpoint(path)


def test_an_absurd_declared_member_size_is_refused(saved):
    path, _ = saved
    _patch_central_directory(path, lambda data, pos: data.__setitem__(slice(pos + 24, pos + 28),
                                                                     struct.pack("<I", 0xFFFF0000)))
    with pytest.raises(IrnetEdgeError, match=r"is damaged: member \S+ declares 4,294,901,760 bytes in a file of"):
        load_checkpoint(path)


# ---- 2. structure: the container and the state_dict against the model the spec builds ---------------

def _resave(path, ckpt: Checkpoint, mutate) -> None:
    raw = copy.deepcopy(ckpt.to_dict())
    mutate(raw)
    torch.save(raw, path)


def _nested(depth: int):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _cycle():
    value = []
    value.append(value)
    return value


def _laughs():
    value = [0]
    for _ in range(40):
        value = [value, value]
    return value


def _set_layer(index, **fields):
    return lambda raw: raw["spec"]["layers"][index].update(fields)


STRUCTURE = {
    "no ede": (lambda raw: raw.pop("ede"), r"lacks its 'ede' entry"),
    "no spec": (lambda raw: raw.pop("spec"), r"lacks its 'spec' entry"),
    "no state_dict": (lambda raw: raw.pop("state_dict"), r"lacks its 'state_dict' entry"),
    "spec is a list": (lambda raw: raw.update(spec=[1, 2]), r"its 'spec' entry is list, expected a dict"),
    "config is a string": (lambda raw: raw.update(config="mnist"), r"its 'config' entry is str, expected a dict"),
    "state_dict is a tensor": (lambda raw: raw.update(state_dict=torch.zeros(3)),
                               r"its 'state_dict' entry is Tensor, expected a dict"),
    "train_state is a list": (lambda raw: raw.update(train_state=[]),
                              r"its 'train_state' entry is list, expected a dict or None"),
    "ede k is NaN": (lambda raw: raw["ede"].update(k=float("nan")), r"ede\['k'\] is nan, expected a finite number"),
    "ede t is a string": (lambda raw: raw["ede"].update(t="1"), r"ede\['t'\] is '1', expected a finite number"),
    "input lacks width": (lambda raw: raw["spec"]["input"].pop("width"),
                          r"spec\['input'\] is .*expected positive integers channels, height and width"),
    "input is missing": (lambda raw: raw["spec"].pop("input"), r"spec\['input'\] is None"),
    "num_classes is a string": (lambda raw: raw["spec"].update(num_classes="10"),
                                r"positive integer 'num_classes' \(found 'mcu_m0' and '10'\)"),
    "entry missing": (lambda raw: raw["state_dict"].pop("5.weight"), r"the state_dict lacks '5.weight'"),
    "entry extra": (lambda raw: raw["state_dict"].update({"16.weight": torch.zeros(2)}),
                    r"the state_dict has '16.weight', which the spec's model does not"),
    "wrong shape": (lambda raw: raw["state_dict"].update({"5.weight": torch.zeros(8, 16, 3, 3)}),
                    r"state_dict entry '5.weight' has shape \(8, 16, 3, 3\), the spec's layer 5 \(irconv2d\) needs "
                    r"\(32, 16, 3, 3\)"),
    "wrong dtype": (lambda raw: raw["state_dict"].update({"3.running_var": torch.ones(16, dtype=torch.float64)}),
                    r"state_dict entry '3.running_var' has dtype torch.float64, the spec's layer 3 \(batchnorm2d\) "
                    r"needs torch.float32"),
    "integer weights": (lambda raw: raw["state_dict"].update({"15.bias": torch.zeros(10, dtype=torch.int32)}),
                        r"'15.bias' has dtype torch.int32, the spec's layer 15 \(linear\) needs torch.float32"),
    "not a tensor": (lambda raw: raw["state_dict"].update({"15.bias": [0.0] * 10}),
                     r"state_dict entry '15.bias' is list, not a tensor"),
    "key not a string": (lambda raw: raw["state_dict"].update({7: torch.zeros(1)}),
                         r"state_dict key 7 is int, not a string"),
    "NaN weight": (lambda raw: raw["state_dict"]["9.weight"].view(-1).__setitem__(5, float("nan")),
                   r"state_dict entry '9.weight' \(layer 9 \(irconv2d\)\) holds 1 non-finite value\(s\)"),
    "inf running_var": (lambda raw: raw["state_dict"]["14.running_var"].__setitem__(0, float("inf")),
                        r"'14.running_var' \(layer 14 \(batchnorm1d\)\) holds 1 non-finite"),
    "zero-stride view": (lambda raw: raw["state_dict"].update({"15.weight": torch.zeros(1).expand(10, 576)}),
                         r"state_dict entry '15.weight' declares 5,760 values on 4 bytes of data"),
    "absurd spec size": (_set_layer(5, out_channels=10**12),
                         r"state_dict entry '5.weight' has shape \(32, 16, 3, 3\), the spec's layer 5 \(irconv2d\) "
                         r"needs \(1000000000000, 16, 3, 3\)"),
    # the spec's own fields are the schema's (build_model); load_checkpoint names the file
    "spec field of the wrong type": (_set_layer(1, kernel_size="3"),
                                     r"checkpoint \S+: .*(kernel_size|does not build a model)"),
    "unknown layer type": (_set_layer(4, type="gelu"), r"unknown layer type 'gelu'"),
    "spec does not fit its input": (lambda raw: raw["spec"]["input"].update(height=20, width=20),
                                    r"its spec does not fit its declared input \(1, 20, 20\)"),
    "wrong class count": (lambda raw: raw["spec"].update(num_classes=12),
                          r"gives output \(10,\) per input, the spec declares 12 classes"),
    "deep nesting": (lambda raw: raw["metrics"].update(history=_nested(200)),
                     r"nests containers more than 64 levels deep"),
    "a reference cycle": (lambda raw: raw["metrics"].update(history=_cycle()),
                          r"more than 64 levels deep \(or in a cycle"),
    "shared-reference bomb": (lambda raw: raw["config"].update(x=_laughs()), r"holds more than 1,000,000 objects"),
}


@pytest.mark.parametrize("case", STRUCTURE, ids=list(STRUCTURE))
def test_malformed_structure_gets_one_clear_error(saved, case):
    path, ckpt = saved
    mutate, message = STRUCTURE[case]
    _resave(path, ckpt, mutate)
    with pytest.raises(IrnetEdgeError, match=message) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 1000


@pytest.mark.parametrize("case", ["wrong shape", "NaN weight", "spec is a list", "deep nesting"])
def test_cli_refuses_malformed_structure(saved, tmp_path, case):
    path, ckpt = saved
    _resave(path, ckpt, STRUCTURE[case][0])
    out = tmp_path / "gen"
    result = CliRunner().invoke(main, ["codegen", str(path), "--out", str(out)])
    _assert_one_error_line(result, f"checkpoint {path}")
    assert not out.exists()


def test_the_valid_checkpoint_loads_unchanged(saved):
    path, ckpt = saved
    loaded = load_checkpoint(path)
    assert loaded.spec == ckpt.spec and len(loaded.sha256) == 64
    for key, value in ckpt.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value)


def test_build_names_a_wrong_shape_set_after_loading(saved):
    path, _ = saved
    ckpt = load_checkpoint(path)
    ckpt.state_dict["15.weight"] = torch.zeros(10, 100)
    with pytest.raises(IrnetEdgeError, match=r"do not match its architecture \(state_dict entry '15.weight' has "
                                             r"shape \(10, 100\), the spec's layer 15 \(linear\) needs \(10, 576\)"):
        ckpt.build()


# ---- 3. folded constants the C cannot hold ---------------------------------------------------------

@pytest.fixture
def m0(tmp_path):
    """mcu_m0 with real BatchNorm statistics and the helpers' extreme-but-finite scales (gamma 1e-9, negative):
    layer 5 (irconv2d) emits thresholded bits, layer 9 (irconv2d) float outputs, 14 (batchnorm1d) folds into 15."""
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return calibrated(_spec(), (1, 28, 28), images, "mnist", tmp_path / "m0.pt")


def test_extreme_but_finite_scales_still_export(m0):
    m0.state_dict["7.weight"][:] = 1e-9
    m0.state_dict["11.weight"][::2] *= -1
    m0.state_dict["14.weight"][:] = -1e-9
    graph = export(m0)
    assert [op.kind for op in graph.ops].count("bconv") == 2


def _set(key, index, value):
    return lambda sd: sd[key].view(-1).__setitem__(index, value)


def _both(*edits):
    return lambda sd: [edit(sd) for edit in edits]


FOLDING = {
    "negative running_var": (_set("7.running_var", 3, -0.5),
                             r"cannot export layer 7 \(batchnorm2d\): running_var is negative in channel 3 \(-0.5\)"),
    "all-zero binary filter": (lambda sd: sd["5.weight"][2].zero_(),
                               r"cannot export layer 5 \(irconv2d\): filter 2: all its 144 weights are equal \(0\)"),
    "constant binary filter": (lambda sd: sd["9.weight"][7].fill_(0.25),
                               r"layer 9 \(irconv2d\): filter 7: all its 288 weights are equal \(0.25\)"),
    "huge binary weights": (lambda sd: sd["9.weight"][4].uniform_(-1, 1).mul_(3.4e38),
                            r"layer 9 \(irconv2d\): filter 4: its binary scale \(Libra-PB\) is nan: "
                            r".* overflow float32"),
    "threshold fold overflows": (_both(_set("7.weight", 1, 3e38), _set("7.running_var", 1, 0.0)),
                                 r"cannot export layers 5 \(irconv2d\), .*7 \(batchnorm2d\).*: its folded mult is "
                                 r"-?inf in output channel 1, which float32 C cannot hold"),
    "float fold overflows": (_both(_set("11.weight", 6, -3e38), _set("11.running_var", 6, 0.0)),
                             r"cannot export layers 9 \(irconv2d\), .*: its folded mult is -?inf in output channel 6"),
    "binary dot product overflows": (_both(_set("11.weight", 0, 3e37), _set("11.running_var", 0, 1.0),
                                           _set("11.running_mean", 0, 0.0)),
                                     r"layers 9 \(irconv2d\).*: output channel 0 scales dot products of up to 288 by "
                                     r".*overflows float32"),
    "classifier fold overflows": (_both(_set("14.weight", 5, 3e38), _set("14.running_var", 5, 0.0)),
                                  r"cannot export layers 14 \(batchnorm1d\), 15 \(linear\): its folded weight is "
                                  r"-?inf"),
}


@pytest.mark.parametrize("case", FOLDING, ids=list(FOLDING))
def test_constants_that_fold_to_nan_or_inf_are_refused_by_layer(m0, tmp_path, case):
    edit, message = FOLDING[case]
    edit(m0.state_dict)
    with pytest.raises(IrnetEdgeError, match=message) as err:
        export(m0)
    assert "\n" not in str(err.value)
    path, out = tmp_path / "bad.pt", tmp_path / "gen"
    save_checkpoint(m0, path)
    result = CliRunner().invoke(main, ["codegen", str(path), "--out", str(out)])
    _assert_one_error_line(result, "cannot export layer")
    assert not out.exists()


@pytest.mark.parametrize("mean, std, message", [
    (0.5, 0.0, r"std"),  # the schema refuses it first, or export does
    (0.5, float("nan"), r"std"),
    (0.5, 1e-40, r"input channel 0 has mean 0.5 and std \S+; \(pixel / 255 - mean\) / std needs"),
    (3e38, 1e-3, r"input channel 0 has mean 3e\+38"),
    (0.5, float("inf"), r"std"),
])
def test_input_normalisation_the_c_cannot_compute_is_refused(m0, mean, std, message):
    m0.spec["layers"][0].update(mean=[mean], std=[std])
    with pytest.raises(IrnetEdgeError, match=message):
        export(m0)


def test_bn_eps_zero_is_refused(m0):
    m0.spec["layers"][3]["eps"] = 0.0
    with pytest.raises(IrnetEdgeError, match=r"layer 3 \(batchnorm2d\).*eps"):
        export(m0)


# ---- 4. training that diverges ----------------------------------------------------------------------

def _tiny(mnist_dir, **kw):
    return TrainConfig(**{"arch": "mcu_m0", "dataset": "mnist", "data_dir": str(mnist_dir), "epochs": 1,
                          "train_limit": 256, "batch_size": 64, **kw})


QUIET = {"progress": False, "log": lambda s: None}


def test_a_diverging_run_stops_and_writes_nothing(mnist_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(IrnetEdgeError, match=r"training diverged in epoch 1/1: (the loss became non-finite at step "
                                             r"\d/4|its weights became non-finite \(\S+\) by step \d/4|its test loss "
                                             r"became nan) .*with learning rate 1e\+06; nothing was written\. Lower "
                                             r"the learning rate, e\.g\. --lr 100000$") as err:
        train(_tiny(mnist_dir, lr=1e6), out, **QUIET)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_nan_that_binarization_hides_from_the_loss_is_caught_in_the_weights(mnist_dir, tmp_path, monkeypatch):
    """NaN images at step 2: the binary layers turn NaN into -1, so the loss stays finite, but the gradient
    makes the first conv's weights NaN."""
    from irnet_edge.train import trainer

    calls, real = {"n": 0}, trainer.random_crop_flip

    def poisoned(*args):
        calls["n"] += 1
        images = real(*args)
        return images if calls["n"] != 2 else images.float() * float("nan")  # to_input keeps the NaN

    monkeypatch.setattr(trainer, "random_crop_flip", poisoned)
    out = tmp_path / "run"
    with pytest.raises(IrnetEdgeError, match=r"training diverged in epoch 1/1: its weights became non-finite "
                                             r"\(1\.weight\) by step 4/4 with learning rate 0\.1; nothing was "
                                             r"written"):
        train(_tiny(mnist_dir), out, **QUIET)
    assert not out.exists()


def test_cli_train_with_a_huge_lr_exits_1_with_one_error_line(mnist_dir, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir",
                                       str(mnist_dir), "--epochs", "1", "--train-limit", "256", "--batch-size", "64",
                                       "--lr", "1e6", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output
    assert "training diverged in epoch 1/1" in errors[0] and "--lr 100000" in errors[0]
    assert not out.exists()


def test_divergence_in_a_later_epoch_keeps_the_last_finite_checkpoint(mnist_dir, tmp_path, monkeypatch):
    """Epoch 1 trains and is written; a NaN loss at epoch 2, step 3 stops the run and leaves every file of
    epoch 1 byte for byte."""
    from irnet_edge.train import trainer

    out = tmp_path / "run"
    train(_tiny(mnist_dir, epochs=2), out, stop_after=1, **QUIET)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"model.pt", "metrics.json", "training_curve.png"}
    calls, real = {"n": 0}, trainer.F.cross_entropy

    def poisoned(*args, **kwargs):  # the loss of epoch 2, step 3 (evaluation comes after the epoch's steps)
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss if calls["n"] != 3 else loss * float("nan")

    monkeypatch.setattr(trainer.F, "cross_entropy", poisoned)
    with pytest.raises(IrnetEdgeError, match=rf"training diverged in epoch 2/2: the loss became non-finite at step "
                                             rf"3/4 with learning rate 0\.1; {out / 'model.pt'} still holds epoch 1, "
                                             r"the last finite one\. Lower the learning rate, e\.g\. --lr 0\.01"):
        train(_tiny(mnist_dir, epochs=2), out, resume=True, **QUIET)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_checkpoint(out / "model.pt").train_state["epoch"] == 1


def test_weights_that_overflow_in_the_last_step_are_not_saved(mnist_dir, tmp_path, monkeypatch):
    """A weight that overflows in the epoch's last step never meets a loss: the epoch's weights are checked too."""
    real_step, steps = torch.optim.SGD.step, {"n": 0}

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        steps["n"] += 1
        if steps["n"] == 4:  # the last of 256 / 64
            self.param_groups[0]["params"][1].data[0] = float("inf")  # layer 3's BatchNorm gamma
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    out = tmp_path / "run"
    with pytest.raises(IrnetEdgeError, match=r"training diverged in epoch 1/1: its weights became non-finite "
                                             r"\(3\.weight\) by step 4/4 with learning rate 0\.1; nothing was written"):
        train(_tiny(mnist_dir), out, **QUIET)
    assert not out.exists()


def test_fewer_training_images_than_one_batch_is_refused(mnist_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(IrnetEdgeError, match=r"--train-limit 10 leaves 10 training images, fewer than one batch of "
                                             r"64; pass --batch-size 10 or less, or a larger --train-limit"):
        train(_tiny(mnist_dir, train_limit=10), out, **QUIET)
    assert not out.exists()
    result = CliRunner().invoke(main, ["train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir",
                                       str(mnist_dir), "--train-limit", "5", "--out", str(out), "--no-progress"])
    assert result.exit_code == 1 and "--train-limit 5 leaves 5 training images, fewer than one batch of 128" in \
        result.output
    assert not out.exists()


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0])
def test_a_non_finite_learning_rate_is_refused(mnist_dir, tmp_path, lr):
    with pytest.raises(IrnetEdgeError, match=r"--lr \S+ is not a finite, positive number"):
        train(_tiny(mnist_dir, lr=lr), tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


def test_resume_of_a_checkpoint_without_training_state_is_refused(saved, tmp_path):
    path, _ = saved
    with pytest.raises(IrnetEdgeError, match=r"--resume: \S+ holds no training state to continue"):
        train(TrainConfig(arch="mcu_m0", dataset="mnist"), path.parent, resume=True, **QUIET)
