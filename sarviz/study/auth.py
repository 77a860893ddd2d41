"""Owner login for the study pages: one password, hashed, rate-limited.

The password comes from ``sarviz.settings.secret("study_owner_password")`` — the environment
variable ``SARVIZ_STUDY_OWNER_PASSWORD`` or ``study_owner_password`` in Streamlit's
``secrets.toml``. It may be given in plain text or, better, already hashed in the form
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (``sarviz study hash-password`` prints one). A plain
password is hashed with a fresh salt as soon as it is read and only the hash is kept.

Every attempt is written to the ``owner_login`` table, so the limit holds across browser
tabs, reloads and app processes: after ``MAX_FAILURES`` failed attempts from one client
within ``WINDOW`` the client must wait out the window; after ``GLOBAL_MAX_FAILURES`` failures
from anyone, logins pause for everyone (against guessing from many addresses).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import secrets

from sqlalchemy import func, select

from sarviz.study.db import StudyDatabase, StudyError
from sarviz.study.models import OwnerLogin, utcnow

MAX_FAILURES = 5
GLOBAL_MAX_FAILURES = 50
WINDOW = _dt.timedelta(minutes=15)
_SCRYPT = dict(n=2**14, r=8, p=1)


class OwnerNotConfigured(StudyError):
    """No owner password is set."""


class LoginLocked(StudyError):
    """Too many failed attempts; the message says how long to wait."""


def hash_password(password: str, *, n: int = _SCRYPT["n"], r: int = _SCRYPT["r"], p: int = _SCRYPT["p"]) -> str:
    if not password:
        raise StudyError("the owner password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt((password or "").encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def configured_hash(secret_value: str | None = None) -> str:
    """The stored hash of the owner password (hashing a plain one now)."""
    if secret_value is None:
        from sarviz.settings import secret

        secret_value = secret("study_owner_password")
    secret_value = (secret_value or "").strip()
    if not secret_value:
        raise OwnerNotConfigured(
            "no study owner password is set: set the environment variable SARVIZ_STUDY_OWNER_PASSWORD "
            "or study_owner_password in .streamlit/secrets.toml (ideally a hash from `sarviz study hash-password`)")
    if secret_value.startswith("scrypt$"):
        if secret_value.count("$") != 5:
            raise OwnerNotConfigured("the configured owner password hash is malformed; create one with "
                                     "`sarviz study hash-password`")
        return secret_value
    return hash_password(secret_value)


class OwnerAuth:
    def __init__(self, db: StudyDatabase, password_hash: str | None = None) -> None:
        self.db = db
        self._hash = password_hash or configured_hash()

    def _failures(self, since: _dt.datetime, client: str | None) -> tuple[int, _dt.datetime | None]:
        with self.db.read() as s:
            q = select(func.count(OwnerLogin.id), func.max(OwnerLogin.at)).where(
                OwnerLogin.ok.is_(False), OwnerLogin.at >= since)
            if client is not None:
                q = q.where(OwnerLogin.client == client)
            n, last = s.execute(q).one()
            return int(n or 0), last

    def check_allowed(self, client: str) -> None:
        now = utcnow()
        n, last = self._failures(now - WINDOW, client)
        if n >= MAX_FAILURES:
            wait = int((last + WINDOW - now).total_seconds()) + 1
            raise LoginLocked(f"too many wrong passwords; try again in {max(1, wait // 60)} min {wait % 60} s")
        total, last_any = self._failures(now - WINDOW, None)
        if total >= GLOBAL_MAX_FAILURES:
            wait = int((last_any + WINDOW - now).total_seconds()) + 1
            raise LoginLocked(f"owner logins are paused after many failed attempts; try again in {max(1, wait // 60)} min")

    def login(self, password: str, client: str) -> bool:
        """True when the password is right; records the attempt; raises :class:`LoginLocked`."""
        client = (client or "unknown")[:200]
        self.check_allowed(client)
        ok = verify_password(password or "", self._hash)

        def record(s):
            s.add(OwnerLogin(client=client, ok=ok, note=""))

        self.db.write(record)
        return ok
