"""A real SMTP server for the end-to-end tests (aiosmtpd).

Usage: server.py --port N --maildir DIR --cert CERT --key KEY
                 [--tls starttls|implicit] [--auth-user NAME --auth-password-file FILE]
                 [--refuse]

--tls starttls (the default) requires STARTTLS before anything but EHLO, STARTTLS and QUIT;
--tls implicit speaks TLS from the first byte (port 465 style). With --auth-user, AUTH PLAIN
and LOGIN are offered over TLS only and every message needs a successful login with that name
and the password in the file; a wrong login is answered 535.

Each message received is written to DIR as <n>.eml (the bytes as received) and <n>.txt (its
From, To and Subject headers and its text body, decoded from MIME, as UTF-8), <n>.txt last.
With --refuse, every recipient is answered 550, so the gateway sees a permanent refusal.
Prints "ready" once listening.
"""

import argparse
import email
import email.policy
import hmac
import itertools
import os
import signal
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, refuse):
        self.maildir = maildir
        self.refuse = refuse
        # Carry on after messages of an earlier run on the same directory (a restart).
        done = [f for f in os.listdir(maildir) if f.endswith(".eml")]
        self.counter = itertools.count(len(done) + 1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.7.1 Delivery refused by policy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        raw = envelope.original_content or envelope.content
        self.write(f"{n}.eml", raw)
        self.write(f"{n}.txt", decoded(raw).encode("utf-8"))
        return "250 Message accepted"

    def write(self, name, data):
        tmp = os.path.join(self.maildir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.maildir, name))


def decoded(raw):
    """The headers a reader sees and the text body, decoded from MIME."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    head = "".join(f"{h}: {msg.get(h, '')}\n" for h in ("From", "To", "Subject"))
    return f"{head}\n{text}"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.user) and hmac.compare_digest(
            auth_data.password, self.password
        )
        # handled=False: aiosmtpd answers the client itself (235, or 535 for a wrong login).
        return AuthResult(success=ok, handled=False)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--tls", choices=("starttls", "implicit"), default="starttls")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password-file")
    p.add_argument("--refuse", action="store_true")
    a = p.parse_args()
    os.makedirs(a.maildir, exist_ok=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    smtp = {}
    if a.auth_user is not None:
        with open(a.auth_password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
        smtp.update(
            authenticator=Authenticator(a.auth_user, password),
            auth_required=True,
            # Over implicit TLS the whole connection is encrypted; aiosmtpd only knows about
            # TLS it negotiated itself (STARTTLS), so it is told not to insist again.
            auth_require_tls=a.tls == "starttls",
        )
    if a.tls == "implicit":
        c = Controller(
            Handler(a.maildir, a.refuse),
            hostname="127.0.0.1",
            port=a.port,
            ssl_context=ctx,
            **smtp,
        )
    else:
        # require_starttls: nothing but EHLO, STARTTLS and QUIT is served before TLS.
        c = Controller(
            Handler(a.maildir, a.refuse),
            hostname="127.0.0.1",
            port=a.port,
            tls_context=ctx,
            require_starttls=True,
            **smtp,
        )
    c.start()
    print("ready", flush=True)
    # Runs until the test harness kills it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
