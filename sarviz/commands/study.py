"""``sarviz study …``: human-evaluation studies from the terminal.

    sarviz study create CODE --title "…" [--images 12] [--ratio 1:1:2] [--render vv_gray]
    sarviz study add-images CODE FOLDER [--source real|other|ours] [--model-id ID] [--scene-class C]
    sarviz study report [CODE] [--json]         (every study, or one; JSON keyed by study code)
    sarviz study export CODE --out DIR          (answers.csv, summary.csv, fig7.png)
    sarviz study list
    sarviz study invite CODE [-n 10] [--base-url URL]   (one-use participant links)
    sarviz study exclude CODE SESSION… [--reason R] [--undo]  (keep junk sessions out of the analysis)
    sarviz study unlock [--client ID]           (lift login limits; prints a one-time unlock code)
    sarviz study hash-password                  (reads the password from stdin / a prompt)

Every sub-command takes ``--db URL`` (default: ``Settings.study_db``, env ``SARVIZ_STUDY_DB``):
a SQLAlchemy URL (sqlite:///…, postgresql://…) or a SQLite file path ending .sqlite/.db.
Only ``create`` makes a new database; every other command needs an existing one and says so
(naming the path) when it is missing, so a mistyped --db never leaves an empty database behind.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _db(args: argparse.Namespace, create: bool = False):
    """The study database; only ``create=True`` (``study create``) may make a new one."""
    from sarviz.settings import Settings
    from sarviz.study.db import StudyDatabase

    return StudyDatabase(args.db or Settings.load().study_db, create=create)


def _progress(step: int, total: int, message: str) -> None:
    print(f"[{step}/{total}] {message}", file=sys.stderr)


def _create(args: argparse.Namespace) -> int:
    from sarviz.study.design import StudyDesign, parse_ratio
    from sarviz.study.service import OwnerAPI

    per_client = args.max_sessions_per_client
    if per_client is None:  # the admin form's default: 1 for open links, no limit for invitations
        per_client = 0 if args.invite_only else 1
    design = StudyDesign(
        images_per_session=args.images,
        ratio=parse_ratio(args.ratio),
        render=args.render,
        display_px=args.display_px,
        max_sessions_per_client=per_client,
        invite_only=args.invite_only,
    )
    study = OwnerAPI(_db(args, create=True)).create_study(args.code, args.title or args.code, design)
    print(
        f"created study {study.code!r}: {design.images_per_session} images a session, "
        f"{', '.join(f'{n} {s}' for s, n in design.per_session().items())}"
    )
    print(f"participant link: <app URL>/Quiz?study={study.code}")
    return 0


def _add_images(args: argparse.Namespace) -> int:
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    defaults = {
        k: v
        for k, v in {"source": args.source, "model_id": args.model_id, "scene_class": args.scene_class}.items()
        if v
    }
    report = owner.import_folder(args.code, args.folder, defaults, progress=None if args.quiet else _progress)
    for o in report.duplicates + report.failed:
        print(f"  skipped {o.problem}", file=sys.stderr)
    print(f"{args.code}: {report.summary()}")
    status = owner.pool_status(args.code)
    print("pool: ready for participants" if status == "ready" else f"pool: {status}")
    for warning in owner.pool_warnings(args.code):
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if not report.failed else 1


def _report(args: argparse.Namespace) -> int:
    """One study's summary, or (without CODE) every study's: JSON is then keyed by study code."""
    from sarviz.study.analysis import reports_json, study_report
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    if args.code:
        report = study_report(owner, args.code)
        print(report.to_json() if args.json else report.text())
        return 0
    reports = [study_report(owner, s.code) for s in owner.studies()]
    if args.json:
        print(reports_json(reports))
    elif not reports:
        print("no studies yet; create one with `sarviz study create CODE --title ...`")
    else:
        print(("\n\n" + "=" * 72 + "\n\n").join(r.text() for r in reports))
    return 0


def _export(args: argparse.Namespace) -> int:
    from sarviz.study.analysis import answers_csv, study_report
    from sarviz.study.plots import fig7_png
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    report = study_report(owner, args.code)
    from sarviz.formats.study_export import StudyExport

    out = Path(args.out)
    # everything rendered in memory first; StudyExport writes each file atomically
    export = StudyExport(
        out,
        answers_csv(owner.answer_rows(args.code, include_excluded=True)),
        report.summary_csv(),
        report.to_json(),
        fig7_png(report),
    )
    written = export.save()
    print(f"wrote {', '.join(written)} to {out}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    studies = owner.studies()
    if not studies:
        print("no studies yet; create one with `sarviz study create CODE --title ...`")
    for s in studies:
        n = len(owner.participant_rows(s.code))
        print(
            f"{s.code:<24} {'open' if s.is_open else 'closed':<7} {len(owner.items(s.code)):>4} images "
            f"{n:>4} participants  {s.title}"
        )
    return 0


def _unlock(args: argparse.Namespace) -> int:
    from sarviz.study.auth import UNLOCK_CODE_VALID, new_unlock_code, unlock

    db = _db(args)
    cleared = unlock(db, args.client)
    who = f"client {args.client!r}" if args.client else "every client"
    print(f"owner logins unlocked for {who} ({cleared} recent failed attempt(s) no longer count)")
    code = new_unlock_code(db)
    print(
        f"one-time unlock code: {code}  (enter it with the password on the login form; valid "
        f"{int(UNLOCK_CODE_VALID.total_seconds() // 60)} min, once; it passes every login limit)"
    )
    return 0


def _invite(args: argparse.Namespace) -> int:
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    tokens = owner.create_invites(args.code, args.n)
    base = (args.base_url or "<app URL>").rstrip("/")
    for t in tokens:
        print(f"{base}/Quiz?study={args.code}&invite={t}")
    print(
        f"{len(tokens)} one-use invitation(s) for {args.code}"
        + ("" if owner.design(args.code).invite_only else " (the study also takes participants without one)"),
        file=sys.stderr,
    )
    return 0


def _exclude(args: argparse.Namespace) -> int:
    from sarviz.study.service import OwnerAPI

    owner = OwnerAPI(_db(args))
    for session in args.sessions:
        owner.set_excluded(args.code, session, excluded=not args.undo, reason=args.reason)
    n = sum(1 for r in owner.participant_rows(args.code) if r["excluded"])
    print(
        f"{args.code}: {'included' if args.undo else 'excluded'} {len(args.sessions)} session(s); {n} excluded "
        "in all (kept in the raw export, left out of the analysis)"
    )
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from sarviz.study.auth import hash_password

    pw = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("owner password: ")
    print(hash_password(pw))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    study = subparsers.add_parser(
        "study",
        help="human-evaluation studies (real vs generated quizzes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = study.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db", default=None, help="SQLAlchemy URL or SQLite file (default: SARVIZ_STUDY_DB / settings)")
        return p

    p = with_db(sub.add_parser("create", help="create a study"))
    p.add_argument("code", help="short code used in the participant link (a-z, 0-9, -)")
    p.add_argument("--title", default="")
    p.add_argument("--images", type=int, default=12, help="images per session (default 12)")
    p.add_argument("--ratio", default="1:1:2", help="real:other:ours (default 1:1:2)")
    p.add_argument("--render", default="vv_gray", choices=("vv_gray", "vv_vh_rgb"))
    p.add_argument("--display-px", type=int, default=512)
    p.add_argument(
        "--max-sessions-per-client",
        type=int,
        default=None,
        metavar="N",
        help="sessions one participant address may start (0 = no limit; default 1, or 0 with "
        "--invite-only: invitees may share an address)",
    )
    p.add_argument(
        "--invite-only", action="store_true", help="participants need a one-use link from `sarviz study invite`"
    )
    p.set_defaults(func=_create)

    p = with_db(sub.add_parser("add-images", help="add a folder of GeoTIFF/PNG images to a study's pool"))
    p.add_argument("code")
    p.add_argument("folder", help="folder of .tif/.png; labels from labels.csv in it or the options below")
    p.add_argument("--source", choices=("real", "other", "ours"))
    p.add_argument("--model-id", default="")
    p.add_argument("--scene-class", default="")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_add_images)

    p = with_db(sub.add_parser("report", help="print the summary of one study, or of every study"))
    p.add_argument(
        "code",
        nargs="?",
        default=None,
        help="study code (default: every study; --json then gives an object keyed by study code)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON")
    p.set_defaults(func=_report)

    p = with_db(sub.add_parser("export", help="write answers.csv, summary.csv, report.json, fig7.png"))
    p.add_argument("code")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_export)

    p = with_db(sub.add_parser("list", help="list studies"))
    p.set_defaults(func=_list)

    p = with_db(sub.add_parser("invite", help="make one-use participant links"))
    p.add_argument("code")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--base-url", default="", help="the app's public URL, to print whole links")
    p.set_defaults(func=_invite)

    p = with_db(sub.add_parser("exclude", help="exclude sessions from the analysis (kept in the raw export)"))
    p.add_argument("code")
    p.add_argument("sessions", nargs="+", type=int, help="session numbers (participant ids, as in the export)")
    p.add_argument("--reason", default="")
    p.add_argument("--undo", action="store_true", help="include the sessions again")
    p.set_defaults(func=_exclude)

    p = with_db(
        sub.add_parser(
            "unlock",
            help="lift the owner-login limits (after an attack slowed logins down for everyone)",
            description="Failed owner logins before now stop counting: the per-client lock-out and the global "
            "slow-down are lifted. Whoever can open the database can do this, like every CLI command.",
        )
    )
    p.add_argument("--client", default=None, help="only this client (as recorded, e.g. ip:203.0.113.7)")
    p.set_defaults(func=_unlock)

    p = sub.add_parser("hash-password", help="print a hash for SARVIZ_STUDY_OWNER_PASSWORD")
    p.set_defaults(func=_hash_password)
