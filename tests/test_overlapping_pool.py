"""Overlapping and padded pooling (issue 12): max-pool over floats and bits and average pool, any kernel, stride and
padding <= kernel / 2. The reference executor against PyTorch's own pooling, and the runtime's C against the
reference, every op's output bit for bit, on the host (gcc and clang), aarch64 and armv7 under qemu-user and an
emulated Cortex-M4 (mps2-an386)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.codegen.firmware import load_board
from irnet_edge.codegen.schedule import schedule
from irnet_edge.ir import export, reference
from irnet_edge.ir.baseline import float_baseline
from irnet_edge.ir.bits import pack_negative, unpack_negative
from irnet_edge.ir.graph import Graph, Op, Tensor
from irnet_edge.nn import InputNorm, IRConv2d
from irnet_edge.verify import qemu, toolchain
from irnet_edge.verify.compare import agreement, first_mismatch

from .helpers import calibrated

SHA = "0" * 64
CHANNELS = (1, 3, 16, 31, 32, 33, 64, 65)
# (kernel, stride, padding): kernels 2, 3, 5, strides 1, 2, 3, every padding PyTorch allows (<= kernel / 2)
CONFIGS = [(k, s, p) for k in (2, 3, 5) for s in (1, 2, 3) for p in range(k // 2 + 1)]
# average pooling's divisor: k * k (count_include_pad, PyTorch's default), 0 (the pixels inside the map) or an
# override
DIVISORS = ("include_pad", "inside", "override")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The reference runs many tiny ops: one thread is fastest, and on a loaded machine several are far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _divisor(mode: str, k: int) -> int:
    return {"include_pad": k * k, "inside": 0, "override": k * k + 2}[mode]


def _torch_avg(x: torch.Tensor, k: int, s: int, p: int, mode: str) -> torch.Tensor:
    return F.avg_pool2d(x, k, s, p, count_include_pad=mode != "inside",
                        divisor_override=_divisor(mode, k) if mode == "override" else None)


def _op(kind: str, k: int, s: int, p: int, channels: int, rng: np.random.Generator, mode: str = "") -> Op:
    attrs = {"k": k, "stride": s, "pad": p}
    mask = rng.random(channels) < 0.5
    if kind == "maxpool_bits":
        return Op(kind, "pool", ["x"], "y", attrs, {"or_mask": pack_negative(mask)})
    if kind == "maxpool_f32":
        return Op(kind, "pool", ["x"], "y", attrs, {"min_mask": mask.astype(np.uint8)})
    return Op("avgpool2d", "pool", ["x"], "y", {**attrs, "divisor": _divisor(mode, k)})


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


# ---- the reference against PyTorch ----------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p", CONFIGS, ids=[f"k{k}s{s}p{p}" for k, s, p in CONFIGS])
def test_reference_equals_pytorch_pooling(k, s, p):
    """Max-pooling equals nn.MaxPool2d's (-inf padding) bit for bit, min channels -max(-x); average pooling equals
    nn.AvgPool2d's in all three divisor modes; on bits, the pool of the signs is the sign of the pool."""
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    for i, channels in enumerate(CHANNELS):
        h, w = (7, 9, 11, 6)[i % 4], (9, 5, 8, 13)[i % 4]
        x = torch.from_numpy(rng.normal(size=(3, channels, h, w)).astype(np.float32))
        x[0, :, 1:3, 1:3] = 0.5  # ties
        x[1] = x[1].round()  # ties and zeros of both signs
        hwc = x.permute(0, 2, 3, 1).contiguous()
        biggest = F.max_pool2d(x, k, s, p).permute(0, 2, 3, 1)
        smallest = (-F.max_pool2d(-x, k, s, p)).permute(0, 2, 3, 1)
        op = _op("maxpool_f32", k, s, p, channels, rng)
        use_min = torch.from_numpy(op.consts["min_mask"].astype(bool))
        got = reference.maxpool_f32(hwc, op)
        assert _same(got, torch.where(use_min, smallest, biggest)), (channels, h, w)
        op = _op("maxpool_bits", k, s, p, channels, rng)
        use_or = torch.from_numpy(unpack_negative(op.consts["or_mask"], channels))
        got = reference.maxpool_bits(hwc < 0, op)
        assert torch.equal(got, torch.where(use_or, smallest < 0, biggest < 0)), (channels, h, w)
        for mode in DIVISORS:
            got = reference.avgpool2d(hwc, _op("avgpool2d", k, s, p, channels, rng, mode))
            assert _same(got, _torch_avg(x, k, s, p, mode).permute(0, 2, 3, 1)), (channels, h, w, mode)


def test_trained_model_pooling_equals_the_reference_and_the_c(tmp_path):
    """A model with the paper's stem pool (3/2, padding 1) on floats, padded max-pools on bits after a hardtanh and
    between a binary conv and a BatchNorm with negative scales (OR channels), the same on floats (min channels),
    overlapping average pools: the reference's logits agree with the model's forward, and the C with the
    reference."""
    from irnet_edge.verify.host import run_c

    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 33, 3, padding=1), nn.BatchNorm2d(33), nn.ReLU(),
                          nn.MaxPool2d(3, 2, 1), nn.Conv2d(33, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardtanh(),
                          nn.MaxPool2d(3, 1, 1), IRConv2d(16, 40, 3, padding=1), nn.MaxPool2d(3, 2, 1),
                          nn.BatchNorm2d(40), nn.Hardtanh(), IRConv2d(40, 24, 3, padding=1), nn.MaxPool2d(2, 1, 1),
                          nn.BatchNorm2d(24), nn.Hardtanh(), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
                          nn.AvgPool2d(3, 1, 1), nn.Flatten(), nn.Linear(24 * 3 * 3, 10))
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (64, 1, 17, 17), dtype=torch.uint8, generator=generator)
    ckpt = calibrated(model, (1, 17, 17), images, "mnist", tmp_path / "m.pt")
    # spec_from_module carries every pooling field: the checkpoint's model computes what the user's did
    pools = [node for node in ckpt.spec["layers"] if "pool" in node["type"]]
    assert pools[0] == {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}
    assert pools[4] == {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}
    with torch.no_grad():
        assert torch.equal(ckpt.build().eval()(images.float() / 255), model.eval()(images.float() / 255))
    graph = export(ckpt)
    pool_ops = [op for op in graph.ops if "pool" in op.kind]
    assert [(op.kind, op.attrs["stride"], op.attrs["pad"]) for op in pool_ops] == [
        ("maxpool_f32", 2, 1), ("maxpool_bits", 1, 1), ("maxpool_bits", 2, 1), ("maxpool_f32", 1, 1),
        ("avgpool2d", 2, 1), ("avgpool2d", 1, 1)]
    assert pool_ops[2].consts["or_mask"].any() and pool_ops[3].consts["min_mask"].any()
    top1, worst = agreement(ckpt, graph, images)
    assert top1 == 1.0 and worst < 1e-3
    inputs = images[:16].permute(0, 2, 3, 1).contiguous()
    expected = reference.run(graph, inputs).numpy()
    got = run_c(graph, "tp", SHA, inputs, tmp_path)
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))
    # the float32 baseline (bench --baseline float32) pools +-1 floats over the same windows: the same logits
    base = float_baseline(graph)
    assert [op.kind for op in base.ops if "pool" in op.kind] == ["maxpool_f32"] * 4 + ["avgpool2d"] * 2
    got = run_c(base, "tpb", SHA, inputs, tmp_path, tree_name="baseline")
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))


# ---- the C against the reference -------------------------------------------------------------------------------

class _Builder:
    """A hand-made graph: pixels -> normalize -> per channel count a 1x1 float conv (f32 map) and its signs (bits
    map), then pooling ops reading them. Its output is the last op's (every element a logit)."""

    def __init__(self, height: int, width: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.graph = Graph("pools", 0, "input", "")
        self.graph.tensors["input"] = Tensor("input", "u8", 3, height, width)
        self.norm = self._add("normalize", ["input"], "f32", 3, height, width, {},
                              {"mean": np.array([0.5, 0.4, 0.6], np.float32),
                               "std": np.array([0.25, 0.3, 0.2], np.float32)})
        self.maps: dict[tuple[str, int], str] = {}

    def _add(self, kind, inputs, tkind, channels, height, width, attrs, consts) -> str:
        name = f"t{len(self.graph.tensors)}"
        self.graph.tensors[name] = Tensor(name, tkind, channels, height, width)
        self.graph.ops.append(Op(kind, f"op{len(self.graph.ops)}_{kind}", inputs, name, attrs, consts,
                                 f"{kind} {attrs}"))
        return name

    def source(self, kind: str, channels: int) -> str:
        if ("f32", channels) not in self.maps:
            t = self.graph.tensor(self.norm)
            weight = self.rng.normal(size=(channels, 1, 1, 3)).astype(np.float32)
            # a quarter of the channels are +0.0 or -0.0 (acc * 0 + -0.0 keeps acc's sign): ties that only the
            # order of the comparisons decides
            zeros = self.rng.random(channels) < 0.25
            mult = np.where(zeros, 0.0, 1.0).astype(np.float32)
            add = np.where(zeros, -0.0, 0.0).astype(np.float32)
            self.maps["f32", channels] = self._add(
                "conv_f32", [self.norm], "f32", channels, t.height, t.width,
                {"k": 1, "stride": 1, "pad": 0, "out": "f32", "act": "none"},
                {"weight": weight, "mult": mult, "add": add})
            self.maps["bits", channels] = self._add("sign_pack", [self.maps["f32", channels]], "bits", channels,
                                                    t.height, t.width, {}, {})
        return self.maps[kind, channels]

    def pool(self, kind: str, k: int, s: int, p: int, channels: int, mode: str = "") -> str:
        x = self.source("bits" if kind == "maxpool_bits" else "f32", channels)
        t = self.graph.tensor(x)
        op = _op(kind, k, s, p, channels, self.rng, mode)
        ho, wo = (t.height + 2 * p - k) // s + 1, (t.width + 2 * p - k) // s + 1
        return self._add(op.kind, [x], t.kind, channels, ho, wo, op.attrs, op.consts)

    def finish(self) -> Graph:
        out = self.graph.tensor(self.graph.ops[-1].output)
        assert out.kind == "f32"
        self.graph.output = out.name
        self.graph.num_classes = out.channels * out.height * out.width
        return self.graph


def _grid_graph(height: int, width: int, seed: int) -> Graph:
    """Every (kernel, stride, padding) of CONFIGS as a max-pool on floats, on bits and an average pool, channel
    counts and divisor modes rotating over the ops."""
    b, n = _Builder(height, width, seed), 0
    for k, s, p in CONFIGS:
        for kind in ("maxpool_bits", "maxpool_f32", "avgpool2d"):
            b.pool(kind, k, s, p, CHANNELS[(n + seed) % len(CHANNELS)], DIVISORS[n % len(DIVISORS)])
            n += 1
    return b.finish()


GRIDS = [(13, 11, 0), (6, 7, 1)]  # odd and small maps (a 5x5 window with padding 2 on 6 rows)


@pytest.fixture(scope="module")
def grid_graphs():
    graphs = [_grid_graph(*shape) for shape in GRIDS]
    for graph in graphs:
        kinds = {op.kind for op in graph.ops}
        assert {"maxpool_bits", "maxpool_f32", "avgpool2d"} <= kinds
    return graphs


def _inputs(graph: Graph, count: int, seed: int) -> torch.Tensor:
    t = graph.tensor(graph.input)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, t.height, t.width, t.channels), dtype=torch.uint8, generator=generator)


def _check_every_op(graph: Graph, work, cc: str, cflags: str, isa: str | None) -> None:
    """Builds the graph's C (the cortex-a target's for an isa) with its debug dumps, compares the logits of 24
    inputs and every op's output for 3 of them with the reference, bit for bit."""
    target = get_target("cortex-a" if isa else "host")
    tree = work / "c"
    write_tree(render(graph, target, "pools", SHA)[0], tree, force=True)
    cross = toolchain.CROSS[isa] if isa else None
    if cross:  # gcc: the isa's cross compiler; clang: itself, given --target in cflags
        cc, cflags = (cross.cc if cc == "gcc" else cc), f"{cflags} {cross.cflags}"
    runner = toolchain.build(tree, cc, cflags, ("POOLS_DEBUG_DUMP",), "-static" if cross else "",
                             cross.packages if cross else cc)
    launcher = cross.launcher if cross else ()
    inputs = _inputs(graph, 24, 7)
    inputs.numpy().tofile(work / "in.bin")
    toolchain.run(runner, work / "in.bin", work / "out.bin", launcher=launcher)
    got = np.fromfile(work / "out.bin", dtype=np.float32).reshape(len(inputs), -1)
    assert np.array_equal(got.view(np.int32), reference.run(graph, inputs).numpy().view(np.int32))
    for i in range(3):
        dump = work / f"dump{i}"
        dump.mkdir()
        inputs[i:i + 1].numpy().tofile(work / "one.bin")
        toolchain.run(runner, work / "one.bin", work / "one_out.bin", dump, launcher=launcher)
        dumps = {j: (dump / f"op{j:03d}.bin").read_bytes() for j in range(len(schedule(graph, target).graph.ops))}
        mismatch = first_mismatch(graph, inputs[i], dumps, target)
        assert mismatch is None, mismatch.describe()


# (name, compiler, isa, flags after the strict ones): the clang builds with flags that would turn the average's
# division into a multiplication by a reciprocal or drop the sign of zeros, were the sources not protected
UNSAFE = "-O3 -freciprocal-math -fno-signed-zeros"
BUILDS = [("gcc", "gcc", None, ""), ("clang", "clang", None, ""),
          ("clang-unsafe-flags", "clang", None, f"{UNSAFE} -march=native -ffp-contract=fast"),
          ("aarch64", "gcc", "aarch64", ""), ("aarch64-clang-unsafe-flags", "clang", "aarch64",
                                              f"--target=aarch64-linux-gnu {UNSAFE}"),
          ("armv7", "gcc", "armv7", "")]


@pytest.mark.parametrize("name,cc,isa,flags", BUILDS, ids=[b[0] for b in BUILDS])
def test_c_equals_reference_for_every_pooling_op(name, cc, isa, flags, grid_graphs, tmp_path):
    for i, graph in enumerate(grid_graphs):
        work = tmp_path / f"g{i}"
        work.mkdir()
        _check_every_op(graph, work, cc, f"{toolchain.STRICT_CFLAGS} {flags}".strip(), isa)


def _cortex_m_graphs() -> list[Graph]:
    """Small programs whose logits are one pooling op's whole output (a binary pool's through a 1x1 binary conv
    with float output: any flipped bit changes every dot product it enters), so the logits show every bit."""
    graphs = []
    for i, (kind, (k, s, p), channels, mode) in enumerate([
            ("maxpool_f32", (3, 2, 1), 33, ""), ("maxpool_f32", (5, 1, 2), 3, ""),
            ("maxpool_bits", (3, 2, 1), 65, ""), ("maxpool_bits", (2, 1, 1), 31, ""),
            ("avgpool2d", (3, 2, 1), 16, "include_pad"), ("avgpool2d", (5, 3, 2), 33, "inside"),
            ("avgpool2d", (2, 1, 1), 3, "override")]):
        b = _Builder(11, 9, 10 + i)
        y = b.pool(kind, k, s, p, channels, mode)
        if kind == "maxpool_bits":
            t = b.graph.tensor(y)
            weight = b.rng.random((8, 1, 1, channels)) < 0.5
            b._add("bconv", [y], "f32", 8, t.height, t.width,
                   {"k": 1, "stride": 1, "pad": 0, "pad_one": 0, "out": "f32", "act": "none"},
                   {"weight": pack_negative(weight), "mult": np.ones(8, np.float32),
                    "add": np.zeros(8, np.float32)})
        graphs.append(b.finish())
    return graphs


def test_cortex_m4_equals_reference():
    board = load_board("mps2-an386")
    for i, graph in enumerate(_cortex_m_graphs()):
        inputs = _inputs(graph, 6, i)
        result = qemu.verify(graph, "pools", SHA, inputs, board, None)
        assert result.exact == result.samples == 6, i


def test_pooling_fields_round_trip_through_the_spec():
    from irnet_edge.nn import build_model, spec_from_module

    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.MaxPool2d(5, 1, 2), nn.AvgPool2d(3, 2, 1, divisor_override=4),
                          nn.AvgPool2d(2, 1, 1, count_include_pad=False), nn.Flatten(), nn.Linear(6 * 6, 10))
    spec = spec_from_module(model, (1, 9, 9))
    assert spec["layers"][1:4] == [
        {"type": "maxpool2d", "kernel_size": 5, "stride": 1, "padding": 2},
        {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "divisor_override": 4},
        {"type": "avgpool2d", "kernel_size": 2, "stride": 1, "padding": 1, "count_include_pad": False}]
    built = build_model(spec)
    for mine, theirs in zip(built, model, strict=True):
        if isinstance(theirs, (nn.MaxPool2d, nn.AvgPool2d)):
            assert repr(mine) == repr(theirs)
