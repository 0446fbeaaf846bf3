"""Synthetic events for tools/bench-personal.sh: EVENTS events by USERS
users over the items of tools/datagen's META.csv (id, price, category; the
category follows the vector's cluster, so taste follows content), seed 7.

Each user has 3 favourite categories; an event's item is from one of them
(70 %) or anywhere, Zipf-skewed within; types 60 % view, 20 % click,
10 % add_to_cart, 10 % purchase; times over the 60 days before yesterday.

    python3 tools/bench-personal-events.py META.csv OUT.csv USERS EVENTS
"""
import csv
import random
import sys
import time

meta, out, users, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
ids, by_category = [], {}
with open(meta) as f:
    for row in csv.DictReader(f):
        ids.append(row["id"])
        by_category.setdefault(row["category"], []).append(row["id"])
groups = sorted(by_category.values())
items = len(ids)
clusters = len(groups)
now = int(time.time())
types = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase"]
favs = [[rng.randrange(clusters) for _ in range(3)] for _ in range(users)]


def zipf(n):
    # ln(i + 1) / ln(n + 1) is the CDF of Zipf with s = 1.
    import math
    return min(n - 1, max(0, int(math.exp(rng.random() * math.log(n + 1))) - 1))


with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["user_id", "item_id", "type", "timestamp"])
    for _ in range(events):
        u = rng.randrange(users)
        if rng.random() < 0.7:
            pool = groups[favs[u][rng.randrange(3)]]
            item = pool[zipf(len(pool))]
        else:
            item = ids[zipf(items)]
        t = now - 86400 - rng.randrange(60 * 86400)
        w.writerow([f"u{u}", item, rng.choice(types),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))])
