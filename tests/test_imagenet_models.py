"""The paper's ImageNet networks exported bit for bit (issue 12).

No ImageNet here: seeded weights with BatchNorm statistics calibrated on real images (CIFAR-10 test images
scaled up, nearest neighbour) are enough for exactness, and instruction counts do not depend on weights. The full
ResNet-18 runs on the host; on aarch64 and armv7 (qemu-user) a width-reduced twin with the same layer plan (7x7/2
stem, max-pool 3/2 padding 1, Bi-Real stages with stride-2 1x1 downsampling, FC) keeps the suite quick; the full
network's aarch64 run is benchmarks/imagenet_bench.py's, whose bench refuses to count logits that differ.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import irnet_edge
from irnet_edge.data import load_split
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint

from .helpers import calibrate

CHANNEL_FIELDS = ("in_channels", "out_channels", "num_features", "in_features")


def twin(spec: dict, divide: int, size: int) -> dict:
    """The same layer plan with every width divided by divide (the 3 input channels and the classes kept) and a
    size x size input."""
    spec = copy.deepcopy(spec)
    spec["name"] = f"{spec['name']}_twin"
    spec["input"].update(height=size, width=size)

    def shrink(layers):
        for layer in layers:
            for name in CHANNEL_FIELDS:
                if name in layer and not (name == "in_channels" and layer[name] == 3):
                    layer[name] //= divide
            for nested in ("body", "shortcut", "layers"):
                shrink(layer.get(nested, []))
    shrink(spec["layers"])
    return spec


def real_images(cifar_dir, n: int, size: int) -> torch.Tensor:
    """n CIFAR-10 test images as uint8 NCHW, scaled to size x size by nearest neighbour."""
    images = load_split("cifar10", "test", cifar_dir).images[:n].float()
    return F.interpolate(images, size=(size, size), mode="nearest").round().to(torch.uint8)


def compiled(spec: dict, images: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(spec)
    calibrate(model, images, torch.Generator().manual_seed(seed))
    ckpt = Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0},
                      config={"arch": spec["name"]})
    return irnet_edge.convert(ckpt), model


@pytest.fixture(scope="module")
def resnet18_twin(cifar_dir):
    images = real_images(cifar_dir, 16, 64)
    model, _ = compiled(twin(zoo_spec("resnet18_imagenet"), 4, 64), images[:8])
    return model, images[8:].permute(0, 2, 3, 1).contiguous().numpy()


def test_resnet18_imagenet_bit_exact_on_the_host(cifar_dir):
    images = real_images(cifar_dir, 6, 224)
    model, module = compiled(zoo_spec("resnet18_imagenet"), images[:4])
    assert model.input_shape == (3, 224, 224) and model.num_classes == 1000
    x = images[4:].permute(0, 2, 3, 1).contiguous().numpy()
    reference = model.reference(x)
    assert (model.predict(x).view(np.int32) == reference.view(np.int32)).all()
    with torch.no_grad():
        trained = module.eval()(images[4:].float() / 255).numpy()
    assert (trained.argmax(1) == reference.argmax(1)).all()  # the deployed arithmetic computes the same network


@pytest.mark.parametrize("target, isa", [("host", None), ("cortex-a", "aarch64"), ("cortex-a", "armv7")])
def test_resnet18_twin_bit_exact(resnet18_twin, target, isa):
    model, x = resnet18_twin
    result = model.verify(x, target=target, isa=isa)
    assert (result.samples, result.exact) == (len(x), len(x)), result.describe()


def test_resnet18_twin_keeps_the_layer_plan(resnet18_twin):
    model, _ = resnet18_twin
    kinds = [op.kind for op in model.graph.ops]
    assert kinds[:3] == ["normalize", "conv_f32", "maxpool_f32"]
    pool = model.graph.ops[2]
    assert (pool.attrs["k"], pool.attrs["stride"], pool.attrs["pad"]) == (3, 2, 1)
    assert kinds.count("bconv") == 16 and kinds.count("conv_f32") == 1 + 3 + 1  # stem, 1x1 downsamples, classifier


def test_resnet34_imagenet_exports_and_its_twin_is_bit_exact(cifar_dir):
    full = irnet_edge.convert(Checkpoint(spec=zoo_spec("resnet34_imagenet"),
                                         state_dict=build_model(zoo_spec("resnet34_imagenet")).state_dict(),
                                         ede={"k": 1.0, "t": 1.0}, config={"arch": "resnet34_imagenet"}))
    assert [op.kind for op in full.graph.ops].count("bconv") == 32
    images = real_images(cifar_dir, 10, 64)
    model, _ = compiled(twin(zoo_spec("resnet34_imagenet"), 8, 64), images[:8], seed=1)
    result = model.verify(images[8:].permute(0, 2, 3, 1).contiguous().numpy(), target="cortex-a", isa="aarch64")
    assert result.exact == result.samples == 2, result.describe()
