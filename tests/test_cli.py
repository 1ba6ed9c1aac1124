"""The tricho command line: exit codes, messages without tracebacks, thin calls."""
from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest
from typer.testing import CliRunner

import pipeline
from pipeline.cli import app

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"tricho {pipeline.__version__}\n"


def test_analyze_all_ok(tmp_path, good_folder, fake_core):
    out = tmp_path / "out"
    result = _invoke("analyze", good_folder, "--out", out, "--um-per-px", "5")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("│"))
    # frames, ok, errors, flagged, skipped, reused, hairs
    assert row.replace("│", " ").split()[:7] == ["9", "9", "0", "0", "0", "0", "36"]
    images = pd.read_csv(out / "images.csv")
    assert list(images["hair_count"]) == list(range(9))
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [f"img_{k}.png" for k in range(9)]


def test_analyze_some_frames_fail(tmp_path, good_folder, fake_core):
    (good_folder / "broken.jpg").write_text("not a photo")
    result = _invoke("analyze", good_folder, "--out", tmp_path / "out", "--quiet", "--no-overlays")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (f"9/10 frames ok, 1 errors, 0 flagged, 0 skipped, 0 reused, "
                                             f"36 hairs -> {tmp_path / 'out'}")
    assert "broken.jpg" in result.stdout and "not an image file" in result.stdout
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "overlays").exists()


def test_analyze_missing_input(tmp_path):
    result = _invoke("analyze", tmp_path / "nope", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "input not found" in result.stderr and "nope" in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_analyze_unreadable_manifest(tmp_path, good_folder, fake_core):
    (good_folder / "manifest.csv").write_text("file\na.png\n")
    result = _invoke("analyze", good_folder, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "no 'image' column" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("option", [["--um-per-px", "0"], ["--workers", "0"], ["--um-per-px", "abc"]])
def test_analyze_bad_option(tmp_path, good_folder, option):
    result = _invoke("analyze", good_folder, "--out", tmp_path / "out", *option)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_analyze_needs_out(good_folder):
    result = _invoke("analyze", good_folder)
    assert result.exit_code == 2
    assert "--out" in result.output


def test_synth_calls_generate(tmp_path, monkeypatch):
    calls = []
    fake = types.SimpleNamespace(
        generate=lambda out, n, seed: calls.append(("generate", out, n, seed)) or pd.DataFrame({"i": range(n)}),
        generate_samples=lambda out: calls.append(("samples", out)) or pd.DataFrame({"i": range(4)}),
    )
    monkeypatch.setitem(sys.modules, "pipeline.synth", fake)
    result = _invoke("synth", tmp_path / "ph", "--n", "3", "--seed", "7")
    assert result.exit_code == 0
    assert result.stdout == f"wrote 3 frames to {tmp_path / 'ph'}\n"
    result = _invoke("synth", tmp_path / "s", "--samples")
    assert result.stdout == f"wrote 4 frames to {tmp_path / 's'}\n"
    assert calls == [("generate", tmp_path / "ph", 3, 7), ("samples", tmp_path / "s")]


def test_synth_module_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pipeline.synth", None)  # import raises ImportError
    result = _invoke("synth", tmp_path / "ph")
    assert result.exit_code == 2
    assert "phantom generator is not available" in result.stderr


class _EvaluationError(Exception):
    pass


def _fake_evaluate(monkeypatch, behaviour):
    calls = []

    def evaluate_command(run_dir, truth, out_json=None, um_per_px=2.78, margin_um=300, half=None, console=None):
        calls.append((run_dir, truth, out_json, um_per_px, margin_um, half))
        return behaviour()

    fake = types.SimpleNamespace(evaluate_command=evaluate_command, EvaluationError=_EvaluationError)
    monkeypatch.setitem(sys.modules, "pipeline.evaluate", fake)
    return calls


def test_evaluate_passes_options(tmp_path, monkeypatch):
    calls = _fake_evaluate(monkeypatch, lambda: 0)
    result = _invoke("evaluate", tmp_path / "run", "--truth", tmp_path / "truth", "--json", tmp_path / "e.json",
                     "--um-per-px", "3.5", "--margin-um", "150", "--half", "B")
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "run", tmp_path / "truth", tmp_path / "e.json", 3.5, 150.0, "B")]
    _invoke("evaluate", tmp_path / "run", "--truth", tmp_path / "truth")
    assert calls[1] == (tmp_path / "run", tmp_path / "truth", None, 2.78, 300.0, None)


def test_evaluate_error_exits_2(tmp_path, monkeypatch):
    def fail():
        raise _EvaluationError("truth folder has no truth JSON files; run tricho synth first")

    _fake_evaluate(monkeypatch, fail)
    result = _invoke("evaluate", tmp_path / "run", "--truth", tmp_path / "truth")
    assert result.exit_code == 2
    assert "truth folder has no truth JSON files" in result.stderr
    assert "Traceback" not in result.output


def test_evaluate_return_code_passes_through(tmp_path, monkeypatch):
    _fake_evaluate(monkeypatch, lambda: 1)
    assert _invoke("evaluate", tmp_path / "run", "--truth", tmp_path / "t").exit_code == 1


def test_evaluate_bad_half(tmp_path, monkeypatch):
    _fake_evaluate(monkeypatch, lambda: 0)
    assert _invoke("evaluate", tmp_path / "run", "--truth", tmp_path / "t", "--half", "C").exit_code == 2


def test_synth_set_fixes_scene_parameters(tmp_path):
    result = _invoke("synth", tmp_path / "ph", "--n", "1", "--seed", "95", "--set", "hair_color=brown",
                     "--set", "skin_tone=5", "--set", "scales=false", "--set", "height=240", "--set", "width=320")
    assert result.exit_code == 0, result.output
    truth = json.loads(next((tmp_path / "ph").glob("*.json")).read_text())
    p = truth["params"]
    assert (p["hair_color"], p["skin_tone"], p["scales"], p["height"], p["width"]) == ("brown", 5, False, 240, 320)


def test_synth_set_with_an_unknown_key_names_the_allowed_ones(tmp_path):
    result = _invoke("synth", tmp_path / "ph", "--set", "hair_colour=brown")
    assert result.exit_code == 2
    assert "hair_colour" in result.stderr and "hair_color" in result.stderr
    assert not (tmp_path / "ph").exists()


def test_analyze_set_reads_each_setting_as_its_type():
    from pipeline.settings import Settings

    s = Settings.from_overrides(["count_hidden_roots=false", "fused_ratio=2", "segmenter=learned"])
    assert s.count_hidden_roots is False and s.to_dict()["count_hidden_roots"] is False
    assert s.fused_ratio == 2.0 and s.segmenter == "learned"
    assert Settings.from_overrides(["count_hidden_roots=True"]).count_hidden_roots is True
    with pytest.raises(ValueError, match="count_hidden_roots takes true or false"):
        Settings.from_overrides(["count_hidden_roots=maybe"])
    with pytest.raises(ValueError, match="fused_ratio takes a number"):
        Settings.from_overrides(["fused_ratio=wide"])


def test_a_folder_without_manifest_is_named_as_given_in_the_warning(tmp_path, good_folder, fake_core):
    """The warning names the folder the user passed, not '.' (its path relative to itself)."""
    result = _invoke("analyze", good_folder, "--out", tmp_path / "out", "--no-overlays")
    assert result.exit_code == 0, result.output
    flat = "".join(result.output.split())  # rich may wrap a long path anywhere
    assert f"folder'{good_folder}':nomanifest.csv" in flat
    assert "folder'.'" not in flat


def test_synth_and_train_refuse_an_out_a_file_is_in_the_way_of_before_any_work(tmp_path):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["synth", str(blocker), "--n", "1"])
    assert res.exit_code == 2 and "a file is in the way" in res.output
    res = CliRunner().invoke(app, ["train", "--out", str(blocker), "--steps", "1", "--frames", "1"])
    assert res.exit_code == 2 and "a file is in the way" in res.output
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "s"), "--n", "1", "--set", "um_per_px=0"])
    assert res.exit_code == 2 and "um_per_px takes a number above 0" in res.output
    assert blocker.read_text() == "x"


def test_paths_and_ids_with_brackets_print_as_written(tmp_path, good_folder, fake_core):
    """Square brackets in a path are text, not rich markup (session 59: ``run[old]`` printed as ``run`` and
    ``run[/old]`` crashed after a finished run)."""
    for name in ("run[old]", "run[/old]"):
        result = _invoke("analyze", good_folder, "--out", tmp_path / name, "--um-per-px", "5")
        assert result.exit_code == 0, result.output
        assert name in result.output.replace("\n", "")
