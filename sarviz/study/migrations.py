"""Versioned schema migrations for the study database.

A deliberately small runner instead of Alembic (which would be one more pinned dependency
for five tables): a ``schema_version`` table records every applied migration; migrations
are numbered functions applied in order inside one transaction each, under a lock so that
several app processes starting at once do not race (PostgreSQL advisory lock; SQLite
``BEGIN IMMEDIATE``). Each migration defines the tables *as they were at that version*
(frozen Core definitions), so later model changes never alter what an old migration does.

A database written by a newer sarviz (higher version than we know) is refused with a
message rather than being used with a schema we do not understand.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

from sarviz.errors import StudyError


class SchemaTooNew(StudyError):
    """The database was migrated by a newer sarviz."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_core_tables(conn: Connection) -> None:
    md = MetaData()
    Table(
        "study",
        md,
        Column("id", Integer, primary_key=True),
        Column("code", String(64), nullable=False, unique=True),
        Column("title", String(200), nullable=False),
        Column("design", JSON, nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "item",
        md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("source", String(16), nullable=False),
        Column("model_id", String(200), nullable=False),
        Column("scene_class", String(100), nullable=False),
        Column("lat", Float, nullable=True),
        Column("lon", Float, nullable=True),
        Column("provenance", JSON, nullable=False),
        Column("original_name", String(500), nullable=False),
        Column("content_sha256", String(64), nullable=False),
        Column("png", LargeBinary, nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("added_at", DateTime, nullable=False),
        UniqueConstraint("study_id", "content_sha256", name="uq_item_study_content"),
    )
    Table(
        "participant",
        md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("resume_code", String(64), nullable=False, unique=True),
        Column("level", String(16), nullable=False),
        Column("consent", Boolean, nullable=False),
        Column("started_at", DateTime, nullable=False),
        Column("finished_at", DateTime, nullable=True),
    )
    Table(
        "assignment",
        md,
        Column("id", Integer, primary_key=True),
        Column("participant_id", Integer, ForeignKey("participant.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("item_id", Integer, ForeignKey("item.id", ondelete="RESTRICT"), nullable=False, index=True),
        Column("position", Integer, nullable=False),
        Column("public_id", String(64), nullable=False, unique=True),
        UniqueConstraint("participant_id", "position", name="uq_assignment_position"),
    )
    Table(
        "answer",
        md,
        Column("id", Integer, primary_key=True),
        Column("assignment_id", Integer, ForeignKey("assignment.id", ondelete="CASCADE"), nullable=False, unique=True),
        Column("judged_real", Boolean, nullable=False),
        Column("realism", SmallInteger, nullable=False),
        Column("detail", SmallInteger, nullable=False),
        Column("geographic", SmallInteger, nullable=False),
        Column("confidence", SmallInteger, nullable=False),
        Column("seconds", Float, nullable=True),
        Column("answered_at", DateTime, nullable=False),
    )
    md.create_all(conn)


def _v2_owner_login_and_open_flag(conn: Connection) -> None:
    # Closing a study (no new participants) and rate-limited owner logins came second.
    conn.execute(text("ALTER TABLE study ADD COLUMN is_open BOOLEAN NOT NULL DEFAULT TRUE"))
    md = MetaData()
    Table(
        "owner_login",
        md,
        Column("id", Integer, primary_key=True),
        Column("client", String(200), nullable=False, index=True),
        Column("ok", Boolean, nullable=False),
        Column("at", DateTime, nullable=False, index=True),
        Column("note", Text, nullable=False),
    )
    md.create_all(conn)


def _v3_exclusion_clients_invites(conn: Connection) -> None:
    # Keeping junk out of results: sessions can be excluded (kept, not analysed), are tied to a
    # hashed client key (per-client session limit) and optionally to a one-use invite token.
    for ddl in (
        "ALTER TABLE participant ADD COLUMN excluded BOOLEAN NOT NULL DEFAULT FALSE",
        "ALTER TABLE participant ADD COLUMN excluded_reason TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE participant ADD COLUMN client_hash VARCHAR(64) NOT NULL DEFAULT ''",
    ):
        conn.execute(text(ddl))
    md = MetaData()
    # stubs of the referenced tables (already there) so that the foreign keys resolve
    Table("study", md, Column("id", Integer, primary_key=True))
    Table("participant", md, Column("id", Integer, primary_key=True))
    invite = Table(
        "invite",
        md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("token", String(64), nullable=False, unique=True),
        Column("created_at", DateTime, nullable=False),
        Column(
            "participant_id", Integer, ForeignKey("participant.id", ondelete="SET NULL"), nullable=True, unique=True
        ),
    )
    invite.create(conn)
    conn.execute(text("CREATE INDEX ix_participant_client_hash ON participant (study_id, client_hash)"))


def _v4_refused_starts(conn: Connection) -> None:
    # Refused session starts (per-address limit, start rate, invitations) shown to the owner.
    md = MetaData()
    Table("study", md, Column("id", Integer, primary_key=True))
    Table(
        "refused_start",
        md,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("client_hash", String(64), nullable=False),
        Column("reason", String(32), nullable=False),
        Column("at", DateTime, nullable=False, index=True),
    ).create(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "studies, pooled items, participants, assignments, answers", _v1_core_tables),
    Migration(2, "study open/closed flag; owner login attempts", _v2_owner_login_and_open_flag),
    Migration(3, "excluded sessions, client keys, invite tokens", _v3_exclusion_clients_invites),
    Migration(4, "refused session starts", _v4_refused_starts),
)
LATEST_VERSION = MIGRATIONS[-1].version

_version_md = MetaData()
schema_version = Table(
    "schema_version",
    _version_md,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime, nullable=False),
)

# An arbitrary constant naming our advisory lock in PostgreSQL.
_PG_LOCK_KEY = 724_007


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    value = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(value or 0)


def migrate(engine, target: int | None = None, progress: Callable[[str], None] | None = None) -> list[int]:
    """Bring the schema up to ``target`` (default: latest). Returns the versions applied."""
    target = LATEST_VERSION if target is None else target
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version > target:
            break
        # One transaction per migration, re-checking the version under the lock.
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                _version_md.create_all(conn, checkfirst=True)
                have = current_version(conn)
                if have > LATEST_VERSION:
                    raise SchemaTooNew(
                        f"the study database has schema version {have}, but this sarviz knows only up to "
                        f"{LATEST_VERSION}; upgrade sarviz before using this database"
                    )
                if have >= migration.version:
                    continue
                if progress:
                    progress(f"migrating study database to version {migration.version}: {migration.description}")
                migration.apply(conn)
                conn.execute(
                    schema_version.insert().values(
                        version=migration.version,
                        description=migration.description,
                        applied_at=_dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None),
                    )
                )
                applied.append(migration.version)
    # A database newer than us is refused even when nothing needed applying.
    with engine.connect() as conn:
        have = current_version(conn)
    if have > LATEST_VERSION:
        raise SchemaTooNew(
            f"the study database has schema version {have}, but this sarviz knows only up to "
            f"{LATEST_VERSION}; upgrade sarviz before using this database"
        )
    return applied
