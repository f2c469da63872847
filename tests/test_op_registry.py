"""The op registry (irnet_edge/ir/ops.py): every kind has every piece, every kind the exporter emits or a baseline
rewrite produces is registered, its C call names what the runtime declares, and summary and codegen report the
same weight bytes."""
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from irnet_edge.api import convert
from irnet_edge.bench.measure import macs
from irnet_edge.codegen import get_target, render
from irnet_edge.codegen.schedule import schedule
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export, ops, reference
from irnet_edge.ir.baseline import float_baseline
from irnet_edge.ir.fuse import fuse
from irnet_edge.ir.graph import Graph
from irnet_edge.nn import InputNorm, IRConv2d, IRLinear
from irnet_edge.nn.checkpoint import Checkpoint
from irnet_edge.nn.spec import build_model
from irnet_edge.nn.zoo import zoo_spec

PACKAGE = Path(ops.__file__).resolve().parent.parent
SHA = "0" * 64


def _checkpoint(arch: str) -> Checkpoint:
    channels, size = (3, 32) if arch in ("resnet20", "vgg_small") else (1, 28)
    spec = zoo_spec(arch, channels, size, 10, [0.5] * channels, [0.25] * channels)
    torch.manual_seed(0)
    state = {key: value.detach().clone() for key, value in build_model(spec).eval().state_dict().items()}
    return Checkpoint(spec=spec, state_dict=state, ede={"k": 1.0, "t": 1.0}, config={"arch": arch}, sha256=SHA)


def _every_kind_module() -> nn.Sequential:
    """Overlapping pools on floats and bits, an average pool, a standalone activation (clamp) and BatchNorm
    (affine): with the zoo's ResNet (add, shortcut_a, avgpool) every kind export emits."""
    torch.manual_seed(1)
    return nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(3, 2, 1),
                         nn.BatchNorm2d(8), nn.Hardtanh(), IRConv2d(8, 40, 3, padding=1), nn.MaxPool2d(3, 2, 1),
                         nn.BatchNorm2d(40), IRConv2d(40, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Hardtanh(),
                         nn.AvgPool2d(3, 1, 1), nn.Hardtanh(), nn.BatchNorm2d(16), nn.Hardtanh(), nn.MaxPool2d(2),
                         nn.Flatten(), IRLinear(16 * 3 * 3, 32), nn.BatchNorm1d(32), nn.Linear(32, 10)).eval()


@pytest.fixture(scope="module")
def graphs() -> dict[str, Graph]:
    out = {arch: export(_checkpoint(arch)) for arch in ("mcu_m4", "resnet20", "vgg_small")}
    out["every_kind"] = convert(_every_kind_module(), input_shape=(1, 28, 28), name="every_kind").graph
    return out


def _runtime_structs() -> dict[str, str]:
    """params struct name -> its body, from irnet_runtime.h."""
    header = (PACKAGE / "runtime" / "irnet_runtime.h").read_text()
    return {m.group(2): m.group(1) for m in re.finditer(r"typedef struct \{(.*?)\} (\w+);", header, re.S)}


def test_every_kind_has_every_piece():
    structs, header = _runtime_structs(), (PACKAGE / "runtime" / "irnet_runtime.h").read_text()
    for kind, definition in ops.REGISTRY.items():
        assert definition.kind == kind
        for piece in (definition.reference, definition.macs, definition.const_bytes, definition.baseline):
            assert callable(piece), (kind, piece)
        for call in (definition.c, definition.windowed, definition.normalized):
            if call is None:
                continue
            assert f" irnet_{call.function}(" in header, (kind, call.function)
            assert call.args, kind
            if call.struct:
                members = [m.split(".")[0] for m, _ in (*call.fields, *call.fused)]
                body = structs[call.struct]
                for member in members:
                    assert re.search(rf"\b{member}\b", body), (kind, call.struct, member)
            else:
                assert not call.fields and not call.fused, kind


def test_every_kind_the_exporter_or_a_baseline_emits_is_registered(graphs):
    source = (PACKAGE / "ir" / "export.py").read_text()
    emitted = set(re.findall(r"_op\(\s*\"(\w+)\"", source))
    assert emitted and emitted <= set(ops.REGISTRY), emitted - set(ops.REGISTRY)
    exported = {op.kind for g in graphs.values() for op in g.ops}
    assert exported == emitted, "the test graphs should hold every kind export emits"
    baseline = {op.kind for g in graphs.values() for op in float_baseline(g).ops}
    assert baseline <= set(ops.REGISTRY)
    for g in graphs.values():
        for op in g.ops:
            definition = ops.get(op.kind)
            binary, floats = definition.macs(g, op)
            assert min(binary, floats) == 0 and (binary + floats > 0) == (op.kind in ("bconv", "conv_f32"))
            assert definition.const_bytes(op) == sum(a.nbytes for a in op.consts.values())


def test_an_unknown_kind_is_an_error():
    with pytest.raises(IrnetEdgeError, match=r"op kind 'conv3d' is not registered"):
        ops.get("conv3d")


def test_the_registry_references_run_the_graph(graphs):
    g = graphs["mcu_m4"]
    x = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    values = {g.input: x}
    for op in g.ops:
        values[op.output] = ops.get(op.kind).reference([values[n] for n in op.inputs], op)
    assert torch.equal(values[g.output].reshape(2, -1), reference.run(g, x))


def test_fused_ops_render_their_fusion_and_count_computed_outputs(graphs):
    fused = fuse(graphs["vgg_small"])
    pooled = next(op for op in fused.ops if op.kind == "bconv" and "pool" in op.attrs)
    out, k = fused.tensor(pooled.output), pooled.attrs["pool"]
    cin = fused.tensor(pooled.inputs[0]).channels
    assert macs(fused, pooled) == (out.height * k * out.width * k * out.channels * 9 * cin, 0)
    assert ops.get("bconv").const_bytes(pooled) == sum(a.nbytes for a in pooled.consts.values())
    files, manifest = render(fused, get_target("host"), "net", SHA)
    index = fused.ops.index(pooled)
    line = next(t for t in files["src/net.c"].splitlines() if f" net_op{index} = " in t)
    assert f".ho = {out.height * k}, .wo = {out.width * k}," in line
    assert line.endswith(f".fuse.pool = {k}, .fuse.pool_or = net_{pooled.name}_pool_or}};")
    assert manifest["weight_bytes"] == ops.weight_bytes(fused)
    text = render(fuse(graphs["resnet20"]), get_target("host"), "net", SHA)[0]["src/net.c"]
    assert re.search(r"\.fuse\.residual = &net_arena\[\d+\]\.f, \.fuse\.residual_act = IRNET_ACT_HARDTANH, "
                     r"\.fuse\.sign = &net_arena\[\d+\]\.u\};", text)
    unfused = render(replace(graphs["vgg_small"], unfused=True), get_target("host"), "net", SHA)[0]["src/net.c"]
    assert ".fuse" not in unfused  # a graph run op by op (the float32 baseline) keeps the C it had


@pytest.mark.parametrize("target,kernel", [("host", "irnet_conv_f32"), ("cortex-m", "irnet_conv_f32_cm"),
                                           ("cortex-a", "irnet_conv_f32_neon")])
def test_the_stem_reads_the_pixels_through_the_normalisation_table(graphs, target, kernel):
    """The input normalisation fused into the stem: no normalize op or normalised map; the stem calls
    irnet_conv_f32_u8 on the caller's input with the table, a band in the arena and the target's own kernel."""
    planned = schedule(graphs["resnet20"], get_target(target))
    stem = planned.graph.ops[0]
    assert [op.kind for op in planned.graph.ops].count("normalize") == 0
    assert stem.kind == "conv_f32" and stem.inputs == ["input"] and stem.consts["norm"].shape == (3, 256)
    assert stem.attrs["norm_rows"] == 8 and planned.scratch[0] == 10 * 32 * 3 * 4
    text = render(graphs["resnet20"], get_target(target), "net", SHA)[0]["src/net.c"]
    assert "irnet_normalize(" not in text
    assert re.search(r"irnet_conv_f32_u8\(&net_op0, input, 0, &net_arena\[\d+\]\.f\);", text)
    line = next(t for t in text.splitlines() if " net_op0 = " in t)
    assert re.search(rf"\.norm = net_{stem.name}_norm, \.rows = 8, \.band = &net_arena\[\d+\]\.f, "
                     rf"\.kernel = {kernel}, \.conv\.fuse\.sign = ", line), line
    table = reference.normalize_table(graphs["resnet20"].ops[0])
    pixels = torch.arange(256, dtype=torch.uint8)[None, None, :, None].expand(1, 1, 256, 3)
    assert torch.equal(torch.from_numpy(table).T[None, None], reference.normalize(pixels, graphs["resnet20"].ops[0]))


def test_the_baseline_is_unfused_and_refuses_a_fused_graph(graphs):
    assert float_baseline(graphs["vgg_small"]).unfused
    with pytest.raises(IrnetEdgeError, match="defined on the unfused graph"):
        float_baseline(fuse(graphs["vgg_small"]))


@pytest.mark.parametrize("arch", ["mcu_m0", "mcu_m4", "resnet20"])
def test_summary_and_codegen_report_the_same_weight_bytes(arch, tmp_path):
    model = convert(_checkpoint(arch))
    manifest = model.save(tmp_path / "c")
    line = next(t for t in model.summary().splitlines() if t.startswith("deployed weight bytes:"))
    assert line.startswith(f"deployed weight bytes: {manifest['weight_bytes']:,} ")
    total = next(t for t in model.summary().splitlines() if t.startswith("total"))
    assert f"{manifest['weight_bytes']:,}" in total.split()
    norm = next(t for t in model.summary().splitlines() if " InputNorm " in t)  # its table, which the stem reads
    assert norm.split()[5] == f"{256 * 4 * model.input_shape[0]:,}"


def test_the_firmware_budget_counts_the_constants_its_c_holds(graphs):
    """The fit check and the emulated boards' sample chunks count the fused ops' constants (the stem's table),
    not the exported graph's."""
    from irnet_edge.codegen.firmware import firmware_weight_bytes

    manifest = render(graphs["resnet20"], get_target("cortex-m"), "net", SHA)[1]
    assert firmware_weight_bytes(graphs["resnet20"]) == manifest["weight_bytes"]
    assert manifest["weight_bytes"] == ops.weight_bytes(graphs["resnet20"]) - 2 * 3 * 4 + 3 * 256 * 4
