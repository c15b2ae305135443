"""The names a generated statement reads and binds, found by Python's own tokenizer.

Three passes read the statements the emitters wrote: ``outline`` (which variables a segment
takes in and gives back, and their canonical names), ``Dims.bind`` (which sizes a function
reads) and ``Program.flat_views`` (which flat views it needs). They see the statements through
these functions, which skip comments, strings and attributes (``x.shape`` reads ``x``, not
``shape``) as the language does, so that a name inside a comment or after a dot is never taken
for a variable. Each line is lexed once per process (a deep model's segments are scanned
against all the statements after them).

>>> sorted(reads(["    h = np.empty((B, n_v6), dtype=F)  # n_v9 in a comment"]))
['B', 'F', 'dtype', 'h', 'n_v6', 'np']
>>> binds(["    a, b = fwd_seg0(x)", "    c[0] = 1", "    d += 1", "    e = f(a)"])
['a', 'b', 'e']
>>> rename("    v = x.T + T(x)  # x", {"x": "v0", "T": "v1"})
'    v = v0.T + v1(v0)  # x'
"""

from __future__ import annotations

import functools
import io
import keyword
import tokenize

_SKIP = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                   tokenize.ENDMARKER})


@functools.lru_cache(maxsize=1 << 16)
def _lex(line: str) -> tuple[tuple[tuple[str, int, int], ...], tuple[str, ...]]:
    """(each variable-like name in ``line`` with its start and end column; the line's tokens,
    comments left out). One statement per line, as the emitters write them."""
    body = line.lstrip()
    at = len(line) - len(body)
    names: list[tuple[str, int, int]] = []
    tokens: list[str] = []
    for tok in tokenize.generate_tokens(io.StringIO(body).readline):
        if tok.type in _SKIP:
            continue
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and (not tokens or tokens[-1] != "."):
            names.append((tok.string, at + tok.start[1], at + tok.end[1]))
        tokens.append(tok.string)
    return tuple(names), tuple(tokens)


def reads(lines: list[str]) -> set[str]:
    """Every name the lines mention (bound there or not), but attributes and comments."""
    return {name for ln in lines for name, _, _ in _lex(ln)[0]}


def in_order(lines: list[str], names: set[str]) -> list[str]:
    """Those of ``names`` that the lines mention, in order of first mention."""
    seen: dict[str, None] = {}
    for ln in lines:
        for name, _, _ in _lex(ln)[0]:
            if name in names:
                seen.setdefault(name)
    return list(seen)


def binds(lines: list[str]) -> list[str]:
    """The names the lines assign whole (``a = ...``, ``a, b = ...``); not ``a[k] = ...``, ``a += ...``."""
    out: list[str] = []
    for ln in lines:
        tokens = _lex(ln)[1]
        if "=" not in tokens:
            continue
        target = tokens[:tokens.index("=")]
        if target and all(t == "," if k % 2 else t.isidentifier() and not keyword.iskeyword(t)
                          for k, t in enumerate(target)):
            out += [t for t in target if t != ","]
    return out


def rename(line: str, names: dict[str, str]) -> str:
    """``line`` with each name in ``names`` (not an attribute, nor in a comment) replaced."""
    out, end = [], 0
    for name, a, b in _lex(line)[0]:
        if name in names:
            out += [line[end:a], names[name]]
            end = b
    return "".join(out) + line[end:]
