"""Write a generated video or image with its provenance: watermark the pixels, encode, sign.

Order matters: the watermark goes into the frames before encoding, then C2PA signs the encoded
bytes. Everything goes to a temporary file first; the output path only ever sees a finished,
signed file, so a missing or unusable signing key leaves no half-written output.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacetime.provenance.credentials import Ingredient, sign_file
from spacetime.provenance.identity import SigningIdentity, resolve_identity
from spacetime.provenance.watermark import DEFAULT_KEY, detect_watermark, watermark

log = logging.getLogger(__name__)


@dataclass
class Provenance:
    """How to mark an output. `claims`: from `generation_claims`; `identity`: None resolves the
    user's (flags are the caller's business; then signing.json; then the local identity)."""

    claims: dict
    ingredients: list[Ingredient] = field(default_factory=list)
    identity: SigningIdentity | None = None
    sign: bool = True  # False: no C2PA manifest (the sidecar says so); the watermark stays
    watermark_key: str | None = DEFAULT_KEY  # None: no pixel watermark
    config_dir: str | os.PathLike | None = None


def write_output(frames: Any, path: str | os.PathLike, fps: float, provenance: Provenance) -> dict:
    """Watermark, write (MP4/GIF by extension, PNG for one frame) and sign; returns the record for
    the JSON sidecar: what was done, by whom, and the seconds each step took."""
    from spacetime.data.video import export_to_video, to_uint8_frames

    path = Path(path)
    identity = provenance.identity
    if provenance.sign and identity is None:
        identity = resolve_identity(directory=provenance.config_dir)  # before any writing: fail early
    arr = to_uint8_frames(frames)
    t0 = time.perf_counter()
    found = None
    if provenance.watermark_key is not None:
        arr = watermark(arr, provenance.watermark_key)
        # the mark is as strong as the content allows: on noise-like frames (an untrained model's)
        # or a clip of 2-7 frames it cannot be found, and the file must not be said to carry one
        found = detect_watermark(arr[:240], provenance.watermark_key)  # what `verify` reads; milliseconds
        if not found.detected:
            log.warning("%s: the pixel watermark cannot be detected in this %s (score %s, threshold %s); `spacetime "
                        "verify` will rely on the Content Credentials alone", path,
                        "clip (2-7 frames are not judged)" if found.score is None else "content", found.score,
                        found.threshold)
    t1 = time.perf_counter()
    record = {
        "watermark": provenance.watermark_key is not None,
        "watermark_detectable": None if found is None else found.detected,
        "c2pa": False,
        "seconds": {"watermark": round(t1 - t0, 4)},
    }
    if not provenance.sign:
        export_to_video(arr, path, fps=fps)
        record["c2pa_absent_because"] = "signing was turned off (--no-provenance); this file carries no Content Credentials"
        return record
    # encode to a temp file beside the target, then sign into the target (atomically)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".unsigned{path.suffix}")
    os.close(fd)
    try:
        export_to_video(arr, tmp, fps=fps)
        t2 = time.perf_counter()
        sign_file(tmp, path, provenance.claims, identity, provenance.ingredients)
    finally:
        Path(tmp).unlink(missing_ok=True)
    record.update(c2pa=True, signer=identity.source)
    record["seconds"].update(encode=round(t2 - t1, 4), sign=round(time.perf_counter() - t2, 4))
    return record
