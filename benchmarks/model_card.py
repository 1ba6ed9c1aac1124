"""Write ``models/NAME/MODEL_CARD.md`` from the model's config and a measurement.

Usage::

    python benchmarks/compare_segmenters.py --model hairnet-v2 --out /tmp/segcmp
    python benchmarks/model_card.py --model hairnet-v2 --measured /tmp/segcmp/segmenters.json [--set-auto]

Every number in the card comes from ``config.json``, ``thresholds.json``,
``loss.csv`` or the measurement JSON, so the card cannot drift from what was
measured.  ``--set-auto`` writes ``auto_prefer`` into ``config.json`` by the
rule in the card (the learned path is preferred only when it is at least as
good as classical on fdu_val count MAPE and better on scalp_tiles Dice);
that changes no weights, so the sha256 stays valid.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from pipeline.learned import read_digests, resolve


def _f(v, nd=3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def prefer_learned(measured: dict) -> tuple[bool, str]:
    """The ``auto`` rule: learned when fdu_val MAPE (all) <= classical and tiles Dice (pooled) > classical."""
    try:
        fdu = measured["fdu_val"]
        tiles = measured["scalp_tiles"]
        m_l, m_c = fdu["learned"]["all"]["mape_pct"], fdu["classical"]["all"]["mape_pct"]
        d_l, d_c = tiles["learned"]["dice_pooled"], tiles["classical"]["dice_pooled"]
    except KeyError as exc:
        return False, f"not measured ({exc}); auto keeps the classical path"
    ok = m_l <= m_c and d_l > d_c
    why = (f"fdu_val count MAPE {m_l:.1f}% vs classical {m_c:.1f}%, scalp_tiles Dice {d_l:.3f} vs {d_c:.3f}: "
           + ("auto uses the learned path" if ok else "auto keeps the classical path"))
    return ok, why


def _backend_note(backend: str | None) -> str:
    """What ran the network, for the card's evaluation line (ONNX Runtime and torch count alike; int8 does not)."""
    if not backend:
        return ""
    same = "; ONNX Runtime and torch give the same counts" if backend in ("onnx", "torch") else ""
    return f" (network run by {backend}{same})"


def card(folder: Path, measured: dict) -> str:
    cfg = json.loads((folder / "config.json").read_text())
    th = json.loads((folder / "thresholds.json").read_text())
    shas = read_digests(folder)
    loss = list(csv.DictReader((folder / "loss.csv").open()))
    first, last = float(loss[0]["loss_smooth50"]), float(loss[-1]["loss_smooth50"])
    ok, why = prefer_learned(measured)
    lines = [
        f"# Model card: {folder.name}",
        "",
        "A compact U-Net (torch only, no pretrained weights, nothing downloaded) that predicts per pixel the hair "
        "shaft mask, shaft centre lines and a heat map of cut hair tips. Its hair map replaces the classical "
        "probability in `pipeline.frame.measure_frame`; the tip map splits touching shafts of one follicular "
        "unit (one cut tip per clipped hair). Everything after that (skeleton, measurement, counting rule, units) "
        "is the classical code.",
        "",
        "## Intended use",
        "Hair segmentation and counting in close-up trichoscopy frames (20x-70x, clipped scalp hair) inside this "
        "pipeline: `tricho analyze ... --segmenter learned` (or `auto`); on the classical path, when it is "
        "`Settings.dark_frame_model` (as `hairnet-v2` is), it runs on frames of dark hair to find grey or white "
        "shafts among the dark ones and to veto dark lines it does not see, and when it is "
        "`Settings.light_hair_model` it segments the frames without dark shafts (blond, grey, white hair). "
        "Not a medical device; not validated for diagnosis.",
        "",
        "## Data",
        f"Only phantoms rendered by `pipeline.synth` with seeds `[{cfg.get('train_seed')}, i]`, i < {cfg['n_frames']} "
        "(disjoint from every reported phantom suite, which use seeds >= 1000, and from the held-out threshold "
        f"frames `[{th.get('holdout_seed')}, i]`). No real image was used for training or for the thresholds; "
        "`../shared/data` is used only for the evaluation below. The phantoms are those of the generator in the "
        "commit that added this folder: `tricho train` reproduces these weights with that generator; a later "
        "change to the generator (e.g. its scene distributions) means training a new model, not re-using this one.",
        "",
        "## Training",
        f"- `tricho train --out models/{folder.name}` (seed {cfg['seed']}): {cfg['n_frames']} frames at "
        f"{cfg['model_um_per_px']} µm/px, {cfg['steps']} AdamW steps (one-cycle, peak lr {cfg['lr']}), "
        f"batch {cfg['batch']} crops of {cfg['crop']} px, widths {cfg['widths']}.",
        f"- Wall time on this 2-core CPU: render {cfg.get('render_seconds')} s, train {cfg.get('train_seconds')} s, "
        f"threshold tuning {cfg.get('tune_seconds')} s (torch {cfg.get('torch')}).",
        f"- Loss (50-step mean): {first:.3f} at the start, {last:.3f} at the end (`loss.csv`).",
        "- Augmentation (albumentations, seeded): D4 flips/rotations, affine scale/rotation, elastic or grid "
        "distortion, hue/saturation/value, RGB shift, brightness/contrast, gamma, CLAHE, grey, Gaussian blur or "
        "defocus or down-sampling, Gaussian noise, random burned-in text and lines, JPEG.",
        "- Loss: BCE + soft Dice on the hair mask, weighted BCE on centre lines and on the tip heat map.",
        f"- Thresholds (`thresholds.json`, tuned for count MAPE on {th.get('holdout_frames')} held-out phantoms): "
        f"hysteresis high {th['high']}, low {th['low']}, tip peaks {th.get('tip')}; held-out count MAPE "
        f"{th.get('holdout_count_mape_pct')}%.",
        "- Weights sha256 (checked on every load): " + ", ".join(f"`{f}` `{d}`" for f, d in shas.items()) + ". "
        "`weights.onnx` is `weights.pt` exported to ONNX (opset 17); ONNX Runtime runs it by default "
        "(`Settings.learned_backend`), torch runs `weights.pt` when asked or when onnxruntime is missing; "
        "their maps agree to about 1e-6. `weights.int8.onnx`, when listed, is an 8-bit copy of `weights.onnx` "
        "(`tricho quantize`), run only with `learned_backend=onnx-int8`; the metrics below are the float model's.",
        "",
        "## Evaluation (both segmenters, same harness)",
        "Measured with `python benchmarks/compare_segmenters.py --model " + folder.name + " --out /tmp/segcmp`"
        + _backend_note(measured.get("backend")) + ".",
        "",
        "| set | metric | classical | learned |",
        "|---|---|---|---|",
    ]
    if "scalp_tiles" in measured:
        t = measured["scalp_tiles"]
        lines += [f"| scalp_tiles (100 real tiles, read as {t.get('tile_um_per_px')} µm/px) | Dice (pooled) | "
                  f"{_f(t['classical']['dice_pooled'])} | {_f(t['learned']['dice_pooled'])} |",
                  f"| scalp_tiles | IoU (pooled) | {_f(t['classical']['iou_pooled'])} | {_f(t['learned']['iou_pooled'])} |"]
    if "fdu_val" in measured:
        f = measured["fdu_val"]
        for half in ("A", "B", "all"):
            lines.append(f"| fdu_val half {half} | count MAPE (%) / Lin's CCC | "
                         f"{_f(f['classical'][half]['mape_pct'], 1)} / {_f(f['classical'][half]['ccc'], 2)} | "
                         f"{_f(f['learned'][half]['mape_pct'], 1)} / {_f(f['learned'][half]['ccc'], 2)} |")
    if "phantoms" in measured:
        p = measured["phantoms"]
        name = f"phantoms seed {p.get('seed')}, n={p.get('n')}"
        for key, label, nd in (("count_mape_pct", "count MAPE (%)", 1), ("count_bias_hairs", "count bias (hairs)", 2),
                               ("count_ccc", "count Lin's CCC", 2), ("thickness_mae_um", "thickness MAE (µm)", 1),
                               ("recall", "detection recall", 2), ("precision", "detection precision", 2)):
            lines.append(f"| {name} | {label} | {_f(p['classical'][key], nd)} | {_f(p['learned'][key], nd)} |")
    lines += [
        "",
        "The classical path's fdu_val settings were tuned on half A; half B is its held-out number. The learned "
        "model saw no real frame at all.",
        "",
        "## `auto`",
        "Rule: `--segmenter auto` uses this model only when it is at least as good as the classical path on "
        "fdu_val count MAPE (all frames) and better on scalp_tiles Dice (pooled). Result: " + why + ".",
        "",
        "## Limits",
        "- Trained on phantoms only: real halos, scales and skin texture are approximated by the generator and by "
        "augmentation; the real-frame numbers above are the evidence of transfer, not a guarantee.",
        "- Works at a fixed pixel size; frames are resampled to it, so a wrong `um_per_px` changes what it sees.",
        "- scalp_tiles carry no scale; the read-as pixel size is an assumption from shaft widths.",
        "- The tip head is weaker on real frames than on phantoms (it was never shown a real tip).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hairnet-v2")
    ap.add_argument("--measured", type=Path, required=True)
    ap.add_argument("--set-auto", action="store_true")
    a = ap.parse_args()
    folder = resolve(a.model)
    measured = json.loads(a.measured.read_text())
    (folder / "MODEL_CARD.md").write_text(card(folder, measured))
    if a.set_auto:
        cfg = json.loads((folder / "config.json").read_text())
        cfg["auto_prefer"] = prefer_learned(measured)[0]
        (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"wrote {folder / 'MODEL_CARD.md'}; {prefer_learned(measured)[1]}")


if __name__ == "__main__":
    main()
