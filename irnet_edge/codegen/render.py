"""Renders a deployment graph into C through the Jinja2 templates of a target.

Numbers are formatted here (filters), never in template loops; the output is byte-identical for the same
graph, tool version and checkpoint (no timestamps).
"""
import json
import keyword
import re
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..errors import IrnetEdgeError
from ..ir.graph import Graph, Op
from ..resources import asset_dir
from .planner import plan
from .targets import Target

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool",
    "_Complex", "_Imaginary", "bool", "true", "false", "main", "asm", "class", "new", "delete", "this",
    "template", "namespace", "operator", "private", "public", "protected", "virtual", "friend", "try",
    "catch", "throw",
}
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_ACT_MACRO = {"none": "ACT_NONE", "hardtanh": "ACT_HARDTANH", "relu": "ACT_RELU", "sign": "ACT_SIGN"}
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.uint32): "uint32_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.uint8): "uint8_t"}


def check_prefix(prefix: str) -> str:
    if not _IDENT.match(prefix) or prefix in C_KEYWORDS or keyword.iskeyword(prefix) or "__" in prefix:
        raise IrnetEdgeError(f"--prefix {prefix!r} is not a valid, non-reserved C identifier: use letters, digits "
                             "and single underscores, starting with a letter (e.g. mcu_m4)")
    return prefix


def default_prefix(model_name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", model_name).strip("_") or "model"
    return cleaned if cleaned[0].isalpha() else f"m_{cleaned}"


def _format_float(v: float) -> str:
    text = f"{v:.9g}"  # 9 significant digits round-trip every float32
    if not any(ch in text for ch in ".en"):
        text += ".0"
    return text + "f"


def format_array(values: np.ndarray) -> str:
    flat = values.reshape(-1)
    if flat.dtype == np.float32:
        items, per_line = [_format_float(float(v)) for v in flat], 6
    elif flat.dtype == np.uint32:
        items, per_line = [f"0x{int(v):08x}u" for v in flat], 8
    else:
        items, per_line = [str(int(v)) for v in flat], 12
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join("    " + line for line in lines)


def render_dir(root: Path, ctx: dict, prefix: str, select=lambda name: name) -> dict[str, str]:
    """Renders every *.j2 in root; MODEL in a file name becomes the prefix; select may rename or drop
    (return None) an output."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    files = {}
    for template in sorted(p.name for p in root.glob("*.j2")):
        name = select(template[:-3].replace("MODEL", prefix))
        if name is not None:
            files[name] = env.get_template(template).render(ctx)
    return files


def _shape(t) -> str:
    return f"{t.describe()}"


def _op_context(graph: Graph, op: Op, index: int, prefix: str, pointer, kernels: dict) -> dict:
    src = graph.tensor(op.inputs[0])
    out = graph.tensor(op.output)
    ctx = {
        "index": index, "kind": op.kind, "function": kernels.get(op.kind, op.kind), "source": op.source,
        "a": op.attrs,
        "shape_in": _shape(src), "shape_out": _shape(out),
        "const_bytes": sum(int(a.nbytes) for a in op.consts.values()),
        "c": {name: f"{prefix}_{op.name}_{name}" for name in op.consts},
        "h": src.height, "w": src.width, "cin": src.channels, "pixels": src.height * src.width,
        "ho": out.height, "wo": out.width, "cout": out.channels, "elements": out.channels * out.height * out.width,
        "act": f"{prefix.upper()}_{_ACT_MACRO[op.attrs.get('act', 'none')]}",
        "in_f32": pointer(op.inputs[0], "f"), "in_bits": pointer(op.inputs[0], "u"),
        "in2_f32": pointer(op.inputs[1], "f") if len(op.inputs) > 1 else "0",
        "out_f32": pointer(op.output, "f") if out.kind == "f32" else "0",
        "out_bits": pointer(op.output, "u") if out.kind == "bits" else "0",
        "out_bytes": out.nbytes,
    }
    ctx["out_ptr"] = ctx["out_f32"] if out.kind == "f32" else ctx["out_bits"]
    if op.kind in ("bconv", "conv_f32"):  # the unused output transform of a conv is a null pointer
        for name in ("threshold", "mult", "add"):
            ctx["c"].setdefault(name, "0")
    return ctx


def render(graph: Graph, target: Target, prefix: str, checkpoint_sha256: str) -> tuple[dict[str, str], dict]:
    """(files by relative path, manifest)."""
    check_prefix(prefix)
    out_tensor = graph.tensor(graph.output)
    if out_tensor.kind != "f32":
        raise IrnetEdgeError("the model's output must be float logits")
    placements, arena = plan(graph)

    def pointer(name: str, view: str) -> str:
        if name == graph.input:
            return "input"
        if name == graph.output:
            return "logits"
        return f"&{prefix}_arena[{placements[name].offset // 4}].{view}"

    arrays = []
    for op in graph.ops:
        for name, values in op.consts.items():
            if (op.kind, name) in target.channels_last:
                values = np.ascontiguousarray(values.transpose(1, 2, 3, 0))
            arrays.append({"symbol": f"{prefix}_{op.name}_{name}", "ctype": _CTYPES[values.dtype],
                           "length": int(values.size), "body": format_array(values),
                           "comment": f"{op.name} {name}: {values.dtype} {tuple(values.shape)}, from {op.source}"})
    const_bytes = graph.const_bytes()
    banner = (f"/* Generated by irnet-edge {__version__} from checkpoint sha256:{checkpoint_sha256}."
              " Do not edit. */")
    ctx = {
        "banner": banner, "make_banner": banner.replace("/*", "#").replace(" */", ""),
        "prefix": prefix, "guard": prefix.upper(), "model_name": graph.name,
        "input": graph.tensor(graph.input), "num_classes": graph.num_classes,
        "arena_bytes": arena, "arena_cells": max(arena // 4, 1), "const_bytes": const_bytes,
        "arrays": arrays,
        "ops": [_op_context(graph, op, i, prefix, pointer, dict(target.kernels)) for i, op in enumerate(graph.ops)],
        "optimized": [fn for _, fn in target.kernels],
    }
    files = {}
    for folder in target.templates:
        files.update(render_dir(asset_dir("templates") / folder, ctx, prefix))
    manifest = {
        "tool": "irnet-edge", "tool_version": __version__, "checkpoint_sha256": checkpoint_sha256,
        "model": graph.name, "prefix": prefix, "target": target.name,
        "input": {"height": ctx["input"].height, "width": ctx["input"].width,
                  "channels": ctx["input"].channels, "dtype": "uint8", "layout": "HWC"},
        "output": {"classes": graph.num_classes, "dtype": "float32"},
        "arena_bytes": arena, "weight_bytes": const_bytes,
        "ops": [{"index": i, "kind": op.kind, "source": op.source,
                 "output": graph.tensor(op.output).describe(), "output_bytes": graph.tensor(op.output).nbytes,
                 "arena_offset": placements[op.output].offset if op.output in placements else None,
                 "const_bytes": sum(int(a.nbytes) for a in op.consts.values())}
                for i, op in enumerate(graph.ops)],
    }
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    return files, manifest
