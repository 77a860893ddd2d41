"""Human-evaluation studies: hierarchical real-vs-generated quizzes (seed 000 §4.4).

Layers: :mod:`~sarviz.study.models` + :mod:`~sarviz.study.migrations` (schema),
:mod:`~sarviz.study.db` (SQLite/PostgreSQL sessions), :mod:`~sarviz.study.design` (levels,
ratio, draw), :mod:`~sarviz.study.pool` (blind re-encoding of images),
:mod:`~sarviz.study.service` (participant and owner operations),
:mod:`~sarviz.study.analysis` / :mod:`~sarviz.study.plots` (numbers and figures),
:mod:`~sarviz.study.auth` (owner login).
"""

from sarviz.study.db import StudyDatabase, StudyDatabaseError, StudyError
from sarviz.study.design import DesignError, PoolTooSmall, StudyDesign
from sarviz.study.pool import CorruptImage, DuplicateImage, ItemLabels, PoolError
from sarviz.study.service import (
    AlreadyAnswered,
    AnswerRejected,
    NotFound,
    OwnerAPI,
    ParticipantAPI,
    QuizAnswer,
    SessionView,
)

__all__ = [
    "StudyDatabase",
    "StudyDatabaseError",
    "StudyError",
    "DesignError",
    "PoolTooSmall",
    "StudyDesign",
    "CorruptImage",
    "DuplicateImage",
    "ItemLabels",
    "PoolError",
    "AlreadyAnswered",
    "AnswerRejected",
    "NotFound",
    "OwnerAPI",
    "ParticipantAPI",
    "QuizAnswer",
    "SessionView",
]
