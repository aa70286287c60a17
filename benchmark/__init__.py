"""vdim-bench: a benchmark harness for self-supervised video representation learning."""
from benchmark import compat  # noqa: F401  (installs the pytorchvideo alias before anything else)

def _version() -> str:
    """The installed distribution's version (pyproject.toml's ``version``)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("vdim-bench")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()
