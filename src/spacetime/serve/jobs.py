"""The job queue: a bounded queue of generation jobs, worker threads that run them through the
pipeline, and each job's files in its own folder under the server's output directory.

A job is `queued`, `in_progress`, `completed` or `failed` (as OpenAI's Videos API); cancelling
makes it `failed` with error code `cancelled`. Memory stays bounded: at most `queue_size` jobs wait,
frames live only while their job runs, and at most `max_jobs` records are kept (the oldest finished
ones are deleted, files too, past that). A job that fails or is cancelled keeps only its record
(`job.json`): its uploads (and anything it wrote) are deleted then.

A queue started on a folder that holds jobs (a restarted server) takes their records back: finished
jobs stay retrievable, listable, downloadable and deletable, and count towards `max_jobs`; a job a
server left queued or running (a crash, a kill -9) becomes failed with code `interrupted`. A record
that is not one this server writes is skipped with a warning. One queue uses a folder at a time
(a lock file): a second server on the same folder would fail the first's running jobs as interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spacetime.atomic import atomic_write_text
from spacetime.provenance.identity import SigningIdentity
from spacetime.serve.schema import JobSpec

log = logging.getLogger(__name__)

ID_RE = re.compile(r"video_[0-9a-f]{32}")  # the only ids there are: made here, never by a client
VIDEO, THUMBNAIL, SPRITESHEET = "video.mp4", "thumbnail.png", "spritesheet.png"
FILES = {"video": VIDEO, "thumbnail": THUMBNAIL, "spritesheet": SPRITESHEET}  # by the API's `variant`
RECORD, LOCK = "job.json", ".spacetime-serve.lock"
RECORD_MAX_BYTES = 2**20  # a record is a few KiB; a bigger job.json is not one this server wrote
STATUSES = ("queued", "in_progress", "completed", "failed")
JOB_MODES = ("text-to-video", "image-to-video", "extend-forward", "extend-backward", "edit", "connect")
INTERRUPTED = ("interrupted", "the server stopped (a restart, a crash or a kill) before this job finished; "
                              "submit it again")
SHEET_FRAMES, SHEET_TILE = 25, 256  # a sprite sheet: at most this many frames, each at most this many pixels a side


def sprite_sheet(frames: np.ndarray, most: int = SHEET_FRAMES, tile: int = SHEET_TILE) -> np.ndarray:
    """OpenAI's `spritesheet` variant: frames evenly spaced over the clip, first and last included,
    in a near-square grid read left to right, top to bottom (T H W 3 uint8 -> H' W' 3), each scaled
    down (never up) to `tile` pixels on its longer side, so the sheet stays small for any length or
    size. Cells past the last frame are black."""
    from PIL import Image

    t, h, w = frames.shape[:3]
    picks = np.unique(np.linspace(0, t - 1, min(t, most)).round().astype(int))
    scale = min(1.0, tile / max(h, w))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    cols = math.ceil(math.sqrt(len(picks)))
    rows = math.ceil(len(picks) / cols)
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, f in enumerate(picks):
        cell = frames[f] if (th, tw) == (h, w) else np.asarray(Image.fromarray(frames[f]).resize((tw, th), Image.BICUBIC))
        r, c = divmod(i, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cell
    return sheet


def _lock_folder(root: Path):
    """An exclusive lock on `root` for this queue's life (released by `stop`, or when the process
    ends, however it ends): ValueError if another server holds it. None where there is no flock."""
    try:
        import fcntl
    except ImportError:  # (not POSIX)
        return None
    f = open(root / LOCK, "a")  # noqa: SIM115 - held open: the lock lives as long as the file does
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ValueError(f"{root} is in use by another spacetime serve: give each server its own "
                         "--output-dir") from None
    return f


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """Raised from the progress callback to stop a job's generation."""


@dataclass
class Job:
    id: str
    spec: JobSpec
    dir: Path
    model: str
    status: str = "queued"
    progress: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    error: dict | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    deleted: bool = False
    seconds_taken: float | None = None
    remixed_from_video_id: str | None = None  # as OpenAI's Video object: set on a remix only
    seq: int = -1  # its place in the order jobs were queued (the list's order), set by submit

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    def to_dict(self) -> dict:
        s = self.spec
        return {"id": self.id, "object": "video", "model": self.model, "status": self.status,
                "progress": self.progress, "created_at": self.created_at, "completed_at": self.completed_at,
                "error": self.error, "prompt": s.prompt, "negative_prompt": s.negative_prompt, "size": s.size,
                "seconds": s.seconds, "num_frames": s.num_frames, "height": s.height, "width": s.width,
                "fps": s.fps, "steps": s.steps, "guidance_scale": s.guidance_scale, "seed": s.seed,
                "mode": s.mode, "strength": s.strength, "loop": s.loop, "embed_prompt": s.embed_prompt,
                "prompt_as_typed": s.prompt_as_typed, "revised_prompt": s.revised_prompt,
                "remixed_from_video_id": self.remixed_from_video_id}

    @classmethod
    def from_record(cls, record: object, folder: Path) -> Job:
        """The job a `to_dict` record in `folder` (a job's own) describes; ValueError naming the
        first field that is not as this server writes it (a corrupt or foreign job.json)."""
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")

        def get(name: str, types: tuple, none: bool = False):
            v = record.get(name)
            if v is None and none:
                return None
            if isinstance(v, bool) != (bool in types) or not isinstance(v, types):
                raise ValueError(f"{name}: {v!r}"[:200])
            return v

        if record.get("object") != "video" or record.get("id") != folder.name:
            raise ValueError(f"not the record of {folder.name}")
        number = (int, float)
        status, mode = get("status", (str,)), get("mode", (str,))
        if status not in STATUSES or mode not in JOB_MODES:
            raise ValueError(f"status {status!r}, mode {mode!r}"[:200])
        error = get("error", (dict,), none=True)
        if error is not None and not (set(error) == {"code", "message"} and all(isinstance(v, str) for v in error.values())):
            raise ValueError(f"error: {error!r}"[:200])
        remixed = get("remixed_from_video_id", (str,), none=True)
        if remixed is not None and not ID_RE.fullmatch(remixed):
            raise ValueError(f"remixed_from_video_id: {remixed!r}"[:200])
        spec = JobSpec(prompt=get("prompt", (str,)), negative_prompt=get("negative_prompt", (str,), none=True),
                       num_frames=get("num_frames", (int,)), height=get("height", (int,)), width=get("width", (int,)),
                       fps=float(get("fps", number)), steps=get("steps", (int,)),
                       guidance_scale=float(get("guidance_scale", number)), seed=get("seed", (int,)), mode=mode,
                       strength=get("strength", number, none=True), loop=get("loop", (bool,)),
                       embed_prompt=get("embed_prompt", (bool,)), prompt_as_typed=get("prompt_as_typed", (bool,)),
                       revised_prompt=get("revised_prompt", (str,), none=True))
        if record.get("size") != spec.size:
            raise ValueError(f"size {record.get('size')!r} is not its width x height"[:200])
        progress = get("progress", (int,))
        if not 0 <= progress <= 100:
            raise ValueError(f"progress: {progress}")
        return cls(id=folder.name, spec=spec, dir=folder, model=get("model", (str,)), status=status, progress=progress,
                   created_at=get("created_at", (int,)), completed_at=get("completed_at", (int,), none=True),
                   error=error, remixed_from_video_id=remixed)


# runs one job: (job, progress(step, total)) -> frames written to job.dir; raises to fail it
Runner = Callable[[Job, Callable[[int, int], None]], None]


class JobQueue:
    def __init__(self, run: Runner, root: str | Path, *, model: str = "spacetime", queue_size: int = 8,
                 workers: int = 1, max_jobs: int = 1000):
        for name, v in (("queue_size", queue_size), ("workers", workers), ("max_jobs", max_jobs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        self.run, self.root, self.model = run, Path(root).resolve(), model
        self.queue_size, self.workers, self.max_jobs = queue_size, workers, max_jobs
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_folder(self.root)
        self._jobs: dict[str, Job] = {}  # insertion order is creation order
        self._queue: deque[Job] = deque()
        self._running = 0
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._mean_s = 10.0  # running mean of a job's duration, for Retry-After
        self._seq = 0  # the next job's place in the list
        # places of deleted and evicted jobs, newest max_jobs: a client paging the list with `after`
        # set to the last id it saw, and deleting as it goes, still gets the rest
        self._gone: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        """Take back the records of the jobs in the folder (a restart): the finished as they were,
        those left queued or running by a server that died failed as `interrupted` (their inputs
        deleted, as any failed job's); oldest first, then the oldest past `max_jobs` evicted."""
        jobs, interrupted = [], 0
        for folder in self.root.iterdir():
            if not ID_RE.fullmatch(folder.name):
                continue  # not a job's folder (the lock file, anything else put there): not ours to read
            record = folder / RECORD
            try:
                if folder.is_symlink() or not folder.is_dir():
                    raise ValueError("not a folder")
                if record.is_symlink() or not record.is_file():
                    raise ValueError(f"no {RECORD} (a job whose uploads were still arriving when the server stopped)")
                if record.stat().st_size > RECORD_MAX_BYTES:
                    raise ValueError(f"{RECORD} is over {RECORD_MAX_BYTES} bytes")
                fields = json.loads(record.read_text(encoding="utf-8"))
                job = Job.from_record(fields, folder)
                seq = fields.get("seq", 0)  # (records written before it was kept: none)
                if isinstance(seq, bool) or not isinstance(seq, int):
                    raise ValueError(f"seq: {seq!r}"[:200])
            except (OSError, ValueError, RecursionError) as e:  # (json's and decoding errors are ValueErrors)
                log.warning("%s: skipped, not a job record this server wrote: %s", folder, e)
                continue
            jobs.append((job.created_at, seq, job.id, job))
        jobs.sort(key=lambda t: t[:3])  # the order they were made in (seq: within one second)
        for *_, job in jobs:
            job.seq, self._seq = self._seq, self._seq + 1
            self._jobs[job.id] = job
            if not job.finished:
                self._fail(job, *INTERRUPTED)
                self._write_record(job)
                self._clear_files(job)
                interrupted += 1
        self._evict()
        if jobs:
            log.info("%d jobs taken back from %s (%d of them interrupted)", len(jobs), self.root, interrupted)

    # --- the workers --------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"spacetime-worker-{i}", daemon=True)
                         for i in range(self.workers)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what runs and waits, and join the workers."""
        with self._cond:
            self._stopping = True
            for job in list(self._queue):
                self._fail(job, "cancelled", "the server is shutting down")
                self._write_record(job)  # the next server reads it: it says why the job never ran
                self._clear_files(job)
            self._queue.clear()
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        if self._lock is not None:  # another server may use the folder now
            self._lock.close()
            self._lock = None

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.status, self._running = "in_progress", self._running + 1
                self._write_record(job)  # what a crash leaves: the next server fails it as interrupted
            t0 = time.perf_counter()
            try:
                self.run(job, lambda step, total: self._progress(job, step, total))
            except Cancelled:
                with self._cond:
                    self._fail(job, "cancelled", "the server is shutting down" if self._stopping else "cancelled by the client")
            except Exception as e:  # noqa: BLE001 - any failure is the job's, reported to its client
                log.exception("job %s failed", job.id)
                with self._cond:
                    # the job's files by their names: the server's folders are not the client's business
                    self._fail(job, "generation_failed", f"{type(e).__name__}: {e}".replace(f"{job.dir}{os.sep}", ""))
            else:
                with self._cond:
                    if job.cancel.is_set():  # cancelled after its last step: honour it
                        self._fail(job, "cancelled", "the server is shutting down" if self._stopping
                                   else "cancelled by the client")
                    else:
                        job.status, job.progress, job.completed_at = "completed", 100, int(time.time())
            with self._cond:
                job.seconds_taken = time.perf_counter() - t0
                self._mean_s = 0.8 * self._mean_s + 0.2 * job.seconds_taken
                self._running -= 1
                self._write_record(job)
                if job.deleted:  # deleted while it ran: its files go now that nothing writes them
                    shutil.rmtree(job.dir, ignore_errors=True)
                elif job.status == "failed":  # nothing will read its inputs again: only the record stays
                    self._clear_files(job)

    def _progress(self, job: Job, step: int, total: int) -> None:
        if job.cancel.is_set():
            raise Cancelled
        job.progress = min(99, int(95 * step / max(total, 1)))  # the rest is decoding and writing

    def _fail(self, job: Job, code: str, message: str) -> None:
        job.status, job.error, job.completed_at = "failed", {"code": code, "message": message}, int(time.time())

    @staticmethod
    def _clear_files(job: Job) -> None:
        """Everything in a failed or cancelled job's folder but its record: its uploads (up to the
        body limit each), and whatever it wrote before it stopped."""
        try:
            entries = list(job.dir.iterdir())
        except OSError:  # deleted meanwhile
            return
        for path in entries:
            if path.name == RECORD:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass

    def _write_record(self, job: Job) -> None:
        if not job.deleted and job.dir.is_dir():  # its place in the list too: the order of jobs made in one second
            atomic_write_text(job.dir / RECORD, json.dumps({**job.to_dict(), "seq": job.seq}, indent=1) + "\n")

    # --- what the API calls -------------------------------------------------------------------

    def new_job(self, spec: JobSpec, remixed_from: str | None = None) -> Job:
        """A job with its folder made, not yet queued (uploads are saved into it first)."""
        job_id = f"video_{uuid.uuid4().hex}"
        job = Job(id=job_id, spec=spec, dir=self.root / job_id, model=self.model, remixed_from_video_id=remixed_from)
        job.dir.mkdir(mode=0o700)  # a job's prompt, uploads and video are its client's: not for other local users
        return job

    def submit(self, job: Job) -> Job:
        """Queue `job`, or raise `QueueFull` (and remove its folder) when `queue_size` jobs wait."""
        with self._cond:
            if len(self._queue) >= self.queue_size or self._stopping:
                shutil.rmtree(job.dir, ignore_errors=True)
                waiting = len(self._queue) + self._running
                raise QueueFull(max(1, math.ceil(self._mean_s * waiting / self.workers)))
            job.seq, self._seq = self._seq, self._seq + 1
            self._jobs[job.id] = job
            self._queue.append(job)
            self._evict()
            self._write_record(job)
            self._cond.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if ID_RE.fullmatch(job_id) else None

    def list(self) -> list[Job]:
        with self._cond:
            return list(self._jobs.values())

    def place(self, job_id: str) -> int | None:
        """Where a job is, or was before it was deleted or evicted, in the list's order; None if
        it is unknown (never made here, or gone long ago)."""
        with self._cond:
            job = self._jobs.get(job_id)
            return job.seq if job is not None else self._gone.get(job_id)

    def _forget(self, job: Job) -> None:
        """Take a job out of the records, keeping its place for paging (under the lock)."""
        if self._jobs.pop(job.id, None) is not None:
            self._gone[job.id] = job.seq
            while len(self._gone) > self.max_jobs:
                del self._gone[next(iter(self._gone))]

    def cancel(self, job: Job) -> Job:
        """Stop a queued or running job (it becomes failed/cancelled); a finished one is left as it is."""
        with self._cond:
            job.cancel.set()
            if job.status == "queued":
                self._queue.remove(job)
                self._fail(job, "cancelled", "cancelled by the client")
                self._write_record(job)
                self._clear_files(job)
        return job

    def delete(self, job: Job) -> None:
        """Cancel it and forget it; its files go now, or when its worker lets go of them."""
        self.cancel(job)
        with self._cond:
            job.deleted = True
            self._forget(job)
            if job.status != "in_progress":
                shutil.rmtree(job.dir, ignore_errors=True)

    def _evict(self) -> None:
        """Past `max_jobs` records, the oldest finished jobs go, files too (under the lock)."""
        excess = len(self._jobs) - self.max_jobs
        for job in [j for j in self._jobs.values() if j.finished][: max(0, excess)]:
            job.deleted = True
            self._forget(job)
            shutil.rmtree(job.dir, ignore_errors=True)

    def counts(self) -> dict:
        with self._cond:
            return {"queued": len(self._queue), "in_progress": self._running, "jobs": len(self._jobs),
                    "queue_size": self.queue_size, "workers": self.workers}


@dataclass(frozen=True)
class OutputMarks:
    """What every served file carries (docs/provenance.md), fixed once at server start: the model's
    identity for the claims, and who signs. `identity` None: no C2PA manifest (`--no-provenance`);
    the pixel watermark is there either way."""

    model: dict  # model_identity(model_dir): {"name", "sha256" over the weights files}
    identity: SigningIdentity | None

    @classmethod
    def resolve(cls, model_dir: str | Path, *, name: str | None = None, sign: bool = True,
                cert: str | Path | None = None, key: str | Path | None = None) -> OutputMarks:
        """Resolve the signing identity (flags, then signing.json, then the local one) and hash the
        weights: a missing or mismatched key raises `SigningKeyError` here, before a port is bound."""
        from spacetime.provenance import model_identity, resolve_identity

        if not sign and (cert is not None or key is not None):
            raise ValueError("--sign-cert/--sign-key sign the outputs; they cannot go with --no-provenance")
        identity = resolve_identity(cert, key) if sign else None
        return cls(model_identity(model_dir, name), identity)


def _made_as(spec: JobSpec, num_frames: int) -> str:
    """The mode as `spacetime generate` names it in the claims (a 1-frame text job is text-to-image)."""
    return "text-to-image" if spec.mode == "text-to-video" and num_frames == 1 else spec.mode


def pipeline_runner(pipe, inputs_of: Callable[[Job], dict], marks: OutputMarks) -> Runner:
    """A `Runner` that makes the job's video with a `SpacetimePipeline` and writes it, and its first
    frame as the thumbnail, with `write_output`, as `spacetime generate` does: both watermarked and,
    unless `marks.identity` is None, signed with Content Credentials. This is the one place where
    served files are written."""

    def run(job: Job, progress: Callable[[int, int], None]) -> None:
        import torch

        from spacetime.data.video import to_uint8_frames
        from spacetime.provenance import (
            Ingredient,
            Provenance,
            generation_claims,
            guidance_interval_parameters,
            guidance_method_parameters,
            write_output,
        )

        s = job.spec
        media = inputs_of(job)  # paths in the job's own folder, written by the server
        if pipe.defaults.get("complete_prompt") and not s.prompt_as_typed:  # as `spacetime generate` does
            from spacetime.cli import completed_prompt

            done = completed_prompt(s.prompt, seed=s.seed, num_frames=s.num_frames, fps=s.fps, aspect=s.width / s.height,
                                    mode=s.mode, image=media.get("image"), video=media.get("video"),
                                    video2=media.get("video2"))
            s.revised_prompt = None if done == s.prompt else done
        out = pipe(s.revised_prompt or s.prompt, negative_prompt=s.negative_prompt, num_frames=s.window_frames or s.num_frames, height=s.height,
                   width=s.width, num_inference_steps=s.steps, guidance_scale=s.guidance_scale,
                   generator=torch.Generator().manual_seed(s.seed), image=media.get("image"),
                   video=media.get("video"), video2=media.get("video2"), strength=s.strength,
                   extend="backward" if s.mode == "extend-backward" else "forward", loop=s.loop, callback=progress)
        frames = out.frames[0]
        s.num_frames, height, width = frames.shape[:3]  # as made: extending and looping add frames
        if job.cancel.is_set():
            raise Cancelled
        params = {"num_frames": s.num_frames, "height": height, "width": width, "fps": s.fps,
                  "num_inference_steps": s.steps, "guidance_scale": s.guidance_scale,
                  # the model's own (the server takes no interval or method): what made the video, in its credentials
                  **guidance_interval_parameters(pipe.resolve_guidance_interval()), "shift": pipe.resolve_shift(),
                  **guidance_method_parameters(*pipe.resolve_guidance_method()),
                  "solver": "euler",  # the pipeline's default, the only one the server runs
                  "strength": s.strength, "loop": s.loop, "complete_prompt": s.revised_prompt is not None}
        claims = generation_claims(prompt=s.prompt, model=marks.model, parameters=params, seed=s.seed,
                                   mode=_made_as(s, s.num_frames), embed_prompt=s.embed_prompt,
                                   negative_prompt=s.negative_prompt)
        sign = marks.identity is not None
        inputs = [Ingredient(path, role) for role, path in media.items()]
        write_output(frames, job.dir / VIDEO, s.fps, Provenance(claims, inputs, marks.identity, sign=sign))
        # the previews carry the same claims; their inputs are already recorded in the video's manifest
        write_output(frames[:1], job.dir / THUMBNAIL, s.fps, Provenance(claims, [], marks.identity, sign=sign))
        sheet = sprite_sheet(to_uint8_frames(frames))[None]
        write_output(sheet, job.dir / SPRITESHEET, s.fps, Provenance(claims, [], marks.identity, sign=sign))

    return run
