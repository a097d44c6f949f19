"""The HTTP API (the shape of OpenAI's Videos API) and the web page, on FastAPI; `serve` runs it
under uvicorn.

    POST   /v1/videos                  JSON, or multipart with image / video / video2 uploads -> a job
    GET    /v1/videos                  the jobs, newest first (limit, after, order)
    GET    /v1/videos/{id}             one job: status queued|in_progress|completed|failed, progress 0-100
    GET    /v1/videos/{id}/content     the MP4 (?variant=thumbnail: the first frame as PNG; spritesheet: frames in a grid)
    GET    /v1/videos/{id}/credentials the provenance check of that file (`spacetime verify --json`)
    POST   /v1/videos/{id}/remix       JSON {prompt}: an edit of that completed video with the new prompt
    POST   /v1/videos/edits            prompt + video (an upload, or video[id] of a completed job) -> an edit
    POST   /v1/videos/extensions       prompt + seconds + video (likewise) -> that video with seconds more after it
    POST   /v1/videos/{id}/cancel      stop it; it becomes failed with error code "cancelled"
    DELETE /v1/videos/{id}             cancel it and delete it, files too
    POST   /v1/verify                  multipart `file` (MP4 or PNG) -> the same check of any file
    GET    /v1/config                  defaults, presets and limits (the page reads them)
    GET    /openapi.json, /healthz, /  the schema, a liveness check (counts with the token), the page (assets under /static)

Errors are `{"error": {"message", "type", "param", "code"}}` as OpenAI's, with 400 (malformed, or a
field out of bounds: `param` names it; OpenAI's status for both, so its SDK raises `BadRequestError`),
401 (token), 400/403 (a request another site made through a browser: a Host not this server's on
loopback, a POST or DELETE from another Origin), 404 (no such job), 409 (no content yet, or a
source video not completed), 413 (body too large), 415 (content type) and 429 (queue full, with
Retry-After).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from spacetime.serve.bodies import (
    ApiError,
    BodyLimit,
    as_sent,
    copy_source,
    error_response,
    first_error,
    input_names,
    read_body,
    read_verify_form,
    remove_folder,
    save_upload,
    verify_upload,
)
from spacetime.serve.jobs import (
    FILES,
    ID_RE,
    VIDEO,
    Job,
    JobQueue,
    OutputMarks,
    QueueFull,
    pipeline_runner,
)
from spacetime.serve.schema import (
    DEFAULT_EDIT_STRENGTH,
    UPLOADS,
    InvalidRequest,
    JobSpec,
    Limits,
    edit_spec,
    extension_spec,
    presets,
    request_model,
    resolve,
    video_spec,
    within_limits,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# the page loads nothing from elsewhere; blob: is how it plays and offers the fetched video
CSP = ("default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def _size_multiple(pipe) -> tuple[int, int]:
    _, ph, pw = pipe.dit.config.patch
    fs = pipe.vae.config.spatial_factor
    return fs * ph, fs * pw


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1), bracketed or not."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """The name in a Host header's value (`name`, `name:port`, `[v6]:port`), the port dropped."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _same_origin(origin: str, host: str) -> bool:
    """Whether an Origin header names the origin of a request to `host` (the Host header): the
    same host and port (default ports as left out; the scheme is not compared, as a TLS proxy in
    front makes https of the server's http)."""
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        default = ":443" if parts.scheme == "https" else ":80"
        return parts.netloc.lower().removesuffix(default) == host.strip().lower().removesuffix(default)
    except ValueError:
        return False


def create_app(pipe, output_dir: str | Path, *, marks: OutputMarks, limits: Limits = Limits(), queue_size: int = 8,
               workers: int = 1, max_jobs: int = 1000, token: str | None = None, model_name: str | None = None,
               default_steps: int | None = None, trust_anchors: list[str | Path] = ()) -> FastAPI:
    """The app around a loaded `SpacetimePipeline`; jobs' files go under `output_dir/<job id>/`,
    marked as `marks` says (`OutputMarks.resolve(model_dir)`). `model_name` (what jobs call the
    model) defaults to the name in the marks; `trust_anchors` are PEM roots the checks trust
    besides this machine's local CA, as `spacetime verify --trust-anchors`. A request that names no
    steps or guidance scale gets `default_steps` and the model's own guidance scale (each: the
    model's `defaults`, else the pipeline's)."""
    default_steps, default_guidance = pipe.resolve_num_inference_steps(default_steps), pipe.resolve_guidance_scale()
    # what a request leaves out stays within the limits too: the model's 20 steps ran under
    # --max-steps 5, and its 17 frames of 64x64 refused every request naming no length under
    # --max-frames 9 (or --max-side 48), with an error about a field the client never sent
    default_steps = min(default_steps, limits.max_steps)
    defaults = within_limits(pipe.defaults, _size_multiple(pipe), pipe.vae.config.temporal_factor, limits)
    VideoRequest = request_model(limits)
    model_name = model_name or marks.model["name"]
    anchors = [Path(a) for a in trust_anchors]

    def inputs_of(job: Job) -> dict:
        found = {name: [job.dir / n for n in input_names(name) if (job.dir / n).is_file()] for name in UPLOADS}
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
    # whether the server listens on loopback only: `serve` and `ServerThread.start` say; served
    # otherwise, the address each connection came in on decides
    app.state.local_only = None
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    def cross_site(request: Request) -> ApiError | None:
        """Requests other websites could make through a browser on this machine: to a server on
        loopback, a Host that is not a loopback name (DNS rebinding: a site's name pointed at
        127.0.0.1); to any server, a POST or DELETE whose Origin is another site (a cross-site
        form). Browsers send Origin on these; curl and the SDKs send none."""
        host = request.headers.get("host")
        local = request.app.state.local_only
        if local is None:
            server = request.scope.get("server")
            local = bool(server) and is_loopback(str(server[0]))
        if local and host is not None and not is_loopback(_host_name(host)):
            return ApiError(400, "invalid_host", f"Host {host[:100]!r} is not this server's: it listens on loopback "
                                                 "and answers only localhost, 127.0.0.1 and [::1]")
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD", "OPTIONS") and origin is not None and not (
                host is not None and _same_origin(origin, host)):
            return ApiError(403, "cross_origin", f"Origin {origin[:100]!r} is another site than this server "
                                                 f"({(host or '')[:100]}); requests from other pages are refused")
        return None

    @app.middleware("http")
    async def headers(request: Request, call_next):
        refused = cross_site(request)
        if refused is None:
            response = await call_next(request)
        else:
            response = error_response(refused.status, refused.code, refused.message)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        e = as_sent(e, request)  # an upload's errors name the field it was sent as (input_reference)
        return error_response(e.status, e.code, e.message, e.param, e.headers, e.kind)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError):
        param, message = first_error(e.errors(), skip=1)  # loc[0] is "query", "path" or "body"
        return error_response(400, "invalid_value", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        headers = getattr(e, "headers", None)  # e.g. Allow on a 405
        if e.status_code == 405:  # Starlette's Allow names the first route of that path alone: name them all
            path = request.scope["path"]
            routes = [r for r in app.routes if isinstance(r, Route) and r.methods and r.path_regex.fullmatch(path)]
            # /v1/videos/edits is its own route, not a video id that /v1/videos/{video_id} also matches
            routes = [r for r in routes if "{" not in r.path] or routes
            methods = {m for r in routes for m in r.methods}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(methods))}
        return error_response(e.status_code, "not_found" if e.status_code == 404 else "http_error", str(e.detail),
                              headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, e: ClientDisconnect):
        # the client closed the connection before its body was whole (an upload interrupted, a
        # client's timeout): nothing to answer, and not the server's error to log with a traceback
        return Response(status_code=400)

    def authorized(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
            # OpenAI's code for a missing or wrong key (its SDKs raise AuthenticationError by the status)
            raise ApiError(401, "invalid_api_key", "a valid bearer token is required (Authorization: Bearer TOKEN)",
                           headers={"WWW-Authenticate": "Bearer"})

    def job_or_404(video_id: str, param: str = "video_id") -> Job:
        if not ID_RE.fullmatch(video_id):  # checked before any lookup; ids never reach a path unchecked
            raise ApiError(400, "invalid_id", f"{param}: {video_id!r} is not a video id (video_ and 32 hex digits)", param)
        job = queue.get(video_id)
        if job is None:
            raise ApiError(404, "not_found", f"{param}: no video {video_id}", param)
        return job

    def not_a_route(video_id: str) -> None:
        """GET or DELETE /v1/videos/edits reaches /v1/videos/{video_id}: answer as for a method the
        POST-only route does not take, not with "not a video id"."""
        if video_id in ("edits", "extensions", "characters"):
            raise StarletteHTTPException(405)

    def not_ready(job: Job, later: str) -> ApiError:
        """A 409 for a job with no files: `later` (when they come) while it is queued or running; a
        failed or cancelled one will never have them, and its error says why."""
        if job.status == "failed":
            why = (job.error or {}).get("code", "failed")
            return ApiError(409, "not_ready", f"video {job.id} failed ({why}): it has no files, and never will; "
                                              "its error says why")
        return ApiError(409, "not_ready", f"video {job.id} is {job.status}; {later}")

    def completed_source(video_id: str, param: str) -> Job:
        """The job whose video a remix, edit or extension starts from: it must have one."""
        job = job_or_404(video_id, param)
        if job.status != "completed":
            raise ApiError(409, "not_ready", f"{param}: video {video_id} is {job.status}; only a completed video "
                                             "can be remixed, edited or extended", param)
        return job

    auth = [Depends(authorized)]
    ft = pipe.vae.config.temporal_factor  # frames per latent frame: the step of edit and extension lengths
    body_schema = VideoRequest.model_json_schema()
    form_schema = {"type": "object", "required": ["prompt"], "properties": {
        **{k: {"type": "string"} for k in body_schema["properties"]},
        **{k: {"type": "string", "format": "binary"} for k in (*UPLOADS, "input_reference")}}}

    def validated(fields: dict) -> BaseModel:
        try:  # null is a field left out, as an empty form field is (clients that send unset fields as null)
            return VideoRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as e:
            param, message = first_error(e.errors())
            raise ApiError(400, "invalid_value", message, param) from None

    def spec_of(req: BaseModel, uploads: set[str], frames_later: bool = False) -> JobSpec:
        try:
            return resolve(req, uploads, defaults, pipe.fit_size, limits, default_steps, frames_later, temporal_factor=ft,
                           default_guidance=default_guidance)
        except InvalidRequest as e:
            raise ApiError(400, "invalid_value", str(e), e.param) from None
        except ValueError as e:  # the pipeline's own checks of a size
            raise ApiError(400, "invalid_value", str(e), "size") from None

    async def admit(spec: JobSpec, files: dict[str, UploadFile], *, source: Job | None = None,
                    source_param: str = "video", settle: Callable[[dict], JobSpec] | None = None,
                    remixed_from: str | None = None) -> dict:
        """Make the job's folder, store its inputs there under the server's names (the uploads, or
        a copy of `source`'s video, the request field `source_param` named), let `settle(frames of
        each input video, by field)` check the uploads the pipeline needs and finish the spec where
        the length follows from them, and queue the job. Any refusal leaves nothing behind."""
        job = queue.new_job(spec, remixed_from=remixed_from)
        try:
            frames: dict[str, int | None] = {}
            try:
                for name, upload in files.items():
                    frames[name] = await run_in_threadpool(save_upload, upload, name, job.dir, limits)
            except InvalidRequest as e:
                raise ApiError(400, "invalid_file", str(e), e.param) from None
            if source is not None:
                frames["video"] = await run_in_threadpool(copy_source, source, job.dir, source_param)
            if settle is not None:
                try:
                    job.spec = settle(frames)
                except InvalidRequest as e:
                    raise ApiError(400, "invalid_value", str(e), e.param) from None
            queue.submit(job)
        except QueueFull as e:  # submit has removed the folder
            # OpenAI's code and type for a request over its rate limit: clients retry it after Retry-After
            raise ApiError(429, "rate_limit_exceeded", str(e), headers={"Retry-After": str(e.retry_after)},
                           kind="requests") from None
        except BaseException:
            await run_in_threadpool(remove_folder, job.dir)
            raise
        finally:
            for upload in files.values():
                await upload.close()
        return job.to_dict()

    @app.post("/v1/videos", dependencies=auth, status_code=200, summary="Create a video job",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": body_schema}, "multipart/form-data": {"schema": form_schema}}}})
    async def create_video(request: Request) -> dict:
        fields, files = await read_body(request, limits)
        try:  # the uploads are closed whatever is refused
            for key in fields:  # a JSON body's upload fields, and a form's input_reference[image_url] (what
                # OpenAI's clients make of {"image_url": ...} in a form; a form's plain ones are refused unless files)
                if key == "video[id]" or (key == "video" and isinstance(fields[key], dict) and "id" in fields[key]):
                    # a video of this server's by id: what the edits, extensions and remix endpoints take
                    raise ApiError(400, "invalid_value", f"{key}: a video by id is taken by POST /v1/videos/edits (an "
                                                         "edit), /v1/videos/extensions (more seconds after it) and "
                                                         "/v1/videos/{id}/remix; here, send a video as a file in a "
                                                         "multipart form", key)
                if key.split("[", 1)[0] in (*UPLOADS, "input_reference"):
                    raise ApiError(400, "invalid_value", f"{key}: an upload: send it as a file in a multipart form (a "
                                                         "reference by URL or file id is not supported)", key)
            spec = spec_of(validated(fields), set(files))
        except BaseException:
            for upload in files.values():
                await upload.close()
            raise
        if "video" not in files:
            return await admit(spec, files)
        if spec.mode == "edit":
            # an edit makes as many frames as its video has (the window does not set it): known, and
            # checked against the limits, once the upload is counted
            return await admit(spec, files, settle=lambda n: edit_spec(spec, n["video"], ft, limits, "video"))
        # extending and connecting add the window's new frames to the video (and video2): the result
        # is checked against the limits, and the videos against what the pipeline needs, once counted
        length_param = "seconds" if "seconds" in fields else "num_frames"
        return await admit(spec, files, settle=lambda n: video_spec(spec, n["video"], n.get("video2"), ft, limits,
                                                                    length_param))

    remix_fields = ("prompt", "strength", "embed_prompt", "prompt_as_typed", "model")  # the rest is the source's

    # --- remix, edits, extensions: new jobs from a video (OpenAI's names; our modes edit and
    # extend-forward). A source given by id lends its job's settings as defaults; its finished
    # video is copied in as the new job's input video, so its manifest makes it an ingredient.

    from_video_fields = {k: v for k, v in body_schema["properties"].items()
                         if k not in ("seconds", "num_frames", "mode", "loop")}
    remix_schema = {"type": "object", "required": ["prompt"], "additionalProperties": False, "properties": {
        k: body_schema["properties"][k] for k in remix_fields}}
    remix_schema["properties"]["strength"] = {**remix_schema["properties"]["strength"], "default": DEFAULT_EDIT_STRENGTH}
    by_id = {"type": "string", "description": "the id of a completed video, instead of an upload"}
    edit_form = {"type": "object", "required": ["prompt"], "properties": {
        **{k: {"type": "string"} for k in from_video_fields}, "video[id]": by_id,
        "video": {"type": "string", "format": "binary", "description": "the video (or send video[id])"}}}
    edit_json = {"type": "object", "required": ["prompt", "video"], "additionalProperties": False, "properties": {
        **from_video_fields, "video": {"type": "object", "required": ["id"], "properties": {"id": by_id}}}}
    edit_json["properties"]["strength"] = {**edit_json["properties"]["strength"], "default": DEFAULT_EDIT_STRENGTH}
    seconds_new = {**body_schema["properties"]["seconds"], "description": "the length of the new segment"}

    def extension(schema: dict) -> dict:
        props = {k: v for k, v in schema["properties"].items() if k != "strength"}
        return {**schema, "required": [*schema["required"], "seconds"], "properties": {**props, "seconds": seconds_new}}

    def refuse(fields: dict, files: dict, reasons: dict[str, str]) -> None:
        """Fields this endpoint sets itself, and uploads other than the one video, are refused (a
        400 naming them), not ignored."""
        for key in fields:
            if key in reasons:
                raise ApiError(400, "invalid_value", f"{key}: {reasons[key]}", key)
        for key in files:
            if key != "video":
                raise ApiError(400, "invalid_value", f"{key}: the only upload here is video", key)

    def source_of(fields: dict, files: dict) -> Job | None:
        """The video to start from: an upload (None here), or a completed job named by id, as
        `video[id]` in a form (how OpenAI's clients flatten {"id": ...}) or {"id": ...} in JSON."""
        ref = fields.pop("video[id]", None)
        if "video" in fields:  # JSON: files are form uploads only
            value = fields.pop("video")
            if not (isinstance(value, dict) and set(value) == {"id"}):
                raise ApiError(400, "invalid_value", 'video: must be {"id": "video_..."} (or a file upload in a '
                                                     "multipart form)", "video")
            ref = value["id"]
        if ref is not None and "video" in files:
            raise ApiError(400, "invalid_value", "video: give a file or an id, not both", "video")
        if ref is None:
            if "video" not in files:
                raise ApiError(400, "invalid_value", "video: required: a video upload, or video[id] (JSON: "
                                                     '{"id": ...}) naming a completed video', "video")
            return None
        if not isinstance(ref, str):
            raise ApiError(400, "invalid_value", "video: the id must be a string", "video")
        source = completed_source(ref, "video")
        s = source.spec
        if not {"size", "height", "width"} & fields.keys():
            fields["size"] = s.size
        for key in ("fps", "steps", "guidance_scale", "seed", "negative_prompt"):
            if key not in fields and getattr(s, key) is not None:
                fields[key] = getattr(s, key)
        return source

    async def from_video(request: Request, kind: Literal["edit", "extension"]) -> dict:
        fields, files = await read_body(request, limits)
        seconds = None  # an extension's new segment
        try:
            if kind == "edit":
                length, mode = "an edit keeps its video's length", "an edit is mode edit"
                refuse(fields, files, {"seconds": length, "num_frames": length, "mode": mode, "loop": mode})
            else:
                length, mode = "an extension's length is seconds, the new segment's", "an extension is mode extend-forward"
                refuse(fields, files, {"num_frames": length, "mode": mode, "strength": mode, "loop": mode})
            source = source_of(fields, files)
            if kind == "edit":
                fields["mode"] = "edit"
                if fields.get("strength") is None:  # left out, or null (as clients send unset fields)
                    fields["strength"] = DEFAULT_EDIT_STRENGTH
                req = validated(fields)
            else:
                req = validated({**fields, "mode": "extend-forward"})
                if req.seconds is None:
                    raise ApiError(400, "invalid_value", "seconds: required: the length of the new segment", "seconds")
                seconds, req = req.seconds, req.model_copy(update={"seconds": None})  # not the window's length
            spec = spec_of(req, {"video"}, frames_later=True)
        except BaseException:
            for upload in files.values():
                await upload.close()
            raise

        def settle(frames: dict) -> JobSpec:  # once the video's frames are counted
            if kind == "edit":
                return edit_spec(spec, frames["video"], ft, limits, "video")
            return extension_spec(spec, frames["video"], seconds, ft, limits)

        return await admit(spec, files, source=source, settle=settle)

    # OpenAI's characters (someone or something to cast in later videos) have no counterpart here: a
    # 404 that says so, not a bare 405 (the POST reached /v1/videos/{id}/remix's neighbours) or "Not Found"
    @app.post("/v1/videos/characters", dependencies=auth, include_in_schema=False)
    @app.get("/v1/videos/characters/{character_id}", dependencies=auth, include_in_schema=False)
    def characters(character_id: str | None = None) -> None:
        raise ApiError(404, "not_supported", "characters (/v1/videos/characters) are not supported by this server; "
                                             "give a picture of the character as input_reference instead")

    @app.post("/v1/videos/edits", dependencies=auth, summary="Edit a video (SDEdit) with a prompt",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": edit_form}, "application/json": {"schema": edit_json}}}})
    async def edit_video(request: Request) -> dict:
        return await from_video(request, "edit")

    @app.post("/v1/videos/extensions", dependencies=auth, summary="Extend a video forward by seconds",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": extension(edit_form)},
                  "application/json": {"schema": extension(edit_json)}}}})
    async def extend_video(request: Request) -> dict:
        return await from_video(request, "extension")

    @app.post("/v1/videos/{video_id}/remix", dependencies=auth, summary="Remix a completed video with a new prompt",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": remix_schema}}}})
    async def remix_video(video_id: str, request: Request) -> dict:
        source = completed_source(video_id, "video_id")
        fields, files = await read_body(request, limits)
        for upload in files.values():
            await upload.close()
        if files:
            key = next(iter(files))
            raise ApiError(400, "invalid_value", f"{key}: a remix takes no uploads; its video is {video_id}'s", key)
        for key in fields:
            if key not in remix_fields:
                raise ApiError(400, "invalid_value", f"{key}: a remix takes {', '.join(remix_fields[:-1])} and "
                                                     f"{remix_fields[-1]}; the rest is the source video's", key)
        # the source's own settings, the new prompt: as an edit by id that may change nothing else
        s = source.spec
        fields = {k: v for k, v in fields.items() if v is not None}  # null: left out, so strength takes its default
        req = validated({"strength": DEFAULT_EDIT_STRENGTH, **fields, "mode": "edit", "size": s.size, "fps": s.fps,
                         "steps": s.steps, "guidance_scale": s.guidance_scale, "seed": s.seed,
                         **({"negative_prompt": s.negative_prompt} if s.negative_prompt is not None else {})})
        spec = spec_of(req, {"video"}, frames_later=True)
        return await admit(spec, {}, source=source, source_param="video_id", remixed_from=source.id,
                           settle=lambda n: edit_spec(spec, n["video"], ft, limits, "video_id"))

    @app.get("/v1/videos", dependencies=auth, summary="List video jobs")
    def list_videos(limit: int = Query(20, ge=1, le=100), after: str | None = Query(None, max_length=64),
                    order: Literal["asc", "desc"] = "desc") -> dict:
        jobs = queue.list()
        if order == "desc":
            jobs.reverse()
        if after is not None:
            # by place, not by index: `after` may name a video deleted since (a client deleting
            # each video of a page, then asking for the next one, as the SDKs' iterators do)
            place = queue.place(after)
            if place is None:
                raise ApiError(400, "invalid_value", f"after: no video {after!r} in the list", "after")
            jobs = [j for j in jobs if (j.seq > place if order == "asc" else j.seq < place)]
        page = jobs[:limit]
        return {"object": "list", "data": [j.to_dict() for j in page], "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None, "has_more": len(jobs) > limit}

    @app.get("/v1/videos/{video_id}", dependencies=auth, summary="Get a video job")
    def get_video(video_id: str) -> dict:
        not_a_route(video_id)
        return job_or_404(video_id).to_dict()

    # HEAD as well as GET: download tools ask for the size and type first (curl -I)
    @app.head("/v1/videos/{video_id}/content", dependencies=auth, include_in_schema=False)
    @app.get("/v1/videos/{video_id}/content", dependencies=auth, summary="Download the video (or its thumbnail)",
             response_class=FileResponse, responses={200: {"content": {"video/mp4": {}, "image/png": {}}}})
    def video_content(request: Request, video_id: str, variant: Literal["video", "thumbnail", "spritesheet"] = "video"):
        job = job_or_404(video_id)
        if job.status != "completed":
            raise not_ready(job, "content is there once it is completed")
        name, media = (VIDEO, "video/mp4") if variant == "video" else (FILES[variant], "image/png")
        try:  # opened here: a job deleted from now on still sends what was opened (its folder goes, not the file)
            file = (job.dir / name).open("rb") if (job.dir / name).is_file() else None
        except OSError:  # deleted between the check and the open
            file = None
        if file is None:  # deleted meanwhile, or removed by hand
            raise ApiError(404, "not_found", f"the {variant} of {video_id} is gone", "video_id")
        try:
            response = opened_file(request, file, job.dir / name, variant, media, f"{video_id}{Path(name).suffix}")
        except BaseException:
            file.close()
            raise
        return response

    def opened_file(request: Request, file, path: Path, variant: str, media: str, filename: str) -> OpenedFile:
        """The response for an open file: its Range as RFC 9110 says, the whole file where none fits."""
        asked = request.headers.get("range")
        if asked is not None:
            size = os.fstat(file.fileno()).st_size
            readable = byte_ranges(asked)
            if readable is None:  # RFC 9110 14.2: a server may ignore a Range it cannot read; the whole file
                request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"range"]
            else:
                fits = [(a, b) for a, b in readable if (a if a is not None else max(size - b, 0)) < size]
                if not fits:
                    raise ApiError(416, "range_not_satisfiable", f"Range {asked[:100]!r}: the {variant} is {size} bytes",
                                   "range", headers={"Content-Range": f"bytes */{size}"})
                if len(fits) < len(readable):  # RFC 9110 14.1.1: satisfiable when one range is; the others are left out
                    value = ", ".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in fits)
                    request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"range"] + [
                        (b"range", f"bytes={value}".encode())]
        return OpenedFile(file, path, media_type=media, content_disposition_type="inline", filename=filename)

    def check(path: Path, public_name: str) -> dict:
        """`verify_file` with this server's trust, and without its paths: the report names the file
        as the client knows it."""
        from spacetime.provenance import verify_file

        report = verify_file(path, anchors=anchors)
        text = json.dumps(report).replace(json.dumps(str(path))[1:-1], json.dumps(public_name)[1:-1])
        return json.loads(text)

    @app.get("/v1/videos/{video_id}/credentials", dependencies=auth,
             summary="Check the video's (or thumbnail's) Content Credentials and watermark")
    def video_credentials(video_id: str, variant: Literal["video", "thumbnail", "spritesheet"] = "video") -> dict:
        job = job_or_404(video_id)
        if job.status != "completed":
            raise not_ready(job, "it has credentials once it is completed")
        name = FILES[variant]
        gone = ApiError(404, "not_found", f"the {variant} of {video_id} is gone", "video_id")
        if not (job.dir / name).is_file():
            raise gone
        try:
            return check(job.dir / name, f"{video_id}{Path(name).suffix}")
        except FileNotFoundError:  # deleted while it was checked
            raise gone from None

    verify_schema = {"type": "object", "required": ["file"],
                     "properties": {"file": {"type": "string", "format": "binary", "description": "an MP4 or PNG"}}}

    @app.post("/v1/verify", dependencies=auth, summary="Check any MP4 or PNG for spacetime's Content Credentials and watermark",
              openapi_extra={"requestBody": {"required": True,
                                             "content": {"multipart/form-data": {"schema": verify_schema}}}})
    async def verify(request: Request) -> dict:
        upload = await read_verify_form(request, limits)
        try:
            data = await upload.read()
        finally:
            await upload.close()
        return await run_in_threadpool(verify_upload, data, upload.filename, check)

    @app.post("/v1/videos/{video_id}/cancel", dependencies=auth, summary="Cancel a queued or running job")
    def cancel_video(video_id: str) -> dict:
        return queue.cancel(job_or_404(video_id)).to_dict()

    @app.delete("/v1/videos/{video_id}", dependencies=auth, summary="Cancel and delete a video job and its files")
    def delete_video(video_id: str) -> dict:
        not_a_route(video_id)
        queue.delete(job_or_404(video_id))
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    def counts_for(request: Request) -> dict:
        """The queue's counts, for a client the token admits (anyone, without a token)."""
        try:
            authorized(request)
        except ApiError:
            return {}
        return queue.counts()

    @app.get("/v1/config", summary="Defaults, presets and limits")
    def config(request: Request) -> dict:
        d = defaults
        counts = counts_for(request)
        return {"model": model_name, "auth": token is not None,
                "defaults": {"size": f"{d.get('width', 64)}x{d.get('height', 64)}",
                             "num_frames": d.get("num_frames", 17), "fps": float(d.get("fps", 8.0)),
                             "steps": default_steps, "guidance_scale": default_guidance},
                **presets(d, _size_multiple(pipe), limits), "limits": asdict(limits),
                **({"queue": counts} if counts else {})}

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> dict:
        # liveness is open; the job and queue counts need the token where there is one
        return {"ok": True, **counts_for(request)}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    # HEAD where GET is (uptime monitors, link checkers), as routes of their own: one route with both
    # methods would put each operation in the OpenAPI schema twice, under one operation id
    for path, endpoint, needs_token in (("/v1/videos", list_videos, True), ("/v1/videos/{video_id}", get_video, True),
                                        ("/v1/videos/{video_id}/credentials", video_credentials, True),
                                        ("/v1/videos/characters/{character_id}", characters, True),
                                        ("/v1/config", config, False), ("/healthz", healthz, False)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False,
                          dependencies=auth if needs_token else None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class OpenedFile(FileResponse):
    """A FileResponse that sends a file already open (and closes it): a job deleted after it was
    opened (its folder removed) still sends it whole, where a path opened later would be a
    FileNotFoundError once the headers are out, or a plain-text 500 before."""

    def __init__(self, file, path: Path, **kwargs):
        super().__init__(path, stat_result=os.fstat(file.fileno()), **kwargs)
        self._file = file

    @asynccontextmanager
    async def _open_file(self):  # (Starlette's own opens self.path)
        import anyio

        yield anyio.wrap_file(self._file)

    async def __call__(self, scope, receive, send):
        try:
            if "http.response.pathsend" in scope.get("extensions", {}):  # would send the path, not the file
                scope = {**scope, "extensions": {k: v for k, v in scope["extensions"].items()
                                                 if k != "http.response.pathsend"}}
            await super().__call__(scope, receive, send)
        finally:
            self._file.close()


def byte_ranges(value: str) -> list[tuple[int | None, int | None]] | None:
    """A Range header's `bytes=a-b, c-, -n` as (start, end) pairs (end inclusive; start None for
    the last n bytes), or None where it is not that: another unit, a non-number, a start past its end."""
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    pairs = []
    for part in spec.split(","):
        a, dash, b = (x.strip() for x in part.strip().partition("-"))
        if not dash or not (a or b) or not all(x.isascii() and x.isdigit() and len(x) <= 30 for x in (a, b) if x):
            return None  # (30 digits: past any file, and far from int()'s 4,300-digit limit)
        if a and b and int(a) > int(b):
            return None
        pairs.append((int(a) if a else None, int(b) if b else None))
    return pairs


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


# slow clients: requests beyond LIMIT_CONCURRENCY open connections or running requests get 503
# (uvicorn's limit), and connections beyond twice that are answered 503 and closed as they are
# accepted, so file descriptors stay bounded; an idle keep-alive connection is closed after
# KEEP_ALIVE_S, and one that has not sent a request's whole headers HEADER_TIMEOUT_S after it
# opened or after its last response (uvicorn has no such timeout of its own)
LIMIT_CONCURRENCY = 64
KEEP_ALIVE_S = 5
HEADER_TIMEOUT_S = 10.0


def _protocol():
    """uvicorn's h11 protocol with a deadline for each request's headers and a cap on open
    connections, so a client that opens connections and never finishes a request (slowloris)
    cannot hold them, and file descriptors, for ever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        _deadline = None

        def connection_made(self, transport):
            super().connection_made(transport)
            if self.limit_concurrency is not None and len(self.connections) > 2 * self.limit_concurrency:
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                b"content-length: 19\r\nconnection: close\r\n\r\nService Unavailable")
                transport.close()
                return
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _late(self) -> None:
            self._deadline = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request under way
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


def _server(app: FastAPI, log_level: str, limit_concurrency: int | None = None):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5, access_log=False,
                                         http=_protocol(), limit_concurrency=limit_concurrency or LIMIT_CONCURRENCY,
                                         timeout_keep_alive=KEEP_ALIVE_S))


LISTENING = "spacetime serve: listening on "  # then the URL: the line printed once the socket listens


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 7860, log_level: str = "info",
          limit_concurrency: int | None = None) -> None:
    """Run `app` until interrupted; prints the address (the real port when `port` is 0). On a
    loopback `host` only loopback Host names are answered (no DNS rebinding); past
    `limit_concurrency` connections or requests at once (default `LIMIT_CONCURRENCY`), 503."""
    sock = _bind(host, port)
    app.state.local_only = is_loopback(host)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    print(f"{LISTENING}{url}", flush=True)
    _server(app, log_level, limit_concurrency).run(sockets=[sock])


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
        app.state.local_only = is_loopback(host)
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
