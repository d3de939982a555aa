"""Optional fast kernels: replacements for the plain functions of :mod:`tinygan.nn` and
:mod:`tinygan.optim`, registered under the same names and signatures (see :mod:`tinygan.overrides`),
and the speed workarounds that do not belong in the readable files.

* :mod:`tinygan.kernels.cpu_numba` -- Numba versions for NumPy arrays of float32 and float64.
* :mod:`tinygan.kernels.gpu_cupy` -- CuPy versions (fused elementwise kernels, in-place optimizer
  updates, im2col/col2im as CUDA kernels) for CuPy arrays of float32 and float64, loaded beside the
  Numba set only where CuPy can be imported.
* :mod:`tinygan.kernels.flat` -- the optimizers' flat buffers: every parameter, gradient and
  moment of one dtype in one buffer, so that an update rule runs once per buffer instead of once
  per parameter; loaded with the Numba set, for arrays of every kind.

Nothing here is needed for tinygan to compute: without this package the plain functions run.
"""
