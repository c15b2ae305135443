"""symgrad: gradients you can read, training at native speed."""

from .api import explain, grad
from .errors import SymgradError

__all__ = ["SymgradError", "explain", "grad"]
__version__ = "0.1.0"
