"""Optimizers: generated kernels against the hand-written NumPy oracle (and torch if present)."""

import math

import numpy as np
import pytest
import sympy as sp
from optim_oracle import reference_step

from symgrad.lang.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    ConstantLR,
    CosineLR,
    ExponentialLR,
    Momentum,
    Nesterov,
    OptimizerConfigError,
    RMSProp,
    StepLR,
    clip_scale,
)

OPTIMIZERS = {
    "sgd": SGD(lr=0.1),
    "sgd_wd": SGD(lr=0.1, weight_decay=0.05),
    "momentum": Momentum(lr=0.05, beta=0.8),
    "nesterov_wd": Nesterov(lr=0.05, beta=0.9, weight_decay=0.01),
    "adam": Adam(lr=1e-2),
    "adam_wd": Adam(lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
    "adamw": AdamW(lr=1e-2, weight_decay=0.1),
    "adagrad": AdaGrad(lr=0.1),
    "rmsprop_wd": RMSProp(lr=0.01, alpha=0.9, weight_decay=0.01),
}
TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-15}, np.float32: {"rtol": 1e-5, "atol": 1e-7}}


def _compile(opt, dtype, jit=lambda f: f):
    ns = {"math": math, "F": dtype, "jit": jit}
    exec(opt.step_source(), ns)
    return ns["opt_update"]


def _run_both(opt, dtype, fn, steps=5, n=64):
    """``steps`` updates through ``fn`` and through ``reference_step``, on the same gradients."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    p_ref, state, state_ref = p.copy(), opt.init_state(n, dtype), opt.init_state(n, dtype)
    for t in range(1, steps + 1):
        g = rng.standard_normal(n).astype(dtype)
        fn(p, g, *state.values(), opt.lr, t, opt.hyper_values())
        reference_step(opt, p_ref, g, state_ref, t)
    return (p, state), (p_ref, state_ref)


def _assert_match(got, want, dtype):
    (p, state), (p_ref, state_ref) = got, want
    for a, b in [(p, p_ref)] + [(state[k], state_ref[k]) for k in state]:
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("key", OPTIMIZERS)
def test_python_kernel_matches_reference(key, dtype):
    opt = OPTIMIZERS[key]
    _assert_match(*_run_both(opt, dtype, _compile(opt, dtype)), dtype)


@pytest.mark.numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("key", ["adam_wd", "adamw"])
def test_numba_kernel_matches_reference(key, dtype):
    numba = pytest.importorskip("numba")
    opt = OPTIMIZERS[key]
    fn = _compile(opt, dtype, numba.njit)
    _assert_match(*_run_both(opt, dtype, fn), dtype)
    if dtype is np.float32:
        # float32 -> float64 widening anywhere is a silently promoted constant (numba/numba#2006);
        # only narrowing is expected, where per-call scalars computed in float64 are cast with F()
        (llvm_ir,) = fn.inspect_llvm().values()
        assert "fpext" not in llvm_ir


def test_step_source_shape():
    src = OPTIMIZERS["adam_wd"].step_source(name="adam_step")
    assert src.startswith("@jit\ndef adam_step(p, g, m, v, lr, t, hyper):")
    assert "for i in range(p.shape[0]):" in src
    assert "beta1 = F(hyper[0])" in src and "eps = F(hyper[2])" in src  # read, not baked in
    assert "**" not in src.split("for i")[1]  # bias corrections hoisted out of the loop


def test_hyperparameter_values_do_not_change_the_code():
    """A grid over weight_decay (0 included), betas or eps compiles one module (issue 21); the
    printed rules show the decay term only when it is on."""
    for cls in (Adam, AdamW, SGD, Momentum):
        on = cls(lr=1e-3, weight_decay=0.1)
        assert cls(lr=0.5, weight_decay=0.0).step_source() == on.step_source()
        assert "weight_decay" in str(on) and "weight_decay" not in str(cls(lr=0.5, weight_decay=0.0))
    base = Adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1).step_source()
    assert Adam(lr=0.5, beta1=0.8, beta2=0.99, eps=1e-6).step_source() == base
    assert Momentum(lr=0.1, beta=0.5).step_source() == Momentum(lr=0.2, beta=0.95).step_source()


@pytest.mark.parametrize("key", OPTIMIZERS)
def test_rules_are_pure_sympy(key):
    opt = OPTIMIZERS[key]
    rules = opt.rules()
    known = {sp.Symbol(n, real=True) for n in ("p", "g", "lr", "t", *opt.state, *opt.hyper)}
    for target, expr in rules:
        assert isinstance(target, sp.Symbol) and target.is_real
        assert isinstance(expr, sp.Expr)
        assert expr.free_symbols <= known, expr.free_symbols - known
        known.add(target)  # later rules may use intermediates such as m̂
    assert rules[-1][0] == sp.Symbol("p", real=True)
    assert {str(t) for t, _ in rules} >= set(opt.state)


FORMULAS = {
    "sgd": ["p ← p − lr·g"],
    "sgd_wd": ["g ← g + λ·p", "p ← p − lr·g"],
    "momentum": ["v ← β·v + g", "p ← p − lr·v"],
    "nesterov_wd": ["g ← g + λ·p", "v ← β·v + g", "p ← p − lr·(g + β·v)"],
    "adam": ["m ← β1·m + (1 − β1)·g", "v ← β2·v + (1 − β2)·g²", "m̂ ← m/(1 − β1^t)",
             "p ← p − lr·m̂/(√v̂ + ε)"],
    "adamw": ["p ← (1 − lr·λ)·p", "v̂ ← v/(1 − β2^t)"],
    "adagrad": ["s ← s + g²", "p ← p − lr·g/(√s + ε)"],
    "rmsprop_wd": ["s ← α·s + (1 − α)·g²"],
}


@pytest.mark.parametrize("key", FORMULAS)
def test_str_prints_the_rules(key):
    text = str(OPTIMIZERS[key])
    for piece in FORMULAS[key]:
        assert piece in text.splitlines()


def test_latex_block():
    tex = OPTIMIZERS["adamw"].latex()
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert r"\hat{m} &\leftarrow \frac{m}{1 - \beta_{1}^{t}}" in tex
    assert r"\varepsilon" in tex and r"\lambda" in tex


def test_adamw_decay_is_decoupled():
    # decoupled: with a zero gradient only the decay moves p, and m, v stay zero
    opt = AdamW(lr=0.1, weight_decay=0.5)
    p, g, st = np.ones(3), np.zeros(3), opt.init_state(3)
    _compile(opt, np.float64)(p, g, st["m"], st["v"], opt.lr, 1, opt.hyper_values())
    np.testing.assert_allclose(p, 0.95)
    assert not st["m"].any() and not st["v"].any()


def test_bad_hyperparameters():
    for make in (lambda: Adam(beta1=1.0), lambda: SGD(lr=-1), lambda: RMSProp(eps=float("nan")),
                 lambda: Momentum(clip_norm=0.0), lambda: StepLR(0), lambda: CosineLR(0)):
        with pytest.raises(OptimizerConfigError):
            make()


@pytest.mark.parametrize("make, fix", [
    (lambda: Momentum(0.01, momentum=0.9), r"settings are lr, beta, .*\(momentum= is beta=\)"),  # PyTorch's name
    (lambda: Nesterov(0.01, momentum=0.9), r"^Nesterov\(\.\.\.\).*momentum= is beta="),
    (lambda: Adam(betas=(0.9, 0.99)), r"betas= is beta1=\.\.\., beta2="),
    (lambda: Adam(0.01, momentum=0.9), r"settings are lr, beta1, beta2, eps, weight_decay, clip_norm, schedule\.$"),
    (lambda: RMSProp(rho=0.9), r"rho= is alpha="),
    (lambda: SGD(0.1, 0.9), r"too many positional arguments. Fix: its settings are lr, weight_decay"),
    (lambda: AdamW(0.01, foo=1), r"unexpected keyword argument 'foo'. Fix: its settings are lr, beta1"),
])
def test_unknown_settings_name_the_ones_there_are(make, fix):
    with pytest.raises(OptimizerConfigError, match=fix):
        make()


def test_common_options():
    opt = Adam(clip_norm=1.0, schedule=StepLR(step_size=2, gamma=0.5))
    assert opt.clip_norm == 1.0 and Adam().clip_norm is None
    assert [opt.lr_at(e) for e in range(4)] == [1e-3, 1e-3, 5e-4, 5e-4]
    assert "clip_norm=1.0" in repr(opt)


def test_schedules():
    assert ConstantLR()(0.3, 10) == 0.3
    assert [StepLR(3, 0.1)(1.0, e) for e in (0, 2, 3, 6)] == pytest.approx([1, 1, 0.1, 0.01])
    assert ExponentialLR(0.9)(2.0, 2) == pytest.approx(2.0 * 0.81)
    cos = CosineLR(t_max=10, lr_min=0.1)
    assert cos(1.1, 0) == pytest.approx(1.1)
    assert cos(1.1, 5) == pytest.approx(0.6)
    assert cos(1.1, 10) == pytest.approx(0.1) and cos(1.1, 25) == pytest.approx(0.1)
    for s in (ConstantLR(), StepLR(2), ExponentialLR(0.5), cos):
        assert s.formula.startswith("lr = ")


def test_clip_scale():
    assert clip_scale(123.0, None) == 1.0
    assert clip_scale(0.5, 1.0) == 1.0 and clip_scale(0.0, 1.0) == 1.0
    assert clip_scale(4.0, 2.0) == pytest.approx(0.5, rel=1e-6)
    assert clip_scale(math.inf, 1.0) == 0.0
    assert math.isnan(clip_scale(math.nan, 1.0))


TORCH_PAIRS = {
    "adam": lambda torch, ps: torch.optim.Adam(ps, lr=1e-2),
    "adam_wd": lambda torch, ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda torch, ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "rmsprop_wd": lambda torch, ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, weight_decay=0.01),
    "adagrad": lambda torch, ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-10),
    "nesterov_wd": lambda torch, ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                     weight_decay=0.01),
}


@pytest.mark.parametrize("key", TORCH_PAIRS)
def test_matches_torch(key):
    torch = pytest.importorskip("torch")
    opt, rng = OPTIMIZERS[key], np.random.default_rng(1)
    p = rng.standard_normal(32)
    param = torch.nn.Parameter(torch.from_numpy(p.copy()))
    torch_opt, fn, state = TORCH_PAIRS[key](torch, [param]), _compile(opt, np.float64), opt.init_state(32)
    for t in range(1, 6):
        g = rng.standard_normal(32)
        param.grad = torch.from_numpy(g.copy())
        torch_opt.step()
        fn(p, g, *state.values(), opt.lr, t, opt.hyper_values())
    np.testing.assert_allclose(p, param.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_the_printed_rules_show_gradient_clipping():
    # clip_norm appeared only as a parameter in the header, though the kernel applies it first
    import symgrad as sg

    text = str(sg.optim.Adam(1e-3, clip_norm=1.0))
    lines = text.splitlines()
    assert lines[1].startswith("g ← g·c/(‖g‖ + 10⁻⁶) if ‖g‖ + 10⁻⁶ > c") and lines[2].startswith("m ← ")
    assert r"\|g\|" in sg.optim.Adam(1e-3, clip_norm=1.0)._repr_latex_()
    assert "‖g‖" not in str(sg.optim.Adam(1e-3))
