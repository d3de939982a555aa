"""Each matrix product of an mlp-tf iteration, alone, at the current OpenBLAS thread count.

    OPENBLAS_NUM_THREADS=1 python benchmarks/investigations/gemm_threads.py
    OPENBLAS_NUM_THREADS=2 python benchmarks/investigations/gemm_threads.py

Answers whether any product size of preset 000 runs faster on one thread than on two (it would
then pay to switch the thread count per product). Median microseconds of 2,000 calls each.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

#: name: (rows, inner, columns) of the float32 product
PRODUCTS = {
    "G1 forward 64x100 @ 100x128": (64, 100, 128),
    "G2 forward 64x128 @ 128x784": (64, 128, 784),
    "D1 forward, real and fake 128x784 @ 784x128": (128, 784, 128),
    "D1 forward, fake 64x784 @ 784x128": (64, 784, 128),
    "D1 weight gradient 784x128 @ 128x128": (784, 128, 128),
    "G2 weight gradient as (dy.T @ x).T: 784x64 @ 64x128": (784, 64, 128),
    "G2 weight gradient as x.T @ dy: 128x64 @ 64x784": (128, 64, 784),
    "D1 input gradient 64x128 @ 128x784": (64, 128, 784),
}


def main() -> None:
    """Print each product's median microseconds."""
    rng = np.random.default_rng(0)
    for name, (m, k, n) in PRODUCTS.items():
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        for _ in range(50):
            a @ b
        times = []
        for _ in range(2000):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        print(f"{name}: {1e6 * statistics.median(times):.1f} us")


if __name__ == "__main__":
    main()
