"""Optional fast kernels: replacements for the plain functions of :mod:`tinygan.nn` and
:mod:`tinygan.optim`, registered under the same names and signatures (see :mod:`tinygan.overrides`).

* :mod:`tinygan.kernels.cpu_numba` -- Numba versions for NumPy arrays of float32 and float64.
* :mod:`tinygan.kernels.gpu_cupy` -- CuPy versions (fused elementwise kernels, in-place optimizer
  updates, im2col/col2im as CUDA kernels) for CuPy arrays of float32 and float64, loaded beside the
  Numba set only where CuPy can be imported.

Nothing here is needed for tinygan to compute: without this package the plain functions run.
"""
