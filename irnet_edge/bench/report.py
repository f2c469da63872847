"""Human-readable bench reports (the JSON form is BenchResult.to_json)."""
from .measure import BenchResult


def _num(value) -> str:
    return "-" if not value else f"{value:,}"


def _field(item, key: str):
    return item[key] if isinstance(item, dict) else getattr(item, key)


def baseline_per_layer(layers, baseline) -> list[int]:
    """The float32 baseline's instructions beside each binary op (Layer objects or their JSON dicts): the baseline
    runs the unfused ops, so each of its ops goes to the binary op whose source names it (a fused op's source
    joins the sources of the ops it took in with "; ")."""
    owner = {part: i for i, layer in enumerate(layers) for group in _field(layer, "source").split("; ")
             for part in (group, *group.split(", "))}
    sums = [0] * len(layers)
    for op in baseline:
        sums[owner[_field(op, "source")]] += _field(op, "instructions")
    return sums


def _layer_span(source: str) -> str:
    """The model layers an op implements, as "first..last" ("0..4"), from its source; "-" where it names none."""
    parts = [part for group in source.split("; ") for part in group.split(", ")]
    paths = [part.split(" (")[0] for part in parts if part.endswith(")") and " (" in part]
    return "-" if not paths else paths[0] if len(paths) == 1 else f"{paths[0]}..{paths[-1]}"


def to_text(result: BenchResult) -> str:
    b, f = result.binary, result.baseline
    t = result.target
    where = ", ".join(filter(None, [t.board.name if t.board else None, b.toolchain.get("cpu"), t.isa]))
    lines = [f"{result.model} on {t.target.name}{f' ({where})' if where else ''}: {b.instructions:,} instructions per "
             f"inference, counted exactly under {b.emulator}; logits bit-exact with the reference",
             f"model code and data: flash {b.model_flash_bytes:,} bytes, RAM {b.model_ram_bytes:,} bytes"]
    if b.image:
        lines.append(f"whole firmware image: flash {b.image['flash_bytes']:,} bytes, RAM {b.image['ram_bytes']:,} "
                     f"bytes including a {b.image['stack_bytes']:,}-byte stack")
    if b.cycles:
        lines.append(f"Cortex-M4 cycles, estimated: {b.cycles.cycles:,} (TRM timings, zero-wait-state memory, "
                     "not a measurement)")
    header = f"{'#':>3}  {'op':<12} {'from':<14} {'output':<16} {'instructions':>13} {'share':>6} " \
             f"{'binary MACs':>12} {'float MACs':>12} {'bMAC/instr':>10}"
    if f:
        header += f" | {'float32 baseline':>16} {'ratio':>6}"
    lines += ["", header, "-" * len(header)]
    beside = baseline_per_layer(b.layers, f.layers) if f else []
    for i, layer in enumerate(b.layers):
        row = (f"{layer.index:>3}  {layer.kind:<12} {_layer_span(layer.source)[:14]:<14} {layer.output:<16} "
               f"{layer.instructions:>13,} {layer.instructions / b.instructions:>6.1%} "
               f"{_num(layer.binary_macs):>12} {_num(layer.float_macs):>12} "
               f"{layer.binary_macs / layer.instructions if layer.binary_macs else 0:>10.2f}")
        if f:
            row += f" | {beside[i]:>16,} {beside[i] / max(layer.instructions, 1):>6.2f}"
        lines.append(row.replace("      0.00", "         -"))
    total = f"{'':>3}  {'total':<12} {'':<14} {'':<16} {b.instructions:>13,} {'100%':>6} " \
            f"{_num(sum(x.binary_macs for x in b.layers)):>12} {_num(sum(x.float_macs for x in b.layers)):>12} " \
            f"{'':>10}"
    if f:
        total += f" | {f.instructions:>16,} {f.instructions / b.instructions:>6.2f}"
    lines += ["-" * len(header), total]
    if f:
        r = result.ratios()
        lines += ["", f"float32 baseline (every binary layer as a float32 convolution on +/-1 values, same flags): "
                      f"{r['instructions']:.2f}x the instructions, {r['model_flash_bytes']:.2f}x the flash, "
                      f"{r['model_ram_bytes']:.2f}x the RAM; logits bit-exact with the binary model's"]
        if f.cycles:
            lines.append(f"baseline Cortex-M4 cycles, estimated: {f.cycles.cycles:,}")
    return "\n".join(lines)
