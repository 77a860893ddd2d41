"""Study storage: migrations, SQLite and a real PostgreSQL server, concurrency, bad databases, CLI."""

from __future__ import annotations

import json
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, inspect, select, text

from sarviz.study import OwnerAPI, ParticipantAPI, QuizAnswer, StudyDatabase, StudyDatabaseError, migrations
from sarviz.study.models import Answer, Assignment, Base, Participant

from _study_fixtures import make_study


def _answer_for(participant_no: int, position: int) -> QuizAnswer:
    return QuizAnswer(
        judged_real=(participant_no + position) % 2 == 0,
        realism=1 + position % 5,
        detail=1 + participant_no % 5,
        geographic=1 + (position * 3) % 5,
        confidence=1 + (participant_no + position) % 5,
        seconds=1.5,
    )


def _run_participants(db: StudyDatabase, code: str, n: int) -> list[str]:
    """n simulated participants at once, each answering all images (some clicking twice)."""
    quiz = ParticipantAPI(db)
    barrier = threading.Barrier(n)

    def one(p: int) -> str:
        barrier.wait()
        view = quiz.start(code, ["L1", "L2", "L3"][p % 3], True)
        while not view.finished:
            ans = _answer_for(p, view.position)
            view = quiz.submit(view.resume_code, view.current_public_id, ans)
        return view.resume_code

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _check_all_stored(db: StudyDatabase, codes: list[str]) -> None:
    with db.read() as s:
        for p_no, code in enumerate(codes):
            p = s.scalar(select(Participant).where(Participant.resume_code == code))
            rows = s.execute(
                select(Assignment.position, Answer)
                .join(Answer, Answer.assignment_id == Assignment.id)
                .where(Assignment.participant_id == p.id)
                .order_by(Assignment.position)
            ).all()
            assert [r[0] for r in rows] == list(range(1, 13))
            for pos, a in rows:
                want = _answer_for(p_no, pos)
                assert (a.judged_real, a.realism, a.detail, a.geographic, a.confidence) == (
                    want.judged_real,
                    want.realism,
                    want.detail,
                    want.geographic,
                    want.confidence,
                )
            assert p.finished_at is not None
        assert s.scalar(select(func.count(Answer.id))) == 12 * len(codes)


# -- migrations -------------------------------------------------------------------------------
def test_migrations_are_versioned_idempotent_and_match_models(sqlite_url):
    db = StudyDatabase(sqlite_url, migrate=False)
    assert db.schema_version() == 0
    assert migrations.migrate(db.engine, target=1) == [1]
    assert db.schema_version() == 1
    assert "owner_login" not in inspect(db.engine).get_table_names()
    assert db.migrate() == [2, 3, 4] and db.migrate() == []
    insp = inspect(db.engine)
    for table in Base.metadata.sorted_tables:  # every model column exists in the migrated schema
        have = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} == have, table.name
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT version, description FROM schema_version ORDER BY version")).all()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    db.dispose()


def test_database_from_a_newer_sarviz_is_refused(sqlite_url):
    db = StudyDatabase(sqlite_url)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version VALUES (99, 'future', '2030-01-01')"))
    db.dispose()
    with pytest.raises(StudyDatabaseError, match="schema version 99.*upgrade sarviz"):
        StudyDatabase(sqlite_url)


# -- concurrency ------------------------------------------------------------------------------
def test_twenty_concurrent_participants_sqlite(sqlite_url, tmp_path):
    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "conc", tmp_path / "pool", n_real=6, n_other=6, n_ours=12)
    codes = _run_participants(db, "conc", 20)
    _check_all_stored(db, codes)
    db.dispose()


@pytest.mark.postgres
def test_twenty_concurrent_participants_postgres(postgres_url, tmp_path):
    db = StudyDatabase(postgres_url)
    assert db.engine.dialect.name == "postgresql"
    make_study(OwnerAPI(db), "conc", tmp_path / "pool", n_real=6, n_other=6, n_ours=12)
    codes = _run_participants(db, "conc", 20)
    _check_all_stored(db, codes)
    # racing double submissions of the same answer store exactly one row
    quiz = ParticipantAPI(db)
    view = quiz.start("conc", "L3", True)
    results = []

    def submit() -> None:
        try:
            quiz.submit(view.resume_code, view.current_public_id, _answer_for(0, 1))
            results.append("ok")
        except Exception as exc:  # noqa: BLE001 - we count what each racer saw
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("ok") == 1 and set(results) <= {"ok", "AlreadyAnswered"}
    assert quiz.resume(view.resume_code).answered == 1
    db.dispose()


@pytest.mark.postgres
def test_concurrent_migrations_postgres(postgres_url):
    errors = []

    def open_db() -> None:
        try:
            StudyDatabase(postgres_url).dispose()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_db) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    db = StudyDatabase(postgres_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM schema_version")).scalar() == migrations.LATEST_VERSION


# -- bad databases ----------------------------------------------------------------------------
def test_unreachable_postgres_is_explained_without_password():
    with pytest.raises(StudyDatabaseError) as err:
        StudyDatabase("postgresql://owner:hunter2@127.0.0.1:9/study")
    msg = str(err.value)
    assert "cannot reach the study database" in msg and "hunter2" not in msg and "***" in msg


def test_bad_urls_are_explained():
    with pytest.raises(StudyDatabaseError, match="SQLite or PostgreSQL"):
        StudyDatabase("mysql://x@localhost/db")
    with pytest.raises(StudyDatabaseError, match="no study database given"):
        StudyDatabase("  ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; see the chattr-free variant below")
def test_read_only_sqlite_file(tmp_path):  # pragma: no cover - runs as a normal user
    _read_only_scenario(tmp_path, lambda p: p.chmod(stat.S_IRUSR), lambda p: p.chmod(stat.S_IRUSR | stat.S_IWUSR))


def test_read_only_database_keeps_answers(tmp_path):
    """A database that turns read-only mid-study: the answer is refused with a clear message,
    nothing is half-stored, and the same answer goes in once the database is writable again.
    (Uses SQLite's query_only switch, which behaves like a read-only file even for root.)"""
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'ro.sqlite'}"
    db = StudyDatabase(url)
    make_study(OwnerAPI(db), "ro-study", tmp_path / "pool")
    quiz = ParticipantAPI(db)
    view = quiz.start("ro-study", "L1", True)
    view = quiz.submit(view.resume_code, view.current_public_id, _answer_for(0, 1))
    read_only = {"on": True}

    @event.listens_for(db.engine.pool, "checkout")
    def _query_only(dbapi_connection, _record, _proxy):  # noqa: ANN001
        dbapi_connection.execute(f"PRAGMA query_only={'ON' if read_only['on'] else 'OFF'}")

    with pytest.raises(StudyDatabaseError, match="read-only.*Nothing was saved") as err:
        quiz.submit(view.resume_code, view.current_public_id, _answer_for(0, 2))
    assert "ro.sqlite" in str(err.value)
    assert quiz.resume(view.resume_code).answered == 1  # reading still works; nothing half-stored
    read_only["on"] = False
    view = quiz.submit(view.resume_code, view.current_public_id, _answer_for(0, 2))
    assert view.answered == 2
    db.dispose()


def _read_only_scenario(tmp_path, lock, unlock):  # pragma: no cover - used by the non-root variant
    db_path = tmp_path / "ro2.sqlite"
    db = StudyDatabase(f"sqlite:///{db_path}")
    make_study(OwnerAPI(db), "ro-two", tmp_path / "pool")
    view = ParticipantAPI(db).start("ro-two", "L1", True)
    db.dispose()
    for p in tmp_path.glob("ro2.sqlite*"):
        lock(p)
    lock(tmp_path)
    try:
        db = StudyDatabase(f"sqlite:///{db_path}", migrate=False)
        with pytest.raises(StudyDatabaseError, match="read-only|cannot be opened"):
            ParticipantAPI(db).submit(view.resume_code, view.current_public_id, _answer_for(0, 1))
    finally:
        unlock(tmp_path)
        for p in tmp_path.glob("ro2.sqlite*"):
            unlock(p)


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_create_add_report_export(sqlite_url, tmp_path, capsys):
    from sarviz.cli import main

    from _study_fixtures import build_pool_folder

    folder = build_pool_folder(tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    assert main(["study", "create", "cli-study", "--title", "CLI", "--db", sqlite_url]) == 0
    assert main(["study", "create", "cli-study", "--db", sqlite_url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["study", "add-images", "cli-study", str(folder), "--db", sqlite_url, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "added 12 image(s)" in out and "ready for participants" in out
    db = StudyDatabase(sqlite_url)
    codes = _run_participants(db, "cli-study", 3)
    assert main(["study", "report", "cli-study", "--db", sqlite_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answers"] == 36 and report["participants"]["finished"] == 3
    # the JSON report matches the stored answers, computed here from the rows
    rows = OwnerAPI(db).answer_rows("cli-study")
    real = [r for r in rows if r["source"] == "real"]
    k = sum(not r["judged_real"] for r in real)
    got = next(r for r in report["misjudgment"] if r["level"] == "all" and r["source"] == "real")
    assert (got["n"], got["k"]) == (len(real), k)
    assert main(["study", "report", "cli-study", "--db", sqlite_url]) == 0
    assert "Misjudgment rate" in capsys.readouterr().out
    out_dir = tmp_path / "export"
    assert main(["study", "export", "cli-study", "--db", sqlite_url, "--out", str(out_dir)]) == 0
    assert len((out_dir / "answers.csv").read_text().strip().splitlines()) == 37
    assert (out_dir / "fig7.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["study", "report", "nope", "--db", sqlite_url]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert len(codes) == 3


def test_cli_report_without_code_reports_every_study(sqlite_url, tmp_path, capsys):
    from sarviz.cli import main

    db = StudyDatabase(sqlite_url)
    owner = OwnerAPI(db)
    make_study(owner, "first-study", tmp_path / "p1")
    make_study(owner, "second-study", tmp_path / "p2", start_seed=100)
    codes = _run_participants(db, "first-study", 2)
    assert main(["study", "report", "--db", sqlite_url, "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert sorted(every) == ["first-study", "second-study"]
    assert every["first-study"]["answers"] == 24 and every["second-study"]["answers"] == 0
    assert every["first-study"]["study"]["code"] == "first-study"
    # each entry equals the single-study report
    assert main(["study", "report", "first-study", "--db", sqlite_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == every["first-study"]
    assert main(["study", "report", "--db", sqlite_url]) == 0
    text_out = capsys.readouterr().out
    assert "Study first-study" in text_out and "Study second-study" in text_out
    assert len(codes) == 2
    db.dispose()


# -- mistyped databases are never created -----------------------------------------------------------
def test_mistyped_database_urls_are_refused_not_created(tmp_path, monkeypatch, capsys):
    from sarviz.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    # neither a URL nor a SQLite file name
    assert main(["study", "list", "--db", "notaurl"]) == 2
    err = capsys.readouterr().err
    assert "'notaurl' is neither a database URL" in err and ".sqlite" in err
    assert not (tmp_path / "notaurl").exists()
    # read-only commands need an existing database and name the path
    missing = tmp_path / "typo.sqlite"
    for argv in (
        ["list"],
        ["report"],
        ["report", "x", "--json"],
        ["export", "x", "--out", str(tmp_path / "o")],
        ["add-images", "x", str(tmp_path)],
        ["unlock"],
    ):
        assert main(["study", *argv, "--db", f"sqlite:///{missing}"]) == 2, argv
        err = capsys.readouterr().err
        assert f"the study database {missing} does not exist" in err, (argv, err)
        assert not missing.exists() and not (tmp_path / "o").exists()
    # a missing folder is not created, even by `create`; the message says what would have been made
    deep = tmp_path / "nonexistent" / "dir" / "x.sqlite"
    for argv in (["list"], ["create", "new-study"]):
        assert main(["study", *argv, "--db", f"sqlite:///{deep}"]) == 2
        err = capsys.readouterr().err
        assert str(deep) in err, err
    assert "would have created the folder " + str(tmp_path / "nonexistent") in err
    assert not (tmp_path / "nonexistent").exists()
    # `create` makes a new file in an existing folder; afterwards the read-only commands work
    assert main(["study", "create", "new-study", "--db", str(missing)]) == 0
    assert missing.is_file()
    assert main(["study", "list", "--db", str(missing)]) == 0
    assert "new-study" in capsys.readouterr().out
    # sarviz's own home folder (the default database's) may be created
    assert main(["study", "create", "home-study", "--db", f"sqlite:///{tmp_path / 'home' / 'study.sqlite'}"]) == 0
    # an existing file that is not a study database is not turned into one by a read
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(StudyDatabaseError, match="not a sarviz study database"):
        StudyDatabase(tmp_path / "other.db", create=False)


@pytest.mark.postgres
def test_postgres_database_without_study_tables_is_not_used_by_reads(postgres_url):
    from sarviz.study.db import StudyDatabaseMissing

    with pytest.raises(StudyDatabaseMissing, match="not a sarviz study database"):
        StudyDatabase(postgres_url, create=False)
    StudyDatabase(postgres_url, create=True).dispose()
    StudyDatabase(postgres_url, create=False).dispose()


# -- owner login limiter ---------------------------------------------------------------------------
def _racing_logins(db: StudyDatabase, n: int, client_of) -> list[str]:
    from sarviz.study.auth import OwnerAuth, hash_password

    auth = OwnerAuth(db, hash_password("right", n=2**10))
    barrier = threading.Barrier(n)
    seen: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            seen.append("ok" if auth.login("wrong", client_of(i)) else "wrong")
        except Exception as exc:  # noqa: BLE001 - we count what each racer saw
            seen.append(type(exc).__name__)

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(guess, range(n)))
    return seen


def _failed_logins(db: StudyDatabase) -> int:
    from sarviz.study.models import OwnerLogin

    with db.read() as s:
        return s.scalar(select(func.count(OwnerLogin.id)).where(OwnerLogin.ok.is_(False)))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_parallel_guesses_cannot_exceed_the_client_limit(backend, request, tmp_path):
    """Count and insert are one transaction: 16 simultaneous guesses from one client get
    exactly MAX_FAILURES evaluated; the rest are refused before their result counts."""
    from sarviz.study.auth import MAX_FAILURES

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'l.sqlite'}"
    db = StudyDatabase(url)
    seen = _racing_logins(db, 16, lambda i: "ip:203.0.113.9")
    assert seen.count("wrong") == MAX_FAILURES and seen.count("LoginLocked") == 16 - MAX_FAILURES, seen
    assert _failed_logins(db) == MAX_FAILURES
    db.dispose()


def test_global_limit_slows_attackers_but_never_locks_the_owner_out(sqlite_url, capsys, monkeypatch):
    from sarviz.cli import main
    from sarviz.study import auth as auth_module
    from sarviz.study import models
    from sarviz.study.auth import (
        GLOBAL_MAX_DELAY,
        GLOBAL_SLOWDOWN_AFTER,
        LoginLocked,
        OwnerAuth,
        global_delay,
        hash_password,
    )
    from sarviz.study.models import OwnerLogin

    db = StudyDatabase(sqlite_url)
    # the limiter's clock stands still (attempts are still stamped with the real time, so they are
    # never older than "now"): a busy machine that stalls past the 1 s pause must not lift it
    # mid-test; time passes only where the test ages the rows
    frozen = auth_module.utcnow()
    monkeypatch.setattr(auth_module, "utcnow", lambda: frozen)
    auth = OwnerAuth(db, hash_password("owner-pw", n=2**10))
    assert auth.login("owner-pw", "ip:owner-home")  # the owner's usual address
    # an attacker guessing from many addresses (4 guesses each, under the per-client limit)
    for i in range(GLOBAL_SLOWDOWN_AFTER + 40):
        try:
            auth.login("guess", f"ip:10.0.{i // 4}.{i % 4}")
        except LoginLocked as exc:
            assert "slowed down" in str(exc) and "sarviz study unlock" in str(exc)
            break
    else:
        pytest.fail("the global slow-down never started")
    n_failed = _failed_logins(db)
    assert n_failed == GLOBAL_SLOWDOWN_AFTER  # reaching the threshold starts the pause (1 s, doubling)
    assert global_delay(n_failed) == __import__("datetime").timedelta(seconds=1)
    assert global_delay(n_failed + 3) == __import__("datetime").timedelta(seconds=8)
    assert global_delay(10_000) == GLOBAL_MAX_DELAY  # capped: a delay, never a lock-out
    # a new address must wait, but only for the delay (simulate time passing by ageing the rows)
    with pytest.raises(LoginLocked, match=r"try again in \d+ s"):
        auth.login("owner-pw", "ip:owner-hotel")

    def age(seconds: float) -> None:
        def work(s) -> None:  # noqa: ANN001
            for row in s.scalars(select(OwnerLogin)):
                row.at -= __import__("datetime").timedelta(seconds=seconds)

        db.write(work)

    # the longest delay has passed since the frozen "now" (rows were stamped up to `behind` later)
    behind = (models.utcnow() - frozen).total_seconds()
    age(global_delay(10_000).total_seconds() + 1 + behind)
    assert auth.login("owner-pw", "ip:owner-hotel")
    # the owner's known address is never slowed down by other people's guesses
    assert not auth.login("guess", "ip:10.9.9.1")
    with pytest.raises(LoginLocked, match="slowed down"):
        auth.login("guess", "ip:10.9.9.2")  # the slow-down is in force …
    assert auth.login("owner-pw", "ip:owner-home")  # … yet the owner's address gets in at once
    # `sarviz study unlock` lifts the slow-down for everyone at once
    with pytest.raises(LoginLocked):
        auth.login("owner-pw", "ip:owner-phone")
    assert main(["study", "unlock", "--db", sqlite_url]) == 0
    assert "unlocked for every client" in capsys.readouterr().out
    assert auth.login("owner-pw", "ip:owner-phone")
    db.dispose()


def test_unlock_one_client(sqlite_url, capsys):
    from sarviz.cli import main
    from sarviz.study.auth import MAX_FAILURES, LoginLocked, OwnerAuth, hash_password

    db = StudyDatabase(sqlite_url)
    auth = OwnerAuth(db, hash_password("pw", n=2**10))
    for _ in range(MAX_FAILURES):
        assert not auth.login("nope", "ip:198.51.100.1")
    with pytest.raises(LoginLocked, match="too many wrong passwords"):
        auth.login("pw", "ip:198.51.100.1")
    assert main(["study", "unlock", "--client", "ip:198.51.100.1", "--db", sqlite_url]) == 0
    assert f"{MAX_FAILURES} recent failed attempt(s)" in capsys.readouterr().out
    assert auth.login("pw", "ip:198.51.100.1")
    db.dispose()
