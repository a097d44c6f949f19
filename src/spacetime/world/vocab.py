"""The procedural world's visual and physical vocabulary: every named thing lives here, once.

The tracker in `spacetime.eval` reads generated videos by these exact colours, so they are chosen
saturated, far from each other and from every background (see docs/world.md for the table).
Scene units: the view is 1 unit high; y points up, the floor is y = 0, the ceiling y = 1.
"""

from __future__ import annotations

# Object colours: saturated RGB, pairwise RGB distance >= 127, >= 180 from every background and
# >= 214 from both occluder greys (checked by tests/test_world.py).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "orange": (255, 128, 0),
}

# Backgrounds: neutral, so that saturation alone separates objects from the background.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}

# The occluder is a neutral bar too, the one of these farthest from the scene's background.
OCCLUDER_COLOURS: dict[str, tuple[int, int, int]] = {
    "dark gray": (56, 56, 56),
    "light gray": (200, 200, 200),
}
OCCLUDER_WIDTH = 0.12  # scene units

SHAPES: tuple[str, ...] = ("ball", "square", "triangle")

# Half-extent r in scene units: a ball has radius r, a square half-side r, a triangle base 2r and
# height 2r, so every shape fills the box [x-r, x+r] x [y-r, y+r] and touches walls exactly.
SIZES: dict[str, float] = {"small": 0.07, "large": 0.12}

DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, 1.0),
    "down": (0.0, -1.0),
    "up-right": (0.70710678, 0.70710678),
    "up-left": (-0.70710678, 0.70710678),
    "down-right": (0.70710678, -0.70710678),
    "down-left": (-0.70710678, -0.70710678),
}

# Motions an object starts with. Zero-gravity scenes drift at constant velocity (bouncing
# elastically off the walls); gravity scenes fall and bounce with restitution.
ZERO_G_MOTIONS: tuple[str, ...] = (*DIRECTIONS, "still")
GRAVITY_MOTIONS: tuple[str, ...] = ("falls", "bounces-right", "bounces-left")
MOTIONS: tuple[str, ...] = ZERO_G_MOTIONS + GRAVITY_MOTIONS

CAMERAS: tuple[str, ...] = ("static", "pan-left", "pan-right")
WALLS: tuple[str, ...] = ("left", "right", "floor", "ceiling")

# Physics constants (scene units and seconds).
GRAVITY = 4.0  # units/s^2: a drop from the top reaches the floor in ~0.7 s
WALL_RESTITUTION = 0.8  # gravity scenes; zero-g walls and object-object collisions are elastic
DRIFT_SPEED = (0.25, 0.5)  # units/s for constant-velocity motion
THROW_SPEED = (0.3, 0.6)  # horizontal speed of a "bounces" throw
CAMERA_SPEED = (0.15, 0.3)  # units/s of a pan
REST_SPEED = 0.05  # a floor bounce slower than this comes to rest (stops the infinite bounce series)

MAX_OBJECTS = 3


def occluder_colour_for(background: str) -> str:
    """The occluder colour most distant from `background`."""
    bg = BACKGROUNDS[background]
    return max(OCCLUDER_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(OCCLUDER_COLOURS[n], bg)))
