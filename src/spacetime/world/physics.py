"""Event-driven 2D physics for the procedural world.

Between events every object moves on an exact parabola (or line), so the trajectory does not depend
on the frame rate it is sampled at and energy is conserved to float precision when restitution is 1.
Events are wall/floor/ceiling hits (restitution `scene.restitution` under gravity, elastic in zero
gravity) and object-object collisions (elastic, momentum conserving). Objects collide as discs of
radius r, the half-extent of their shape — exact for balls, an approximation at square corners.
A floor bounce slower than `vocab.REST_SPEED` puts the object to rest on the floor, which ends the
otherwise infinite series of ever smaller bounces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spacetime.world import vocab
from spacetime.world.scene import Scene

_EPS = 1e-9
MAX_EVENTS = 100_000
# Event-driven dynamics cannot hold bodies in lasting contact (a ball wedged on two others): the
# events then pile up without end. A burst this dense is reported, and the caller draws anew.
JAM_EVENTS, JAM_WINDOW = 100, 0.01


class JamError(RuntimeError):
    """Bodies jammed in lasting contact, which this simulator does not model."""


@dataclass
class Event:
    t: float
    kind: str  # "wall" | "collision" | "rest"
    object: int
    other: str | int  # wall name for "wall"/"rest", the other object's index for "collision"


@dataclass
class Trajectory:
    times: np.ndarray  # (T,) seconds
    positions: np.ndarray  # (T, N, 2) scene units
    velocities: np.ndarray  # (T, N, 2) units/s
    events: list[Event]


def _roots(coeffs: list[float], t_max: float) -> list[float]:
    """Real roots in (eps, t_max], ascending, of a polynomial given highest degree first."""
    c = list(coeffs)
    while c and abs(c[0]) < 1e-15:
        c.pop(0)
    if len(c) <= 1:
        return []
    if len(c) == 2:  # linear
        found = [-c[1] / c[0]]
    elif len(c) == 3:  # quadratic, in the cancellation-free form
        a, b, k = c
        disc = b * b - 4 * a * k
        if disc < 0:
            return []
        q = -0.5 * (b + np.copysign(np.sqrt(disc), b))
        found = [q / a] + ([k / q] if q != 0 else [])
    else:
        roots = np.roots(c)
        found = roots[np.abs(roots.imag) <= 1e-7 * np.maximum(1.0, np.abs(roots.real))].real.tolist()
    return sorted(t for t in found if _EPS < t <= t_max)


class _World:
    def __init__(self, scene: Scene):
        self.scene = scene
        self.p = np.array([o.position for o in scene.objects], dtype=np.float64).reshape(-1, 2)
        self.v = np.array([o.velocity for o in scene.objects], dtype=np.float64).reshape(-1, 2)
        self.r = np.array([o.radius for o in scene.objects], dtype=np.float64)
        self.m = np.array([o.mass for o in scene.objects], dtype=np.float64)
        self.g = scene.g if scene.gravity else 0.0
        self.e = scene.restitution if scene.gravity else 1.0
        # an object placed on the floor with no vertical speed rests there from the start
        self.resting = (self.g > 0) & (np.abs(self.p[:, 1] - self.r) < 1e-9) & (np.abs(self.v[:, 1]) < 1e-12)
        bad = (self.p[:, 0] < self.r - 1e-9) | (self.p[:, 0] > scene.box_width - self.r + 1e-9)
        bad |= (self.p[:, 1] < self.r - 1e-9) | (self.p[:, 1] > 1 - self.r + 1e-9)
        if bad.any():
            raise ValueError(f"objects {np.flatnonzero(bad).tolist()} start outside the box")

    def accel(self) -> np.ndarray:
        a = np.zeros_like(self.p)
        a[:, 1] = np.where(self.resting, 0.0, -self.g)
        return a

    def advance(self, dt: float) -> None:
        a = self.accel()
        self.p += self.v * dt + 0.5 * a * dt * dt
        self.v += a * dt

    def next_event(self, horizon: float) -> tuple[float, str, int, str | int] | None:
        best: tuple[float, str, int, str | int] | None = None
        a = self.accel()
        w = self.scene.box_width
        for i in range(len(self.r)):
            x, y = self.p[i]
            vx, vy = self.v[i]
            r = self.r[i]
            cands: list[tuple[float | None, str]] = []
            # max(.., 0): float error may leave an object a hair past a wall it moves into
            if vx > 0:
                cands.append((max((w - r - x) / vx, 0.0), "right"))
            elif vx < 0:
                cands.append((max((r - x) / vx, 0.0), "left"))
            if not self.resting[i] and y - r <= 1e-12 and vy < 0:
                cands.append((0.0, "floor"))
            elif not self.resting[i] and y - (1 - r) >= -1e-12 and vy > 0:
                cands.append((0.0, "ceiling"))
            elif not self.resting[i]:
                ay = a[i, 1]
                # y(t) = y + vy t + ay t^2 / 2 reaches the floor moving down / the ceiling moving up
                tf = [t for t in _roots([0.5 * ay, vy, y - r], horizon) if vy + ay * t < 0]
                tc = [t for t in _roots([0.5 * ay, vy, y - (1 - r)], horizon) if vy + ay * t > 0]
                cands += [(tf[0] if tf else None, "floor"), (tc[0] if tc else None, "ceiling")]
            for t, wall in cands:
                if t is not None and t <= horizon and (best is None or t < best[0]):
                    best = (t, "wall", i, wall)
        for i in range(len(self.r)):
            for j in range(i + 1, len(self.r)):
                d = self.p[j] - self.p[i]
                dv = self.v[j] - self.v[i]
                da = a[j] - a[i]
                R = self.r[i] + self.r[j]
                # |d + dv t + da t^2/2|^2 = R^2: a quartic, a quadratic when accelerations match
                coeffs = [
                    0.25 * da @ da,
                    dv @ da,
                    dv @ dv + d @ da,
                    2 * d @ dv,
                    d @ d - R * R,
                ]
                for t in _roots(coeffs, horizon):
                    if best is not None and t >= best[0]:
                        break
                    gap = d + dv * t + 0.5 * da * t * t
                    if gap @ (dv + da * t) < 0:  # approaching at contact, not separating
                        best = (t, "collision", i, j)
                        break
        return best

    def resolve(self, kind: str, i: int, other: str | int, t: float, events: list[Event]) -> None:
        r = self.r[i]
        if kind == "wall":
            if other in ("left", "right"):
                self.p[i, 0] = r if other == "left" else self.scene.box_width - r
                self.v[i, 0] = -self.e * self.v[i, 0]
            elif other == "ceiling":
                self.p[i, 1] = 1 - r
                self.v[i, 1] = -self.e * self.v[i, 1]
            else:
                self.p[i, 1] = r
                self.v[i, 1] = -self.e * self.v[i, 1]
                if self.g > 0 and self.v[i, 1] < vocab.REST_SPEED:
                    self.v[i, 1] = 0.0
                    self.resting[i] = True
                    events.append(Event(t, "wall", i, other))
                    events.append(Event(t, "rest", i, "floor"))
                    return
            events.append(Event(t, "wall", i, other))
            return
        j = int(other)
        n = self.p[j] - self.p[i]
        n /= np.linalg.norm(n)  # unit normal from i to j
        rest_i, rest_j = self.resting[i], self.resting[j]
        if rest_i and rest_j:
            # both on the floor: the floor keeps them there, so the exchange is along x only
            self._elastic(i, j, np.array([np.sign(n[0]) or 1.0, 0.0]))
        elif (rest_i and n[1] >= 0) or (rest_j and n[1] <= 0):
            # a body lands on a resting one: the floor holds the lower body down, so its vertical
            # velocity stays 0 and the floor's impulse keeps the collision elastic (no energy lost,
            # which would otherwise make the bounces on top shrink without end)
            k, o = (i, j) if rest_i else (j, i)
            nk = n if k == i else -n  # from the resting body to the other
            mo, mk = self.m[o], self.m[k]
            closing = self.v[o] @ nk - nk[0] * self.v[k, 0]
            if closing < 0:
                impulse = -2 * closing / (1 / mo + nk[0] ** 2 / mk)
                self.v[o] += impulse / mo * nk
                self.v[k, 0] -= impulse / mk * nk[0]
        else:
            self._elastic(i, j, n)
            for k in (i, j):
                if self.resting[k] and self.v[k, 1] > 0:
                    self.resting[k] = False  # knocked off the floor
        events.append(Event(t, "collision", i, j))

    def _elastic(self, i: int, j: int, n: np.ndarray) -> None:
        """Elastic exchange along the unit normal n (from i to j): momentum and energy conserved."""
        rel = (self.v[i] - self.v[j]) @ n  # > 0: closing
        mi, mj = self.m[i], self.m[j]
        self.v[i] -= 2 * mj / (mi + mj) * rel * n
        self.v[j] += 2 * mi / (mi + mj) * rel * n


def simulate(scene: Scene, times: np.ndarray) -> Trajectory:
    """Run `scene` and sample positions and velocities at `times` (seconds, ascending, >= 0)."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError("times must be a non-empty ascending 1-D array of seconds >= 0")
    world = _World(scene)
    n = len(scene.objects)
    positions = np.zeros((times.size, n, 2))
    velocities = np.zeros((times.size, n, 2))
    events: list[Event] = []
    t = 0.0
    k = 0
    t_end = float(times[-1])
    # the next event's absolute time stays valid until an event changes the state
    nxt = world.next_event(t_end - t + _EPS) if n else None
    while k < times.size:
        if nxt is None or t + nxt[0] > times[k]:
            world.advance(times[k] - t)
            if nxt is not None:
                nxt = (nxt[0] - (times[k] - t), *nxt[1:])
            t = float(times[k])
            positions[k], velocities[k] = world.p, world.v
            k += 1
            continue
        dt, kind, i, other = nxt
        world.advance(dt)
        t += dt
        world.resolve(kind, i, other, t, events)
        if len(events) > JAM_EVENTS and t - events[-JAM_EVENTS].t < JAM_WINDOW:
            raise JamError(f"{JAM_EVENTS} events within {JAM_WINDOW} s at t = {t:.3f} s: bodies jammed")
        if len(events) > MAX_EVENTS:
            raise JamError(f"more than {MAX_EVENTS} physics events: scene is degenerate")
        nxt = world.next_event(t_end - t + _EPS)
    return Trajectory(times, positions, velocities, events)


def energy(scene: Scene, traj: Trajectory) -> np.ndarray:
    """Total kinetic + potential energy per sampled time (T,)."""
    m = np.array([o.mass for o in scene.objects])
    ke = 0.5 * (m * (traj.velocities**2).sum(-1)).sum(-1)
    pe = (m * (scene.g if scene.gravity else 0.0) * traj.positions[..., 1]).sum(-1)
    return ke + pe
