"""Study database: engine and session management, SQLite by default, PostgreSQL by URL.

* ``sqlite:///path/study.sqlite`` (the default from ``Settings.study_db``) or a bare file path;
  WAL journal and a busy timeout so that many participants can answer at once; write
  transactions start with ``BEGIN IMMEDIATE`` so they queue on the lock instead of failing
  half-way (pysqlite's own transaction handling is replaced, per the SQLAlchemy docs recipe).
* ``postgresql://user:pass@host:port/db`` (psycopg 3 is used for it).

A mistyped database is never created silently: ``StudyDatabase(url, create=False)`` (what
the read-only commands and the quiz/results pages use) requires an existing study database
and says which path does not exist; ``create=True`` (``sarviz study create`` / ``add-images``
and the admin page's "Create study") may create a new SQLite *file*, but never a missing
folder for it, except sarviz's own home folder (``SARVIZ_HOME``, where the default database
lives). Strings that are neither a SQLAlchemy URL nor a path ending in ``.sqlite``/``.db``
are refused.

Every database failure a person can act on (server unreachable, file read-only, disk full,
schema too new) is raised as :class:`StudyDatabaseError` with a message that says what
happened, with the password hidden, and whether the last answer was saved.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sarviz.errors import StudyError  # noqa: F401 - re-exported: sarviz.study.db.StudyError
from sarviz.study import migrations

log = logging.getLogger(__name__)
T = TypeVar("T")


class StudyDatabaseError(StudyError):
    """The study database cannot be reached or written."""


class StudyDatabaseMissing(StudyDatabaseError):
    """The study database does not exist (and was not to be created)."""


#: file endings accepted for a bare SQLite path (a URL may name any file)
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def normalise_url(url: str | Path) -> URL:
    """A SQLAlchemy URL from a URL or a plain file path (→ SQLite)."""
    raw = str(url).strip()
    if not raw:
        raise StudyDatabaseError(
            "no study database given: pass a SQLAlchemy URL such as sqlite:///study.sqlite or postgresql://user@host/db"
        )
    if "://" not in raw:
        # A bare word like "notaurl" or "postgres" is far more likely a mistake than a wish for
        # a SQLite file of that name, so a path must say it is a database by its ending.
        if Path(raw).suffix.lower() not in SQLITE_SUFFIXES:
            raise StudyDatabaseError(
                f"{raw!r} is neither a database URL (e.g. sqlite:///study.sqlite or postgresql://user@host/db) "
                f"nor a SQLite file path ending in {', '.join(SQLITE_SUFFIXES)}"
            )
        raw = f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        parsed = make_url(raw)
    except ArgumentError:
        raise StudyDatabaseError(
            f"{raw!r} is not a database URL (expected e.g. sqlite:///study.sqlite or postgresql://user@host/db)"
        ) from None
    if parsed.get_backend_name() == "sqlite" and (parsed.database or "").startswith("~"):
        # sqlite:///~/.sarviz/study.sqlite (the README's default written as a URL): the home folder
        parsed = parsed.set(database=str(Path(parsed.database).expanduser()))
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StudyDatabaseError(f"study databases must be SQLite or PostgreSQL, not {parsed.get_backend_name()!r}")
    return parsed


def describe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory databases)."""
    if (
        url.get_backend_name() != "sqlite"
        or not url.database
        or url.database == ":memory:"
        or url.database.startswith("file:")
    ):
        return None
    return Path(url.database).expanduser().absolute()


def _own_folder(folder: Path) -> bool:
    """sarviz's home folder (the default database's folder) may be created without asking."""
    from sarviz.settings import HOME, sarviz_home

    homes = {Path(HOME), sarviz_home()}  # as imported, and as set now
    try:
        return any(folder.resolve() == h.expanduser().resolve() for h in homes)
    except OSError:
        return False


def check_location(url: URL, create: bool) -> None:
    """Refuse a SQLite database that does not exist (``create=False``) or whose folder is missing.

    Raises :class:`StudyDatabaseMissing` naming the path and, for ``create=True``, what would
    have been created.
    """
    path = sqlite_file(url)
    if path is None:
        return
    if path.is_dir():
        raise StudyDatabaseError(f"the study database {path} is a folder, not a SQLite file")
    if path.exists():
        return
    if not create:
        raise StudyDatabaseMissing(
            f"the study database {path} does not exist. Check the URL (--db or SARVIZ_STUDY_DB); "
            f'a new database is made only by `sarviz study create` or the Study admin page\'s "Create study"'
        )
    parent = path.parent
    if not parent.is_dir() and not _own_folder(parent):
        missing = parent
        while not missing.parent.exists() and missing.parent != missing:
            missing = missing.parent
        raise StudyDatabaseMissing(
            f"the folder {parent} does not exist, so the study database {path} cannot be created there. "
            f"This would have created the folder {missing}{' and the folders under it' if missing != parent else ''} "
            f"and the file {path.name}; if the path is right, create the folder first (mkdir -p {parent}), "
            "otherwise fix the URL"
        )


def explain(exc: BaseException, url: URL, writing: bool) -> StudyDatabaseError:
    """Turn a driver error into a message for a person."""
    where = describe_url(url)
    detail = (
        str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if str(getattr(exc, "orig", exc)).strip()
        else type(exc).__name__
    )
    low = detail.lower()
    lost = " Nothing was saved by this step; please try again." if writing else ""
    if "readonly" in low or "read-only" in low or "read only" in low:
        return StudyDatabaseError(
            f"the study database {where} is read-only, so answers cannot be stored."
            f"{lost} (The study owner must make it writable.)"
        )
    if "unable to open database" in low:
        return StudyDatabaseError(
            f"the study database file {where} cannot be opened (missing folder or no permission).{lost}"
        )
    if "database or disk is full" in low or "no space" in low:
        return StudyDatabaseError(f"the study database {where} is full (no disk space).{lost}")
    if "locked" in low or "could not serialize" in low or "deadlock" in low:
        return StudyDatabaseError(f"the study database {where} is busy.{lost}")
    if any(
        s in low
        for s in (
            "connection refused",
            "could not connect",
            "connection failed",
            "timeout",
            "name or service not known",
            "no route",
            "server closed",
            "terminating connection",
            "does not exist",
        )
    ):
        return StudyDatabaseError(f"cannot reach the study database {where}: {detail}.{lost}")
    return StudyDatabaseError(f"the study database {where} failed: {detail}.{lost}")


class StudyDatabase:
    """One study database: engine, migrations, and transaction helpers with retries."""

    def __init__(self, url: str | Path, *, migrate: bool = True, echo: bool = False, create: bool = True) -> None:
        """Open (``create=True``: or create) the study database at ``url``.

        With ``create=False`` the database must already exist and hold study tables; a missing
        SQLite file is reported (naming the path) instead of being created. With ``create=True``
        a new SQLite file may be made, but a missing folder is only created for sarviz's home.
        """
        self.url = normalise_url(url)
        check_location(self.url, create)
        self.engine = self._create_engine(self.url, echo)
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            bind=self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        if not create:
            self._require_study_schema()
        if migrate:
            self.migrate()

    def _require_study_schema(self) -> None:
        try:
            version = self.schema_version()
        except (OperationalError, DBAPIError) as exc:
            self.engine.dispose()
            raise explain(exc, self.url, writing=False) from None
        if version == 0:
            self.engine.dispose()
            raise StudyDatabaseMissing(
                f"{self.description} is not a sarviz study database (it has no study tables). Check the URL; "
                'a study database is made by `sarviz study create` or the Study admin page\'s "Create study"'
            )

    def __repr__(self) -> str:
        return f"StudyDatabase({describe_url(self.url)!r})"

    @property
    def description(self) -> str:
        return describe_url(self.url)

    @staticmethod
    def _create_engine(url: URL, echo: bool) -> Engine:
        if url.get_backend_name() == "sqlite":
            path = sqlite_file(url)
            if path is not None and not path.parent.exists():
                # only reached for sarviz's own home folder (check_location refused the rest)
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection, _record):  # noqa: ANN001
                # Let SQLAlchemy, not pysqlite, decide when transactions begin (SQLAlchemy recipe).
                dbapi_connection.isolation_level = None
                cur = dbapi_connection.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                try:
                    mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
                    if str(mode).lower() != "wal":
                        cur.execute("PRAGMA journal_mode=WAL")
                except Exception:  # a read-only file cannot switch journal mode: reads still work
                    pass
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn):  # noqa: ANN001
                mode = conn.get_execution_options().get("sqlite_begin", "")
                conn.exec_driver_sql(f"BEGIN {mode}".strip())

            return engine
        return create_engine(
            url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 10}
        )

    def migrate(self) -> list[int]:
        try:
            return migrations.migrate(self.engine)
        except migrations.SchemaTooNew as exc:
            raise StudyDatabaseError(str(exc)) from None
        except (OperationalError, DBAPIError) as exc:
            raise explain(exc, self.url, writing=False) from None

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return migrations.current_version(conn)

    # -- transactions ---------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self._sessions() as session:
                yield session
        except (OperationalError, DBAPIError) as exc:
            raise explain(exc, self.url, writing=False) from None

    def write(self, work: Callable[[Session], T], attempts: int = 8) -> T:
        """Run ``work(session)`` in one committed transaction; retry when the database is busy.

        ``work`` must be safe to re-run (it is, as each attempt is a fresh transaction that
        rolls back on failure). Errors a person can act on become :class:`StudyDatabaseError`;
        :class:`StudyError` raised by ``work`` passes through unchanged.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self._write_sessions() as session:
                    with session.begin():
                        result = work(session)
                    return result
            except IntegrityError:
                raise  # a constraint (duplicate image, answer given twice): the caller explains it
            except OperationalError as exc:
                msg = str(exc.orig).lower()
                transient = "locked" in msg or "could not serialize" in msg or "deadlock" in msg or "busy" in msg
                if transient and attempt < attempts:
                    time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
                    continue
                raise explain(exc, self.url, writing=True) from None
            except DBAPIError as exc:
                if getattr(exc, "connection_invalidated", False) and attempt < attempts:
                    continue
                raise explain(exc, self.url, writing=True) from None
            except SQLAlchemyError:
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        self.engine.dispose()
