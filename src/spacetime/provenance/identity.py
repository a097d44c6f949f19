"""Who signs: a local signing identity made on first use, or the user's own certificate and key.

The local identity is a small PKI in the user's config directory (never in the repo or the
package): a root CA certificate `ca.pem` (its private key is discarded once it has issued the
signing certificate, so it cannot issue anything else), and an ES256 signing certificate
`signer.pem` with its key `signer.key` (file mode 0600). The signing certificate follows the
profile C2PA validators require of a claim signer: X.509 v3, not a CA, a critical key usage with
digitalSignature, and an extended key usage of emailProtection (never anyExtendedKeyUsage).
`spacetime verify` trusts `ca.pem` by default, so files signed on this machine show as trusted
here and as signed-but-untrusted elsewhere, which is the honest answer.

Where: `$SPACETIME_CONFIG_DIR`, else `$XDG_CONFIG_HOME/spacetime`, else `~/.config/spacetime`;
every function also takes the directory as a parameter (tests point it at a temp folder).
`<config>/signing.json` may name the user's own `{"cert": ..., "key": ..., "trust_anchors": ...}`.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

SIGNING_DIR = "signing"
_VALID_DAYS = 3650


class SigningKeyError(ValueError):
    """A signing certificate or key that is missing, unreadable or unusable; names the file."""


@dataclass(frozen=True)
class SigningIdentity:
    cert_chain_pem: bytes  # the signing certificate first, then intermediates (PEM)
    key_pem: bytes  # the private key (PEM)
    alg: str  # the C2PA signing algorithm: es256, es384, es512, ps256 or ed25519
    source: str  # where it came from, for messages and the sidecar
    trust_anchors_pem: bytes | None = None  # the root(s) that `verify` on this machine trusts


def config_dir(path: str | os.PathLike | None = None) -> Path:
    """The spacetime config directory (see the module docstring); `path` wins when given."""
    if path is not None:
        return Path(path)
    if os.environ.get("SPACETIME_CONFIG_DIR"):
        return Path(os.environ["SPACETIME_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "spacetime"


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Atomic write whose temp file already has `mode`: a key is never world-readable, even briefly."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _name(common_name: str):
    from cryptography.x509 import Name, NameAttribute
    from cryptography.x509.oid import NameOID

    return Name([NameAttribute(NameOID.ORGANIZATION_NAME, "spacetime"), NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_local_identity(directory: str | os.PathLike | None = None) -> SigningIdentity:
    """Make a fresh local CA and ES256 signing certificate in `<config>/signing/`, replacing any."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder = config_dir(directory) / SIGNING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=_VALID_DAYS)
    host = os.uname().nodename if hasattr(os, "uname") else "local"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"spacetime local CA ({host})")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(f"spacetime generator ({host})")).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # digitalSignature only (positional: digital_signature, content_commitment, key_encipherment,
        # data_encipherment, key_agreement, key_cert_sign, crl_sign, encipher_only, decipher_only)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ca_pem, chain = ca.public_bytes(pem), cert.public_bytes(pem) + ca.public_bytes(pem)
    # key first, certificate last: a half-made identity has no signer.pem and is made again
    _write_private(folder / "signer.key", key_pem, 0o600)
    _write_private(folder / "ca.pem", ca_pem, 0o644)
    _write_private(folder / "signer.pem", chain, 0o644)
    return SigningIdentity(chain, key_pem, "es256", f"local identity in {folder}", ca_pem)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{what} {path}: no such file") from None
    except (PermissionError, IsADirectoryError) as e:
        raise SigningKeyError(f"{what} {path}: cannot be read ({e.strerror})") from None


def _alg_for(key, path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in algs:
            return algs[key.curve.name]
    elif isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise SigningKeyError(f"signing key {path}: {type(key).__name__} cannot sign C2PA manifests "
                          "(use EC P-256/384/521, RSA or Ed25519)")


def load_identity(cert: str | os.PathLike, key: str | os.PathLike,
                  trust_anchors: str | os.PathLike | None = None) -> SigningIdentity:
    """The user's own signing certificate chain (PEM, signer first) and private key (PEM, unencrypted)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert, key = Path(cert), Path(key)
    chain, key_pem = _read(cert, "signing certificate"), _read(key, "signing key")
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise SigningKeyError(f"signing certificate {cert}: not a PEM certificate chain") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"signing key {key}: not an unencrypted PEM private key ({e})") from None
    alg = _alg_for(private, key)
    if certs[0].public_key().public_numbers() != private.public_key().public_numbers():
        raise SigningKeyError(f"signing key {key} does not belong to the certificate {cert} (the first in the file)")
    anchors = _read(Path(trust_anchors), "trust anchors") if trust_anchors is not None else None
    return SigningIdentity(chain, key_pem, alg, f"{cert}", anchors)


def local_identity(directory: str | os.PathLike | None = None, create: bool = True) -> SigningIdentity:
    """The local identity in `<config>/signing/`, made on first use when `create`."""
    folder = config_dir(directory) / SIGNING_DIR
    if not (folder / "signer.pem").is_file():
        if not create:
            raise SigningKeyError(f"no local signing identity in {folder}")
        return create_local_identity(directory)
    ident = load_identity(folder / "signer.pem", folder / "signer.key", folder / "ca.pem")
    return SigningIdentity(ident.cert_chain_pem, ident.key_pem, ident.alg, f"local identity in {folder}",
                           ident.trust_anchors_pem)


def _settings(directory: str | os.PathLike | None) -> dict:
    path = config_dir(directory) / "signing.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SigningKeyError(f"{path}: cannot be read as JSON ({e})") from None
    unknown = set(data) - {"cert", "key", "trust_anchors"} if isinstance(data, dict) else None
    if unknown is None or unknown:
        raise SigningKeyError(f"{path}: expected an object with keys cert, key, trust_anchors; got {data!r}")
    return data


def resolve_identity(cert: str | os.PathLike | None = None, key: str | os.PathLike | None = None,
                     directory: str | os.PathLike | None = None) -> SigningIdentity:
    """Flags first (`cert` and `key` together), then `<config>/signing.json`, then the local identity."""
    if (cert is None) != (key is None):
        raise SigningKeyError("give the signing certificate and its key together (--sign-cert and --sign-key)")
    if cert is not None:
        return load_identity(cert, key)
    conf = _settings(directory)
    if conf:
        if "cert" not in conf or "key" not in conf:
            raise SigningKeyError(f"{config_dir(directory) / 'signing.json'}: needs both cert and key")
        return load_identity(conf["cert"], conf["key"], conf.get("trust_anchors"))
    return local_identity(directory)


def trust_anchors(directory: str | os.PathLike | None = None, extra: list[str | os.PathLike] = (),
                  local: bool = True) -> str:
    """PEM roots `verify` trusts: the local CA (if made and `local`), signing.json's, and `extra` files.

    Raises SigningKeyError naming a file that is missing or holds no valid PEM certificate, and for
    an unreadable signing.json: a trust setting that cannot be used means nothing can be checked."""
    pems = []
    local_ca = config_dir(directory) / SIGNING_DIR / "ca.pem"
    if local and local_ca.is_file():
        pems.append(_anchors(local_ca, "local CA"))
    conf = _settings(directory)
    if conf.get("trust_anchors"):
        pems.append(_anchors(Path(conf["trust_anchors"]), "trust anchors"))
    pems += [_anchors(Path(p), "--trust-anchors") for p in extra]
    return b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pems).decode("ascii", "replace")


def _anchors(path: Path, what: str) -> bytes:
    """A trust-anchor file's bytes, once they parse as PEM certificates: C2PA fails on a bad anchor
    while reading each file's manifest, which would make every signed file look tampered."""
    from cryptography import x509

    pem = _read(path, what)
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        why = "not a valid PEM certificate" if b"-----BEGIN CERTIFICATE-----" in pem else "not a PEM certificate file"
        raise SigningKeyError(f"{what} {path}: {why} ({e})") from None
    return pem
