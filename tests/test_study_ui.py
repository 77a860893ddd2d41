"""Quiz and owner pages driven through Streamlit's AppTest, plus one real-browser session."""

from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

import pytest
from PIL import Image
from scipy.stats import norm
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from _waits import patience, patience_ms
from sarviz.study import OwnerAPI, StudyDatabase
from sarviz.study.models import Answer, Assignment, Item, Participant

from _study_fixtures import make_study

ROOT = Path(__file__).resolve().parents[1]
QUIZ = str(ROOT / "pages" / "3_Quiz.py")
ADMIN = str(ROOT / "pages" / "4_Study_admin.py")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def study_env(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", PASSWORD)
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "ui-study", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    yield db
    db.dispose()


def _labels_of(db: StudyDatabase, public_id: str) -> dict:
    with db.read() as s:
        item = s.scalar(
            select(Item).join(Assignment, Assignment.item_id == Item.id).where(Assignment.public_id == public_id)
        )
        return {
            "source": item.source,
            "model_id": item.model_id,
            "scene_class": item.scene_class,
            "name": item.original_name,
        }


def _answer(participant: int, position: int, source: str) -> dict:
    """A known, deterministic answer pattern (depends on the hidden source, like a real rater)."""
    return {
        "real": (participant + position + (source == "ours")) % 3 != 0,
        "realism": 1 + (participant + position) % 5,
        "detail": 1 + (2 * position) % 5,
        "geographic": 1 + (participant * 3 + position) % 5,
        "confidence": 1 + (position + 4 * participant) % 5,
    }


def _current_pid(at: AppTest) -> str:
    keys = [r.key for r in at.radio if r.key and r.key.startswith("quiz_realism_")]
    assert len(keys) == 1
    return keys[0][len("quiz_realism_") :]


def _all_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "title", "text", "error", "success", "info", "warning", "html"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "") or getattr(el, "body", "")))
    for kind in ("button", "radio", "checkbox", "text_input", "select_slider"):
        for el in getattr(at, kind):
            parts.append(str(el.label))
            parts.extend(str(o) for o in (getattr(el, "options", None) or []))
    return "\n".join(parts)


def _answer_one(at: AppTest, ans: dict) -> None:
    pid = _current_pid(at)
    at.button(key=f"quiz_{'real' if ans['real'] else 'gen'}_{pid}").click().run()
    for name in ("realism", "detail", "geographic", "confidence"):
        at.radio(key=f"quiz_{name}_{pid}").set_value(ans[name])
    at.button(key=f"quiz_submit_{pid}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def _run_participant(db, p_no: int, level: str, reload_after: int | None, expected: list) -> str:
    at = AppTest.from_file(QUIZ, default_timeout=patience(30))
    at.query_params["study"] = "ui-study"
    at.run()
    at.radio[0].set_value(level)
    at.checkbox[0].check()
    at.button[0].click().run()
    resume = at.query_params["resume"]
    resume = resume[0] if isinstance(resume, list) else resume
    position = 1
    while True:
        text = _all_text(at)
        if "Thank you" in text:
            break
        assert f"Image {position} / 12" in text
        pid = _current_pid(at)
        labels = _labels_of(db, pid)
        # double blind: nothing on the page names the source, model, class or file
        for secret in (
            labels["name"],
            labels["model_id"],
            "ours",
            "other generators",
            "our model",
            labels["scene_class"],
            "secret-model",
        ):
            if secret:
                assert secret not in text, secret
        html = at.html[0].value
        png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1))
        assert Image.open(io.BytesIO(png)).size == (512, 512)
        ans = _answer(p_no, position, labels["source"])
        if position == 2:  # skipping a question is refused and nothing is stored
            at.button(key=f"quiz_real_{pid}").click().run()
            at.button(key=f"quiz_submit_{pid}").click().run()
            assert "missing" in at.error[0].value
        _answer_one(at, ans)
        expected.append({"resume": resume, "position": position, "level": level, **labels, **ans})
        if reload_after is not None and position == reload_after:
            # the browser reloads: a new session with only the URL's query parameters
            at = AppTest.from_file(QUIZ, default_timeout=patience(30))
            at.query_params["resume"] = resume
            at.run()
            assert f"Image {position + 1} / 12" in _all_text(at)
        position += 1
    assert position == 13
    return resume


def _wilson_independent(k: int, n: int) -> tuple[float, float]:
    # the Wilson bounds as the roots of (p̂ − p)² = z² p(1 − p)/n
    z = norm.ppf(0.975)
    a, b, c = 1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2
    disc = math.sqrt(max(0.0, b * b - 4 * a * c))
    return ((-b - disc) / (2 * a), (-b + disc) / (2 * a))


def test_quiz_sessions_and_results_page(study_env):
    db = study_env
    expected: list[dict] = []
    for p_no, (level, reload_after) in enumerate([("L1", 5), ("L2", None), ("L3", 11)]):
        _run_participant(db, p_no, level, reload_after, expected)
    # every stored row, exactly once, equals what the simulated participants clicked
    with db.read() as s:
        rows = s.execute(
            select(Participant.resume_code, Participant.level, Assignment.position, Answer)
            .join(Assignment, Assignment.participant_id == Participant.id)
            .join(Answer, Answer.assignment_id == Assignment.id)
        ).all()
    assert len(rows) == len(expected) == 36
    stored = {(r[0], r[2]): (r[1], r[3]) for r in rows}
    for e in expected:
        level, a = stored[(e["resume"], e["position"])]
        assert level == e["level"]
        assert (a.judged_real, a.realism, a.detail, a.geographic, a.confidence) == (
            e["real"],
            e["realism"],
            e["detail"],
            e["geographic"],
            e["confidence"],
        )
        assert a.seconds is not None and a.seconds >= 0

    # the owner's results page shows the same numbers, computed here independently
    at = AppTest.from_file(ADMIN, default_timeout=60)
    at.run()
    assert not at.dataframe  # nothing before login
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    mis = next(d.value for d in at.dataframe if "ci_low" in d.value.columns)
    for _, row in mis.iterrows():
        sel = [
            e
            for e in expected
            if row["level"] in ("all", e["level"])
            and (
                row["source"] == "all"
                or e["source"] == row["source"]
                or (row["source"] == "generated" and e["source"] != "real")
            )
        ]
        k = sum((not e["real"]) if e["source"] == "real" else e["real"] for e in sel)
        lo, hi = _wilson_independent(k, len(sel))
        assert (row["n"], row["k"]) == (len(sel), k)
        assert row["rate"] == pytest.approx(round(100 * k / len(sel), 1))
        assert row["ci_low"] == pytest.approx(round(100 * lo, 1), abs=0.051)
        assert row["ci_high"] == pytest.approx(round(100 * hi, 1), abs=0.051)
    scores = next(d.value for d in at.dataframe if "confidence" in d.value.columns and "realism" in d.value.columns)
    for (level, source), row in scores.iterrows():
        if source not in ("real", "other", "ours"):
            continue
        sel = [e for e in expected if level in ("all", e["level"]) and e["source"] == source]
        mean_conf = sum(e["confidence"] for e in sel) / len(sel)
        mean_q = sum((e["realism"] + e["detail"] + e["geographic"]) / 3 for e in sel) / len(sel)
        assert row["confidence"] == pytest.approx(round(mean_conf, 2), abs=0.006)
        assert row["quality"] == pytest.approx(round(mean_q, 2), abs=0.006)
    assert {"Participants started", "Finished", "Answers"} <= {m.label for m in at.metric}
    assert [m.value for m in at.metric][:3] == ["3", "3", "36"]


def test_participant_cannot_reach_labels_or_results(study_env):
    # the quiz page with made-up parameters shows no labels or results
    at = AppTest.from_file(QUIZ, default_timeout=patience(30))
    at.query_params.update({"study": "ui-study", "item": "1", "page": "results", "admin": "1"})
    at.run()
    text = _all_text(at)
    assert not at.dataframe and "ours" not in text and "img_" not in text
    for bogus in ("AAAAA-BBBBB", "1", "../../etc/passwd"):
        at = AppTest.from_file(QUIZ, default_timeout=patience(30))
        at.query_params["resume"] = bogus
        at.run()
        assert at.error and not at.html and not at.dataframe
    # the admin page without the password shows nothing; wrong passwords get rate-limited
    at = AppTest.from_file(ADMIN, default_timeout=patience(30))
    at.run()
    assert not at.dataframe and not at.tabs
    for _ in range(5):
        at.text_input[0].input("guess")
        at.button[0].click().run()
        assert "Wrong password" in at.error[0].value
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert at.error and "too many wrong passwords" in at.error[0].value.lower(), [
        at.exception,
        [m.value for m in at.markdown],
    ]
    assert not at.dataframe


def test_admin_creates_study_and_reports_pool_gaps(study_env, monkeypatch):
    at = AppTest.from_file(ADMIN, default_timeout=patience(30))
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    form_inputs = [t for t in at.text_input if "Code" in t.label]
    form_inputs[0].input("new-study")
    next(t for t in at.text_input if t.label == "Title").input("New study")
    next(b for b in at.button if b.label == "Create study").click().run()
    assert any("Created new-study" in s.value for s in at.success)
    owner = OwnerAPI(study_env)
    assert "pool is empty" in owner.pool_status("new-study")
    assert [s.code for s in owner.studies()] == ["ui-study", "new-study"]


def test_no_owner_password_configured(study_env, monkeypatch):
    monkeypatch.delenv("SARVIZ_STUDY_OWNER_PASSWORD")
    at = AppTest.from_file(ADMIN, default_timeout=patience(30))
    at.run()
    from sarviz.ui.text import shown  # messages are escaped plain text

    assert "SARVIZ_STUDY_OWNER_PASSWORD" in shown(at.error[0].value) and not at.text_input


def test_missing_database_is_reported_not_created(tmp_path, monkeypatch):
    """A mistyped SARVIZ_STUDY_DB: the quiz says the study is not available and creates
    nothing; the admin page names the missing database; the owner's first "Create study" is what makes a new database."""
    missing = tmp_path / "studyy.sqlite"
    monkeypatch.setenv("SARVIZ_STUDY_DB", f"sqlite:///{missing}")
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", PASSWORD)
    at = AppTest.from_file(QUIZ, default_timeout=patience(30))
    at.query_params["study"] = "ui-study"
    at.run()
    # participants are told "not available", never the path (it is in the log)
    assert at.error and at.error[0].value.startswith("This study is not available")
    assert str(missing) not in at.error[0].value and not missing.exists()
    # the owner page: login still works (and is still rate-limited) without a database …
    at = AppTest.from_file(ADMIN, default_timeout=patience(30))
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    from sarviz.ui.text import shown

    assert any(f"{missing} does not exist" in shown(w.value) for w in at.warning), [w.value for w in at.warning]
    assert not missing.exists() and not at.tabs
    # … and creating the first study creates the database there
    next(t for t in at.text_input if "Code" in t.label).input("first-study")
    next(t for t in at.text_input if t.label == "Title").input("First study")
    next(b for b in at.button if b.label == "Create study").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert missing.is_file()
    assert any("first-study" in s.value for s in at.success)
    db = StudyDatabase(missing, create=False)
    assert [s.code for s in OwnerAPI(db).studies()] == ["first-study"]
    db.dispose()


def test_pool_tab_warns_owner_about_native_sizes(study_env, tmp_path):
    from sarviz.study.pool import ItemLabels

    from _study_fixtures import write_sar_tif

    owner = OwnerAPI(study_env)
    for i in range(3):  # large generated images next to the fixture's 32 px chips
        owner.add_file("ui-study", write_sar_tif(tmp_path / f"big{i}.tif", 50 + i, size=256), ItemLabels("ours"))
    at = AppTest.from_file(ADMIN, default_timeout=patience(30))
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert any("natively about 256 px" in w.value for w in at.warning), [w.value for w in at.warning]
    quiz = AppTest.from_file(QUIZ, default_timeout=patience(30))
    quiz.query_params["study"] = "ui-study"
    quiz.run()
    assert "natively" not in _all_text(quiz)


def _judge(page, real: bool) -> None:
    """Click the real/generated button and wait for the page to confirm it. The click waits
    for the run that drew the image to finish (no stale button of the previous image left to
    click); if one is still lost, click again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from _browser import wait_idle

    confirm = page.get_by_text("Your choice: ").filter(has_text="real SAR" if real else "model-generated")
    for _ in range(4):
        wait_idle(page)
        page.get_by_role("button", name=re.compile("Real SAR" if real else "Generated")).click()
        try:
            confirm.wait_for(timeout=patience_ms(10))
            return
        except PlaywrightTimeout:
            continue
    confirm.wait_for(timeout=patience_ms(10))


def _score(page, position: int) -> None:
    """Answer the four 1–5 questions. The radios keep their elements across reruns, and each
    click sends every widget's state: no need to wait for one click's rerun before the next."""
    for group in ("Overall realism", "Detail plausibility", "Geographic consistency", "Confidence"):
        radio = page.locator('[data-testid="stRadio"]').filter(has_text=group)
        radio.locator("label").filter(has_text=str(1 + (position % 5))).first.click()
        radio.locator("input:checked").wait_for(state="attached")


def _next(page, position: int) -> None:
    """Press "Next" once the page is idle and wait for the next image; if a click still raced
    a re-render and the page says an answer is missing, fill the scores in again and retry."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from _browser import wait_idle

    after = page.get_by_text(f"Image {position + 1} / 12") if position < 12 else page.get_by_text("Thank you!")
    for _ in range(4):
        wait_idle(page)
        page.get_by_role("button", name=re.compile("Next image|Finish")).click()
        try:
            after.wait_for(timeout=patience_ms(10))
            return
        except PlaywrightTimeout:
            _score(page, position)
    after.wait_for(timeout=patience_ms(10))


@pytest.mark.browser
@pytest.mark.slow
def test_real_browser_session(sqlite_url, tmp_path):
    """One whole participant session in Debian Chromium against a real `streamlit run`."""
    from _browser import chromium_page, run_streamlit, screenshot, wait_idle

    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "browser-study", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    names = [r["original_name"] for r in OwnerAPI(db).items("browser-study")]
    env = {"SARVIZ_STUDY_DB": sqlite_url, "SARVIZ_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    seen_urls: list[str] = []
    with run_streamlit("pages/3_Quiz.py", env=env) as base, chromium_page() as page:
        page.on("request", lambda req: seen_urls.append(req.url))
        page.goto(f"{base}/?study=browser-study")
        # each click reruns the script: the next one waits for that run, so none lands on a widget
        # that is about to be redrawn
        page.get_by_text("L2 — Familiar with SAR processing").click()
        wait_idle(page, 60)
        page.locator('[data-testid="stCheckbox"]').click()
        wait_idle(page, 60)
        page.get_by_role("button", name="Start the study").click()
        for position in range(1, 13):
            page.get_by_text(f"Image {position} / 12").wait_for()
            img = page.locator('[data-testid="quiz-image"] img')
            img.wait_for()
            assert img.get_attribute("src").startswith("data:image/png;base64,")
            _judge(page, real=bool(position % 2))
            _score(page, position)
            if position == 6:
                page.screenshot(path=str(tmp_path / "mid.png"))
                page.reload()  # a reload mid-session resumes at the same image, answers kept
                page.get_by_text(f"Image {position} / 12").wait_for()
                _judge(page, real=bool(position % 2))
                _score(page, position)
            _next(page, position)
        page.get_by_text("Thank you!").wait_for()
        html = page.content()
        screenshot(page, "study-quiz-finished")
    for secret in names + ["ours-model", "other-model", "secret-model", "urban", "forest"]:
        assert secret not in html
        assert not any(secret in u for u in seen_urls)
    rows = OwnerAPI(db).answer_rows("browser-study")
    assert len(rows) == 12 and [r["position"] for r in rows] == list(range(1, 13))
    assert [r["judged_real"] for r in rows] == [bool(p % 2) for p in range(1, 13)]
    assert [r["realism"] for r in rows] == [1 + (p % 5) for p in range(1, 13)]
    assert all(r["level"] == "L2" for r in rows)
    db.dispose()
