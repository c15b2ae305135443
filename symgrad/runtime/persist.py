"""Model files: everything needed to rebuild a trained model and resume its training.

A file is an ``.npz`` archive without pickles: a JSON header (network and custom loss as
SymPy ``srepr`` lines, one per distinct subexpression, optimizer and schedule by name and settings, dtype, epoch, step count,
RNG state, history) and plain arrays (parameters, optimizer state). Loading reads the
expressions back without ``eval`` (``srepr_io``), so a file can carry data but never code,
and checks every array against the header, so a corrupt or foreign file is named as such.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import MissingModelFileError, ModelFileError, OptionError, SymgradError
from ..jit import VERSION as SYMGRAD_VERSION
from ..lang import optim
from .options import optimizers
from .srepr_io import read_nodes, read_srepr, write_nodes
from .state import ModelSpec, StoredLoss, TrainState
from .trained import Trained

FORMAT, VERSION = "symgrad-model", 2  # 2: expressions as node lines (format 1: one srepr each)
_SCHEDULES = (optim.ConstantLR, optim.StepLR, optim.ExponentialLR, optim.CosineLR, optim.ReduceLROnPlateau)


def save(model: Trained, path: str | Path) -> None:
    """Write ``model`` to ``path`` (``.npz`` is appended when missing, as NumPy does)."""
    if model.model is None or model.optimizer is None:
        raise OptionError("this Trained keeps no network or optimizer to save. Fix: save a model "
                          "returned by sg.fit or sg.load.")
    state = model.state or TrainState()
    header = {
        "format": FORMAT, "version": VERSION, "symgrad": SYMGRAD_VERSION,
        "model": _model_header(ModelSpec.of(model.model)),
        "loss": _loss_header(StoredLoss.of(model.loss, model.model)),
        "loss_name": model._loss_name, "n_out": model._n_out, "dtype": model.dtype.name,
        "backend": model.backend, "optimizer": _optimizer_header(model.optimizer),
        "state": {"t": int(state.t), "epoch": int(state.epoch), "rng": state.rng_state,
                  "batch_size": int(state.batch_size), "shuffle": bool(state.shuffle)},
        "history": model.history,
    }
    arrays = {f"param_{k}": np.asarray(p) for k, p in enumerate(model.params)}
    arrays |= {f"state_{name}": a for name, a in zip(model.optimizer.state, state.opt_state, strict=True)}
    text = json.dumps(header, default=_json_value)
    if Path(_path(path, "save")).is_dir():
        raise ModelFileError(f"{path} is a folder. Fix: give a file name in it, e.g. {Path(path) / 'model.npz'}.")
    try:
        np.savez(path, header=np.array(text), **arrays)
    except OSError as exc:
        raise ModelFileError(f"cannot write {path} ({exc}). Fix: save into a folder that exists and that you "
                             "may write to.") from exc


def load(path: str | Path, backend: str | None = None) -> Trained:
    """The model saved at ``path`` by :meth:`Trained.save`, ready to predict, evaluate and
    train further (``fit_more``). ``backend`` overrides the saved one ('numba' or 'python').

    Raises :class:`~symgrad.errors.ModelFileError` for a corrupt file, one not written by
    symgrad, or one whose arrays do not fit the network it describes.
    """
    if backend not in (None, "numba", "python"):
        raise OptionError(f"backend {backend!r} is not one of ('numba', 'python'). Fix: 'numba', 'python', or "
                          "None for the backend the model was saved with.")
    header, arrays = _read(_path(path, "load"))
    try:
        return _rebuild(header, arrays, backend)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SymgradError):
            raise
        raise ModelFileError(f"{path}: the header does not describe a model ({type(exc).__name__}: "
                             f"{exc}); the file is corrupt or altered. Fix: save the model again.") from exc


def read_params(path: str | Path, names: list[str] | None = None) -> list[np.ndarray]:
    """The parameter arrays of a model file, also of bare arrays: in order (``np.savez(path, *params)``,
    parameter-only files of older versions) or named as the model's parameters ``names``
    (``np.savez(path, W1=..., b1=...)``)."""
    header, arrays = _read(path, need_header=False)
    if header is None and _in_order(arrays):
        return [arrays[f"arr_{k}"] for k in range(len(arrays))]
    if header is None:
        if names is None or set(arrays) != set(names):
            have = f"the model's parameters are {names}" if names else "this model does not name its parameters"
            raise ModelFileError(f"{path} holds arrays named {sorted(arrays)}; {have}. Fix: save one array per "
                                 "parameter under those names (or in order, np.savez(path, *params)), or save the "
                                 "model with trained.save(path).")
        return [arrays[n] for n in names]
    return [arrays[f"param_{k}"] for k in range(sum(k.startswith("param_") for k in arrays))]


def _path(path: object, what: str) -> str | Path:
    """``path`` if it is a file name (a str or a path-like object); else the fix."""
    if not isinstance(path, (str, Path)) and not hasattr(path, "__fspath__"):
        raise OptionError(f"{what}() takes a file path, got {type(path).__name__} {path!r}. Fix: e.g. "
                          f"{'trained.save' if what == 'save' else 'sg.load'}('model.npz').")
    return path


# -- reading ----------------------------------------------------------------------------------

def _in_order(arrays: dict) -> bool:
    """Bare arrays saved in order (``np.savez(path, *params)`` names them arr_0, arr_1, ...)."""
    return all(k.startswith("arr_") for k in arrays)


def _read(path, need_header: bool = True) -> tuple[dict | None, dict[str, np.ndarray]]:
    if not Path(path).exists() and Path(f"{path}.npz").exists():  # np.savez appended the suffix
        path = f"{path}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError as exc:
        here = Path(path).parent
        near = sorted(p.name for p in here.glob("*.npz"))[:5] if here.is_dir() else []
        raise MissingModelFileError(
            f"no model file at {path} (from {Path.cwd()}){f'; {here} holds {near}' if near else ''}. Fix: give "
            "the path trained.save(path) wrote (it adds .npz when the name has no suffix).") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"cannot read {path}: it is corrupt or not a model file ({exc}). "
                             "Fix: save the model again with trained.save(path).") from exc
    if "header" not in arrays:
        legacy = _in_order(arrays)
        if need_header:
            raise ModelFileError(f"{path} was not written by Trained.save: it has no symgrad header"
                                 f"{' (it holds bare arrays: an older symgrad saved only parameters)' if legacy else ''}. "
                                 "Fix: to load bare parameters into a model of the same network, call "
                                 "trained.load(path) on it; else save the model again.")
        return None, arrays
    try:
        header = json.loads(str(arrays.pop("header")))
    except ValueError as exc:
        raise ModelFileError(f"{path}: the header is not valid JSON ({exc}); the file is corrupt.") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a symgrad model file (its header names no {FORMAT!r} format).")
    if header.get("version", 0) > VERSION:
        raise ModelFileError(f"{path} was written by a newer symgrad ({header.get('symgrad')}, format "
                             f"{header['version']}); this one reads format {VERSION}. Fix: upgrade symgrad.")
    return header, arrays


def _rebuild(header: dict, arrays: dict[str, np.ndarray], backend: str | None) -> Trained:
    spec = _read_model(header["model"])
    loss = _read_loss(header["loss"])
    opt = _read_optimizer(header["optimizer"])
    dtype = np.dtype(header["dtype"])
    params = _checked_params(spec, arrays, dtype)
    size = sum(p.size for p in params)
    opt_state = []
    for name in opt.state:
        a = arrays.get(f"state_{name}")
        if a is None or a.shape != (size,) or a.dtype != dtype:
            raise ModelFileError(f"the optimizer state '{name}' of {type(opt).__name__} is missing or is not "
                                 f"{size} {dtype} numbers; the file is corrupt or altered.")
        opt_state.append(np.ascontiguousarray(a))
    s = header["state"]
    state = TrainState(opt_state, int(s["t"]), int(s["epoch"]), s["rng"], int(s["batch_size"]),
                       bool(s["shuffle"]))
    state.rng()  # a damaged RNG state fails here, not when training resumes
    if not isinstance(header["history"], dict):
        raise ModelFileError("the saved history is not a dict of lists; the file is corrupt or altered.")
    trained = Trained(params, header["history"], None, header["loss_name"], int(header["n_out"]), dtype,
                      model=spec, loss=loss, optimizer=opt, backend=backend or header["backend"], state=state)
    _ = trained._mod  # build (or find in the cache) now, so a bad file fails at load, not later
    return trained


def _checked_params(spec: ModelSpec, arrays: dict[str, np.ndarray], dtype: np.dtype) -> list[np.ndarray]:
    shapes = [tuple(int(d) for d in p.shape) for p in spec.params]
    got = [arrays.get(f"param_{k}") for k in range(len(shapes))]
    extra = sum(k.startswith("param_") for k in arrays) - len(shapes)
    found = [None if a is None else a.shape for a in got]
    if extra or found != shapes:
        raise ModelFileError(f"the parameter arrays {found} do not match the saved network's "
                             f"{list(spec.params)} with shapes {shapes}; the file is corrupt or altered.")
    bad = [str(p) for p, a in zip(spec.params, got) if a.dtype != dtype or not np.isfinite(a).all()]
    if bad:
        raise ModelFileError(f"parameters {bad} are not finite {dtype} arrays; the file is corrupt or altered.")
    return [np.ascontiguousarray(a) for a in got]


# -- the header's parts -------------------------------------------------------------------------

def _model_header(spec: ModelSpec) -> dict:
    keys = [] if spec.labels is None else list(spec.labels)
    lines, (expr, x, *rest) = write_nodes(spec.expr, spec.x, *spec.params, *keys)
    labels = None if spec.labels is None else [[k, v] for k, v in zip(rest[len(spec.params):], spec.labels.values())]
    return {"nodes": lines, "expr": expr, "x": x, "params": rest[:len(spec.params)], "labels": labels}


def _read_model(h: dict) -> ModelSpec:
    if "nodes" not in h:  # format 1
        labels = None if h["labels"] is None else {read_srepr(k): v for k, v in h["labels"]}
        return ModelSpec(read_srepr(h["expr"]), tuple(read_srepr(h["params"])), read_srepr(h["x"]), labels)
    keys = [] if h["labels"] is None else [k for k, _ in h["labels"]]
    expr, x, *rest = read_nodes(h["nodes"], [h["expr"], h["x"], *h["params"], *keys])
    n = len(h["params"])
    labels = None if h["labels"] is None else {k: v for k, (_, v) in zip(rest[n:], h["labels"])}
    return ModelSpec(expr, tuple(rest[:n]), x, labels)


def _loss_header(loss: str | StoredLoss) -> dict:
    if isinstance(loss, str):
        return {"name": loss}
    lines, (root,) = write_nodes(loss.expr)
    return {"name": loss.__name__, "nodes": lines, "expr": root}


def _read_loss(h: dict) -> str | StoredLoss:
    if "expr" not in h:
        return h["name"]
    expr = read_nodes(h["nodes"], [h["expr"]])[0] if "nodes" in h else read_srepr(h["expr"])  # format 1
    return StoredLoss(expr, h["name"])


def _optimizer_header(opt: optim.Optimizer) -> dict:
    name = type(opt).__name__
    if optimizers().get(name.lower()) is not type(opt):
        raise OptionError(f"the optimizer {name} is not one of sg.optim's, so a file cannot rebuild it. "
                          "Fix: pickle the model instead (pickle.dump(trained, f)), which keeps any "
                          "picklable optimizer.")
    if not isinstance(opt.schedule, _SCHEDULES):
        raise OptionError(f"the schedule {opt.schedule!r} is not one of sg.optim's ("
                          f"{', '.join(s.__name__ for s in _SCHEDULES)}), so a file cannot rebuild it. "
                          "Fix: use one of them, or pickle the model instead.")
    schedule = {"class": type(opt.schedule).__name__, "args": dataclasses.asdict(opt.schedule)}
    return {"class": name, "lr": opt.lr, "hyper": opt.hyper, "clip_norm": opt.clip_norm, "schedule": schedule}


def _read_optimizer(h: dict) -> optim.Optimizer:
    cls = optimizers().get(str(h["class"]).lower())
    schedule = {s.__name__: s for s in _SCHEDULES}.get(h["schedule"]["class"])
    if cls is None or schedule is None:
        raise ModelFileError(f"the file names an optimizer {h['class']!r} with schedule "
                             f"{h['schedule']['class']!r} that this symgrad does not have. Fix: load it "
                             "with the symgrad version that saved it.")
    return cls(h["lr"], **h["hyper"], clip_norm=h["clip_norm"], schedule=schedule(**h["schedule"]["args"]))


def _json_value(value):
    if hasattr(value, "tolist"):  # NumPy scalars and arrays a callback put in the history
        return value.tolist()
    raise OptionError(f"the history holds {type(value).__name__} values, which a model file cannot "
                      "store. Fix: keep numbers and lists of numbers in trained.history.")
