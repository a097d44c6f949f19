"""Provenance: every output says, verifiably, that it is AI-generated (docs/provenance.md).

Two marks, checked together by `verify_file` / `spacetime verify`:
- C2PA Content Credentials (`credentials.py`), signed by the user's identity (`identity.py`);
- an invisible watermark in the pixels (`watermark.py`) that survives re-encoding, resizing and
  cropping, for when the metadata is stripped.

    >>> from spacetime.provenance import Provenance, generation_claims, write_output, verify_file
    >>> claims = generation_claims(prompt="a red ball", model={"name": "m", "sha256": "..."},
    ...                            parameters={"num_frames": 17}, seed=0, mode="text-to-video")
    >>> write_output(frames, "out.mp4", fps=8, provenance=Provenance(claims))  # doctest: +SKIP
    >>> verify_file("out.mp4")["exit_code"]  # doctest: +SKIP
    0
"""

from __future__ import annotations

from spacetime.provenance.credentials import (
    Ingredient,
    ProvenanceError,
    generation_claims,
    guidance_interval_parameters,
    guidance_method_parameters,
    model_identity,
    read_credentials,
    sign_file,
)
from spacetime.provenance.identity import (
    SigningIdentity,
    SigningKeyError,
    config_dir,
    create_local_identity,
    load_identity,
    local_identity,
    resolve_identity,
    trust_anchors,
)
from spacetime.provenance.output import Provenance, write_output
from spacetime.provenance.verify import format_report, verify_file
from spacetime.provenance.watermark import (
    DEFAULT_KEY,
    WatermarkResult,
    detect_watermark,
    watermark,
    watermark_score,
)

__all__ = [
    "DEFAULT_KEY",
    "Ingredient",
    "Provenance",
    "ProvenanceError",
    "SigningIdentity",
    "SigningKeyError",
    "WatermarkResult",
    "config_dir",
    "create_local_identity",
    "detect_watermark",
    "format_report",
    "generation_claims",
    "guidance_interval_parameters",
    "guidance_method_parameters",
    "load_identity",
    "local_identity",
    "model_identity",
    "read_credentials",
    "resolve_identity",
    "sign_file",
    "trust_anchors",
    "verify_file",
    "watermark",
    "watermark_score",
    "write_output",
]
