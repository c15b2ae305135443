"""Differential test: compiled code against the independent oracle, over random expressions.

Random expressions from ``tests/corpus.py`` (every function, operator, exponent form and name
the printer must handle) are compiled, and value, value_and_grad, grad, hvp, hessian,
pointwise and the residual Jacobian are compared with ``sympy.diff`` of the original expression
evaluated by mpmath at 50 digits (``tests/oracle.py``). The hypothesis run uses the Python
reference backend (it runs the generated source itself, so every printer bug shows); seeded
batches run under Numba in both dtypes, one module per batch.

``--corpus N`` (default 300) is the number of random expressions: 60 drawn by hypothesis (which
shrinks a failure to a small expression), the rest drawn from seeds by the same generator and
checked in worker processes, one per core (each expression costs ~0.3 s of derivation, so the
default corpus takes about a minute on two cores). ``--corpus 3000`` runs a long corpus.
"""

from __future__ import annotations

import os
import random
import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import sympy as sp
from corpus import expression, symbols
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from oracle import Oracle, OutsideDomain, close

import symgrad as sg

# a random expression need not hold every parameter: compile warns about each one it lacks (right for a user)
pytestmark = pytest.mark.filterwarnings("ignore:wrt= holds:UserWarning")

THETA = [0.83, 1.27]
ROWS = np.array([0.41, 1.13, 1.62])
RTOL = 1e-9
MAX_MAGNITUDE = 1e6  # values and derivatives beyond this are ill-conditioned points, not tests


def _truth(oracle: Oracle, theta, rows):
    try:
        got = oracle.reduced(theta, [rows])
    except OutsideDomain:
        return None
    v, g, h = got
    big = max(abs(v), np.abs(g).max(), np.abs(h).max())
    return got if np.isfinite(big) and big < MAX_MAGNITUDE else None


def _check_all(expr, params, data, dtype="float64", backend="python", rtol=RTOL):
    oracle = Oracle(expr, params, [data])
    truth = _truth(oracle, THETA, ROWS)
    if truth is None:
        return False
    want_v, want_g, want_h = truth
    rows = ROWS.astype(dtype)
    f = sg.compile(expr, wrt=params, data=[data], dtype=dtype, backend=backend)
    v, grad = f.value_and_grad(THETA, rows)
    what = f"{expr} with {params}, {data}"
    close(v, want_v, rtol, f"value beside the gradient of {what}")
    close(f.value(THETA, rows), want_v, rtol, f"value of {what}")
    close(grad, want_g, rtol, f"gradient of {what}")
    close(f.grad(THETA, rows), want_g, rtol, f"grad of {what}")
    vec = np.array([0.6, -1.1])
    close(f.hvp(THETA, vec, rows), want_h @ vec, rtol, f"hvp of {what}")
    close(f.hessian(THETA, rows), want_h, rtol, f"hessian of {what}")
    return True


def _check_rows(expr, params, data, backend="python", rtol=RTOL):
    """Pointwise (parameters as per-point inputs) and the residual Jacobian, row by row."""
    oracle = Oracle(expr, params, [data])
    try:
        per_row = [oracle.at(THETA, r) for r in ROWS]
    except OutsideDomain:
        return
    want_v = [float(v) for v, _, _ in per_row]
    want_j = [[float(x) for x in g] for _, g, _ in per_row]
    if max(map(abs, want_v + sum(want_j, []))) > MAX_MAGNITUDE:
        return
    r = sg.compile_residuals(expr, params, [data], backend=backend)
    close(r.residuals(THETA, ROWS), want_v, rtol, f"residuals of {expr}")
    close(r.jacobian(THETA, ROWS), want_j, rtol, f"jacobian of {expr}")
    pw = sg.compile(expr, wrt=params, data=[data], reduction="none", backend=backend)
    vals, grads = pw.pointwise(np.full(3, THETA[0]), np.full(3, THETA[1]), ROWS)
    close(vals, want_v, rtol, f"pointwise values of {expr}")
    close(grads, want_j, rtol, f"pointwise gradients of {expr}")


def _settings(request_count: int):
    # each example compiles a module: shrinking a failure of a long run took over ten minutes,
    # so runs longer than the default report the failing expression as it was drawn
    phases = list(Phase) if request_count <= 60 else [p for p in Phase if p is not Phase.shrink]
    return settings(max_examples=request_count, deadline=None, derandomize=True, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _drawer(data):
    return lambda options: data.draw(st.sampled_from(list(options)))


@pytest.fixture
def corpus_size(request):
    return request.config.getoption("--corpus")


HYPOTHESIS_EXAMPLES = 60


def test_random_expressions_match_oracle(corpus_size):
    @_settings(min(corpus_size, HYPOTHESIS_EXAMPLES))
    @given(st.data())
    def run(data):
        pick = _drawer(data)
        params, x = symbols(pick)
        expr = expression(pick, params, x)
        assume(expr.free_symbols & set(params))
        assume(_check_all(expr, params, x))

    run()


def test_random_expressions_pointwise_and_residuals_match_oracle(corpus_size):
    @_settings(max(min(corpus_size, HYPOTHESIS_EXAMPLES) // 3, 10))
    @given(st.data())
    def run(data):
        pick = _drawer(data)
        params, x = symbols(pick)
        expr = expression(pick, params, x)
        assume(expr.free_symbols & set(params))
        _check_rows(expr, params, x)

    run()


class _TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise _TooSlow


#: One expression's derivation and checks take ~0.3 s; one that takes a minute is a finding.
SECONDS_PER_EXPRESSION = 60


def _check_seed(seed: int) -> tuple[str, str]:
    """Check the expression drawn from ``seed`` (in a worker): ('checked' | 'outside' | 'no
    parameter' | 'unsupported' | 'MISMATCH' | 'ERROR' | 'TIMEOUT', what). Every third seed also checks pointwise
    and the residual Jacobian."""
    rnd = random.Random(seed)
    params, x = symbols(rnd.choice)
    expr = expression(rnd.choice, params, x)
    if not expr.free_symbols & set(params):
        return "no parameter", str(expr)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_EXPRESSION)
    try:
        checked = _check_all(expr, params, x)
        if checked and seed % 3 == 0:
            _check_rows(expr, params, x)
    except AssertionError as exc:
        return "MISMATCH", f"seed {seed}: {exc}"
    except sg.errors.UnsupportedFunctionError as exc:
        # SymPy's own evaluation can bring in a function symgrad refuses, by design, with a clear
        # error (|exp(atanh(u))| becomes exp(re(atanh(u))): atanh may be complex for all SymPy knows)
        return "unsupported", f"seed {seed}: {exc}"
    except sg.errors.UnsupportedModelError as exc:
        # SymPy recurses without end evaluating a few nests of Max/Min/Piecewise (2 of the first
        # 1,440 seeds, with any recursion limit up to 10,000); symgrad refuses them with a clear
        # error and a fix (build.py). Any other refusal is a finding.
        if "recursion limit inside SymPy" not in str(exc):
            return "ERROR", f"seed {seed}: {expr} with {params}, {x}: {type(exc).__name__}: {exc}"
        return "unsupported", f"seed {seed}: {exc}"
    except _TooSlow:
        return "TIMEOUT", f"seed {seed}: {expr} with {params}, {x}: over {SECONDS_PER_EXPRESSION} s"
    except Exception as exc:  # noqa: BLE001 - any crash is a finding, reported with its seed
        return "ERROR", f"seed {seed}: {expr} with {params}, {x}: {type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
    return ("checked" if checked else "outside"), str(expr)


def test_seeded_corpus_in_worker_processes(corpus_size):
    """The rest of the corpus, drawn from seeds, checked one worker per core."""
    seeds = range(max(corpus_size - HYPOTHESIS_EXAMPLES, 0))
    if not seeds:
        pytest.skip("--corpus covers only the hypothesis run")
    workers = max(2, len(os.sched_getaffinity(0)))
    # spawn, not fork: the parent may hold Numba's and threads' state
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_check_seed, seeds, chunksize=4))
    found = [f"{status} {what}" for status, what in results if status in ("MISMATCH", "ERROR", "TIMEOUT")]
    assert not found, f"{len(found)} of {len(results)} corpus expressions failed:\n" + "\n".join(found[:10])
    refused = [what for status, what in results if status == "unsupported"]
    # refusals are the exception: many would mean the generator or symgrad changed
    assert len(refused) <= max(2, len(results) // 200), f"{len(refused)} refused:\n" + "\n".join(refused[:10])
    checked = sum(status == "checked" for status, _ in results)
    # most draws are inside the domain at the test point; far fewer means the generator broke
    assert checked >= 0.6 * len(results), f"only {checked} of {len(results)} expressions were checkable"


def _numba_batch(seed: int, count: int):
    """``count`` random expressions (each with its own two parameters) that are all defined at the
    test point, summed into one model: one Numba module checks them all."""
    rnd = random.Random(seed)
    pick = rnd.choice
    terms, params, x = [], [], sp.Symbol("x", real=True)
    while len(terms) < count:
        ps, _ = symbols(pick)
        ps = [sp.Symbol(f"{p.name}_{len(terms)}", real=True) for p in ps]
        e = expression(pick, ps, x)
        if e.free_symbols & set(ps) and _truth(Oracle(e, ps, [x]), THETA, ROWS) is not None:
            terms.append(e)
            params += ps
    return sp.Add(*terms), params, x


@pytest.mark.numba
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 2e-3)])
def test_seeded_batches_under_numba(dtype, rtol):
    expr, params, x = _numba_batch(seed=7, count=6)
    oracle = Oracle(expr, params, [x])
    theta = THETA * (len(params) // 2)
    want_v, want_g, want_h = oracle.reduced(theta, [ROWS])
    f = sg.compile(expr, wrt=params, data=[x], dtype=dtype)
    rows = ROWS.astype(dtype)
    v, grad = f.value_and_grad(theta, rows)
    assert grad.dtype == np.dtype(dtype)
    close([v, *grad], [want_v, *want_g], rtol, f"{dtype} value and gradient of {expr}")
    vec = np.cos(np.arange(len(params)))
    close(f.hvp(theta, vec, rows), want_h @ vec, rtol, f"{dtype} hvp")
    close(f.hessian(theta, rows), want_h, rtol, f"{dtype} hessian")
