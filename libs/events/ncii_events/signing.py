"""Who wrote an event: Ed25519 signatures by the service (or the operator's command line).

Every service has a private key of its own, and the operator's CLI one more (it writes the
principals, i.e. API keys). The store signs each event's hash at append; ``ncii log verify``
checks the signature with the public keys in configuration and that the signer is the service
allowed to emit the event's type (decision 23). A service that can publish on another's subject
can no longer forge its events: it does not hold that service's key.

Files (``ncii run`` and ``ncii signing-keys create`` make them; ``provision`` is the one place
that does): ``<keys folder>/<signer>.ed25519`` per signer, 0600, in a 0700 folder, and
``public-keys.json`` beside them (``{signer: [base64 public key, ...]}``), which is what the
auditor and the configuration need.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

if TYPE_CHECKING:
    from ncii_events.settings import Settings

OPERATOR = "operator"
"""The signer of the operator's command line (principals: ``ncii keys create``/``revoke``)."""
PUBLIC_KEYS_FILE = "public-keys.json"
KEY_SUFFIX = ".ed25519"
SIGNER = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_CONTEXT = b"ncii-event-signature-v1\n"
"""Domain separation: a signing key signs events only, never a message another protocol reads."""


class SigningKeyError(RuntimeError):
    """A private key that is missing or unusable; the message says what to do."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short id of a public key (the signature's ``key_id``): SHA-256 of its raw bytes."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def signed_message(stream: str, digest: str) -> bytes:
    """What is signed: the event's hash, bound to its stream (an event copied from one stream
    into the other does not verify there). The hash covers every other envelope field."""
    return b"".join((_CONTEXT, stream.encode(), b"\n", digest.encode()))


def public_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class SigningKey:
    """One signer's private key, as a process holds it."""

    __slots__ = ("key_id", "private", "signer")

    def __init__(self, signer: str, private: Ed25519PrivateKey) -> None:
        self.signer = _checked_signer(signer)
        self.private = private
        self.key_id = key_id(private.public_key())

    @classmethod
    def generate(cls, signer: str) -> SigningKey:
        return cls(_checked_signer(signer), Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, stream: str, digest: str) -> str:
        """The base64 signature of an event's hash on ``stream``."""
        return base64.b64encode(self.private.sign(signed_message(stream, digest))).decode()

    def to_json(self) -> str:
        raw = self.private.private_bytes_raw()
        return json.dumps({"signer": self.signer, "key": base64.b64encode(raw).decode()}) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SigningKey:
        doc = json.loads(text)
        raw = base64.b64decode(doc["key"], validate=True)
        return cls(_checked_signer(doc["signer"]), Ed25519PrivateKey.from_private_bytes(raw))


def _checked_signer(signer: str) -> str:
    if not SIGNER.fullmatch(signer):
        raise ValueError(f"a signer is a service name or {OPERATOR!r} (lower case), not {signer!r}")
    return signer


def key_path(folder: Path, signer: str) -> Path:
    return folder / f"{_checked_signer(signer)}{KEY_SUFFIX}"


def load_signing_key(path: Path, signer: str) -> SigningKey:
    """``signer``'s private key from ``path``, or ``SigningKeyError`` saying what to do."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no signing key for {signer} at {path}: every event is signed by the service that "
            f"writes it. Create the keys with `ncii signing-keys create` (`ncii run` does it for "
            f"the embedded default), or set NCII_SIGNING_KEY_FILE to {signer}'s key file"
        ) from None
    except OSError as exc:
        raise SigningKeyError(
            f"cannot read the signing key for {signer} at {path} ({type(exc).__name__}): "
            f"the file must be readable by the service's user (mode 0600)"
        ) from None
    try:
        key = SigningKey.from_json(text)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SigningKeyError(
            f"{path} is not a signing key file; create it with `ncii signing-keys create`"
        ) from None
    if key.signer != signer:
        raise SigningKeyError(
            f"{path} holds the signing key of {key.signer}, not of {signer}: give each service "
            f"its own key (NCII_SIGNING_KEY_FILE)"
        )
    return key


class PublicKeys:
    """The public keys in configuration: signer -> its keys by id (several after a rotation).

    Signatures are checked with libsodium (PyNaCl): the same Ed25519 over the same bytes as
    ``cryptography``, which signs, at about half the cost per verification on this machine
    (~50 µs against ~95-110 µs): what ``ncii audit verify`` spends most of its time on
    (decision 51). Keys are parsed with ``cryptography``, as they always were."""

    def __init__(self, keys: Mapping[str, Sequence[str] | str]) -> None:
        self._by_signer: dict[str, dict[str, bytes]] = {}
        for signer, values in keys.items():
            listed = [values] if isinstance(values, str) else list(values)
            for value in listed:
                try:
                    raw = base64.b64decode(value, validate=True)
                    public = Ed25519PublicKey.from_public_bytes(raw)
                except (ValueError, binascii.Error):
                    raise ValueError(
                        f"the public key of {signer} is not base64 of a 32-byte Ed25519 key"
                    ) from None
                self._by_signer.setdefault(signer, {})[key_id(public)] = raw

    @classmethod
    def from_file(cls, path: Path) -> PublicKeys:
        return cls(_read_public_file(path))

    @property
    def signers(self) -> list[str]:
        return sorted(self._by_signer)

    def lists(self, key: SigningKey) -> bool:
        return key.key_id in self._by_signer.get(key.signer, {})

    def has_signer(self, signer: str) -> bool:
        return signer in self._by_signer

    def check(self, stream: str, signer: str, kid: str, digest: str, signature: str) -> str | None:
        """``None`` when the signature is ``signer``'s over ``digest``; else why not."""
        keys = self._by_signer.get(signer)
        if keys is None:
            return f"signer {signer!r} has no public key in the configuration"
        public = keys.get(kid)
        if public is None:
            return f"key {kid!r} is not one of {signer}'s public keys in the configuration"
        try:
            raw = base64.b64decode(signature, validate=True)
            if len(raw) != 64:  # crypto_sign_open would read a short one's message as signature
                raise ValueError("an Ed25519 signature is 64 bytes")
            crypto_sign_open(raw + signed_message(stream, digest), public)
        except (BadSignatureError, ValueError, TypeError, AttributeError, binascii.Error):
            # TypeError, AttributeError: a signature or hash that is not a string at all
            return f"signature does not verify with {signer}'s key (forged, or altered)"
        return None


def _read_public_file(path: Path) -> dict[str, list[str]]:
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path} must hold a JSON object {{signer: [base64 public key, ...]}}")
    return {str(k): [v] if isinstance(v, str) else list(v) for k, v in doc.items()}


def provision(folder: Path, signers: Iterable[str]) -> list[str]:
    """Create the missing private keys of ``signers`` in ``folder`` and list every key's public
    half in ``folder/public-keys.json``; return the signers whose key was created now.

    Idempotent: an existing key is never replaced, and public keys already listed stay listed
    (the old key of a rotated signer still verifies the events it signed). The folder is created
    0700 when missing (an existing one is the operator's choice), each key file 0600 with
    ``O_EXCL``, so two runs at once cannot write two keys for one signer.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    created: list[str] = []
    for signer in signers:
        path = key_path(folder, signer)
        if path.exists():
            continue
        key = SigningKey.generate(signer)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(key.to_json())
        created.append(signer)
    public_file = folder / PUBLIC_KEYS_FILE
    listed: dict[str, list[str]] = _read_public_file(public_file) if public_file.exists() else {}
    for path in sorted(folder.glob(f"*{KEY_SUFFIX}")):
        key = SigningKey.from_json(path.read_text())
        value = public_b64(key.public_key)
        if value not in listed.setdefault(key.signer, []):
            listed[key.signer].append(value)
    temporary = folder / f".{PUBLIC_KEYS_FILE}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(dict(sorted(listed.items())), indent=2) + "\n")
    temporary.replace(public_file)  # readers never see half a file
    return created


def allowed_signers(emitters: Mapping[str, Iterable[type[Any]]]) -> dict[str, frozenset[str]]:
    """Event type -> the signers allowed to write it, from each signer's ``emits`` (a
    ``ServiceSpec``'s) and the principals' events, which only the operator writes."""
    from ncii_contracts.principals import PRINCIPAL_EVENTS

    allowed: dict[str, set[str]] = {}
    for signer, events in {**emitters, OPERATOR: PRINCIPAL_EVENTS}.items():
        for event in events:
            allowed.setdefault(event.event_type, set()).add(signer)
    return {event_type: frozenset(signers) for event_type, signers in allowed.items()}


def configured_public_keys(settings: Settings) -> PublicKeys | None:
    """The public keys in configuration: ``NCII_SIGNING_PUBLIC_KEYS``, else the public keys
    file (``NCII_SIGNING_PUBLIC_KEYS_FILE``, else the keys folder's), else ``None``."""
    path = settings.signing_public_keys_path()
    try:
        if settings.signing_public_keys is not None:
            return PublicKeys(settings.signing_public_keys)
        if path.exists():
            return PublicKeys.from_file(path)
    except (ValueError, OSError) as exc:
        where = "NCII_SIGNING_PUBLIC_KEYS" if settings.signing_public_keys is not None else path
        raise SigningKeyError(f"cannot read the public keys in {where}: {exc}") from None
    return None


def own_signing_key(settings: Settings, signer: str) -> SigningKey:
    """This process's private key (a service's, or ``OPERATOR`` for the CLI); when public keys
    are configured, they must list it, or every event it signs would fail verification."""
    key = load_signing_key(settings.signing_key_path(signer), signer)
    public = configured_public_keys(settings)
    if public is not None and not public.lists(key):
        raise SigningKeyError(
            f"the public keys in configuration do not list {signer}'s signing key {key.key_id}: "
            f"add it (`ncii signing-keys create` prints every public key), or give {signer} "
            f"the key that is listed"
        )
    return key
