"""Pictures of a training run (matplotlib, the optional ``[plot]`` extra): the loss curves and
the per-parameter gradient norms, the picture of vanishing and exploding gradients.

matplotlib is imported on first use, and nothing here picks a backend or calls ``plt.show``:
a notebook shows the figure, a script saves it with ``path=`` (or ``ax.figure.savefig``).
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError

INSTALL = "Fix: pip install 'symgrad[plot]' (or pip install matplotlib)."


def _pyplot():
    """matplotlib.pyplot, or an OptionError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise OptionError(f"symgrad's plots need matplotlib ({exc}). {INSTALL}") from exc
    return plt


def _axes(ax):
    """``ax``, or the Axes of a new figure (with the current backend: inline in a notebook)."""
    return _pyplot().subplots(figsize=(6.4, 4.2))[1] if ax is None else ax


def _finish(ax, path, twins=()) -> None:
    """Integer epoch ticks, one legend over every axis given, and the PNG if ``path`` is given."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = [], []
    for a in (ax, *twins):
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    on = (*twins, ax)[0]  # the top axis, so no curve is drawn over the legend
    if len(handles) > 6:  # beside the plot, where it hides no curve
        on.legend(handles, labels, fontsize="small", ncol=1 + len(handles) // 16, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif handles:
        on.legend(handles, labels, fontsize="small")
    if path is not None:
        ax.figure.savefig(path, dpi=120, bbox_inches="tight")


def _epochs(values, n: int) -> np.ndarray:
    """The epochs (1-based) of ``values``: the last len(values) of n, for a series that started
    later (validation data given only when training was resumed)."""
    return np.arange(n - len(values) + 1, n + 1)


def _history(result, key: str) -> list:
    values = result.history.get(key) or []
    if key == "loss" and not values:
        raise OptionError("this model has no training history to plot. Fix: train it with sg.fit "
                          "(or sg.load a model that was), then call .plot().")
    return values


def plot_history(result, ax=None, path=None):
    """Training and validation loss per epoch; validation accuracy and metrics on a right axis."""
    loss = _history(result, "loss")
    ax = _axes(ax)
    n = len(loss)
    dot = "o" if n == 1 else None  # a single epoch is a point, not a line
    ax.plot(np.arange(1, n + 1), loss, label="training loss", color="C0", marker=dot)
    val = result.history.get("val_loss") or []
    if val:
        ax.plot(_epochs(val, n), val, label="validation loss", color="C1", marker=dot)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Loss per epoch")
    scores = {k: v for k, v in result.history.items() if k.startswith("val_") and k != "val_loss" and v}
    right = []
    if scores:
        twin = ax.twinx()
        for k, (name, values) in enumerate(scores.items()):
            label = "validation " + name.removeprefix("val_")
            twin.plot(_epochs(values, n), values, label=label, color=f"C{k + 2}", linestyle="--", marker=dot)
        twin.set_ylabel("validation score" if len(scores) > 1 else label)
        right = [twin]
    _finish(ax, path, right)
    return ax


def plot_grad_norms(result, ax=None, path=None):
    """Each parameter's gradient norm per epoch, log scale, coloured from the first layer to the
    last; an epoch whose norm is 0 (or NaN) leaves a gap, as a log scale cannot show it."""
    norms = result.grad_norms()
    if not norms or not len(next(iter(norms.values()))):
        raise OptionError("this model has no gradient norms to plot (history['grad_norms'] is empty). "
                          "Fix: train it with sg.fit, which records them every epoch.")
    ax = _axes(ax)
    from matplotlib import colormaps

    colours = colormaps["viridis"](np.linspace(0.0, 0.9, len(norms)))
    for colour, (name, values) in zip(colours, norms.items()):
        shown = np.where(values > 0, values, np.nan)
        ax.plot(np.arange(1, len(values) + 1), shown, label=name, color=colour,
                marker="o" if len(values) == 1 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title("Gradient norm per parameter")
    _finish(ax, path)
    return ax
