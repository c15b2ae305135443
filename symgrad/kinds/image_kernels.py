"""The Numba source of the image kinds (``conv.py``, ``pool.py``), emitted once per module that
uses them. Images are (B, C·H·W) arrays, channel by channel (NCHW order); ``F`` is the module's
float type, ``mm``/``mm_acc`` its BLAS products (``codegen.maps.MM_HELPERS``).
"""

CONV = '''
@jit
def im2col(x, col, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo):
    # col[(c, u, v), (i, oy, ox)] = x[i, c, oy*sh - ph + u, ox*sw - pw + v], zero outside the image
    B, L = x.shape[0], Ho * Wo
    for c in range(C):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                for i in range(B):
                    for oy in range(Ho):
                        y = oy * sh - ph + u
                        at = i * L + oy * Wo
                        if y < 0 or y >= H:
                            for ox in range(Wo):
                                col[r, at + ox] = F(0.0)
                            continue
                        row = (c * H + y) * W
                        for ox in range(Wo):
                            xx = ox * sw - pw + v
                            col[r, at + ox] = x[i, row + xx] if 0 <= xx < W else F(0.0)


@jit
def col2im(dcol, dx, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo):
    # the adjoint of im2col: every window's delta added back where the window read the image
    B, L = dx.shape[0], Ho * Wo
    for c in range(C):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                for i in range(B):
                    for oy in range(Ho):
                        y = oy * sh - ph + u
                        if y < 0 or y >= H:
                            continue
                        row, at = (c * H + y) * W, i * L + oy * Wo
                        for ox in range(Wo):
                            xx = ox * sw - pw + v
                            if 0 <= xx < W:
                                dx[i, row + xx] += dcol[r, at + ox]


@jit
def conv2d_fwd(k, x, b, out, C, H, W, kh, kw, sh, sw, ph, pw):
    # out[i, (o, oy, ox)] = b[o] + sum over (c, u, v) of k[o, (c, u, v)] * window; returns the
    # windows (im2col), which the backward pass reuses
    B, O = x.shape[0], k.shape[0]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    L = Ho * Wo
    col = np.empty((C * kh * kw, B * L), dtype=F)
    im2col(x, col, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    z = np.empty((O, B * L), dtype=F)
    mm(k, col, z)
    for i in range(B):
        for o in range(O):
            bo = b[o]
            for q in range(L):
                out[i, o * L + q] = z[o, i * L + q] + bo
    return col


@jit
def conv2d_bwd(k, col, dout, dk, db, dx, C, H, W, kh, kw, sh, sw, ph, pw):
    # dk += dz · colᵀ, db += the sum of dz per channel, dx += col2im(kᵀ · dz); an empty
    # dk, db or dx is an adjoint nobody needs
    B, O = dout.shape[0], k.shape[0]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    L = Ho * Wo
    dz = np.empty((O, B * L), dtype=F)
    for i in range(B):
        for o in range(O):
            for q in range(L):
                dz[o, i * L + q] = dout[i, o * L + q]
    if db.shape[0] > 0:
        for o in range(O):
            s = F(0.0)
            for q in range(B * L):
                s += dz[o, q]
            db[o] += s
    if dk.shape[0] > 0:
        mm_acc(dz, col.T, dk)
    if dx.shape[0] > 0:
        dcol = np.empty((C * kh * kw, B * L), dtype=F)
        mm(k.T, dz, dcol)
        col2im(dcol, dx, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
'''


POOL = '''
@jit
def pool_argmax(x, i, c, oy, ox, H, W, kh, kw, sh, sw):
    # the flat index of the window's first largest value (a NaN wins: it propagates)
    at = (c * H + oy * sh) * W + ox * sw
    m = x[i, at]
    for u in range(kh):
        for v in range(kw):
            j = (c * H + oy * sh + u) * W + ox * sw + v
            if x[i, j] > m or (np.isnan(x[i, j]) and not np.isnan(m)):
                m, at = x[i, j], j
    return at


@jit
def maxpool_fwd(x, out, C, H, W, kh, kw, sh, sw):
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    for i in range(x.shape[0]):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    out[i, (c * Ho + oy) * Wo + ox] = x[i, pool_argmax(x, i, c, oy, ox, H, W, kh, kw, sh, sw)]


@jit
def maxpool_bwd(x, dout, dx, C, H, W, kh, kw, sh, sw):
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    for i in range(x.shape[0]):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    dx[i, pool_argmax(x, i, c, oy, ox, H, W, kh, kw, sh, sw)] += dout[i, (c * Ho + oy) * Wo + ox]


@jit
def avgpool_fwd(x, out, C, H, W, kh, kw, sh, sw):
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    scale = F(1.0) / F(kh * kw)
    for i in range(x.shape[0]):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    s = F(0.0)
                    for u in range(kh):
                        row = (c * H + oy * sh + u) * W + ox * sw
                        for v in range(kw):
                            s += x[i, row + v]
                    out[i, (c * Ho + oy) * Wo + ox] = s * scale


@jit
def avgpool_bwd(dout, dx, C, H, W, kh, kw, sh, sw):
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    scale = F(1.0) / F(kh * kw)
    for i in range(dout.shape[0]):
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    g = dout[i, (c * Ho + oy) * Wo + ox] * scale
                    for u in range(kh):
                        row = (c * H + oy * sh + u) * W + ox * sw
                        for v in range(kw):
                            dx[i, row + v] += g
'''

