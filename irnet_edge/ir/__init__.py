"""The deployment graph, export from a checkpoint, and the bit-exact reference executor."""
from .export import export
from .graph import Graph, Op, Tensor

__all__ = ["Graph", "Op", "Tensor", "export"]
