"""The build recipes (``symgrad/build.py``): compile and fit check their options the same way,
before anything is derived or written to the cache."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import DtypeError, OptionError, SymgradError

a, x = sp.symbols("a x", real=True)
NET = sg.nn.MLP([2, 3, 1], activation="tanh")
X, Y = np.zeros((4, 2)), np.zeros(4)

BAD = [({"backend": "pyhton"}, OptionError, "backend 'pyhton'"),
       ({"dtype": "float16"}, DtypeError, "float16"),
       ({"dtype": np.int32}, DtypeError, "int32"),
       ({"dtype": "doubel"}, DtypeError, "doubel")]


@pytest.mark.parametrize("kw, error, text", BAD)
def test_compile_and_fit_refuse_the_same_options(kw, error, text, monkeypatch):
    import symgrad.jit as jit

    def no_build(*args, **kwargs):  # nothing may be derived or cached before the check
        raise AssertionError("a module was built before the options were checked")

    monkeypatch.setattr(jit, "ensure_source", no_build)
    monkeypatch.setattr(jit, "ensure_sized", no_build)
    errors = []
    for call in (lambda: sg.compile(a * x, [a], [x], **kw), lambda: sg.fit(NET, "bce", X, Y, epochs=1, **kw),
                 lambda: sg.compile(sg.msum(NET.expr), NET.params, [NET.x], **kw)):
        with pytest.raises(error, match="Fix:") as info:
            call()
        assert text in str(info.value)
        errors.append((type(info.value), str(info.value)))
    assert len(set(errors)) == 1  # the same error, word for word


def test_bad_reduction_and_loss_name_fix():
    with pytest.raises(OptionError, match="reduction 'avg'.*Fix:"):
        sg.compile(a * x, [a], [x], reduction="avg")
    with pytest.raises(OptionError, match="unknown loss 'bse'.*Fix:"):
        sg.fit(NET, "bse", X, Y, epochs=1)
    with pytest.raises(OptionError, match="loss must be a name or a function"):
        sg.fit(NET, 3, X, Y, epochs=1)
    assert issubclass(OptionError, SymgradError) and issubclass(OptionError, ValueError)
