"""Readable Numba source for scalar (formula) models.

The generated module has one loop over samples per function; its size depends on the
formula, never on the number of samples. Shared subexpressions are hoisted by CSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..lang.ops import HELPER_NEEDS, HELPERS
from ..native import vecmath
from .accurate import accurate_forms
from .printer import NumbaPrinter, user_names


@dataclass
class ScalarSpec:
    """Everything codegen needs for a formula model; all expressions are per sample."""

    params: list[sp.Symbol]
    data: list[sp.Symbol]
    loss: sp.Expr
    grads: list[sp.Expr]
    hvp: list[sp.Expr]  # d(grad . v)/d params, in the direction symbols ``v``
    v: list[sp.Dummy]
    hess: list[list[sp.Expr]] | None  # upper triangle used; None when too many params
    reduction: str  # "mean", "sum", "none" (pointwise) or "residuals" (per-sample values and Jacobian)
    dtype: str  # "float32" or "float64"
    parallel: bool
    title: str


def _cse(printer: NumbaPrinter, exprs: list[sp.Expr], indent: str, libm: bool = True):
    """CSE ``exprs``: (the (temporary, value) pairs, their statement lines, printed finals)."""
    syms = (sp.Dummy(f"t{k}") for k in range(10**9))  # a Dummy never equals a user's symbol
    replacements, reduced = accurate_forms(*sp.cse(exprs, symbols=syms, order="none"), libm=libm)
    lines = [f"{indent}{printer.doprint(s)} = {printer.doprint(v)}" for s, v in replacements]
    return replacements, lines, [printer.doprint(r) for r in reduced]


def _block(printer: NumbaPrinter, exprs: list[sp.Expr], indent: str) -> tuple[list[str], list[str]]:
    """CSE ``exprs`` of a network's map, a loop to vectorise; return (statement lines, printed finals)."""
    return _cse(printer, exprs, indent, libm=False)[1:]


def _split_invariant(lines: list[str], replacements, per_sample: set[sp.Symbol]) -> tuple[list[str], list[str]]:
    """(statements that do not depend on the sample, the rest), keeping their order."""
    varying, before, inside = set(per_sample), [], []
    for line, (s, v) in zip(lines, replacements):
        if v.free_symbols & varying:
            varying.add(s)
            inside.append(line)
        else:
            before.append(line)
    return before, inside


def _trig_args(exprs: list[sp.Expr]) -> list[sp.Expr]:
    """Arguments of sin and cos in ``exprs``, in a stable order."""
    # one walk over the shared DAG: every gradient holds the model, so atoms() per expression was N^2
    found, seen, stack = set(), set(), list(exprs)
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        if isinstance(e, (sp.sin, sp.cos)):
            found.add(e.args[0])
        stack.extend(e.args)
    return sorted(found, key=sp.default_sort_key)


class _Gen:
    def __init__(self, spec: ScalarSpec):
        self.s = spec
        names = user_names([("p_", spec.params), ("d_", spec.data)])
        #: per-sample arrays are data_<name>: the user's name without its prefix (unique too)
        self.arrays = {s: "data_" + n[2:] for s, n in names.items()}
        names.update({v: "v_" + names[p] for v, p in zip(spec.v, spec.params)})
        self.names = names
        self.p = NumbaPrinter(fast_trig=True, names=names)
        self.p_exact = NumbaPrinter(names=names)  # libm sin/cos, for the rare arguments beyond TRIG_MAX
        self.loop = "prange" if spec.parallel else "range"
        self.decor = "@jit_par" if spec.parallel else "@jit"

    def _body(self, exprs: list[sp.Expr], printer: NumbaPrinter, indent: str,
              per_sample: list[sp.Symbol]) -> tuple[list[str], list[str], list[str]]:
        """CSE'd statements for ``exprs``: (those that depend only on the parameters, to run once
        before the loop; those that depend on ``per_sample``, for the loop body; the final
        expressions). Both lists compute the same values with the same operations as one
        block in the loop would: only where they run changes. Invariant statements in the
        loop made LLVM 20's loop vectoriser take minutes (vputils::isUniformAcrossVFsAndUFs
        walks each operand DAG without memoising it). With fast trig, each sin/cos
        argument's range is counted into ``huge`` (a vectorisable reduction), so the caller
        can redo the loop."""
        args = _trig_args(exprs) if printer.fast_trig else []
        replacements, lines, finals = _cse(printer, [*exprs, *args], indent)
        before, inside = _split_invariant(lines, replacements, set(per_sample))
        before = ["    " + ln.removeprefix(indent) for ln in before]  # hoisted out of the loop
        if args:
            checks = " | ".join(f"(abs({a}) > TRIG_MAX)" for a in finals[len(exprs):])
            inside.append(f"{indent}huge += {checks}")
        return before, inside, finals[: len(exprs)]

    def _with_fallback(self, loop) -> list[str]:
        """``loop(printer)`` gives a function's loop lines; with sin/cos, the fast loop runs
        first and, where an argument was beyond TRIG_MAX, the libm loop replaces its results."""
        fast = loop(self.p)
        if not any(ln.lstrip().startswith("huge +=") for ln in fast):
            return fast
        exact = ["    " + ln for ln in loop(self.p_exact)]
        return ["    huge = 0", *fast, "    if huge:",
                "        # a sin/cos argument beyond vecmath.TRIG_MAX, where vm's are not exact: use libm",
                *exact]

    def _loads(self, arrays: list[sp.Symbol], indent: str) -> list[str]:
        return [f"{indent}{self.names[d]} = {self.arrays[d]}[i]" for d in arrays]

    def _param_loads(self, vec: str = "theta", syms: list[sp.Basic] | None = None) -> list[str]:
        return [f"    {self.names[p]} = {vec}[{k}]" for k, p in enumerate(syms or self.s.params)]

    def _sig(self, before: tuple[str, ...], after: tuple[str, ...], per_point: bool = False) -> str:
        """Arguments: theta, ``before``, one array per data symbol, ``after``."""
        arrays = (self.s.params if per_point else []) + self.s.data
        names = [self.arrays[d] for d in arrays]
        first = [] if per_point else ["theta"]
        return ", ".join(first + list(before) + names + list(after))

    def _n(self) -> str:
        arrays = (self.s.params if self.s.reduction == "none" else []) + self.s.data
        return f"{self.arrays[arrays[0]]}.shape[0]" if arrays else "1"

    def _finish(self, acc: str) -> str:
        return f"F({acc} / n)" if self.s.reduction == "mean" else f"F({acc})"

    def reduced(self, name: str, exprs: list[sp.Expr], outs: list[str], before=(), after=()) -> list[str]:
        """A function accumulating ``exprs`` over samples into accumulators ``outs``."""
        lines = [f"{self.decor}", f"def {name}({self._sig(before, after)}):", *self._param_loads()]
        if "v" in before:
            lines += self._param_loads("v", self.s.v)
        lines.append(f"    n = {self._n()}")

        # float64 totals whatever F is: a float32 running sum over 10^7 rows lost 3 digits. In float32
        # (serial) a block of F32_LOOP_ROWS rows is summed in float32 first (float64 adds halved the loop's
        # vector width: 1.3 -> 2.1 ms for 10^6 rows), its rows sliced (a loop from i0 did not vectorise).
        blocked = self.s.dtype == "float32" and not self.s.parallel
        ind = "            " if blocked else "        "

        def loop(printer):
            before, body, finals = self._body(exprs, printer, ind, self.s.data)
            head = [*[f"    {o} = np.float64(0.0)" for o in outs], *before]
            adds = [self._accumulate(f"b_{o}" if blocked else o, f, ind) for o, f in zip(outs, finals)]
            if not blocked:
                return [*head, f"    for i in {self.loop}(n):", *self._loads(self.s.data, ind), *body, *adds]
            blocks = [f"        b{self.arrays[d]} = {self.arrays[d]}[i0:i0 + m]" for d in self.s.data]
            loads = [f"{ind}{self.names[d]} = b{self.arrays[d]}[i]" for d in self.s.data]
            return [*head, f"    for i0 in range(0, n, {F32_LOOP_ROWS}):", f"        m = min(n - i0, {F32_LOOP_ROWS})", *blocks,
                    *[f"        b_{o} = F(0.0)" for o in outs], "        for i in range(m):", *loads, *body,
                    *adds, *[f"        {o} += b_{o}" for o in outs]]

        return lines + self._with_fallback(loop)

    def _accumulate(self, acc: str, term: str, ind: str = "        ") -> str:
        # radd lets a serial loop's sums vectorise; prange needs "+=" to see its reductions
        if self.s.parallel:
            return f"{ind}{acc} += {term}"
        self.p.helpers.add("radd")
        return f"{ind}{acc} = radd({acc}, {term})"

    def value(self) -> list[str]:
        lines = self.reduced("value", [self.s.loss], ["acc"])
        return lines + [f"    return {self._finish('acc')}"]

    def value_and_grad(self) -> list[str]:
        outs = ["acc"] + [f"g_{self.names[p]}" for p in self.s.params]
        lines = self.reduced("value_and_grad", [self.s.loss, *self.s.grads], outs, after=("grad_out",))
        lines += [f"    grad_out[{k}] = {self._finish(o)}" for k, o in enumerate(outs[1:])]
        return lines + [f"    return {self._finish('acc')}"]

    def hvp(self) -> list[str]:
        outs = [f"h_{self.names[p]}" for p in self.s.params]
        lines = self.reduced("hvp", self.s.hvp, outs, before=("v",), after=("out",))
        return lines + [f"    out[{a}] = {self._finish(o)}" for a, o in enumerate(outs)]

    def hessian(self) -> list[str]:
        k = len(self.s.params)
        pairs = [(a, b) for a in range(k) for b in range(a, k)]
        outs = [f"h_{a}_{b}" for a, b in pairs]
        lines = self.reduced("hessian", [self.s.hess[a][b] for a, b in pairs], outs, after=("out",))
        for (a, b), o in zip(pairs, outs):
            lines.append(f"    out[{a}, {b}] = {self._finish(o)}")
            if a != b:
                lines.append(f"    out[{b}, {a}] = out[{a}, {b}]")
        return lines

    def pointwise(self) -> list[str]:
        """reduction='none': wrt symbols are per-point inputs; outputs per point."""
        outs = ["value_out[i]"] + [f"grad_out[i, {j}]" for j in range(len(self.s.grads))]
        loads = self.s.params + self.s.data
        lines = self._rows_function("value_and_grad", [self.s.loss, *self.s.grads], outs, loads,
                                    ("value_out", "grad_out"))
        return lines + ["", ""] + self._rows_function("value", [self.s.loss], outs[:1], loads, ("value_out",))

    def residual_functions(self) -> list[str]:
        """reduction='residuals': r_i(theta) per sample into ``out``, and its Jacobian, one row a sample."""
        jac = [f"out[i, {j}]" for j in range(len(self.s.grads))]
        lines = self._rows_function("residuals", [self.s.loss], ["out[i]"], self.s.data, ("out",))
        return lines + ["", ""] + self._rows_function("jacobian", self.s.grads, jac, self.s.data, ("out",))

    def _rows_function(self, name: str, exprs: list[sp.Expr], outs: list[str], loads: list[sp.Symbol],
                       after: tuple[str, ...]) -> list[str]:
        """A function writing ``exprs`` of sample i into ``outs`` (no reduction over samples)."""
        per_point = self.s.reduction == "none"
        head = [self.decor, f"def {name}({self._sig((), after, per_point=per_point)}):"]
        head += [] if per_point else self._param_loads()

        def loop(printer: NumbaPrinter) -> list[str]:
            before, body, finals = self._body(exprs, printer, "        ", loads)
            return [*before, f"    for i in {self.loop}(n):", *self._loads(loads, "        "), *body,
                    *[f"        {o} = {f}" for o, f in zip(outs, finals)]]

        return head + [f"    n = {self._n()}"] + self._with_fallback(loop)


GLUE_HEADER = '''
# The glue (the training loop, a deep model's loss_grad: functions that only make arrays and
# call compiled kernels) is compiled without LLVM's optimiser (_GLUE, injected by the loader;
# docs/decisions.md), so it holds no loops of its own. It calls other
# functions through overloads made by callee(): a direct reference to a Numba dispatcher would
# stay in the unoptimised code, and Numba does not cache functions that hold one. Kernels shared
# across models are called by address instead (the loader binds them: symgrad/shared_kernels.py).
jit_glue = numba.njit(cache=True, error_model='numpy', **_GLUE) if _JIT else (lambda f: f)  # noqa: F821
jit_par_glue = numba.njit(cache=True, parallel=True, error_model='numpy', **_GLUE) if _JIT else jit_glue  # noqa: F821


def callee(f):
    if not _JIT:  # noqa: F821
        return f
    return register_jitable(**{k: v for k, v in f.targetoptions.items() if k != "cache"})(f.py_func)
'''


#: Rows a float32 loop sums in float32 before its float64 total (matrix models: row_sums.F32_BLOCK).
F32_LOOP_ROWS = 1024


def module_header(title: str, dtype: str, helpers: set[str], trig_max: bool = False, glue: bool = False,
                  blas: bool = False) -> list[str]:
    """Imports, dtype, decorators and the helper functions a module uses (``blas``: its matrix
    products, symgrad/native/blas.py)."""
    lines = [
        f'"""{title}\n\nGenerated by symgrad. Do not edit: it is rebuilt from the model."""',
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        "from symgrad.native import blas, vecmath" if blas else "from symgrad.native import vecmath",
        "",
        "# _JIT is injected by the loader: True for Numba, False for the Python reference path",
        "jit = numba.njit(cache=True, error_model='numpy') if _JIT else (lambda f: f)  # noqa: F821",
        "jit_par = numba.njit(cache=True, parallel=True, error_model='numpy') if _JIT else (lambda f: f)  # noqa: F821",
        "jit_inline = numba.njit(cache=True, error_model='numpy', inline='always') if _JIT else jit  # noqa: F821",
        "# jit_reduce: sums whose order LLVM may change, so that their loops vectorise. Only the order",
        "# of additions is relaxed: NaN and Inf still propagate ('nnan'/'ninf' are not set).",
        "jit_reduce = numba.njit(cache=True, error_model='numpy', fastmath={'reassoc', 'contract'}) if _JIT else jit  # noqa: F821",
        "prange = numba.prange if _JIT else range  # noqa: F821",
        "# vm: exp, log, tanh, sin, cos whose loops vectorise (symgrad/native/vecmath.py); libm in Python",
        "vm = vecmath if _JIT else vecmath.PYTHON  # noqa: F821",
        f"F = np.{dtype}",
        "",
    ]
    if trig_max:
        lines[-1:-1] = [f"TRIG_MAX = F({vecmath.TRIG_MAX!r})  # vm.sin_fast and vm.cos_fast are exact up to here"]
    if glue:
        lines.insert(lines.index("import numpy as np") + 1, "from numba.extending import register_jitable")
        lines += GLUE_HEADER.split("\n")
    for h in sorted(helpers | {HELPER_NEEDS[h] for h in helpers if h in HELPER_NEEDS}):
        lines += ["", HELPERS[h]]
    return lines


def scalar_module(spec: ScalarSpec) -> str:
    """Generate the complete module source for a formula model."""
    g = _Gen(spec)
    if spec.reduction == "none":
        funcs = [g.pointwise()]
    elif spec.reduction == "residuals":
        funcs = [g.residual_functions()]
    else:
        funcs = [g.value(), g.value_and_grad(), g.hvp()] + ([g.hessian()] if spec.hess is not None else [])
    body: list[str] = []
    for f in funcs:
        body += ["", ""] + f
    helpers = g.p.helpers | g.p_exact.helpers
    trig = any("huge +=" in ln for ln in body)
    return "\n".join(module_header(spec.title, spec.dtype, helpers, trig) + body) + "\n"
