"""Bad convolutional models and images (issue 15): each gets a ``SymgradError`` whose message names
the fix; the last section holds the bugs these tests found, now fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, SymgradError, UnsupportedModelError

MS = sp.MatrixSymbol
nn = sg.nn

# -- bad input: a SymgradError that names the fix -----------------------------------------------


def seq(*layers, shape=(1, 8, 8)):
    return nn.Sequential(list(layers), input_shape=shape)


K4, x64, b4 = MS("K", 4, 9), MS("x", 64, 1), MS("b", 4, 1)
BAD_MODELS = {  # what the user wrote -> (error class, a fragment of the message: the fix)
    "5x5 kernel on a 3x3 image": (lambda: seq(nn.Conv2D(1, 2, 5), nn.Flatten(), nn.Dense(2, 2), shape=(1, 3, 3)),
                                  ShapeError, "Fix: a smaller kernel, more padding, or a larger image"),
    "kernel wider than the padded image": (lambda: seq(nn.Conv2D(1, 2, (1, 9), padding=(0, 0)), nn.Flatten()),
                                           ShapeError, "width of the input (8, padding 0"),
    "pool window larger than the image": (lambda: seq(nn.Conv2D(1, 2, 3), nn.MaxPool2D(7), nn.Flatten()),
                                          ShapeError, "smaller than the pooling window (7). Fix: a smaller size "
                                          "(at most 6)"),
    "stride 0": (lambda: seq(nn.Conv2D(1, 2, 3, stride=0), nn.Flatten()), ShapeError, "at least 1. Fix"),
    "negative padding": (lambda: seq(nn.Conv2D(1, 2, 3, padding=-1), nn.Flatten()), ShapeError, "at least 0. Fix"),
    "pool stride 0": (lambda: seq(nn.AvgPool2D(2, stride=0), nn.Flatten()), ShapeError, "at least 1. Fix"),
    "fractional stride": (lambda: seq(nn.Conv2D(1, 2, 3, stride=1.5), nn.Flatten()), ShapeError,
                          "give an integer or a pair of integers"),
    "channels that do not match": (lambda: seq(nn.Conv2D(1, 8, 3), nn.Conv2D(3, 4, 3), nn.Flatten()),
                                   ShapeError, "Fix: Conv2D(8, 4, ...)"),
    "input channels that do not match": (lambda: seq(nn.Conv2D(3, 8, 3), nn.Flatten()), ShapeError,
                                         "Fix: Conv2D(1, 8, ...)"),
    "Dense after a conv without Flatten": (lambda: seq(nn.Conv2D(1, 8, 3), nn.Dense(288, 2)), ShapeError,
                                           "put sg.nn.Flatten() before it (it then takes 288)"),
    "Dense of the wrong width after Flatten": (lambda: seq(nn.Conv2D(1, 8, 3), nn.Flatten(), nn.Dense(64, 2)),
                                               ShapeError, "Fix: Dense(288, 2)"),
    "conv after Flatten": (lambda: seq(nn.Flatten(), nn.Conv2D(1, 2, 3), nn.Dense(72, 2)), ShapeError,
                           "convolutions and pooling come before Flatten"),
    "network ending with an image": (lambda: seq(nn.Conv2D(1, 2, 3)), ShapeError, "end with Flatten()"),
    "conv on a flat input_shape": (lambda: seq(nn.Conv2D(1, 2, 3), nn.Flatten(), shape=64), ShapeError,
                                   "takes an image (C, H, W)"),
    "input_shape (H, W)": (lambda: seq(nn.Conv2D(1, 2, 3), nn.Flatten(), shape=(8, 8)), ShapeError,
                           "input_shape=(1, 8, 8)"),
    "same padding with an even kernel": (lambda: seq(nn.Conv2D(1, 2, 2, padding="same"), nn.Flatten()),
                                         ShapeError, "padding='same' needs stride 1 and an odd kernel"),
    "same padding with stride 2": (lambda: seq(nn.Conv2D(1, 2, 3, stride=2, padding="same"), nn.Flatten()),
                                   ShapeError, "give the padding as a number"),
    "softmax on a conv": (lambda: nn.Conv2D(1, 2, 3, activation="softmax"), OptionError, "'relu'"),
    "zero channels": (lambda: nn.Conv2D(0, 2, 3), OptionError, "Conv2D(1, 16, 3)"),
    "bias of the wrong shape": (lambda: sg.conv2d(K4, x64, MS("b", 1, 4), in_shape=(1, 8, 8)), ShapeError,
                                "must be 4 × 1 (one per output channel)"),
    "conv2d on a leaf without in_shape": (lambda: sg.conv2d(K4, x64, b4), ShapeError,
                                          "pass in_shape=(C, H, W), with C·H·W = 64"),
    "pool on a leaf without in_shape": (lambda: sg.maxpool2d(x64, 2), ShapeError, "pass in_shape=(C, H, W)"),
    "in_shape that does not fit the rows": (lambda: sg.conv2d(K4, x64, b4, in_shape=(1, 8, 7)), ShapeError,
                                            "in_shape must match the input"),
    "a non-square kernel without kernel_size": (lambda: sg.conv2d(MS("K", 4, 6), x64, b4, in_shape=(1, 8, 8)),
                                                ShapeError, "pass kernel_size=(kh, kw)"),
    "kernel_size that does not fit K": (lambda: sg.conv2d(K4, x64, b4, in_shape=(1, 8, 8), kernel_size=2),
                                        ShapeError, "need 4"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_models_name_the_fix(case):
    build, error, fragment = BAD_MODELS[case]
    with pytest.raises(error) as info:
        build()
    assert fragment in str(info.value)


@pytest.mark.parametrize("wrt, data", [([b4], [K4, x64]), ([K4, b4, x64], [])])
def test_kernel_must_be_a_parameter_and_the_image_data(wrt, data):
    r = MS("r", 4 * 36, 1)
    loss = sg.msum(sp.HadamardProduct(sg.conv2d(K4, x64, b4, in_shape=(1, 8, 8)), r))
    with pytest.raises(UnsupportedModelError, match=r"Fix: K in wrt=\[\.\.\.\], X from data=\[\.\.\.\]"):
        sg.compile(loss, wrt, [*data, r], backend="python")


@pytest.fixture(scope="module")
def rgb():
    """A trained model of (3, 6, 5) images (Python backend)."""
    net = seq(nn.Conv2D(3, 2, 3, padding=1), nn.Flatten(), nn.Dense(60, 2), shape=(3, 6, 5))
    X = np.random.default_rng(0).normal(size=(4, 3, 6, 5))
    return sg.fit(net, "mse", X, np.zeros((4, 2)), epochs=1, backend="python"), net, X


BAD_IMAGES = {  # X for a (3, 6, 5) model -> a fragment of the message
    "channels last": (lambda X: np.moveaxis(X, 1, -1), "channels first: np.moveaxis(X, -1, 1)"),
    "one channel of three": (lambda X: X[:, 0], "images of shape (3, 6, 5) (C, H, W), one per sample"),
    "transposed images": (lambda X: X.transpose(0, 1, 3, 2), "but the model takes (3, 6, 5)"),
    "flat rows of the wrong width": (lambda X: X.reshape(4, -1)[:, :-1], "the model takes samples of shape (3, 6, 5), 90"),
    "one image without the sample axis": (lambda X: X[0], "one image without the batch axis, but the model takes (3, 6, 5) (channels, height, width) per sample. Fix: X[None], a batch of one"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_wrong_image_shapes_to_fit_and_predict(case, rgb):
    m, net, X = rgb
    bad, fragment = BAD_IMAGES[case]
    with pytest.raises(ShapeError) as info:
        m.predict(bad(X))
    assert fragment in str(info.value)
    with pytest.raises(ShapeError) as info:
        sg.fit(net, "mse", bad(X), np.zeros((4, 2)), epochs=1, backend="python")
    assert fragment in str(info.value)
    assert m.predict(X).shape == m.predict(X.reshape(4, -1)).shape == (4, 2)  # (n, C, H, W) and flat rows


def test_channels_last_single_channel_images_are_refused_with_the_fix():
    net = seq(nn.Conv2D(1, 2, 3), nn.Flatten(), nn.Dense(72, 1))
    with pytest.raises(ShapeError, match=r"np\.moveaxis\(X, -1, 1\)"):
        sg.fit(net, "mse", np.zeros((3, 8, 8, 1)), np.zeros(3), epochs=1, backend="python")


def test_torch_layout_kernel_as_params_is_refused_with_the_shape():
    net = seq(nn.Conv2D(1, 4, 3, padding=1), nn.Flatten(), nn.Dense(256, 2))
    p = net.init_params(0)
    with pytest.raises(ShapeError, match=r"\(4, 1, 3, 3\); the model needs \(4, 9\)"):
        sg.fit(net, "mse", np.ones((3, 1, 8, 8)), np.zeros((3, 2)), epochs=1, params=[p[0].reshape(4, 1, 3, 3), *p[1:]],
               backend="python")


# -- found by these tests and fixed: regressions -------------------------------------------------


def test_a_network_that_flattens_first_takes_images_as_declared():
    net = seq(nn.Flatten(), nn.Dense(64, 2))
    X = np.random.default_rng(0).normal(size=(4, 1, 8, 8))
    m = sg.fit(net, "mse", X, np.zeros((4, 2)), epochs=1, backend="python")
    np.testing.assert_array_equal(m.predict(X), m.predict(X.reshape(4, -1)))


@pytest.mark.parametrize("kernel, n_out", [(0, 162), (-1, 200), ((3, 0), 108)])
def test_kernel_sizes_below_one_are_refused(kernel, n_out):
    with pytest.raises(SymgradError, match="kernel"):
        seq(nn.Conv2D(1, 2, kernel), nn.Flatten(), nn.Dense(n_out, 2))


@pytest.mark.parametrize("kernel", [(3,), (3, 3, 3), "3", 2.0])
def test_malformed_kernel_sizes_get_a_symgrad_error(kernel):
    with pytest.raises(SymgradError, match="kernel_size"):
        seq(nn.Conv2D(1, 2, kernel), nn.Flatten())


def test_array_padding_is_accepted_or_refused_with_a_symgrad_error():
    try:
        net = seq(nn.Conv2D(1, 2, 3, padding=np.array([1, 1])), nn.Flatten())
    except SymgradError:
        return
    assert net.expr.shape == (2 * 8 * 8, 1)


@pytest.mark.parametrize("layer", [lambda i: nn.Conv2D(1, 2, i(3)), lambda i: nn.Conv2D(1, 2, 3, stride=i(2)),
                                   lambda i: nn.Conv2D(1, 2, 3, padding=i(1)), lambda i: nn.MaxPool2D(i(2))],
                         ids=["kernel_size", "stride", "padding", "pool size"])
def test_numpy_integers_are_integers(layer):
    a, b = (seq(layer(i), nn.Flatten()) for i in (int, np.int64))
    assert a.expr.shape == b.expr.shape
