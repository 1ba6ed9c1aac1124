"""fdu_val shrunk to a low magnification: real skin and real hairs at 20x-30x pixel sizes.

Usage::

    python benchmarks/fdu_low_mag.py ../shared/data/fdu_val --factor 3 --out /tmp/fdu_x3
    tricho analyze /tmp/fdu_x3/images --um-per-px 8.34 --out /tmp/r_x3 --workers 2
    tricho evaluate /tmp/r_x3 --truth /tmp/fdu_x3/annotations --um-per-px 8.34 --half A

The only labelled real frames are fdu_val's, all at 70x (about 2.78 um/px). A frame
taken at 20x-30x (8-14 um/px) draws a 20 um vellus shaft 1-3 px wide; the phantom
suites hold such frames, and their under-count there is the largest of any scene
(docs/HISTORY.md, session 51), but no real frame says whether a rule that finds thin
shafts at that scale reads real skin (its creases, grain and pigment) as hair too.
This writes a copy of fdu_val with every frame shrunk by ``--factor`` (area
averaging, ``cv2.INTER_AREA``, the way a sensor integrates light; saved as PNG, so
no new compression) and its boxes scaled with it. The pixel size becomes
``2.78 * factor`` um/px (the frame's size rounded to whole pixels, within 0.1%); the
field stays the same skin. Boxes that fall under the
evaluation's degenerate-box limit (2 px) only by the shrinking are widened about
their centre to 2 px, so the true count of every frame is the same as fdu_val's.

The copy is written outside the project (evaluation data is never copied into it)
and is for measurement only, like fdu_val itself. It is not a real low-magnification
device: optics, sensor noise and the JPEG of such a device differ; what it keeps is
the real skin and hair at that pixel size.
"""
from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import inspect

import cv2
import numpy as np

from pipeline.evaluate import read_voc

#: The evaluation's degenerate-box limit (px), :func:`pipeline.evaluate.read_voc`'s default.
MIN_SIDE_PX = float(inspect.signature(read_voc).parameters["min_box_side_px"].default)
#: fdu_val's pixel size (µm/px; its README).
FDU_UM_PER_PX = 2.78


def shrink_image(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` shrunk by ``factor`` (> 1) with area averaging; the size is rounded to whole pixels."""
    h, w = image.shape[:2]
    size = (max(1, int(round(w / factor))), max(1, int(round(h / factor))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _scaled_span(lo: float, hi: float, factor: float, limit: int) -> tuple[float, float]:
    """One box side's span divided by ``factor`` and kept inside ``[0, limit]``, widened about its
    centre to ``MIN_SIDE_PX`` when the shrinking alone made it too narrow."""
    lo, hi = sorted((min(max(lo / factor, 0.0), limit), min(max(hi / factor, 0.0), limit)))
    side = MIN_SIDE_PX + 0.1  # clear of the limit after rounding to hundredths
    if hi - lo < side:
        mid = min(max((lo + hi) / 2, side / 2), limit - side / 2)
        lo, hi = mid - side / 2, mid + side / 2
    return lo, hi


def shrink_annotation(xml_path: Path, factor: float, width: int, height: int) -> ET.ElementTree:
    """The VOC annotation with its ``<size>`` set to the shrunk frame and every box scaled by
    ``1 / factor``. Boxes that :func:`pipeline.evaluate.read_voc` drops at full size (a side
    under ``MIN_SIDE_PX``) are removed, so the shrunk truth counts the same boxes."""
    tree = ET.parse(xml_path)
    root = tree.getroot()
    size = root.find("size")
    size.find("width").text, size.find("height").text = str(width), str(height)
    for obj in list(root.findall("object")):
        box = obj.find("bndbox")
        x0, x1 = sorted(float(box.find(t).text) for t in ("xmin", "xmax"))
        y0, y1 = sorted(float(box.find(t).text) for t in ("ymin", "ymax"))
        if x1 - x0 < MIN_SIDE_PX or y1 - y0 < MIN_SIDE_PX:
            root.remove(obj)
            continue
        x0, x1 = _scaled_span(x0, x1, factor, width)
        y0, y1 = _scaled_span(y0, y1, factor, height)
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0, y0, x1, y1)):
            box.find(tag).text = f"{v:.2f}"
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fdu", type=Path, help="the fdu_val folder (images/, annotations/)")
    ap.add_argument("--factor", type=float, default=3.0, help="shrink factor (> 1)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.factor <= 1:
        raise SystemExit(f"--factor must be above 1, got {args.factor}")
    images = sorted((args.fdu / "images").glob("*.jpg"))
    if not images:
        raise SystemExit(f"no .jpg frames in {args.fdu / 'images'}: pass the fdu_val folder")
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "annotations").mkdir(parents=True, exist_ok=True)
    written = 0
    for path in images:
        xml = args.fdu / "annotations" / f"{path.stem}.xml"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None or not xml.is_file():
            print(f"skipped {path.name}: unreadable or without annotation")
            continue
        small = shrink_image(image, args.factor)
        cv2.imwrite(str(args.out / "images" / f"{path.stem}.png"), small)
        shrink_annotation(xml, args.factor, small.shape[1], small.shape[0]).write(
            args.out / "annotations" / f"{path.stem}.xml")
        written += 1
    print(f"wrote {written} frames shrunk by {args.factor:g} to {args.out}: "
          f"pixel size {FDU_UM_PER_PX * args.factor:.2f} um/px at fdu_val's {FDU_UM_PER_PX}")


if __name__ == "__main__":
    main()
