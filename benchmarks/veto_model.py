"""The brightness map's veto model on white hair over dark skin: candidates side by side.

Usage::

    python benchmarks/veto_model.py --models hairnet-light-v2 hairnet-light-v3 --seed 521 --n 12 --out /tmp/veto

Light hair on dark skin (skin tones 4-6) is read on a brightness map, and a
component of it is kept only where ``Settings.bright_veto_model``'s map sees
it (``pipeline.frame._seen_by_model``).  For each skin tone this renders
``--n`` phantoms of white hair (seed ``--seed`` + k for the k-th tone), runs
the core once per candidate model in that role (every other setting the
default) and prints count MAPE, recall, precision and thickness MAE.  Seeds
below 1000 are tuning seeds.  Writes OUT/veto_model.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.batch import run_batch
from pipeline.settings import Settings
from pipeline.synth import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from light_model import print_table, scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["hairnet-light-v2", "hairnet-light-v3"])
    ap.add_argument("--tones", nargs="+", type=int, default=[4, 5, 6], help="Fitzpatrick skin tones")
    ap.add_argument("--seed", type=int, default=521)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("/tmp/veto_model"))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for k, tone in enumerate(a.tones):
        frames = a.out / f"frames_tone{tone}"
        if not (frames / "manifest.csv").is_file():
            generate(frames, a.n, a.seed + k, hair_color="white", skin_tone=tone)
        for model in a.models:
            run = a.out / f"run_tone{tone}_{Path(model).name}"
            run_batch([frames], run, workers=a.workers, settings=Settings(bright_veto_model=model), overlays=False,
                      progress=False)
            results.setdefault(f"skin tone {tone}", {})[model] = scores(run, frames)
    print(f"white hair, seeds {a.seed}..{a.seed + len(a.tones) - 1}, {a.n} frames per skin tone")
    print_table(results, a.models)
    (a.out / "veto_model.json").write_text(json.dumps({"seed": a.seed, "n": a.n, "results": results}, indent=2))


if __name__ == "__main__":
    main()
