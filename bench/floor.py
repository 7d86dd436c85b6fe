#!/usr/bin/env python3
"""The framework floor: CPU per proxied GET of the bare server stacks, beside the
nginx hop and supagate, in one interleaved run pinned as in bench/run.sh.

    python3 bench/floor.py [seconds] [rounds]     # default 5 s x 3 rounds, ~2 min

Targets, all serving the same `GET /api/items?limit=20` from the same stand-in:
- `hop`: the nginx reverse proxy (as in bench/run.sh);
- `supagate`: the release build, production config, access log on (as in bench/run.sh);
- `floor_actix`: bench/floor's actix-web server, one worker, forwarding through hyper-util's
  pooled client (supagate's transport) with supagate's upstream headers; nothing else;
- `floor_hyper`: the same forward on hyper's own HTTP/1 server, one thread.

So supagate ÷ floor_actix is what supagate's own work costs on its stack, and
floor_actix ÷ hop is what the stack costs before any of it. Builds bench/floor (its own
workspace, from its own Cargo.lock) if its binary is missing. Needs nginx and wrk (bench/run.sh installs them).
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RUN = tempfile.mkdtemp(prefix="supagate-floor.")
os.environ["BENCH_RUN_DIR"] = RUN
os.environ.setdefault("BENCH_SCENARIOS", "none")  # no rate-limited or inline instances
import driver  # noqa: E402

seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
conns = int(os.environ.get("FLOOR_CONNS", "32"))


def main():
    floor_bin = driver.floor_bin()
    load_before = driver.loadavg()
    with open(os.path.join(driver.ROOT, "tests/fixtures/jwt.json")) as f:
        fixture = json.load(f)
    servers = {}
    succeeded = False
    try:
        ports = driver.start_servers(fixture, servers)
        floor_ports = dict(zip(("floor_actix", "floor_hyper"), driver.free_ports(2)))
        for name, port in floor_ports.items():
            stack = name.split("_")[1]
            servers[name] = driver.Proc(name, driver.pinned(
                [floor_bin, stack, str(port), str(ports["standin"]), driver.UPSTREAM_LIST,
                 driver.ANON_KEY], driver.SERVICE_CPU))
            driver.wait_port(port, servers[name])
        sc = next(s for s in driver.scenarios(fixture, ports) if s["name"] == "get_items_hs256")
        by_name = {t["target"]: t for t in sc["targets"]}
        supagate = by_name["supagate"]
        targets = [by_name["hop"], supagate] + [
            dict(supagate, target=name, port=port) for name, port in floor_ports.items()]
        for t in targets:
            status, _, body = driver.preflight(t)
            if not 200 <= status < 300:
                raise RuntimeError(f"{t['target']} answered {status}: {body}")
            driver.run_wrk(t, conns, 1, servers)  # warm-up
        runs = driver.interleaved(targets, conns, seconds, rounds, servers)
        hop_cpu = driver.med([x["cpu_us"] for x in runs["hop"]])
        hop_rps = driver.med([x["rps"] for x in runs["hop"]])
        lines = [
            f"`python3 bench/floor.py {seconds} {rounds}`, {conns} connections, load before "
            f"{load_before}",
            "",
            "| target | req/s | CPU µs/req | CPU ÷ hop | req/s ÷ hop | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for t in targets:
            name = t["target"]
            cpu = driver.med([x["cpu_us"] for x in runs[name]])
            rps = driver.med([x["rps"] for x in runs[name]])
            errors = sum(x["errors"] for x in runs[name])
            lines.append(f"| {name} | {rps:.0f} | {cpu:.1f} | {cpu / hop_cpu:.2f} | "
                         f"{rps / hop_rps:.2f} | {errors} |")
        text = "\n".join(lines)
        print(text)
        succeeded = True
    finally:
        for s in servers.values():
            s.stop()
        driver.close_run_dir(succeeded)


if __name__ == "__main__":
    main()
