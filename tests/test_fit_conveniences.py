"""fit's conveniences (issue 18, section 5): validation_split, metrics, verbose, the learning rate
in the history, summary(), and gradient-health warnings that are relative, once per run, and
early enough to come before divergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp
from sklearn.metrics import f1_score, mean_absolute_error

import symgrad as sg
from symgrad.lang.nn import MLP
from symgrad.runtime.epochs import GradientHealthWarning


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


NET = MLP([3, 6, 2], activation="tanh")


def test_validation_split_holds_out_the_last_rows(blobs):
    X, y = blobs
    kw = dict(optimizer=sg.optim.Adam(0.05), epochs=3, batch_size=20, backend="python")
    split = sg.fit(NET, "softmax_cross_entropy", X, y, validation_split=0.25, **kw)
    by_hand = sg.fit(NET, "softmax_cross_entropy", X[:150], y[:150], validation=(X[150:], y[150:]), **kw)
    assert split.history["val_loss"] == by_hand.history["val_loss"] and len(split.history["val_loss"]) == 3
    for p, q in zip(split.params, by_hand.params):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(sg.errors.OptionError, match="validation= and validation_split="):
        sg.fit(NET, "softmax_cross_entropy", X, y, validation_split=0.2, validation=(X, y), **kw)
    for bad in (0, 1.0, -0.1, "0.1", True):
        with pytest.raises(sg.errors.OptionError, match="validation_split"):
            sg.fit(NET, "softmax_cross_entropy", X, y, validation_split=bad, **kw)
    with pytest.raises(sg.errors.DataError, match="both need at least one"):
        sg.fit(NET, "softmax_cross_entropy", X[:1], y[:1], validation_split=0.5, **kw)
    # Keras's count, floor(n·(1 − f)) rows to train on: round() held out 2 of 23 at 0.1 (Keras 3)
    from symgrad.runtime.inputs import split_validation

    for n, f, held in ((23, 0.1, 3), (10, 0.25, 3), (200, 0.25, 50), (3, 0.01, 1)):
        assert len(split_validation(X[:n], y[:n], None, f)[2][0]) == held, (n, f)


def test_metrics_are_scikit_learn_callables_on_the_validation_data(blobs):
    X, y = blobs
    m = sg.fit(NET, "softmax_cross_entropy", X, y, validation_split=0.25, metrics=[f1_score],
               optimizer=sg.optim.Adam(0.05), epochs=4, batch_size=20, backend="python")
    assert len(m.history["val_f1_score"]) == 4
    assert m.history["val_f1_score"][-1] == pytest.approx(f1_score(y[150:], m.predict_class(X[150:])))
    reg = sg.fit(MLP([3, 4, 1], activation="tanh"), "mse", X, X[:, 0], validation=(X[:50], X[:50, 0]),
                 metrics={"mae": mean_absolute_error}, epochs=2, backend="python")
    assert reg.history["val_mae"][-1] == pytest.approx(mean_absolute_error(X[:50, 0], reg.predict(X[:50])))
    with pytest.raises(sg.errors.OptionError, match="validation data"):
        sg.fit(NET, "softmax_cross_entropy", X, y, metrics=[f1_score], epochs=1, backend="python")
    with pytest.raises(sg.errors.OptionError, match="callables"):
        sg.fit(NET, "softmax_cross_entropy", X, y, validation_split=0.2, metrics=["f1"], epochs=1,
               backend="python")


def test_a_metric_that_cannot_take_the_labels_fails_before_the_first_epoch(blobs):
    # the README's f1_score on ten classes raised sklearn's ValueError after epoch 1, losing it
    import functools

    X, y = blobs
    y3 = y + (X[:, 2] > 1)
    calls = []
    kw = dict(validation_split=0.25, epochs=3, callbacks=[lambda e, m: calls.append(e)], backend="python")
    for bad, what in ((f1_score, r"ValueError: Target is multiclass"), (lambda t, g: np.array([1.0, 2.0]), "TypeError")):
        with pytest.raises(sg.errors.OptionError, match=rf"metrics: .*failed on the validation data \({what}.*Fix:"):
            sg.fit(MLP([3, 6, 3], activation="tanh"), "softmax_cross_entropy", X, y3, metrics=[bad], **kw)
    assert calls == []  # no epoch ran
    m = sg.fit(MLP([3, 6, 3], activation="tanh"), "softmax_cross_entropy", X, y3,
               metrics=[functools.partial(f1_score, average="macro")], **kw)
    assert len(m.history["val_f1_score"]) == 3  # a partial is named after its function


def test_history_has_the_learning_rate_and_verbose_prints_a_line_per_epoch(blobs, capsys):
    X, y = blobs
    opt = sg.optim.SGD(0.4, schedule=sg.optim.StepLR(step_size=2, gamma=0.5))
    m = sg.fit(NET, "softmax_cross_entropy", X, y, optimizer=opt, epochs=5, batch_size=50, verbose=1,
               validation_split=0.2, backend="python")
    assert m.history["lr"] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("epoch 1/5 - loss ") and "val_loss" in lines[0]
    assert "lr 0.1" in lines[-1]
    more = m.fit_more(X[:160], y[:160], epochs=1)
    assert more.history["lr"][-1] == pytest.approx(0.1) and len(more.history["lr"]) == 6  # epoch 6: still 0.1


def test_summary_lists_parameters_and_training(blobs):
    X, y = blobs
    m = sg.fit(NET, "softmax_cross_entropy", X, y, epochs=2, backend="python")
    text = m.summary()
    assert "W1" in text and "(6, 3)" in text and "18" in text
    assert text.splitlines()[-2].split()[-1] == str(6 * 3 + 6 + 2 * 6 + 2)
    assert "softmax_cross_entropy" in text and "2 epochs trained" in text


def test_vanishing_warning_is_relative_and_once_per_run():
    rng = np.random.default_rng(0)
    net = MLP([4, 8, 8, 8, 8, 1], activation="sigmoid")
    # small first layers: their gradients are far below the last layer's, though not below 1e-8
    params = [(1e-2 if k < 6 else 1.0) * rng.normal(size=p.shape) for k, p in enumerate(net.init_params(0))]
    X = rng.normal(size=(64, 4))
    Y = (X[:, 0] > 0).astype(float)
    with pytest.warns(GradientHealthWarning, match=r"vanishing in \['W1'.*ReLU-like activations") as got:
        m = sg.fit(net, "bce", X, Y, optimizer=sg.optim.SGD(0.1), epochs=6, batch_size=16, params=params,
                   chunk_epochs=1, backend="python")
    assert sum("vanishing" in str(w.message) for w in got) == 1  # once per fit, not every epoch
    norms = np.array(m.history["grad_norms"][0])
    assert norms[0] > 1e-8 and norms[0] < 1e-4 * norms.max()


def test_exploding_warning_comes_before_divergence():
    rng = np.random.default_rng(1)
    net = MLP([3, 2], activation="identity")
    X, Y = rng.normal(size=(64, 3)), rng.normal(size=(64, 2))
    with pytest.warns(GradientHealthWarning, match="exploding") as got:
        with pytest.raises(sg.errors.DivergenceError) as info:
            sg.fit(net, "mse", 3 * X, Y, optimizer=sg.optim.SGD(2.0), epochs=400, batch_size=64, chunk_epochs=1,
                   backend="python")
    warned = [w for w in got if "exploding" in str(w.message)]
    assert len(warned) == 1
    epoch = int(str(warned[0].message).split("(epoch ")[1].split(";")[0])
    assert epoch < len(info.value.result.history["loss"])  # warned epochs before the overflow
    with warnings.catch_warnings():  # a healthy run stays quiet
        warnings.simplefilter("error", GradientHealthWarning)
        sg.fit(net, "mse", X, Y, optimizer=sg.optim.SGD(0.05), epochs=30, batch_size=8, backend="python")


def test_a_layer_next_to_an_exploding_one_is_not_called_vanishing():
    """An SGD(1e4) CNN's epoch (norms K1 6e48, b4 0.72): b4 is 1e-49 of the largest, but the run
    explodes; only that is warned (the relative vanishing rule waits for an epoch without explosion)."""
    from symgrad.runtime.epochs import Run

    run = Run([sp.Symbol("K1"), sp.Symbol("b4")])
    with pytest.warns(GradientHealthWarning) as got:
        run.health(np.array([[1.0, 0.5], [6.1e48, 0.719]]), 0)
    assert [str(w.message).split(" in ")[0] for w in got] == ["gradient norms are exploding"]
    with pytest.warns(GradientHealthWarning, match=r"vanishing in \['b4'\] \(epoch 3"):
        run.health(np.array([[1.0, 1e-5]]), 2)  # a sane epoch: judged as before


def test_auto_blas_threads_weigh_the_multiply_adds_of_a_step():
    """blas_threads='auto' (issue 18 §6): one BLAS thread for a digits-sized step, BLAS's own
    threads for wide layers, convolutions and attention (weights used at every position)."""
    from symgrad.runtime.execution import BLAS_WORK, fit_blas_threads, sample_work

    nn = sg.nn
    assert sample_work(nn.MLP([64, 128, 64, 10]).expr) == 64 * 128 + 128 * 64 + 64 * 10
    cnn = nn.Sequential([nn.Conv2D(1, 16, 3, padding="same"), nn.Flatten(), nn.Dense(16 * 64, 10)], (1, 8, 8))
    assert sample_work(cnn.expr) == 16 * 9 * 64 + 16 * 64 * 10  # the kernel at each of 8×8 positions
    assert sample_work(nn.Transformer(10, 8, 2, 1, 6).expr) > 6 * sum(p.shape[0] * p.shape[1] for p in
                                                                       nn.Transformer(10, 8, 2, 1, 6).params[2:6])
    digits = sample_work(nn.MLP([64, 128, 64, 10]).expr)
    assert fit_blas_threads("auto", digits, 64, None) == 1 and digits * 64 < BLAS_WORK
    assert fit_blas_threads("auto", sample_work(nn.MLP([64, 512, 512, 10]).expr), 256, None) is None
    assert fit_blas_threads("auto", 10**9, 4096, 2) == 1  # row blocks already use the cores
    assert fit_blas_threads(2, 1, 1, None) == 2 and fit_blas_threads(None, 1, 1, None) is None


def test_row_blocks_get_one_blas_thread_each_and_say_so_when_asked_for_more():
    """OpenBLAS called from two row blocks at once, each starting its own threads, made the digits
    CNN 20x slower: row blocks always run one BLAS thread, and another request warns."""
    from symgrad.runtime.execution import fit_blas_threads

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_blas_threads("auto", 10**9, 4096, 2) == 1 and fit_blas_threads(1, 10**9, 4096, 2) == 1
        assert fit_blas_threads(2, 10**9, 4096, 1) == 2  # one block: BLAS gets what was asked
    for asked in (None, 2, 4):
        with pytest.warns(RuntimeWarning, match=r"row blocks on 2 threads.*Fix: threads=1"):
            assert fit_blas_threads(asked, 10**9, 4096, 2) == 1


@pytest.mark.numba
def test_a_fit_with_row_blocks_and_blas_threads_trains_as_with_one_blas_thread():
    from symgrad.runtime.execution import fit_threads, sample_work

    net = sg.nn.MLP([1000, 1000, 3], activation="tanh")
    if fit_threads(4, work=sample_work(net.expr)) < 2:
        pytest.skip("Numba has one thread here: fit never splits a batch")
    rng = np.random.default_rng(3)
    X, labels = rng.standard_normal((12, 1000)) / 30, rng.integers(0, 3, 12)
    kw = dict(optimizer=sg.optim.Adam(1e-3), epochs=2, batch_size=4, seed=1)
    with pytest.warns(RuntimeWarning, match="BLAS runs one thread per block"):
        asked = sg.fit(net, "softmax_cross_entropy", X, labels, blas_threads=None, **kw)
    auto = sg.fit(net, "softmax_cross_entropy", X, labels, **kw)
    for a, b in zip(asked.params, auto.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_chunks_of_epochs_are_refused_with_options_that_act_after_every_epoch():
    # early stopping's best parameters, callbacks and the threshold would see only every
    # chunk_epochs-th epoch: refused, not run at another granularity than documented
    rng = np.random.default_rng(0)
    net = MLP([3, 4, 2], activation="tanh")
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    cases = [(dict(validation=(X, Y), patience=2), "validation"), (dict(callbacks=[lambda e, m: None]), "callbacks"),
             (dict(threshold=1e-3), "threshold"), (dict(verbose=1), "verbose"),
             (dict(optimizer=sg.optim.SGD(0.1, schedule=sg.optim.ReduceLROnPlateau(monitor="loss"))),
              "ReduceLROnPlateau")]
    for options, match in cases:
        with pytest.raises(sg.errors.OptionError, match=f"chunk_epochs=3 runs 3 epochs.*, but {match} must act after every epoch.*Fix: drop chunk_epochs"):
            sg.fit(net, "mse", X, Y, epochs=6, chunk_epochs=3, backend="python", **options)
        m = sg.fit(net, "mse", X, Y, epochs=2, chunk_epochs=1, backend="python", **options)
        assert len(m.history["loss"]) >= 1
    m = sg.fit(net, "mse", X, Y, epochs=6, chunk_epochs=3, backend="python")  # nothing per epoch: allowed
    assert len(m.history["loss"]) == 6
