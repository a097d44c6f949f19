"""Multi-shot metrics: does a video cut where its prompt says, keep who is who across the cuts, and
keep the action going through them? Scored only for prompts with cuts ("..., then cut to a
close-up of the red ball"), so single-shot results do not change. Definitions: docs/multishot.md.

| metric | checks |
| --- | --- |
| cuts | the number of cuts seen in the video (from the video alone) is the prompt's; each falls on a frame 1 + 4k (no latent frame holds two shots) |
| identity | per cut: the same colours on both sides (a close-up shows a subset: nothing new); each colour keeps its shape; a close-up's object is on both sides, larger by about the zoom |
| continuity | per cut and object seen on both sides: its position just after the cut, mapped through the new shot's camera, is where its motion before the cut takes it (error in frames of its motion); a reverse angle mirrors the horizontal motion |

Cameras, as the world films them (src/spacetime/world/shots.py): the wide view; a reverse angle is
the wide view mirrored left-right; a close-up zooms on its object and keeps it centred. Positions
are compared in "wide pixels" (the wide view's pixel coordinates). In a close-up the camera is
pinned to its object, so the object's own position there says nothing about continuity; the other
objects in view do, relative to it.
"""

from __future__ import annotations

import numpy as np

from spacetime.eval.track import TOUCH_PX, ClipTrack, box_gap, min_area
from spacetime.world import vocab
from spacetime.world.scene import SceneSpec
from spacetime.world.shots import CLOSE_UP_ZOOM, CUT_STRIDE, ShotSpec

MULTISHOT_METRICS = ("cuts", "identity", "continuity")
ZOOM_JUMP = 1.4  # a whole object's size changing by this factor between two frames is a cut
# a step beyond JUMP_RATIO x the larger neighbouring step (x2 with one neighbour) + gravity's share +
# JUMP_PX is a jump: a fall into a floor bounce takes one long step before shorter ones
JUMP_RATIO, JUMP_PX = 1.5, 3.0
ZOOM_RANGE = (1.5, 2.8)  # a close-up's object grows by this much (the world's zoom is 2)
CONTINUITY_TOL = 3.0  # frames of the object's motion an object may be off after a cut
MIN_STEP_PX = 1.5  # wide pixels: the floor of "one frame of motion" (still objects, tracker noise)


def _ok(tr, k: int) -> bool:
    """Frame k shows the object whole and clear of the bar and other objects: its position and size
    are exact there (one partly covered by another object seems to jump)."""
    return 0 <= k < len(tr.area) and bool(tr.clean[k])


def detect_cuts(ct: ClipTrack) -> list[int]:
    """Frames that start a new shot, from the video alone. Evidence at frame k, any of:
    - a zoom: the objects whole on both sides change size by ZOOM_JUMP or more (their median);
    - a jump: a whole object moves farther than motion allows: its step from k-1 to k exceeds its
      neighbouring steps plus what gravity can add in a frame (and JUMP_PX), while it touches no
      other object (a collision may start it moving) — position, not velocity, so bounces pass;
    - an object appears or vanishes in mid-view from one frame to the next (and its motion does
      not carry it wholly out of view there: a fast one may leave the view in one frame);
    - a mirror (a reverse angle): the objects' columns at k are where their motion takes them,
      mirrored left-right (W - column), not where it takes them unmirrored (`_mirrored`)."""
    g_px = vocab.GRAVITY / ct.fps**2 * ct.height  # the most gravity adds to a step in a frame
    cuts = []
    for k in range(1, ct.num_frames):
        a, b = k - 1, k
        both = [tr for tr in ct.tracks.values() if tr.whole[a] and tr.whole[b]]
        # sizes from the objects clear of the frame edges where there are any: at an edge a part
        # can pass for a whole one (a triangle's tip has a square box) and grow as more comes in
        sized = [tr for tr in both if _off_edge(ct, tr, a) and _off_edge(ct, tr, b)] or both
        ratios = [tr.extent[b] / max(tr.extent[a], 1e-9) for tr in sized]
        zoom = bool(ratios) and not (1 / ZOOM_JUMP < float(np.median(ratios)) < ZOOM_JUMP)
        jump = any(_jumps(ct, tr, a, b, g_px) for tr in both)
        appear = any(tr.present[a] != tr.present[b] and _unhidden(ct, tr, a if tr.present[a] else b, b if tr.present[a] else a)
                     for tr in ct.tracks.values())
        # the mirror reads a step before k: not across a cut just seen
        if zoom or jump or appear or (k - 1 not in cuts and _mirrored(ct, k)):
            cuts.append(k)
    return cuts


def _jumps(ct: ClipTrack, tr, a: int, b: int, g_px: float) -> bool:
    step = float(np.hypot(*(tr.centroid[b] - tr.centroid[a])))
    near = [_step(tr, j, j + 1, whole=True) for j in (a - 1, b) if _seen(tr.whole, j, j + 1)]
    if not near:
        return False
    # another object within one of its (neighbouring) steps plus the other's own step may have hit
    # it between the frames (both move: a heavy one bouncing off the floor launches one resting on it)
    reach = max(TOUCH_PX, max(near))
    touching = any((box_gap(tr.bbox[[a, b]], other.bbox[[a, b]]) <= reach + _speed_beside(other, a, b)).any()
                   for other in ct.tracks.values() if other is not tr)
    ratio = JUMP_RATIO if len(near) == 2 else 2 * JUMP_RATIO
    return not touching and step > ratio * max(near) + g_px + JUMP_PX


def _mirrored(ct: ClipTrack, k: int) -> bool:
    """Is frame k the wide view mirrored left-right (a reverse angle, or back from one)? Per object
    clean at k-2, k-1 and k: its column one frame on at its last step, p, against what frame k
    shows, x. Mirrored: x is at least twice as near W - p as p (+ JUMP_PX), and no other object is
    within its step of the turning point (p + x) / 2, the centre line (a bounce off an object there
    looks the same). Unmirrored: x as clearly nearer p. Evidence: one object mirrored and none
    unmirrored (a reverse angle mirrors every object)."""
    w = ct.width
    mirrored = False
    for tr in ct.tracks.values():
        if not (k >= 2 and _ok(tr, k - 2) and _ok(tr, k - 1) and _ok(tr, k)):
            continue
        v = tr.centroid[k - 1] - tr.centroid[k - 2]
        p, x = float(tr.centroid[k - 1, 0] + v[0]), float(tr.centroid[k, 0])
        direct, mirror = abs(x - p), abs(x - (w - p))
        if direct * 2 + JUMP_PX < mirror:
            return False
        if mirror * 2 + JUMP_PX < direct:
            e = float(tr.extent[k - 1])
            cx, cy = (p + x) / 2, float(tr.centroid[k - 1, 1] + tr.centroid[k, 1]) / 2
            turn = np.array([cx - e, cy - e, cx + e, cy + e])
            reach = max(TOUCH_PX, abs(float(v[0])))
            hit = any((box_gap(turn, other.bbox[j]) <= reach) for other in ct.tracks.values()
                      if other is not tr for j in (k - 1, k) if other.present[j])
            mirrored = mirrored or not hit
    return mirrored


def _off_edge(ct: ClipTrack, tr, k: int) -> bool:
    """Is the object's box clear of every frame edge at frame k?"""
    x0, y0, x1, y1 = tr.bbox[k]
    m = TOUCH_PX + 1
    return bool(x0 > m and y0 > m and x1 < ct.width - m and y1 < ct.height - m)


def _unhidden(ct: ClipTrack, tr, seen: int, gone: int) -> bool:
    """An object seen whole in mid-view at frame `seen` and absent at `gone` with nothing there that
    could hide it: not the bar, no other object (seen in both frames) within its size of where it was,
    not so fast that its step (the one beside `seen`, carried on to `gone`) takes it out of view (all
    but less than the tracker sees), and not near another object and an edge, where a collision
    between the frames may knock it out of view."""
    if not _mid_view(ct, tr, seen):
        return False
    back = seen + (seen - gone)  # its step on the other side: where its motion takes it at `gone`
    own = _step(tr, back, seen)
    if own:
        dx, dy = tr.centroid[seen] - tr.centroid[back]
        x0, y0, x1, y1 = tr.bbox[seen] + np.array([dx, dy, dx, dy])
        in_view = max(0.0, min(x1, ct.width) - max(x0, 0.0)) * max(0.0, min(y1, ct.height) - max(y0, 0.0))
        if in_view < min_area(ct.height):
            return False  # fast enough to leave the view (or come in) in one frame: what stays is too little to see
    x0, y0, x1, y1 = tr.bbox[seen]
    edge = min(x0, y0, ct.width - x1, ct.height - y1)
    for other in ct.tracks.values():
        if other is tr or not other.present[seen]:
            continue
        hit = _speed_beside(other, min(seen, gone), max(seen, gone))
        if box_gap(tr.bbox[seen], other.bbox[seen]) <= max(TOUCH_PX, own) + hit and edge <= own + 2 * hit:
            return False  # a collision between the frames may have knocked it out of view (it gains up to twice the other's speed)
    size = float(tr.extent[seen]) * 2
    bar = ct.bar[gone]
    if not np.isnan(bar[0]) and x1 >= bar[0] - size and x0 <= bar[1] + size:
        return False  # it may have just come out from behind the bar
    # a hider is there on both sides (a colour that itself comes or goes at the cut hides nothing)
    return all(not (box_gap(tr.bbox[seen], other.bbox[gone]) <= size)
               for other in ct.tracks.values() if other is not tr and other.present[gone] and other.present[seen])


def _step(tr, a: int, b: int, whole: bool = False) -> float:
    """Pixels the object's centroid moves from frame a to frame b; 0 unless present (or, with
    `whole`, seen whole: a part's centroid moves with what hides it) in both."""
    if not _seen(tr.whole if whole else tr.present, a, b):
        return 0.0
    return float(np.hypot(*(tr.centroid[b] - tr.centroid[a])))


def _seen(flags: np.ndarray, a: int, b: int) -> bool:
    """Are frames a and b both in the clip and flagged (present, or whole)?"""
    return 0 <= min(a, b) and max(a, b) < len(flags) and bool(flags[a]) and bool(flags[b])


def _speed_beside(tr, a: int, b: int) -> float:
    """The object's step just before frame a and just after frame b = a + 1 (the larger), from
    frames where it is whole: across a and b a cut's displacement would count as motion."""
    return max(_step(tr, a - 1, a, whole=True), _step(tr, b, b + 1, whole=True))


def _mid_view(ct: ClipTrack, tr, k: int) -> bool:
    """Is the object whole and clear of the frame edges, the bar and other objects at frame k (so
    that it could not have just come in from the edge or from behind something)?"""
    x0, y0, x1, y1 = tr.bbox[k]
    m = TOUCH_PX + 1
    return bool(tr.clean[k]) and x0 > m and y0 > m and x1 < ct.width - m and y1 < ct.height - m


def shot_kinds(spec: SceneSpec) -> list[str]:
    return [s.kind for s in spec.shots]


def _close_up_colour(shot: ShotSpec, matched: list) -> str | None:
    """The tracked colour a prompt's close-up frames: its colour, or the colour matched to the first
    prompt object of its shape."""
    if shot.colour:
        return shot.colour
    return next((c for o, c in matched if c and (shot.shape is None or o.shape == shot.shape)), None)


def _size(tr, frames: list[int]) -> float | None:
    vals = [np.sqrt(tr.coverage[k]) for k in frames if _ok(tr, k)]
    return float(np.median(vals)) if vals else None


def score_multishot(spec: SceneSpec, ct: ClipTrack, matched: list) -> tuple[dict, dict]:
    """The three multi-shot metrics for a prompt with cuts, and what was measured (JSON-ready)."""
    from spacetime.eval.metrics import _Checks  # here: metrics imports this module

    cuts = detect_cuts(ct)
    asked = len(spec.shots) - 1
    c_checks, i_checks, k_checks = _Checks(), _Checks(), _Checks()
    c_checks.add(len(cuts) == asked, f"{asked} cut(s) asked, {len(cuts)} seen" + (f" (at frames {cuts})" if cuts else ""))
    for c in cuts:
        c_checks.add((c - 1) % CUT_STRIDE == 0, f"a cut at frame {c} is not on a frame 1+{CUT_STRIDE}k: a latent frame holds two shots")
    # shots as the prompt names them, where the count agrees; otherwise every cut is judged wide to wide
    kinds = shot_kinds(spec) if len(cuts) == asked else ["wide"] * (len(cuts) + 1)
    starts = [0, *cuts, ct.num_frames]
    errors: list[float] = []
    for n, c in enumerate(cuts):
        before, after = kinds[n], kinds[n + 1]
        a_frames = list(range(max(starts[n], c - 3), c))
        b_frames = list(range(c, min(starts[n + 2], c + 3)))
        framed = None
        if len(cuts) == asked:
            for shot in (spec.shots[n], spec.shots[n + 1]):
                if shot.kind == "close-up":
                    framed = _close_up_colour(shot, matched)
        zoom = _identity(ct, c, before, after, a_frames, b_frames, framed, i_checks)
        errors += _continuity(spec, ct, c, before, after, framed, zoom, k_checks)
    metrics = {"cuts": c_checks.result(), "identity": i_checks.result(), "continuity": k_checks.result()}
    measured = {"cuts": cuts, "cuts_asked": asked, "continuity_errors": [round(e, 3) for e in errors]}
    return metrics, measured


def _identity(ct, c, before, after, a_frames, b_frames, framed, checks) -> float:
    """Identity checks at the cut; returns the zoom seen on the close-up's object (or the world's)."""
    tracks = ct.tracks
    seen_a = {col for col, tr in tracks.items() if tr.present[c - 1]}
    seen_b = {col for col, tr in tracks.items() if tr.present[c]}
    # an object cut by the frame edge or the bar may leave or enter right at the cut
    edge = {col for col, tr in tracks.items() if not (tr.whole[c - 1] and tr.whole[c])}
    zoom = CLOSE_UP_ZOOM
    if "close-up" not in (before, after):
        new = (seen_a ^ seen_b) - {col for col in seen_a ^ seen_b if not _whole_where_present(tracks[col], c)}
        checks.add(not new, f"at the cut at frame {c}: {sorted(new)} on one side only")
    else:
        wide_side, close_side = (seen_a, seen_b) if after == "close-up" else (seen_b, seen_a)
        new = close_side - wide_side - edge
        checks.add(not new, f"the close-up at frame {c} shows {sorted(new)}, not in the shot beside it")
        if framed is not None:
            there = framed in seen_a and framed in seen_b
            checks.add(there, f"the close-up's {framed} object is not on both sides of the cut at frame {c}")
            if there:
                sa, sb = _size(tracks[framed], a_frames), _size(tracks[framed], b_frames)
                if sa and sb:
                    zoom = sb / sa if after == "close-up" else sa / sb
                    checks.add(ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1],
                               f"the {framed} object grows {zoom:.2f}x into the close-up at frame {c}; a close-up zooms {CLOSE_UP_ZOOM:g}x")
    for col in seen_a & seen_b:
        frames = np.arange(ct.num_frames)
        # judged on frames that show the object clear of every edge: one cut at a corner looks square
        clear = np.array([_mid_view(ct, tracks[col], k) for k in frames])
        sa = tracks[col].shape(np.isin(frames, a_frames) & clear)
        sb = tracks[col].shape(np.isin(frames, b_frames) & clear)
        if sa and sb:
            checks.add(sa == sb, f"the {col} object is a {sa} before the cut at frame {c} and a {sb} after")
    return float(np.clip(zoom, *ZOOM_RANGE))


def _whole_where_present(tr, c: int) -> bool:
    """Seen clear (of the edges, the bar and other objects) wherever it is seen at the cut: one
    that is not may have just gone out of sight behind something."""
    return bool((tr.clean[c - 1] or not tr.present[c - 1]) and (tr.clean[c] or not tr.present[c]))


def _to_wide(ct, kind: str, px: np.ndarray, cam: np.ndarray | None, zoom: float) -> np.ndarray:
    """Image pixels (column, row) of a shot -> wide pixels (cam: the close-up's centre in wide pixels)."""
    if kind == "reverse":
        return np.array([ct.width - px[0], px[1]])
    if kind == "close-up":
        return cam + (px - np.array([ct.width / 2, ct.height / 2])) / zoom
    return px


def _continuity(spec, ct, c, before, after, framed, zoom, checks) -> list[float]:
    """Continuity checks at the cut; returns the errors measured (frames of motion)."""
    if before == "close-up" and after == "close-up":
        checks.notes.append(f"the cut at frame {c} joins two close-ups: no side shows the whole scene, not judged")
        return []
    # predict the far side from the side that shows the whole scene (the shot before, if both do)
    observed = "before" if before != "close-up" else "after"
    o_kind, p_kind = (before, after) if observed == "before" else (after, before)
    o_k, o_prev, p_k = (c - 1, c - 2, c) if observed == "before" else (c, c + 1, c - 1)
    tracks = ct.tracks
    pred: dict[str, np.ndarray] = {}
    vel: dict[str, np.ndarray] = {}
    for col, tr in tracks.items():
        if _ok(tr, o_k) and _ok(tr, o_prev):
            u_k = _to_wide(ct, o_kind, tr.centroid[o_k], None, 1.0)
            u_prev = _to_wide(ct, o_kind, tr.centroid[o_prev], None, 1.0)
            vel[col] = u_k - u_prev  # wide pixels per frame, in the observed side's time direction
            pred[col] = u_k + vel[col]
    cam = None
    if p_kind == "close-up":
        if framed is None or framed not in pred:
            checks.notes.append(f"the close-up's object is not seen whole next to the cut at frame {c}: continuity not judged")
            return []
        cam = pred[framed]  # the world's close-up is centred on its object
    errors = []
    for col, p in pred.items():
        tr = tracks[col]
        if not _ok(tr, p_k):
            continue
        if cam is not None and col == framed:
            continue  # pinned to the centre by the camera: its place there says nothing
        u = _to_wide(ct, p_kind, tr.centroid[p_k], cam, zoom)
        step = max(float(np.hypot(*vel[col])), MIN_STEP_PX)
        err = float(np.hypot(*(u - p))) / step
        errors.append(err)
        side = "after" if observed == "before" else "before"
        checks.add(err <= CONTINUITY_TOL,
                   f"the {col} object {side} the cut at frame {c} is {err:.1f} frames of its motion from where its motion takes it")
        if "reverse" in (before, after) and "wide" in (before, after) and _ok(tr, p_k + (1 if observed == "before" else -1)):
            # the reverse angle mirrors the motion: horizontal image velocity changes sign
            q = p_k + (1 if observed == "before" else -1)
            v_p = (tr.centroid[q] - tr.centroid[p_k])[0] * (1 if observed == "before" else -1)
            v_o = (tr.centroid[o_k] - tr.centroid[o_prev])[0] * (1 if observed == "before" else -1)
            margin = max(abs(v_o), abs(v_p)) + TOUCH_PX + 1
            at_edge = any(tr.bbox[f, 0] <= margin or tr.bbox[f, 2] >= ct.width - margin for f in (o_k, p_k))
            if abs(v_o) >= 1.0 and abs(v_p) >= 1.0 and not at_edge:
                checks.add(v_o * v_p < 0, f"the {col} object moves the same way across the reverse angle at frame {c}: not mirrored")
    return errors


def multishot_summary(scores: list) -> dict:
    """The multi-shot figures over the clips whose prompt has cuts: cut-count accuracy, the share of
    clips keeping identity at every cut, and the continuity error (frames of motion) over every
    object judged at a cut."""
    ms = [s for s in scores if "multishot" in s.measured]
    errs = [e for s in ms for e in s.measured["multishot"]["continuity_errors"]]
    ident = [s.metrics["identity"].score for s in ms if s.metrics["identity"].score is not None]
    return {
        "clips": len(ms),
        "cut_count_accuracy": None if not ms else round(float(np.mean(
            [len(s.measured["multishot"]["cuts"]) == s.measured["multishot"]["cuts_asked"] for s in ms])), 4),
        "identity_kept": None if not ident else round(float(np.mean([v >= 1 - 1e-9 for v in ident])), 4),
        "continuity_error_median": None if not errs else round(float(np.median(errs)), 3),
        "continuity_error_p90": None if not errs else round(float(np.percentile(errs, 90)), 3),
        "continuity_tolerance": CONTINUITY_TOL,
    }
