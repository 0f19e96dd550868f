"""Atomic file writes: a crash or a full disk never leaves half a result behind."""

import io
import json
import os
import tempfile
from pathlib import Path

from core.errors import TapelabError


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
    """Save a matplotlib figure atomically, then close it to free its memory."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return write_atomic(path, buffer.getvalue())
