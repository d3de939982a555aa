"""IDX reading, dataset search, offline errors and downloads, on tiny synthetic files; the bundled
MNIST test split and the fallback to it; real data."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import struct
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import mnist_dir

from tinygan.data import (
    CorruptDatasetError,
    DatasetNotFoundError,
    bundled_mnist_dir,
    default_data_dir,
    download,
    find_dataset_files,
    images_to_float,
    load_mnist,
    load_mnist_or_bundled,
    mnist,
    read_idx,
    search_folders,
)
from tinygan.rounding import assert_within_rounding
from tinygan.run.flags import DATA_FLAGS  # how the training commands spell the options

TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# The Debian package dataset-fashion-mnist installs the four .gz files here.
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file, written independently of the reader under test."""
    kind = array.dtype.kind + str(array.dtype.itemsize)
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[kind], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path: Path, content: bytes) -> Path:
    """Write ``content``, gzip-compressed when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def fake_split(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, suffix: str = ".gz") -> None:
    """The test split of ``images``/``labels`` under the standard names in ``folder``."""
    write_file(folder / f"{TEST_FILES[0]}{suffix}", idx_bytes(images))
    write_file(folder / f"{TEST_FILES[1]}{suffix}", idx_bytes(labels))


def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, hidden temporary files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns, serving ``content``; optionally the connection drops midway."""

    def __init__(self, content: bytes, fail_after: int | None = None) -> None:
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content))}
        self.fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(size, 100) if size > 0 else size)  # several chunks per file


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download a test did not arrange for fails the test instead of reaching the internet."""

    def refuse(url: str, timeout: float | None = None) -> None:
        pytest.fail(f"unexpected network access to {url}")

    monkeypatch.setattr(download, "urlopen", refuse)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Install a fake ``urlopen`` serving the returned dict: URL -> bytes, a FakeResponse or an error.

    Requested URLs and timeouts are appended to the dict's "requests" list.
    """
    served: dict[str, object] = {"requests": []}

    def fake_urlopen(url: str, timeout: float | None = None) -> FakeResponse:
        served["requests"].append((url, timeout))
        response = served.get(url, urllib.error.HTTPError(url, 404, "Not Found", None, None))
        if isinstance(response, Exception):
            raise response
        return response if isinstance(response, FakeResponse) else FakeResponse(response)

    monkeypatch.setattr(download, "urlopen", fake_urlopen)
    monkeypatch.setitem(
        download.MIRRORS, "mnist", ("http://first.invalid/", "http://second.invalid/")
    )
    return served


def publish(monkeypatch: pytest.MonkeyPatch, images: np.ndarray, labels: np.ndarray) -> dict:
    """Gzip the test split and make its MD5s the expected checksums; returns name -> .gz bytes."""
    published = {}
    for name, array in zip(TEST_FILES, (images, labels), strict=True):
        content = gzip.compress(idx_bytes(array))
        published[f"{name}.gz"] = content
        md5 = hashlib.md5(content).hexdigest()
        monkeypatch.setitem(download.CHECKSUMS["mnist"], f"{name}.gz", md5)
    return published


# --- read_idx -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("kind", list(TYPE_CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
def test_read_idx_round_trip(tmp_path: Path, suffix: str, kind: str, shape: tuple) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal(shape) * 100).astype(kind)  # negative values for signed types
    path = write_file(tmp_path / f"data.idx{suffix}", idx_bytes(array))
    result = read_idx(path)
    assert result.dtype == np.dtype(kind)  # native byte order
    assert result.dtype.isnative
    assert result.shape == shape
    np.testing.assert_array_equal(result, array)
    result[...] = 0  # writable
    assert read_idx(str(path)).shape == shape  # plain strings work too


def good_labels() -> bytes:
    return idx_bytes(np.arange(10, dtype=np.uint8))


CORRUPTIONS = {
    "bad magic": ("labels", b"\x01\x00" + good_labels()[2:], "bad magic number"),
    "gzip without .gz": ("labels", gzip.compress(good_labels()), "looks gzip-compressed"),
    "unknown type code": (
        "labels",
        b"\x00\x00\x0a" + good_labels()[3:],
        "unknown IDX type code 0x0A",
    ),
    "too short": ("labels", b"\x00\x00", "too short"),
    "header cut": ("labels", good_labels()[:6], "declares 1 dimensions"),
    "truncated payload": ("labels", good_labels()[:-1], "truncated"),
    "trailing bytes": ("labels", good_labels() + b"\x00", "trailing bytes"),
    "huge dimensions": ("labels", b"\x00\x00\x08\x03" + b"\x7f\xff\xff\xff" * 3, "truncated"),
    "not gzip": ("labels.gz", b"this is not gzip data", "not a valid gzip file"),
    "gzip cut": ("labels.gz", gzip.compress(good_labels())[:-12], "not a valid gzip file"),
    "gzip bad crc": (
        "labels.gz",
        gzip.compress(good_labels())[:-8] + b"\x00\x00\x00\x00" + gzip.compress(good_labels())[-4:],
        "not a valid gzip file",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_read_idx_corrupt(tmp_path: Path, case: str) -> None:
    name, content, message = CORRUPTIONS[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorruptDatasetError, match=message) as error:
        read_idx(path)
    assert isinstance(error.value, ValueError)
    assert str(path) in str(error.value)
    assert listing(tmp_path) == [name]


# --- load_mnist on local files --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_mnist_round_trip(tmp_path: Path, suffix: str) -> None:
    images, labels = fake_split()
    write_split(tmp_path, images, labels, suffix)
    loaded_images, loaded_labels = load_mnist("test", tmp_path, download=False)
    assert loaded_images.dtype == np.uint8 and loaded_labels.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_mnist_train_split_names(tmp_path: Path) -> None:
    images, labels = fake_split(4)
    write_file(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images))
    write_file(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels))  # mixed forms are fine
    loaded_images, loaded_labels = load_mnist("train", tmp_path, download=False)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)
    with pytest.raises(DatasetNotFoundError):
        load_mnist("test", tmp_path, download=False)


MISMATCHES = {
    "count mismatch": (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8), "4 labels"),
    "wrong image size": (np.zeros((4, 27, 28), np.uint8), np.zeros(4, np.uint8), "27, 28"),
    "flat images": (np.zeros((4, 784), np.uint8), np.zeros(4, np.uint8), "784"),
    "float images": (np.zeros((4, 28, 28), np.float32), np.zeros(4, np.uint8), "float32"),
    "2-D labels": (np.zeros((4, 28, 28), np.uint8), np.zeros((4, 1), np.uint8), r"\(4, 1\)"),
    "label out of range": (np.zeros((2, 28, 28), np.uint8), np.array([3, 10], np.uint8), "10"),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_load_mnist_rejects_inconsistent_files(tmp_path: Path, case: str, server: dict) -> None:
    images, labels, message = MISMATCHES[case]
    write_split(tmp_path, images, labels)
    before = listing(tmp_path)
    with pytest.raises(CorruptDatasetError, match=message):
        load_mnist("test", tmp_path, download=True)
    assert listing(tmp_path) == before
    assert server["requests"] == []  # files on disk are never re-downloaded


def test_load_mnist_corrupt_file_names_it(tmp_path: Path) -> None:
    images, labels = fake_split()
    write_split(tmp_path, images, labels)
    bad = tmp_path / f"{TEST_FILES[0]}.gz"
    bad.write_bytes(gzip.compress(idx_bytes(images))[:-100])
    with pytest.raises(CorruptDatasetError, match="not a valid gzip file") as error:
        load_mnist("test", tmp_path, download=False)
    assert str(bad) in str(error.value)


# --- where files are looked for -------------------------------------------------------------------


def test_search_order_folder_itself_first(tmp_path: Path) -> None:
    write_split(tmp_path, *fake_split(seed=1))
    write_split(tmp_path / "mnist", *fake_split(seed=2))
    assert search_folders(tmp_path) == [tmp_path, tmp_path / "mnist"]
    images_path, labels_path = find_dataset_files("test", tmp_path)
    assert images_path == tmp_path / f"{TEST_FILES[0]}.gz"
    assert labels_path == tmp_path / f"{TEST_FILES[1]}.gz"
    np.testing.assert_array_equal(
        load_mnist("test", tmp_path, download=False)[0], fake_split(seed=1)[0]
    )


def test_search_dataset_subfolder(tmp_path: Path) -> None:
    write_split(tmp_path / "mnist", *fake_split(seed=2))
    write_split(tmp_path / "fashion-mnist", *fake_split(seed=3))
    assert find_dataset_files("test", tmp_path)[0].parent == tmp_path / "mnist"
    assert (
        find_dataset_files("test", tmp_path, "fashion-mnist")[0].parent
        == tmp_path / "fashion-mnist"
    )
    fashion_images, _ = load_mnist("test", tmp_path, "fashion-mnist", download=False)
    np.testing.assert_array_equal(fashion_images, fake_split(seed=3)[0])


def test_folder_named_after_other_dataset_is_not_taken_for_this_one(tmp_path: Path) -> None:
    write_split(tmp_path / "mnist", *fake_split())
    assert find_dataset_files("test", tmp_path / "mnist", "mnist") is not None
    assert find_dataset_files("test", tmp_path / "mnist", "fashion-mnist") is None
    with pytest.raises(DatasetNotFoundError, match="its name is another dataset's"):
        load_mnist("test", tmp_path / "mnist", "fashion-mnist", download=False)


def test_raw_file_wins_over_gz_and_pairs_stay_in_one_folder(tmp_path: Path) -> None:
    write_split(tmp_path, *fake_split(), suffix="")
    write_split(tmp_path, *fake_split(), suffix=".gz")
    assert find_dataset_files("test", tmp_path) == (
        tmp_path / TEST_FILES[0],
        tmp_path / TEST_FILES[1],
    )

    split_up = tmp_path / "split_up"
    images, labels = fake_split()
    write_file(split_up / TEST_FILES[0], idx_bytes(images))
    write_file(split_up / "mnist" / TEST_FILES[1], idx_bytes(labels))
    assert find_dataset_files("test", split_up) is None


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "data"
    monkeypatch.delenv("TINYGAN_DATA")
    assert default_data_dir() == tmp_path / "xdg" / "tinygan"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "tinygan"


def test_load_mnist_uses_tinygan_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    images, labels = fake_split()
    write_split(tmp_path / "mnist", images, labels)
    monkeypatch.setenv("TINYGAN_DATA", str(tmp_path))
    np.testing.assert_array_equal(load_mnist("test", download=False)[1], labels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "val"}, "split"),
        ({"split": "Test"}, "split"),
        ({"dataset": "cifar10"}, "dataset"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_mnist(data_dir=tmp_path, download=False, **kwargs)
    with pytest.raises(ValueError, match=message):
        find_dataset_files(kwargs.get("split", "test"), tmp_path, kwargs.get("dataset", "mnist"))


def test_offline_error_names_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("test", tmp_path, "fashion-mnist", download=False)
    assert isinstance(error.value, FileNotFoundError)
    message = str(error.value)
    for expected in [str(tmp_path), str(tmp_path / "fashion-mnist"), *TEST_FILES, "$TINYGAN_DATA"]:
        assert expected in message
    assert "Fashion-MNIST test" in message
    assert listing(tmp_path) == []  # not even a folder was created


# --- what a missing dataset's message says --------------------------------------------------------


@pytest.mark.parametrize("present", [0, 1], ids=["images only", "labels only"])
def test_a_lone_file_is_reported_with_the_missing_one_named(tmp_path: Path, present: int) -> None:
    write_file(tmp_path / "mnist" / f"{TEST_FILES[present]}.gz", idx_bytes(fake_split()[present]))
    missing = TEST_FILES[1 - present]
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("test", tmp_path, download=False)
    headline = str(error.value).splitlines()[0]
    assert f"{tmp_path / 'mnist'} holds {TEST_FILES[present]}.gz but not {missing}" in headline
    assert error.value.partial == {tmp_path / "mnist": (f"{TEST_FILES[present]}.gz", missing)}


@pytest.mark.parametrize("download", [False, True])
def test_a_missing_train_split_points_to_the_test_split_on_disk(
    tmp_path: Path, server: dict, download: bool
) -> None:
    write_split(tmp_path / "mnist", *fake_split())
    before = listing(tmp_path)
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("train", tmp_path, download=download)
    hint = f"The test split is in {tmp_path / 'mnist'}: to use it instead, pass"
    assert f'{hint} split="test".' in str(error.value)
    assert f"{hint} --split test." in error.value.describe(DATA_FLAGS)
    assert error.value.other_split == ("test", tmp_path / "mnist")
    assert listing(tmp_path) == before
    assert len(server["requests"]) == (2 if download else 0)  # both mirrors, first file


def test_messages_name_the_options_in_the_callers_terms(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("train", tmp_path, download=False)
    python, command = str(error.value), error.value.describe(DATA_FLAGS)
    assert "pass data_dir=... or set $TINYGAN_DATA" in python
    assert "Nothing was downloaded (download=False): pass download=True to fetch them." in python
    assert "pass --data-dir DIR or set $TINYGAN_DATA" in command
    assert "(--no-download): leave out --no-download to fetch them." in command
    assert not any(keyword in command for keyword in ("data_dir=", "download=", "split="))
    # only the advice differs: the facts are the same
    assert python.splitlines()[:6] == command.splitlines()[:6]


def test_dataset_not_found_error_survives_pickling(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("test", tmp_path, "fashion-mnist", download=False)
    copy = pickle.loads(pickle.dumps(error.value))
    assert isinstance(copy, FileNotFoundError) and str(copy) == str(error.value)


def test_tinygan_eval_names_its_own_flags_when_data_is_missing(tmp_path: Path) -> None:
    from tinygan.models import PRESETS
    from tinygan.run.checkpoint import save_checkpoint
    from tinygan.run.cli import main

    gan = PRESETS["000"].make_gan(np.random.default_rng(0), np.random.default_rng(1))
    path = save_checkpoint(tmp_path / "ck.npz", gan, metadata={"preset": "000", "seed": 0})
    # the shipped classifier brings its own held-out digits: only a whole split asks for files
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "eval",
                str(path),
                "--n",
                "4",
                "--data-dir",
                str(tmp_path / "data"),
                "--split",
                "train",
            ]
        )
    message = str(exit_info.value.code)
    assert message.startswith("tinygan eval: MNIST train split not found.")
    assert "pass --data-dir DIR or set $TINYGAN_DATA" in message
    assert "Nothing was downloaded (no --download): pass --download to fetch them." in message
    assert not any(keyword in message for keyword in ("data_dir=", "download=", "split="))
    assert not (tmp_path / "data").exists()


# --- the bundled test split and the fallback to it ------------------------------------------------


def test_bundled_mnist_test_split_is_the_published_one() -> None:
    folder = bundled_mnist_dir()
    images, labels = load_mnist("test", folder, download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    for name in TEST_FILES:
        md5 = hashlib.md5((folder / f"{name}.gz").read_bytes()).hexdigest()
        assert md5 == download.CHECKSUMS["mnist"][f"{name}.gz"]
    notice = (folder / "README.txt").read_text()
    for credit in ("Yann LeCun", "Corinna Cortes", "Burges", "Attribution-Share Alike 3.0"):
        assert credit in notice


def test_pyproject_installs_the_bundled_files() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tinygan.data"]
    package = bundled_mnist_dir().parent
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    bundled = set(bundled_mnist_dir().iterdir())
    assert {path.name for path in bundled} >= {f"{name}.gz" for name in TEST_FILES} | {"README.txt"}
    assert bundled <= shipped


def test_the_bundled_split_stands_in_only_when_allowed(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        load_mnist_or_bundled("train", tmp_path, download=False, allow_bundled=False)
    images, labels, notice = load_mnist_or_bundled("train", tmp_path, download=False)
    bundled_images, bundled_labels = load_mnist("test", bundled_mnist_dir(), download=False)
    np.testing.assert_array_equal(images, bundled_images)
    np.testing.assert_array_equal(labels, bundled_labels)
    assert "\n" not in notice
    assert notice.startswith(
        f"MNIST train split not found in {tmp_path} and nothing was downloaded"
    )
    assert "training on the 10,000 MNIST test digits bundled with tinygan" in notice
    assert "pass download=True or put train-images-idx3-ubyte.gz and train-labels-" in notice
    assert f"in {tmp_path / 'mnist'} (or pass data_dir=...)" in notice
    assert listing(tmp_path) == []

    _, _, notice = load_mnist_or_bundled("test", tmp_path, download=False)
    assert notice.endswith("using the copy bundled with tinygan (10,000 digits)")


def test_no_stand_in_when_the_split_is_there_damaged_or_not_mnist(tmp_path: Path) -> None:
    images, labels = fake_split()
    write_split(tmp_path / "good", images, labels)
    loaded_images, loaded_labels, notice = load_mnist_or_bundled("test", tmp_path / "good")
    assert notice is None
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)

    write_split(tmp_path / "bad", images, labels[:-1])  # one label short
    with pytest.raises(CorruptDatasetError, match="labels"):
        load_mnist_or_bundled("test", tmp_path / "bad", download=False)
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST train split not found"):
        load_mnist_or_bundled("train", tmp_path, "fashion-mnist", download=False)


def test_the_stand_in_after_a_failed_download_says_so_in_command_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    images, _, notice = load_mnist_or_bundled(option_names=DATA_FLAGS)  # the default cache
    assert len(images) == 10000
    cache = tmp_path / "xdg" / "tinygan"
    assert notice.startswith(f"MNIST train split not found in {cache} and the download failed")
    assert "(HTTP Error 404: Not Found): training on the 10,000 MNIST test digits" in notice
    assert notice.endswith(
        "for all of them, try again online or put train-images-idx3-ubyte.gz and "
        f"train-labels-idx1-ubyte.gz in {cache / 'mnist'} (or pass --data-dir DIR)"
    )
    assert len(server["requests"]) == 2
    assert listing(tmp_path) == []  # no empty cache folders left behind


# --- downloads ------------------------------------------------------------------------------------


def test_download_good_checksum_caches_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    for name, content in publish(monkeypatch, images, labels).items():
        server[f"http://first.invalid/{name}"] = content
    loaded_images, loaded_labels = load_mnist("test", tmp_path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)
    assert listing(tmp_path) == ["mnist", *(f"mnist/{name}.gz" for name in TEST_FILES)]
    assert all(timeout and timeout > 0 for _, timeout in server["requests"])
    assert (tmp_path / "mnist" / f"{TEST_FILES[0]}.gz").stat().st_mode & 0o444 == 0o444

    # The second load reads the cache: no further requests.
    count = len(server["requests"])
    np.testing.assert_array_equal(load_mnist("test", tmp_path)[0], images)
    assert len(server["requests"]) == count


def test_download_falls_back_to_next_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    for name, content in publish(monkeypatch, images, labels).items():
        server[f"http://first.invalid/{name}"] = urllib.error.URLError("no route to host")
        server[f"http://second.invalid/{name}"] = content
    np.testing.assert_array_equal(load_mnist("test", tmp_path)[1], labels)
    assert [url.split("/")[2] for url, _ in server["requests"]] == [
        "first.invalid",
        "second.invalid",
    ] * 2


def test_download_only_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    published = publish(monkeypatch, images, labels)
    write_file(tmp_path / "mnist" / TEST_FILES[1], idx_bytes(labels))
    server[f"http://first.invalid/{TEST_FILES[0]}.gz"] = published[f"{TEST_FILES[0]}.gz"]
    np.testing.assert_array_equal(load_mnist("test", tmp_path)[0], images)
    assert [url for url, _ in server["requests"]] == [f"http://first.invalid/{TEST_FILES[0]}.gz"]


def test_download_bad_checksum_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    for name, content in publish(monkeypatch, images, labels).items():
        tampered = gzip.compress(gzip.decompress(content) + b"\x00")
        server[f"http://first.invalid/{name}"] = tampered
        server[f"http://second.invalid/{name}"] = tampered
    with pytest.raises(DatasetNotFoundError) as error:
        load_mnist("test", tmp_path)
    message = str(error.value)
    assert message.count("checksum mismatch") == 2  # one per mirror
    assert "http://second.invalid/t10k-images-idx3-ubyte.gz" in message
    assert listing(tmp_path) == []  # not even the folder made for the download


def test_download_interrupted_midway_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    for name, content in publish(monkeypatch, images, labels).items():
        server[f"http://first.invalid/{name}"] = FakeResponse(content, fail_after=len(content) // 2)
    with pytest.raises(DatasetNotFoundError, match="connection reset"):
        load_mnist("test", tmp_path)
    assert listing(tmp_path) == []


def test_a_failed_download_into_the_default_cache_leaves_no_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    monkeypatch.delenv("TINYGAN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DatasetNotFoundError, match="HTTP Error 404"):
        load_mnist("test")
    assert listing(tmp_path) == []


def test_a_download_failing_halfway_keeps_the_finished_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: dict
) -> None:
    images, labels = fake_split()
    name = f"{TEST_FILES[0]}.gz"
    server[f"http://first.invalid/{name}"] = publish(monkeypatch, images, labels)[name]
    with pytest.raises(DatasetNotFoundError) as error:  # the label file is on neither mirror
        load_mnist("test", tmp_path / "deep" / "cache")
    assert listing(tmp_path) == [
        "deep",
        "deep/cache",
        "deep/cache/mnist",
        f"deep/cache/mnist/{name}",
    ]
    assert f"holds {name} but not {TEST_FILES[1]}" in str(error.value)
    assert "HTTP Error 404" in str(error.value)


def test_download_file_interrupted_by_keyboard_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted(FakeResponse):
        def read(self, size: int = -1) -> bytes:
            if self.tell():
                raise KeyboardInterrupt
            return super().read(size)

    monkeypatch.setattr(download, "urlopen", lambda url, timeout: Interrupted(b"x" * 1000))
    with pytest.raises(KeyboardInterrupt):
        download.download_file("http://first.invalid/f.gz", tmp_path / "f.gz", "0" * 32)
    assert listing(tmp_path) == []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_download_over_http_from_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real urllib path, against an HTTP server on 127.0.0.1 serving a folder."""
    images, labels = fake_split()
    public = tmp_path / "public"
    public.mkdir()
    for name, content in publish(monkeypatch, images, labels).items():
        (public / name).write_bytes(content)
    handler = functools.partial(QuietHandler, directory=str(public))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/"
        monkeypatch.setattr(download, "urlopen", urllib.request.urlopen)
        monkeypatch.setitem(download.MIRRORS, "mnist", (base + "missing/", base))
        loaded_images, loaded_labels = load_mnist("test", tmp_path / "cache")
    finally:
        httpd.shutdown()
        httpd.server_close()
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)
    assert listing(tmp_path / "cache") == ["mnist", *(f"mnist/{name}.gz" for name in TEST_FILES)]


def test_checksums_table_is_complete() -> None:
    for dataset, mirrors in download.MIRRORS.items():
        assert mirrors
        names = {f"{name}.gz" for files in mnist.SPLITS.values() for name in files}
        assert set(download.CHECKSUMS[dataset]) == names
        assert all(
            len(md5) == 32 and int(md5, 16) >= 0 for md5 in download.CHECKSUMS[dataset].values()
        )


def test_the_reader_and_the_downloads_are_also_offered_where_they_were() -> None:
    from tinygan.data import idx

    assert all(hasattr(mnist, name) for name in mnist.__all__)
    assert mnist.read_idx is idx.read_idx and mnist.IDX_DTYPES is idx.IDX_DTYPES
    assert mnist.CorruptDatasetError is idx.CorruptDatasetError
    for name in ("MIRRORS", "CHECKSUMS", "DOWNLOAD_TIMEOUT", "download_file"):
        assert getattr(mnist, name) is getattr(download, name)


def test_the_data_layer_words_its_advice_in_python_not_in_flags() -> None:
    package = Path(mnist.__file__).parent
    for path in package.glob("*.py"):
        source = path.read_text()
        for flag in ("--data-dir", "--split", "--download", "--no-download"):
            assert flag not in source, f"{path.name} spells the command line's {flag}"


# --- images_to_float ------------------------------------------------------------------------------


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (0.25, 0.5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_images_to_float(value_range: tuple[float, float], dtype: type) -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lo, hi = value_range
    scaled = images_to_float(pixels, value_range, dtype)
    assert scaled.dtype == dtype and scaled.shape == pixels.shape
    assert scaled.min() == lo and scaled.max() == hi  # both ends exact
    # lo + (hi - lo) * p / 255 in any arrangement: the constants rounded to dtype, a product or
    # two, a division and an addition
    exact = lo + (hi - lo) * pixels / 255.0
    assert_within_rounding(scaled, exact, abs(lo) + abs(hi - lo) * pixels / 255.0, 6)
    assert np.all(np.diff(scaled.ravel()) > 0)


def test_images_to_float_matches_tanh_convention() -> None:
    pixels = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
    expected = (pixels.astype(np.float64) - 127.5) / 127.5
    np.testing.assert_allclose(
        images_to_float(pixels, (-1, 1), np.float64), expected, rtol=0, atol=1e-15
    )


def test_images_to_float_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="uint8"):
        images_to_float(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="floats"):
        images_to_float(np.zeros(3, np.uint8), dtype=np.int32)
    with pytest.raises(ValueError, match="lo < hi"):
        images_to_float(np.zeros(3, np.uint8), (1.0, -1.0))


# --- real data ------------------------------------------------------------------------------------


def test_real_mnist_test_split() -> None:
    images, labels = load_mnist("test", mnist_dir(), download=False)  # $TINYGAN_DATA or bundled
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(
        np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    assert images_to_float(images).mean() == pytest.approx(0.1325, abs=0.002)
    for path in find_dataset_files("test", mnist_dir(), dataset="mnist"):
        if path.suffix == ".gz":  # the published files: their MD5 must match the download table
            md5 = hashlib.md5(path.read_bytes()).hexdigest()
            assert md5 == download.CHECKSUMS["mnist"][path.name]


@pytest.mark.skipif(
    not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"no Fashion-MNIST files in {FASHION_DIR} (Debian package dataset-fashion-mnist)",
)
@pytest.mark.parametrize(
    ("split", "count", "mean"), [("test", 10000, 0.2868), ("train", 60000, 0.2860)]
)
def test_real_fashion_mnist(split: str, count: int, mean: float) -> None:
    # data_dir is the parent: the files are found in its "fashion-mnist" subfolder.
    images, labels = load_mnist(split, FASHION_DIR.parent, "fashion-mnist", download=False)
    assert images.shape == (count, 28, 28) and labels.shape == (count,)
    np.testing.assert_array_equal(np.bincount(labels), [count // 10] * 10)  # balanced classes
    assert images_to_float(images).mean() == pytest.approx(mean, abs=0.002)
