"""The procedural world: physical scenes with exact captions and ground truth.

    from spacetime.world import make_clip, parse_prompt
    clip = make_clip(0, num_frames=17, height=64, width=96)   # frames, captions, ground truth
    clip = make_clip(0, spec=parse_prompt("a red ball bounces off the left wall"))
"""

from spacetime.world.captions import caption_clip
from spacetime.world.clip import Clip, make_clip, stream_seed
from spacetime.world.dataset import WorldDataset, write_world
from spacetime.world.physics import Event, Trajectory, simulate
from spacetime.world.prompts import complete_prompt, expand_prompt, parse_prompt
from spacetime.world.render import render, visible_fraction
from spacetime.world.scene import (
    HELDOUT_TRIPLES,
    ObjectSpec,
    Scene,
    SceneSpec,
    WorldObject,
    is_heldout,
    sample_scene,
)

__all__ = [
    "HELDOUT_TRIPLES",
    "Clip",
    "Event",
    "ObjectSpec",
    "Scene",
    "SceneSpec",
    "Trajectory",
    "WorldDataset",
    "WorldObject",
    "caption_clip",
    "complete_prompt",
    "expand_prompt",
    "is_heldout",
    "make_clip",
    "parse_prompt",
    "render",
    "sample_scene",
    "simulate",
    "stream_seed",
    "visible_fraction",
    "write_world",
]
