#!/usr/bin/env python3
"""The notification benchmark's baseline: pushes N copies of one message to
an SMTP server over C connections at once (threads, smtplib), each with
its own recipient, and prints the seconds it took.

    bench/smtp-send.py HOST PORT MESSAGE.eml N C
"""
import smtplib
import sys
import threading
import time


def main():
    host, port, path, n, c = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    message = open(path, "rb").read()
    shares = [range(i, n, c) for i in range(c)]
    errors = []

    def run(share):
        try:
            with smtplib.SMTP(host, port) as s:
                for i in share:
                    s.sendmail("canhbao@isp.example", [f"kh{i}@example.vn"], message)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"baseline sender failed: {errors[0]}")
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
