"""The inputs of a batch run, listed lazily: every image becomes a `Source`, which names itself
(the ``source`` and ``item`` columns of its row) and gives its encoded bytes, or for a dataset item
its array, when the process reading its partition asks (`Reader`).

| input | gives |
|---|---|
| an image file | one `File` |
| a folder | every image and archive below it, walked in sorted order; hidden names (``.x``) skipped |
| a glob pattern (``scans/**/*.png``) | what its sorted matches give |
| a tar archive (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) | one `TarMember` per image member; other members (a WebDataset shard's ``.cls``, ``.json``) are skipped |
| a zip archive | one `ZipMember` per image member |
| a dataset: ``mnist``, ``digits``, an MNIST folder, an IDX images file, a Keras ``.npz``, a ``.csv`` | one `DatasetItem` per image |

The listing is deterministic (sorted folders and matches, archives in their stored order), so the
same inputs always fall into the same partitions: that is what lets a run resume. It is lazy: a
folder's names are held while it is walked, an archive's members are read one header at a time,
never the whole list of inputs. A dataset is held whole, as `load_dataset` reads it.

What cannot be read never stops the listing: a missing path, a pattern matching nothing, an input
holding no images, a corrupt archive, a member that is a link, too large or named outside the
archive, become `Unreadable` sources, each one row with its error.
"""

from __future__ import annotations

import bz2
import functools
import glob
import gzip
import io
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Union

import numpy as np

from ..data import DATASETS, find_mnist_in, has_splits, load_dataset, read_idx
from ..data.formats import IMAGE_SUFFIXES as _DATASET_IMAGE_SUFFIXES
from ..errors import DataError, DigitlabError, ImageError
from ..vision import MAX_BYTES

# What a folder walk or an archive takes as images: the suffixes of the formats digitlab.vision opens.
IMAGE_SUFFIXES = (*_DATASET_IMAGE_SUFFIXES, ".tif", ".tiff", ".pbm", ".pgm", ".ppm", ".pnm")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
DATASET_SUFFIXES = (".npz", ".csv", ".csv.gz")


class Source:
    """One input image. ``source`` and ``item`` name it in its row: the file, archive or dataset,
    and the archive member or the index in the dataset ("" for a plain file). `load` gives its
    encoded bytes, or a uint8 array for a dataset item; it raises `DigitlabError` (the row's
    error) when that cannot be done."""

    __slots__ = ()

    def load(self, reader: "Reader") -> Union[bytes, np.ndarray]:
        raise NotImplementedError

    def __str__(self) -> str:
        return readable(f"{self.source}[{self.item}]" if self.item else self.source)


@dataclass(frozen=True, slots=True)
class File(Source):
    """An image file."""

    source: str

    @property
    def item(self) -> str:
        return ""

    def load(self, reader: "Reader") -> bytes:
        return reader.file(self.source)


@dataclass(frozen=True, slots=True)
class TarMember(Source):
    """A member of a tar archive: ``size`` bytes at ``offset`` of the (decompressed) archive."""

    source: str
    item: str
    offset: int
    size: int

    def load(self, reader: "Reader") -> bytes:
        stream = reader.tar(self.source)
        try:
            stream.seek(self.offset)
            data = stream.read(self.size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise ImageError(f"unreadable archive data ({e})") from None
        if len(data) != self.size:
            raise ImageError(f"truncated: the archive ends {self.size - len(data)} bytes into this member")
        return data


@dataclass(frozen=True, slots=True)
class ZipMember(Source):
    """A member of a zip archive, the ``position``-th entry of its directory (names may repeat)."""

    source: str
    item: str
    position: int

    def load(self, reader: "Reader") -> bytes:
        archive = reader.zip(self.source)
        info = archive.infolist()[self.position]
        try:
            with archive.open(info) as f:
                data = f.read(MAX_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as e:
            raise ImageError(f"unreadable archive member ({e})") from None
        if len(data) > MAX_BYTES:
            raise ImageError(too_big(info.file_size))
        return data


@dataclass(frozen=True, slots=True)
class DatasetItem(Source):
    """Image ``index`` of a dataset that `load_dataset` reads (``split`` None for a dataset without
    splits). Its array is given as it is: dataset images are MNIST-like already."""

    spec: str
    split: str | None
    index: int
    data_dir: str | None = None

    @property
    def source(self) -> str:
        return self.spec if self.split is None else f"{self.spec}:{self.split}"

    @property
    def item(self) -> str:
        return str(self.index)

    def load(self, reader: "Reader") -> np.ndarray:
        images = dataset_images(self.spec, self.split, self.data_dir, reader.root)
        if self.index >= len(images):
            raise DataError(f"the dataset has {len(images)} images; no image {self.index}")
        return images[self.index]


@dataclass(frozen=True, slots=True)
class Unreadable(Source):
    """An input found to be unusable while listing: its row carries ``error``."""

    source: str
    item: str
    error: str

    def load(self, reader: "Reader"):
        raise DigitlabError(self.error)


# ------------------------------------------------------------------------------------ listing


def iter_sources(inputs: Iterable, split: str = "test", data_dir: str | None = None,
                 root: str | None = None) -> Iterator[Source]:
    """The `Source` of every image in ``inputs``, lazily, in a deterministic order.

    ``inputs``: paths, glob patterns and dataset names as the CLI takes them (str or PathLike),
    and `Source` objects, which pass as they are. ``split``: the part of a dataset that has
    splits (mnist, digits, an MNIST folder, a Keras .npz). ``data_dir``: where ``mnist`` is looked
    for. ``root``: the folder relative paths are taken from (default: the current one); names stay
    as given.
    """
    lister = _Lister(split, data_dir, root)
    for given in inputs:
        if isinstance(given, Source):
            yield given
        else:
            yield from lister.expand(os.fspath(given))


def count_sources(inputs: Iterable, split: str = "test", data_dir: str | None = None) -> int:
    """How many sources `iter_sources` gives (it lists them, holding none)."""
    return sum(1 for _ in iter_sources(inputs, split, data_dir))


class _Lister:
    def __init__(self, split: str, data_dir, root):
        self.split, self.data_dir, self.root = split, data_dir, root

    def expand(self, given: str) -> Iterator[Source]:
        path = _on_disk(given, self.root)
        if given in DATASETS and not os.path.exists(path):
            yield from self.dataset(given)
        elif os.path.isdir(path):
            if find_mnist_in(Path(path)):
                yield from self.dataset(given)
            else:
                yield from _nonempty(given, self.folder(given), "holds no images")
        elif os.path.lexists(path):
            yield from self.file(given, named=True)
        elif glob.has_magic(given):
            yield from _nonempty(given, self.matches(given), "no file matches this pattern")
        else:
            yield Unreadable(given, "", "no such file or folder")

    def matches(self, pattern: str) -> Iterator[Source]:
        root = self.root if self.root and not os.path.isabs(pattern) else None
        for name in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
            if os.path.isdir(_on_disk(name, self.root)):
                yield from self.folder(name)
            else:
                yield from self.file(name, named=False)

    def folder(self, folder: str) -> Iterator[Source]:
        """Images and archives below ``folder``, sorted by name at each level; hidden names are
        skipped and links to folders not followed."""
        try:
            with os.scandir(_on_disk(folder, self.root)) as entries:
                names = sorted((e.name, e.is_dir(follow_symlinks=False))
                               for e in entries if not e.name.startswith("."))
        except OSError as e:
            yield Unreadable(folder, "", f"cannot list this folder ({e.strerror or e})")
            return
        for name, is_dir in names:
            path = os.path.join(folder, name)
            yield from self.folder(path) if is_dir else self.file(path, named=False)

    def file(self, path: str, named: bool) -> Iterator[Source]:
        """What one file gives: an archive's members; a dataset's images (only when ``named``: a
        folder walk takes images and archives); or the file as one image (in a walk, only files
        with an image suffix)."""
        lower = path.lower()
        if lower.endswith(TAR_SUFFIXES):
            yield from _nonempty(path, _tar(path, self.root), "holds no images")
        elif lower.endswith(ZIP_SUFFIXES):
            yield from _nonempty(path, _zip(path, self.root), "holds no images")
        elif named and (lower.endswith(DATASET_SUFFIXES) or "-ubyte" in os.path.basename(lower)):
            yield from self.dataset(path)
        elif named or lower.endswith(IMAGE_SUFFIXES):
            yield File(path)

    def dataset(self, spec: str) -> Iterator[Source]:
        split = self.split if has_splits(spec if spec in DATASETS else _on_disk(spec, self.root)) else None
        try:
            count = len(dataset_images(spec, split, self.data_dir, self.root))
        except DigitlabError as e:
            yield Unreadable(spec if split is None else f"{spec}:{split}", "", str(e))
            return
        for index in range(count):
            yield DatasetItem(spec, split, index, self.data_dir)


def _nonempty(given: str, sources: Iterator[Source], why: str) -> Iterator[Source]:
    """``sources``, or one `Unreadable` saying ``why`` when there are none: every input named
    gets at least one row."""
    empty = True
    for source in sources:
        empty = False
        yield source
    if empty:
        yield Unreadable(given, "", why)


def _member_problem(name: str) -> str | None:
    """Why an archive member's name is refused, if it is: absolute, or reaching outside the
    archive (``..``). Nothing is ever extracted, but such a name is a sign of a hostile archive."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in name.replace("\\", "/").split("/"):
        return "unsafe member name (absolute, or leading outside the archive)"
    return None


_DRIVE = re.compile(r"[A-Za-z]:")


def _tar(archive: str, root) -> Iterator[Source]:
    try:
        stream = open_tar_stream(_on_disk(archive, root))
    except OSError as e:
        yield Unreadable(archive, "", f"cannot open this archive ({e.strerror or e})")
        return
    count = 0
    with stream:
        try:
            for name, kind, size, offset in tar_members(stream):
                if kind == "dir" or not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                count += 1
                problem = _member_problem(name) or {
                    "link": "a link, not a file", "sparse": "a sparse member (not read)",
                    "other": "not a regular file"}.get(kind)
                if problem is None and size > MAX_BYTES:
                    problem = too_big(size)
                if problem:
                    yield Unreadable(archive, name, problem)
                else:
                    yield TarMember(archive, name, offset, size)
        except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            where = f" after {count} images" if count else ""
            yield Unreadable(archive, "", f"not a readable tar archive{where}, truncated or corrupt ({e})")


_BLOCK = 512
_END = bytes(_BLOCK)
_USTAR = (b"ustar\x0000", b"ustar  \x00")  # POSIX, GNU


def tar_members(stream: BinaryIO) -> Iterator[tuple[str, str, int, int]]:
    """(name, kind, size, data offset) of each member of the tar archive in ``stream``, kind one of
    "file", "dir", "link", "sparse", "other"; one header at a time, data skipped.

    A plain ustar or GNU header of a file or folder, with a valid checksum, is read here: four
    fields, about a tenth of what `tarfile` spends on it, which matters when one process lists the
    members of millions of images. Any other header (pax and GNU extensions such as long names,
    links, sparse files, a bad checksum) is read by `tarfile` itself, from its offset. Raises
    `tarfile.ReadError` where `tarfile` would (no archive, unexpected end of data)."""
    offset = 0
    while True:
        if offset:  # the previous member's data must all be there, as tarfile checks
            stream.seek(offset - 1)
            if not stream.read(1):
                raise tarfile.ReadError("unexpected end of data")
        block = stream.read(_BLOCK)
        if block == _END or (offset and not block):
            return
        plain = _plain_header(block) if len(block) == _BLOCK else None
        if plain is None:
            stream.seek(offset)
            tar = tarfile.TarFile(fileobj=stream, mode="r")  # reads the member here as its first
            info = tar.next()
            if info is None:
                return
            kind = ("sparse" if info.issparse() else "file" if info.isreg() else "dir" if info.isdir()
                    else "link" if info.issym() or info.islnk() else "other")
            yield info.name, kind, info.size, info.offset_data
            offset = tar.offset
            stream.seek(offset)
            continue
        name, kind, size = plain
        yield name, kind, size, offset + _BLOCK
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
        stream.seek(offset)


def _plain_header(block: bytes) -> tuple[str, str, int] | None:
    """(name, "file" or "dir", size) of a plain ustar/GNU header, or None for `tarfile` to read."""
    magic, kind = block[257:265], block[156:157]
    if magic not in _USTAR or kind not in (b"0", b"\x00", b"5") or block[124] & 0x80:  # 0x80: base-256 size
        return None
    try:
        stored = int(block[148:156].split(b"\x00", 1)[0].strip() or b"0", 8)
        size = int(block[124:136].split(b"\x00", 1)[0].strip() or b"0", 8)
    except ValueError:
        return None
    if stored != sum(block) - sum(block[148:156]) + 8 * 32:  # the checksum counts its field as spaces
        return None
    name = block[:100].split(b"\x00", 1)[0]
    if magic == _USTAR[0] and block[345]:  # POSIX: a prefix for names over 100 bytes
        name = block[345:500].split(b"\x00", 1)[0] + b"/" + name
    text = name.decode("utf-8", "surrogateescape")
    if kind == b"5" or text.endswith("/"):
        return text.rstrip("/"), "dir", size
    return text, "file", size


def _zip(archive: str, root) -> Iterator[Source]:
    try:
        zf = zipfile.ZipFile(_on_disk(archive, root))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        yield Unreadable(archive, "", f"not a readable zip archive ({e})")
        return
    with zf:  # Python's zipfile reads the whole directory: tar shards suit millions of members
        for position, info in enumerate(zf.infolist()):
            name = info.filename
            if info.is_dir() or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            problem = _member_problem(name)
            if problem is None and stat.S_ISLNK(info.external_attr >> 16):
                problem = "a link, not a file"
            if problem is None and info.flag_bits & 0x1:
                problem = "an encrypted member (not read)"
            if problem is None and info.file_size > MAX_BYTES:
                problem = too_big(info.file_size)
            yield Unreadable(archive, name, problem) if problem else ZipMember(archive, name, position)


# ------------------------------------------------------------------------------------ reading


class Reader:
    """What the sources of one partition are read through: each archive is opened once and
    closed with the reader (use it as a context manager). ``root``: the folder relative paths are
    taken from (the driver's working folder, for workers started elsewhere)."""

    def __init__(self, root: str | None = None):
        self.root = root
        self._open: dict[tuple[str, str], object] = {}

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._open.values():
            if not isinstance(handle, Exception):
                handle.close()
        self._open.clear()

    def file(self, path: str) -> bytes:
        """A file's bytes, at most `MAX_BYTES`; `ImageError` otherwise."""
        full = _on_disk(path, self.root)
        try:
            with open(full, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_BYTES:
                    raise ImageError(too_big(size))
                return f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            raise ImageError("no such file") from None
        except IsADirectoryError:
            raise ImageError("is a folder, not an image") from None
        except PermissionError:
            raise ImageError("permission denied") from None
        except OSError as e:
            raise ImageError(f"cannot read this file ({e.strerror or e})") from None

    def tar(self, archive: str) -> BinaryIO:
        return self._get("tar", archive, open_tar_stream)

    def zip(self, archive: str) -> zipfile.ZipFile:
        return self._get("zip", archive, zipfile.ZipFile)

    def _get(self, kind: str, archive: str, opener):
        key = (kind, archive)
        if key not in self._open:
            try:
                self._open[key] = opener(_on_disk(archive, self.root))
            except (OSError, zipfile.BadZipFile, EOFError, ValueError) as e:
                self._open[key] = ImageError(f"cannot open the archive ({getattr(e, 'strerror', None) or e})")
        handle = self._open[key]
        if isinstance(handle, Exception):
            raise handle
        return handle


def open_tar_stream(path: str) -> BinaryIO:
    """A tar archive's bytes as a seekable stream, decompressed if it is gzip, bzip2 or xz (told
    by its first bytes). Seeking forward in a compressed one decompresses up to that point, so a
    partition reads its members in order, in one pass."""
    raw = open(path, "rb")  # noqa: SIM115 - the caller closes the stream, which closes this
    try:
        magic = raw.read(6)
        raw.seek(0)
        for prefix, opener in _COMPRESSED:
            if magic.startswith(prefix):
                return _Both(opener(raw), raw)
    except BaseException:
        raw.close()
        raise
    return raw


_COMPRESSED = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


class _Both(io.BufferedIOBase):
    """A decompressing stream that also closes the file under it."""

    def __init__(self, stream, raw):
        self.stream, self.raw = stream, raw

    def read(self, size=-1):
        return self.stream.read(size)

    def seek(self, offset, whence=0):
        return self.stream.seek(offset, whence)

    def tell(self):
        return self.stream.tell()

    def seekable(self):
        return True

    def readable(self):
        return True

    def close(self):
        try:
            self.stream.close()
        finally:
            self.raw.close()
        super().close()


def dataset_images(spec: str, split: str | None, data_dir: str | None = None, root: str | None = None) -> np.ndarray:
    """The uint8 N x H x W images of a dataset, loaded once per process (kept while its file is
    unchanged): every partition of it a worker reads shares one copy."""
    path = _on_disk(spec, root)
    try:
        st = os.stat(path)
        stamp = (path, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (spec, None, None)
    return _dataset_images(stamp, split, data_dir)


@functools.lru_cache(maxsize=2)
def _dataset_images(stamp: tuple, split: str | None, data_dir: str | None) -> np.ndarray:
    spec = stamp[0]
    if "-ubyte" in os.path.basename(spec).lower() and os.path.isfile(spec):
        images = read_idx(spec)  # an IDX images file on its own: no labels needed to predict
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{spec}: expected uint8 images N x H x W, got {images.dtype} {images.shape}")
        return images
    return load_dataset(spec, split or "test", data_dir).images


def readable(name: str) -> str:
    """``name`` as valid text: bytes that were not UTF-8 in a file or member name (kept by Python
    as surrogates) are shown as ``\\xNN``, so every output format can hold the name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def too_big(size: int) -> str:
    return f"image file is over the limit of {MAX_BYTES // 2**20} MiB ({size / 2**20:.1f} MiB)"


def _on_disk(path: str, root: str | None) -> str:
    """Where ``path`` is for this process: taken from ``root`` when relative."""
    path = os.path.expanduser(path)
    return os.path.join(root, path) if root and not os.path.isabs(path) else path
