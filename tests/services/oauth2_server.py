#!/usr/bin/env python3
"""A loopback OAuth2 issuer for the IMAP tests: token endpoint, introspection, controls.

    oauth2_server.py serve PORT_FILE    # binds 127.0.0.1:0, writes the port to PORT_FILE
    oauth2_server.py token URL          # prints an access token (client credentials):
                                        # the `token_command` of the tests

Endpoints (form-encoded POSTs, JSON answers, as RFC 6749 and RFC 7662 describe them):
- POST /token: `grant_type=client_credentials` with CLIENT_ID and CLIENT_SECRET (in the
  body or HTTP Basic), or `grant_type=refresh_token` with CLIENT_ID and a valid refresh
  token (REFRESH_TOKEN at first). Answers `access_token`, `token_type`, `expires_in`;
  with rotation on, also a new `refresh_token`, and the one used stops working, so a
  client must keep the newest. Errors: 401 `invalid_client`, 400 `invalid_grant`.
- POST /introspect (`token=…`, what Dovecot's oauth2 passdb sends with
  `introspection_mode = post`): `{"active": true, "username": USER, …}` for a token it
  issued that has neither expired nor been revoked, else `{"active": false}`.
- POST /control (JSON): `{"lifetime": SECONDS}` for tokens issued from now on,
  `{"rotate": true|false}`, `{"revoke": "access"}` (every access token issued so far),
  `{"revoke": "refresh"}` (every refresh token). GET /control: what happened, as JSON
  (`issued`: one entry per token with its grant, scope and lifetime, and the token
  itself so a test can check it never reached a log; `refused`: one entry per refused
  token request; `introspections`: how many tokens were active and inactive).

Python's standard library only; one process per test, stopped by its harness.
"""
import base64
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "ruaflow-test-client"
CLIENT_SECRET = "ruaflow-test-client-secret"
REFRESH_TOKEN = "ruaflow-test-refresh-token"
USER = "ruaflow"


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.lifetime = 3600
        self.rotate = False
        self.access = {}  # token -> {"expires": t, "revoked": bool}
        self.refresh = {REFRESH_TOKEN: True}  # token -> still valid
        self.issued = []
        self.refused = []
        self.introspections = {"active": 0, "inactive": 0}


STATE = State()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode()

    def do_GET(self):
        if self.path != "/control":
            return self.answer(404, {"error": "not_found"})
        with STATE.lock:
            self.answer(200, {"issued": STATE.issued, "refused": STATE.refused,
                              "introspections": STATE.introspections})

    def do_POST(self):
        if self.path == "/token":
            return self.token(urllib.parse.parse_qs(self.body()))
        if self.path == "/introspect":
            return self.introspect(urllib.parse.parse_qs(self.body()))
        if self.path == "/control":
            return self.control(json.loads(self.body() or "{}"))
        self.answer(404, {"error": "not_found"})

    def token(self, form):
        one = lambda key: (form.get(key) or [""])[0]
        client_id, client_secret = one("client_id"), one("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, client_secret = urllib.parse.unquote(user), urllib.parse.unquote(password)
        grant = one("grant_type")
        with STATE.lock:
            if client_id != CLIENT_ID:
                return self.refuse(401, "invalid_client", "unknown client")
            new_refresh = None
            if grant == "client_credentials":
                if client_secret != CLIENT_SECRET:
                    return self.refuse(401, "invalid_client", "wrong client secret")
            elif grant == "refresh_token":
                used = one("refresh_token")
                if not STATE.refresh.get(used):
                    return self.refuse(400, "invalid_grant", "the refresh token is expired or revoked")
                if STATE.rotate:
                    STATE.refresh[used] = False
                    new_refresh = "refresh-" + secrets.token_urlsafe(24)
                    STATE.refresh[new_refresh] = True
            else:
                return self.refuse(400, "unsupported_grant_type", grant)
            token = "access-" + secrets.token_urlsafe(32)
            lifetime = STATE.lifetime
            STATE.access[token] = {"expires": time.time() + lifetime, "revoked": False}
            STATE.issued.append({"grant": grant, "scope": one("scope"), "lifetime": lifetime,
                                 "token": token, "at": time.time(),
                                 "refresh_used": one("refresh_token") if grant == "refresh_token" else None})
            body = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
            if new_refresh:
                body["refresh_token"] = new_refresh
            self.answer(200, body)

    def refuse(self, status, error, description):
        """An RFC 6749 §5.2 error answer, recorded (the caller holds the lock)."""
        STATE.refused.append({"error": error, "at": time.time()})
        self.answer(status, {"error": error, "error_description": description})

    def introspect(self, form):
        token = (form.get("token") or [""])[0]
        with STATE.lock:
            entry = STATE.access.get(token)
            active = bool(entry) and not entry["revoked"] and entry["expires"] > time.time()
            STATE.introspections["active" if active else "inactive"] += 1
            if not active:
                return self.answer(200, {"active": False})
            self.answer(200, {"active": True, "username": USER, "client_id": CLIENT_ID,
                              "token_type": "Bearer", "exp": int(entry["expires"])})

    def control(self, order):
        with STATE.lock:
            if "lifetime" in order:
                STATE.lifetime = int(order["lifetime"])
            if "rotate" in order:
                STATE.rotate = bool(order["rotate"])
            if order.get("revoke") == "access":
                for entry in STATE.access.values():
                    entry["revoked"] = True
            if order.get("revoke") == "refresh":
                for token in STATE.refresh:
                    STATE.refresh[token] = False
        self.answer(200, {"ok": True})


def serve(port_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    # Renamed into place only once bound, so a reader never sees a partial file.
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def token(url):
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                   "client_secret": CLIENT_SECRET}).encode()
    with urllib.request.urlopen(url, data=form, timeout=10) as answer:
        print(json.load(answer)["access_token"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "token":
        token(sys.argv[2])
    else:
        sys.exit(__doc__)
