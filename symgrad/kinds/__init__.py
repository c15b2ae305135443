"""Tensor kinds (``base.py``): importing this package registers the built-in ones."""

from . import (  # noqa: F401 (registers the kinds)
    attention,
    conv,
    dropout,
    elementwise,
    embedding,
    norm,
    pool,
    products,
    reductions,
    rowwise,
    softmax,
    tokens,
)
from .base import KINDS, Kind, lowering_kind, register

__all__ = ["KINDS", "Kind", "lowering_kind", "register"]
