"""A real SMTP server for the end-to-end tests (aiosmtpd), with STARTTLS.

Usage: server.py --port N --maildir DIR --cert CERT --key KEY [--refuse]

Each message received is written to DIR as <n>.eml. With --refuse, every recipient is
answered 550, so the gateway sees a permanent refusal. Prints "ready" once listening.
"""

import argparse
import itertools
import os
import signal
import ssl
import sys
import time

from aiosmtpd.controller import Controller


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
        tmp = os.path.join(self.maildir, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(tmp, os.path.join(self.maildir, f"{n}.eml"))
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--refuse", action="store_true")
    a = p.parse_args()
    os.makedirs(a.maildir, exist_ok=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    # require_starttls: nothing but EHLO, STARTTLS and QUIT is served before TLS.
    c = Controller(
        Handler(a.maildir, a.refuse),
        hostname="127.0.0.1",
        port=a.port,
        tls_context=ctx,
        require_starttls=True,
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
