"""Deep residual networks build in time linear in depth (issue 16): their expressions share each
block's input between two paths, and anything that walks them as trees (SymPy's ``+``, ``atoms``,
``srepr``, ``str``, its equality across two models) takes time exponential in depth."""

import subprocess
import sys
import textwrap
from pathlib import Path

import sympy as sp

import symgrad as sg
from symgrad.codegen.title import tensor_title
from symgrad.lang.walk import digest, find, postorder, tree_size

ROOT = str(Path(__file__).resolve().parents[1])


def _chain(depth: int) -> sp.Expr:
    """h_{k+1} = sin(h_k) + cos(h_k): 2^depth paths to x."""
    h = sp.Symbol("x", real=True)
    for _ in range(depth):
        h = sp.sin(h) + sp.cos(h)
    return h


def test_walks_visit_each_shared_node_once():
    e = _chain(60)  # 2^60 paths: a tree walk would never end
    order = postorder(e)
    assert len(order) == 3 * 60 + 1 and order[-1] == e
    assert len(find(e, sp.sin)) == 60
    assert tree_size(_chain(3)) == 29 and tree_size(e) > 2**60
    assert digest(e) == digest(_chain(60)) and digest(e) != digest(_chain(59))


def test_titles_of_deep_losses_name_them_instead_of_printing_them():
    assert "tree of" in tensor_title(sg.msum(sp.Matrix([[_chain(40)]])))
    W, x = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1)
    assert tensor_title(sg.msum(W * x)) == f"loss (per sample) = {sg.msum(W * x)}"


_SCRIPT = textwrap.dedent("""
    import symgrad as sg
    from symgrad.build import training_module
    nets = [sg.nn.Transformer(12, 8, 2, layers, 4) for layers in (10, 12)]  # both, then their modules
    paths = {training_module(n, "token_cross_entropy", sg.optim.Adam(0.01), "float32")[0] for n in nets}
    print(len(paths), len(nets[1].params))
""")


def test_deep_transformers_build_one_after_another(tmp_path):
    """Before: 7 layers took minutes, and a 14-layer model after a 12-layer one spent minutes in
    SymPy comparing the two (the limit here is ~100x what it takes)."""
    env = {"SYMGRAD_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n_modules, n_params = map(int, out.stdout.split())
    assert n_modules == 2 and n_params == 6 + 12 * 12  # 12 per layer; E, P, the last LayerNorm and output layer


_COPIES = textwrap.dedent("""
    import json, pickle, time
    import numpy as np
    import symgrad as sg
    from symgrad.build import training_module
    from symgrad.lang.conv import model_input
    from symgrad.lang.embedding import check_token_ids
    from symgrad.runtime.persist import _model_header, _read_model
    from symgrad.runtime.state import ModelSpec, StoredLoss
    net = sg.nn.Transformer(12, 8, 2, 12, 4)
    built = training_module(net, "token_cross_entropy", sg.optim.Adam(0.01), "float32")
    clone = pickle.loads(pickle.dumps(net))  # equal to net, made of other objects
    t = time.perf_counter()
    assert training_module(clone, "token_cross_entropy", sg.optim.Adam(0.01), "float32")[0] == built[0]
    assert model_input(clone) == 4 and check_token_ids(clone, np.zeros((2, 4))) is None
    assert StoredLoss(clone.expr, "f") == StoredLoss(net.expr, "f")
    text = json.dumps(_model_header(ModelSpec.of(clone)))
    back = _read_model(json.loads(text))
    assert back.params == tuple(net.params) and list(back.labels.values()) == list(net.labels.values())
    print(len(text), time.perf_counter() - t)
""")


def test_copies_of_deep_models_are_never_compared_node_by_node(tmp_path):
    """An unpickled or loaded copy of a deep model meets the original in memo keys, and a saved
    model file wrote srepr text: both walk the expression as a tree (a 6-layer transformer's
    file was 142 MB and took 96 s to load; 12 layers would not have finished)."""
    env = {"SYMGRAD_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", _COPIES], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    size, seconds = out.stdout.split()
    assert int(size) < 200_000 and float(seconds) < 10
