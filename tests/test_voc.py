"""Pascal VOC loader and the synthetic VOC generator."""
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from codesign.data import DatasetError
from codesign.data.synthetic_voc import SHAPES, synthetic_image, write_synthetic_voc
from codesign.data.voc import VOC_CLASSES, VOCDataset, load_detection_set, read_class_names

N_IMAGES, SIZE = 64, 128


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("voc") / "synthetic", N_IMAGES, SIZE, seed=3)


@pytest.fixture
def voc_copy(voc_root, tmp_path):
    """A copy to break."""
    return shutil.copytree(voc_root, tmp_path / "broken")


def check_voc_schema(xml_path, class_names, image_size):
    """The VOC annotation schema as the devkit reads it."""
    root = ET.parse(xml_path).getroot()
    assert root.tag == "annotation"
    assert root.findtext("filename") == xml_path.stem + ".jpg"
    size = root.find("size")
    assert [int(size.findtext(t)) for t in ("width", "height", "depth")] == [image_size, image_size, 3]
    objects = root.findall("object")
    assert objects
    for obj in objects:
        assert obj.findtext("name") in class_names
        assert obj.findtext("difficult") in ("0", "1") and obj.findtext("truncated") in ("0", "1")
        box = [int(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
        assert 1 <= box[0] <= box[2] <= image_size and 1 <= box[1] <= box[3] <= image_size


def test_synthetic_set_is_valid_voc(voc_root):
    class_names = read_class_names(voc_root)
    assert class_names == list(SHAPES)
    splits = {s: (voc_root / "ImageSets/Main" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    all_ids = sorted(p.stem for p in (voc_root / "JPEGImages").glob("*.jpg"))
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == all_ids and len(all_ids) == N_IMAGES
    assert (voc_root / "ImageSets/Main/trainval.txt").read_text().split() == splits["train"] + splits["val"]
    for image_id in all_ids:
        check_voc_schema(voc_root / "Annotations" / f"{image_id}.xml", class_names, SIZE)
        with Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg") as im:
            assert im.format == "JPEG" and im.size == (SIZE, SIZE) and im.mode == "RGB"


def test_synthetic_set_parses_back(voc_root):
    total = 0
    for split in ("train", "val", "test"):
        voc = VOCDataset(voc_root, split)
        assert not voc.skipped
        total += len(voc)
        for ann in voc.annotations:
            assert ann.boxes.dtype == np.float32 and ann.boxes.shape == (len(ann.labels), 4)
            assert (ann.boxes[:, 2] > ann.boxes[:, 0]).all() and (ann.boxes[:, 3] > ann.boxes[:, 1]).all()
            assert set(ann.labels.tolist()) <= set(range(len(SHAPES)))
    assert total == N_IMAGES
    labels = np.concatenate([a.labels for a in VOCDataset(voc_root, "trainval").annotations])
    difficult = np.concatenate([a.difficult for a in VOCDataset(voc_root, "trainval").annotations])
    assert len(np.unique(labels)) == len(SHAPES) and difficult.any() and not difficult.all()


def test_boxes_are_tight_around_the_shapes():
    # a square's fill and outline cover exactly its box: the pixels just outside differ from its edge
    for index in range(40):
        image, objects = synthetic_image(seed=0, index=index, size=SIZE, max_objects=1)
        (cls, box, _), = objects
        if SHAPES[cls] != "square":
            continue
        x0, y0, x1, y1 = box.astype(int)
        edge = image[y0:y1, x0].astype(int)
        assert np.abs(np.diff(edge, axis=0)).max() <= 30  # one solid outline colour (JPEG not involved)
        if x0 > 0:
            assert np.abs(image[y0:y1, x0 - 1].astype(int) - edge).max() > 30
        return
    pytest.fail("no square among the first 40 images")


def test_generator_is_deterministic(tmp_path, voc_root):
    again = write_synthetic_voc(tmp_path / "again", 8, SIZE, seed=3)
    for image_id in ("000000", "000007"):
        assert (again / f"Annotations/{image_id}.xml").read_bytes() == \
               (voc_root / f"Annotations/{image_id}.xml").read_bytes()
        jpeg = f"JPEGImages/{image_id}.jpg"
        assert (again / jpeg).read_bytes() == (voc_root / jpeg).read_bytes()
    other, _ = synthetic_image(seed=4, index=0, size=SIZE)
    assert not np.array_equal(other, synthetic_image(seed=3, index=0, size=SIZE)[0])


def test_load_detection_set_resizes_boxes(voc_root):
    full = load_detection_set(voc_root, "train", SIZE)
    half = load_detection_set(voc_root, "train", SIZE // 2)
    assert half.images.shape == (len(full), SIZE // 2, SIZE // 2, 3) and half.images.dtype == np.uint8
    for a, b in zip(full.boxes, half.boxes):
        np.testing.assert_allclose(b, a / 2)
    assert full.take(5).images.shape[0] == 5 and full.ids[:5] == full.take(5).ids
    assert len(load_detection_set(voc_root, "train", SIZE, limit=3)) == 3


def test_voc_classes_by_default(voc_copy):
    (voc_copy / "classes.txt").unlink()
    assert read_class_names(voc_copy) == list(VOC_CLASSES) and len(VOC_CLASSES) == 20
    with pytest.raises(DatasetError, match="unknown class '[a-z]+'"):  # shapes are not VOC classes
        VOCDataset(voc_copy, "train")


def test_difficult_flag_and_voc_coordinates(voc_copy):
    xml = voc_copy / "Annotations/000000.xml"
    xml.write_text("<annotation><size><width>100</width><height>50</height><depth>3</depth></size>"
                   "<object><name>square</name><difficult>1</difficult>"
                   "<bndbox><xmin>1</xmin><ymin>11</ymin><xmax>10</xmax><ymax>60</ymax></bndbox></object>"
                   "<object><name>star</name>"
                   "<bndbox><xmin>5.0</xmin><ymin>5</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></object></annotation>")
    split = voc_copy / "ImageSets/Main/one.txt"
    split.write_text("000000\n")
    ann = VOCDataset(voc_copy, "one").annotations[0]
    np.testing.assert_array_equal(ann.boxes, [[0, 10, 10, 50], [4, 4, 8, 9]])  # 1-based inclusive → continuous, clipped
    assert ann.difficult.tolist() == [True, False]
    assert ann.labels.tolist() == [SHAPES.index("square"), SHAPES.index("star")]
    with pytest.raises(DatasetError, match="is 128×128 but its annotation says 100×50"):
        VOCDataset(voc_copy, "one").image(0)


def first_train_id(root):
    return (root / "ImageSets/Main/train.txt").read_text().split()[0]


@pytest.mark.parametrize("breakage, message, reason", [
    (lambda p: p.write_text("<annotation><size>"), "not well-formed XML", "malformed XML"),
    (lambda p: p.write_text(""), "not well-formed XML", "malformed XML"),
    (lambda p: p.write_text(re.sub("<name>[a-z]+</name>", "<name>hexagon</name>", p.read_text(), count=1)),
     "unknown class 'hexagon'",
     "unknown class"),
    (lambda p: p.write_text("<annotation><size><width>128</width><height>128</height></size></annotation>"),
     "empty annotation", "empty annotation"),
    (lambda p: p.parent.parent.joinpath("JPEGImages", p.stem + ".jpg").unlink(),
     "does not exist", "missing image"),
    (lambda p: p.unlink(), "annotation .* does not exist", "missing annotation"),
    (lambda p: p.write_text(p.read_text().replace("<xmax>", "<xmax>x", 1)), "not a number", "bad number"),
])
def test_bad_input_raises_or_is_skipped(voc_copy, breakage, message, reason):
    image_id = first_train_id(voc_copy)
    breakage(voc_copy / "Annotations" / f"{image_id}.xml")
    with pytest.raises(DatasetError, match=message):
        VOCDataset(voc_copy, "train")
    with pytest.warns(UserWarning, match="skipped 1 of"):
        voc = VOCDataset(voc_copy, "train", on_error="skip")
    assert voc.skipped == {reason: 1}
    assert image_id not in [a.image_id for a in voc.annotations]


def test_unreadable_image_is_skipped_when_loading(voc_copy):
    image_id = first_train_id(voc_copy)
    (voc_copy / "JPEGImages" / f"{image_id}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot read image"):
        load_detection_set(voc_copy, "train", 64)
    with pytest.warns(UserWarning, match="unreadable image"):
        data = load_detection_set(voc_copy, "train", 64, on_error="skip")
    assert image_id not in data.ids


@pytest.mark.parametrize("setup, message", [
    (lambda r: shutil.rmtree(r), "does not exist"),
    (lambda r: (r / "ImageSets/Main/train.txt").unlink(), "no split 'train'.*splits found: test, trainval, val"),
    (lambda r: (r / "ImageSets/Main/train.txt").write_text("\n"), "lists no images"),
    (lambda r: (r / "classes.txt").write_text("a\na\n"), "twice"),
])
def test_bad_directories(voc_copy, setup, message):
    setup(voc_copy)
    with pytest.raises(DatasetError, match=message):
        VOCDataset(voc_copy, "train")


def test_bad_on_error(voc_root):
    with pytest.raises(DatasetError, match="on_error"):
        VOCDataset(voc_root, "train", on_error="ignore")
