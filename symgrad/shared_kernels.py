r"""Kernels shared across models: compiled once, called from the glue by address (issue 21, section 2).

A tensor module holds the model's glue (the functions that take its sizes: ``loss``,
``loss_grad``, ``train_chunk``, ...) and the kernels they call (map kernels, matrix products,
the loss's kernels, the optimizer update, outlined segments). The kernels' text depends on the
layer kinds only, so many models hold the same kernels; compiled inside each model's module,
every new depth of an MLP paid for all of them again (W5). When a module is loaded for Numba,
each kernel whose text stands alone (it reads only the header's names, the module's imports and
other such kernels) is written to a file of its own, named by a hash of its text, and the module's name for it is
bound to that file's function: Numba's disk cache then compiles it once for every model that
uses it. The module file keeps every definition, so it still reads, and runs on the Python
path, as one piece; the kernel files are a cache derived from it.

Glue compiled without LLVM's optimiser (``jit.glue_options``) calls kernels through
``callee()`` aliases, overloads that compile a private copy of each kernel inside every glue
function. The alias of a shared kernel is instead an intrinsic that calls the kernel's compiled
code by a symbol, registered with LLVM's symbol table before the glue is
finalised. A glue function read back from Numba's cache registers its symbols again first: the
registration is one of its ``reload_init`` callables, which Numba runs before it loads the
cached machine code. If one cannot run (a kernel file is gone), the cache entry is a miss and
the glue compiles again.

>>> shareable("@jit\ndef double(a):\n    return F(2.0) * a\n", sized=())
{'double': ('@jit\ndef shared(a):\n    return F(2.0) * a', [], [])}
"""

from __future__ import annotations

import ast
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

#: Names every generated module's header binds (``codegen/scalar.module_header``): a kernel
#: that reads only these, builtins and other shareable kernels stands alone.
HEADER_NAMES = frozenset({"math", "numba", "np", "blas", "vecmath", "register_jitable", "jit", "jit_par",
                          "jit_inline", "jit_reduce", "prange", "vm", "F", "_JIT"})
KERNEL_DECORATORS = frozenset({"jit", "jit_par", "jit_inline", "jit_reduce"})
TITLE = "symgrad shared kernel"
NAME = "shared"  # the kernel's name in its file


def _decorator(fn: ast.FunctionDef) -> str | None:
    names = [d.id for d in fn.decorator_list if isinstance(d, ast.Name)]
    return names[0] if len(names) == 1 == len(fn.decorator_list) else None


def _globals_read(fn: ast.FunctionDef, top: set[str]) -> set[str]:
    """The module-level names ``fn`` reads (a local of the same name shadows none here: the
    generated code never rebinds a module name locally, and a miss only makes fewer kernels
    shared)."""
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in top}


def shareable(text: str, sized: tuple[str, ...]) -> dict[str, tuple[str, list[str], list[str]]]:
    """Each kernel of a tensor module's ``text`` that stands alone -> (its definition, named
    NAME, the kernels it calls, the import lines it needs beyond the header's), in an order where a
    kernel comes after those it calls."""
    tree = ast.parse(text)
    top: set[str] = set()
    imports: dict[str, str] = {}  # a name the module imports -> the line that imports only it
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            top |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                name = (a.asname or a.name).split(".")[0]
                line = f"import {a.name}" if isinstance(node, ast.Import) else f"from {node.module} import {a.name}"
                imports[name] = line + (f" as {a.asname}" if a.asname else "")
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)
           and _decorator(n) in KERNEL_DECORATORS and n.name not in sized}
    reads = {name: _globals_read(f, top | set(imports)) - {name} - HEADER_NAMES for name, f in fns.items()}
    out: dict[str, tuple[str, list[str], list[str]]] = {}
    unknown = set(fns)
    while unknown:  # a kernel stands alone when every kernel it calls does
        ready = [n for n in fns if n in unknown and all(r in out or r in imports for r in reads[n])]
        if not ready:
            break  # the rest read the model's own names (its sizes, its functions)
        for name in ready:
            out[name] = (_segment(text, fns[name]), sorted(r for r in reads[name] if r in out),
                         sorted(imports[r] for r in reads[name] if r in imports))
            unknown.discard(name)
    return out


def _segment(text: str, fn: ast.FunctionDef) -> str:
    """``fn``'s definition, decorators included, named NAME: the file is named for no model
    (map0_fwd of one model is map2_fwd of another)."""
    lines = text.splitlines()
    start = min([d.lineno for d in fn.decorator_list] + [fn.lineno]) - 1
    block = lines[start:fn.end_lineno]
    k, at = fn.lineno - 1 - start, fn.col_offset + len("def ")  # where the def line spells the name
    block[k] = block[k][:at] + NAME + block[k][at + len(fn.name):]
    return "\n".join(block)


def kernel_source(dtype: str, block: str, calls: dict[str, str], imports: list[str] = ()) -> str:
    """A kernel file: the generated modules' header, the modules and the kernels it calls (each
    kernel from its own file, named by its text's hash, so this text names exactly the code it
    runs), then the kernel."""
    from .codegen.scalar import module_header

    head = module_header(TITLE, dtype, set(), blas=True) + list(imports)
    if calls:
        head += ["from symgrad.shared_kernels import kernel", ""]
        head += [f"{name} = kernel({file!r})" for name, file in sorted(calls.items())]
    return "\n".join(head) + "\n\n\n" + block + "\n"


def kernel(file: str) -> object:
    """The function of the shared kernel file ``file`` in the code cache, compiled by Numba
    (``"<module file>:<name>"``: that function of a generated module)."""
    from . import jit

    file, _, name = file.partition(":")
    path = jit.cache_dir() / file
    if not path.exists():  # the files a module needs are written when it loads (link)
        raise FileNotFoundError(f"shared kernel file {path} is gone")
    return getattr(jit.load(path, jit=True), name or NAME)


def link(module: ModuleType, text: str) -> None:
    """Bind ``module``'s standalone kernels to their shared files (compiled once for every model
    that holds them), and its glue's ``callee`` aliases of them to calls by address. Runs when
    a tensor module is loaded for Numba, before anything in it compiles."""
    from . import jit

    sized = getattr(module, "SIZED", None)
    if sized is None:
        return  # a formula module or a kernel file: nothing shared there
    dtype = np.dtype(module.F).name
    files: dict[str, str] = {}
    for name, (block, calls, imports) in shareable(text.partition("\n")[2], tuple(sized)).items():
        body = kernel_source(dtype, block, {c: files[c] for c in calls}, imports)
        path = jit.ensure_source(jit.cache_key("shared kernel", body), lambda body=body: body, "sgk")
        files[name] = path.name
        shared = kernel(path.name)
        module.__dict__[name] = shared
        if f"{name}_c" in module.__dict__:
            module.__dict__[f"{name}_c"] = by_address(shared, path.name, name)
    for name in ("loss_grad", "block_grad", "par_grads", "par_update"):
        if f"{name}_c" in module.__dict__:
            # the module's own functions that glue calls (the training loops, the row-block step),
            # by address: linking loss_grad's code into each parallel kernel's library cost 3 s of
            # a CNN's cold build (docs/decisions.md)
            own = f"{Path(module.__file__).name}:{name}"
            module.__dict__[f"{name}_c"] = by_address(module.__dict__[name], own, name)


@functools.cache
def by_address(shared, file: str, name: str):
    """An intrinsic calling ``shared`` (the dispatcher of shared kernel file ``file``; ``name``,
    the module's name for it, names the intrinsic) through a symbol: glue holds no copy of the
    kernel and no reference to its dispatcher (which Numba could not cache)."""
    from numba.core import cgutils, types
    from numba.core.extending import intrinsic

    from . import build_helper

    def typer(typingctx, *args):
        argtypes = tuple(types.unliteral(a) for a in args)
        symbol = _symbol(file, argtypes)
        # the type of the call, without compiling the callee where that can wait until the glue's
        # code is made: a shared kernel, or a module's own function (file "sg_<key>.py:<name>",
        # a row-block step), may then be compiled by the build helper, on another core
        returns = types.none if ":" not in file and returns_nothing(file) else _typed_only(shared, argtypes)
        if returns is not None:
            sig = returns(*argtypes)
            build_helper.defer(file, argtypes, shared, compile_cost(file))
        else:
            _, sig = _register(file, argtypes, shared)

        def codegen(context, builder, signature, values):
            if returns is not None:
                build_helper.ensure(file, argtypes, shared)
                if _register(file, argtypes, shared)[1].return_type != sig.return_type:
                    raise AssertionError(f"shared kernel {file} compiled to another return type than its call was typed with")
            fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            status, res = context.call_conv.call_function(builder, fn, sig.return_type, sig.args, values)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            # a cached glue function registers the symbol again before its code is loaded
            context.active_code_library._reload_init.add(Reregister(file, argtypes))
            return res

        return sig.return_type(*argtypes), codegen

    n = shared.py_func.__code__.co_argcount
    names = ", ".join(f"a{i}" for i in range(n))
    scope = {"typer": typer}
    # intrinsic reads the typing function's own parameters: one per kernel argument
    exec(f"def {name}_by_address(typingctx, {names}):\n    return typer(typingctx, {names})\n", scope)
    return intrinsic(scope[f"{name}_by_address"])


@functools.cache
def _parsed(file: str) -> tuple[ast.FunctionDef, list[str]]:
    """The kernel of shared kernel file ``file`` and the files of the kernels it calls (a
    file's name is its text's hash: it never changes); for ``"<module file>:<name>"``, that
    function of a generated module, whose callees are compiled on their own (by address)."""
    from . import jit

    file, _, name = file.partition(":")
    tree = ast.parse((jit.cache_dir() / file).read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == (name or NAME))
    calls = [n.value.args[0].value for n in tree.body if not name and isinstance(n, ast.Assign)
             and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", None) == "kernel"]
    return fn, calls


def returns_nothing(file: str) -> bool:
    """Whether the kernel of shared kernel file ``file`` has no ``return`` of a value: its
    call's type is then known without compiling it."""
    return not any(isinstance(n, ast.Return) and n.value is not None or isinstance(n, (ast.Yield, ast.YieldFrom))
                   for n in ast.walk(_parsed(file)[0]))


def _typed_only(dispatcher, argtypes: tuple):
    """``dispatcher``'s return type for ``argtypes`` from Numba's typing passes alone, where
    the build helper may compile the kernel instead of this process (it is in no cache yet and
    the helper may run); None elsewhere, where compiling now costs no more."""
    from . import build_helper, numba_typing

    if tuple(argtypes) in dispatcher.overloads or build_helper.cached(dispatcher) or not build_helper.helping():
        return None
    try:
        return numba_typing.return_type(dispatcher, argtypes)
    except Exception:  # a typing error, or Numba's pipeline moved: compiling now says what is wrong
        return None


@functools.cache
def compile_cost(file: str) -> float:
    """An estimate of the time Numba takes to compile ``file``'s kernel, in no particular unit:
    its syntax tree's size, a vectorised ``vm`` function or a ``prange`` loop (Numba's parallel
    passes) counting as a large loop body, plus the kernels it calls (measured cold: 0.04 s for
    a 13-node kernel, 0.55 s for logsumexp's two vectorised loops, 0.4-0.5 s for the digits
    MLP's row-block step's glue, 465-1,176 by this count; docs/decisions.md, "A cold build on
    two cores")."""
    fn, calls = _parsed(file)
    size = sum(300 if isinstance(n, ast.Attribute) and getattr(n.value, "id", None) == "vm"
               or isinstance(n, ast.Name) and n.id == "prange" else 1 for n in ast.walk(fn))
    return size + sum(compile_cost(c) for c in calls)


_SYMBOLS: dict[str, int] = {}


def _symbol(file: str, argtypes: tuple) -> str:
    digest = hashlib.sha256(f"{file}\0{argtypes}".encode()).hexdigest()[:32]
    return f"symgrad_kernel_{digest}"


def _register(file: str, argtypes: tuple, dispatcher=None):
    """Compile (or load from Numba's cache) the kernel of file ``file`` for ``argtypes`` and
    make its symbol resolve to it: (symbol, the kernel's signature)."""
    import llvmlite.binding as ll

    if dispatcher is None:  # a cached glue function, loading; if the file is gone it compiles again
        dispatcher = kernel(file)
    dispatcher.compile(argtypes)
    cres = dispatcher.overloads[argtypes]
    symbol = _symbol(file, argtypes)
    address = cres.library.get_pointer_to_function(cres.fndesc.mangled_name)
    if _SYMBOLS.get(symbol) != address:
        ll.add_symbol(symbol, address)
        _SYMBOLS[symbol] = address
    return symbol, cres.signature


@dataclass(frozen=True)
class Reregister:
    """Run by Numba before it loads a cached glue function that calls this kernel (one of its
    ``reload_init``; equal for equal calls, so a kernel called many times is registered once)."""

    file: str
    argtypes: tuple

    def __call__(self) -> None:
        _register(self.file, self.argtypes)
