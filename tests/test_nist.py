"""NIST StRD nonlinear regression (bench/data/nist): symgrad's exact Jacobian reaches the certified
values. A fast subset runs here (the whole table of 54 cases is ``python -m bench --only W6``);
the certified values are NIST's, so this oracle shares nothing with symgrad."""

from __future__ import annotations

import numpy as np
import pytest

from bench import nist_strd as nist

# lower, average and higher difficulty; negative powers (Eckerle4, Thurber's rational, Rat43's 1/b4 root)
SUBSET = ["Misra1a", "MGH09", "Eckerle4", "Rat43", "BoxBOD", "Thurber"]


@pytest.mark.parametrize("name", SUBSET)
@pytest.mark.parametrize("start", [1, 2])
def test_certified_values_reached(name, start):
    problem = nist.load(name)
    case = nist.fit_case(problem, start, lambda p: nist.symgrad_residuals(p, backend="python"))
    assert case.min_lre >= nist.LRE_TARGET, f"{name} start {start}: LREs {case.lre}"


def test_certified_standard_deviations_from_the_covariance():
    """sqrt(diag(s²(JᵀJ)⁻¹)) at the certified values is NIST's certified standard deviation."""
    import symgrad as sg

    problem = nist.load("Misra1a")
    params, preds = nist.symbols_of(problem)
    r = sg.compile_residuals(nist.MODELS["Misra1a"] - nist.y_sym, params, [*preds, nist.y_sym], backend="python")
    sd = np.sqrt(np.diag(r.covariance(problem.certified, *problem.x, problem.y)))
    np.testing.assert_allclose(sd, problem.certified_sd, rtol=1e-6)  # certified to 6-10 digits


@pytest.mark.numba
def test_numba_jacobian_matches_lambdify_on_every_problem():
    """Every one of the 27 models: symgrad's compiled Jacobian against sympy.lambdify(sympy.diff)."""
    for name in nist.MODELS:
        problem = nist.load(name)
        fun, jac = nist.symgrad_residuals(problem)
        ref_fun, ref_jac = nist.lambdify_residuals(problem)
        for theta in (*problem.starts, problem.certified):
            np.testing.assert_allclose(fun(theta), ref_fun(theta), rtol=1e-12, atol=1e-12 * np.abs(problem.y).max())
            want = ref_jac(theta)
            scale = np.abs(want).max(axis=0, keepdims=True)
            np.testing.assert_allclose(jac(theta) / scale, want / scale, rtol=0, atol=1e-12, err_msg=name)
