"""IR-Net layers, the model zoo, model specs and the checkpoint format."""
from .binarize import ede_sign, libra_pb, libra_scale, libra_standardize
from .layers import InputNorm, IRConv2d, IRLinear, Residual, ShortcutA, binary_layers, set_ede
from .spec import build_model, describe_module, spec_from_module
from .zoo import ARCHS, zoo_spec

__all__ = ["ARCHS", "IRConv2d", "IRLinear", "InputNorm", "Residual", "ShortcutA", "binary_layers",
           "build_model", "describe_module", "ede_sign", "libra_pb", "libra_scale", "libra_standardize", "set_ede",
           "spec_from_module", "zoo_spec"]
