"""Readers: every format reads back what was written, every malformed file is a DataError naming it."""

import gzip

import numpy as np
import pytest
from PIL import Image

from digitlab.data import (
    DataError,
    Dataset,
    load_dataset,
    read_csv,
    read_idx,
    read_idx_pair,
    read_image_folder,
    read_keras_npz,
)
from conftest import idx_bytes, tiny_digits, write_idx, write_mnist_folder


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images, labels = tiny_digits(12)
    ip = write_idx(tmp_path / "img", images, gz)
    lp = write_idx(tmp_path / "lab", labels.astype(np.uint8), gz)
    ds = read_idx_pair(ip, lp)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (12, 28, 28)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    images, _ = tiny_digits(3)
    path = tmp_path / "no-extension"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(path), images)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x00\x00\x07\x03" + b"\x00" * 20, "bad magic number"),
        (b"\x12\x34\x08\x01" + b"\x00" * 20, "bad magic number"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    ],
)
def test_idx_bad_header(tmp_path, content, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_idx_truncated_data(tmp_path):
    images, _ = tiny_digits(5)
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(DataError, match=r"truncated.*5x28x28"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path):
    images, _ = tiny_digits(2)
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(images) + b"xx")
    with pytest.raises(DataError, match="2 unexpected bytes"):
        read_idx(path)


def test_idx_truncated_gzip(tmp_path):
    images, _ = tiny_digits(5)
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-30])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_idx_count_mismatch(tmp_path):
    images, labels = tiny_digits(10)
    ip = write_idx(tmp_path / "img", images)
    lp = write_idx(tmp_path / "lab", labels[:9].astype(np.uint8))
    with pytest.raises(DataError, match="9 labels for 10 images"):
        read_idx_pair(ip, lp)


def test_idx_label_out_of_range(tmp_path):
    images, labels = tiny_digits(10)
    labels[7] = 10
    ip = write_idx(tmp_path / "img", images)
    lp = write_idx(tmp_path / "lab", labels.astype(np.uint8))
    with pytest.raises(DataError, match="label 10 at position 7") as err:
        read_idx_pair(ip, lp)
    assert str(lp) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope")


def test_keras_npz(tmp_path):
    (xtr, ytr), (xte, yte) = tiny_digits(8, seed=1), tiny_digits(4, seed=2)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    train, test = read_keras_npz(path, "train"), read_keras_npz(path, "test")
    np.testing.assert_array_equal(train.images, xtr)
    np.testing.assert_array_equal(test.labels, yte)
    assert load_dataset(str(path), "test").labels.tolist() == yte.tolist()


def test_keras_npz_refuses_pickles_and_missing_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1, int))
    with pytest.raises(DataError, match="not a readable .npz"):
        read_keras_npz(path)
    path2 = tmp_path / "half.npz"
    np.savez(path2, x_train=tiny_digits(2)[0])
    with pytest.raises(DataError, match="missing array"):
        read_keras_npz(path2)
    path3 = tmp_path / "junk.npz"
    path3.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=str(path3.name)):
        read_keras_npz(path3)


def _write_csv(path, images, labels, header=False):
    lines = []
    if header:
        lines.append("label," + ",".join(f"pixel{i}" for i in range(images[0].size)))
    for image, label in zip(images, labels):
        lines.append(",".join(map(str, [label, *image.ravel().tolist()])))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("header", [False, True])
def test_csv_with_and_without_header(tmp_path, header):
    images, labels = tiny_digits(6)
    ds = read_csv(_write_csv(tmp_path / "d.csv", images, labels, header))
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)


def test_csv_errors(tmp_path):
    images, labels = tiny_digits(3)
    good = _write_csv(tmp_path / "g.csv", images, labels).read_text().splitlines()

    bad_field = tmp_path / "field.csv"
    bad_field.write_text("\n".join([good[0], good[1].replace(",", ",x,", 1).replace(",x,", ",abc,", 1), good[2]]))
    with pytest.raises(DataError, match="field.csv"):
        read_csv(bad_field)

    short = tmp_path / "short.csv"
    short.write_text("\n".join(line.rsplit(",", 1)[0] for line in good))
    with pytest.raises(DataError, match="784 columns"):
        read_csv(short)

    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join([good[0], good[1].rsplit(",", 1)[0], good[2]]))
    with pytest.raises(DataError, match="ragged.csv"):
        read_csv(ragged)

    label10 = tmp_path / "label10.csv"
    label10.write_text("\n".join(["10" + good[0][1:], *good[1:]]))
    with pytest.raises(DataError, match="label 10"):
        read_csv(label10)

    pixel = tmp_path / "pixel.csv"
    pixel.write_text("\n".join([good[0] + "", good[1].rsplit(",", 1)[0] + ",300"]))
    with pytest.raises(DataError, match="row 2: pixels must be integers in 0..255"):
        read_csv(pixel)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv(empty)


def test_csv_non_numeric_field_message_is_one_line(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("5," + ",".join(["0"] * 783) + ",oops\n")
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert "\n" not in str(err.value) and "nan.csv" in str(err.value)


def test_image_folder(tmp_path):
    images, labels = tiny_digits(10)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / str(label)
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    (tmp_path / "3" / "notes.txt").write_text("ignored")
    ds = read_image_folder(tmp_path)
    assert len(ds) == 10 and sorted(ds.labels.tolist()) == list(range(10))
    i = int(np.flatnonzero(ds.labels == 4)[0])
    np.testing.assert_array_equal(ds.images[i], images[4])
    assert len(load_dataset(str(tmp_path))) == 10


def test_image_folder_errors(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(DataError, match="named 0..9"):
        read_image_folder(tmp_path)
    (tmp_path / "cats").rmdir()
    with pytest.raises(DataError, match="no images found"):
        read_image_folder(tmp_path)
    (tmp_path / "1").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "1" / "a.png")
    Image.new("L", (32, 32)).save(tmp_path / "1" / "b.png")
    with pytest.raises(DataError, match="b.png: is 32x32"):
        read_image_folder(tmp_path)
    (tmp_path / "1" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="b.png: not a readable image"):
        read_image_folder(tmp_path)


def test_sklearn_digits_kept_8x8_and_rescaled():
    pytest.importorskip("sklearn", reason="scikit-learn extra not installed")
    from digitlab.data import load_sklearn_digits

    ds = load_sklearn_digits("all")
    assert ds.images.shape == (1797, 8, 8) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert len(load_sklearn_digits("train")) == 1000 and len(load_sklearn_digits("test")) == 797


def test_dataset_validation_and_indexing():
    images, labels = tiny_digits(10)
    ds = Dataset(images, labels, "t")
    assert len(ds[:3]) == 3 and len(ds[ds.labels > 4]) == 5 and len(ds[2]) == 1
    assert ds.class_counts().tolist() == [1] * 10
    with pytest.raises(DataError, match="uint8"):
        Dataset(images.astype(np.float32), labels)
    with pytest.raises(DataError, match="10 images but 9 labels"):
        Dataset(images, labels[:9])
    with pytest.raises(DataError, match="label -1"):
        Dataset(images, np.r_[labels[:9], -1])


def test_load_dataset_mnist_folder_and_unknown(tmp_path):
    folder = write_mnist_folder(tmp_path / "m")
    assert len(load_dataset(str(folder), "test")) == 10
    with pytest.raises(DataError, match="not a dataset name"):
        load_dataset(str(tmp_path / "missing"))
    weird = tmp_path / "x.bin"
    weird.write_bytes(b"1")
    with pytest.raises(DataError, match="unknown dataset format"):
        load_dataset(str(weird))
