"""The build files generated next to the C (CMake, Zephyr, PlatformIO, Arduino) are used by the real tools: two
models in one CMake program with one runtime, a Cortex-M cross build, the manifests parsed, and the sources
compiled with the flags the manifests declare."""
import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.ir import export
from irnet_edge.nn import zoo_spec

from .helpers import calibrated

PREFIXES = ("net_a", "net_b")
ARM_TOOLCHAIN = """\
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
"""


def run(cmd, cwd, timeout=300):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """Two small calibrated mcu_m0 models (different weights), as (prefix, graph, sha256)."""
    folder = tmp_path_factory.mktemp("ckpt")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=generator)
    out = []
    for seed, prefix in enumerate(PREFIXES):
        ckpt = calibrated(zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25]), None, images, "mnist",
                          folder / f"{prefix}.pt", seed=seed)
        out.append((prefix, export(ckpt), ckpt.sha256))
    return out


def generate(graph_entry, target: str, out: Path) -> Path:
    prefix, graph, sha = graph_entry
    write_tree(render(graph, get_target(target), prefix, sha)[0], out, force=True)
    return out


def test_cmake_two_models_one_runtime_host(graphs, tmp_path):
    trees = [generate(g, "host", tmp_path / g[0]) for g in graphs]
    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.15)\nproject(two_models C)\n"
        + "".join(f'add_subdirectory("{tree.as_posix()}" {tree.name})\n' for tree in trees)
        + "add_executable(app main.c)\n"
        + f"target_link_libraries(app PRIVATE {' '.join(PREFIXES)})\n")
    (app / "main.c").write_text(
        "#include <stdio.h>\n" + "".join(f'#include "{p}.h"\n' for p in PREFIXES)
        + "int main(void)\n{\n"
        + "".join(f'    int {p} = {p}_selftest();\n    printf("{p} %d\\n", {p});\n' for p in PREFIXES)
        + f"    return {' || '.join(PREFIXES)};\n}}\n")
    build = tmp_path / "build"
    run(["cmake", "-G", "Ninja", "-S", app, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"], tmp_path)
    run(["cmake", "--build", build], tmp_path)
    # the runtime is one target, compiled once, from the first model's tree; each model is its own library
    assert len(list(build.rglob("libirnet_runtime.a"))) == 1
    for p in PREFIXES:
        assert len(list(build.rglob(f"lib{p}.a"))) == 1
    kernels = list(build.rglob("irnet_kernels.c.o"))
    assert len(kernels) == 1, kernels
    commands = json.loads((build / "compile_commands.json").read_text())
    compiled = [(Path(c["directory"]) / c["file"]).resolve() for c in commands]
    runtime_sources = [f for f in compiled if f.parent.name == "irnet"]
    assert runtime_sources and all(f.parent.parent.parent == trees[0] for f in runtime_sources)
    assert len(runtime_sources) == len(set(runtime_sources)) == len(list((trees[0] / "src/irnet").glob("*.c")))
    for c, source in zip(commands, compiled, strict=True):
        if source.parent.parent.parent in trees or source.parent.parent in trees:  # ours, not the app's
            assert "-ffp-contract=off" in c["command"], source
        if source.parent.parent == trees[1]:  # <irnet/irnet_runtime.h> is the header of the runtime linked
            assert f"-I{trees[0] / 'src'}" in c["command"] and f"-I{trees[1] / 'src'}" not in c["command"]
    result = subprocess.run([build / "app"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [PREFIXES[0], "0", PREFIXES[1], "0"]


def test_cmake_cross_build_cortex_m(graphs, tmp_path):
    tree = generate(graphs[0], "cortex-m", tmp_path / "out")
    (tmp_path / "arm.cmake").write_text(ARM_TOOLCHAIN)
    build = tmp_path / "build"
    run(["cmake", "-G", "Ninja", "-S", tree, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={tmp_path / 'arm.cmake'}",
         "-DCMAKE_BUILD_TYPE=MinSizeRel"], tmp_path)
    run(["cmake", "--build", build], tmp_path)
    runtime, model = build / "libirnet_runtime.a", build / f"lib{PREFIXES[0]}.a"
    assert runtime.is_file() and model.is_file()
    symbols = run(["arm-none-eabi-nm", "-g", "--defined-only", runtime], tmp_path)
    assert re.search(r"\birnet_bconv_cm\b", symbols)  # the Cortex-M kernels compiled, not the empty file
    assert re.search(rf"\b{PREFIXES[0]}_selftest\b", run(["arm-none-eabi-nm", "-g", model], tmp_path))
    attributes = run(["arm-none-eabi-readelf", "-A", runtime], tmp_path)
    assert "Tag_CPU_arch: v7E-M" in attributes and "Tag_ABI_VFP_args: VFP registers" in attributes


def parse_properties(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key.strip() and key == key.strip(), f"not key=value: {line!r}"
        assert key not in props, f"duplicate key {key}"
        props[key] = value
    return props


def parse_module_yml(text: str) -> dict:
    try:
        import yaml
    except ImportError:  # a strict check of the one shape the template writes
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        assert lines[1:] == ["build:", "  cmake: .", "  kconfig: zephyr/Kconfig"], lines
        return {"name": lines[0].split(": ", 1)[1], "build": {"cmake": ".", "kconfig": "zephyr/Kconfig"}}
    return yaml.safe_load(text)


def declared_sources(tree: Path) -> list[str]:
    """The sources manifest.json declares (src/*.c, src/irnet/*.c), relative to the tree."""
    patterns = json.loads((tree / "manifest.json").read_text())["build"]["sources"]
    return sorted(str(p.relative_to(tree)) for pattern in patterns for p in tree.glob(pattern))


def compile_and_selftest(tree: Path, prefix: str, flags: list[str], exe: Path) -> None:
    """gcc on the declared sources with the given flags, run in the tree as the tools do; runs the self-test."""
    (exe.parent / "main.c").write_text(f'#include "{prefix}.h"\nint main(void) {{ return {prefix}_selftest(); }}\n')
    run(["gcc", "-O2", "-Wall", "-Werror", *flags, "-o", exe, *declared_sources(tree), exe.parent / "main.c"], tree)
    result = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{prefix}_selftest() returned {result.returncode}"


def test_platformio_arduino_zephyr_manifests(graphs, tmp_path):
    prefix = graphs[0][0]
    tree = generate(graphs[0], "host", tmp_path / "out")
    manifest = json.loads((tree / "manifest.json").read_text())
    for name in ("CMakeLists.txt", "library.json", "library.properties", "zephyr/module.yml", "zephyr/Kconfig"):
        assert name in manifest["files"] and (tree / name).is_file(), name

    library = json.loads((tree / "library.json").read_text())
    assert library["name"] == prefix and library["version"] == manifest["tool_version"]
    assert library["frameworks"] == "*" and library["platforms"] == "*" and library["headers"] == f"{prefix}.h"
    build = library["build"]
    assert build["srcDir"] == "src" and build["includeDir"] == "src" and build["libArchive"] is True
    assert set(manifest["build"]["required_flags"]) <= set(build["flags"]) and "-Isrc" in build["flags"]
    assert not set(manifest["build"]["refused_flags"]) & set(build["flags"])
    (tmp_path / "pio").mkdir()
    compile_and_selftest(tree, prefix, build["flags"], tmp_path / "pio" / "app")

    props = parse_properties((tree / "library.properties").read_text())
    required = {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                "architectures"}
    assert required <= set(props), required - set(props)
    assert props["name"] == prefix and re.fullmatch(r"[A-Za-z][A-Za-z0-9 _.-]*", props["name"])
    assert props["version"] == manifest["tool_version"] and props["architectures"] == "*"
    assert props["includes"] == f"{prefix}.h" and props["dot_a_linkage"] == "true"
    assert props["category"] in {"Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
                                 "Timing", "Data Storage", "Data Processing", "Other"}
    # Arduino: src/ compiled recursively with src/ on the include path and no flags from the library
    (tmp_path / "arduino").mkdir()
    compile_and_selftest(tree, prefix, ["-std=gnu11", "-Isrc"], tmp_path / "arduino" / "app")
    # the Cortex-M tree carries the same files and builds with the same declared flags for an M4
    arm = generate(graphs[0], "cortex-m", tmp_path / "arm")
    assert json.loads((arm / "library.json").read_text())["build"] == build
    assert parse_properties((arm / "library.properties").read_text()) == props
    run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os",
         "-Wall", "-Werror", *build["flags"], "-c", *declared_sources(arm)], arm)
    assert len(list(arm.glob("*.o"))) == len(declared_sources(arm))

    module = parse_module_yml((tree / "zephyr/module.yml").read_text())
    assert module["build"] == {"cmake": ".", "kconfig": "zephyr/Kconfig"}
    assert re.fullmatch(r"[A-Za-z0-9_-]+", module["name"])
    assert (tree / module["build"]["cmake"] / "CMakeLists.txt").is_file()
    kconfig = (tree / module["build"]["kconfig"]).read_text()
    guard = prefix.upper()
    assert re.search(rf"^config IRNET_{guard}\n\tbool \"[^\"\\\\]*\"\n\tselect IRNET_RUNTIME$", kconfig, re.M)
    assert re.search(r"^config IRNET_RUNTIME\n\tbool$", kconfig, re.M)
    assert f"CONFIG_IRNET_{guard}" in (tree / "CMakeLists.txt").read_text()


def test_model_name_escaped_in_every_format(graphs, tmp_path):
    prefix, graph, sha = graphs[0]
    name = 'evil "name" with\nnewline\r*/ {{x}} $(y) ${z} ]] <&> \\'  # a trailing backslash continues lines
    files, _ = render(dataclasses.replace(graph, name=name), get_target("host"), prefix, sha)
    library = json.loads(files["library.json"])
    assert "evil" in library["description"]
    props = parse_properties(files["library.properties"])
    assert "evil" in props["sentence"] and "\n" not in props["sentence"]
    assert parse_module_yml(files["zephyr/module.yml"])["name"] == f"irnet_{prefix}"
    for text in (files["CMakeLists.txt"], files["zephyr/Kconfig"], files["library.properties"]):
        for line in text.splitlines():  # the name only ever lands in a one-line comment or a value
            assert "evil" not in line or line.startswith(("#", "sentence=")) and not line.endswith("\\"), line
    tree = tmp_path / "out"
    write_tree(files, tree, force=True)
    run(["cmake", "-G", "Ninja", "-S", tree, "-B", tmp_path / "build"], tmp_path)
