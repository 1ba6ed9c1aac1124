"""The benchmark scripts at least parse: they are run by hand, so nothing else would notice a syntax error."""
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_benchmark_parses(script: Path):
    compile(script.read_text(encoding="utf-8"), str(script), "exec")
