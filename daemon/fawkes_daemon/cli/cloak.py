"""`fawkes cloak PATH...`: one-shot cloaking of files and folders.

Why it lives in daemon/: it decides where files go (beside the input or under --out),
which the engine deliberately does not. Failures are per file: each is reported in one
line, the rest carry on, and the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fawkes_daemon.cli.cloak_flags import add_cloak_flags, cloak_config
from fawkes_daemon.cli.cloak_paths import CLOAKED_SUFFIX, as_private_as, collect, out_inside_input, unique
from fawkes_daemon.pipeline.compute import facts_of
from fawkes_daemon.pipeline.decide import ONE_SHOT, decide
from fawkes_daemon.readiness import device_problem, opt_in_problem
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.photo_io import METADATA_POLICIES, PhotoError, extension_for, output_format, read_photo, write_photo

if TYPE_CHECKING:
    from fawkes_engine.people import PersonDirectory
    from fawkes_engine.pipeline import PhotoCloaker

log = logging.getLogger(__name__)


def output_path(src: Path, out_dir: Path | None, fmt: str, root: Path | None = None) -> Path:
    """``<stem>_cloaked.<ext>`` beside the input or under ``out_dir``; never the input, never an existing file."""
    folder = out_dir if out_dir is not None else src.parent
    if out_dir is not None and root is not None:
        try:
            folder = out_dir / src.parent.relative_to(root)
        except ValueError:
            pass
    ext = src.suffix if src.suffix.lower() in {extension_for(fmt), ".jpeg", ".heif", ".tiff"} else extension_for(fmt)
    candidate = folder / f"{src.stem}{CLOAKED_SUFFIX}{ext}"
    n = 1
    while candidate.exists() or candidate.resolve() == src.resolve():
        candidate = folder / f"{src.stem}{CLOAKED_SUFFIX}-{n}{ext}"
        n += 1
    return candidate


def enroll_people(cloaker: PhotoCloaker, files: list[Path], console: Console) -> PersonDirectory:
    """A first pass over every photo given: their faces grouped by person, in memory for this run only.

    Why a pass of its own: the first photo of a person is then cloaked away from the person's
    centroid over all the photos given, toward the same target as the last one.
    """
    from fawkes_engine.people import PersonDirectory

    people = PersonDirectory()
    with console.status("grouping faces by person"):
        for src in files:
            try:
                cloaker.enroll([read_photo(src)], people)
            except (PhotoError, OSError):
                continue  # reported by the cloaking pass
    return people


def _options(args: argparse.Namespace, console: Console) -> CloakOptions | None:
    """The engine's options from the flags, or None after saying in one line why they cannot be used."""
    try:
        options = cloak_config(args).to_options(args.device)
    except ValidationError as e:
        problems = "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in e.errors())
        console.print(f"fawkes cloak: {problems}", markup=False)
        return None
    problem = opt_in_problem(options.targeting.extractors) or device_problem(args.device)
    if problem:
        console.print(f"fawkes cloak: {problem}", markup=False)
        return None
    try:
        options.validate()
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return None
    return options


def _table() -> Table:
    table = Table(title="fawkes cloak")
    # DSSIM: the face box's worst scale, with the face width that binds (px); SSIMULACRA2: 90 ≈ visually lossless
    for col in ("file", "status", "faces", "DSSIM per face (binding width)", "SSIMULACRA2", "feature shift", "seconds"):
        table.add_column(col)
    return table


def cmd_cloak(args: argparse.Namespace) -> int:
    """The stages of the daemon's pipeline, for files named on the command line: intake (collect, read),
    compute (cloak, then :func:`fawkes_daemon.pipeline.decide.decide` with the one-shot policy), publish
    (write beside the input or under --out)."""
    from fawkes_engine.pipeline import PhotoCloaker

    console = Console(stderr=True, soft_wrap=True)  # one error per line, never wrapped
    options = _options(args, console)
    if options is None:
        return 2
    out_dir = Path(args.out) if args.out else None
    clash = out_inside_input(out_dir, args.paths) if out_dir is not None else None
    if clash:
        console.print(f"fawkes cloak: {clash}", markup=False)
        return 2
    files, missing = collect(args.paths, out_dir, int(args.max_file_mb * 2**20))
    if not files and not missing:
        # before the models load: an empty or mistyped folder is the user's mistake, not a success
        console.print(f"fawkes cloak: no photos found in {', '.join(map(str, args.paths))}", markup=False)
        return 1
    if out_dir:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            console.print(f"fawkes cloak: cannot create --out {out_dir}: {e.strerror or e}", markup=False)
            return 1
    cloaker = PhotoCloaker(options)
    people = enroll_people(cloaker, files, console) if options.targeting.people and len(files) > 1 else None
    report: list[dict] = []
    failures = 0
    for p, reason in missing:
        console.print(f"[red]failed[/red] {p}: {reason}")
        report.append({"source": str(p), "status": "failed", "error": reason})
        failures += 1
    run = OneShot(args, options, cloaker, people, out_dir, {Path(r) for r in args.paths if Path(r).is_dir()}, console)
    table = _table()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("cloaking", total=len(files))
        for src in files:
            progress.update(task, description=f"cloaking {src.name}")
            entry, row = run.one(src)
            failures += entry["status"] == "failed"
            table.add_row(*row)
            report.append(entry)
            progress.advance(task)
    Console().print(table)
    if args.report:
        Path(args.report).write_text(json.dumps({"options": _options_dict(options), "files": report}, indent=2, default=str))
    return 1 if failures else 0


class OneShot:
    """One photo through the stages: read, cloak and decide, write. Failures are the photo's own, never the run's."""

    def __init__(
        self,
        args: argparse.Namespace,
        options: CloakOptions,
        cloaker: PhotoCloaker,
        people: PersonDirectory | None,
        out_dir: Path | None,
        roots: set[Path],
        console: Console,
    ) -> None:
        self.args, self.options, self.cloaker, self.people = args, options, cloaker, people
        self.out_dir, self.roots, self.console = out_dir, roots, console

    def one(self, src: Path) -> tuple[dict, list[str]]:
        """The report entry and the table row of one file."""
        entry: dict = {"source": str(src)}
        try:
            return entry, self._cloak(src, entry)
        except PhotoError as e:
            entry.update(status="failed", error=str(e))
            self.console.print(f"[red]failed[/red] {e}")
        except Exception as e:  # one bad file must not stop the rest
            entry.update(status="failed", error=f"{src}: {type(e).__name__}: {e}")
            self.console.print(f"[red]failed[/red] {src}: {type(e).__name__}: {e}")
            log.debug("cloak failed", exc_info=True)
        return entry, [src.name, "failed", "-", "-", "-", "-", "-"]

    def _cloak(self, src: Path, entry: dict) -> list[str]:
        from fawkes_engine.pipeline import diff_image

        args, options = self.args, self.options
        photo = read_photo(src)
        if photo.dropped:
            self.console.print(f"note: {src}: {photo.dropped}", markup=False)
        result = self.cloaker.cloak([photo], people=self.people, learn=False)[0]
        root = next((r for r in self.roots if r in src.parents), None)
        # the one-shot policy (fawkes_daemon.pipeline.decide.ONE_SHOT): too-small faces are written and reported, weak
        # cloaks written; what it shares with the daemon: an untouched face is never written as cloaked
        verdict = decide(facts_of(result, options.budget.mode), False, ONE_SHOT)
        if verdict.verdict == "refuse":
            raise PhotoError(f"{src}: {verdict.reason}; nothing written")
        if result.has_faces:
            dst = output_path(src, self.out_dir, output_format(photo), root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_photo(result.photo, dst, args.metadata)
            as_private_as(dst, src)
            entry.update(status="cloaked", output=str(dst))
            if args.diff_image:
                diff = diff_image(photo, result, unique(dst.with_name(dst.stem + "_diff.png")))
                as_private_as(diff, src)  # it shows the uncloaked original
                entry["diff_image"] = str(diff)
        elif self.out_dir is not None:
            dst = output_path(src, self.out_dir, output_format(photo), root)
            dst = unique(dst.with_name(dst.name.replace(CLOAKED_SUFFIX, "", 1)))  # never over an existing file
            dst.parent.mkdir(parents=True, exist_ok=True)
            if args.metadata == "keep":
                shutil.copy2(src, dst)
            else:
                write_photo(photo, dst, args.metadata)
            as_private_as(dst, src)
            entry.update(status="no-face", output=str(dst))
        else:
            entry.update(status="no-face", output=None)
        entry.update(result.summary())
        shifts = [min(f.feature_shift.values()) for f in result.faces]
        return [
            src.name,
            entry["status"],
            str(len(result.faces)) + (f" (+{len(result.skipped)} too small)" if result.skipped else ""),
            # a face cloaked again at a higher budget to cross its target says so
            ", ".join(
                f"{f.dssim:.4f} @{f.binding_width}px" + (f" (ρ {f.budget:g})" if f.budget > options.budget.rho else "")
                for f in result.faces
            )
            or "-",
            ", ".join(f"{f.ssimulacra2:.0f}" for f in result.faces) or "-",
            ", ".join(f"{s:.2f}" for s in shifts) or "-",
            f"{result.seconds:.1f}",
        ]


def _options_dict(o: CloakOptions) -> dict:
    """The report's options: every option by its flat name, and the budget, steps and floor the mode resolved to."""
    d = o.to_json()
    b = o.budget
    d["budget"] = b.rho
    d["steps_used"] = b.n_steps
    d["extend_steps_used"] = b.max_extend
    d["max_budget_used"] = b.ceiling
    d["ssimulacra2_floor_used"] = b.floor
    return d


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("cloak", help="cloak photos (files or folders) once")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c.add_argument("--out", metavar="DIR", help="write outputs here (default: beside each input)")
    add_cloak_flags(c)
    c.add_argument("--max-file-mb", type=float, default=512.0, help="refuse files larger than this, before reading them (default: 512)")
    c.add_argument("--metadata", choices=METADATA_POLICIES, default="strip-location")
    c.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, mps or cuda[:N]")
    c.add_argument("--report", metavar="FILE.json", help="write per-file and per-face results as JSON")
    c.add_argument(
        "--diff-image", action="store_true", help="also write <stem>_cloaked_diff.png: original | cloaked | amplified difference"
    )
    c.set_defaults(func=cmd_cloak)
