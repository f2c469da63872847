"""irnet-edge bench: exact, repeatable instruction counts per op, the float32 baseline, the JSON schema and
the Cortex-M4 cycle estimate."""
import dataclasses
import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from irnet_edge.bench import SCHEMA, bench, measure, to_text
from irnet_edge.bench.m4_cycles import REFILL, estimate
from irnet_edge.bench.plugin import Block, Report, parse_report
from irnet_edge.bench.report import baseline_per_layer
from irnet_edge.cli import main
from irnet_edge.codegen.firmware import load_board
from irnet_edge.codegen.schedule import schedule
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export, ops, reference
from irnet_edge.ir.baseline import float_baseline
from irnet_edge.ir.fuse import fused_parts
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.verify.deployment import resolve

from .test_export_c import GRID, grid_id, grid_model

AN386 = resolve("cortex-m", board="mps2-an386")
TARGETS = {"host": resolve("host"), "cortex-m4": AN386, "aarch64": resolve("cortex-a", isa="aarch64"),
           "armv7": resolve("cortex-a", isa="armv7"),
           "cortex-m55": resolve("cortex-m", board="mps3-an547"),
           "cortex-m0plus": resolve("cortex-m", board="mps2-an385", cpu="cortex-m0plus")}


@pytest.fixture(scope="module")
def mcu_m0(trained_mcu):
    ckpt = load_checkpoint(trained_mcu["mcu_m0"])
    return ckpt, export(ckpt)


def _counts(result):
    return [layer.instructions for layer in result.binary.layers]


@pytest.mark.parametrize("where", TARGETS)
def test_counts_are_exact_and_repeatable(where, mcu_m0):
    ckpt, graph = mcu_m0
    first = bench(graph, "mcu_m0", ckpt.sha256, TARGETS[where])
    second = bench(graph, "mcu_m0", ckpt.sha256, TARGETS[where])
    assert _counts(first) == _counts(second)
    assert first.binary.instructions == second.binary.instructions == sum(_counts(first))
    ran = schedule(graph, TARGETS[where].target).graph  # one layer per op the C runs, fused ones included
    assert [layer.kind for layer in first.binary.layers] == [op.kind for op in ran.ops] and min(_counts(first)) > 0
    assert [layer.fused for layer in first.binary.layers] == [fused_parts(op) for op in ran.ops]
    convs = [layer for layer in first.binary.layers if layer.kind == "bconv"]
    assert convs and all(layer.binary_macs > 0 and layer.float_macs == 0 for layer in convs)
    # the binary convs are the bulk of the arithmetic, so they cost more than the ops between them that the target
    # keeps as ops (the host fuses all of them into the convs)
    between = ("maxpool_bits", "maxpool_f32", "normalize")
    others = [layer for layer in first.binary.layers if layer.kind in between]
    fused_away = [part for layer in first.binary.layers for part in layer.fused
                  if part == "normalize" or part.startswith("pool")]
    assert len(others) + len(fused_away) == sum(op.kind in between for op in graph.ops)
    assert not others or min(c.instructions for c in convs) > max(p.instructions for p in others)


def test_arena_and_weights_are_the_model_footprint(mcu_m0):
    ckpt, graph = mcu_m0
    result = bench(graph, "mcu_m0", ckpt.sha256, TARGETS["host"])
    assert result.binary.arena_bytes == schedule(graph, TARGETS["host"].target).arena
    assert result.binary.model_ram_bytes >= result.binary.arena_bytes
    assert result.binary.model_flash_bytes > ops.weight_bytes(graph)


def test_float_baseline_on_cortex_m4_costs_more_and_computes_the_same_logits(mcu_m0):
    ckpt, graph = mcu_m0
    result = bench(graph, "mcu_m0", ckpt.sha256, AN386, baseline=True)  # raises unless both are bit-exact
    ratios = result.ratios()
    assert ratios["instructions"] > 1 and ratios["model_flash_bytes"] > 1 and ratios["model_ram_bytes"] > 1
    # the baseline runs the unfused ops: each is one binary layer, or a part of a fused one (its source)
    owner = {part: layer for layer in result.binary.layers for group in layer.source.split("; ")
             for part in (group, *group.split(", "))}
    for base in result.baseline.layers:
        binary = owner[base.source]
        assert binary.kind == base.kind or (binary.kind, base.kind) in {("bconv", "conv_f32"),
                                                                         ("maxpool_bits", "maxpool_f32")} or (
            binary.fused and base.kind == "maxpool_f32") or ("normalize" in binary.fused and base.kind == "normalize")
    assert result.binary.cycles.cycles > result.binary.instructions  # loads and branches take > 1 cycle
    text = to_text(result)
    assert "estimated" in text and "float32 baseline" in text and f"{result.binary.instructions:,}" in text
    # each row's baseline is the baseline ops it fuses (the stem: the normalisation and the conv), not a row's
    # neighbour by position
    beside = baseline_per_layer(result.binary.layers, result.baseline.layers)
    assert sum(beside) == result.baseline.instructions and len(result.baseline.layers) > len(result.binary.layers)
    stem = result.binary.layers[0]
    assert beside[0] == sum(op.instructions for op in result.baseline.layers if op.source in stem.source.split("; "))
    row = next(line for line in text.splitlines() if line.startswith("  0  conv_f32"))
    assert f"| {beside[0]:>16,} " in row and row.split()[2].startswith("0..")  # input_norm to the stem's last


@pytest.mark.parametrize("case", [c for c in GRID if c["binary"] and c["padding_value"] == "zero"], ids=grid_id)
def test_float_baseline_graph_equals_the_binary_graph(case, tmp_path):
    _, graph, inputs = grid_model(case, tmp_path)
    base = float_baseline(graph)
    assert "bits" not in {t.kind for t in base.tensors.values()}
    assert {op.kind for op in base.ops} <= {"normalize", "conv_f32", "clamp", "maxpool_f32", "affine"}
    got = reference.run(base, inputs[:16]).numpy()
    want = reference.run(graph, inputs[:16]).numpy()
    assert (got.view(np.int32) == want.view(np.int32)).all()


def test_float_baseline_refuses_one_padding(tmp_path):
    case = next(c for c in GRID if c["binary"] and c["padding_value"] == "one")
    _, graph, _ = grid_model(case, tmp_path)
    with pytest.raises(IrnetEdgeError, match="pads its binary input with \\+1"):
        float_baseline(graph)


def test_json_schema(trained_mcu):
    result = CliRunner().invoke(main, ["bench", str(trained_mcu["mcu_m0"]), "--target", "cortex-m", "--board",
                                       "mps2-an386", "--baseline", "float32", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == SCHEMA == "irnet-edge-bench/2"
    assert set(data) == {"schema", "tool_version", "model", "checkpoint_sha256", "target", "input", "binary",
                         "baseline", "baseline_over_binary"}
    assert data["target"] == {"name": "cortex-m", "board": "mps2-an386", "cpu": None, "isa": None}
    for part in ("binary", "baseline"):
        m = data[part]
        assert set(m) == {"instructions", "bit_exact", "model_flash_bytes", "model_ram_bytes", "arena_bytes", "image",
                          "cycle_estimate", "toolchain", "emulator", "layers"}
        assert m["bit_exact"] is True and sum(x["instructions"] for x in m["layers"]) == m["instructions"]
        assert set(m["image"]) == {"flash_bytes", "ram_bytes", "stack_bytes"}
        assert m["cycle_estimate"]["core"] == "cortex-m4" and m["cycle_estimate"]["cycles"] > 0
        assert {"cc", "version", "cflags"} <= set(m["toolchain"])
        for layer in m["layers"]:
            assert set(layer) == {"index", "kind", "fused", "source", "output", "instructions", "share", "binary_macs",
                                  "float_macs", "binary_macs_per_instruction"}
    assert set(data["baseline_over_binary"]) == {"instructions", "model_flash_bytes", "model_ram_bytes"}


def test_bench_needs_a_board_for_cortex_m(trained_mcu):
    result = CliRunner().invoke(main, ["bench", str(trained_mcu["mcu_m0"]), "--target", "cortex-m"])
    assert result.exit_code != 0 and "--target cortex-m needs --board" in result.output


def test_report_with_missing_marks_is_an_error(tmp_path):
    path = tmp_path / "count.txt"
    path.write_text("marks 2 0 10\ntb 1000 1 0 1000\n")
    assert parse_report(path, 2).total == 10
    with pytest.raises(IrnetEdgeError, match="passed 2 of its 5 bench marks"):
        parse_report(path, 5)
    with pytest.raises(IrnetEdgeError, match="wrote no report"):
        parse_report(tmp_path / "absent.txt", 2)


ASM = """
    .syntax unified
    .thumb
    .global f
    .type f, %function
f:
    ldr r0, [r1]
    ldr r2, [r1, #4]
    adds r0, r0, r2
    mla r0, r0, r2, r3
    push {r4, r5, lr}
    pop {r4, r5, pc}
g:
    subs r3, r3, #1
    bne.n g
    bx lr
"""


def test_m4_cycle_table_on_known_instructions(tmp_path):
    (tmp_path / "f.s").write_text(ASM)
    elf = tmp_path / "f.o"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-c", str(tmp_path / "f.s"), "-o", str(elf)],
                   check=True)
    # f once: ldr 2, pipelined ldr 1, adds 1, mla 2, push 1+3, pop 1+3+P
    f = Block(0x0, 1, 0, (0x0, 0x2, 0x4, 0x6, 0xA, 0xC))
    assert estimate(Report((0, 6), (f,)), elf).cycles == 2 + 1 + 1 + 2 + 4 + 4 + REFILL
    # a loop run 5 times: bne taken 4 times (1 + P), falls through once (1)
    loop = Block(0xE, 5, 1, (0xE, 0x10))
    ret = Block(0x12, 1, 0, (0x12,))
    assert estimate(Report((0, 11), (loop, ret)), elf).cycles == 5 + 4 * (1 + REFILL) + 1 + (1 + REFILL)


def test_counter_sees_only_the_model(mcu_m0):
    """The count starts at the first mark and ends at the last: the runner's file I/O is not in it."""
    ckpt, graph = mcu_m0
    # run op by op, so that the first counted op is the small normalisation (fused, the stem's conv comes first)
    result = bench(dataclasses.replace(graph, unfused=True), "mcu_m0", ckpt.sha256, TARGETS["host"])
    first = result.binary.layers[0]
    assert first.kind == "normalize"
    t = graph.tensor(graph.input)
    assert first.instructions < 60 * t.height * t.width * t.channels  # a few dozen per pixel, no I/O


def test_baseline_too_big_for_the_board_is_one_error_before_any_build(mcu_m0, monkeypatch):
    ckpt, graph = mcu_m0
    small = load_board("mps3-an547")
    # room for the binary model (weights, a sample, the code estimate), not for its float32 baseline
    tight = dataclasses.replace(small, flash={**small.flash, "length": ops.weight_bytes(graph) + 30_000})
    monkeypatch.setattr(measure, "_measure", lambda *a, **k: pytest.fail("built before checking the fit"))
    target = dataclasses.replace(resolve("cortex-m", board="mps3-an547"), board=tight)
    with pytest.raises(IrnetEdgeError, match="the float32 baseline does not fit"):
        bench(graph, "mcu_m0", ckpt.sha256, target, baseline=True)
