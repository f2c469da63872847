import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def dataset_dir(name: str) -> Path:
    """Real data for tests: IRNET_EDGE_TEST_DATA/<name>, else ../shared/data/<name>. Missing data fails
    the test with the fix: a skipped check would prove nothing."""
    root = Path(os.environ.get("IRNET_EDGE_TEST_DATA", SHARED_DATA))
    folder = root / name
    if not folder.is_dir():
        pytest.fail(f"test data {folder} is missing: set IRNET_EDGE_TEST_DATA to a folder holding {name}/")
    return folder


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return dataset_dir("mnist")


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    return dataset_dir("cifar10-jpg")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache and no network downloads, so results never depend on the machine. The
    instruction counter (a QEMU plugin built from source, `make setup` prepares it) stays where it is."""
    from irnet_edge.bench.plugin import plugin_dir

    monkeypatch.setenv("IRNET_EDGE_QEMU_PLUGIN_DIR", str(plugin_dir()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("IRNET_EDGE_OFFLINE", "1")
    monkeypatch.delenv("IRNET_EDGE_DATA", raising=False)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def trained_mcu(mnist_dir, tmp_path_factory):
    """mcu_m4 and mcu_m0 trained briefly on real MNIST: real weights, real BN statistics."""
    from irnet_edge.train import TrainConfig, train

    out = {}
    for arch in ("mcu_m4", "mcu_m0"):
        folder = tmp_path_factory.mktemp(arch)
        train(TrainConfig(arch=arch, dataset="mnist", data_dir=str(mnist_dir), epochs=1, train_limit=4000),
              folder, progress=False, log=lambda s: None)
        out[arch] = folder / "model.pt"
    return out
