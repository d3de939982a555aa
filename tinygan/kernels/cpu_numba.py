"""Numba kernels for NumPy arrays: faster versions of tinygan's plain functions.

Every public function here has the name and signature of an overridable plain function in
:mod:`tinygan.nn` or :mod:`tinygan.optim` and returns what it returns (shapes, dtypes, C-contiguous
outputs), equal up to floating-point rounding; :func:`register` puts them in the registry of
:mod:`tinygan.overrides`, and ``tests/test_kernels.py`` checks each one against its plain function.
The signatures are written out again here (and in :mod:`tinygan.kernels.gpu_cupy`) rather than
shared, so that each file reads on its own; the tests check that they match.
Read the plain function for *what* a kernel computes; this module is about computing it in one pass
over memory, without the temporaries that NumPy's whole-array expressions create, and about the
speed workarounds that do not belong in the readable layer files.

How the module is organised
---------------------------
* The compiled loops are private functions (``_name``); a public wrapper of the plain function's
  name allocates the outputs, brings the arguments into the layout the loop expects, and calls it.
* **One compiled version per dtype.** Wrappers pass C-contiguous arrays (a non-contiguous input is
  copied once with ``np.ascontiguousarray``; arrays in training are contiguous already) and scalars
  as Python numbers, which the loops cast to the arrays' dtype. So each loop compiles once for
  float32 and once for float64, and float32 arithmetic stays float32, as in the plain functions.
  Only the BatchNorm sums accumulate in float64 (scalars and per-channel vectors, not activations),
  which makes them more accurate than the plain float32 sums.
* **Vectorisation.** Inner loops run from 0 over a 1-D view (a row, or a slice handed to the loop).
  Numba wraps negative indices, and an index it cannot prove non-negative -- ``i`` in
  ``range(lo, hi)`` -- costs a check per access that stops LLVM from vectorising the loop (about
  ten times slower). ``error_model="numpy"`` likewise drops Python's check for division by zero:
  ``x / 0`` is inf or NaN, as in NumPy.
* **Threads.** Only :func:`im2col` and :func:`col2im` have a ``parallel=True`` driver, which gives
  each thread a block of images with ``prange``, and only for at least :data:`PARALLEL_MIN_WORK`
  elements: waking the workers costs microseconds (milliseconds when other processes occupy the
  cores). They are the kernels that move the most memory in a DCGAN step. The elementwise and
  BatchNorm loops would gain about 1% of a step from a second thread and would cost about ten more
  seconds of compilation, so they stay serial. The matrix products are NumPy's (BLAS, threaded).
* ``cache=True``: machine code is written to ``__pycache__`` beside this file the first time a loop
  runs with a dtype, and loaded from there by later processes, which then compile nothing.
* ``fastmath``: only the reductions use it, and only its ``reassoc`` flag, which lets LLVM reorder
  (and so vectorise) a sum; that changes a result by rounding alone. No other flag is used:
  ``nnan``/``ninf`` would let the compiler assume away NaN and infinity, which the kernels must
  propagate as NumPy does, and ``contract`` (fused multiply-add) would make results differ from the
  plain functions' in the last bit where they now agree exactly.
* **Not compiled, but faster**: the convolutions and the Dense weight gradient are the plain functions'
  matrix products arranged for speed -- the batch in chunks (:func:`batch_chunks`) and weight
  gradients in the orientation BLAS threads well (:func:`transposed_product`).

Numba is imported at module level; :mod:`tinygan.overrides` imports this module when the kernels
are chosen (the first call of an overridable function), so ``import tinygan`` does not pay for it.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from tinygan import overrides
from tinygan.kernels.flat import fused_update
from tinygan.nn.conv import from_pixel_rows, pixel_rows, weight_from_matrix, weight_matrix
from tinygan.nn.padding import conv_output_size

#: Elements an im2col/col2im call must move before it is shared among threads.
PARALLEL_MIN_WORK = 1 << 17

_serial = njit(cache=True, error_model="numpy")
_parallel = njit(cache=True, error_model="numpy", parallel=True)
#: Sums that LLVM may reorder (``reassoc``) and so vectorise: the result changes by rounding alone.
_reduction = njit(cache=True, error_model="numpy", fastmath={"reassoc"})


# ------------------------------------------------------------------------------------------------
# Convolution: im2col / col2im. cols[(n, p, q), (i, j, c)] = xpad[n, c, p * sh + i, q * sw + j]. Each
# image is handled in a zero-padded channels-last copy xpad[h, w * C + c]: for a patch row (n, p, q)
# and kernel row i, the kw * C entries (j, c) are then contiguous in both cols and xpad, one run.
# ------------------------------------------------------------------------------------------------


@_serial
def _im2col_images(x, kh, kw, sh, sw, padding, oh, ow, cols, lo, hi):
    """Patch rows of images ``lo..hi``; ``cols`` is viewed as (N * OH * OW, kh, kw * C)."""
    _, c, h, w = x.shape
    top, bottom, left, right = padding
    run = kw * c
    for n in range(lo, hi):
        xpad = np.zeros((h + top + bottom, (w + left + right) * c), dtype=x.dtype)
        for ch in range(c):
            for r in range(h):
                for col in range(w):
                    xpad[r + top, (col + left) * c + ch] = x[n, ch, r, col]
        for p in range(oh):
            for q in range(ow):
                patch = cols[(n * oh + p) * ow + q]
                for i in range(kh):
                    src, dst = xpad[p * sh + i, q * sw * c : q * sw * c + run], patch[i]
                    for k in range(run):
                        dst[k] = src[k]


@_parallel
def _im2col_parallel(x, kh, kw, sh, sw, padding, oh, ow, cols, blocks):
    n = x.shape[0]
    for block in prange(blocks):
        _im2col_images(
            x, kh, kw, sh, sw, padding, oh, ow, cols, n * block // blocks, n * (block + 1) // blocks
        )


def im2col(
    x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> np.ndarray:
    return _im2col_into(x, kh, kw, stride, padding, np.empty)


def _im2col_into(
    x: np.ndarray,
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    make: Callable[[tuple[int, ...], Any], np.ndarray],
) -> np.ndarray:
    """:func:`im2col` written into ``make(shape, dtype)``: ``np.empty``, or a workspace's buffer."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    cols = make((n * oh * ow, kh * kw * c), x.dtype)
    args = (x, kh, kw, *stride, tuple(padding), oh, ow, cols.reshape(n * oh * ow, kh, kw * c))
    _run_images(_im2col_images, _im2col_parallel, n, cols.size, *args)
    return cols


@_serial
def _col2im_images(cols, kh, kw, sh, sw, padding, oh, ow, out, lo, hi):
    """Images ``lo..hi``: add every run of a patch row into the padded buffer, then crop the padding
    while transposing to NCHW; ``cols`` is viewed as (N * OH * OW, kh, kw * C)."""
    _, c, h, w = out.shape
    top, bottom, left, right = padding
    run = kw * c
    for n in range(lo, hi):
        xpad = np.zeros((h + top + bottom, (w + left + right) * c), dtype=cols.dtype)
        for p in range(oh):
            for q in range(ow):
                patch = cols[(n * oh + p) * ow + q]
                for i in range(kh):
                    src, dst = patch[i], xpad[p * sh + i, q * sw * c : q * sw * c + run]
                    for k in range(run):
                        dst[k] += src[k]
        for ch in range(c):
            for r in range(h):
                for col in range(w):
                    out[n, ch, r, col] = xpad[r + top, (col + left) * c + ch]


@_parallel
def _col2im_parallel(cols, kh, kw, sh, sw, padding, oh, ow, out, blocks):
    n = out.shape[0]
    for block in prange(blocks):
        _col2im_images(
            cols,
            kh,
            kw,
            sh,
            sw,
            padding,
            oh,
            ow,
            out,
            n * block // blocks,
            n * (block + 1) // blocks,
        )


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> np.ndarray:
    return _col2im_into(cols, kh, kw, stride, padding, np.empty(x_shape, dtype=cols.dtype))


def _col2im_into(
    cols: np.ndarray,
    kh: int,
    kw: int,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    out: np.ndarray,
) -> np.ndarray:
    """:func:`col2im` written into ``out`` (N, C, H, W), a C-contiguous array, which is returned."""
    n, c, h, w = out.shape
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    patches = np.ascontiguousarray(cols).reshape(n * oh * ow, kh, kw * c)
    args = (patches, kh, kw, *stride, tuple(padding), oh, ow, out)
    _run_images(_col2im_images, _col2im_parallel, n, patches.size, *args)
    return out


def _run_images(serial: Any, parallel: Any, n: int, work: int, *args: Any) -> None:
    """``serial(*args, 0, n)`` on this thread, or ``parallel(*args, blocks)`` with one block of
    images per thread when ``work`` (elements moved) reaches :data:`PARALLEL_MIN_WORK`."""
    if work >= PARALLEL_MIN_WORK and n > 1:
        parallel(*args, min(n, numba.get_num_threads()))
    else:
        serial(*args, 0, n)


# ------------------------------------------------------------------------------------------------
# Matrix products arranged for speed: the convolutions in chunks of the batch, weight gradients in the
# orientation BLAS threads well. The arithmetic is the plain functions'; only the order of work and
# the memory it touches change.
# ------------------------------------------------------------------------------------------------


def transposed_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` for matrices ``a`` (M, A) and ``b`` (M, B): a weight gradient, summed over M rows.

    Computed as ``(b.T @ a).T`` when ``B > A``. The result is the same; the difference is speed.
    BLAS libraries such as OpenBLAS share a product among threads by rows of the result, and a result
    with few rows and many columns -- a convolution's ``(O, kh * kw * C)`` weight gradient -- was
    measured up to three times slower on two threads than its transpose.
    """
    return (b.T @ a).T if b.shape[1] > a.shape[1] else a.T @ b


def dense_weight_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return transposed_product(x, dy)


#: Largest patch matrix, in bytes, that one chunk of the batch may build (see :func:`batch_chunks`).
CHUNK_BYTES = 32 * 2**20


def batch_chunks(x: np.ndarray, patch_entries_per_image: int) -> list[slice]:
    """Slices of the batch axis of ``x`` for the convolutions to work through one at a time, each
    chunk's patch matrix (``patch_entries_per_image`` values per image) within :data:`CHUNK_BYTES`.

    Why chunks: a patch matrix is ``kh * kw / (sh * sw)`` times larger than the layer's input -- 80 MB
    for a batch of 256 in a DCGAN's 5x5, stride-2, 64 -> 128 channel convolution -- and memory blocks
    that large are fresh pages from the operating system on every allocation (glibc's allocator
    recycles blocks of up to 32 MB), which it must map and zero: measured at a fifth of a training
    step at batch 256. Chunks of at most 32 MB are recycled. Smaller chunks would stay in the CPU's
    caches, but they make the matrix products less efficient on two threads, which costs more.
    Every row of a patch matrix belongs to one image, so the products split by chunks of rows and a
    weight gradient is the sum of the chunks' products.
    """
    n = x.shape[0]
    per_chunk = max(1, CHUNK_BYTES // max(1, patch_entries_per_image * x.dtype.itemsize))
    return [slice(lo, min(lo + per_chunk, n)) for lo in range(0, n, per_chunk)]


class Workspace:
    """Scratch buffers that the convolutions reuse from call to call, one set per thread.

    A training step makes the same large temporaries every time -- patch matrices of up to
    :data:`CHUNK_BYTES`, the products computed from them -- and they never leave the function that
    made them. Keeping one growing buffer per purpose and dtype spares the allocator and the
    operating system's page mapping every step; what a kernel returns is always a fresh array.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def take(self, purpose: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A C-contiguous array of ``shape`` for ``purpose``, overwriting what it held before."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        size, key = math.prod(shape), (purpose, np.dtype(dtype))
        buffer = buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = buffers[key] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


WORKSPACE = Workspace()


def _workspace_patches(
    x: np.ndarray, kh: int, kw: int, stride: tuple[int, int], padding: tuple[int, int, int, int]
) -> np.ndarray:
    """:func:`im2col` of ``x`` in the "patches" workspace (valid until the next call)."""
    return _im2col_into(x, kh, kw, stride, padding, functools.partial(WORKSPACE.take, "patches"))


def _workspace_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in the "rows" workspace (valid until the next call)."""
    return np.matmul(a, b, out=WORKSPACE.take("rows", (a.shape[0], b.shape[1]), a.dtype))


def _accumulate(total: np.ndarray | None, part: np.ndarray) -> np.ndarray:
    """``total + part``, in place after the first chunk (one chunk allocates nothing more)."""
    if total is None:
        return part
    total += part
    return total


def conv2d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> np.ndarray:
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    oh = conv_output_size(h, kh, stride[0], padding[0], padding[1])
    ow = conv_output_size(w, kw, stride[1], padding[2], padding[3])
    Wm_t = weight_matrix(W).T
    y = np.empty((n, o, oh, ow), dtype=x.dtype)
    for chunk in batch_chunks(x, oh * ow * kh * kw * c):
        rows = _workspace_product(_workspace_patches(x[chunk], kh, kw, stride, padding), Wm_t)
        if b is not None:
            rows += b
        y[chunk] = rows.reshape(-1, oh, ow, o).transpose(0, 3, 1, 2)
    return y


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    param_grads: bool = True,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    kh, kw = W.shape[2:]
    Wm = weight_matrix(W)
    dx = np.empty(x.shape, dtype=dy.dtype) if input_grad else None
    dWm = db = None
    for chunk in batch_chunks(x, dy.shape[2] * dy.shape[3] * Wm.shape[1]):
        G = pixel_rows(dy[chunk])
        if param_grads:
            cols = _workspace_patches(x[chunk], kh, kw, stride, padding)
            dWm = _accumulate(dWm, transposed_product(G, cols))
            db = _accumulate(db, G.sum(axis=0))
        if input_grad:
            _col2im_into(_workspace_product(G, Wm), kh, kw, stride, padding, dx[chunk])
    if not param_grads:
        return dx, None, None
    return dx, weight_from_matrix(dWm, W.shape), db


def conv_transpose2d_forward(
    x: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    n, _, h, w = x.shape
    _, o, kh, kw = W.shape
    x_rows = pixel_rows(x)
    Wm = weight_matrix(W)
    y = np.empty((n, o, *out_hw), dtype=x.dtype)
    for chunk in batch_chunks(x, h * w * Wm.shape[1]):
        cols = _workspace_product(x_rows[chunk.start * h * w : chunk.stop * h * w], Wm)
        _col2im_into(cols, kh, kw, stride, padding, y[chunk])
    if b is not None:
        y += b[:, None, None]
    return y


def conv_transpose2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    W: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    param_grads: bool = True,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    n, i, h, w = x.shape
    kh, kw = W.shape[2:]
    Wm = weight_matrix(W)
    x_rows = pixel_rows(x) if param_grads else None
    dx_rows = np.empty((n * h * w, i), dtype=dy.dtype) if input_grad else None
    dWm = None
    for chunk in batch_chunks(dy, h * w * Wm.shape[1]):
        rows = slice(chunk.start * h * w, chunk.stop * h * w)
        G = _workspace_patches(dy[chunk], kh, kw, stride, padding)
        if param_grads:
            dWm = _accumulate(dWm, transposed_product(x_rows[rows], G))
        if input_grad:
            np.matmul(G, Wm.T, out=dx_rows[rows])
    dx = from_pixel_rows(dx_rows, n, h, w) if input_grad else None
    if not param_grads:
        return dx, None, None
    return dx, weight_from_matrix(dWm, W.shape), dy.sum(axis=(0, 2, 3))


# ------------------------------------------------------------------------------------------------
# Pooling and upsampling: loops over the N * C image planes
# ------------------------------------------------------------------------------------------------


@_serial
def _maxpool_forward(x, kh, kw, sh, sw, y, argmax):
    """A NaN wins against any number and the first NaN against later ones, as in ``numpy.argmax``."""
    planes, ho, wo = y.shape
    for plane in range(planes):
        for p in range(ho):
            for q in range(wo):
                best = x[plane, p * sh, q * sw]
                where = 0
                for i in range(kh):
                    for j in range(kw):
                        v = x[plane, p * sh + i, q * sw + j]
                        if v > best or (v != v and best == best):
                            best = v
                            where = i * kw + j
                y[plane, p, q] = best
                argmax[plane, p, q] = where


def maxpool_forward(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = size, stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.empty((n * c, ho, wo), dtype=x.dtype)
    argmax = np.empty((n * c, ho, wo), dtype=np.intp)
    _maxpool_forward(x.reshape(n * c, h, w), kh, kw, sh, sw, y, argmax)
    return y.reshape(n, c, ho, wo), argmax.reshape(n, c, ho, wo)


@_serial
def _maxpool_backward(dy, argmax, kw, sh, sw, dx):
    """Each window's gradient added to its maximum; overlapping windows accumulate.

    Windows run in reverse row-major order: an entry shared by overlapping windows then receives
    their gradients in increasing order of its offset ``i * kw + j`` inside them, which is the order
    in which the plain function adds them, so the sums agree to the last bit."""
    planes, ho, wo = dy.shape
    for plane in range(planes):
        for p in range(ho - 1, -1, -1):
            for q in range(wo - 1, -1, -1):
                i, j = divmod(argmax[plane, p, q], kw)
                dx[plane, p * sh + i, q * sw + j] += dy[plane, p, q]


def maxpool_backward(
    dy: np.ndarray,
    argmax: np.ndarray,
    x_shape: tuple[int, ...],
    size: tuple[int, int],
    stride: tuple[int, int],
) -> np.ndarray:
    n, c, h, w = x_shape
    dy = np.ascontiguousarray(dy).reshape(n * c, *dy.shape[2:])
    argmax = np.ascontiguousarray(argmax).reshape(dy.shape)
    dx = np.zeros((n * c, h, w), dtype=dy.dtype)
    _maxpool_backward(dy, argmax, size[1], stride[0], stride[1], dx)
    return dx.reshape(x_shape)


@_serial
def _upsample(x, sh, sw, y):
    planes, h, w = x.shape
    for plane in range(planes):
        for r in range(h):
            src = x[plane, r]
            for a in range(sh):
                dst = y[plane, r * sh + a]
                for col in range(w):
                    for b in range(sw):
                        dst[col * sw + b] = src[col]


def upsample_nearest(x: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    sh, sw = scale
    y = np.empty((n * c, h * sh, w * sw), dtype=x.dtype)
    _upsample(x.reshape(n * c, h, w), sh, sw, y)
    return y.reshape(n, c, h * sh, w * sw)


@_serial
def _upsample_backward(dy, sh, sw, dx):
    planes, h, w = dx.shape
    for plane in range(planes):
        for r in range(h):
            for col in range(w):
                total = dy.dtype.type(0)
                for a in range(sh):
                    for b in range(sw):
                        total += dy[plane, r * sh + a, col * sw + b]
                dx[plane, r, col] = total


def upsample_nearest_backward(dy: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    dy = np.ascontiguousarray(dy)
    n, c, hs, ws = dy.shape
    sh, sw = scale
    dx = np.empty((n * c, hs // sh, ws // sw), dtype=dy.dtype)
    _upsample_backward(dy.reshape(n * c, hs, ws), sh, sw, dx)
    return dx.reshape(n, c, hs // sh, ws // sw)


# ------------------------------------------------------------------------------------------------
# Maxout: z (N, units * pieces), each unit's pieces consecutive. The maximum and its piece in one pass
# over z, and the backward pass through the affine map using that only the winning piece of a unit
# has a gradient: one row of the weights per unit instead of `pieces`.
# ------------------------------------------------------------------------------------------------


@_serial
def _maxout_forward(z, pieces, y, argmax):
    """Piece by piece, each over all the units of a row, keeping the best so far in ``y``: the inner
    loop then has no loop inside it and no branch, and runs 2.5 times faster than unit by unit.
    A NaN wins against any number and the first NaN against later ones, as in ``numpy.argmax``."""
    n, units = y.shape
    for i in range(n):
        row, out, where = z[i], y[i], argmax[i]
        for j in range(units):
            out[j] = row[j * pieces]
            where[j] = 0
        for k in range(1, pieces):
            for j in range(units):
                v, best = row[j * pieces + k], out[j]
                take = (v > best) | ((v != v) & (best == best))
                out[j] = v if take else best
                where[j] = k if take else where[j]


def maxout_forward(z: np.ndarray, pieces: int) -> tuple[np.ndarray, np.ndarray]:
    z = np.ascontiguousarray(z)
    shape = (z.shape[0], z.shape[1] // pieces)
    y, argmax = np.empty(shape, dtype=z.dtype), np.empty(shape, dtype=np.intp)
    _maxout_forward(z, pieces, y, argmax)
    return y, argmax


@_serial
def _maxout_backward(dy, argmax, pieces, dz):
    n, units = dy.shape
    for i in range(n):
        g, where, out = dy[i], argmax[i], dz[i]
        for j in range(units):
            out[j * pieces + where[j]] = g[j]


def maxout_backward(dy: np.ndarray, argmax: np.ndarray, pieces: int) -> np.ndarray:
    dy, argmax = np.ascontiguousarray(dy), np.ascontiguousarray(argmax)
    dz = np.zeros((dy.shape[0], dy.shape[1] * pieces), dtype=dy.dtype)
    _maxout_backward(dy, argmax, pieces, dz)
    return dz


@_serial
def _maxout_input_grad(dy, argmax, w_rows, pieces, dx):
    """``dx[i] = sum_j dy[i, j] * w_rows[j * pieces + argmax[i, j]]``, four units at a time: each
    pass over a row of dx then carries four products, so it is loaded and stored a quarter as
    often (measured 2x faster than one unit at a time for 200 units of 5 pieces on 200 inputs)."""
    n, units = dy.shape
    width = dx.shape[1]
    for i in range(n):
        g, where, out = dy[i], argmax[i], dx[i]
        for k in range(width):
            out[k] = 0
        j = 0
        while j + 4 <= units:
            g0, g1, g2, g3 = g[j], g[j + 1], g[j + 2], g[j + 3]
            r0 = w_rows[j * pieces + where[j]]
            r1 = w_rows[(j + 1) * pieces + where[j + 1]]
            r2 = w_rows[(j + 2) * pieces + where[j + 2]]
            r3 = w_rows[(j + 3) * pieces + where[j + 3]]
            for k in range(width):
                out[k] += (g0 * r0[k] + g1 * r1[k]) + (g2 * r2[k] + g3 * r3[k])
            j += 4
        while j < units:
            gj, row = g[j], w_rows[j * pieces + where[j]]
            for k in range(width):
                out[k] += gj * row[k]
            j += 1


def maxout_input_grad(dy: np.ndarray, argmax: np.ndarray, W: np.ndarray, pieces: int) -> np.ndarray:
    # Each winning piece's weights are a column of W (in, units * pieces); as rows of W.T they are
    # contiguous, and the copy costs a fifth of the product it saves.
    dy, argmax = np.ascontiguousarray(dy), np.ascontiguousarray(argmax)
    dx = np.empty((dy.shape[0], W.shape[0]), dtype=dy.dtype)
    _maxout_input_grad(dy, argmax, np.ascontiguousarray(W.T), pieces, dx)
    return dx


# ------------------------------------------------------------------------------------------------
# Batch normalisation. An input (N, C) or (N, C, H, W) is viewed as the matrix (N, C * S), S = H * W
# (S = 1 for (N, C)): column j belongs to channel j // S. Every loop runs along rows, which are
# contiguous in both layouts; per-channel values are first spread to one per column, and sums are
# taken per column (in float64) and then folded over each channel's S columns.
# ------------------------------------------------------------------------------------------------


def _as_rows(a: np.ndarray) -> tuple[np.ndarray, int]:
    """A C-contiguous (N, C * S) view of a (N, C) or (N, C, H, W) array (a copy if not contiguous),
    and S."""
    rows = np.ascontiguousarray(a).reshape(a.shape[0], -1)
    return rows, rows.shape[1] // a.shape[1]


@_serial
def _per_column(values, s):
    """Each of the C per-channel ``values`` repeated ``s`` times: one entry per column."""
    out = np.empty(values.size * s, dtype=values.dtype)
    for ch in range(values.size):
        out[ch * s : (ch + 1) * s] = values[ch]
    return out


@_reduction
def _column_sums(a, b):
    """Per column: ``sum_i a[i, j]`` and ``sum_i a[i, j] * b[i, j]``, in float64."""
    width = a.shape[1]
    sums, products = np.zeros(width), np.zeros(width)
    for i in range(a.shape[0]):
        a_row, b_row = a[i], b[i]
        for j in range(width):
            sums[j] += a_row[j]
            products[j] += a_row[j] * b_row[j]
    return sums, products


@_reduction
def _fold_columns(column_sums, s):
    """The sum of each channel's ``s`` consecutive columns."""
    channels = column_sums.size // s
    totals = np.zeros(channels)
    for ch in range(channels):
        run = column_sums[ch * s : (ch + 1) * s]
        for k in range(s):
            totals[ch] += run[k]
    return totals


@_reduction
def _batchnorm_moments(x, s, mean, var):
    """Two passes: the mean, then the mean squared deviation from it."""
    count = x.shape[0] * s
    width = x.shape[1]
    sums = np.zeros(width)
    for i in range(x.shape[0]):
        row = x[i]
        for j in range(width):
            sums[j] += row[j]
    mu = _fold_columns(sums, s) / count
    centre = _per_column(mu, s)
    squares = np.zeros(width)
    for i in range(x.shape[0]):
        row = x[i]
        for j in range(width):
            d = row[j] - centre[j]
            squares[j] += d * d
    mean[:] = mu
    var[:] = _fold_columns(squares, s) / count


def batchnorm_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, s = _as_rows(x)
    mean, var = np.empty(x.shape[1], dtype=x.dtype), np.empty(x.shape[1], dtype=x.dtype)
    _batchnorm_moments(rows, s, mean, var)
    return mean, var


@_serial
def _batchnorm_forward(x, s, mean, inv_std, gamma, beta, y, xhat):
    centre, scale = _per_column(mean, s), _per_column(inv_std, s)
    g, b = _per_column(gamma, s), _per_column(beta, s)
    for i in range(x.shape[0]):
        x_row, y_row, h_row = x[i], y[i], xhat[i]
        for j in range(x_row.size):
            h = (x_row[j] - centre[j]) * scale[j]
            h_row[j] = h
            y_row[j] = h * g[j] + b[j]


def batchnorm_forward(
    x: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, s = _as_rows(x)
    # C values: the plain function's own NumPy expression, so that inv_std agrees to the last bit.
    inv_std = 1 / np.sqrt(var + eps)
    y, xhat = np.empty_like(rows), np.empty_like(rows)
    _batchnorm_forward(rows, s, mean, inv_std, gamma, beta, y, xhat)
    return y.reshape(x.shape), xhat.reshape(x.shape), inv_std


@_serial
def _batchnorm_dx(dy, xhat, s, scale, dgamma, dbeta, batch_stats, dx):
    """``dx = scale / M * (M * dy - dbeta - xhat * dgamma)`` with batch statistics, else
    ``dx = dy * scale``: the plain function's operations in its order and dtype."""
    m = dy.dtype.type(dy.shape[0] * s)
    factor = _per_column(scale / m if batch_stats else scale, s)
    db, dg = _per_column(dbeta, s), _per_column(dgamma, s)
    for i in range(dy.shape[0]):
        g_row, h_row, out = dy[i], xhat[i], dx[i]
        if batch_stats:
            for j in range(out.size):
                out[j] = factor[j] * (m * g_row[j] - db[j] - h_row[j] * dg[j])
        else:
            for j in range(out.size):
                out[j] = g_row[j] * factor[j]


def batchnorm_backward(
    dy: np.ndarray,
    xhat: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray,
    batch_stats: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (dy_rows, s), (xhat_rows, _) = _as_rows(dy), _as_rows(xhat)
    sums, products = _column_sums(dy_rows, xhat_rows)
    dbeta = _fold_columns(sums, s).astype(dy.dtype)
    dgamma = _fold_columns(products, s).astype(dy.dtype)
    dx = np.empty_like(dy_rows)
    _batchnorm_dx(dy_rows, xhat_rows, s, gamma * inv_std, dgamma, dbeta, bool(batch_stats), dx)
    return dx.reshape(dy.shape), dgamma, dbeta


# ------------------------------------------------------------------------------------------------
# Elementwise kernels, on flattened arrays
# ------------------------------------------------------------------------------------------------


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D C-ordered view of ``a`` (a copy only if ``a`` is not C-contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)


def _elementwise_backward(kernel: Any, dy: np.ndarray, saved: np.ndarray, *args: Any) -> np.ndarray:
    """Run ``kernel(dy, saved, *args, dx)`` over flat views; ``dx`` comes back shaped like ``dy``."""
    flat = _flat(dy)
    dx = np.empty_like(flat)
    kernel(flat, _flat(saved), *args, dx)
    return dx.reshape(dy.shape)


@_serial
def _leaky_relu(x, alpha, y, mask):
    slope = x.dtype.type(alpha)
    for i in range(x.size):
        v = x[i]
        positive = v > 0
        mask[i] = positive
        y[i] = v if positive else v * slope


def leaky_relu(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    flat = _flat(x)
    y, mask = np.empty_like(flat), np.empty(flat.shape, dtype=np.bool_)
    _leaky_relu(flat, float(alpha), y, mask)
    return y.reshape(x.shape), mask.reshape(x.shape)


@_serial
def _leaky_relu_backward(dy, mask, alpha, dx):
    slope = dy.dtype.type(alpha)
    for i in range(dy.size):
        g = dy[i]
        dx[i] = g if mask[i] else g * slope


def leaky_relu_backward(dy: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    return _elementwise_backward(_leaky_relu_backward, dy, mask, float(alpha))


@_serial
def _sigmoid_from_exp(x, e):
    """Given ``e = exp(-|x|)``, overwrite it with ``sigmoid(x)``: ``1 / (1 + e)`` where ``x >= 0``,
    ``e / (1 + e)`` elsewhere. Either way only a non-positive number was exponentiated."""
    one = x.dtype.type(1)
    for i in range(x.size):
        r = one / (one + e[i])
        e[i] = r if x[i] >= 0 else e[i] * r


def sigmoid(x: np.ndarray) -> np.ndarray:
    flat = _flat(x)
    # The exponentials come from NumPy, whose exp is vectorised (SIMD); Numba's calls the C library
    # once per element, about five times slower. One buffer serves every pass.
    e = np.abs(flat)
    np.negative(e, out=e)
    np.exp(e, out=e)
    _sigmoid_from_exp(flat, e)
    return e.reshape(x.shape)


@_serial
def _sigmoid_backward(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(dy.size):
        dx[i] = dy[i] * y[i] * (one - y[i])


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _elementwise_backward(_sigmoid_backward, dy, y)


@_serial
def _tanh_backward(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(dy.size):
        dx[i] = dy[i] * (one - y[i] * y[i])


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _elementwise_backward(_tanh_backward, dy, y)


@_serial
def _dropout(x, u, rate, y):
    """``u`` becomes the mask in place: ``1 / (1 - rate)`` where ``u >= rate``, else 0."""
    threshold = x.dtype.type(rate)
    keep = x.dtype.type(1 / (1 - rate))
    zero = x.dtype.type(0)
    for i in range(x.size):
        m = keep if u[i] >= threshold else zero
        u[i] = m
        y[i] = x[i] * m


def dropout(x: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    flat = _flat(x)
    # The plain function's draws, in x's shape so that the stream is consumed identically.
    mask = rng.random(x.shape, dtype=x.dtype).reshape(-1)
    y = np.empty_like(flat)
    _dropout(flat, mask, float(rate), y)
    return y.reshape(x.shape), mask.reshape(x.shape)


# ------------------------------------------------------------------------------------------------
# Optimizer updates, in place: one pass over each parameter (or flat buffer of parameters,
# tinygan.kernels.flat), in the parameter's dtype. Adam folds both bias corrections into two
# scalars, lr * m_hat / (sqrt(v_hat) + eps) = (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps), so no
# array is divided by c1 or c2. A non-contiguous array, which a flat loop cannot update in place,
# goes to the plain function (fused_update).
# ------------------------------------------------------------------------------------------------


def _contiguous(*arrays: np.ndarray | None) -> bool:
    return all(a is None or a.flags.c_contiguous for a in arrays)


@_serial
def _sgd(param, grad, lr):
    rate = param.dtype.type(lr)
    for i in range(param.size):
        param[i] -= rate * grad[i]


@_serial
def _sgd_momentum(param, grad, velocity, lr, momentum):
    rate, mu = param.dtype.type(lr), param.dtype.type(momentum)
    for i in range(param.size):
        b = velocity[i] * mu + grad[i]
        velocity[i] = b
        param[i] -= rate * b


@fused_update(_contiguous)
def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    velocity: np.ndarray | None,
    lr: float,
    momentum: float,
) -> None:
    if velocity is None:
        _sgd(param.reshape(-1), grad.reshape(-1), float(lr))
    else:
        flat = (param.reshape(-1), grad.reshape(-1), velocity.reshape(-1))
        _sgd_momentum(*flat, float(lr), float(momentum))


@_serial
def _adam(param, grad, m, v, beta1, beta2, eps, step_size, v_scale):
    t = param.dtype.type
    b1, b2, e, rate, scale = t(beta1), t(beta2), t(eps), t(step_size), t(v_scale)
    c1, c2 = t(1 - beta1), t(1 - beta2)
    for i in range(param.size):
        g = grad[i]
        mi = m[i] * b1 + c1 * g
        vi = v[i] * b2 + c2 * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] -= rate * mi / (np.sqrt(vi) * scale + e)


@fused_update(_contiguous)
def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
) -> None:
    c1, c2 = 1 - beta1**step, 1 - beta2**step
    flat = (param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1))
    _adam(*flat, float(beta1), float(beta2), float(eps), lr / c1, 1 / math.sqrt(c2))


@_serial
def _rmsprop(param, grad, v, lr, rho, eps):
    t = param.dtype.type
    rate, r, c, e = t(lr), t(rho), t(1 - rho), t(eps)
    for i in range(param.size):
        g = grad[i]
        vi = v[i] * r + c * (g * g)
        v[i] = vi
        param[i] -= rate * g / (np.sqrt(vi) + e)


@fused_update(_contiguous)
def rmsprop_update(
    param: np.ndarray, grad: np.ndarray, v: np.ndarray, lr: float, rho: float, eps: float
) -> None:
    flat = (param.reshape(-1), grad.reshape(-1), v.reshape(-1))
    _rmsprop(*flat, float(lr), float(rho), float(eps))


#: Every replacement this module provides, registered by :func:`register` under its own name.
OVERRIDES = (
    im2col,
    col2im,
    conv2d_forward,
    conv2d_backward,
    conv_transpose2d_forward,
    conv_transpose2d_backward,
    dense_weight_grad,
    maxpool_forward,
    maxpool_backward,
    maxout_forward,
    maxout_backward,
    maxout_input_grad,
    upsample_nearest,
    upsample_nearest_backward,
    batchnorm_moments,
    batchnorm_forward,
    batchnorm_backward,
    leaky_relu,
    leaky_relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh_backward,
    dropout,
    sgd_update,
    adam_update,
    rmsprop_update,
)


def register() -> None:
    """Register every function of :data:`OVERRIDES` for NumPy arrays (kind ``"cpu"``)."""
    # Numba's default threading layer here is OpenMP, whose idle workers keep spinning after a
    # parallel loop; they then fight OpenBLAS's threads (the matrix products) for the cores, and on a
    # two-core machine that made a training step several times *slower*. The workqueue layer's
    # workers sleep. An explicit NUMBA_THREADING_LAYER is respected, and the setting only takes
    # effect if no parallel Numba code has run in this process yet.
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "workqueue"
    for function in OVERRIDES:
        overrides.register(function.__name__, "cpu", function)
