"""Every error symgrad raises on bad input is a :class:`SymgradError` subclass.

Each message names the problem *and* the fix, so a user never has to read our source.
"""

from __future__ import annotations


class SymgradError(Exception):
    """Base class of all symgrad errors."""


class UnsupportedFunctionError(SymgradError, ValueError):
    """The expression uses a function symgrad cannot differentiate or compile."""


class UnboundSymbolError(SymgradError, ValueError):
    """A free symbol is neither a parameter (``wrt``) nor data."""


class ShapeError(SymgradError, ValueError):
    """Shapes of matrices, parameters or data arrays disagree."""


class NonScalarLossError(SymgradError, ValueError):
    """A loss must be a scalar expression."""


class DataError(SymgradError, ValueError):
    """Data arrays are inconsistent: lengths disagree, or they hold NaN/Inf."""


class AssumptionError(DataError):
    """A value breaks what its symbol is declared to be (positive=True, integer=True, ...)."""


class DtypeError(SymgradError, TypeError):
    """An array has a dtype the compiled function was not built for."""


class ParseError(SymgradError, ValueError):
    """A string expression could not be parsed safely."""


class CacheError(SymgradError, RuntimeError):
    """The on-disk code cache could not be used (and could not be rebuilt)."""


class DivergenceError(SymgradError, FloatingPointError):
    """Training produced a non-finite loss; the parameters of the last whole epoch were kept."""


class NonFiniteError(SymgradError, FloatingPointError):
    """A compiled formula's value or gradient is NaN or infinite (``compile(..., on_nonfinite='raise')``)."""


class UnsupportedModelError(SymgradError, NotImplementedError):
    """The model uses a structure symgrad does not support yet."""


class LossMismatchError(SymgradError, ValueError):
    """The loss does not fit the model's output: a sigmoid/softmax output fed to a loss on logits."""


class NamingError(SymgradError, ValueError):
    """A ``names=`` entry (or ``--name``) is invalid: its key matches no subexpression."""


class NameClashError(NamingError):
    """A name for the printout is already used by another quantity of the derivation."""


class OptionError(SymgradError, ValueError):
    """An option (reduction, backend, ...) is not one of the supported values."""


class TargetError(DataError):
    """The targets (Y) do not fit the loss: labels outside its range, or strings for a loss on numbers."""


class ModelFileError(SymgradError, ValueError):
    """A saved model file is corrupt, was not written by symgrad, or does not fit the model it meets."""


class MissingModelFileError(ModelFileError, FileNotFoundError):
    """No model file at the path given to ``sg.load`` (also a ``FileNotFoundError``, as Python's)."""


class DistributedError(SymgradError, RuntimeError):
    """A Dask computation failed (a worker died more often than Dask retries, or no client runs)."""
