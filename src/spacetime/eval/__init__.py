"""World-model evaluation: does a video show what its prompt asks, the way the world moves?

    from spacetime.eval import score_clip, evaluate_generator, BASELINES
    score = score_clip(frames, fps=8, prompt="a red ball falls on a black background")
    score.metrics["physics"].score, score.metrics["physics"].reasons
    result = evaluate_generator(BASELINES["simulator"], split="heldout", num_clips=32)
    result.aggregate()

The tracker (`track`) reads any world-style video by the palette of docs/world.md; `metrics`
scores one clip (adherence, motion, permanence, physics, smoothness); `evaluate` runs prompts
through a generator or scores a folder of videos and adds the distribution distance; `report`
draws the figures. Definitions, thresholds and calibration: docs/eval.md.
"""

from spacetime.eval.evaluate import (
    EvalResult,
    Sample,
    evaluate,
    evaluate_generator,
    generate_samples,
    load_folder,
    read_prompts,
    split_prompts,
    write_json,
)
from spacetime.eval.generators import (
    BASELINES,
    Generator,
    ModelUnavailableError,
    pipeline_generator,
    simulate_prompt,
)
from spacetime.eval.metrics import METRICS, ClipScore, MetricResult, score_clip
from spacetime.eval.track import ClipTrack, Track, track

__all__ = [
    "BASELINES",
    "METRICS",
    "ClipScore",
    "ClipTrack",
    "EvalResult",
    "Generator",
    "MetricResult",
    "ModelUnavailableError",
    "Sample",
    "Track",
    "evaluate",
    "evaluate_generator",
    "generate_samples",
    "load_folder",
    "pipeline_generator",
    "read_prompts",
    "score_clip",
    "simulate_prompt",
    "split_prompts",
    "track",
    "write_json",
]
