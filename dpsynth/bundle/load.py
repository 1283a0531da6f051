"""Loading the fitted synthesizer a release bundle carries, once the bundle has verified.

:func:`load_bundle` is what ``dpsynth sample BUNDLE`` and ``dpsynth.load_bundle`` run: it
verifies the whole bundle (:func:`~dpsynth.bundle.verify.verify_bundle`, and its signature
when a key is given), copies ``model/`` to a private temporary directory, checks each copy
against the verified ``SHA256SUMS`` (so a file changed after verification is never loaded),
and loads it. Sampling from the result is post-processing: no data, no budget, no ledger.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dpsynth.bundle.manifest import MODEL_DIR, MODEL_FILE, parse_sha256sums, sha256_file
from dpsynth.bundle.verify import verify_bundle
from dpsynth.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from dpsynth.synthesizer import Synthesizer

__all__ = ["is_bundle", "load_bundle"]


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` looks like a release bundle (a directory with a manifest and checksums)."""
    p = Path(path)
    return (p / "manifest.json").is_file() and (p / "SHA256SUMS").is_file()


def load_bundle(path: str | Path, *, key: str | Path | Ed25519PublicKey | None = None) -> Synthesizer:
    """The synthesizer saved in a release bundle, after the bundle verifies.

    Args:
        path: The bundle directory written by :func:`dpsynth.release`.
        key: The signer's public key; when given, the bundle must carry a valid signature by it.

    Returns:
        The fitted :class:`~dpsynth.synthesizer.Synthesizer` (sampling spends nothing).

    Raises:
        BundleError: The bundle fails verification, holds no model (written before releases
            carried one), or its model does not match its manifest (exit code 1).
        ConfigError: ``path`` is not a directory, or ``key`` is not a readable public key.
    """
    from dpsynth.synthesizer import load

    bundle = Path(path)
    if not bundle.is_dir():
        raise ConfigError(f"bundle {bundle} is not a directory; give the bundle directory")
    verify_bundle(bundle, key=key).raise_for_failures()
    sums, _ = parse_sha256sums((bundle / "SHA256SUMS").read_text(encoding="utf-8", errors="replace"))
    model_files = {n: d for n, d in sums.items() if n.startswith(MODEL_DIR + "/")}
    if MODEL_FILE not in model_files:
        raise BundleError(f"bundle {bundle} holds no {MODEL_DIR}/ (it was written before releases "
                          "carried their model); sample from a model saved by `dpsynth fit` instead")
    with tempfile.TemporaryDirectory(prefix="dpsynth-bundle-model-") as tmp:
        copy = Path(tmp) / MODEL_DIR
        shutil.copytree(bundle / MODEL_DIR, copy)
        for name, digest in model_files.items():
            if sha256_file(Path(tmp) / name) != digest:
                raise BundleError(f"bundle {bundle}: {name} changed after verification; verify it again")
        extra = [p.relative_to(tmp).as_posix() for p in copy.rglob("*")
                 if p.is_file() and p.relative_to(tmp).as_posix() not in model_files]
        if extra:
            raise BundleError(f"bundle {bundle}: {extra[0]} appeared after verification; verify it again")
        synth = load(copy)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    if synth.schema.sha256() != manifest["input"]["schema_sha256"] \
            or synth.mechanism != manifest["generator"]["mechanism"]:
        raise BundleError(f"bundle {bundle}: {MODEL_FILE} does not match the manifest's schema and "
                          "mechanism")
    return synth
