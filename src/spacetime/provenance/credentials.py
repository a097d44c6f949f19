"""C2PA Content Credentials with the maintained `c2pa-python` library: sign an output, read one back.

A spacetime manifest holds
- `c2pa.actions.v2`: a `c2pa.created` action with digital source type trainedAlgorithmicMedia and
  the software agent (spacetime and its version); in video->video modes, the inputs as `inputTo`
  ingredients referenced by the actions (`c2pa.edited` for edit and extend, the created action for
  image->video and connect), so the history survives;
- `org.spacetime.generation`: the model (name and SHA-256 of its weights), the generation
  parameters and seed, the mode, the inputs' SHA-256, and the prompt's SHA-256 (the prompt itself
  only when the user asks).

Nothing is fetched from the network: remote manifests, OCSP and timestamp authorities are off.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from spacetime import __version__
from spacetime.atomic import atomic_path
from spacetime.provenance.identity import SigningIdentity, SigningKeyError

log = logging.getLogger(__name__)

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.spacetime.generation"
GENERATOR = "spacetime"
# offline, and no thumbnail (it would be a second, unmarked copy of the picture) or automatic actions
_BASE_SETTINGS = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {
        "thumbnail": {"enabled": False},
        "actions": {k: {"enabled": False} for k in ("auto_created_action", "auto_opened_action", "auto_placed_action")},
    },
}
# the mode's action on its main input (the others are inputs to the created action)
_EDIT_ACTIONS = {"edit": "regenerated from the input video (SDEdit) at strength {strength}",
                 "extend-forward": "extended forward in time from the input video",
                 "extend-backward": "extended backward in time from the input video"}


class ProvenanceError(RuntimeError):
    """Signing failed (the output is left untouched)."""


@dataclass(frozen=True)
class Ingredient:
    path: Path  # the input file
    role: str  # "image", "video" or "video2": how generation used it


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(model_dir: str | os.PathLike, name: str | None = None) -> dict:
    """{"name", "sha256"}: the SHA-256 over every weights file (relative path and bytes, sorted)."""
    model_dir = Path(model_dir)
    files = sorted(model_dir.rglob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no .safetensors weights to identify the model by")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(model_dir).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return {"name": name or model_dir.resolve().name, "sha256": h.hexdigest()}


def guidance_interval_parameters(interval) -> dict:
    """A guidance interval (lo, hi) as two generation parameters: a manifest's custom assertion
    gives a list back empty, numbers as they were."""
    lo, hi = (float(v) for v in interval)
    return {"guidance_interval_low": lo, "guidance_interval_high": hi}


def guidance_method_parameters(method: str, options: dict) -> dict:
    """A guidance method and its options as flat generation parameters (guidance_method,
    guidance_<option>): a manifest's custom assertion keeps strings and numbers as they were."""
    return {"guidance_method": method, **{f"guidance_{k}": v for k, v in sorted(options.items())}}


def generation_claims(*, prompt: str, model: dict, parameters: dict, seed: int, mode: str,
                      embed_prompt: bool = False, negative_prompt: str | None = None) -> dict:
    """What a manifest says about how a video was made; the prompt only as a hash unless `embed_prompt`."""
    claims = {
        "model": model,
        "mode": mode,
        "seed": seed,
        "parameters": parameters,
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if negative_prompt:
        claims["negative_prompt_sha256"] = hashlib.sha256(negative_prompt.encode()).hexdigest()
    if embed_prompt:
        claims["prompt"] = prompt
        if negative_prompt:
            claims["negative_prompt"] = negative_prompt
    return claims


def _format(path: Path) -> str:
    """The MIME type C2PA knows the file by (video/mp4, image/png...), else its extension."""
    mime = mimetypes.guess_type(path.name)[0]
    return mime or path.suffix.lower().lstrip(".")


# ISO-BMFF major brands (the 4 bytes after "ftyp") that are not MP4 video
_FTYP_BRANDS = {b"qt  ": "video/quicktime", b"M4V ": "video/x-m4v", b"M4A ": "audio/mp4",
                b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
                b"hevc": "image/heic", b"hevx": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
                b"avif": "image/avif", b"avis": "image/avif", b"crx ": "image/x-canon-cr3"}
# top-level QuickTime atoms that old .mov files start with, before "ftyp" existed
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def sniff_mime(path: str | os.PathLike) -> str | None:
    """The MIME type of a file by its first bytes (magic numbers), None when none is recognized.

    An input's extension says nothing reliable about its bytes (a PNG saved as .jpg opens fine in
    every viewer and in our decoder), and C2PA refuses an ingredient declared as the wrong format.
    """
    with open(path, "rb") as f:
        return mime_of_bytes(f.read(64))


def mime_of_bytes(head: bytes) -> str | None:
    """`sniff_mime` of a file's first bytes (64 are enough), for bytes not yet on disk (uploads)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo", b"WAVE": "audio/wav"}.get(head[8:12])
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the DocType element names WebM or Matroska
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "image/jxl"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")  # isom, mp41, mp42, avc1, iso2...: MP4
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    return None


def _context(settings: dict, signer=None):
    import c2pa

    return c2pa.Context.from_dict({**_BASE_SETTINGS, **settings}, signer=signer)


def _manifest(title: str, claims: dict, ingredients: list[Ingredient], labels: dict[str, str]) -> dict:
    agent = {"name": GENERATOR, "version": __version__}
    created = {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent,
               "description": f"generated by {GENERATOR} {__version__} ({claims.get('mode', 'text-to-video')})"}
    actions = [created]
    mode = claims.get("mode", "")
    edited = [i for i in ingredients if i.role == "video" and mode in _EDIT_ACTIONS and i.path in labels]
    others = [labels[i.path] for i in ingredients if i.path in labels and i not in edited]
    if others:
        created["parameters"] = {"ingredientIds": others}
    for ing in edited:
        text = _EDIT_ACTIONS[mode].format(strength=claims.get("parameters", {}).get("strength"))
        actions.append({"action": "c2pa.edited", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent,
                        "description": text, "parameters": {"ingredientIds": [labels[ing.path]]}})
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}},
                       {"label": GENERATION_LABEL, "data": claims}],
    }


def sign_file(src: str | os.PathLike, dest: str | os.PathLike, claims: dict, identity: SigningIdentity,
              ingredients: list[Ingredient] = ()) -> None:
    """Embed a signed manifest: `src` (MP4, PNG, GIF, JPEG...) -> `dest`, atomically; `dest` may be `src`.

    The media bytes are copied unchanged (C2PA adds a box/chunk), so every frame decodes as before.
    """
    import c2pa

    src, dest = Path(src), Path(dest)
    fmt = _format(dest)  # our own output, written by its extension
    supported = c2pa.Builder.get_supported_mime_types()
    if fmt not in supported:
        raise ValueError(f"{dest}: C2PA cannot sign {fmt} files")
    claims = dict(claims)
    # Every input is recorded by its SHA-256 in our claims. It is also attached as a C2PA ingredient
    # when C2PA can parse it; when not, the output is still signed: the video is already generated,
    # and an input's format is no reason to lose it.
    inputs, labels, mimes = [], {}, {}
    for i, ing in enumerate(ingredients):
        digest = sha256_file(ing.path)  # also a clear error for a missing input
        inputs.append({"role": ing.role, "title": Path(ing.path).name, "sha256": digest})
        mime = sniff_mime(ing.path)
        if mime in supported:
            labels[ing.path], mimes[ing.path] = f"input-{i}-{ing.role}", mime
        else:
            why = f"C2PA cannot read {mime} files" if mime else "its content is no format C2PA reads"
            log.warning("%s: not attached to %s as a C2PA ingredient (%s); its SHA-256 is in the claims",
                        ing.path, dest.name, why)
    if inputs:
        claims["inputs"] = inputs
    try:
        settings = {"trust": {"user_anchors": identity.trust_anchors_pem.decode()}} if identity.trust_anchors_pem else {}
        while True:
            builder = c2pa.Builder(_manifest(dest.name, claims, list(ingredients), labels),
                                   context=_context(settings, _signer(identity)))
            bad = _add_ingredients(builder, ingredients, labels, mimes)
            if bad is None:
                break
            # the magic bytes looked right but C2PA could not parse the rest (a damaged file...):
            # drop it and start over, since the manifest's actions name every attached ingredient
            builder.close()
            ing, err = bad
            log.warning("%s: not attached to %s as a C2PA ingredient (C2PA could not parse it as %s: %s); "
                        "its SHA-256 is in the claims", ing.path, dest.name, mimes[ing.path], err)
            del labels[ing.path]
        with open(src, "rb") as fin, atomic_path(dest) as tmp, open(tmp, "w+b") as fout:
            builder.sign(fmt, fin, fout)
    except c2pa.C2paError as e:
        raise ProvenanceError(f"{dest}: C2PA signing with {identity.source} failed: {e}") from None


def _signer(identity: SigningIdentity):
    import c2pa

    # a new one for each Builder: its context takes ownership and closes it
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(identity.alg, identity.cert_chain_pem, identity.key_pem, None))


def _add_ingredients(builder, ingredients, labels: dict, mimes: dict):
    """Attach each labelled input; (the ingredient, the error) of the first C2PA cannot parse, else None."""
    import c2pa

    for ing in ingredients:
        if ing.path in labels:
            try:
                with open(ing.path, "rb") as f:
                    builder.add_ingredient({"title": Path(ing.path).name, "relationship": "inputTo",
                                            "label": labels[ing.path]}, mimes[ing.path], f)
            except c2pa.C2paError as e:
                return ing, e
    return None


def _ingredient(i: dict, store: dict) -> dict:
    """An ingredient, and what its own manifest (carried in the store) claims: a spacetime output
    another tool opened and re-signed keeps our claim there, as the ingredient's."""
    out = {k: i.get(k) for k in ("title", "relationship", "format")}
    own = store.get("manifests", {}).get(i.get("active_manifest") or "")
    if own:
        claims = _summary(own, store)
        failures = (i.get("validation_results") or {}).get("activeManifest", {}).get("failure", [])
        out["manifest"] = {"ai_generated": claims["ai_generated"], "generator": claims["generator"],
                           "signer": claims["signer"].get("common_name"),
                           "valid": not [f for f in failures if not str(f.get("code")).startswith("signingCredential.untrusted")]}
    return out


def _summary(active: dict, store: dict | None = None) -> dict:
    actions = [a for asr in active.get("assertions", []) if asr.get("label", "").startswith("c2pa.actions")
               for a in asr.get("data", {}).get("actions", [])]
    created = next((a for a in actions if a.get("action") == "c2pa.created"), None)
    generation = next((asr.get("data") for asr in active.get("assertions", []) if asr.get("label") == GENERATION_LABEL), None)
    source = created.get("digitalSourceType", "") if created else ""
    agent = (created or {}).get("softwareAgent") or {}
    agent = agent if isinstance(agent, dict) else {"name": str(agent)}
    return {
        "ai_generated": source.endswith(("/trainedAlgorithmicMedia", "/compositeWithTrainedAlgorithmicMedia")),
        "digital_source_type": source or None,
        "generator": " ".join(str(agent.get(k)) for k in ("name", "version") if agent.get(k)) or None,
        "title": active.get("title"),
        "actions": [{k: a[k] for k in ("action", "description") if k in a} for a in actions],
        "ingredients": [_ingredient(i, store or {}) for i in active.get("ingredients", [])],
        "generation": generation,
        "signer": {k: active.get("signature_info", {}).get(k) for k in ("issuer", "common_name", "alg", "time")},
    }


# a JUMBF description box typed as a C2PA manifest store (UUID 63327061-0011-0010-8000-00AA00389B71)
_STORE = b"jumdc2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
_SCAN = 64 << 20  # bytes searched at each end of a file


def _holds_manifest_bytes(path: Path) -> bool:
    """Whether the raw bytes hold a C2PA manifest store. Writers put it near the start (MP4: a uuid
    box before the media; PNG: a chunk before the pixels) or at the end, so the first and last
    64 MiB are searched: a damaged 6 GB file is not read whole to answer."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(_SCAN).find(_STORE) >= 0:
            return True
        if size <= _SCAN:
            return False
        f.seek(max(_SCAN - len(_STORE), size - _SCAN))  # overlapping the first part by the box's length
        return f.read().find(_STORE) >= 0


def _readable(path: Path) -> bool:
    """Whether C2PA reads the file with no trust anchors set."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(str(path), context=_context({}))
    except c2pa.C2paError:
        return False
    if reader is not None:
        reader.close()
    return True


def read_credentials(path: str | os.PathLike, trust_anchors_pem: str = "") -> dict:
    """The file's C2PA manifest: present, valid (intact), trusted (chains to an anchor), state,
    failures (C2PA status codes) and a summary of what it claims."""
    import c2pa

    path = Path(path)
    out = {"present": False, "valid": False, "trusted": False, "state": None, "failures": [], "claims": None}
    settings = {"trust": {"user_anchors": trust_anchors_pem}} if trust_anchors_pem.strip() else {}
    try:
        reader = c2pa.Reader.try_create(str(path), context=_context(settings))
    except c2pa.C2paError.NotSupported:
        out["note"] = f"C2PA does not read {_format(path)} files"
        return out
    except c2pa.C2paError as e:
        if settings and _readable(path):
            # the file reads without the anchors: they are at fault, not the file (C2PA parses
            # the anchors only while reading a manifest, so a bad one fails every signed file)
            raise SigningKeyError(f"C2PA cannot use the trust anchors ({e})") from None
        # C2PA raises the same error for a damaged file with a manifest and for a damaged file
        # without one: only the first is "changed after signing"; the second just has no
        # credentials to read
        if not _holds_manifest_bytes(path):
            out["note"] = f"the file could not be parsed as {_format(path)} and holds no C2PA manifest ({e})"
            return out
        out.update(present=True, state="Invalid", failures=[{"code": "manifest.unreadable", "explanation": str(e)}])
        return out
    if reader is None:
        return out
    with reader:
        store = json.loads(reader.json())
        state = reader.get_validation_state()
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = [{"code": f.get("code"), "explanation": f.get("explanation")} for f in results.get("failure", [])]
    integrity = [f for f in failures if not f["code"].startswith("signingCredential.untrusted")]
    active = store.get("manifests", {}).get(store.get("active_manifest"), {})
    out.update(present=True, state=state, failures=failures, claims=_summary(active, store) if active else None,
               valid=state in ("Valid", "Trusted") and not integrity, trusted=state == "Trusted")
    return out
