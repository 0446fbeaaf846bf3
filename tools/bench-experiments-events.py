"""Event bodies for tools/bench-experiments.sh: asks URL's catalog `shop`
for 2,000 `recommend/similar` answers (random items and users, as shoppers
would see them), then writes BODIES lines to OUT, each a `POST /events`
body of 500 events, seed 7:

- 30 % clicks, 10 % add-to-carts and 10 % purchases of an item an answer
  showed, citing its `recommendation_id` (attributed), by its user, now;
- 5 % clicks citing an answer for an item it did not show (unattributed);
- 25 % views and 20 % purchases without an id, by random users, at random
  times over the past 365 days (the analytics year), priced.

No `event_id`: the bodies are sent over and over, and each send is new.

    python3 tools/bench-experiments-events.py URL OUT BODIES
"""
import json
import random
import sys
import time
import urllib.request

url, out, bodies = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)
ITEMS = 20000


def post(path, body):
    req = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


answers = []
for _ in range(2000):
    user = "u%d" % rng.randrange(100000)
    a = post(
        "/v1/catalogs/shop/recommend/similar",
        {"item_id": "s%d" % rng.randrange(ITEMS), "user_id": user, "k": 10, "with_attributes": False},
    )
    answers.append((user, a["recommendation_id"], [h["id"] for h in a["hits"]]))

now = time.time()


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


with open(out, "w") as f:
    for _ in range(bodies):
        events = []
        for _ in range(500):
            r = rng.random()
            if r < 0.55:
                user, rid, shown = rng.choice(answers)
                if r < 0.30:
                    kind = "click"
                elif r < 0.40:
                    kind = "add_to_cart"
                elif r < 0.50:
                    kind = "purchase"
                else:
                    kind = "click"
                item = rng.choice(shown) if r < 0.50 else "s%d" % rng.randrange(ITEMS)
                e = {"user_id": user, "item_id": item, "type": kind, "recommendation_id": rid}
                if kind == "purchase":
                    e["price"] = round(rng.lognormvariate(3, 0.8), 2)
            else:
                kind = "view" if r < 0.80 else "purchase"
                e = {
                    "user_id": "u%d" % rng.randrange(100000),
                    "item_id": "s%d" % rng.randrange(ITEMS),
                    "type": kind,
                    "timestamp": stamp(now - rng.random() * 365 * 86400),
                }
                if kind == "purchase":
                    e["price"] = round(rng.lognormvariate(3, 0.8), 2)
            events.append(e)
        f.write(json.dumps({"events": events}) + "\n")
