"""docs/errors.md stays true: every error class has a section, every trigger snippet raises it.

The doc marks its runnable snippets by their first line (see its "Reading the snippets"):

- ``# setup`` is run before every other snippet;
- ``# raises Name`` must raise exactly that class, and the ``text`` block right after it holds
  the last line(s) of the traceback, ``module.Name: message``; ``…`` stands for an elided part;
- ``# warns Name`` must emit that warning, shown the same way (``Name: message``);
- ``# runs`` must run without raising.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import re
import warnings
from pathlib import Path

import pytest

import symgrad
import symgrad.errors
import symgrad.lang.schedules  # noqa: F401 - defines OptimizerConfigError
import symgrad.testing  # noqa: F401 - defines GradientCheckError
from symgrad.errors import SymgradError
from symgrad.runtime.fit import GradientHealthWarning

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
MARK = re.compile(r"#\s*(raises|warns)\s+(\w+)\s*$|#\s*(runs|setup)\s*$")
SHOWN = re.compile(r"([\w.]+): (.*)", re.S)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


ERRORS = {c.__name__: c for c in vars(symgrad.errors).values()
          if isinstance(c, type) and issubclass(c, SymgradError) and c.__module__ == "symgrad.errors"}
# symgrad's errors defined elsewhere (OptimizerConfigError, GradientCheckError), and its warnings
KNOWN = {c.__name__: c for c in _subclasses(SymgradError) if c.__module__.startswith("symgrad")}
KNOWN |= ERRORS | {"GradientHealthWarning": GradientHealthWarning, "NonFiniteWarning": symgrad.NonFiniteWarning}


def _resolve(name: str) -> type:
    cls = KNOWN.get(name) or getattr(builtins, name, None)
    assert isinstance(cls, type), f"docs/errors.md names {name!r}, which is neither a symgrad class nor a builtin"
    return cls


def _blocks() -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced block."""
    return [(m.group(1), m.group(2), TEXT.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(TEXT)]


def _snippets() -> tuple[str, list[tuple[str, str, str, str | None, int]]]:
    """The setup code, and (kind, class name, code, shown text, line) of each marked snippet."""
    blocks, setup, out = _blocks(), None, []
    for i, (lang, body, line) in enumerate(blocks):
        if lang != "python":
            continue
        m = MARK.fullmatch(body.split("\n", 1)[0].strip())
        if m is None:
            continue
        kind, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), "")
        if kind == "setup":
            setup = body
            continue
        shown = None
        if kind in ("raises", "warns"):
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            assert nxt is not None and nxt[0] == "text", (
                f"docs/errors.md line {line}: a '# {kind} {name}' snippet must be followed by a ```text "
                "block with the message it prints")
            shown = nxt[1].rstrip("\n")
        out.append((kind, name, body, shown, line))
    assert setup is not None, "docs/errors.md has no '# setup' snippet"
    return setup, out


SETUP, SNIPPETS = _snippets()


def _ids() -> list[str]:
    seen: dict[str, int] = {}
    ids = []
    for kind, name, _, _, line in SNIPPETS:
        key = name or kind
        seen[key] = seen.get(key, 0) + 1
        ids.append(f"{key}-{seen[key]}-line{line}")
    return ids


def matches(shown: str, real: str) -> bool:
    """``real`` equals ``shown``, where each ``…`` in ``shown`` stands for any text."""
    parts = shown.split("…")
    if len(parts) == 1:
        return real == shown
    if not real.startswith(parts[0]) or not real.endswith(parts[-1]):
        return False
    pos, end = len(parts[0]), len(real) - len(parts[-1])
    for part in parts[1:-1]:
        at = real.find(part, pos, end)
        if at < 0:
            return False
        pos = at + len(part)
    return pos <= end


def test_matches_elides_only_where_told():
    assert matches("a … c", "a b c") and matches("a…", "abc") and matches("x", "x")
    assert not matches("a … c", "a b d") and not matches("x", "xy") and not matches("a…b…c", "acb")


def _check_shown(shown: str, cls: type, real: str, line: int) -> None:
    m = SHOWN.fullmatch(shown)
    assert m, f"docs/errors.md line {line}: the text block must read 'Name: message', got {shown!r}"
    label, doc_message = m.groups()
    assert label in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"), (
        f"docs/errors.md line {line}: shown as {label!r}, but the class is {cls.__module__}.{cls.__qualname__}")
    assert matches(doc_message, real), (
        f"docs/errors.md line {line}: the doc shows\n  {doc_message!r}\nbut the real message is\n  {real!r}")


@pytest.fixture
def clean_env():
    """Snippets may set SYMGRAD_CACHE_DIR; each test gets the environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _namespace() -> dict:
    ns: dict = {"__name__": "errors_doc_snippet"}
    exec(compile(SETUP, "docs/errors.md (setup)", "exec"), ns)
    return ns


@pytest.mark.parametrize("kind, name, code, shown, line", SNIPPETS, ids=_ids())
def test_snippet(kind, name, code, shown, line, clean_env):
    if "dask" in code and importlib.util.find_spec("distributed") is None:
        pytest.skip("needs dask.distributed (pip install 'symgrad[distributed]')")
    ns = _namespace()
    code_obj = compile(code, f"docs/errors.md line {line}", "exec")
    if kind == "runs":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(code_obj, ns)
        return
    cls = _resolve(name)
    if kind == "raises":
        if name in ERRORS:
            assert cls is getattr(symgrad.errors, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. overflow RuntimeWarnings on the way to a DivergenceError
            with pytest.raises(BaseException) as info:
                exec(code_obj, ns)
        assert type(info.value) is cls, (
            f"docs/errors.md line {line}: expected {name}, got {type(info.value).__name__}: {info.value}")
        _check_shown(shown, cls, str(info.value), line)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code_obj, ns)
    found = [w for w in caught if w.category is cls]
    assert found, (f"docs/errors.md line {line}: no {name} was emitted "
                   f"(got {[w.category.__name__ for w in caught]})")
    _check_shown(shown, cls, str(found[0].message), line)


def _sections(levels: str = "#{2,3}") -> dict[str, str]:
    """Heading text -> section body, for every heading of ``levels`` ('## ' and '### ' by default);
    a section runs to the next heading of any level. Code blocks are left out: '# ' starts comments there."""
    parts = re.split(rf"^(?:{levels}) (.+)$|^#+ .+$", FENCE.sub("", TEXT), flags=re.M)
    # re.split yields text, heading-or-None, text, ...; headings of other levels only end a body
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i]}


def _section_of(name: str, levels: str = "#{2,3}") -> str | None:
    for heading, body in _sections(levels).items():
        if re.search(rf"\b{name}\b", heading):
            return body
    return None


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_error_class_has_a_section(name):
    assert _section_of(name, "##") is not None, f"docs/errors.md has no '## {name}' heading"


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_sections_state_the_true_bases(name):
    """Each class's section has a 'Bases:' line naming its direct bases (and only true ones)."""
    body = _section_of(name)
    if body is None:
        assert name not in ERRORS
        pytest.skip(f"{name} is not documented in a section of its own")
    line = next((ln for ln in body.splitlines() if ln.startswith("Bases:")), None)
    assert line is not None, f"the section of {name} has no 'Bases:' line"
    named = re.findall(r"`(\w+)`", line)
    cls = _resolve(name)
    for base in named:
        assert issubclass(cls, _resolve(base)), f"docs/errors.md says {name} is a {base}; it is not"
    missing = {b.__name__ for b in cls.__bases__} - set(named)
    assert not missing, f"the 'Bases:' line of {name} omits its direct base(s) {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_error_class_has_a_trigger(name):
    assert any(k == "raises" and n == name for k, n, *_ in SNIPPETS), (
        f"docs/errors.md shows no '# raises {name}' snippet")


def test_every_snippet_names_a_known_class():
    for kind, name, *_, line in SNIPPETS:
        if kind in ("raises", "warns"):
            _resolve(name)
            if kind == "raises":
                assert issubclass(_resolve(name), SymgradError), f"line {line}: {name} is not a SymgradError"


def test_the_table_lists_every_class_with_true_bases():
    """The overview table: one row per class, and each base it names is a true base."""
    rows = dict(re.findall(r"^\| \[`(\w+)`\]\(#[\w-]+\) \| (.*?) \|", TEXT, flags=re.M))
    assert set(ERRORS) <= set(rows), f"the table misses {sorted(set(ERRORS) - set(rows))}"
    for name, bases in rows.items():
        cls = _resolve(name)
        named = re.findall(r"`(\w+)`", bases)
        assert named, f"the table names no base for {name}"
        for base in named:
            assert issubclass(cls, _resolve(base)), f"the table says {name} is a {base}; it is not"

