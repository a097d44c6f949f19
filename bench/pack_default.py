"""Pack a `bench/train_default_gpu.sh` run for shipping: the pipeline with bf16 weights (latent
statistics stay fp32) and its text encoder named "minilm", the recipe VAE in fp32, and the logs.

    python bench/pack_default.py RUNS DEST
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main(runs: Path, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(runs / "dit" / "model", dest / "world")
    config = json.loads((dest / "world" / "config.json").read_text())
    config["text_encoder"] = "minilm"  # trained with these weights (carried as fp16 to the GPU)
    (dest / "world" / "config.json").write_text(json.dumps(config, indent=2))
    for f in (dest / "world").rglob("model.safetensors"):
        t = load_file(f)
        save_file({k: v if k.startswith("latent_") else v.to(torch.bfloat16) for k, v in t.items()}, f)
    if (runs / "vae-recipe" / "model").is_dir():
        shutil.copytree(runs / "vae-recipe" / "model", dest / "vae-recipe")
    for p in [*runs.glob("*.log"), *runs.glob("*/metrics.jsonl"), *runs.glob("*/config.json")]:
        q = dest / "logs" / p.relative_to(runs)
        q.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, q)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
