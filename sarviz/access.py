"""Who may see what, and which server paths a browser may name.

sarviz's pages run on a server. In a study (``SARVIZ_MODE=study``) strangers reach it, so:

* :func:`sarviz.ui.gate.require_page` — the one-line gate at the top of every page but the quiz: in study
  mode it shows the study owner's login and stops the page (server side: nothing below the
  call runs) until the owner has logged in in this browser session. In the default
  workbench mode it lets everyone in.
* :func:`resolve_user_path` — every folder or file path typed in a browser goes through it
  before sarviz reads or writes there: it must lie inside a configured root (the scene
  folder, the pool folder, the upload folder and ``SARVIZ_ROOTS``; symlinks are followed
  before the check), otherwise :class:`AccessDenied` says why in one line.
* :func:`inside_roots` — the same check for every path a page *lists* (found in a root rather
  than typed), and :func:`links_leaving_roots` for a whole folder a page opens (a batch, a run).
* :func:`client_key` — the address that owner-login limits are keyed on: the TCP peer, or,
  only when that peer is a configured proxy (``SARVIZ_TRUSTED_PROXIES``), the right-most
  forwarded address that is not a proxy. A forged ``X-Forwarded-For`` never chooses the key.
* :func:`sarviz.ui.gate.guarded` — runs a page body so that an unexpected error (e.g. a forged widget state)
  shows one line, never a traceback or a server path; the details go to the server log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from sarviz.errors import AccessDenied  # noqa: F401 - re-exported

if TYPE_CHECKING:  # pragma: no cover
    from sarviz.settings import Settings

log = logging.getLogger(__name__)

#: the key of forwarded requests whose forwarding we do not believe (see :func:`client_key`)
UNTRUSTED_FORWARD = "forwarded-untrusted"


# -- paths -----------------------------------------------------------------------------------
def allowed_roots(settings: "Settings | None" = None) -> tuple[Path, ...]:
    from sarviz.settings import Settings

    settings = settings or Settings.load()
    out: list[Path] = []
    for root in settings.read_roots():
        try:
            real = Path(root).expanduser().resolve()
        except (OSError, RuntimeError):
            continue
        if real not in out:
            out.append(real)
    return tuple(out)


def resolve_user_path(
    text: str | os.PathLike, settings: "Settings | None" = None, *, kind: str = "folder", must_exist: bool = True
) -> Path:
    """The real path a browser named, if it lies inside an allowed root; else :class:`AccessDenied`.

    ``kind`` is ``"folder"`` or ``"file"``. Relative paths are taken relative to the first root
    (the scene folder), not to the server's working directory.
    """
    raw = os.fspath(text) if not isinstance(text, str) else text
    raw = raw.strip()
    if not raw:
        raise AccessDenied(f"Refused: no {kind} given.")
    if "\x00" in raw or any(ord(c) < 32 for c in raw):
        raise AccessDenied(f"Refused: the {kind} name contains control characters.")
    roots = allowed_roots(settings)
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = (roots[0] if roots else Path.cwd()) / path
    try:
        real = path.resolve()  # follows symlinks, so a link inside a root cannot point outside it
    except (OSError, RuntimeError) as exc:
        raise AccessDenied(f"Refused: {raw} cannot be resolved ({exc.__class__.__name__}).") from None
    if not _within(real, roots):
        raise AccessDenied(
            f"Refused: {raw} is outside the folders this app may open ({', '.join(str(r) for r in roots)}); "
            "the server's owner can add folders with SARVIZ_ROOTS."
        )
    if must_exist:
        if kind == "folder" and not real.is_dir():
            raise AccessDenied(f"{raw} is not a folder.")
        if kind == "file" and not real.is_file():
            raise AccessDenied(f"{raw} is not a file.")
    return real


def inside_roots(path: str | os.PathLike, settings: "Settings | None" = None, *, kind: str = "folder") -> Path | None:
    """The real path of a path the app *listed* (a file or run folder found in a root), or None
    when it leads outside the roots (e.g. a symlink out of one): listed paths get the same check
    as typed ones, so a link inside a root never shows or serves what lies outside it."""
    try:
        return resolve_user_path(os.fspath(path), settings, kind=kind)
    except AccessDenied:
        log.warning("not listed: %s leads outside the allowed folders", path)
        return None


def leads_inside(path: str | os.PathLike, roots: Iterable[Path]) -> bool:
    """True if ``path``, with every symbolic link followed, lies in one of the (resolved) ``roots``."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError):
        return False
    return _within(real, roots)


def _within(real: Path, roots: Iterable[Path]) -> bool:
    """The one containment test of a resolved path against resolved roots (typed and listed paths)."""
    return any(real == r or real.is_relative_to(r) for r in roots)


def links_leaving_roots(
    folder: str | os.PathLike, settings: "Settings | None" = None, *, roots: Iterable[Path] | None = None
) -> list[Path]:
    """The symbolic links under ``folder`` (a folder the app opened) that lead outside the roots.

    The folder is walked without following links, so every path below it is either a plain
    file or folder inside it, or one of the links checked here: a folder with none of these
    links can be read freely, whatever its pages open inside it. ``roots`` overrides the
    configured roots (as :func:`sarviz.ui.batch.check_batch_path` may).
    """
    real_roots = tuple(Path(r).resolve() for r in roots) if roots is not None else allowed_roots(settings)
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(
        Path(folder)
    ):  # followlinks=False: a linked folder is checked, not entered
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if path.is_symlink() and not leads_inside(path, real_roots):
                log.warning("refused: %s leads outside the allowed folders", path)
                out.append(path)
    return out


def safe_upload_name(name: str, default: str = "upload") -> str:
    """A browser-supplied file name reduced to a plain base name (no folders, NUL or control bytes)."""
    base = Path(str(name or "").replace("\\", "/")).name
    base = "".join(c for c in base if ord(c) >= 32 and c not in "\x7f")
    base = base.strip().lstrip(".")
    return base[:200] or default


# -- client identity ---------------------------------------------------------------------------
def _networks(specs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for spec in specs:
        try:
            nets.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            log.warning("SARVIZ_TRUSTED_PROXIES: %r is not an address or network; ignored", spec)
    return nets


def _in(addr: str, nets: list) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in n for n in nets)


def _header(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return ", ".join(v for k, v in items if k.lower() == name.lower())


def client_key(
    peer: str | None, headers: Mapping[str, str] | Iterable[tuple[str, str]], trusted_proxies: Iterable[str] = ()
) -> str:
    """The address a client is known by, which the client itself cannot choose.

    Streamlit's web server (uvicorn) already replaces the peer address with the
    ``X-Forwarded-For`` value when the peer is loopback (uvicorn's default
    ``FORWARDED_ALLOW_IPS=127.0.0.1``), so anyone on the machine — or behind any proxy on it —
    could pick their address. We believe a forwarded address only when the owner configured
    proxies: then the right-most address that is not a proxy is the client. Without
    configured proxies a request carrying ``X-Forwarded-For`` is keyed
    :data:`UNTRUSTED_FORWARD` (one bucket for all of them, never the owner's address).
    """
    nets = _networks(trusted_proxies)
    chain = [a.strip() for a in _header(headers, "x-forwarded-for").split(",") if a.strip()]
    peer = (peer or "").strip() or "unknown"
    if not chain:
        return f"ip:{peer}"
    # If the peer equals a forwarded entry, uvicorn rewrote it: the real peer was a host uvicorn
    # trusts (loopback unless FORWARDED_ALLOW_IPS says otherwise) — a proxy only if we were told so.
    rewritten = peer in chain
    if rewritten:
        # uvicorn rewrote the peer, so the real peer was one of the hosts uvicorn trusts; it is a
        # proxy of ours only if every such host is among the owner's configured proxies.
        uvicorn_trusts = [h.strip() for h in os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1").split(",") if h.strip()]
        peer_is_proxy = (
            bool(uvicorn_trusts)
            and "*" not in uvicorn_trusts
            and all(_in(h, nets) or (h == "localhost" and _in("127.0.0.1", nets)) for h in uvicorn_trusts)
        )
    else:
        peer_is_proxy = _in(peer, nets)
    if not peer_is_proxy:
        return UNTRUSTED_FORWARD if rewritten else f"ip:{peer}"
    for addr in reversed(chain):
        if not _in(addr, nets):
            return f"ip:{addr}"
    return f"ip:{chain[0]}"


def current_client(settings: "Settings | None" = None) -> str:
    """:func:`client_key` of the browser running this script (``"local"`` outside a server)."""
    from sarviz.settings import Settings

    try:
        from streamlit.runtime import get_instance
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        client = get_instance().get_client(ctx.session_id) if ctx is not None else None
        context = getattr(client, "client_context", None)
    except Exception:  # no Streamlit runtime (CLI, AppTest): a single local user
        context = None
    if context is None or not isinstance(getattr(context, "remote_ip", None), str):
        return "local"
    settings = settings or Settings.load()
    return client_key(context.remote_ip, list(context.headers), settings.trusted_proxies)


def browser_session_id() -> str:
    """Streamlit's id of this browser session (made by the server; a client cannot pick it)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return str(ctx.session_id) if ctx is not None else "none"
    except Exception:
        return "none"


#: Streamlit session ids in which the study owner has logged in (the upload guard's list)
_OWNER_SESSIONS: set[str] = set()


def mark_owner_session(logged_in: bool = True) -> None:
    """Record (or forget) that the study owner logged in in this browser session."""
    sid = browser_session_id()
    if sid == "none":
        return
    if logged_in:
        _OWNER_SESSIONS.add(sid)
    else:
        _OWNER_SESSIONS.discard(sid)


def is_owner_session(session_id: str) -> bool:
    """True if the study owner logged in in the browser session ``session_id`` (server side)."""
    return session_id in _OWNER_SESSIONS
