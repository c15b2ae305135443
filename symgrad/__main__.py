"""Command line: ``python -m symgrad explain|grad EXPR [--wrt x ...] [--latex]``, and
``formulas SPEC`` and ``optim NAME`` (``cli_specs``); installed, the ``symgrad`` command is the same.

Expressions are read with the safe :func:`symgrad.parse.parse_expr` (no eval).

    python -m symgrad explain "cos(sin(x**2) + 3*x**2)" --wrt x --name "x**2=t"
    python -m symgrad grad "x*y + sin(x)" --wrt x --wrt y --latex
    python -m symgrad formulas "mlp 2-3-1 sigmoid bce" [--latex]
    python -m symgrad optim adam --lr 0.01 [--latex]

Exit status: 0 on success, 2 on a usage error or a symgrad error (message on stderr).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

import sympy as sp

from . import __version__
from .api import explain, grad
from .cli_specs import OPTIM_OPTIONS, add_commands
from .errors import NameClashError, OptionError, ParseError, SymgradError
from .explain.printing import tex
from .lang.parse import parse_expr


def _variables(expr: sp.Expr, wrt: Sequence[str] | None) -> list[sp.Symbol]:
    found = sorted((s for s in expr.free_symbols if isinstance(s, sp.Symbol)), key=lambda s: s.name)
    if not wrt:
        if not found:
            raise SymgradError(f"{expr} has no variables to differentiate. Fix: pass an expression with a variable")
        return found
    out = []
    for w in (name for spec in wrt for name in spec.replace(",", " ").split()):  # --wrt x,y is --wrt x --wrt y
        v = parse_expr(w)
        if not isinstance(v, sp.Symbol):
            raise ParseError(f"--wrt expects a variable name, got {w!r}. Fix: e.g. --wrt x")
        if v not in found:  # the derivative would print as a silent 0
            names = [s.name for s in found]
            close = difflib.get_close_matches(v.name, names, n=1, cutoff=0.5) or [n for n in names
                                                                                 if n.lower() == v.name.lower()]
            fix = (f"did you mean --wrt {close[0]}? " if close else "") + (
                f"use one of its variables: {', '.join(names)}" if names else "it has no variables to differentiate")
            raise SymgradError(f"--wrt {v.name}: {v.name} does not appear in {expr} (its derivative would be 0). "
                               f"Fix: {fix}")
        if v not in out:
            out.append(v)
    if not out:
        raise ParseError(f"--wrt {' '.join(map(repr, wrt))} names no variable. Fix: e.g. --wrt x, or --wrt x,y")
    return out


def _names(specs: Sequence[str] | None) -> dict[sp.Expr, str]:
    names: dict[sp.Expr, str] = {}
    for spec in specs or []:
        sub, sep, name = spec.rpartition("=")
        sub, name = sub.strip(), name.strip()
        if not sep or not sub:
            raise ParseError(f"--name expects SUBEXPR=NAME, got {spec!r}. Fix: e.g. --name \"x**2=t\"")
        if not name.isidentifier() or name.startswith("_"):
            raise ParseError(
                f"--name {spec!r}: {name!r} is not a valid name. Fix: use letters, digits and '_', e.g. t1"
            )
        key = parse_expr(sub)
        if names.get(key, name) != name:  # a dict would keep the last one silently
            raise NameClashError(f"--name gives {sub} two names, {names[key]!r} and {name!r}. Fix: keep one.")
        names[key] = name
    return names


def _cmd_explain(args: argparse.Namespace) -> str:
    expr = parse_expr(args.expr.strip())
    d = explain(expr, _variables(expr, args.wrt), names=_names(args.name))
    return d.latex() if args.latex else str(d)


def _cmd_prebuild(args: argparse.Namespace) -> str:
    from .jit import cache_dir
    from .prebuild import DTYPES, prebuild

    done = prebuild(dtypes=tuple(args.dtype or DTYPES), log=lambda line: print(line, flush=True))
    return f"prebuilt {len(done)} networks' kernels in {sum(r[-1] for r in done):.0f} s into {cache_dir()}"


def _cmd_cache(args: argparse.Namespace) -> str:
    from .cache_files import clear, location, report

    if args.action == "clear":
        n, size = clear()
        return f"removed {n} files ({size / 1e6:.1f} MB) from {location()}"
    if args.action != "info":
        raise OptionError(f"symgrad cache {args.action}: unknown action. Fix: 'symgrad cache' shows what the cache "
                          "holds, 'symgrad cache clear' removes it.")
    return report()


def _cmd_grad(args: argparse.Namespace) -> str:
    expr = parse_expr(args.expr.strip())
    variables = _variables(expr, args.wrt)
    grads = grad(expr, variables)
    lines = []
    for v, g in zip(variables, grads, strict=True):
        if args.latex:
            lines.append(rf"\frac{{\partial}}{{\partial {tex(v)}}}\left({tex(expr)}\right) = {tex(g)}")
        else:
            body = str(expr) if expr.is_Atom else f"({expr})"
            lines.append(f"d{body}/d{v} = {g}")
    return "\n".join(lines)


def _parser(prog: str = "python -m symgrad") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Readable symbolic gradients. Expressions use Python syntax: + - * / **, "
        "sin, exp, log, sqrt, Abs, Max, sigmoid, softplus, relu, ... (no '^': write x**2; "
        "no implicit products: write 2*x).",
    )
    p.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{explain,grad,formulas,optim,prebuild,cache}")

    def common(sp_: argparse.ArgumentParser) -> None:
        sp_.add_argument("expr", help='the expression, e.g. "cos(sin(x**2) + 3*x**2)"')
        sp_.add_argument(
            "--wrt", action="append", metavar="VAR",
            help="differentiate with respect to VAR (repeatable; default: every variable, sorted by name)",
        )
        sp_.add_argument("--latex", action="store_true", help="print LaTeX instead of text")

    e = sub.add_parser("explain", help="print the derivation: forward trace, adjoint steps, result")
    common(e)
    e.add_argument(
        "--name", action="append", metavar="SUBEXPR=NAME",
        help='name a subexpression in the printout, e.g. --name "x**2=t" (repeatable)',
    )
    e.set_defaults(run=_cmd_explain)
    g = sub.add_parser("grad", help="print the gradient, one line per variable")
    common(g)
    g.set_defaults(run=_cmd_grad)
    add_commands(sub)
    b = sub.add_parser("prebuild", help="compile the kernels of common networks into the code cache, once "
                       "(about a minute): a first model of those kinds then builds faster")
    b.add_argument("--dtype", action="append", help="only this dtype, float32 or float64 (repeatable; default: both)")
    b.set_defaults(run=_cmd_prebuild)
    c = sub.add_parser("cache", help="show what the code cache holds ('cache clear' removes it; the next "
                       "builds compile again)")
    c.add_argument("action", nargs="?", default="info", help="info (the default) or clear")
    c.set_defaults(run=_cmd_cache)
    return p


def _protect_negative(argv: list[str]) -> list[str]:
    """argparse reads "-x**2" as an unknown option: an argument that starts with '-' and is no
    option of ours (nor a value after --wrt/--name) is an expression; a leading space keeps it one."""
    out, after_option = [], False
    for arg in argv:
        is_expr = arg.startswith("-") and not arg.startswith("--") and arg not in ("-h",) and not after_option
        out.append(f" {arg}" if is_expr else arg)
        after_option = arg in ("--wrt", "--name", *(flag for flag, _ in OPTIM_OPTIONS))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (argparse usage errors also give 2)."""
    prog = "symgrad" if argv is None and not sys.argv[0].endswith("__main__.py") else "python -m symgrad"
    try:
        args = _parser(prog).parse_args(_protect_negative(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        out = args.run(args)
    except SymgradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RecursionError:  # SymPy's printers recurse too: a derivative of 199 nested sin()s
        print(f"error: the expression is nested too deeply for SymPy's recursive algorithms under Python's "
              f"recursion limit ({sys.getrecursionlimit()}). Fix: split it into parts, or derive it in Python "
              "after sys.setrecursionlimit, at your own risk.", file=sys.stderr)
        return 2
    try:
        print(out, flush=True)
    except BrokenPipeError:  # `symgrad ... | head` closed the pipe: stop quietly, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
