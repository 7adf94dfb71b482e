"""A loopback SMTP submission server for the email alert tests (tests/services/smtp).

    /usr/bin/python3 smtp_server.py --dir DIR --port PORT --tls starttls|implicit|none
        [--cert PEM --key PEM] [--user NAME --password PASSWORD]

Debian's python3-aiosmtpd (a real SMTP server: EHLO, STARTTLS, AUTH PLAIN and LOGIN,
pipelining of the reply codes, dot-unstuffing) with a handler that keeps what it
receives for the tests to check:

- DIR/messages/N.eml: each accepted message, byte for byte as it arrived in DATA;
- DIR/messages/N.json: its envelope: `mail_from`, `rcpt_tos`, `user` (the login that
  sent it), `tls` (whether the session was encrypted), `peer`;
- DIR/auth.log: one line per AUTH attempt, `ok USER MECHANISM` or `refused USER MECHANISM`.

With `--tls starttls` MAIL is refused until STARTTLS (and AUTH is offered only after
it); with `--tls implicit` the port speaks TLS from the first byte (SMTPS, port 465
style). With `--user`, AUTH is required before MAIL and only that user and password are
accepted (a wrong one gets `535 5.7.8`). Standard library and aiosmtpd only; runs until
SIGTERM or SIGINT.
"""

import argparse
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keeper:
    """Writes every message and its envelope to DIR/messages, numbered in order."""

    def __init__(self, directory):
        self.directory = os.path.join(directory, "messages")
        os.makedirs(self.directory, exist_ok=True)
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.directory, f"{n:04}")
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "user": login.decode() if isinstance(login, bytes) else login,
            # STARTTLS and implicit TLS alike leave an SSL object on the transport.
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "peer": list(session.peer) if session.peer else None,
        }
        # The .json last and by rename: a test seeing it can read both files whole.
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Message accepted for delivery"


class Authenticator:
    """Accepts one user and password; logs every attempt to DIR/auth.log."""

    def __init__(self, directory, user, password):
        self.log = os.path.join(directory, "auth.log")
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        with open(self.log, "a") as f:
            f.write(f"{'ok' if ok else 'refused'} {login} {mechanism}\n")
        # auth_data is what the session keeps (session.auth_data) for handle_DATA.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    options = {
        # Alert mail is UTF-8 text: the server must announce 8BITMIME (aiosmtpd does)
        # and SMTPUTF8 for internationalized addresses.
        "enable_SMTPUTF8": True,
        "data_size_limit": 1 << 20,
    }
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    elif args.tls == "implicit":
        options.update(ssl_context=context)
    if args.user:
        options.update(
            authenticator=Authenticator(args.dir, args.user, args.password or ""),
            auth_required=True,
            # With implicit TLS the whole session is encrypted, but aiosmtpd only counts
            # STARTTLS as such for its own check.
            auth_require_tls=args.tls == "starttls",
        )
    controller = Controller(Keeper(args.dir), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with open(os.path.join(args.dir, "ready"), "w") as f:
        f.write(f"{os.getpid()}\n")
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
