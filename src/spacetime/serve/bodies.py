"""What comes in: request bodies and uploads, read and checked before any job exists, and the
error every refusal becomes (`{"error": {...}}`, as OpenAI's).

`read_body` turns a JSON body or multipart form into fields and uploads; `save_upload` checks
an upload and keeps it in a job's folder under the server's own name; `BodyLimit` counts the bytes
of every request as they stream in.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from spacetime.provenance.credentials import mime_of_bytes
from spacetime.serve.jobs import VIDEO, Job
from spacetime.serve.schema import UPLOADS, InvalidRequest, Limits


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 headers: dict | None = None, kind: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.headers = status, code, message, param, headers
        self.kind = kind  # the error's `type` where it is not the status's (error_response)


def error_response(status: int, code: str, message: str, param: str | None = None, headers: dict | None = None,
                   kind: str | None = None) -> JSONResponse:
    """OpenAI's error body. `type` (`kind`) is invalid_request_error below 500 (OpenAI's for a bad
    request, a 404 and a 401 alike), server_error from 500, unless given (a 429's is "requests")."""
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


def first_error(errors: list[dict], skip: int = 0) -> tuple[str | None, str]:
    """pydantic's first error -> (the field, "field: what is wrong")."""
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ())[skip:]]
    param = ".".join(loc) or None
    return param, f"{param or 'body'}: {e.get('msg', 'invalid')}"


BODY_CHUNK_TIMEOUT_S = 30.0  # a body that sends nothing for this long is dropped (408), not waited on
# and one not whole this long after its first read is too: a client trickling a byte every few
# seconds never trips the chunk timeout, yet would hold one of the server's connections for ever
BODY_TOTAL_TIMEOUT_S = 300.0


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, by Content-Length or as they stream in,
    before anything parses them; and bodies that stall (nothing for BODY_CHUNK_TIMEOUT_S) or take
    too long in all (not whole BODY_TOTAL_TIMEOUT_S after the first read) with 408, so a client
    trickling a body cannot hold a connection for ever."""

    class TooLarge(Exception):
        pass

    class TooSlow(Exception):
        pass

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send)
        seen, started, deadline, whole = 0, False, None, False
        loop = asyncio.get_running_loop()

        async def counted_receive():
            nonlocal seen, deadline, whole
            if whole:  # after the body only the disconnect is left to wait for: no deadline
                return await receive()
            deadline = deadline or loop.time() + BODY_TOTAL_TIMEOUT_S
            try:
                message = await asyncio.wait_for(receive(), min(BODY_CHUNK_TIMEOUT_S, max(0.0, deadline - loop.time())))
            except TimeoutError:
                raise BodyLimit.TooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyLimit.TooLarge
                whole = not message.get("more_body", False)
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
        except BodyLimit.TooSlow:
            if not started:
                response = error_response(408, "request_timeout", "the request body stalled or came too slowly: "
                                          f"nothing for {BODY_CHUNK_TIMEOUT_S:g} s, or not whole after "
                                          f"{BODY_TOTAL_TIMEOUT_S:g} s")
                await response(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        response = error_response(413, "body_too_large", f"the request body is over {self.max_bytes} bytes")
        await response(scope, receive, send)


class _EndedParser(MultiPartParser):
    """Starlette's multipart parser, noting whether the body reached its closing boundary."""

    ended = False

    def on_end(self) -> None:
        self.ended = True
        super().on_end()


async def read_form(request: Request, *, max_files: int, max_fields: int, max_part_size: int) -> FormData:
    """A multipart body, parsed, or a 400: a body that ends before its closing boundary
    (`--BOUNDARY--`) is refused, as Starlette's parser would give the parts up to there and drop the
    one cut short without a word (an image left out, and the job made from text alone)."""
    parser = _EndedParser(request.headers, request.stream(), max_files=max_files, max_fields=max_fields,
                          max_part_size=max_part_size)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, "invalid_form", f"the form cannot be read: {e.message}") from None
    if not parser.ended:
        await form.close()
        raise ApiError(400, "invalid_form", "the form cannot be read: the body ends before its closing boundary "
                                            "(--BOUNDARY--), so its last part may be cut short")
    return form


def as_sent(e: ApiError, request: Request) -> ApiError:
    """`e` naming the field as the client sent it: `input_reference`, not the server's `image`."""
    key = getattr(request.state, "sent_as", {}).get(e.param)
    if key is not None:
        e.message = key + e.message.removeprefix(e.param) if e.message.startswith(f"{e.param}: ") else e.message
        e.param = key
    return e


def input_names(upload: str) -> tuple[str, ...]:
    """The server's names for an upload in a job's folder; a client's file name is never used. An
    image is re-encoded as PNG. A video keeps its bytes, named `.mp4` when it is ISO BMFF (MP4,
    MOV), so C2PA reads it as an ingredient and carries its own manifest on; other containers get
    no extension (FFmpeg tells them by content)."""
    return ("input-image.png",) if upload == "image" else (f"input-{upload}.mp4", f"input-{upload}")


def input_name(upload: str, data: bytes) -> str:
    if upload == "image":
        return "input-image.png"
    return f"input-{upload}.mp4" if data[4:8] == b"ftyp" else f"input-{upload}"


def plain_body(request: Request) -> None:
    """A body with a content coding (`Content-Encoding: gzip`) is a 415, as RFC 9110 15.5.16 says
    for a coding the server does not decode: read as it is, it was a confusing "not valid JSON"
    (gzip), or a coding the client named but did not apply was taken as plain."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise ApiError(415, "unsupported_media_type", f"Content-Encoding {coding[:40]!r} is not supported: send the "
                                                      "body uncompressed", headers={"Accept-Encoding": "identity"})


async def read_verify_form(request: Request, limits: Limits) -> UploadFile:
    """The one `file` upload of POST /v1/verify."""
    plain_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be multipart/form-data with a file field")
    form = await read_form(request, max_files=1, max_fields=10, max_part_size=limits.max_body_bytes)
    for key in form.keys():
        if key != "file":
            raise ApiError(400, "invalid_value", f"{key}: unknown field (the upload goes in file)", key)
    values = form.getlist("file")
    if not values:
        raise ApiError(400, "invalid_value", "file: an MP4 or PNG upload is required", "file")
    if len(values) > 1 or not isinstance(values[0], UploadFile):
        raise ApiError(400, "invalid_value", "file: must be one file upload", "file")
    return values[0]


# what `spacetime verify` checks: C2PA reads these by extension, so the temp file is named by the bytes
VERIFY_SUFFIXES = {"image/png": ".png", "video/mp4": ".mp4", "video/x-m4v": ".mp4", "video/quicktime": ".mov"}


def verify_upload(data: bytes, filename: str | None, check) -> dict:
    """Check uploaded bytes: kept in a server-owned temp file (named by what the bytes are, as C2PA
    reads by extension), checked, and removed whatever happens."""
    import logging
    import os
    import tempfile

    from spacetime.provenance import SigningKeyError

    if not data:
        raise ApiError(400, "invalid_file", "file: the file is empty", "file")
    suffix = VERIFY_SUFFIXES.get(mime_of_bytes(data[:64]))
    if suffix is None:
        raise ApiError(400, "invalid_file", "file: not an MP4 or PNG (by its first bytes)", "file")
    public = Path(filename or "").name[:200] or f"upload{suffix}"
    fd, tmp = tempfile.mkstemp(prefix="spacetime-verify-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        report = check(Path(tmp), public)
    except SigningKeyError as e:  # this server's trust anchors, not the upload: nothing can be checked
        logging.getLogger(__name__).error("cannot check uploads: %s", e)
        raise ApiError(500, "server_error", "the server's trust anchors cannot be used; see its log") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    # a file that holds no manifest and does not decode is not an MP4 or PNG at all; one whose
    # manifest is present but unreadable (a signed file cut short) is reported, tampered, as the CLI does
    if not report["c2pa"]["present"] and str(report["watermark"].get("note", "")).startswith("cannot decode"):
        raise ApiError(400, "invalid_file", f"file: not a readable MP4 or PNG ({report['watermark']['note']})", "file")
    return report


JSON_ON_LOOP = 64 * 2**10  # JSON bodies under this many bytes parse on the event loop (well under a millisecond)


async def _json_bytes(request: Request, most: int) -> bytes:
    """A JSON body, refused with 413 past `most` bytes: by Content-Length, or as it streams in."""
    def too_large() -> ApiError:
        return ApiError(413, "body_too_large", f"a JSON body may have at most {most} bytes ({most / 2**20:g} MiB); "
                                              "uploads go in a multipart form")

    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > most:
        raise too_large()
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > most:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, limits: Limits) -> tuple[dict, dict[str, UploadFile]]:
    """JSON or multipart form -> (fields, uploads by field name). Empty form fields count as left
    out, as a browser form sends them. An upload sent as OpenAI's `input_reference` is `image` here;
    `request.state.sent_as` maps it back ({"image": "input_reference"}) for `as_sent`."""
    plain_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await _json_bytes(request, limits.max_json_bytes)
        try:
            # a body of some size parses on a worker thread: the event loop keeps answering meanwhile
            fields = json.loads(raw) if len(raw) < JSON_ON_LOOP else await run_in_threadpool(json.loads, raw)
        except RecursionError:  # nesting deeper than the decoder's stack
            raise ApiError(400, "invalid_json", "the body is not valid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, and integers over 4,300 digits
            # (whose text tells the reader to raise the limit with sys.set_int_max_str_digits(): the
            # server's to set, not the client's)
            why = str(e).split("; use sys.set_int_max_str_digits()")[0]
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {why}") from None
        if not isinstance(fields, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        # null is a field left out, as an empty form field is (clients that send unset fields as
        # null): dropped here, so no endpoint refuses a field it would refuse if given
        return {k: v for k, v in fields.items() if v is not None}, {}
    if kind == "multipart/form-data":
        form = await read_form(request, max_files=len(UPLOADS), max_fields=50, max_part_size=limits.max_body_bytes)
        fields, files = {}, {}
        for key in form.keys():
            values = form.getlist(key)
            name = "image" if key == "input_reference" else key
            if len(values) > 1:
                raise ApiError(400, "invalid_value", f"{key}: given more than once", key)
            value = values[0]
            if isinstance(value, UploadFile):
                if name not in UPLOADS:
                    raise ApiError(400, "invalid_value", f"{key}: not a file field (files go in {', '.join(UPLOADS)})", key)
                if name in files:
                    raise ApiError(400, "invalid_value", f"{key}: given more than once", key)
                files[name] = value
                if key != name:  # errors about it name the field as the client sent it
                    request.state.sent_as = {name: key}
            elif value != "" or key == "prompt":  # an empty prompt is blank, not left out
                if name in UPLOADS:
                    raise ApiError(400, "invalid_value", f"{key}: must be a file upload", key)
                fields[key] = value
        return fields, files
    raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json or multipart/form-data")


def save_upload(upload: UploadFile, name: str, folder: Path, limits: Limits) -> int | None:
    """Check an uploaded image or video and keep it in the job's folder under the server's name;
    a video's frame count (edits and extensions take their length from it)."""
    from spacetime.atomic import atomic_path

    data = upload.file.read()
    if not data:
        raise InvalidRequest(name, "the file is empty")
    if name == "image":
        from PIL import Image

        from spacetime.data.video import export_to_video, to_uint8_frames

        try:
            with Image.open(io.BytesIO(data)) as im:
                if max(im.size) > limits.max_input_side:
                    raise InvalidRequest(name, f"{im.size[0]}x{im.size[1]} is over {limits.max_input_side} pixels a side")
                frame = to_uint8_frames(im)[0]  # 16-bit and float images scaled, not clipped white
        except (OSError, Image.DecompressionBombError, ValueError) as e:
            if isinstance(e, InvalidRequest):
                raise
            # the class name only: the exception's text can carry internals (`<_io.BytesIO object at 0x...>`)
            raise InvalidRequest(name, f"not a readable image ({type(e).__name__})") from None
        export_to_video(frame[None], folder / input_name(name, data))  # re-encoded: only pixels come through
        return None
    from spacetime.data.decode import VideoReadError, decode

    path = folder / input_name(name, data)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    try:  # counts frames, keeps no pixels; frames over the side limit refused from the header, undecoded
        d = decode(path, rgb=False, max_frames=limits.max_input_frames + 1, max_side=limits.max_input_side)
    except VideoReadError as e:
        why = str(e).replace(f"{path}: ", "").replace(str(path), "the upload")
        if "pixels a side" in why:
            raise InvalidRequest(name, why) from None
        # the decoder's own words already start "not a readable video: "; said once
        raise InvalidRequest(name, f"not a readable video ({why.removeprefix('not a readable video: ')})") from None
    if not d.times:
        raise InvalidRequest(name, "the video has no frames")
    if len(d.times) > limits.max_input_frames:
        raise InvalidRequest(name, f"more than {limits.max_input_frames} frames")
    if max(d.height, d.width) > limits.max_input_side:
        raise InvalidRequest(name, f"{d.width}x{d.height} is over {limits.max_input_side} pixels a side")
    return len(d.times)


def copy_source(source: Job, folder: Path, param: str) -> int:
    """A completed job's video copied into a new job's folder as its input video, under the name
    an uploaded MP4 gets (so it is an ingredient in the new manifest); its frame count as made."""
    try:
        shutil.copyfile(source.dir / VIDEO, folder / input_names("video")[0])
    except FileNotFoundError:  # deleted meanwhile, or removed by hand
        raise ApiError(404, "not_found", f"{param}: the video of {source.id} is gone", param) from None
    return source.spec.num_frames


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
