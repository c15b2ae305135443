"""Argument checking shared by every compiled function: dtypes, lengths, NaN/Inf."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextvars import ContextVar

import numpy as np

from ..errors import DataError, DtypeError, ShapeError

#: the fix for integers a float type would round
_SCALE = "scale or shift them first (timestamps: subtract the first one)"


def exact_ints(x: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """``x`` (whole numbers) where ``dtype`` holds each exactly; refused beyond ±2^53 (float32: 2^24)."""
    exact = 2 ** (np.finfo(dtype).nmant + 1)
    if x.size and x.dtype.kind in "iu" and not -exact <= int(x.min()) <= int(x.max()) <= exact:
        raise DtypeError(f"{what} holds integers beyond ±2^{np.finfo(dtype).nmant + 1}, which {np.dtype(dtype).name} "
                         f"rounds (up to {max(abs(int(x.min())), abs(int(x.max())))}). Fix: {_SCALE}"
                         + (", or compile with dtype='float64'." if np.dtype(dtype) == np.float32 else "."))
    return x


def in_range(raw: np.ndarray, out: np.ndarray, what: str) -> np.ndarray:
    """``out``, refused where the conversion of finite numbers ``raw`` overflowed (1e39 to float32)."""
    if out.dtype == np.float32 and not np.isfinite(out).all():
        with np.errstate(invalid="ignore"):
            big = np.isfinite(np.asarray(raw, dtype=np.float64)) & ~np.isfinite(out)
        if big.any():
            raise DtypeError(f"{what} holds {np.asarray(raw, dtype=np.float64)[big].flat[0]:g}, beyond float32's range "
                             "(±3.4e38). Fix: scale it, or work in float64 (dtype='float64').")
    return out


def as_float_array(x: object, dtype: np.dtype, what: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous array of ``dtype``; refuse lossy or non-numeric input.

    Lists and Python scalars are converted. An ndarray (or a pandas Series: anything with a
    dtype) must already have ``dtype``: a float64 array silently rounded to float32 (or a complex
    one) would be a wrong answer.
    A masked array with masked entries is refused: its mask would be dropped silently.
    """
    refuse_foreign(x, what)
    if hasattr(x, "toarray") and hasattr(x, "nnz"):  # scipy.sparse, without importing it
        raise DtypeError(f"{what} is a sparse matrix; compiled functions take dense arrays. Fix: pass its "
                         ".toarray() if it fits in memory.")
    x = unmasked(x, what, "drop those rows (np.ma.compress_rows) or fill them (arr.filled(value))")
    if not isinstance(x, np.ndarray) and hasattr(x, "dtype") and hasattr(x, "__array__"):
        x = np.asarray(x)  # a pandas Series has a dtype too: float64 is not rounded to float32 silently
    if not isinstance(x, np.ndarray):
        _refuse_none(x, what)
        _refuse_non_real(x, what)
        try:
            whole = np.asarray(x)  # Python ints: checked as an integer array is, below
            if whole.dtype.kind == "O" and any(isinstance(v, int) and abs(v) >= 2**63 for v in whole.flat):
                raise OverflowError
            with np.errstate(over="ignore"):
                x = whole if whole.dtype.kind in "iub" else np.asarray(x, dtype=dtype)
        except OverflowError as exc:  # beyond int64
            raise DtypeError(f"{what} holds integers beyond ±2^63, which {np.dtype(dtype).name} rounds. "
                             f"Fix: {_SCALE}.") from exc
        except (TypeError, ValueError) as exc:
            raise DtypeError(f"{what} could not be converted to {dtype}: {str(exc).rstrip('.')}. Fix: pass an array of "
                             f"numbers, e.g. np.asarray(values, dtype=np.{dtype}).") from exc
        if x.dtype.kind not in "iub":
            return np.ascontiguousarray(in_range(whole, x, what))
    if x.dtype != dtype and x.dtype.newbyteorder("=") == dtype:  # the same numbers in the other byte order
        return x.astype(dtype)
    if x.dtype.kind in "iub":  # whole numbers are converted where exact, as NumPy and scikit-learn do
        return np.ascontiguousarray(exact_ints(x, dtype, what), dtype=dtype)
    if x.dtype != dtype:
        raise DtypeError(
            f"{what} has dtype {x.dtype}, but this function was compiled for {dtype}. "
            f"Fix: pass it as arr.astype(np.{dtype})"
            + (f", or compile with dtype='{x.dtype.newbyteorder('=').name}'." if x.dtype.newbyteorder("=").name
               in ("float32", "float64") else " (symgrad computes in float32 or float64 only).")
            if x.dtype.kind == "f"
            else f"{what} has dtype {x.dtype}, which is not a real floating type. "
            f"Fix: convert it to numbers, np.asarray(arr, dtype=np.{dtype})."
        )
    return np.ascontiguousarray(x)


def unmasked(x: object, what: str, fix: str) -> object:
    """``x``, or a masked array's data where nothing is masked; one with masked entries is refused:
    NumPy's conversion drops the mask, and the values under it would be used as numbers."""
    if not isinstance(x, np.ma.MaskedArray):
        return x
    if np.ma.getmaskarray(x).any():
        raise DataError(f"{what} is a masked array with masked entries, which would be used as numbers. "
                        f"Fix: {fix}.")
    return np.ma.getdata(x)


def _refuse_non_real(x: object, what: str) -> None:
    """A list of complex numbers or of strings is refused as such an ndarray is: converted to
    float, complex numbers lost their imaginary parts (NumPy only warned) and "2" became 2."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):  # ragged nesting: the conversion will say so
        return
    odd = raw.dtype.kind in "cUS" or raw.dtype.kind == "O" and any(isinstance(v, (str, bytes, complex))
                                                                   for v in raw.flat)
    if odd:
        kind = "complex numbers" if raw.dtype.kind == "c" or any(isinstance(v, complex) for v in raw.flat) else "text"
        raise DtypeError(f"{what} holds {kind}, not real numbers. Fix: pass real values, e.g. "
                         f"np.asarray(values, dtype=float) after converting them yourself (np.real, float(s)).")


def _refuse_none(x: object, what: str) -> None:
    """None (or a list holding None) would become NaN in a float array, and be reported as
    non-finite data: name it instead."""
    held = False
    if isinstance(x, (list, tuple)) or isinstance(x, np.ndarray) and x.dtype == object:
        try:
            held = any(v is None for v in np.asarray(x, dtype=object).flat)
        except ValueError:  # ragged nesting: the conversion will say so
            pass
    if not (x is None or held):
        return
    state = "is" if x is None else "holds"
    if what.split()[0] in ("theta", "v", "point") or what.startswith("params["):
        raise DataError(f"{what} {state} None, not numbers. Fix: pass the parameters' numbers, e.g. the "
                        "x of a scipy.optimize result or a model's .params.")
    raise DataError(f"{what} {state} None, not numbers. Fix: pass an array of numbers for it (every data "
                    "array, in the order given to data=[...]); drop or impute missing values instead of None.")


def real_array(x: object, dtype: np.dtype, what: str, fix: str) -> np.ndarray:
    """``x`` (an array, nested lists) as a new C-contiguous ``dtype`` array: real numbers of any
    kind are converted (as scipy's float64 vectors are); None, complex numbers (NumPy drops their
    imaginary parts with only a warning), text and ragged nesting are refused, ``fix`` said."""
    refuse_foreign(x, what)
    _refuse_none(x, what)
    x = unmasked(x, what, f"{fix}, e.g. arr.filled(value)")
    try:
        raw = np.asarray(x)
    except ValueError as exc:  # ragged nesting
        raise ShapeError(f"{what} is not an array of numbers ({exc}). Fix: {fix}.") from exc
    if raw.dtype.kind == "c" or raw.dtype.kind == "O" and any(isinstance(v, complex) for v in raw.flat):
        raise DtypeError(f"{what} holds complex numbers; symgrad computes with real ones. Fix: {fix}; model a "
                         "complex quantity by its real and imaginary parts.")
    if raw.dtype.kind in "USO":
        _refuse_non_real(raw, what)  # "2" would become 2
    try:
        if raw.dtype.kind not in "fiubO":
            raise TypeError(f"dtype {raw.dtype}")
        with np.errstate(over="ignore"):
            out = np.array(raw, dtype=dtype, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        raise DtypeError(f"{what} could not be converted to {np.dtype(dtype).name}: {exc}. Fix: {fix}.") from exc
    exact_ints(raw, dtype, what)
    return in_range(raw, out, what)


def split_flat(flat: np.ndarray, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """``flat`` cut into consecutive arrays of ``shapes`` (views, not copies)."""
    out, at = [], 0
    for r, c in shapes:
        out.append(flat[at:at + r * c].reshape(r, c))
        at += r * c
    return out


ROWS_FIX = "Fix: drop or impute NaN/Inf rows before calling (e.g. X[np.isfinite(X).all(axis=1)])."
PARAMS_FIX = ("Fix: start from finite values; parameters that became NaN or Inf mean the optimizer "
              "diverged (lower its step size).")


#: The first row's number in the whole data while a Dask worker checks one row chunk: messages
#: name the row a user can look up (row 25, not row 5 of the chunk that starts at 20).
ROW_OFFSET: ContextVar[int] = ContextVar("symgrad_row_offset", default=0)


@contextlib.contextmanager
def rows_from(start: int):
    """Row numbers in messages count from ``start`` inside this block."""
    token = ROW_OFFSET.set(int(start))
    try:
        yield
    finally:
        ROW_OFFSET.reset(token)


def check_finite(x: np.ndarray, what: str, fix: str = ROWS_FIX) -> None:
    """Raise DataError naming the first NaN/Inf entry, and ``fix``."""
    if x.size and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        where = tuple(int(i) for i in bad)
        value = x[where]
        if fix is not PARAMS_FIX:  # data: its first index is a row
            where = (where[0] + ROW_OFFSET.get(), *where[1:])
        raise DataError(
            f"{what} holds a non-finite value ({value}) at index {where if len(where) > 1 else where[0]}. {fix}"
        )


def check_data(
    arrays: Sequence[object], names: Sequence[str], dtype: np.dtype, widths: Sequence[int] | None = None,
    min_rows: int = 1, what: str = "data arrays", kinds: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Validate per-sample data arrays: dtype, finiteness, one row per sample, equal lengths,
    and at least ``min_rows`` rows (a mean over no samples is undefined; pointwise takes 0).
    ``kinds`` names what each array is in messages ("parameter"; "data" by default)."""
    if len(arrays) != len(names):
        raise ShapeError(
            f"expected {len(names)} data array(s) ({', '.join(names)}), got {len(arrays)}. "
            "Fix: pass one array per data symbol, in the order given to data=[...]."
        )
    out = []
    for k, (a, name) in enumerate(zip(arrays, names)):
        label = f"{'data' if kinds is None else kinds[k]} '{name}'"
        arr = as_float_array(a, dtype, label)
        want = 1 if widths is None else widths[k]
        if want == 1 and arr.ndim == 2 and arr.shape[1] == 1:
            arr = np.ascontiguousarray(arr[:, 0])
        ok = arr.ndim == 1 if want == 1 else (arr.ndim == 2 and arr.shape[1] == want)
        if not ok:
            shape = "(n,)" if want == 1 else f"(n, {want})"
            raise ShapeError(f"{label} has shape {arr.shape}; expected {shape}, one row per sample. "
                             f"Fix: one {'value' if want == 1 else f'row of {want}'} per sample for '{name}'.")
        check_finite(arr, label)
        out.append(arr)
    lengths = {name: len(a) for name, a in zip(names, out)}
    if out and max(lengths.values()) < min_rows:
        raise DataError("the data have no rows: a mean over no samples is undefined. "
                        "Fix: pass at least one sample.")
    if len(set(lengths.values())) > 1:
        raise DataError(
            f"{what} have different lengths {lengths}. Fix: give every one of them one row per sample."
        )
    return out


def per_point(arrays: Sequence[object], params: Sequence, data: Sequence) -> list:
    """``pointwise()``'s arguments: each parameter one number (the same at every point, as NumPy
    broadcasts it) or one per point, then the data."""
    k = len(params)
    if len(arrays) != k + len(data):
        raise ShapeError(f"pointwise() takes {k} parameter(s) ({', '.join(map(str, params))}) and then {len(data)} "
                         f"data array(s) ({', '.join(map(str, data))}); got {len(arrays)} arguments. Fix: pass each "
                         "parameter (one number, or one per point), then the data in the order given to data=[...].")
    rows = [np.shape(a)[0] for a in arrays[k:] if np.ndim(a)] or [1]
    return [[a] * rows[0] if i < k and np.ndim(a) == 0 and a is not None else a for i, a in enumerate(arrays)]


def check_vector(x: object, n: int, dtype: np.dtype, what: str) -> np.ndarray:
    """A flat parameter-like vector of length ``n`` (params are converted, not refused:
    optimizers such as scipy's always hand us float64)."""
    arr = real_array(x, dtype, what, f"pass real numbers, one per parameter ({n})").reshape(-1)
    if arr.shape[0] != n:
        raise ShapeError(f"{what} has {arr.shape[0]} entries; expected {n}. Fix: pass one value per parameter.")
    check_finite(arr, what, PARAMS_FIX)  # NaN in theta would come back as a NaN loss, silently
    return arr


def refuse_foreign(x: object, what: str) -> None:
    """Containers NumPy's conversion mishandles. A Dask DataFrame or Series is not a Dask array:
    the conversion computed it whole on this machine, the out-of-memory failure Dask is there to
    avoid. A torch tensor that requires grad, or a bfloat16 one, raised torch's own errors."""
    if type(x).__module__.startswith(("dask.", "dask_expr")) and not is_dask(x):
        raise DataError(f"{what} is a Dask {type(x).__name__}, which symgrad would have to compute whole on this "
                        "machine; it takes Dask arrays, whose chunks stay on the workers. Fix: pass "
                        "frame.to_dask_array(lengths=True) (the columns the model reads, as one array).")
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):  # NumPy's conversion raises torch's own
        if getattr(x, "requires_grad", False):
            raise DtypeError(f"{what} is a torch tensor that requires grad, which NumPy cannot read. Fix: pass "
                             "tensor.detach().numpy().")
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            raise DtypeError(f"{what} is a bfloat16 torch tensor, which NumPy has no type for. Fix: pass "
                             "tensor.float().numpy() (or .double()).")


def is_dask(x: object) -> bool:
    """Whether ``x`` is a Dask array (checked without importing Dask, an optional extra)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "chunks") and hasattr(x, "to_delayed")
