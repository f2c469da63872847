"""Every bad input gets one clear message naming the problem and the fix."""
import os
import pickle

import pytest
import torch

from irnet_edge.data import load_split
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from irnet_edge.train import TrainConfig, train


@pytest.fixture
def checkpoint_file(tmp_path):
    spec = zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25])
    model = build_model(spec)
    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0}), path)
    return path


def test_truncated_checkpoint(checkpoint_file):
    data = checkpoint_file.read_bytes()
    checkpoint_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IrnetEdgeError, match="not a readable checkpoint \\(truncated or corrupt"):
        load_checkpoint(checkpoint_file)


def test_garbage_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(IrnetEdgeError, match="not a readable checkpoint"):
        load_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "irnet-edge-checkpoint", "payload": _Exploit()}, path)
    with pytest.raises(IrnetEdgeError, match="holds objects that could run code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    # a plain pickle (not a torch zip file) is refused too
    path.write_bytes(pickle.dumps(_Exploit(), protocol=2))
    with pytest.raises(IrnetEdgeError):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(IrnetEdgeError, match="not an irnet-edge checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(IrnetEdgeError, match="does not exist; train one"):
        load_checkpoint(tmp_path / "nope.pt")


def test_weights_that_do_not_match_the_spec(checkpoint_file):
    ckpt = load_checkpoint(checkpoint_file)
    ckpt.state_dict.pop(next(iter(ckpt.state_dict)))
    with pytest.raises(IrnetEdgeError, match="do not match its architecture"):
        ckpt.build()


def test_unknown_arch(tmp_path):
    with pytest.raises(IrnetEdgeError, match="unknown architecture 'resnet9000'; choose one of: mcu_m4"):
        train(TrainConfig(arch="resnet9000"), tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_data_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(IrnetEdgeError) as err:
        load_split("cifar10", "train")
    message = str(err.value)
    assert "not available offline and could not be downloaded" in message
    assert str(tmp_path / "cache" / "irnet-edge" / "data" / "cifar10") in message
    assert "--data-dir" in message and "data_batch_1" in message


def test_empty_data_dir_names_the_layouts(tmp_path):
    with pytest.raises(IrnetEdgeError, match="no mnist train data in .*idx files"):
        load_split("mnist", "train", tmp_path)


def test_training_without_data_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(IrnetEdgeError, match="cifar10 is not available offline"):
        train(TrainConfig(arch="resnet20", dataset="cifar10"), out)
    assert not out.exists()
