"""Tensor kinds (``base.py``): importing this package registers the built-in ones."""

from . import attention, conv, elementwise, embedding, norm, pool, products, reductions, rowwise, softmax  # noqa: F401 (registers the kinds)
from .base import KINDS, Kind, lowering_kind, register

__all__ = ["KINDS", "Kind", "lowering_kind", "register"]
