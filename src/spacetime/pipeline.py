"""`SpacetimePipeline`: text -> video with a trained DiT, its VAE and its text encoder — the
diffusers shape, so users know it.

    pipe = SpacetimePipeline.from_pretrained("runs/dit-world/model")
    video = pipe("a red ball bounces off the left wall", num_frames=17, height=64, width=64,
                 num_inference_steps=25, guidance_scale=5.0,
                 generator=torch.Generator().manual_seed(0)).frames[0]   # uint8 (T, H, W, 3)
    spacetime.export_to_video(video, "out.mp4", fps=8)

A pipeline directory: `config.json` ({"format": "spacetime-pipeline", "dit": DiTConfig,
"text_encoder": "minilm" | a local path | "hash", "text_max_length", "defaults": {num_frames,
height, width, fps, and optionally the sampling a call gets when it does not say: num_inference_steps,
guidance_scale, guidance_interval, shift and dtype ("float32" or "bfloat16", what `from_pretrained`
loads the DiT and VAE in)}}), `model.safetensors` (the DiT's EMA weights, float32), `vae/` (a VAE
model directory) and `COMPLETE`, written last.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from spacetime import flow, sampling
from spacetime.data.media import fit_media, load_media
from spacetime.dit import DiT, DiTConfig
from spacetime.vae import VideoVAE

log = logging.getLogger(__name__)

# the world model trained by us (configs/vae-world*.yaml, configs/dit-world.yaml; docs/model-card.md)
DEFAULT_MODEL = Path(__file__).parent / "models" / "world"
CONNECT_CONTEXT = 2  # latent frames of each video a connecting window holds (5 frames of the first, 8 of the second)
# a connection's transition starts from a cross-fade of the two ends noised to this level: with the
# default model, seams below a hard cut's and a transition nearer the true one than from noise
# (docs/modes.md, "Connect from a cross-fade"); strength 1 generates it from noise alone
CONNECT_STRENGTH = 0.6


# an output taken from an input's size with this many times the pixels of the model's default is
# warned of: sampling time grows with their square (a 12-megapixel photo at a 64x64 model: hours)
BIG_INPUT = 16
# without a size, an input of more than this many times the pixels of the model's default makes an
# output of its aspect ratio at the model's scale, not of its own size: far above the sizes it
# learned, a model breaks up (the shipped one, trained at up to 96x64, makes specks of colour at
# 128x128 or from a 300x200 photo, where at 96x64 it draws the objects; docs/modes.md)
LARGE_INPUT = 2


def size_multiples(vae_config, patch) -> tuple[int, int, int]:
    """What a model of this VAE and DiT patch makes: (frames step, height multiple, width multiple)
    — frames are 1 + step*k, sides multiples of the VAE's downsampling times the patch."""
    pt, ph, pw = patch
    return vae_config.temporal_factor * pt, vae_config.spatial_factor * ph, vae_config.spatial_factor * pw


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


def least_frames(mode: str, temporal_factor: int, loop: bool = False) -> int:
    """The shortest window (frames) a mode runs in: extending needs two latent frames (a given one and
    a new one), connecting and loops three (two given ends and a middle); the rest need one."""
    latents = 3 if mode == "connect" or loop else 2 if mode == "extend" else 1
    return 1 + temporal_factor * (latents - 1)


def extension_context(extend: str, video_frames: int, t: int, ft: int) -> tuple[int, int]:
    """The latent frames of a given video that a window of `t` latent frames holds when extending
    it "forward" (its last ones, begun by a lone frame: 1 + ft(n - 1) video frames) or "backward"
    (its first ft * n frames), at most half the window; and that count of video frames. A video of
    fewer than ft frames (a still image) extended backward counts as ft: its last frame is repeated
    to fill one latent frame."""
    if extend == "forward":
        n = max(1, min(1 + (video_frames - 1) // ft, t // 2))
        return n, 1 + ft * (n - 1)
    n = min(max(video_frames, ft) // ft, t // 2)
    return n, ft * n


def planned_windows(mode: str, extend: str, num_frames: int, t: int, t_whole: int, ft: int,
                    video_frames: int = 0) -> int:
    """How many windows of `t` latent frames a long video of `num_frames` takes, as the pipeline
    makes it: text / image -> video, or an extension ("forward" / "backward") of a video of
    `video_frames` frames by what one window of `t_whole` latent frames would add."""
    window = 1 + ft * (t - 1)  # frames one window decodes to
    n = max(1, t // 2)  # the latent frames each later window holds of the video so far
    if mode == "extend":
        n0, k0 = extension_context(extend, video_frames, t, ft)
        target = num_frames + video_frames - extension_context(extend, video_frames, t_whole, ft)[1]
        have = video_frames + window - k0
        per = window - (1 + ft * (n - 1) if extend == "forward" else ft * n)
    else:
        target, have, per = num_frames, window, ft * (t - n)
    return 1 + max(0, math.ceil((target - have) / per))


def connect_bridge(head: Tensor, tail: Tensor, t: int) -> Tensor:
    """A connecting window of `t` latent frames (B C T H W) that holds `head` at its start and `tail`
    at its end and, between them, a linear cross-fade from head's last latent frame to tail's
    first: where a connection with strength < 1 starts (the sampler noises it to that strength)."""
    n1, n2 = head.shape[2], tail.shape[2]
    if n1 + n2 > t:
        raise ValueError(f"the ends ({n1} + {n2} latent frames) do not fit a window of {t}")
    gap = t - n2 - n1 + 1  # steps from head's last frame to tail's first
    w = torch.arange(1, gap, dtype=head.dtype, device=head.device) / gap  # (T_mid,)
    w = w[None, None, :, None, None]
    middle = (1 - w) * head[:, :, -1:] + w * tail[:, :, :1]
    return torch.cat([head, middle, tail], 2)


def resolve_strength(mode: str, strength: float | None) -> float | None:
    """The strength a mode runs at: a connection without one takes CONNECT_STRENGTH (what the CLI
    and the server record); other modes keep what was given."""
    return CONNECT_STRENGTH if mode == "connect" and strength is None else strength


def connect_context(frames1: int, frames2: int, t: int, ft: int) -> tuple[int, int]:
    """The latent frames of the first video's end and of the second's start that a connecting
    window of `t` latent frames holds: up to CONNECT_CONTEXT each (where it is and how it moves);
    the rest of the window is the transition, so the window sets its length."""
    n1 = max(1, min(1 + (frames1 - 1) // ft, (t - 1) // 2, CONNECT_CONTEXT))
    return n1, min(frames2 // ft, t - 1 - n1, CONNECT_CONTEXT)


def fast_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 arithmetic runs at float32's rate or better on `device`: a GPU, or a CPU
    oneDNN runs bfloat16 on (AVX-512 and newer, Arm's bf16). An AVX2-only CPU emulates it ~150x
    slower than float32 (0.83 against 120.5 GFLOP/s, `bench/generate.py --peaks`, docs/benchmarks.md)."""
    if torch.device(device).type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # what PyTorch's own CPU bf16 paths ask
    except (AttributeError, RuntimeError):
        return "AVX512" in torch.backends.cpu.get_cpu_capability()


def load_text_encoder(spec: str, max_length: int, device: str | torch.device = "cpu",
                      cache_dir: str | Path | None = None):
    """"minilm": the shipped all-MiniLM-L6-v2; "hash" or "hash:DIM": the model-free test encoder;
    anything else: a local Hugging Face model directory. `cache_dir`: its embeddings' disk cache."""
    from spacetime import text

    if spec == "minilm":
        return text.TextEncoder(max_length=max_length, device=device, cache_dir=cache_dir)
    if spec == "hash" or spec.startswith("hash:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 384
        return text.HashTextEncoder(dim=dim, max_length=max_length, device=device, cache_dir=cache_dir)
    return text.TextEncoder(path=spec, max_length=max_length, device=device, cache_dir=cache_dir)


def resolve_text_encoder(spec: str, model_dir: Path) -> str:
    """A pipeline config's text encoder -> what `load_text_encoder` takes: built-in names as they
    are; a local model directory looked for inside the pipeline folder first (a relative path is
    the folder's own `text_encoder/`, or was given relative to where training ran)."""
    if spec == "minilm" or spec == "hash" or spec.startswith("hash:"):
        return spec
    inside = model_dir / spec
    if not Path(spec).is_absolute() and inside.is_dir():
        return str(inside)
    if Path(spec).is_dir():
        return spec
    raise ValueError(f"{model_dir}: its text encoder {spec!r} is not a directory (looked in {inside} and "
                     f"{Path(spec).resolve()}); put the encoder at {model_dir / 'text_encoder'} and set "
                     '"text_encoder": "text_encoder" in its config.json')


def read_pipeline_dit(path: str | Path | None = None) -> tuple[Path, dict, DiT]:
    """A pipeline directory's path, config and DiT (fp32), checked; None: the shipped default model.
    The DiT alone, for `from_pretrained` and for fine-tuning (`spacetime train --init_from`)."""
    from safetensors.torch import load_file

    if path is None:
        if not (DEFAULT_MODEL / "COMPLETE").is_file():
            raise ValueError(f"no default text-to-video model is installed ({DEFAULT_MODEL} is not a complete "
                             "pipeline); pass a model directory trained with `spacetime train`")
        path = DEFAULT_MODEL
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a model directory (a str or Path) or None, got {path!r}"[:300])
    path = Path(os.path.expanduser(path))
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a model directory: give the folder that holds config.json")
    if not path.is_dir():
        raise ValueError(f"{path}: no such model directory")
    from spacetime.checkpoint import is_checkpoint_name

    # a run's folder of them, or one of them (a copy such as step-200.bak is not one)
    checkpoints = path.name == "checkpoints" and any(p.is_dir() and is_checkpoint_name(p.name) for p in path.iterdir())
    if checkpoints or (path / "state.json").is_file() or (is_checkpoint_name(path.name) and path.parent.name == "checkpoints"):
        # a training checkpoint (checkpoint.py): the run's config and optimizer state, no VAE or
        # pipeline config; the model a run makes is its `model/`, written when training ends
        model = (path.parent if checkpoints else path.parent.parent) / "model"
        where = (f"load the run's model, {model}" if (model / "COMPLETE").is_file() else
                 f"the run's model ({model}) is not written yet: it is, when training reaches max_steps "
                 "(run `spacetime train` again to resume)")
        what = "a run's training checkpoints" if checkpoints else "a training checkpoint (weights and optimizer state)"
        raise ValueError(f"{path} holds {what}, not a model directory: {where}")
    if not (path / "COMPLETE").is_file():
        hint = f" (a training run? its model is {path / 'model'})" if (path / "model" / "COMPLETE").is_file() else ""
        raise ValueError(f"{path} is not a complete model directory (no COMPLETE marker); refusing to load it{hint}")
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: cannot read the pipeline config ({e})") from None
    if isinstance(config, dict) and "format" not in config and isinstance(config.get("model"), dict) and (
            "temporal_factor" in config["model"]):  # VideoVAE.from_pretrained's folder
        raise ValueError(f"{path} is a VAE model directory (spacetime train-vae's), not a text-to-video pipeline: a "
                         "pipeline is a DiT trained on it (spacetime train --vae FOLDER) with the VAE inside")
    if not isinstance(config, dict) or config.get("format") != "spacetime-pipeline":
        what = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path}/config.json is not a spacetime text-to-video pipeline (format {what!r})")
    for name, ok, want in (("dit", isinstance(config.get("dit"), dict), "an object (DiTConfig's fields)"),
                           ("text_encoder", isinstance(config.get("text_encoder"), str),
                            'a string ("minilm", "hash:DIM" or a folder)'),
                           ("text_max_length", isinstance(config.get("text_max_length"), int)
                            and not isinstance(config.get("text_max_length"), bool) and config["text_max_length"] >= 1,
                            "a positive integer"),
                           ("defaults", isinstance(config.get("defaults", {}), dict), "an object")):
        if not ok:  # else a KeyError or AttributeError from the loading below, or from every call
            got = repr(config[name]) if name in config else "missing"
            raise ValueError(f"{path / 'config.json'}: {name} must be {want}, got {got}"[:300])
    try:
        dit = DiT(DiTConfig(**config["dit"]))
        dit.load_state_dict(load_file(path / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - missing, truncated or mismatched weights: the folder's fault
        raise ValueError(f"{path / 'model.safetensors'}: cannot load the DiT ({type(e).__name__}: {e})"[:500]) from None
    return path, config, dit


@dataclass
class SpacetimePipelineOutput:
    frames: list  # one video per prompt (x num_videos_per_prompt): uint8 (T, H, W, 3) arrays by default
    timings: dict[str, float] = field(default_factory=dict)  # seconds: text, denoise, decode

    def __getitem__(self, i: int | str):
        """`out[0]` and `out["frames"]` are the frames, as diffusers' outputs index their fields."""
        if isinstance(i, str):
            if i not in ("frames", "timings"):
                raise KeyError(i)
            return getattr(self, i)
        return (self.frames,)[i]


class SpacetimePipeline:
    def __init__(self, dit: DiT, vae: VideoVAE, text_encoder, config: dict):
        self.dit, self.vae, self.text_encoder, self.config = dit.eval(), vae.eval(), text_encoder, config
        self.defaults = config.get("defaults", {})

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, torch_dtype: torch.dtype | str | None = None,
                        device: str | torch.device | None = None) -> SpacetimePipeline:
        """A pipeline directory; None: the default world model shipped in the package. `torch_dtype`
        (e.g. torch.bfloat16 or "bfloat16"): the DiT's and VAE's weights in it, generation under autocast; default:
        the model's own (`defaults.dtype` in its config.json, the dtype it was measured in), else
        float32; "auto" says so too, as in diffusers.
        A local text encoder is found in the folder's `text_encoder/` (where `save_pretrained` puts
        it), else at the recorded path (a relative one: beside the folder, then from here)."""
        torch_dtype = None if torch_dtype in (None, "auto") else _torch_dtype("torch_dtype", torch_dtype)  # before loading
        device = None if device is None else _torch_device(device)
        path, config, dit = read_pipeline_dit(path)
        vae = VideoVAE.from_pretrained(path / "vae")
        if vae.config.latent_channels != dit.config.in_channels:  # another run's VAE: "x must be (B, 16, ...)" at each call
            raise ValueError(f"{path / 'vae'} makes {vae.config.latent_channels} latent channels; its DiT takes "
                             f"{dit.config.in_channels} (in_channels): the DiT was trained on another VAE")
        text = load_text_encoder(resolve_text_encoder(config["text_encoder"], path), config["text_max_length"])
        if text.dim != dit.config.text_dim:  # else "text must be (B, L, 32)" at the first call
            raise ValueError(f"{path / 'config.json'}: its text encoder {config['text_encoder']!r} makes {text.dim}-wide "
                             f"embeddings; its DiT takes {dit.config.text_dim} (text_dim): the DiT was trained with "
                             "another encoder")
        pipe = cls(dit, vae, text, config)
        torch_dtype = getattr(torch, pipe.resolve_dtype(device=device)) if torch_dtype is None else torch_dtype
        if torch_dtype != torch.float32 or device is not None:
            pipe.to(device, torch_dtype)
        return pipe

    def save_pretrained(self, path: str | Path) -> Path:
        """This pipeline as a model directory `from_pretrained` loads anywhere, written atomically:
        config, the DiT's weights and `vae/` (float32), a local text encoder copied into
        `text_encoder/`, then COMPLETE. `path`: a new or empty folder, or a model folder, replaced
        whole; a file or a folder of other things is refused (ValueError), never deleted."""
        import tempfile

        from spacetime.checkpoint import save_model

        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"save_pretrained: path must be a folder (a str or Path), got {path!r}"[:300])
        # "~" is the user's home, and "." or "out/" a folder with a name: it is replaced by renaming
        path = Path(os.path.abspath(os.path.expanduser(path)))
        # the folder is replaced whole (atomically): only an empty one or a model folder (COMPLETE,
        # written last by every save) may be, never a file or a folder of the user's other things
        if path.exists() and not path.is_dir():
            raise ValueError(f"save_pretrained: {path} is a file; give a folder to write the model into")
        if path.is_dir() and not (path / "COMPLETE").is_file():
            others = sorted(p.name for p in path.iterdir())
            if others:
                raise ValueError(f"save_pretrained: {path} holds other files ({', '.join(others[:5])}"
                                 f"{', ...' if len(others) > 5 else ''}) and is not a model folder; saving replaces "
                                 "the folder whole: give a new or empty one")
        config = dict(self.config, format="spacetime-pipeline", dit=self.dit.config.to_dict())
        subdirs = {}
        local = getattr(getattr(self.text_encoder, "config", None), "path", None)
        if local is not None:
            subdirs["text_encoder"] = Path(local)
            config["text_encoder"] = "text_encoder"
        with tempfile.TemporaryDirectory() as tmp:
            subdirs["vae"] = save_model(Path(tmp) / "vae", {"model": self.vae.config.to_dict()},
                                        {k: v.float().cpu() for k, v in self.vae.state_dict().items()})
            return save_model(path, config, {k: v.float().cpu() for k, v in self.dit.state_dict().items()}, subdirs)

    def fit_size(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """The nearest size the model can make (1 + 4k frames, sides multiples of the latent patch
        in pixels), with a logged warning when that differs from what was asked, as diffusers does."""
        from spacetime.cli import MAX_FRAMES, MAX_SIDE  # the CLI's bounds; cli imports no torch

        num_frames, height, width = (_positive_int(name, v) for name, v in
                                     (("num_frames", num_frames), ("height", height), ("width", width)))
        # refused before any work: a side of 10^6 or 10^9 frames would run for hours, then run out of memory
        for name, v, most in (("num_frames", num_frames, MAX_FRAMES), ("height", height, MAX_SIDE), ("width", width, MAX_SIDE)):
            if v > most:
                raise ValueError(f"{name} must be at most {most}, got {v}")
        ft, mh, mw = size_multiples(self.vae.config, self.dit.config.patch)
        fitted = (1 + ft * math.floor((num_frames - 1) / ft + 0.5),
                  mh * max(1, math.floor(height / mh + 0.5)), mw * max(1, math.floor(width / mw + 0.5)))
        if fitted != (num_frames, height, width):
            log.warning("%d frames of %dx%d (WxH) do not fit the model (1 + %dk frames, sides multiples of %dx%d); "
                        "making %d frames of %dx%d", num_frames, width, height, ft, mw, mh, fitted[0], fitted[2], fitted[1])
        return fitted

    def check_size(self, num_frames: int, height: int, width: int) -> None:
        ft, fs_h, fs_w = size_multiples(self.vae.config, self.dit.config.patch)
        if num_frames < 1 or (num_frames - 1) % ft:
            raise ValueError(f"num_frames must be 1 + {ft}k (1, {1 + ft}, {1 + 2 * ft}, ...), got {num_frames}")
        if height < fs_h or height % fs_h or width < fs_w or width % fs_w:
            raise ValueError(f"height must be a multiple of {fs_h} and width of {fs_w}, got {height}x{width} (HxW)")

    # --- inputs for the prompting modes --------------------------------------------------------

    def _encode(self, frames: np.ndarray) -> Tensor:
        """uint8 (T, H, W, 3), T = 1 + 4k -> normalized latents (1, C, 1 + k, h, w)."""
        from spacetime.data.video import frames_to_tensor

        with self._autocast():
            return self.vae.encode(frames_to_tensor(frames)[None].to(self._device)).float()

    def _head_latents(self, frames: np.ndarray, n: int) -> tuple[Tensor, int]:
        """The last 1 + 4(n-1) frames encoded as a clip of their own -> n latents that begin a
        window (the causal VAE's first latent frame is a lone frame); and that frame count."""
        k = 1 + self.vae.config.temporal_factor * (n - 1)
        return self._encode(frames[len(frames) - k :]), k

    def _tail_latents(self, frames: np.ndarray, n: int) -> tuple[Tensor, int]:
        """The first 4n frames -> n latents that end a window: encoded behind a copy of their first
        frame, which takes the lone-frame slot and is dropped; and that frame count."""
        k = self.vae.config.temporal_factor * n
        return self._encode(np.concatenate([frames[:1], frames[:k]]))[:, :, 1:], k

    @property
    def _device(self) -> torch.device:
        return next(self.dit.parameters()).device

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """The DiT's weights' dtype; below float32, generation runs under autocast in it."""
        return self.dit.x_embedder.weight.dtype

    @property
    def dtype_name(self) -> str:
        """`dtype` as the CLI, sidecars and eval settings name it ("float32", "bfloat16"): what is
        loaded, which for a model's bfloat16 default is float32 on a CPU without bfloat16 arithmetic."""
        return str(self.dtype).removeprefix("torch.")

    def to(self, device: str | torch.device | torch.dtype | None = None,
           dtype: torch.dtype | str | None = None) -> SpacetimePipeline:
        """Move the DiT, the VAE and the text encoder to `device`, and/or cast the DiT's and VAE's
        weights to `dtype`, as diffusers' `pipe.to("cuda")`, `pipe.to(torch.bfloat16)`,
        `pipe.to("cuda", torch.float16)`; frames still come back as uint8 arrays on the CPU. The text
        encoder stays float32 (its embeddings are cast where the DiT uses them). A dtype may be named
        ("bfloat16"); a device this PyTorch cannot use is refused before anything moves."""
        if isinstance(device, torch.dtype) or (isinstance(device, str)  # a dtype's name, "bfloat16"
                                               and isinstance(getattr(torch, device.removeprefix("torch."), None), torch.dtype)):
            device, dtype = None, device if dtype is None else dtype
        if dtype is not None:
            dtype = _torch_dtype("dtype", dtype)
        if device is not None:
            device = _torch_device(device)
            self.dit.to(device)
            self.vae.to(device)
            self.text_encoder.device = device
            if hasattr(self.text_encoder, "model"):
                self.text_encoder.model.to(device)
        if dtype == torch.bfloat16 and not fast_bfloat16(self._device):
            log.warning("bfloat16 on a CPU without bfloat16 arithmetic (AVX2): sampling will run ~100x slower than "
                        "in float32")
        if dtype is not None:
            self.dit.to(dtype)
            self.vae.to(dtype)
            self._norms_float32()
        return self

    def _norms_float32(self) -> None:
        """Norm layers back in float32, as diffusers keeps them: their inputs are float32 here (text,
        RoPE'd q/k), and CPU refuses a norm whose weights and input differ in dtype."""
        for model in (self.dit, self.vae):
            for m in model.modules():
                if "Norm" in type(m).__name__:
                    m.float()

    def _autocast(self):
        """Generation in the weights' dtype: autocast below float32 (inputs, sampler state and
        outputs stay float32), nothing at float32."""
        import contextlib

        # the DiT's or the VAE's weights, either cast (by `to`, or by hand: `pipe.dit.to(torch.bfloat16)`)
        low = next((p.dtype for m in (self.dit, self.vae) for p in m.parameters() if p.dtype != torch.float32), None)
        if low is None:
            return contextlib.nullcontext()
        self._norms_float32()  # a component cast by hand has its norms cast too
        return torch.autocast(self._device.type, dtype=low)

    # --- generation ---------------------------------------------------------------------------

    def resolve_num_inference_steps(self, steps=None) -> int:
        """The sampler steps a call takes: `steps` (checked), else the model's own (`defaults` in its
        config.json: a model measured at fewer steps ships them), else 25."""
        return _positive_int("num_inference_steps", self.defaults.get("num_inference_steps", 25) if steps is None else steps)

    def resolve_guidance_scale(self, scale=None) -> float:
        """The guidance scale a call uses: `scale` (checked, in [0, 100]), else the model's own
        (`defaults` in its config.json), else 5."""
        value = self.defaults.get("guidance_scale", 5.0) if scale is None else scale
        if not _real(value) or not 0 <= float(value) <= 100:
            raise ValueError(f"guidance_scale must be a number in [0, 100] (1: the prompt alone, no guidance), "
                             f"got {value!r}")
        return float(value)

    def resolve_dtype(self, name: str | None = None, device: str | torch.device | None = None) -> str:
        """The DiT's and VAE's dtype, torch's name for it: `name`, else the model's own
        (`defaults.dtype` in its config.json) where `device` (default: the pipeline's) runs it fast
        (`fast_bfloat16`; a model measured in bfloat16 falls back to float32 on an AVX2 CPU, with a
        warning), else "float32". A name not in DTYPE_NAMES is refused."""
        from spacetime.cli import DTYPE_NAMES  # the names the CLI offers; cli imports no torch

        value = self.defaults.get("dtype", "float32") if name is None else name
        if value not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {value!r}"
                             + ("" if name is not None else " (the model's config.json defaults)"))
        device = self._device if device is None else device
        if name is None and value == "bfloat16" and not fast_bfloat16(device):
            log.warning("the model samples in bfloat16 by default, but this CPU has no bfloat16 arithmetic (it "
                        "would run ~100x slower than float32): sampling in float32")
            return "float32"
        return value

    def resolve_guidance_interval(self, interval=None) -> tuple[float, float]:
        """The guidance interval a call uses: `interval` (checked), else the model's own (`defaults`
        in its config.json), else (0, 1), everywhere."""
        return sampling.check_guidance_interval(self.defaults.get("guidance_interval", (0.0, 1.0))
                                                if interval is None else interval)

    def resolve_guidance_method(self, method: str | None = None, options: dict | None = None) -> tuple[str, dict]:
        """The guidance method a call uses and its options, defaults filled in: `method` (checked),
        else the model's own (`defaults.guidance_method` in its config.json), else plain "cfg". The
        model's method comes with its `guidance_options`, which `options` given override."""
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"guidance_options must be a dict of the guidance method's options, got {options!r}"[:300])
        own = self.defaults.get("guidance_method", "cfg")
        if method is not None and method != own:
            return method, sampling.check_guidance_method(method, options)
        own_options = self.defaults.get("guidance_options", {})
        try:  # the model's pair first, so that an error in its config.json says where it is
            sampling.check_guidance_method(own, own_options)
        except ValueError as e:
            raise ValueError(f"{e} (the model's config.json defaults)") from None
        return own, sampling.check_guidance_method(own, {**own_options, **(options or {})})

    def resolve_shift(self, shift=None) -> float:
        """The sampler's timestep shift a call uses at least: `shift` (checked), else the model's own
        (`defaults` in its config.json), else 1. Each window is shifted by the larger of it and the
        training's resolution shift for the window's token count (flow.resolution_shift)."""
        value = self.defaults.get("shift", 1.0) if shift is None else shift
        if not _real(value) or not 0 < float(value) <= 100:
            raise ValueError(f"shift must be a number in (0, 100] (1: the training's schedule), got {value!r}")
        return float(value)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        solver: str = "euler",
        guidance_interval: tuple[float, float] | None = None,
        shift: float | None = None,
        guidance_method: str | None = None,
        guidance_options: dict | None = None,
        progress: bool = False,
        image=None,
        video=None,
        video2=None,
        extend: str = "forward",
        strength: float | None = None,
        loop: bool = False,
        window_frames: int | None = None,
        callback: Callable[[int, int], None] | None = None,
        num_videos_per_prompt: int = 1,
        output_type: str = "np",
        latents: Tensor | None = None,
        return_dict: bool = True,
    ) -> SpacetimePipelineOutput | tuple:
        """Text -> video, and the prompting modes, all as clean latent frames held by the sampler:
        `image` (image -> video: the first frame), `video` + `extend` "forward" / "backward"
        (the result is the given video with new frames after / before it), `video` + `video2`
        (connect: video, a generated transition, video2; the transition starts from a cross-fade of
        the two ends noised to `strength`, SDEdit-style: default CONNECT_STRENGTH, 1 is from noise),
        `video` + `strength` (edit, SDEdit:
        strength in (0, 1], the noise level the input is taken to), `loop` (the last frame flows
        into the first: a clip that fits one window is made with its last latent frame tied to its
        first and comes back one frame short, so that played in a loop its frame 0 follows; a longer
        one ends with a transition back to its start, made as a connection at CONNECT_STRENGTH).
        `num_frames` is the generation
        window (given context frames included);
        images and videos of another size are resized to height x width with a warning; without
        them the output takes the first input's size (one of more than LARGE_INPUT times the pixels
        of the model's default size: its aspect ratio at the model's scale, with a warning), with
        one of them its aspect ratio.
        Text/image -> video longer than `window_frames` (default: twice the model's training
        length) is made window by window, each extending the last (Sora's long videos); so is an
        extension whose window is longer (forward: each window starts from the end so far;
        backward: each ends at the start so far).
        `num_videos_per_prompt` videos are made per prompt (consecutive in `.frames`, each from
        its own noise); `output_type` "np" (default): each video a uint8 (T, H, W, 3) array, "pil":
        a list of PIL images, "pt": a float (T, 3, H, W) tensor in [0, 1] (diffusers' layouts).
        `callback(step, total)` is called after every sampler step, counted over all windows (a
        server's progress bar); an exception it raises stops the generation (cancelling).
        `generator`: one, or a list of one per video (diffusers' per-item seeds: each video is then
        what it would be alone with its own generator), on any device. `num_inference_steps`,
        `guidance_scale`: default the model's own (`defaults` in its config.json), else 25 and 5.
        `guidance_scale` ≥ 0: 1 is
        the conditional model alone (one pass, the negative prompt unused); below 1 the prompt
        weighs less, and 0 ignores it (unconditional samples; diffusers instead turns guidance off
        at ≤ 1). `guidance_interval` (lo, hi): guidance only at noise levels t in [lo, hi], the
        conditional model alone elsewhere (one pass); default: the model's own (`defaults` in its
        config.json), else (0, 1), everywhere. `shift` > 0: the sampler's timestep shift,
        t' = shift·t / (1 + (shift − 1)·t), which spends more of the steps at high noise, where the
        layout is decided; windows larger than 256·shift² tokens are shifted more, as in training;
        default: the model's own, else 1 (docs/model-card.md, "Sampling shift"). `guidance_method`
        "cfg", "cfg-zero-star", "apg" or "stg" and its `guidance_options` (sampling.GUIDANCE_METHODS):
        how the conditional and unconditional predictions combine; default the model's own, else
        "cfg" (docs/experiments.md, "Guidance methods"). A guidance-distilled model (its DiT's
        `guidance_embed`) makes plain "cfg" without a negative prompt in one pass per step at the scales it learned
        (`guidance_range` in its config.json); with a negative prompt, another method or another
        scale it is guided with two, as its own conditional model. `latents`: the starting noise (B, C, t, h, w) of the first window instead of
        drawn noise (an edit's: t its video's latent frames); `output_type` "latent" returns the denoised latents of a one-window text ->
        video or image -> video. `return_dict=False`: the tuple `(frames,)`."""
        prompts = _prompts("prompt", prompt)
        negatives = None if negative_prompt is None else _prompts("negative_prompt", negative_prompt)
        if negatives is not None and len(negatives) not in (1, len(prompts)):
            raise ValueError(f"negative_prompt: give one, or one per prompt ({len(prompts)}), got {len(negatives)}")
        num_inference_steps = self.resolve_num_inference_steps(num_inference_steps)
        per_prompt = _positive_int("num_videos_per_prompt", num_videos_per_prompt)
        if output_type not in ("np", "pil", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pil', 'pt' or 'latent', got {output_type!r}")
        if not isinstance(return_dict, (bool, np.bool_)):  # "False" would be true, and give the other shape
            raise ValueError(f"return_dict must be True or False, got {return_dict!r}")
        guidance_scale = self.resolve_guidance_scale(guidance_scale)
        guidance_interval = self.resolve_guidance_interval(guidance_interval)
        guidance_method, guidance_options = self.resolve_guidance_method(guidance_method, guidance_options)
        min_shift = self.resolve_shift(shift)
        # a guidance-distilled model was taught guidance from "" in plain cfg, at the scales of its
        # guidance_range: one pass a step there
        lo, hi = self.config.get("guidance_range", (0.0, math.inf))
        embedded = (bool(self.dit.config.guidance_embed) and guidance_method == "cfg" and negatives is None
                    and (lo <= guidance_scale <= hi or guidance_scale == 1.0))
        if window_frames is not None:
            window_frames = _positive_int("window_frames", window_frames)
        if not isinstance(loop, (bool, np.bool_)):
            raise ValueError(f"loop must be True or False, got {loop!r}")
        count = len(prompts) * per_prompt  # the videos asked for; the lists grow only once memory allows them
        if isinstance(generator, (list, tuple)):
            if len(generator) != count:
                raise ValueError(f"generator: give one torch.Generator, or a list of one per video ({count}: "
                                 f"prompts x num_videos_per_prompt), got {len(generator)} items")
            for i, g in enumerate(generator):
                if not isinstance(g, torch.Generator):
                    raise ValueError(f"generator[{i}] is not a torch.Generator (got {type(g).__name__})")
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
        if callback is not None and not callable(callback):  # else a TypeError after the first step
            raise ValueError(f"callback must be a function of (step, total), got {callback!r}"[:300])
        if callback is not None:
            import inspect

            try:
                signature = inspect.signature(callback)
            except (TypeError, ValueError):  # a builtin without one: called as given
                signature = None
            try:
                if signature is not None:
                    signature.bind(1, 1)
            except TypeError:  # e.g. diffusers' callback(step, timestep, latents): else a TypeError after a step
                raise ValueError(f"callback must be a function of (step, total); it cannot be called with two "
                                 f"arguments: {getattr(callback, '__name__', callback)}{signature}"[:300]) from None
        mode = self._mode(image, video, video2, extend, strength, loop)
        if strength is not None:
            strength = float(strength)
        # each input read once; without a size the output takes the first input's (read whole), and
        # the others are scaled to it as they are decoded
        inputs = {name: x for name, x in (("image", image), ("video", video), ("video2", video2)) if x is not None}
        said = {name: f"{name} {x}" if isinstance(x, (str, os.PathLike)) else name for name, x in inputs.items()}
        media = {}
        if (height is None or width is None) and inputs:
            first = next(iter(inputs))
            media[first] = load_media(inputs[first], first)
            height, width = self._size_from_input(media[first], said[first], height, width)
        if mode == "edit" and num_frames is not None:
            log.warning("num_frames (%s) is ignored: an edit keeps its video's length", num_frames)
            num_frames = None
        num_frames = self.defaults.get("num_frames", 17) if num_frames is None else num_frames
        height = self.defaults.get("height", 64) if height is None else height
        width = self.defaults.get("width", 64) if width is None else width
        num_frames, height, width = self.fit_size(num_frames, height, width)
        self.check_size(num_frames, height, width)
        need, have = count * num_frames * height * width * 3, _memory_bytes()  # the uint8 frames returned
        if have is not None and need > have:
            raise ValueError(f"{count} video(s) of {_frames(num_frames)} of {width}x{height} (WxH) are "
                             f"{need / 2**30:.1f} GiB of frames, more than this machine's memory ({have / 2**30:.1f} GiB): "
                             "ask for fewer (prompts x num_videos_per_prompt), shorter (num_frames) or smaller "
                             "(height, width) videos")
        if negatives is not None and len(negatives) == len(prompts) > 1:
            negatives = [n for n in negatives for _ in range(per_prompt)]
        prompts = [p for p in prompts for _ in range(per_prompt)]
        media.update({name: load_media(x, name, (height, width)) for name, x in inputs.items() if name not in media})
        media = {name: fit_media(frames, name, height, width) for name, frames in media.items()}
        timings = {"text": 0.0, "denoise": 0.0, "decode": 0.0}
        t0 = time.perf_counter()
        text, mask = self.text_encoder.encode(prompts)
        neg_text = neg_mask = None
        if guidance_scale != 1.0 and not embedded:
            negatives = [""] * len(prompts) if negatives is None else negatives * (len(prompts) // len(negatives))
            neg_text, neg_mask = self.text_encoder.encode(negatives)
        timings["text"] = time.perf_counter() - t0
        b = len(prompts)
        c, t, h, w = self.vae.latent_shape(num_frames, height, width)
        ft = self.vae.config.temporal_factor
        # long videos: windows of `window_frames`, each extending the last with half a window of
        # context, so memory and time per window stay flat whatever the duration
        window = window_frames or 2 * (self.defaults.get("num_frames", 17) - 1) + 1
        if window < 1 + 2 * ft:
            raise ValueError(f"window_frames must be at least {1 + 2 * ft}, got {window}")
        if (window - 1) % ft:  # a window holds whole latent frames
            log.warning("window_frames %d is not 1 + %dk; windows of %d frames are used", window, ft,
                        1 + ft * ((window - 1) // ft))
        long = mode in ("text", "image", "extend") and t > 1 + (window - 1) // ft
        if window_frames is not None and mode in ("edit", "connect"):  # else silently one larger window
            one = 1 + ft * ((len(media["video"]) - 1) // ft) if mode == "edit" else num_frames
            if one > 1 + ft * ((window - 1) // ft):
                log.warning("window_frames (%d) is not used: %s is made in one window of %d frames (%s)", window_frames,
                            "an edit" if mode == "edit" else "a connection", one,
                            "its video's length" if mode == "edit" else "num_frames")
        t_whole = t  # the latent frames of all num_frames: what one window would hold
        if long:
            t = 1 + (window - 1) // ft
        if loop and t < 3:
            raise ValueError(f"a loop needs num_frames of at least {least_frames(mode, ft, loop)} (3 latent frames), "
                             f"got {num_frames}")
        # sampler calls planned (the callback's total): the first window, the windows extending a
        # long video, a long loop's closing transition
        planned = (1 if loop and long else 0) + (planned_windows(
            mode, extend, num_frames, t, t_whole, ft, len(media["video"]) if mode == "extend" else 0) if long else 1)
        steps_done = 0
        if output_type == "latent" and (mode not in ("text", "image") or long or loop):
            raise ValueError("output_type 'latent' is for text -> video and image -> video in one window (no "
                             "loop): the other modes join decoded frames")
        first_noise = []  # the user's `latents`, the first window's noise
        if latents is not None:
            # an edit's one window is its video's latent frames (it keeps the video's length)
            want = (b, c, 1 + (len(media["video"]) - 1) // ft if mode == "edit" else t, h, w)
            if not isinstance(latents, Tensor):
                raise ValueError(f"latents must be a torch tensor of shape {want}, got {type(latents).__name__}")
            if not latents.is_floating_point():
                raise ValueError(f"latents must be a float tensor, got dtype {latents.dtype}")
            if tuple(latents.shape) != want:
                got = tuple(latents.shape)
                raise ValueError(f"latents must be a float tensor of shape {want} (B C T H W: videos, latent channels, "
                                 f"latent frames, height / {h and height // h}, width / {w and width // w}), got {got}")
            if not torch.isfinite(latents).all():  # else NaN frames, silently
                raise ValueError("latents holds NaN or infinite values")
            first_noise.append(latents.detach().to(self._device, torch.float32, copy=True))  # a loop ties it in place

        def step_done(*_) -> None:
            nonlocal steps_done
            steps_done += 1
            if callback is not None:
                callback(steps_done, max(steps_done, planned * num_inference_steps))

        def denoise(cond: list[tuple[int, Tensor]] = (), start: Tensor | None = None, s: float = 1.0,
                    frames: int = t, tie: bool = False) -> list[np.ndarray]:
            """One window of `frames` latent frames; cond: (position, latents (1, C, n, h, w)) held
            clean. `tie`: the last latent frame is the first one again (a loop): both start from the
            same noise and after every step take the mean of their two updates, so one latent is
            denoised with the context of both ends (the VAE's latent k stands for the scene at
            frame 4k: a still scene encodes to the same latent at every k)."""
            t1 = time.perf_counter()
            pt, ph, pw = self.dit.config.patch
            window_shift = flow.resolution_shift(frames * h * w // (pt * ph * pw), min_shift=min_shift)
            if first_noise:
                noise = first_noise.pop()
                if noise.shape[2] < frames:  # an image loop's extra latent frame: held clean, its noise unused
                    noise = torch.cat([noise, noise.new_zeros(*noise.shape[:2], frames - noise.shape[2], *noise.shape[3:])], 2)
            else:
                noise = draw_noise((b, c, frames, h, w), generator, self._device)
            if tie:
                noise[:, :, -1] = noise[:, :, 0]
            cond_latents = cond_mask = None
            if cond:
                cond_latents = torch.zeros_like(noise)
                cond_mask = torch.zeros(b, frames, dtype=torch.bool, device=noise.device)
                for pos, z in cond:
                    cond_latents[:, :, pos : pos + z.shape[2]] = z
                    cond_mask[:, pos : pos + z.shape[2]] = True
            with self._autocast():
                latents = sampling.sample(self.dit, noise, text, mask, num_steps=num_inference_steps,
                                          guidance_scale=guidance_scale, guidance_interval=guidance_interval,
                                          guidance_method=guidance_method, guidance_options=guidance_options,
                                          embedded_guidance=embedded, negative_text=neg_text, negative_mask=neg_mask,
                                          solver=solver, shift=window_shift, progress=progress, cond_latents=cond_latents,
                                          cond_mask=cond_mask,
                                          start_latents=None if start is None else start.expand(b, -1, -1, -1, -1),
                                          strength=s, callback=tied_step if tie else step_done).float()
            t2 = time.perf_counter()
            if output_type == "latent":
                timings["denoise"] += t2 - t1
                return list(latents)
            with self._autocast():
                video_out = self.vae.decode(latents).float()  # (B, 3, T, H, W) in [-1, 1]
            out = ((video_out.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            timings["denoise"] += t2 - t1
            timings["decode"] += time.perf_counter() - t2
            return list(out)

        def tied_step(i: int, t_next: float, x: Tensor) -> Tensor:
            step_done()
            ends = (x[:, :, :1] + x[:, :, -1:]) / 2
            return torch.cat([ends, x[:, :, 1:-1], ends], 2)

        def connect(befores: list[np.ndarray], afters: list[np.ndarray]) -> list[np.ndarray]:
            """Windows whose head is each `befores`' end and whose tail is each `afters`' start
            (one pair, or one per prompt) -> the generated middles."""
            if t < 3:
                raise ValueError(f"connecting needs num_frames of at least {least_frames('connect', ft)} "
                                 f"(3 latent frames), got {num_frames}")
            # a video2 shorter than a latent frame (a still image) is held as its frames with its last
            # repeated to fill one, and comes back as given after the transition
            afters = [np.concatenate([y, np.repeat(y[-1:], ft - len(y), 0)]) if len(y) < ft else y for y in afters]
            n1, n2 = connect_context(len(befores[0]), len(afters[0]), t, ft)
            if n2 < 1:
                raise ValueError(f"{said['video2']} (the video to connect to) has {_frames(len(afters[0]))}; it needs at least {ft}")
            heads, tails = zip(*[(self._head_latents(x, n1), self._tail_latents(y, n2)) for x, y in zip(befores, afters)])
            k1, k2 = heads[0][1], tails[0][1]
            head, tail = torch.cat([z for z, _ in heads]), torch.cat([z for z, _ in tails])
            start = connect_bridge(head, tail, t) if bridge < 1 else None
            windows = denoise([(0, head), (t - n2, tail)], start=start, s=bridge)
            return [v[k1 : len(v) - k2] for v in windows]

        tie = loop and not long  # a loop in one window: its last latent frame is its first
        # a connection's transition starts from a cross-fade of the two ends noised to `strength`
        # (SDEdit); 1: from noise. A loop longer than a window closes with such a connection, from
        # its end back to its start, at the default strength (docs/modes.md, "Long loops").
        bridge = resolve_strength(mode, strength) if mode == "connect" else CONNECT_STRENGTH if loop and not tie else 1.0
        if mode == "text":
            frames = denoise(tie=tie)
        elif mode == "image":
            z = self._encode(media["image"][:1])
            if tie:
                # a looping animation of an image starts on it and flows back into it: one latent frame
                # more, held at the image, whose frames are cut at the seam. (Held in the last latent
                # frame of the window itself, the image would stand for its 4 frames: a still.)
                frames = [v[:num_frames] for v in denoise([(0, z), (t, z)], frames=t + 1)]
            else:
                frames = denoise([(0, z)])
        elif mode == "edit":
            src = media["video"]
            n = 1 + ft * ((len(src) - 1) // ft)
            if n != len(src):
                log.warning("video has %d frames; editing its first %d (1 + %dk)", len(src), n, ft)
            z = self._encode(src[:n])
            frames = denoise(start=z, s=strength, frames=z.shape[2])
        elif mode == "extend":
            src = media["video"]
            if t < 2:
                raise ValueError(f"extending needs num_frames of at least {least_frames('extend', ft)} "
                                 f"(2 latent frames), got {num_frames}")
            n, _ = extension_context(extend, len(src), t, ft)
            if extend == "forward":
                head, k = self._head_latents(src, n)
                frames = [np.concatenate([src, v[k:]]) for v in denoise([(0, head)])]
            else:
                # a still image (fewer frames than a latent frame holds): its last frame repeated to
                # fill one, and the result ends on the frames as given
                held = np.concatenate([src, np.repeat(src[-1:], ft - len(src), 0)]) if len(src) < ft else src
                tail, k = self._tail_latents(held, n)
                frames = [np.concatenate([v[: len(v) - k], src]) for v in denoise([(t - n, tail)])]
            # new frames: num_frames less the context one window of num_frames would hold, so the
            # length does not depend on window_frames
            num_frames += len(src) - extension_context(extend, len(src), t_whole, ft)[1]
        else:  # connect
            a, z = media["video"], media["video2"]
            frames = [np.concatenate([a, m, z]) for m in connect([a], [z])]
        if long and mode == "extend" and extend == "backward":  # windows before the start, each ending in it
            n = max(1, t // 2)
            while len(frames[0]) < num_frames:
                tails = [self._tail_latents(v, n) for v in frames]
                k = tails[0][1]
                new = denoise([(t - n, torch.cat([z for z, _ in tails]))])
                frames = [np.concatenate([x[: len(x) - k], v]) for v, x in zip(frames, new)]
            frames = [v[len(v) - num_frames :] for v in frames]
        elif long:  # windows after the end, each starting from it
            n = max(1, t // 2)
            while len(frames[0]) < num_frames:
                heads = [self._head_latents(v, n) for v in frames]
                k = heads[0][1]
                new = denoise([(0, torch.cat([z for z, _ in heads]))])
                frames = [np.concatenate([v, x[k:]]) for v, x in zip(frames, new)]
            frames = [v[:num_frames] for v in frames]
        if tie:  # the last frame stands for frame 0 again: dropped, so the loop's period is t - 1 latents
            frames = [v[:-1] for v in frames]
        elif loop:  # the long clip, then a generated transition from its end back to its start
            frames = [np.concatenate([clip, m]) for clip, m in zip(frames, connect(frames, frames))]
        if output_type == "latent":
            frames = [v.cpu() for v in frames]
        elif output_type == "pil":
            from PIL import Image

            frames = [[Image.fromarray(f) for f in v] for v in frames]
        elif output_type == "pt":
            frames = [torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255 for v in frames]
        if not return_dict:
            return (frames,)
        return SpacetimePipelineOutput(frames=frames, timings=timings)

    def _size_from_input(self, frames: np.ndarray, said: str, height: int | None, width: int | None) -> tuple[int, int]:
        """(height, width) of an output sized by its first input (`frames`, named `said`), one side
        or neither given: the input's size (a large one's aspect ratio at the model's scale), or with
        one side given its aspect ratio (not the model's default for the other side, which would
        stretch it)."""
        ih, iw = frames.shape[1:3]
        dh, dw = self.defaults.get("height", 64), self.defaults.get("width", 64)
        _, mh, mw = size_multiples(self.vae.config, self.dit.config.patch)
        if height is None and width is None and ih * iw > LARGE_INPUT * dh * dw and min(ih, iw) > min(dh, dw):
            height, width = _at_model_scale(ih, iw, min(dh, dw), mh, mw)
            how = "without height and width the output takes its aspect ratio at this model's scale,"
            log.warning("%s is %dx%d (WxH); without a size the output is %dx%d, its aspect ratio at this model's "
                        "scale (about %d pixels on the shorter side, as in the %dx%d it makes by default): far "
                        "larger sizes than it learned break up. Give height and width (--size WxH) for another size",
                        said, iw, ih, width, height, min(dh, dw), dw, dh)
        elif height is None and width is None:
            height, width, how = ih, iw, "without height and width the output takes its size,"
        elif height is None:
            width = _positive_int("width", width)
            height, how = max(1, round(width * ih / iw)), f"at width {width} its aspect ratio makes the output"
        else:
            height = _positive_int("height", height)
            width, how = max(1, round(height * iw / ih)), f"at height {height} its aspect ratio makes the output"
        from spacetime.cli import MAX_SIDE

        if max(height, width) > MAX_SIDE:  # else "height must be at most 4096", of a height never given
            raise ValueError(f"{said} is {iw}x{ih} (WxH); {how} {width}x{height}, over {MAX_SIDE} pixels a "
                             "side: give height and width (--size WxH) to scale it down")
        if height * width > BIG_INPUT * dh * dw:  # a phone photo at a 64x64 model: hours, for nothing it learned
            scale = min(dh, dw) / min(height, width)
            log.warning("%s is %dx%d (WxH), and the output takes %dx%d: %.0f times the pixels of the %dx%d this model "
                        "makes by default; sampling slows with the square of that, and the model has not learned "
                        "such sizes. Give a size (--size %dx%d keeps its aspect ratio)", said, iw, ih, width,
                        height, height * width / (dh * dw), dw, dh, mw * max(1, round(width * scale / mw)),
                        mh * max(1, round(height * scale / mh)))
        return height, width

    @staticmethod
    def _mode(image, video, video2, extend: str, strength, loop: bool) -> str:
        if image is not None and video is not None:
            raise ValueError("give image (image -> video) or video (extend, connect, edit), not both")
        if video2 is not None and video is None:
            raise ValueError("video2 needs video: connecting goes from video to video2")
        if extend not in ("forward", "backward"):
            raise ValueError(f"extend must be 'forward' or 'backward', got {extend!r}")
        if strength is not None:
            if video is None:
                raise ValueError("strength needs video: editing (SDEdit) starts from a video, connecting "
                                 "(video + video2) from a cross-fade of their ends")
            if not _real(strength) or not 0 < float(strength) <= 1:
                raise ValueError(f"strength must be in (0, 1] (0 would return the input, 1 ignores it), got {strength!r}")
        if loop and video is not None:
            raise ValueError("loop makes a new clip loop; it does not combine with video")
        mode = ("image" if image is not None else "text" if video is None else "connect" if video2 is not None
                else "edit" if strength is not None else "extend")
        if extend == "backward" and mode != "extend":  # else made forward (the image first), silently
            what = {"image": "image -> video (the image is the first frame; for it as the last, give it as video=)", "text": "text -> video", "connect": "connecting (video + video2)",
                    "edit": "editing (video + strength)"}[mode]
            raise ValueError(f"extend='backward' is for extending a video (video= alone); it does not apply to {what}")
        return mode


def _at_model_scale(ih: int, iw: int, short: int, mh: int, mw: int) -> tuple[int, int]:
    """(height, width) for an ih x iw input at a model whose default shorter side is `short`: the
    shorter side `short`, or one multiple either side of it where the sides' rounding keeps the
    aspect ratio clearly better (320x240 makes 64x48, exactly 4:3, not a stretched 80x64)."""
    def size(s: int) -> tuple[int, int]:
        scale = s / min(ih, iw)
        return mh * max(1, round(ih * scale / mh)), mw * max(1, round(iw * scale / mw))

    def error(hw: tuple[int, int]) -> float:
        return abs(math.log((hw[1] / hw[0]) / (iw / ih)))

    m = mh if ih <= iw else mw
    best = size(short)
    for s in (short - m, short + m):
        if s > 0 and error(size(s)) < error(best) - 0.02:  # 2%: what the stretch warning lets pass
            best = size(s)
    return best


def draw_noise(shape: tuple[int, ...], generator, device: torch.device) -> Tensor:
    """Standard normal noise on `device`, drawn on the generator's own device (the same numbers for
    a seed wherever the model runs); a list of generators draws one row (video) each."""
    if isinstance(generator, (list, tuple)):
        return torch.cat([draw_noise((1, *shape[1:]), g, device) for g in generator])
    on = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=on).to(device)


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _torch_dtype(name: str, v) -> torch.dtype:
    """A dtype the DiT and VAE run in (float32, or below it under autocast), as a torch.dtype or its
    name ("bfloat16", "torch.float16"); float64 and the rest are refused naming the argument."""
    dtype = _DTYPES.get(v.removeprefix("torch.")) if isinstance(v, str) else v
    if dtype not in _DTYPES.values():
        raise ValueError(f"{name} must be torch.float32, torch.bfloat16 or torch.float16 (or its name), got {v!r}")
    return dtype


def _torch_device(device) -> torch.device:
    """A device this PyTorch can use, as a torch.device; anything else refused naming it, before
    anything is loaded or moved."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device ('cpu', 'cuda', 'cuda:1', ...) or a dtype, "
                         f"got {device!r}") from None
    available = getattr(getattr(torch, device.type, None), "is_available", None)
    if not callable(available):  # a type without a torch module ("xla" without torch_xla): tried
        def available() -> bool:
            try:
                torch.empty(0, device=device)
            except RuntimeError:
                return False
            return True
    if device.type != "cpu" and not available():
        raise ValueError(f"device {str(device)!r}: this PyTorch has no {device.type} device available")
    return device


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes; None where the OS does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _positive_int(name: str, v) -> int:
    """An integer >= 1 of any integral type (Python, NumPy, a 0-d tensor) as an int; bools refused."""
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)) and not (
            isinstance(v, Tensor) and v.ndim == 0 and not v.is_floating_point() and v.dtype != torch.bool):
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if int(v) < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _real(v) -> bool:
    """A finite real number of any type (Python, NumPy, a 0-d tensor); not a bool."""
    if isinstance(v, Tensor):
        return v.ndim == 0 and v.dtype != torch.bool and math.isfinite(float(v))
    return not isinstance(v, (bool, np.bool_)) and isinstance(v, numbers.Real) and math.isfinite(float(v))


def _prompts(name: str, prompt) -> list[str]:
    """A prompt or a list of them -> the list; text that is not a string, or is not valid Unicode
    (bytes a shell passed through undecoded, lone surrogates), is refused naming the argument."""
    items = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if not items or not all(isinstance(p, str) for p in items):
        raise ValueError(f"{name} must be a string or a non-empty list of strings, got {prompt!r}"[:300])
    for p in items:
        try:
            p.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{name} is not valid UTF-8 text ({e.reason} at character {e.start}: "
                             f"{p[max(0, e.start - 20) : e.end + 20]!r}); pass the text in UTF-8") from None
    return items


__all__ = ["SpacetimePipeline", "SpacetimePipelineOutput", "load_text_encoder"]
