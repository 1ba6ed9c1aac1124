"""read_image: every bad file gives an ImageReadError naming it; odd modes give known RGB."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.imageio import IMAGE_EXTENSIONS, OTHER_PHOTO_EXTENSIONS, ImageReadError, file_sha256, read_image


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _noise(shape=(64, 64, 3)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def _png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but that holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- bad files


def _assert_read_error(path, *words):
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    text = str(info.value)
    assert path.name in text
    for word in words:
        assert word in text
    assert info.value.path == path
    return info.value


def test_missing_file(tmp_path):
    _assert_read_error(tmp_path / "absent.jpg", "not found")


def test_folder_is_not_a_file(tmp_path):
    _assert_read_error(tmp_path, "not a file")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_read_error(path, "empty (0 bytes)", "again")


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("patient 12, crown, session 3\n")
    _assert_read_error(path, "not an image")


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_file(tmp_path, fmt, suffix):
    data = _encoded(Image.fromarray(_noise()), fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated", "copy it again")


def test_truncation_setting_is_not_changed(tmp_path):
    from PIL import ImageFile

    data = _encoded(Image.fromarray(_noise()), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError):
        read_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_header_claiming_400_megapixels_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_with_header_size(20000, 20000))
    error = _assert_read_error(path, "refused")
    assert "20000" in str(error) or "400" in str(error)


def test_max_megapixels_argument(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_noise((300, 400, 3))).save(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path, max_megapixels=0.1)
    assert str(info.value) == (
        f"{path}: refused: header claims 400 x 300 px (0.1 MP), more than the limit of 0.1 MP; "
        "downscale the image (a scalp frame needs no more than a few MP), or read it from Python with "
        "pipeline.imageio.read_image(path, max_megapixels=...)"
    )
    assert read_image(path, max_megapixels=0.12).shape == (300, 400, 3)


def test_error_pickles_with_its_message(tmp_path):
    import pickle

    error = ImageReadError(tmp_path / "a.png", "file is empty")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == f"{tmp_path / 'a.png'}: file is empty"
    assert isinstance(copy, ValueError)


# ----------------------------------------------------------------------------- odd but valid files


def test_rgb_png_round_trips_exactly(tmp_path):
    image = _noise((5, 7, 3))
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, image)


def test_png_named_jpg_decodes_by_content(tmp_path):
    image = _noise((4, 6, 3))
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(_encoded(Image.fromarray(image), "PNG"))
    np.testing.assert_array_equal(read_image(path), image)


def test_greyscale(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (3, 2), 128).save(path)
    out = read_image(path)
    assert out.shape == (2, 3, 3)
    assert np.all(out == 128)


def test_one_bit(tmp_path):
    path = tmp_path / "bits.png"
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    image.save(path)
    np.testing.assert_array_equal(read_image(path)[0], [[0, 0, 0], [255, 255, 255]])


def test_la_composited_on_white(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (2, 2), (100, 255)).save(path)
    assert np.all(read_image(path) == 100)
    Image.new("LA", (2, 2), (100, 0)).save(path)
    assert np.all(read_image(path) == 255)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: kept
    rgba[0, 1] = (10, 20, 30, 0)  # transparent: white
    rgba[0, 2] = (0, 100, 200, 51)  # 20 % opaque
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    np.testing.assert_array_equal(
        read_image(path)[0], [[10, 20, 30], [255, 255, 255], [204, 224, 244]]
    )


def test_palette(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "pal.png"
    image.save(path)
    np.testing.assert_array_equal(read_image(path)[0], [[255, 0, 0], [0, 0, 255]])


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    path = tmp_path / "pal_t.png"
    image.save(path, transparency=1)
    np.testing.assert_array_equal(read_image(path)[0], [[255, 0, 0], [255, 255, 255]])


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk(tmp_path, suffix):
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(path)
    assert np.all(read_image(path) == 255)
    if suffix == ".tif":  # lossless: pure cyan is (0, 255, 255)
        Image.new("CMYK", (4, 4), (255, 0, 0, 0)).save(path)
        assert np.all(read_image(path) == [0, 255, 255])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_scaled_by_bit_depth(tmp_path, suffix):
    data = np.array([[0, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(data).save(path)
    out = read_image(path)
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255])
    assert np.all(out[..., 0] == out[..., 2])


def test_twelve_bit_in_sixteen_bit_container_is_not_clipped(tmp_path):
    data = np.array([[0, 2048, 4095]], dtype=np.uint16)
    path = tmp_path / "g12.tif"
    Image.fromarray(data).save(path)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 128, 255])


def test_sixteen_bit_with_eight_bit_values_is_kept(tmp_path):
    data = np.array([[0, 17, 255]], dtype=np.uint16)
    path = tmp_path / "g8in16.png"
    Image.fromarray(data).save(path)
    np.testing.assert_array_equal(read_image(path)[0, :, 1], [0, 17, 255])


def test_float_tiff(tmp_path):
    data = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(data).save(path)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 128, 255])


def test_float_rgb_tiff_pillow_cannot_open_is_read_by_tifffile(tmp_path):
    import tifffile

    rgb = _noise((5, 7, 3))
    tifffile.imwrite(tmp_path / "contig.tif", rgb.astype(np.float32) / 255, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb.astype(np.float32) / 255, -1, 0),
                     photometric="rgb", planarconfig="separate")
    for name in ("contig.tif", "planar.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name), rgb)


def test_16_bit_planar_tiff_is_read_in_order(tmp_path):
    """Pillow decodes a 16-bit TIFF of separate planes without an error but scrambled (session 59); it goes to
    tifffile, and reads as its contiguous twin does, on either byte order."""
    import tifffile

    rgb = np.zeros((40, 60, 3), np.uint16)
    rgb[..., 0] = np.arange(60) * 1000
    rgb[..., 2] = 30000
    tifffile.imwrite(tmp_path / "contig.tif", rgb, photometric="rgb")
    contig = read_image(tmp_path / "contig.tif")
    assert np.abs(contig[0, :, 0].astype(int) - np.arange(60) * 1000 * 255 // 65535).max() <= 1
    for order in ("<", ">"):
        tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0).astype(order + "u2"), photometric="rgb",
                         planarconfig="separate", byteorder=order)
        assert np.abs(read_image(tmp_path / "planar.tif").astype(int) - contig).max() <= 1


def test_tiff_of_five_samples_is_refused_with_the_fix(tmp_path):
    import tifffile

    path = tmp_path / "five.tif"
    tifffile.imwrite(path, np.zeros((4, 6, 5), np.float32), photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "five_planar.tif", np.zeros((5, 4, 6), np.float32), photometric="minisblack",
                     planarconfig="separate")
    _assert_read_error(tmp_path / "five_planar.tif", "not grey or RGB")
    _assert_read_error(path, "not grey or RGB", "save it as")


@pytest.mark.parametrize("suffix, words", [(".heic", ("HEIC", "export them as JPEG")),
                                           (".NEF", ("camera raw", "develop")), (".gif", ("GIF", "export"))])
def test_photo_formats_not_read_name_the_export(tmp_path, suffix, words):
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    _assert_read_error(path, *words)


def test_float_tiff_with_nan_is_refused(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(path)
    _assert_read_error(path, "NaN")


def test_exif_orientation_6_rotates(tmp_path):
    # 2 rows x 3 columns, stored; orientation 6 = view rotated 90° clockwise.
    stored = np.zeros((2, 3, 3), dtype=np.uint8)
    stored[..., 0] = [[10, 20, 30], [40, 50, 60]]
    image = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.png"
    image.save(path, exif=exif)
    out = read_image(path)
    assert out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out[..., 0], [[40, 10], [50, 20], [60, 30]])


def test_exif_orientation_in_jpeg(tmp_path):
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :8] = 255  # bright left band in the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (32, 16, 3)
    assert out[:8].mean() > 200 and out[8:].mean() < 50  # left band became the top rows


def test_reading_does_not_modify_the_file(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_noise((16, 24, 3))).save(path, exif=exif)
    before, mtime = file_sha256(path), path.stat().st_mtime_ns
    read_image(path)
    assert file_sha256(path) == before
    assert path.stat().st_mtime_ns == mtime


def test_file_sha256(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_image_extensions():
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".dcm",
                                ".dicom"}
    assert not IMAGE_EXTENSIONS & OTHER_PHOTO_EXTENSIONS.keys()
    assert {".heic", ".heif", ".dng", ".gif"} <= OTHER_PHOTO_EXTENSIONS.keys()
