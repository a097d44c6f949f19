"""Checkpoints: a directory per save, safetensors and JSON only, `COMPLETE` written last.

    run_dir/checkpoints/step-00001200/
        config.json          the run's dataclass config
        model.safetensors    weights (and buffers)
        ema.safetensors      the exponential moving average of the weights (DiT training)
        optimizer.safetensors + optimizer.json     optimizer tensors / everything else
        state.json           step, data position, scheduler, metrics, python and numpy RNG
        rng.safetensors      torch RNG states
        COMPLETE

A checkpoint is written into a temporary directory that is renamed into place, and a directory
without `COMPLETE` is never loaded, so a crash mid-save cannot leave a checkpoint that loads
half. Older checkpoints are deleted only after a newer one is complete. Nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"


def _flatten_optimizer(opt: torch.optim.Optimizer | dict) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt if isinstance(opt, dict) else opt.state_dict()
    tensors, state_meta = {}, {}
    for idx, st in sd["state"].items():
        meta = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta[k] = v
        state_meta[str(idx)] = meta
    return tensors, {"param_groups": sd["param_groups"], "state_meta": state_meta}


def _tensors(module: nn.Module | dict) -> dict[str, torch.Tensor]:
    sd = module if isinstance(module, dict) else module.state_dict()
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def read_optimizer_state(path: str | Path) -> dict:
    """A complete checkpoint's optimizer state, as `Optimizer.state_dict()` gives it."""
    path = Path(path)
    meta = json.loads((path / "optimizer.json").read_text())
    return _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta)


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(m) for i, m in meta["state_meta"].items()}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    # JSON turned tuples (Adam's betas) into lists: give them back as the optimizer made them
    groups = [{k: tuple(v) if k != "params" and isinstance(v, list) else v for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    meta = {
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    n = meta["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    config: dict,
    model: nn.Module | dict,
    optimizer: torch.optim.Optimizer | dict | None = None,
    state: dict[str, Any] | None = None,
    keep: int = 2,
    ema: nn.Module | dict | None = None,
    rank_rngs: list[tuple[dict, dict]] | None = None,
) -> Path:
    """Write checkpoint `step` atomically and keep the newest `keep` complete ones. Modules and
    the optimizer may be given as (full, gathered) state dicts, as sharded training has them."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-step-{step:08d}-"))
    replaced = None
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_file(_tensors(model), tmp / "model.safetensors")
        if ema is not None:
            save_file(_tensors(ema), tmp / "ema.safetensors")
        if optimizer is not None:
            tensors, meta = _flatten_optimizer(optimizer)
            save_file(tensors, tmp / "optimizer.safetensors")
            (tmp / "optimizer.json").write_text(json.dumps(meta))
        rng_tensors, rng_meta = rng_state() if not rank_rngs else rank_rngs[0]
        save_file(rng_tensors, tmp / "rng.safetensors")
        extra = {}
        if rank_rngs and len(rank_rngs) > 1:  # every other rank's RNGs, gathered by the caller
            for r, (tensors, _) in enumerate(rank_rngs[1:], 1):
                save_file(tensors, tmp / f"rng-rank{r}.safetensors")
            extra["rng_ranks"] = [m for _, m in rank_rngs[1:]]
        (tmp / "state.json").write_text(json.dumps({"step": step, "rng": rng_meta, **extra, **(state or {})}, indent=2))
        (tmp / COMPLETE).write_text("ok\n")
        _share_like_files(tmp)
        if final.exists():  # this step saved before: moved aside whole (one rename), then the new one in
            replaced = _set_aside(final)
        tmp.rename(final)
    except SafetensorError as e:  # its writer's I/O failures (a full disk) are not OSErrors
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"{final}: cannot write the checkpoint ({e}); the previous checkpoints are kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if replaced is not None and not final.exists():  # the new one never got in: the old one back
            (replaced / final.name).rename(final)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    for old in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(_set_aside(old), ignore_errors=True)
    return final


def _set_aside(checkpoint: Path) -> Path:
    """Rename a checkpoint to be deleted out of the `step-*` names first: a kill during the
    deletion (which takes a while on a large model) then leaves a `.tmp-step-*` directory that the
    next start sweeps, never a `step-*` one with COMPLETE and some of its files gone."""
    aside = Path(tempfile.mkdtemp(dir=checkpoint.parent, prefix=f".tmp-{checkpoint.name}-deleted-"))
    target = aside / checkpoint.name
    checkpoint.rename(target)
    return aside


def _share_like_files(root: Path) -> None:
    """Modes an ordinary mkdir / open(w) would give (mkdtemp makes 0700 folders, safetensors 0600
    files): a trained model or checkpoint is readable by whom the umask allows, not its owner alone."""
    from spacetime.atomic import _umask

    umask = _umask()
    for p in [root, *root.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def remove_partial_saves(run_dir: str | Path) -> list[Path]:
    """Delete what saves a killed run left half-written in `run_dir` (checkpoints/.tmp-step-*,
    .tmp-model-*, .old-model, and the latent and text caches' atomic-write temporaries,
    cache/*/.*.tmp.safetensors); they are never read, only take space. Returns what was removed.
    Called before any rank writes: a temporary being written now would go too."""
    run_dir = Path(run_dir)
    found = [*(run_dir / "checkpoints").glob(".tmp-step-*"), *run_dir.glob(".tmp-model-*"), *run_dir.glob(".old-model"),
             *(run_dir / "cache").glob("*/.*.tmp.safetensors")]
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found


# what loading reads from each JSON file of a checkpoint (a resume's state.json without them was a KeyError)
_JSON_KEYS = {"config.json": (), "state.json": ("step", "position", "rng"), "optimizer.json": ("param_groups", "state_meta")}


def _wrong_json_values(name: str, data: dict) -> str | None:
    """What in a checkpoint JSON file's keys loading would fail on (a KeyError or TypeError from
    deep inside set_rng_state or the optimizer), else None."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if name == "state.json":
        if not is_int(data["step"]) or not is_int(data["position"]):
            return f"'step' and 'position' must be integers >= 0, got {data['step']!r} and {data['position']!r}"
        rng = data["rng"]
        if not (isinstance(rng, dict) and isinstance(rng.get("numpy"), dict) and isinstance(rng.get("python"), list)
                and all(k in rng["numpy"] for k in ("kind", "keys", "pos", "has_gauss", "cached"))
                and len(rng["python"]) == 3):
            return "'rng' is not the random generators' state a checkpoint saves"
    if name == "optimizer.json":
        if not isinstance(data["param_groups"], list) or not isinstance(data["state_meta"], dict):
            return "'param_groups' must be a list and 'state_meta' an object"
    return None


def check_checkpoint(path: str | Path, ema: bool = False) -> dict:
    """A complete checkpoint's config.json, having checked that each of its files (`ema`: with
    ema.safetensors) is there and parses (JSON objects with the keys loading reads, safetensors
    headers); a ValueError naming the file otherwise."""
    from safetensors import safe_open

    path = Path(path)
    names = ["config.json", "state.json", "model.safetensors", "rng.safetensors", "optimizer.json",
             "optimizer.safetensors", *(["ema.safetensors"] if ema else []),
             *(p.name for p in path.glob("rng-rank*.safetensors"))]
    config = {}
    for name in names:
        f = path / name
        try:
            if name.endswith(".json"):
                data = json.loads(f.read_text())
                missing = [k for k in _JSON_KEYS.get(name, ()) if not (isinstance(data, dict) and k in data)]
                if missing or not isinstance(data, dict):
                    keys = missing or _JSON_KEYS[name]
                    raise ValueError("not a JSON object" + (f" with {', '.join(map(repr, keys))}" if keys else ""))
                wrong = _wrong_json_values(name, data)
                if wrong:
                    raise ValueError(wrong)
                if name == "config.json":
                    config = data
            else:
                with safe_open(f, "pt") as st:
                    for key in st.keys():
                        st.get_slice(key)  # the header's offsets inside the file
                if f.stat().st_size < 8:
                    raise ValueError("too short")
        except Exception as e:  # noqa: BLE001 - any failure to read is the file's damage
            raise ValueError(f"{f}: damaged or missing ({type(e).__name__}: {e})"[:400]) from None
    return config


def is_checkpoint_name(name: str) -> bool:
    """`step-N`, a checkpoint's folder name; a copy beside them (`step-00000200.bak`) is not one."""
    return re.fullmatch(r"step-\d+", name) is not None


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories, oldest first: `step-N` alone (a copy the user made beside
    them, `step-00000200.bak`, was taken for the newest and pruned as the oldest), by step."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if is_checkpoint_name(p.name) and p.is_dir()
             and (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def _load_into(module: nn.Module, file: Path) -> None:
    """A checkpoint's weights file into `module`; one that holds other tensors (another model's, a
    file swapped by hand) is a ValueError naming the file, not torch's error listing every key."""
    tensors = load_file(file)
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shapes = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        said = [f"{len(v)} {what} (first {v[0]!r})" for v, what in ((missing, "missing"), (unexpected, "unexpected"),
                                                                      (shapes, "of another shape")) if v]
        raise ValueError(f"{file}: does not fit the model: tensors {', '.join(said)}")
    module.load_state_dict(tensors)


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    ema: nn.Module | None = None,
    rank: int = 0,
) -> dict:
    """Load a complete checkpoint into `model` (and `optimizer`, `ema`); return its state.json."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise ValueError(f"{path} is not a complete checkpoint (no {COMPLETE} marker); refusing to load it")
    _load_into(model, path / "model.safetensors")
    if ema is not None:
        _load_into(ema, path / "ema.safetensors")
    if optimizer is not None:
        meta = json.loads((path / "optimizer.json").read_text())
        try:
            optimizer.load_state_dict(_unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta))
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise ValueError(f"{path / 'optimizer.safetensors'}: does not fit this run's optimizer "
                             f"({type(e).__name__}: {e})"[:400]) from None
    state = json.loads((path / "state.json").read_text())
    if restore_rng:
        own = path / f"rng-rank{rank}.safetensors"
        if rank > 0 and own.is_file() and len(state.get("rng_ranks", [])) >= rank:
            set_rng_state(load_file(own), state["rng_ranks"][rank - 1])
        else:  # rank 0, or a rank the saving run did not have: rank 0's
            set_rng_state(load_file(path / "rng.safetensors"), state["rng"])
    return state


def save_model(directory: str | Path, config: dict, model: nn.Module | dict, subdirs: dict[str, Path] | None = None) -> Path:
    """A model directory for users (`config.json`, `model.safetensors`, `COMPLETE`), atomically.
    `subdirs` are copied in whole (a pipeline carries its VAE as `vae/`)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".tmp-{directory.name}-"))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        save_file(_tensors(model), tmp / "model.safetensors")
        for name, src in (subdirs or {}).items():
            shutil.copytree(src, tmp / name)
        (tmp / COMPLETE).write_text("ok\n")
        _share_like_files(tmp)
        if directory.exists():
            old = directory.with_name(f".old-{directory.name}")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    except SafetensorError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"{directory}: cannot write the model ({e}); what was there is kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory
