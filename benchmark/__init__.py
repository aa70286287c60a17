"""vdim-bench: a benchmark harness for self-supervised video representation learning."""
from benchmark import compat  # noqa: F401  (installs the pytorchvideo alias before anything else)

__version__ = "0.1.0"
