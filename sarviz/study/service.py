"""Study operations, split by who may call them.

* :class:`ParticipantAPI` — everything the quiz needs and nothing more: start a session,
  resume it by code, fetch the current image by its opaque id, submit an answer. It never
  returns an item's labels, file name, database id or other participants' data.
* :class:`OwnerAPI` — creating studies, filling pools, reading answers and reports. The UI
  hands it out only after an owner login (:mod:`sarviz.study.auth`); the CLI uses it directly
  (whoever can open the database file or URL is an owner).

Every answer is committed in its own transaction as it is given; an answer for an image
that already has one is refused (the first answer stands), so a reload, a double click or
two tabs never duplicate or overwrite anything.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sarviz.constants import QUALITY_ASPECTS
from sarviz.errors import FormatError, MetricError, SceneError
from sarviz.study import pool as pool_mod
from sarviz.study.db import StudyDatabase, StudyError
from sarviz.study.design import (
    PoolEntry,
    StudyDesign,
    balanced_pool,
    check_pool,
    draw_session,
    held_back_message,
)
from sarviz.study.models import Answer, Assignment, Invite, Item, Participant, RefusedStart, Study, utcnow
from sarviz.study.pool import DuplicateImage, ItemLabels, PoolError, RenderedImage

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


class NotFound(StudyError):
    """A study, session or image does not exist (or is not visible to the caller)."""


class AnswerRejected(StudyError):
    """An answer cannot be accepted; nothing was stored."""


class AlreadyAnswered(AnswerRejected):
    """The image already has an answer; the first one stands."""


#: open-link session starts from one address in one study: at most START_RATE_MAX per START_RATE_WINDOW
START_RATE_MAX = 5
START_RATE_WINDOW = _dt.timedelta(minutes=10)


class SessionRefused(StudyError):
    """A new session may not start (invite missing or used, per-client limit reached)."""

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        #: a short key for the owner's count of refused starts ("per-client", "rate", "invite", …)
        self.reason = reason


def client_hash(study_code: str, client: str) -> str:
    """What is stored about a participant's client: a keyed hash, never the address itself."""
    import hashlib

    return hashlib.sha256(f"sarviz-study:{study_code}:{client}".encode()).hexdigest()[:40]


# -- participant side ---------------------------------------------------------------------
@dataclass(frozen=True)
class QuizAnswer:
    judged_real: bool | None
    realism: int | None
    detail: int | None
    geographic: int | None
    confidence: int | None
    seconds: float | None = None

    def validated(self) -> "QuizAnswer":
        missing = []
        if self.judged_real is None:
            missing.append("whether the image is real SAR or model-generated")
        names = {**{k: label.lower() for k, label in QUALITY_ASPECTS.items()}, "confidence": "your confidence"}
        for f, label in names.items():
            v = getattr(self, f)
            if v is None:
                missing.append(label)
            elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
                raise AnswerRejected(f"{label} must be a whole number from 1 to 5, got {v!r}")
        if missing:
            raise AnswerRejected("please answer every question before continuing; missing: " + ", ".join(missing))
        if self.seconds is not None and not (0 <= float(self.seconds) < 86_400 * 30):
            raise AnswerRejected(f"implausible answer time {self.seconds!r} s")
        return self


@dataclass(frozen=True)
class SessionView:
    """What the quiz page may know about a participant's session."""

    study_code: str
    study_title: str
    resume_code: str
    level: str
    total: int
    answered: int
    current_public_id: str | None  # None when finished

    @property
    def finished(self) -> bool:
        return self.current_public_id is None

    @property
    def position(self) -> int:
        """1-based number of the image being shown ("7 / 12")."""
        return min(self.answered + 1, self.total)


@dataclass(frozen=True)
class PublicStudy:
    code: str
    title: str
    levels: dict[str, str]
    consent_text: str
    images_per_session: int
    is_open: bool


class ParticipantAPI:
    def __init__(self, db: StudyDatabase, rng: random.Random | None = None) -> None:
        self.db = db
        self._rng = rng or random.SystemRandom()

    def study(self, code: str) -> PublicStudy:
        code = (code or "").strip().lower()
        with self.db.read() as s:
            study = s.scalar(select(Study).where(Study.code == code))
            if study is None:
                raise NotFound(f"there is no study with the code {code!r}; check the link you were given")
            design = StudyDesign.from_dict(study.design)
            return PublicStudy(
                study.code,
                study.title,
                dict(design.levels),
                design.consent_text,
                design.images_per_session,
                bool(study.is_open),
            )

    def start(
        self, code: str, level: str, consent: bool, *, client: str = "local", invite: str | None = None
    ) -> SessionView:
        """Begin a session: draw this participant's images and store them (one transaction).

        ``client`` is the key of the browser's address (:func:`sarviz.access.client_key`), used
        only as a hash for the study's per-client session limit; ``invite`` a one-use token,
        required when the study is invite-only.
        """
        public = self.study(code)
        if not public.is_open:
            raise StudyError(f"the study {public.title!r} is closed and no longer takes new participants")
        if level not in public.levels:
            raise StudyError(f"please choose your experience level ({', '.join(public.levels)})")
        if consent is not True:
            raise StudyError("you can only take part after agreeing to the consent statement")

        hashed = client_hash(public.code, client or "local")
        token = (invite or "").strip()

        def work(s: Session) -> str:
            study = s.scalar(select(Study).where(Study.code == public.code))
            design = StudyDesign.from_dict(study.design)
            invite_row = None
            if token:
                invite_row = s.scalar(
                    select(Invite).where(Invite.token == token, Invite.study_id == study.id).with_for_update()
                )
                if invite_row is None:
                    raise SessionRefused(
                        "that invitation is not valid for this study; check the link you were given", "invalid invite"
                    )
                if invite_row.participant_id is not None:
                    raise SessionRefused(
                        "that invitation was already used; each invitation starts one session "
                        "(continue yours with your resume code)",
                        "used invite",
                    )
            elif design.invite_only:
                raise SessionRefused(
                    "this study is by invitation only: please use the personal link you were given", "no invite"
                )
            if design.max_sessions_per_client and client != "local":
                n = s.scalar(
                    select(func.count(Participant.id)).where(
                        Participant.study_id == study.id, Participant.client_hash == hashed
                    )
                )
                if n >= design.max_sessions_per_client:
                    raise SessionRefused(
                        f"this study allows {design.max_sessions_per_client} session(s) per participant and one "
                        "was already started from here; continue it with your resume code",
                        "per-client limit",
                    )
            if not token and client != "local":
                # open-link starts from one address are rate-limited whatever the per-client limit
                recent = s.scalar(
                    select(func.count(Participant.id)).where(
                        Participant.study_id == study.id,
                        Participant.client_hash == hashed,
                        Participant.started_at >= utcnow() - START_RATE_WINDOW,
                    )
                )
                if recent >= START_RATE_MAX:
                    raise SessionRefused(
                        f"too many sessions were started from this address in the last "
                        f"{int(START_RATE_WINDOW.total_seconds() // 60)} minutes; please try again later",
                        "start rate",
                    )
            pool = [
                PoolEntry(i, src, cls)
                for i, src, cls in s.execute(
                    select(Item.id, Item.source, Item.scene_class).where(Item.study_id == study.id).order_by(Item.id)
                )
            ]
            exposure = dict(
                s.execute(
                    select(Assignment.item_id, func.count(Assignment.id))
                    .join(Item, Item.id == Assignment.item_id)
                    .where(Item.study_id == study.id)
                    .group_by(Assignment.item_id)
                ).all()
            )
            order = draw_session(pool, design, self._rng, exposure)
            participant = Participant(
                study_id=study.id, resume_code=new_resume_code(), level=level, consent=True, client_hash=hashed
            )
            s.add(participant)
            s.flush()
            if invite_row is not None:
                invite_row.participant_id = participant.id
            for pos, item_id in enumerate(order, 1):
                s.add(
                    Assignment(
                        participant_id=participant.id,
                        item_id=item_id,
                        position=pos,
                        public_id=secrets.token_urlsafe(18),
                    )
                )
            return participant.resume_code

        try:
            resume = self.db.write(work)
        except SessionRefused as exc:
            self._record_refusal(public.code, hashed, exc.reason)
            raise
        return self.resume(resume)

    def _record_refusal(self, code: str, hashed: str, reason: str) -> None:
        def work(s: Session) -> None:
            study_id = s.scalar(select(Study.id).where(Study.code == code))
            if study_id is not None:
                s.add(RefusedStart(study_id=study_id, client_hash=hashed, reason=reason[:32]))

        try:
            self.db.write(work)
        except StudyError:  # the count is for the owner's information; the refusal stands anyway
            pass

    def resume(self, resume_code: str) -> SessionView:
        resume_code = normalise_resume_code(resume_code)
        with self.db.read() as s:
            p = s.scalar(select(Participant).where(Participant.resume_code == resume_code))
            if p is None:
                raise NotFound("that resume code is not known; check it, or start a new session")
            study = s.get(Study, p.study_id)
            rows = s.execute(
                select(Assignment.public_id, Answer.id)
                .outerjoin(Answer, Answer.assignment_id == Assignment.id)
                .where(Assignment.participant_id == p.id)
                .order_by(Assignment.position)
            ).all()
            answered = sum(1 for _, a in rows if a is not None)
            current = next((pid for pid, a in rows if a is None), None)
            return SessionView(study.code, study.title, p.resume_code, p.level, len(rows), answered, current)

    def image(self, resume_code: str, public_id: str) -> bytes:
        """The display PNG of one of *this participant's* images (by opaque id)."""
        resume_code = normalise_resume_code(resume_code)
        with self.db.read() as s:
            png = s.scalar(
                select(Item.png)
                .join(Assignment, Assignment.item_id == Item.id)
                .join(Participant, Participant.id == Assignment.participant_id)
                .where(Assignment.public_id == str(public_id), Participant.resume_code == resume_code)
            )
            if png is None:
                raise NotFound("that image is not part of your session")
            return png

    def submit(self, resume_code: str, public_id: str, answer: QuizAnswer) -> SessionView:
        """Store the answer to the current image; refuse skips, repeats and foreign ids."""
        answer = answer.validated()
        resume_code = normalise_resume_code(resume_code)

        def work(s: Session) -> None:
            # Lock the participant's row so that racing submissions (double clicks, two tabs)
            # are checked one after the other (PostgreSQL; SQLite's BEGIN IMMEDIATE already is).
            p = s.scalar(select(Participant).where(Participant.resume_code == resume_code).with_for_update())
            if p is None:
                raise NotFound("that resume code is not known; check it, or start a new session")
            a = s.scalar(
                select(Assignment).where(Assignment.public_id == str(public_id), Assignment.participant_id == p.id)
            )
            if a is None:
                raise NotFound("that image is not part of your session")
            if s.scalar(select(Answer.id).where(Answer.assignment_id == a.id)) is not None:
                raise AlreadyAnswered(f"image {a.position} was already answered; the first answer is kept")
            first_open = s.scalar(
                select(func.min(Assignment.position))
                .outerjoin(Answer, Answer.assignment_id == Assignment.id)
                .where(Assignment.participant_id == p.id, Answer.id.is_(None))
            )
            if first_open is not None and a.position != first_open:
                raise AnswerRejected(f"please answer image {first_open} first; images cannot be skipped")
            s.add(
                Answer(
                    assignment_id=a.id,
                    judged_real=bool(answer.judged_real),
                    realism=answer.realism,
                    detail=answer.detail,
                    geographic=answer.geographic,
                    confidence=answer.confidence,
                    seconds=None if answer.seconds is None else float(answer.seconds),
                )
            )
            s.flush()
            left = s.scalar(
                select(func.count(Assignment.id))
                .outerjoin(Answer, Answer.assignment_id == Assignment.id)
                .where(Assignment.participant_id == p.id, Answer.id.is_(None))
            )
            if left == 0 and p.finished_at is None:
                p.finished_at = utcnow()

        try:
            self.db.write(work)
        except IntegrityError:
            # Another tab/thread stored this answer between our check and our insert.
            raise AlreadyAnswered("this image was already answered; the first answer is kept") from None
        return self.resume(resume_code)


def new_resume_code() -> str:
    # 10 characters from an alphabet without look-alikes (0/O, 1/I/L): easy to copy by hand,
    # 31^10 ≈ 8e14 codes so guessing one is hopeless.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_resume_code(code: str) -> str:
    raw = re.sub(r"[^0-9A-Za-z]", "", str(code or "")).upper()
    if len(raw) != 10:
        raise NotFound("a resume code has 10 letters and digits, like ABCDE-23456")
    return f"{raw[:5]}-{raw[5:]}"


# -- owner side ---------------------------------------------------------------------------
@dataclass
class AddOutcome:
    name: str
    item_id: int | None = None
    problem: str = ""
    duplicate: bool = False


@dataclass
class ImportReport:
    outcomes: list[AddOutcome]

    @property
    def added(self) -> list[AddOutcome]:
        return [o for o in self.outcomes if o.item_id is not None]

    @property
    def duplicates(self) -> list[AddOutcome]:
        return [o for o in self.outcomes if o.duplicate]

    @property
    def failed(self) -> list[AddOutcome]:
        return [o for o in self.outcomes if o.item_id is None and not o.duplicate]

    def summary(self) -> str:
        parts = [f"added {len(self.added)} image(s)"]
        if self.duplicates:
            parts.append(f"skipped {len(self.duplicates)} duplicate(s)")
        if self.failed:
            parts.append(f"{len(self.failed)} could not be added")
        return ", ".join(parts)


class OwnerAPI:
    def __init__(self, db: StudyDatabase) -> None:
        self.db = db

    # studies
    def create_study(self, code: str, title: str, design: StudyDesign | None = None) -> Study:
        code = (code or "").strip().lower()
        if not CODE_RE.match(code):
            raise StudyError(
                f"study code {code!r}: use 3–64 lower-case letters, digits and dashes "
                "(it appears in the participant link)"
            )
        title = (title or "").strip()
        if not title:
            raise StudyError("a study needs a title")
        design = design or StudyDesign()
        design.validate()

        def work(s: Session) -> Study:
            if s.scalar(select(Study.id).where(Study.code == code)) is not None:
                raise StudyError(f"a study with the code {code!r} already exists")
            study = Study(code=code, title=title[:200], design=design.to_dict(), is_open=True)
            s.add(study)
            s.flush()
            return study

        try:
            return self.db.write(work)
        except IntegrityError:
            raise StudyError(f"a study with the code {code!r} already exists") from None

    def studies(self) -> list[Study]:
        with self.db.read() as s:
            return list(s.scalars(select(Study).order_by(Study.created_at, Study.id)))

    def study(self, code: str) -> Study:
        with self.db.read() as s:
            study = s.scalar(select(Study).where(Study.code == (code or "").strip().lower()))
            if study is None:
                known = ", ".join(s.scalars(select(Study.code).order_by(Study.code))) or "none yet"
                raise NotFound(f"there is no study {code!r} (studies: {known})")
            return study

    def design(self, code: str) -> StudyDesign:
        return StudyDesign.from_dict(self.study(code).design)

    def set_open(self, code: str, is_open: bool) -> None:
        study_id = self.study(code).id

        def work(s: Session) -> None:
            s.get(Study, study_id).is_open = bool(is_open)

        self.db.write(work)

    # pool
    def add_rendered(self, code: str, rendered: RenderedImage, labels: ItemLabels, name: str) -> int:
        study = self.study(code)
        lat, lon = labels.lat, labels.lon
        if lat is None and rendered.location is not None:
            lat, lon = rendered.location
        prov = {
            **rendered.provenance,
            **labels.provenance,
            "native_height": rendered.native_size[0],
            "native_width": rendered.native_size[1],
        }

        def work(s: Session) -> int:
            dup = s.execute(
                select(Item.id, Item.original_name, Item.source).where(
                    Item.study_id == study.id, Item.content_sha256 == rendered.sha256
                )
            ).first()
            if dup is not None:
                raise DuplicateImage(
                    f"{name}: the same picture is already in the pool of {code!r} "
                    f"(item {dup.id}, added from {dup.original_name or 'the app'}); not added again"
                )
            item = Item(
                study_id=study.id,
                source=labels.source,
                model_id=labels.model_id,
                scene_class=labels.scene_class,
                lat=lat,
                lon=lon,
                provenance=prov,
                original_name=name[:500],
                content_sha256=rendered.sha256,
                png=rendered.png,
                width=rendered.width,
                height=rendered.height,
            )
            s.add(item)
            s.flush()
            return item.id

        try:
            return self.db.write(work)
        except IntegrityError:
            raise DuplicateImage(
                f"{name}: the same picture is already in the pool of {code!r}; not added again"
            ) from None

    def add_file(self, code: str, path: str | Path, labels: ItemLabels) -> int:
        rendered = pool_mod.render_file(path, self.design(code))
        return self.add_rendered(code, rendered, labels, Path(path).name)

    def add_bytes(self, code: str, data: bytes, name: str, labels: ItemLabels) -> int:
        """Pool uploaded bytes; ``name`` (sent by a browser) is kept only as a plain base name."""
        from sarviz.access import safe_upload_name

        name = safe_upload_name(name)
        rendered = pool_mod.render_bytes(data, name, self.design(code))
        return self.add_rendered(code, rendered, labels, name)

    def add_result(self, code: str, result: Any, scene: Any | None, labels: ItemLabels) -> int:
        """Pool a :class:`~sarviz.generators.base.GenerationResult` (the app's "add to study pool")."""
        rendered = pool_mod.render_arrays(result.vv_db, result.vh_db, self.design(code))
        try:
            from sarviz.scene import footprint_wgs84

            w, s_, e, n = footprint_wgs84(result.crs, result.transform, result.width, result.height)
            rendered.location = (round((s_ + n) / 2, 6), round((w + e) / 2, 6))
        except Exception:  # a result without a usable grid still pools; it just has no location
            rendered.location = None
        prov = dict(result.provenance)
        if scene is not None:
            prov.setdefault("scene_id", getattr(scene, "scene_id", ""))
            prov["scene_provenance"] = getattr(scene, "provenance", {})
        labels.provenance = {**prov, **labels.provenance}
        if not labels.model_id:
            labels.model_id = str(result.provenance.get("model_id", ""))
        name = f"generated {labels.model_id or 'result'} {prov.get('timestamp', '')}".strip()
        return self.add_rendered(code, rendered, labels, name)

    def import_folder(
        self,
        code: str,
        folder: str | Path,
        defaults: dict[str, Any] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        allowed: Callable[[Path], bool] | None = None,
    ) -> ImportReport:
        """Pool every image of a folder; ``allowed`` decides which files may be read (see
        :func:`sarviz.study.pool.scan_folder`: the app passes its access check)."""
        design = self.design(code)
        entries = pool_mod.scan_folder(folder, defaults, allowed)
        outcomes: list[AddOutcome] = []
        for i, entry in enumerate(entries, 1):
            if entry.labels is None:
                outcomes.append(AddOutcome(entry.path.name, problem=entry.problem))
            else:
                try:
                    rendered = pool_mod.render_file(entry.path, design)
                    item_id = self.add_rendered(code, rendered, entry.labels, entry.path.name)
                    outcomes.append(AddOutcome(entry.path.name, item_id=item_id))
                except DuplicateImage as exc:
                    outcomes.append(AddOutcome(entry.path.name, problem=str(exc), duplicate=True))
                except PoolError as exc:
                    outcomes.append(AddOutcome(entry.path.name, problem=str(exc)))
                except (
                    SceneError,
                    FormatError,
                    MetricError,
                    OSError,
                    ValueError,
                    MemoryError,
                ) as exc:  # one bad file never ends the import
                    outcomes.append(
                        AddOutcome(
                            entry.path.name, problem=f"{entry.path.name}: cannot be read ({type(exc).__name__}: {exc})"
                        )
                    )
            if progress:
                progress(i, len(entries), f"pooled {i}/{len(entries)}: {entry.path.name}")
        return ImportReport(outcomes)

    def items(self, code: str) -> list[dict[str, Any]]:
        study = self.study(code)
        with self.db.read() as s:
            rows = s.execute(
                select(
                    Item.id,
                    Item.source,
                    Item.model_id,
                    Item.scene_class,
                    Item.lat,
                    Item.lon,
                    Item.original_name,
                    Item.added_at,
                    Item.provenance,
                )
                .where(Item.study_id == study.id)
                .order_by(Item.id)
            ).all()
            return [dict(r._mapping) for r in rows]

    def item_png(self, item_id: int) -> bytes:
        with self.db.read() as s:
            png = s.scalar(select(Item.png).where(Item.id == int(item_id)))
            if png is None:
                raise NotFound(f"no pooled image {item_id}")
            return png

    def pool_status(self, code: str) -> str:
        """ "ready" or the message saying what the pool lacks."""
        study = self.study(code)
        with self.db.read() as s:
            pool = [
                PoolEntry(i, src, c)
                for i, src, c in s.execute(
                    select(Item.id, Item.source, Item.scene_class).where(Item.study_id == study.id)
                )
            ]
        try:
            check_pool(pool, StudyDesign.from_dict(study.design))
        except StudyError as exc:
            return str(exc)
        return "ready"

    def pool_warnings(self, code: str) -> list[str]:
        """Owner-only blinding warnings about the pool: images held back so that pool sizes
        follow the ratio (equal exposure whatever the source), native sizes that differ by source."""
        study = self.study(code)
        design = StudyDesign.from_dict(study.design)
        with self.db.read() as s:
            rows = s.execute(
                select(Item.id, Item.source, Item.scene_class, Item.provenance).where(Item.study_id == study.id)
            ).all()
        pool = [PoolEntry(i, src, c) for i, src, c, _ in rows]
        warnings = []
        try:
            check_pool(pool, design)
        except StudyError:
            pass  # pool_status says what is missing
        else:
            msg = held_back_message(balanced_pool(pool, design)[1], pool, design)
            if msg:
                warnings.append(msg)
        sides = []
        for _, source, _, prov in rows:
            h, w = (prov or {}).get("native_height"), (prov or {}).get("native_width")
            sides.append((source, min(int(h), int(w)) if h and w else None))
        from sarviz.study.analysis import proxy_summary

        proxy = proxy_summary([{"source": src, "provenance": prov} for _, src, _, prov in rows])["note"]
        return warnings + pool_mod.native_size_warnings(sides) + ([f"PROXY: {proxy}."] if proxy else [])

    def exposure(self, code: str) -> list[dict[str, Any]]:
        """How many sessions each pooled image was drawn for (owner only: it is joined with the source)."""
        study = self.study(code)
        with self.db.read() as s:
            rows = s.execute(
                select(Item.id, Item.source, func.count(Assignment.id))
                .outerjoin(Assignment, Assignment.item_id == Item.id)
                .where(Item.study_id == study.id)
                .group_by(Item.id, Item.source)
                .order_by(Item.id)
            ).all()
        return [{"item_id": i, "source": src, "sessions": int(n)} for i, src, n in rows]

    # sessions
    def set_excluded(self, code: str, participant_id: int, excluded: bool = True, reason: str = "") -> None:
        """Mark a session as excluded (kept in the raw export, left out of the analysis) or include it again."""
        study = self.study(code)

        def work(s: Session) -> None:
            p = s.get(Participant, int(participant_id))
            if p is None or p.study_id != study.id:
                raise NotFound(f"no session {participant_id} in {code!r}")
            p.excluded = bool(excluded)
            p.excluded_reason = (reason or "").strip()[:500] if excluded else ""

        self.db.write(work)

    def create_invites(self, code: str, n: int) -> list[str]:
        """``n`` new one-use invitation tokens for the study."""
        if not 1 <= int(n) <= 10_000:
            raise StudyError(f"make 1 to 10000 invitations at a time, not {n}")
        study = self.study(code)
        tokens = [secrets.token_urlsafe(12) for _ in range(int(n))]

        def work(s: Session) -> None:
            for t in tokens:
                s.add(Invite(study_id=study.id, token=t))

        self.db.write(work)
        return tokens

    def invites(self, code: str) -> list[dict[str, Any]]:
        study = self.study(code)
        with self.db.read() as s:
            rows = s.execute(
                select(Invite.token, Invite.created_at, Invite.participant_id)
                .where(Invite.study_id == study.id)
                .order_by(Invite.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    # answers
    def answer_rows(self, code: str, include_excluded: bool = False) -> list[dict[str, Any]]:
        """Stored answers joined with the hidden labels (one row per answer).

        Answers of excluded sessions are left out unless ``include_excluded`` (the raw export).
        """
        study = self.study(code)
        with self.db.read() as s:
            q = (
                select(
                    Participant.id.label("participant_id"),
                    Participant.level,
                    Participant.started_at,
                    Participant.excluded,
                    Participant.finished_at,
                    Assignment.position,
                    Assignment.public_id,
                    Item.id.label("item_id"),
                    Item.source,
                    Item.model_id,
                    Item.scene_class,
                    Item.lat,
                    Item.lon,
                    Item.original_name,
                    Answer.judged_real,
                    Answer.realism,
                    Answer.detail,
                    Answer.geographic,
                    Item.provenance,
                    Answer.confidence,
                    Answer.seconds,
                    Answer.answered_at,
                )
                .join(Assignment, Assignment.participant_id == Participant.id)
                .join(Item, Item.id == Assignment.item_id)
                .join(Answer, Answer.assignment_id == Assignment.id)
                .where(Participant.study_id == study.id)
                .order_by(Participant.id, Assignment.position)
            )
            if not include_excluded:
                q = q.where(Participant.excluded.is_(False))
            from sarviz.study.analysis import embedding_kind

            rows = [dict(r._mapping) for r in s.execute(q)]
        for row in rows:  # the PROXY label of each answer's image, not its whole provenance
            row["embedding"] = embedding_kind(row.pop("provenance", None))
        return rows

    def refused_starts(self, code: str) -> list[dict[str, Any]]:
        """Refused session starts by reason: how many, from how many addresses, the latest."""
        study = self.study(code)
        with self.db.read() as s:
            q = (
                select(
                    RefusedStart.reason,
                    func.count(RefusedStart.id).label("refused"),
                    func.count(func.distinct(RefusedStart.client_hash)).label("addresses"),
                    func.max(RefusedStart.at).label("latest"),
                )
                .where(RefusedStart.study_id == study.id)
                .group_by(RefusedStart.reason)
                .order_by(RefusedStart.reason)
            )
            return [dict(r._mapping) for r in s.execute(q)]

    def participant_rows(self, code: str) -> list[dict[str, Any]]:
        study = self.study(code)
        with self.db.read() as s:
            q = (
                select(
                    Participant.id,
                    Participant.level,
                    Participant.started_at,
                    Participant.finished_at,
                    Participant.excluded,
                    Participant.excluded_reason,
                    func.count(Answer.id).label("answered"),
                )
                .join(Assignment, Assignment.participant_id == Participant.id)
                .outerjoin(Answer, Answer.assignment_id == Assignment.id)
                .where(Participant.study_id == study.id)
                .group_by(Participant.id)
                .order_by(Participant.id)
            )
            return [dict(r._mapping) for r in s.execute(q)]
