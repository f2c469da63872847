"""Dataset readers on the real files: idx (.gz and raw), CIFAR batches, class folders and archives."""
import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from irnet_edge.data import load_split
from irnet_edge.data.loaders import read_idx
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.train.augment import random_crop_flip


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_split("mnist", "test", mnist_dir)


def test_mnist_idx_gz(mnist_test):
    assert mnist_test.images.shape == (10_000, 1, 28, 28) and mnist_test.images.dtype == torch.uint8
    assert mnist_test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first digits


def test_uncompressed_idx_in_torchvision_raw_layout(mnist_dir, mnist_test, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    again = load_split("mnist", "test", tmp_path)
    assert torch.equal(again.images, mnist_test.images) and torch.equal(again.labels, mnist_test.labels)


def test_truncated_and_damaged_idx_files(mnist_dir, tmp_path):
    data = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "short").write_bytes(data[:5000])
    with pytest.raises(IrnetEdgeError, match="truncated: expected 10000 values, found 4992"):
        read_idx(tmp_path / "short")
    gz = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "bad.gz").write_bytes(gz[:200])
    with pytest.raises(IrnetEdgeError, match="damaged gzip"):
        read_idx(tmp_path / "bad.gz")


def test_fashion_mnist_from_the_debian_package():
    test = load_split("fashion-mnist", "test")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert test.labels.bincount().tolist() == [1000] * 10


def test_class_folders_of_png(mnist_test, tmp_path):
    """Class sub-folders sort into label order; PNG is lossless so pixels must match exactly."""
    picks = torch.cat([torch.nonzero(mnist_test.labels == c)[:3, 0] for c in range(10)])
    for split in ("train", "test"):
        for n, i in enumerate(picks.tolist()):
            folder = tmp_path / split / f"class_{mnist_test.labels[i].item()}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist_test.images[i, 0].numpy()).save(folder / f"{n:03d}.png")
    loaded = load_split("mnist", "test", tmp_path)
    order = np.lexsort((np.arange(len(picks)), mnist_test.labels[picks].numpy()))
    assert torch.equal(loaded.labels, mnist_test.labels[picks][order])
    assert torch.equal(loaded.images, mnist_test.images[picks][order])


@pytest.fixture(scope="module")
def cifar_test(cifar_dir):
    return load_split("cifar10", "test", cifar_dir)


def test_cifar_jpeg_archive_and_its_cache(cifar_test, cifar_dir):
    assert cifar_test.images.shape == (10_000, 3, 32, 32)
    assert cifar_test.labels.bincount().tolist() == [1000] * 10
    means = cifar_test.images.float().mean((0, 2, 3)) / 255
    assert torch.allclose(means, torch.tensor([0.4942, 0.4851, 0.4504]), atol=2e-3)  # CIFAR-10 test means
    again = load_split("cifar10", "test", cifar_dir)
    assert torch.equal(again.images, cifar_test.images)


def test_cifar_python_batches(cifar_test, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows = cifar_test.images[:50].reshape(50, -1).numpy()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": cifar_test.labels[:50].tolist()}, f)
    loaded = load_split("cifar10", "train", tmp_path)
    assert loaded.images.shape == (250, 3, 32, 32)
    assert torch.equal(loaded.images[:50], cifar_test.images[:50])
    # a batch file that would import a class is refused
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": rows, b"labels": shutil.copy}, f)
    with pytest.raises(IrnetEdgeError, match="refusing to unpickle shutil.copy"):
        load_split("cifar10", "test", tmp_path)


def test_wrong_shape_is_refused(mnist_dir):
    with pytest.raises(IrnetEdgeError, match=r"holds images of shape \(1, 28, 28\); cifar10 needs \(3, 32, 32\)"):
        load_split("cifar10", "test", mnist_dir)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, 2, False, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for n in range(64):
        windows = [padded[n, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[n], w) for w in windows)
    assert not torch.equal(out, images)


def test_flip_mirrors_about_half_the_images():
    images = torch.randint(0, 256, (400, 1, 5, 5), dtype=torch.uint8)
    out = random_crop_flip(images, 0, True, torch.Generator().manual_seed(2))
    flipped = sum(torch.equal(o, i.flip(2)) for o, i in zip(out, images, strict=True))
    kept = sum(torch.equal(o, i) for o, i in zip(out, images, strict=True))
    assert flipped + kept == 400 and 150 < flipped < 250


def test_a_data_dir_that_is_a_file_or_missing_says_which(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(IrnetEdgeError, match="the data folder .*file is a file, not a folder; pass the folder"):
        load_split("mnist", "test", tmp_path / "file")
    with pytest.raises(IrnetEdgeError, match="the data folder .*missing does not exist; pass the folder"):
        load_split("mnist", "test", tmp_path / "missing")
