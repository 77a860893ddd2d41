"""Study design, blind image pooling, sessions and analysis (SQLite file database)."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from sarviz.study import (
    AlreadyAnswered,
    AnswerRejected,
    CorruptImage,
    DuplicateImage,
    ItemLabels,
    NotFound,
    OwnerAPI,
    ParticipantAPI,
    PoolTooSmall,
    QuizAnswer,
    StudyDatabase,
    StudyDesign,
    StudyError,
)
from sarviz.study.analysis import answers_csv, krippendorff_alpha, study_report, wilson_interval
from sarviz.study.design import DesignError, PoolEntry, draw_session, parse_ratio
from sarviz.study.pool import png_chunks, render_file

from _study_fixtures import CLASSES, SHARED, build_pool_folder, make_study, write_png, write_sar_tif


@pytest.fixture
def db(sqlite_url):
    d = StudyDatabase(sqlite_url)
    yield d
    d.dispose()


# -- design ------------------------------------------------------------------------------
def test_default_design_follows_seed_000():
    d = StudyDesign()
    assert d.images_per_session == 12
    assert d.per_session() == {"real": 3, "other": 3, "ours": 6}
    assert list(d.levels) == ["L1", "L2", "L3"]
    assert parse_ratio("1:1:2") == {"real": 1, "other": 1, "ours": 2}


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(images_per_session=10), "multiple of 4"),
        (dict(ratio={"real": 1, "fake": 1}), "unknown image source"),
        (dict(ratio={"real": 0, "other": 0, "ours": 0}), "at least one above zero"),
        (dict(render="jet"), "render mode"),
        (dict(vv_range_db=(5, -25)), "must be below"),
    ],
)
def test_bad_designs_are_explained(kw, words):
    with pytest.raises(DesignError, match=words):
        StudyDesign(**kw)


def test_draw_keeps_ratio_balances_classes_and_randomises():
    pool = [PoolEntry(i, src, CLASSES[i % 4]) for i, src in enumerate(["real"] * 8 + ["other"] * 8 + ["ours"] * 16)]
    by_id = {e.item_id: e for e in pool}
    design = StudyDesign()
    orders = set()
    for seed in range(30):
        ids = draw_session(pool, design, random.Random(seed))
        assert len(ids) == len(set(ids)) == 12
        counts = Counter(by_id[i].source for i in ids)
        assert counts == {"real": 3, "other": 3, "ours": 6}
        # 4 classes in the pool per source: 3 real images → 3 different classes; 6 ours → every class, none >2
        assert len({by_id[i].scene_class for i in ids if by_id[i].source == "real"}) == 3
        ours_classes = Counter(by_id[i].scene_class for i in ids if by_id[i].source == "ours")
        assert set(ours_classes) == set(CLASSES) and max(ours_classes.values()) == 2
        orders.add(tuple(ids))
    assert len(orders) == 30
    # the order is not grouped by source: real images are not always in the first three places
    first_three = [draw_session(pool, design, random.Random(s))[:3] for s in range(30)]
    assert any(any(by_id[i].source != "real" for i in ids) for ids in first_three)


def test_empty_and_too_small_pools_say_what_is_missing():
    design = StudyDesign()
    with pytest.raises(PoolTooSmall, match="pool is empty"):
        draw_session([], design, random.Random(0))
    pool = [PoolEntry(1, "real", ""), PoolEntry(2, "real", ""), PoolEntry(3, "real", "")] + [
        PoolEntry(10 + i, "ours", "") for i in range(4)
    ]
    with pytest.raises(PoolTooSmall) as err:
        draw_session(pool, design, random.Random(0))
    msg = str(err.value)
    assert "3 more other generators image(s) (has 0, needs 3)" in msg
    assert "2 more our model image(s) (has 4, needs 6)" in msg
    assert "more real SAR" not in msg  # real is complete


# -- pooling -------------------------------------------------------------------------------
def test_pooled_images_are_blind(db, tmp_path):
    owner = OwnerAPI(db)
    owner.create_study("blind", "Blind")
    tif = write_sar_tif(tmp_path / "real_chip_from_sentinel.tif", 1, size=40)
    png = write_png(tmp_path / "gpt_generated.png", 2, size=64)
    a = owner.add_file("blind", tif, ItemLabels("real", scene_class="Urban"))
    b = owner.add_file("blind", png, ItemLabels("other", model_id="gpt"))
    for item_id in (a, b):
        data = owner.item_png(item_id)
        assert set(png_chunks(data)) == {"IHDR", "IDAT", "IEND"}  # no tEXt/eXIf/iCCP/tIME/pHYs
        for needle in (b"real", b"gpt", b"secret", b"Source", b"sentinel", b"model"):
            assert needle not in data
        with Image.open(__import__("io").BytesIO(data)) as im:
            assert im.size == (512, 512) and im.mode == "L"  # same size and mode for every source
    items = {r["id"]: r for r in owner.items("blind")}
    assert items[a]["scene_class"] == "urban" and items[a]["lat"] is not None  # location from the GeoTIFF grid
    assert items[a]["provenance"]["model_id"] == "secret-model-1"  # hidden label kept
    assert items[b]["original_name"] == "gpt_generated.png"


def test_fixed_db_stretch_is_the_same_for_every_source(tmp_path):
    design = StudyDesign(display_px=64)
    t1 = write_sar_tif(tmp_path / "a.tif", 5, size=64)
    t2 = write_sar_tif(tmp_path / "b.tif", 5, size=64, offset_db=6.0)  # same texture, 6 dB brighter
    m1 = np.asarray(Image.open(__import__("io").BytesIO(render_file(t1, design).png)), dtype=float).mean()
    m2 = np.asarray(Image.open(__import__("io").BytesIO(render_file(t2, design).png)), dtype=float).mean()
    # a per-image stretch would make both equally bright; the fixed stretch keeps 6 dB = 6/span of 255
    span = design.vv_range_db[1] - design.vv_range_db[0]  # the calibration's VV range (sarviz.calibration)
    assert m2 - m1 == pytest.approx(255 * 6 / span, abs=4)


def test_duplicate_and_corrupt_images_are_refused(db, tmp_path):
    owner = OwnerAPI(db)
    owner.create_study("dups", "Dups")
    tif = write_sar_tif(tmp_path / "one.tif", 3)
    owner.add_file("dups", tif, ItemLabels("real"))
    copy = tmp_path / "renamed_copy.tif"
    copy.write_bytes(tif.read_bytes())
    with pytest.raises(DuplicateImage, match="already in the pool"):
        owner.add_file("dups", copy, ItemLabels("ours"))
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00" + b"\x00garbage" * 10)
    with pytest.raises(CorruptImage, match="broken.tif: not a readable GeoTIFF"):
        owner.add_file("dups", bad, ItemLabels("real"))
    badpng = tmp_path / "broken.png"
    badpng.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(CorruptImage, match="broken.png: not a readable PNG"):
        owner.add_file("dups", badpng, ItemLabels("real"))
    with pytest.raises(CorruptImage, match="not a GeoTIFF or PNG"):
        owner.add_bytes("dups", b"hello world", "notes.txt", ItemLabels("real"))
    with pytest.raises(StudyError, match="source must be one of"):
        ItemLabels("fake")
    assert len(owner.items("dups")) == 1


def test_folder_import_reports_each_file(db, tmp_path):
    owner = OwnerAPI(db)
    owner.create_study("folder", "Folder")
    folder = build_pool_folder(tmp_path / "pool", n_real=2, n_other=1, n_ours=2)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "unlabelled.tif").write_bytes(write_sar_tif(tmp_path / "x.tif", 99).read_bytes())
    write_sar_tif(folder / "zz_again.tif", 1)  # same pixels as img_001.tif
    (folder / "labels.csv").write_text(
        (folder / "labels.csv").read_text() + "zz_again.tif,ours,m,urban\ncorrupt.png,other,,\n"
    )
    steps = []
    report = owner.import_folder("folder", folder, progress=lambda i, n, m: steps.append((i, n)))
    assert len(report.added) == 5
    assert [o.name for o in report.duplicates] == ["zz_again.tif"]
    problems = {o.name: o.problem for o in report.failed}
    assert "not a readable PNG" in problems["corrupt.png"] and "no source label" in problems["unlabelled.tif"]
    assert steps[-1] == (8, 8)
    # a second import of the same folder adds nothing and loses nothing
    again = owner.import_folder("folder", folder)
    assert not again.added and len(again.duplicates) == 6
    assert len(owner.items("folder")) == 5


def test_real_bigearthnet_chips_pool(db):
    chips = sorted((SHARED / "samples" / "bigearthnet").rglob("*_VV.tif")) if SHARED.is_dir() else []
    if not chips:
        pytest.skip("../shared/samples/bigearthnet is absent (real Sentinel-1 chips)")
    owner = OwnerAPI(db)
    owner.create_study("ben", "BigEarthNet")
    for chip in chips[:3]:
        owner.add_file("ben", chip, ItemLabels("real", scene_class="ben"))
    rows = owner.items("ben")
    assert len(rows) == 3
    assert all(r["provenance"]["native_height"] == 120 for r in rows)
    assert all(r["lat"] is not None and 35 < r["lat"] < 71 for r in rows)  # Europe


# -- sessions --------------------------------------------------------------------------------
def test_session_resume_skip_and_double_submit(db, tmp_path):
    owner, quiz = OwnerAPI(db), ParticipantAPI(db)
    make_study(owner, "sess-1", tmp_path / "pool")
    with pytest.raises(StudyError, match="consent"):
        quiz.start("sess-1", "L2", False)
    with pytest.raises(StudyError, match="experience level"):
        quiz.start("sess-1", "L9", True)
    with pytest.raises(NotFound, match="no study with the code"):
        quiz.start("nope", "L1", True)
    view = quiz.start("sess-1", "L2", True)
    assert (view.position, view.total) == (1, 12)
    ids = [view.current_public_id]
    ans = QuizAnswer(True, 4, 4, 3, 5, seconds=3.0)
    view = quiz.submit(view.resume_code, ids[0], ans)
    with pytest.raises(AlreadyAnswered, match="first answer is kept"):
        quiz.submit(view.resume_code, ids[0], QuizAnswer(False, 1, 1, 1, 1))
    with pytest.raises(AnswerRejected, match="missing: detail plausibility, your confidence"):
        quiz.submit(view.resume_code, view.current_public_id, QuizAnswer(True, 3, None, 3, None))
    with pytest.raises(AnswerRejected, match="from 1 to 5"):
        quiz.submit(view.resume_code, view.current_public_id, QuizAnswer(True, 3, 6, 3, 3))
    # skipping ahead is refused: find a later image id of this participant from the database
    from sqlalchemy import select

    from sarviz.study.models import Assignment, Participant

    with db.read() as s:
        later = s.scalars(
            select(Assignment.public_id)
            .join(Participant)
            .where(Participant.resume_code == view.resume_code, Assignment.position == 5)
        ).one()
    with pytest.raises(AnswerRejected, match="answer image 2 first"):
        quiz.submit(view.resume_code, later, ans)
    # "reload": resume by code (any spelling) gives the same place; nothing lost or duplicated
    again = quiz.resume(view.resume_code.lower().replace("-", " "))
    assert (again.answered, again.current_public_id) == (1, view.current_public_id)
    rows = owner.answer_rows("sess-1")
    assert len(rows) == 1 and rows[0]["realism"] == 4 and rows[0]["judged_real"] is True


def test_participant_cannot_reach_labels_or_other_sessions(db, tmp_path):
    owner, quiz = OwnerAPI(db), ParticipantAPI(db)
    make_study(owner, "sess-2", tmp_path / "pool")
    a, b = quiz.start("sess-2", "L1", True), quiz.start("sess-2", "L3", True)
    assert a.current_public_id != b.current_public_id
    png = quiz.image(a.resume_code, a.current_public_id)
    assert set(png_chunks(png)) == {"IHDR", "IDAT", "IEND"}
    with pytest.raises(NotFound):
        quiz.image(a.resume_code, b.current_public_id)  # someone else's image
    with pytest.raises(NotFound):
        quiz.image(a.resume_code, "1")  # a database id
    with pytest.raises(NotFound):
        quiz.submit(a.resume_code, b.current_public_id, QuizAnswer(True, 1, 1, 1, 1))
    # nothing in what the participant API returns names a source, model, class or file
    text = json.dumps(a.__dict__) + json.dumps(quiz.study("sess-2").__dict__)
    for word in ("real", "ours", "other", "model", "urban", ".tif", ".png"):
        assert word not in text
    # participant ids do not repeat across sessions: 24 distinct opaque ids, none numeric
    from sqlalchemy import select

    from sarviz.study.models import Assignment

    with db.read() as s:
        pids = list(s.scalars(select(Assignment.public_id)))
    assert len(pids) == len(set(pids)) == 24 and not any(p.isdigit() for p in pids)


# -- analysis --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k, n, lo, hi",
    [
        # Newcombe (1998), Stat. Med. 17:857, Table II, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=6e-5)


def test_wilson_interval_edge_cases():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_krippendorff_alpha_known_values():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", 4 observers x 12 units:
    # nominal 0.743, ordinal 0.815, interval 0.849.
    nan = None
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    rows = [
        {"participant_id": p, "item_id": u, "realism": v}
        for p, vals in enumerate(data)
        for u, v in enumerate(vals)
        if v is not None
    ]
    import pandas as pd

    frame = pd.DataFrame(rows)
    assert krippendorff_alpha(frame, "realism", "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(frame, "realism", "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(frame, "realism", "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha(frame[frame.participant_id == 0], "realism", "ordinal") is None  # one rater


def test_report_numbers_match_independent_computation(db, tmp_path):
    owner, quiz = OwnerAPI(db), ParticipantAPI(db)
    make_study(owner, "sess-3", tmp_path / "pool", n_real=3, n_other=3, n_ours=6)  # everyone sees every image
    with db.read() as s:
        from sqlalchemy import select

        from sarviz.study.models import Item

        source_of = {row.id: row.source for row in s.execute(select(Item.id, Item.source))}
    rng = random.Random(7)
    expected: list[dict] = []
    for p in range(6):
        level = ["L1", "L2", "L3"][p % 3]
        view = quiz.start("sess-3", level, True)
        while not view.finished:
            with db.read() as s:
                from sarviz.study.models import Assignment

                item_id = s.scalar(select(Assignment.item_id).where(Assignment.public_id == view.current_public_id))
            ans = QuizAnswer(
                rng.random() < 0.5, rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
            )
            view = quiz.submit(view.resume_code, view.current_public_id, ans)
            expected.append(
                dict(
                    level=level,
                    source=source_of[item_id],
                    judged=ans.judged_real,
                    quality=(ans.realism + ans.detail + ans.geographic) / 3,
                    conf=ans.confidence,
                )
            )
    report = study_report(owner, "sess-3")
    assert report.n_answers == 72 and report.participants["finished"] == 6
    for row in report.misjudgment:
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
        k = sum((not e["judged"]) if e["source"] == "real" else e["judged"] for e in sel)
        assert (row["n"], row["k"]) == (len(sel), k)
        if sel:
            assert row["rate"] == pytest.approx(k / len(sel))
    for row in report.scores:
        if row["metric"] not in ("quality", "confidence") or row["source"] not in ("real", "other", "ours"):
            continue
        sel = [
            e["quality" if row["metric"] == "quality" else "conf"]
            for e in expected
            if row["level"] in ("all", e["level"]) and e["source"] == row["source"]
        ]
        assert row["mean"] == pytest.approx(np.mean(sel)) and row["n"] == len(sel)
    assert report.agreement["realism"] is not None  # 6 raters share all 12 images
    csv_text = answers_csv(owner.answer_rows("sess-3"))
    assert len(csv_text.strip().splitlines()) == 73
    summary = report.summary_csv().splitlines()
    assert summary[0].startswith("table,level,source") and any(",misjudgment_rate," in line for line in summary)
    assert "Misjudgment rate" in report.text()
    json.loads(report.to_json())


def test_empty_study_report(db):
    owner = OwnerAPI(db)
    owner.create_study("empty", "Empty")
    report = study_report(owner, "empty")
    assert report.n_answers == 0 and report.agreement["judgement"] is None
    assert "0 started" in report.text()
    assert owner.pool_status("empty").startswith("the study's image pool is empty")
    with pytest.raises(PoolTooSmall, match="pool is empty"):
        ParticipantAPI(db).start("empty", "L1", True)


# -- error messages and blinding details ---------------------------------------------------------
def test_corrupt_uploads_are_named_not_shown_as_object_reprs(db, tmp_path):
    owner = OwnerAPI(db)
    owner.create_study("names", "Names")
    cases = {
        "holiday_scan.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # PNG signature, garbage body
        "chip_0042.tif": b"II*\x00" + b"\x00garbage" * 10,  # TIFF magic, garbage body
    }
    for name, data in cases.items():
        with pytest.raises(CorruptImage) as err:
            owner.add_bytes("names", data, name, ItemLabels("real"))
        msg = str(err.value)
        assert msg.startswith(f"{name}: not a readable"), msg
        for leak in ("BytesIO", " at 0x", "/tmp/", "tmp"):
            assert leak not in msg, msg
    # a PNG that PIL cannot identify at all (the "cannot identify image file <_io.BytesIO …>" case)
    with pytest.raises(CorruptImage) as err:
        owner.add_bytes("names", b"\x89PNG\r\n\x1a\n", "empty.png", ItemLabels("real"))
    assert "empty.png" in str(err.value) and "BytesIO" not in str(err.value) and "0x" not in str(err.value)


def _display(rendered) -> np.ndarray:
    return np.asarray(Image.open(__import__("io").BytesIO(rendered.png)))


def test_missing_pixels_look_the_same_for_every_source(tmp_path):
    """NaN in a real chip, NaN in a generated GeoTIFF and transparent pixels of a PNG are all
    drawn as the same neutral grey (not black for one source only)."""
    import rasterio
    from affine import Affine

    from sarviz.study.pool import MISSING_GREY, render_arrays, render_bytes

    design = StudyDesign(display_px=64)
    rng = np.random.default_rng(3)
    vv = (-30 + rng.standard_normal((64, 64))).astype(np.float32)  # dark: below the stretch's black point
    vv[:, :32] = np.nan  # left half missing
    from_array = _display(render_arrays(vv, vv - 7, design))
    path = tmp_path / "real_with_nodata.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=2,
        dtype="float32",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500_000, 0, -10, 5_300_000),
    ) as dst:
        dst.write(np.stack([vv, vv - 7]))
        dst.descriptions = ("VV", "VH")
    from_tif = _display(render_file(path, design))
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, 32:, 3] = 255  # right half opaque black, left half transparent
    buf = __import__("io").BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    from_png = _display(render_bytes(buf.getvalue(), "generated.png", design))
    for shown in (from_array, from_tif, from_png):
        assert (shown[:, :30] == MISSING_GREY).all()  # missing → neutral grey …
        assert shown[:, 34:].max() < 10  # … valid dark pixels stay dark
    assert MISSING_GREY == 128


def test_native_size_mismatch_is_flagged_for_the_owner_only(db, tmp_path):
    owner = OwnerAPI(db)
    owner.create_study("sizes", "Sizes")
    for i in range(4):  # 120 px real chips (like BigEarthNet) vs 512 px generated images
        owner.add_file("sizes", write_sar_tif(tmp_path / f"r{i}.tif", i, size=120), ItemLabels("real"))
        owner.add_file("sizes", write_sar_tif(tmp_path / f"o{i}.tif", 10 + i, size=512), ItemLabels("ours"))
    warnings = owner.pool_warnings("sizes")
    assert len(warnings) == 2
    real = next(w for w in warnings if " real image" in w)
    assert "4 of 4 real image(s) are natively about 120 px" in real and "512 px" in real and "softer" in real
    assert "crisper" in next(w for w in warnings if " ours image" in w)
    # participants see nothing of it
    quiz = ParticipantAPI(db)
    assert not any(hasattr(quiz, name) for name in ("pool_warnings", "items", "pool_status"))
    # similar native sizes: no warning
    owner.create_study("same-size", "Same size")
    for i in range(3):
        owner.add_file("same-size", write_sar_tif(tmp_path / f"a{i}.tif", 20 + i, size=100), ItemLabels("real"))
        owner.add_file("same-size", write_png(tmp_path / f"b{i}.png", 30 + i, size=128), ItemLabels("other"))
    assert owner.pool_warnings("same-size") == []
