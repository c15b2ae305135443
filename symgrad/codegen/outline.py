"""Split a long generated function body into segment functions.

Numba's compile time grows faster than the length of one function (docs/decisions.md): a
32-layer loss_grad as one function took ~50 s. Cutting the per-node statement groups into
functions of a few nodes each keeps every function small. Inputs of a segment are the
variables it reads that were bound before it; outputs are those it binds that are read later.
Arrays mutated in place (adjoints) need no return.

Segments are written with canonical names (``v0, v1, ...`` in order of first use), so that
the segments of repeated layers have identical text and become *one* shared function that
Numba compiles once: compile time then stops growing with the number of repeated layers.
The node comments move to the call site, where they name the actual layers. The statements'
names are read with Python's tokenizer (``codegen/names.py``).
"""

from __future__ import annotations

from .names import binds, in_order, reads, rename


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _tuple(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def outline(groups: list[list[str]], bound: list[str], tail: list[str], prefix: str,
            size: int, call=lambda name: name, views: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(segment function definitions, replacement body) for statement ``groups``.

    ``bound`` are the names bound before the groups (function arguments, prologue);
    ``tail`` are the statements after them (to know which results are still needed);
    ``call(name)`` is how the body calls segment ``name``; ``views`` maps names that a
    segment makes itself, when it uses them, to the statement that makes them.
    Segments whose canonical text is identical share one function.
    """
    views = views or {}
    segments = [sum(groups[k:k + size], []) for k in range(0, len(groups), size)]
    known = set(bound)
    funcs: dict[str, str] = {}  # canonical definition -> function name
    defs: list[str] = []
    body: list[str] = []
    for k, seg in enumerate(segments):
        later = reads(sum(segments[k + 1:], []) + tail)
        # not sorted by name: b9 and b10 would swap places, and equal layers stop sharing a segment
        seg = [views[v] for v in in_order(seg, set(views))] + seg
        local = set(binds(seg))
        inputs = (reads(seg) & known) - (local if k else set())
        outputs = {t for t in local if t in later and t not in known and t not in views}
        code = [ln for ln in seg if not _is_comment(ln)]
        # canonical names v0, v1, ... in order of first use: repeated layers' segments read alike
        canon = {name: f"v{j}" for j, name in enumerate(in_order(code, inputs | local))}
        order = {name: int(c[1:]) for name, c in canon.items()}.__getitem__
        ins, outs = sorted(inputs, key=order), sorted(outputs, key=order)
        lines = [rename(ln, canon) for ln in code]
        lines += [f"    return {_tuple([canon[o] for o in outs])}"] if outs else []
        head = f"({', '.join(canon[i] for i in ins)}):"
        key = "\n".join([head, *lines])
        if key not in funcs:
            funcs[key] = f"{prefix}{len(funcs)}"
            defs += ["@jit", f"def {funcs[key]}{head}", *lines, "", ""]
        body += [ln for ln in seg if _is_comment(ln)]
        expr = f"{call(funcs[key])}({', '.join(ins)})"
        body.append(f"    {_tuple(outs)} = {expr}" if outs else f"    {expr}")
        known |= local
    return defs, body
