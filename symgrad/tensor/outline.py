"""Split a long generated function body into segment functions.

Numba's compile time grows faster than the length of one function (docs/decisions.md): a
32-layer loss_grad as one function took ~50 s. Cutting the per-node statement groups into
functions of a few nodes each keeps every function small. Inputs of a segment are the
variables it reads that were bound before it; outputs are those it binds that are read later.
Arrays mutated in place (adjoints) need no return.
"""

from __future__ import annotations

import re

_TARGET = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)")
_TOKEN = re.compile(r"[A-Za-z_]\w*")


def _targets(lines: list[str]) -> list[str]:
    return [m.group(1) for ln in lines if (m := _TARGET.match(ln))]


def _tokens(lines: list[str]) -> set[str]:
    return {t for ln in lines for t in _TOKEN.findall(ln.split("#", 1)[0])}


def outline(groups: list[list[str]], bound: list[str], tail: list[str], prefix: str,
            size: int) -> tuple[list[str], list[str]]:
    """(segment function definitions, replacement body) for statement ``groups``.

    ``bound`` are the names bound before the groups (function arguments, prologue);
    ``tail`` are the statements after them (to know which results are still needed).
    """
    segments = [sum(groups[k:k + size], []) for k in range(0, len(groups), size)]
    known = set(bound)
    defs_all = [set(_targets(seg)) for seg in segments]
    defs: list[str] = []
    body: list[str] = []
    for k, seg in enumerate(segments):
        later = _tokens(sum(segments[k + 1:], []) + tail)
        local = set(_targets(seg))
        inputs = sorted((_tokens(seg) & known) - local) if k else sorted(_tokens(seg) & known)
        outputs = sorted(t for t in local if t in later and t not in known)
        name = f"{prefix}{k}"
        defs += ["@jit", f"def {name}({', '.join(inputs)}):", *seg]
        if outputs:
            defs.append(f"    return {', '.join(outputs)}{',' if len(outputs) == 1 else ''}")
        defs += ["", ""]
        call = f"{name}({', '.join(inputs)})"
        body.append(f"    {', '.join(outputs)}{',' if len(outputs) == 1 else ''} = {call}" if outputs else f"    {call}")
        known |= defs_all[k]
    return defs, body
