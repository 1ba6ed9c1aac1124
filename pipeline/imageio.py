"""Read one trichoscopy frame from a file, robustly, as uint8 RGB.

This is the only place that decodes image files.  ``read_image`` turns every
way a file can be wrong (missing, empty, not an image, truncated, absurdly
large) into an ``ImageReadError`` whose text names the file, says what is
wrong and what to do, so that the batch layer can record it as one row and go
on with the rest.  Odd but valid files (greyscale, palette, alpha, CMYK,
16-bit, float, EXIF-rotated, wrong extension) are decoded to the same
``(M, N, 3)`` uint8 RGB array the core expects.

Files are only ever opened read-only.
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "OTHER_PHOTO_EXTENSIONS", "ImageReadError", "file_sha256", "is_dicom", "read_dicom",
           "read_frame", "read_image"]

#: File extensions (lower case) picked up when a folder is walked.
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".dcm", ".dicom"}

#: Photo formats a folder may hold that are not read here, with how to export them. A walked folder
#: gives each its own row (an error naming the fix) rather than leaving it out unsaid; one Pillow
#: decodes after all (a GIF) is measured like any other frame.
OTHER_PHOTO_EXTENSIONS = {
    **dict.fromkeys((".heic", ".heif"), "HEIC/HEIF photos are not read: export them as JPEG (on an iPhone, "
                    "Settings > Camera > Formats > Most Compatible takes JPEG from then on)"),
    ".avif": "AVIF photos are not read: export them as JPEG or PNG",
    ".jxl": "JPEG XL photos are not read: export them as JPEG or PNG",
    ".jp2": "JPEG 2000 files are not read: export them as JPEG, PNG or TIFF",
    ".gif": "a GIF that cannot be decoded: export the photo as JPEG or PNG",
    **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raw"),
                    "camera raw files are not read: develop them to 8- or 16-bit TIFF, PNG or JPEG first"),
}

#: Default refusal limit for the pixel count claimed by a file's header.
DEFAULT_MAX_MEGAPIXELS = 100.0

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, TypeError)


class ImageReadError(ValueError):
    """A file could not be read as an image.

    ``str(error)`` is ``"<path>: <what is wrong and what to do>"``.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    message : str
        What is wrong and what to do, without the path.
    """

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(str(path), message)  # both args, so the error pickles
        self.path = Path(path)
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def file_sha256(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (read-only)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def read_image(
    path: str | os.PathLike,
    *,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
) -> np.ndarray:
    """Read an image file as uint8 RGB, decoding by content, not extension.

    Parameters
    ----------
    path : str or path-like
        Image file (JPEG, PNG, TIFF, BMP, WebP or anything Pillow decodes).
        Opened read-only; the first frame of a multi-frame file is used.
    max_megapixels : float
        Refuse, before decoding, a file whose header claims more than this
        many megapixels (rows x columns / 1e6). Pillow's own
        decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` x 2) applies
        as well.

    Returns
    -------
    ndarray of uint8, shape (M, N, 3)
        RGB pixels, rows x columns, after applying the EXIF orientation.
        Greyscale and palette images are expanded to RGB; alpha is composited
        on white; CMYK is converted to RGB; 16-bit, 32-bit integer and float
        images are scaled to 8 bits by their actual bit depth (see
        ``_to_uint8``), never clipped.

    Raises
    ------
    ImageReadError
        Missing or empty file, not an image, truncated or corrupt data, too
        many pixels, or a colour mode that cannot be converted.
    """
    path = Path(path)
    _check_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with open(path, "rb") as fh:
            image = _open_checked(path, fh, max_megapixels)
            if image is None or _misread_by_pillow(image) or not _decoded(path, image):  # float RGB TIFF, ...
                return _read_tiff(path, max_megapixels)
            image = _apply_orientation(image)
            return _to_rgb_array(path, image)


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _misread_by_pillow(image: Image.Image) -> bool:
    """A TIFF with separate colour planes deeper than 8 bits: Pillow decodes it without an error, but as
    scrambled 8-bit planes (tifffile reads it)."""
    if image.format != "TIFF":
        return False
    tags = getattr(image, "tag_v2", {})
    bits = tags.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    return tags.get(284, 1) == 2 and max(bits, default=8) > 8


def _decoded(path: Path, image: Image.Image) -> bool:
    """Decode the pixels (:func:`_load`); False, not an error, for a TIFF whose layout Pillow cannot decode."""
    try:
        _load(path, image)
    except ImageReadError as exc:
        if image.format != "TIFF" or "truncated" in str(exc):  # truncation is the file's fault: say so
            raise
        return False
    return True


def _check_megapixels(path: Path, width: int, height: int, max_megapixels: float) -> None:
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise ImageReadError(
            path,
            f"refused: header claims {width} x {height} px ({megapixels:.1f} MP), more than the "
            f"limit of {max_megapixels:g} MP; downscale the image (a scalp frame needs no more than a few MP), or "
            f"read it from Python with pipeline.imageio.read_image(path, max_megapixels=...)",
        )


def _read_tiff(path: Path, max_megapixels: float) -> np.ndarray:
    """RGB uint8 of the first page of a TIFF that Pillow cannot decode (e.g. 32-bit float RGB), via tifffile."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            _check_megapixels(path, int(page.imagewidth), int(page.imagelength), max_megapixels)
            data = page.asarray()
            planar = int(page.planarconfig) == 2 and int(page.samplesperpixel) > 1  # samples first
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's, not ours
        raise ImageReadError(path, f"TIFF that neither Pillow nor tifffile can decode ({type(exc).__name__}: {exc}); "
                                   "save it as an 8- or 16-bit RGB TIFF, PNG or JPEG") from None
    if planar and data.ndim == 3:
        data = np.moveaxis(data, 0, -1)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[2] not in (1, 3, 4):
        raise ImageReadError(path, f"TIFF pixel layout {data.shape} is not grey or RGB; "
                                   "save it as an RGB TIFF, PNG or JPEG")
    rgb = _to_uint8(path, data[..., :3])
    return np.ascontiguousarray(np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(path, "file not found; check the path (or the manifest row that names it)")
    if not path.is_file():
        raise ImageReadError(path, "is not a file; give an image file or a folder of images")
    if path.stat().st_size == 0:
        raise ImageReadError(
            path, "file is empty (0 bytes), probably an interrupted copy or export; copy or export it again"
        )


def _open_checked(path: Path, fh, max_megapixels: float) -> Image.Image | None:
    """Open lazily (header only) and refuse absurd sizes before decoding; None for a TIFF Pillow cannot read."""
    try:
        image = Image.open(fh)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"refused: {exc}; downscale the image before analysis") from None
    except UnidentifiedImageError:
        head = _peek(path)
        if head[:4] in _TIFF_MAGIC:
            return None
        if path.suffix.lower() in OTHER_PHOTO_EXTENSIONS:
            raise ImageReadError(path, OTHER_PHOTO_EXTENSIONS[path.suffix.lower()]) from None
        raise ImageReadError(
            path,
            f"not an image file Pillow can decode (first bytes: {head!r}); "
            "check that it is a JPEG, PNG, TIFF, BMP or WebP photo and not a renamed document",
        ) from None
    except _DECODE_ERRORS as exc:
        raise ImageReadError(path, f"corrupt image header ({type(exc).__name__}: {exc}); export the photo again") from None
    width, height = image.size
    _check_megapixels(path, width, height, max_megapixels)
    if width == 0 or height == 0:
        raise ImageReadError(path, f"image has no pixels ({width} x {height}); export it again")
    return image


def _peek(path: Path, n: int = 12) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _load(path: Path, image: Image.Image) -> None:
    """Decode the pixels; truncated data raises (LOAD_TRUNCATED_IMAGES untouched)."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"refused: {exc}; downscale the image before analysis") from None
    except _DECODE_ERRORS as exc:
        text = str(exc)
        if isinstance(exc, EOFError) or "truncat" in text.lower():
            raise ImageReadError(
                path,
                f"image data is truncated ({text or type(exc).__name__}): the file ends early, "
                "probably an interrupted copy or download; copy it again from the original",
            ) from None
        raise ImageReadError(
            path, f"image data is corrupt ({type(exc).__name__}: {text}); export or copy the photo again"
        ) from None


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF orientation tag says, so rows and columns match the view."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # a malformed EXIF block must not cost the frame
        warnings.warn(f"EXIF orientation unreadable ({exc}); using the stored orientation", stacklevel=3)
        return image


def _to_rgb_array(path: Path, image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:4] / 255.0
        out = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return np.ascontiguousarray(np.rint(out).astype(np.uint8))
    if mode.startswith("I") or mode == "F":
        grey = _to_uint8(path, np.asarray(image))
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    try:
        rgb = image if mode == "RGB" else image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageReadError(
            path, f"colour mode {mode!r} cannot be converted to RGB ({exc}); save the image as 8-bit RGB"
        ) from None
    return np.array(rgb, dtype=np.uint8)


def _to_uint8(path: Path, data: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Scale a 16/32-bit integer or float array (one scale for all its channels) to uint8.

    Integers: divided by ``2**b - 1``, ``b`` the bit depth the file declares
    (``bits``, e.g. DICOM's BitsStored) when its values fit in it, else the
    number of bits the largest value uses rounded up to an even depth (at
    least 8): full-range 16-bit data maps 65535 -> 255 and 12-bit data in a
    16-bit container 4095 -> 255, and a darker exposure of the same scene
    (its brightest value under 2**15) is not stretched to look brighter;
    data that fits in 8 bits is kept as is. Floats in [0, 1] are multiplied
    by 255; other non-negative floats are treated like integers; data with
    negative values is stretched from its minimum to its maximum.
    """
    values = data.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageReadError(path, "float image contains NaN or infinite values; save it as 8- or 16-bit")
    lo, hi = float(values.min()), float(values.max())
    if lo < 0:
        scaled = (values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)
    elif data.dtype.kind == "f" and hi <= 1.0:
        scaled = values * 255.0
    else:
        used = max(8, int(np.ceil(hi)).bit_length())
        declared = bits is not None and 8 <= bits <= 8 * data.dtype.itemsize and hi < 2**bits
        depth = bits if declared else used + used % 2
        scaled = values * (255.0 / (2**depth - 1))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- DICOM


#: How the image formats read by Pillow begin: a file named ``.dcm`` that begins so is read as that image.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"RIFF", *_TIFF_MAGIC)


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether a file is DICOM Part 10 ("DICM" at byte 128), or named ``.dcm`` / ``.dicom`` and not
    beginning as a JPEG, PNG, TIFF, BMP or WebP does (a photo given the wrong extension is read as itself)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return path.suffix.lower() in (".dcm", ".dicom")
    if head[128:132] == b"DICM":
        return True
    return path.suffix.lower() in (".dcm", ".dicom") and not head.startswith(_IMAGE_MAGIC)


def dicom_patient_id(path: str | os.PathLike) -> str | None:
    """The PatientID in a DICOM file's header (pixels not read); None when there is none or the file is no DICOM."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # noqa: BLE001 - not readable as DICOM: the frame's own read says why
        return None
    ident = str(ds.get("PatientID") or "").strip()
    return ident or None


def read_dicom(path: str | os.PathLike, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> tuple[np.ndarray, dict]:
    """Read a DICOM photograph (VL Photographic / Dermoscopic) as uint8 RGB plus its metadata.

    Returns
    -------
    image : ndarray of uint8, shape (M, N, 3)
    info : dict
        ``um_per_px`` from Pixel Spacing (0028,0030) or Imager Pixel Spacing
        (0018,1164), in µm/px (None when absent or not square), and
        ``patient_id`` / ``session_date`` (ISO) from PatientID and StudyDate
        when present.

    Raises
    ------
    ImageReadError
        Not DICOM, no pixel data, a compression pydicom cannot decode here,
        or too many pixels.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    _check_file(path)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, *_DECODE_ERRORS) as exc:
        raise ImageReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc}); export it again") from None
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols / 1e6 > max_megapixels:
        raise ImageReadError(path, f"refused: DICOM header claims {cols} x {rows} px, more than the limit of "
                                   f"{max_megapixels:g} MP; downscale the image or raise max_megapixels")
    try:
        data = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for missing handlers / data
        raise ImageReadError(path, f"DICOM pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
                                   "export it uncompressed or as baseline JPEG") from None
    photometric = str(ds.get("PhotometricInterpretation", "RGB"))
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        data = data[0]  # first frame of a multi-frame object (frames, rows, columns[, samples])
    stored = ds.get("BitsStored")
    stored = int(stored) if stored else None
    if data.ndim == 2:
        grey = data if data.dtype == np.uint8 else _to_uint8(path, data, stored)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        image = np.repeat(grey[..., None], 3, axis=2)
    else:  # colour: pydicom (3.0+) already gives YBR photometrics as RGB
        image = data[..., :3] if data.dtype == np.uint8 else _to_uint8(path, data[..., :3], stored)
    return np.ascontiguousarray(image), _dicom_info(ds)


def _dicom_info(ds) -> dict:
    info: dict = {"um_per_px": None}
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
        if row_mm > 0 and abs(row_mm - col_mm) <= 0.01 * col_mm:
            info["um_per_px"] = 1000.0 * (row_mm + col_mm) / 2
    except (TypeError, ValueError, IndexError):
        pass
    if ds.get("PatientID"):
        info["patient_id"] = str(ds.PatientID)
    date = str(ds.get("StudyDate", "") or "")
    if len(date) == 8 and date.isdigit():
        info["session_date"] = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return info


def read_frame(path: str | os.PathLike, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> tuple[np.ndarray, dict]:
    """Read any supported frame: DICOM by :func:`read_dicom`, the rest by :func:`read_image` (empty info)."""
    if is_dicom(path):
        return read_dicom(path, max_megapixels=max_megapixels)
    return read_image(path, max_megapixels=max_megapixels), {}
