"""Building realistic (calibrated, randomised) checkpoints without training, for export tests."""
import torch
from torch import nn

from irnet_edge.nn import build_model, spec_from_module
from irnet_edge.nn.checkpoint import Checkpoint, save_checkpoint
from irnet_edge.nn.layers import set_ede


def calibrate(model: nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
    """Real BatchNorm statistics from images, then random affine parameters including negative and
    near-zero scales (the cases that flip filters and pin thresholds)."""
    set_ede(model, 1.0, 1.0)
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for start in range(0, images.shape[0], 64):
            model(images[start:start + 64].float() / 255.0)
    for bn in bns:
        n = bn.num_features
        gamma = torch.rand(n, generator=generator) * 1.5 + 0.25
        gamma[torch.rand(n, generator=generator) < 0.3] *= -1
        gamma[torch.rand(n, generator=generator) < 0.05] = 1e-9
        bn.weight.data = gamma
        bn.bias.data = torch.randn(n, generator=generator) * 0.5
    model.eval()


def checkpoint_of(model: nn.Module, spec: dict, dataset: str, path) -> Checkpoint:
    save_checkpoint(Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0},
                               config={"dataset": dataset, "arch": spec["name"]}), path)
    from irnet_edge.nn.checkpoint import load_checkpoint

    return load_checkpoint(path)


def calibrated(spec_or_module, input_shape, images, dataset, path, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if isinstance(spec_or_module, dict):
        spec = spec_or_module
        model = build_model(spec)
    else:
        model = spec_or_module
        spec = spec_from_module(model, input_shape, "grid")
    calibrate(model, images, generator)
    return checkpoint_of(model, spec, dataset, path)


def briefly_trained(spec: dict, images: torch.Tensor, labels: torch.Tensor, path, steps: int = 40,
                    batch: int = 64, seed: int = 0):
    """A few SGD steps on real images: real weights and BatchNorm statistics in seconds, so that logits
    are decisive rather than the near-ties of a random network."""
    torch.manual_seed(seed)
    model = build_model(spec)
    set_ede(model, 1.0, 1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch,))
        loss = nn.functional.cross_entropy(model(images[idx].float() / 255.0), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return checkpoint_of(model, spec, "cifar10", path)
