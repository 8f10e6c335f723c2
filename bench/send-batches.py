#!/usr/bin/env python3
"""POSTs prepared NDJSON batches to a hub over one keep-alive connection,
as a sensor does, and prints "<batches> <hits> <seconds>".

    bench/send-batches.py http://127.0.0.1:8080 KEY FILE...
"""
import http.client
import json
import sys
import time
import urllib.parse

def main():
    url, key, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    u = urllib.parse.urlparse(url)
    bodies = [open(f, "rb").read() for f in files]
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    hits = 0
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        conn.request("POST", "/api/v1/hits", body=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson",
            "Idempotency-Key": f"bench-{i}"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"batch {i}: HTTP {r.status}: {data[:300]!r}")
        hits += json.loads(data)["stored"]
    print(len(bodies), hits, f"{time.perf_counter() - started:.3f}")

if __name__ == "__main__":
    main()
