#!/usr/bin/env python3
"""Generates the sensor benchmark's inputs, deterministically (seeded):

  OUT/indicators.txt   DOMAINS listed domains and IPS listed IPv4 addresses
                       (plain list, importable with `khien intel import`)
  OUT/patterns.txt     the same domains as `grep -F` patterns that match a
                       log line exactly when the sensor would: " d. " or ".d. "
  OUT/queries.log      LINES lines of Unbound `log-queries` output
  OUT/expected.json    how many lines query a listed name, counted here,
                       independently of the sensor

The name mix: most lookups go to a Zipf-distributed pool of popular names
(www., api., cdn. … under .com, .vn, .com.vn, .net …), the rest to a long
tail of random names; HIT_RATE of the lines ask for a listed domain or one
of its subdomains. Clients are spread over 10.0.0.0/8 and 113.160.0.0/14.
"""
import json
import os
import random
import string
import sys

LINES = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
DOMAINS = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
IPS = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
HIT_RATE = 0.001
OUT = sys.argv[1] if len(sys.argv) > 1 else "target/bench-sensor"

rng = random.Random(20261125)
TLDS = ["com"] * 40 + ["vn"] * 10 + ["com.vn"] * 15 + ["net"] * 10 + ["org"] * 5 + \
       ["io", "xyz", "top", "info", "edu.vn", "gov.vn", "net.vn", "cn", "ru", "de"] * 2
PREFIXES = ["www", "api", "cdn", "m", "static", "img", "mail", "login", "graph", "edge"]
QTYPES = ["A"] * 6 + ["AAAA"] * 3 + ["HTTPS", "MX", "TXT"]
ALNUM = string.ascii_lowercase + string.digits


def label(lo, hi):
    n = rng.randint(lo, hi)
    return rng.choice(string.ascii_lowercase) + "".join(rng.choice(ALNUM) for _ in range(n - 1))


def main():
    os.makedirs(OUT, exist_ok=True)
    listed = set()
    while len(listed) < DOMAINS:
        listed.add(f"{label(6, 14)}.{rng.choice(TLDS)}")
    listed = sorted(listed)
    ips = set()
    while len(ips) < IPS:
        # Outside the client ranges, so no log line contains one.
        ips.add(f"{rng.randint(185, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    with open(f"{OUT}/indicators.txt", "w") as f:
        for d in listed:
            f.write(d + "\n")
        for ip in sorted(ips):
            f.write(ip + "\n")
    with open(f"{OUT}/patterns.txt", "w") as f:
        for d in listed:
            f.write(f" {d}. \n.{d}. \n")

    listed_set = set(listed)
    popular = []
    while len(popular) < 20_000:
        base = f"{label(4, 12)}.{rng.choice(TLDS)}"
        if base in listed_set:
            continue
        popular.append(base)
        for p in rng.sample(PREFIXES, rng.randint(1, 4)):
            popular.append(f"{p}.{base}")
    weights = [1.0 / (i + 1) for i in range(len(popular))]
    clients = [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(30_000)] + \
              [f"113.{rng.randint(160, 163)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(30_000)]

    hits = 0
    t0 = 1764032400  # 2025-11-25T01:00:00Z
    block = 100_000
    with open(f"{OUT}/queries.log", "w") as f:
        written = 0
        while written < LINES:
            n = min(block, LINES - written)
            names = rng.choices(popular, weights=weights, k=n)
            out = []
            for i in range(n):
                r = rng.random()
                if r < HIT_RATE:
                    d = rng.choice(listed)
                    name = d if rng.random() < 0.5 else f"{rng.choice(PREFIXES)}.{d}"
                    hits += 1
                elif r < 0.30:
                    # The long tail: random names, some under popular bases.
                    name = f"{label(3, 20)}.{rng.choice(TLDS)}"
                    if name in listed_set or name.split(".", 1)[1] in listed_set:
                        name = "x" + name
                else:
                    name = names[i]
                ts = t0 + (written + i) // 3000
                out.append(f"[{ts}] unbound[1811:0] info: {rng.choice(clients)} {name}. {rng.choice(QTYPES)} IN\n")
            f.write("".join(out))
            written += n
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump({"lines": LINES, "hit_lines": hits, "domains": DOMAINS, "ips": IPS}, f)
    print(json.dumps({"lines": LINES, "hit_lines": hits}))


main()
