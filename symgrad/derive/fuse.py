"""IR optimisation before codegen: drop sums over one lane, fuse chains of elementwise maps.

``a = sigmoid(z)`` after ``z = u + b`` becomes one map ``a = sigmoid(u + b)``: one pass over
memory instead of two, one array fewer, and fewer statements for Numba to compile. Formulas are
printed from the unfused IR, so the readable layer names (z1, a1) are unaffected.
"""

from __future__ import annotations

import sympy as sp

from .ir import TNode, _lane, map_partials


def _consumers(nodes: list[TNode]) -> dict[int, int]:
    count: dict[int, int] = {}
    for n in nodes:
        for i in n.inputs:
            count[id(i)] = count.get(id(i), 0) + 1
    return count


def _fusable(child: TNode, parent: TNode, uses: dict[int, int], out: TNode) -> bool:
    return (child.kind == "map" and child is not out and uses.get(id(child), 0) == 1
            and child.length == parent.length and child.batched == parent.batched
            and all(i.length in (1, parent.length) for i in child.inputs))


def _fuse_into(parent: TNode, k: int, child: TNode) -> TNode:
    """A new map computing parent with its k-th lane replaced by child's body."""
    inputs: list[TNode] = []
    for i, node in enumerate(parent.inputs):
        for src in (child.inputs if i == k else [node]):
            if all(src is not x for x in inputs):
                inputs.append(src)
    new_lane = {id(n): _lane(j) for j, n in enumerate(inputs)}
    child_body = child.body.xreplace({s: new_lane[id(n)] for s, n in zip(child.lanes, child.inputs)})
    repl = {s: (child_body if i == k else new_lane[id(n)])
            for i, (s, n) in enumerate(zip(parent.lanes, parent.inputs))}
    body = parent.body.xreplace(repl)
    lanes = tuple(_lane(j) for j in range(len(inputs)))
    return TNode("map", parent.name, parent.shape, parent.batched, inputs, body=body, lanes=lanes,
                 partials=map_partials(body, lanes), label=parent.label)


def _drop_unit_sums(nodes: list[TNode], out: TNode) -> tuple[list[TNode], TNode]:
    """A sum over a single lane is its input: drop it (a loop and an array fewer per pass;
    every one-output loss, e.g. BCE on one logit, has one)."""
    for n in [n for n in nodes if n.kind == "sum" and n.inputs[0].length == 1 and n.inputs[0].batched == n.batched]:
        (src,) = n.inputs
        nodes = [m for m in nodes if m is not n]
        for m in nodes:
            m.inputs = [src if i is n else i for i in m.inputs]
        out = src if out is n else out
    return nodes, out


def fuse_maps(nodes: list[TNode], out: TNode) -> tuple[list[TNode], TNode]:
    """Drop sums over one lane, then repeatedly fold a single-use map into the map that consumes it."""
    nodes, out = _drop_unit_sums(list(nodes), out)
    changed = True
    while changed:
        changed = False
        uses = _consumers(nodes)
        for parent in nodes:
            if parent.kind != "map":
                continue
            k = next((k for k, c in enumerate(parent.inputs) if _fusable(c, parent, uses, out)), None)
            if k is None or sp.count_ops(parent.body) > 40:
                continue
            child = parent.inputs[k]
            fused = _fuse_into(parent, k, child)
            nodes = [fused if n is parent else n for n in nodes if n is not child]
            for n in nodes:  # re-point consumers of the old parent
                n.inputs = [fused if i is parent else i for i in n.inputs]
            out = fused if out is parent else out
            changed = True
            break
    return nodes, out
