"""The irnet runtime as a library: two models in one program and one firmware with the kernels once, the
version guard, and the self-test every generated model carries."""
import subprocess

import numpy as np
import pytest
import torch

from irnet_edge import __version__
from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.codegen.firmware import load_board, render_firmware
from irnet_edge.codegen.render import RUNTIME_DIR, runtime_version_number
from irnet_edge.data import load_split
from irnet_edge.ir import export, ops, reference
from irnet_edge.nn import zoo_spec
from irnet_edge.verify.qemu import build_firmware, run_elf

from .helpers import calibrated


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_split("mnist", "test", mnist_dir)


@pytest.fixture(scope="module")
def two_graphs(mnist_test, tmp_path_factory):
    """mcu_m4 and mcu_m0 with real BatchNorm statistics from MNIST: (prefix, graph, sha256) each."""
    folder = tmp_path_factory.mktemp("models")
    images = mnist_test.images[:256]
    out = []
    for arch, prefix in (("mcu_m4", "digits_a"), ("mcu_m0", "digits_b")):
        ckpt = calibrated(zoo_spec(arch, 1, 28, 10, [0.1307], [0.3081]), None, images, "mnist",
                          folder / f"{arch}.pt")
        out.append((prefix, export(ckpt), ckpt.sha256))
    return out


def _hwc(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 2, 3, 1).contiguous()


TWO_MODELS_MAIN = r"""
#include <stdio.h>
#include "digits_a.h"
#include "digits_b.h"

int main(int argc, char **argv)
{
    static uint8_t input[DIGITS_A_INPUT_SIZE];
    float a[DIGITS_A_OUTPUT_SIZE], b[DIGITS_B_OUTPUT_SIZE];
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (argc < 3 || in == 0 || out == 0 || digits_a_selftest() != 0 || digits_b_selftest() != 0) {
        return 1;
    }
    while (fread(input, 1, sizeof input, in) == sizeof input) {
        digits_a_infer(input, a);
        digits_b_infer(input, b);
        fwrite(a, sizeof a[0], DIGITS_A_OUTPUT_SIZE, out);
        fwrite(b, sizeof b[0], DIGITS_B_OUTPUT_SIZE, out);
    }
    return fclose(out) != 0;
}
"""


def test_two_models_link_into_one_host_program_with_the_kernels_once(two_graphs, mnist_test, tmp_path):
    trees = []
    for prefix, graph, sha in two_graphs:
        tree = tmp_path / prefix
        write_tree(render(graph, get_target("host"), prefix, sha)[0], tree, force=False)
        trees.append(tree)
    runtime = sorted((trees[0] / "src" / "irnet").glob("*.c"))  # one runtime, from the first tree
    models = [c for tree in trees for c in sorted((tree / "src").glob("*.c"))]
    (tmp_path / "main.c").write_text(TWO_MODELS_MAIN)
    program = tmp_path / "two"
    build = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                            f"-I{trees[0] / 'src'}", f"-I{trees[1] / 'src'}", str(tmp_path / "main.c"),
                            *map(str, models), *map(str, runtime), "-o", str(program)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    symbols = subprocess.run(["nm", str(program)], capture_output=True, text=True, check=True).stdout.split()
    assert symbols.count("irnet_bconv") == 1 and symbols.count("digits_a_infer") == symbols.count("digits_b_infer")
    x = _hwc(mnist_test.images[:100])
    x.numpy().tofile(tmp_path / "in.bin")
    assert subprocess.run([str(program), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")]).returncode == 0
    got = np.fromfile(tmp_path / "out.bin", dtype=np.float32).reshape(100, 2, 10)
    for i, (_, graph, _) in enumerate(two_graphs):
        expected = reference.run(graph, x).numpy()
        assert np.array_equal(got[:, i].view(np.int32), expected.view(np.int32))


TWO_MODELS_FIRMWARE_MAIN = r"""
#include "board.h"
#include "digits_a.h"
#include "digits_b.h"

void SysTick_Handler(void);
void SysTick_Handler(void)
{
}

int main(void)
{
    const int a = digits_a_selftest(), b = digits_b_selftest();
    board_puts(a == 0 ? "digits_a bit-exact\n" : "digits_a FAILED\n");
    board_puts(b == 0 ? "digits_b bit-exact\n" : "digits_b FAILED\n");
    return a != 0 || b != 0;
}
"""


def test_two_models_in_one_cortex_m4_firmware_with_the_kernels_once(two_graphs, mnist_test, tmp_path):
    """The firmware project of one model gets the second model's files (not its runtime copy) and a main that
    runs both self-tests, on a real test image each, under the emulated M4."""
    board = load_board("mps2-an386")
    (a_prefix, a_graph, a_sha), (b_prefix, b_graph, b_sha) = two_graphs
    sample = _hwc(mnist_test.images[:1]).numpy()
    tree = tmp_path / "fw"
    write_tree(render_firmware(a_graph, a_prefix, a_sha, board, None, sample, np.zeros(1, np.uint8), "mnist"),
               tree, force=False)
    single = build_firmware(tree)
    single_text = _text_bytes(single)
    b_files, _ = render(b_graph, get_target("cortex-m"), b_prefix, b_sha, selftest_input=sample[0])
    for name, text in b_files.items():
        if name.startswith("src/") and not name.startswith("src/irnet/"):
            (tree / name).write_text(text)
    (tree / "main.c").write_text(TWO_MODELS_FIRMWARE_MAIN)
    subprocess.run(["make", "-C", str(tree), "clean"], check=True, capture_output=True)
    elf = build_firmware(tree)
    rc, output = run_elf(board.emulator["machine"], elf, timeout=120)
    assert rc == 0 and "digits_a bit-exact" in output and "digits_b bit-exact" in output, output
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert symbols.split().count("irnet_bconv_cm") == 1
    # the second model adds its weights and schedule, not another copy of the kernels
    kernels = _symbol_bytes(elf, "irnet_")
    assert kernels > 4000
    assert _text_bytes(elf) - single_text < ops.weight_bytes(b_graph) + 4000


def _symbol_bytes(elf, prefix: str) -> int:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    return sum(int(parts[1], 16) for parts in (line.split() for line in out.splitlines())
               if len(parts) == 4 and parts[3].startswith(prefix) and parts[2] in "tT")


def _text_bytes(elf) -> int:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    return next(int(line.split()[1]) for line in out.splitlines() if line.startswith(".text"))


def test_a_model_refuses_another_runtime_version(two_graphs, tmp_path):
    prefix, graph, sha = two_graphs[1]
    tree = tmp_path / "c"
    write_tree(render(graph, get_target("host"), prefix, sha)[0], tree, force=False)
    header = tree / "src" / "irnet" / "irnet_runtime.h"
    number = runtime_version_number()
    assert f"#define IRNET_RUNTIME_VERSION {number} " in header.read_text()
    assert f'#define IRNET_RUNTIME_VERSION_STRING "{__version__}"' in header.read_text()
    header.write_text(header.read_text().replace(f"#define IRNET_RUNTIME_VERSION {number} ",
                                                 f"#define IRNET_RUNTIME_VERSION {number + 1} "))
    build = subprocess.run(["make", "-C", str(tree)], capture_output=True, text=True)
    assert build.returncode != 0
    assert f"{prefix} was generated by irnet-edge {__version__} and needs the irnet runtime {__version__}" in (
        build.stderr)


def test_the_shipped_runtime_is_the_one_codegen_copies_and_its_version_is_the_tool_version():
    text = (RUNTIME_DIR / "irnet_runtime.h").read_text()
    assert f"#define IRNET_RUNTIME_VERSION {runtime_version_number()} " in text
    assert f'"{__version__}"' in text


def test_selftest_passes_and_catches_a_changed_constant(two_graphs, mnist_test, tmp_path):
    prefix, graph, sha = two_graphs[0]
    image = _hwc(mnist_test.images[:1]).numpy()[0]
    files, manifest = render(graph, get_target("host"), prefix, sha, selftest_input=image,
                             selftest_source="mnist test image 0")
    assert manifest["selftest"] == {"function": f"{prefix}_selftest", "input": "mnist test image 0"}
    tree = tmp_path / "c"
    write_tree(files, tree, force=False)
    subprocess.run(["make", "-C", str(tree)], check=True, capture_output=True)
    result = subprocess.run([str(tree / f"{prefix}_run"), "--selftest"], capture_output=True, text=True)
    assert result.returncode == 0 and "selftest: passed, 10 logits bit-exact" in result.stdout
    # one changed threshold: the self-test names the first logit that moved
    weights = tree / "src" / f"{prefix}_weights.c"
    text = weights.read_text()
    start = text.index("_threshold[")
    body = text.index("{", start) + 1
    end = text.index("}", body)
    values = [int(v) for v in text[body:end].replace("\n", " ").split(",")]
    weights.write_text(text[:body] + "\n    " + ", ".join(str(v + 7) for v in values) + "\n" + text[end:])
    subprocess.run(["make", "-C", str(tree)], check=True, capture_output=True)
    result = subprocess.run([str(tree / f"{prefix}_run"), "--selftest"], capture_output=True, text=True)
    assert result.returncode == 1 and "selftest: FAILED, logit" in result.stdout


def test_the_runtime_compiles_alone_with_strict_warnings_under_gcc_and_clang(tmp_path):
    for cc in ("gcc", "clang"):
        for source in sorted(RUNTIME_DIR.glob("*.c")):
            build = subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow",
                                    "-Wstrict-prototypes", "-Wmissing-prototypes", "-c", str(source), "-o",
                                    str(tmp_path / f"{source.stem}.o")], capture_output=True, text=True)
            assert build.returncode == 0, f"{cc} {source.name}: {build.stderr}"


FLUSH_MAIN = r"""
#include <xmmintrin.h>
#include "digits_b.h"

int main(void)
{
    if (digits_b_selftest() != 0) {
        return 2;
    }
    _mm_setcsr(_mm_getcsr() | 0x8040u); /* flush-to-zero and denormals-are-zero, as crtfastmath.o sets them */
    return digits_b_selftest() == -1 ? 0 : 1;
}
"""


def test_selftest_sees_a_flush_to_zero_mode_set_elsewhere_in_the_program(two_graphs, tmp_path):
    prefix, graph, sha = two_graphs[1]
    tree = tmp_path / "c"
    write_tree(render(graph, get_target("host"), prefix, sha)[0], tree, force=False)
    (tmp_path / "main.c").write_text(FLUSH_MAIN)
    sources = [*sorted((tree / "src").glob("*.c")), *sorted((tree / "src" / "irnet").glob("*.c"))]
    build = subprocess.run(["gcc", "-std=c99", "-O2", f"-I{tree / 'src'}", str(tmp_path / "main.c"),
                            *map(str, sources), "-o", str(tmp_path / "flush")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "flush")]).returncode == 0
