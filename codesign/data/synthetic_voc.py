"""A synthetic object-detection data set written in real Pascal VOC format.

Light coloured shapes (`SHAPES`) on darker textured backgrounds (smooth colour noise, sometimes
stripes, pixel noise), 1..max_objects per image, sides from 8 % to 45 % of the image,
overlapping a little (at most 30 % of a box lies under another, so no object is hidden).
Objects smaller than 10 % of the image are marked difficult (the VOC evaluation ignores them),
so the difficult path is exercised too.
Deterministic: image i depends only on (seed, i), so a small set is a prefix of a larger one.

    python -m codesign.data.synthetic_voc OUT [--images 2000] [--size 128] [--seed 0]

writes OUT/JPEGImages/*.jpg, OUT/Annotations/*.xml, OUT/ImageSets/Main/{train,val,trainval,test}.txt
and OUT/classes.txt; `codesign.data.voc` reads it like any VOC directory.
"""
from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .classification import DatasetError

SHAPES = ("circle", "square", "triangle", "cross", "star")
SPLIT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))
MIN_SIZE, MAX_SIZE = 0.08, 0.45  # object size as a fraction of the image side
DIFFICULT_BELOW = 0.10
MAX_COVER = 0.3  # at most this fraction of an object's box may lie under another's
# background texture (pixel-value units) and the least L1 colour distance of an object from it
COARSE_NOISE, STRIPES, PIXEL_NOISE, MIN_CONTRAST = 12, 10, 4, 150
# Per-channel ranges of background base and object colours: objects are brighter than the
# background. With free colours (objects as dark as or darker than the ground) the small CPU
# models stayed on the "predict background" plateau for hundreds of steps.
BACKGROUND_RANGE, OBJECT_RANGE = (20, 110), (150, 255)
TEST_SET = {"num_images": 64, "size": 128}  # what the unit tests use
DEMO_SET = {"num_images": 2000, "size": 128}  # the demo / training preset


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box: how much of one box the other can hide."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise around a random base colour, maybe stripes, plus pixel noise."""
    from PIL import Image

    base = rng.uniform(*BACKGROUND_RANGE, 3)
    coarse = np.clip(base + rng.normal(0, COARSE_NOISE, (6, 6, 3)), 0, 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.float32)
    if rng.random() < 0.5:  # stripes in a random direction
        angle, period = rng.uniform(0, np.pi), rng.uniform(5, 20)
        yy, xx = np.mgrid[:size, :size]
        img = img + STRIPES * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)[..., None]
    return img + rng.normal(0, PIXEL_NOISE, img.shape)


def _polygon(shape: str, box: np.ndarray) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "star":  # 5 points; the bounding box of the star is the box (scaled to touch it)
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        px, py = radii * np.cos(angles), radii * np.sin(angles)
        px = x0 + (px - px.min()) / (px.max() - px.min()) * w
        py = y0 + (py - py.min()) / (py.max() - py.min()) * h
        return list(zip(px.tolist(), py.tolist()))
    t = 0.34  # cross: arms a third of the box wide
    ax, ay = w * (1 - t) / 2, h * (1 - t) / 2
    return [(x0 + ax, y0), (x1 - ax, y0), (x1 - ax, y0 + ay), (x1, y0 + ay), (x1, y1 - ay), (x1 - ax, y1 - ay),
            (x1 - ax, y1), (x0 + ax, y1), (x0 + ax, y1 - ay), (x0, y1 - ay), (x0, y0 + ay), (x0 + ax, y0 + ay)]


def _draw(draw, shape: str, box: np.ndarray, fill: tuple[int, ...], outline: tuple[int, ...]) -> None:
    # Pillow covers pixels x0..x1 inclusive: draw to x1 − 1 so the shape spans exactly [x0, x1).
    x0, y0, x1, y1 = box.tolist()
    if shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill, outline=outline)
    elif shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill, outline=outline)
    else:
        draw.polygon(_polygon(shape, np.array([x0, y0, x1 - 1, y1 - 1], float)), fill=fill, outline=outline)


def synthetic_image(seed: int, index: int, size: int, max_objects: int = 4,
                    object_sizes: tuple[float, float] = (MIN_SIZE, MAX_SIZE)):
    """Image `index` of the set: (H, W, 3) uint8 and its objects [(class, box [x0, y0, x1, y1]
    in continuous pixel coordinates, difficult)]; object sides are object_sizes × the image side."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index])
    background = _background(rng, size)
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    objects: list[tuple[int, np.ndarray, bool]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            side = rng.uniform(*object_sizes) * size
            w, h = (max(4, round(side * a)) for a in rng.uniform(0.75, 1.3, 2))
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            box = np.array([x0, y0, x0 + w, y0 + h], np.float32)
            if all(_cover(box, b) <= MAX_COVER for _, b, _ in objects):
                break
        else:
            continue  # no room: fewer objects
        cls = int(rng.integers(len(SHAPES)))
        local = background[y0:y0 + h, x0:x0 + w].reshape(-1, 3).mean(0)
        for _attempt in range(10):  # a colour that stands out from the background under it
            fill = rng.uniform(*OBJECT_RANGE, 3)
            if np.abs(fill - local).sum() > MIN_CONTRAST:
                break
        outline = tuple(int(v) for v in fill * 0.6)
        _draw(draw, SHAPES[cls], box, tuple(int(v) for v in fill), outline)
        objects.append((cls, box, min(w, h) < DIFFICULT_BELOW * size))
    return np.asarray(image), objects


def _annotation_xml(image_id: str, size: int, objects, class_names) -> ET.ElementTree:
    root = ET.Element("annotation")

    def sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
        node = ET.SubElement(parent, tag)
        if text is not None:
            node.text = str(text)
        return node

    sub(root, "folder", "synthetic")
    sub(root, "filename", f"{image_id}.jpg")
    source = sub(root, "source")
    sub(source, "database", "codesign synthetic shapes")
    size_node = sub(root, "size")
    for tag, v in (("width", size), ("height", size), ("depth", 3)):
        sub(size_node, tag, v)
    sub(root, "segmented", 0)
    for cls, box, difficult in objects:
        obj = sub(root, "object")
        sub(obj, "name", class_names[cls])
        sub(obj, "pose", "Unspecified")
        sub(obj, "truncated", 0)
        sub(obj, "difficult", int(difficult))
        bnd = sub(obj, "bndbox")
        # continuous [x0, x1) → VOC's 1-based inclusive pixel indices
        for tag, v in (("xmin", box[0] + 1), ("ymin", box[1] + 1), ("xmax", box[2]), ("ymax", box[3])):
            sub(bnd, tag, int(v))
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write_synthetic_voc(root: str | Path, num_images: int = TEST_SET["num_images"], size: int = TEST_SET["size"],
                        seed: int = 0, max_objects: int = 4, object_sizes: tuple[float, float] = (MIN_SIZE, MAX_SIZE),
                        quality: int = 90) -> Path:
    """Write the set to `root` (created; existing files of the same names are overwritten)."""
    from PIL import Image

    if num_images < len(SPLIT_FRACTIONS) or size < 32:
        raise DatasetError(f"need at least {len(SPLIT_FRACTIONS)} images of at least 32×32 pixels")
    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(SHAPES) + "\n")
    ids = [f"{i:06d}" for i in range(num_images)]
    for i, image_id in enumerate(ids):
        image, objects = synthetic_image(seed, i, size, max_objects, object_sizes)
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=quality)
        _annotation_xml(image_id, size, objects, SHAPES).write(root / "Annotations" / f"{image_id}.xml",
                                                               encoding="utf-8", xml_declaration=False)
    start, splits = 0, {}
    for k, (name, fraction) in enumerate(SPLIT_FRACTIONS):
        stop = num_images if k == len(SPLIT_FRACTIONS) - 1 else start + max(1, round(fraction * num_images))
        splits[name] = ids[start:stop]
        start = stop
    splits["trainval"] = splits["train"] + splits["val"]
    for name, members in splits.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{m}\n" for m in members))
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m codesign.data.synthetic_voc", description=__doc__.splitlines()[0])
    p.add_argument("out", help="directory to write")
    p.add_argument("--images", type=int, default=DEMO_SET["num_images"])
    p.add_argument("--size", type=int, default=DEMO_SET["size"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"wrote {write_synthetic_voc(args.out, args.images, args.size, args.seed)}")


__all__ = ["DEMO_SET", "SHAPES", "TEST_SET", "synthetic_image", "write_synthetic_voc"]

if __name__ == "__main__":
    main()
