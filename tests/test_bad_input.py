"""Bad input to compile gets a SymgradError that names the fix; a lone symbol is a list of one."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import UnboundSymbolError

a, b, x = sp.symbols("a b x", real=True)


def test_a_lone_symbol_is_a_list_of_one():
    f = sg.compile(a * x + b, wrt=[a, b], data=x, backend="python")
    g = sg.compile(a * x, wrt=a, data=[x], backend="python")
    assert f.value_and_grad([2.0, 1.0], np.array([1.0, 3.0]))[1].tolist() == [2.0, 1.0]
    assert g.grad([2.0], np.array([1.0, 3.0])).tolist() == [2.0]


@pytest.mark.parametrize("kw, text", [
    (dict(wrt=[a, a], data=[x]), "listed more than once in wrt"),  # was accepted, with a wrong gradient
    (dict(wrt=[a], data=[x, x]), "listed more than once in data"),
    (dict(wrt=[2 * a], data=[x]), "not a symbol"),
    (dict(wrt="a", data=[x]), "takes symbols"),
    (dict(wrt=[a], data=3), "takes symbols"),
])
def test_bad_symbol_lists_name_the_fix(kw, text):
    for call in (sg.compile, sg.compile_residuals):
        with pytest.raises(UnboundSymbolError, match="Fix:") as info:
            call(a * x, backend="python", **kw)
        assert text in str(info.value)
