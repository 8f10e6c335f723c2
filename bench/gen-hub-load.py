#!/usr/bin/env python3
"""Writes what the hub benchmark sends, deterministic for a seed:

    bench/gen-hub-load.py DIR SUBSCRIBERS HITS INDICATORS_FILE

- DIR/subscribers.csv   the subscriber directory (id, name, e-mail, phone)
- DIR/radius.csv        one RADIUS Start per subscriber, an address each
- DIR/hits-NNNN.ndjson  HITS hits in batches of 10,000, as a sensor sends
                        them: every subscriber's address reaching 10 listed
                        domains of 5 families, counts 1-20, times within the
                        last hour, batches in random order
- DIR/hits.csv          the same hits' keys, for the sqlite3 baseline
- DIR/lookups.txt       100,000 lookup values: 10 % listed domains (or
                        hosts under them), the rest unlisted names
"""
import datetime
import json
import os
import random
import sys

def main():
    out, subs, hits, indicators = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(7)
    os.makedirs(out, exist_ok=True)
    listed = [l.strip() for l in open(indicators) if l.strip() and "/" not in l and not l[0].isdigit()]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = now - datetime.timedelta(hours=2)
    def addr(i):
        return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    with open(f"{out}/subscribers.csv", "w") as f:
        f.write("id,name,email,phone\n")
        for i in range(subs):
            f.write(f"S{i:07d},Khách hàng {i},kh{i}@example.vn,09{i % 100000000:08d}\n")
    with open(f"{out}/radius.csv", "w") as f:
        f.write("time,status,user,address,session\n")
        for i in range(subs):
            f.write(f"{start.isoformat()},Start,S{i:07d},{addr(i + 1)},s{i}\n")
    families = ["mirai", "emotet", "redline", "flubot", "xmrig"]
    per = max(1, hits // subs)
    rows = []
    for i in range(subs):
        for j in range(per):
            rows.append((i, j))
    rows = rows[:hits]
    rng.shuffle(rows)
    base = now - datetime.timedelta(minutes=50)
    bucket = (base.replace(minute=0, second=0)).isoformat().replace("+00:00", "Z")
    with open(f"{out}/hits.csv", "w") as keys:
        for b in range(0, len(rows), 10_000):
            with open(f"{out}/hits-{b // 10_000:04d}.ndjson", "w") as f:
                for i, j in rows[b:b + 10_000]:
                    t = (base + datetime.timedelta(seconds=rng.randint(0, 1800))).isoformat().replace("+00:00", "Z")
                    ind = listed[(i * 7 + j) % len(listed)]
                    f.write(json.dumps({
                        "bucket": bucket, "client": addr(i + 1), "indicator": ind, "kind": "domain",
                        "family": families[(i + j) % 5], "threat_type": "c2", "count": rng.randint(1, 20),
                        "first_seen": t, "last_seen": t, "sensor": "bench-sensor"}) + "\n")
                    keys.write(f"{bucket},bench-sensor,{addr(i + 1)},domain,{ind}\n")
    with open(f"{out}/lookups.txt", "w") as f:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        for k in range(100_000):
            if rng.random() < 0.1:
                d = rng.choice(listed)
                f.write((f"www.{d}" if rng.random() < 0.3 else d) + "\n")
            else:
                label = "".join(rng.choice(alphabet) for _ in range(rng.randint(6, 14)))
                f.write(f"{label}.{rng.choice(['com', 'vn', 'com.vn', 'net'])}\n")

if __name__ == "__main__":
    main()
