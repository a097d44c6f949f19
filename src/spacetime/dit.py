"""The Diffusion Transformer on spacetime patches: predicts the flow velocity of video latents.

    latents (B, C, t, h, w) --patchify (pt, ph, pw)--> tokens (B, N, D), N = t/pt * h/ph * w/pw
    tokens --depth x [self-attention with 3D RoPE, cross-attention to text, MLP]--> velocity (B, C, t, h, w)

The timestep enters through adaLN-Zero modulation (shift, scale, gate around self-attention and
the MLP); the text through cross-attention to the encoder's tokens, padding masked. Positions are
3D rotary embeddings over (time, height, width) computed from each input's token grid, so one
model runs at any duration, resolution and aspect ratio. Timesteps follow flow.py: t in [0, 1],
1 = pure noise, x_t = (1 - t) x_0 + t eps, and the model predicts v = eps - x_0.

Conditioning by clean frames (image->video, extension, connecting): `cond_mask` (B, t) marks latent
frames given clean. Their tokens are modulated as at timestep 0 instead of the sample's timestep
and carry a learned condition embedding, as in Open-Sora 1.2 (x_mask / t0).

Guidance-distilled models (`guidance_embed`): the guidance scale enters beside the timestep, as a
second embedding added to it (FLUX.1-dev's guidance embedding), so that one pass predicts what
classifier-free guidance makes of two (train.py's `guidance_teacher` trains it).

Native size (Sora trains on videos at their own size): `forward_packed` takes samples of
different durations and sizes as one token sequence. Every token-wise layer runs on the packed
sequence at once; attention is block-diagonal (each sample attends to its own tokens and its own
text), computed block by block, which is the block-diagonal mask without its (sum N)^2 cost.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from spacetime.vae import count_parameters


@dataclass
class DiTConfig:
    """The DiT's architecture. The head width (hidden / heads) is split over the rotary axes
    (time, height, width) as `rope_dims`; it must be even and at least 6."""

    in_channels: int = 16  # latent channels of the VAE
    hidden: int = 384
    depth: int = 6
    heads: int = 6
    patch: tuple[int, int, int] = (1, 2, 2)  # (pt, ph, pw): latent frames, rows, columns per token
    text_dim: int = 384  # width of the text encoder's token embeddings (all-MiniLM-L6-v2: 384)
    mlp_ratio: float = 4.0
    rope_theta: float = 10000.0
    qk_norm: bool = True  # RMS norm of queries and keys per head: keeps attention logits bounded
    freq_dim: int = 256  # sinusoidal features of the timestep
    # the guidance scale as an input (a guidance-distilled model: one pass per step, not two)
    guidance_embed: bool = False

    def __post_init__(self) -> None:
        self.patch = tuple(int(p) for p in self.patch)
        if len(self.patch) != 3 or any(p < 1 for p in self.patch):
            raise ValueError(f"patch must be three positive sizes (pt, ph, pw), got {self.patch}")
        for name in ("in_channels", "hidden", "depth", "heads", "text_dim", "freq_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        d = self.hidden // self.heads
        if d % 2 or d < 6:
            raise ValueError(f"head width hidden/heads = {self.hidden}/{self.heads} = {d} must be even and >= 6, "
                             "to split into three even rotary sizes (time, height, width)")
        if self.freq_dim % 2:
            raise ValueError(f"freq_dim must be even, got {self.freq_dim}")
        if self.mlp_ratio <= 0 or int(self.hidden * self.mlp_ratio) < 1:
            raise ValueError(f"mlp_ratio must give a positive MLP width, got {self.mlp_ratio}")
        if self.rope_theta <= 1:
            raise ValueError(f"rope_theta must be > 1, got {self.rope_theta}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Channels of each head rotated by (time, height, width) positions, as in Wan: height and
        width get a third each (rounded down to even), time the rest."""
        s = 2 * (self.head_dim // 6)
        return self.head_dim - 2 * s, s, s

    def to_dict(self) -> dict:
        return {**asdict(self), "patch": list(self.patch)}


# ----------------------------------------------------------------------------------------------
# Embeddings of the timestep and of positions. Tokens are (B, N, D) throughout the blocks.

def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features (B, dim) of timesteps t (B,) in [0, 1], scaled by 1000 so that the
    frequencies span the range they were designed for (integer DDPM steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


# guidance scales enter timestep_embedding as g / GUIDANCE_UNIT: 1..10 spans the features that
# timesteps 0.1..1 do
GUIDANCE_UNIT = 10.0


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))  # (B, D)


def rope_frequencies(grid: tuple[int, int, int], dims: tuple[int, int, int], theta: float,
                     device: torch.device | None = None) -> Tensor:
    """Unit complex rotations (N, 1, head_dim/2) for the tokens of a (t, h, w) grid in (t h w) order:
    channel pairs [0, dims[0]) turn with the token's frame index, the next dims[1] with its row, the
    last dims[2] with its column. Computed from the grid, so any size works without a table."""
    angles = []
    for n, d in zip(grid, dims):
        freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float32, device=device) / d)  # (d/2,)
        angles.append(torch.outer(torch.arange(n, dtype=torch.float32, device=device), freqs))  # (n, d/2)
    t, h, w = grid
    angles = torch.cat([angles[0][:, None, None].expand(t, h, w, -1),
                        angles[1][None, :, None].expand(t, h, w, -1),
                        angles[2][None, None, :].expand(t, h, w, -1)], -1)  # (t, h, w, head_dim/2)
    return torch.polar(torch.ones_like(angles), angles).reshape(t * h * w, 1, -1)  # (N, 1, head_dim/2)


def apply_rope(x: Tensor, freqs: Tensor) -> Tensor:
    """Rotate channel pairs of x (B, N, H, d) by freqs (N, 1, d/2). One complex multiply: a single
    pass over x forward and backward, several times faster on CPU than the real (cos, sin) form
    with its strided halves (measured)."""
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (B, N, H, d/2) complex
    return torch.view_as_real(xc * freqs).flatten(-2)  # (B, N, H, d) float32


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x.float(), self.weight.shape, self.weight.float(), self.eps)  # float32 under autocast too


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)  # x * (1 + scale) + shift in one pass


# ----------------------------------------------------------------------------------------------
# The blocks. `runs` marks a packed sequence (B = 1) of several samples as runs of samples of one
# size, (samples, tokens each): then attention runs per run, as a dense batch of those samples,
# which is exactly block-diagonal attention without computing the masked-out blocks.


def _run_batches(x: Tensor, runs: list[tuple[int, int]]) -> list[Tensor]:
    """(1, H, sum c*t, d) -> per run (c, H, t, d), views."""
    return [u[0].unflatten(1, (c, t)).transpose(0, 1) for u, (c, t) in zip(x.split([c * t for c, t in runs], 2), runs)]


def _unrun(outs: list[Tensor]) -> Tensor:
    """per run (c, H, t, d) -> (1, H, sum c*t, d)."""
    return torch.cat([o.transpose(0, 1).flatten(1, 2) for o in outs], 1)[None]


class SelfAttention(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)  # one matmul for q, k and v
        self.q_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: Tensor, rope: Tensor, runs: list[tuple[int, int]] | None = None,
                packed_mask: Tensor | None = None, perturb: tuple[str, int] | None = None) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).unbind(2)  # 3 x (B, N, H, d), views
        q = apply_rope(self.q_norm(q), rope).to(v.dtype)
        k = apply_rope(self.k_norm(k), rope).to(v.dtype)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, N, d), views: SDPA takes strides
        if perturb is not None:  # the weak model of skip guidance (plain batches only)
            kind, per_frame = perturb
            if kind == "identity":  # each token attends to itself alone
                out = v
            else:  # "frame": each token attends within its own latent frame, nothing across time
                out = F.scaled_dot_product_attention(*(u.unflatten(2, (-1, per_frame)) for u in (q, k, v))).flatten(2, 3)
        elif runs is None or packed_mask is not None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed_mask)  # (B, H, N, d)
        else:
            out = _unrun([F.scaled_dot_product_attention(qi, ki, vi) for qi, ki, vi
                          in zip(*(_run_batches(u, runs) for u in (q, k, v)))])
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))  # (B, N, D)


class CrossAttention(nn.Module):
    """Tokens attend to text tokens. `text` (S, L, D) has one row per sample; `mask` (S, 1, 1, L) is
    True at real tokens, so padding never contributes."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.hidden, cfg.hidden)
        self.kv = nn.Linear(cfg.hidden, 2 * cfg.hidden)
        self.q_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.proj = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: Tensor, text: Tensor, mask: Tensor, runs: list[tuple[int, int]] | None = None,
                packed_mask: Tensor | None = None) -> Tensor:
        b, n, _ = x.shape
        s, length, _ = text.shape
        k, v = self.kv(text).view(s, length, 2, self.heads, -1).unbind(2)  # 2 x (S, L, H, d)
        q = self.q_norm(self.q(x).view(b, n, self.heads, -1)).to(v.dtype).transpose(1, 2)  # (B, H, N, d)
        k, v = self.k_norm(k).to(v.dtype).transpose(1, 2), v.transpose(1, 2)  # (S, H, L, d)
        if packed_mask is not None:  # every sample's text as one key sequence (1, H, S*L, d)
            k, v = (t.transpose(0, 1).reshape(1, self.heads, s * length, -1) for t in (k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=packed_mask)
        elif runs is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, d)
        else:
            first = [0, *itertools.accumulate(c for c, _ in runs)]
            out = _unrun([F.scaled_dot_product_attention(qi, k[a:b], v[a:b], attn_mask=mask[a:b])
                          for qi, a, b in zip(_run_batches(q, runs), first, first[1:])])
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))  # (B, N, D)


class DiTBlock(nn.Module):
    """Self-attention and MLP under adaLN-Zero modulation; cross-attention in between, unmodulated
    (the text is the same at every timestep) behind an affine LayerNorm, as in Wan."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttention(cfg)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        width = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, d))
        # this block's offset to the shared modulation (shift, scale, gate) x (attention, MLP)
        self.modulation = nn.Parameter(torch.zeros(6, d))

    def forward(self, x: Tensor, mod: Tensor, index: Tensor | None, rope: Tensor, text: Tensor,
                text_mask: Tensor, runs: list[tuple[int, int]] | None = None,
                packed_masks: tuple[Tensor, Tensor] | None = None, perturb: tuple[str, int] | None = None) -> Tensor:
        self_mask, cross_mask = packed_masks or (None, None)
        m = self.modulation + mod  # (S, 6, D): one row per (sample or timestep 0)
        m = m[:, None] if index is None else m[index]  # (B, 1, 6, D) per sample, or (B, N, 6, D) per token
        shift1, scale1, gate1, shift2, scale2, gate2 = m.unbind(2)  # (B, 1 or N, D)
        x = torch.addcmul(x, gate1, self.attn(modulate(self.norm1(x), shift1, scale1), rope, runs, self_mask, perturb))
        x = x + self.cross(self.norm2(x), text, text_mask, runs, cross_mask)
        return torch.addcmul(x, gate2, self.mlp(modulate(self.norm3(x), shift2, scale2)))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.hidden, elementwise_affine=False, eps=1e-6)
        self.adaLN = nn.Linear(cfg.hidden, 2 * cfg.hidden)
        self.linear = nn.Linear(cfg.hidden, math.prod(cfg.patch) * cfg.in_channels)

    def forward(self, x: Tensor, c: Tensor, index: Tensor | None) -> Tensor:
        m = self.adaLN(F.silu(c)).unflatten(1, (2, -1))  # (S, 2, D)
        m = m[:, None] if index is None else m[index]  # (B, 1 or N, 2, D)
        return self.linear(modulate(self.norm(x), m[:, :, 0], m[:, :, 1]))  # (B, N, pt*ph*pw*C)


# ----------------------------------------------------------------------------------------------

class DiT(nn.Module):
    """Text-conditioned Diffusion Transformer on spacetime patches of video latents.

    Set `model.grad_checkpointing = True` to recompute each block's activations in the backward
    pass (training at long durations / large sizes: memory per block instead of per model).
    """

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiTConfig()
        self.grad_checkpointing = False
        # packed batches: "loop" runs attention per run of same-size samples (one dense batched call
        # each), "mask" one call with block-diagonal masks; "auto" loops unless a GPU would launch
        # more than 8 calls (callers that order a batch by size get one run per size)
        self.packed_attention = "auto"
        self.x_embedder = nn.Linear(math.prod(cfg.patch) * cfg.in_channels, cfg.hidden)  # a strided Conv3d, as a matmul
        self.cond_embed = nn.Parameter(torch.zeros(cfg.hidden))  # added to tokens of frames given clean
        self.t_embedder = TimestepEmbedder(cfg.hidden, cfg.freq_dim)
        self.g_embedder = TimestepEmbedder(cfg.hidden, cfg.freq_dim) if cfg.guidance_embed else None
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim, eps=1e-6), nn.Linear(cfg.text_dim, cfg.hidden),
                                       nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden))
        # adaLN-single (PixArt-alpha, Wan): one projection of the timestep embedding shared by all
        # blocks plus a learned offset per block. Per-block projections would add 6*D^2 parameters
        # per block (37% of the model) for a function of one scalar.
        self.adaLN = nn.Linear(cfg.hidden, 6 * cfg.hidden)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # DiT's init: xavier linears, then zero every path into the residual stream that is gated
        # (adaLN, cross-attention output) and the output layer: each block starts as the identity
        # and the untrained model predicts exactly zero velocity.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.t_embedder.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        zeroed = [self.adaLN, self.final.adaLN, self.final.linear, *(b.cross.proj for b in self.blocks)]
        if self.g_embedder is not None:
            # a new guidance embedding adds nothing: a student made from a teacher starts as the
            # teacher's conditional model
            nn.init.normal_(self.g_embedder.mlp[0].weight, std=0.02)
            zeroed.append(self.g_embedder.mlp[2])
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # --- patches --------------------------------------------------------------------------------

    def token_grid(self, shape: tuple[int, ...] | torch.Size, what: str = "x") -> tuple[int, int, int]:
        """(t, h, w) of a latent -> its token grid; raises ValueError for sizes the patch does not divide."""
        t, h, w = shape
        pt, ph, pw = self.config.patch
        if t % pt or h % ph or w % pw:
            raise ValueError(f"{what}: latent frames, height and width must be multiples of the patch "
                             f"(pt, ph, pw) = {self.config.patch}, got (t, h, w) = {(t, h, w)}; "
                             f"expected (..., {self.config.in_channels}, k*{pt}, m*{ph}, n*{pw})")
        return t // pt, h // ph, w // pw

    def patchify(self, x: Tensor) -> Tensor:
        pt, ph, pw = self.config.patch
        return rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=pt, ph=ph, pw=pw)

    def unpatchify(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        pt, ph, pw = self.config.patch
        t, h, w = grid
        return rearrange(x, "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw)

    def rope(self, grid: tuple[int, int, int], device: torch.device) -> Tensor:
        return rope_frequencies(grid, self.config.rope_dims, self.config.rope_theta, device)

    def _mask_packed(self, device: torch.device, n_runs: int) -> bool:
        if self.packed_attention not in ("auto", "loop", "mask"):
            raise ValueError(f"packed_attention must be 'auto', 'loop' or 'mask', got {self.packed_attention!r}")
        # the loop skips the masked-out FLOPs; on a GPU many small calls cost more in launches
        return self.packed_attention == "mask" or (self.packed_attention == "auto" and device.type != "cpu"
                                                   and n_runs > 8)

    # --- the shared trunk -------------------------------------------------------------------------

    def _trunk(self, patches: Tensor, timestep: Tensor, text: Tensor, text_mask: Tensor, rope: Tensor,
               sample: Tensor | None, cond: Tensor | None, runs: list[tuple[int, int]] | None,
               perturb: tuple[str, int] | None = None, perturbed_blocks: tuple[int, ...] = (),
               guidance: Tensor | None = None) -> Tensor:
        """patches (B, N, pt*ph*pw*C) -> (B, N, pt*ph*pw*C). Modulation rows are the S samples'
        timesteps plus, when some tokens are conditions, a row S for timestep 0; `sample` (B, N)
        names each token's sample (None: token b's row is b, the plain batch)."""
        x = self.x_embedder(patches)  # (B, N, D)
        n_samples = timestep.shape[0]
        c = self.t_embedder(timestep)  # (S, D)
        if guidance is not None:
            c = c + self.g_embedder(guidance / GUIDANCE_UNIT)
        index = sample
        if cond is not None:
            x = x + cond.unsqueeze(-1).to(x.dtype) * self.cond_embed  # (B, N, D)
            c = torch.cat([c, self.t_embedder(timestep.new_zeros(1))])  # (S + 1, D): row S is timestep 0
            if index is None:
                index = torch.arange(n_samples, device=x.device)[:, None].expand(cond.shape)  # (B, N)
            index = torch.where(cond, n_samples, index)
        mod = self.adaLN(F.silu(c)).unflatten(1, (6, -1))  # (S or S+1, 6, D)
        text = self.text_proj(text)  # (S, L, D)
        mask = text_mask[:, None, None, :]  # (S, 1, 1, L)
        packed_masks = None
        if runs is not None and self._mask_packed(x.device, len(runs)):
            # block-diagonal masks: one attention call for the whole packed batch, not one per run
            keys = torch.arange(n_samples, device=x.device).repeat_interleave(text_mask.shape[1])  # (S*L,)
            packed_masks = ((sample[0][:, None] == sample[0][None, :])[None, None],  # (1, 1, N, N)
                            ((sample[0][:, None] == keys[None, :]) & text_mask.reshape(1, -1))[None, None])
        for i, block in enumerate(self.blocks):
            args = (x, mod, index, rope, text, mask, runs, packed_masks, perturb if i in perturbed_blocks else None)
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, *args, use_reentrant=False)
            else:
                x = block(*args)
        return self.final(x, c, index)

    def _prepare_guidance(self, guidance: Tensor | float | None, n: int, device: torch.device) -> Tensor | None:
        """(n,) guidance scales for a guidance-distilled model (None: 1, the conditional model);
        None for a model without the embedding, which refuses scales other than 1."""
        if self.g_embedder is None:
            if guidance is not None and not bool((torch.as_tensor(guidance) == 1).all()):
                raise ValueError("guidance: this model has no guidance embedding (DiTConfig.guidance_embed "
                                 "is False); guide it with two passes (sampling.guided_velocity) instead")
            return None
        guidance = torch.as_tensor(1.0 if guidance is None else guidance, dtype=torch.float32, device=device)
        if guidance.ndim == 0:
            guidance = guidance.expand(n)
        if guidance.shape != (n,):
            raise ValueError(f"guidance must be ({n},) (one scale per sample) or a scalar, got shape {tuple(guidance.shape)}")
        return guidance

    def _prepare_text(self, timestep: Tensor, text: Tensor, text_mask: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Checked (timestep (n,), text, bool text_mask), the text without its all-padding tail."""
        cfg = self.config
        if timestep.ndim == 0:
            timestep = timestep.expand(n)
        if timestep.shape != (n,):
            raise ValueError(f"timestep must be ({n},) (one per sample) or a scalar, got shape {tuple(timestep.shape)}")
        if text.ndim != 3 or text.shape[0] != n or text.shape[2] != cfg.text_dim:
            raise ValueError(f"text must be ({n}, L, {cfg.text_dim}), got shape {tuple(text.shape)}")
        if text_mask.shape != text.shape[:2]:
            raise ValueError(f"text_mask must be {tuple(text.shape[:2])} (True at real tokens), "
                             f"got shape {tuple(text_mask.shape)}")
        if text_mask.is_floating_point():
            raise ValueError(f"text_mask must be bool (True at real tokens), got {text_mask.dtype}")
        text_mask = text_mask.bool()
        if not text_mask.any(1).all():
            raise ValueError("text_mask has a row with no real token; every prompt, the empty one too, must "
                             "keep at least one token (the encoder's special tokens)")
        # trailing columns that are padding in every row change nothing (masked keys get no
        # weight) but cost their projections and attention: dropping them makes the default
        # clip 12% faster (prompts are padded to 256 tokens; docs/benchmarks.md)
        used = int(text_mask.any(0).nonzero().max()) + 1
        return timestep, text[:, :used], text_mask[:, :used]

    # --- entry points ---------------------------------------------------------------------------------

    def forward(self, x: Tensor | list[Tensor], timestep: Tensor, text: Tensor, text_mask: Tensor,
                cond_mask: Tensor | list[Tensor] | None = None, perturbed_blocks: tuple[int, ...] = (),
                perturbation: str = "frame", guidance: Tensor | float | None = None) -> Tensor | list[Tensor]:
        """Velocity (B, C, t, h, w) at noisy latents x (B, C, t, h, w) and timesteps (B,) in [0, 1]
        (1 = noise), given text (B, L, text_dim) with text_mask (B, L) (True = real token).
        cond_mask (B, t) bool marks latent frames given clean; with pt > 1 a token is a condition
        when all its frames are. A list of latents of any sizes runs as `forward_packed` — through
        here, so DDP's and FSDP's forward hooks see it.

        perturbed_blocks: blocks whose self-attention is weakened, the model that spatiotemporal
        skip guidance steers away from (sampling.py): `perturbation` "frame" (attention within each
        token frame only: nothing moves information across time) or "identity" (each token attends
        to itself alone, perturbed-attention guidance's weak model).

        guidance (B,) or a scalar: the guidance scale a guidance-distilled model (`guidance_embed`)
        predicts for; None is 1, the conditional prediction (the only scale a model without the
        embedding takes)."""
        if isinstance(x, (list, tuple)):
            if perturbed_blocks:
                raise ValueError("perturbed_blocks apply to a plain batch (B, C, t, h, w), not a packed list")
            return self.forward_packed(list(x), timestep, text, text_mask, cond_mask, guidance)
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (B, {cfg.in_channels}, t, h, w), got shape {tuple(x.shape)}")
        b = x.shape[0]
        grid = self.token_grid(x.shape[2:])
        timestep, text, text_mask = self._prepare_text(timestep, text, text_mask, b)
        guidance = self._prepare_guidance(guidance, b, x.device)
        cond = None
        if cond_mask is not None:
            if cond_mask.shape != (b, x.shape[2]) or cond_mask.dtype != torch.bool:
                raise ValueError(f"cond_mask must be bool ({b}, {x.shape[2]}) (one flag per latent frame), "
                                 f"got {cond_mask.dtype} {tuple(cond_mask.shape)}")
            t, h, w = grid
            cond = cond_mask.reshape(b, t, -1).all(-1)[:, :, None].expand(b, t, h * w).reshape(b, -1)  # (B, N)
        if perturbation not in ("frame", "identity"):
            raise ValueError(f"perturbation must be 'frame' or 'identity', got {perturbation!r}")
        bad = [i for i in perturbed_blocks if not -cfg.depth <= i < cfg.depth]
        if bad:
            raise ValueError(f"perturbed_blocks: block {bad[0]} is not one of the model's {cfg.depth} "
                             f"(0..{cfg.depth - 1}, or -1 for the last)")
        perturbed_blocks = tuple(i % cfg.depth for i in perturbed_blocks)
        perturb = (perturbation, grid[1] * grid[2])  # tokens are ordered (t, h, w): a frame is h*w in a row
        out = self._trunk(self.patchify(x), timestep, text, text_mask, self.rope(grid, x.device), None, cond, None,
                          perturb, perturbed_blocks, guidance)
        return self.unpatchify(out, grid).to(x.dtype)  # (B, C, t, h, w)

    def forward_packed(self, latents: list[Tensor], timestep: Tensor, text: Tensor, text_mask: Tensor,
                       cond_masks: list[Tensor] | None = None, guidance: Tensor | float | None = None) -> list[Tensor]:
        """Native-size batch: latents [(C, t_i, h_i, w_i)] of any sizes -> velocities of the same
        shapes, as one packed token sequence. Equals running each sample alone."""
        cfg = self.config
        n = len(latents)
        if n == 0:
            raise ValueError("latents is empty")
        grids = []
        for i, z in enumerate(latents):
            if z.ndim != 4 or z.shape[0] != cfg.in_channels:
                raise ValueError(f"latents[{i}] must be ({cfg.in_channels}, t, h, w), got shape {tuple(z.shape)}")
            grids.append(self.token_grid(z.shape[1:], f"latents[{i}]"))
        timestep, text, text_mask = self._prepare_text(timestep, text, text_mask, n)
        device = latents[0].device
        guidance = self._prepare_guidance(guidance, n, device)
        segments = [math.prod(g) for g in grids]
        # runs of consecutive samples of one size are patchified (and unpatchified) as one batch:
        # a kernel launch per sample would bound a large GPU batch (callers may order by size)
        runs, a = [], 0
        for i in range(1, n + 1):
            if i == n or latents[i].shape != latents[a].shape:
                runs.append((a, i))
                a = i
        patches = torch.cat([self.patchify(torch.stack(latents[a:b])).flatten(0, 1) for a, b in runs])[None]
        sample = torch.repeat_interleave(torch.arange(n, device=device), torch.tensor(segments, device=device))[None]
        cond = None
        if cond_masks is not None:
            if len(cond_masks) != n:
                raise ValueError(f"cond_masks must have one mask per latent ({n}), got {len(cond_masks)}")
            for i, (m, z) in enumerate(zip(cond_masks, latents)):
                if m.shape != (z.shape[1],) or m.dtype != torch.bool:
                    raise ValueError(f"cond_masks[{i}] must be bool ({z.shape[1]},), got {m.dtype} {tuple(m.shape)}")
            parts = []
            for a, b in runs:
                t, h, w = grids[a]
                m = torch.stack(cond_masks[a:b]).reshape(b - a, t, -1).all(-1)  # (b, t): token frames given
                parts.append(m[:, :, None].expand(b - a, t, h * w).reshape(-1))
            cond = torch.cat(parts)[None]  # (1, sum N_i)
        tables = {g: self.rope(g, device) for g in set(grids)}  # a batch repeats a few sizes
        rope = torch.cat([tables[g] for g in grids])  # (sum N_i, 1, head_dim/2)
        out = self._trunk(patches, timestep, text, text_mask, rope, sample, cond,
                          [(b - a, segments[a]) for a, b in runs], guidance=guidance)  # (1, sum N_i, .)
        outs = out[0].split([sum(segments[a:b]) for a, b in runs])
        return [v.to(latents[a].dtype) for (a, b), o in zip(runs, outs)
                for v in self.unpatchify(o.unflatten(0, (b - a, -1)), grids[a]).unbind(0)]


PRESETS: dict[str, DiTConfig] = {
    "tiny": DiTConfig(hidden=64, depth=2, heads=2),  # tests and smoke runs
    "world": DiTConfig(hidden=384, depth=6, heads=6, patch=(1, 2, 2)),  # the default world model
    "base": DiTConfig(hidden=768, depth=12, heads=12),  # for GPUs
    "large": DiTConfig(hidden=1024, depth=24, heads=16),  # for GPUs
}

__all__ = ["PRESETS", "DiT", "DiTConfig", "count_parameters"]
