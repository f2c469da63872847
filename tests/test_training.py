"""Real training on real MNIST (a few thousand images, seconds on two cores)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.train import TrainConfig, train
from irnet_edge.train.ede import EDESchedule


def _config(mnist_dir, **kw):
    return TrainConfig(**{"arch": "mcu_m0", "dataset": "mnist", "data_dir": str(mnist_dir), "epochs": 2,
                          "train_limit": 2048, **kw})


def test_short_real_training_clearly_beats_chance(mnist_dir, tmp_path):
    metrics = train(_config(mnist_dir, epochs=1, train_limit=6000), tmp_path, progress=False, log=lambda s: None)
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1; the full 10k test set is used
    assert metrics["test_samples"] == 10_000
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["arch"] == "mcu_m0" and saved["dataset"] == "mnist" and saved["epochs"] == 1
    assert saved["history"][0]["test_accuracy"] == saved["test_accuracy"]
    png = (tmp_path / "training_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_checkpoint_round_trip_restores_model_and_ede(mnist_dir, tmp_path):
    train(_config(mnist_dir, epochs=3), tmp_path, progress=False, log=lambda s: None)
    ckpt = load_checkpoint(tmp_path / "model.pt")
    k, t = EDESchedule(0.1).at(2, 3)  # the last epoch's values
    assert (ckpt.ede["k"], ckpt.ede["t"]) == pytest.approx((k, t))
    model = ckpt.build()
    assert all((m.k, m.t) == (ckpt.ede["k"], ckpt.ede["t"]) for m in model.modules() if hasattr(m, "binary_act"))
    assert ckpt.config["train_config"]["seed"] == 0 and ckpt.package_version
    assert len(ckpt.sha256) == 64
    for name, value in model.state_dict().items():
        assert torch.equal(value, ckpt.state_dict[name])


def test_same_seed_same_weights_and_resume_matches_an_uninterrupted_run(mnist_dir, tmp_path):
    quiet = {"progress": False, "log": lambda s: None}
    train(_config(mnist_dir), tmp_path / "straight", **quiet)
    train(_config(mnist_dir), tmp_path / "again", **quiet)
    train(_config(mnist_dir), tmp_path / "split", stop_after=1, **quiet)
    assert load_checkpoint(tmp_path / "split" / "model.pt").train_state["epoch"] == 1
    train(_config(mnist_dir), tmp_path / "split", resume=True, **quiet)
    straight = load_checkpoint(tmp_path / "straight" / "model.pt")
    for other in ("again", "split"):
        ckpt = load_checkpoint(tmp_path / other / "model.pt")
        assert ckpt.ede == straight.ede
        for name, value in straight.state_dict.items():
            assert torch.equal(value, ckpt.state_dict[name]), (other, name)
    metrics = json.loads((tmp_path / "split" / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_existing_run_is_not_overwritten_without_force(mnist_dir, tmp_path):
    train(_config(mnist_dir, epochs=1), tmp_path, progress=False, log=lambda s: None)
    with pytest.raises(IrnetEdgeError, match="already holds a training run; pass --resume"):
        train(_config(mnist_dir, epochs=1), tmp_path, progress=False)
    with pytest.raises(IrnetEdgeError, match="--seed differ"):
        train(_config(mnist_dir, seed=3), tmp_path, resume=True, explicit={"seed"}, progress=False)


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(IrnetEdgeError, match="does not exist; start a new run without --resume"):
        train(TrainConfig(), tmp_path, resume=True)


def test_two_process_ddp_run_on_cpu(mnist_dir, tmp_path):
    """torchrun with two gloo processes: the multi-GPU path, exercised on CPU."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "irnet_edge.cli", "train", "--arch", "mcu_m0", "--dataset", "mnist", "--data-dir",
           str(mnist_dir), "--epochs", "1", "--batch-size", "128", "--train-limit", "4096", "--out", str(tmp_path),
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["test_accuracy"] > 0.3
