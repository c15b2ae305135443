"""A character-level language model: a small transformer (2 layers, 4 heads, d = 64, context 64)
trained on the standard library's docstrings, which ship with every Python install, so nothing
is downloaded. Prints one attention layer's backward formulas, reports the validation loss in
bits per character against a unigram baseline, and samples a few lines.

    python examples/char_transformer.py           # about 3000 steps: val loss >= 1 bit/char below unigram
    python examples/char_transformer.py --quick   # a few hundred steps, for CI

The text: every docstring (module, class, function) of the top-level ``.py`` files of the running
Python's standard library, read with ``ast`` (nothing is imported), in file-name order, printable
ASCII only. The last 10% is held out for validation (a fixed split: no window crosses it).
"""

import argparse
import ast
import math
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

import symgrad as sg

CONTEXT, D, HEADS, LAYERS = 64, 64, 4, 2


def load_text() -> str:
    """The standard library's docstrings, in file-name order, printable ASCII and newlines only."""
    docs = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc)
    text = "\n\n".join(docs)
    return "".join(c for c in text if c == "\n" or " " <= c <= "~")


def encode(text: str) -> tuple[np.ndarray, str]:
    """(the text as token ids, the alphabet: id k is alphabet[k]), characters in sorted order."""
    alphabet = "".join(sorted(set(text)))
    where = {c: k for k, c in enumerate(alphabet)}
    return np.array([where[c] for c in text], dtype=np.int64), alphabet


def windows(ids: np.ndarray, context: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n windows at random offsets: X (n, context) float32 ids, Y (n, context) the ids one later."""
    starts = np.random.default_rng(seed).integers(0, len(ids) - context - 1, n)
    at = starts[:, None] + np.arange(context)
    return ids[at].astype(np.float32), ids[at + 1]


def unigram_bits(train: np.ndarray, val: np.ndarray, vocab: int) -> float:
    """Cross-entropy of the validation text under the training text's character frequencies
    (add-one smoothed), in bits per character: what a model that ignores context scores."""
    p = (np.bincount(train, minlength=vocab) + 1.0) / (len(train) + vocab)
    return float(-np.log2(p[val]).mean())


def attention_lines(formulas: str, layer: int) -> list[str]:
    """The attention legend and the lines of attention layer ``layer`` (its δ's and gradients)."""
    lines = formulas.splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("Attention:"))
    legend = [lines[start]] + [s for s in lines[start + 1:start + 5] if s.startswith("    ")]
    mine = [s for s in lines if f"a{layer} =" in s or f"δ_a{layer}" in s.split("=")[0]
            or any(f"∂ℓ/∂W{w}{layer} " in s for w in "qkvo")]
    return legend + mine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few hundred steps, for CI (the full run trains about 3000)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="the model's dtype (default float32)")
    args = ap.parse_args()
    text = load_text()
    ids, alphabet = encode(text)
    cut = int(0.9 * len(ids))
    train, val = ids[:cut], ids[cut:]
    V = len(alphabet)
    print(f"text: {len(text):,} characters of standard-library docstrings, {V} distinct; "
          f"train {len(train):,}, validation {len(val):,} (the last 10%)")

    net = sg.nn.Transformer(V, D, HEADS, LAYERS, CONTEXT)
    print(net)
    first_attention = next(k for k, s in net.labels.items() if s.startswith("a") and type(k).__name__ == "attention")
    layer = int(net.labels[first_attention][1:])
    print(f"\nBackward formulas of attention layer {layer}:")
    print("\n".join("  " + s.strip() for s in attention_lines(str(sg.formulas(net, "token_cross_entropy")), layer)))

    steps, n_val = (200, 256) if args.quick else (3000, 4096)
    epochs = 4
    X, Y = windows(train, CONTEXT, steps * 32 // epochs, seed=0)
    Xv, Yv = windows(val, CONTEXT, n_val, seed=1)
    base = unigram_bits(train, val, V)
    opt = sg.optim.AdamW(3e-3, weight_decay=0.01, schedule=sg.optim.CosineLR(t_max=epochs))
    t0 = time.perf_counter()
    model = sg.fit(net, "token_cross_entropy", X, Y, optimizer=opt, epochs=epochs, batch_size=32,
                   dtype=args.dtype, seed=0, validation=(Xv, Yv))
    wall = time.perf_counter() - t0
    tokens = epochs * len(X) * CONTEXT
    bits = model.history["val_loss"][-1] / math.log(2)
    print(f"\ntrained {epochs} epochs of {len(X)} windows ({tokens:,} tokens) in {wall:.1f} s including the "
          f"build: {tokens / sum(model.history['time']):,.0f} tokens/s while training")
    for e, (tr, va) in enumerate(zip(model.history["loss"], model.history["val_loss"]), 1):
        print(f"  epoch {e}: train {tr / math.log(2):.3f} bits/char, validation {va / math.log(2):.3f} bits/char")
    print(f"validation loss {bits:.3f} bits/char; unigram baseline {base:.3f} bits/char; "
          f"{base - bits:.3f} bits/char below it")
    print(f"next-character accuracy on validation: {model.history['val_accuracy'][-1]:.3f}")

    print("\nsamples (temperature 0.8):")
    for k, prompt in enumerate(["Return the ", "The ", "If "]):
        out = sg.generate(model, prompt, 120 if not args.quick else 60, temperature=0.8, alphabet=alphabet, seed=k)
        print("  " + repr(out))
    need = 0.3 if args.quick else 1.0
    if not base - bits >= need:
        print(f"FAILED: validation loss {bits:.3f} is not {need} bits/char below the unigram {base:.3f}",
              file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
