"""User nn.Modules that are not an nn.Sequential: traced with torch.fx into a spec (irnet_edge.nn.trace)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import InputNorm, IRConv2d, Residual, ShortcutA, build_model, spec_from_module, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from irnet_edge.nn.spec import describe_module

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


class LambdaLayer(nn.Module):
    """How the official IR-Net code writes the option-A shortcut."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


class BiRealBlock(nn.Module):
    """The zoo's resnet20 block as a user writes it: a shortcut around each binary conv."""

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1, self.bn1 = IRConv2d(cin, planes, 3, stride, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = IRConv2d(planes, planes, 3, 1, 1), nn.BatchNorm2d(planes)
        if stride == 1 and cin == planes:
            self.shortcut = nn.Sequential()
        elif downsample == "a":
            self.shortcut = ShortcutA(planes // 4)
        elif downsample == "lambda":
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4),
                                                        "constant", 0))
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn1(self.conv1(x)) + self.shortcut(x)
        out = F.hardtanh(out)
        out = self.bn2(self.conv2(out)) + out
        return F.hardtanh(out)


class ResNet20(nn.Module):
    def __init__(self, downsample="a", blocks=3):
        super().__init__()
        self.norm = InputNorm(MEAN, STD)
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        stages, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            stage = []
            for i in range(blocks):
                stage.append(BiRealBlock(cin, planes, stride if i == 0 else 1, downsample))
                cin = planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn, self.fc = nn.BatchNorm1d(64), nn.Linear(64, 10)

    def forward(self, x):
        x = F.hardtanh(self.bn1(self.conv1(self.norm(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return self.fc(self.bn(x))


class PlainBlock(nn.Module):
    """The official 1W/32A block, torchvision style: one ReLU module reused, `out += shortcut`."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = IRConv2d(cin, planes, 3, stride, 1, binary_act=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = IRConv2d(planes, planes, 3, 1, 1, binary_act=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = ShortcutA(planes // 4) if stride != 1 or cin != planes else nn.Identity()

    def forward(self, x):
        identity = self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet20W32A(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = InputNorm(MEAN, STD)
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(PlainBlock(cin, planes, stride if i == 0 else 1))
                cin = planes
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        x = self.blocks(self.bn1(self.conv1(self.norm(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _same_forward(module: nn.Module, shape, name="mine"):
    spec, state = describe_module(module, shape, name)
    built = build_model(spec)
    built.load_state_dict(state)  # strict: the keys are exactly the built model's
    x = torch.rand(4, *shape)
    with torch.no_grad():
        assert torch.equal(built.eval()(x), module.eval()(x))
    return spec, state


@pytest.mark.parametrize("downsample", ["a", "lambda"])
def test_a_plain_pytorch_resnet20_is_the_zoos_resnet20(downsample):
    user = _randomised(ResNet20(downsample))
    spec, state = _same_forward(user, (3, 32, 32), "resnet20")
    assert spec == zoo_spec("resnet20", 3, 32, 10, MEAN, STD)
    assert torch.equal(state["4.body.0.weight"], user.layer1[0].conv1.weight)
    assert torch.equal(state["6.body.1.running_var"], user.layer1[0].bn2.running_var)
    assert torch.equal(state["42.running_mean"], user.bn.running_mean)
    assert spec_from_module(user, (3, 32, 32), "resnet20") == spec


def test_a_full_precision_1x1_downsample_shortcut():
    user = _randomised(ResNet20("conv", blocks=1), seed=1)
    spec, state = _same_forward(user, (3, 32, 32))
    downsample = spec["layers"][8]
    assert [n["type"] for n in downsample["shortcut"]] == ["conv2d", "batchnorm2d"]
    assert downsample["shortcut"][0]["kernel_size"] == 1 and downsample["shortcut"][0]["stride"] == 2
    assert torch.equal(state["8.shortcut.0.weight"], user.layer2[0].shortcut[0].weight)


def test_torchvision_style_blocks_with_inplace_relu_and_augmented_add():
    user = _randomised(ResNet20W32A(), seed=2)
    spec, _ = _same_forward(user, (3, 32, 32), "resnet20_1w32a")
    assert spec == zoo_spec("resnet20_1w32a", 3, 32, 10, MEAN, STD)


def test_the_zoos_own_modules_inside_a_custom_module():
    zoo = _randomised(build_model(zoo_spec("resnet18", 3, 8, 10, MEAN, STD)), seed=3)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = zoo

        def forward(self, x):
            return self.net(x)

    spec, state = _same_forward(Wrapper(), (3, 8, 8), "resnet18")
    assert spec == zoo_spec("resnet18", 3, 8, 10, MEAN, STD)
    assert list(state) == list(zoo.state_dict())


def test_the_spec_and_state_travel_in_a_checkpoint_and_export(tmp_path):
    from irnet_edge.ir import export, reference

    user = _randomised(ResNet20("a", blocks=1), seed=4)
    spec, state = describe_module(user, (3, 32, 32), "r8")
    save_checkpoint(Checkpoint(spec=spec, state_dict=state, ede={"k": 1.0, "t": 1.0}), tmp_path / "m.pt")
    ckpt = load_checkpoint(tmp_path / "m.pt")
    images = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    x = images.permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        assert torch.equal(ckpt.build()(x), user(x))
        expected = user(x)
    logits = reference.run(export(ckpt), images)
    assert torch.allclose(logits, expected, atol=1e-3), (logits - expected).abs().max()


class Nested(nn.Module):
    """A residual inside a residual's body, and irnet_edge's Residual module used directly."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardtanh())
        self.a, self.b = IRConv2d(8, 8, 3, padding=1), IRConv2d(8, 8, 3, padding=1)
        self.bn_a, self.bn_b = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.block = Residual(nn.Sequential(IRConv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)), nn.Sequential())
        self.fc = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):  # x: 1x16x16
        x = self.stem(x)
        inner = F.hardtanh(self.bn_a(self.a(x)))
        inner = torch.add(self.bn_b(self.b(inner)), inner)
        x = F.max_pool2d(x + inner, 3, 2, 1)
        x = F.relu(self.block(F.avg_pool2d(x, 2, count_include_pad=False)))
        return self.fc(x.reshape(x.shape[0], -1))


def test_nested_residuals_and_functional_pooling():
    spec, _ = _same_forward(_randomised(Nested(), seed=5), (1, 16, 16))
    outer = spec["layers"][3]
    assert outer["type"] == "residual" and outer["shortcut"] == []
    assert [n["type"] for n in outer["body"]] == ["irconv2d", "batchnorm2d", "hardtanh", "residual"]
    assert [n["type"] for n in spec["layers"][4:]] == ["maxpool2d", "avgpool2d", "residual", "relu", "flatten",
                                                       "linear"]
    assert spec["layers"][4] == {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}
    assert spec["layers"][5] == {"type": "avgpool2d", "kernel_size": 2, "stride": 2, "count_include_pad": False}


def _refused(module, shape=(1, 8, 8)):
    with pytest.raises(IrnetEdgeError) as info:
        describe_module(module, shape)
    message = str(info.value)
    assert "\n" not in message
    return message


class _Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.other = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 2)

    def head(self, x):
        return self.fc(torch.flatten(x, 1))


def test_data_dependent_control_flow_is_named():
    class Branchy(_Stem):
        def forward(self, x):
            y = self.conv(x)
            if y.sum() > 0:
                y = F.relu(y)
            return self.head(y)

    message = _refused(Branchy())
    assert "Branchy: node gt (operator.gt) decides an if, a loop or an assert" in message
    assert "data-dependent control flow" in message


def test_concatenation_and_products_are_named():
    class Cat(_Stem):
        def forward(self, x):
            return self.head(torch.cat([self.conv(x), self.other(x)], 1))

    class Mul(_Stem):
        def forward(self, x):
            return self.head(self.conv(x) * self.other(x))

    assert "node cat (torch.cat) is not supported; supported: modules" in _refused(Cat())
    assert "node mul (operator.mul) is not supported" in _refused(Mul())


def test_an_unsupported_module_is_named_by_its_path():
    user = ResNet20("a", blocks=1)
    user.layer1[0].bn1 = nn.Sequential(nn.BatchNorm2d(16), nn.GELU())
    message = _refused(user, (3, 32, 32))
    assert message.startswith("ResNet20: node layer1.0.bn1.1 (GELU) is not supported; supported: modules ")


def test_graphs_a_residual_node_cannot_express_are_named():
    class ThreeWay(_Stem):
        def forward(self, x):
            y = self.conv(x)
            return self.head(F.relu(y) + F.hardtanh(y) + y)

    class Crossed(_Stem):
        def __init__(self):
            super().__init__()
            self.c3 = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            a, b = self.conv(x), self.other(x)
            return self.head(self.c3(a) + b + a)

    class Doubled(_Stem):
        def forward(self, x):
            y = self.conv(x)
            return self.head(y + y)

    assert "node conv (Conv2d) is used by 3 consumers (relu (torch.nn.functional.relu), hardtanh " \
           "(torch.nn.functional.hardtanh), add_1 (operator.add))" in _refused(ThreeWay())
    assert "node conv (Conv2d) forks into branches that end in different adds (add (operator.add), " \
           "add_1 (operator.add))" in _refused(Crossed())
    assert "node add (operator.add) adds a tensor to itself" in _refused(Doubled())


def test_layer_arguments_and_rules_are_named():
    class Bounds(_Stem):
        def forward(self, x):
            return self.head(F.hardtanh(self.conv(x), 0.0, 1.0))

    class Reshape(_Stem):
        def forward(self, x):
            return self.fc(self.conv(x).view(-1, 256))

    class ReluBeforeBinary(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.binary = nn.Conv2d(1, 4, 3, padding=1), IRConv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 2)

        def forward(self, x):
            return self.fc(self.binary(F.relu(self.conv(x))).flatten(1))

    class Sliced(_Stem):
        def forward(self, x):
            return self.head(F.pad(self.conv(x)[:, :2], (0, 0, 0, 0, 1, 1)))

    class InPlace(_Stem):
        def forward(self, x):
            y = self.conv(x)
            return self.head(self.other(x) + F.relu(y, inplace=True) + y)

    class Unassigned(_Stem):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            y = self.conv(x)
            self.relu(y)
            return self.head(y)

    assert "node hardtanh (torch.nn.functional.hardtanh) cannot be a hardtanh layer: min_val must be -1" \
        in _refused(Bounds())
    assert "node view (Tensor.view) reshapes to something other than (batch, -1)" in _refused(Reshape())
    assert "node binary (IRConv2d) binarizes its input, but node relu (torch.nn.functional.relu) makes that " \
           "input never negative" in _refused(ReluBeforeBinary())
    assert "node getitem (operator.getitem) indexes or slices a tensor" in _refused(Sliced())
    assert "node relu (torch.nn.functional.relu) overwrites its input in place" in _refused(InPlace())
    assert "node relu (ReLU) overwrites its input in place and nothing uses its result" in _refused(Unassigned())


def test_a_sequential_is_described_as_before():
    seq = _randomised(nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                    nn.Hardtanh(), IRConv2d(4, 8, 3, padding=1), nn.MaxPool2d(2),
                                    nn.BatchNorm2d(8), nn.Hardtanh(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3)))
    spec, state = describe_module(seq, (1, 8, 8), "seq")
    assert spec == spec_from_module(seq, (1, 8, 8), "seq")
    assert list(state) == list(seq.state_dict())
    assert all(torch.equal(state[k], v) and state[k] is not v for k, v in seq.state_dict().items())
    with pytest.raises(IrnetEdgeError, match="GELU cannot be saved as a spec; supported: input_norm"):
        describe_module(nn.Sequential(nn.Flatten(), nn.GELU(), nn.Linear(4, 2)), (1, 2, 2))


def test_a_sequential_holding_blocks_of_the_users_own_is_traced():
    seq = _randomised(nn.Sequential(InputNorm(MEAN, STD), nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16),
                                    nn.Hardtanh(), BiRealBlock(16, 32, 2, "a"), nn.AdaptiveAvgPool2d(1),
                                    nn.Flatten(), nn.Linear(32, 10)), seed=6)
    spec, state = _same_forward(seq, (3, 8, 8))
    assert [n["type"] for n in spec["layers"][4:8]] == ["residual", "hardtanh", "residual", "hardtanh"]
    assert spec["layers"][4]["shortcut"] == [{"type": "shortcut_a", "pad": 8}]
    assert torch.equal(state["6.body.0.weight"], seq[4].conv2.weight)


def test_convert_takes_a_sequential_end_to_end():
    import irnet_edge

    seq = _randomised(nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                    nn.Hardtanh(), IRConv2d(4, 8, 3, padding=1), nn.MaxPool2d(2),
                                    nn.BatchNorm2d(8), nn.Hardtanh(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3)))
    model = irnet_edge.convert(seq, input_shape=(1, 8, 8), name="seq")
    assert model.checkpoint.spec == spec_from_module(seq, (1, 8, 8), "seq")
    images = torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8)
    with torch.no_grad():
        expected = seq(images.permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(torch.as_tensor(model.reference(images.numpy())), expected, atol=1e-4)


def test_a_sequential_with_dropout_converts_like_one_without():
    """Dropout computes nothing at inference: inside an nn.Sequential, as inside a traced module, it is dropped."""
    torch.manual_seed(0)
    body = [nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Hardtanh(), nn.Flatten(), nn.Linear(2704, 10)]
    with_dropout = nn.Sequential(InputNorm([0.5], [0.25]), *body[:3], nn.Dropout(0.5), *body[3:]).eval()
    plain = nn.Sequential(InputNorm([0.5], [0.25]), *body).eval()
    spec, state = describe_module(with_dropout, (1, 28, 28))
    assert spec["layers"] == spec_from_module(plain, (1, 28, 28))["layers"]
    assert sorted(state) == sorted(plain.state_dict())
