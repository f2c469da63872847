import subprocess
import sys
import zipfile

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
    assert not any(n.startswith("tests/") for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    probe = ("import irnet_edge.resources as r; print(r.asset_dir('templates')); print(r.asset_dir('firmware'))")
    found = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    assert found == [str(site / "irnet_edge" / "_templates"), str(site / "irnet_edge" / "_firmware")]
