"""The video compression network: a causal video VAE, built to be fast on a CPU.

    video (B, 3, 1+4k, H, W) in [-1, 1]  --encode-->  latents (B, 16, 1+k, H/8, W/8)  --decode-->  video

Causal in time: the first frame is encoded alone (an image is a 1-frame video) and latent frame j
sees only frames <= 4j. Time is folded into channels first: the first frame is repeated to fill a
group of 4, and every 4 frames become one 12-channel "frame"; then a 2x2 pixel-unshuffle. So the
network runs at 1/4 of the frame rate and 1/2 of the resolution from its first layer, with
per-frame 2D convolutions and causal temporal convolutions of kernel 3 — a (2+1)D factorization,
far cheaper on CPU than dense 3D convolutions. Normalization is per pixel (RMS over channels), so
nothing mixes information across time or space except the convolutions: encoding and decoding
in temporal chunks with cached causal context equals the whole-clip result, and overlapping
spatial tiles only differ near their borders, where they are blended.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# a dict the causal convolutions keep their last input frames in, between temporal chunks
Cache = dict


@dataclass
class VAEConfig:
    """The VAE's architecture. `channels` are the widths at 1/2, 1/4 and 1/8 of the resolution."""

    in_channels: int = 3
    latent_channels: int = 16
    channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: int = 1
    temporal_factor: int = 4  # frames per latent frame (after the first)
    spatial_patch: int = 2  # pixel-unshuffle before the first convolution
    # width of a per-frame stage at the full frame rate, at the ends of the encoder and decoder
    # (0: none, time is folded into channels from the first layer to the last). Folded, the
    # finest decoder level must draw 4 frames of moving edges with `channels[0]` channels.
    frame_channels: int = 0

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be positive widths, got {self.channels}")
        for name in ("in_channels", "latent_channels", "blocks_per_level", "temporal_factor", "spatial_patch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frame_channels < 0:
            raise ValueError(f"frame_channels must be >= 0, got {self.frame_channels}")

    @property
    def spatial_factor(self) -> int:
        return self.spatial_patch * 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}


# ----------------------------------------------------------------------------------------------
# Building blocks. Tensors are (B, C, T, H, W) throughout.

class RMSNorm(nn.Module):
    """RMS over channels at each pixel of each frame: no statistics across time or space."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * self.scale


class FrameConv(nn.Conv2d):
    """A 2D convolution applied to every frame. Borders are padded by replication, so a flat
    colour stays flat up to the frame's edge (and across tile borders when tiling)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("padding_mode", "replicate")
        super().__init__(*args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[0], x.shape[2]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b, t=t)


class CausalTimeConv(nn.Module):
    """Kernel-k convolution over time only, padded at the front by repeating the first frame.
    Given a cache, it continues from the frames the previous chunk ended with."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv3d(channels, channels, (kernel, 1, 1))

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        k = self.kernel - 1
        past = cache.get(self) if cache is not None else None
        if past is None:
            past = x[:, :, :1].expand(-1, -1, k, -1, -1)  # the clip's start: repeat frame 0
        padded = torch.cat([past, x], 2)
        if cache is not None:
            cache[self] = padded[:, :, -k:].detach()
        return self.conv(padded)


class ResBlock(nn.Module):
    def __init__(self, channels: int, temporal: bool = True):
        super().__init__()
        self.norm1 = RMSNorm(channels)
        self.conv1 = FrameConv(channels, channels, 3, padding=1)
        self.time = CausalTimeConv(channels) if temporal else None
        self.norm2 = RMSNorm(channels)
        self.conv2 = FrameConv(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time is not None:
            h = h + self.time(h, cache)
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class FrameStage(nn.Module):
    """A 2D stage run on every frame at the full frame rate (the callers unfold time from the
    channels around it). No time mixing, so temporal chunking is unaffected."""

    def __init__(self, c_in: int, width: int, c_out: int):
        super().__init__()
        self.conv_in = FrameConv(c_in, width, 3, padding=1)
        self.block = ResBlock(width, temporal=False)
        self.norm_out = RMSNorm(width)
        self.conv_out = FrameConv(width, c_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.norm_out(self.block(self.conv_in(x)))))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c_in = cfg.in_channels * cfg.temporal_factor * cfg.spatial_patch**2
        self.frame_stage = None
        if cfg.frame_channels:
            fc, ft = cfg.frame_channels, cfg.temporal_factor
            self.frame_stage = FrameStage(c_in // ft, fc, fc)
            c_in = fc * ft
        self.ft, self.p = cfg.temporal_factor, cfg.spatial_patch
        self.conv_in = FrameConv(c_in, cfg.channels[0], 3, padding=1)
        self.levels = nn.ModuleList()
        self.down = nn.ModuleList()
        for i, c in enumerate(cfg.channels):
            self.levels.append(nn.ModuleList(ResBlock(c) for _ in range(cfg.blocks_per_level)))
            if i + 1 < len(cfg.channels):
                self.down.append(FrameConv(c, cfg.channels[i + 1], 3, stride=2, padding=1))
        self.mid = ResBlock(cfg.channels[-1])
        self.norm_out = RMSNorm(cfg.channels[-1])
        self.conv_out = FrameConv(cfg.channels[-1], 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, x: Tensor, cache: Cache | None = None) -> Tensor:
        if self.frame_stage is not None:
            f, p = self.ft, self.p
            x = rearrange(x, "b (c f p q) t h w -> b (c p q) (t f) h w", f=f, p=p, q=p)  # per frame
            x = F.silu(self.frame_stage(x))  # (B, frame_channels, t*f, h, w)
            x = rearrange(x, "b c (t f) h w -> b (c f) t h w", f=f)
        h = self.conv_in(x)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, cache)
            if i < len(self.down):
                h = self.down[i](h)
        h = self.mid(h, cache)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2 * latent, t, h, w): mean, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = list(reversed(cfg.channels))
        self.conv_in = FrameConv(cfg.latent_channels, chans[0], 3, padding=1)
        self.mid = ResBlock(chans[0])
        self.levels = nn.ModuleList()
        self.up = nn.ModuleList()
        for i, c in enumerate(chans):
            self.levels.append(nn.ModuleList(ResBlock(c) for _ in range(cfg.blocks_per_level)))
            if i + 1 < len(chans):
                self.up.append(FrameConv(c, chans[i + 1], 3, padding=1))
        c_out = cfg.in_channels * cfg.temporal_factor * cfg.spatial_patch**2
        self.norm_out = RMSNorm(chans[-1])
        self.frame_stage = None
        if cfg.frame_channels:
            fc, ft = cfg.frame_channels, cfg.temporal_factor
            self.conv_out = FrameConv(chans[-1], fc * ft, 3, padding=1)
            self.frame_stage = FrameStage(fc, fc, c_out // ft)
        else:
            self.conv_out = FrameConv(chans[-1], c_out, 3, padding=1)
        self.ft, self.p = cfg.temporal_factor, cfg.spatial_patch

    def forward(self, z: Tensor, cache: Cache | None = None) -> Tensor:
        h = self.mid(self.conv_in(z), cache)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, cache)
            if i < len(self.up):
                h = F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest")  # (B, C, t, 2h, 2w)
                h = self.up[i](h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        if self.frame_stage is None:
            return h
        f, p = self.ft, self.p
        h = rearrange(h, "b (c f) t h w -> b c (t f) h w", f=f)  # (B, frame_channels, t*f, h, w)
        h = self.frame_stage(h)  # (B, 3*p*p, t*f, h, w)
        return rearrange(h, "b (c p q) (t f) h w -> b (c f p q) t h w", f=f, p=p, q=p)


# ----------------------------------------------------------------------------------------------

class VideoVAE(nn.Module):
    """Causal video VAE. `encode` returns normalized latents (per-channel mean/std, computed after
    training with `fit_latent_stats` and stored with the weights); `decode` takes them back."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.register_buffer("latent_mean", torch.zeros(self.config.latent_channels))
        self.register_buffer("latent_std", torch.ones(self.config.latent_channels))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # Start with a near-deterministic posterior (std ~0.02): with unit noise at the start the
        # decoder first learns to ignore the latents, and fine detail (small objects) comes late.
        # The KL term widens the posterior again as far as reconstruction allows.
        with torch.no_grad():
            self.encoder.conv_out.bias[self.config.latent_channels :].fill_(-8.0)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> VideoVAE:
        """Load a model directory (`config.json`, `model.safetensors`, `COMPLETE`)."""
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_dir():  # "not complete" would send the user looking for a marker in a folder that is not there
            raise ValueError(f"{path}: no such model directory" + (" (the packaged VAE is spacetime.pipeline.DEFAULT_MODEL "
                             "/ 'vae'; configs say vae: shipped)" if str(path) == "shipped" else ""))
        if not (path / "COMPLETE").is_file():
            raise ValueError(f"{path} is not a complete model directory (no COMPLETE marker)")
        try:
            config = json.loads((path / "config.json").read_text())
            model = cls(VAEConfig(**config["model"]))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path / 'config.json'}: cannot read the VAE config ({type(e).__name__}: {e})"[:500]) from None
        try:
            model.load_state_dict(load_file(path / "model.safetensors"))
        except Exception as e:  # noqa: BLE001 - missing, truncated or mismatched weights: the folder's fault
            # was load_state_dict's RuntimeError, a traceback out of `generate` (the DiT's load says this already)
            raise ValueError(f"{path / 'model.safetensors'}: cannot load the VAE ({type(e).__name__}: {e})"[:500]) from None
        return model.eval()

    # --- shapes ---------------------------------------------------------------------------------

    def check_video(self, video: Tensor) -> None:
        cfg = self.config
        if video.ndim != 5 or video.shape[1] != cfg.in_channels:
            raise ValueError(f"video must be (B, {cfg.in_channels}, T, H, W), got shape {tuple(video.shape)}")
        if not video.is_floating_point():  # uint8 frames were a conv's "Input type and bias type" error
            raise ValueError(f"video must be floating point in [-1, 1], got {video.dtype} (uint8 frames: x / 127.5 - 1)")
        self._check_size(*video.shape[2:])

    def _check_size(self, t: int, h: int, w: int) -> None:
        ft, fs = self.config.temporal_factor, self.config.spatial_factor
        if t < 1 or (t - 1) % ft:
            raise ValueError(f"frame count must be 1 + {ft}k (1, {1 + ft}, {1 + 2 * ft}, ...), got {t}")
        if h < fs or w < fs or h % fs or w % fs:  # 0x0 passed as a multiple, then failed in a conv
            raise ValueError(f"height and width must be positive multiples of {fs}, got {h}x{w} (HxW)")

    def _check_latents(self, latents: Tensor) -> None:
        c = self.config.latent_channels
        if latents.ndim != 5 or latents.shape[1] != c or min(latents.shape[2:]) < 1:
            raise ValueError(f"latents must be (B, {c}, t, h, w) with t, h, w >= 1, got shape {tuple(latents.shape)}")
        if not latents.is_floating_point():
            raise ValueError(f"latents must be floating point, got {latents.dtype}")

    def _dtype(self) -> torch.dtype:
        return self.encoder.conv_in.weight.dtype

    def _check_device(self, x: Tensor, what: str) -> None:
        # was a conv's "Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor)"
        device = self.encoder.conv_in.weight.device
        if x.device != device:
            raise ValueError(f"{what} is on {x.device} and the VAE on {device}: move one, e.g. {what}.to({str(device)!r})")

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, t, h, w) of a clip's latents; a size the VAE does not take is a ValueError, not the
        shape of a smaller clip (8 frames was given 2 latent frames, which decode to 5)."""
        self._check_size(num_frames, height, width)
        cfg = self.config
        return (cfg.latent_channels, 1 + (num_frames - 1) // cfg.temporal_factor,
                height // cfg.spatial_factor, width // cfg.spatial_factor)

    # --- patchify -------------------------------------------------------------------------------

    def _fold(self, video: Tensor) -> Tensor:
        """(B, 3, 1+4k, H, W) -> (B, 3*4*p*p, 1+k, H/p, W/p): time and a p x p patch into channels."""
        ft, p = self.config.temporal_factor, self.config.spatial_patch
        x = torch.cat([video[:, :, :1].expand(-1, -1, ft - 1, -1, -1), video], 2)  # frame 0 fills group 0
        return rearrange(x, "b c (t f) (h p) (w q) -> b (c f p q) t h w", f=ft, p=p, q=p)

    def _unfold(self, x: Tensor) -> Tensor:
        ft, p = self.config.temporal_factor, self.config.spatial_patch
        video = rearrange(x, "b (c f p q) t h w -> b c (t f) (h p) (w q)", f=ft, p=p, q=p)
        return video[:, :, ft - 1 :]  # group 0's last frame is frame 0

    # --- the whole-clip path (training) -------------------------------------------------------------

    def encode_dist(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance of the raw (unnormalized) latents."""
        self.check_video(video)
        moments = self.encoder(self._fold(video)).float()  # float even under bf16 autocast
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: Tensor, cache: Cache | None = None) -> Tensor:
        return self._unfold(self.decoder(z, cache))

    def forward(self, video: Tensor, generator: torch.Generator | None = None,
                latent_noise: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction (sampled posterior), mean and log-variance — what training needs.

        `latent_noise` > 0 decodes each clip's latents with Gaussian noise added, its level drawn
        uniformly in [0, latent_noise] per clip, in units of the latents' spread (`latent_std`): a
        DiT's latents are near, not on, the encoder's, and a decoder trained only on the encoder's
        draws small errors as objects that flicker or appear from nowhere."""
        mean, logvar = self.encode_dist(video)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        if latent_noise:
            level = latent_noise * torch.rand((z.shape[0], 1, 1, 1, 1), generator=generator, device=z.device)
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + level * self.latent_std.view(1, -1, 1, 1, 1).to(z.dtype) * noise
        return self.decode_raw(z), mean, logvar

    # --- the user-facing path: chunked in time, tiled in space ------------------------------------------

    def normalize(self, z: Tensor) -> Tensor:
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def encode(
        self,
        video: Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
        chunk: int | None = 4,
        tile: int | None = None,
        normalize: bool = True,
    ) -> Tensor:
        """(B, 3, 1+4k, H, W) in [-1, 1] -> latents (B, 16, 1+k, H/8, W/8).

        `chunk`: latent frames per temporal chunk (None: all at once); memory stays flat as the
        clip grows. `tile`: spatial tile size in pixels (a multiple of 8; None: whole frames)."""
        self.check_video(video)
        _check_chunk(chunk)
        self._check_device(video, "video")
        # the model's dtype: a float32 clip into a bf16 model (or float64 into float32) was a conv's
        # "Input type and bias type should be the same"
        video = video.to(self._dtype())
        fs = self.config.spatial_factor
        logvar = None
        if tile is not None and (video.shape[-2] > tile or video.shape[-1] > tile):
            if tile % fs or tile < 2 * fs:
                raise ValueError(f"tile must be a multiple of {fs} and at least {2 * fs} pixels, got {tile}")
            overlap = max(fs, tile // 4 // fs * fs)  # tile starts stay on the latent grid
            mean = _tiled(lambda v: self.encode(v, chunk=chunk, normalize=False), video, tile, overlap, 1 / fs,
                          self.config.latent_channels, 1 + (video.shape[2] - 1) // self.config.temporal_factor)
        else:
            folded = self._fold(video)
            mean, logvar = torch.cat(list(_chunked(self.encoder, folded, chunk)), 2).chunk(2, dim=1)
        if sample:
            # the chunked pass has the variance; a second, whole-clip pass (encode_dist) made
            # sample=True's memory grow with the clip whatever `chunk` said. Tiled: that pass still.
            logvar = self.encode_dist(video)[1] if logvar is None else logvar.float().clamp(-30.0, 20.0)
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + torch.exp(0.5 * logvar) * eps
        return self.normalize(mean) if normalize else mean

    @torch.no_grad()
    def decode(self, latents: Tensor, *, chunk: int | None = 4, tile: int | None = None, normalized: bool = True) -> Tensor:
        """latents (B, 16, 1+k, h, w) -> video (B, 3, 1+4k, 8h, 8w) in [-1, 1]. `tile` is in
        pixels of the output."""
        cfg = self.config
        self._check_latents(latents)
        _check_chunk(chunk)
        self._check_device(latents, "latents")
        latents = latents.to(self._dtype())
        z = self.denormalize(latents) if normalized else latents
        fs = cfg.spatial_factor
        if tile is not None and (z.shape[-2] * fs > tile or z.shape[-1] * fs > tile):
            if tile % fs or tile < 2 * fs:
                raise ValueError(f"tile must be a multiple of {fs} and at least {2 * fs} pixels, got {tile}")
            t_out = 1 + (z.shape[2] - 1) * cfg.temporal_factor
            lt = tile // fs
            video = _tiled(lambda part: self.decode(part, chunk=chunk, normalized=False), z, lt, max(1, lt // 4), fs,
                           cfg.in_channels, t_out)
        else:
            video = self._unfold(torch.cat(list(_chunked(self.decoder, z, chunk)), 2))
        return video.clamp(-1, 1)

    @torch.no_grad()
    def fit_latent_stats(self, videos) -> None:
        """Set the per-channel latent mean/std from an iterable of (B, 3, T, H, W) batches."""
        total, sq, n = 0.0, 0.0, 0
        for v in videos:
            z = self.encode(v, normalize=False).double()
            total = total + z.sum((0, 2, 3, 4))
            sq = sq + z.pow(2).sum((0, 2, 3, 4))
            n += z.numel() // z.shape[1]
        mean = total / n
        self.latent_mean.copy_(mean.float())
        self.latent_std.copy_((sq / n - mean**2).clamp_min(1e-12).sqrt().float())


def _check_chunk(chunk) -> None:
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive number of latent frames or None (all at once), got {chunk!r}")


def _chunked(net: nn.Module, x: Tensor, chunk: int | None):
    """Run `net` over time chunks of x (B, C, T, H, W), carrying the causal context between them."""
    if chunk is None or x.shape[2] <= chunk:
        yield net(x)
        return
    cache: Cache = {}
    for s in range(0, x.shape[2], chunk):
        yield net(x[:, :, s : s + chunk], cache)


def _tiled(fn, x: Tensor, tile: int, overlap: int, scale: float, out_channels: int, t_out: int) -> Tensor:
    """Apply `fn` to overlapping spatial tiles of x (tile and overlap in x's pixels) and blend
    the outputs, `scale` times x's size, with linear ramps across the overlaps."""
    b, _, _, h, w = x.shape
    stride = tile - overlap
    oh, ow = round(h * scale), round(w * scale)
    out = x.new_zeros(b, out_channels, t_out, oh, ow)
    weight = x.new_zeros(1, 1, 1, oh, ow)
    for y0 in _starts(h, tile, stride):
        for x0 in _starts(w, tile, stride):
            part = fn(x[..., y0 : y0 + tile, x0 : x0 + tile])
            ph, pw = part.shape[-2:]
            ov = round(overlap * scale)
            ramp = (_ramp(ph, ov, y0 > 0, y0 + tile < h)[:, None] * _ramp(pw, ov, x0 > 0, x0 + tile < w)[None, :]).to(part)
            oy, ox = round(y0 * scale), round(x0 * scale)
            out[..., oy : oy + ph, ox : ox + pw] += part * ramp
            weight[..., oy : oy + ph, ox : ox + pw] += ramp
    return out / weight


def _starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, stride)) + [n - tile]
    return sorted(set(starts))


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> Tensor:
    r = torch.ones(n)
    k = min(overlap, n)
    if k > 0:
        edge = (torch.arange(k, dtype=torch.float32) + 0.5) / k
        if rise:
            r[:k] = torch.minimum(r[:k], edge)
        if fall:
            r[n - k :] = torch.minimum(r[n - k :], edge.flip(0))
    return r


def kl_loss(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, 1)) per latent element, averaged."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


def gradient_loss(recon: Tensor, video: Tensor) -> Tensor:
    """L1 between the horizontal and vertical pixel differences of `recon` and `video` (B C T H W):
    the gradient difference loss. Pixel L1/L2 is dominated by flat background and pays little for
    rounding a small square's corners; this term pays for every edge and corner put wrong."""
    if recon.shape != video.shape or recon.ndim != 5:
        raise ValueError(f"recon and video must be (B, C, T, H, W) of one shape, got {tuple(recon.shape)} and {tuple(video.shape)}")
    dx = (recon.diff(dim=-1) - video.diff(dim=-1)).abs().mean()
    dy = (recon.diff(dim=-2) - video.diff(dim=-2)).abs().mean()
    return dx + dy


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


PRESETS: dict[str, VAEConfig] = {
    "tiny": VAEConfig(channels=(16, 32, 32)),  # tests
    "world": VAEConfig(channels=(32, 64, 128)),  # the default world model, 1.86M parameters
    "large": VAEConfig(channels=(128, 256, 512), blocks_per_level=2),  # for GPUs
}

__all__ = ["PRESETS", "VAEConfig", "VideoVAE", "count_parameters", "kl_loss"]
