"""Owner login for the study pages: one password, hashed, rate-limited.

The password comes from ``sarviz.settings.secret("study_owner_password")`` — the environment
variable ``SARVIZ_STUDY_OWNER_PASSWORD`` or ``study_owner_password`` in Streamlit's
``secrets.toml``. It may be given in plain text or, better, already hashed in the form
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (``sarviz study hash-password`` prints one). A plain
password is hashed with a fresh salt as soon as it is read and only the hash is kept.

Every attempt is written to the ``owner_login`` table, so the limits hold across browser
tabs, reloads and app processes. The check and the record of an attempt happen in *one*
write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped advisory lock,
because ``SELECT … FOR UPDATE`` cannot lock rows that do not exist yet), so parallel guesses
cannot all slip through between "count" and "insert".

* **Per browser session** (Streamlit's session id, made by the server): after ``MAX_FAILURES``
  failed attempts within ``WINDOW`` that session may not try again.
* **Per client** (the address from :func:`sarviz.access.client_key`: the TCP peer, or the
  forwarded address only behind a configured proxy — a client cannot choose it): after
  ``MAX_FAILURES`` failed attempts within ``WINDOW`` the address must wait out the window.
* **Everyone** (guessing from many addresses): after ``GLOBAL_SLOWDOWN_AFTER`` failures within
  ``WINDOW``, attempts are slowed down: each needs a pause after the latest failure that
  doubles with every further failure, up to ``GLOBAL_MAX_DELAY`` (60 s). Addresses the owner
  logged in from within ``TRUSTED_FOR`` are not slowed down (shared addresses — loopback, the
  bucket of untrusted forwarded requests — never count as the owner's).
* **The owner's way in, always:** ``sarviz study unlock`` (CLI, i.e. whoever can open the
  database) prints a one-time unlock code, valid for ``UNLOCK_CODE_VALID``. A login with the
  right password and a valid code passes every limit above, whatever an attacker did; the
  code is used up by that attempt, whether the password was right or not. The command also makes earlier failures stop counting
  (for everyone, or with ``--client ID`` for one address).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import secrets

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from sarviz.settings import secret
from sarviz.study.db import StudyDatabase, StudyError
from sarviz.study.models import OwnerLogin, utcnow

MAX_FAILURES = 5
WINDOW = _dt.timedelta(minutes=15)
GLOBAL_SLOWDOWN_AFTER = 20
GLOBAL_MAX_DELAY = _dt.timedelta(seconds=60)
TRUSTED_FOR = _dt.timedelta(days=30)
UNLOCK_CODE_VALID = _dt.timedelta(hours=1)
#: ``client`` of rows recording an unlock code (``note`` = its hash) and its use
CODE_ISSUED, CODE_USED = "unlock-code", "unlock-code-used"
#: client keys shared by many people: a success from them does not make them trusted
_SHARED_CLIENTS = ("local", "unknown", "ip:127.0.0.1", "ip:::1", "forwarded-untrusted")
#: ``client`` of an unlock for everyone; ``note`` of every unlock row
ALL_CLIENTS = "*"
UNLOCK_NOTE = "unlock"
# An arbitrary constant naming the login limiter's advisory lock in PostgreSQL.
_PG_LOGIN_LOCK_KEY = 724_008
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
        got = hashlib.scrypt(
            (password or "").encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def configured_hash(secret_value: str | None = None) -> str:
    """The stored hash of the owner password (hashing a plain one now)."""
    if secret_value is None:
        secret_value = secret("study_owner_password")
    secret_value = (secret_value or "").strip()
    if not secret_value:
        raise OwnerNotConfigured(
            "no study owner password is set: set the environment variable SARVIZ_STUDY_OWNER_PASSWORD "
            "or study_owner_password in .streamlit/secrets.toml (ideally a hash from `sarviz study hash-password`)"
        )
    if secret_value.startswith("scrypt$"):
        if secret_value.count("$") != 5:
            raise OwnerNotConfigured(
                "the configured owner password hash is malformed; create one with `sarviz study hash-password`"
            )
        return secret_value
    return hash_password(secret_value)


def global_delay(failures: int) -> _dt.timedelta:
    """Pause needed after the latest failure once ``failures`` (from anyone) are in the window."""
    if failures < GLOBAL_SLOWDOWN_AFTER:
        return _dt.timedelta(0)
    # 1 s, 2 s, 4 s … doubling per further failure, capped so that nobody is ever locked out.
    seconds = 2.0 ** min(failures - GLOBAL_SLOWDOWN_AFTER, 20)
    return min(GLOBAL_MAX_DELAY, _dt.timedelta(seconds=seconds))


def _lock_left(last_failure: _dt.datetime | None, now: _dt.datetime) -> float:
    """Seconds until a failure at ``last_failure`` leaves the window (the whole window when unknown; the
    count of failures comes with their latest time, so unknown does not happen)."""
    return (WINDOW if last_failure is None else last_failure + WINDOW - now).total_seconds()


def _wait_text(seconds: float) -> str:
    seconds = max(1, int(seconds) + 1)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _lock_limiter(s: Session) -> None:
    """Serialise limiter transactions (SQLite: the write session's BEGIN IMMEDIATE already does)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOGIN_LOCK_KEY})


def _last_ok(s: Session, clients: tuple[str, ...], notes: tuple[str, ...] | None = None) -> _dt.datetime | None:
    q = select(func.max(OwnerLogin.at)).where(OwnerLogin.ok.is_(True), OwnerLogin.client.in_(clients))
    if notes is not None:
        q = q.where(OwnerLogin.note.in_(notes))
    return s.scalar(q)


def _failures(s: Session, since: _dt.datetime, client: str | None) -> tuple[int, _dt.datetime | None]:
    q = select(func.count(OwnerLogin.id), func.max(OwnerLogin.at)).where(
        OwnerLogin.ok.is_(False), OwnerLogin.at >= since
    )
    if client is not None:
        q = q.where(OwnerLogin.client == client)
    n, last = s.execute(q).one()
    return int(n or 0), last


def _code_hash(code: str) -> str:
    return hashlib.sha256(("sarviz-unlock:" + "".join((code or "").split()).upper()).encode()).hexdigest()


def _code_valid(s: Session, code: str, now: _dt.datetime) -> bool:
    h = _code_hash(code)
    issued = s.scalar(select(func.max(OwnerLogin.at)).where(OwnerLogin.client == CODE_ISSUED, OwnerLogin.note == h))
    if issued is None or issued < now - UNLOCK_CODE_VALID:
        return False
    return s.scalar(select(OwnerLogin.id).where(OwnerLogin.client == CODE_USED, OwnerLogin.note == h)) is None


def new_unlock_code(db: StudyDatabase) -> str:
    """A one-time code that lets the owner log in past every limit (see the module docstring)."""
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"

    def work(s: Session) -> None:
        _lock_limiter(s)
        # ok=True: an issued code is not a failed attempt (failures count towards the slow-down)
        s.add(OwnerLogin(client=CODE_ISSUED, ok=True, note=_code_hash(code)))

    db.write(work)
    return code


def _session_failures(s: Session, since: _dt.datetime, session: str) -> tuple[int, _dt.datetime | None]:
    n, last = s.execute(
        select(func.count(OwnerLogin.id), func.max(OwnerLogin.at)).where(
            OwnerLogin.ok.is_(False), OwnerLogin.at >= since, OwnerLogin.note == f"session:{session}"
        )
    ).one()
    return int(n or 0), last


def check_allowed(s: Session, client: str, now: _dt.datetime, session: str | None = None) -> None:
    """Raise :class:`LoginLocked` when ``client`` may not try a password now (inside the limiter's transaction)."""
    window_start = now - WINDOW
    if session:
        n, last = _session_failures(s, window_start, session)
        if n >= MAX_FAILURES:
            raise LoginLocked(
                f"too many wrong passwords in this browser session; try again in "
                f"{_wait_text(_lock_left(last, now))}, or use a one-time code "
                "from `sarviz study unlock`"
            )
    # A success (or an unlock) of this client, or an unlock for everyone, restarts its count.
    reset = _last_ok(s, (client, ALL_CLIENTS))
    n, last = _failures(s, max(window_start, reset) if reset else window_start, client)
    if n >= MAX_FAILURES:
        raise LoginLocked(
            f"too many wrong passwords from this address; try again in "
            f"{_wait_text(_lock_left(last, now))}, or use a one-time code from "
            "`sarviz study unlock`"
        )
    trusted = _last_ok(s, (client,)) if client not in _SHARED_CLIENTS else None
    if trusted is not None and trusted >= now - TRUSTED_FOR:
        return  # the owner's own address: never slowed down by other people's guessing
    reset_all = _last_ok(s, (ALL_CLIENTS,), (UNLOCK_NOTE,))
    total, last_any = _failures(s, max(window_start, reset_all) if reset_all else window_start, None)
    delay = global_delay(total)
    if delay and last_any is not None and now < last_any + delay:
        raise LoginLocked(
            f"owner logins are slowed down after {total} failed attempts in the last "
            f"{int(WINDOW.total_seconds() // 60)} min; try again in {_wait_text((last_any + delay - now).total_seconds())} "
            "(the study owner gets past this with a one-time code from `sarviz study unlock`)"
        )


def unlock(db: StudyDatabase, client: str | None = None) -> int:
    """Make failed logins before now stop counting (for ``client`` or everyone); returns how many."""
    client = (client or "").strip()[:200] or None

    def work(s: Session) -> int:
        _lock_limiter(s)
        n, _ = _failures(s, utcnow() - WINDOW, client)
        s.add(OwnerLogin(client=client or ALL_CLIENTS, ok=True, note=UNLOCK_NOTE))
        return n

    return db.write(work)


class OwnerAuth:
    def __init__(self, db: StudyDatabase, password_hash: str | None = None) -> None:
        self.db = db
        self._hash = password_hash or configured_hash()

    def check_allowed(self, client: str, session: str | None = None) -> None:
        """Raise :class:`LoginLocked` if ``client`` would be refused now (a read-only preview)."""
        with self.db.read() as s:
            check_allowed(s, (client or "unknown")[:200], utcnow(), session)

    def login(self, password: str, client: str, session: str | None = None, unlock_code: str | None = None) -> bool:
        """True when the password is right; records the attempt; raises :class:`LoginLocked`.

        The password is checked before the transaction (scrypt is slow and must not hold the
        database lock), but its result only counts if the limiter admits the attempt: the
        count and the insert are one transaction, so at most ``MAX_FAILURES`` guesses per
        client are ever evaluated in a window, however many arrive at once. A valid one-time
        ``unlock_code`` admits one attempt past every limit and is used up by it, right password
        or wrong (else a locked attacker holding a code would get unlimited guesses).
        """
        client = (client or "unknown")[:200]
        if client in (ALL_CLIENTS, CODE_ISSUED, CODE_USED):
            client = "unknown"
        session = (session or "")[:150] or None
        ok = verify_password(password or "", self._hash)
        code = (unlock_code or "").strip()

        def attempt(s: Session) -> bool:
            _lock_limiter(s)
            now = utcnow()
            if code:
                if not _code_valid(s, code, now):  # (recorded as a failure below, after the rollback)
                    raise LoginLocked(
                        "that unlock code is not valid (wrong, used or older than "
                        f"{int(UNLOCK_CODE_VALID.total_seconds() // 3600)} h); get a new one with "
                        "`sarviz study unlock`"
                    )
                s.add(OwnerLogin(client=CODE_USED, ok=True, note=_code_hash(code)))  # one attempt per code
            else:
                check_allowed(s, client, now, session)
            s.add(OwnerLogin(client=client, ok=ok, note=f"session:{session}" if session else ""))
            return ok

        try:
            return self.db.write(attempt)
        except LoginLocked as exc:
            if code:  # the failed attempt with a bad code is recorded before refusing

                def record(s: Session) -> None:
                    s.add(OwnerLogin(client=client, ok=False, note=f"session:{session}" if session else "bad-code"))

                self.db.write(record)
            raise exc
