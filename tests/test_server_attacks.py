"""An attacker's pass on the study server and the CLIs; each test repeats an attack.

The real-server tests start ``streamlit run serve.py`` on loopback (127.0.0.1) only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sarviz.study import OwnerAPI, StudyDatabase

from _study_fixtures import make_study

ROOT = Path(__file__).resolve().parents[1]


# -- items 1 and 4: memory exhaustion through the upload endpoint; bound to every interface --
@pytest.mark.slow
def test_upload_flood_is_refused_for_participants_and_capped_per_session(sqlite_url, tmp_path):
    """A participant session (no upload widget anywhere) PUTs 8 × 50 MB to
    /_stcore/upload_file/<its session>/<any id>: before the guard every PUT was stored (204)
    and the server grew by ~400 MB; now every PUT is refused before its body is read and the
    server's memory stays put. In workbench mode a session may upload, but only up to
    SARVIZ_UPLOAD_SESSION_MB in all."""
    from _upload_attack import rss_mb, upload_flood

    from _browser import SERVER_PIDS, listening_addresses, run_streamlit

    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "flood", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    config = tmp_path / "sarviz.toml"  # read on every request: the same server changes mode below
    config.write_text('mode = "study"\nupload_session_mb = 100\n')
    env = {
        "SARVIZ_CONFIG": str(config),
        "SARVIZ_STUDY_DB": sqlite_url,
        "SARVIZ_HOME": str(tmp_path / "home"),
        "SARVIZ_POOL_DIR": str(tmp_path / "pool"),
    }
    with run_streamlit("serve.py", env=env, address=None) as base:
        # item 4: without --server.address the server listens on loopback only, not on every interface
        assert listening_addresses(int(base.rsplit(":", 1)[1])) == {"0100007F"}  # 127.0.0.1, nothing else
        pid = SERVER_PIDS[base]
        upload_flood(base, query="study=flood", n=0)  # one ordinary page load first
        before = rss_mb(pid)
        during: list[float] = []
        statuses = upload_flood(
            base, query="study=flood", n=8, size=50 * 2**20, during=lambda: during.append(rss_mb(pid))
        )
        assert statuses == [403] * 8
        assert during[0] - before < 100, (before, during)  # unguarded: +400 MB (8 × 50 MB kept)
        # workbench mode: uploads allowed, 100 MB per session in all (each file ≤ maxUploadSize)
        config.write_text('mode = "workbench"\nupload_session_mb = 100\n')
        statuses = upload_flood(base, page="", n=4, size=40 * 2**20)
        assert statuses == [204, 204, 413, 413]
        # the per-file cap of .streamlit/config.toml (64 MB) still holds
        assert upload_flood(base, page="", n=1, size=65 * 2**20) == [413]
    db.dispose()


# -- item 9: an empty folder setting made the working directory a root ------------------------
def test_empty_folder_settings_mean_unset(tmp_path, monkeypatch):
    """`SARVIZ_RUNS=` (and every other empty setting) used to become Path("") = ".", so the
    server's working directory was an allowed root. Empty now means unset."""
    from sarviz.access import AccessDenied, allowed_roots, resolve_user_path
    from sarviz.settings import Settings

    work = tmp_path / "server-cwd"
    (work / "secret").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    for name in (
        "SCENES",
        "POOL_DIR",
        "UPLOAD_DIR",
        "BATCHES",
        "DATASETS",
        "RUNS",
        "ROOTS",
        "MODE",
        "TRUSTED_PROXIES",
        "STUDY_DB",
    ):
        monkeypatch.setenv(f"SARVIZ_{name}", "")
    settings = Settings.load()
    defaults = Settings()
    assert settings.runs == defaults.runs and settings.scenes == defaults.scenes and settings.roots == ()
    assert settings.mode == "workbench" and settings.study_db == defaults.study_db
    assert Path.cwd().resolve() not in allowed_roots(settings)
    with pytest.raises(AccessDenied, match="outside"):
        resolve_user_path(str(work / "secret"), settings)
    monkeypatch.setenv("SARVIZ_RUNS", "   ")
    assert Settings.load().runs == defaults.runs


# -- item 6: server paths shown to participants ------------------------------------------------
def _page_texts(at) -> str:
    parts = []
    for kind in ("error", "warning", "info", "success", "markdown", "caption", "title", "header", "exception"):
        parts += [str(getattr(e, "value", "")) for e in getattr(at, kind)]
    parts += [f"{t.label} {t.value}" for t in at.text_input]
    return "\n".join(parts)


@pytest.mark.parametrize("which", ["missing-sqlite", "postgres-unreachable"])
def test_participants_never_see_the_database_location(which, tmp_path, monkeypatch, caplog):
    """A missing or misconfigured study database showed its path (PostgreSQL: user, host, port)
    to anonymous participants. They now read "not available"; the log has the details."""
    from streamlit.testing.v1 import AppTest

    from sarviz.ui.study import NOT_AVAILABLE

    secret_bits = {
        "missing-sqlite": [str(tmp_path), "hidden-study.sqlite"],
        "postgres-unreachable": ["eviluser", "127.0.0.1", ":9/"],
    }[which]
    url = {
        "missing-sqlite": f"sqlite:///{tmp_path / 'nowhere' / 'hidden-study.sqlite'}",
        "postgres-unreachable": "postgresql+psycopg://eviluser@127.0.0.1:9/studydb",
    }[which]
    monkeypatch.setenv("SARVIZ_STUDY_DB", url)
    monkeypatch.setenv("SARVIZ_MODE", "study")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "pw")
    for query in ({"study": "any"}, {"resume": "ABCD-EFGH"}, {}):
        at = AppTest.from_file(str(ROOT / "pages" / "3_Quiz.py"), default_timeout=60)
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        text = _page_texts(at)
        assert NOT_AVAILABLE in text
        assert not any(bit in text for bit in secret_bits), text
    # the owner's login form (before login, i.e. anyone) says no more
    at = AppTest.from_file(str(ROOT / "pages" / "2_Inspect.py"), default_timeout=60)
    at.run()
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    text = _page_texts(at)
    assert not any(bit in text for bit in secret_bits), text


def test_workbench_quiz_page_keeps_the_menu(tmp_path, monkeypatch):
    """In the workbench the Quiz page hid the sidebar (a dead end); only study mode hides it."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SARVIZ_STUDY_DB", f"sqlite:///{tmp_path / 'none.sqlite'}")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    for mode, hidden in (("workbench", False), ("study", True)):
        monkeypatch.setenv("SARVIZ_MODE", mode)
        at = AppTest.from_file(str(ROOT / "pages" / "3_Quiz.py"), default_timeout=60)
        at.run()
        assert any("stSidebar" in m.value for m in at.markdown) is hidden


# -- item 2: markdown injection ----------------------------------------------------------------
#: each carries the marker "zqx", so the messages quoting it can be found
PAYLOADS = [
    "zqx ![](http://127.0.0.1:9/p.png) [**Session expired – click here**](http://127.0.0.1:9/phish)",
    "zqx :red[ALERT] :material/warning: :smile: $e^{i\\pi}$ :blue-background[x]",
    "zqx <img src=http://127.0.0.1:9/q.png> <a href='http://127.0.0.1:9/'>x</a>",
    "zqx http://127.0.0.1:9/auto www.example.org _em_ ~~gone~~",
    "zqx\n# heading\n> quote `code`",
]


def _markdown_elements(at) -> list[str]:
    out = []
    for kind in ("error", "warning", "info", "success", "markdown", "caption", "toast", "title", "header", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def assert_shown_as_plain_text(at, where: str) -> int:
    """Every markdown-rendered message quoting a payload renders no link, image, HTML, emphasis,
    block, maths or Streamlit directive from it. Returns how many such messages there were."""
    import re

    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    n = 0
    for value in _markdown_elements(at):
        if "zqx" not in value.lower():
            continue
        n += 1
        html = md.render(value)
        for tag in ("<a ", "<img", "<strong", "<em>", "<h1", "<blockquote", "<code", "<del", "<s>"):
            assert tag not in html, (where, tag, value)
        # Streamlit's own syntax is matched on the text after parsing: a colon right before a name
        assert not re.search(r":(red|blue-background|material/|smile)", value), (where, value)
        assert not re.search(r"(?<!\\)\$", value), (where, value)  # maths needs an unescaped $
        assert not re.search(r"(?i)(https?:/|www\.)", value), (where, value)  # GitHub's bare-URL links
    return n


@pytest.mark.slow
@pytest.mark.parametrize(
    "payload",
    [" ".join(p for p in PAYLOADS if "\n" not in p), *(p for p in PAYLOADS if "\n" in p)],
    ids=["one-line", "multi-line"],
)
def test_user_text_in_messages_is_never_markdown(payload, sqlite_url, tmp_path, monkeypatch):
    """The attacker's quiz link echoed a phishing link and a tracking pixel into the error box.
    Every message site that quotes user input is fed each payload: quiz code, resume code,
    invite token, typed folders (map, Inspect, study import) and the place search."""
    from streamlit.testing.v1 import AppTest

    from _study_fixtures import build_pool_folder

    db = StudyDatabase(sqlite_url)
    make_study(OwnerAPI(db), "mdx", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)
    build_pool_folder(tmp_path / "pool" / "batch1")
    for name, value in {
        "SARVIZ_STUDY_DB": sqlite_url,
        "SARVIZ_HOME": str(tmp_path / "home"),
        "SARVIZ_STUDY_OWNER_PASSWORD": "pw",
        "SARVIZ_POOL_DIR": str(tmp_path / "pool"),
        "SARVIZ_SCENES": str(tmp_path / "scenes"),
        "SARVIZ_BATCHES": str(tmp_path / "batches"),
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "scenes").mkdir()
    seen: dict[str, int] = {}
    quiz = str(ROOT / "pages" / "3_Quiz.py")
    for params in ({"study": payload}, {"resume": payload}):
        at = AppTest.from_file(quiz, default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception
        seen[f"quiz {params}"] = assert_shown_as_plain_text(at, f"quiz {params}")
    # an invite token on a real study: the refusal quotes nothing as markdown
    at = AppTest.from_file(quiz, default_timeout=60)
    at.query_params["study"] = "mdx"
    at.query_params["invite"] = payload
    at.run()
    at.radio[0].set_value(at.radio[0].options[0])
    at.checkbox[0].check()
    next(b for b in at.button if b.label == "Start the study").click().run()
    assert not at.exception
    seen["invite"] = assert_shown_as_plain_text(at, "invite")
    # typed folders: Inspect, the study import
    at = AppTest.from_file(str(ROOT / "pages" / "2_Inspect.py"), default_timeout=60)
    at.run()
    next(t for t in at.text_input if t.label == "Folder").input(payload).run()
    assert not at.exception
    seen["inspect folder"] = assert_shown_as_plain_text(at, "inspect folder")
    at = AppTest.from_file(str(ROOT / "pages" / "4_Study_admin.py"), default_timeout=60)
    at.run()
    at.text_input[0].input("pw")
    at.button[0].click().run()
    next(t for t in at.text_input if t.label == "Folder").input(payload)
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    seen["study import"] = assert_shown_as_plain_text(at, "study import")
    # the map page: the scene folder box and "Type a place"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    next(t for t in at.text_input if t.label == "Type a place").input(payload)
    next(b for b in at.button if b.label == "Go").click().run()
    assert not at.exception
    seen["place search"] = assert_shown_as_plain_text(at, "place search")
    next(t for t in at.sidebar.text_input if t.label == "Scene folder").input(payload).run()
    assert not at.exception
    seen["scene folder"] = assert_shown_as_plain_text(at, "scene folder")
    # the payload was really quoted at these sites (as plain text); a path with a line break is
    # refused without being quoted ("control characters")
    must = ["quiz {'study': %r}" % payload, "place search"]
    if "\n" not in payload:
        must += ["inspect folder", "study import", "scene folder"]
    assert all(seen[k] for k in must), {k[:20]: v for k, v in seen.items()}
    db.dispose()


# -- item 8: symlinks out of a root ---------------------------------------------------------
def test_symlinks_out_of_a_root_are_not_listed_or_read(tmp_path, monkeypatch):
    """A run folder symlinked outside SARVIZ_RUNS was listed and shown by Training runs, and a
    .tif symlink in the scene folder was offered and read by Inspect. Listed paths now take the
    same access check as typed ones."""
    import json

    from streamlit.testing.v1 import AppTest

    from _study_fixtures import write_sar_tif

    outside = tmp_path / "outside"
    (outside / "secret-run").mkdir(parents=True)
    runs_root, scenes = tmp_path / "runs", tmp_path / "scenes"
    (runs_root / "own-run").mkdir(parents=True)
    scenes.mkdir()
    for run in (runs_root / "own-run", outside / "secret-run"):
        (run / "run.json").write_text(
            json.dumps({"kind": "geo", "status": "finished", "step": 1, "updated": "2026-01-01"})
        )
    (runs_root / "linked-run").symlink_to(outside / "secret-run", target_is_directory=True)
    write_sar_tif(scenes / "own.tif", seed=1)
    write_sar_tif(outside / "secret.tif", seed=2)
    (scenes / "linked.tif").symlink_to(outside / "secret.tif")
    for name, value in {"SARVIZ_RUNS": runs_root, "SARVIZ_SCENES": scenes, "SARVIZ_HOME": tmp_path / "home"}.items():
        monkeypatch.setenv(name, str(value))
    at = AppTest.from_file(str(ROOT / "pages" / "5_Training_runs.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="training-run").options == ["own-run"]
    assert list(at.dataframe[0].value["run"]) == ["own-run"]
    at = AppTest.from_file(str(ROOT / "pages" / "2_Inspect.py"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="inspect-pick-gen").options == ["own.tif"]
    assert at.selectbox(key="inspect-pick-real").options == ["own.tif"]


def test_symlinks_out_of_a_root_are_not_listed_or_read_by_any_page(tmp_path, monkeypatch, sqlite_url, capsys):
    """The rest of item 8: every other page that lists or opens files found in a root — the
    study folder import, the Batch page (its list and every file in an opened batch), the map
    and Prompt pages' scene store, Render's runs and inputs, Prompt's captioned datasets and the
    Sensor page's model folder — refuses what a symbolic link leads to outside the roots."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from sarviz.access import allowed_roots, leads_inside
    from sarviz.cli import main
    from sarviz.formats.captioned import INFO_FILE as CAPTION_INFO_FILE
    from sarviz.formats.sar2sar import RUN_FILE
    from sarviz.store import SceneStore
    from sarviz.ui.batch import BatchAccessError, check_batch_path, find_batches
    from sarviz.ui.prompt import find_captioned
    from sarviz.ui.render import input_files, sar2sar_runs
    from sarviz.ui.sensor import _resolve as sensor_folder

    from _batch_fixtures import build_scene_folder, write_points_csv
    from _study_fixtures import build_pool_folder, write_sar_tif

    outside = tmp_path / "outside"
    outside.mkdir()
    secret_tif = write_sar_tif(outside / "secret.tif", seed=99)
    folders = {k: tmp_path / k for k in ("pool", "batches", "scenes", "runs", "datasets", "home")}
    for name, folder in folders.items():
        monkeypatch.setenv(f"SARVIZ_{name.upper()}" if name != "pool" else "SARVIZ_POOL_DIR", str(folder))
    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "pw")
    roots = allowed_roots()

    # -- the study folder import (Study admin): a linked image is reported, never pooled or read
    pool = build_pool_folder(folders["pool"] / "batch1", n_real=2, n_other=1, n_ours=2)
    (pool / "linked.tif").symlink_to(secret_tif)
    (pool / "linked_VV.tif").symlink_to(write_sar_tif(outside / "x_VV.tif", seed=98))
    write_sar_tif(pool / "pair_VV.tif", seed=97)  # its VH partner leads out: the pair is refused
    (pool / "pair_VH.tif").symlink_to(write_sar_tif(outside / "y_VH.tif", seed=96))
    with (pool / "labels.csv").open("a") as fh:
        fh.write("linked.tif,real,,\nlinked_VV.tif,real,,\npair_VV.tif,real,,\n")
    db = StudyDatabase(sqlite_url)
    owner = OwnerAPI(db)
    owner.create_study("links", "Links")
    at = AppTest.from_file(str(ROOT / "pages" / "4_Study_admin.py"), default_timeout=60).run()
    at.text_input[0].input("pw")
    at.button[0].click().run()
    next(t for t in at.text_input if t.label == "Folder").input(str(pool))
    next(b for b in at.button if b.label == "Import").click().run()
    assert not at.exception
    warned = re.sub(r"\\(.)", r"\1", " ".join(w.value for w in at.warning)).replace("\u200b", "")  # unescaped
    for name in ("linked.tif", "linked_VV.tif", "pair_VV.tif"):
        assert f"{name}: leads outside the folders this app may open" in warned, warned
    pooled = {i["original_name"] for i in owner.items("links")}
    assert len(pooled) == 5 and not pooled & {"linked.tif", "linked_VV.tif", "pair_VV.tif"}, pooled
    # labels.csv itself linked out: the whole import is refused before anything is read
    linked_labels = folders["pool"] / "batch2"
    build_pool_folder(linked_labels, n_real=1, n_other=0, n_ours=1, start_seed=50)
    shutil.move(linked_labels / "labels.csv", outside / "labels.csv")
    (linked_labels / "labels.csv").symlink_to(outside / "labels.csv")
    next(t for t in at.text_input if t.label == "Folder").input(str(linked_labels))
    next(b for b in at.button if b.label == "Import").click().run()
    errors = re.sub(r"\\(.)", r"\1", " ".join(e.value for e in at.error)).replace("\u200b", "")
    assert "labels.csv in batch2 leads outside" in errors, errors
    assert len(owner.items("links")) == 5
    db.dispose()

    # -- the Batch page: a linked batch folder or batch.json is not listed; a batch holding a link
    # out (here an item's real.tif) is refused as a whole, so none of its files is read
    build_scene_folder(folders["scenes"] / "grid")
    points = write_points_csv(tmp_path / "points.csv", build_scene_folder(tmp_path / "scene-src")[:1])
    args = ["batch", "--points", str(points), "--model", "emulator", "--scenes", str(tmp_path / "scene-src")]
    assert main([*args, "--size", "64", "--out", str(folders["batches"] / "good"), "--engine", "inline"]) == 0
    capsys.readouterr()
    shutil.copytree(folders["batches"] / "good", outside / "secret-batch")
    shutil.copytree(folders["batches"] / "good", folders["batches"] / "tampered")
    real = next((folders["batches"] / "tampered" / "items").glob("*/real.tif"))
    real.unlink()
    real.symlink_to(secret_tif)
    (folders["batches"] / "linked-batch").symlink_to(outside / "secret-batch", target_is_directory=True)
    (folders["batches"] / "linked-json").mkdir()
    (folders["batches"] / "linked-json" / "batch.json").symlink_to(outside / "secret-batch" / "batch.json")
    listed = [p.name for p in find_batches()]
    assert listed == ["good", "tampered"], listed
    at = AppTest.from_file(str(ROOT / "pages" / "6_Batch.py"), default_timeout=120).run()
    assert not at.exception
    assert [o for o in at.selectbox(key="batch-pick").options if "batches" in o] == [
        str(folders["batches"].resolve() / "good"),
        str(folders["batches"].resolve() / "tampered"),
    ]
    at.selectbox(key="batch-pick").set_value(str(folders["batches"].resolve() / "tampered")).run()
    assert not at.exception
    assert any("1 link(s) leading outside" in e.value and "real.tif" in e.value for e in at.error)
    for typed in ("linked-batch", "linked-json"):
        with pytest.raises(BatchAccessError):
            check_batch_path(folders["batches"] / typed)
    assert check_batch_path(folders["batches"] / "good") == (folders["batches"] / "good").resolve()

    # -- the scene store of the map and Prompt pages, and Render's inputs: a linked .tif is not indexed
    (folders["scenes"] / "linked.tif").symlink_to(secret_tif)
    write_sar_tif(folders["scenes"] / "own.tif", seed=1)
    store = SceneStore(folders["scenes"], allowed=lambda p: leads_inside(p, roots))
    assert "linked" not in {e.path.name for e in store.entries} and not any("linked" in p for p in store.problems)
    assert [p.name for p in input_files(folders["scenes"])] == ["own.tif"]

    # -- Render's runs, Prompt's captioned datasets, the Sensor page's model folder
    for name in ("own-run", "weights-linked"):
        (folders["runs"] / name).mkdir(parents=True)
        (folders["runs"] / name / RUN_FILE).write_text("{}")
    (outside / "secret-run").mkdir()
    (outside / "secret-run" / RUN_FILE).write_text("{}")
    (folders["runs"] / "linked-run").symlink_to(outside / "secret-run", target_is_directory=True)
    (folders["runs"] / "weights-linked" / "model.safetensors").symlink_to(secret_tif)
    assert [p.name for p in sar2sar_runs(folders["runs"])] == ["own-run"]
    for where in (folders["datasets"] / "own", outside / "secret-ds"):
        where.mkdir(parents=True)
        (where / CAPTION_INFO_FILE).write_text("{}")
    (folders["datasets"] / "linked-ds").symlink_to(outside / "secret-ds", target_is_directory=True)
    assert [p.name for p in find_captioned(folders["datasets"])] == ["own"]
    assert sensor_folder(str(folders["runs"] / "own-run"), "folder") is not None
    assert sensor_folder(str(folders["runs"] / "weights-linked"), "folder") is None


# -- item 3: unlimited junk sessions ----------------------------------------------------------
def test_junk_sessions_from_one_address_are_refused_counted_and_shown(sqlite_url, tmp_path, monkeypatch, capsys):
    """300 of 300 sessions started from one address. Now an open-link study made with the CLI's
    defaults takes one session per address, open-link starts are rate-limited per address even
    without that limit, invitations from one shared address still work, and the owner sees the
    refused starts."""
    from streamlit.testing.v1 import AppTest

    from sarviz.cli import main
    from sarviz.study.service import START_RATE_MAX, ParticipantAPI, SessionRefused

    from _study_fixtures import build_pool_folder

    build_pool_folder(tmp_path / "pool")
    for code, extra in (
        ("open-link", []),
        ("no-limit", ["--max-sessions-per-client", "0"]),
        ("invited", ["--invite-only"]),
    ):
        assert main(["study", "create", code, "--db", sqlite_url, *extra]) == 0
        assert main(["study", "add-images", code, str(tmp_path / "pool"), "--db", sqlite_url]) == 0
    capsys.readouterr()
    db = StudyDatabase(sqlite_url)
    owner, api = OwnerAPI(db), ParticipantAPI(db)
    assert owner.design("open-link").max_sessions_per_client == 1
    assert owner.design("invited").max_sessions_per_client == 0 and owner.design("invited").invite_only
    attacker = "ip:203.0.113.66"

    def flood(code: str, n: int, **kw) -> tuple[int, list[str]]:
        started, reasons = 0, []
        for _ in range(n):
            try:
                api.start(code, "L1", True, client=attacker, **kw)
                started += 1
            except SessionRefused as exc:
                reasons.append(exc.reason)
        return started, reasons

    assert flood("open-link", 30) == (1, ["per-client limit"] * 29)
    assert api.start("open-link", "L1", True, client="ip:198.51.100.1")  # someone else still gets in
    started, reasons = flood("no-limit", 30)
    assert started == START_RATE_MAX and set(reasons) == {"start rate"}
    # invitees behind one NAT address: every invitation starts its session
    tokens = owner.create_invites("invited", 12)
    assert sum(1 for t in tokens if api.start("invited", "L1", True, client=attacker, invite=t)) == 12
    assert flood("invited", 3) == (0, ["no invite"] * 3)
    refused = {r["reason"]: r["refused"] for r in owner.refused_starts("open-link")}
    assert refused == {"per-client limit": 29}
    # the admin page shows them
    monkeypatch.setenv("SARVIZ_STUDY_DB", sqlite_url)
    monkeypatch.setenv("SARVIZ_STUDY_OWNER_PASSWORD", "pw")
    monkeypatch.setenv("SARVIZ_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(ROOT / "pages" / "4_Study_admin.py"), default_timeout=60).run()
    at.text_input[0].input("pw")
    at.button[0].click().run()
    next(sb for sb in at.selectbox if sb.label == "Study" and sb.key == "results_study").set_value("open-link").run()
    assert any("29 session start(s) were refused" in w.value for w in at.warning), [w.value for w in at.warning]
    db.dispose()


# -- item 14: training loads pickle weights without opt-in ------------------------------------
def _pickle_only(folder: Path) -> None:
    """Re-save a diffusers/transformers component's weights as a pickle (.bin) only."""
    import torch
    from safetensors.torch import load_file

    for st in folder.glob("*.safetensors"):
        torch.save(load_file(st), st.with_suffix(".bin"))
        st.unlink()


def test_training_refuses_pickle_only_bases_before_making_a_run_folder(tmp_path, capsys):
    """`train geo` on a base whose weights are only .bin pickles loaded them and left an empty
    run folder behind an UnpicklingError traceback. Now: the generators' rule, one line, no run
    folder (train geo, train text, train sarclip); --allow-pickle is the opt-in."""
    import shutil

    from sarviz.cli import main
    from sarviz.training.common import TrainError, check_base

    from _train_fixtures import TINY_CHANNELS, write_captioned, write_patch_dataset, write_tiny_sd15

    data = write_patch_dataset(tmp_path / "ds")
    base = write_tiny_sd15(tmp_path / "base", channels=TINY_CHANNELS)  # only refused, never trained
    pickled = tmp_path / "pickled-base"
    shutil.copytree(base, pickled)
    _pickle_only(pickled / "unet")
    captioned = write_captioned(data)
    capsys.readouterr()  # the fixtures' own progress output
    for kind, extra in (("geo", ["--data", str(data)]), ("text", ["--data", str(captioned)])):
        run = tmp_path / f"run-{kind}"
        code = main(["train", kind, *extra, "--base", str(pickled), "--out", str(run), "--max-steps", "1"])
        err = capsys.readouterr().err
        assert code != 0 and "only pickle weights (diffusion_pytorch_model.bin)" in err and "--allow-pickle" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not run.exists()
    with pytest.raises(TrainError):
        check_base(pickled)
    assert check_base(pickled, allow_pickle=True) == pickled  # the opt-in passes the check
    # SAR-CLIP: a CLIP folder with only pytorch_model.bin
    from transformers import CLIPConfig, CLIPModel

    clip = tmp_path / "clip"
    CLIPModel(
        CLIPConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "vocab_size": 100,
            },
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 32,
                "patch_size": 16,
            },
            projection_dim=8,
        )
    ).save_pretrained(clip)
    _pickle_only(clip)
    (clip / "model.bin").rename(clip / "pytorch_model.bin")  # transformers' pickle name
    capsys.readouterr()
    run = tmp_path / "run-sarclip"
    code = main(["train", "sarclip", "--data", str(captioned), "--base", str(clip), "--out", str(run)])
    err = capsys.readouterr().err
    assert code != 0 and "only pickle weights (pytorch_model.bin)" in err and "Traceback" not in err, err
    assert not run.exists()


# -- item 15: model cards ---------------------------------------------------------------------
def test_bad_and_colliding_model_cards_become_problem_lines(tmp_path, monkeypatch, capsys):
    """A card with `"kind": ["x"]` gave a TypeError traceback in `sarviz models`; a user card with
    `"id": "emulator"` silently replaced the shipped emulator and broke the default. Now both
    are `problem:` lines and the shipped emulator stays."""
    import json

    from sarviz.cli import main
    from sarviz.registry import REPO_MODELS_DIR, ModelRegistry

    cards = tmp_path / "cards"
    cards.mkdir()
    bad = {
        "wrong-kind.json": {"id": "x", "kind": ["x"]},
        "wrong-id.json": {"id": 7, "kind": "emulator"},
        "a-list.json": [1, 2],
        "weights.json": {"id": "w", "kind": "emulator", "weights": ["a", "list"]},
        "odd-id.json": {"id": "../../etc", "kind": "emulator"},
        "emulator-clash.json": {"id": "emulator", "kind": "emulator", "name": "not the real one"},
    }
    for name, data in bad.items():
        (cards / name).write_text(json.dumps(data))
    (cards / "fine.json").write_text(json.dumps({"id": "my-model", "kind": "emulator", "name": "mine"}))
    monkeypatch.setenv("SARVIZ_MODELS", str(cards))
    registry = ModelRegistry()
    assert registry.card("emulator").path == REPO_MODELS_DIR / "emulator.json"  # the shipped one stays
    assert "my-model" in registry.cards
    assert len(registry.problems) == len(bad)
    code = main(["models"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    problems = [line for line in err.splitlines() if line.startswith("problem: ")]
    assert len(problems) == len(bad), err
    assert any("'kind' must be str, not list" in p for p in problems)
    assert any("is the id of a card shipped with sarviz" in p for p in problems)
    assert "my-model" in out and "not the real one" not in out


# -- item 16: full disk during a batch -------------------------------------------------------
def _mount_small_tmpfs(where: Path, size: str) -> bool:
    import os
    import subprocess

    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )


def test_a_full_disk_during_a_batch_says_disk_full_at_the_folder(tmp_path):
    """A full disk during a batch was reported as "TIFFRewriteDirectory: Error fetching directory
    count", with libtiff's lines on stderr. On a size-capped tmpfs (needs root to mount it, as in
    CI): the items that cannot be written say "disk full at <folder>" at their stage, the run's
    files stay consistent, and the process's stderr (captured at the file-descriptor level: a
    real ``sarviz batch`` process) holds only sarviz's own lines — no libtiff or GDAL noise."""
    import os
    import subprocess
    import sys

    from sarviz.batch.layout import BatchFolder

    from _batch_fixtures import build_scene_folder, write_points_csv

    if os.geteuid() != 0:
        pytest.skip("mounting a size-capped tmpfs needs root (CI runs as root)")
    pts = build_scene_folder(tmp_path / "scenes")[:3]
    points = write_points_csv(tmp_path / "points.csv", pts)
    disk = tmp_path / "small-disk"
    if not _mount_small_tmpfs(disk, "640k"):
        pytest.skip("this machine does not allow mounting a tmpfs (no CAP_SYS_ADMIN)")
    try:
        out = disk / "run"
        args = ["batch", "--points", str(points), "--model", "emulator", "--scenes", str(tmp_path / "scenes")]
        args += ["--size", "64", "--out", str(out), "--engine", "inline", "--quiet"]
        proc = subprocess.run(
            [sys.executable, "-m", "sarviz.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=600,
        )
        err = proc.stderr
        assert proc.returncode != 0, (proc.stdout, err)
        assert f"disk full at {disk}" in err or f"disk full at {out}" in err, err
        for noise in ("TIFF", "_tiff", "ERROR 1", "Traceback", "No space left on device"):
            assert noise not in err, err
        ours = ("sarviz batch", "  note:", "  FAILED")
        assert all(line.startswith(ours) for line in err.splitlines() if line.strip()), err
        folder = BatchFolder(out)
        rows = folder.read_manifest()
        failed = [r for r in rows if r["status"] == "failed"]
        assert failed and all("disk full at" in r["error"] for r in failed), rows
        assert {r["stage"] for r in failed} <= {"fetch", "generate"}
        assert not list(out.rglob("*.part"))  # no half-written file left
        for item in folder.done_ids():  # what is there is whole
            assert folder.item_json(item).is_file()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# -- items 10–12: malformed GeoJSON, ragged points CSV, whole-world regions -----------------------
SQUARE = [[[10.0, 45.0], [10.1, 45.0], [10.1, 45.1], [10.0, 45.1], [10.0, 45.0]]]


def _fc(*geoms) -> dict:  # noqa: ANN002
    return {
        "type": "FeatureCollection",
        "features": [
            g
            if not isinstance(g, dict) or g.get("type") == "Feature" or "coordinates" not in g
            else {"type": "Feature", "geometry": g, "properties": {}}
            for g in geoms
        ],
    }


BAD_REGIONS = {
    # file text → what the one-line message must say
    "not-an-object": (_fc({"type": "Polygon", "coordinates": SQUARE}, 7), "region feature 2 is a JSON int"),
    "no-coordinates": (
        _fc({"type": "Feature", "geometry": {"type": "Polygon"}}),
        "region feature 1: a polygon needs a list of rings",
    ),
    "nan": (
        '{"type": "Polygon", "coordinates": [[[10, 45], [NaN, 45], [10.1, 45.1], [10, 45]]]}',
        "not a finite number",
    ),
    "off-the-globe": (
        _fc({"type": "Polygon", "coordinates": [[[10, 45], [200, 45], [200, 46], [10, 45]]]}),
        "off the globe",
    ),
    "string-position": (
        _fc({"type": "Polygon", "coordinates": [[["10", 45], [10, 46], [11, 46], [10, 45]]]}),
        "a position must be [longitude, latitude]",
    ),
    "deep": ("[" * 100_000 + "]" * 100_000, "nested more than"),
    "whole-world": (
        _fc({"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}),
        "spans 360° of longitude",
    ),
    "antimeridian": (
        _fc({"type": "Polygon", "coordinates": [[[179, 10], [-179, 10], [-179, 11], [179, 11], [179, 10]]]}),
        "crosses the antimeridian",
    ),
    "pole": (
        _fc({"type": "Polygon", "coordinates": [[[0, 80], [10, 80], [10, 89], [0, 89], [0, 80]]]}),
        "beyond 85° latitude",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REGIONS))
def test_malformed_or_ungriddable_regions_give_one_line(case, tmp_path, capsys):
    """Malformed GeoJSON gave tracebacks (GEOSException, CRSError, RecursionError) in `batch` and
    `dataset build`; a whole-world region made a nonsense grid. Both commands now refuse in one
    line that names the feature and what is wrong."""
    import json

    from sarviz.cli import main

    content, expect = BAD_REGIONS[case]
    path = tmp_path / "region.geojson"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    for argv in (
        [
            "batch",
            "--region",
            str(path),
            "--spacing-km",
            "5",
            "--model",
            "emulator",
            "--out",
            str(tmp_path / "b"),
            "--engine",
            "inline",
        ],
        ["dataset", "build", "--region", str(path), "--out", str(tmp_path / "d")],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0 and expect in err and "Traceback" not in err, (argv[0], err[-800:])
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err[-800:]


BAD_POINTS = {
    "ragged.csv": ("id,lat,lon\na,45.0,10.0\nb,45.1,10.1,extra\n", "line 3 has 4 field(s) but the header has 3"),
    "short.csv": ("id,lat,lon\na,45.0\n", "line 2 has 2 field(s)"),
    "feature.geojson": ('{"type": "FeatureCollection", "features": [1]}', "feature 1 is a JSON int"),
    "nan.geojson": (
        '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [NaN, 1]}}',
        "not a finite number",
    ),
}


@pytest.mark.parametrize("name", list(BAD_POINTS))
def test_malformed_points_files_give_one_line_naming_the_line(name, tmp_path, capsys):
    """A ragged points CSV gave `AttributeError: 'list' object has no attribute 'strip'` in `batch`
    and was silently accepted by `dataset build`. One strict reader for every command."""
    from sarviz.cli import main

    content, expect = BAD_POINTS[name]
    path = tmp_path / name
    path.write_text(content)
    for argv in (
        ["batch", "--points", str(path), "--model", "emulator", "--out", str(tmp_path / "b"), "--engine", "inline"],
        ["dataset", "build", "--points", str(path), "--out", str(tmp_path / "d")],
        ["fetch", "--points", str(path), "--out", str(tmp_path / "f")],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0 and expect in err and "Traceback" not in err, (argv[0], err[-800:])


# -- item 13: one corrupt COG in `sarviz evaluate` --------------------------------------------
@pytest.mark.parametrize("broken", ["real", "generated"])
def test_one_corrupt_cog_is_a_per_item_failure_in_evaluate(broken, tmp_path, capsys):
    """One corrupt COG aborted `sarviz evaluate` with a multi-line Ray traceback (server paths,
    colour codes) and nothing written. Now that item's rows record the underlying message, the
    rest is evaluated and the report lists the failure."""
    from sarviz.batch.layout import BatchFolder
    from sarviz.cli import main

    from _batch_fixtures import build_scene_folder, write_points_csv

    pts = build_scene_folder(tmp_path / "scenes")[:3]
    out = tmp_path / "run"
    assert (
        main(
            [
                "batch",
                "--points",
                str(write_points_csv(tmp_path / "p.csv", pts)),
                "--model",
                "emulator",
                "--scenes",
                str(tmp_path / "scenes"),
                "--size",
                "32",
                "--out",
                str(out),
                "--engine",
                "inline",
            ]
        )
        == 0
    )
    folder = BatchFolder(out)
    victim = sorted(folder.done_ids())[0]
    target = next(folder.item_dir(victim).glob("real.tif" if broken == "real" else "generated_s*.tif"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])  # the header intact, pixel blocks cut off: a corrupt COG
    capsys.readouterr()
    code = main(["evaluate", str(out), "--engine", "inline"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err and "\x1b[" not in err, err[-1500:]
    assert "could not be evaluated" in err
    report = (out / "evaluation" / "report.md").read_text()
    assert victim in report
    rows = (
        [r for r in __import__("csv").DictReader((out / "evaluation" / "metrics.csv").open())]
        if (out / "evaluation" / "metrics.csv").is_file()
        else []
    )
    assert not rows or any(r["id"] != victim and not r["error"] for r in rows)
