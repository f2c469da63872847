"""How the imported model's deployed arithmetic agrees with the official IR-Net forward on real CIFAR-10 images.

1. Trains the official CIFAR ResNet-20 1W/1A (tests/official_models.py, an independent re-implementation of the
   official class: torch.sign forward, EDE backward) on the CPU for a few hundred steps with the official recipe
   compressed into them (SGD 0.1 momentum 0.9, weight decay 1e-4, cosine; EDE t from 1e-3 to 10; crop and flip;
   ImageNet normalisation), so the weights and BatchNorm statistics are trained ones, not random.
2. Saves its state_dict as the official trainer does ({'state_dict': DataParallel's module.* keys}) and imports it
   with irnet_edge.import_official, as `irnet-edge import` does.
3. On the CIFAR-10 test images: top-1 of the official forward (torch.sign, float) against the reference executor
   (irnet_edge.convert(checkpoint).reference: the deployed arithmetic, bit for bit what the C computes), and how
   often the official forward met an exact 0 that torch.sign maps to 0 (irnet-edge: +1).

    .venv/bin/python benchmarks/official_agreement.py --data-dir ../shared/data/cifar10-jpg --steps 300

Writes benchmarks/results/official_agreement.json.
"""
import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from irnet_edge import convert, import_official  # noqa: E402
from irnet_edge.data import load_split  # noqa: E402
from irnet_edge.data.catalog import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from irnet_edge.train.augment import random_crop_flip  # noqa: E402
from tests.official_models import IRConv2d, official_model  # noqa: E402

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalized(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> the official transforms' ToTensor + Normalize(ImageNet)."""
    return (pixels.float() / 255 - MEAN) / STD


def train(model, images, labels, steps: int, batch: int, seed: int, log) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    binary = [m for m in model.modules() if isinstance(m, IRConv2d)]
    started = time.time()
    model.train()
    for step in range(steps):
        t = 1e-3 * math.pow(10.0, (step / steps) * math.log10(10 / 1e-3))  # the official Log_UP schedule
        for m in binary:
            m.k, m.t = torch.tensor([max(1 / t, 1.0)]), torch.tensor([t])
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, labels.shape[0], (batch,), generator=generator)
        x = normalized(random_crop_flip(images[idx], 4, True, generator))
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps}: loss {loss.item():.3f} ({time.time() - started:.0f} s)")
    model.eval()


def count_zeros(model, x) -> dict:
    """Exact zeros the official forward binarizes with torch.sign (to 0; irnet-edge: +1): in the inputs of the
    binary convs (padding excluded: both pad with 0) and in their centred weights."""
    counts = {"activations": 0, "activation_values": 0, "weights": 0}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: counts.__setitem__(
        "activations", counts["activations"] + int((inp[0] == 0).sum())) or counts.__setitem__(
        "activation_values", counts["activation_values"] + inp[0].numel()))
        for m in model.modules() if isinstance(m, IRConv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for m in model.modules():
        if isinstance(m, IRConv2d):
            w = m.weight.detach()
            counts["weights"] += int((w - w.view(w.shape[0], -1).mean(-1).view(-1, 1, 1, 1) == 0).sum())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "cifar10-jpg"))
    parser.add_argument("--steps", type=int, default=300, help="training steps of the official model (batch 128)")
    parser.add_argument("--samples", type=int, default=10000, help="CIFAR-10 test images compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "official_agreement.json"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train_set = load_split("cifar10", "train", args.data_dir)
    test_set = load_split("cifar10", "test", args.data_dir)
    official = official_model("resnet20")
    started = time.time()
    train(official, train_set.images, train_set.labels, args.steps, 128, args.seed, print)
    train_seconds = time.time() - started

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.th"
        torch.save({"state_dict": {f"module.{k}": v for k, v in official.state_dict().items()}, "best_prec1": 0.0},
                   source)
        ckpt = import_official(source, "resnet20", out=Path(tmp) / "model.pt")
    model = convert(ckpt)

    n = min(args.samples, len(test_set))
    pixels, labels = test_set.images[:n], test_set.labels[:n]
    with torch.no_grad():
        theirs = torch.cat([official(normalized(pixels[i:i + 500])) for i in range(0, n, 500)]).argmax(1)
        ours_float = torch.cat([ckpt.build()(pixels[i:i + 500].float() / 255) for i in range(0, n, 500)]).argmax(1)
    started = time.time()
    reference = torch.from_numpy(model.reference(pixels.permute(0, 2, 3, 1).contiguous())).argmax(1)
    reference_seconds = time.time() - started
    zeros = count_zeros(official, normalized(pixels[:min(n, 1000)]))
    result = {
        "model": "official CIFAR ResNet-20 1W/1A (tests/official_models.py), trained here",
        "train_steps": args.steps, "train_batch": 128, "train_seconds": round(train_seconds, 1),
        "test_images": n,
        "official_accuracy": (theirs == labels).float().mean().item(),
        "reference_accuracy": (reference == labels).float().mean().item(),
        "top1_agreement_official_vs_reference": (theirs == reference).float().mean().item(),
        "top1_agreement_official_vs_imported_float": (theirs == ours_float).float().mean().item(),
        "disagreements": int((theirs != reference).sum()),
        "exact_zeros_in_first_1000_images": zeros,
        "reference_seconds": round(reference_seconds, 1),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
