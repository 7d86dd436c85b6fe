#!/usr/bin/env python3
"""Reads against the hop, in one interleaved run pinned as in bench/run.sh: the uncached
list beside the bare framework floor, and the read cache and conditional reads beside the
hop's proxied category read.

    python3 bench/cache.py [seconds] [rounds]     # default 5 s x 3 rounds, ~4 min

Targets (supagate: the release build, production config, so the default read cache holds
the category reads; access log on):
- `hop_items`, `supagate_items_hs256`, `supagate_items_es256`, `floor_actix`: `GET
  /api/items?limit=20` (the hop: the same upstream request), and bench/floor's bare actix-web
  forward of it (see floor.py), so supagate's own work is supagate minus floor_actix;
- `hop_categories`: the hop proxying the category list request supagate would send;
- `supagate_categories`: `GET /api/categories`, HS256 token, served from the warm cache;
- `supagate_304`: the same with `If-None-Match` naming the answer's `ETag` (a 304, no body);
- `floor_static`: bench/floor's bare actix-web answering the same category page (its bytes,
  JSON, an `ETag`) from memory: the framework's own cost of a cached read.
Needs nginx and wrk (bench/run.sh installs them); builds bench/floor if its binary is missing.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RUN = tempfile.mkdtemp(prefix="supagate-cache.")
os.environ["BENCH_RUN_DIR"] = RUN
os.environ.setdefault("BENCH_SCENARIOS", "none")  # no rate-limited or inline instances
import driver  # noqa: E402

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
conns = int(os.environ.get("BENCH_CACHE_CONNS", "32"))
CATEGORY_SELECT = "/rest/v1/categories?select=id%2Cname%2Cslug&order=name.asc%2Cid.asc"


def main():
    floor_bin = driver.floor_bin()
    load_before = driver.loadavg()
    with open(os.path.join(driver.ROOT, "tests/fixtures/jwt.json")) as f:
        fixture = json.load(f)
    hs = fixture["tokens"]["valid_hs256"]["token"]
    servers = {}
    succeeded = False
    try:
        ports = driver.start_servers(fixture, servers)
        bearer = [("Authorization", f"Bearer {hs}")]
        categories = dict(server="supagate", port=ports["supagate"], method="GET",
                          path="/api/categories", headers=bearer)
        # The floor answers the same category page from memory: the bare actix cost of a
        # cached read.
        status, _, page = driver.http(ports["supagate"], "GET", "/api/categories", bearer, None)
        if status != 200:
            raise RuntimeError(f"/api/categories answered {status}: {page[:300]!r}")
        static_body = os.path.join(RUN, "categories.json")
        with open(static_body, "wb") as f:
            f.write(page)
        floor_port = driver.free_ports(1)[0]
        servers["floor_actix"] = driver.Proc("floor_actix", driver.pinned(
            [floor_bin, "actix", str(floor_port), str(ports["standin"]), driver.UPSTREAM_LIST,
             driver.ANON_KEY], driver.SERVICE_CPU),
            env=dict(os.environ, FLOOR_STATIC_BODY=static_body))
        driver.wait_port(floor_port, servers["floor_actix"])
        scs = {s["name"]: s for s in driver.scenarios(fixture, ports)}
        hs_items = {t["target"]: t for t in scs["get_items_hs256"]["targets"]}
        es_items = {t["target"]: t for t in scs["get_items_es256"]["targets"]}
        targets = [
            dict(hs_items["hop"], target="hop_items", server="hop"),
            dict(hs_items["supagate"], target="supagate_items_hs256", server="supagate"),
            dict(es_items["supagate"], target="supagate_items_es256", server="supagate"),
            dict(hs_items["supagate"], target="floor_actix", server="floor_actix",
                 port=floor_port),
            dict(target="hop_categories", server="hop", port=ports["hop"], method="GET",
                 path=CATEGORY_SELECT,
                 headers=[("apikey", driver.ANON_KEY), ("Authorization", f"Bearer {hs}"),
                          ("Accept", "application/json"), ("Prefer", "count=exact")]),
            dict(categories, target="supagate_categories"),
            dict(categories, target="floor_static", server="floor_actix", port=floor_port),
        ]
        status, headers, body = driver.preflight(categories)
        etag = {k.lower(): v for k, v in dict(headers).items()}.get("etag")
        if status != 200 or not etag:
            raise RuntimeError(f"/api/categories answered {status} without an ETag: {body}")
        targets.append(dict(categories, target="supagate_304",
                            headers=bearer + [("If-None-Match", etag)]))
        for t in targets:
            status, _, body = driver.preflight(t)
            expected = 304 if t["target"] == "supagate_304" else 200
            if not 200 <= status < 300 and status != expected:
                raise RuntimeError(f"{t['target']} answered {status}: {body}")
            driver.run_wrk(t, conns, 1, servers)  # warm-up (and the cache)
        runs = driver.interleaved(targets, conns, seconds, rounds, servers)
        med = {name: (driver.med([x["cpu_us"] for x in rs]), driver.med([x["rps"] for x in rs]))
               for name, rs in runs.items()}
        lines = [
            f"`python3 bench/cache.py {seconds} {rounds}`, {conns} connections, load before "
            f"{load_before}",
            "",
            "| target | req/s | CPU µs/req | upstream calls/req | vs | CPU ÷ | req/s ÷ | errors |",
            "|---|---:|---:|---:|---|---:|---:|---:|",
        ]
        against = {"supagate_items_hs256": "hop_items", "supagate_items_es256": "hop_items",
                   "floor_actix": "hop_items", "supagate_categories": "hop_categories",
                   "supagate_304": "hop_categories", "floor_static": "hop_categories"}
        for t in targets:
            name = t["target"]
            cpu, rps = med[name]
            ups = driver.med([x["upstream"] for x in runs[name] if x["upstream"] is not None] or [0])
            errors = sum(x["errors"] for x in runs[name])
            base = against.get(name)
            ratio = (f"{base} | {cpu / med[base][0]:.2f} | {rps / med[base][1]:.2f}"
                     if base else "| | ")
            lines.append(f"| {name} | {rps:.0f} | {cpu:.1f} | {ups:.2f} | {ratio} | {errors} |")
        floor = med["floor_actix"][0]
        for name in ("supagate_items_hs256", "supagate_items_es256"):
            lines.append(f"\n{name}: {med[name][0] - floor:.1f} µs CPU per request over the "
                         "bare actix floor")
        for name in ("supagate_categories", "supagate_304"):
            lines.append(f"\n{name}: {med[name][0] - med['floor_static'][0]:.1f} µs CPU per "
                         "request over bare actix answering the same page from memory")
        text = "\n".join(lines)
        print(text)
        succeeded = True
    finally:
        for s in servers.values():
            s.stop()
        driver.close_run_dir(succeeded)


if __name__ == "__main__":
    main()
