"""The bad-input catalogue (issue 19): every public entry point, called wrongly, raises the
:class:`SymgradError` subclass that names the problem, and its message names a fix ("Fix").

Each case records the (entry point, parameter) it exercises; ``test_every_public_parameter_has_a_case``
enumerates the public signatures with ``inspect.signature`` (and the command line's options), so a new
public argument without a bad-input case here fails.

Cases whose defect lives in a module this catalogue's fixes could not touch are marked
``xfail(strict=True)`` with the place to fix; once fixed there, the strict xfail fails and the mark goes.
Everything compiles with ``backend="python"`` (no Numba compile) and reuses a few tiny models.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import re
import tempfile
from typing import NamedTuple

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import (
    DataError,
    DtypeError,
    MissingModelFileError,
    ModelFileError,
    NameClashError,
    NamingError,
    NonScalarLossError,
    OptionError,
    ParseError,
    ShapeError,
    SymgradError,
    TargetError,
    UnboundSymbolError,
    UnsupportedFunctionError,
    UnsupportedModelError,
)
from symgrad.lang.schedules import OptimizerConfigError

nn, opt = sg.nn, sg.optim
a, b, x, y = sp.symbols("a b x y", real=True)
p, q = sp.Symbol("p", positive=True), sp.Symbol("q", positive=True)
X = np.random.default_rng(0).normal(size=(16, 2))
Y = X[:, 0] - X[:, 1]
PY = {"backend": "python", "epochs": 1}
ONES = np.ones(4)
Z3, Y3 = sp.MatrixSymbol("z", 3, 1), sp.MatrixSymbol("y", 3, 1)


# -- the few compiled and trained objects every case shares (built once, on first use) ---------

@functools.cache
def LM():
    """A language model: vocabulary 5, d 4, one head and layer, context 2."""
    return nn.Transformer(5, 4, 1, 1, 2)


@functools.cache
def F():
    """A formula model: two parameters, one data symbol."""
    return sg.compile(a * x + b, [a, b], [x], backend="python")


@functools.cache
def FP():
    """A formula with a declared-positive parameter and data."""
    return sg.compile(sp.log(p) * q, [p], [q], backend="python")


@functools.cache
def PW():
    return sg.compile(a * x, [a], [x], reduction="none", backend="python")


@functools.cache
def R():
    return sg.compile_residuals(a * x + b - y, [a, b], [x, y], backend="python")


@functools.cache
def NET():
    return nn.MLP([2, 3, 1])


@functools.cache
def T():
    """A matrix (tensor) model: MLP([2, 3, 1]) under mse; parameters W1 (3, 2), b1 (3, 1), W2 (1, 3), b2 (1, 1)."""
    net, t = NET(), sp.MatrixSymbol("y", 1, 1)
    return sg.compile(sg.losses.mse(net.expr, t), net.params, [net.x, t], backend="python")


def TH():
    return [q.copy() for q in NET().init_params(0)]


@functools.cache
def M():
    return sg.fit(NET(), "mse", X, Y, **PY)


@functools.cache
def SAVED():
    path = os.path.join(tempfile.mkdtemp(), "model.npz")
    M().save(path)
    return path


def masked(arr, at=0):
    m = np.zeros(arr.shape, dtype=bool)
    m.flat[at] = True
    return np.ma.array(arr, mask=m)


def nan_at(arr, at=1):
    arr = np.array(arr, dtype=float)
    arr.flat[at] = np.nan
    return arr


def cli(*argv):
    """The command line as main() runs it, but letting the SymgradError out (main prints it, exit 2)."""
    from symgrad.__main__ import _parser, _protect_negative

    args = _parser().parse_args(_protect_negative(list(argv)))
    return args.run(args)


def junk_file(text):
    path = os.path.join(tempfile.mkdtemp(), "model.npz")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def bare_npz():
    path = os.path.join(tempfile.mkdtemp(), "model.npz")
    np.savez(path, W1=np.ones((3, 2)))
    return path


# -- the catalogue ------------------------------------------------------------------------------

class Case(NamedTuple):
    entry: str       # the public entry point, as the meta-test names it
    param: str       # the parameter of that entry point the bad call gets wrong
    call: object     # performs the bad call
    error: type      # the SymgradError subclass it must raise
    match: str       # a regex its message must match (besides "Fix")
    xfail: str = ""  # a known defect outside the files this catalogue's fixes may touch


def C(entry, param, call, error, match, xfail=""):
    return Case(entry, param, call, error, match, xfail)


SMALL_SEQ = (1, 6, 6)

CASES = [
    # sg.grad
    C("grad", "expr", lambda: sg.grad("x**2", x), NonScalarLossError, "SymPy scalar expression"),
    C("grad", "expr", lambda: sg.grad(None, x), NonScalarLossError, "SymPy scalar expression"),
    C("grad", "expr", lambda: sg.grad(sp.Matrix([x, x]), x), NonScalarLossError, r"shape \(2, 1\)"),
    C("grad", "expr", lambda: sg.grad(sp.Function("f")(x), x), UnsupportedFunctionError, r"unsupported function f\(\)"),
    C("grad", "wrt", lambda: sg.grad(x**2, 2), SymgradError, "wrt must be a Symbol"),
    C("grad", "wrt", lambda: sg.grad(x**2, [2 * x]), SymgradError, "with respect to a Symbol"),
    C("grad", "wrt", lambda: sg.grad(x**2, None), SymgradError, "wrt must be a Symbol"),
    # sg.explain
    C("explain", "expr", lambda: sg.explain("sin(x)", x), NonScalarLossError, "SymPy scalar expression"),
    C("explain", "expr", lambda: sg.explain(sp.Function("g")(x), x), UnsupportedFunctionError, "unsupported function"),
    C("explain", "wrt", lambda: sg.explain(x**2, 3), SymgradError, "wrt must be a Symbol"),
    C("explain", "wrt", lambda: sg.explain(x**2, [x + 1]), SymgradError, "with respect to a Symbol"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={x: "t"}), NamingError, "is a variable"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={y: "t"}), NamingError, "not in the expression"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={x**2: "x"}), NameClashError, "already the variable"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names=["t"]), NamingError, "names must be a dict"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={x**2: "1t"}), NamingError, "'1t' is not a valid name"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={x**2: 3}), NamingError, "is not a name"),
    C("explain", "names", lambda: sg.explain(sp.sin(x**2), x, names={2.5: "t"}), NamingError, "names keys must be"),
    C("explain", "output", lambda: sg.explain(sp.sin(x**2), x, output="x"), NameClashError, "output='x'"),
    C("explain", "output", lambda: sg.explain(sp.sin(x**2), x, output=3), OptionError, "output=3"),
    C("explain", "at", lambda: sg.explain(sp.sin(x**2), x, at={y: 1}), OptionError, "not a variable"),
    C("explain", "at", lambda: sg.explain(sp.sin(x**2), x, at={x: "a"}), OptionError, "not a finite real number"),
    C("explain", "at", lambda: sg.explain(sp.sin(x**2), x, at=[1.0]), OptionError, "takes a dict"),
    C("explain", "textbook", lambda: sg.explain(sp.sin(x**2), x, textbook="yes"), OptionError, "textbook='yes'"),
    # sg.compile
    C("compile", "expr", lambda: sg.compile("a*x", [a], [x], backend="python"), NonScalarLossError, "SymPy scalar"),
    C("compile", "expr", lambda: sg.compile(sp.Matrix([a * x, x]), [a], [x], backend="python"), NonScalarLossError, "must be a scalar"),
    C("compile", "expr", lambda: sg.compile(sp.Function("f")(a * x), [a], [x], backend="python"), UnsupportedFunctionError, "unsupported function"),
    C("compile", "expr", lambda: sg.compile(sp.I * a * x, [a], [x], backend="python"), UnsupportedFunctionError, "not a finite real number"),
    C("compile", "expr", lambda: sg.compile(a * x + sp.oo, [a], [x], backend="python"), UnsupportedFunctionError, "not a finite real number"),
    C("compile", "expr", lambda: sg.compile(sp.Piecewise((a * x, x > 0)), [a], [x], backend="python"), UnsupportedFunctionError, "final"),
    C("compile", "wrt", lambda: sg.compile(a * x, [a, a], [x], backend="python"), UnboundSymbolError, "more than once in wrt"),
    C("compile", "wrt", lambda: sg.compile(a * x, "a", [x], backend="python"), UnboundSymbolError, "takes symbols"),
    C("compile", "wrt", lambda: sg.compile(a * x, [2 * a], [x], backend="python"), UnboundSymbolError, "not a symbol"),
    C("compile", "data", lambda: sg.compile(a * x, [a], [x, x], backend="python"), UnboundSymbolError, "more than once in data"),
    C("compile", "data", lambda: sg.compile(a * x, [a], 3, backend="python"), UnboundSymbolError, "takes symbols"),
    C("compile", "data", lambda: sg.compile(a * x, [a], [], backend="python"), UnboundSymbolError, "neither parameters"),
    C("compile", "data", lambda: sg.compile(a * x, [a], [a, x], backend="python"), UnboundSymbolError, "both in wrt and in data"),
    C("compile", "dtype", lambda: sg.compile(a * x, [a], [x], dtype="float16", backend="python"), DtypeError, "float16"),
    C("compile", "dtype", lambda: sg.compile(a * x, [a], [x], dtype=3, backend="python"), DtypeError, "dtype 3"),
    C("compile", "reduction", lambda: sg.compile(a * x, [a], [x], reduction="avg", backend="python"), OptionError, "'avg'"),
    C("compile", "parallel", lambda: sg.compile(a * x, [a], [x], parallel="yes", backend="python"), OptionError, "parallel='yes'"),
    C("compile", "backend", lambda: sg.compile(a * x, [a], [x], backend="cuda"), OptionError, "'cuda'"),
    C("compile", "on_nonfinite", lambda: sg.compile(a * x, [a], [x], on_nonfinite="loud", backend="python"), OptionError, "loud"),
    # sg.compile_residuals
    C("compile_residuals", "expr", lambda: sg.compile_residuals(sg.msum(sp.MatrixSymbol("w", 3, 1).T * sp.MatrixSymbol("X", 3, 1)),
                                                                [sp.MatrixSymbol("w", 3, 1)], [sp.MatrixSymbol("X", 3, 1)], backend="python"),
      SymgradError, "scalar formula"),
    C("compile_residuals", "expr", lambda: sg.compile_residuals(None, [a], [x], backend="python"), NonScalarLossError, "SymPy scalar"),
    C("compile_residuals", "wrt", lambda: sg.compile_residuals(a * x, [a, a], [x], backend="python"), UnboundSymbolError, "more than once"),
    C("compile_residuals", "wrt", lambda: sg.compile_residuals(a * x, 7, [x], backend="python"), UnboundSymbolError, "takes symbols"),
    C("compile_residuals", "data", lambda: sg.compile_residuals(a * x * y, [a], [x], backend="python"), UnboundSymbolError, "neither parameters"),
    C("compile_residuals", "dtype", lambda: sg.compile_residuals(a * x, [a], [x], dtype="int32", backend="python"), DtypeError, "int32"),
    C("compile_residuals", "backend", lambda: sg.compile_residuals(a * x, [a], [x], backend="c"), OptionError, "'c'"),
    C("compile_residuals", "on_nonfinite", lambda: sg.compile_residuals(a * x, [a], [x], on_nonfinite=1, backend="python"), OptionError, "on_nonfinite"),
    # CompiledFormula methods
    C("CompiledFormula.value", "theta", lambda: F().value([1.0], ONES), ShapeError, "theta has 1 entries; expected 2"),
    C("CompiledFormula.value", "theta", lambda: F().value([1.0, np.nan], ONES), DataError, "theta holds a non-finite"),
    C("CompiledFormula.value", "theta", lambda: F().value([1.0, None], ONES), DataError, "theta holds None"),
    C("CompiledFormula.value", "theta", lambda: F().value("ab", ONES), DtypeError, "theta holds text"),
    C("CompiledFormula.value", "theta", lambda: FP().value([-1.0], ONES), DataError, "positive"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0]), ShapeError, r"expected 1 data array\(s\)"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], ONES, ONES), ShapeError, r"got 2"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], ONES.astype(np.float32)), DtypeError, "float32"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], ONES.astype("datetime64[s]")), DtypeError, "not a real floating type"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], ONES + 1j), DtypeError, "complex128"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], np.ones((4, 2))), ShapeError, r"shape \(4, 2\)"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], "abc"), DtypeError, "holds text"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], None), DataError, "is None"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], np.array([])), DataError, "no rows"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], masked(ONES)), DataError, "masked entries"),
    C("CompiledFormula.value", "data", lambda: F().value([1.0, 2.0], nan_at(ONES)), DataError, r"non-finite value \(nan\) at index 1"),
    C("CompiledFormula.value", "data", lambda: FP().value([1.0], np.array([1.0, 0.0])), DataError, "positive"),
    C("CompiledFormula.value", "kw", lambda: F().value([1.0, 2.0], z=ONES), ShapeError, r"unknown data arguments \['z'\]; this function takes \['x'\]"),
    C("CompiledFormula.value", "kw", lambda: F().value([1.0, 2.0], ONES, x=ONES), ShapeError, "both by position and by name"),
    C("CompiledFormula.value_and_grad", "theta", lambda: F().value_and_grad([1.0, np.inf], ONES), DataError, "non-finite"),
    C("CompiledFormula.value_and_grad", "theta", lambda: F().value_and_grad(np.ones((2, 2)), ONES), ShapeError, "4 entries"),
    C("CompiledFormula.value_and_grad", "data", lambda: F().value_and_grad([1.0, 2.0], [1.0, None]), DataError, "holds None"),
    C("CompiledFormula.value_and_grad", "data", lambda: F().value_and_grad([1.0, 2.0], np.ones(3, dtype=object)), DtypeError, "object"),
    C("CompiledFormula.value_and_grad", "kw", lambda: F().value_and_grad([1.0, 2.0], q=ONES), ShapeError, "unknown"),
    C("CompiledFormula.grad", "theta", lambda: F().grad([1.0, 2.0, 3.0], ONES), ShapeError, "3 entries"),
    C("CompiledFormula.grad", "data", lambda: F().grad([1.0, 2.0], np.array([1.0, np.inf])), DataError, "non-finite"),
    C("CompiledFormula.grad", "kw", lambda: F().grad([1.0, 2.0], y=ONES), ShapeError, "unknown"),
    C("CompiledFormula.hvp", "theta", lambda: F().hvp([np.nan, 1.0], [1.0, 0.0], ONES), DataError, "theta holds a non-finite"),
    C("CompiledFormula.hvp", "v", lambda: F().hvp([1.0, 2.0], [1.0], ONES), ShapeError, "v has 1 entries"),
    C("CompiledFormula.hvp", "v", lambda: F().hvp([1.0, 2.0], [np.inf, 0.0], ONES), DataError, "v holds a non-finite"),
    C("CompiledFormula.hvp", "data", lambda: F().hvp([1.0, 2.0], [1.0, 0.0], ONES.astype(np.float32)), DtypeError, "float32"),
    C("CompiledFormula.hvp", "kw", lambda: F().hvp([1.0, 2.0], [1.0, 0.0], w=ONES), ShapeError, "unknown"),
    C("CompiledFormula.hessian", "theta", lambda: F().hessian([1.0, np.inf], ONES), DataError, "non-finite"),
    C("CompiledFormula.hessian", "data", lambda: F().hessian([1.0, 2.0], np.ones((4, 3))), ShapeError, "shape"),
    C("CompiledFormula.hessian", "kw", lambda: F().hessian([1.0, 2.0], t=ONES), ShapeError, "unknown"),
    C("CompiledFormula.hessian", "theta", lambda: PW().hessian([1.0], ONES), UnsupportedModelError, "reduction='none'"),
    C("CompiledFormula.pointwise", "arrays", lambda: F().pointwise(ONES), UnsupportedModelError, "reduction='none'"),
    C("CompiledFormula.pointwise", "arrays", lambda: PW().pointwise(ONES), ShapeError, r"takes 1 parameter\(s\) \(a\) and then 1 data array\(s\) \(x\); got 1"),
    C("CompiledFormula.pointwise", "arrays", lambda: PW().pointwise(ONES, nan_at(ONES)), DataError, "non-finite"),
    C("CompiledFormula.pointwise", "arrays", lambda: PW().pointwise(ONES, np.ones(3)), DataError, "different lengths"),
    C("CompiledFormula.value", "theta", lambda: PW().value([1.0], ONES), UnsupportedModelError, "pointwise"),
    # CompiledResiduals methods
    C("CompiledResiduals.residuals", "theta", lambda: R().residuals([1.0], ONES, ONES), ShapeError, "1 entries"),
    C("CompiledResiduals.residuals", "data", lambda: R().residuals([1.0, 2.0], ONES, np.ones(3)), DataError, "different lengths"),
    C("CompiledResiduals.residuals", "kw", lambda: R().residuals([1.0, 2.0], q=ONES), ShapeError, "unknown"),
    C("CompiledResiduals.jacobian", "theta", lambda: R().jacobian([1.0, 2.0, 3.0], ONES, ONES), ShapeError, "3 entries"),
    C("CompiledResiduals.jacobian", "data", lambda: R().jacobian([1.0, 2.0], ONES, masked(ONES)), DataError, "masked"),
    C("CompiledResiduals.jacobian", "kw", lambda: R().jacobian([1.0, 2.0], ONES, z=ONES), ShapeError, "unknown"),
    C("CompiledResiduals.covariance", "theta", lambda: R().covariance([np.nan, 2.0], ONES, ONES), DataError, "non-finite"),
    C("CompiledResiduals.covariance", "data", lambda: R().covariance([1.0, 2.0], ONES[:2], ONES[:2]), ShapeError, "more samples than parameters"),
    C("CompiledResiduals.covariance", "data", lambda: R().covariance([1.0, 2.0], ONES, ONES), UnsupportedModelError, "rank-deficient"),
    C("CompiledResiduals.covariance", "kw", lambda: R().covariance([1.0, 2.0], ONES, q=ONES), ShapeError, "unknown"),
    C("CompiledResiduals.covariance", "absolute_sigma", lambda: R().covariance([1.0, 2.0], ONES, ONES, absolute_sigma=1), OptionError, "use True"),
    # CompiledTensor methods
    C("CompiledTensor.value", "theta", lambda: T().value(TH()[:3], np.ones((4, 2)), np.ones(4)), ShapeError, "expected 4 parameter arrays"),
    C("CompiledTensor.value", "theta", lambda: T().value([np.ones((2, 3))] + TH()[1:], np.ones((4, 2)), np.ones(4)), ShapeError, r"parameter 'W1' has shape \(2, 3\)"),
    C("CompiledTensor.value", "theta", lambda: T().value([nan_at(TH()[0])] + TH()[1:], np.ones((4, 2)), np.ones(4)), DataError, "non-finite"),
    C("CompiledTensor.value", "theta", lambda: T().value(nan_at(np.ones(13)), np.ones((4, 2)), np.ones(4)), DataError, "theta holds a non-finite"),
    C("CompiledTensor.value", "data", lambda: T().value(TH(), np.ones((4, 3)), np.ones(4)), ShapeError, r"data 'x' has shape \(4, 3\)"),
    C("CompiledTensor.value", "data", lambda: T().value(TH(), np.ones((4, 2))), ShapeError, r"expected 2 data array"),
    C("CompiledTensor.value_and_grad", "theta", lambda: T().value_and_grad(np.ones(12), np.ones((4, 2)), np.ones(4)), ShapeError, "expected 4 parameter arrays"),
    C("CompiledTensor.value_and_grad", "data", lambda: T().value_and_grad(TH(), np.ones((4, 2)), np.ones(3)), DataError, "different lengths"),
    C("CompiledTensor.grad", "theta", lambda: T().grad([None] * 4, np.ones((4, 2)), np.ones(4)), DataError, "None"),
    C("CompiledTensor.grad", "data", lambda: T().grad(TH(), masked(np.ones((4, 2))), np.ones(4)), DataError, "masked"),
    C("CompiledTensor.hvp", "theta", lambda: T().hvp(TH()[:2], TH(), np.ones((4, 2)), np.ones(4)), ShapeError, "theta: expected 4"),
    C("CompiledTensor.hvp", "v", lambda: T().hvp(TH(), TH()[:2], np.ones((4, 2)), np.ones(4)), ShapeError, "v: expected 4"),
    C("CompiledTensor.hvp", "data", lambda: T().hvp(TH(), TH(), np.ones((4, 2), np.float32), np.ones(4)), DtypeError, "float32"),
    C("CompiledTensor.hessian", "theta", lambda: T().hessian(np.ones(5), np.ones((4, 2)), np.ones(4)), ShapeError, "expected 4 parameter arrays"),
    C("CompiledTensor.hessian", "data", lambda: T().hessian(TH(), np.ones((0, 2)), np.ones(0)), DataError, "no rows"),
    C("CompiledTensor.unpack", "theta", lambda: T().unpack([np.ones(5)] + TH()[1:]), ShapeError, "parameter 'W1'"),
    C("CompiledTensor.prepare_data", "data", lambda: T().prepare_data([np.ones((4, 2)), "y"]), DtypeError, "holds text"),
    # sg.fit
    C("fit", "model", lambda: sg.fit("mlp", "mse", X, Y, **PY), OptionError, "must be a network"),
    C("fit", "model", lambda: sg.fit(a * x, "mse", X, Y, **PY), OptionError, "must be a network"),
    C("fit", "loss", lambda: sg.fit(NET(), "msee", X, Y, **PY), OptionError, "unknown loss 'msee'"),
    C("fit", "loss", lambda: sg.fit(NET(), 3, X, Y, **PY), OptionError, "loss must be a name"),
    C("fit", "loss", lambda: sg.fit(NET(), lambda q: q, X, Y, **PY), OptionError, r"f\(pred, target\)"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X[:, :1], Y, **PY), ShapeError, "1 columns"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", nan_at(X), Y, **PY), DataError, "non-finite"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X.astype(str), Y, **PY), DtypeError, "not numbers"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X + 1j, Y, **PY), DataError, "Complex data"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X[:0], Y[:0], **PY), DataError, "no rows"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X[0], Y[:1], **PY), ShapeError, "1-D"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", X[:, :, None], Y, **PY), ShapeError, "does not flatten"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", masked(X), Y, **PY), DataError, "masked entries"),
    C("fit", "X", lambda: sg.fit(NET(), "mse", None, Y, **PY), DataError, "None"),
    C("fit", "Y", lambda: sg.fit(NET(), "mse", X, Y[:3], **PY), DataError, "16 rows but Y has 3"),
    C("fit", "Y", lambda: sg.fit(NET(), "mse", X, nan_at(Y), **PY), DataError, "Y holds a non-finite"),
    C("fit", "Y", lambda: sg.fit(NET(), "bce", X, 2 * (Y > 0) - 1.0, **PY), TargetError, r"\[0, 1\]"),
    C("fit", "Y", lambda: sg.fit(NET(), "mse", X, np.array(["a"] * 16), **PY), TargetError, "text labels"),
    C("fit", "Y", lambda: sg.fit(NET(), "mse", X, np.ones((16, 2)), **PY), ShapeError, "2 columns"),
    C("fit", "Y", lambda: sg.fit(NET(), "mse", X, np.ones((16, 1, 1)), **PY), ShapeError, r"shape \(16, 1, 1\)"),
    C("fit", "Y", lambda: sg.fit(nn.MLP([2, 3, 3]), "softmax_cross_entropy", X, np.full(16, 5), **PY), TargetError, "class labels"),
    C("fit", "optimizer", lambda: sg.fit(NET(), "mse", X, Y, optimizer="adamm", **PY), OptionError, "unknown optimizer"),
    C("fit", "optimizer", lambda: sg.fit(NET(), "mse", X, Y, optimizer=object(), **PY), OptionError, "not a symgrad optimizer"),
    C("fit", "epochs", lambda: sg.fit(NET(), "mse", X, Y, backend="python", epochs=-1), OptionError, "epochs=-1"),
    C("fit", "epochs", lambda: sg.fit(NET(), "mse", X, Y, backend="python", epochs=1.5), OptionError, "epochs=1.5"),
    C("fit", "batch_size", lambda: sg.fit(NET(), "mse", X, Y, batch_size=0, **PY), OptionError, "batch_size=0"),
    C("fit", "batch_size", lambda: sg.fit(NET(), "mse", X, Y, batch_size=True, **PY), OptionError, "batch_size=True"),
    C("fit", "seed", lambda: sg.fit(NET(), "mse", X, Y, seed=-1, **PY), OptionError, "seed=-1"),
    C("fit", "seed", lambda: sg.fit(NET(), "mse", X, Y, seed="a", **PY), OptionError, "seed='a'"),
    C("fit", "dtype", lambda: sg.fit(NET(), "mse", X, Y, dtype="float16", **PY), DtypeError, "float16"),
    C("fit", "validation", lambda: sg.fit(NET(), "mse", X, Y, validation=(X,), **PY), OptionError, "takes a pair"),
    C("fit", "validation", lambda: sg.fit(NET(), "mse", X, Y, validation=(X[:, :1], Y), **PY), ShapeError, "validation X"),
    C("fit", "validation", lambda: sg.fit(NET(), "bce", X, (Y > 0) * 1.0, validation=(X, Y * 9), **PY), TargetError, "validation Y"),
    C("fit", "threshold", lambda: sg.fit(NET(), "mse", X, Y, threshold="low", **PY), OptionError, "threshold='low'"),
    C("fit", "threshold", lambda: sg.fit(NET(), "mse", X, Y, threshold=float("nan"), **PY), OptionError, "threshold=nan"),
    C("fit", "patience", lambda: sg.fit(NET(), "mse", X, Y, patience=3, **PY), OptionError, "patience=3"),
    C("fit", "patience", lambda: sg.fit(NET(), "mse", X, Y, patience=0, validation=(X, Y), **PY), OptionError, "patience=0"),
    C("fit", "callbacks", lambda: sg.fit(NET(), "mse", X, Y, callbacks=[1], **PY), OptionError, "1 is not a function"),
    C("fit", "progress", lambda: sg.fit(NET(), "mse", X, Y, progress="yes", **PY), OptionError, "progress='yes'"),
    C("fit", "chunk_epochs", lambda: sg.fit(NET(), "mse", X, Y, chunk_epochs=-1, **PY), OptionError, "chunk_epochs=-1"),
    C("fit", "params", lambda: sg.fit(NET(), "mse", X, Y, params=TH()[:2], **PY), ShapeError, "params has 2 arrays"),
    C("fit", "params", lambda: sg.fit(NET(), "mse", X, Y, params=3, **PY), OptionError, "params"),
    C("fit", "params", lambda: sg.fit(NET(), "mse", X, Y, params=[nan_at(TH()[0])] + TH()[1:], **PY), DataError, r"params\['W1'\]"),
    C("fit", "params", lambda: sg.fit(NET(), "mse", X, Y, params=TH(), resume=M(), **PY), OptionError, "params= and resume="),
    C("fit", "backend", lambda: sg.fit(NET(), "mse", X, Y, epochs=1, backend="gpu"), OptionError, "'gpu'"),
    C("fit", "blas_threads", lambda: sg.fit(NET(), "mse", X, Y, blas_threads="one", **PY), OptionError, "blas_threads='one'"),
    C("fit", "shuffle", lambda: sg.fit(NET(), "mse", X, Y, shuffle="no", **PY), OptionError, "shuffle='no'"),
    C("fit", "threads", lambda: sg.fit(NET(), "mse", X, Y, threads=1.5, **PY), OptionError, "threads=1.5"),
    C("fit", "resume", lambda: sg.fit(NET(), "mse", X, Y, resume=3, **PY), OptionError, "resume="),
    C("fit", "client", lambda: sg.fit(NET(), "mse", X, Y, client=3, **PY), DataError, "client="),
    C("fit", "strategy", lambda: sg.fit(NET(), "mse", X, Y, strategy="async", **PY), OptionError, "strategy='async'"),
    C("fit", "local_steps", lambda: sg.fit(NET(), "mse", X, Y, local_steps=0, **PY), OptionError, "local_steps=0"),
    C("fit", "validation_split", lambda: sg.fit(NET(), "mse", X, Y, validation_split=2, **PY), OptionError, "validation_split=2"),
    C("fit", "validation_split", lambda: sg.fit(NET(), "mse", X, Y, validation_split=0.5, validation=(X, Y), **PY), OptionError, "both"),
    C("fit", "metrics", lambda: sg.fit(NET(), "mse", X, Y, metrics=3, validation=(X, Y), **PY), OptionError, "metrics=3"),
    C("fit", "verbose", lambda: sg.fit(NET(), "mse", X, Y, verbose="loud", **PY), OptionError, "verbose='loud'"),
    # Trained.predict / evaluate / save, sg.load
    C("Trained.predict", "X", lambda: M().predict(X[:, :1]), ShapeError, "1 columns"),
    C("Trained.predict", "X", lambda: M().predict(X[0]), ShapeError, r"reshape\(1, -1\)"),
    C("Trained.predict", "X", lambda: M().predict(nan_at(X, 5)), DataError, "non-finite"),
    C("Trained.predict", "X", lambda: M().predict(X.astype(str)), DtypeError, "not numbers"),
    C("Trained.predict", "X", lambda: M().predict(X + 1j), DataError, "Complex"),
    C("Trained.predict", "X", lambda: M().predict(X[:, :, None]), ShapeError, "does not flatten"),
    C("Trained.predict", "X", lambda: M().predict(masked(X)), DataError, "masked entries"),
    C("Trained.predict", "X", lambda: M().predict(None), DataError, "None"),
    C("Trained.evaluate", "X", lambda: M().evaluate(X[:, :1], Y), ShapeError, "1 columns"),
    C("Trained.evaluate", "X", lambda: M().evaluate(X[:0], Y[:0]), DataError, "no rows"),
    C("Trained.evaluate", "Y", lambda: M().evaluate(X, Y[:3]), DataError, "Y has 3"),
    C("Trained.evaluate", "Y", lambda: M().evaluate(X, nan_at(Y)), DataError, "non-finite"),
    C("Trained.evaluate", "Y", lambda: M().evaluate(X, masked(Y)), DataError, "masked entries"),
    C("Trained.save", "path", lambda: M().save(3), OptionError, "path"),
    C("Trained.save", "path", lambda: M().save(os.path.join(tempfile.mkdtemp(), "no", "such", "m.npz")), ModelFileError, "cannot write"),
    C("Trained.save", "path", lambda: M().save(tempfile.mkdtemp()), ModelFileError, "is a folder"),
    C("load", "path", lambda: sg.load("no-such-model.npz"), MissingModelFileError, "no model file"),
    C("load", "path", lambda: sg.load(junk_file("not a model")), ModelFileError, "corrupt"),
    C("load", "path", lambda: sg.load(bare_npz()), ModelFileError, "no symgrad header"),
    C("load", "path", lambda: sg.load(tempfile.mkdtemp()), ModelFileError, "cannot read"),
    C("load", "path", lambda: sg.load(3), OptionError, "path"),
    C("load", "backend", lambda: sg.load(SAVED(), backend="gpu"), OptionError, "'gpu'"),
    # sg.formulas, sg.parse_expr
    C("formulas", "model", lambda: sg.formulas("mlp", "mse"), OptionError, "must be a network"),
    C("formulas", "loss", lambda: sg.formulas(NET(), "msee"), OptionError, "unknown loss"),
    C("formulas", "loss", lambda: sg.formulas(NET(), lambda q: q), OptionError, r"f\(pred, target\)"),
    C("formulas", "at", lambda: sg.formulas(NET(), "mse", at=(1, 2)), OptionError, "takes \\(params, x, y\\)"),
    C("formulas", "at", lambda: sg.formulas(NET(), "mse", at=([np.ones((3, 2))], [1.0, 2.0], 1.0)), OptionError, "one array for each"),
    C("parse_expr", "text", lambda: sg.parse_expr("2x"), ParseError, r"2\*x"),
    C("parse_expr", "text", lambda: sg.parse_expr("x^2"), ParseError, r"x\*\*2"),
    C("parse_expr", "text", lambda: sg.parse_expr("__import__('os')"), ParseError, "not allowed"),
    C("parse_expr", "text", lambda: sg.parse_expr(3), ParseError, "as a str"),
    C("parse_expr", "extra_functions", lambda: sg.parse_expr("x", extra_functions=[1]), ParseError, "not a named function"),
    # sg.losses: matrix expressions of one shape, a positive finite delta
    C("losses.mse", "pred", lambda: sg.losses.mse(3, Z3), ShapeError, "matrix expressions"),
    C("losses.mse", "target", lambda: sg.losses.mse(Z3, sp.MatrixSymbol("y", 2, 1)), ShapeError, "3×1 but target is 2×1"),
    C("losses.mae", "pred", lambda: sg.losses.mae("z", Z3), ShapeError, "mae\\(pred='z'\\)"),
    C("losses.mae", "target", lambda: sg.losses.mae(Z3, y), ShapeError, "mae\\(target=y\\)"),
    C("losses.huber", "pred", lambda: sg.losses.huber(x, Z3), ShapeError, "huber\\(pred=x\\)"),
    C("losses.huber", "target", lambda: sg.losses.huber(Z3, sp.MatrixSymbol("y", 3, 2)), ShapeError, "target is 3×2"),
    C("losses.huber", "delta", lambda: sg.losses.huber(Z3, Y3, delta=-1), OptionError, "delta=-1"),
    C("losses.huber", "delta", lambda: sg.losses.huber(Z3, Y3, delta=0), OptionError, "delta=0"),
    C("losses.huber", "delta", lambda: sg.losses.huber(Z3, Y3, delta=float("nan")), OptionError, "delta=nan"),
    C("losses.huber", "delta", lambda: sg.losses.huber(Z3, Y3, delta="0.5"), OptionError, "delta='0.5'"),
    C("losses.huber", "delta", lambda: sg.losses.huber(Z3, Y3, delta=True), OptionError, "delta=True"),
    C("losses.binary_cross_entropy", "logits", lambda: sg.losses.binary_cross_entropy([1, 2], Y3), ShapeError,
      "logits=\\[1, 2\\]"),
    C("losses.binary_cross_entropy", "target", lambda: sg.losses.binary_cross_entropy(Z3, sp.MatrixSymbol("y", 2, 1)),
      ShapeError, "logits is 3×1 but target is 2×1"),
    C("losses.softmax_cross_entropy", "logits", lambda: sg.losses.softmax_cross_entropy(None, Y3), ShapeError,
      "logits=None"),
    C("losses.softmax_cross_entropy", "target", lambda: sg.losses.softmax_cross_entropy(Z3, 3), ShapeError,
      "target=3"),
    C("losses.token_cross_entropy", "logits", lambda: sg.losses.token_cross_entropy(Z3, sp.MatrixSymbol("y", 1, 1)),
      ShapeError, "takes a sequence of logits"),
    C("losses.token_cross_entropy", "logits", lambda: sg.losses.token_cross_entropy("z", Y3), ShapeError, "logits='z'"),
    C("losses.token_cross_entropy", "target", lambda: sg.losses.token_cross_entropy(LM().expr, Y3), ShapeError,
      "but target is 3×1.*one id per position's shape, e.g. sp.MatrixSymbol\\(\"y\", 2, 1\\)"),
    # sg.nn builders
    C("nn.MLP", "sizes", lambda: nn.MLP([2, 0, 1]), SymgradError, "positive integers"),
    C("nn.MLP", "sizes", lambda: nn.MLP([2, 2.5, 1]), SymgradError, "positive integers"),
    C("nn.MLP", "sizes", lambda: nn.MLP(3), OptionError, r"sizes=\[n_in, hidden\.\.\., n_out\]"),
    C("nn.MLP", "sizes", lambda: nn.MLP([2]), SymgradError, "at least"),
    C("nn.MLP", "activation", lambda: nn.MLP([2, 3, 1], activation="relu6"), SymgradError, "unknown activation"),
    C("nn.MLP", "activation", lambda: nn.MLP([2, 3, 1], activation=3), OptionError, "activation=3"),
    C("nn.MLP", "output", lambda: nn.MLP([2, 3, 1], output="sigmod"), SymgradError, "unknown activation"),
    C("nn.MLP", "init", lambda: nn.MLP([2, 3, 1], init="zeros"), OptionError, "init='zeros'"),
    C("nn.MLP", "bias", lambda: nn.MLP([2, 3, 1], bias="no"), OptionError, "bias='no'"),
    C("nn.MLP", "names", lambda: nn.MLP([2, 3, 1], names={"wieghts": ["a", "b"]}), OptionError, "unknown keys"),
    C("nn.MLP", "names", lambda: nn.MLP([2, 3, 1], names=3), OptionError, "names"),
    C("nn.activation", "f", lambda: nn.activation(3), OptionError, "activation=3"),
    C("nn.activation", "f", lambda: nn.activation(lambda z: np.tanh(z)), OptionError, "SymPy expression"),
    C("nn.activation", "f", lambda: nn.activation(lambda z: z * y), SymgradError, "one argument only"),
    C("nn.activation", "f", lambda: nn.activation("zz"), SymgradError, "unknown activation"),
    C("nn.Dense", "n_in", lambda: nn.Sequential([nn.Dense(2, 3)], 3), ShapeError, "takes 2 inputs but gets 3"),
    C("nn.Dense", "n_in", lambda: nn.Dense(0, 3), OptionError, "n_in=0"),
    C("nn.Dense", "n_out", lambda: nn.Dense(2, "3"), OptionError, "n_out"),
    C("nn.Dense", "activation", lambda: nn.Dense(2, 3, activation="foo"), SymgradError, "unknown activation"),
    C("nn.Dense", "index", lambda: nn.Dense(2, 3, index="a"), OptionError, "index"),
    C("nn.Dense", "bias", lambda: nn.Dense(2, 3, bias="yes"), OptionError, "bias"),
    C("nn.Dense", "weight", lambda: nn.Dense(2, 3, weight=3), OptionError, "weight"),
    C("nn.Dense", "bias_name", lambda: nn.Dense(2, 3, bias_name=3), OptionError, "bias_name"),
    C("nn.Conv2D", "c_in", lambda: nn.Conv2D(0, 2, 3), OptionError, "c_in=0"),
    C("nn.Conv2D", "c_out", lambda: nn.Conv2D(1, -2, 3), OptionError, "c_out=-2"),
    C("nn.Conv2D", "kernel_size", lambda: nn.Conv2D(1, 2, 0), ShapeError, "kernel_size=0"),
    C("nn.Conv2D", "kernel_size", lambda: nn.Conv2D(1, 2, (3,)), ShapeError, "kernel_size=\\(3,\\)"),
    C("nn.Conv2D", "stride", lambda: nn.Conv2D(1, 2, 3, stride=0), ShapeError, "stride=0"),
    C("nn.Conv2D", "padding", lambda: nn.Conv2D(1, 2, 3, padding="full"), ShapeError, "padding"),
    C("nn.Conv2D", "activation", lambda: nn.Conv2D(1, 2, 3, activation="x"), SymgradError, "unknown activation"),
    C("nn.MaxPool2D", "size", lambda: nn.MaxPool2D(0), ShapeError, "size=0"),
    C("nn.MaxPool2D", "stride", lambda: nn.MaxPool2D(2, stride=-1), ShapeError, "stride"),
    C("nn.AvgPool2D", "size", lambda: nn.AvgPool2D("2"), ShapeError, "size"),
    C("nn.AvgPool2D", "stride", lambda: nn.AvgPool2D(2, stride=0), ShapeError, "stride"),
    C("nn.LayerNorm", "shape", lambda: nn.LayerNorm(0), OptionError, "LayerNorm\\(0\\)"),
    C("nn.LayerNorm", "eps", lambda: nn.LayerNorm(3, eps=-1), OptionError, "eps=-1"),
    C("nn.LayerNorm", "eps", lambda: nn.LayerNorm(3, eps="a"), OptionError, "eps='a'"),
    C("nn.LayerNorm", "affine", lambda: nn.LayerNorm(3, affine="no"), OptionError, "affine"),
    C("nn.Embedding", "vocab", lambda: nn.Embedding(0, 3), OptionError, "vocab=0"),
    C("nn.Embedding", "d", lambda: nn.Embedding(5, 0), OptionError, "d=0"),
    C("nn.Embedding", "context", lambda: nn.Embedding(5, 3, context=0), OptionError, "context=0"),
    C("nn.Embedding", "positional", lambda: nn.Embedding(5, 3, positional=True), OptionError, "context length"),
    C("nn.MultiHeadAttention", "d", lambda: nn.MultiHeadAttention(0), OptionError, "d=0"),
    C("nn.MultiHeadAttention", "heads", lambda: nn.MultiHeadAttention(4, heads=3), ShapeError, "heads = 3"),
    C("nn.MultiHeadAttention", "heads", lambda: nn.MultiHeadAttention(4, heads=0), OptionError, "heads=0"),
    C("nn.MultiHeadAttention", "causal", lambda: nn.MultiHeadAttention(4, causal="yes"), OptionError, "causal='yes'"),
    C("nn.PositionwiseDense", "d_in", lambda: nn.PositionwiseDense(0, 3), OptionError, "d_in=0"),
    C("nn.PositionwiseDense", "d_out", lambda: nn.PositionwiseDense(3, 0), OptionError, "d_out=0"),
    C("nn.PositionwiseDense", "activation", lambda: nn.PositionwiseDense(3, 3, activation="q"), SymgradError, "unknown activation"),
    C("nn.PositionwiseDense", "bias", lambda: nn.PositionwiseDense(3, 3, bias="y"), OptionError, "bias"),
    C("nn.Residual", "layers", lambda: nn.Residual([]), OptionError, "Residual\\(\\[\\]\\)"),
    C("nn.Residual", "layers", lambda: nn.Residual(3), OptionError, "Residual\\(3\\)"),
    C("nn.Sequential", "layers", lambda: nn.Sequential([3], 2), OptionError, "layer 1 is 3"),
    C("nn.Sequential", "layers", lambda: nn.Sequential([], 2), OptionError, "layers"),
    C("nn.Sequential", "input_shape", lambda: nn.Sequential([nn.Dense(2, 3)], 0), OptionError, "input_shape=0"),
    C("nn.Sequential", "init", lambda: nn.Sequential([nn.Dense(2, 3)], 2, init="zeros"), OptionError, "init='zeros'"),
    C("nn.Transformer", "vocab", lambda: nn.Transformer(0, 4, 1, 1, 3), OptionError, "vocab=0"),
    C("nn.Transformer", "d", lambda: nn.Transformer(5, 0, 1, 1, 3), OptionError, "d=0"),
    C("nn.Transformer", "heads", lambda: nn.Transformer(5, 4, 3, 1, 3), ShapeError, "heads=3"),
    C("nn.Transformer", "layers", lambda: nn.Transformer(5, 4, 1, 0, 3), OptionError, "layers=0"),
    C("nn.Transformer", "context", lambda: nn.Transformer(5, 4, 1, 1, 0), OptionError, "context=0"),
    C("nn.Transformer", "mlp", lambda: nn.Transformer(5, 4, 1, 1, 3, mlp=0), OptionError, "mlp=0"),
    C("nn.Transformer", "activation", lambda: nn.Transformer(5, 4, 1, 1, 3, activation="zz"), SymgradError, "unknown activation"),
    C("nn.Transformer", "init", lambda: nn.Transformer(5, 4, 1, 1, 3, init="zz"), OptionError, "init='zz'"),
    C("nn.Dropout", "p", lambda: nn.Dropout(1.0), OptionError, r"p=1\.0"),
    C("nn.Dropout", "p", lambda: nn.Dropout("a"), OptionError, "p='a'"),
    C("nn.BatchNorm", "num_features", lambda: nn.BatchNorm(0), OptionError, r"BatchNorm\(0\)"),
    C("nn.BatchNorm", "num_features", lambda: nn.Sequential([nn.Dense(2, 3), nn.BatchNorm(4)], 2), ShapeError,
      r"Fix: BatchNorm\(3\)"),
    C("nn.BatchNorm", "eps", lambda: nn.BatchNorm(4, eps=-1), OptionError, "eps=-1"),
    C("nn.BatchNorm", "momentum", lambda: nn.BatchNorm(4, momentum=2), OptionError, "momentum=2"),
    C("nn.BatchNorm", "affine", lambda: nn.BatchNorm(4, affine="no"), OptionError, "affine='no'"),
    C("nn.Activation", "activation", lambda: nn.Activation("zz"), SymgradError, "unknown activation 'zz'"),
    C("nn.Activation", "activation", lambda: nn.Sequential([nn.Activation(3)], 2), OptionError, "activation=3"),
    C("nn.Activation", "activation", lambda: nn.Activation(3), OptionError, "activation=3"),
    # sg.optim optimizers
    C("optim.SGD", "lr", lambda: opt.SGD(lr=-1), OptimizerConfigError, "lr=-1"),
    C("optim.SGD", "lr", lambda: opt.SGD(lr=float("inf")), OptimizerConfigError, "lr=inf"),
    C("optim.SGD", "lr", lambda: opt.SGD(lr="0.1"), OptimizerConfigError, "not a number"),
    C("optim.SGD", "weight_decay", lambda: opt.SGD(weight_decay=-1), OptimizerConfigError, "weight_decay=-1"),
    C("optim.SGD", "clip_norm", lambda: opt.SGD(clip_norm=0), OptimizerConfigError, "clip_norm=0"),
    C("optim.SGD", "schedule", lambda: opt.SGD(schedule=3), OptimizerConfigError, "schedule=3"),
    C("optim.SGD", "schedule", lambda: opt.SGD(schedule="step"), OptimizerConfigError, "schedule='step'"),
    C("optim.Momentum", "lr", lambda: opt.Momentum(lr=None), OptimizerConfigError, "not a number"),
    C("optim.Momentum", "beta", lambda: opt.Momentum(beta=1.5), OptimizerConfigError, "beta=1.5"),
    C("optim.Momentum", "weight_decay", lambda: opt.Momentum(weight_decay="x"), OptimizerConfigError, "not a number"),
    C("optim.Momentum", "clip_norm", lambda: opt.Momentum(clip_norm=-1.0), OptimizerConfigError, "clip_norm"),
    C("optim.Momentum", "schedule", lambda: opt.Momentum(schedule=opt.Adam()), OptimizerConfigError, "schedule"),
    C("optim.Nesterov", "lr", lambda: opt.Nesterov(lr=float("nan")), OptimizerConfigError, "lr=nan"),
    C("optim.Nesterov", "beta", lambda: opt.Nesterov(beta=-0.1), OptimizerConfigError, "beta=-0.1"),
    C("optim.Nesterov", "weight_decay", lambda: opt.Nesterov(weight_decay=float("inf")), OptimizerConfigError, "weight_decay=inf"),
    C("optim.Nesterov", "clip_norm", lambda: opt.Nesterov(clip_norm="1"), OptimizerConfigError, "not a number"),
    C("optim.Nesterov", "schedule", lambda: opt.Nesterov(schedule=1.0), OptimizerConfigError, "schedule"),
    C("optim.Adam", "lr", lambda: opt.Adam(lr=-0.01), OptimizerConfigError, "lr=-0.01"),
    C("optim.Adam", "beta1", lambda: opt.Adam(beta1=1.0), OptimizerConfigError, "beta1=1.0"),
    C("optim.Adam", "beta2", lambda: opt.Adam(beta2=1), OptimizerConfigError, "beta2=1"),
    C("optim.Adam", "eps", lambda: opt.Adam(eps=-1), OptimizerConfigError, "eps=-1"),
    C("optim.Adam", "weight_decay", lambda: opt.Adam(weight_decay=True), OptimizerConfigError, "not a number"),
    C("optim.Adam", "clip_norm", lambda: opt.Adam(clip_norm=0.0), OptimizerConfigError, "clip_norm=0.0"),
    C("optim.Adam", "schedule", lambda: opt.Adam(schedule="cosine"), OptimizerConfigError, "schedule"),
    C("optim.AdamW", "lr", lambda: opt.AdamW(lr=[0.1]), OptimizerConfigError, "not a number"),
    C("optim.AdamW", "beta1", lambda: opt.AdamW(beta1=-0.5), OptimizerConfigError, "beta1=-0.5"),
    C("optim.AdamW", "beta2", lambda: opt.AdamW(beta2=2.0), OptimizerConfigError, "beta2=2.0"),
    C("optim.AdamW", "eps", lambda: opt.AdamW(eps="tiny"), OptimizerConfigError, "not a number"),
    C("optim.AdamW", "weight_decay", lambda: opt.AdamW(weight_decay=float("nan")), OptimizerConfigError, "weight_decay=nan"),
    C("optim.AdamW", "clip_norm", lambda: opt.AdamW(clip_norm=float("nan")), OptimizerConfigError, "clip_norm=nan"),
    C("optim.AdamW", "schedule", lambda: opt.AdamW(schedule=[opt.StepLR(2)]), OptimizerConfigError, "schedule"),
    C("optim.AdaGrad", "lr", lambda: opt.AdaGrad(lr=-1e-3), OptimizerConfigError, "lr=-0.001"),
    C("optim.AdaGrad", "eps", lambda: opt.AdaGrad(eps="x"), OptimizerConfigError, "eps='x' is not a number"),
    C("optim.AdaGrad", "weight_decay", lambda: opt.AdaGrad(weight_decay=-0.1), OptimizerConfigError, "weight_decay=-0.1"),
    C("optim.AdaGrad", "clip_norm", lambda: opt.AdaGrad(clip_norm=float("inf")), OptimizerConfigError, "clip_norm=inf"),
    C("optim.AdaGrad", "schedule", lambda: opt.AdaGrad(schedule=opt.StepLR), OptimizerConfigError, "schedule"),
    C("optim.RMSProp", "lr", lambda: opt.RMSProp(lr="fast"), OptimizerConfigError, "not a number"),
    C("optim.RMSProp", "alpha", lambda: opt.RMSProp(alpha=1.0), OptimizerConfigError, "alpha=1.0"),
    C("optim.RMSProp", "eps", lambda: opt.RMSProp(eps=float("-inf")), OptimizerConfigError, "eps=-inf"),
    C("optim.RMSProp", "weight_decay", lambda: opt.RMSProp(weight_decay=None), OptimizerConfigError, "not a number"),
    C("optim.RMSProp", "clip_norm", lambda: opt.RMSProp(clip_norm=-3), OptimizerConfigError, "clip_norm=-3"),
    C("optim.RMSProp", "schedule", lambda: opt.RMSProp(schedule={}), OptimizerConfigError, "schedule"),
    # sg.optim schedules
    C("optim.StepLR", "step_size", lambda: opt.StepLR(0), OptimizerConfigError, "step_size=0"),
    C("optim.StepLR", "step_size", lambda: opt.StepLR(2.5), OptimizerConfigError, "step_size=2.5"),
    C("optim.StepLR", "step_size", lambda: opt.StepLR("a"), OptimizerConfigError, "step_size='a'"),
    C("optim.StepLR", "step_size", lambda: opt.StepLR(None), OptimizerConfigError, "step_size=None"),
    C("optim.StepLR", "gamma", lambda: opt.StepLR(2, gamma=0), OptimizerConfigError, "gamma=0"),
    C("optim.StepLR", "gamma", lambda: opt.StepLR(2, gamma="x"), OptimizerConfigError, "gamma='x'"),
    C("optim.StepLR", "gamma", lambda: opt.StepLR(2, gamma=float("inf")), OptimizerConfigError, "gamma=inf"),
    C("optim.ExponentialLR", "gamma", lambda: opt.ExponentialLR(-1), OptimizerConfigError, "gamma=-1"),
    C("optim.ExponentialLR", "gamma", lambda: opt.ExponentialLR(None), OptimizerConfigError, "gamma=None"),
    C("optim.ExponentialLR", "gamma", lambda: opt.ExponentialLR(float("nan")), OptimizerConfigError, "gamma=nan"),
    C("optim.CosineLR", "t_max", lambda: opt.CosineLR(0), OptimizerConfigError, "t_max=0"),
    C("optim.CosineLR", "t_max", lambda: opt.CosineLR("5"), OptimizerConfigError, "t_max='5'"),
    C("optim.CosineLR", "t_max", lambda: opt.CosineLR(2.5), OptimizerConfigError, "t_max=2.5"),
    C("optim.CosineLR", "lr_min", lambda: opt.CosineLR(5, lr_min=-1), OptimizerConfigError, "lr_min=-1"),
    C("optim.CosineLR", "lr_min", lambda: opt.CosineLR(5, lr_min=float("nan")), OptimizerConfigError, "lr_min=nan"),
    C("optim.ReduceLROnPlateau", "factor", lambda: opt.ReduceLROnPlateau(factor=1), OptimizerConfigError, "factor=1"),
    C("optim.ReduceLROnPlateau", "factor", lambda: opt.ReduceLROnPlateau(factor="a"), OptimizerConfigError, "factor='a'"),
    C("optim.ReduceLROnPlateau", "patience", lambda: opt.ReduceLROnPlateau(patience=-1), OptimizerConfigError, "patience=-1"),
    C("optim.ReduceLROnPlateau", "patience", lambda: opt.ReduceLROnPlateau(patience="a"), OptimizerConfigError, "patience='a'"),
    C("optim.ReduceLROnPlateau", "threshold", lambda: opt.ReduceLROnPlateau(threshold=-1), OptimizerConfigError, "threshold=-1"),
    C("optim.ReduceLROnPlateau", "threshold", lambda: opt.ReduceLROnPlateau(threshold=float("nan")), OptimizerConfigError, "threshold=nan"),
    C("optim.ReduceLROnPlateau", "cooldown", lambda: opt.ReduceLROnPlateau(cooldown=1.5), OptimizerConfigError, "cooldown=1.5"),
    C("optim.ReduceLROnPlateau", "min_lr", lambda: opt.ReduceLROnPlateau(min_lr=-1), OptimizerConfigError, "min_lr=-1"),
    C("optim.ReduceLROnPlateau", "monitor", lambda: opt.ReduceLROnPlateau(monitor="acc"), OptimizerConfigError, "monitor='acc'"),
    # the command line (python -m symgrad)
    C("cli explain", "expr", lambda: cli("explain", "2x"), ParseError, r"2\*x"),
    C("cli explain", "expr", lambda: cli("explain", "ln(x)"), ParseError, "log"),
    C("cli explain", "wrt", lambda: cli("explain", "x**2", "--wrt", "z"), SymgradError, "does not appear"),
    C("cli explain", "wrt", lambda: cli("explain", "x**2", "--wrt", "x+1"), ParseError, "--wrt expects a variable"),
    C("cli explain", "name", lambda: cli("explain", "sin(x**2)", "--name", "x**2"), ParseError, "SUBEXPR=NAME"),
    C("cli explain", "name", lambda: cli("explain", "sin(x**2)", "--name", "x**2=1t"), ParseError, "not a valid name"),
    C("cli explain", "name", lambda: cli("explain", "sin(x**2)", "--name", "x**2=t", "--name", "x**2=u"), NameClashError, "two names"),
    C("cli grad", "expr", lambda: cli("grad", "x^2"), ParseError, r"x\*\*2"),
    C("cli grad", "expr", lambda: cli("grad", "3"), SymgradError, "no variables"),
    C("cli grad", "wrt", lambda: cli("grad", "x*y", "--wrt", "X"), SymgradError, "did you mean --wrt x"),
    C("cli formulas", "spec", lambda: cli("formulas", "mlp 2-x-1"), OptionError, "spec"),
    C("cli formulas", "spec", lambda: cli("formulas", "mlp 2-3-1 sigmod"), OptionError, "sigmoid"),
    C("cli optim", "name", lambda: cli("optim", "adamm"), OptionError, "adam"),
    C("cli prebuild", "dtype", lambda: cli("prebuild", "--dtype", "float16"), OptionError, "float16"),
    C("cli cache", "action", lambda: cli("cache", "purge"), OptionError, "symgrad cache clear"),
    C("cli optim", "lr", lambda: cli("optim", "adam", "--lr", "-1"), OptimizerConfigError, "lr=-1"),
    C("cli optim", "beta", lambda: cli("optim", "momentum", "--beta", "1"), OptimizerConfigError, "beta=1"),
    C("cli optim", "beta1", lambda: cli("optim", "adam", "--beta1", "2"), OptimizerConfigError, "beta1=2"),
    C("cli optim", "beta2", lambda: cli("optim", "adam", "--beta2", "1"), OptimizerConfigError, "beta2=1"),
    C("cli optim", "alpha", lambda: cli("optim", "rmsprop", "--alpha", "1"), OptimizerConfigError, "alpha=1"),
    C("cli optim", "eps", lambda: cli("optim", "adam", "--eps", "-1"), OptimizerConfigError, "eps=-1"),
    C("cli optim", "weight_decay", lambda: cli("optim", "adamw", "--weight-decay", "nan"), OptimizerConfigError, "weight_decay=nan"),
    C("cli optim", "clip_norm", lambda: cli("optim", "sgd", "--clip-norm", "0"), OptimizerConfigError, "clip_norm=0"),
    C("cli optim", "beta", lambda: cli("optim", "sgd", "--beta", "0.5"), OptionError, "beta"),
]


def _id(case: Case, seen: dict[str, int] = {}) -> str:  # noqa: B006 - numbering of the ids
    key = f"{case.entry}.{case.param}"
    seen[key] = seen.get(key, 0) + 1
    return f"{key}-{seen[key]}"


PARAMS = [pytest.param(c, id=_id(c), marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
          for c in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_names_its_fix(case: Case):
    with pytest.raises(SymgradError) as info:
        case.call()
    err = info.value
    assert isinstance(err, case.error), f"{type(err).__name__}, not {case.error.__name__}: {err}"
    assert re.search(case.match, str(err)), f"{case.match!r} not in: {err}"
    assert "Fix" in str(err), f"the message names no fix: {err}"


def test_the_catalogue_is_large_and_its_cases_distinct():
    assert len(CASES) >= 150
    assert len(CASES) - sum(bool(c.xfail) for c in CASES) >= 150
    codes = [(c.entry, c.param, c.call.__code__.co_code, c.call.__code__.co_consts, c.call.__code__.co_names)
             for c in CASES]
    assert len(set(codes)) == len(codes), "two catalogue cases make the same call"


def test_the_command_line_exits_2_with_the_message():
    from symgrad.__main__ import main

    assert main(["explain", "2x"]) == 2
    assert main(["optim", "adam", "--lr", "-1"]) == 2


# -- the meta-test: every public parameter has a case -------------------------------------------

def _public_methods(obj) -> dict[str, object]:
    return {n: getattr(obj, n) for n in dir(obj) if not n.startswith("_") and inspect.ismethod(getattr(obj, n))}


def public_parameters() -> set[tuple[str, str]]:
    """(entry point, parameter) of every public entry point the catalogue covers."""
    entries = {name: getattr(sg, name) for name in ("grad", "explain", "compile", "compile_residuals", "fit",
                                                    "load", "formulas", "parse_expr")}
    for obj in (F(), R(), T()):
        entries |= {f"{type(obj).__name__}.{n}": m for n, m in _public_methods(obj).items()}
    entries |= {f"Trained.{n}": getattr(M(), n) for n in ("predict", "evaluate", "save")}
    entries |= {f"nn.{n}": c for n, c in vars(nn).items() if not n.startswith("_") and isinstance(c, type)
                and c.__module__.startswith("symgrad.lang") and not issubclass(c, (sp.Basic, Exception))}
    entries["nn.activation"] = nn.activation  # the one builder that is a function
    entries |= {f"losses.{n}": f for n, f in vars(sg.losses).items() if n in sg.losses.LOSSES}
    entries |= {f"optim.{n}": c for n, c in vars(opt).items() if isinstance(c, type)
                and c.__module__.startswith("symgrad.lang") and c.__name__ not in ("Optimizer", "OptimizerConfigError")}
    out = {(entry, prm.name) for entry, fn in entries.items() for prm in inspect.signature(fn).parameters.values()
           if prm.name != "self"}
    from symgrad.__main__ import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        out |= {(f"cli {command}", act.dest) for act in parser._actions
                if not isinstance(act, (argparse._HelpAction, argparse._StoreTrueAction))}
    return out


def test_every_public_parameter_has_a_case():
    covered = {(c.entry, c.param) for c in CASES}
    missing = sorted(public_parameters() - covered)
    assert not missing, f"public parameters without a bad-input case in tests/test_catalogue.py: {missing}"
    assert len(public_parameters()) > 150  # the enumeration itself works
