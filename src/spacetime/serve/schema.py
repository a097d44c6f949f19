"""What a client may ask of the server: the limits, the request model (pydantic), and the turn of a
valid request into a `JobSpec` — the exact pipeline call a worker will make.

Field names follow OpenAI's Videos API where it has one (`prompt`, `size` "WxH", `seconds`,
`model`, the `input_reference` upload) and the pipeline's otherwise (`num_frames`, `height`,
`width`, `fps`, `steps`, `guidance_scale`, `negative_prompt`, `seed`, `mode`, `strength`, `loop`),
and `embed_prompt` as `spacetime generate --embed-prompt`.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spacetime.data.video import MIN_FPS
from spacetime.pipeline import (
    CONNECT_STRENGTH,
    connect_context,
    extension_context,
    least_frames,
    resolve_strength,
)

MAX_SEED = 2**63 - 1
SIZE_RE = re.compile(r"(\d{1,5})x(\d{1,5})")
MODES = ("extend-forward", "extend-backward", "edit", "connect")
UPLOADS = ("image", "video", "video2")  # multipart file fields; OpenAI's `input_reference` is `image`
DEFAULT_EDIT_STRENGTH = 0.6  # remixes and /v1/videos/edits, where OpenAI's API has no strength to send


class InvalidRequest(ValueError):
    """A request the server refuses (400, as OpenAI), naming the field (`param`) at fault."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param, self.message = param, message


@dataclass(frozen=True)
class Limits:
    """Per-request bounds: every one keeps a single job's time and memory bounded."""

    max_prompt_chars: int = 2000
    max_side: int = 512  # pixels, output height and width
    max_frames: int = 241  # output frames
    max_seconds: float = 60.0
    max_fps: float = 60.0
    max_steps: int = 100
    max_guidance: float = 30.0
    # output frames x height x width: 97 frames of 256x256; the decoded video and the VAE's
    # activations grow with it
    max_voxels: int = 97 * 256 * 256
    max_body_bytes: int = 32 * 2**20  # the whole request, uploads included
    max_json_bytes: int = 2**20  # a JSON body (no uploads): parsed in memory, so kept small
    max_input_side: int = 2048  # uploaded images and videos, before they are resized
    max_input_frames: int = 600

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


def request_model(limits: Limits) -> type[BaseModel]:
    """The pydantic model of `POST /v1/videos` under `limits` (so the OpenAPI schema states them)."""

    class VideoRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", title="VideoRequest")

        prompt: str = Field(min_length=1, max_length=limits.max_prompt_chars, description="what the video shows")
        negative_prompt: str | None = Field(None, max_length=limits.max_prompt_chars,
                                            description="what it should not show (the unconditional input of guidance)")
        model: str | None = Field(None, max_length=200, description="accepted for OpenAI clients; this server serves one model")
        size: str | None = Field(None, pattern=f"^{SIZE_RE.pattern}$", description="WIDTHxHEIGHT, e.g. 64x64 (or height and width)")
        height: int | None = Field(None, ge=1, le=limits.max_side)
        width: int | None = Field(None, ge=1, le=limits.max_side)
        seconds: float | None = Field(None, gt=0, le=limits.max_seconds, allow_inf_nan=False,
                                      description="duration, rounded to 1 + 4k frames at fps (or num_frames)")
        num_frames: int | None = Field(None, ge=1, le=limits.max_frames)
        fps: float | None = Field(None, ge=MIN_FPS, le=limits.max_fps, allow_inf_nan=False)
        steps: int | None = Field(None, ge=1, le=limits.max_steps, description="sampler steps (default: the model's, else 25)")
        guidance_scale: float | None = Field(None, ge=0, le=limits.max_guidance, allow_inf_nan=False,
                                             description="classifier-free guidance (default: the model's, else 5)")
        seed: int | None = Field(None, ge=0, le=MAX_SEED, description="random when left out; echoed back in the job")
        mode: Literal[MODES] | None = Field(None, description="what to do with an uploaded video (default extend-forward)")
        strength: float | None = Field(None, gt=0, le=1, allow_inf_nan=False, description="mode edit: how far from the video; mode connect: the transition starts from a cross-fade of the "
                                        f"two ends noised to this level (default {CONNECT_STRENGTH}; 1: from noise)")
        loop: bool = Field(False, description="make the last frame flow into the first")
        embed_prompt: bool = Field(False, description="store the prompt itself in the signed Content Credentials "
                                                       "(default: only its SHA-256)")
        prompt_as_typed: bool = Field(False, description="condition on the prompt exactly as written (default: a "
                                      "prompt naming an object without its colour is completed for a model whose "
                                      "config says so; the job's revised_prompt says how)")

        @field_validator("height", "width", "seconds", "num_frames", "fps", "steps", "guidance_scale", "seed",
                         "strength", mode="before")
        @classmethod
        def _not_a_bool(cls, v):
            if isinstance(v, bool):  # pydantic would take true as 1
                raise ValueError("must be a number, not true or false")
            return v

    return VideoRequest


@dataclass
class JobSpec:
    """One pipeline call, resolved and checked: what the job record echoes back."""

    prompt: str
    negative_prompt: str | None
    num_frames: int
    height: int
    width: int
    fps: float
    steps: int
    guidance_scale: float
    seed: int
    mode: str  # text-to-video, image-to-video, extend-forward, extend-backward, edit, connect
    strength: float | None
    loop: bool
    embed_prompt: bool = False  # the prompt itself in the Content Credentials, not only its hash
    prompt_as_typed: bool = False  # never completed (revised_prompt below), whatever the model's defaults
    # the pipeline's generation window where it is not the output's length: an extension's
    # (context frames from the video's end, then the new ones); num_frames is then the stitched total
    window_frames: int | None = None
    # what the model was conditioned on where it is not `prompt`: a text prompt naming an object without
    # its colour, completed for a model whose defaults say so (`complete_prompt`; DALL-E 3's field name)
    revised_prompt: str | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def seconds(self) -> str:
        return f"{self.num_frames / self.fps:g}"


def resolve(req: BaseModel, uploads: set[str], defaults: dict, fit, limits: Limits, default_steps: int = 25,
            frames_later: bool = False, *, temporal_factor: int, default_guidance: float = 5.0) -> JobSpec:
    """A valid request -> the job's spec: defaults filled from the model, the size fitted to what it
    can make (`fit(num_frames, height, width)`, the pipeline's), and the rules between fields.
    `frames_later`: the length follows from the input video (edits and extensions of /v1/videos/edits,
    /extensions and remixes), so num_frames is left 1 here and set by `edit_spec` or `extension_spec`
    once the video's frames are counted."""
    if req.size is not None and (req.height is not None or req.width is not None):
        raise InvalidRequest("size", "give size (WIDTHxHEIGHT) or height and width, not both")
    if req.seconds is not None and req.num_frames is not None:
        raise InvalidRequest("seconds", "give seconds or num_frames, not both")
    if req.prompt.strip() == "":
        raise InvalidRequest("prompt", "must not be blank")
    if req.size is not None:
        width, height = (int(v) for v in SIZE_RE.fullmatch(req.size).groups())
        for name, v in (("width", width), ("height", height)):
            if not 1 <= v <= limits.max_side:
                raise InvalidRequest("size", f"{name} must be 1..{limits.max_side} pixels, got {v}")
    else:
        height = req.height or defaults.get("height", 64)
        width = req.width or defaults.get("width", 64)
    fps = req.fps or float(defaults.get("fps", 8.0))
    if req.seconds is not None:
        num_frames = 1 + 4 * max(0, math.floor(req.seconds * fps / 4 + 0.5))  # as `spacetime generate --seconds`
        if num_frames > limits.max_frames:
            raise InvalidRequest("seconds", f"{req.seconds:g} s at {fps:g} fps is {num_frames} frames; at most "
                                            f"{limits.max_frames} are allowed")
    else:
        num_frames = 1 if frames_later else req.num_frames or defaults.get("num_frames", 17)
    num_frames, height, width = fit(num_frames, height, width)
    length_param = "seconds" if req.seconds is not None else "num_frames"
    check_length(num_frames, height, width, limits, length_param)
    if max(height, width) > limits.max_side:  # rounding up to the model's multiple can pass the limit
        raise InvalidRequest("size" if req.size else "height", f"{width}x{height} exceeds {limits.max_side} pixels a side")
    # the prompting modes, by what was uploaded (the same rules as `spacetime generate`)
    if "image" in uploads and "video" in uploads:
        raise InvalidRequest("image", "give image (image -> video) or video (extend, connect, edit), not both")
    if "video2" in uploads and req.mode != "connect":
        raise InvalidRequest("video2", "goes with mode connect")
    if req.mode is not None and "video" not in uploads:
        raise InvalidRequest("mode", f"mode {req.mode} needs an uploaded video")
    mode = "image-to-video" if "image" in uploads else (req.mode or "extend-forward") if "video" in uploads else "text-to-video"
    if req.strength is not None and mode not in ("edit", "connect"):
        raise InvalidRequest("strength", "goes with mode edit or connect")
    if mode == "edit" and req.strength is None:
        raise InvalidRequest("strength", "mode edit needs strength in (0, 1]")
    if mode == "connect" and "video2" not in uploads:
        raise InvalidRequest("video2", "mode connect needs video2, the video to end in")
    if req.loop and "video" in uploads:
        raise InvalidRequest("loop", "loop makes a new clip loop; it does not combine with a video")
    # the pipeline's own minimum windows, refused here rather than by a job that fails later
    least = least_frames(mode.removesuffix("-forward").removesuffix("-backward"), temporal_factor, req.loop)
    if num_frames < least and not frames_later:
        what = "a loop" if req.loop else f"mode {mode}"
        raise InvalidRequest(length_param, f"{what} needs a window of at least {least} frames, got {num_frames}")
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)  # random, and echoed back
    return JobSpec(prompt=req.prompt, negative_prompt=req.negative_prompt, num_frames=num_frames, height=height,
                   width=width, fps=fps, steps=req.steps or default_steps,
                   guidance_scale=default_guidance if req.guidance_scale is None else req.guidance_scale,
                   seed=seed, mode=mode, strength=resolve_strength(mode, req.strength), loop=req.loop,
                   embed_prompt=req.embed_prompt, prompt_as_typed=req.prompt_as_typed)


def check_length(num_frames: int, height: int, width: int, limits: Limits, param: str) -> None:
    """A video's length within the limits: frames, and frames x height x width (its memory)."""
    if num_frames > limits.max_frames:  # rounding to 1 + 4k can pass the limit
        raise InvalidRequest(param, f"{num_frames} frames (rounded to 1 + 4k) is over {limits.max_frames}")
    if num_frames * height * width > limits.max_voxels:
        raise InvalidRequest(param, f"{num_frames} frames of {width}x{height} is too large: frames x height x width "
                                    f"must be at most {limits.max_voxels}")


def most_frames(height: int, width: int, limits: Limits) -> int:
    """The most frames a video of that size may have: `max_frames`, and `max_voxels` over its area."""
    return min(limits.max_frames, limits.max_voxels // (height * width))


def edit_spec(spec: JobSpec, frames_in: int, ft: int, limits: Limits, param: str) -> JobSpec:
    """An edit (SDEdit) of a video of `frames_in` frames makes as many: its first 1 + ft*k, the
    clip the VAE encodes whole (`SpacetimePipeline`, mode edit). `param` names the video."""
    n = 1 + ft * ((frames_in - 1) // ft)
    most = most_frames(spec.height, spec.width, limits)
    if n > most:
        raise InvalidRequest(param, f"the video has {frames_in} frames; its edit would have {n}, and a "
                                    f"{spec.width}x{spec.height} video may have at most {most}")
    return replace(spec, num_frames=n)


def video_spec(spec: JobSpec, frames_in: int, frames_in2: int | None, ft: int, limits: Limits,
               length_param: str) -> JobSpec:
    """`POST /v1/videos` with an uploaded video in mode extend-forward, extend-backward or connect,
    once the uploads' frames are counted (`frames_in`, and `frames_in2` of video2): the inputs the
    pipeline cannot use are refused, and so is a result longer than the limits allow. The result
    is the video (and video2) with the window's new frames: the window (`spec.num_frames`) less
    the video frames it holds as context, counted by the pipeline's own extension_context and connect_context. The spec is returned
    as it is: its num_frames stays the window until the job has made the video."""
    n, t = spec.num_frames, 1 + (spec.num_frames - 1) // ft
    if spec.mode == "extend-forward":
        context = extension_context("forward", frames_in, t, ft)[1]
        inputs = frames_in
    elif spec.mode == "extend-backward":  # a still (under ft frames) is held as one latent frame, as the pipeline does
        context = extension_context("backward", frames_in, t, ft)[1]
        inputs = frames_in
    elif spec.mode == "connect":
        if not frames_in2:
            raise InvalidRequest("video2", "the video to connect to has no frames")
        n1, n2 = connect_context(frames_in, max(frames_in2, ft), t, ft)  # a still video2 fills one latent frame
        context = 1 + ft * (n1 - 1) + ft * n2
        inputs = frames_in + frames_in2
    else:
        return spec
    total, most = inputs + n - context, most_frames(spec.height, spec.width, limits)
    if total > most:
        given = f"{frames_in} + {frames_in2} frames" if spec.mode == "connect" else f"{frames_in} frames"
        # the video(s) alone leave no room for even one latent frame's new frames: the video is at fault
        param = ("video" if inputs + ft > most else length_param)
        raise InvalidRequest(param, f"the video has {given}; with the {n - context} new frames of a {n}-frame "
                                    f"window the result would have {total}, and a {spec.width}x{spec.height} video "
                                    f"may have at most {most}")
    return spec


def extension_spec(spec: JobSpec, frames_in: int, seconds: float, ft: int, limits: Limits) -> JobSpec:
    """An extension forward of a video of `frames_in` frames by about `seconds` (OpenAI's meaning:
    the new segment's length) -> the window that makes that many new frames, and the stitched total
    as the job's num_frames. The pipeline holds the video's last latent frames as context, half the
    window at most, and makes the rest: new = ft * (t - context) for a window of t latent frames, so
    any multiple of ft is reachable, and the window never exceeds the total."""
    new = ft * max(1, round(seconds * spec.fps / ft))
    most = most_frames(spec.height, spec.width, limits)
    room = ft * ((most - frames_in) // ft)
    if room < ft:
        raise InvalidRequest("video", f"the video has {frames_in} frames; extended by even {ft} it would pass the "
                                      f"{most} frames a {spec.width}x{spec.height} video may have")
    if new > room:
        raise InvalidRequest("seconds", f"{seconds:g} s at {spec.fps:g} fps is {new} new frames; after the video's "
                                        f"{frames_in} at most {room} fit ({room / spec.fps:g} s: a "
                                        f"{spec.width}x{spec.height} video may have {most} frames)")
    context = 1 + (frames_in - 1) // ft  # latent frames of the video there are to hold
    t = 2
    while t - max(1, min(context, t // 2)) < new // ft:  # as SpacetimePipeline, mode extend forward
        t += 1
    return replace(spec, num_frames=frames_in + new, window_frames=1 + ft * (t - 1))


def within_limits(defaults: dict, multiple: tuple[int, int], ft: int, limits: Limits) -> dict:
    """The model's defaults (`pipe.defaults`) for what a request leaves out, brought within the
    server's limits: a size over `max_side` scaled down (its aspect kept, in the model's multiples
    `multiple` (height, width)), and then a length over what that size may have cut to 1 + ft*k."""
    d = dict(defaults)
    h, w = d.get("height", 64), d.get("width", 64)
    if max(h, w) > limits.max_side:
        (mh, mw), scale = multiple, limits.max_side / max(h, w)
        d["height"], d["width"] = h, w = max(mh, mh * int(h * scale // mh)), max(mw, mw * int(w * scale // mw))
    most = most_frames(h, w, limits)
    if 1 <= most < d.get("num_frames", 17):  # (not even one frame fits: left for the request's own 400)
        d["num_frames"] = 1 + ft * ((most - 1) // ft)
    return d


def presets(defaults: dict, multiple: tuple[int, int], limits: Limits) -> dict:
    """Size and duration presets for the page, fitted to the model: aspect ratios at the model's
    trained height, and durations at its fps."""
    base_h, fps = defaults.get("height", 64), float(defaults.get("fps", 8.0))
    mh, mw = multiple
    sizes = []
    for label, (aw, ah) in (("1:1 square", (1, 1)), ("16:9 landscape", (16, 9)), ("9:16 portrait", (9, 16)),
                            ("4:3", (4, 3)), ("3:4", (3, 4))):
        h = base_h if aw >= ah else mh * max(1, round(base_h * ah / aw / mh))
        w = mw * max(1, round(h * aw / ah / mw))
        if max(w, h) <= limits.max_side and (label, w, h) not in sizes:
            sizes.append({"label": f"{label} · {w}x{h}", "size": f"{w}x{h}"})
    frames = {1 + 4 * max(1, math.floor(seconds * fps / 4 + 0.5)) for seconds in (1, 2, 4, 8)}
    frames.add(defaults.get("num_frames", 17))  # what the model was trained on
    durations = [{"label": "image (1 frame)", "num_frames": 1}] + [
        {"label": f"{n / fps:.3g} s · {n} frames", "num_frames": n} for n in sorted(frames) if 1 < n <= limits.max_frames]
    return {"sizes": sizes, "durations": durations}
