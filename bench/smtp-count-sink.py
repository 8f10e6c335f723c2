#!/usr/bin/env python3
"""An SMTP server for the notification benchmark (aiosmtpd): accepts every
message, keeps the first one, and counts.

    bench/smtp-count-sink.py PORT DIR

Writes DIR/first.eml (the first message as received) and DIR/count (the
number accepted so far, rewritten every 100 ms). Prints READY once
listening; runs until killed.
"""
import asyncio
import logging
import os
import signal
import sys
import threading
import time
import warnings

from aiosmtpd.controller import Controller

warnings.filterwarnings("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)


class Counter:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if self.n == 0:
            with open(os.path.join(self.out, "first.eml"), "wb") as f:
                f.write(envelope.original_content or envelope.content)
        self.n += len(envelope.rcpt_tos) or 1
        return "250 2.0.0 OK"


def main():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    counter = Counter(out)
    controller = Controller(counter, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()

    def write():
        while True:
            tmp = os.path.join(out, "count.tmp")
            with open(tmp, "w") as f:
                f.write(str(counter.n))
            os.replace(tmp, os.path.join(out, "count"))
            time.sleep(0.1)

    threading.Thread(target=write, daemon=True).start()
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
