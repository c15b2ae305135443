"""What fit(), predict() and evaluate() accept, checked before any native call: each mistake with
(X, Y) named with its fix, not a NumPy or Numba error from inside, or a wrong model (fit's other
options: ``options.py``).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, DtypeError, OptionError, ShapeError, TargetError
from ..lang.embedding import not_token_ids
from .checks import check_finite, in_range, refuse_foreign, unmasked

CLASS_LOSSES = ("softmax_cross_entropy", "cross_entropy")
BINARY_LOSSES = ("bce", "binary_cross_entropy")
REGRESSION_LOSSES = ("mse", "mae", "huber")
TOKEN_LOSSES = ("token_cross_entropy",)


def as_data(x: object, what: str) -> np.ndarray:
    """``x`` (an array, a list, a pandas frame: anything with numbers in rows) as an ndarray, its
    numbers not converted yet: their dtype chooses the model's (:func:`data_dtype`)."""
    refuse_foreign(x, what)
    x = unmasked(x, what, f"drop those rows (np.ma.compress_rows({what})) or fill them ({what}.filled(v))")
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise DataError(f"{what} is None, not numbers. Fix: pass an array with one row per sample.")
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # scipy.sparse, without importing it
        raise DtypeError(f"{what} is a sparse matrix; symgrad trains on dense arrays (sparse input is "
                         f"not supported). Fix: pass {what}.toarray() if it fits in memory.")
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{what} could not be read as an array ({exc}). Fix: pass a 2-D array of "
                         "numbers, one row of equal length per sample.") from exc


def plain(x, what: str):
    """``x``, but a masked array's mask is not dropped silently (scikit-learn's checks read its
    data, masked entries included) and sparse input is named: both as ``sg.fit`` refuses them."""
    masked_or_sparse = isinstance(x, np.ma.MaskedArray) or (hasattr(x, "toarray") and hasattr(x, "nnz"))
    return as_data(x, what) if masked_or_sparse else x


def data_dtype(X: np.ndarray) -> np.dtype:
    """The model dtype ``X`` asks for, as scikit-learn and NumPy choose it: float32 data stays
    float32; float64, integers, bools and objects holding numbers become float64."""
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def as_model_array(x: object, dtype: np.dtype, what: str) -> np.ndarray:
    """``x`` converted to the model's ``dtype`` (C-contiguous), as scikit-learn converts: any real
    numbers are accepted (float64 data for a float32 model is rounded, as its fit would be);
    complex numbers, text and other objects are refused with the conversion to make."""
    x = as_data(x, what)
    if x.dtype.kind in "fiub":
        with np.errstate(over="ignore"):  # 1e39 to float32: said so below, not "non-finite" later
            return in_range(x, np.ascontiguousarray(x, dtype=dtype), what)
    if x.dtype.kind == "c":  # 'Complex data not supported' is what scikit-learn's checks look for
        raise DataError(f"Complex data not supported: {what} has dtype {x.dtype}. Fix: pass the real "
                        f"numbers the model should see, e.g. np.hstack([{what}.real, {what}.imag]).")
    if x.dtype.kind == "O":
        if any(v is None or type(v).__name__ == "NAType" for v in x.flat):  # pandas' NA, a nullable column's gap
            raise DataError(f"{what} has missing values (None or pandas.NA). Fix: drop those rows ({what}.dropna() "
                            "for a DataFrame) or fill them (sklearn.impute.SimpleImputer).")
        try:
            return np.ascontiguousarray(x.astype(dtype))
        except (TypeError, ValueError) as exc:
            raise DtypeError(f"{what} holds objects that are not numbers ({exc}). Fix: convert {what} "
                             f"to numbers first, e.g. np.asarray({what}, dtype=float).") from exc
    raise DtypeError(f"{what} has dtype {x.dtype}, not numbers. Fix: encode it as numbers first (text "
                     "categories with sklearn.preprocessing.OneHotEncoder, dates as numbers).")


def prepare_x(X, n_in: int | tuple[int, ...], dtype: np.dtype, what: str = "X", ids: bool = False) -> np.ndarray:
    """``X`` as a C-contiguous (n, features) array: one row per sample, finite, of the model's dtype.

    ``n_in`` is the number of features, or the (C, H, W) of a model that takes images: those come
    as (n, C, H, W) arrays (channels first, as PyTorch's), (n, H, W) for one channel, or flat;
    or the (T, d) of a model that takes sequences: (n, T, d) arrays, or flat; ``ids``: a language
    model's windows of ``n_in`` token ids (its context).
    A 1-D array is n samples of one feature when the model has one input, and is refused
    otherwise: it is then most likely one sample, and guessing would hide a transposed X.
    """
    X = as_model_array(X, dtype, what)
    image = n_in if isinstance(n_in, tuple) else None
    n_in = int(np.prod(n_in))
    if X.ndim > 2:
        check_sample_shape(X.shape, image or n_in, what)
        X = X.reshape(len(X), int(np.prod(X.shape[1:])))  # not -1: zero images have no size to divide
    if X.ndim == 1 and n_in == 1:
        X = X.reshape(-1, 1)
    elif X.ndim == 1:
        fix = f"{what}.reshape(1, -1) for one sample" if len(X) == n_in else f"one row of {n_in} features per sample"
        raise ShapeError(f"{what} is 1-D with shape {X.shape}; the model takes a 2-D array of shape "
                         f"(n_samples, {n_in}). Fix: {fix}.")
    elif X.ndim != 2:
        raise ShapeError(f"{what} is a single number (shape {X.shape}); the model takes a 2-D array of shape "
                         f"(n_samples, {n_in}). Fix: one row of {n_in} features per sample.")
    if X.shape[1] != n_in and ids:
        raise ShapeError(f"{what} has windows of {X.shape[1]} token ids, but the model's context is {n_in} positions. "
                         f"Fix: {what}[:, -{n_in}:] (each window's last {n_in} ids), or a model built with "
                         f"context={X.shape[1]}.")
    if X.shape[1] != n_in:
        took = f"samples of shape {image}, {n_in} numbers flat" if image else f"{n_in}"
        raise ShapeError(f"{what} has {X.shape[1]} columns (features); the model takes {took}. Fix: pass "
                         f"the {n_in} features the model was built for (its input size).")
    check_finite(X, what)
    return np.ascontiguousarray(X)


def check_sample_shape(shape: tuple[int, ...], n_in: int | tuple[int, ...], what: str = "X") -> None:
    """Samples of more than one axis, ``shape[1:]``, are the model's (C, H, W) images, (H, W) ones of
    one channel, or its (T, d) sequences; a model of ``n_in`` features takes rows only. Raises
    ShapeError naming the fix; flattening first would take transposed images of the same size."""
    image = n_in if isinstance(n_in, tuple) else None
    if image is None:
        raise ShapeError(f"{what} has shape {shape}; the model takes (n_samples, {n_in}) and does not "
                         f"flatten samples for you. Fix: {what}.reshape(len({what}), -1) if each sample "
                         f"flattens to {n_in} features, or check the data.")
    if shape[1:] == image or (image[0] == 1 and shape[1:] == image[1:]):
        return
    if len(image) == 2:
        raise ShapeError(f"{what} has shape {shape}: samples of {shape[1:]}, but the model takes sequences "
                         f"of {image} (positions, features). Fix: one ({image[0]}, {image[1]}) array per sample.")
    one, last = shape == image, len(shape) == 4 and shape[1:] == (*image[1:], image[0])
    fix = (f"{what}[None], a batch of one" if one else f"channels first: np.moveaxis({what}, -1, 1)" if last
           else f"images of shape {image} (C, H, W), one per sample")
    got = "one image without the batch axis" if one else f"images of {shape[1:]}"
    raise ShapeError(f"{what} has shape {shape}: {got}, but the model takes {image} (channels, height, width) "
                     f"per sample. Fix: {fix}.")


def prepare_xy(X, Y, loss_name: str, n_in: int | tuple[int, ...], n_out: int, dtype: np.dtype,
               names: tuple[str, str] = ("X", "Y"), positions: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) checked against the model and the loss; class labels become one-hot rows. For a
    token loss (``positions`` = T, the model giving T·V logits), Y holds T ids per sample."""
    X = prepare_x(X, n_in, dtype, names[0], ids=loss_name in TOKEN_LOSSES)
    if len(X) == 0:
        raise DataError(f"{names[0]} has no rows. Fix: pass at least one sample.")
    if loss_name in TOKEN_LOSSES:
        return X, _token_targets(Y, len(X), positions, n_out // positions, dtype, names)
    if loss_name in CLASS_LOSSES and n_out < 2:  # the softmax of one logit is 1, whatever it is
        raise ShapeError(f"the {loss_name!r} loss needs at least 2 outputs (classes); the model has 1. Fix: "
                         "'bce' for one output (a binary label), or a model with one output per class.")
    Y = as_data(Y, names[1])
    if Y.ndim == 0 or len(X) != len(Y):
        raise DataError(f"{names[0]} has {len(X)} rows but {names[1]} has {len(Y) if Y.ndim else 'none'}. "
                        "Fix: one target row per sample.")
    Y = _targets(Y, loss_name, n_out, dtype, names[1])
    if Y.shape[1] != n_out:
        fix = (f"pass the class labels as a 1-D array ({names[1]}.ravel()), or one-hot rows of {n_out}"
               if loss_name in CLASS_LOSSES and Y.shape[1] == 1 else
               f"one target column per output ({n_out}), or a model with {Y.shape[1]} outputs")
        k = Y.shape[1]
        if loss_name in CLASS_LOSSES and k > 1 and n_out % k == 0 and (Y == np.round(Y)).all() and 0 <= Y.min() \
                and Y.max() < n_out // k:  # PyTorch's cross_entropy over positions
            fix += (f"; if these are the next token's id at each of {k} positions (a language model), "
                    "loss='token_cross_entropy'")
        raise ShapeError(f"{names[1]} has {Y.shape[1]} columns; the model has {n_out} outputs. Fix: {fix}.")
    check_finite(Y, names[1])
    if loss_name in BINARY_LOSSES:
        _check_unit_interval(Y, names[1])
    if loss_name in CLASS_LOSSES:
        _check_distributions(Y, names[1])
    return X, np.ascontiguousarray(Y)


def target_positions(model, loss_name: str) -> int | None:
    """T for a token loss (the model's positions: one target id each), else None."""
    if loss_name not in TOKEN_LOSSES:
        return None
    from ..lang.tokens import token_rows

    return token_rows(model.expr)


def _token_targets(Y, n: int, T: int, V: int, dtype: np.dtype, names: tuple[str, str]) -> np.ndarray:
    """Y as (n, T) ids of ``dtype``: whole numbers in [0, V), the token that comes next at each position."""
    Y = as_data(Y, names[1])
    if Y.ndim == 1 and T == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2 or Y.shape != (n, T):
        raise ShapeError(f"{names[1]} has shape {Y.shape}; the 'token_cross_entropy' loss takes one target id per "
                         f"position, ({n}, {T}) for {n} samples of {T} positions. Fix: the ids that come next, "
                         "e.g. Y = ids[:, 1:] for X = ids[:, :-1] of sequences one longer than the context.")
    bad = not_token_ids(Y, V) if Y.dtype.kind in "iuf" else np.ones(Y.shape, dtype=bool)
    if bad.any():
        row, t = (int(v) for v in np.argwhere(bad)[0])
        raise TargetError(f"{names[1]}[{row}, {t}] = {Y[row, t]!r} is not a token id: the 'token_cross_entropy' loss "
                          f"takes whole numbers in [0, {V}) (the model's vocabulary). Fix: number the tokens 0 ... {V - 1}, "
                          "as the input ids are.")
    return np.ascontiguousarray(Y, dtype=dtype)


def _targets(Y: np.ndarray, loss_name: str, n_out: int, dtype: np.dtype, what: str) -> np.ndarray:
    if Y.dtype.kind in "USO":
        Y = _numbers(Y, loss_name, what)
    if loss_name in CLASS_LOSSES and Y.ndim == 1:
        Y = np.eye(n_out, dtype=dtype)[_class_ids(Y, n_out, what)]
    Y = as_model_array(Y, dtype, what)
    if Y.ndim > 2:
        raise ShapeError(f"{what} has shape {Y.shape}; targets are (n_samples,) or (n_samples, {n_out}). "
                         f"Fix: {what}.reshape(len({what}), -1) if each target flattens to {n_out} numbers.")
    return Y.reshape(len(Y), -1)


def _class_ids(Y: np.ndarray, n_out: int, what: str) -> np.ndarray:
    """Class labels as indices: integers, or whole numbers stored as floats or bools (as
    scikit-learn takes them: labels read from a CSV file or a DataFrame are often floats)."""
    given = Y  # the message names the labels given: 1e20 as int64 read -9223372036854775808
    if Y.dtype.kind == "f" and np.isnan(Y).any():  # a nullable Int64 column's NA
        raise TargetError(f"{what} has missing labels (NaN or pandas.NA). Fix: drop those rows or fill them.")
    if Y.dtype.kind == "b" or Y.dtype.kind == "f" and np.isfinite(Y).all() and (Y == np.floor(Y)).all() \
            and np.abs(Y).max(initial=0) < 2**53:
        Y = Y.astype(np.int64)
    if Y.dtype.kind not in "iu" or Y.min() < 0 or Y.max() >= n_out:
        whole = "" if Y.dtype.kind in "iu" else " (whole numbers)"
        raise TargetError(f"class labels must be integers{whole} in [0, {n_out}); got {given.dtype} in "
                          f"[{given.min()}, {given.max()}]. Fix: encode them, e.g. "
                          f"np.unique({what}, return_inverse=True)[1].")
    return Y


def _numbers(Y: np.ndarray, loss_name: str, what: str) -> np.ndarray:
    """Object arrays of numbers are numbers; text labels are refused with the encoding to use."""
    if Y.dtype.kind == "O":
        if any(v is None or type(v).__name__ == "NAType" for v in Y.flat):  # a nullable column's NA
            raise TargetError(f"{what} has missing values (None or pandas.NA). Fix: drop those rows or fill them.")
        try:
            return Y.astype(np.float64)
        except (TypeError, ValueError):
            pass
    first = Y.flat[0] if Y.size else ""
    how = ("np.unique(Y, return_inverse=True)[1] gives the class index of each label"
           if loss_name in CLASS_LOSSES else
           "(Y == positive_label).astype(float) gives 0/1 targets" if loss_name in BINARY_LOSSES else
           f"convert them to numbers, e.g. np.asarray({what}, dtype=float), or pick a loss for classes")
    raise TargetError(f"{what} holds text labels (e.g. {str(first)!r}); the {loss_name!r} loss needs numbers. "
                      f"Fix: {how}.")


def _check_unit_interval(Y: np.ndarray, what: str) -> None:
    lo, hi = float(Y.min()), float(Y.max())
    if lo < 0 or hi > 1:
        raise TargetError(f"{what} holds values in [{lo:g}, {hi:g}], but the binary cross-entropy ('bce') "
                          f"needs targets in [0, 1] (labels 0/1, or probabilities). Fix: for -1/+1 "
                          f"labels pass ({what} > 0).astype(float); for other targets use 'mse'.")


def _check_distributions(Y: np.ndarray, what: str) -> None:
    """Target rows of the softmax cross-entropy are distributions: the fused loss is
    logsumexp(z) - y·z, -Σ y log softmax(z) only where the row sums to 1 (2·onehot gave 1.87
    where torch's cross_entropy gives 3.02). The tolerance admits rounded probabilities
    (float16 teachers' were 3e-4 off, four decimals read from a CSV file 1e-4)."""
    sums = Y.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero((np.abs(sums - 1) > 1e-3) | (Y < 0).any(axis=1))
    if len(bad):
        r = int(bad[0])
        raise TargetError(f"{what}[{r}] = {np.array2string(Y[r][:8], precision=4)} is not a distribution over the "
                          f"classes (entries >= 0 summing to 1; it sums to {sums[r]:.6g}), and the softmax "
                          "cross-entropy needs one. Fix: one-hot rows, class labels as a 1-D array, or "
                          f"probabilities normalised by {what} / {what}.sum(axis=1, keepdims=True).")


def split_validation(X, Y, validation, fraction):
    """(X, Y, validation) with the last ``fraction`` of the rows held out as validation data
    (before any shuffling, as Keras does: put the rows in random order first if they are sorted)."""
    if fraction is None:
        return X, Y, validation
    if validation is not None:
        raise OptionError("validation= and validation_split= both give validation data. Fix: pass one.")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction < 1:
        raise OptionError(f"validation_split={fraction!r} is not a fraction of the rows. Fix: use 0 < f < 1, "
                          "e.g. validation_split=0.1.")
    X, Y = as_data(X, "X"), as_data(Y, "Y")
    n = len(X)
    k = n - int(np.floor(n * (1.0 - fraction)))  # Keras's count: it trains on floor(n·(1 − f)) rows
    if not 1 <= k < n:
        raise DataError(f"validation_split={fraction} of {n} rows leaves {n - k} for training and {k} for "
                        "validation; both need at least one. Fix: more rows or another fraction.")
    return X[: n - k], Y[: n - k], (X[n - k:], Y[n - k:])
