"""Stage 6b, verify (signature): a build folder's manifest signed with an ed25519 key, and checked.

The manifest's digest proves only that the files are the ones it lists: anyone can re-seal it.
A signature binds the folder to whoever holds a private key. `sign_folder` (`lenetc build --sign
KEY`) writes manifest.sig: ed25519 over the manifest's core, the sha256 of its canonical JSON
without the digest and without verify.json's entry (every verify rewrites verify.json and
re-seals; verify.json is a report, proven again by each verify). `check_signature` (`lenetc
verify --key PUB`) raises IntegrityFailure (exit 4) when the folder is unsigned, signed by
another key, or its manifest changed since. `keygen` (`lenetc keygen KEY`) writes a key pair as
PEM (PKCS#8 and SubjectPublicKeyInfo, what `openssl genpkey -algorithm ed25519` writes).
Through `cryptography`, the `sign` extra: without it, signing or --key is exit 1 naming the extra.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path

from ..artifacts import BuildDir, write_json
from ..errors import IntegrityFailure, RuntimeFailure, UsageError

ALGORITHM = "ed25519"
UNSIGNED = ("digest",)  # manifest keys outside the core
UNSIGNED_FILES = ("verify.json",)  # artifacts outside the core: rewritten by every verify


def core_digest(manifest: dict) -> str:
    """sha256 of the manifest without its digest and verify.json's entry, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k not in UNSIGNED}
    body["artifacts"] = {
        name: entry
        for name, entry in manifest.get("artifacts", {}).items()
        if name not in UNSIGNED_FILES
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise RuntimeFailure(
            "signing needs the cryptography package: pip install 'lenetc[sign]'"
        ) from None
    return serialization, ed25519, InvalidSignature


def keygen(path: Path) -> tuple[Path, Path]:
    """A new key pair: `path` (private, mode 0600) and `path`.pub. Never overwrites a file."""
    serialization, ed25519, _ = _crypto()
    path = Path(path)
    public = path.with_name(path.name + ".pub")
    for target in (path, public):
        if target.exists() or target.is_symlink():
            raise UsageError(f"{target}: already exists; lenetc keygen never overwrites a key")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        fd = os.open(public, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(public_pem)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {exc.filename or path}: {exc.strerror}") from None
    return path, public


def load_private_key(path: Path):
    serialization, ed25519, _ = _crypto()
    data = _read_key(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path}: not an ed25519 key; make one with lenetc keygen")
    return key


def load_public_key(path: Path):
    serialization, ed25519, _ = _crypto()
    data = _read_key(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{path}: not an ed25519 public key; lenetc keygen writes one (.pub)")
    return key


def sign_folder(out: BuildDir, key_path: Path) -> Path:
    """manifest.sig for the folder's current manifest.json."""
    serialization, _, _ = _crypto()
    key = load_private_key(key_path)
    core = core_digest(json.loads(out.manifest.read_text(encoding="utf-8")))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    write_json(
        out.signature,
        {
            "algorithm": ALGORITHM,
            "signs": "sha256 of manifest.json without its digest and verify.json's entry",
            "manifest_core_sha256": core,
            "public_key": base64.b64encode(public).decode(),
            "signature": base64.b64encode(key.sign(core.encode())).decode(),
        },
    )
    return out.signature


def check_signature(out: BuildDir, manifest: dict, key_path: Path) -> None:
    _, _, invalid = _crypto()
    key = load_public_key(key_path)
    path = out.signature
    if not path.is_file():
        raise IntegrityFailure(
            f"{path}: missing: the folder is not signed, and --key asks for its signature"
        )
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
        signature = base64.b64decode(sig["signature"], validate=True)
        signed = str(sig["manifest_core_sha256"])
        if sig["algorithm"] != ALGORITHM:
            raise ValueError(f"algorithm {sig['algorithm']!r}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityFailure(f"{path}: not a lenetc signature ({exc})") from None
    try:
        key.verify(signature, signed.encode())
    except invalid:
        raise IntegrityFailure(f"{path}: not signed by the key in {key_path}") from None
    if signed != core_digest(manifest):
        raise IntegrityFailure(
            f"{out.manifest}: changed since it was signed ({path} signs another manifest)"
        )


def _read_key(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key ({exc.strerror or exc})") from None
