#!/usr/bin/env python3
"""A real SMTP server for the khien-notify tests (aiosmtpd).

    smtp_sink.py PORT OUTDIR [--user U --password P] [--starttls | --tls]
                 [--cert CERT.pem --key KEY.pem] [--idle-timeout SECONDS]

Listens on 127.0.0.1:PORT. Each accepted message is written to OUTDIR as
N.eml (the raw bytes as received) and then N.json (envelope sender and
recipients, whether the session was authenticated and encrypted, and
which connection it came on, numbered from 1); the .json appears last, so
a reader that waits for it sees the whole message. --idle-timeout closes
connections quiet for that long, as real servers do.

With --user/--password, AUTH PLAIN and LOGIN are offered and required.
--starttls offers STARTTLS and requires it before MAIL (and AUTH);
--tls is implicit TLS from the first byte. RCPT to an address containing
"tempfail" is answered 451, one containing "reject" 550.

Prints "READY" on stdout once listening, and stops when stdin closes.
"""

import argparse
import itertools
import logging
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd warns about AUTH without STARTTLS (implicit TLS) and deprecations.
warnings.filterwarnings("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.counter = itertools.count(1)
        self.connections = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "tempfail" in address:
            return "451 4.3.0 Temporary failure, try again later"
        if "reject" in address:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        eml = os.path.join(self.outdir, f"{n}.eml")
        with open(eml + ".tmp", "wb") as f:
            f.write(raw)
        os.replace(eml + ".tmp", eml)
        if not hasattr(session, "khien_connection"):
            session.khien_connection = next(self.connections)
        meta = {
            "connection": session.khien_connection,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(session.authenticated),
            # STARTTLS sets session.ssl; implicit TLS only shows on the
            # transport.
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
        }
        path = os.path.join(self.outdir, f"{n}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(meta, f)
        os.replace(path + ".tmp", path)
        return "250 2.0.0 Message accepted"


class Sink(Controller):
    def __init__(self, handler, port, smtp_kwargs, implicit_tls):
        self.smtp_kwargs = smtp_kwargs
        super().__init__(
            handler,
            hostname="127.0.0.1",
            port=port,
            ssl_context=implicit_tls,
            ready_timeout=10,
        )

    def factory(self):
        return SMTP(self.handler, **self.smtp_kwargs)

    def _trigger_server(self):
        # The base class connects in plain text to wake the server up; that
        # cannot work on an implicit-TLS port, so do the handshake too.
        import socket

        with socket.create_connection((self.hostname, self.port), 2.0) as sock:
            if self.ssl_context is not None:
                client = ssl.create_default_context()
                client.check_hostname = False
                client.verify_mode = ssl.CERT_NONE
                with client.wrap_socket(sock) as tls:
                    tls.recv(1024)
            else:
                sock.recv(1024)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("outdir")
    p.add_argument("--user")
    p.add_argument("--password")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true")
    mode.add_argument("--tls", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--idle-timeout", type=float)
    args = p.parse_args()

    context = None
    if args.starttls or args.tls:
        if not (args.cert and args.key):
            p.error("--starttls and --tls need --cert and --key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    kwargs = {"hostname": "sink.test"}
    if args.idle_timeout is not None:
        kwargs["timeout"] = args.idle_timeout
    if args.user is not None:
        user = args.user.encode()
        password = (args.password or "").encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == user
                and auth_data.password == password
            )
            return AuthResult(success=ok, handled=False)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            # Implicit TLS is encrypted from the start, but aiosmtpd only
            # counts STARTTLS as TLS for this check.
            auth_require_tls=args.starttls,
        )
    if args.starttls:
        kwargs.update(tls_context=context, require_starttls=True)

    os.makedirs(args.outdir, exist_ok=True)
    sink = Sink(Handler(args.outdir), args.port, kwargs, context if args.tls else None)
    sink.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
