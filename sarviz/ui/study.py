"""Streamlit components of the human-evaluation studies.

* :func:`quiz_page` — the participant quiz (``pages/3_Quiz.py``). Reads only through
  :class:`~sarviz.study.service.ParticipantAPI`, so nothing about an image's source can reach
  the browser; the sidebar/navigation is hidden so a participant sees only the quiz.
* :func:`admin_page` — the owner page (``pages/4_Study_admin.py``) behind a login.
* :func:`add_to_pool_button` — "add to study pool" for a generation result on the map page.

The database is ``Settings.study_db`` (env ``SARVIZ_STUDY_DB``); one app serves every study
in it, participants pick theirs by the link ``…/Quiz?study=<code>``.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import streamlit as st

from sarviz.constants import QUALITY_ASPECTS
from sarviz.study.db import StudyDatabase, StudyError
from sarviz.ui.text import plain

log = logging.getLogger(__name__)

_HIDE_NAV_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarNav"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], [data-testid="stToolbar"], [data-testid="stMainMenu"] {display: none !important;}
</style>
"""
SCORE_QUESTIONS = tuple(QUALITY_ASPECTS.items())  # (key, label) per scored aspect
ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0)


@st.cache_resource(show_spinner=False)
def _database(url: str) -> StudyDatabase:
    # Never creates a database: a mistyped SARVIZ_STUDY_DB is reported, not silently made.
    return StudyDatabase(url, create=False)


def study_db_url() -> str:
    from sarviz.settings import Settings

    return Settings.load().study_db


def open_database() -> StudyDatabase:
    """The app's existing study database; raises :class:`StudyError` (e.g. it does not exist)."""
    return _database(study_db_url())


def database() -> StudyDatabase:
    """The app's study database for the quiz; stops the page with "not available" if it cannot open.

    Participants are strangers: the reason (a file path; for PostgreSQL user, host and port)
    goes to the server log and the Study admin page, never to the quiz.
    """
    try:
        return open_database()
    except StudyError as exc:
        st.error(_for_participant(exc))
        st.stop()
        raise  # unreachable: st.stop() ends the script run


#: what a participant is told when the study database fails (the details are in the log)
NOT_AVAILABLE = "This study is not available right now. Please try again later, or tell the person who invited you."


def _for_participant(exc: Exception) -> str:
    """A library error as a participant may read it: database problems (which name server paths,
    users and hosts) become :data:`NOT_AVAILABLE`; the details go to the server log."""
    from sarviz.study.db import StudyDatabaseError

    if isinstance(exc, StudyDatabaseError):
        log.error("study database not available to a participant: %s", exc)
        return NOT_AVAILABLE
    return _say(exc)


@st.cache_resource(show_spinner=False)
def _interim_login_database() -> StudyDatabase:
    # Until the study database exists there is nowhere to count failed owner logins, yet the
    # owner must log in to create the first study: count them in a per-process SQLite file.
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="sarviz-owner-logins-"))
    return StudyDatabase(f"sqlite:///{folder / 'owner_logins.sqlite'}", create=True)


def _login_database() -> StudyDatabase:
    from sarviz.study.db import StudyDatabaseMissing

    try:
        return open_database()
    except StudyDatabaseMissing:
        return _interim_login_database()


# -- participant quiz --------------------------------------------------------------------
def _image_html(png: bytes, zoom: float) -> str:
    # An inline data URI: no URL, file name or caption the participant could read anything from.
    b64 = base64.b64encode(png).decode()
    return (
        f'<div data-testid="quiz-image" style="max-height:78vh;overflow:auto;border:1px solid #8884;">'
        f'<img alt="image to judge" src="data:image/png;base64,{b64}" '
        f'style="width:{zoom * 100:.0f}%;max-width:none;display:block;image-rendering:auto;"/></div>'
    )


def quiz_page() -> None:
    """The whole participant flow: choose study → level + consent → 12 images → thanks."""
    from sarviz.settings import Settings

    if Settings.load().study_mode:  # a participant sees only the quiz; the workbench keeps its menu
        st.markdown(_HIDE_NAV_CSS, unsafe_allow_html=True)
    from sarviz.study.service import AlreadyAnswered, NotFound, ParticipantAPI, QuizAnswer

    api = ParticipantAPI(database())
    params = st.query_params
    resume = st.session_state.get("quiz_resume") or params.get("resume")
    if resume:
        try:
            view = api.resume(resume)
        except StudyError as exc:
            st.error(_for_participant(exc))
            st.session_state.pop("quiz_resume", None)
            if st.button("Start over"):
                st.query_params.clear()
                st.rerun()
            return
        st.session_state["quiz_resume"] = view.resume_code
        if params.get("resume") != view.resume_code:
            params["resume"] = view.resume_code  # a reload of the page resumes the same session
        _quiz_step(api, view, QuizAnswer, AlreadyAnswered, NotFound)
        return

    code = (params.get("study") or "").strip()
    if not code:
        _quiz_entry_form(params)
        return
    try:
        study = api.study(code)
    except StudyError as exc:
        # not a dead end: say what is wrong and let the participant type the code again
        _quiz_entry_form(params, problem=_for_participant(exc), typed=code)
        return
    st.title(study.title)
    st.write(
        f"You will see **{study.images_per_session} SAR images**, one at a time. For each, say whether "
        "you think it is a **real SAR image or model-generated**, rate its quality from 1 (poor) to 5 "
        "(excellent) and say how confident you are. There is no time limit; your answers are saved as "
        "you go, and you can come back later with your resume code."
    )
    if not study.is_open:
        st.warning("This study is closed and no longer takes new participants.")
        return
    with st.form("quiz_start"):
        level = st.radio(
            "Your experience with SAR imagery",
            list(study.levels),
            index=None,
            format_func=lambda k: f"{k} — {study.levels[k]}",
        )
        consent = st.checkbox(study.consent_text)
        go = st.form_submit_button("Start the study", type="primary")
    if go:
        try:
            view = api.start(study.code, level or "", bool(consent), client=_client_id(), invite=params.get("invite"))
        except StudyError as exc:
            st.error(_for_participant(exc))
            return
        st.session_state["quiz_resume"] = view.resume_code
        params["resume"] = view.resume_code
        st.rerun()


def _quiz_entry_form(params, problem: str | None = None, typed: str = "") -> None:  # noqa: ANN001
    st.title("SAR image study")
    if problem:
        st.error(problem)
    with st.form("quiz_enter"):
        code_in = st.text_input("Study code (from your invitation link)", value=typed[:64])
        resume_in = st.text_input("…or a resume code to continue a session")
        if st.form_submit_button("Continue"):
            if resume_in.strip():
                st.session_state["quiz_resume"] = resume_in.strip()
            elif code_in.strip():
                params["study"] = code_in.strip().lower()
            else:
                st.error("Please enter the study code from your invitation, or your resume code.")
                return
            st.rerun()


def _say(message: object) -> str:
    """A library message as a sentence for the page (library messages start in lower case),
    as plain text: it may quote what someone typed (sarviz.ui.text.plain)."""
    text = str(message).strip()
    first = text.split(maxsplit=1)[0] if text else ""
    if any(c in first for c in "._/\\:0123456789"):  # a file or path name leads: keep it as it is spelled
        return plain(text)
    return plain(text[:1].upper() + text[1:])


def _quiz_step(api, view, QuizAnswer, AlreadyAnswered, NotFound) -> None:  # noqa: ANN001, N803
    st.caption(f"Resume code: **{view.resume_code}** — keep it to continue later on any device.")
    if view.finished:
        st.title("Thank you!")
        st.success(f"All {view.total} answers are saved. You can close this page.")
        return
    pid = view.current_public_id
    st.markdown(f"### Image {view.position} / {view.total}")
    st.progress(view.answered / view.total)
    started = st.session_state.setdefault(f"quiz_t0_{pid}", time.time())
    try:
        png = api.image(view.resume_code, pid)
    except StudyError as exc:
        st.error(_for_participant(exc))
        return
    left, right = st.columns([3, 2], gap="large")
    with left:
        zoom = st.select_slider(
            "Zoom",
            options=ZOOMS,
            value=1.0,
            format_func=lambda z: f"{z:g}×",
            key="quiz_zoom",
            help="Scroll inside the image to pan when zoomed in.",
        )
        st.html(_image_html(png, zoom))
    with right:
        st.markdown("**(i) Is this a real SAR image or model-generated?**")
        jkey = f"quiz_judged_{pid}"
        c1, c2 = st.columns(2)
        if c1.button(
            "Real SAR (A)",
            key=f"quiz_real_{pid}",
            shortcut="a",
            width="stretch",
            type="primary" if st.session_state.get(jkey) is True else "secondary",
        ):
            st.session_state[jkey] = True
            st.rerun()
        if c2.button(
            "Generated (G)",
            key=f"quiz_gen_{pid}",
            shortcut="g",
            width="stretch",
            type="primary" if st.session_state.get(jkey) is False else "secondary",
        ):
            st.session_state[jkey] = False
            st.rerun()
        judged = st.session_state.get(jkey)
        st.caption(
            "Your choice: "
            + {True: "**real SAR**", False: "**model-generated**", None: "none yet"}[judged]
            + " · keys: A = real (authentic), G = generated, Enter = next"
        )
        st.markdown("**(ii) Quality** — 1 poor … 5 excellent")
        scores = {}
        for name, label in SCORE_QUESTIONS:
            scores[name] = st.radio(label, [1, 2, 3, 4, 5], index=None, horizontal=True, key=f"quiz_{name}_{pid}")
        st.markdown("**(iii) Confidence in your real/generated judgement**")
        confidence = st.radio(
            "Confidence",
            [1, 2, 3, 4, 5],
            index=None,
            horizontal=True,
            key=f"quiz_confidence_{pid}",
            help="1 = guessing, 5 = certain",
        )
        if st.button(
            "Next image" if view.position < view.total else "Finish",
            type="primary",
            key=f"quiz_submit_{pid}",
            shortcut="Enter",
            width="stretch",
        ):
            answer = QuizAnswer(
                judged,
                scores["realism"],
                scores["detail"],
                scores["geographic"],
                confidence,
                seconds=round(time.time() - started, 2),
            )
            try:
                api.submit(view.resume_code, pid, answer)
            except AlreadyAnswered:
                pass  # e.g. a double click: the first answer stands; move on
            except StudyError as exc:
                # Nothing was stored; the choices stay on screen so the participant can retry.
                st.error(_for_participant(exc))
                return
            st.rerun()


# -- owner side ---------------------------------------------------------------------------
def _client_id() -> str:
    # The address a client cannot choose (forwarded headers only from configured proxies).
    from sarviz.access import current_client

    return current_client()


def owner_logged_in() -> bool:
    return bool(st.session_state.get("study_owner"))


def owner_login_form(key: str = "owner_login") -> bool:
    """Show a login form unless the owner is logged in; True when logged in."""
    if owner_logged_in():
        return True
    from sarviz.study.auth import LoginLocked, OwnerAuth, OwnerNotConfigured, configured_hash

    try:
        hashed = st.session_state.get("_owner_hash") or configured_hash()
    except OwnerNotConfigured as exc:
        st.error(_say(exc))
        return False
    st.session_state["_owner_hash"] = hashed
    from sarviz.access import browser_session_id

    with st.form(key):
        pw = st.text_input("Study owner password", type="password")
        code = st.text_input(
            "One-time unlock code (optional)",
            help="Locked out by someone else's guessing? "
            "`sarviz study unlock` on the server prints a code that gets you past every limit.",
        )
        submitted = st.form_submit_button("Log in")
    if submitted:
        try:
            ok = OwnerAuth(_login_database(), hashed).login(
                pw, _client_id(), session=browser_session_id(), unlock_code=code
            )
        except LoginLocked as exc:
            st.error(_say(exc))
            return False
        except StudyError as exc:  # not logged in yet: no database paths or hosts for strangers
            st.error(_for_participant(exc))
            return False
        if ok:
            st.session_state["study_owner"] = True
            from sarviz.access import mark_owner_session

            mark_owner_session()  # this session may now upload (sarviz.ui.upload_guard)
            st.rerun()
        st.error(
            "Wrong password."
            + (" The unlock code is used up; get a new one with `sarviz study unlock`." if code.strip() else "")
        )
    return False


def admin_page() -> None:
    st.title("Human-evaluation studies")
    if not owner_login_form("admin_login"):
        return
    from sarviz.study.db import StudyDatabaseMissing
    from sarviz.study.service import OwnerAPI

    if st.sidebar.button("Log out"):
        st.session_state.pop("study_owner", None)
        from sarviz.access import mark_owner_session

        mark_owner_session(False)
        st.rerun()
    try:
        owner = OwnerAPI(open_database())
    except StudyDatabaseMissing as exc:
        # The one place in the app that may make a new study database: the owner's first study.
        st.warning(f"{_say(exc)}\\. Creating a study below makes a new database at that location.")
        _new_study_form(lambda: OwnerAPI(StudyDatabase(study_db_url(), create=True)), first=True)
        return
    except StudyError as exc:
        st.error(f"The study database is not available: {plain(exc)}")
        return
    if flash := st.session_state.pop("study_flash", None):
        st.success(flash)
    from sarviz.access import UNTRUSTED_FORWARD

    if _client_id() == UNTRUSTED_FORWARD:
        st.warning(
            "This app is reached through a proxy that is not configured (SARVIZ_TRUSTED_PROXIES), so "
            "every participant looks like the same client: per-participant session limits and login "
            "limits cannot tell people apart. Set SARVIZ_TRUSTED_PROXIES to the proxy's address.",
            icon="⚠️",
        )
    studies = owner.studies()
    tab_studies, tab_pool, tab_results = st.tabs(["Studies", "Image pool", "Results"])
    with tab_studies:
        _studies_tab(owner, studies)
    codes = [s.code for s in studies]
    if not codes:
        with tab_pool:
            st.info("Create a study first.")
        with tab_results:
            st.info("Create a study first.")
        return
    with tab_pool:
        code = st.selectbox("Study", codes, key="pool_study")
        _pool_tab(owner, code)
    with tab_results:
        code = st.selectbox("Study", codes, key="results_study")
        _results_tab(owner, code)


def participant_link(code: str) -> str:
    """The full participant URL of a study, as this browser reaches the app."""
    from urllib.parse import urlsplit

    from streamlit import config

    base = ""
    try:
        parts = urlsplit(st.context.url or "")
        if parts.scheme and parts.netloc:
            base = f"{parts.scheme}://{parts.netloc}"
    except Exception:  # no browser (AppTest): the path alone
        base = ""
    prefix = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"{base}/{prefix + '/' if prefix else ''}Quiz?study={code}"


def _studies_tab(owner, studies) -> None:  # noqa: ANN001
    if studies:
        st.dataframe(
            [
                {
                    "code": s.code,
                    "title": s.title,
                    "open": s.is_open,
                    "pool": owner.pool_status(s.code),
                    "participant link": participant_link(s.code),
                }
                for s in studies
            ],
            hide_index=True,
            column_config={"participant link": st.column_config.LinkColumn()},
        )
        for s in studies:
            label = "Close" if s.is_open else "Reopen"
            if st.button(f"{label} {s.code}", key=f"toggle_{s.code}"):
                owner.set_open(s.code, not s.is_open)
                st.rerun()
    _new_study_form(lambda: owner)


def _new_study_form(get_owner, first: bool = False) -> None:  # noqa: ANN001
    from sarviz.study.design import RENDER_MODES, StudyDesign, parse_ratio

    # A new key after each created study gives an empty form (clear_on_submit would also clear
    # the values after a refused attempt, which the owner then has to type again).
    n = st.session_state.get("create_study_n", 0)
    with st.form(f"create_study_{n}"):
        st.subheader("New study")
        code = st.text_input("Code (used in the participant link)", placeholder="sar-realism-2026")
        title = st.text_input("Title")
        c1, c2, c3 = st.columns(3)
        images = c1.number_input("Images per session", 1, 200, 12)
        ratio = c2.text_input("Ratio real : other : ours", "1:1:2")
        render = c3.selectbox(
            "Display",
            RENDER_MODES,
            format_func={"vv_gray": _vv_grey_label(), "vv_vh_rgb": "R=VV, G=VH, B=VV (fixed stretch)"}.get,
        )
        c4, c5 = st.columns(2)
        per_client = c4.number_input(
            "Sessions per participant address (0 = no limit)",
            0,
            1000,
            1,
            help="1 keeps one person from starting throw-away sessions. Invitation-only "
            "studies may use 0: invitees can share one address (a lab's NAT).",
        )
        invite_only = c5.checkbox("Invitation only (one-use links from “Invitations”)")
        if st.form_submit_button("Create study", type="primary"):
            try:
                design = StudyDesign(
                    images_per_session=int(images),
                    ratio=parse_ratio(ratio),
                    render=render,
                    max_sessions_per_client=int(per_client),
                    invite_only=bool(invite_only),
                )
                owner = get_owner()
                owner.create_study(code, title, design)
            except StudyError as exc:
                st.error(_say(exc))
                return
            if first:
                owner.db.dispose()  # the page reopens it as the app's (now existing) database
            made = code.strip().lower()
            st.session_state["study_flash"] = (
                "Created the study database and the study " if first else "Created "
            ) + f"{made}. Participant link: {participant_link(made)}"
            st.session_state["create_study_n"] = n + 1
            st.rerun()


def _pool_tab(owner, code: str) -> None:  # noqa: ANN001
    # The status and the table are drawn into this container *after* the forms below ran, so
    # an upload or a folder import shows in them at once (no reload, no new login).
    summary = st.container()
    with st.form("upload_pool", clear_on_submit=True):
        st.subheader("Upload images")
        files = st.file_uploader("GeoTIFF (VV/VH dB) or PNG", type=["tif", "tiff", "png"], accept_multiple_files=True)
        c1, c2, c3 = st.columns(3)
        source = c1.selectbox("Source", ["real", "other", "ours"])
        model_id = c2.text_input("Model id (for generated images)")
        scene_class = c3.text_input("Scene class", placeholder="urban, forest, …")
        if st.form_submit_button("Add to pool"):
            _add_uploads(owner, code, files or [], dict(source=source, model_id=model_id, scene_class=scene_class))
    _import_form(owner, code)
    _invites_section(owner, code)
    with summary:
        status = owner.pool_status(code)
        (st.success if status == "ready" else st.warning)(
            "Pool ready for participants" if status == "ready" else _say(status)
        )
        for warning in owner.pool_warnings(code):  # owner-only blinding checks
            st.warning(warning, icon="⚠️")
        items = owner.items(code)
        if items:
            shown = {r["item_id"]: r["sessions"] for r in owner.exposure(code)}
            from sarviz.study.analysis import embedding_kind

            st.dataframe(
                [
                    {
                        **{k: r[k] for k in ("id", "source", "model_id", "scene_class", "lat", "lon", "original_name")},
                        "sessions": shown.get(r["id"], 0),
                        "embedding": embedding_kind(r.get("provenance")),
                    }  # 'proxy' marks a proxy's image
                    for r in items
                ],
                hide_index=True,
                key="pool_table",
            )


def _import_form(owner, code: str) -> None:  # noqa: ANN001
    from sarviz.access import AccessDenied, allowed_roots, leads_inside, resolve_user_path
    from sarviz.settings import Settings

    settings = Settings.load()
    roots = allowed_roots(settings)
    with st.form("import_folder"):
        st.subheader("Import a folder on the server")
        folder = st.text_input(
            "Folder",
            value=str(settings.pool_dir),
            help="A folder inside the pool folder (SARVIZ_POOL_DIR) or another configured "
            "root. labels.csv in the folder (file, source, model_id, scene_class, lat, "
            "lon) overrides the defaults below",
        )
        c1, c2, c3 = st.columns(3)
        source = c1.selectbox("Default source", ["", "real", "other", "ours"])
        model_id = c2.text_input("Default model id")
        scene_class = c3.text_input("Default scene class")
        if st.form_submit_button("Import"):
            bar = st.progress(0.0, text="Importing…")
            try:
                where = resolve_user_path(folder, settings)  # only folders inside the configured roots
                report = owner.import_folder(
                    code,
                    where,
                    {k: v for k, v in dict(source=source, model_id=model_id, scene_class=scene_class).items() if v},
                    progress=lambda i, n, m: bar.progress(i / n, text=_say(m)),
                    allowed=lambda p: leads_inside(p, roots),  # files in it, too: no link out of the roots
                )
            except (StudyError, AccessDenied) as exc:
                st.error(_say(exc))
            else:
                st.success(_say(report.summary()))
                for o in report.duplicates + report.failed:
                    st.warning(plain(o.problem))  # names an imported file


def _invites_section(owner, code: str) -> None:  # noqa: ANN001
    with st.expander("Invitations (one-use participant links)"):
        invites = owner.invites(code)
        used = sum(1 for i in invites if i["participant_id"] is not None)
        st.caption(
            f"{len(invites)} invitation(s), {used} used. "
            + (
                "This study takes invited participants only."
                if owner.design(code).invite_only
                else "This study also takes participants without an invitation."
            )
        )
        n = st.number_input("How many new invitations", 1, 1000, 10, key=f"invite_n_{code}")
        if st.button("Make invitations", key=f"invite_go_{code}"):
            tokens = owner.create_invites(code, int(n))
            links = "\n".join(f"{participant_link(code)}&invite={t}" for t in tokens)
            st.success(f"Made {len(tokens)} invitation(s); send each person one link.")
            st.code(links, language=None)


def _add_uploads(owner, code: str, files, labels: dict) -> None:  # noqa: ANN001
    from sarviz.access import safe_upload_name
    from sarviz.study.pool import DuplicateImage, ItemLabels

    if not files:
        st.error("Choose at least one image file.")
        return
    added = 0
    for f in files:
        try:
            owner.add_bytes(code, f.getvalue(), safe_upload_name(f.name), ItemLabels(**labels))
            added += 1
        except DuplicateImage as exc:
            st.warning(_say(exc))
        except StudyError as exc:
            st.error(_say(exc))
    if added:
        st.success(f"Added {added} image(s) to {code}.")


def _results_tab(owner, code: str) -> None:  # noqa: ANN001
    import pandas as pd

    from sarviz.study.analysis import answers_csv, study_report
    from sarviz.study.plots import fig7_png

    _sessions_section(owner, code)
    report = study_report(owner, code)
    p = report.participants
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Participants started", p["started"])
    c2.metric("Finished", p["finished"])
    c3.metric("Answers", report.n_answers)
    c4.metric(
        "Excluded sessions",
        p.get("excluded", 0),
        help="Left out of every number here; kept in the raw answers export (column 'excluded').",
    )
    if report.proxy.get("note"):
        st.warning(f"PROXY: {report.proxy['note']}. The raw answers export marks each image (column 'embedding').")
    if not report.n_answers:
        st.info("No answers yet.")
        return
    st.image(
        fig7_png(report),
        caption="Misjudgment rate (%) with Wilson 95% CI, quality and confidence (as Fig. 7 of HuiYanEarth-SAR)",
    )
    pct = {"rate": "misjudged (%)", "ci_low": "95% CI low (%)", "ci_high": "95% CI high (%)"}
    st.subheader("Misjudgment rate (%)")
    st.dataframe(
        _as_percent(pd.DataFrame([r for r in report.misjudgment if r["n"]]), pct),
        hide_index=True,
        key="res_misjudgment",
        column_config=_percent_columns(pct),
    )
    st.subheader("Scores (1–5)")
    sc = pd.DataFrame([r for r in report.scores if r["n"]])
    st.dataframe(
        sc.pivot_table(index=["level", "source"], columns="metric", values="mean", sort=False).round(2),
        key="res_scores",
    )
    st.subheader("By scene class (%)")
    st.dataframe(
        _as_percent(pd.DataFrame(report.by_class), pct).round(2),
        hide_index=True,
        key="res_classes",
        column_config=_percent_columns(pct),
    )
    st.subheader("Inter-rater agreement (Krippendorff's α)")
    st.dataframe(
        pd.DataFrame([{"answer": k, "alpha": None if v is None else round(v, 3)} for k, v in report.agreement.items()]),
        hide_index=True,
        key="res_alpha",
    )
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        "Raw answers (CSV)",
        answers_csv(owner.answer_rows(code, include_excluded=True)),
        f"{code}_answers.csv",
        "text/csv",
    )
    c2.download_button("Summary (CSV)", report.summary_csv(), f"{code}_summary.csv", "text/csv")
    c3.download_button("Report (JSON)", report.to_json(), f"{code}_report.json", "application/json")


def _as_percent(frame, columns: dict[str, str]):  # noqa: ANN001, ANN202
    """Rates (fractions) as percentages, the unit in the shown column title: one unit on the page."""
    for col in columns:
        if col in frame.columns:
            frame[col] = (frame[col].astype(float) * 100).round(1)
    return frame


def _percent_columns(columns: dict[str, str]) -> dict:
    return {c: st.column_config.NumberColumn(label, format="%.1f") for c, label in columns.items()}


def _sessions_section(owner, code: str) -> None:  # noqa: ANN001
    refused = owner.refused_starts(code)
    if refused:
        st.warning(
            f"{sum(r['refused'] for r in refused)} session start(s) were refused (junk-session limits: "
            "sessions per address, start rate, invitations); they are not in the results."
        )
        st.dataframe(refused, hide_index=True, key="res_refused")
    rows = owner.participant_rows(code)
    if not rows:
        return
    with st.expander(f"Sessions ({len(rows)}; exclude junk sessions from the analysis)"):
        st.dataframe(
            [
                {
                    "session": r["id"],
                    "level": r["level"],
                    "started": r["started_at"],
                    "finished": r["finished_at"],
                    "answered": r["answered"],
                    "excluded": r["excluded"],
                    "reason": r["excluded_reason"],
                }
                for r in rows
            ],
            hide_index=True,
            key="res_sessions",
        )
        with st.form("exclude_sessions"):
            ids = [r["id"] for r in rows]
            picked = st.multiselect("Sessions", ids, key="exclude_ids")
            reason = st.text_input("Reason (for your records)", key="exclude_reason")
            c1, c2 = st.columns(2)
            exclude = c1.form_submit_button("Exclude")
            include = c2.form_submit_button("Include again")
        if exclude or include:
            for pid in picked:
                owner.set_excluded(code, int(pid), excluded=bool(exclude), reason=reason)
            st.rerun()


def add_to_pool_button(result: Any, scene: Any | None, key: str) -> None:
    """ "Add to study pool" for a generation result (owner only; asks for the labels)."""
    from sarviz.study.auth import OwnerNotConfigured, configured_hash

    if not owner_logged_in():
        try:
            configured_hash()
        except OwnerNotConfigured as exc:  # not an error on the map page: studies are optional
            st.caption(f"Adding results to a human-evaluation study needs a study owner: {plain(exc)}")
            return
    with st.popover("Add to study pool", width="content"):
        if not owner_login_form(f"{key}_login"):
            return
        from sarviz.study.pool import ItemLabels
        from sarviz.study.service import OwnerAPI

        try:
            owner = OwnerAPI(open_database())
        except StudyError as exc:  # the map page stays usable without a study database
            st.info(_say(exc))
            return
        codes = [s.code for s in owner.studies()]
        if not codes:
            st.info("No studies yet: create one on the Study admin page.")
            return
        code = st.selectbox("Study", codes, key=f"{key}_study")
        source = st.selectbox("Source label", ["ours", "other", "real"], key=f"{key}_source")
        scene_class = st.text_input("Scene class", key=f"{key}_class", placeholder="urban, forest, …")
        if st.button("Add", key=f"{key}_add", type="primary"):
            try:
                item_id = owner.add_result(code, result, scene, ItemLabels(source=source, scene_class=scene_class))
            except StudyError as exc:
                st.error(_say(exc))
            else:
                st.success(
                    f"Added as image {item_id} to {code}. {owner.pool_status(code).replace('ready', 'Pool ready.')}"
                )


def _vv_grey_label() -> str:
    """The grey display's label with the range it really renders (the design's default VV range)."""
    from sarviz.study.design import StudyDesign

    lo, hi = StudyDesign().vv_range_db
    return f"VV, grey (fixed {lo:g}…{hi:g} dB)".replace("-", "−")
