"""irnet-edge: train IR-Net binary neural networks and deploy them as bit-exact C.

The Python API (``convert``, ``CompiledModel``) lives in irnet_edge.api and is imported on first use, so
``import irnet_edge`` stays light (no torch).
"""

__version__ = "0.2.0"

__all__ = ["CompiledModel", "__version__", "convert"]

_API = ("CompiledModel", "convert")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
