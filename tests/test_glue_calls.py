"""Glue calls every generated function through its overload twin (``codegen/glue.py``).

The training loop and a deep model's ``loss_grad`` are glue: compiled without LLVM's
optimiser, and cached by Numba only if they hold no direct reference to a dispatcher. Each
kind's emitters write their calls through ``prog.fn``; one that wrote a bare name would still
compile and train, but every process would compile its module again. This test reads the
generated modules (no compiling) of a corpus that uses every registered kind, so a kind added
without a model here fails it too."""

from __future__ import annotations

import ast
import re
from types import SimpleNamespace

import pytest
import sympy as sp

import symgrad as sg
from symgrad import build
from symgrad.kinds import KINDS
from symgrad.lang.losses import loss_fn, target_symbol
from symgrad.lang.walk import forget_other_models
from symgrad.sklearn._weights import weighted_mse, weighted_softmax_ce

nn = sg.nn
MS = sp.MatrixSymbol


def _softmax_net():
    x, W, b = MS("x", 3, 1), MS("W", 4, 3), MS("b", 4, 1)
    return SimpleNamespace(expr=sg.softmax(W * x + b), params=[W, b], x=x)


CORPUS = {
    "dense, softmax cross-entropy": (lambda: nn.MLP([4, 5, 3], activation="relu"), "softmax_cross_entropy"),
    "dense, mse": (lambda: nn.MLP([4, 5, 2], activation="tanh"), "mse"),
    "deep (outlined loss_grad)": (lambda: nn.MLP([3] + [4] * 14 + [2], activation="relu"), "softmax_cross_entropy"),
    "residual": (lambda: nn.Sequential([nn.Dense(3, 4, "tanh"), nn.Residual([nn.Dense(4, 6, "tanh"), nn.Dense(6, 4)]),
                                        nn.Dense(4, 2)], 3), "huber"),
    "dropout": (lambda: nn.Sequential([nn.Dense(2, 3, "relu"), nn.Dropout(0.5), nn.Dense(3, 1)], 2), "bce"),
    "cnn, max pooling": (lambda: nn.Sequential([nn.Conv2D(1, 2, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
                                                nn.Flatten(), nn.Dense(8, 3)], input_shape=(1, 4, 4)),
                         "softmax_cross_entropy"),
    "cnn, batch norm, average pooling": (lambda: nn.Sequential(
        [nn.Conv2D(1, 2, 3), nn.BatchNorm(2), nn.Activation("relu"), nn.AvgPool2D(3), nn.Flatten(), nn.Dense(2, 3)],
        (1, 5, 5)), "softmax_cross_entropy"),
    "transformer": (lambda: nn.Transformer(5, 4, 1, 1, 2), "token_cross_entropy"),
    "softmax output": (_softmax_net, "mse"),
    "weighted losses (logsumexp, select)": (lambda: nn.MLP([3, 4, 3]), weighted_softmax_ce),
    "weighted mse (select)": (lambda: nn.MLP([3, 4, 3]), weighted_mse),
}


def _source(model, loss) -> str:
    forget_other_models()
    fn, _ = loss_fn(loss)
    y = target_symbol(fn, model.expr)
    opt = sg.optim.Adam(1e-3)
    text, _ = build.training_source(model, fn(model.expr, y), y, opt.step_source("opt_update"), opt.state, "float32")
    return text


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return {name: _source(make(), loss) for name, (make, loss) in CORPUS.items()}


def _decorated(fn: ast.FunctionDef) -> set[str]:
    return {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}


def test_the_corpus_uses_every_kind(sources):
    used = {k for text in sources.values() for k in re.findall(r"^ +# \S+: (\w+)", text, re.M)}
    # a residual lowers to a map node (kinds/rowwise.py), labelled r<layer>
    used |= {"residual"} if "# r2: map" in sources["residual"] else set()
    assert set(KINDS) <= used, f"no model in CORPUS uses {sorted(set(KINDS) - used)}: add one"


@pytest.mark.parametrize("name", list(CORPUS))
def test_glue_calls_generated_functions_through_their_twins(sources, name):
    tree = ast.parse(sources[name])
    defs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    aliases = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
               if isinstance(t, ast.Name) and t.id.endswith("_c")}
    glue = [n for n in tree.body if isinstance(n, ast.FunctionDef) and {"jit_glue", "jit_par_glue"} & _decorated(n)]
    assert {g.name for g in glue} >= {"train_chunk", "train_chunk_par", "par_grads"}
    for g in glue:
        called = {c.func.id for c in ast.walk(g) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert not called & defs, f"{g.name} calls {sorted(called & defs)} directly, not through their twins"
        assert {c for c in called if c.endswith("_c")} <= aliases
    # every twin the module defines is called by some glue: the set was returned, not guessed
    twins = {c.func.id for g in glue for c in ast.walk(g) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert aliases <= twins
