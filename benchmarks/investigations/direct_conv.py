"""A direct convolution for one input channel, against tinygan's im2col + matrix-product kernel.

    python benchmarks/investigations/direct_conv.py

The first layer of dcgan-tf's discriminator convolves 1-channel images (5x5, stride 2, "same",
64 output channels). Its patch matrix has rows of only 25 values, a poor shape for a matrix product,
so a direct Numba loop -- for each output pixel, 25 taps, each added into all 64 channels at once
(a contiguous, vectorised inner loop), images in parallel -- might beat im2col + GEMM. This script
checks that both agree and times both at the batch sizes the layer sees in a dcgan-tf iteration
(512: the real and fake batches of the D step in one pass at batch 256; 256; 128).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from tinygan.kernels import cpu_numba


@njit(parallel=True, cache=True, error_model="numpy")
def _direct_conv_one_channel(x, taps, b, sh, sw, top, left, y):
    """``y`` (N, O, OH, OW) = conv(x (N, 1, H, W), taps (kh, kw, O)) + b, zero padding."""
    n, _, h, w = x.shape
    kh, kw, o = taps.shape
    _, _, oh, ow = y.shape
    for image in prange(n):
        pixels = np.empty((oh * ow, o), dtype=x.dtype)
        for p in range(oh):
            for q in range(ow):
                out = pixels[p * ow + q]
                for c in range(o):
                    out[c] = b[c]
                for i in range(kh):
                    r = p * sh + i - top
                    if 0 <= r < h:
                        for j in range(kw):
                            col = q * sw + j - left
                            if 0 <= col < w:
                                value, tap = x[image, 0, r, col], taps[i, j]
                                for c in range(o):
                                    out[c] += value * tap[c]
        for c in range(o):
            for pq in range(oh * ow):
                y[image, c, pq // ow, pq % ow] = pixels[pq, c]


def median_ms(function: Callable[[], object], repeats: int = 20) -> float:
    """Median milliseconds of ``repeats`` calls of ``function`` after one untimed call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    """Check that both convolutions agree and print their times at three batch sizes."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((64, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    taps = np.ascontiguousarray(W[:, 0].transpose(1, 2, 0))
    stride, padding = (2, 2), (1, 2, 1, 2)
    for n in (512, 256, 128):
        x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        y = np.empty((n, 64, 14, 14), np.float32)
        direct = lambda: _direct_conv_one_channel(x, taps, b, *stride, 1, 1, y)  # noqa: E731, B023
        im2col = lambda: cpu_numba.conv2d_forward(x, W, b, stride, padding)  # noqa: E731, B023
        direct()
        error = float(np.abs(y - im2col()).max())
        print(
            f"batch {n}: im2col + GEMM {median_ms(im2col):.1f} ms, direct {median_ms(direct):.1f} ms "
            f"(largest difference {error:.1e})"
        )


if __name__ == "__main__":
    main()
