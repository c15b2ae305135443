"""The ``formulas`` and ``optim`` subcommands of ``python -m symgrad``: a small network spec
language and the optimizers by name.

A spec is ``mlp SIZES [ACTIVATION] [LOSS] [output=ACT]``: the layer widths joined by '-', then
in any order the hidden activation (default relu), the loss (default mse; the names ``sg.fit``
takes, and ``ce`` for softmax cross-entropy) and the output layer's activation (default identity).

>>> net, loss = mlp_spec("mlp 2-3-1 sigmoid bce")
>>> net.sizes, loss
([2, 3, 1], 'bce')
>>> mlp_spec("mlp 2-3-1 sigmod")
Traceback (most recent call last):
    ...
symgrad.errors.OptionError: spec 'mlp 2-3-1 sigmod': unknown word 'sigmod' (did you mean 'sigmoid'?). ...
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re

from .errors import OptionError
from .lang import optim
from .lang.losses import LOSSES
from .lang.nn import ACTIVATIONS, MLP

SPEC_FORM = "mlp SIZES [ACTIVATION] [LOSS] [output=ACT]"
SPEC_EXAMPLE = '"mlp 2-3-1 sigmoid bce"'
#: Short loss names the CLI accepts besides ``LOSSES``'s own.
LOSS_ALIASES = {"ce": "softmax_cross_entropy"}
KEYS = ("activation", "loss", "output")
#: Losses that take logits, and the function they apply to them themselves.
LOGIT_LOSSES = {"bce": "sigmoid", "binary_cross_entropy": "sigmoid", "softmax_cross_entropy": "softmax",
                "cross_entropy": "softmax"}

#: The optimizers by CLI name (lower case).
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    cls.__name__.lower(): cls
    for cls in (optim.SGD, optim.Momentum, optim.Nesterov, optim.Adam, optim.AdamW, optim.AdaGrad, optim.RMSProp)
}
#: The hyperparameter options, as (flag, keyword of the optimizer's constructor).
OPTIM_OPTIONS = (("--lr", "lr"), ("--beta", "beta"), ("--beta1", "beta1"), ("--beta2", "beta2"),
                 ("--alpha", "alpha"), ("--eps", "eps"), ("--weight-decay", "weight_decay"),
                 ("--clip-norm", "clip_norm"))


def _spec_error(spec: str, problem: str) -> OptionError:
    return OptionError(f"spec {spec!r}: {problem}. A spec is {SPEC_FORM}, e.g. {SPEC_EXAMPLE}, "
                       '"mlp 4-16-16-3 tanh ce", "mlp 1-8-1" (relu, mse)')


def _closest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _activation(spec: str, word: str, what: str) -> str:
    name = "identity" if word in ("none", "linear") else word
    if name not in ACTIVATIONS:
        raise _spec_error(spec, f"unknown {what} {word!r}{_closest(word, list(ACTIVATIONS))}. "
                          f"Fix: use one of {', '.join(ACTIVATIONS)}")
    return name


def _sizes(spec: str, word: str) -> list[int]:
    if not re.fullmatch(r"\d+(-\d+)+", word):
        fix = (f"join the layer widths with '-', e.g. {re.sub(r'[^0-9]+', '-', word).strip('-')}"
               if re.search(r"\d[^0-9]+\d", word) else "give at least the input and output widths, e.g. 2-1")
        raise _spec_error(spec, f"{word!r} is not a list of layer widths. Fix: {fix}")
    sizes = [int(n) for n in word.split("-")]
    if min(sizes) < 1:
        raise _spec_error(spec, f"layer widths must be at least 1, got {word!r}")
    return sizes


def mlp_spec(spec: str) -> tuple[MLP, str]:
    """The network and the loss name that ``spec`` describes (see the module's docstring).

    Raises :class:`~symgrad.errors.OptionError` naming the bad word, the fix and an example."""
    words = spec.lower().split()
    if not words:
        raise _spec_error(spec, "empty spec")
    if words[0] in ("cnn", "conv", "lenet", "sequential"):
        raise _spec_error(spec, f"only mlp specs are supported. Fix: build a {words[0]} in Python with "
                                "sg.nn.Sequential and print sg.formulas(model, loss)")
    if words[0] == "mlp":
        words = words[1:]
    if not words:
        raise _spec_error(spec, "the layer widths are missing. Fix: add them, e.g. mlp 2-3-1")
    sizes = _sizes(spec, words[0])
    found: dict[str, str] = {}
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if eq and key not in KEYS:
            raise _spec_error(spec, f"unknown setting {key!r}{_closest(key, list(KEYS))}. "
                                    f"Fix: use {'=, '.join(KEYS)}=")
        if not eq:
            key, value = ("loss" if word in LOSSES or word in LOSS_ALIASES else
                          "activation" if word in ACTIVATIONS else "", word)
        if not key:
            known = [*ACTIVATIONS, *LOSSES, *LOSS_ALIASES]
            raise _spec_error(spec, f"unknown word {word!r}{_closest(word, known)}. Fix: use an activation "
                                    f"({', '.join(ACTIVATIONS)}), a loss ({', '.join([*LOSSES, *LOSS_ALIASES])}) "
                                    "or output=ACT")
        if key in found:
            raise _spec_error(spec, f"two {key}s, {found[key]!r} and {value!r}. Fix: keep one")
        found[key] = value
    loss = LOSS_ALIASES.get(found.get("loss", "mse"), found.get("loss", "mse"))
    if loss not in LOSSES:
        raise _spec_error(spec, f"unknown loss {loss!r}{_closest(loss, list(LOSSES))}. "
                                f"Fix: use one of {', '.join([*LOSSES, *LOSS_ALIASES])}")
    act = _activation(spec, found.get("activation", "relu"), "activation")
    out = _activation(spec, found.get("output", "identity"), "output activation")
    if out in ("sigmoid", "softmax") and loss in LOGIT_LOSSES:  # the loss would squash a second time
        raise _spec_error(spec, f"output={out} with the {loss!r} loss applies {out} twice: {loss!r} takes "
                                f"logits and applies {LOGIT_LOSSES[loss]} itself. Fix: drop output={out}, "
                                "or use a loss on probabilities such as mse")
    return MLP(sizes, activation=act, output=out), loss


def _cmd_formulas(args: argparse.Namespace) -> str:
    from .api import formulas

    net, loss = mlp_spec(" ".join(args.spec))
    f = formulas(net, loss)
    return f.latex() if args.latex else str(f)


def make_optimizer(name: str, options: dict[str, float]) -> optim.Optimizer:
    """The optimizer called ``name`` (any case) with the given hyperparameters."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise OptionError(f"unknown optimizer {name!r}{_closest(key, list(OPTIMIZERS))}. "
                          f"Fix: use one of {', '.join(OPTIMIZERS)}, e.g. python -m symgrad optim adam --lr 0.01")
    cls = OPTIMIZERS[key]
    takes = inspect.signature(cls).parameters
    flags = dict((kw, flag) for flag, kw in OPTIM_OPTIONS)
    bad = [flags[k] for k in options if k not in takes]
    if bad:
        ok = " ".join(flags[k] for k in flags if k in takes)
        raise OptionError(f"{key} has no {', '.join(bad)}. Fix: use its options: {ok}")
    return cls(**options)


def _cmd_optim(args: argparse.Namespace) -> str:
    options = {kw: getattr(args, kw) for _, kw in OPTIM_OPTIONS if getattr(args, kw) is not None}
    opt = make_optimizer(args.name, options)
    return opt.latex() if args.latex else str(opt)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``formulas`` and ``optim`` on the subcommand parser of ``python -m symgrad``."""
    f = sub.add_parser(
        "formulas", help="print a network's backprop equations (delta rule), e.g. formulas \"mlp 2-3-1 sigmoid bce\"",
        description=f"Print sg.formulas for a network spec: {SPEC_FORM}. SIZES are the layer widths joined "
        f"by '-'; ACTIVATION (hidden layers, default relu): {', '.join(ACTIVATIONS)}; LOSS (default mse): "
        f"{', '.join([*LOSSES, *LOSS_ALIASES])}; output= the last layer's activation (default identity). "
        f"Example: python -m symgrad formulas {SPEC_EXAMPLE}",
    )
    f.add_argument("spec", nargs="+", help=f"the network, e.g. {SPEC_EXAMPLE}")
    f.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    f.set_defaults(run=_cmd_formulas)

    o = sub.add_parser("optim", help="print an optimizer's update rule, e.g. optim adam --lr 0.01",
                       description=f"Print an optimizer's update rules. Optimizers: {', '.join(OPTIMIZERS)}.")
    o.add_argument("name", metavar="OPTIMIZER", help=", ".join(OPTIMIZERS))
    for flag, kw in OPTIM_OPTIONS:
        o.add_argument(flag, dest=kw, type=float, metavar="X", help=f"{kw} (default: the optimizer's own)")
    o.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    o.set_defaults(run=_cmd_optim)
