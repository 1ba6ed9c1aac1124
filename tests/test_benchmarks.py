"""The benchmark scripts at least parse: they are run by hand, so nothing else would notice a syntax error."""
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_parses(script: Path):
    compile(script.read_text(encoding="utf-8"), str(script), "exec")


def _stages_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("phantom_stages", Path(__file__).resolve().parent.parent / "benchmarks" / "phantom_stages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hair(hair_id, unit_id, line, width_um=20.0):
    line = [list(map(float, p)) for p in line]
    return {"hair_id": hair_id, "unit_id": unit_id, "emergence_rc": line[0], "centerline_rc": line,
            "width_um": width_um}


def test_emergence_covered_by_another_units_shaft_only():
    ps = _stages_module()
    # at 2 um/px the half widths are 5 px: A runs along row 50; B emerges on A's shaft; C, A's unit-mate,
    # emerges on it too (a shared opening is not a cover); D emerges 20 px away
    a = _hair(0, 0, [(50, c) for c in range(10, 100)])
    b = _hair(1, 1, [(50 + r, 60) for r in range(0, 40)])
    c = _hair(2, 0, [(50 + r, 20 + r) for r in range(0, 30)])
    d = _hair(3, 2, [(70 + r, 90) for r in range(0, 30)])
    hairs = [a, b, c, d]
    assert ps.emergence_covered(hairs, hairs, 2.0).tolist() == [False, True, False, False]


def test_extra_kind_sorts_unmatched_hairs_by_what_lies_under_them():
    ps = _stages_module()
    a = _hair(0, 0, [(50, c) for c in range(10, 110)])
    out = _hair(1, 1, [(150, c) for c in range(10, 60)])  # the density rule does not count it
    truth = {"um_per_px": 2.0, "hairs": [a, out]}
    targets = [{**a, "centerline_rc": np.asarray(a["centerline_rc"])}]
    matched = {0: np.array([(50.0, c) for c in range(10, 60)])}  # the found hair's read centre line: A's first half
    piece = np.array([(50.0, c) for c in range(62, 108)])
    twin = np.array([(52.0, c) for c in range(12, 58)])
    skin = np.array([(300.0, c) for c in range(10, 60)])
    assert ps.extra_kind(piece, truth, targets, {0}, matched) == "piece of a found hair"
    assert ps.extra_kind(twin, truth, targets, {0}, matched) == "twin of a found hair"
    assert ps.extra_kind(piece, truth, targets, set(), {}) == "on a missed hair"
    assert ps.extra_kind(np.array(out["centerline_rc"]), truth, targets, {0}, matched) == "on an uncounted hair"
    assert ps.extra_kind(skin, truth, targets, {0}, matched) == "on skin"
