"""The HTTP API (the shape of OpenAI's Videos API) and the web page, on FastAPI; `serve` runs it
under uvicorn.

    POST   /v1/videos                  JSON, or multipart with image / video / video2 uploads -> a job
    GET    /v1/videos                  the jobs, newest first (limit, after, order)
    GET    /v1/videos/{id}             one job: status queued|in_progress|completed|failed, progress 0-100
    GET    /v1/videos/{id}/content     the MP4 (?variant=thumbnail: the first frame as PNG)
    GET    /v1/videos/{id}/credentials the provenance check of that file (`spacetime verify --json`)
    POST   /v1/videos/{id}/cancel      stop it; it becomes failed with error code "cancelled"
    DELETE /v1/videos/{id}             cancel it and delete it, files too
    POST   /v1/verify                  multipart `file` (MP4 or PNG) -> the same check of any file
    GET    /v1/config                  defaults, presets and limits (the page reads them)
    GET    /openapi.json, /healthz, /  the schema, a liveness check, the page (assets under /static)

Errors are `{"error": {"message", "type", "param", "code"}}` as OpenAI's, with 400 (malformed),
401 (token), 404 (no such job), 409 (no content yet), 413 (body too large), 415 (content type),
422 (a field out of bounds: `param` names it) and 429 (queue full, with Retry-After).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from spacetime.serve.jobs import (
    ID_RE,
    THUMBNAIL,
    VIDEO,
    Job,
    JobQueue,
    OutputMarks,
    QueueFull,
    pipeline_runner,
)
from spacetime.serve.schema import UPLOADS, InvalidRequest, Limits, presets, request_model, resolve

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# the page loads nothing from elsewhere; blob: is how it plays and offers the fetched video
CSP = ("default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.headers = status, code, message, param, headers


def _error(status: int, code: str, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


def _first_error(errors: list[dict], skip: int = 0) -> tuple[str | None, str]:
    """pydantic's first error -> (the field, "field: what is wrong")."""
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ())[skip:]]
    param = ".".join(loc) or None
    return param, f"{param or 'body'}: {e.get('msg', 'invalid')}"


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or as they stream in,
    before anything parses them."""

    class TooLarge(Exception):
        pass

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send)
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyLimit.TooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyLimit.TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        response = _error(413, "body_too_large", f"the request body is over {self.max_bytes} bytes")
        await response(scope, receive, send)


def _input_names(upload: str) -> tuple[str, ...]:
    """The server's names for an upload in a job's folder; a client's file name is never used. An
    image is re-encoded as PNG. A video keeps its bytes, named `.mp4` when it is ISO BMFF (MP4,
    MOV), so C2PA reads it as an ingredient and carries its own manifest on; other containers get
    no extension (FFmpeg tells them by content)."""
    return ("input-image.png",) if upload == "image" else (f"input-{upload}.mp4", f"input-{upload}")


def _input_name(upload: str, data: bytes) -> str:
    if upload == "image":
        return "input-image.png"
    return f"input-{upload}.mp4" if data[4:8] == b"ftyp" else f"input-{upload}"


def _size_multiple(pipe) -> tuple[int, int]:
    _, ph, pw = pipe.dit.config.patch
    fs = pipe.vae.config.spatial_factor
    return fs * ph, fs * pw


def create_app(pipe, output_dir: str | Path, *, marks: OutputMarks, limits: Limits = Limits(), queue_size: int = 8,
               workers: int = 1, max_jobs: int = 1000, token: str | None = None, model_name: str | None = None,
               default_steps: int = 25, trust_anchors: list[str | Path] = ()) -> FastAPI:
    """The app around a loaded `SpacetimePipeline`; jobs' files go under `output_dir/<job id>/`,
    marked as `marks` says (`OutputMarks.resolve(model_dir)`). `model_name` (what jobs call the
    model) defaults to the name in the marks; `trust_anchors` are PEM roots the checks trust
    besides this machine's local CA, as `spacetime verify --trust-anchors`."""
    VideoRequest = request_model(limits)
    model_name = model_name or marks.model["name"]
    anchors = [Path(a) for a in trust_anchors]

    def inputs_of(job: Job) -> dict:
        found = {name: [job.dir / n for n in _input_names(name) if (job.dir / n).is_file()] for name in UPLOADS}
        return {name: paths[0] for name, paths in found.items() if paths}

    queue = JobQueue(pipeline_runner(pipe, inputs_of, marks), output_dir, model=model_name, queue_size=queue_size,
                     workers=workers, max_jobs=max_jobs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()
        yield
        await run_in_threadpool(queue.stop)

    app = FastAPI(title="spacetime", version=_version(), lifespan=lifespan,
                  description="Text (and image or video) to video, in the shape of OpenAI's Videos API.",
                  docs_url=None, redoc_url=None)  # the interactive docs load their assets from a CDN
    app.state.queue, app.state.limits = queue, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return _error(e.status, e.code, e.message, e.param, e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError):
        param, message = _first_error(e.errors(), skip=1)  # loc[0] is "query", "path" or "body"
        return _error(422, "invalid_value", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, "not_found" if e.status_code == 404 else "http_error", str(e.detail),
                      headers=getattr(e, "headers", None))  # e.g. Allow on a 405

    def authorized(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer TOKEN)",
                           headers={"WWW-Authenticate": "Bearer"})

    def job_or_404(video_id: str) -> Job:
        if not ID_RE.fullmatch(video_id):  # checked before any lookup; ids never reach a path unchecked
            raise ApiError(400, "invalid_id", f"{video_id!r} is not a video id (video_ and 32 hex digits)", "video_id")
        job = queue.get(video_id)
        if job is None:
            raise ApiError(404, "not_found", f"no video {video_id}", "video_id")
        return job

    auth = [Depends(authorized)]
    body_schema = VideoRequest.model_json_schema()
    form_schema = {"type": "object", "required": ["prompt"], "properties": {
        **{k: {"type": "string"} for k in body_schema["properties"]},
        **{k: {"type": "string", "format": "binary"} for k in (*UPLOADS, "input_reference")}}}

    @app.post("/v1/videos", dependencies=auth, status_code=200, summary="Create a video job",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": body_schema}, "multipart/form-data": {"schema": form_schema}}}})
    async def create_video(request: Request) -> dict:
        fields, files = await _read_body(request, limits)
        try:
            req = VideoRequest.model_validate(fields)
        except ValidationError as e:
            param, message = _first_error(e.errors())
            raise ApiError(422, "invalid_value", message, param) from None
        try:
            spec = resolve(req, set(files), pipe.defaults, pipe.fit_size, limits, default_steps)
        except InvalidRequest as e:
            raise ApiError(422, "invalid_value", str(e), e.param) from None
        except ValueError as e:  # the pipeline's own checks of a size
            raise ApiError(422, "invalid_value", str(e), "size") from None
        job = queue.new_job(spec)
        try:
            for name, upload in files.items():
                await run_in_threadpool(_save_upload, upload, name, job.dir, limits)
            queue.submit(job)
        except InvalidRequest as e:
            await run_in_threadpool(_remove, job.dir)
            raise ApiError(422, "invalid_file", str(e), e.param) from None
        except QueueFull as e:
            raise ApiError(429, "queue_full", str(e), headers={"Retry-After": str(e.retry_after)}) from None
        except BaseException:
            await run_in_threadpool(_remove, job.dir)
            raise
        finally:
            for upload in files.values():
                await upload.close()
        return job.to_dict()

    @app.get("/v1/videos", dependencies=auth, summary="List video jobs")
    def list_videos(limit: int = Query(20, ge=1, le=100), after: str | None = Query(None, max_length=64),
                    order: Literal["asc", "desc"] = "desc") -> dict:
        jobs = queue.list()
        if order == "desc":
            jobs.reverse()
        if after is not None:
            ids = [j.id for j in jobs]
            if after not in ids:
                raise ApiError(422, "invalid_value", f"after: no video {after!r} in the list", "after")
            jobs = jobs[ids.index(after) + 1:]
        page = jobs[:limit]
        return {"object": "list", "data": [j.to_dict() for j in page], "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None, "has_more": len(jobs) > limit}

    @app.get("/v1/videos/{video_id}", dependencies=auth, summary="Get a video job")
    def get_video(video_id: str) -> dict:
        return job_or_404(video_id).to_dict()

    # HEAD as well as GET: download tools ask for the size and type first (curl -I)
    @app.head("/v1/videos/{video_id}/content", dependencies=auth, include_in_schema=False)
    @app.get("/v1/videos/{video_id}/content", dependencies=auth, summary="Download the video (or its thumbnail)",
             response_class=FileResponse, responses={200: {"content": {"video/mp4": {}, "image/png": {}}}})
    def video_content(video_id: str, variant: Literal["video", "thumbnail"] = "video"):
        job = job_or_404(video_id)
        if job.status != "completed":
            raise ApiError(409, "not_ready", f"video {video_id} is {job.status}; content is there once it is completed")
        name, media = (VIDEO, "video/mp4") if variant == "video" else (THUMBNAIL, "image/png")
        if not (job.dir / name).is_file():  # deleted meanwhile, or removed by hand
            raise ApiError(404, "not_found", f"the {variant} of {video_id} is gone", "video_id")
        return FileResponse(job.dir / name, media_type=media, content_disposition_type="inline",
                            filename=f"{video_id}{Path(name).suffix}")

    def check(path: Path, public_name: str) -> dict:
        """`verify_file` with this server's trust, and without its paths: the report names the file
        as the client knows it."""
        from spacetime.provenance import verify_file

        report = verify_file(path, anchors=anchors)
        text = json.dumps(report).replace(json.dumps(str(path))[1:-1], json.dumps(public_name)[1:-1])
        return json.loads(text)

    @app.get("/v1/videos/{video_id}/credentials", dependencies=auth,
             summary="Check the video's (or thumbnail's) Content Credentials and watermark")
    def video_credentials(video_id: str, variant: Literal["video", "thumbnail"] = "video") -> dict:
        job = job_or_404(video_id)
        if job.status != "completed":
            raise ApiError(409, "not_ready", f"video {video_id} is {job.status}; it has credentials once it is completed")
        name = VIDEO if variant == "video" else THUMBNAIL
        if not (job.dir / name).is_file():
            raise ApiError(404, "not_found", f"the {variant} of {video_id} is gone", "video_id")
        return check(job.dir / name, f"{video_id}{Path(name).suffix}")

    verify_schema = {"type": "object", "required": ["file"],
                     "properties": {"file": {"type": "string", "format": "binary", "description": "an MP4 or PNG"}}}

    @app.post("/v1/verify", dependencies=auth, summary="Check any MP4 or PNG for spacetime's Content Credentials and watermark",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"multipart/form-data": {"schema": verify_schema}}}})
    async def verify(request: Request) -> dict:
        upload = await _read_verify_form(request, limits)
        try:
            data = await upload.read()
        finally:
            await upload.close()
        return await run_in_threadpool(_verify_upload, data, upload.filename, check)

    @app.post("/v1/videos/{video_id}/cancel", dependencies=auth, summary="Cancel a queued or running job")
    def cancel_video(video_id: str) -> dict:
        return queue.cancel(job_or_404(video_id)).to_dict()

    @app.delete("/v1/videos/{video_id}", dependencies=auth, summary="Cancel and delete a video job and its files")
    def delete_video(video_id: str) -> dict:
        queue.delete(job_or_404(video_id))
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    @app.get("/v1/config", summary="Defaults, presets and limits")
    def config() -> dict:
        d = pipe.defaults
        return {"model": model_name, "auth": token is not None,
                "defaults": {"size": f"{d.get('width', 64)}x{d.get('height', 64)}",
                             "num_frames": d.get("num_frames", 17), "fps": float(d.get("fps", 8.0)),
                             "steps": default_steps, "guidance_scale": 5.0},
                **presets(d, _size_multiple(pipe), limits), "limits": asdict(limits), "queue": queue.counts()}

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"ok": True, **queue.counts()}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def _read_verify_form(request: Request, limits: Limits) -> UploadFile:
    """The one `file` upload of POST /v1/verify."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be multipart/form-data with a file field")
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=limits.max_body_bytes)
    except StarletteHTTPException as e:
        raise ApiError(400, "invalid_form", f"the form cannot be read: {e.detail}") from None
    for key in form.keys():
        if key != "file":
            raise ApiError(422, "invalid_value", f"{key}: unknown field (the upload goes in file)", key)
    values = form.getlist("file")
    if not values:
        raise ApiError(422, "invalid_value", "file: an MP4 or PNG upload is required", "file")
    if len(values) > 1 or not isinstance(values[0], UploadFile):
        raise ApiError(422, "invalid_value", "file: must be one file upload", "file")
    return values[0]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _verify_upload(data: bytes, filename: str | None, check) -> dict:
    """Check uploaded bytes: kept in a server-owned temp file (named by what the bytes are, as C2PA
    reads by extension), checked, and removed whatever happens."""
    import os
    import tempfile

    if not data:
        raise ApiError(422, "invalid_file", "file: the file is empty", "file")
    suffix = ".png" if data.startswith(PNG_SIGNATURE) else ".mp4" if data[4:8] == b"ftyp" else None
    if suffix is None:
        raise ApiError(422, "invalid_file", "file: not an MP4 or PNG (by its first bytes)", "file")
    public = Path(filename or "").name[:200] or f"upload{suffix}"
    fd, tmp = tempfile.mkstemp(prefix="spacetime-verify-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        report = check(Path(tmp), public)
    finally:
        Path(tmp).unlink(missing_ok=True)
    # a file with no readable manifest that does not decode either is not an MP4 or PNG at all (C2PA
    # calls any unparsable container "manifest unreadable", which would read as tampered)
    if report["c2pa"]["claims"] is None and str(report["watermark"].get("note", "")).startswith("cannot decode"):
        raise ApiError(422, "invalid_file", f"file: not a readable MP4 or PNG ({report['watermark']['note']})", "file")
    return report


async def _read_body(request: Request, limits: Limits) -> tuple[dict, dict[str, UploadFile]]:
    """JSON or multipart form -> (fields, uploads by field name). Empty form fields count as left
    out, as a browser form sends them."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await request.body()
        try:
            fields = json.loads(raw)
        except RecursionError:  # nesting deeper than the decoder's stack
            raise ApiError(400, "invalid_json", "the body is not valid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, and integers over 4,300 digits
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
        if not isinstance(fields, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        return fields, {}
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=len(UPLOADS), max_fields=50, max_part_size=limits.max_body_bytes)
        except StarletteHTTPException as e:
            raise ApiError(400, "invalid_form", f"the form cannot be read: {e.detail}") from None
        fields, files = {}, {}
        for key in form.keys():
            values = form.getlist(key)
            name = "image" if key == "input_reference" else key
            if len(values) > 1:
                raise ApiError(422, "invalid_value", f"{key}: given more than once", key)
            value = values[0]
            if isinstance(value, UploadFile):
                if name not in UPLOADS:
                    raise ApiError(422, "invalid_value", f"{key}: not a file field (files go in {', '.join(UPLOADS)})", key)
                if name in files:
                    raise ApiError(422, "invalid_value", f"{key}: given more than once", key)
                files[name] = value
            elif value != "":
                if name in UPLOADS:
                    raise ApiError(422, "invalid_value", f"{key}: must be a file upload", key)
                fields[key] = value
        return fields, files
    raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json or multipart/form-data")


def _save_upload(upload: UploadFile, name: str, folder: Path, limits: Limits) -> None:
    """Check an uploaded image or video and keep it in the job's folder under the server's name."""
    from spacetime.atomic import atomic_path

    data = upload.file.read()
    if not data:
        raise InvalidRequest(name, "the file is empty")
    if name == "image":
        import numpy as np
        from PIL import Image

        from spacetime.data.video import export_to_video

        try:
            with Image.open(io.BytesIO(data)) as im:
                if max(im.size) > limits.max_input_side:
                    raise InvalidRequest(name, f"{im.size[0]}x{im.size[1]} is over {limits.max_input_side} pixels a side")
                frame = np.array(im.convert("RGB"))
        except (OSError, Image.DecompressionBombError, ValueError) as e:
            if isinstance(e, InvalidRequest):
                raise
            raise InvalidRequest(name, f"not a readable image ({type(e).__name__}: {e})") from None
        export_to_video(frame[None], folder / _input_name(name, data))  # re-encoded: only pixels come through
        return
    from spacetime.data.decode import VideoReadError, decode

    path = folder / _input_name(name, data)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    try:
        d = decode(path, rgb=False, max_frames=limits.max_input_frames + 1)  # counts frames, keeps no pixels
    except VideoReadError as e:
        raise InvalidRequest(name, f"not a readable video ({str(e).replace(str(path), 'the upload')})") from None
    if len(d.times) > limits.max_input_frames:
        raise InvalidRequest(name, f"more than {limits.max_input_frames} frames")
    if max(d.height, d.width) > limits.max_input_side:
        raise InvalidRequest(name, f"{d.width}x{d.height} is over {limits.max_input_side} pixels a side")


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _version() -> str:
    from spacetime import __version__

    return __version__


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # every response waits ~40 ms for a delayed ACK between its header and body writes
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)  # connections wait in the backlog from now on, before uvicorn takes over
    return sock


def _server(app: FastAPI, log_level: str):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5, access_log=False))


LISTENING = "spacetime serve: listening on "  # then the URL: the line printed once the socket listens


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 7860, log_level: str = "info") -> None:
    """Run `app` until interrupted; prints the address (the real port when `port` is 0)."""
    sock = _bind(host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    print(f"{LISTENING}{url}", flush=True)
    _server(app, log_level).run(sockets=[sock])


def listening_url(lines: Iterable[str]) -> str | None:
    """The URL a `spacetime serve` process prints once it listens, read from its output (a
    subprocess's stdout, say) up to that line; None if the output ends first."""
    for line in lines:
        if LISTENING in line:
            return line.split(LISTENING, 1)[1].split()[0]
    return None


@dataclass
class ServerThread:
    """The app served on a real socket from a background thread (tests, benchmarks)."""

    url: str
    server: object
    thread: threading.Thread

    @classmethod
    def start(cls, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> ServerThread:
        sock = _bind(host, port)
        server = _server(app, log_level)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            thread.join(0.02)
        return cls(f"http://{host}:{sock.getsockname()[1]}", server, thread)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
