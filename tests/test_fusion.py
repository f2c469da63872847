"""Fused ops (docs/arithmetic.md, "Fused ops"): the unfused graph is the oracle of the fused one, bit for bit; the
planner's in-place buffers never hold two live values at once; the plan is printed on request."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.codegen import get_target
from irnet_edge.codegen.schedule import schedule
from irnet_edge.codegen.targets import TARGETS
from irnet_edge.data import get_dataset_info
from irnet_edge.ir import export, reference
from irnet_edge.ir.fuse import FUSIONS, fuse, inplace_input
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.verify.host import verify

from .helpers import calibrated
from .test_export_c import GRID, grid_id, grid_model

ZOO = {"mcu_m4": "fashion-mnist", "mcu_m0": "fashion-mnist", "resnet20": "cifar10", "vgg_small": "cifar10",
       "resnet18": "cifar10"}


def seeded(arch: str, tmp_path):
    """A zoo model with seeded weights and BatchNorm statistics from random images: (checkpoint, graph, inputs)."""
    info = get_dataset_info(ZOO[arch])
    spec = zoo_spec(arch, info.channels, info.size, info.num_classes, info.mean, info.std)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (32, info.channels, info.size, info.size), dtype=torch.uint8, generator=generator)
    ckpt = calibrated(build_model(spec), (info.channels, info.size, info.size), images, ZOO[arch],
                      tmp_path / f"{arch}.pt")
    return ckpt, export(ckpt), images.permute(0, 2, 3, 1).contiguous()


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def check_plan(sched) -> None:
    """At every op, two tensors alive together never share a byte, unless the op writes one over the other in
    place (its inplace_input, dying there)."""
    g, placed = sched.graph, sched.placements
    producers, last = g.producers(), {}
    for index, op in enumerate(g.ops):
        for name in op.inputs:
            last[name] = index
    for index, op in enumerate(g.ops):
        live = [n for n in placed if n in g.tensors and producers.get(n, -1) <= index <= last.get(n, producers[n])]
        live += [n for n in placed if n not in g.tensors and placed[n].first == index]  # this op's scratch
        for i, a in enumerate(live):
            for b in live[i + 1:]:
                pa, pb = placed[a], placed[b]
                if pa.offset >= pb.offset + pb.size or pb.offset >= pa.offset + pa.size:
                    continue
                pair = {a, b}
                assert pair == {op.output, inplace_input(g, op)} and last[inplace_input(g, op)] == index, (
                    f"op {index}: {a} and {b} overlap in the arena")


@pytest.mark.parametrize("arch", list(ZOO))
def test_fused_zoo_models_equal_their_unfused_graph(arch, tmp_path):
    _, graph, inputs = seeded(arch, tmp_path)
    expected = reference.run(graph, inputs[:8])
    for target in TARGETS.values():
        sched = schedule(graph, target)
        assert len(sched.graph.ops) < len(graph.ops) or "pool" not in target.fusions  # every zoo model pools
        assert same_bits(reference.run(sched.graph, inputs[:8]), expected), target.name
        check_plan(sched)
        assert fuse(sched.graph, target.fusions).ops == sched.graph.ops  # fusing twice changes nothing
    if arch == "resnet20":
        kinds = [op.kind for op in schedule(graph, get_target("cortex-m")).graph.ops]
        assert "add" not in kinds and "sign_pack" not in kinds  # every block is one fused op


@pytest.mark.parametrize("case", [c for c in GRID if c["pool"]], ids=grid_id)
def test_fused_pool_grid_equals_unfused(case, tmp_path):
    _, graph, inputs = grid_model(case, tmp_path)
    fused = fuse(graph, FUSIONS)
    pooled = [op for op in fused.ops if "pool" in op.attrs]
    assert pooled, "the grid's pool was not fused"
    assert same_bits(reference.run(fused, inputs[:32]), reference.run(graph, inputs[:32]))


def test_binary_conv_pools_its_dot_products_exactly(tmp_path):
    """A binary conv with float output pools its dot products and transforms each window's winner: the same floats
    as transforming every value and max-pooling those (min where marked), for either sign of m_c, either pool
    direction and m_c = +-0; where m_c = +-0 meets b_c = -0.0 (values tying as +0.0 and -0.0) no pool is fused."""
    _, graph, inputs = seeded("mcu_m4", tmp_path)
    at = next(i for i, op in enumerate(graph.ops) if op.kind == "bconv" and op.attrs["out"] == "f32")
    conv = graph.ops[at]
    pool_at = graph.consumers()[conv.output][0]
    assert graph.ops[pool_at].kind == "maxpool_f32"
    rng = np.random.default_rng(0)
    channels = conv.consts["mult"].shape[0]
    mult = (conv.consts["mult"] * rng.choice([-1.0, 1.0], channels)).astype(np.float32)
    add = conv.consts["add"].copy()
    mult[:4], add[:4] = [0.0, -0.0, 0.0, -0.0], [0.0, 0.0, 1.5, -0.25]

    def same_tensors(fused, g) -> bool:  # every value, not only the logits (+-0 reach them only as a sum)
        got, want = reference.run(fused, inputs, keep_all=True), reference.run(g, inputs, keep_all=True)
        return all(same_bits(got[name], want[name]) for name in got if got[name].dtype == torch.float32)

    def variant(min_mask, add):
        ops = list(graph.ops)
        ops[at] = replace(conv, consts={**conv.consts, "mult": mult, "add": add})
        ops[pool_at] = replace(graph.ops[pool_at], consts={"min_mask": min_mask})
        g = replace(graph, ops=ops)
        fused = fuse(g, FUSIONS)
        return g, [op for op in fused.ops if op.name == conv.name and "pool" in op.attrs], fused

    for min_mask in (np.zeros(channels, np.uint8), rng.integers(0, 2, channels).astype(np.uint8)):
        g, pooled, fused = variant(min_mask, add)
        assert pooled and "pool_min" in pooled[0].consts
        assert same_tensors(fused, g)
    tie = add.copy()
    tie[1] = -0.0  # with m_c = -0.0
    g, pooled, fused = variant(np.zeros(channels, np.uint8), tie)
    assert not pooled and same_tensors(fused, g)


def test_arena_targets(tmp_path):
    """RAM, as the issue sets it: resnet20 within 100,000 bytes and mcu_m4 within 12,000 on the microcontroller
    targets (exact, deterministic numbers: the plan, not a measurement)."""
    _, resnet, _ = seeded("resnet20", tmp_path)
    _, mcu, _ = seeded("mcu_m4", tmp_path)
    for name in ("host", "cortex-m"):
        assert schedule(resnet, get_target(name)).arena <= 100_000
        assert schedule(mcu, get_target(name)).arena <= 12_000


def test_residual_model_fused_c_is_bit_exact_on_the_host(tmp_path):
    """A small ResNet through the generated C (gcc): in-place residual adds, sign outputs, the in-place shortcut."""
    spec = zoo_spec("resnet20", 3, 16, 10, [0.5] * 3, [0.25] * 3)
    torch.manual_seed(2)
    images = torch.randint(0, 256, (24, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    ckpt = calibrated(build_model(spec), (3, 16, 16), images, "cifar10", tmp_path / "r.pt")
    graph = export(ckpt)
    result = verify(graph, "r16", ckpt.sha256, images.permute(0, 2, 3, 1).contiguous()[:8])
    assert result.exact == result.samples == 8


def test_codegen_prints_the_plan(tmp_path):
    seeded("resnet20", tmp_path)
    result = CliRunner().invoke(main, ["codegen", str(tmp_path / "resnet20.pt"), "--target", "cortex-m", "--out",
                                       str(tmp_path / "c"), "--plan"])
    assert result.exit_code == 0, result.output
    assert " for cortex-m: arena " in result.output and "memory plan of " in result.output
    assert "residual add, sign" in result.output and "in place of" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("t")]
    assert any(row[-1].startswith("t") for row in rows)  # a tensor written over another in place


def test_unfused_reference_still_runs_the_exported_ops(tmp_path):
    """The exporter's graph is untouched by fusion: it stays the oracle."""
    _, graph, _ = seeded("mcu_m4", tmp_path)
    before = [op.kind for op in graph.ops]
    schedule(graph, get_target("cortex-m"))
    assert [op.kind for op in graph.ops] == before
    assert not any("pool" in op.attrs or op.sign for op in graph.ops)


def test_plan_and_save_refuse_a_target_that_is_not_a_string(tmp_path):
    from irnet_edge.api import convert
    from irnet_edge.errors import IrnetEdgeError
    from irnet_edge.verify.deployment import resolve

    seeded("mcu_m4", tmp_path)
    model = convert(tmp_path / "mcu_m4.pt")
    for call in (lambda: model.plan(["host"]), lambda: model.save(tmp_path / "out", target=["host"])):
        with pytest.raises(IrnetEdgeError, match="target must be a string"):
            call()
    assert not (tmp_path / "out").exists()
    assert model.plan(resolve("cortex-m", board="mps2-an386")).arena == model.plan("cortex-m").arena
    assert model.arena_bytes == model.plan("host").arena


def test_codegen_refuses_a_data_dir_it_cannot_read(tmp_path):
    seeded("mcu_m4", tmp_path)
    result = CliRunner().invoke(main, ["codegen", str(tmp_path / "mcu_m4.pt"), "--out", str(tmp_path / "c"),
                                       "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.count("Error:") == 1 and "does not exist" in result.output, result.output
    assert not (tmp_path / "c").exists()
