"""irnet-edge: train IR-Net binary neural networks and deploy them as bit-exact C.

The Python API (``convert``, ``CompiledModel``, ``evaluate``) lives in irnet_edge.api and is imported on first
use, so ``import irnet_edge`` stays light (no torch); so is ``import_official`` (models trained with the official
IR-Net code), from irnet_edge.official_import.
"""

__version__ = "0.3.0"

__all__ = ["CompiledModel", "__version__", "convert", "evaluate", "import_official"]

_API = ("CompiledModel", "convert", "evaluate")
_IMPORT = ("import_official",)


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _IMPORT:
        from . import official_import

        return getattr(official_import, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API, *_IMPORT])
