"""A study server strangers can use — the reviewer's attacks, each now failing safely.

Blinding (exposure counts), junk sessions (per-client limit, invitations, exclusion), owner
login keyed on what a client cannot choose, server paths limited to configured roots, study
mode gating every page but the quiz. The real-server (browser) attacks are at the end.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from sarviz.access import UNTRUSTED_FORWARD, AccessDenied, client_key, resolve_user_path, safe_upload_name
from sarviz.cli import main
from sarviz.settings import Settings
from sarviz.study import OwnerAPI, StudyDatabase
from sarviz.study.auth import LoginLocked, OwnerAuth, hash_password
from sarviz.study.design import PoolEntry, StudyDesign, balanced_pool, draw_session
from sarviz.study.pool import MISSING_GREY, PoolError, render_file, render_png_bytes
from sarviz.study.service import ParticipantAPI, QuizAnswer, SessionRefused

from _study_fixtures import build_pool_folder, make_study, write_sar_tif

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


def _finish(api: ParticipantAPI, view) -> None:
    while not view.finished:
        view = api.submit(view.resume_code, view.current_public_id, QuizAnswer(True, 3, 3, 3, 3, 1.0))


# -- blinding: exposure carries no label information ------------------------------------------
def test_twenty_throwaway_sessions_do_not_reveal_ours_by_exposure(sqlite_url, tmp_path):
    """The reviewer's attack: 20 scripted sessions on equal pools (8 real, 8 other, 8 ours) at
    1:1:2; the most-shown images were exactly the "ours" ones. Now every shown image is shown
    equally often, and the owner is told which images are held back and why."""
    db = StudyDatabase(sqlite_url)
    owner = OwnerAPI(db)
    make_study(owner, "expo", tmp_path / "pool", n_real=8, n_other=8, n_ours=8)
    api = ParticipantAPI(db, rng=random.Random(7))
    for _ in range(20):
        api.start("expo", "L1", True)
    exposure = owner.exposure("expo")
    shown = [r for r in exposure if r["sessions"]]
    counts = Counter(r["sessions"] for r in shown)
    assert len(counts) == 1, counts  # the same for every shown image, whatever its source
    top8 = sorted(exposure, key=lambda r: -r["sessions"])[:8]
    assert {r["source"] for r in top8} != {"ours"}
    by_source = Counter(r["source"] for r in shown)
    assert by_source == {"real": 4, "other": 4, "ours": 8}  # pool sized to 1:1:2
    warnings = " ".join(owner.pool_warnings("expo"))
    assert "4 real SAR" in warnings and "4 other generators" in warnings and "held back" in warnings
    assert "add 8 our model image(s)" in warnings  # 8 : 8 : 16 would use every image
    db.dispose()


def test_least_exposed_first_keeps_exposure_within_one():
    design = StudyDesign(images_per_session=4, ratio={"real": 1, "other": 1, "ours": 2})
    pool = (
        [PoolEntry(i, "real", "urban" if i % 2 else "forest") for i in range(5)]
        + [PoolEntry(10 + i, "other", "") for i in range(5)]
        + [PoolEntry(20 + i, "ours", "") for i in range(10)]
    )
    active, held = balanced_pool(pool, design)
    assert len(active) == 20 and held == {}
    exposure: Counter = Counter()
    rng = random.Random(1)
    for _ in range(37):
        exposure.update(draw_session(pool, design, rng, dict(exposure)))
        values = [exposure[e.item_id] for e in pool]
        assert max(values) - min(values) <= 1


# -- junk sessions: per-client limit, invitations, exclusion ----------------------------------
def test_per_client_limit_invitations_and_exclusion(sqlite_url, tmp_path, capsys):
    db = StudyDatabase(sqlite_url)
    owner = OwnerAPI(db)
    owner.create_study("limited", "Limited", StudyDesign(max_sessions_per_client=1))
    owner.import_folder("limited", build_pool_folder(tmp_path / "p1"))
    api = ParticipantAPI(db)
    first = api.start("limited", "L1", True, client="ip:198.51.100.7")
    with pytest.raises(SessionRefused, match="1 session"):
        api.start("limited", "L1", True, client="ip:198.51.100.7")
    api.start("limited", "L2", True, client="ip:198.51.100.8")  # another person
    _finish(api, first)

    owner.create_study("invited", "Invited", StudyDesign(invite_only=True))
    owner.import_folder("invited", build_pool_folder(tmp_path / "p2", start_seed=100))
    with pytest.raises(SessionRefused, match="invitation only"):
        api.start("invited", "L1", True)
    token = owner.create_invites("invited", 2)[0]
    view = api.start("invited", "L3", True, invite=token)
    with pytest.raises(SessionRefused, match="already used"):
        api.start("invited", "L3", True, invite=token)
    with pytest.raises(SessionRefused, match="not valid"):
        api.start("limited", "L3", True, invite=owner.create_invites("invited", 1)[0])
    _finish(api, view)

    # exclusion: kept in the raw export, left out of the analysis, the count shown
    from sarviz.study.analysis import answers_csv, study_report

    pid = owner.participant_rows("limited")[0]["id"]
    before = study_report(owner, "limited")
    owner.set_excluded("limited", pid, reason="test run")
    after = study_report(owner, "limited")
    assert before.n_answers == 12 and after.n_answers == 0
    assert after.participants["excluded"] == 1 and "1 excluded session" in after.text()
    raw = answers_csv(owner.answer_rows("limited", include_excluded=True)).splitlines()
    assert len(raw) == 13 and raw[0].startswith("participant_id,excluded") and all(",True," in r for r in raw[1:])
    out = tmp_path / "export"
    assert main(["study", "export", "limited", "--out", str(out), "--db", sqlite_url]) == 0
    assert len((out / "answers.csv").read_text().splitlines()) == 13
    assert main(["study", "exclude", "limited", str(pid), "--undo", "--db", sqlite_url]) == 0
    assert "0 excluded in all" in capsys.readouterr().out
    assert study_report(owner, "limited").n_answers == 12
    assert (
        main(["study", "invite", "invited", "-n", "3", "--base-url", "https://study.example", "--db", sqlite_url]) == 0
    )
    links = capsys.readouterr().out.split()
    assert len(links) == 3 and all(u.startswith("https://study.example/Quiz?study=invited&invite=") for u in links)
    api.start("invited", "L1", True, invite=links[0].split("invite=")[1])
    db.dispose()


# -- missing pixels and bad inputs to a pool --------------------------------------------------
def test_missing_pixels_look_the_same_from_png_and_geotiff(tmp_path):
    """The reviewer pooled sarviz's own PNG download (missing = black) and its GeoTIFF (grey)."""
    from affine import Affine

    from sarviz.generators.base import GenerationResult

    vv = np.full((64, 64), -12.0, np.float32)
    vh = np.full((64, 64), -19.0, np.float32)
    vv[:, :20] = np.nan  # an embedding hole of a generated image
    vh[:, :20] = np.nan
    result = GenerationResult(vv, vh, "EPSG:32633", Affine(10, 0, 500000, 0, -10, 5300000), {"model_id": "m"})
    tif = result.to_geotiff(tmp_path / "r.tif")
    design = StudyDesign(display_px=64)
    from_tif = np.asarray(Image.open(io.BytesIO(render_file(tif, design).png)))
    from_png = np.asarray(Image.open(io.BytesIO(render_png_bytes(result.png_bytes(), design).png)))
    assert from_tif[:, :18].min() == from_tif[:, :18].max() == MISSING_GREY
    assert from_png[:, :18].min() == from_png[:, :18].max() == MISSING_GREY


def test_linear_power_geotiff_and_nul_names_are_refused_or_cleaned(sqlite_url, tmp_path):
    import rasterio
    from affine import Affine

    lin = tmp_path / "linear_power.tif"
    rng = np.random.default_rng(0)
    with rasterio.open(
        lin,
        "w",
        driver="GTiff",
        width=32,
        height=32,
        count=2,
        dtype="float32",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 5300000),
    ) as dst:
        dst.write(rng.gamma(1.0, 0.05, (2, 32, 32)).astype(np.float32))  # σ⁰ in linear power
        dst.descriptions = ("VV", "VH")
    with pytest.raises(PoolError, match="linear power"):
        render_file(lin, StudyDesign())
    db = StudyDatabase(sqlite_url)
    owner = OwnerAPI(db)
    owner.create_study("names", "Names")
    data = write_sar_tif(tmp_path / "ok.tif", seed=3).read_bytes()
    from sarviz.study.pool import ItemLabels

    owner.add_bytes("names", data, "../../evil\x00name.tif", ItemLabels(source="real"))
    assert owner.items("names")[0]["original_name"] == "evilname.tif"
    assert safe_upload_name("\x00\x01") == "upload"
    db.dispose()


# -- owner login: keyed on what a client cannot choose; never a lock-out of the owner --------
def test_forwarded_headers_are_believed_only_from_configured_proxies():
    hdr = lambda v: [("X-Forwarded-For", v)]  # noqa: E731
    # uvicorn (Streamlit's server) rewrote a loopback peer to the header's value: we do not believe it
    assert client_key("203.0.113.9", hdr("203.0.113.9"), ()) == UNTRUSTED_FORWARD
    assert client_key("198.51.100.1", hdr("203.0.113.9"), ()) == "ip:198.51.100.1"  # a remote peer forging it
    assert client_key("127.0.0.1", [], ()) == "ip:127.0.0.1"
    # behind a configured proxy: the right-most address that is not a proxy
    assert client_key("10.0.0.2", hdr("1.2.3.4, 198.51.100.5, 10.0.0.3"), ("10.0.0.0/8",)) == "ip:198.51.100.5"
    assert client_key("203.0.113.9", hdr("6.6.6.6, 203.0.113.9"), ("127.0.0.1",)) == "ip:203.0.113.9"


def test_attacker_cannot_lock_the_owner_out(sqlite_url, capsys):
    db = StudyDatabase(sqlite_url)
    auth = OwnerAuth(db, hash_password(PASSWORD, n=2**10))
    # anyone's guesses from the shared loopback address lock that address …
    for i in range(5):
        assert auth.login("guess", "ip:127.0.0.1", session=f"attacker-{i}") is False
    with pytest.raises(LoginLocked, match="from this address"):
        auth.login(PASSWORD, "ip:127.0.0.1", session="owner")
    # … five in one browser session lock that session only
    for _ in range(5):
        auth.login("guess", "ip:198.51.100.3", session="s1")
    with pytest.raises(LoginLocked, match="browser session"):
        auth.login("guess", "ip:198.51.100.4", session="s1")
    # the owner's way in: a one-time code printed by the CLI passes every limit, once
    assert main(["study", "unlock", "--db", sqlite_url]) == 0
    code = capsys.readouterr().out.split("one-time unlock code: ")[1].split()[0]
    for i in range(25):  # the attacker keeps going meanwhile (global slow-down reached)
        try:
            auth.login("guess", f"ip:203.0.113.{i}", session=f"x{i}")
        except LoginLocked:
            pass
    with pytest.raises(LoginLocked, match="unlock code is not valid"):
        auth.login(PASSWORD, "ip:127.0.0.1", session="owner", unlock_code="AAAA-BBBB-CCCC")
    assert auth.login(PASSWORD, "ip:127.0.0.1", session="owner", unlock_code=code) is True
    with pytest.raises(LoginLocked, match="not valid"):  # used up
        auth.login(PASSWORD, "ip:127.0.0.1", session="owner2", unlock_code=code)
    # with a valid code, a locked address got 8 wrong passwords checked and kept
    # the code. Now a wrong password burns the code: one guess per code, then the limits again.
    assert main(["study", "unlock", "--db", sqlite_url]) == 0
    code = capsys.readouterr().out.split("one-time unlock code: ")[1].split()[0]
    for i in range(5):
        auth.login("guess", "ip:192.0.2.9", session=f"lock-{i}")
    checked, refused = 0, 0
    for i in range(8):
        try:
            assert auth.login(f"guess{i}", "ip:192.0.2.9", session="lock-0", unlock_code=code) is False
            checked += 1
        except LoginLocked:
            refused += 1
    assert (checked, refused) == (1, 7)
    with pytest.raises(LoginLocked, match="not valid"):  # the right password too: the code is gone
        auth.login(PASSWORD, "ip:192.0.2.9", session="lock-0", unlock_code=code)
    db.dispose()


# -- server paths: only configured roots -------------------------------------------------------
def test_paths_typed_in_a_browser_stay_inside_the_roots(tmp_path, monkeypatch):
    scenes, pool, outside = tmp_path / "scenes", tmp_path / "pool", tmp_path / "owner-secret"
    for d in (scenes, pool / "batch", outside):
        d.mkdir(parents=True)
    (scenes / "escape").symlink_to(outside)
    monkeypatch.setenv("SARVIZ_SCENES", str(scenes))
    monkeypatch.setenv("SARVIZ_POOL_DIR", str(pool))
    monkeypatch.setenv("SARVIZ_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.delenv("SARVIZ_ROOTS", raising=False)
    s = Settings.load()
    assert resolve_user_path(str(pool / "batch"), s) == (pool / "batch").resolve()
    for bad in (
        str(outside),
        "/etc",
        str(scenes / ".." / "owner-secret"),
        str(scenes / "escape"),
        "~",
        str(scenes) + "\x00x",
    ):
        with pytest.raises(AccessDenied, match="Refused"):
            resolve_user_path(bad, s)
    monkeypatch.setenv("SARVIZ_ROOTS", str(outside))
    assert resolve_user_path(str(outside), Settings.load()) == outside.resolve()


def test_study_db_url_with_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SARVIZ_STUDY_DB", "sqlite:///~/.sarviz/study.sqlite")
    url = Settings.load().study_db
    assert url == f"sqlite:///{tmp_path}/.sarviz/study.sqlite"
    from sarviz.study.db import normalise_url

    assert normalise_url("sqlite:///~/x.sqlite").database == f"{tmp_path}/x.sqlite"


def _texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value) for kind in ("error", "warning", "info", "title", "markdown", "success") for e in getattr(at, kind)
    )


def test_inspect_and_map_folder_boxes_refuse_folders_outside_the_roots(tmp_path, monkeypatch):
    """The reviewer listed the owner's pool folder (every file name) through Inspect's folder box,
    and made the map page write .sarviz-index.json into a folder they typed."""
    scenes, secret = tmp_path / "scenes", tmp_path / "owner-pool"
    scenes.mkdir()
    secret.mkdir()
    for name in ("ours_001.tif", "bigearthnet_S1A_x.tif"):
        write_sar_tif(secret / name, seed=1)
    monkeypatch.setenv("SARVIZ_SCENES", str(scenes))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(ROOT / "pages" / "2_Inspect.py"), default_timeout=60)
    at.run()
    at.text_input(key="inspect-folder").input(str(secret)).run()
    assert not at.exception
    assert "Refused" in _texts(at) and "ours_001" not in _texts(at) and not at.selectbox
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    next(t for t in at.text_input if t.label == "Scene folder").input(str(secret)).run()
    assert not at.exception and any("Refused" in e.value for e in at.error)
    assert not (secret / ".sarviz-index.json").exists()


def test_study_mode_gates_every_page_but_the_quiz(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_MODE", "study")
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", PASSWORD)
    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_SCENES", str(tmp_path / "scenes"))
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    (tmp_path / "scenes").mkdir()
    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "gated", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    # the app's entry point: participants get the quiz (the other pages do not exist for them)
    entry = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    entry.run()
    assert not entry.exception
    assert [t.label for t in entry.text_input][0].startswith("Study code")
    assert not any("synthetic SAR workbench" in t.value for t in entry.title)
    pages = (
        "pages/2_Inspect.py",
        "pages/1_Prompt.py",
        "pages/6_Batch.py",
        "pages/5_Training_runs.py",
        "pages/7_Render.py",
    )
    for k, page in enumerate(pages):  # opened directly: gated
        at = AppTest.from_file(str(ROOT / page), default_timeout=60)
        at.run()
        assert not at.exception
        labels = [t.label for t in at.text_input]
        assert labels == ["Study owner password", "One-time unlock code (optional)"], (page, labels)
        assert "owner" in _texts(at)
        if k < len(pages) - 1:  # a wrong password per page, fewer than the lockout's MAX_FAILURES from one address
            at.text_input[0].input("wrong")
            at.button[0].click().run()
            assert any("Wrong password" in e.value for e in at.error)
        at.text_input[0].input(PASSWORD)
        at.button[0].click().run()
        assert not at.exception
        assert "Study owner password" not in [t.label for t in at.text_input]  # the page itself now
    quiz = AppTest.from_file(str(ROOT / "pages" / "3_Quiz.py"), default_timeout=60)
    quiz.query_params["study"] = "gated"
    quiz.run()
    assert not quiz.exception and "Study owner password" not in [t.label for t in quiz.text_input]
    assert any(b.label == "Start the study" for b in quiz.button)
    # a bad study code is not a dead end: the box to retype it is there, with the message
    quiz = AppTest.from_file(str(ROOT / "pages" / "3_Quiz.py"), default_timeout=60)
    quiz.query_params["study"] = "gatedd"
    quiz.run()
    assert quiz.error[0].value.startswith("There is no study")
    box = next(t for t in quiz.text_input if t.label.startswith("Study code"))
    assert box.value == "gatedd"
    box.input("gated")
    quiz.button[0].click().run()
    assert any(b.label == "Start the study" for b in quiz.button)
    db.dispose()


# -- against the real server: streamlit run on loopback, Debian Chromium ----------------------
def _failed_logins(db: StudyDatabase) -> int:
    from sqlalchemy import func, select

    from sarviz.study.models import OwnerLogin

    with db.read() as s:
        return s.scalar(select(func.count(OwnerLogin.id)).where(OwnerLogin.ok.is_(False)))


def _login(page, password: str, expect: str, db: StudyDatabase | None = None) -> None:
    """Submit the owner login form once and wait for its outcome (the attempt recorded, if a db is given)."""
    from _waits import patience, patience_ms

    from _study_fixtures import wait_until

    before = _failed_logins(db) if db is not None else None
    page.get_by_label("Study owner password").fill(password)
    page.get_by_role("button", name="Log in").click()
    # scrypt and a script rerun: seconds on a quiet machine, far longer beside a CPU hog
    if db is not None:
        assert wait_until(lambda: _failed_logins(db) > before, timeout=patience(60))
    page.get_by_text(expect).first.wait_for(timeout=patience_ms(60))


@pytest.mark.browser
@pytest.mark.slow
def test_real_server_study_mode_and_forged_forwarded_addresses(sqlite_url, tmp_path):
    """Study mode against `streamlit run app.py`: Inspect asks for the owner login (server side)
    while the quiz stays open; rotating a forged X-Forwarded-For no longer gives fresh guesses;
    the owner (another address) still gets in."""
    from _waits import patience_ms

    from _browser import chromium_page, run_streamlit, wait_idle

    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "served", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    pool_names = [r["original_name"] for r in OwnerAPI(db).items("served")]
    (tmp_path / "scenes").mkdir()
    env = {
        "SARVIZ_MODE": "study",
        "SARVIZ_STUDY_DB": sqlite_url,
        "SARVIZ_STUDY_OWNER_PASSWORD": PASSWORD,
        "SARVIZ_SCENES": str(tmp_path / "scenes"),
        "SARVIZ_POOL_DIR": str(tmp_path / "pool"),
        "SARVIZ_HOME": str(tmp_path / "home"),
    }
    with run_streamlit("serve.py", env=env) as base, chromium_page() as page:
        browser = page.context.browser
        # the quiz is open to participants
        page.goto(f"{base}/Quiz?study=served")
        page.get_by_role("button", name="Start the study").wait_for()
        # the link the admin prints opens the quiz itself, no "Page not found"
        # dialog and no rewritten URL; the owner's pages show the owner login
        assert "Page not found" not in page.content() and page.url.endswith("/Quiz?study=served")
        for owner_page in ("Batch", "Prompt", "Training_runs"):
            page.goto(f"{base}/{owner_page}")
            page.get_by_label("Study owner password").wait_for()
            assert "Page not found" not in page.content() and page.url.endswith(f"/{owner_page}")
        # an attacker rotating forged X-Forwarded-For headers
        for n in range(2):
            ctx = browser.new_context(extra_http_headers={"X-Forwarded-For": f"203.0.113.{n + 10}"})
            attacker = ctx.new_page()
            attacker.set_default_timeout(patience_ms(60))
            attacker.goto(f"{base}/Inspect")
            attacker.get_by_label("Study owner password").wait_for()
            html = attacker.content()
            assert "Inspect a generated SAR image" not in html and not any(nm in html for nm in pool_names)
            if n == 0:
                for _ in range(5):
                    _login(attacker, "guess", "Wrong password", db)
            # the second "address" is the same bucket: no fresh guesses
            _login(attacker, "guess", "from this address" if n else "browser session")
            ctx.close()
        # the owner, from their own address, is not locked out
        page.goto(f"{base}/Inspect")
        _login(page, PASSWORD, "Inspect a generated SAR image")
        # the logged-in owner may upload (the upload guard lets only the owner's session through)
        tif = write_sar_tif(tmp_path / "owner_upload.tif", seed=3)
        page.get_by_text("Upload", exact=True).click()
        page.locator("input[type=file]").first.set_input_files(str(tif))
        page.get_by_text("owner_upload.tif").first.wait_for()
        wait_idle(page, 60)  # the upload's request and the run it starts have finished: a refusal would show now
        assert "status code" not in page.content()
        # the participant link the owner is given is a full URL
        page.goto(f"{base}/Study_admin")
        _login(page, PASSWORD, "Human-evaluation studies")
        page.get_by_label("Code (used in the participant link)").fill("linked")
        page.get_by_label("Title").fill("Linked")
        page.get_by_role("button", name="Create study").click()
        page.get_by_text(f"{base}/Quiz?study=linked").wait_for()
    db.dispose()


def test_admin_import_refreshes_at_once_form_clears_and_links_are_full(sqlite_url, tmp_path, monkeypatch):
    """The study-admin items, and the folder import limited to the configured roots."""
    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", PASSWORD)
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SARVIZ_POOL_DIR", str(tmp_path / "pool"))
    build_pool_folder(tmp_path / "pool" / "batch1")
    build_pool_folder(tmp_path / "elsewhere", start_seed=50)
    db = StudyDatabase(sqlite_url)
    OwnerAPI(db).create_study("adm", "Admin")
    at = AppTest.from_file(str(ROOT / "pages" / "4_Study_admin.py"), default_timeout=60)
    at.run()
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert "pool is empty" in " ".join(w.value for w in at.warning)
    folder_box = next(t for t in at.text_input if t.label == "Folder")
    folder_box.input(str(tmp_path / "elsewhere"))
    next(b for b in at.button if b.label == "Import").click().run()
    assert any(e.value.startswith("Refused") for e in at.error)
    next(t for t in at.text_input if t.label == "Folder").input(str(tmp_path / "pool" / "batch1"))
    next(sb for sb in at.selectbox if sb.label == "Default source").set_value("ours")
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    assert any(s.value.startswith("Added 16 image(s)") for s in at.success), [s.value for s in at.success]
    # the status and table above the forms are already up to date (no reload, no new login)
    assert not any("pool is empty" in w.value for w in at.warning)
    table = next(d.value for d in at.dataframe if "original_name" in d.value.columns)
    assert len(table) == 16 and "sessions" in table.columns
    # a created study empties the form; its participant link is a full URL, not "Quiz?study=…"
    next(t for t in at.text_input if t.label.startswith("Code")).input("second-study")
    next(t for t in at.text_input if t.label == "Title").input("Second")
    next(b for b in at.button if b.label == "Create study").click().run()
    flash = next(s.value for s in at.success if "Created second-study" in s.value)
    assert "/Quiz?study=second-study" in flash and not flash.split("link: ")[1].startswith("Quiz")
    assert next(t for t in at.text_input if t.label.startswith("Code")).value == ""
    db.dispose()


def test_forged_widget_state_gets_a_one_line_refusal(sqlite_url, tmp_path):
    """A participant's own websocket client sends a radio index past the options (the browser UI
    never would): the server answers with one line, no traceback, no server path."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    from _browser import run_streamlit
    from _ws_client import forged_run

    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "forged", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    env = {"SARVIZ_STUDY_DB": sqlite_url, "SARVIZ_HOME": str(tmp_path / "home"), "SARVIZ_MODE": "study"}

    def forge(widgets: dict) -> list:
        level = next(w for label, w in widgets.items() if "experience" in label)
        consent = next(w for label, w in widgets.items() if "agree" in label.lower())
        start = next(w for label, w in widgets.items() if label == "Start the study")
        return [
            WidgetState(id=level.id, int_value=99),
            WidgetState(id=consent.id, bool_value=True),
            WidgetState(id=start.id, trigger_value=True),
        ]

    with run_streamlit("app.py", env=env) as base:
        first, forged = forged_run(base, "Quiz", "study=forged", forge)
    assert "radio" in first.kinds()
    assert "exception" not in forged.kinds()
    alerts = [el.alert.body for el in forged.elements if el.WhichOneof("type") == "alert"]
    assert len(alerts) == 1 and alerts[0].startswith("Sorry, the request was refused"), alerts
    text = "\n".join(forged.texts())
    assert "Traceback" not in text and str(ROOT) not in text and ".py" not in text
    assert not OwnerAPI(db).participant_rows("forged")  # nothing was stored
    db.dispose()
