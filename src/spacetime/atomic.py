"""Atomic writes: write beside the target under a temporary name, then rename onto it, so a failed
or interrupted write leaves whatever was at the path before and no partial file."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# os.umask can only be read by setting it, which races with other threads creating files; read it
# once here (imports run before any of our threads start), and prefer /proc's read-only view below
_UMASK_AT_IMPORT = os.umask(0)
os.umask(_UMASK_AT_IMPORT)


def _umask() -> int:
    """The process umask now: from /proc/self/status on Linux (no race), else as it was at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in `path`'s folder; on success it replaces `path`, on error it goes.

    The result gets the mode an ordinary open(path, "w") would give: the old file's mode when it
    replaces one, else 0o666 less the umask (mkstemp's temporaries are 0o600, private to the owner).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
