import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

from irnet_edge.resources import asset_dir

from .conftest import REPO


def test_assets_found_in_a_source_checkout():
    assert asset_dir("templates") == REPO / "templates"
    assert asset_dir("firmware") == REPO / "firmware"


def test_wheel_ships_templates_and_firmware(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("irnet_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for tree in ("templates", "firmware"):
        expected = {f"irnet_edge/_{tree}/{p.relative_to(REPO / tree).as_posix()}"
                    for p in (REPO / tree).rglob("*") if p.is_file()}
        assert expected and expected <= names, tree
    assert "irnet_edge/cli.py" in names and "irnet_edge/bench/count_plugin.c" in names
    assert {f"irnet_edge/runtime/{p.name}" for p in (REPO / "irnet_edge/runtime").glob("irnet_*.[ch]")} <= names
    assert not any(n.startswith("tests/") for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    probe = ("import irnet_edge.resources as r; print(r.asset_dir('templates')); print(r.asset_dir('firmware'))")
    found = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    assert found == [str(site / "irnet_edge" / "_templates"), str(site / "irnet_edge" / "_firmware")]


def _checkout_copy(dest):
    """The checkout's files as git sees them (tracked and not ignored), so the build never writes into it."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)


def test_sdist_builds_a_wheel_that_generates_buildable_c(tmp_path):
    """sdist -> wheel from that sdist -> a fresh venv outside the checkout -> irnet-edge codegen -> make."""
    import torch

    from irnet_edge.nn import zoo_spec

    from .helpers import calibrated

    source, dist = tmp_path / "source", tmp_path / "dist"
    _checkout_copy(source)
    # python -m build makes the sdist, then the wheel from the unpacked sdist (isolated: setuptools from PyPI)
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]
    (sdist,) = dist.glob("irnet_edge-*.tar.gz")
    (wheel,) = dist.glob("irnet_edge-*.whl")
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    shipped = [p.relative_to(REPO).as_posix() for tree in ("templates", "firmware") for p in (REPO / tree).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    runtime = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "irnet_edge/runtime").glob("irnet_*.[ch]"))]
    assert runtime and "templates/integration/CMakeLists.txt.j2" in shipped
    assert {*shipped, *runtime, "setup.py", "pyproject.toml", "MANIFEST.in"} <= in_sdist, top
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert set(runtime) <= in_wheel
    assert {f"irnet_edge/_{name}" for name in shipped} <= in_wheel

    # a fresh venv: the package from the wheel, its dependencies (torch...) from the project's site-packages
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import irnet_edge, irnet_edge.resources as r; "
                            "print(irnet_edge.__file__); print(r.asset_dir('templates'))"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert all(Path(p).is_relative_to(site / "irnet_edge") for p in where), where

    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    calibrated(zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25]), None, images, "mnist", work / "model.pt")
    out = work / "out"
    codegen = subprocess.run([str(venv / "bin" / "irnet-edge"), "codegen", "model.pt", "--target", "host", "--out",
                              "out", "--prefix", "pkg"], capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert codegen.returncode == 0, (codegen.stdout + codegen.stderr)[-3000:]
    for name in ("src/irnet/irnet_runtime.h", "src/pkg.c", "Makefile", "CMakeLists.txt", "library.json",
                 "library.properties", "zephyr/module.yml", "zephyr/Kconfig"):
        assert (out / name).is_file(), name
    make = subprocess.run(["make", "-C", str(out)], capture_output=True, text=True, timeout=300)
    assert make.returncode == 0, (make.stdout + make.stderr)[-3000:]
    assert subprocess.run([str(out / "pkg_run"), "--selftest"], capture_output=True, timeout=60).returncode == 0
