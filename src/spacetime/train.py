"""Training: one loop shape for the VAE and the DiT, with checkpoints and resume.

    spacetime train-vae --config configs/vae-world.yaml [--key value ...]
    spacetime train --config configs/dit-world.yaml [--key value ...]

Every start resumes from the newest complete checkpoint in `run_dir`. The data stream is indexed
(`WorldDataset(start=...)`, a seeded permutation per epoch for folders), so resuming continues
with exactly the next sample. Metrics go to `run_dir/metrics.jsonl` (and TensorBoard, if it is
installed); progress to a tqdm bar.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from spacetime import flow, sampling
from spacetime.atomic import atomic_write_text
from spacetime.checkpoint import (
    check_checkpoint,
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    read_optimizer_state,
    remove_partial_saves,
    rng_state,
    save_checkpoint,
    save_model,
)
from spacetime.config import flatten, to_dict
from spacetime.data.streams import DataConfig, dit_items, encode_videos, video_batches
from spacetime.dit import DiT, DiTConfig
from spacetime.vae import VAEConfig, VideoVAE, count_parameters, gradient_loss, kl_loss

log = logging.getLogger(__name__)

# the world VAE trained by us (configs/vae-world.yaml), shipped inside the package
SHIPPED_VAE = Path(__file__).parent / "models" / "world" / "vae"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    decay: str = "cosine"  # or "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.decay not in ("cosine", "constant"):
            raise ValueError(f"optim.decay must be 'cosine' or 'constant', got {self.decay!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"optim.lr must be a finite number > 0, got {self.lr}")
        # a negative clip norm would flip the gradients (ascent) and 0 would zero them
        if not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"optim.grad_clip must be a finite number > 0, got {self.grad_clip}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"optim.weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}")


@dataclass
class TrainVAEConfig:
    model: VAEConfig = field(default_factory=VAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 4
    max_steps: int = 1000
    kl_weight: float = 1e-6
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    gradient_weight: float = 0.0  # the gradient difference loss (vae.gradient_loss): sharper edges and corners
    # "bf16": autocast the forward pass (1.4-1.7x faster on CPUs with AVX512-BF16 or AMX, and on GPUs)
    precision: str = "fp32"
    run_dir: str = "runs/vae"
    log_every: int = 10
    save_every: int = 250
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    latent_stats_batches: int = 8
    # fine-tuning: start from a trained VAE's weights ("shipped": the package's world VAE), and
    # train the decoder alone (the encoder, its latents and their statistics stay fixed)
    init_from: str | None = None
    freeze_encoder: bool = False
    # decoder noise augmentation (with freeze_encoder): each clip's latents get Gaussian noise of a
    # level drawn in [0, latent_noise] times the latents' spread before decoding, so the decoder
    # learns to draw clean clips from a DiT's imprecise latents (VideoVAE.forward)
    latent_noise: float = 0.0
    resume: str | None = None  # a checkpoint directory to resume from (default: the newest complete one in run_dir)

    def __post_init__(self) -> None:
        _expand_home(self)
        for name in ("batch_size", "max_steps", "log_every", "save_every", "latent_stats_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        _check_device(self.device)
        _check_run_values(self)
        for name in ("kl_weight", "l1_weight", "l2_weight", "gradient_weight", "latent_noise"):
            w = getattr(self, name)
            if not (w >= 0 and math.isfinite(w)):
                raise ValueError(f"{name} must be a finite number >= 0, got {w}")
        if self.freeze_encoder and not self.init_from:
            raise ValueError("freeze_encoder needs init_from (a trained VAE to fine-tune the decoder of)")
        if self.latent_noise and not self.freeze_encoder:
            # its scale is the latents' spread, which an encoder in training would be free to grow
            raise ValueError("latent_noise needs freeze_encoder (noise in units of fixed latents' spread)")
        # refused here, naming the keys, not at the first step (after run_dir is made) by the VAE's
        # "height and width must be multiples of 256"
        ft, fs, d = self.model.temporal_factor, self.model.spatial_factor, self.data
        if d.height % fs or d.width % fs:
            raise ValueError(f"data.height x data.width {d.height}x{d.width} must be multiples of {fs} (the VAE's "
                             f"downsampling: model.spatial_patch {self.model.spatial_patch}, model.channels {list(self.model.channels)})")
        if (d.num_frames - 1) % ft:
            raise ValueError(f"data.num_frames {d.num_frames} must be 1 + {ft}k (the VAE's model.temporal_factor)")


MAX_SEED = 2**40  # seed * 1_000_003 + ...: the per-sample and per-step generators' seeds stay within int64


def _expand_home(cfg: TrainVAEConfig | TrainDiTConfig) -> None:
    """`~/runs/vae` for the path keys: a YAML file's value (or `--run_dir=~/x`, which the shell leaves
    as it is) made a folder named `~` in the working directory."""
    for name in ("run_dir", "resume", "init_from", "vae", "text_encoder", "guidance_teacher"):
        value = getattr(cfg, name, None)
        if isinstance(value, str) and value.startswith("~"):
            setattr(cfg, name, os.path.expanduser(value))


def _check_run_values(cfg: TrainVAEConfig | TrainDiTConfig) -> None:
    """Checks both trainings share: values torch or the data stream would take only to fail later,
    after the run's directory is made (a traceback from set_num_threads, "Overflow when unpacking
    long long", numpy's "expected non-negative integer"), or take in silence."""
    if not cfg.run_dir.strip():  # Path("") is the current directory: the run would spill into it
        raise ValueError("run_dir is empty; give the run's directory")
    if cfg.threads < 0:
        raise ValueError(f"threads must be >= 0 (0: torch's default), got {cfg.threads}")
    if cfg.keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints must be >= 0 (0: keep every checkpoint), got {cfg.keep_checkpoints}")
    for name, seed in (("seed", cfg.seed), ("data.seed", cfg.data.seed)):
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"{name} must be in [0, 2**40], got {seed}")
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ValueError(f"data.max_bad_fraction is a share of the videos in [0, 1], got {cfg.data.max_bad_fraction}")


def _check_device(spec: str) -> None:
    if spec != "auto" and not (spec == "cpu" or spec == "cuda" or re.fullmatch(r"cuda:\d+", spec)):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {spec!r}")


def warn_slow_bfloat16(precision: str, device: torch.device, main_rank: bool = True) -> None:
    """bf16 autocast on a CPU that emulates bfloat16 (AVX2) runs many times slower than fp32 (the
    factor-4 VAE recipe there: 41 s a step against 2.5 s): said at the start, not found out hours later."""
    from spacetime.pipeline import fast_bfloat16

    if precision == "bf16" and main_rank and not fast_bfloat16(device):
        log.warning("precision bf16 on a CPU without bfloat16 arithmetic (%s): each step will run many times "
                    "slower than in fp32; pass --precision fp32", torch.backends.cpu.get_cpu_capability())


def resolve_device(spec: str) -> torch.device:
    """"cpu", "cuda", "cuda:N", or "auto" (the GPU when there is one)."""
    _check_device(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but torch sees no CUDA GPU (use device: cpu or auto)")
    return device


def attention_for_changing_shapes(device: torch.device) -> None:
    """Use flash / memory-efficient attention, not cuDNN's, for training on a GPU.

    A packed training batch changes shape every step (how many clips of each size, how long the
    longest caption is), and cuDNN's attention builds an execution graph on the host for each new
    shape. On an H200 (torch 2.11) a training step of batch 128 took 0.8 s, against 0.08 s for one
    batch repeated (bench/train_phases.py); cProfile put the host's time inside
    scaled_dot_product_attention and its backward, which is what per-shape graph building looks
    like (docs/benchmarks.md). Flash and memory-efficient kernels take any shape at no host cost:
    without cuDNN's the step on a changing batch took 114 ms against 1,141 ms (H200, 2026-11-27)."""
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)


def init_distributed(device_spec: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun (WORLD_SIZE > 1) joins the process group:
    NCCL with one GPU per local rank, gloo on CPUs. A plain run is rank 0 of 1."""
    import os

    import torch.distributed as dist

    device = resolve_device(device_spec)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Imported after the group exists, this module (DDP and FSDP import it through
        # torch._dynamo) keeps the default group as an argument default, so destroy_process_group
        # cannot free it and gloo's threads run on into interpreter exit, where a rank now and
        # then aborted ("terminate called without an active exception"). Imported first, its
        # defaults are None.
        from torch.distributed.nn import functional  # noqa: F401

        # keys under this restart's own prefix: after `torchrun --max-restarts` brings the ranks
        # back, none of them reads a dead rank's address left in the store by the last attempt
        store, rank, size = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"spacetime/restart-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank, world_size=size)
    return dist.get_rank(), dist.get_world_size(), device


def leave_distributed() -> None:
    """Leave the process group `init_distributed` joined, if any, so that gloo's threads are
    joined here and not torn down at interpreter exit (a rank aborted there after a finished run:
    SIGABRT, "terminate called without an active exception", which failed the torchrun)."""
    import gc
    import sys

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if "torch.distributed.tensor" in sys.modules:
        _clear_dtensor_caches()
        gc.collect()  # the FSDP state left in reference cycles holds the mesh too
    dist.destroy_process_group()


def _clear_dtensor_caches() -> None:
    """FSDP2's DTensors leave their device mesh in DTensor's module-level caches, and a mesh holds
    the process group, which then outlives destroy_process_group with gloo's threads running. These
    are torch internals (2.13); one that a later torch renames is skipped, and
    tests/test_distributed.py's thread check says so."""
    from torch.distributed.tensor import _collective_utils, _redistribute, debug

    for clear in (getattr(debug, "_clear_sharding_prop_cache", None),
                  getattr(_redistribute, "clear_redistribute_planner_cache", None),
                  getattr(getattr(_redistribute, "_gen_transform_infos", None), "cache_clear", None),
                  getattr(getattr(getattr(_collective_utils, "MeshTopoInfo", None), "build_from_mesh", None),
                          "cache_clear", None)):
        if clear is not None:
            clear()


def _ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def vae_path(spec: str) -> Path:
    """A VAE model directory; "shipped": the world VAE inside the package."""
    return SHIPPED_VAE if spec == "shipped" else Path(spec)


def load_vae(spec: str, key: str) -> VideoVAE:
    """The VAE model directory `spec` names, for the config key `key` (`vae`, `init_from`): another
    kind of folder (a text-to-video pipeline, a training checkpoint) or damaged files are an error
    naming the key, not a KeyError or TypeError from inside the loading."""
    from safetensors import SafetensorError

    path = vae_path(spec)
    try:
        return VideoVAE.from_pretrained(path)
    except (ValueError, OSError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        try:  # another kind of folder is named as what it is, before what failed in reading it as a VAE
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        if isinstance(config, dict) and config.get("format") == "spacetime-pipeline":
            hint = f"a text-to-video model folder, not a VAE (its VAE is {path / 'vae'})"
        elif (path / "state.json").is_file():
            hint = "a training checkpoint, not a VAE model folder (a VAE run's model is run_dir/model)"
        elif isinstance(e, (ValueError, OSError)):  # a missing or incomplete directory, unreadable files
            hint = str(e)
        else:
            hint = f"not a VAE model folder, or a damaged one ({type(e).__name__}: {e})"
        raise ValueError(f"{key} {spec}: {hint}"[:500]) from None


def parallelize(model: DiT, ema: DiT, cfg: TrainDiTConfig, device: torch.device, world: int) -> torch.nn.Module:
    """Ready a DiT for training, in this order: activation checkpointing (inside each block),
    torch.compile of each block (optional), then the data-parallel wrapper — DDP around the
    whole model, or FSDP2's fully_shard on each block and then the root (and the same sharding on
    the EMA copy, so its update stays shard by shard). Returns the module to call."""
    model.grad_checkpointing = cfg.grad_checkpointing
    if cfg.compile:
        for block in model.blocks:
            block.compile()
    if world == 1:
        return model
    if cfg.parallel == "ddp":
        return _ddp(model, device)
    from torch.distributed.fsdp import fully_shard

    for m in (model, ema):
        for block in m.blocks:
            fully_shard(block)
        fully_shard(m)
    return model


def _by_name(osd: dict, names: list[str]) -> dict:
    """Optimizer state keyed by parameter index (a checkpoint's) -> by parameter name (FSDP's)."""
    return {"state": {names[i]: st for i, st in osd["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in osd["param_groups"]]}


def _by_index(osd: dict, names: list[str]) -> dict:
    if not osd:  # ranks other than 0 get nothing back from a full, CPU-offloaded gather
        return osd
    index = {n: i for i, n in enumerate(names)}
    return {"state": {index[n]: st for n, st in osd["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in osd["param_groups"]]}


def _optimizer_from_config(opt: torch.optim.Optimizer, cfg: OptimConfig) -> None:
    """After a resume's optimizer state is loaded: its hyperparameters are the run's config's.
    `load_state_dict` brings back the saved param_groups, so a resume with another
    optim.weight_decay or optim.betas trained on with the old values in silence, while the run's
    config.json said the new ones (the change is logged by checkpoint_to_resume; the learning rate
    is set at every step from optim.*)."""
    for g in opt.param_groups:
        g["weight_decay"], g["betas"] = cfg.weight_decay, tuple(cfg.betas)


def _step_of(checkpoint: Path) -> int:
    try:
        return int(json.loads((checkpoint / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        m = re.fullmatch(r"step-(\d+)", checkpoint.name)
        return int(m.group(1)) if m else -1


def _check_run_config(run_dir: Path) -> None:
    """A run_dir with a config.json that no training run wrote (a trained model's folder given as
    run_dir, another tool's project) is refused: the start would write over that file."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        why = f"not JSON ({type(e).__name__}: {e})"
    else:
        if isinstance(config, dict) and "max_steps" in config and "run_dir" in config:
            return
        why = ("a trained model's, not a training run's" if isinstance(config, dict) and ("model" in config or "format" in config) else
               "not a training run's config")
    raise ValueError(f"run_dir {run_dir}: its config.json is {why}"[:400] + "; the run would write over it: give "
                     "another run_dir (or remove that file)")


def checkpoint_to_resume(run_dir: Path, resume: str | None, config: dict | None = None,
                         ema: bool = False, main_rank: bool = True) -> Path | None:
    """`resume` (which must be a complete checkpoint: never a silent fresh start), else the
    newest complete checkpoint in run_dir, else None. A run that has gone past `resume` (stopped
    and restarted with the same command) continues from its own newest checkpoint, with a warning:
    resuming from `resume` again would throw that work away. The checkpoint's files are checked,
    and so is its model config against `config` (the run's), before anything is loaded; any other
    key the run changes is logged (`main_rank`)."""
    # was "[Errno 17] File exists" at the first save, "[Errno 20] Not a directory" at the first samples
    for d in (run_dir, *(run_dir / name for name in ("checkpoints", "samples", "model"))):
        if d.exists() and not d.is_dir():
            raise ValueError(f"run_dir: {d} is a file, not a directory; give another run_dir")
    _check_run_config(run_dir)
    latest = latest_checkpoint(run_dir)
    if not resume:  # `--resume ""` too: no path given ("an incomplete checkpoint" named "" before)
        path = latest
    else:
        path = Path(resume)
        given = _step_of(path) if path.is_dir() else -1
        gone_past = latest is not None and _step_of(latest) > given and latest.resolve() != path.resolve()
        damage = None
        if gone_past:
            try:
                check_checkpoint(latest, ema)
            except ValueError as e:  # what the error for a damaged newest checkpoint told to do
                damage = str(e)
        if gone_past and (damage is None or not (path / "COMPLETE").is_file()):
            log.warning("resume %s: ignored: this run has gone past it, to %s (the same command resumes the run); "
                        "to start again from %s, remove the newer checkpoints", resume, latest.name, resume)
            path = latest
        elif gone_past:
            log.warning("resume %s: the run's newest checkpoint %s is damaged (%s): resuming from %s as given; "
                        "the checkpoints after it are set aside", resume, latest, damage, resume)
        elif not path.is_dir():
            raise ValueError(f"resume {resume}: " + ("a file, not a checkpoint directory" if path.exists() else
                                                     "no such checkpoint directory"))
        elif (path / "checkpoints").is_dir() or (path / "model.safetensors").is_file() and not (path / "state.json").exists():
            # a run's folder or a trained model's, given for one of its checkpoints
            found = latest_checkpoint(path) if (path / "checkpoints").is_dir() else None
            what = (f"a run directory, not a checkpoint: its newest is --resume {found}" if found else
                    "a run directory with no complete checkpoint" if (path / "checkpoints").is_dir() else
                    "a trained model, not a training checkpoint (init_from starts a new run from a trained model)")
            raise ValueError(f"resume {resume}: {what}")
        elif not (path / "COMPLETE").is_file():
            raise ValueError(f"resume {resume}: an incomplete checkpoint (no COMPLETE marker); refusing to resume "
                             "from it")
    if path is None:
        return None
    if config is not None and (path / "state.json").is_file():
        try:
            saved = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            saved = None  # named by check_checkpoint below
        theirs = _run_kind(saved) if isinstance(saved, dict) else None
        if theirs is not None and theirs != _run_kind(config):
            # named before its files are checked: a DiT run pointed at a VAE run's run_dir was told
            # its ema.safetensors was "damaged or missing", and to resume from an older VAE checkpoint
            raise ValueError(f"checkpoint {path} is a {theirs} training run's; this is a {_run_kind(config)} run: "
                             "give it another run_dir")
    try:
        saved = check_checkpoint(path, ema)
    except ValueError as e:
        older = [c for c in complete_checkpoints(run_dir) if _step_of(c) < _step_of(path)]
        hint = f"; resume from an older one with --resume {older[-1]}" if older else ""
        raise ValueError(f"checkpoint {path} cannot be resumed: {e}{hint}") from None
    if config is not None and saved.get("model") != config.get("model"):
        old, new = saved.get("model") or {}, config.get("model") or {}
        diff = ", ".join(f"model.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                         if old.get(k) != new.get(k))
        raise ValueError(f"checkpoint {path} was saved with another model ({diff}); resume with the same model "
                         "config, or give another run_dir (init_from starts a new run from a trained model)")
    if config is not None and main_rank:
        _note_config_changes(path, saved, config)
    return path


# what a resume may change without changing what is trained: where, how fast, what is logged and kept
_RUNTIME_KEYS = ("resume", "run_dir", "threads", "device", "compile", "grad_checkpointing", "log_every", "save_every",
                 "keep_checkpoints", "sample_every", "sample_prompts", "sample_steps", "guidance_scale")


# checked on their own (check_resumed_encoders; train_vae's freeze_encoder), or the resume's own path
_NAMED_ELSEWHERE = ("resume", "vae", "text_encoder", "text_max_length", "freeze_encoder")


def _note_config_changes(checkpoint: Path, saved: dict, config: dict) -> None:
    """One line naming each key a resume changes, old -> new: config.json is rewritten with the new
    values at the start, so the log is where the old ones are kept (a changed seed, data.seed or
    max_steps went unsaid). A warning when what is trained changes, a note when only how it runs."""
    old, new = flatten(saved), flatten(json.loads(json.dumps(config)))  # tuples as the saved JSON has them: lists
    changed = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k) and k not in _NAMED_ELSEWHERE]
    if not changed:
        return
    says = ", ".join(f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}" for k in changed)
    if all(k in _RUNTIME_KEYS for k in changed):
        log.info("resuming from %s with %s", checkpoint, says)
    else:
        log.warning("resuming from %s with a changed config: %s (this run's config.json has the new values)",
                    checkpoint, says)


def _in_run(checkpoint: Path, run_dir: Path) -> bool:
    return checkpoint.parent.resolve() == (run_dir / "checkpoints").resolve()


def _run_kind(config: dict) -> str:
    """What a run's config trains: "DiT" (`spacetime train`) or "VAE" (`spacetime train-vae`)."""
    return "DiT (spacetime train)" if "text_encoder" in config else "VAE (spacetime train-vae)"


def _finished(run_dir: Path, step: int, max_steps: int, main_rank: bool) -> bool:
    """A run resumed at or past max_steps whose model is written: nothing to do (not a re-save)."""
    done = step >= max_steps and (run_dir / "model" / "COMPLETE").is_file()
    if done and main_rank:
        log.info("%s is trained to step %d (max_steps %d): nothing to do; its model is %s", run_dir, step, max_steps,
                 run_dir / "model")
    elif step > max_steps and main_rank:  # the model written is the checkpoint's, not one of max_steps steps
        log.warning("resumed at step %d, past max_steps %d: no step is trained; the model written is step %d's "
                    "(training does not go back: to stop earlier, resume from an older checkpoint)",
                    step, max_steps, step)
    return done


def _start_run(run_dir: Path, config: dict, main_rank: bool, world: int, step: int) -> None:
    """Once every check of a start has passed: make the run's directory, write its config.json and
    sweep what killed runs left half-written. A start that fails its checks thus leaves an
    existing run's config.json as it was, and no new directory behind. Checkpoints after the
    resumed `step` (there are some only when `--resume` went back past a damaged newest one) are
    renamed `set-aside-step-*`: never resumed from again, never pruned in place of the run's own."""
    import torch.distributed as dist

    if main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2))  # a full disk keeps the old one
        for p in remove_partial_saves(run_dir):
            log.info("removed %s, half-written by a run that was killed", p)
        for p in complete_checkpoints(run_dir):
            if _step_of(p) > step:
                aside = p.with_name(f"set-aside-{p.name}")
                while aside.exists():
                    aside = aside.with_name(aside.name + "-")
                p.rename(aside)
                log.warning("%s is after the resumed step %d: renamed %s (remove it when it is not wanted)",
                            p, step, aside.name)
    if world > 1:  # no rank writes into run_dir (a cache entry) while rank 0 sweeps it
        dist.barrier()


def _note_world_change(state: dict, was: int | None, now: int, world: int, main_rank: bool) -> None:
    """A resumed run on another number of ranks (or with another batch): a warning when the global
    batch `was` (per optimizer step) is now `now`, else a note of the new world size."""
    if not main_rank:
        return
    if was is not None and was != now:
        log.warning("resuming a run saved on %d rank(s) on %d: the global batch is now %d (was %d)",
                    state.get("world_size", 1), world, now, was)
    elif state.get("world_size", 1) != world:
        log.info("resuming a run saved on %d rank(s) on %d (global batch %d)", state.get("world_size", 1), world, now)


class StopFlag:
    """SIGTERM (preemption, `kill`) and Ctrl-C (SIGINT) set a flag; the loop checkpoints at the next
    step boundary and stops, instead of dying mid-step (a KeyboardInterrupt between the optimizer's
    update and the step count would save a step's weights under the step before, and the resumed
    run would apply that update twice). A second Ctrl-C stops at once, without a checkpoint; one
    within a second of the first is the same keypress delivered twice (torchrun forwards it)."""

    def __init__(self):
        import os
        import signal
        import threading

        self.set = False
        self.name: str | None = None  # the signal that set it
        self.code = 143  # the exit status, 128 + the signal, as the shell reports it
        self._first_int = None
        self._old = {}
        self._pid = os.getpid()  # DataLoader workers fork with this handler: the signal is the main process's
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        import os
        import signal

        if os.getpid() != self._pid:  # a worker: a Ctrl-C reaches the whole process group, which said it thrice
            return
        if signum == signal.SIGINT:
            now = time.monotonic()
            if self._first_int is not None and now - self._first_int > 1.0:
                raise KeyboardInterrupt
            if self._first_int is None:
                self._first_int = now
                os.write(2, b"\nCtrl-C: stopping after this step with a checkpoint (Ctrl-C again: stop now, without one)\n")
        if not self.set:
            self.name, self.code = ("Ctrl-C", 130) if signum == signal.SIGINT else ("SIGTERM", 143)
        self.set = True

    def stopped(self, step: int) -> TrainingStopped:
        why = self.name or "a signal to another rank"
        return TrainingStopped(f"stopped by {why} at step {step}; checkpoint saved, run the same command to resume",
                               self.code)

    def restore(self) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


class TrainingStopped(Exception):
    """Training stopped on SIGTERM or Ctrl-C after saving a checkpoint; the same command resumes it.
    `code`: the exit status (143 SIGTERM, 130 Ctrl-C)."""

    def __init__(self, message: str, code: int = 143):
        super().__init__(message)
        self.code = code


class TrainingDiverged(RuntimeError, ValueError):
    """More than max_nonfinite_steps steps in a row had a non-finite loss or gradients. A ValueError
    too, so `spacetime train` reports it in one line naming the step (it was a traceback), exit 1."""


def sample_generators(seed: int, indices: list[int]) -> list[torch.Generator]:
    """One generator per sample, seeded by its index in the run's data stream: what a sample
    draws (prompt dropout, timestep, noise, conditions) is the same whichever rank, batch or
    resume it lands in."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * i + 1) for i in indices]


def _phase_clock(device: torch.device):
    """A function returning the seconds since its last call; on a GPU it waits for queued work
    first, so each phase is charged its own kernels."""
    last = time.perf_counter()

    def tick() -> float:
        nonlocal last
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        dt, last = now - last, now
        return dt

    return tick


def lr_at(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Linear warm-up, then constant or cosine down to min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of videos in [-1, 1], over all pixels."""
    mse = F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


class _Logger:
    def __init__(self, run_dir: Path, resume_step: int):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():  # drop lines a crashed run wrote after its last checkpoint, and one it cut short
            keep = []
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        keep.append(line)
                except ValueError:
                    pass
            # atomically: a full disk or a kill mid-write truncated the run's whole metrics history
            atomic_write_text(self.path, "".join(line + "\n" for line in keep))
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run drops the events a stopped one logged after its checkpoint
            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
        except Exception:  # tensorboard is optional
            log.info("tensorboard not installed; metrics go to %s only", self.path)

    def log(self, step: int, metrics: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def train_vae(cfg: TrainVAEConfig, progress: bool = True) -> Path:
    """Train (or resume) a VAE; returns the directory of the final model (`run_dir/model`)."""
    import torch.distributed as dist
    from tqdm import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = init_distributed(cfg.device)  # torchrun: DDP, one full checkpoint from rank 0
    main_rank = rank == 0
    warn_slow_bfloat16(cfg.precision, device, main_rank)
    run_dir = Path(cfg.run_dir)
    config_dict = to_dict(cfg)
    ckpt = checkpoint_to_resume(run_dir, cfg.resume, config_dict, main_rank=main_rank)  # before config.json is rewritten
    if ckpt is not None:  # the optimizer's state covers the parameters it trained: all, or the decoder's
        was = bool(json.loads((ckpt / "config.json").read_text()).get("freeze_encoder", False))
        if was != cfg.freeze_encoder:  # was torch's "loaded state dict contains a parameter group that doesn't match"
            raise ValueError(f"checkpoint {ckpt} was trained with freeze_encoder: {str(was).lower()}, this run has "
                             f"{str(cfg.freeze_encoder).lower()}: its optimizer state is for another set of weights. "
                             "Resume with the same freeze_encoder, or start a new run_dir with init_from: this run's "
                             "model (run_dir/model, or a checkpoint exported as one)")
    torch.manual_seed(cfg.seed)
    model = VideoVAE(cfg.model)
    if cfg.init_from:
        start = load_vae(cfg.init_from, "init_from")
        if start.config != model.config:
            raise ValueError(f"init_from {cfg.init_from}: its config {start.config} differs from model {model.config}")
        model.load_state_dict(start.state_dict())
    model.to(device)
    if cfg.freeze_encoder:
        # decoder fine-tuning: the latent space (and the latent statistics) stay exactly as they
        # were, so a DiT trained on them keeps working with the new decoder
        model.encoder.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
    step, position, elapsed = 0, 0, 0.0
    if ckpt is not None:
        state = load_checkpoint(ckpt, model=model, optimizer=opt)
        _optimizer_from_config(opt, cfg.optim)
        step, position, elapsed = state["step"], state["position"], state.get("elapsed_s", 0.0)
        if _finished(run_dir, step, cfg.max_steps, main_rank):
            return run_dir / "model"
        if main_rank:
            log.info("resumed from %s (step %d)", ckpt, step)
        # checkpoints from before global_batch was saved: their batch_size was this one (or the note errs)
        _note_world_change(state, state.get("global_batch", state.get("world_size", 1) * cfg.batch_size),
                           world * cfg.batch_size, world, main_rank)
    batches = video_batches(cfg.data, cfg.batch_size, position)  # this rank's share of the stream
    _start_run(run_dir, config_dict, main_rank, world, step)
    if main_rank:
        log.info("VAE with %.2fM parameters, training steps %d..%d on %d rank(s)",
                 count_parameters(model) / 1e6, step, cfg.max_steps, world)
    train_model = _ddp(model, device) if world > 1 else model
    logger = _Logger(run_dir, step) if main_rank else None
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train-vae", unit="step", disable=not (progress and main_rank))
    model.train()
    t0 = time.perf_counter()
    stop_flag = StopFlag()

    saved = {"step": step if ckpt is not None and _in_run(ckpt, run_dir) else None}  # this run's newest on disk

    def checkpoint() -> None:
        """Save a checkpoint, unless this step's is on disk already (saved on schedule just before
        a stop, or the one this run resumed from): saving a step again put the complete one at risk
        and cost a save's time, under torchrun's --shutdown-timeout too."""
        if saved["step"] == step:
            return
        saved["step"] = step
        if main_rank:
            save_checkpoint(run_dir, step, config=config_dict, model=model, optimizer=opt, keep=cfg.keep_checkpoints,
                            state={"position": position, "elapsed_s": elapsed + time.perf_counter() - t0,
                                   "world_size": world, "global_batch": world * cfg.batch_size})
        if world > 1:
            dist.barrier()

    try:
        while step < cfg.max_steps:
            video = next(batches).to(device, non_blocking=True)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.optim, cfg.max_steps)
            # posterior noise from (seed, step): the same whether or not the run was resumed
            gen = torch.Generator(device).manual_seed(cfg.seed * 1_000_003 + step * world + rank)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                recon, mean, logvar = train_model(video, generator=gen, latent_noise=cfg.latent_noise)
            recon, mean, logvar = recon.float(), mean.float(), logvar.float()
            l1 = (recon - video).abs().mean()
            l2 = F.mse_loss(recon, video)
            kl = kl_loss(mean, logvar)
            grad = gradient_loss(recon, video) if cfg.gradient_weight else torch.zeros((), device=device)
            loss = cfg.l1_weight * l1 + cfg.l2_weight * l2 + cfg.kl_weight * kl + cfg.gradient_weight * grad
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            step += 1
            position += world * video.shape[0]
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                terms = torch.stack([loss.detach(), l1.detach(), l2.detach(), kl.detach(), grad.detach()])
                if world > 1:  # the global batch's means
                    dist.all_reduce(terms)
                    terms = terms / world
                loss_v, l1_v, l2_v, kl_v, grad_v = terms.tolist()
                metrics = {"loss": loss_v, "l1": l1_v, "l2": l2_v, "kl": kl_v, "gradient": grad_v,
                           "psnr": 10 * math.log10(4.0 / max(l2_v, 1e-12)), "grad_norm": float(grad_norm),
                           "lr": opt.param_groups[0]["lr"], "time_s": elapsed + time.perf_counter() - t0}
                if main_rank:
                    logger.log(step, metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", psnr=f"{metrics['psnr']:.1f}")
            if step % cfg.save_every == 0 and step < cfg.max_steps:
                checkpoint()
            stop = torch.tensor([float(stop_flag.set)], device=device)
            if world > 1:  # a signal to any rank: all stop after this step
                dist.all_reduce(stop, op=dist.ReduceOp.MAX)
            if stop.item() and step < cfg.max_steps:
                checkpoint()
                raise stop_flag.stopped(step)
    finally:
        stop_flag.restore()
        bar.close()
        if logger is not None:
            logger.close()
    checkpoint()
    model.eval()
    out = run_dir / "model"
    if main_rank:
        if not cfg.freeze_encoder:
            folder_log = logging.getLogger("spacetime.data.folder")
            was, _ = folder_log.level, folder_log.setLevel(logging.ERROR)  # its captions file's warnings: said at the start
            try:
                stats = video_batches(cfg.data, cfg.batch_size, 10**9)  # samples training never reached
            finally:
                folder_log.setLevel(was)
            model.fit_latent_stats(v.to(device) for v in itertools.islice(stats, cfg.latent_stats_batches))
        save_model(out, {"model": cfg.model.to_dict()}, model)
    if world > 1:
        dist.barrier()
    return out


# ----------------------------------------------------------------------------------------------
# The Diffusion Transformer: rectified flow on VAE latents, conditioned on text.

@dataclass
class TrainDiTConfig:
    model: DiTConfig = field(default_factory=DiTConfig)
    vae: str = "shipped"  # a trained VAE model directory, frozen; "shipped": the world VAE in the package
    text_encoder: str = "minilm"  # "minilm" (shipped), a local Hugging Face model directory, or "hash" (tests)
    text_max_length: int = 64
    data: DataConfig = field(default_factory=DataConfig)
    # native-size training on the world: clips drawn among these (frames, height, width); empty:
    # data's size. A batch of mixed sizes runs as one packed sequence (block-diagonal attention).
    sizes: list[list[int]] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, weight_decay=0.0, warmup_steps=200))
    batch_size: int = 8  # per rank and micro-batch: the global batch is world x batch_size x grad_accum
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 1000
    ema_decay: float = 0.999
    prompt_dropout: float = 0.1  # the empty prompt, so classifier-free guidance has an unconditional model
    # share of samples with some latent frames given clean (first / prefix / suffix / both ends):
    # one model learns image->video, extension and connecting alongside text->video
    condition_prob: float = 0.25
    # training timesteps sigmoid(logit_mean + logit_std * N(0, 1)); logit_mean = ln(s) is training
    # at timestep shift s, more of it at high noise (flow.shift_timesteps), on top of the resolution shift
    logit_mean: float = 0.0
    logit_std: float = 1.0
    precision: str = "fp32"  # or "bf16" autocast
    grad_checkpointing: bool = False
    # under torchrun: "ddp" (replicas, gradients averaged) or "fsdp" (FSDP2 fully_shard per block:
    # parameters, gradients and optimizer state sharded across ranks)
    parallel: str = "ddp"
    compile: bool = False  # torch.compile each DiT block
    resume: str | None = None  # a checkpoint directory to resume from (default: the newest complete one in run_dir)
    # fine-tuning: a trained pipeline directory (`spacetime train`'s model/, or the shipped default
    # "shipped") whose DiT weights start the model and its EMA; a fresh optimizer. A checkpoint to
    # resume from takes precedence.
    init_from: str | None = None
    # guidance distillation: a trained pipeline directory ("shipped": the default model) whose
    # classifier-free guidance from "" this model (model.guidance_embed) learns to predict in one
    # pass, at scales drawn uniformly from guidance_range; the target is then the teacher's guided
    # velocity instead of eps - x0. Start it from the teacher (init_from) to keep what it knows.
    guidance_teacher: str | None = None
    guidance_range: list[float] = field(default_factory=lambda: [1.0, 8.0])
    # steps whose loss or gradients are NaN/inf are skipped (no update) and named in the log; this
    # many in a row stop the run
    max_nonfinite_steps: int = 5
    sample_every: int = 500  # write sample videos (EMA weights) to run_dir/samples/; 0: never
    sample_prompts: list[str] = field(default_factory=lambda: [
        "a red ball bounces off the left wall on a black background",
        "a large blue square falls on a white background",
    ])
    sample_steps: int = 25
    guidance_scale: float = 5.0
    run_dir: str = "runs/dit"
    log_every: int = 10
    save_every: int = 250
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"

    def __post_init__(self) -> None:
        _expand_home(self)
        _check_device(self.device)
        for name in ("batch_size", "grad_accum", "max_steps", "log_every", "save_every", "sample_steps",
                     "text_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if not self.vae.strip():  # was "vae : . is not a complete model directory"
            raise ValueError("vae is empty: give a trained VAE model directory, or 'shipped' (the package's)")
        if not self.text_encoder.strip():
            raise ValueError("text_encoder is empty: give 'minilm' (shipped), a local Hugging Face model directory, "
                             "or 'hash:DIM'")
        if self.parallel not in ("ddp", "fsdp"):
            raise ValueError(f"parallel must be 'ddp' or 'fsdp', got {self.parallel!r}")
        if self.max_nonfinite_steps < 0:
            raise ValueError(f"max_nonfinite_steps must be >= 0, got {self.max_nonfinite_steps}")
        if not 0 <= self.condition_prob <= 1:
            raise ValueError(f"condition_prob must be in [0, 1], got {self.condition_prob}")
        if not 0 <= self.prompt_dropout < 1:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}")
        if self.data.cache_variants < 1:
            raise ValueError(f"data.cache_variants must be >= 1, got {self.data.cache_variants}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        _check_run_values(self)
        if self.sample_every < 0:  # step % -1 == 0: a negative one sampled at every step
            raise ValueError(f"sample_every must be >= 0 (0: never), got {self.sample_every}")
        # the pipeline refuses these only when the first samples are made, hours into the run
        if not 0 <= self.guidance_scale <= 100:
            raise ValueError(f"guidance_scale (of the samples) must be in [0, 100], got {self.guidance_scale}")
        if not (self.logit_std > 0 and math.isfinite(self.logit_std)) or not math.isfinite(self.logit_mean):
            raise ValueError(f"logit_mean must be finite and logit_std a finite number > 0, got {self.logit_mean} "
                             f"and {self.logit_std}")
        for i, s in enumerate(self.sizes):
            if len(s) != 3:
                raise ValueError(f"sizes must be [frames, height, width] triples, got {s}")
            if min(s) < 1:  # the world renderer's "height must be a positive integer" named no key
                raise ValueError(f"sizes[{i}]: frames, height and width must be >= 1, got {s}")
        if len(self.guidance_range) != 2 or not 0 <= self.guidance_range[0] <= self.guidance_range[1] <= 100:
            raise ValueError(f"guidance_range must be [lo, hi] with 0 <= lo <= hi <= 100, got {self.guidance_range}")
        if self.guidance_teacher and not self.model.guidance_embed:
            raise ValueError("guidance_teacher needs model.guidance_embed: true (the student takes the guidance "
                             "scale as an input)")


def check_training_sizes(cfg: TrainDiTConfig, vae: VideoVAE) -> None:
    """Training clips must tile into whole DiT tokens: sides a multiple of the VAE's spatial factor
    times the patch, frames 1 + (VAE temporal factor)k. Refused up front, naming the key, rather than
    cropped in silence (and saved as a default size the model was never trained at)."""
    from spacetime.pipeline import size_multiples

    ph, pw = cfg.model.patch[1:]
    _, mh, mw = size_multiples(vae.config, cfg.model.patch)
    ft = vae.config.temporal_factor
    checks = [(i, *s) for i, s in enumerate(cfg.sizes)]
    if not (cfg.data.source == "folder" and cfg.data.native_size):
        checks.insert(0, (None, cfg.data.num_frames, cfg.data.height, cfg.data.width))
    for i, frames, height, width in checks:
        where = "data." if i is None else f"sizes[{i}]: "
        if height % mh or width % mw:
            raise ValueError(f"{where}height x width {height}x{width} must be multiples of {mh}x{mw} "
                             f"(the VAE's {vae.config.spatial_factor}x downsampling times the DiT's patch {ph}x{pw})")
        if (frames - 1) % ft:
            raise ValueError(f"{where}num_frames {frames} must be 1 + {ft}k (the VAE's temporal factor)")


def flow_step_loss(
    model: DiT,
    latents: list[torch.Tensor],
    text: torch.Tensor,
    text_mask: torch.Tensor,
    generator: torch.Generator | list[torch.Generator],
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    condition_prob: float = 0.0,
    teacher: DiT | None = None,
    negative: tuple[torch.Tensor, torch.Tensor] | None = None,
    guidance_range: tuple[float, float] = (1.0, 8.0),
) -> torch.Tensor:
    """Rectified-flow loss of a batch whose latents may differ in size: same-size batches run as
    one (B, C, t, h, w) tensor, mixed ones as one packed sequence. Each sample's timesteps are
    shifted for its own token count; the loss is the mean of per-sample velocity MSEs.

    With `condition_prob` > 0, that share of the samples gets some latent frames given clean
    (`flow.draw_condition_masks`: first frame, a prefix, a suffix or both ends — the prompting
    modes), the model is told which, and those frames are left out of the sample's loss.

    `generator`: one for the batch, or one per sample — then each sample's timestep, noise and
    conditions depend on its own generator alone, so a batch split across ranks draws what the
    whole batch draws in one process. `model` may be wrapped (DDP, FSDP).

    Guidance distillation: with a `teacher` (a DiT, frozen) and `negative`, the encoding (1, L, D)
    and mask of "", each sample draws a guidance scale g uniformly from `guidance_range` and the
    target is the teacher's guided velocity v_u + g*(v_c - v_u) at the same x_t, in place of
    eps - x0; `model` is given g (`guidance=`)."""
    n = len(latents)
    gens = generator if isinstance(generator, (list, tuple)) else None
    config = getattr(model, "module", model).config
    pt, ph, pw = config.patch
    device = latents[0].device
    # drawn on the generators' device (CPU), then moved: the same draws whatever device trains
    if gens is None:
        t = flow.sample_timesteps(n, generator=generator, mean=logit_mean, std=logit_std)
    else:
        t = torch.cat([flow.sample_timesteps(1, generator=g, mean=logit_mean, std=logit_std) for g in gens])
    shifts = torch.tensor([flow.resolution_shift(z[0].numel() // (pt * ph * pw)) for z in latents])
    t = flow.shift_timesteps(t, shifts)
    per = gens or [generator] * n
    noise = [torch.randn(z.shape, generator=g, device=g.device) for z, g in zip(latents, per)]
    drawn = [None] * n
    if condition_prob > 0:
        if gens is None:
            drawn = flow.draw_condition_masks([z.shape[1] for z in latents], condition_prob, generator=generator)
        else:
            drawn = [flow.draw_condition_masks([z.shape[1]], condition_prob, generator=g)[0] for z, g in zip(latents, gens)]
    # a mask for every sample, all False where nothing is given: the condition parameters then
    # take part in every step (DDP requires it; their gradient is exactly zero then)
    conds = [torch.zeros(z.shape[1], dtype=torch.bool) if m is None else m for m, z in zip(drawn, latents)]
    scales = None
    if teacher is not None:
        lo, hi = guidance_range
        scales = torch.cat([lo + (hi - lo) * torch.rand(1, generator=g, device=g.device) for g in per]).float()
    # Samples of one size go as one stacked tensor, moved to the device in one copy: per-sample
    # tensor ops cost a kernel launch each, which bounded GPU training at batch 64 (docs/benchmarks.md)
    groups: dict[tuple, list[int]] = {}
    for i, z in enumerate(latents):
        groups.setdefault(tuple(z.shape), []).append(i)
    parts = []
    for idx in groups.values():
        z = torch.stack([latents[i] for i in idx])  # (b, C, t, h, w)
        e = torch.stack([noise[i] for i in idx]).to(device, non_blocking=True)
        m = torch.stack([conds[i] for i in idx]).to(device, non_blocking=True)  # (b, t)
        ti = t[idx].to(device, non_blocking=True).view(-1, 1, 1, 1, 1)
        xt = torch.where(m[:, None, :, None, None], z, (1 - ti) * z + ti * e)
        if teacher is None:
            target = e - z
        else:
            with torch.no_grad():
                gi = scales[idx].to(device).view(-1, 1, 1, 1, 1)
                v_c, v_u = sampling.predictions(teacher, xt, t[idx].to(device), text[idx], text_mask[idx],
                                                negative[0].expand(len(idx), -1, -1), negative[1].expand(len(idx), -1),
                                                cond_mask=m)
                target = v_u + gi * (v_c - v_u)
        parts.append((idx, target, m, xt))
    order = [i for idx, *_ in parts for i in idx]  # one group: 0..n-1
    extra = {} if scales is None else {"guidance": scales[order].to(device)}
    if len(parts) == 1:
        idx, target, m, xt = parts[0]
        preds = [model(xt, t.to(device), text, text_mask, cond_mask=m, **extra)]
    else:  # one packed sequence, ordered by size (the model patchifies each run of one size at once)
        out = model([x for *_, xt in parts for x in xt.unbind(0)], t[order].to(device), text[order],
                    text_mask[order], [c for *_, m, _ in parts for c in m.unbind(0)], **extra)
        starts = [0, *itertools.accumulate(len(idx) for idx, *_ in parts)]
        preds = [torch.stack(out[a:b]) for a, b in zip(starts, starts[1:])]
    # per sample, the mean over the frames to generate only; given frames count for nothing (even a
    # non-finite prediction there)
    losses = []
    for (idx, target, m, _), pred in zip(parts, preds):
        err = (pred.float() - target.float()).square().mean(dim=(1, 3, 4))  # (b, t): per latent frame
        keep = ~m
        losses.append(torch.where(keep, err, 0.0).sum(1) / keep.sum(1))
    return torch.cat(losses).mean()


def write_samples(pipe, prompts: list[str], out_dir: Path, *, num_frames: int, height: int, width: int,
                  fps: float, steps: int, guidance_scale: float, seed: int) -> None:
    from spacetime.data.video import export_to_video

    out_dir.mkdir(parents=True, exist_ok=True)
    for i, prompt in enumerate(prompts):
        video = pipe(prompt, num_frames=num_frames, height=height, width=width, num_inference_steps=steps,
                     guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed + i)).frames[0]
        export_to_video(video, out_dir / f"{i:02d}.mp4", fps=fps)
    (out_dir / "prompts.json").write_text(json.dumps(prompts, indent=1))


def pipeline_config(run_config: dict, text_encoder: str | None = None) -> dict:
    """The config of the model a run makes, from the run's config (a checkpoint's config.json):
    its DiT, text encoder (`text_encoder`: where the model folder finds it, if not the run's
    spec) and the data's size as the sampling defaults (and, trained on the world, `complete_prompt`);
    a guidance-distilled model's the scales it learned (`guidance_range`: outside them the pipeline
    guides it with two passes)."""
    d = run_config["data"]
    out = {"format": "spacetime-pipeline", "dit": run_config["model"],
           "text_encoder": text_encoder or run_config["text_encoder"], "text_max_length": run_config["text_max_length"],
           "defaults": {"num_frames": d["num_frames"], "height": d["height"], "width": d["width"], "fps": d["fps"]}}
    if d.get("source", "world") == "world":  # its captions name every object's colour: prompts that do not are
        out["defaults"]["complete_prompt"] = True  # completed at generation (world.prompts.complete_prompt)
    if run_config.get("guidance_teacher"):
        out["guidance_range"] = list(run_config["guidance_range"])
    return out


def check_resumed_encoders(ckpt: Path, cfg: TrainDiTConfig, vae_digest: str, main_rank: bool) -> None:
    """A resumed run's VAE and text encoder against the checkpoint's. Another VAE's weights are
    another latent space, which the DiT never learned to denoise: refused, as another model config
    is (init_from starts a new run from trained weights, on purpose). Another text encoder or
    max_length changes what the model is conditioned on, which may be meant: a warning naming it.
    Checkpoints saved before the VAE's digest was kept are compared by the VAE's path."""
    saved = json.loads((ckpt / "config.json").read_text())
    was = json.loads((ckpt / "state.json").read_text()).get("vae_sha256")
    if was is not None and was != vae_digest:
        raise ValueError(f"checkpoint {ckpt} was trained on another VAE ({saved.get('vae')!r}, weights sha256 "
                         f"{was[:12]}; now {cfg.vae!r}, {vae_digest[:12]}): its latents are another space. Resume "
                         "with that VAE, or start a new run_dir (init_from: this run's model) to move to this one")
    changed = [f"{key} {saved.get(key)!r} -> {getattr(cfg, key)!r}" for key in ("text_encoder", "text_max_length")
               if saved.get(key) != getattr(cfg, key)]
    if was is None and saved.get("vae") != cfg.vae:
        changed.append(f"vae {saved.get('vae')!r} -> {cfg.vae!r} (the checkpoint keeps no digest of its weights to compare)")
    if changed and main_rank:
        log.warning("resuming %s with another %s: the model was trained on the old one; go on only if that is meant",
                    ckpt, "; another ".join(changed))


def trained_with_another(model_dir: Path, config: dict, cfg: TrainDiTConfig, vae_digest: str) -> list[str]:
    """What a trained pipeline directory (`model_dir`, its `config`) learned with that this run
    would change: its text encoder, max_length, VAE weights, each "what was -> now" (a local
    encoder copied into the folder counts as the same)."""
    from spacetime.data.cache import file_digest

    return [f"{what} {was!r} -> {now!r}" for what, was, now in (
        ("text_encoder", config.get("text_encoder"), cfg.text_encoder),
        ("text_max_length", config.get("text_max_length"), cfg.text_max_length),
        ("VAE (weights sha256)", file_digest(model_dir / "vae" / "model.safetensors")[:12], vae_digest[:12]))
        if was != now and not (what == "text_encoder" and was == "text_encoder")]


def guidance_teacher(cfg: TrainDiTConfig, vae_digest: str, device: torch.device) -> DiT:
    """The frozen DiT whose guidance a run distils, checked against the run: the same VAE weights
    (its latent space) and text encoder (its conditioning); its size may differ from the student's."""
    from spacetime.pipeline import read_pipeline_dit

    try:
        where, config, teacher = read_pipeline_dit(None if cfg.guidance_teacher == "shipped" else cfg.guidance_teacher)
    except (ValueError, OSError) as e:
        raise ValueError(f"guidance_teacher {cfg.guidance_teacher}: {e}") from None
    if teacher.config.guidance_embed:
        raise ValueError(f"guidance_teacher {cfg.guidance_teacher} is itself guidance-distilled; distil from a "
                         "model trained with classifier-free guidance (prompt dropout)")
    changed = trained_with_another(where, config, cfg, vae_digest)
    if changed:  # another VAE: its velocities are in another latent space; another encoder: other prompts
        raise ValueError(f"guidance_teacher {cfg.guidance_teacher} was trained with another {'; another '.join(changed)}: "
                         "the teacher must see this run's latents and read its prompts as it was trained to")
    return teacher.to(device).eval().requires_grad_(False)


def train_dit(cfg: TrainDiTConfig, progress: bool = True) -> Path:
    """Train (or resume) a text-to-video DiT on a frozen VAE's latents; returns the pipeline
    directory (`run_dir/model`: DiT EMA weights, its VAE in `vae/`, the text encoder's name)."""
    import torch.distributed as dist
    from tqdm import tqdm

    from spacetime.data.cache import file_digest
    from spacetime.pipeline import SpacetimePipeline, load_text_encoder, read_pipeline_dit

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = init_distributed(cfg.device)
    attention_for_changing_shapes(device)
    main_rank = rank == 0
    warn_slow_bfloat16(cfg.precision, device, main_rank)
    run_dir = Path(cfg.run_dir)
    config_dict = to_dict(cfg)
    # every check comes before config.json is rewritten (_start_run)
    ckpt = checkpoint_to_resume(run_dir, cfg.resume, config_dict, ema=True, main_rank=main_rank)
    vae_dir = vae_path(cfg.vae)
    vae = load_vae(cfg.vae, "vae").to(device)
    if vae.config.latent_channels != cfg.model.in_channels:
        raise ValueError(f"model.in_channels is {cfg.model.in_channels} but the VAE at {cfg.vae} makes "
                         f"{vae.config.latent_channels}-channel latents")
    check_training_sizes(cfg, vae)
    # folder captions repeat every epoch: their embeddings are kept on disk beside the latents (keyed
    # by the encoder's weights, max_length and the caption); world captions are new with every clip
    text = load_text_encoder(cfg.text_encoder, cfg.text_max_length, device=device,
                             cache_dir=run_dir / "cache" / "text" if cfg.data.source == "folder" else None)
    if text.dim != cfg.model.text_dim:
        raise ValueError(f"model.text_dim is {cfg.model.text_dim} but the text encoder {cfg.text_encoder!r} "
                         f"makes {text.dim}-d embeddings")
    vae_digest = file_digest(Path(vae_dir) / "model.safetensors")
    if ckpt is not None:
        check_resumed_encoders(ckpt, cfg, vae_digest, main_rank)
    torch.manual_seed(cfg.seed)
    model = DiT(cfg.model).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    names = [n for n, _ in model.named_parameters()]
    step, position, elapsed = 0, 0, 0.0
    if ckpt is None and cfg.init_from:
        try:
            start_dir, start_config, start = read_pipeline_dit(None if cfg.init_from == "shipped" else cfg.init_from)
        except (ValueError, OSError) as e:
            raise ValueError(f"init_from {cfg.init_from}: {e}") from None
        # a guidance-distilled student may start from an undistilled model: all but the new embedding
        grows = cfg.model.guidance_embed and not start.config.guidance_embed
        if start.config != (replace(cfg.model, guidance_embed=False) if grows else cfg.model):
            raise ValueError(f"init_from {cfg.init_from}: its DiT config {start.config.to_dict()} differs from model "
                             f"{cfg.model.to_dict()}")
        # the weights fit any VAE and encoder of these widths, but learned another latent space or
        # another text embedding: allowed (a deliberate transfer), never silent
        changed = trained_with_another(start_dir, start_config, cfg, vae_digest)
        if changed and main_rank:
            log.warning("init_from %s was trained with another %s; fine-tuning from it anyway", cfg.init_from,
                        "; ".join(changed))
        for m in (model, ema):
            m.load_state_dict(start.state_dict(), strict=not grows)  # a new g_embedder keeps its init
        if main_rank:
            log.info("DiT weights from %s%s", cfg.init_from, " (the guidance embedding new)" if grows else "")
    if ckpt is not None:  # every rank loads the same full checkpoint, whatever the world size it was saved at
        state = load_checkpoint(ckpt, model=model, ema=ema, rank=rank)
        step, position, elapsed = state["step"], state["position"], state.get("elapsed_s", 0.0)
        if _finished(run_dir, step, cfg.max_steps, main_rank):
            return run_dir / "model"
        if main_rank:
            log.info("resumed from %s (step %d)", ckpt, step)
        _note_world_change(state, state.get("global_batch"), world * cfg.batch_size * cfg.grad_accum, world, main_rank)
    teacher = negative = None
    if cfg.guidance_teacher:
        teacher = guidance_teacher(cfg, vae_digest, device)
        negative = text.encode([""])
        if main_rank:
            log.info("distilling the guidance of %s at scales %s", cfg.guidance_teacher, cfg.guidance_range)
    if main_rank:
        log.info("DiT with %.2fM parameters, training steps %d..%d on %d rank(s)",
                 count_parameters(model) / 1e6, step, cfg.max_steps, world)
    fsdp = world > 1 and cfg.parallel == "fsdp"
    train_model = parallelize(model, ema, cfg, device, world)
    # the optimizer after sharding: FSDP2 replaces the parameters with sharded ones
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)
    if ckpt is not None:
        osd = read_optimizer_state(ckpt)
        if fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(model, opt, _by_name(osd, names), options=StateDictOptions(full_state_dict=True))
        else:
            opt.load_state_dict(osd)
        _optimizer_from_config(opt, cfg.optim)

    def full_states() -> tuple:
        """(model, EMA, optimizer) as full state dicts on rank 0 — a collective under FSDP."""
        if not fsdp:
            return model, ema, opt
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return (get_model_state_dict(model, options=full), get_model_state_dict(ema, options=full),
                _by_index(get_optimizer_state_dict(model, opt, options=full), names))
    # a local Hugging Face encoder goes into the model folder (as its VAE does), so the folder loads anywhere
    local_text = getattr(text.config, "path", None)
    model_config = pipeline_config(config_dict, text_encoder="text_encoder" if local_text else None)
    # each rank reads samples position + rank, + rank + world, ... of the stream (world data
    # shards so by itself; folder data in dit_items): a global batch is world x batch_size
    items = dit_items(cfg.data, position, vae, sizes=cfg.sizes, vae_dir=vae_dir, cache_dir=run_dir / "cache" / "latents")
    _start_run(run_dir, config_dict, main_rank, world, step)
    logger = _Logger(run_dir, step) if main_rank else None
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", disable=not (progress and main_rank))
    model.train()
    t0 = time.perf_counter()
    phases, logged_at = {"data_s": 0.0, "encode_s": 0.0, "step_s": 0.0}, step
    nonfinite, stop_flag = 0, StopFlag()

    saved = {"step": step if ckpt is not None and _in_run(ckpt, run_dir) else None}  # this run's newest on disk

    def checkpoint() -> tuple:
        """Save a checkpoint, unless this step's is on disk already (saved on schedule just before
        a stop, or the one this run resumed from: saving it again put the complete one at risk and
        cost a save's time, under torchrun's --shutdown-timeout too); returns the full (model, EMA,
        optimizer) states it gathered."""
        states = full_states()
        if saved["step"] == step:
            return states
        saved["step"] = step
        rngs = None
        if world > 1:  # every rank's RNG states go in the checkpoint, each restored to its rank
            rngs = [None] * world
            dist.all_gather_object(rngs, rng_state())
        if main_rank:  # one full copy, written by rank 0: loadable at any world size
            save_checkpoint(run_dir, step, config=config_dict, model=states[0], optimizer=states[2], ema=states[1],
                            keep=cfg.keep_checkpoints, rank_rngs=rngs,
                            state={"position": position, "elapsed_s": elapsed + time.perf_counter() - t0,
                                   "world_size": world, "global_batch": world * cfg.batch_size * cfg.grad_accum,
                                   "vae_sha256": vae_digest})
        if world > 1:
            dist.barrier()
        return states

    if fsdp and cfg.sample_every and main_rank:
        log.warning("sample_every: no samples during FSDP training (the EMA weights are sharded across ranks); "
                    "generate from the saved model (run_dir/model) instead")

    def samples() -> None:
        if not main_rank or fsdp:  # sharded weights: samples come from the saved model instead
            return
        pipe = SpacetimePipeline(ema.eval(), vae, text, model_config)
        d = cfg.data
        write_samples(pipe, cfg.sample_prompts, run_dir / "samples" / f"step-{step:08d}", num_frames=d.num_frames,
                      height=d.height, width=d.width, fps=d.fps, steps=cfg.sample_steps,
                      guidance_scale=cfg.guidance_scale, seed=cfg.seed)

    try:
        while step < cfg.max_steps:
            opt.zero_grad(set_to_none=True)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.optim, cfg.max_steps)
            loss = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                tick = _phase_clock(device)
                batch = list(itertools.islice(items, cfg.batch_size))
                phases["data_s"] += tick()
                fresh = [b["video"].to(device, non_blocking=True) for b in batch if "latents" not in b]
                encoded = iter(encode_videos(vae, fresh) if fresh else [])
                latents = [b["latents"].to(device) if "latents" in b else next(encoded) for b in batch]
                # every draw from the sample's own generator: the same whether the run resumed, and
                # whether its batch was split across ranks or micro-batches
                first = position + micro * world * cfg.batch_size
                gens = sample_generators(cfg.seed, [first + rank + world * j for j in range(len(batch))])
                prompts = [flow.drop_prompts([b["caption"]], cfg.prompt_dropout, generator=g)[0]
                           for b, g in zip(batch, gens)]
                emb, mask = text.encode(prompts)
                phases["encode_s"] += tick()
                last = micro == cfg.grad_accum - 1
                # gradients are averaged across ranks once per optimizer step, after the last micro-batch
                sync = contextlib.nullcontext()
                if world > 1 and cfg.parallel == "ddp" and not last:
                    sync = train_model.no_sync()
                elif fsdp:
                    model.set_requires_gradient_sync(last)
                with sync:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                        micro_loss = flow_step_loss(train_model, latents, emb, mask, gens, cfg.logit_mean,
                                                    cfg.logit_std, cfg.condition_prob, teacher, negative,
                                                    tuple(cfg.guidance_range)) / cfg.grad_accum
                    micro_loss.backward()
                loss = loss + micro_loss.detach()
                phases["step_s"] += tick()
            tick = _phase_clock(device)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            # (non-finite, stop requested), one all-reduce: every rank skips, and stops, at the same step
            flags = torch.tensor([float(not (torch.isfinite(loss.detach()) and torch.isfinite(grad_norm))),
                                  float(stop_flag.set)], device=device)
            if world > 1:
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            bad, stop = flags.tolist()
            if bad:
                nonfinite += 1
                msg = (f"non-finite loss or gradients at step {step} (samples {position}.."
                       f"{position + world * cfg.batch_size * cfg.grad_accum - 1} "
                       f"of the stream); step skipped, {nonfinite} in a row")
                if nonfinite > cfg.max_nonfinite_steps:
                    raise TrainingDiverged(f"{msg}: more than max_nonfinite_steps={cfg.max_nonfinite_steps}; stopping. "
                                       "Lower optim.lr, or check the data")
                log.warning(msg)
                opt.zero_grad(set_to_none=True)
            else:
                nonfinite = 0
                opt.step()
                with torch.no_grad():
                    decay = min(cfg.ema_decay, (1 + step) / (10 + step))  # a short warm-up: early EMA tracks the model
                    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
            phases["step_s"] += tick()
            step += 1
            position += world * cfg.batch_size * cfg.grad_accum
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                reported = loss.detach()
                if world > 1:  # the global batch's loss: the mean of the ranks' means
                    dist.all_reduce(reported)
                    reported = reported / world
                metrics = {"loss": reported.item(), "grad_norm": float(grad_norm), "lr": opt.param_groups[0]["lr"],
                           "time_s": elapsed + time.perf_counter() - t0}
                # mean seconds per step since the last log: where the time goes (data, VAE + text, DiT)
                metrics.update({k: v / max(1, step - logged_at) for k, v in phases.items()})
                phases, logged_at = dict.fromkeys(phases, 0.0), step
                if main_rank:
                    logger.log(step, metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            if step % cfg.save_every == 0 and step < cfg.max_steps:
                checkpoint()
            if cfg.sample_every and step % cfg.sample_every == 0:
                samples()
            if stop and step < cfg.max_steps:  # SIGTERM or Ctrl-C to any rank: all stop after this step
                checkpoint()
                raise stop_flag.stopped(step)
    finally:
        stop_flag.restore()
        bar.close()
        if logger is not None:
            logger.close()
    final_ema = checkpoint()[1]  # under FSDP the gather is a collective: once, not again for the model
    out = run_dir / "model"
    if main_rank:
        save_model(out, model_config, final_ema,
                   subdirs={"vae": vae_dir, **({"text_encoder": Path(local_text)} if local_text else {})})
    if world > 1:
        dist.barrier()
    return out
