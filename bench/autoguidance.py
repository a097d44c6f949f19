"""`spacetime eval` with autoguidance (Karras et al. 2024): guidance away from a worse model too.

    python bench/autoguidance.py --guide runs/ag-bad-small/model --scale 2 -- \
        --model src/spacetime/models/world --split heldout --num-clips 200 --seed 0 --no-report --out eval/ag

At each guided step (inside the model's guidance interval) the velocity is

    v = v_c + (g - 1)(v_c - v_u) + (scale - 1)(v_c - v_guide)

with v_guide the guide model's conditional prediction for the same prompt and latents: plain
classifier-free guidance plus a push away from what a weaker model of the same data, VAE and text
encoder would do (its errors — here blobs, duplicates, vanishings — magnified). scale 1 is the plain
eval, draw for draw. `--everywhere` also applies it outside the guidance interval. The guide must
read the same latents and prompt encoding (checked). Prompts are generated one at a time, as
`spacetime eval` does: the DiT sees 2 rows at a guided step (conditional, unconditional) and 1
elsewhere. docs/experiments.md, "Autoguidance".
"""

from __future__ import annotations

import argparse

import torch

import spacetime.pipeline as pipeline
from spacetime.cli import main as cli_main


class Autoguided(torch.nn.Module):
    """The pipeline's DiT with the guide's push added to its predictions (see the module's formula).
    The sampler combines [v_c, v_u] rows as v_u + g(v_c - v_u); the unconditional row returned is
    the v_u' for which that combination is the formula's v."""

    def __init__(self, dit: torch.nn.Module, guide: torch.nn.Module, scale: float, g: float, everywhere: bool):
        super().__init__()
        self.dit, self.guide, self.scale, self.g, self.everywhere = dit, guide, scale, g, everywhere

    def forward(self, x, t, text, mask, **kw):
        out = self.dit(x, t, text, mask, **kw)
        if self.scale == 1.0:
            return out
        first = {k: v[:1] for k, v in kw.items()}
        if x.shape[0] == 2 and self.g != 1.0:  # a guided step: [conditional, unconditional]
            v_c, v_u = out.chunk(2)
            v_b = self.guide(x[:1], t[:1], text[:1], mask[:1], **first).to(v_c)
            push = (self.g - 1) * (v_c - v_u) + (self.scale - 1) * (v_c - v_b)
            return torch.cat([v_c, v_c - push / (self.g - 1)])
        if x.shape[0] != 1:
            raise ValueError(f"autoguidance here takes one prompt at a time; the DiT got {x.shape[0]} rows")
        if not self.everywhere:
            return out
        return out + (self.scale - 1) * (out - self.guide(x, t, text, mask, **kw).to(out))

    def __getattr__(self, name):  # config, x_embedder, ...: the DiT's own
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.dit, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guide", required=True, help="the worse model: a pipeline folder (its DiT is used)")
    ap.add_argument("--scale", type=float, required=True, help="autoguidance's weight; 1: none")
    ap.add_argument("--everywhere", action="store_true", help="also outside the model's guidance interval")
    ap.add_argument("eval_args", nargs=argparse.REMAINDER, help="-- then `spacetime eval` arguments")
    a = ap.parse_args()
    guide_pipe = pipeline.SpacetimePipeline.from_pretrained(a.guide)
    plain = pipeline.SpacetimePipeline.from_pretrained

    def from_pretrained(path=None, **kw):
        pipe = plain(path, **kw)
        for key in ("text_encoder", "text_max_length"):
            if pipe.config.get(key) != guide_pipe.config.get(key):
                raise SystemExit(f"--guide {a.guide}: its {key} {guide_pipe.config.get(key)!r} is not the model's "
                                 f"{pipe.config.get(key)!r}")
        if pipe.vae.config != guide_pipe.vae.config or any(
                not torch.equal(p, q) for p, q in zip(pipe.vae.state_dict().values(), guide_pipe.vae.state_dict().values())):
            raise SystemExit(f"--guide {a.guide}: trained on other VAE weights than the model's")
        guide = guide_pipe.dit.to(pipe.dtype)
        g = pipe.resolve_guidance_scale(float(args[args.index("--guidance-scale") + 1]) if "--guidance-scale" in args else None)
        pipe.dit = Autoguided(pipe.dit, guide, a.scale, g, a.everywhere)
        return pipe

    args = a.eval_args[1:] if a.eval_args[:1] == ["--"] else a.eval_args
    pipeline.SpacetimePipeline.from_pretrained = from_pretrained
    raise SystemExit(cli_main(["eval", *args]))


if __name__ == "__main__":
    main()
