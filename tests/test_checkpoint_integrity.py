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
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


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
    "spec field of the wrong type": (_set_layer(1, kernel_size="3"), r"checkpoint \S+: .*kernel_size"),
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
