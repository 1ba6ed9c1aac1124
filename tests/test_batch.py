"""run_batch / collect_inputs with a fake core of known answers (see conftest)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import frame_with_hairs, tree_digest, write_png
from pipeline import core
from pipeline.batch import (
    NO_CALIBRATION_NOTE, BatchError, Frame, collect_inputs, hair_columns, image_columns, overlay_name,
    run_batch, series_routes,
)
from pipeline.settings import Settings

IMAGE_COLUMNS = [
    "image", "um_per_px", "area_cm2", "hair_count", "density_per_cm2", "mean_thickness_um",
    "median_thickness_um", "vellus_count", "intermediate_count", "terminal_count",
    "cumulative_thickness_mm_per_cm2", "follicular_units", "hairs_per_unit", "status", "error",
    "vellus_share_pct", "intermediate_share_pct", "terminal_share_pct", "units_per_cm2",
    "single_hair_unit_share_pct", "note",
    "focus_score", "overexposed_pct", "underexposed_pct", "glare_pct", "skin_pct", "quality_flags",
    "segmenter", "route", "route_source", "long_shaft_pct",
]
TAIL = ["calibration_source", "sha256", "width_px", "height_px"]
HAIRS_COLUMNS = [
    "image", "hair_id", "unit_id", "row", "col", "length_um", "thickness_um", "class",
    "length_px", "thickness_px", "touches_border", "root_known", "mid_row", "mid_col",
]


def _read(out, name="images.csv"):
    return pd.read_csv(out / name, keep_default_na=False, na_values=[""], dtype={"patient_id": str})


def _run(inputs, out, **kwargs):
    kwargs.setdefault("progress", False)
    return run_batch(inputs, out, **kwargs)


# ----------------------------------------------------------------------------- column contract


def test_column_contract():
    assert image_columns() == IMAGE_COLUMNS + TAIL
    assert image_columns(["extra", "site", "patient_id"]) == IMAGE_COLUMNS + ["patient_id", "site", "extra"] + TAIL
    assert hair_columns() == HAIRS_COLUMNS
    assert overlay_name("sub/dir/a.JPG") == "sub__dir__a.png"


# ----------------------------------------------------------------------------- a folder with one bad file


def test_folder_with_one_empty_file(tmp_path, good_folder, fake_core):
    (good_folder / "zz_empty.png").write_bytes(b"")
    out = tmp_path / "out"
    summary = _run([good_folder], out, um_per_px=5.0)

    assert (summary.n_frames, summary.n_ok, summary.n_error, summary.exit_code) == (10, 9, 1, 1)
    assert summary.n_hairs == sum(range(9))
    images = _read(out)
    assert list(images.columns) == IMAGE_COLUMNS + TAIL
    assert list(images["image"]) == [f"img_{k}.png" for k in range(9)] + ["zz_empty.png"]
    assert list(images["status"]) == ["ok"] * 9 + ["error"]
    assert list(images["hair_count"].iloc[:9]) == list(range(9))
    bad = images.iloc[9]
    assert bad["error"] == f"{good_folder / 'zz_empty.png'}: file is empty (0 bytes), probably an " \
        "interrupted copy or export; copy or export it again"
    assert math.isnan(bad["hair_count"])
    assert bad["sha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    ok = images.iloc[3]
    assert ok["um_per_px"] == 5.0 and ok["calibration_source"] == "cli"
    assert (ok["width_px"], ok["height_px"]) == (100, 100)
    assert ok["area_cm2"] == pytest.approx(100 * 100 * 25e-8)
    assert ok["density_per_cm2"] == pytest.approx(3 / (100 * 100 * 25e-8))
    assert pd.isna(ok["error"]) and pd.isna(ok["note"])

    hairs = _read(out, "hairs.csv")
    assert list(hairs.columns) == HAIRS_COLUMNS
    assert len(hairs) == 36
    assert list(hairs.loc[hairs["image"] == "img_2.png", "thickness_um"]) == [50.0, 50.0]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [f"img_{k}.png" for k in range(9)]
    assert not (out / "errors.log").exists()


def test_run_json(tmp_path, good_folder, fake_core):
    from pipeline.settings import Settings

    out = tmp_path / "out"
    settings = Settings(vellus_max_um=25.0)
    _run([good_folder], out, um_per_px=2.5, settings=settings)
    record = json.loads((out / "run.json").read_text())
    import pipeline

    assert record["version"] == pipeline.__version__
    assert record["settings"] == settings.to_dict()
    assert record["settings_digest"] == settings.digest()
    assert record["inputs"] == [str(good_folder)]
    assert (record["um_per_px"], record["workers"]) == (2.5, 1)
    assert record["frames"] == {"total": 9, "ok": 9, "error": 0, "skipped": 0, "flagged": 0}
    assert (record["frames_measured"], record["frames_reused"]) == (9, 0)
    assert record["store"].endswith("results.sqlite")
    assert record["model"]["role"] == "light_hair" and record["model"]["name"] == settings.light_hair_model
    assert len(record["model"]["sha256"]) == 64
    from pipeline.learned import read_digests, resolve

    run = record["model"]["weights_run"]  # the file that ran and its digest: float ONNX by default
    assert run == "weights.onnx"
    assert record["model"]["weights_run_sha256"] == read_digests(resolve(settings.light_hair_model))[run]
    assert [(m["role"], m["name"]) for m in record["models"]] == [
        ("light_hair", settings.light_hair_model), ("bright_veto", settings.bright_veto_model),
        ("dark_frame", settings.dark_frame_model), ("seam", settings.seam_model)]
    assert record["started_utc"].endswith("+00:00") and record["finished_utc"] >= record["started_utc"]
    assert set(record["seconds"]) == {"total", "per_frame_mean", "per_frame_median", "per_frame_max"}
    assert set(record["environment"]) >= {"python", "numpy", "opencv", "platform"}


def test_internal_error_is_one_row_and_a_traceback(tmp_path, good_folder, monkeypatch):
    def broken(image, *, um_per_px, settings):
        raise RuntimeError("shaft tracer\nfell over")

    monkeypatch.setattr(core, "analyze_frame", broken)
    out = tmp_path / "out"
    summary = _run([good_folder / "img_1.png"], out)
    images = _read(out)
    assert summary.exit_code == 1 and summary.n_internal_errors == 1
    assert images.loc[0, "error"] == "internal error: RuntimeError: shaft tracer fell over"
    assert "Traceback" in (out / "errors.log").read_text()


def test_photo_in_a_format_not_read_gets_its_own_row(tmp_path, good_folder, fake_core):
    (good_folder / "zz_phone.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (good_folder / "notes.txt").write_text("not a photo: not walked")
    out = tmp_path / "out"
    summary = _run([good_folder], out, um_per_px=5.0)
    images = _read(out)
    assert (summary.n_frames, summary.n_ok, summary.n_error) == (10, 9, 1)
    bad = images.iloc[9]
    assert bad["image"] == "zz_phone.HEIC" and bad["status"] == "error"
    assert bad["error"].startswith(f"{good_folder / 'zz_phone.HEIC'}: HEIC/HEIF photos are not read: export them as JPEG")


def test_frame_too_small_to_measure_is_a_plain_error_row(tmp_path):
    write_png(tmp_path / "in" / "thumb.png", np.full((20, 30, 3), 200, np.uint8))
    out = tmp_path / "out"
    summary = _run([tmp_path / "in"], out, um_per_px=5.0)
    images = _read(out)
    assert summary.n_error == 1 and summary.n_internal_errors == 0
    assert images.loc[0, "error"] == (
        f"{tmp_path / 'in' / 'thumb.png'}: image is 30 x 20 px, too small to measure: its shorter side needs "
        "at least 64 px (0.32 mm at 5 µm/px); check that this is the full photo and not a thumbnail or a crop, "
        "and that the pixel size is right")


# ----------------------------------------------------------------------------- calibration


def test_no_pixel_size_gives_counts_only(tmp_path, good_folder, fake_core):
    out = tmp_path / "out"
    summary = _run([good_folder], out)
    images = _read(out)
    assert summary.exit_code == 0 and summary.mean_density_per_cm2 is None
    assert list(images["hair_count"]) == list(range(9))
    for column in ("um_per_px", "area_cm2", "density_per_cm2", "mean_thickness_um",
                   "cumulative_thickness_mm_per_cm2", "units_per_cm2"):
        assert images[column].isna().all(), column
    assert set(images["note"]) == {NO_CALIBRATION_NOTE}
    assert set(images["calibration_source"]) == {"none"}
    hairs = _read(out, "hairs.csv")
    assert hairs["thickness_um"].isna().all() and hairs["length_um"].isna().all()
    assert list(hairs["thickness_px"].iloc[:1]) == [10.0]


def test_core_note_about_pixel_size_is_not_repeated(tmp_path, good_folder, monkeypatch):
    from conftest import fake_analyze_frame

    def noting(image, *, um_per_px, settings):
        result = fake_analyze_frame(image, um_per_px=um_per_px)
        result.metrics["note"] = "no pixel size: give --um-per-px for µm and density"
        return result

    monkeypatch.setattr(core, "analyze_frame", noting)
    _run([good_folder / "img_1.png"], tmp_path / "out")
    assert _read(tmp_path / "out").loc[0, "note"] == "no pixel size: give --um-per-px for µm and density"


# ----------------------------------------------------------------------------- manifests


def _manifest(folder, text):
    (folder / "manifest.csv").write_text(text)


def test_manifest_metadata_and_calibration(tmp_path, good_folder, fake_core):
    _manifest(good_folder, "image,um_per_px,patient_id,site,session_date,field_id,operator\n"
                           "img_2.png,2.0,007,crown,2024-03-01,1,AB\n"
                           "img_4.png,,007,crown,2024-03-01,2,AB\n")
    out = tmp_path / "out"
    summary = _run([good_folder], out, um_per_px=4.0)
    images = _read(out)
    assert list(images.columns) == IMAGE_COLUMNS + ["patient_id", "site", "session_date", "field_id",
                                                    "operator"] + TAIL
    assert list(images["image"]) == ["img_2.png", "img_4.png"] + [f"img_{k}.png" for k in (0, 1, 3, 5, 6, 7, 8)]
    assert list(images["calibration_source"]) == ["manifest", "cli"] + ["cli"] * 7
    assert list(images["um_per_px"][:2]) == [2.0, 4.0]
    assert list(images["patient_id"][:2]) == ["007", "007"]
    assert list(images["field_id"][:2]) == [1, 2]
    assert images["patient_id"][2:].isna().all()
    assert images["note"][2] == "not listed in manifest.csv: processed without its metadata or pixel size"
    assert pd.isna(images["note"][0])
    assert summary.exit_code == 0


def test_manifest_row_problems_become_error_rows(tmp_path, good_folder, fake_core):
    _manifest(good_folder, "image,um_per_px\n"
                           "img_1.png,2.5\n"
                           "missing.png,2.5\n"
                           "img_2.png,abc\n"
                           "img_3.png,-1\n"
                           ",2.5\n"
                           "sub/../img_1.png,2.5\n")  # the same image by another path (session 59: dropped unsaid)
    manifest = good_folder / "manifest.csv"
    out = tmp_path / "out"
    summary = _run([good_folder], out)
    images = _read(out).set_index("image")
    assert summary.n_error == 5 and summary.exit_code == 1
    assert images.loc["img_1.png", "status"].tolist() == ["ok", "error"]
    assert images.loc["missing.png", "error"] == (
        f"{manifest} line 3: listed image missing.png not found at {good_folder / 'missing.png'}; "
        "fix the path in the manifest or add the file")
    assert images.loc["img_2.png", "error"] == (
        f"{manifest} line 4: um_per_px 'abc' is not a pixel size (a positive number of micrometres per pixel, "
        "at most 100); write it as e.g. 2.78 or leave the cell empty")
    assert images.loc["img_3.png", "error"].startswith(f"{manifest} line 5: um_per_px '-1' is not a pixel size")
    assert images.loc["(manifest.csv line 6)", "error"].startswith(f"{manifest} line 6: empty 'image' cell")
    assert images.loc["img_1.png", "error"].tolist()[1] == (
        f"{manifest} line 7: img_1.png is already listed on line 2; keep one row per image")
    # listed with a bad row: not processed a second time as "unlisted"
    assert len(images) == 6 + 6  # 6 manifest rows + img_0, img_4..img_8


@pytest.mark.parametrize("text, message", [
    ("file,um_per_px\na.png,2\n", "line 1: no 'image' column (found: file, um_per_px)"),
    ("", "empty manifest"),
    ('image\n"a.png\n', "not parseable as CSV"),
])
def test_unreadable_manifest_is_a_batch_error(tmp_path, good_folder, fake_core, text, message):
    _manifest(good_folder, text)
    with pytest.raises(BatchError) as info:
        _run([good_folder], tmp_path / "out")
    assert str(good_folder / "manifest.csv") in str(info.value)
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()


def test_manifest_not_utf8(tmp_path, good_folder):
    (good_folder / "manifest.csv").write_bytes(b"image\n\xff\xfe.png\n")
    with pytest.raises(BatchError, match="not UTF-8 text"):
        collect_inputs([good_folder])


def test_manifest_given_as_a_file(tmp_path, good_folder):
    _manifest(good_folder, "Image , UM_PER_PX\nimg_3.png,1.5\n")
    frames = collect_inputs([good_folder / "manifest.csv"])
    assert frames[0] == Frame(good_folder / "img_3.png", "img_3.png", {}, 1.5)
    assert len(frames) == 9


# ----------------------------------------------------------------------------- inputs


def test_collect_inputs_walks_sorted_and_skips_output(tmp_path, fake_core):
    folder = tmp_path / "in"
    for name in ["b/2.PNG", "a.jpg", "b/1.tif", ".hidden/x.png", "notes.txt", "out/old.png"]:
        write_png(folder / name, frame_with_hairs(1)) if name.endswith(("PNG", "png", "tif", "jpg")) \
            else (folder / name).write_text("x")
    frames = collect_inputs([folder], out_dir=folder / "out")
    assert [f.key for f in frames] == ["a.jpg", "b/1.tif", "b/2.PNG"]
    assert [f.path for f in frames] == [folder / "a.jpg", folder / "b/1.tif", folder / "b/2.PNG"]


def test_walk_finds_jfif_and_bare_dicom_and_skips_an_earlier_run(tmp_path, fake_core):
    """``.jfif`` (a browser's JPEG) and DICOM without an extension (``IM000001``) are frames; an earlier run's
    output beside the photos is not (its overlays were read as frames); a JPEG named ``.dcm`` is read as a JPEG
    (session 59)."""
    import cv2

    from pipeline.imageio import read_frame

    folder = tmp_path / "in"
    write_png(folder / "a.png", frame_with_hairs(1))
    cv2.imwrite(str(folder / "b.jpg"), frame_with_hairs(2))
    (folder / "b.jpg").rename(folder / "b.jfif")
    dicom = (folder / "IM000001")
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    (folder / "README").write_text("not an image")
    _run([folder], folder / "run1")
    assert (folder / "run1" / "overlays").is_dir()
    frames = collect_inputs([folder], out_dir=tmp_path / "run2")
    assert [f.key for f in frames] == ["IM000001", "a.png", "b.jfif"]
    cv2.imwrite(str(tmp_path / "photo.jpg"), frame_with_hairs(3))
    (tmp_path / "photo.jpg").rename(tmp_path / "photo.dcm")
    pixels, info = read_frame(tmp_path / "photo.dcm")
    assert pixels.shape == (100, 100, 3) and info == {}


def test_files_taken_as_given_and_keys_do_not_clash(tmp_path, fake_core):
    one, two = tmp_path / "one", tmp_path / "two"
    write_png(one / "a.png", frame_with_hairs(1))
    write_png(two / "a.png", frame_with_hairs(2))
    (one / "notes.txt").write_text("not an image")
    frames = collect_inputs([one / "notes.txt", one, two, one / "a.png"])
    assert [f.key for f in frames] == ["notes.txt", "a.png", "two/a.png"]
    out = tmp_path / "out"
    summary = _run([one / "notes.txt", one, two], out)
    images = _read(out)
    assert list(images["status"]) == ["error", "ok", "ok"]
    assert "not an image" in images.loc[0, "error"] and "notes.txt" in images.loc[0, "error"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "two__a.png"]
    assert summary.exit_code == 1


def test_missing_input_is_a_batch_error(tmp_path):
    with pytest.raises(BatchError, match="input not found: .*nope"):
        run_batch([tmp_path / "nope"], tmp_path / "out", progress=False)


def test_no_images_is_a_batch_error(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(BatchError, match="no images found"):
        run_batch([tmp_path / "in"], tmp_path / "out", progress=False)


@pytest.mark.parametrize("kwargs", [{"um_per_px": 0.0}, {"um_per_px": float("nan")}, {"workers": 0}])
def test_bad_options_are_batch_errors(tmp_path, good_folder, kwargs):
    with pytest.raises(BatchError):
        run_batch([good_folder], tmp_path / "out", progress=False, **kwargs)


def test_output_inside_input_folder_is_skipped_and_inputs_unchanged(tmp_path, good_folder, fake_core):
    _manifest(good_folder, "image,um_per_px\nimg_1.png,3\n")
    before = tree_digest(good_folder)
    out = good_folder / "results"
    _run([good_folder], out, um_per_px=2.0)
    _run([good_folder], out, um_per_px=2.0)  # second run must not pick up the first run's overlays
    after = {k: v for k, v in tree_digest(good_folder).items() if not k.startswith("results/")}
    assert after == before
    assert len(_read(out)) == 9
    assert not [p for p in out.rglob("*.tmp")]


def test_output_equal_to_input_is_refused(tmp_path, good_folder):
    with pytest.raises(BatchError, match="also an input folder"):
        run_batch([good_folder], good_folder, progress=False)


def test_inputs_unchanged(tmp_path, good_folder, fake_core):
    (good_folder / "bad.jpg").write_text("text")
    before = tree_digest(tmp_path)
    _run([good_folder], tmp_path / "out", um_per_px=2.0)
    after = {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("out/")}
    assert after == before


# ----------------------------------------------------------------------------- workers


def test_two_workers_give_the_same_tables(tmp_path, good_folder, fake_core):
    (good_folder / "empty.png").write_bytes(b"")
    _run([good_folder], tmp_path / "one", um_per_px=2.0, workers=1)
    summary = _run([good_folder], tmp_path / "two", um_per_px=2.0, workers=2)
    assert summary.n_ok == 9 and summary.n_error == 1
    for name in ("images.csv", "hairs.csv"):
        one = (tmp_path / "one" / name).read_text().replace(str(tmp_path / "one"), "OUT")
        two = (tmp_path / "two" / name).read_text().replace(str(tmp_path / "two"), "OUT")
        assert one == two
    assert sorted(p.name for p in (tmp_path / "two" / "overlays").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "overlays").iterdir())


def test_a_worker_that_dies_fails_only_its_own_frame(tmp_path, good_folder, monkeypatch):
    """A process killed mid-frame broke the pool and every unfinished frame failed with it (session 59)."""
    from conftest import dying_analyze_frame

    monkeypatch.setattr(core, "analyze_frame", dying_analyze_frame)
    summary = _run([good_folder], tmp_path / "out", um_per_px=2.0, workers=2)
    images = _read(tmp_path / "out").set_index("image")
    assert (summary.n_ok, summary.n_error) == (8, 1)
    assert images.loc["img_5.png", "status"] == "error" and "worker process" in images.loc["img_5.png", "error"]
    assert images.drop(index="img_5.png")["hair_count"].tolist() == [0, 1, 2, 3, 4, 6, 7, 8]


def test_unpicklable_core_with_workers_is_a_batch_error(tmp_path, good_folder, monkeypatch):
    monkeypatch.setattr(core, "analyze_frame", lambda image, **kw: None)
    with pytest.raises(BatchError, match="cannot be sent to worker processes"):
        run_batch([good_folder], tmp_path / "out", workers=2, progress=False)


def test_progress_bar_runs(tmp_path, good_folder, fake_core):
    from rich.console import Console

    console = Console(record=True, width=120, force_terminal=False)
    _run([good_folder], tmp_path / "out", progress=True, console=console)
    assert "9/9" in console.export_text()


# ----------------------------------------------------------------------------- real core, end to end


def test_end_to_end_with_the_real_core(tmp_path):
    image = np.full((256, 320, 3), (196, 150, 130), dtype=np.uint8)
    for col in (60, 150, 240):
        image[20:230, col:col + 6] = (50, 35, 30)
    write_png(tmp_path / "in" / "bars.png", image)
    out = tmp_path / "out"
    summary = run_batch([tmp_path / "in"], out, um_per_px=5.0, progress=False)
    images, hairs = _read(out), _read(out, "hairs.csv")
    assert summary.exit_code == 0, summary.errors
    assert list(images.columns) == IMAGE_COLUMNS + TAIL
    assert list(hairs.columns) == HAIRS_COLUMNS
    assert len(hairs) == int(images.loc[0, "hair_count"]) == summary.n_hairs
    assert (out / "overlays" / "bars.png").is_file()


# ----------------------------------------------------------------------------- one route per spot of a course


def routed_fake_frame(image, *, um_per_px, settings=None):
    """``fake_analyze_frame`` with a route: a frame of 3 hairs takes the brightness map on its own and
    reads no hair there; any frame follows a fixed ``settings.route``."""
    from conftest import fake_analyze_frame

    res = fake_analyze_frame(image, um_per_px=um_per_px, settings=settings)
    fixed = settings is not None and settings.route != "auto"
    route = settings.route if fixed else ("bright" if res.metrics["hair_count"] == 3 else "dark")
    if route == "bright":
        res = fake_analyze_frame(np.full_like(image, 255), um_per_px=um_per_px, settings=settings)
    res.metrics.update(route=route, route_source="fixed" if fixed else "frame")
    return res


def _images(rows):
    cols = ["image", "status", "patient_id", "site", "field_id", "session_date", "route"]
    return pd.DataFrame(rows, columns=cols)


def test_series_routes_exact():
    images = _images([
        ("a1", "ok", "P", "crown", 1, "2024-01-03", "dark"),
        ("a2", "ok", "P", "crown", 1, "2024-01-01", "bright"),
        ("a3", "ok", "P", "crown", 1, "2024-01-02", "dark"),
        ("b1", "ok", "P", "crown", 2, "2024-01-02", "colour+model"),   # tie: the earliest session wins
        ("b2", "ok", "P", "crown", 2, "2024-01-01", "dark+model"),
        ("c1", "ok", "Q", "crown", 1, "2024-01-01", "bright"),         # a spot of its own
        ("c2", "error", "Q", "crown", 1, "2024-01-02", None),
        ("d1", "ok", None, "crown", 1, "2024-01-01", "colour"),        # no patient: no spot
    ])
    assert series_routes(images).to_dict() == {1: "dark", 3: "dark+model"}
    assert series_routes(images.drop(columns="patient_id")).empty
    assert series_routes(images.drop(columns="field_id")).to_dict() == {1: "dark", 3: "dark", 4: "dark"}


def test_a_spot_is_read_one_way_over_a_course(tmp_path, good_folder, monkeypatch):
    monkeypatch.setattr(core, "analyze_frame", routed_fake_frame)
    _manifest(good_folder, "image,patient_id,site,session_date,field_id\n"
                           "img_2.png,P,crown,2024-01-01,1\n"
                           "img_3.png,P,crown,2024-01-15,1\n"
                           "img_4.png,P,crown,2024-01-29,1\n"
                           "img_5.png,P,crown,2024-01-01,2\n")
    out = tmp_path / "out"
    _run([good_folder / "manifest.csv"], out, um_per_px=2.0)
    images = _read(out).set_index("image")
    assert images.loc["img_3.png", ["hair_count", "route", "route_source"]].tolist() == [3, "dark", "series"]
    assert (images.drop("img_3.png")["route_source"] == "frame").all()
    hairs = pd.read_csv(out / "hairs.csv")
    assert (hairs["image"] == "img_3.png").sum() == 3
    again = _run([good_folder / "manifest.csv"], out, um_per_px=2.0)  # the store has both readings
    assert json.loads((out / "run.json").read_text())["frames_measured"] == 0
    assert _read(out).set_index("image").loc["img_3.png", "hair_count"] == 3
    assert again.exit_code == 0

    own = tmp_path / "own"
    _run([good_folder / "manifest.csv"], own, um_per_px=2.0, settings=Settings(series_route=False))
    assert _read(own).set_index("image").loc["img_3.png", ["hair_count", "route", "route_source"]].tolist() == [
        0, "bright", "frame"]


def test_result_key_follows_the_weights_a_model_runs(monkeypatch):
    """Re-quantizing or retraining a model under the same name must not reuse results measured with the old one."""
    from pipeline import batch
    from pipeline.settings import Settings

    monkeypatch.setattr(batch, "_models_record", lambda s: [{"weights_run_sha256": "a" * 64}])
    before = batch._result_digest(Settings())
    monkeypatch.setattr(batch, "_models_record", lambda s: [{"weights_run_sha256": "b" * 64}])
    assert batch._result_digest(Settings()) != before
    assert batch._result_digest(Settings(vellus_max_um=25.0)) != batch._result_digest(Settings())


def test_a_manifest_pixel_size_no_frame_can_have_is_named():
    from pipeline.batch import _parse_um_per_px

    assert _parse_um_per_px("2.78") == (2.78, None)
    value, message = _parse_um_per_px("278")
    assert value is None and "at most 100" in message
