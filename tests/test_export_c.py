"""Export, the reference executor and the generated C: bit-exact on real data and over a shape grid."""
import copy
import json
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from irnet_edge.cli import main
from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.codegen.render import runtime_files
from irnet_edge.codegen.schedule import schedule
from irnet_edge.data import get_dataset_info, load_split
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export, reference
from irnet_edge.ir.bits import pack_negative, unpack_negative
from irnet_edge.ir.export import thresholds
from irnet_edge.nn import InputNorm, IRConv2d, IRLinear, zoo_spec
from irnet_edge.nn.spec import describe_layer
from irnet_edge.verify.compare import agreement, first_mismatch
from irnet_edge.verify.host import run_c, verify

from .helpers import briefly_trained, calibrated, checkpoint_of


def hwc(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 2, 3, 1).contiguous()


# ---- packing and thresholds --------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 31, 32, 33, 64, 65])
def test_one_hot_bit_positions(channels):
    for c in range(channels):
        negative = np.zeros(channels, dtype=bool)
        negative[c] = True
        words = pack_negative(negative)
        assert words.shape == ((channels + 31) // 32,)
        expected = np.zeros_like(words)
        expected[c // 32] = np.uint32(1) << np.uint32(c % 32)
        assert np.array_equal(words, expected), c
        assert np.array_equal(unpack_negative(words, channels), negative)


def test_thresholds_equal_the_float_expression_including_ties():
    rng = np.random.default_rng(0)
    k = 64
    mult = np.concatenate([rng.normal(size=60), [0.5, -0.5, 0.0, 1e-30, -1e-30, 0.25]]).astype(np.float32)
    add = np.concatenate([rng.normal(size=60) * 10, [-3.0, 3.0, -1.0, 0.0, 0.0, 2.0]]).astype(np.float32)
    # exact ties: 0.5 * 6 - 3 == 0 and -0.5 * 6 + 3 == 0, and 0.25 * -8 + 2 == 0
    flip, limit = thresholds(mult, add, k)
    for c in range(len(mult)):
        for d in range(-k, k + 1):
            y = np.float32(np.float32(d) * mult[c]) + add[c]
            dp = -d if flip[c] else d
            assert (y >= 0) == (dp >= limit[c]), (c, d)
    assert limit[60] == 6 and flip[61] and limit[61] == -6


# ---- zoo models on real data ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_split("mnist", "test", mnist_dir)


@pytest.fixture(scope="module")
def cifar_test(cifar_dir):
    return load_split("cifar10", "test", cifar_dir)


@pytest.mark.parametrize("arch", ["mcu_m4", "mcu_m0"])
def test_mcu_models_agree_with_the_trained_model_and_the_c_is_bit_exact(arch, trained_mcu, mnist_test):
    from irnet_edge.nn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_mcu[arch])
    graph = export(ckpt)
    top1, _ = agreement(ckpt, graph, mnist_test.images)  # all 10,000 test images
    assert top1 >= 0.999
    result = verify(graph, arch, ckpt.sha256, hwc(mnist_test.images[:100]))
    assert result.exact == result.samples == 100


@pytest.fixture(scope="module")
def cifar_train(cifar_dir):
    return load_split("cifar10", "train", cifar_dir)


@pytest.mark.parametrize("arch,steps,agree_n,c_n", [("resnet20", 60, 1000, 20), ("resnet20_1w32a", 60, 300, 5),
                                                     ("vgg_small", 20, 300, 5), ("resnet18", 15, 300, 3)])
def test_cifar_zoo_models(arch, steps, agree_n, c_n, cifar_train, cifar_test, tmp_path):
    info = get_dataset_info("cifar10")
    spec = zoo_spec(arch, 3, 32, 10, info.mean, info.std)
    ckpt = briefly_trained(spec, cifar_train.images[:4096], cifar_train.labels[:4096], tmp_path / "m.pt", steps)
    graph = export(ckpt)
    top1, _ = agreement(ckpt, graph, cifar_test.images[-agree_n:])
    assert top1 >= 0.999
    result = verify(graph, arch, ckpt.sha256, hwc(cifar_test.images[:c_n]))
    assert result.exact == result.samples == c_n


# ---- a randomised grid of single layers ---------------------------------------------------------

def _grid() -> list[dict]:
    cases = []
    for i, cin in enumerate((1, 3, 16, 31, 32, 33, 64, 65)):
        for j, k in enumerate((1, 3, 5)):
            n = i * 3 + j
            cases.append({"cin": cin, "k": k, "stride": 1 + n % 2, "padding_value": ("zero", "one")[n // 2 % 2],
                          "pad": k // 2 if n % 5 else 0, "size": (7, 9, 11, 6)[n % 4], "pool": n % 3 == 0,
                          "bits_out": n % 2 == 0, "cout": (16, 33, 8)[n % 3],
                          # every fourth case, and 1x1 on one channel (one weight per filter has no Libra-PB
                          # std), tests the full-precision conv kernel instead of the binary one
                          "binary": n % 4 != 3 and (cin, k) != (1, 1)})
    return cases


GRID = _grid()


def grid_model(case, tmp_path):
    """A small graph around one conv of the grid: (checkpoint, graph, uint8 HWC inputs)."""
    generator = torch.Generator().manual_seed(case["cin"] * 10 + case["k"])
    size, cin, cout = case["size"], case["cin"], case["cout"]
    if case["padding_value"] == "one" and case["pad"] == 0:
        case = {**case, "pad": 1}
    if case["binary"]:
        tested = IRConv2d(cin, cout, case["k"], case["stride"], case["pad"], padding_value=case["padding_value"])
    else:
        tested = nn.Conv2d(cin, cout, case["k"], case["stride"], case["pad"])
    layers = [InputNorm([0.5], [0.25]), nn.Conv2d(1, cin, 3, padding=1), nn.BatchNorm2d(cin), nn.Hardtanh(), tested]
    side = (size + 2 * case["pad"] - case["k"]) // case["stride"] + 1
    if case["pool"] and side >= 2:
        layers.append(nn.MaxPool2d(2))
        side //= 2
    layers += [nn.BatchNorm2d(cout), nn.Hardtanh()]
    if case["bits_out"]:  # a binary consumer makes the tested conv emit thresholded bits
        layers += [IRConv2d(cout, 12, 1), nn.BatchNorm2d(12), nn.Hardtanh()]
        cout = 12
    layers += [nn.Flatten(), nn.BatchNorm1d(cout * side * side), nn.Linear(cout * side * side, 10)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data = torch.randn(m.weight.shape, generator=generator)
    images = torch.randint(0, 256, (96, 1, size, size), dtype=torch.uint8, generator=generator)
    ckpt = calibrated(model, (1, size, size), images, "mnist", tmp_path / "m.pt")
    return ckpt, export(ckpt), hwc(images)


def grid_id(c: dict) -> str:
    kind = "bin" if c["binary"] else "fp"
    return "{kind}-cin{cin}-k{k}-s{stride}-{padding_value}-p{pad}-hw{size}-pool{pool:d}-bits{bits_out:d}".format(
        kind=kind, **c)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_layer_grid_c_equals_reference(case, tmp_path):
    ckpt, graph, inputs = grid_model(case, tmp_path)
    kinds = [op.kind for op in graph.ops]
    assert kinds.count("conv_f32") == 2 + (not case["binary"])  # stem, classifier and the tested conv
    assert ("maxpool_bits" in kinds or "maxpool_f32" in kinds) == ("maxpool2d" in str(ckpt.spec))
    result = verify(graph, "grid", ckpt.sha256, inputs[:16])
    assert result.exact == result.samples == 16


def test_binary_linear_after_flatten(tmp_path):
    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 40, 3, stride=2, padding=1), nn.BatchNorm2d(40),
                          nn.Hardtanh(), nn.Flatten(), IRLinear(40 * 5 * 5, 70), nn.BatchNorm1d(70), nn.Hardtanh(),
                          IRLinear(70, 33), nn.BatchNorm1d(33), nn.Hardtanh(), nn.Linear(33, 10))
    images = torch.randint(0, 256, (64, 1, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    ckpt = calibrated(model, (1, 9, 9), images, "mnist", tmp_path / "m.pt")
    graph = export(ckpt)
    assert [op.kind for op in graph.ops] == ["normalize", "conv_f32", "bconv", "bconv", "conv_f32"]
    top1, _ = agreement(ckpt, graph, images)
    assert top1 == 1.0
    assert verify(graph, "lin", ckpt.sha256, hwc(images[:16])).exact == 16


# ---- builds, determinism, debugging ---------------------------------------------------------------

def test_sanitizers_and_cplusplus(trained_mcu, mnist_test, tmp_path):
    from irnet_edge.nn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_mcu["mcu_m0"])
    graph = export(ckpt)
    sanitize = "-std=c99 -O1 -g -Wall -Wextra -Werror -pedantic -fsanitize=address,undefined -fno-sanitize-recover=all"
    got = run_c(graph, "mcu_m0", ckpt.sha256, hwc(mnist_test.images[:20]), tmp_path, cflags=sanitize,
                ldflags="-fsanitize=address,undefined")
    expected = reference.run(graph, hwc(mnist_test.images[:20])).numpy()
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))
    tree = tmp_path / "plain"
    write_tree(render(graph, get_target("host"), "mcu_m0", ckpt.sha256)[0], tree, force=False)
    subprocess.run(["make", "-C", str(tree), "libmcu_m0.a", "libirnet.a"], check=True, capture_output=True)
    (tmp_path / "use.cpp").write_text('#include "mcu_m0.h"\nint main() { static uint8_t x[MCU_M0_INPUT_SIZE]; '
                                      'float y[MCU_M0_OUTPUT_SIZE]; mcu_m0_infer(x, y); '
                                      'return y[0] != y[0] || mcu_m0_selftest() != 0; }\n')
    build = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(tree / "src"),
                            str(tmp_path / "use.cpp"), str(tree / "libmcu_m0.a"), str(tree / "libirnet.a"),
                            "-o", str(tmp_path / "use")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "use")]).returncode == 0


def test_generation_is_deterministic_and_bannered(trained_mcu, tmp_path):
    from irnet_edge import __version__
    from irnet_edge.nn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_mcu["mcu_m0"])
    first, manifest = render(export(ckpt), get_target("host"), "m0", ckpt.sha256)
    second, _ = render(export(load_checkpoint(trained_mcu["mcu_m0"])), get_target("host"), "m0", ckpt.sha256)
    assert first == second
    model = {"src/m0.h", "src/m0.c", "src/m0_weights.c", "src/m0_weights.h", "src/m0_selftest.c", "m0_run.c",
             "Makefile", "manifest.json"}
    runtime = {f"src/irnet/{name}": text for name, text in runtime_files().items()}
    assert model <= set(first) and set(runtime) <= set(first)
    assert set(manifest["files"]) == set(first)
    for name, text in first.items():
        if name in runtime:  # the runtime is copied as shipped, not generated
            assert text == runtime[name]
        elif not name.endswith(".json"):
            assert f"irnet-edge {__version__} from checkpoint sha256:{ckpt.sha256}" in text.splitlines()[0], name
    assert manifest["checkpoint_sha256"] == ckpt.sha256 and manifest["arena_bytes"] > 0
    # every external C symbol carries the model's prefix, or the runtime's irnet_
    write_tree(first, tmp_path / "c", force=False)
    subprocess.run(["make", "-C", str(tmp_path / "c"), "libm0.a", "libirnet.a"], check=True, capture_output=True)
    for library, namespace in (("libm0.a", "m0_"), ("libirnet.a", "irnet_")):
        nm = subprocess.run(["nm", "-g", "--defined-only", str(tmp_path / "c" / library)], capture_output=True,
                            text=True, check=True).stdout
        symbols = [line.split()[-1] for line in nm.splitlines() if len(line.split()) == 3]
        assert symbols and all(s.startswith(namespace) for s in symbols), symbols


def test_a_wrong_constant_is_traced_to_its_layer(trained_mcu, mnist_test, tmp_path):
    from irnet_edge.nn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_mcu["mcu_m4"])
    host = get_target("host")
    graph = schedule(export(ckpt), host).graph  # the ops the C runs, one dump each
    broken = copy.deepcopy(graph)
    victim = [i for i, op in enumerate(broken.ops) if op.kind == "bconv"][1]
    broken.ops[victim].consts["threshold"] = broken.ops[victim].consts["threshold"] + 10_000
    dump = tmp_path / "dump"
    dump.mkdir()
    sample = hwc(mnist_test.images[:1])
    run_c(broken, "m4", ckpt.sha256, sample, tmp_path, defines=("M4_DEBUG_DUMP",), dump_dir=dump)
    dumps = {i: (dump / f"op{i:03d}.bin").read_bytes() for i in range(len(graph.ops))}
    mismatch = first_mismatch(graph, sample[0], dumps, host)
    assert mismatch is not None and mismatch.op_index == victim
    assert "irconv2d" in mismatch.describe()


# ---- bad inputs ----------------------------------------------------------------------------------

def test_unsupported_layer_is_named_before_anything_is_written(tmp_path):
    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 8, 3), nn.ReLU(), IRConv2d(8, 8, 3),
                          nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 3 * 3, 10))
    images = torch.randint(0, 256, (8, 1, 7, 7), dtype=torch.uint8)
    # refused where the spec is accepted, before any training ...
    with pytest.raises(IrnetEdgeError, match=r"layer 2 \(relu\)"):
        calibrated(model, (1, 7, 7), images, "mnist", tmp_path / "m.pt")
    # ... and by export, for a checkpoint whose spec was written without those rules
    spec = {"format": 1, "name": "grid", "input": {"channels": 1, "height": 7, "width": 7}, "num_classes": 10,
            "layers": [describe_layer(m) for m in model]}
    ckpt = checkpoint_of(model, spec, "mnist", tmp_path / "m.pt")
    with pytest.raises(IrnetEdgeError, match=r"cannot export layer 2 \(relu\): ReLU followed by binarization"):
        export(ckpt)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["codegen", str(tmp_path / "m.pt"), "--out", str(out)])
    assert result.exit_code == 1 and "cannot export layer 2 (relu)" in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_nan_weights_are_refused(tmp_path):
    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 10))
    images = torch.randint(0, 256, (8, 1, 7, 7), dtype=torch.uint8)
    ckpt = calibrated(model, (1, 7, 7), images, "mnist", tmp_path / "m.pt")
    ckpt.state_dict["1.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(IrnetEdgeError, match=r"layer 1 \(conv2d\) has non-finite values in weight"):
        export(ckpt)


def test_cli_codegen_and_verify(trained_mcu, mnist_dir, tmp_path):
    runner = CliRunner()
    model = str(trained_mcu["mcu_m0"])
    out = tmp_path / "gen"
    result = runner.invoke(main, ["codegen", model, "--target", "host", "--out", str(out), "--prefix", "digits",
                                  "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert (out / "src" / "digits.h").is_file() and "arena" in result.output
    assert json.loads((out / "manifest.json").read_text())["selftest"]["input"] == "mnist test image 0"
    subprocess.run(["make", "-C", str(out)], check=True, capture_output=True)
    assert subprocess.run([str(out / "digits_run"), "--selftest"], capture_output=True).returncode == 0
    result = runner.invoke(main, ["codegen", model, "--out", str(tmp_path / "nodata"), "--data-dir",
                                  str(tmp_path / "empty")])  # a --data-dir given by name must hold the data
    assert result.exit_code == 1 and result.output.count("Error:") == 1 and "does not exist" in result.output
    assert not (tmp_path / "nodata").exists()
    result = runner.invoke(main, ["codegen", model, "--out", str(tmp_path / "nodata")], env={"HOME": str(tmp_path)})
    assert result.exit_code == 0 and "the self-test input is seeded pseudo-random pixels" in result.output
    result = runner.invoke(main, ["codegen", model, "--out", str(out)])
    assert result.exit_code == 1 and "exists and is not empty; pass --force" in result.output
    for bad in ("int", "9lives", "a-b", "__x", "x__y"):
        result = runner.invoke(main, ["codegen", model, "--out", str(tmp_path / bad), "--prefix", bad])
        assert result.exit_code == 1 and "not a valid, non-reserved C identifier" in result.output
        assert not (tmp_path / bad).exists()
    result = runner.invoke(main, ["verify", model, "--samples", "25", "--agreement-samples", "500",
                                  "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "25/25 bit-exact on host" in result.output and "top-1 agreement" in result.output


def test_runner_bench_mode_prints_classes_and_times(trained_mcu, mnist_test, tmp_path):
    from irnet_edge.nn.checkpoint import load_checkpoint
    from irnet_edge.verify import toolchain

    ckpt = load_checkpoint(trained_mcu["mcu_m0"])
    graph = export(ckpt)
    write_tree(render(graph, get_target("host"), "m0", ckpt.sha256)[0], tmp_path / "c", force=False)
    runner = toolchain.build(tmp_path / "c")
    images = hwc(mnist_test.images[:3])
    images.numpy().tofile(tmp_path / "three.bin")
    out = subprocess.run([str(runner), "--bench", str(tmp_path / "three.bin"), "5"], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    expected = reference.run(graph, images).argmax(1).tolist()
    assert [line.split(",")[0] for line in out] == [f"input {i}: class {c}" for i, c in enumerate(expected)]
    assert all("ms over 5 runs" in line for line in out)
