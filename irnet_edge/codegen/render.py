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
import torch

from .. import __version__
from ..errors import IrnetEdgeError
from ..ir import ops
from ..ir.fuse import fused_parts
from ..ir.graph import Graph, Op
from ..resources import asset_dir
from .planner import scratch_name
from .schedule import schedule
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
# What every build of the generated C needs; the sources enforce the exactness part themselves
# (runtime/irnet_exact.h), the flag is belt and braces.
BUILD_REQUIREMENTS = {
    "sources": ["src/*.c", "src/irnet/*.c"],
    "include_dirs": ["src"],
    "c_standard": "C99 or later (GNU modes too)",
    "required_flags": ["-ffp-contract=off"],
    "refused_flags": ["-ffast-math", "-Ofast", "-funsafe-math-optimizations", "-fassociative-math",
                      "-freciprocal-math", "-fno-signed-zeros", "-ffinite-math-only"],
}
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.uint32): "uint32_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.uint8): "uint8_t"}


# The prefix names every external symbol (PREFIX_infer, PREFIX_op3, PREFIX_conv1_weight...), the header guard
# and the file stems. C99 only guarantees 31 significant characters for external names (63 for internal ones);
# every toolchain irnet-edge supports keeps far more, so the limit is C99's 63, which leaves room for the
# suffixes and stays a sane file name.
MAX_PREFIX = 63
RUNTIME_NAMESPACE = "irnet"  # the runtime's functions, types, macros (IRNET_*) and headers (irnet_*.h)


def check_prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX:
        raise IrnetEdgeError(f"--prefix is {len(prefix)} characters long; the limit is {MAX_PREFIX} (C99's "
                             "significant length for identifiers): pass a shorter --prefix")
    if prefix in C_KEYWORDS or keyword.iskeyword(prefix):
        raise IrnetEdgeError(f"--prefix {prefix!r} is not a valid, non-reserved C identifier: it is a reserved word "
                             "(C, C++ or Python); pick another prefix (e.g. the model's name)")
    if not _IDENT.match(prefix) or "__" in prefix:
        raise IrnetEdgeError(f"--prefix {prefix!r} is not a valid, non-reserved C identifier: use letters, digits "
                             "and single underscores, starting with a letter (e.g. mcu_m4)")
    lowered = prefix.lower()
    if lowered == RUNTIME_NAMESPACE or lowered.startswith(RUNTIME_NAMESPACE + "_"):
        raise IrnetEdgeError(f"--prefix {prefix!r} is in the irnet runtime's namespace (irnet, irnet_*, IRNET_*): "
                             "pick another prefix (e.g. the model's name)")
    return prefix


def default_prefix(model_name: str, reserved: frozenset[str] = frozenset()) -> str:
    """A valid prefix from any model name: non-alphanumerics become underscores, at most MAX_PREFIX characters,
    m_ in front of one that starts with a digit or is reserved (a C keyword, the runtime's namespace, or one
    of reserved, compared case-insensitively)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", model_name).strip("_") or "model"
    lowered = cleaned.lower()
    if (not cleaned[0].isalpha() or cleaned in C_KEYWORDS or keyword.iskeyword(cleaned)
            or lowered == RUNTIME_NAMESPACE or lowered.startswith(RUNTIME_NAMESPACE + "_") or lowered in reserved):
        cleaned = f"m_{cleaned}"
    return cleaned[:MAX_PREFIX].rstrip("_")


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
    env.filters.update(FILTERS)
    files = {}
    for template in sorted(p.name for p in root.glob("*.j2")):
        name = select(template[:-3].replace("MODEL", prefix))
        if name is not None:
            files[name] = env.get_template(template).render(ctx)
    return files


def c_comment(text: str) -> str:
    """Text safe inside a C block comment on one line: no comment start or end (also not with the template's
    own slashes and stars around it), no trigraphs, no control characters."""
    text = re.sub(r"\?(?=\?)", "? ", text.replace("*/", "* /").replace("/*", "/ *"))
    if text.endswith(("*", "/")):
        text += " "
    if text.startswith(("*", "/")):
        text = " " + text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def line_comment(text: str) -> str:
    """Text safe on one line of a #-comment (Makefile, CMake, Kconfig, properties): printable characters only,
    no newline, and no final backslash (make continues a comment ending in one onto the next line)."""
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return text + " " if text.endswith("\\") else text


_C_STRING_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("?"): "\\?", ord("\n"): "\\n", ord("\t"): "\\t",
                     ord("\r"): "\\r"}


def c_string(text: str) -> str:
    """A C string literal (with its quotes) holding text's UTF-8 bytes: backslash, quote and ? (trigraphs)
    escaped, control characters and every non-ASCII byte as three-digit octal escapes, which end after three
    digits and so cannot run into a digit that follows (unlike \\x escapes)."""
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        if byte in _C_STRING_ESCAPES:
            out.append(_C_STRING_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


FILTERS = {"c_comment": c_comment, "c_string": c_string, "line_comment": line_comment}


def _present(op: Op, spec: str, scratch) -> bool:
    """Whether op has the value a fused field names (ir/ops.py's value specs)."""
    if spec == "in1":
        return len(op.inputs) > 1
    if spec == "sign":
        return bool(op.sign)
    if spec in ("scratch", "scratch_f32"):
        return scratch is not None
    source, _, name = spec.partition(":")
    return name in (op.consts if source == "c" else op.attrs)


def _op_code(graph: Graph, op: Op, index: int, prefix: str, pointer, kernels: dict, scratch=None) -> dict:
    """The op's parameter struct (C initializer) and its call, as text, from its registered CCall (ir/ops.py);
    scratch: view ("u" or "f") -> the pointer to the op's scratch in the arena, where its kernel takes one
    (irnet_bconv_neon, irnet_conv_f32_u8), else None.
    Raises IrnetEdgeError for an unregistered kind, or a params pointer that is not an address constant."""
    definition = ops.get(op.kind)
    c = definition.call(op)
    src, out = graph.tensor(op.inputs[0]), graph.tensor(op.output)
    known = ops.facts(graph, op)
    view = {"f32": "f", "bits": "u", "u8": "u"}

    def value(spec: str):
        if spec in known:
            return known[spec]
        if spec in ("in", "in1"):
            name = op.inputs[0 if spec == "in" else 1]
            return pointer(name, view[graph.tensor(name).kind])
        if spec in ("out_bits", "out_f32"):
            return pointer(op.output, view[out.kind]) if out.kind == spec[4:] else "0"
        if spec == "sign":
            return pointer(op.sign, "u")
        if spec in ("scratch", "scratch_f32"):
            return scratch("f" if spec == "scratch_f32" else "u")
        source, _, name = spec.partition(":")
        if source == "kernel":
            return f"irnet_{kernels.get(name, name)}"
        if source == "a":
            return int(op.attrs[name])
        if source == "act":
            return f"IRNET_{_ACT_MACRO[op.attrs.get(name, 'none')]}"
        return f"{prefix}_{op.name}_{name}" if name in op.consts else "0"

    function = f"irnet_{kernels.get(c.function, c.function)}"
    args = [str(value(spec)) for spec in c.args]
    params = None
    if c.struct:
        fields = [*c.fields, *((member, spec) for member, spec in c.fused if _present(op, spec, scratch))]
        values = [f".{member} = {value(spec)}" for member, spec in fields]
        for text in values:
            if text.endswith((" = input", " = logits")):  # the caller's buffers: no static initializer holds them
                raise IrnetEdgeError(f"op {op.name} ({op.kind}) needs the model's input or output in its "
                                     f"parameters ({text.strip()}), which codegen cannot place there")
        params = {"struct": c.struct, "name": f"{prefix}_op{index}", "init": ", ".join(values)}
        args.insert(0, f"&{params['name']}")
    return {"index": index, "kind": op.kind, "source": c_comment(op.source),
            "shape_in": src.describe(), "shape_out": out.describe(),
            "const_bytes": definition.const_bytes(op),
            "params": params, "call": f"{function}({', '.join(args)});",
            "out_ptr": value("out_f32") if out.kind == "f32" else value("out_bits"), "out_bytes": out.nbytes}


RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"


def runtime_files() -> dict[str, str]:
    """The runtime library's sources by name (irnet_*.c, irnet_*.h), as shipped in the package."""
    return {path.name: path.read_text() for path in sorted(RUNTIME_DIR.glob("irnet_*.[ch]"))}


def runtime_version_number(version: str = __version__) -> int:
    """The runtime's IRNET_RUNTIME_VERSION for a tool version "X.Y.Z": X * 10000 + Y * 100 + Z."""
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return major * 10000 + minor * 100 + patch


SELFTEST_RANDOM = "seeded pseudo-random pixels"  # the manifest's selftest input when no real one was given


def selftest_default_input(graph: Graph) -> np.ndarray:
    """The self-test's input where no real one is given: seeded pseudo-random pixels, uint8 (H, W, C)."""
    t = graph.tensor(graph.input)
    return np.random.default_rng(0).integers(0, 256, size=(t.height, t.width, t.channels), dtype=np.uint8)


def render(graph: Graph, target: Target, prefix: str, checkpoint_sha256: str,
           selftest_input: np.ndarray | None = None, selftest_source: str = "") -> tuple[dict[str, str], dict]:
    """(files by relative path, manifest). selftest_input: one uint8 (H, W, C) input embedded with the logits the
    reference executor computes for it (NAME_selftest); by default seeded pseudo-random pixels."""
    from ..ir import reference

    check_prefix(prefix)
    out_tensor = graph.tensor(graph.output)
    if out_tensor.kind != "f32":
        raise IrnetEdgeError("the model's output must be float logits")
    kernels = dict(target.kernels)
    planned = schedule(graph, target)  # the fused ops this target's C runs
    graph, placements, arena, scratch = planned.graph, planned.placements, planned.arena, planned.scratch

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
                           "comment": c_comment(f"{op.name} {name}: {values.dtype} {tuple(values.shape)}, "
                                                f"from {op.source}")})
    if selftest_input is None:
        selftest_input, selftest_source = selftest_default_input(graph), SELFTEST_RANDOM
    inp = graph.tensor(graph.input)
    selftest_input = np.ascontiguousarray(selftest_input, dtype=np.uint8).reshape(inp.height, inp.width,
                                                                                 inp.channels)
    expected = reference.run(graph, torch.from_numpy(selftest_input[None].copy()))[0].numpy()
    const_bytes = ops.weight_bytes(graph)
    banner = (f"/* Generated by irnet-edge {__version__} from checkpoint sha256:{checkpoint_sha256}."
              " Do not edit. */")
    ctx = {
        "banner": banner, "make_banner": banner.replace("/*", "#").replace(" */", ""),
        "prefix": prefix, "guard": prefix.upper(), "model_name": graph.name,
        "version": __version__, "runtime_version": runtime_version_number(), "target": target.name,
        "input": inp, "num_classes": graph.num_classes,
        "arena_bytes": arena, "arena_cells": max(arena // 4, 1), "const_bytes": const_bytes,
        "arrays": arrays,
        "ops": [_op_code(graph, op, i, prefix, pointer, kernels,
                         (lambda view, i=i: pointer(scratch_name(i), view)) if scratch[i] else None)
                for i, op in enumerate(graph.ops)],
        "selftest": {"input": format_array(selftest_input.reshape(-1)),
                     "logits": format_array(expected.astype(np.float32).view(np.uint32)),
                     "source": c_comment(selftest_source)},
    }
    files = {}
    for folder, dest in target.templates:
        for name, text in render_dir(asset_dir("templates") / folder, ctx, prefix).items():
            files[f"{dest}/{name}" if dest else name] = text
    files.update({f"src/irnet/{name}": text for name, text in runtime_files().items()})
    manifest = {
        "tool": "irnet-edge", "tool_version": __version__, "runtime_version": __version__,
        "checkpoint_sha256": checkpoint_sha256, "model": graph.name, "prefix": prefix, "target": target.name,
        "input": {"height": inp.height, "width": inp.width, "channels": inp.channels, "dtype": "uint8",
                  "layout": "HWC"},
        "output": {"classes": graph.num_classes, "dtype": "float32"},
        "arena_bytes": arena, "weight_bytes": const_bytes,
        "selftest": {"function": f"{prefix}_selftest", "input": selftest_source},
        "build": BUILD_REQUIREMENTS,
        "ops": [{"index": i, "kind": op.kind, "source": op.source,
                 "output": graph.tensor(op.output).describe(), "output_bytes": graph.tensor(op.output).nbytes,
                 "arena_offset": placements[op.output].offset if op.output in placements else None,
                 "scratch_bytes": scratch[i],
                 "scratch_offset": placements[scratch_name(i)].offset if scratch[i] else None,
                 "fused": fused_parts(op),
                 "sign_output_offset": placements[op.sign].offset if op.sign else None,
                 "const_bytes": ops.get(op.kind).const_bytes(op)}
                for i, op in enumerate(graph.ops)],
    }
    manifest["files"] = sorted([*files, "manifest.json"])
    files["manifest.json"] = json.dumps(manifest, indent=2) + "\n"
    return files, manifest
