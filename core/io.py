"""Atomic file writes: a crash or a full disk never leaves half a result behind."""

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from tapelab.core.errors import TapelabError


def ensure_writable_dir(path) -> Path:
    """Create `path` if needed and prove we can write there, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise TapelabError(
            f"cannot write to output folder {path} ({error.strerror}); choose another with --out"
        ) from None
    return path


def _new_file_mode() -> int:
    """What `open` would give a new file under the current umask (mkstemp's own mode is 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path, data: bytes | str) -> Path:
    """Write to a temporary file beside `path`, then rename it over `path`, with the mode a plain write gives."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, _new_file_mode())
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(payload)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def save_json(path, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TapelabError(f"{path} not found; run the experiment that writes it first") from None
    except json.JSONDecodeError as error:
        raise TapelabError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno}); delete it and rerun"
        ) from None


def save_figure(figure, path) -> Path:
    """Save a matplotlib `Figure` atomically. Figures are made as `matplotlib.figure.Figure` objects, never
    through pyplot, so drawing a plot neither switches the caller's backend (a notebook's) nor keeps the figure
    alive in pyplot's registry."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    return write_atomic(path, buffer.getvalue())


def save_npz(path, **arrays) -> Path:
    """`np.savez_compressed`, written atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomic(path, buffer.getvalue())


class RunFolder:
    """The files of one run, written under a staging folder inside `out` and moved into `out` together when
    the run is done, so a folder is never left half old, half new, and a failure (a full disk, an interrupt)
    leaves the results already there as they were.

        with RunFolder(out, "results.json", overwrite=args.overwrite) as run:
            run_experiment(..., run.staging)

    `primary` names the file that marks a finished run of this kind; a folder already holding it is replaced
    only with `overwrite`. A folder may hold several kinds of run (one `primary` each). Files that the run
    replaced by this one wrote and this one did not are removed. What an interrupted run wrote stays in the
    staging folder, so an experiment that saves as it goes resumes from it.
    """

    def __init__(self, out, primary: str, overwrite: bool = False):
        self.out, self.primary = Path(out), primary
        if (self.out / primary).exists() and not overwrite:
            raise TapelabError(f"{self.out} already holds the results of an earlier run ({primary}); pass "
                               "--overwrite to replace them, or choose another output folder")
        self.made = [folder for folder in (self.out, *self.out.parents) if not folder.exists()]  # deepest first
        self.staging = ensure_writable_dir(self.out / f".partial.{Path(primary).stem}")
        self.manifest = self.out / f".files.{Path(primary).stem}.json"

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.commit()
        else:
            self.abandon()

    def commit(self) -> list[Path]:
        """Move every staged file into place, remove the previous run's files this run did not write."""
        written = sorted(path.relative_to(self.staging) for path in self.staging.rglob("*") if path.is_file())
        if not written:
            raise TapelabError(f"the run wrote nothing into {self.out}; nothing was replaced")
        previous = set(json.loads(self.manifest.read_text())) if self.manifest.is_file() else set()
        for relative in written:
            target = self.out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / relative, target)
        for stale in previous - {str(relative) for relative in written}:
            (self.out / stale).unlink(missing_ok=True)
        write_atomic(self.manifest, json.dumps([str(relative) for relative in written], indent=1) + "\n")
        shutil.rmtree(self.staging, ignore_errors=True)
        return [self.out / relative for relative in written]

    def abandon(self) -> None:
        """After a failure: drop the staging folder if nothing was saved there, and the folders this run
        created (the output folder and its parents) if they are still empty."""
        if self.staging.is_dir() and not any(self.staging.iterdir()):
            self.staging.rmdir()
        for folder in self.made:
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()


def refuse_to_replace(path, overwrite: bool) -> None:
    """An error before any work when `path` (a finished run's file) exists and `overwrite` was not asked for."""
    if Path(path).exists() and not overwrite:
        raise TapelabError(f"{path} already exists (an earlier run's); pass --overwrite to replace it, or choose "
                           "another output folder")
