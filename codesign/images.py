"""The one image policy: a model's input is uint8 HWC of exactly its input shape, or a clear refusal.

Every tool that feeds images to a model follows it: the golden model and the agreement report on
image files or an image folder, the board's `run` and `benchmark`. Resizing is opt-in
(`resize="nearest"|"bilinear"`, CLI `--resize`): a silently rescaled image changes the
prediction, so the default ("refuse") says what was given and what the model takes. Files are
converted to RGB (or to grayscale for a 1-channel model); an alpha channel is dropped, a palette
expanded. (Training data is the trainer's business: its folder loader fits each image to the
training resolution.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import CodesignError

RESIZE_MODES = ("refuse", "nearest", "bilinear")


class ImageError(CodesignError):
    """An image the model cannot take as given."""


def _source_index(n_out: int, n_in: int) -> np.ndarray:
    """Pixel-centre coordinates of the output samples in the input (half-pixel convention)."""
    return (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5


def resize_nearest(image: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = np.clip(np.floor(_source_index(h, image.shape[0]) + 0.5), 0, image.shape[0] - 1).astype(np.intp)
    cols = np.clip(np.floor(_source_index(w, image.shape[1]) + 0.5), 0, image.shape[1] - 1).astype(np.intp)
    return image[rows][:, cols]


def resize_bilinear(image: np.ndarray, h: int, w: int) -> np.ndarray:
    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.clip(_source_index(n_out, n_in), 0, n_in - 1)
        lo = np.floor(x).astype(np.intp)
        return lo, np.minimum(lo + 1, n_in - 1), (x - lo).astype(np.float32)

    r0, r1, fr = axis(h, image.shape[0])
    c0, c1, fc = axis(w, image.shape[1])
    img = image.astype(np.float32)
    top = img[r0] * (1 - fr)[:, None, None] + img[r1] * fr[:, None, None]
    out = top[:, c0] * (1 - fc)[None, :, None] + top[:, c1] * fc[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def prepare(image: np.ndarray, shape: tuple[int, int, int], resize: str = "refuse") -> np.ndarray:
    """`image` as the model's (H, W, C) uint8 input."""
    if resize not in RESIZE_MODES:
        raise ImageError(f"resize={resize!r}: use one of {', '.join(RESIZE_MODES)}")
    h, w, c = shape
    img = np.asarray(image)
    if img.ndim == 2 and c == 1:
        img = img[..., None]
    if img.ndim != 3:
        raise ImageError(f"image has shape {img.shape}; the model takes an H×W×C image of {h}×{w}×{c}")
    if img.shape[2] != c:
        raise ImageError(f"image has {img.shape[2]} channels, the model takes {c} (convert it, e.g. to RGB)")
    if img.dtype != np.uint8:
        if img.dtype.kind not in "iu" or img.size and (img.min() < 0 or img.max() > 255):
            raise ImageError(f"image pixels are {img.dtype}; the model takes uint8 values 0..255")
        img = img.astype(np.uint8)
    if img.shape[:2] != (h, w):
        if resize == "refuse":
            raise ImageError(f"image is {img.shape[0]}×{img.shape[1]}, the model takes {h}×{w}; "
                             "resize it or pass resize='nearest' or 'bilinear' (CLI: --resize)")
        img = (resize_nearest if resize == "nearest" else resize_bilinear)(img, h, w)
    return np.ascontiguousarray(img)


def load_image_file(path: str | Path, channels: int) -> np.ndarray:
    """An image file as uint8 HWC (RGB, or grayscale for a 1-channel model), at its own size."""
    from PIL import Image  # PIL ships with PYNQ images; only needed for files

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"cannot read image {path}: {reason}") from None


def load_images(paths: list[str | Path], shape: tuple[int, int, int], resize: str = "refuse") -> np.ndarray:
    """Image files → (N, H, W, C) uint8 model inputs under the policy above."""
    if resize not in RESIZE_MODES:  # before reading anything
        raise ImageError(f"resize={resize!r}: use one of {', '.join(RESIZE_MODES)}")
    out = np.zeros((len(paths), *shape), np.uint8)
    for i, path in enumerate(paths):
        image = load_image_file(path, shape[2])  # its errors name the file
        try:
            out[i] = prepare(image, shape, resize)
        except ImageError as e:
            raise ImageError(f"{path}: {e}") from None
    return out
