"""The web app's guard, one ASGI middleware in front of every HTTP request and WebSocket.

* **Host.** The ``Host`` header must name the address the server is bound to (``localhost`` too when that is a
  loopback address): a page on another site whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) gets 403.
* **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket from another origin gets 403, judged
  by ``Origin`` and, where the browser sends it, ``Sec-Fetch-Site``.
* **Token.** When the server listens beyond loopback, every request needs the access token: an
  ``Authorization: Bearer`` header, or the cookie that opening ``/?token=...`` once sets.
* **Headers.** Every response carries a Content-Security-Policy of ``'self'`` (no CDN, no inline script), no
  referrer, no framing and no caching.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

__all__ = ["Guard", "is_loopback", "new_token", "TOKEN_COOKIE"]

TOKEN_COOKIE = "mmadfer_token"
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; font-src 'self'; connect-src 'self' {ws}; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
#: pages that are files of a run folder (``report.html``): shown sandboxed, with their own inline styles only
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh access token (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Guard:
    """ASGI middleware: see the module docstring.

    Args:
        app: the app to protect.
        host, port: the address the server is bound to; ``Host`` headers must name it.
        token: required on every request when not None.
        extra_hosts: more accepted ``Host`` values (``host:port``), for tests.
    """

    def __init__(self, app, *, host: str, port: int, token: str | None = None, extra_hosts: tuple[str, ...] = ()):
        self.app = app
        self.token = token
        names = {host}
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]"} if host != "::1" else {"localhost", "::1"}
        self.hosts = {_host_port(h.strip("[]"), port) for h in names} | set(extra_hosts)
        if port == 80:  # browsers leave the default port out of Host
            self.hosts |= {f"[{h}]" if ":" in h else h for h in (n.strip("[]") for n in names)}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host not in self.hosts:
            return await self._refuse(scope, receive, send, 403, "Forbidden: unexpected Host header "
                                      "(open the address that mmadfer serve printed)")
        websocket = scope["type"] == "websocket"
        if websocket or scope.get("method", "GET") in _UNSAFE_METHODS:
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site")
            if (origin is not None and origin not in {f"http://{h}" for h in self.hosts}) or \
                    (site is not None and site not in ("same-origin", "none")):
                return await self._refuse(scope, receive, send, 403, "Forbidden: cross-origin request")
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = _bearer(headers.get("authorization")) or _cookie(headers.get("cookie"))
            if not websocket and scope.get("method") == "GET" and "token" in query and _same(query["token"], self.token):
                # the landing link: remember the token in a cookie and drop it from the address bar
                rest = urlencode([(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"))
                                  if k != "token"])
                path = scope["path"] if not scope["path"].startswith("//") else "/"  # never off this server
                location = path + (f"?{rest}" if rest else "")
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                return await _respond(send, 303, b"", [(b"location", location.encode()),
                                                       (b"set-cookie", cookie.encode())])
            if given is None or not _same(given, self.token):
                return await self._refuse(scope, receive, send, 401, "Unauthorized: this server needs its access "
                                          "token; open the address with ?token=... that mmadfer serve printed")
        ws_origin = f"ws://{host}"

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
                    extra.append((b"content-security-policy", CSP.format(ws=ws_origin).encode()))
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        return await self.app(scope, receive, send_with_headers)

    async def _refuse(self, scope, receive, send, status: int, text: str):
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
        return await _respond(send, status, text.encode(), [(b"content-type", b"text/plain; charset=utf-8")])


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]):
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
                                      (b"content-security-policy", b"default-src 'none'")]})
    await send({"type": "http.response.body", "body": body})


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
