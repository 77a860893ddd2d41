"""Database models of the human-evaluation studies (SQLAlchemy 2 ORM).

Tables
------
* ``study``        – one study: a code participants use in their link, a title, its design (JSON)
* ``item``         – one pooled image with its hidden labels (source, model id, scene class,
  location, provenance) and the metadata-free display PNG participants see
* ``participant``  – one quiz session: declared level, consent, resume code
* ``assignment``   – the images drawn for a participant, in order, each under an opaque
  per-assignment id (so an id never repeats across participants and reveals nothing)
* ``answer``       – one answer per assignment (unique), committed as soon as it is given
* ``invite``       – one-use invitation tokens (optional per study)
* ``owner_login``  – login attempts of study owners (for rate limiting across processes)

The schema is created and upgraded by :mod:`sarviz.study.migrations`, never by
``metadata.create_all``; a test checks that these models match the migrated schema.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: sources a pooled image can come from (seed 000: real : other models : ours)
SOURCES: tuple[str, ...] = ("real", "other", "ours")
SOURCE_LABELS = {"real": "real SAR", "other": "other generators", "ours": "our model"}


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    design: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    items: Mapped[list["Item"]] = relationship(back_populates="study")


class Item(Base):
    __tablename__ = "item"
    __table_args__ = (UniqueConstraint("study_id", "content_sha256", name="uq_item_study_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    scene_class: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    original_name: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    png: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    added_at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    study: Mapped[Study] = relationship(back_populates="items")


class Participant(Base):
    __tablename__ = "participant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True)
    resume_code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    consent: Mapped[bool] = mapped_column(Boolean, nullable=False)
    started_at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    finished_at: Mapped[_dt.datetime | None] = mapped_column(DateTime, nullable=True)
    #: excluded by the owner: kept in the raw export, left out of the analysis
    excluded: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    excluded_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    #: a salted hash of the client key (never the address itself), for the per-client session limit
    client_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")

    assignments: Mapped[list["Assignment"]] = relationship(back_populates="participant", order_by="Assignment.position")


class Assignment(Base):
    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("participant_id", "position", name="uq_assignment_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participant.id", ondelete="CASCADE"), nullable=False, index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="RESTRICT"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    public_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)

    participant: Mapped[Participant] = relationship(back_populates="assignments")
    item: Mapped[Item] = relationship()
    answer: Mapped["Answer | None"] = relationship(back_populates="assignment", uselist=False)


class Answer(Base):
    __tablename__ = "answer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    judged_real: Mapped[bool] = mapped_column(Boolean, nullable=False)
    realism: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    detail: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    geographic: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    confidence: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    answered_at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    assignment: Mapped[Assignment] = relationship(back_populates="answer")


class Invite(Base):
    """A one-use invitation to a study (``…/Quiz?study=CODE&invite=TOKEN``)."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participant.id", ondelete="SET NULL"), nullable=True, unique=True
    )


class RefusedStart(Base):
    """A session start the study refused (junk-session limits), for the owner's admin page."""

    __tablename__ = "refused_start"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), nullable=False, index=True)
    client_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)


class OwnerLogin(Base):
    __tablename__ = "owner_login"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    at: Mapped[_dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
