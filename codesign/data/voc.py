"""Object-detection data sets in Pascal VOC format.

    root/JPEGImages/<id>.jpg
    root/Annotations/<id>.xml          (VOC schema: size, object/name, object/difficult, object/bndbox)
    root/ImageSets/Main/<split>.txt    (one image id per line: train, val, trainval, test, ...)
    root/classes.txt                   (optional: one class name per line; default the 20 VOC classes)

Boxes are held in continuous pixel coordinates (x0, y0, x1, y1): VOC's 1-based inclusive pixel
indices become (xmin − 1, ymin − 1, xmax, ymax), so a box's width is xmax − xmin + 1 as in the
VOC devkit, and IoU needs no "+1". Boxes are clipped to the image.

Bad input — a missing image or annotation, malformed XML, an unknown class name, an annotation
without objects, a degenerate box — raises a `DatasetError` naming the file. With
`on_error="skip"` the image is skipped instead and counted in `VOCDataset.skipped` (one warning
sums them up). Images without objects are not supported: CenterNet training on VOC never has them.
"""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CodesignError
from ..images import ImageError, load_image_file
from ..readers import read_text, read_xml
from .classification import DatasetError, PerImageData
from .transforms import resize_exact

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
ON_ERROR = ("raise", "skip")


@dataclass
class Annotation:
    """One image's objects; boxes (K, 4) float32 in the image's continuous pixel coordinates."""

    image_id: str
    image_path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray  # (K,) int64 indices into the class list
    difficult: np.ndarray  # (K,) bool


class AnnotationError(DatasetError):
    """One image of a VOC split is unusable; `reason` is its category (the skip count's key)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_class_names(root: str | Path) -> list[str]:
    """root/classes.txt (one name per line, blank lines ignored) if present, else the VOC classes."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        return list(VOC_CLASSES)
    names = [line.strip() for line in read_text(path, "class list", DatasetError).splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path} lists no classes")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path} lists a class twice")
    return names


def _text(node: ET.Element, tag: str, path: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise AnnotationError(f"{path}: <{node.tag}> has no <{tag}>", "missing field")
    return found.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    text = _text(node, tag, path)
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{path}: <{tag}> is {text!r}, not a number", "bad number") from None


def parse_annotation(xml_path: Path, image_path: Path, class_names: list[str]) -> Annotation:
    """One VOC XML file → Annotation; AnnotationError (a DatasetError) on anything malformed."""
    if not Path(xml_path).is_file():
        raise AnnotationError(f"annotation {xml_path} does not exist", "missing annotation")
    try:
        root = read_xml(xml_path, "annotation")
    except CodesignError as e:
        raise AnnotationError(str(e), "malformed XML") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{xml_path}: root element is <{root.tag}>, not <annotation>", "malformed XML")
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{xml_path}: no <size>", "missing field")
    width, height = int(_number(size, "width", xml_path)), int(_number(size, "height", xml_path))
    if width <= 0 or height <= 0:
        raise AnnotationError(f"{xml_path}: image size {width}×{height} is empty", "bad size")
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = _text(obj, "name", xml_path)
        if name not in class_names:
            raise AnnotationError(f"{xml_path}: unknown class {name!r} (classes: {', '.join(class_names)})",
                                  "unknown class")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError(f"{xml_path}: object {name!r} has no <bndbox>", "missing field")
        x0, y0, x1, y1 = (_number(bndbox, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax"))
        box = np.clip([x0 - 1, y0 - 1, x1, y1], 0, [width, height, width, height])
        if box[2] <= box[0] or box[3] <= box[1]:
            raise AnnotationError(f"{xml_path}: object {name!r} has an empty box {[x0, y0, x1, y1]}", "bad box")
        diff = obj.find("difficult")
        boxes.append(box)
        labels.append(class_names.index(name))
        difficult.append(diff is not None and (diff.text or "0").strip() not in ("0", ""))
    if not boxes:
        raise AnnotationError(f"{xml_path}: empty annotation (no <object>)", "empty annotation")
    return Annotation(xml_path.stem, image_path, width, height, np.asarray(boxes, np.float32),
                      np.asarray(labels, np.int64), np.asarray(difficult, bool))


def read_image(path: Path) -> np.ndarray:
    """An image file → (H, W, 3) uint8 RGB (codesign/images.py reads it)."""
    if not Path(path).is_file():
        raise AnnotationError(f"image {path} does not exist", "missing image")
    try:
        return load_image_file(path, 3)
    except ImageError as e:
        raise AnnotationError(str(e), "unreadable image") from None


class VOCDataset:
    """The annotations of one split of a VOC-format directory (images are read on demand)."""

    def __init__(self, root: str | Path, split: str = "train", on_error: str = "raise"):
        if on_error not in ON_ERROR:
            raise DatasetError(f"on_error={on_error!r} (use one of: {', '.join(ON_ERROR)})")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"VOC directory {self.root} does not exist")
        split_dir = self.root / "ImageSets" / "Main"
        split_file = split_dir / f"{split}.txt"
        if not split_file.is_file():
            known = sorted(p.stem for p in split_dir.glob("*.txt") if "_" not in p.stem) if split_dir.is_dir() else []
            raise DatasetError(f"{self.root} has no split {split!r} ({split_file} missing; "
                               f"splits found: {', '.join(known) or 'none'})")
        self.split, self.on_error = split, on_error
        self.class_names = read_class_names(self.root)
        ids = [line.split()[0] for line in read_text(split_file, "split list", DatasetError).splitlines()
               if line.strip()]
        if not ids:
            raise DatasetError(f"{split_file} lists no images")
        self.annotations: list[Annotation] = []
        self.skipped: Counter[str] = Counter()
        for image_id in ids:
            try:
                image_path = self.root / "JPEGImages" / f"{image_id}.jpg"
                if not image_path.is_file():
                    raise AnnotationError(f"image {image_path} does not exist", "missing image")
                self.annotations.append(parse_annotation(self.root / "Annotations" / f"{image_id}.xml",
                                                         image_path, self.class_names))
            except AnnotationError as e:
                self.skip(e)
        self.warn_skipped(len(ids))
        if not self.annotations:
            raise DatasetError(f"{self.root} split {split}: no usable images")

    def skip(self, error: AnnotationError) -> None:
        """Raise `error`, or (on_error="skip") count it."""
        if self.on_error == "raise":
            raise error
        self.skipped[error.reason] += 1

    def warn_skipped(self, total: int) -> None:
        if self.skipped:
            warnings.warn(f"{self.root} split {self.split}: skipped {sum(self.skipped.values())} of {total} images "
                          f"({', '.join(f'{n}× {why}' for why, n in self.skipped.most_common())})", stacklevel=3)

    def __len__(self) -> int:
        return len(self.annotations)

    def image(self, i: int) -> np.ndarray:
        """Image i at its own size, (H, W, 3) uint8."""
        ann = self.annotations[i]
        image = read_image(ann.image_path)
        if image.shape[:2] != (ann.height, ann.width):
            raise AnnotationError(f"{ann.image_path} is {image.shape[1]}×{image.shape[0]} but its annotation "
                                  f"says {ann.width}×{ann.height}", "size mismatch")
        return image


@dataclass
class DetectionSet(PerImageData):
    """A detection split in memory, resized to the network input.

    images: (N, R, R, 3) uint8; boxes[i]: (K_i, 4) float32 in input pixels (continuous
    coordinates); labels[i]: (K_i,) int64; difficult[i]: (K_i,) bool. The resize does not keep
    the aspect ratio; IoU is invariant to it (both axes scale independently).
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    difficult: list[np.ndarray]
    class_names: list[str]
    ids: list[str]


def load_detection_set(root: str | Path, split: str, resolution: int, on_error: str = "raise",
                       limit: int | None = None) -> DetectionSet:
    """A split of a VOC directory, every image resized (bilinear) to resolution × resolution,
    boxes scaled with it; `limit` reads only the first n images of the split. Unreadable images
    are errors or (on_error="skip") skipped, like bad annotations."""
    voc = VOCDataset(root, split, on_error)
    n = len(voc) if limit is None else min(limit, len(voc))
    images, anns, boxes = [], [], []
    skipped_before = sum(voc.skipped.values())
    for i, ann in enumerate(voc.annotations[:n]):
        try:
            image = voc.image(i)
        except AnnotationError as e:
            voc.skip(e)
            continue
        images.append(resize_exact(image, resolution))
        boxes.append(ann.boxes * np.array([resolution / ann.width, resolution / ann.height] * 2, np.float32))
        anns.append(ann)
    if sum(voc.skipped.values()) > skipped_before:
        voc.warn_skipped(len(voc) + skipped_before)
    if not images:
        raise DatasetError(f"{voc.root} split {split}: no readable images")
    return DetectionSet(np.stack(images), boxes, [a.labels for a in anns], [a.difficult for a in anns],
                        voc.class_names, [a.image_id for a in anns])


__all__ = ["Annotation", "AnnotationError", "DetectionSet", "VOCDataset", "VOC_CLASSES", "load_detection_set",
           "parse_annotation", "read_class_names", "read_image"]
