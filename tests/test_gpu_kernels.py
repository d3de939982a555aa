"""The CuPy kernels against the plain functions they replace, and how the registry loads them.

The first tests run everywhere: they read ``tinygan/kernels/gpu_cupy.py`` as source (CuPy need not be
installed) and check that every kernel it registers has the name and signature of an overridable
plain function, and they drive the loading logic of :mod:`tinygan.overrides` with stand-in modules.
The others need CuPy and a GPU and are skipped without them: each kernel runs in float32 and
float64 on random inputs (odd sizes, batches of one, non-contiguous views) beside the plain function
on the same CuPy arrays. Copies (im2col) and selections (leaky ReLU) must agree exactly. Every other
result, the kernel's and the plain function's on the GPU alike, is compared entry by entry with the
plain function evaluated in float64 on the host from the same inputs, within the rounding bound of
its computation (:mod:`tinygan.rounding`), which holds whatever order the GPU sums in.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinygan import overrides
from tinygan.backend import gpu_available
from tinygan.nn import activations, batchnorm, conv
from tinygan.rounding import (
    IN_PLACE,
    assert_matches_plain,
    recording_calls,
    results_of,
    step_signature,
)

pytest.importorskip("tinygan.kernels.cpu_numba")  # the CuPy set loads beside the Numba one

SOURCE = Path(__file__).resolve().parents[1] / "tinygan" / "kernels" / "gpu_cupy.py"

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def default_kernels():
    """Each test starts with the default kernel set registered and leaves it so."""
    overrides.set_kernels("numba")
    yield
    overrides.set_kernels("numba")


# -- everywhere: the module's source and the loading logic ----------------------------------------


def module_tree() -> ast.Module:
    return ast.parse(SOURCE.read_text(encoding="utf-8"))


def overrides_listed(tree: ast.Module) -> list[str]:
    """The names in the module's ``OVERRIDES = (...)``."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "OVERRIDES" for t in targets):
            return [element.id for element in node.value.elts]
    raise AssertionError("gpu_cupy.py defines no OVERRIDES")


def functions_defined(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def parameters_of(function: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    """``(name, kind, default)`` of each parameter, as :mod:`inspect` would describe it."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults: list[Any] = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    described = [
        (a.arg, "POSITIONAL_ONLY" if a in args.posonlyargs else "POSITIONAL_OR_KEYWORD", d)
        for a, d in zip(positional, defaults, strict=True)
    ]
    if args.vararg or args.kwarg or args.kwonlyargs:
        raise AssertionError(f"{function.name}: a kernel takes exactly the plain parameters")
    return described


def test_every_cupy_kernel_is_an_overridable_function_with_its_signature():
    """Checked on the source, so it runs without CuPy: a misspelt or re-ordered kernel would
    otherwise fail only on a GPU, or never run at all."""
    tree = module_tree()
    listed, defined = overrides_listed(tree), functions_defined(tree)
    assert listed and len(set(listed)) == len(listed)
    names = set(overrides.overridable_names())
    for name in listed:
        assert name in names, f"{name} is not an overridable function"
        assert name in defined, f"{name} is listed but not defined by a def"
        plain = inspect.signature(overrides.plain(name))
        want = [(p.name, p.kind.name, p.default) for p in plain.parameters.values()]
        assert parameters_of(defined[name]) == want, name
    # A public function named like a plain one but left out of OVERRIDES would never run.
    assert set(defined) & names == set(listed)


def test_the_cupy_kernels_register_for_gpu_arrays():
    tree = module_tree()
    register = functions_defined(tree)["register"]
    calls = [
        node
        for node in ast.walk(register)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "register"
    ]
    assert [ast.literal_eval(call.args[1]) for call in calls] == ["gpu"]


def stand_in_kernels(monkeypatch: pytest.MonkeyPatch, register: Any) -> str:
    """A module ``register`` runs as, put where the registry looks for the CuPy set."""
    module = types.ModuleType("stand_in_gpu_kernels")
    module.register = register
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(overrides.GPU_KERNEL_MODULES, "numba", module.__name__)
    return module.__name__


def test_without_cupy_the_cupy_set_is_skipped_silently(monkeypatch):
    stand_in_kernels(monkeypatch, lambda: pytest.fail("loaded without CuPy"))
    monkeypatch.setattr(overrides, "_cupy_importable", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert overrides.set_kernels("numba") == "numba"
    assert overrides.replacement("sigmoid", "cpu") is not None
    assert all(overrides.replacement(n, "gpu") is None for n in overrides.overridable_names())


def test_with_cupy_the_cupy_set_registers_for_gpu_beside_the_cpu_set(monkeypatch):
    def kernel(x: Any) -> Any:
        return x

    stand_in_kernels(monkeypatch, lambda: overrides.register("sigmoid", "gpu", kernel))
    monkeypatch.setattr(overrides, "_cupy_importable", lambda: True)
    assert overrides.set_kernels("numba") == "numba"
    assert overrides.replacement("sigmoid", "gpu") is kernel
    assert overrides.replacement("sigmoid", "cpu") is not None
    assert overrides.set_kernels("reference") == "reference"
    assert overrides.replacement("sigmoid", "gpu") is None


def test_a_cupy_set_that_cannot_load_warns_once_and_keeps_the_cpu_set(monkeypatch):
    def half_way() -> None:
        overrides.register("sigmoid", "gpu", np.tanh)
        raise RuntimeError("no NVRTC here")

    stand_in_kernels(monkeypatch, half_way)
    monkeypatch.setattr(overrides, "_cupy_importable", lambda: True)
    with pytest.warns(RuntimeWarning, match=r"CuPy kernels could not be loaded.*no NVRTC here"):
        assert overrides.set_kernels("numba") == "numba"
    assert overrides.replacement("sigmoid", "gpu") is None  # nothing half-registered stays
    assert overrides.replacement("sigmoid", "cpu") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert overrides.set_kernels("numba") == "numba"  # said once is enough


def test_cupy_is_importable_exactly_when_it_is_installed():
    from importlib.util import find_spec

    assert overrides._cupy_importable() == (find_spec("cupy") is not None)


# -- on a GPU: every kernel against its plain function ---------------------------------------------

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a GPU")


@pytest.fixture
def kernels() -> types.ModuleType:
    """The CuPy kernel module, registered (only reached on a GPU)."""
    from tinygan.kernels import gpu_cupy

    assert overrides.set_kernels("numba") == "numba"
    return gpu_cupy


def cp() -> types.ModuleType:
    import cupy

    return cupy


def on_gpu(a: np.ndarray) -> Any:
    return cp().asarray(a)


def check_kernel(kernels: types.ModuleType, name: str, *args: Any) -> tuple[Any, ...]:
    """Run the CuPy kernel ``name`` and its plain function on the GPU arrays ``args``; assert that
    each computes what the plain function computes in float64 on the host, within the rounding
    bound of the computation (:func:`tinygan.rounding.assert_matches_plain`). Returns the kernel's
    results as :func:`tinygan.rounding.results_of` lists them."""
    for function in (overrides.plain(name), getattr(kernels, name)):
        work = [a.copy() if hasattr(a, "copy") else a for a in args] if name in IN_PLACE else args
        results = results_of(name, work, function(*work))
        assert_matches_plain(name, args, results, f"{name} ({function.__module__})")
    return results


def assert_equal(got: Any, want: Any) -> None:
    np.testing.assert_array_equal(cp().asnumpy(got), cp().asnumpy(want))
    assert got.dtype == want.dtype


def normal(shape: tuple[int, ...], dtype: Any, seed: int) -> Any:
    return on_gpu(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def strided(a: Any) -> Any:
    """The same values as ``a`` in a non-contiguous view (every other entry of a wider array)."""
    wide = cp().zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


CONV_CASES = [
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1, 1, 1)),
    ((1, 1, 5, 5), (5, 5), (2, 2), (2, 2, 2, 2)),
    ((3, 4, 9, 8), (4, 2), (3, 2), (0, 1, 2, 0)),  # asymmetric padding, rows the windows miss
    ((2, 5, 6, 7), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 3, 6, 6), (5, 5), (2, 2), (1, 2, 1, 2)),  # "same", stride 2: the odd padding after
    ((16, 64, 14, 14), (5, 5), (2, 2), (1, 2, 1, 2)),  # a DCGAN layer
]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CONV_CASES)
def test_gpu_im2col_and_col2im(kernels, dtype, shape, kernel, stride, padding):
    x = normal(shape, dtype, 0)
    cols = kernels.im2col(x, *kernel, stride, padding)
    assert cols.flags.c_contiguous
    assert_equal(cols, conv.im2col.plain(x, *kernel, stride, padding))
    assert_equal(kernels.im2col(strided(x), *kernel, stride, padding), cols)
    g = normal(cols.shape, dtype, 1)
    (image,) = check_kernel(kernels, "col2im", g, shape, *kernel, stride, padding)
    assert image.flags.c_contiguous and image.shape == shape
    check_kernel(kernels, "col2im", strided(g), shape, *kernel, stride, padding)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_convolutions_use_the_kernels_through_the_registry(kernels, dtype):
    """The plain conv functions call im2col / col2im through the registry: the plain functions'
    results, as on the CPU."""
    from tinygan.nn import conv_transpose

    rng = np.random.default_rng(3)
    x, W = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((5, 4, 5, 5))
    x, W, b = x.astype(dtype), W.astype(dtype), rng.standard_normal(5).astype(dtype)
    pad, stride = (1, 2, 1, 2), (2, 2)
    assert overrides.replacement("im2col", "gpu") is kernels.im2col
    y = conv.conv2d_forward(on_gpu(x), on_gpu(W), on_gpu(b), stride, pad)
    assert_matches_plain("conv2d_forward", (x, W, b, stride, pad), y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = conv.conv2d_backward(on_gpu(dy), on_gpu(x), on_gpu(W), stride, pad)
    assert_matches_plain("conv2d_backward", (dy, x, W, stride, pad), got)
    Wt = rng.standard_normal((4, 5, 5, 5)).astype(dtype)
    y = conv_transpose.conv_transpose2d_forward(on_gpu(x), on_gpu(Wt), None, stride, pad, (18, 16))
    assert_matches_plain("conv_transpose2d_forward", (x, Wt, None, stride, pad, (18, 16)), y)


def with_special_values(x: Any) -> Any:
    x = x.copy()
    specials = np.array([0.0, -0.0, 1e4, -1e4, np.inf, -np.inf, 40.0, -40.0])
    flat = x.reshape(-1)
    flat[: specials.size] = on_gpu(specials[: flat.size].astype(x.dtype))
    return x


ELEMENTWISE_SHAPES = [(7, 5), (3, 4, 5, 6), (4099,)]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_gpu_leaky_relu(kernels, dtype, shape, alpha):
    x = with_special_values(normal(shape, dtype, 4))
    y, mask = kernels.leaky_relu(x, alpha)
    want_y, want_mask = activations.leaky_relu.plain(x, alpha)
    assert_equal(y, want_y)
    assert_equal(mask, want_mask)
    assert_equal(kernels.leaky_relu(strided(x), alpha)[0], want_y)
    dy = normal(shape, dtype, 5)
    dx = kernels.leaky_relu_backward(dy, mask, alpha)
    assert_equal(dx, activations.leaky_relu_backward.plain(dy, want_mask, alpha))
    assert_equal(kernels.leaky_relu_backward(strided(dy), strided(mask), alpha), dx)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_gpu_sigmoid_and_the_output_gradients(kernels, dtype, shape):
    # The bound is relative to each entry, so it holds where sigmoid is tiny.
    x = normal(shape, dtype, 6) * dtype(6)
    (y,) = check_kernel(kernels, "sigmoid", x)
    dy = normal(shape, dtype, 7)
    check_kernel(kernels, "sigmoid_backward", dy, y)
    t = cp().tanh(x)
    check_kernel(kernels, "tanh_backward", dy, t)
    check_kernel(kernels, "tanh_backward", strided(dy), strided(t))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_sigmoid_extremes(kernels, dtype):
    y = cp().asnumpy(kernels.sigmoid(with_special_values(cp().zeros(10, dtype))))
    np.testing.assert_array_equal(y[:6], np.array([0.5, 0.5, 1.0, 0.0, 1.0, 0.0], dtype))
    assert np.isnan(cp().asnumpy(kernels.sigmoid(on_gpu(np.array([np.nan], dtype))))).all()


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (4, 3, 5, 6), (16, 64, 7, 7), (9, 7)])
def test_gpu_batchnorm(kernels, dtype, shape):
    channels = shape[1]
    x = normal(shape, dtype, 8) * dtype(3) + dtype(2)
    mean, var = batchnorm.batchnorm_moments.plain(x)
    gamma, beta = normal((channels,), dtype, 9), normal((channels,), dtype, 10)
    check_kernel(kernels, "batchnorm_forward", x, mean, var, gamma, beta, 1e-5)
    check_kernel(kernels, "batchnorm_forward", strided(x), mean, var, gamma, beta, 1e-5)
    _, xhat, inv_std = batchnorm.batchnorm_forward.plain(x, mean, var, gamma, beta, 1e-5)
    dy = normal(shape, dtype, 11)
    for batch_stats in (True, False):
        check_kernel(kernels, "batchnorm_backward", dy, xhat, inv_std, gamma, batch_stats)


def check_updates(
    kernels: types.ModuleType,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    n_state: int,
    **settings: Any,
) -> None:
    """Three updates of a random parameter with fresh random gradients, each checked from the same
    parameter and state (:func:`check_kernel`); the kernel's results start the next one."""
    rng = np.random.default_rng(12)
    param = on_gpu(rng.standard_normal(shape).astype(dtype))
    state = [cp().zeros(shape, dtype) for _ in range(n_state)]
    for step in (1, 2, 3):
        grad = on_gpu(rng.standard_normal(shape).astype(dtype))
        if "step" in settings:
            settings["step"] = step
        param, *state = check_kernel(kernels, name, param, grad, *state, *settings.values())


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (129, 31)])
@pytest.mark.parametrize(
    ("name", "n_state", "settings"),
    [
        ("sgd_update", 1, {"lr": 0.1, "momentum": 0.9}),
        ("adam_update", 2, {"lr": 1e-3, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8, "step": 1}),
        ("rmsprop_update", 1, {"lr": 1e-3, "rho": 0.9, "eps": 1e-7}),
    ],
)
def test_gpu_optimizer_updates(kernels, dtype, shape, name, n_state, settings):
    check_updates(kernels, name, shape, dtype, n_state, **settings)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_plain_sgd_and_strided_parameters_update_in_place(kernels, dtype):
    param, grad = normal((4, 3), dtype, 12), normal((4, 3), dtype, 13)
    assert check_kernel(kernels, "sgd_update", param, grad, None, 0.1, 0.0)[1] is None
    wide = cp().ones((4, 6), dtype)
    param, grad = wide[:, ::2], cp().ones((4, 3), dtype)
    m, v = cp().zeros((4, 3), dtype), cp().zeros((4, 3), dtype)
    kernels.adam_update(param, grad, m, v, 0.5, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_allclose(cp().asnumpy(wide[:, ::2]), 0.5, rtol=1e-6)
    np.testing.assert_array_equal(cp().asnumpy(wide[:, 1::2]), 1.0)


@needs_gpu
def test_gpu_every_cupy_kernel_is_registered(kernels):
    for function in kernels.OVERRIDES:
        assert overrides.replacement(function.__name__, "gpu") is function
        assert inspect.signature(function).parameters.keys() == (
            inspect.signature(overrides.plain(function.__name__)).parameters.keys()
        )
    calls = []
    overrides.register("sigmoid", "gpu", lambda a: calls.append(a.dtype) or a)
    for dtype in (np.float32, np.float64, np.float16):
        activations.sigmoid(cp().zeros(2, dtype))
    assert calls == [np.float32, np.float64]  # float16 runs the plain function


@needs_gpu
@pytest.mark.parametrize(
    "make_layer",
    [
        lambda nn: nn.Conv2D(3, 4, 5, stride=2, padding="same"),
        lambda nn: nn.ConvTranspose2D(3, 4, 5, stride=2, padding="same"),
        lambda nn: nn.BatchNorm(3),
        lambda nn: nn.LeakyReLU(0.2),
        lambda nn: nn.Sigmoid(),
        lambda nn: nn.Tanh(),
    ],
    ids=["conv", "conv_transpose", "batchnorm", "leaky_relu", "sigmoid", "tanh"],
)
def test_gpu_float64_gradient_checks_with_the_kernels(kernels, make_layer):
    from tinygan import nn
    from tinygan.gradcheck import check_layer

    layer = make_layer(nn).astype(np.float64).to("gpu")
    x = on_gpu(np.random.default_rng(13).standard_normal((2, 3, 6, 5)))
    errors = check_layer(layer, x, rng=np.random.default_rng(14))
    assert max(errors.values()) < 1e-6, errors


@needs_gpu
@pytest.mark.parametrize("preset_name", ["000", "003"])
def test_gpu_a_training_step_with_the_kernels_matches_the_plain_one(kernels, preset_name):
    """One iteration on the GPU from the same seeds, with and without the CuPy kernels, makes the
    same calls (the optimizers' updates over flat buffers with the kernels: the same entries), and
    every kernel call returns what the plain function computes from the same
    arguments, within the rounding bound of its computation (the runs' gradients themselves drift
    apart by rounding carried through the layers; see the CPU kernels' test of a training step)."""
    from tinygan.backend import make_rng
    from tinygan.models import get_preset

    preset = get_preset(preset_name)
    real = on_gpu(np.random.default_rng(2).random((8, *preset.data_shape), dtype=np.float32))
    runs = []
    for kernel_set in ("reference", "numba"):
        assert overrides.set_kernels(kernel_set) == kernel_set
        gan = preset.make_gan(np.random.default_rng(0), make_rng(1, "gpu"), "gpu")
        with recording_calls("gpu") as calls:
            gan.train_step(lambda: real)
        runs.append(calls)
    plain_calls, kernel_calls = runs
    assert step_signature(kernel_calls) == step_signature(plain_calls)
    assert {"adam_update", "sigmoid"} <= {c.name for c in kernel_calls if c.kernel}
    for call in kernel_calls:
        if call.kernel:  # the plain functions on the GPU (dropout) draw from the device's stream
            call.check()


# -- everywhere with a C++ compiler: the RawKernel sources, run on the CPU -------------------------

# Just enough of CUDA for the kernels' text to compile as C++: the launch coordinates become globals
# that the test sets before each call, and every "thread" is one call.
CUDA_SHIM = """
struct Coordinate { unsigned int x; };
static Coordinate blockIdx, blockDim, threadIdx, gridDim;
#define __global__
extern "C" void set_thread(unsigned int block, unsigned int threads, unsigned int thread,
                           unsigned int blocks) {
    blockIdx.x = block; blockDim.x = threads; threadIdx.x = thread; gridDim.x = blocks;
}
"""


def kernel_source(name: str) -> str:
    for node in module_tree().body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f"gpu_cupy.py defines no {name}")


@pytest.fixture(scope="module")
def compiled_on_cpu(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``compile(source_name, dtype)``: the kernel of that source as a C function, via ctypes."""
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("needs a C++ compiler")
    folder = tmp_path_factory.mktemp("raw_kernels")

    @functools.cache
    def compile_kernel(source_name: str, dtype: Any) -> Any:
        c_type = {np.float32: "float", np.float64: "double"}[dtype]
        stem = f"{source_name.strip('_').lower()}_{c_type}"
        (folder / f"{stem}.cpp").write_text(
            f"{CUDA_SHIM}\ntypedef {c_type} real_t;\n{kernel_source(source_name)}"
        )
        library = folder / f"{stem}.so"
        subprocess.run(
            [compiler, "-O1", "-shared", "-fPIC", "-o", str(library), str(folder / f"{stem}.cpp")],
            check=True,
            capture_output=True,
        )
        return ctypes.CDLL(str(library))

    return compile_kernel


def run_on_cpu(library: Any, name: str, source: np.ndarray, out: np.ndarray, ints: tuple) -> None:
    """Launch ``name`` as :func:`gpu_cupy._launch` does, on 3 blocks of 7 threads, one at a time:
    the grid-stride loops must cover every element exactly once whatever the grid."""
    import ctypes

    function = getattr(library, name)
    arguments = [
        ctypes.c_void_p(source.ctypes.data),
        ctypes.c_void_p(out.ctypes.data),
        ctypes.c_longlong(out.size),
        *(ctypes.c_int(int(v)) for v in ints),
    ]
    for block in range(3):
        for thread in range(7):
            library.set_thread(block, 7, thread, 3)
            function(*arguments)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CONV_CASES[:5])
def test_the_im2col_and_col2im_sources_match_the_plain_functions(
    compiled_on_cpu, dtype, shape, kernel, stride, padding
):
    from tinygan.nn.padding import conv_output_size

    (_, c, h, w), (kh, kw) = shape, kernel
    top, bottom, left, right = padding
    oh = conv_output_size(h, kh, stride[0], top, bottom)
    ow = conv_output_size(w, kw, stride[1], left, right)
    ints = (c, h, w, kh, kw, *stride, top, left, oh, ow)  # gpu_cupy._geometry's order
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    want = conv.im2col.plain(x, kh, kw, stride, padding)
    cols = np.full(want.shape, np.nan, dtype)
    run_on_cpu(compiled_on_cpu("_IM2COL_SOURCE", dtype), "im2col", x, cols, ints)
    np.testing.assert_array_equal(cols, want)
    g = np.random.default_rng(1).standard_normal(want.shape).astype(dtype)
    image = np.full(shape, np.nan, dtype)
    run_on_cpu(compiled_on_cpu("_COL2IM_SOURCE", dtype), "col2im", g, image, ints)
    # the gather adds in the plain function's order: equal to the last bit
    np.testing.assert_array_equal(image, conv.col2im.plain(g, shape, kh, kw, stride, padding))
