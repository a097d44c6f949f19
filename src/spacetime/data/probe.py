"""`spacetime data probe DIR`: decode every video in a folder and say which ones are fit to train on.

Each file gets one manifest row (JSONL): path, ok, frames, fps, height, width, duration, error,
captioned. Broken files are reported, never fatal; captions naming missing files are reported too.
"""

from __future__ import annotations

import json
from pathlib import Path

from spacetime.atomic import atomic_write_text
from spacetime.data.folder import CAPTION_FILES, _read_csv, _read_jsonl
from spacetime.data.video import VideoReadError, read_video

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


def _caption_rows(directory: Path) -> tuple[dict[str, int], list[dict]]:
    """Paths named by the captions file (relative, with their line), and rows for file-level errors."""
    for name in CAPTION_FILES:
        src = directory / name
        if src.exists():
            try:
                rows = _read_jsonl(src) if name.endswith(".jsonl") else _read_csv(src)
            except ValueError as e:
                return {}, [{"path": name, "ok": False, "error": str(e)}]
            return {rel: line for line, rel, _ in rows}, []
    return {}, []


def probe_folder(directory: str | Path, manifest_path: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Probe every video under `directory` (and every file its captions name); write the rows as
    JSONL to `manifest_path` (atomically) when given. Returns the rows."""
    from tqdm import tqdm

    directory = Path(directory)
    named, rows = _caption_rows(directory)
    files = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
             if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS}
    files |= set(named)
    for rel in tqdm(sorted(files), desc="probe", unit="file", disable=not progress or len(files) < 20):
        row = {"path": rel, "ok": False, "frames": None, "fps": None, "height": None, "width": None,
               "duration": None, "error": None, "captioned": rel in named}
        path = directory / rel
        if not path.exists():
            row["error"] = f"named in the captions file (line {named[rel]}) but missing"
        else:
            try:
                frames, fps = read_video(path)
                t, h, w, _ = frames.shape
                row.update(ok=True, frames=t, fps=round(fps, 4), height=h, width=w, duration=round(t / fps, 4))
            except VideoReadError as e:
                row["error"] = str(e)
        rows.append(row)
    if manifest_path is not None:
        atomic_write_text(manifest_path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def main_probe(directory: Path, out: Path | None) -> int:
    """CLI: probe, write the manifest (default DIR/manifest.jsonl), print a summary.
    Exit status 0 when every file is fine, 1 when any is broken or missing."""
    manifest = out if out is not None else directory / "manifest.jsonl"
    rows = probe_folder(directory, manifest)
    bad = [r for r in rows if not r["ok"]]
    uncaptioned = [r for r in rows if r["ok"] and not r.get("captioned")]
    print(f"{len(rows) - len(bad)} of {len(rows)} files ok; manifest: {manifest}")
    for r in bad:
        print(f"  broken: {r['path']}: {r['error']}")
    if uncaptioned:
        print(f"  {len(uncaptioned)} videos have no caption (first: {uncaptioned[0]['path']})")
    return 1 if bad else 0
