"""Finds and reads a dataset split from local files (idx, CIFAR batches, image folders) or torchvision.

Everything ends as an ImageSet of uint8 images (N, C, H, W) and int64 labels, held in memory: the
datasets are small, and batching from memory is what makes CPU training fast.
"""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import IrnetEdgeError
from .catalog import DatasetInfo, get_dataset_info

SPLITS = ("train", "test")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm"}


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "irnet-edge"


def default_data_roots() -> list[Path]:
    """IRNET_EDGE_DATA (a folder with one sub-folder per dataset), then the download cache."""
    roots = [Path(p) for p in os.environ.get("IRNET_EDGE_DATA", "").split(os.pathsep) if p]
    return roots + [cache_root() / "data"]


# ---- idx (MNIST-style) -------------------------------------------------------------------------

def _open_maybe_gz(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IrnetEdgeError(f"{path} is a damaged gzip file ({exc}); download it again") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise IrnetEdgeError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise IrnetEdgeError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {body.size}")
    return body.reshape(shape)


def _find_idx(folder: Path, split: str, kind: str) -> Path | None:
    stem = f"{_IDX_PREFIX[split]}-{kind}-ubyte"
    for sub in ("", "raw"):
        for name in (stem, stem + ".gz", stem.replace("-ubyte", ".ubyte")):
            candidate = folder / sub / name
            if candidate.is_file():
                return candidate
    return None


def _load_idx(folder: Path, split: str) -> ImageSet | None:
    images_path = _find_idx(folder, split, "images-idx3")
    labels_path = _find_idx(folder, split, "labels-idx1")
    if images_path is None or labels_path is None:
        return None
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise IrnetEdgeError(f"{images_path} and {labels_path} do not hold matching images and labels")
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


# ---- CIFAR-10 python batches -------------------------------------------------------------------

def _load_cifar_batches(folder: Path, split: str) -> ImageSet | None:
    for base in (folder, folder / "cifar-10-batches-py"):
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        paths = [base / n for n in names]
        if all(p.is_file() for p in paths):
            images, labels = [], []
            for p in paths:
                # a restricted unpickler keeps a hostile batch file from running code
                batch = _RestrictedUnpickler(io.BytesIO(p.read_bytes()), encoding="bytes").load()
                images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
            return ImageSet(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR batches are dicts of lists and numpy arrays; only numpy's array reconstruction is allowed."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise IrnetEdgeError(f"refusing to unpickle {module}.{name}: CIFAR batches hold only plain data")


# ---- image folders (plain or inside a .tar.gz) -------------------------------------------------

def _decode(data: bytes, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _stack(items: list[tuple[str, bytes]], info: DatasetInfo, origin: str) -> ImageSet:
    """items: (class name, encoded image); classes sort alphabetically into label order."""
    classes = sorted({c for c, _ in items})
    if len(classes) != info.num_classes:
        raise IrnetEdgeError(f"{origin} has {len(classes)} class folders, {info.name} needs {info.num_classes}")
    index = {c: i for i, c in enumerate(classes)}
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # PIL decodes without holding the GIL
        images = np.stack(list(pool.map(lambda item: _decode(item[1], info.channels), items, chunksize=256)))
    if images.shape[1:] != (info.channels, info.size, info.size):
        raise IrnetEdgeError(f"{origin} holds images of shape {images.shape[1:]}, "
                             f"{info.name} needs {(info.channels, info.size, info.size)}")
    labels = np.array([index[c] for c, _ in items], dtype=np.int64)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels))


def _load_image_folder(folder: Path, split: str, info: DatasetInfo) -> ImageSet | None:
    root = folder / split
    if not root.is_dir():
        return None
    items = [(f.parent.name, f.read_bytes()) for f in sorted(root.glob("*/*"))
             if f.suffix.lower() in _IMAGE_SUFFIXES]
    return _stack(items, info, str(root)) if items else None


def _load_image_tar(folder: Path, split: str, info: DatasetInfo) -> ImageSet | None:
    archives = sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.tgz")) + sorted(folder.glob("*.tar"))
    for archive in archives:
        cached = _cache_file(archive, split)
        if cached.is_file():
            data = torch.load(cached, weights_only=True)
            return ImageSet(data["images"], data["labels"])
        items = []
        try:
            with tarfile.open(archive) as tar:
                for member in tar:
                    parts = Path(member.name).parts
                    if (member.isfile() and len(parts) >= 3 and parts[-3] == split
                            and Path(member.name).suffix.lower() in _IMAGE_SUFFIXES):
                        items.append((parts[-2], tar.extractfile(member).read()))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise IrnetEdgeError(f"{archive} is not a readable tar archive ({exc})") from None
        if items:
            items.sort()
            result = _stack(items, info, str(archive))
            _atomic_save({"images": result.images, "labels": result.labels}, cached)
            return result
    return None


def _cache_file(archive: Path, split: str) -> Path:
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "decoded" / f"{archive.name}-{key}-{split}.pt"


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---- torchvision -------------------------------------------------------------------------------

def _load_torchvision(root: Path, split: str, info: DatasetInfo, download: bool) -> ImageSet | None:
    import torchvision

    cls = getattr(torchvision.datasets, info.torchvision_class)
    try:
        ds = cls(str(root), train=split == "train", download=download)
    except (RuntimeError, OSError):
        return None
    data = torch.as_tensor(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return ImageSet(images.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64))


def _load_local(folder: Path, split: str, info: DatasetInfo) -> ImageSet | None:
    for loader in (_load_idx, _load_cifar_batches):
        found = loader(folder, split)
        if found is not None:
            return found
    for loader in (_load_image_folder, _load_image_tar):
        found = loader(folder, split, info)
        if found is not None:
            return found
    return None


def _check(found: ImageSet, info: DatasetInfo, origin: Path) -> ImageSet:
    expected = (info.channels, info.size, info.size)
    if tuple(found.images.shape[1:]) != expected:
        raise IrnetEdgeError(f"{origin} holds images of shape {tuple(found.images.shape[1:])}; "
                             f"{info.name} needs {expected}")
    if int(found.labels.min()) < 0 or int(found.labels.max()) >= info.num_classes:
        raise IrnetEdgeError(f"{origin} has labels outside 0..{info.num_classes - 1}")
    return found


def load_split(name: str, split: str, data_dir: str | Path | None = None, download: bool = True) -> ImageSet:
    """Read one split. With data_dir, only that folder is used; otherwise the default places, then a
    torchvision download into the cache. Without files and without network: one error saying where to
    put them."""
    info = get_dataset_info(name)
    if split not in SPLITS:
        raise IrnetEdgeError(f"unknown split {split!r}; use one of {SPLITS}")
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise IrnetEdgeError(f"the data folder {folder} {what}; pass the folder that holds the {info.name} files "
                                 "(--data-dir, or data_dir= from Python)")
        found = _load_local(folder, split, info)
        if found is None:
            raise IrnetEdgeError(f"no {info.name} {split} data in {folder}; {_layouts(info)}")
        return _check(found, info, folder)
    candidates = [root / info.name for root in default_data_roots()] + [Path(p) for p in info.system_dirs]
    for folder in candidates:
        if folder.is_dir():
            found = _load_local(folder, split, info)
            if found is not None:
                return _check(found, info, folder)
    download_root = cache_root() / "data" / info.name
    download = download and os.environ.get("IRNET_EDGE_OFFLINE", "") in ("", "0")
    found = _load_torchvision(download_root, split, info, download=download)
    if found is None:
        places = ", ".join(str(c) for c in candidates)
        raise IrnetEdgeError(f"{info.name} is not available offline and could not be downloaded. Put the files in "
                             f"one of: {places}, or pass --data-dir; {_layouts(info)}")
    return _check(found, info, download_root)


def _layouts(info: DatasetInfo) -> str:
    if info.channels == 1:
        return ("expected MNIST-style idx files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) "
                "or class folders train/<class>/*.png and test/<class>/*.png")
    return ("expected CIFAR-10 python batches (data_batch_1..5, test_batch), class folders "
            "train/<class>/*.jpg and test/<class>/*.jpg, or a .tar.gz holding such folders")
