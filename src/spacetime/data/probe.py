"""`spacetime data probe DIR`: decode every video in a folder and say which ones are fit to train on.

One row per file: path (relative to DIR), ok, frames, fps, height, width, duration, error,
captioned. A file is ok when every frame decodes; a damaged one that still yields frames is not
ok, and its row says how many frames decoded and why it stopped. Broken files are reported, never
fatal. Nothing is written into DIR unless asked: the manifest goes where `--out` says.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from spacetime.atomic import atomic_write_text
from spacetime.data.decode import VideoReadError, decode
from spacetime.data.folder import (
    CAPTION_FILES,
    caption_notes,
    find_captions_file,
    folder_relative,
    is_file,
    read_caption_rows,
)

VIDEO_EXTENSIONS = {
    ".mp4",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".gif",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
}
FIELDS = ("path", "ok", "frames", "fps", "height", "width", "duration", "error", "captioned")


def probe_video(path: str | os.PathLike) -> dict:
    """ok, frames, fps, height, width, duration (s) and error of one file, decoding every frame."""
    row = {**dict.fromkeys(FIELDS[1:-1]), "ok": False}
    try:
        d = decode(path, rgb=False)
    except VideoReadError as e:
        row["error"] = str(e)
        return row
    # duration from the timestamps: right for variable frame rates, where frames / fps is not;
    # gaps where frames are lost are not counted: this is what decodes
    duration = d.times[-1] - d.times[0] + 1 / d.fps - d.missing
    row.update(
        ok=d.damage is None,
        frames=len(d.times),
        fps=round(d.fps, 4),
        height=d.height,
        width=d.width,
        duration=round(duration, 4),
        error=None if d.damage is None else f"{path}: damaged: {d.damage}",
    )
    return row


def videos_under(directory: Path) -> set[str]:
    """The video files under `directory` (relative POSIX paths), by extension."""
    # dot-files are skipped: macOS "._name.mp4" forks and our own in-progress ".name.tmp.mp4" writes
    return {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS
        and (p.is_file() or p.is_symlink())  # a link to nothing is a video that is not there: reported
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    }


def _dangling(path: Path) -> str:
    """Why a link names no file: its target is not there, or it leads back to itself."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a link that leads back to itself (a loop of links)"
    return f"a link to {os.readlink(path)}, which does not exist"


def probe_folder(
    directory: str | Path, manifest_path: str | Path | None = None, progress: bool = True
) -> list[dict]:
    """Probe every video under `directory` (by extension, recursively; see VIDEO_EXTENSIONS) and
    every file its captions file names. Entries naming missing files get a row (ok False); a
    malformed captions file gets a row naming its line. With `manifest_path`, the rows are written
    there as JSONL (atomically). Returns the rows: the captions file's own when malformed, then one
    per file, sorted by path."""
    return _probe(directory, manifest_path, progress)[0]


def _probe(
    directory: str | Path, manifest_path: str | Path | None, progress: bool
) -> tuple[list[dict], list[tuple[int, str, dict[str, str]]]]:
    """probe_folder's rows, and the captions file's rows as read (empty when absent or malformed),
    so the summary's notes need not read the file again."""
    from tqdm import tqdm

    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")
    named: dict[str, int] = {}  # path named in the captions file -> its line
    rows = []
    caption_rows: list[tuple[int, str, dict[str, str]]] = []
    src = find_captions_file(directory)
    if src is not None:
        try:
            caption_rows = list(read_caption_rows(src))
        except ValueError as e:
            rows.append(
                {**dict.fromkeys(FIELDS), "path": src.name, "ok": False, "error": str(e), "captioned": False}
            )
        for line, rel, _ in caption_rows:
            named.setdefault(folder_relative(directory, rel), line)
    files = videos_under(directory) | set(named)
    for rel in tqdm(sorted(files), desc="probe", unit="file", disable=not progress or len(files) < 10):
        path = directory / rel
        if not is_file(path):
            try:
                why = ("is a directory" if path.is_dir() else "is not a regular file" if path.exists()
                       else _dangling(path) if path.is_symlink() else "missing")
            except OSError as e:  # a name the system refuses
                why = f"not a name the file system takes ({e.strerror})"
            row = {
                **dict.fromkeys(FIELDS),
                "ok": False,
                "error": f"named in {src.name} line {named[rel]} but {why}" if rel in named else why,
            }
        else:
            row = probe_video(path)
        if row["error"]:  # the row names the file already
            row["error"] = row["error"].removeprefix(f"{path}: ")
        rows.append({"path": rel, **{k: row[k] for k in FIELDS[1:-1]}, "captioned": rel in named})
    if manifest_path is not None:
        try:
            atomic_write_text(manifest_path, "".join(json.dumps(r) + "\n" for r in rows))
        except OSError as e:  # FileNotFoundError or PermissionError naming the temporary file, not the manifest
            raise OSError(f"{manifest_path}: cannot write the manifest ({e.strerror})") from None
    return rows, caption_rows


def main_probe(directory: Path, out: Path | None) -> int:
    """`spacetime data probe DIR [--out PATH]`: probe, print a summary, write the manifest to `out`
    when given. Exit status 0 when there are videos and every one decodes cleanly; 1 when any is
    broken or damaged, the captions file is malformed or names a missing file, or there are no
    videos at all. Videos without a caption, videos named by more than one entry and empty captions
    are reported but do not fail the check."""
    if out is not None:  # before the work: a manifest must not take the place of the user's own files
        if out.is_dir():
            raise ValueError(f"--out {out}: is a directory; name the manifest file to write (e.g. manifest.jsonl)")
        own = [directory / n for n in CAPTION_FILES if (directory / n).is_file()]
        if out.is_file() and (out.suffix.lower() in VIDEO_EXTENSIONS or any(out.samefile(p) for p in own)):
            raise ValueError(f"--out {out}: is one of your {'videos' if out.suffix.lower() in VIDEO_EXTENSIONS else 'captions files'}"
                             "; the manifest would replace it: name another file (e.g. manifest.jsonl)")
    rows, caption_rows = _probe(directory, out, progress=True)
    bad = [r for r in rows if not r["ok"]]
    uncaptioned = [r["path"] for r in rows if r["ok"] and not r["captioned"]]
    print(f"{directory}: {len(rows) - len(bad)} of {len(rows)} files ok, {len(bad)} broken or missing")
    for r in bad:
        print(f"  broken: {r['path']}: {r['error']}")
    if find_captions_file(directory) is None:
        print("  no captions file (captions.jsonl or captions.csv): FolderVideoDataset needs one")
    elif uncaptioned:
        print(f"  {len(uncaptioned)} videos have no caption: {', '.join(uncaptioned[:5])}")
    repeated, empty = caption_notes(caption_rows, directory)  # a malformed file has no rows: its own row says why
    if repeated:
        print(f"  {len(repeated)} videos are named by more than one entry (each entry is a sample of its own): "
              + ", ".join(f"{rel} (lines {', '.join(map(str, ls))})" for rel, ls in list(repeated.items())[:5]))
    if empty:
        print(f"  {len(empty)} entries have an empty caption (trained as the unconditional prompt): "
              + ", ".join(f"{rel} (line {line})" for rel, line in empty[:5]))
    if not rows:
        print("  no videos found")
    if out is not None:
        print(f"manifest: {out}")
    return 1 if bad or not rows else 0
