"""Pixel size from manifest, DICOM, scale bar, device profile, CLI — and the quality gate."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline import calibration, quality, segment
from pipeline.batch import BatchError, run_batch
from pipeline.settings import Settings

FDU = Path(__file__).resolve().parents[2] / "shared" / "data" / "fdu_val" / "images"


def _skin(shape=(1024, 1280), seed=0, level=(190, 150, 135)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((*shape, 3), level, np.uint8)
    noise = cv2.GaussianBlur(rng.normal(0, 12, shape).astype(np.float32), (0, 0), 2)
    return np.clip(img + noise[..., None], 0, 255).astype(np.uint8)


def _with_bar(img: np.ndarray, leg_px: int, corner=(950, 40)) -> np.ndarray:
    out = img.copy()
    r, c = corner
    cv2.line(out, (c, r), (c + leg_px - 1, r), (40, 40, 40), 2)
    cv2.line(out, (c, r), (c, r - leg_px + 1), (40, 40, 40), 2)
    return out


# ----------------------------------------------------------------------------- scale bar


def test_drawn_bar_gives_its_length():
    um = calibration.scale_bar_um_per_px(_with_bar(_skin(), 400))
    assert um == pytest.approx(1000 / 400, rel=0.01)


def test_bar_crossed_by_a_shaft_keeps_its_length():
    img = _with_bar(_skin(), 360)
    cv2.line(img, (150, 600), (300, 1000), (30, 25, 20), 25)  # a shaft across the horizontal leg
    assert calibration.scale_bar_um_per_px(img) == pytest.approx(1000 / 360, rel=0.02)


def test_bar_broken_by_shafts_everywhere_is_found():
    """Shafts cut both legs into pieces shorter than ``min_length_px`` and hide the corner itself."""
    img = _with_bar(_skin(), 360)
    for p0, p1 in [((20, 900), (90, 990)), ((120, 930), (200, 975)), ((230, 925), (300, 970)),
                   ((15, 700), (70, 720)), ((15, 800), (70, 830))]:
        cv2.line(img, p0, p1, (30, 25, 20), 22)
    mask, horizontal, vertical = segment.find_scale_bar(img)
    assert horizontal == pytest.approx(360, abs=3) and vertical == pytest.approx(360, abs=3)
    assert mask[950, 40:399].mean() > 0.95 and mask[591:950, 40].mean() > 0.95  # broken stretches too
    assert calibration.scale_bar_um_per_px(img) == pytest.approx(1000 / 360, rel=0.02)


def test_two_straight_lines_far_from_meeting_are_no_bar():
    img = _skin()
    cv2.line(img, (300, 500), (700, 500), (40, 40, 40), 2)
    cv2.line(img, (900, 100), (900, 450), (40, 40, 40), 2)
    assert segment.find_scale_bar(img) is None


def test_dark_bar_on_dark_skin_is_found():
    """A dark bar about 16 grey levels below dark skin (the phantoms' missed bars looked like this) is found by
    the weaker second search and masked along both legs; its horizontal leg's pieces end about 35 px short, so
    the legs disagree by more than the 3% a calibration needs."""
    img = _skin(level=(66, 62, 60))
    cv2.line(img, (40, 950), (399, 950), (47, 47, 47), 2)
    cv2.line(img, (40, 950), (40, 591), (47, 47, 47), 2)
    mask, horizontal, vertical = segment.find_scale_bar(img)
    assert vertical == pytest.approx(361.5, abs=2) and 300 < horizontal < 340
    assert mask[950, 40:340].mean() > 0.95 and mask[591:950, 40].mean() > 0.95
    assert calibration.scale_bar_um_per_px(img) is None
    assert segment.find_scale_bar(_skin(level=(66, 62, 60))) is None


def test_bar_with_a_dark_halo_over_its_corner_is_found():
    """A short bar (160 px, as at about 6 µm/px) whose corner lies in a dark halo: at 25 grey levels the
    horizontal leg's pieces over the skin are too short to be a leg; the weaker search finds the whole L,
    and both lengths come out exact."""
    img = _skin()
    cv2.ellipse(img, (60, 950), (50, 30), 0, 0, 360, (70, 66, 66), -1)
    cv2.line(img, (40, 950), (199, 950), (45, 45, 45), 2)
    cv2.line(img, (40, 950), (40, 791), (45, 45, 45), 2)
    mask, horizontal, vertical = segment.find_scale_bar(img, min_length_px=101)
    assert horizontal == pytest.approx(160, abs=1.5) and vertical == pytest.approx(161, abs=1.5)
    assert mask[950, 40:200].all()


def test_horizontal_leg_followed_through_a_halo_to_the_corner():
    """A 360 px bar with a wide dark halo over its corner: the horizontal leg's pieces start 180 px from the
    corner, beyond the corner tolerance (a quarter of the shorter leg, 45 px); followed through the halo
    (where the bar is still 11 levels darker), the leg meets the vertical one in the first search, and the
    bar calibrates."""
    img = _skin()
    cv2.ellipse(img, (120, 950), (100, 30), 0, 0, 360, (56, 56, 56), -1)
    cv2.line(img, (40, 950), (399, 950), (45, 45, 45), 2)
    cv2.line(img, (40, 950), (40, 591), (45, 45, 45), 2)
    mask, horizontal, vertical = segment.find_scale_bar(img)
    assert horizontal == pytest.approx(360.5, abs=1) and vertical == pytest.approx(361.5, abs=1)
    assert calibration.scale_bar_um_per_px(img) == pytest.approx(1000 / 361, rel=0.01)


def test_followed_leg_that_runs_on_past_the_bar_is_no_bar():
    """The same halo-hidden corner, but the horizontal leg's row runs on in line past the bar (as over a
    label box and the edges of dark shafts): its legs read 380 and 160 px, and an L that needs the corner
    followed is taken only when they agree within ``WEAK_BAR_AGREEMENT``."""
    img = _skin()
    cv2.ellipse(img, (60, 950), (50, 30), 0, 0, 360, (70, 66, 66), -1)
    cv2.line(img, (40, 950), (199, 950), (45, 45, 45), 2)
    cv2.line(img, (40, 950), (40, 791), (45, 45, 45), 2)
    cv2.line(img, (260, 950), (419, 950), (45, 45, 45), 2)
    assert segment.find_scale_bar(img, min_length_px=101) is None


def test_faint_lines_meeting_in_an_l_are_no_bar():
    """Lines about 10 grey levels off the skin are below even the weaker search (12 levels)."""
    img = _skin(level=(66, 62, 60))
    cv2.line(img, (300, 500), (700, 500), (53, 53, 53), 2)
    cv2.line(img, (300, 500), (300, 140), (53, 53, 53), 2)
    assert segment.find_scale_bar(img) is None


def test_bar_with_a_hidden_leg_is_not_trusted():
    img = _with_bar(_skin(), 360)
    img[600:950, 30:50] = _skin()[600:950, 30:50]  # most of the vertical leg gone
    assert calibration.scale_bar_um_per_px(img) is None


def test_phantom_bars_read_within_2_percent_of_the_truth():
    from pipeline import synth

    ratios = []
    for i in range(12):
        rng = np.random.default_rng([4040, i])
        params = synth.sample_scene(rng, scale_bar=True, height=1024, width=1280)
        if not params.scale_bar:
            continue
        image, truth = synth.render_frame(params, rng)
        um = calibration.scale_bar_um_per_px(image)
        if um is not None:
            ratios.append(um / truth["um_per_px"])
    assert len(ratios) >= 5
    assert np.all(np.abs(np.array(ratios) - 1) < 0.02), ratios


def test_no_bar_no_reading():
    assert calibration.scale_bar_um_per_px(_skin()) is None


@pytest.mark.skipif(not FDU.is_dir(), reason="../shared/data/fdu_val not present (team-only evaluation data)")
def test_real_frames_with_the_bar_read_about_2_78_um_per_px():
    """Every fdu_val frame carrying the "1.0 mm" L bar reads 2.74-2.82 µm/px (2.78 ± 1.5%)."""
    readings = {}
    for path in sorted(FDU.glob("*.jpg")):
        image = cv2.imread(str(path))[..., ::-1]
        um = calibration.scale_bar_um_per_px(image)
        if um is not None:
            readings[path.name] = um
    assert len(readings) >= 25, f"only {len(readings)} frames with a trusted bar"
    values = np.array(list(readings.values()))
    assert values.min() > 2.74 and values.max() < 2.82, readings
    assert abs(np.median(values) - 2.78) < 0.01


# ----------------------------------------------------------------------------- order of trust


def test_order_of_trust():
    img = _with_bar(_skin(), 400)
    assert calibration.resolve_um_per_px(img, manifest=3.0, dicom=4.0, cli=5.0)[:2] == (3.0, "manifest")
    assert calibration.resolve_um_per_px(img, dicom=4.0, cli=5.0)[:2] == (4.0, "dicom")
    assert calibration.resolve_um_per_px(img, device="handheld-70x", cli=5.0)[1] == "scale_bar"
    plain = _skin()
    assert calibration.resolve_um_per_px(plain, device="HANDHELD-70X", cli=5.0)[:2] == (2.78, "device")
    assert calibration.resolve_um_per_px(plain, cli=5.0)[:2] == (5.0, "cli")
    um, source, note = calibration.resolve_um_per_px(plain, device="unknown-scope")
    assert (um, source) == (None, "none") and "unknown-scope" in note and "handheld-70x" in note


def test_device_profile_scales_with_the_frame_width():
    assert calibration.device_um_per_px("handheld-70x", 640) == pytest.approx(5.56)


def test_a_device_frame_turned_upright_by_exif_keeps_its_pixel_size(tmp_path):
    """A 1280 x 720 frame of the 70x device stored with EXIF orientation 6 reads as 720 x 1280; its pixels are
    the same size (session 59: the width after turning gave 2.78 x 1280 / 720 = 4.94 µm/px)."""
    from PIL import Image

    from pipeline.imageio import read_image

    image = Image.fromarray(np.full((720, 1280, 3), (196, 150, 130), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # shown turned 90° clockwise
    image.save(tmp_path / "f.jpg", exif=exif.tobytes(), quality=95)
    upright = read_image(tmp_path / "f.jpg")
    assert upright.shape[:2] == (1280, 720)
    for frame in (upright, np.zeros((720, 1280, 3), np.uint8)):
        um, source, _ = calibration.resolve_um_per_px(frame, device="handheld-70x", read_bar=False)
        assert (um, source) == (pytest.approx(2.78), "device")


def test_bad_device_table_names_its_row(tmp_path):
    table = tmp_path / "devices.csv"
    table.write_text("device,um_per_px,native_width_px\nscope-a,2.5,1280\nscope-b,-1,1280\n")
    with pytest.raises(ValueError, match="row 3"):
        calibration.device_profiles(str(table))


# ----------------------------------------------------------------------------- DICOM


def _write_dicom(path: Path, image: np.ndarray, *, spacing_mm: float | None, patient="PAT-1", date="20260110"):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"  # VL Photographic Image
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyDate, ds.Modality = patient, date, "XC"
    ds.Rows, ds.Columns = image.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if spacing_mm is not None:
        ds.PixelSpacing = [spacing_mm, spacing_mm]
    ds.PixelData = np.ascontiguousarray(image).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_frame_gives_pixel_size_patient_and_date(tmp_path):
    from pipeline.imageio import read_frame

    image = _skin((200, 300))
    _write_dicom(tmp_path / "f.dcm", image, spacing_mm=0.005)
    pixels, info = read_frame(tmp_path / "f.dcm")
    assert np.array_equal(pixels, image)
    assert info == {"um_per_px": pytest.approx(5.0), "patient_id": "PAT-1", "session_date": "2026-01-10"}


def test_dicom_pixel_spacing_gives_the_right_density(tmp_path):
    """Three dark bars on skin in a DICOM file with 0.005 mm spacing: 3 hairs on 0.6 x 0.9 mm -> 555.6 /cm²."""
    image = np.full((120, 180, 3), (196, 150, 130), np.uint8)
    for col in (40, 90, 140):
        image[10:110, col:col + 6] = (50, 35, 30)
    (tmp_path / "in").mkdir()
    _write_dicom(tmp_path / "in" / "frame.dcm", image, spacing_mm=0.005)
    run_batch([tmp_path / "in"], tmp_path / "out", progress=False, overlays=False, um_per_px=9.0)
    row = pd.read_csv(tmp_path / "out" / "images.csv", dtype={"patient_id": str}).iloc[0]
    assert (row.calibration_source, row.um_per_px, row.hair_count) == ("dicom", 5.0, 3)
    assert row.area_cm2 == pytest.approx(120 * 180 * 25e-8)
    assert row.density_per_cm2 == pytest.approx(3 / (120 * 180 * 25e-8))
    assert (row.patient_id, row.session_date) == ("PAT-1", "2026-01-10")


def test_a_stored_result_is_not_reused_across_pseudonym_keys(tmp_path, fake_core):
    """A DICOM PatientID measured by a plain run must not come back raw in a pseudonymised run into the same
    folder, nor under another key's pseudonym (session 59: the stored file metadata was reused as written)."""
    from pipeline.pseudonym import Pseudonymizer

    (tmp_path / "in").mkdir()
    _write_dicom(tmp_path / "in" / "frame.dcm", _skin((60, 80)), spacing_mm=0.005)
    out = tmp_path / "out"
    run_batch([tmp_path / "in"], out, progress=False, overlays=False)
    with pytest.raises(BatchError, match="holds a run without pseudonyms"):  # its store keeps PAT-1
        run_batch([tmp_path / "in"], out, progress=False, overlays=False, pseudonymize="k1")
    # past that refusal (run.json edited), the result keys themselves still keep the plain result from the keyed runs
    (out / "run.json").write_text(json.dumps({**json.loads((out / "run.json").read_text()), "pseudonymized": True}))
    for key in ("k1", "k2", None):
        summary = run_batch([tmp_path / "in"], out, progress=False, overlays=False, pseudonymize=key)
        row = pd.read_csv(out / "images.csv", dtype={"patient_id": str}).iloc[0]
        assert row.patient_id == (Pseudonymizer(key).patient("PAT-1") if key else "PAT-1")
        assert summary.n_reused == (key is None)  # only the plain result, stored by the first run, is reused
        assert (b"PAT-1" in (out / "images.csv").read_bytes()) == (key is None)


def _write_dicom_pixels(path: Path, data: np.ndarray, photometric: str, *, frames: int | None = None) -> Path:
    """A DICOM file holding ``data`` as given (uncompressed): any photometric, bit depth and frame count."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    colour = photometric not in ("MONOCHROME1", "MONOCHROME2")
    shape = data.shape[1:] if frames else data.shape
    ds.Rows, ds.Columns = shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3 if colour else 1), photometric
    if colour:
        ds.PlanarConfiguration = 0
    bits = data.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(data).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_colour_depth_and_frames_read_as_stored(tmp_path):
    """YBR colour is converted once, a 16-bit RGB frame keeps its hue (one scale for all channels, by its
    BitsStored), and a multi-frame greyscale object gives its first frame (session 59: red read green,
    (40000, 20000, 20000) read grey, and 3 frames of 40 x 60 read as a 3 x 40 colour image)."""
    from pydicom.pixels import convert_color_space

    from pipeline.imageio import read_frame

    red = np.zeros((40, 60, 3), np.uint8)
    red[...] = (200, 30, 30)
    ybr = convert_color_space(red, "RGB", "YBR_FULL")
    pixels, _ = read_frame(_write_dicom_pixels(tmp_path / "ybr.dcm", ybr, "YBR_FULL"))
    assert np.abs(pixels.astype(int) - red).max() <= 2
    deep = np.zeros((40, 60, 3), np.uint16)
    deep[...] = (40000, 20000, 20000)
    pixels, _ = read_frame(_write_dicom_pixels(tmp_path / "deep.dcm", deep, "RGB"))
    assert pixels[0, 0].tolist() == [156, 78, 78]
    from pipeline.imageio import _to_uint8

    assert _to_uint8(tmp_path, deep, 32)[0, 0].tolist() == [156, 78, 78]  # a depth past the type's is not believed
    stack = np.stack([np.full((40, 60), v, np.uint8) for v in (50, 100, 150)])
    pixels, _ = read_frame(_write_dicom_pixels(tmp_path / "frames.dcm", stack, "MONOCHROME2", frames=3))
    assert pixels.shape == (40, 60, 3) and (pixels == 50).all()


def test_a_dicom_file_named_after_its_patient_is_named_by_the_pseudonym(tmp_path, fake_core):
    """The PatientID is read from the header before keys and overlay names are written, so ``PAT-9_visit.dcm``
    and its UID-named twin never show ``PAT-9`` in a pseudonymised run, measured or reused (session 59)."""
    (tmp_path / "in").mkdir()
    _write_dicom(tmp_path / "in" / "PAT-9_visit.dcm", _skin((60, 80)), spacing_mm=0.005, patient="PAT-9")
    image = _skin((60, 80))
    image[0, 0] = 0
    _write_dicom(tmp_path / "in" / "1.2.826.0.1.3680043.2.498.1", image, spacing_mm=0.005, patient="PAT-9")
    for _ in range(2):
        run_batch([tmp_path / "in"], tmp_path / "out", progress=False, pseudonymize="k")
        names = [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")]
        assert len(pd.read_csv(tmp_path / "out" / "images.csv")) == 2
        assert not any("PAT-9" in n for n in names)
        assert b"PAT-9" not in (tmp_path / "out" / "images.csv").read_bytes()


def test_dicom_without_pixel_data_is_an_error_row(tmp_path):
    from pipeline.imageio import ImageReadError, read_frame

    path = tmp_path / "empty.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    with pytest.raises(ImageReadError, match="empty.dcm"):
        read_frame(path)


# ----------------------------------------------------------------------------- quality gate


def _field(img):
    valid, rows = segment.frame_regions(img)
    return valid, rows


def _textured(seed=1) -> np.ndarray:
    img = _skin(seed=seed)
    for k in range(12):  # a few dark shafts so the frame has structure
        r = 80 + 70 * k
        cv2.line(img, (100 + 40 * k, r), (300 + 40 * k, r + 60), (40, 30, 25), 18)
    return img


def test_sharp_frame_passes_and_blurred_frame_is_flagged():
    sharp = _textured()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    q_sharp = quality.assess(sharp, *_field(sharp), um_per_px=2.78)
    q_blur = quality.assess(blurred, *_field(blurred), um_per_px=2.78)
    assert q_sharp["quality_flags"] == "" and q_sharp["focus_score"] > Settings().min_focus_score
    assert q_blur["quality_flags"] == "blurred"


def test_overexposed_and_dark_frames_are_flagged():
    img = _textured()
    bright = np.clip(img.astype(int) + 120, 0, 255).astype(np.uint8)
    dark = (img // 40).astype(np.uint8)
    assert "overexposed" in quality.assess(bright, *_field(bright), um_per_px=2.78)["quality_flags"]
    assert "underexposed" in quality.assess(dark, *_field(dark), um_per_px=2.78)["quality_flags"]


def test_exposure_is_read_over_the_field_rows_in_one_run_or_several():
    """Over-exposure is the share of the field's pixels at 250 or more, the field one run of rows (read as a
    view) or several (read by the bools): 50 white rows over 974 and over 874 field rows."""
    img = _textured()
    img[:100] = 255
    valid = np.ones(img.shape[:2], bool)
    one = np.zeros(img.shape[0], bool)
    one[50:] = True
    two = one.copy()
    two[500:600] = False
    for rows, share in ((one, 50 / 974), (two, 50 / 874)):
        q = quality.assess(img, valid, rows, um_per_px=2.78)
        assert q["overexposed_pct"] == round(100 * share, 3)


def test_focus_score_does_not_depend_on_magnification():
    """The same skin at 2.5 and at 5 µm/px scores within 25% (both resampled to 5 µm/px)."""
    img = _textured()
    half = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    a = quality.focus_score(img, um_per_px=2.5)
    b = quality.focus_score(half, um_per_px=5.0)
    assert abs(a - b) / b < 0.25


@pytest.mark.skipif(not FDU.is_dir(), reason="../shared/data/fdu_val not present (team-only evaluation data)")
def test_no_real_frame_sample_is_flagged_blurred():
    for path in sorted(FDU.glob("*.jpg"))[::10]:
        image = cv2.imread(str(path))[..., ::-1].copy()
        q = quality.assess(image, *_field(image), um_per_px=2.78)
        assert "blurred" not in q["quality_flags"], (path.name, q)


@pytest.mark.parametrize("thickness", [2, 3])
def test_bar_reads_the_same_turned_or_flipped(thickness):
    """An L drawn as the phantoms draw it reads the same leg lengths mirrored either way (session 60: a leg's
    line was placed half a pixel past its centre, so a flipped bar read a pixel longer or shorter)."""
    img = _skin()
    img[950 - thickness + 1:951, 40:400] = 45
    img[591:951, 40:40 + thickness] = 45
    found = [segment.find_scale_bar(np.ascontiguousarray(img if f is None else cv2.flip(img, f)))
             for f in (None, 0, 1, -1)]
    lengths = {(h, v) for _, h, v in found}
    assert len(lengths) == 1
    (h, v), = lengths
    assert h == v == pytest.approx(360 - (thickness - 1) / 2)


def _pillarboxed(view: np.ndarray, side: int, level=(0, 0, 0)) -> np.ndarray:
    framed = np.zeros((view.shape[0], view.shape[1] + 2 * side, 3), np.uint8)
    framed[:] = level
    framed[:, side:side + view.shape[1]] = view
    return framed


def test_side_bars_are_no_skin_and_keep_density():
    """A 4:3 view saved in a 16:9 frame (black bars, a line of device text and a logo in one, JPEG): the bars are
    not skin, the view's padding strip is still found, the frame is not flagged underexposed, and the count,
    the counted area and the density are the view's own, with short hairs cut by the view's edge kept as they
    are at a frame's border (before session 60 the bars entered the area: 25% less density)."""
    from pipeline.core import analyze_frame

    view = _skin((768, 1024))
    for k in range(6):
        r = 80 + 100 * k
        cv2.line(view, (300 + 40 * k, r), (500 + 40 * k, r + 60), (40, 30, 25), 12)
        cv2.line(view, (0, r + 30), (24, r + 30), (40, 30, 25), 12)  # stubs the view's edges cut
        cv2.line(view, (1023 - 24, r + 50), (1023, r + 50), (40, 30, 25), 12)
    view[-60:] = (128, 128, 128)  # a padding strip
    side = 170
    framed = _pillarboxed(view, side)
    cv2.putText(framed, "70x", (8, 300), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (240, 240, 240), 1)
    cv2.circle(framed, (side // 2, 500), 40, (30, 90, 200), -1)
    ok, buf = cv2.imencode(".jpg", framed[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    framed = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    valid, rows = segment.frame_regions(framed)
    valid_view, rows_view = segment.frame_regions(view)
    assert not valid[:, :side].any() and not valid[:, side + view.shape[1]:].any()
    assert (rows != rows_view).sum() <= 2 and not rows[-58:].any()  # the strip's first row is JPEG-blurred
    assert valid[:, side:side + view.shape[1]].mean() == pytest.approx(valid_view.mean(), abs=0.005)
    a, b = analyze_frame(view, um_per_px=2.78), analyze_frame(framed, um_per_px=2.78)
    assert b.metrics["hair_count"] == a.metrics["hair_count"] >= 12
    assert b.metrics["density_per_cm2"] == pytest.approx(a.metrics["density_per_cm2"], rel=0.01)
    assert "underexposed" not in b.metrics["quality_flags"]


def test_a_pillarboxed_frame_reads_as_its_view_alone():
    """A phantom view in a 16:9 frame with black bars is measured as the view alone (session 61; before, a hair
    at the view's edge was read as beside masked skin, not at a border): the same hairs and metrics, columns
    shifted by the bar, the maps empty over the bars."""
    from pipeline.core import analyze_frame
    from pipeline.synth import render_frame, sample_scene

    rng = np.random.default_rng([61, 3])
    view, truth = render_frame(sample_scene(rng, height=768, width=1024, um_per_px=2.78), rng)
    side = 170
    framed = _pillarboxed(view, side)
    assert segment.view_columns(framed) == slice(side, side + 1024) and segment.view_columns(view) is None
    a, b = analyze_frame(view, um_per_px=2.78), analyze_frame(framed, um_per_px=2.78)
    assert a.metrics["hair_count"] >= 5 and b.metrics == a.metrics
    shifted = a.hairs.copy()
    shifted[["col", "mid_col"]] += side
    pd.testing.assert_frame_equal(b.hairs, shifted)
    for p, q in zip(a.paths, b.paths):
        np.testing.assert_array_equal(q, p + [0, side])
    for m, n in ((a.valid, b.valid), (a.mask, b.mask), (a.probability, b.probability)):
        np.testing.assert_array_equal(n[:, side:side + 1024], m)
        assert not n[:, :side].any() and not n[:, side + 1024:].any()


def test_a_view_too_narrow_to_measure_is_refused_between_its_bars():
    """An 80 px wide view is refused as it would be saved alone (116 px needed at 2.78 µm/px), also between bars."""
    from pipeline.core import UnusableImageError, analyze_frame

    view = _skin((200, 80))
    with pytest.raises(UnusableImageError, match="too small"):
        analyze_frame(view, um_per_px=2.78)
    with pytest.raises(UnusableImageError, match="the view between its side bars .columns 40-119.: image is 80 x 200"):
        analyze_frame(_pillarboxed(view, 40), um_per_px=2.78)


@pytest.mark.parametrize("width_share, level", [(0.22, (0, 0, 0)), (0.125, (60, 60, 60))])
def test_wide_and_grey_side_bars_are_found_whole(width_share, level):
    """A square view in a 16:9 frame (bars 22% of the width a side) and flat dark-grey bars are removed whole."""
    n = 1280
    side = int(width_share * n)
    framed = _pillarboxed(_skin((720, n - 2 * side)), side, level)
    bars = segment._side_bars(framed)
    assert bars[:side].all() and bars[n - side:].all() and not bars[side + 2:n - side - 2].any()


def test_smooth_vignetted_skin_at_the_side_is_skin():
    """A smooth skin edge darkened by vignetting (about 40 levels under the middle) is not a side bar."""
    img = _skin()
    ramp = np.linspace(0, 1, 120)[None, :, None]
    img[:, -120:] = (img[:, -120:] * (1 - 0.3 * ramp)).astype(np.uint8)
    assert segment.frame_regions(img)[0].all()
