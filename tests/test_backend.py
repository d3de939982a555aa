import numpy as np
import pytest

from tinygan.backend import (
    check_device,
    get_array_module,
    gpu_available,
    make_rng,
    move_rng,
    to_device,
    to_numpy,
)


def test_numpy_arrays_select_numpy():
    assert get_array_module(np.zeros(3)) is np
    assert get_array_module(1.0, None, np.ones(2)) is np


def test_to_device_cpu_round_trip_is_free():
    x = np.arange(6.0).reshape(2, 3)
    assert to_device(x, "cpu") is x
    assert to_numpy(x) is x


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        check_device("tpu")


@pytest.mark.skipif(gpu_available(), reason="checks the message shown where no GPU is usable")
def test_gpu_without_cupy_or_device_says_what_to_install():
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[gpu\]"'):
        to_device(np.zeros(2), "gpu")


def test_same_seed_same_numbers():
    a = make_rng(7).standard_normal(5)
    b = make_rng(7).standard_normal(5)
    c = make_rng(8).standard_normal(5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_gpu_round_trip(device):
    x = np.arange(4.0)
    y = to_device(x, device)
    np.testing.assert_array_equal(to_numpy(y), x)


def test_moving_a_generator_to_its_own_device_keeps_it():
    rng = make_rng(3)
    assert move_rng(rng, "cpu") is rng
