#!/usr/bin/env python3
"""Writes N unique, realistic-looking indicators, one per line, as a plain
feed list: mostly domains (DGA-like and word-like under common TLDs), some
IPv4 addresses and CIDRs, some URLs. Deterministic for a given seed.

    bench/gen-indicators.py 1000000 > target/bench/indicators.txt
"""
import random
import sys

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 42)
    tlds = ["com", "net", "org", "vn", "com.vn", "info", "xyz", "top", "ru", "cn", "io", "online"]
    words = ["secure", "login", "update", "bank", "viet", "pay", "cdn", "api", "mail", "shop",
             "cloud", "app", "verify", "account", "service", "data", "news", "free", "gift", "zalo"]
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    out = sys.stdout
    buf = []
    for i in range(n):
        r = rng.random()
        if r < 0.80:
            if rng.random() < 0.5:
                label = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 16)))
            else:
                label = f"{rng.choice(words)}-{rng.choice(words)}{i % 9973}"
            sub = f"{rng.choice(words)}." if rng.random() < 0.3 else ""
            buf.append(f"{sub}{label}{i:x}.{rng.choice(tlds)}")
        elif r < 0.92:
            buf.append(f"{(i >> 16) % 223 + 1}.{(i >> 8) % 256}.{i % 256}.{rng.randint(1, 254)}")
        elif r < 0.94:
            buf.append(f"{(i >> 16) % 223 + 1}.{(i >> 8) % 256}.{i % 256}.0/24")
        else:
            buf.append(f"http://{rng.choice(words)}{i:x}.{rng.choice(tlds)}/{rng.choice(words)}/{i}.php")
        if len(buf) >= 10000:
            out.write("\n".join(buf)); out.write("\n"); buf.clear()
    if buf:
        out.write("\n".join(buf)); out.write("\n")

if __name__ == "__main__":
    main()
