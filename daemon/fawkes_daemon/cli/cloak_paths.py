"""Where `fawkes cloak` reads and writes: the inputs walked once each, outputs that never replace a file.

Why a module of its own: these are the rules that keep a one-shot run from destroying a
user's originals (an ``--out`` inside an input folder re-encoded them in place and nested
outputs one level deeper at every rerun), so they are kept small and tested on their own.
"""

from __future__ import annotations

import os
from pathlib import Path

from fawkes_engine.photo_io import EXTENSIONS

CLOAKED_SUFFIX = "_cloaked"


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def out_inside_input(out_dir: Path, paths: list[str]) -> str | None:
    """Why ``out_dir`` cannot be used with these inputs (it is an input folder or lies inside one), or None."""
    out = Path(os.path.realpath(out_dir))
    for raw in paths:
        p = Path(os.path.realpath(raw))
        if p.is_dir() and _inside(out, p):
            return f"--out {out_dir} is inside the input folder {raw}: outputs would be read as inputs and could replace originals; choose a folder outside it"
        if p.is_file() and out == p:
            return f"--out {out_dir} is an input file"
    return None


def collect(paths: list[str], out_dir: Path | None = None, max_bytes: int | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Photo files under ``paths`` (folders recursively), each once; and the paths that cannot be taken, with why.

    A folder that cannot be read is reported, never skipped silently; a file over ``max_bytes``
    is refused before it is read; the output folder is never walked into.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[str] = set()
    out_real = Path(os.path.realpath(out_dir)) if out_dir is not None else None

    def take(f: Path) -> None:
        real = os.path.realpath(f)
        if real in seen:
            return  # the same file named twice (or reached twice) is cloaked once
        seen.add(real)
        try:
            size = f.stat().st_size
        except OSError as e:
            problems.append((f, f"cannot be read ({e.strerror or e})"))
            return
        if max_bytes is not None and size > max_bytes:
            problems.append((f, f"is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit (--max-file-mb)"))
            return
        files.append(f)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found: list[Path] = []

            def unreadable(e: OSError) -> None:
                problems.append((Path(e.filename or raw), f"folder cannot be read ({e.strerror or e}); its photos were not cloaked"))

            for dirpath, dirnames, filenames in os.walk(p, onerror=unreadable):
                here = Path(dirpath)
                if out_real is not None:
                    dirnames[:] = [d for d in dirnames if not _inside(Path(os.path.realpath(here / d)), out_real)]
                dirnames.sort()
                found += [here / n for n in filenames if Path(n).suffix.lower() in EXTENSIONS and CLOAKED_SUFFIX not in Path(n).stem]
            for f in sorted(found):
                if f.is_file():
                    take(f)
        elif p.exists():
            take(p)
        else:
            problems.append((p, "no such file or directory"))
    return files, problems


def unique(path: Path) -> Path:
    """``path``, or ``stem-N.ext`` for the first N that names no existing file."""
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def as_private_as(written: Path, source: Path) -> None:
    """Give a written file no more read and write bits than its source (less the umask): a private original stays private."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(written, source.stat().st_mode & 0o666 & ~mask)
