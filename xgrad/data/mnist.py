"""IDX files (the MNIST format), and the MNIST / Fashion-MNIST datasets with a local cache."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xgrad.data.loader import Dataset

# IDX type codes -> big-endian element types
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in IDX file ``path`` (gzip-compressed or raw; detected from its bytes)."""
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            buf = f.read()
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot decompress this gzip file ({e}); delete it and "
                         f"download it again") from e
    if len(buf) < 4 or buf[:2] != b"\0\0" or buf[2] not in _IDX_TYPES or buf[3] == 0:
        raise ValueError(f"{path}: not an IDX file: magic number 0x{buf[:4].hex()}, expected "
                         f"0x0000 then a type code (08, 09, 0B, 0C, 0D or 0E) and the number "
                         f"of dimensions")
    dtype, ndim = np.dtype(_IDX_TYPES[buf[2]]), buf[3]
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise ValueError(f"{path}: truncated IDX header ({len(buf)} bytes for {ndim} dims)")
    shape = struct.unpack(f">{ndim}I", buf[4:head])
    n = int(np.prod(shape, dtype=np.int64))
    if len(buf) - head != n * dtype.itemsize:
        raise ValueError(f"{path}: IDX header says shape {shape} ({n * dtype.itemsize} bytes of "
                         f"data) but the file holds {len(buf) - head}: truncated or corrupt")
    a = np.frombuffer(buf, dtype=dtype, count=n, offset=head).reshape(shape)
    return a.astype(dtype.newbyteorder("="))


def data_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where dataset ``name`` lives: ``root`` if given, else ``$XGRAD_DATA/<name>``, else
    ``~/.cache/xgrad/<name>``."""
    if root is not None:
        return Path(root).expanduser()
    base = os.environ.get("XGRAD_DATA")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "xgrad") / name


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    """Fetch ``url`` into a temporary file beside ``dest``; rename it only once complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            while block := r.read(1 << 20):
                out.write(block)
        if md5 is not None and _md5(Path(tmp)) != md5:
            raise OSError(f"{url}: checksum mismatch (expected md5 {md5})")
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


class MNIST(Dataset):
    """The MNIST handwritten digits, read from IDX files in ``data_dir("mnist", root)``.

    Missing files are downloaded from ``mirrors`` when ``download`` is true and a mirror
    answers; otherwise the error says which files to put where (gzip or uncompressed).
    Images are float32 of shape (n, 1, 28, 28) (``flatten``: (n, 784)) scaled to [0, 1]
    (``normalize=True``), standardised with ``normalize=(mean, std)`` on that scale, or left as
    uint8 0-255 (``normalize=False``); labels are int64."""

    name = "mnist"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")
    # (file name, md5) of the images and the labels of each split
    resources = {
        "train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
        "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    }
    classes = tuple(str(i) for i in range(10))

    def __init__(self, train: bool = True, root: str | os.PathLike | None = None,
                 download: bool = True, normalize: bool | tuple[float, float] = True,
                 flatten: bool = False, transform: Callable | None = None,
                 target_transform: Callable | None = None, timeout: float = 30.0) -> None:
        self.root = data_dir(self.name, root)
        (img_name, img_md5), (lbl_name, lbl_md5) = self.resources["train" if train else "test"]
        img = self._fetch(img_name, img_md5, download, timeout)
        lbl = self._fetch(lbl_name, lbl_md5, download, timeout)
        images, labels = read_idx(img), read_idx(lbl)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {img} holds shape {images.shape} and "
                             f"{lbl} shape {labels.shape}; expected (n, rows, cols) images and "
                             f"(n,) labels")
        x = _normalize(images, normalize)
        x = x.reshape(len(x), -1) if flatten else x[:, None, :, :]
        super().__init__(x, labels.astype(np.int64), transform, target_transform)

    def _fetch(self, fname: str, md5: str | None, download: bool, timeout: float) -> Path:
        """The path of ``fname`` (or its uncompressed twin) in the cache, downloaded if needed."""
        raw = fname[:-3] if fname.endswith(".gz") else fname
        for p in (self.root / fname, self.root / raw):
            if p.is_file():
                return p
        errors = []
        if download:
            for base in self.mirrors:
                try:
                    _download(base + fname, self.root / fname, md5, timeout)
                    return self.root / fname
                # URLError, timeouts, refused connections, cut transfers, bad checksums
                except (OSError, ValueError, http.client.HTTPException) as e:
                    errors.append(f"{base + fname}: {e}")
        why = ("downloading failed:\n  " + "\n  ".join(errors)) if download else \
            "download=False"
        files = [name for pair in self.resources.values() for name, _ in pair]
        raise FileNotFoundError(
            f"{type(self).__name__}: {fname} (or {raw}) is not in {self.root} and {why}\n"
            f"Put the files {', '.join(files)} (gzip or uncompressed) in {self.root}, or pass "
            f"root= / set XGRAD_DATA to a directory holding a {self.name}/ folder with them.")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (same format as MNIST: 28x28 grey images, 10 classes)."""

    name = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")
    resources = {
        "train": (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                  ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")),
        "test": (("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
    }
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")


def _normalize(images: np.ndarray, normalize: Any) -> np.ndarray:
    if normalize is False:
        return images
    x = images.astype(np.float32) / 255.0
    if normalize is True:
        return x
    mean, std = normalize
    return (x - np.float32(mean)) / np.float32(std)
