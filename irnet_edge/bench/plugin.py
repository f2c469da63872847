"""The instruction counter: irnet-edge's QEMU TCG plugin (count_plugin.c), built on first use, and its report.

QEMU distributions ship no plugin header, so the first use fetches include/qemu/qemu-plugin.h from the
Debian source package of the installed QEMU (apt-get with a private configuration: no root, no system
change) and keeps it with the built plugin in IRNET_EDGE_QEMU_PLUGIN_DIR (default
~/.cache/irnet-edge/qemu-plugin). Where that cannot work, put the header of your QEMU version there.
"""
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from ..errors import IrnetEdgeError
from ..verify.toolchain import require_tool

SOURCE = Path(__file__).with_name("count_plugin.c")
HEADER = "qemu-plugin.h"
_QEMU_PACKAGES = ("qemu-user", "qemu-system-arm", "qemu-system-x86")


@dataclass(frozen=True)
class Block:
    vaddr: int
    executions: int
    fallthroughs: int
    insns: tuple[int, ...]


@dataclass(frozen=True)
class Report:
    marks: tuple[int, ...]  # instructions counted when each mark was reached
    blocks: tuple[Block, ...]

    @property
    def total(self) -> int:
        return self.marks[-1] - self.marks[0]

    def per_segment(self) -> list[int]:
        return [b - a for a, b in pairwise(self.marks)]


def plugin_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "irnet-edge" / "qemu-plugin"
    return Path(os.environ.get("IRNET_EDGE_QEMU_PLUGIN_DIR", default))


def _installed_qemu_source() -> str | None:
    for package in _QEMU_PACKAGES:
        result = subprocess.run(["dpkg-query", "-W", "-f=${source:Version}", package], capture_output=True,
                                text=True)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return None


def _source_lists() -> str:
    """The system's apt sources with every binary entry turned into a source entry."""
    lines = []
    etc = Path("/etc/apt")
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            lines += [re.sub(r"^deb\s", "deb-src ", line) for line in path.read_text().splitlines()
                      if line.startswith("deb ")]
    return "\n".join(lines) + "\n"


def _deb822_sources() -> str:
    parts = [path.read_text() for path in sorted((Path("/etc/apt/sources.list.d")).glob("*.sources"))]
    return "\n\n".join(re.sub(r"(?m)^Types:.*$", "Types: deb-src", text) for text in parts)


def fetch_header(dest: Path) -> Path:
    """qemu-plugin.h of the installed QEMU, from its Debian source package."""
    version = _installed_qemu_source()
    fix = (f"put include/qemu/{HEADER} from the source of your QEMU version at {dest / HEADER} "
           "(or set IRNET_EDGE_QEMU_PLUGIN_DIR to a folder holding it)")
    if version is None or shutil.which("apt-get") is None:
        raise IrnetEdgeError(f"the instruction counter needs QEMU's plugin header, which only Debian/Ubuntu "
                             f"systems can fetch automatically; {fix}")
    with tempfile.TemporaryDirectory(prefix="irnet-edge-qemu-src-") as tmp:
        work = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial", "parts", "download"):
            (work / sub).mkdir(parents=True)
        (work / "sources.list").write_text(_source_lists())
        (work / "parts" / "system.sources").write_text(_deb822_sources())
        options = [f"-oDir::Etc::SourceList={work / 'sources.list'}", f"-oDir::Etc::SourceParts={work / 'parts'}",
                   f"-oDir::State::Lists={work / 'lists'}", f"-oDir::Cache={work / 'cache'}",
                   "-oDebug::NoLocking=1", "-q"]
        for args in (["update"], ["source", "--download-only", f"qemu={version}"]):
            result = subprocess.run(["apt-get", *options, *args], capture_output=True, text=True,
                                    cwd=work / "download")
            if result.returncode != 0:
                raise IrnetEdgeError(f"fetching QEMU {version}'s source package failed "
                                     f"({result.stderr.strip()[-300:]}); {fix}")
        archives = sorted((work / "download").glob("qemu_*.orig.tar.*"))
        if not archives:
            raise IrnetEdgeError(f"QEMU's source package came without its .orig tarball; {fix}")
        with tarfile.open(archives[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(f"include/qemu/{HEADER}")), None)
            if member is None:
                raise IrnetEdgeError(f"QEMU {version}'s source has no {HEADER} (QEMU older than 4.2?); {fix}")
            data = tar.extractfile(member).read()
    dest.mkdir(parents=True, exist_ok=True)
    tmp_header = dest / f".{HEADER}.{os.getpid()}"
    tmp_header.write_bytes(data)
    os.replace(tmp_header, dest / HEADER)
    return dest / HEADER


def build_plugin(log=lambda message: None) -> Path:
    """The plugin's shared library, built once per plugin source into plugin_dir()."""
    folder = plugin_dir()
    source = SOURCE.read_bytes()
    library = folder / f"libirnet_count-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if library.is_file():
        return library
    if not (folder / HEADER).is_file():
        log(f"fetching QEMU's plugin header into {folder} (once)")
        fetch_header(folder)
    cc = require_tool("gcc", "gcc")
    tmp = folder / f".{library.name}.{os.getpid()}"
    result = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", f"-I{folder}", str(SOURCE),
                             "-o", str(tmp), "-lpthread"], capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"building the instruction-counting plugin failed:\n{result.stderr[-2000:]}")
    os.replace(tmp, library)
    return library


def plugin_args(library: Path, mark: int, marks: int, out: Path) -> list[str]:
    return ["-plugin", f"{library},mark={mark:#x},marks={marks},out={out}"]


def parse_report(path: Path, expected_marks: int) -> Report:
    if not path.is_file():
        raise IrnetEdgeError("the instruction counter wrote no report: did the program run to its end?")
    lines = path.read_text().splitlines()
    head = lines[0].split()
    marks = tuple(int(v) for v in head[2:])
    if len(marks) != expected_marks:
        raise IrnetEdgeError(f"the program passed {len(marks)} of its {expected_marks} bench marks: the model "
                             "did not run to its end under the counter")
    blocks = []
    for line in lines[1:]:
        _, vaddr, executions, fallthroughs, *insns = line.split()
        blocks.append(Block(int(vaddr, 16), int(executions), int(fallthroughs), tuple(int(i, 16) for i in insns)))
    return Report(marks, tuple(blocks))
