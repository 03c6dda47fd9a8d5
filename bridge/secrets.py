"""Local passwords and secrets at rest: scrypt hashes and AES-GCM sealing.

Owns two things and nothing else:

* local login passwords, stored only as a self-describing scrypt hash
  (``scrypt$n$r$p$salt$hash``) and verified in constant time;
* ``SecretBox``, which seals client secrets and certificate keys before they reach the
  database (AES-256-GCM from ``cryptography``, random 96-bit nonce, versioned prefix),
  or marks them as stored in clear when no encryption key is configured.

Must not import the store, the config or any protocol layer: it is a leaf that they use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bridge.errors import BridgeError

__all__ = [
    "KEY_BYTES",
    "SecretBox",
    "SecretBoxError",
    "decode_key",
    "generate_key",
    "generate_password",
    "hash_password",
    "verify_password",
    "verify_password_or_dummy",
]

# scrypt work factors. N=2^15, r=8 costs 32 MiB and roughly 0.1 s per hash on one core:
# slow enough to make guessing a stolen hash expensive, fast enough for IMAP logins.
# The parameters live in every stored hash, so they can be raised later without a migration.
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
# OpenSSL refuses scrypt above its default 32 MiB memory ceiling; 128*r*N is exactly
# that for our parameters, so allow headroom for parameters read back from a hash.
_MAXMEM: Final = 256 * 1024 * 1024
_HASH_SCHEME: Final = "scrypt"

KEY_BYTES: Final = 32
_SEALED_PREFIX: Final = "v1:"
_PLAIN_PREFIX: Final = "plain:"
_NONCE_BYTES: Final = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Return ``scrypt$n$r$p$salt$hash`` for ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES
    )
    return f"{_HASH_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; the comparison takes constant time.

    A malformed ``stored`` value is a mismatch, never an exception: a login attempt must
    not be able to tell a broken record from a wrong password.
    """
    try:
        scheme, n_text, r_text, p_text, salt_text, hash_text = stored.split("$")
        if scheme != _HASH_SCHEME:
            return False
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = _unb64(salt_text), _unb64(hash_text)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


_DUMMY_HASH: str | None = None


def verify_password_or_dummy(password: str, stored: str | None) -> bool:
    """Like ``verify_password``, but when the login is unknown (``stored is None``) still
    spend the same scrypt work on a dummy hash, so response time does not reveal which
    login names exist. Always False for an unknown login."""
    global _DUMMY_HASH
    if stored is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, stored)


def generate_password() -> str:
    """A strong local password: 20 url-safe characters (120 bits of randomness).

    URL-safe so it can be pasted into any mail client without quoting problems.
    """
    return secrets.token_urlsafe(15)


def generate_key() -> str:
    """A new 32-byte encryption key, base64, ready for ``secrets.encryption_key``."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def decode_key(text: str) -> bytes:
    """Decode a base64 (standard or url-safe) 32-byte key; ValueError explains what is wrong."""
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(
            cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4), validate=True
        )
    except (ValueError, TypeError) as exc:
        raise ValueError("the key is not valid base64") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the key decodes to {len(raw)} bytes; it must be {KEY_BYTES} bytes")
    return raw


class SecretBoxError(BridgeError):
    """A stored secret cannot be opened (wrong or missing encryption key, damaged value)."""


class SecretBox:
    """Seals secrets for storage. With a key: ``v1:`` + base64(nonce || AES-GCM ciphertext).
    Without a key: ``plain:`` + the value, so a later ``check`` can warn and a key added
    later can still read old rows."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes | None) -> None:
        if key is not None and len(key) != KEY_BYTES:
            raise ValueError(f"encryption key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key) if key is not None else None

    def __repr__(self) -> str:  # never show key material
        return f"SecretBox(encrypting={self.encrypting})"

    @property
    def encrypting(self) -> bool:
        return self._aead is not None

    def encrypt(self, plaintext: str) -> str:
        if self._aead is None:
            return _PLAIN_PREFIX + plaintext
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _SEALED_PREFIX.encode())
        return _SEALED_PREFIX + _b64(nonce + sealed)

    def decrypt(self, stored: str) -> str:
        if stored.startswith(_PLAIN_PREFIX):
            return stored[len(_PLAIN_PREFIX) :]
        if not stored.startswith(_SEALED_PREFIX):
            raise SecretBoxError("a stored secret has an unknown format; re-enter the secret.")
        if self._aead is None:
            raise SecretBoxError(
                "a stored secret is encrypted but no encryption key is configured. "
                "Fix: set secrets.encryption_key (or _file/_env) to the key used when it "
                "was stored."
            )
        try:
            blob = _unb64(stored[len(_SEALED_PREFIX) :])
            plain = self._aead.decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _SEALED_PREFIX.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise SecretBoxError(
                "a stored secret cannot be decrypted with the configured encryption key. "
                "Fix: configure the key that was used when the secret was stored, or "
                "store the secret again."
            ) from exc
        return plain.decode("utf-8")

    @staticmethod
    def is_encrypted(stored: str) -> bool:
        return stored.startswith(_SEALED_PREFIX)
