"""symgrad in scikit-learn: a Pipeline (scaling + symgrad's MLPClassifier) on the breast-cancer
data with its text labels, grid-searched with two processes, saved with joblib, then loaded
in a fresh Python process, which must predict exactly what this one predicts.

    python examples/sklearn_pipeline.py           # 4 candidates, 200 epochs each
    python examples/sklearn_pipeline.py --quick   # 2 candidates, 60 epochs, for CI

Each architecture is compiled by Numba once (seconds; the first fit below), then taken from
the code cache by the grid-search workers, the refit and the fresh process.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from symgrad.sklearn import MLPClassifier


def data():
    d = load_breast_cancer()
    labels = d.target_names[d.target]  # 'malignant' / 'benign': any label type works
    return train_test_split(d.data, labels, test_size=0.25, random_state=0, stratify=labels)


def pipeline(quick: bool):
    clf = MLPClassifier((16,), max_iter=60 if quick else 200, random_state=0)
    return make_pipeline(StandardScaler(), clf)


def search(quick: bool) -> GridSearchCV:
    grid = {"mlpclassifier__learning_rate_init": [1e-3, 1e-2]}
    if not quick:
        grid["mlpclassifier__hidden_layer_sizes"] = [(16,), (64, 32)]
    return GridSearchCV(pipeline(quick), grid, cv=3, n_jobs=2)


def predict_elsewhere(model_path: Path, X: np.ndarray) -> np.ndarray:
    """Labels predicted by a new Python process that only loads the saved pipeline."""
    x_path = model_path.with_suffix(".X.npy")
    np.save(x_path, X)
    out = model_path.with_suffix(".labels.npy")
    subprocess.run([sys.executable, __file__, "--predict", str(model_path), str(x_path), str(out)],
                   check=True)
    return np.load(out, allow_pickle=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 candidates and 60 epochs, for CI (the full run: 4 and 200)")
    ap.add_argument("--predict", nargs=3, metavar=("MODEL", "X", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.predict:  # the fresh process
        model_path, x_path, out = args.predict
        np.save(out, joblib.load(model_path).predict(np.load(x_path)))
        return 0
    Xtr, Xte, ytr, yte = data()
    t0 = time.perf_counter()
    base = pipeline(args.quick).fit(Xtr, ytr)
    print(f"default pipeline: test accuracy {base.score(Xte, yte):.3f} "
          f"({time.perf_counter() - t0:.1f} s, most of it compiling the network once)")
    t0 = time.perf_counter()
    gs = search(args.quick).fit(Xtr, ytr)  # the learning rate is an argument: no new compilation
    print(f"grid search: {len(gs.cv_results_['params'])} candidates x 3 folds in "
          f"{time.perf_counter() - t0:.1f} s (2 processes)")
    print(f"best {gs.best_params_}: cross-validated accuracy {gs.best_score_:.3f}")
    best = gs.best_estimator_
    acc = best.score(Xte, yte)
    print(f"classes {best.classes_.tolist()}; test accuracy {acc:.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.joblib"
        joblib.dump(best, path)
        same = np.array_equal(predict_elsewhere(path, Xte), best.predict(Xte))
    print(f"saved, loaded in a fresh process: predicts identically: {same}")
    target = 0.93
    if acc < target or not same:
        print(f"FAILED: accuracy {acc:.3f} (needs >= {target}), identical predictions {same}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
