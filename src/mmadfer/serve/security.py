"""The web app's security checks (a FastAPI dependency on every route) and response headers (a middleware).

* **Host.** The ``Host`` header must name this server: the address it is bound to (``localhost`` too when that is a
  loopback address); when it listens beyond loopback (``--host 0.0.0.0`` or a LAN address), also the machine's own
  addresses and names and every ``--allowed-host``. Any other name gets 403: a page on another site whose DNS name
  is re-pointed at this machine (DNS rebinding) never reaches the app.
* **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket from another origin gets 403, judged
  by ``Origin`` and, where the browser sends it, ``Sec-Fetch-Site``.
* **Token.** When the server listens beyond loopback, every request needs the access token: an
  ``Authorization: Bearer`` header, or the cookie that opening ``/?token=...`` once sets (the redirect that sets it
  goes to a path of this server only, percent-encoded: never ``/\\evil.com``).
* **Headers.** Every response carries a Content-Security-Policy of ``'self'`` (no CDN, no inline script), no
  referrer, no framing and no caching.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import re
import secrets
import socket
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import HTTPException, WebSocketException
from starlette.requests import HTTPConnection

__all__ = ["Guard", "SecurityHeaders", "is_loopback", "is_local_address", "new_token", "TOKEN_COOKIE", "REPORT_CSP"]

TOKEN_COOKIE = "mmadfer_token"
_HOST_CHARS = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")  # a Host header fit to be written into the CSP
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; font-src 'self'; connect-src 'self' {ws}; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
#: pages that are files of a run folder or a job's report: shown sandboxed, with their own inline styles only
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def is_local_address(address: str) -> bool:
    """Whether ``address`` (an IP literal) is one of this machine's own addresses: the kernel lets a socket bind only
    to those. Nothing is sent."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_unspecified or ip.is_multicast:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
        return True
    except OSError:
        return False


def new_token() -> str:
    """A fresh access token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header -> (lower-case name or address without brackets, port or None); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if not rest else "x")
    else:
        name, sep, port = value.rpartition(":") if ":" in value else (value, "", None)
        if not sep:
            name, port = value, None
    if not name or (port is not None and not port.isdigit()):
        return None
    return name, int(port) if port is not None else None


class Guard:
    """The checks of the module docstring, used as the app's dependency (``Depends(guard)`` on every route).

    Args:
        host, port: the address the server is bound to; ``Host`` headers must name this server.
        token: required on every request when not None.
        allowed_hosts: more accepted names (``--allowed-host``), with or without ``:port``.
    """

    def __init__(self, *, host: str, port: int, token: str | None = None, allowed_hosts: tuple[str, ...] = ()):
        self.port = port
        self.token = token
        bound = host.strip("[]").lower()
        self.loopback = is_loopback(bound)
        names = {bound}
        if self.loopback:
            names |= {"localhost", "127.0.0.1", "::1"} if bound != "::1" else {"localhost", "::1"}
        else:  # the machine's own names; its own addresses are checked one by one (is_local_address)
            names |= {"localhost", "127.0.0.1", "::1", socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names
        self.allowed = set()
        for h in allowed_hosts:
            parsed = _split_host(h)
            if parsed is not None:
                self.allowed.add(parsed)

    def host_ok(self, header: str) -> bool:
        parsed = _split_host(header)
        if parsed is None:
            return False
        name, port = parsed
        if (name, port) in self.allowed or (name, None) in self.allowed and port in (self.port, None):
            return True
        if port != self.port and not (port is None and self.port == 80):  # browsers leave out the default port
            return False
        return name in self.names or (not self.loopback and is_local_address(name))

    def __call__(self, conn: HTTPConnection) -> None:
        """Raise (403, 401, or the token landing's 303) unless ``conn`` passes every check."""
        websocket = conn.scope["type"] == "websocket"
        refuse = (lambda status, text: WebSocketException(1008, text[:120])) if websocket else \
            (lambda status, text: HTTPException(status, text))
        host = conn.headers.get("host", "")
        if not self.host_ok(host):
            raise refuse(403, "Forbidden: unexpected Host header (open the address that mmadfer serve printed)")
        if websocket or conn.scope.get("method", "GET") in _UNSAFE_METHODS:
            origin = conn.headers.get("origin")
            site = conn.headers.get("sec-fetch-site")
            if (origin is not None and origin.lower() != f"http://{host.lower()}") or \
                    (site is not None and site not in ("same-origin", "none")):
                raise refuse(403, "Forbidden: cross-origin request")
        if self.token is None:
            return
        query = parse_qsl(conn.scope.get("query_string", b"").decode("latin-1"))
        given = _bearer(conn.headers.get("authorization")) or _cookie(conn.headers.get("cookie"))
        landing = dict(query).get("token")
        if not websocket and conn.scope.get("method") == "GET" and landing is not None and _same(landing, self.token):
            # the landing link: remember the token in a cookie and drop it from the address bar
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            raise HTTPException(303, "See Other", headers={
                "location": same_origin_path(conn.scope["path"]) + (f"?{rest}" if rest else ""),
                "set-cookie": cookie})
        if given is None or not _same(given, self.token):
            raise refuse(401, "Unauthorized: this server needs its access token; open the address with ?token=... "
                              "that mmadfer serve printed")


def same_origin_path(path: str) -> str:
    """``path`` as a ``Location`` that stays on this server: percent-encoded (a backslash, which browsers read as a
    slash, becomes ``%5C``) and never starting with ``//`` (which would name another host)."""
    encoded = quote(path, safe="/-._~!$&'()*+,;=:@")
    return encoded if encoded.startswith("/") and not encoded.startswith("//") else "/"


class SecurityHeaders:
    """ASGI middleware: the headers of the module docstring on every HTTP response (a route's own
    Content-Security-Policy or Cache-Control wins)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        csp = CSP.format(ws=f"ws://{host}" if _HOST_CHARS.fullmatch(host) else "").encode()

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
                ]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", csp))
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


def _cookie(value: str | None) -> str | None:
    if not value:
        return None
    jar = SimpleCookie()
    try:
        jar.load(value)
    except Exception:  # noqa: BLE001 - a malformed cookie header is no token
        return None
    return jar[TOKEN_COOKIE].value if TOKEN_COOKIE in jar else None
