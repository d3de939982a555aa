"""Optional fast kernels: replacements for the plain functions of :mod:`tinygan.nn` and
:mod:`tinygan.optim`, registered under the same names and signatures (see :mod:`tinygan.overrides`).

* :mod:`tinygan.kernels.cpu_numba` -- Numba versions for NumPy arrays of float32 and float64.

Nothing here is needed for tinygan to compute: without this package the plain functions run.
"""
