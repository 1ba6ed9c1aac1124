"""``tricho`` command line: thin commands over the batch, synth and evaluate layers.

Each command parses options, calls one function and turns its outcome into
an exit code: 0 all well, 1 some frames failed, 2 could not run (bad input,
unreadable manifest, missing module). A user's mistake prints a message, not
a traceback.
"""
from __future__ import annotations

import importlib
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import pipeline

app = typer.Typer(
    name="tricho",
    help="Trichoscopy image analysis: hair count, shaft thickness (µm) and density (hairs/cm²).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

_MAX_ERRORS_SHOWN = 5


class Segmenter(str, Enum):
    classical = "classical"
    learned = "learned"
    auto = "auto"


class Half(str, Enum):
    A = "A"
    B = "B"


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` in red on stderr; return the Exit to raise."""
    Console(stderr=True).print(Text("error: ", style="bold red") + Text(message, style="red"), soft_wrap=True)
    return typer.Exit(code)


def _writable_folder(path: Path, what: str) -> None:
    """Create the output folder ``path`` before any work, or stop with a message saying why it cannot be."""
    from pipeline.batch import folder_problem

    problem = folder_problem(path, what)
    if problem:
        raise _fail(problem)


def _lazy(module: str, what: str):
    """Import ``module`` when its command runs, so the CLI works while it is unfinished."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _fail(f"{what} is not available in this installation ({exc})") from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tricho {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Trichoscopy image analysis."""


@app.command()
def analyze(
    inputs: Annotated[list[Path], typer.Argument(help="Image files, folders (walked recursively) or manifest CSVs.",
                                                  show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (images.csv, hairs.csv, overlays/, run.json).")],
    um_per_px: Annotated[Optional[float], typer.Option(help="Pixel size in µm/px for frames without a manifest value.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes (1 = in this process; "
                                                   "default: all cores).", show_default=False)] = None,
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="Write overlay PNGs.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or warnings; one summary line.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable), "
                                                      "e.g. --set thickness_method=distance.")] = None,
    segmenter: Annotated[Optional[Segmenter], typer.Option(
        help="Hair probability from classical filters, the learned model, or auto (the model card's choice).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Learned model: a name under models/ or a folder.")] = None,
    db: Annotated[Optional[str], typer.Option(help="Results store URL (default: SQLite OUT/results.sqlite), "
                                              "e.g. postgresql+psycopg://user@host/tricho.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address (tcp://HOST:PORT): run the frames "
                                                     "on that cluster instead of local processes.")] = None,
    pseudonymize: Annotated[Optional[str], typer.Option(
        help="Secret KEY: replace patient identifiers by keyed pseudonyms in every output.",
        envvar="TRICHO_PSEUDONYM_KEY", show_envvar=True)] = None,
) -> None:
    """Measure every frame and write OUT/images.csv, hairs.csv (+ .parquet), overlays/, run.json.

    Results are kept in a store keyed by each file's content and the
    settings: rerunning does no work twice, and a run that was killed
    finishes where it stopped.
    """
    from pipeline.batch import BatchError, run_batch
    from pipeline.settings import Settings

    console = _plain_console()
    try:
        settings = Settings.from_overrides(set_)
        if segmenter is not None:
            settings = settings.replace(segmenter=segmenter.value)
        if model is not None:
            if settings.segmenter == "classical":
                raise ValueError(f"--model {model}: the classical segmenter reads no model of that role; add "
                                 "--segmenter learned (or auto), or set a helper model with --set light_hair_model=...")
            settings = settings.replace(model=model)
        _check_model(settings)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        summary = run_batch(inputs, out, um_per_px=um_per_px, workers=workers or os.cpu_count() or 1,
                            overlays=overlays, settings=settings, progress=not quiet,
                            console=Console(stderr=True, quiet=quiet), db=db, scheduler=scheduler,
                            pseudonymize=pseudonymize)
    except BatchError as exc:
        raise _fail(str(exc)) from None
    _print_summary(console, summary, quiet=quiet)
    raise typer.Exit(summary.exit_code)


def _plain_console() -> Console:
    """The console of the CLI's own messages and tables: plain text, no rich markup or highlighting, so a path
    or patient id with square brackets (``run[old]``, ``[anon]7``) prints as written."""
    return Console(highlight=False, markup=False)


def _check_model(settings) -> None:
    """Fail early, before any frame, when a learned model asked for cannot load: the learned segmenter's,
    or the classical path's helpers (``light_hair_model``, ``bright_veto_model``, ``dark_frame_model``;
    ``''`` turns one off), which Python callers get a warning and a per-frame note for instead."""
    names = [settings.model] if settings.segmenter in ("learned", "auto") else []  # auto reads the model's card
    if settings.segmenter != "learned":
        names += [name for name, _ in settings.classical_models() if name]
    if not names:
        return
    learned = _lazy("pipeline.learned", "the learned segmenter")
    for name in names:
        problem = learned.load_problem(name, settings.learned_backend)
        if problem:
            raise ValueError(problem)


@app.command()
def compare(
    results: Annotated[Path, typer.Argument(help="Output folder of `tricho analyze` (images.csv, hairs.csv).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for sessions.csv, changes.csv, summary.csv.")],
    baseline: Annotated[Optional[str], typer.Option(help="Baseline session date (default: each course's first).")] = None,
    include_flagged: Annotated[bool, typer.Option("--include-flagged", help="Keep quality-flagged frames.")] = False,
    boot: Annotated[int, typer.Option(min=100, help="Bootstrap draws per confidence interval.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    min_agreement: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Same-spot matching: below this share of hairs paired directly between the two "
                               "visits the response is 'indeterminate' (0 turns it off).")] = 0.4,
    response_basis: Annotated[str, typer.Option(
        help="Call the response on the 'trend' (least-squares line through every session's change against "
             "baseline) or on the 'latest' session's change alone.")] = "trend",
) -> None:
    """Compare sessions per patient and site: change, 95% CI, MDC, and improved / stable / worsened / indeterminate."""
    course_io = _lazy("pipeline.course_io", "course comparison")
    from pandas import isna

    from pipeline.course import CourseSettings

    if response_basis not in ("trend", "latest"):
        raise _fail(f"--response-basis must be 'trend' or 'latest', not {response_basis!r}")
    try:
        settings = CourseSettings(n_boot=boot, seed=seed, include_flagged=include_flagged, baseline=baseline,
                                  min_agreement=min_agreement, response_basis=response_basis)
    except ValueError as exc:
        raise _fail(f"--baseline: {exc}") from None
    try:
        tables = course_io.run_compare(results, out, settings)
    except course_io.CompareError as exc:
        raise _fail(str(exc)) from None
    console = _plain_console()
    table = Table(title=f"tricho compare -> {out}", title_justify="left")
    for name in ("patient", "site", "sessions", "density change (/cm²)", "95% CI", "MDC", "course trend (/cm²)",
                 "visit agreement", "response"):
        table.add_column(name)
    for r in tables["summary"].itertuples(index=False):
        ci = "-" if isna(r.density_ci_low) else f"{r.density_ci_low:+.1f} … {r.density_ci_high:+.1f}"
        change = "-" if isna(r.density_change) else f"{r.density_change:+.1f} ({r.density_change_pct:+.1f}%)"
        mdc = "-" if isna(r.density_mdc) else f"{r.density_mdc:.1f}"
        agree = "-" if isna(r.visit_agreement_pct) else f"{r.visit_agreement_pct:.0f}%"
        trend_mdc = "no MDC" if isna(r.density_trend_mdc) else f"MDC {r.density_trend_mdc:.1f}"
        trend = "-" if isna(r.density_trend) else f"{r.density_trend:+.1f} ({trend_mdc})"
        table.add_row(str(r.patient_id), str(r.site), str(r.n_sessions), change, ci, mdc, trend, agree,
                      str(r.response))
    console.print(table)
    if (tables["summary"]["response"] == "indeterminate").any():
        console.print(f"indeterminate: the two visits paired directly fewer than {min_agreement:.0%} of the hairs "
                      "either counted on the matched spot, so the tool does not see the same hairs twice (light or "
                      "grey hair, dark skin, focus). Count those courses by hand or re-image them.")
    if tables["summary"]["density_trend_mdc"].isna().any() and tables["summary"]["density_trend"].notna().any():
        console.print("no MDC: no session in the run has two or more fields, so the within-visit repeatability "
                      "cannot be measured and no change is called real; image 2-3 fields per session.")
    if len(tables["left_out"]):
        console.print(f"{len(tables['left_out'])} frame(s) left out: see {out / 'left_out.csv'}")


export_app = typer.Typer(help="Export a run's results (FHIR R4 for patient records).", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("fhir")
def export_fhir(
    results: Annotated[Path, typer.Argument(help="Output folder of `tricho analyze`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (JSON).")],
    transaction: Annotated[bool, typer.Option("--transaction", help="A transaction bundle instead of a collection.")] = False,
    post: Annotated[Optional[str], typer.Option("--post", help="FHIR server base URL to send the bundle to.")] = None,
    pseudonymize: Annotated[Optional[str], typer.Option(
        help="Secret KEY: patient identifiers become keyed pseudonyms in the bundle.",
        envvar="TRICHO_PSEUDONYM_KEY", show_envvar=True)] = None,
) -> None:
    """Write a FHIR R4 Bundle: one Observation per frame and metric, Patient, Device, DocumentReference."""
    export_io = _lazy("pipeline.export_io", "FHIR export")
    from pipeline import fhir

    left_out: dict[str, int] = {}
    try:
        bundle = export_io.export_fhir(results, out, transaction=transaction, pseudonymize=pseudonymize,
                                       left_out=left_out)
    except export_io.ExportError as exc:
        raise _fail(str(exc)) from None
    console = _plain_console()
    kinds = {}
    for entry in bundle["entry"]:
        kinds[entry["resource"]["resourceType"]] = kinds.get(entry["resource"]["resourceType"], 0) + 1
    console.print(f"wrote {out}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if left_out:
        console.print("left out (no Observation): " + "; ".join(f"{n} frame(s): {r}" for r, n in left_out.items()))
    if post:
        try:
            outcome = fhir.post_bundle(bundle, post)
        except RuntimeError as exc:
            raise _fail(str(exc), code=1) from None
        bad = [o for o in outcome if not o["status"].startswith("2")]
        for o in outcome:
            console.print(f"{o['status']:>12}  {o['fullUrl']}  {o['location']}", soft_wrap=True)
        console.print(f"sent to {post}: {len(outcome) - len(bad)} accepted, {len(bad)} not")
        if bad:
            raise typer.Exit(1)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (e.g. models/hairnet-v2).")],
    steps: Annotated[Optional[int], typer.Option(min=1, help="Optimiser steps (default: the shipped model's).")] = None,
    frames: Annotated[Optional[int], typer.Option(min=1, help="Phantom frames rendered for training.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of crops, augmentation and initial weights.")] = 0,
    holdout: Annotated[Optional[int], typer.Option(min=1, help="Held-out phantoms the thresholds are tuned on.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering phantoms; torch threads.")] = 2,
    scenes: Annotated[Optional[str], typer.Option(help="Phantoms to train on: 'all' (the generator's mix, "
                                                   "hairnet-v2) or 'light' (what a light-hair model is given).")] = None,
    thin_weight: Annotated[Optional[float], typer.Option(min=0, help="Extra loss weight of thin shafts' pixels "
                                                         "(TrainConfig.thin_weight; default 0).")] = None,
    skin_lines: Annotated[Optional[float], typer.Option(min=0, max=1, help="Share of crops given fine dark skin "
                                                        "furrows (TrainConfig.skin_lines; default 0).")] = None,
    parallel_units: Annotated[Optional[float], typer.Option(min=0, max=1, help="Share of the phantoms' units of 2+ "
                                                            "hairs lying together (TrainConfig.unit_parallel_share; "
                                                            "default 0, as the shipped models).")] = None,
    centre_label: Annotated[Optional[str], typer.Option(help="What the centre-line head learns: 'line' (1-px lines, "
                                                     "as the shipped models) or 'ridge' (each hair's own ridge, "
                                                     "so touching shafts stay apart; TrainConfig.centre_label).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Finish a run whose training ended but whose threshold "
                                         "tuning did not: read the weights and config it left in OUT.")] = False,
) -> None:
    """Train the learned segmenter on fresh phantoms only (CPU) and write a model folder."""
    training = _lazy("pipeline.train", "training")
    console = _plain_console()
    if resume:
        if any(v is not None for v in (steps, frames, holdout, scenes, thin_weight, skin_lines, parallel_units,
                                       centre_label)):
            raise _fail("--resume takes the training's own config from OUT; drop --steps, --frames, --holdout, "
                        "--scenes, --thin-weight, --skin-lines, --parallel-units and --centre-label")
        try:
            training.train(out, workers=workers, log=console.print, resume=True)
        except FileNotFoundError as e:
            raise _fail(str(e)) from None
        return
    cfg = training.TrainConfig(seed=seed)
    if steps is not None:
        cfg = training.dataclasses_replace(cfg, steps=steps)
    if frames is not None:
        cfg = training.dataclasses_replace(cfg, n_frames=frames)
    if holdout is not None:
        cfg = training.dataclasses_replace(cfg, n_holdout=holdout)
    if thin_weight is not None:
        cfg = training.dataclasses_replace(cfg, thin_weight=thin_weight)
    if skin_lines is not None:
        cfg = training.dataclasses_replace(cfg, skin_lines=skin_lines)
    if parallel_units is not None:
        cfg = training.dataclasses_replace(cfg, unit_parallel_share=parallel_units)
    if centre_label is not None:
        if centre_label not in training.CENTRE_LABELS:
            raise _fail(f"--centre-label {centre_label!r}: use one of {', '.join(training.CENTRE_LABELS)}")
        cfg = training.dataclasses_replace(cfg, centre_label=centre_label)
    if scenes is not None:
        if scenes not in training.SCENES:
            raise _fail(f"--scenes {scenes!r}: use one of {', '.join(training.SCENES)}")
        cfg = training.dataclasses_replace(cfg, scenes=scenes)
    _writable_folder(out, "--out")
    try:
        training.train(out, cfg, workers=workers, log=console.print)
    except Exception:
        if (Path(out) / training.UNTUNED).is_file():
            console.print(f"training finished but the threshold tuning failed; the weights are kept in {out}: "
                          f"run `tricho train --out {out} --resume` to finish")
        raise


@app.command()
def quantize(
    model: Annotated[str, typer.Argument(help="Model folder or name under models/ (e.g. hairnet-v2).")],
    calib: Annotated[int, typer.Option(min=1, help="Held-out phantom crops to calibrate on.")] = 16,
) -> None:
    """Write a model folder's 8-bit copy (weights.int8.onnx) for learned_backend=onnx-int8."""
    learned = _lazy("pipeline.learned", "the learned segmenter")
    try:
        path = learned.add_int8(model, calib)
    except learned.ModelError as e:
        raise _fail(str(e)) from None
    _plain_console().print(f"wrote {path} and its sha256; run it with --set learned_backend=onnx-int8")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write phantom frames, truth and manifest.csv into.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of frames.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same frames).")] = 0,
    samples: Annotated[bool, typer.Option("--samples", help="Write the curated sample set instead.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Fix a scene parameter for every frame, KEY=VALUE "
                                                      "(repeatable), e.g. hair_color=brown skin_tone=5.")] = None,
) -> None:
    """Render phantom scalp frames with exact truth."""
    synth_module = _lazy("pipeline.synth", "the phantom generator")
    try:
        overrides = synth_module.parse_overrides(set_) if set_ and not samples else {}
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _writable_folder(out, "OUT")
    try:
        table = synth_module.generate_samples(out) if samples else synth_module.generate(out, n, seed, **overrides)
    except (ValueError, TypeError) as exc:
        raise _fail(f"{exc}; check the --set values (e.g. skin_tone=1..6, um_per_px above 0)") from None
    _plain_console().print(f"wrote {len(table)} frames to {out}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `tricho analyze`.")],
    truth: Annotated[Path, typer.Option(help="Truth: a phantom folder or a file of manual counts.")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Report path (default RUN_DIR/evaluation.json).")] = None,
    um_per_px: Annotated[float, typer.Option(help="Pixel size in µm/px where the truth gives none.")] = 2.78,
    margin_um: Annotated[float, typer.Option(help="Border band excluded from interior statistics (µm).")] = 300,
    half: Annotated[Optional[Half], typer.Option(help="Score only half A or B of the truth set.")] = None,
) -> None:
    """Score a run against truth: count, density and thickness error, agreement."""
    evaluation = _lazy("pipeline.evaluate", "the evaluation module")
    try:
        code = evaluation.evaluate_command(run_dir, truth, out_json=json_out, um_per_px=um_per_px,
                                           margin_um=margin_um, half=half.value if half else None)
    except evaluation.EvaluationError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(int(code or 0))


def _print_summary(console: Console, summary, *, quiet: bool) -> None:
    """A table of the run (or one line when quiet) and the first error messages."""
    density = "-" if summary.mean_density_per_cm2 is None else f"{summary.mean_density_per_cm2:.1f}"
    if quiet:
        console.print(f"{summary.n_ok}/{summary.n_frames} frames ok, {summary.n_error} errors, "
                      f"{summary.n_flagged} flagged, {summary.n_skipped} skipped, {summary.n_reused} reused, "
                      f"{summary.n_hairs} hairs -> {summary.out_dir}", soft_wrap=True)
    else:
        table = Table(title=f"tricho analyze -> {summary.out_dir}", title_justify="left")
        for name in ("frames", "ok", "errors", "flagged", "skipped", "reused", "hairs", "mean density (/cm²)",
                     "seconds"):
            table.add_column(name, justify="right")
        table.add_row(str(summary.n_frames), str(summary.n_ok), str(summary.n_error), str(summary.n_flagged),
                      str(summary.n_skipped), str(summary.n_reused), str(summary.n_hairs), density,
                      f"{summary.seconds:.1f}")
        console.print(table)
    for image, message in summary.errors[:_MAX_ERRORS_SHOWN]:
        console.print(Text(message) if image in message else Text(f"{image}: ", style="bold") + Text(message),
                      style="red", soft_wrap=True)
    if len(summary.errors) > _MAX_ERRORS_SHOWN:
        console.print(f"... and {len(summary.errors) - _MAX_ERRORS_SHOWN} more: see {summary.out_dir / 'images.csv'}",
                      soft_wrap=True)
    if summary.n_internal_errors:
        console.print(f"tracebacks of internal errors: {summary.out_dir / 'errors.log'}", soft_wrap=True)


def main() -> None:
    """Console-script entry point (``tricho``)."""
    app()


if __name__ == "__main__":
    main()
