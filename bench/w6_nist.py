"""Workload 6: the NIST StRD nonlinear-regression suite (27 problems, 2 starts each).

Each (problem, start) case is fitted by ``scipy.optimize.least_squares`` three times, with the
same solver settings (``nist_strd.SOLVER_OPTIONS``) for the two exact Jacobians:

- symgrad: ``symgrad.compile_residuals`` (Numba), the residuals and Jacobian of the model as written;
- lambdify: ``sympy.lambdify`` of ``sympy.diff`` by hand, the reference that shares no code with symgrad;
- finite differences: least_squares' own ``jac="2-point"`` with its default settings, what most users run.

Scores are log relative errors (LRE) of the estimates against NIST's certified values; the target is
LRE >= 6 on every certified parameter of all 54 cases. Times are one solve each (the first call of
each function, which compiles symgrad's module, is setup and reported apart).
"""

from __future__ import annotations

import time

from bench import nist_strd as nist
from bench.common import Mode, Section, Target, table

TINY = ["Misra1a", "MGH09"]


def run(mode: Mode) -> Section:
    names = TINY if mode.tiny else list(nist.MODELS)
    t0 = time.perf_counter()
    counts = {"symgrad": 0, "lambdify": 0, "fd": 0}
    rows, solve, setup = [], dict.fromkeys(counts, 0.0), 0.0
    for name in names:
        problem = nist.load(name)
        for start in (1, 2):
            res = {k: nist.fit_case(problem, start, nist.FACTORIES[k]) for k in counts}
            for k, c in res.items():
                counts[k] += c.min_lre >= nist.LRE_TARGET
                solve[k] += c.solve_s
            setup += res["symgrad"].setup_s
            rows.append([name, problem.difficulty, start, f"{res['symgrad'].min_lre:.1f}",
                         f"{res['symgrad'].solve_s * 1e3:.1f}", res["symgrad"].nfev, f"{res['lambdify'].min_lre:.1f}",
                         f"{res['lambdify'].solve_s * 1e3:.1f}", f"{res['fd'].min_lre:.1f}",
                         f"{res['fd'].solve_s * 1e3:.1f}"])
    n = len(rows)
    summary = {k: f"{counts[k]}/{n}" for k in counts}
    md = [f"## W6: NIST StRD nonlinear regression ({len(names)} problems x 2 starts)", "", __doc__.split("\n\n", 1)[1],
          f"Cases at LRE >= 6: symgrad {summary['symgrad']}, lambdify {summary['lambdify']}, finite differences "
          f"{summary['fd']}. Total solve time: symgrad {solve['symgrad']:.2f} s, lambdify {solve['lambdify']:.2f} s, "
          f"finite differences {solve['fd']:.2f} s; symgrad's builds (derivation, codegen, Numba, first calls) "
          f"{setup:.1f} s in all. Run took {time.perf_counter() - t0:.0f} s.", "",
          table(["problem", "difficulty", "start", "symgrad min LRE", "symgrad solve (ms)", "nfev",
                 "lambdify min LRE", "lambdify solve (ms)", "finite diff. min LRE", "finite diff. solve (ms)"],
                rows, "lllrrrrrrr"), ""]
    target = Target("W6", "NIST StRD: every certified parameter of all 54 (problem, start) cases at LRE >= 6 "
                    "with symgrad's Jacobian", f"{summary['symgrad']} (finite differences {summary['fd']})",
                    counts["symgrad"] == n and n == 54, "")
    return Section("W6", "\n".join(md), [target], {"counts": counts, "rows": rows})
