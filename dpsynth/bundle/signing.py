"""Ed25519 signatures of release bundles: key generation, signing and checking a signature.

A signature binds a bundle's two index files, ``manifest.json`` and ``SHA256SUMS``; every other
file is bound through them (``SHA256SUMS`` lists each file's hash and :mod:`dpsynth.bundle.verify`
checks them). The signed message is domain-separated and versioned::

    dpsynth-bundle-signature-v1
    manifest.json <sha256 hex of its bytes>
    SHA256SUMS <sha256 hex of its bytes>

The signature lives in ``signature.json``, which ``SHA256SUMS`` cannot list (it is written
after ``SHA256SUMS`` and signs it). A key is identified by its fingerprint: the SHA-256 of
the raw 32-byte public key, in hex. Nothing here reads private data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dpsynth.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "SIGNATURE_FILE",
    "SIGNED_FILES",
    "SignatureCheck",
    "check_signature",
    "fingerprint",
    "generate_key",
    "load_private_key",
    "load_public_key",
    "short_fingerprint",
    "sign_bundle",
    "signed_message",
]

log = logging.getLogger(__name__)

SIGNATURE_FILE = "signature.json"
"""The signature's file in a bundle (not listed in ``SHA256SUMS``: it signs ``SHA256SUMS``)."""

SIGNED_FILES: tuple[str, str] = ("manifest.json", "SHA256SUMS")
"""The files whose SHA-256 the signed message holds, in this order."""

_DOMAIN = "dpsynth-bundle-signature-v1"
_FORMAT = "dpsynth-bundle-signature"
_ALGORITHM = "ed25519"

Status = Literal["valid", "invalid", "missing", "unchecked", "unsigned"]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, as 64 hex digits."""
    return hashlib.sha256(_raw_public(key)).hexdigest()


def short_fingerprint(full: str) -> str:
    """The first 16 hex digits of a fingerprint in groups of four (``ab12:cd34:ef56:7890``)."""
    return ":".join(full[i:i + 4] for i in range(0, 16, 4))


def generate_key(out: str | Path) -> str:
    """Write a new Ed25519 private key to ``out`` (PEM, mode 0600) and its public key to ``out.pub``.

    Args:
        out: Path of the private key; the public key goes to the same path plus ``.pub``.

    Returns:
        The public key's fingerprint (64 hex digits).

    Raises:
        ConfigError: ``out`` or ``out.pub`` already exists (never overwritten), or the
            directory does not exist.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(out)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists() or p.is_symlink():
            raise ConfigError(f"key file {p} already exists; keys are never overwritten (choose another --out)")
    if not private_path.parent.is_dir():
        raise ConfigError(f"directory {private_path.parent} does not exist; create it first")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)  # the umask cannot widen it, but be explicit
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pub)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return fingerprint(key.public_key())


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory; give the key file") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key (PEM, as written by :func:`generate_key`).

    Raises:
        ConfigError: The file is missing, encrypted, or not an Ed25519 private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    data = _read_pem(p, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"signing key {p} is encrypted; dpsynth reads unencrypted keys "
                          "(as written by dpsynth keygen, mode 0600)") from None
    except ValueError:
        hint = " (that is a public key; sign with the private key)" if b"PUBLIC KEY" in data else ""
        raise ConfigError(f"signing key {p} is not a PEM private key{hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {p} is not an Ed25519 key (make one with dpsynth keygen)")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        log.warning("signing key %s is readable by other users; chmod 600 it", p)
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM, the ``.pub`` file written by :func:`generate_key`).

    Raises:
        ConfigError: The file is missing, is a private key, or not an Ed25519 public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    p = Path(path)
    data = _read_pem(p, "public key")
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{p} is a private key; verify with the public key ({p.name}.pub) and "
                          "never hand the private key to recipients")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError(f"public key {p} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key {p} is not an Ed25519 key")
    return key


def _digests(bundle: Path) -> tuple[str, str]:
    out = []
    for name in SIGNED_FILES:
        try:
            out.append(hashlib.sha256((bundle / name).read_bytes()).hexdigest())
        except OSError:
            raise BundleError(f"bundle {bundle} has no readable {name}; nothing to sign or check") from None
    return out[0], out[1]


def signed_message(manifest_sha256: str, sums_sha256: str) -> bytes:
    """The exact bytes signed: the domain string, then each signed file's SHA-256, one per line."""
    return (f"{_DOMAIN}\n{SIGNED_FILES[0]} {manifest_sha256}\n"
            f"{SIGNED_FILES[1]} {sums_sha256}\n").encode("ascii")


def sign_bundle(bundle: str | Path, key: Ed25519PrivateKey) -> str:
    """Sign a complete bundle's ``manifest.json`` and ``SHA256SUMS``; write ``signature.json``.

    Call it last, when no file of the bundle will change again.

    Args:
        bundle: The bundle directory (or the temporary directory it is being built in).
        key: The Ed25519 private key (:func:`load_private_key`).

    Returns:
        The signing key's fingerprint.
    """
    from dpsynth.tabular.atomic import write_text_atomic

    root = Path(bundle)
    manifest_sha, sums_sha = _digests(root)
    signature = key.sign(signed_message(manifest_sha, sums_sha))
    fp = fingerprint(key.public_key())
    doc = {
        "format": _FORMAT, "version": 1, "algorithm": _ALGORITHM, "public_key_fingerprint": fp,
        "message": f"{_DOMAIN}: sha256 of {SIGNED_FILES[0]} and {SIGNED_FILES[1]}",
        "signed": {SIGNED_FILES[0]: manifest_sha, SIGNED_FILES[1]: sums_sha},
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    write_text_atomic(root / SIGNATURE_FILE, json.dumps(doc, indent=2) + "\n")
    (root / SIGNATURE_FILE).chmod(0o644)
    return fp


@dataclass(frozen=True, kw_only=True)
class SignatureCheck:
    """The outcome of :func:`check_signature`.

    Attributes:
        status: ``valid``; ``invalid`` (the message names why); ``missing`` (a key was given
            but the bundle has no signature); ``unchecked`` (a signature is present, no key
            was given); ``unsigned`` (no signature and no key).
        signed_by: The fingerprint the signature file names (``None`` if there is none).
        expected: The fingerprint of the key given to check against (``None`` without a key).
        message: One line for a person; names files and fingerprints, never data.
    """

    status: Status
    signed_by: str | None
    expected: str | None
    message: str

    @property
    def failed(self) -> bool:
        """Whether the check makes verification fail (``invalid`` or ``missing``)."""
        return self.status in ("invalid", "missing")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (part of ``dpsynth verify --json``)."""
        return {"status": self.status, "signed_by": self.signed_by, "expected": self.expected,
                "message": self.message}


def _read_signature(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed ``signature.json`` and its named fingerprint, or ``None`` and a reason."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("version") != 1 \
            or doc.get("algorithm") != _ALGORITHM or not isinstance(doc.get("signature"), str):
        return None, None
    fp = doc.get("public_key_fingerprint")
    return doc, fp if isinstance(fp, str) else None


def check_signature(bundle: str | Path, key: Ed25519PublicKey | None) -> SignatureCheck:
    """Check a bundle's ``signature.json`` against a public key (or only report it, without one).

    The message is rebuilt from the bundle's current ``manifest.json`` and ``SHA256SUMS``
    bytes, so any edit of either, including recomputed checksums, makes the signature invalid.

    Args:
        bundle: The bundle directory.
        key: The signer's public key; ``None`` only reports whether a signature is present.

    Returns:
        A :class:`SignatureCheck`.
    """
    root = Path(bundle)
    path = root / SIGNATURE_FILE
    if key is None:
        return _report_only(path)
    expected = fingerprint(key)
    if not path.is_file():
        return SignatureCheck(status="missing", signed_by=None, expected=expected,
                              message=f"{SIGNATURE_FILE} is missing, but a key was given: the "
                              "bundle is unsigned or its signature was removed")
    doc, named = _read_signature(path)
    if doc is None:
        return SignatureCheck(status="invalid", signed_by=named, expected=expected,
                              message=f"{SIGNATURE_FILE} is malformed (not a dpsynth Ed25519 signature)")
    if named != expected:
        return SignatureCheck(status="invalid", signed_by=named, expected=expected,
                              message=f"{SIGNATURE_FILE} was made with another key ({named}), "
                              f"not the given key ({expected})")
    return _verify_bytes(root, doc, key, expected)


def _report_only(path: Path) -> SignatureCheck:
    """Without a key: whether a signature is present and which key it names (nothing checked)."""
    if not path.is_file():
        return SignatureCheck(status="unsigned", signed_by=None, expected=None, message="none (unsigned bundle)")
    named = _read_signature(path)[1]
    who = "" if named is None else f" (names key {short_fingerprint(named)})"
    return SignatureCheck(status="unchecked", signed_by=named, expected=None,
                          message=f"present, not checked{who}; pass --key KEY.pub to check it")


def _verify_bytes(root: Path, doc: dict[str, Any], key: Ed25519PublicKey, fp: str) -> SignatureCheck:
    from cryptography.exceptions import InvalidSignature

    try:
        raw = base64.b64decode(str(doc["signature"]), validate=True)
    except (binascii.Error, ValueError):
        return SignatureCheck(status="invalid", signed_by=fp, expected=fp,
                              message=f"{SIGNATURE_FILE}: the signature is not valid base64")
    try:
        manifest_sha, sums_sha = _digests(root)
    except BundleError as exc:
        return SignatureCheck(status="invalid", signed_by=fp, expected=fp, message=str(exc))
    try:
        key.verify(raw, signed_message(manifest_sha, sums_sha))
    except InvalidSignature:
        recorded = doc.get("signed")
        signed: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
        changed = [n for n, d in zip(SIGNED_FILES, (manifest_sha, sums_sha), strict=True)
                   if signed.get(n) != d]
        what = " and ".join(changed) + " changed since signing" if changed else "the signature does not match"
        return SignatureCheck(status="invalid", signed_by=fp, expected=fp,
                              message=f"signature INVALID for key {short_fingerprint(fp)}: {what}")
    return SignatureCheck(status="valid", signed_by=fp, expected=fp,
                          message=f"valid, signed by key {fp} ({short_fingerprint(fp)})")
