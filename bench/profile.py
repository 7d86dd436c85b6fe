#!/usr/bin/env python3
"""Profile supagate under load: one scenario, pinned as in bench/run.sh, with `perf record`
(call graphs) on the supagate process, plus its CPU per request and syscalls per request.

    python3 bench/profile.py [scenario] [seconds]    # default get_items_hs256, 10 s
    PROFILE_TOOL=callgrind python3 bench/profile.py  # instructions per request instead

`callgrind` counts user-space instructions, which do not depend on what else the machine is
doing: the way to compare two builds on a busy machine (the kernel's share is not counted).
PROFILE_PRELOAD=/path/lib.so runs supagate with that library preloaded (an allocator).

Needs a built binary (BENCH_SUPAGATE_BIN, default target/release/supagate; build the
`profiling` profile for symbols: cargo build --profile profiling, then
BENCH_SUPAGATE_BIN=target/profiling/supagate), nginx, wrk and perf. Writes perf.data and a
flat report (`perf report --no-children`) into the run directory it prints.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RUN = tempfile.mkdtemp(prefix="supagate-profile.")
os.environ["BENCH_RUN_DIR"] = RUN
os.environ.setdefault("BENCH_SCENARIOS", "none")  # no rate-limited instances
# valgrind and callgrind_control name their shared pipe after $USER: both must agree.
import pwd  # noqa: E402
os.environ.setdefault("USER", pwd.getpwuid(os.getuid()).pw_name)
import driver  # noqa: E402

scenario = sys.argv[1] if len(sys.argv) > 1 else "get_items_hs256"
seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
conns = int(os.environ.get("PROFILE_CONNS", "32"))


def callgrind(servers, t):
    """Instructions per request: instrumentation on only for `seconds` of load."""
    pid = servers["supagate"].pid
    driver.run_wrk(t, conns, 3, servers)  # warm-up under valgrind (JIT, pools, caches)
    # ... and after $HOST, which supagate's environment sets to its listen address.
    env = dict(os.environ, HOST="127.0.0.1")
    subprocess.run(["callgrind_control", "--instr=on", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    r = driver.run_wrk(t, conns, seconds, servers)
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    subprocess.run(["callgrind_control", "--instr=off", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    time.sleep(1)
    total = 0
    for name in os.listdir(RUN):
        if name.startswith("callgrind.out."):
            with open(os.path.join(RUN, name)) as f:
                for line in f:
                    if line.startswith("summary:") or line.startswith("totals:"):
                        total = max(total, int(line.split()[1]))
    print(f"{scenario}: {r['requests']} requests, {total / r['requests']:.0f} instructions "
          f"per request (callgrind, user space)")


def main():
    import json
    with open(os.path.join(driver.ROOT, "tests/fixtures/jwt.json")) as f:
        fixture = json.load(f)
    servers = {}
    try:
        ports = driver.start_servers(fixture, servers)
        sc = next(s for s in driver.scenarios(fixture, ports) if s["name"] == scenario)
        t = next(t for t in sc["targets"] if t["target"] in ("supagate", "fresh_token"))
        if os.environ.get("PROFILE_TOOL") == "callgrind":
            return callgrind(servers, t)
        driver.run_wrk(t, conns, 2, servers)  # warm-up
        pid = servers["supagate"].pid
        # PROFILE_CALLGRAPH=dwarf attributes libc's memmove to its Rust callers (libc has no
        # frame pointers); fp (the default) is cheaper and enough for Rust-only stacks.
        graph = os.environ.get("PROFILE_CALLGRAPH", "fp")
        perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", graph, "-p",
                                 str(pid), "-o", os.path.join(RUN, "perf.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        strace = None
        if os.environ.get("PROFILE_STRACE") == "1":
            strace = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o",
                                       os.path.join(RUN, "strace.txt")])
        time.sleep(0.5)
        r = driver.run_wrk(t, conns, seconds, servers)
        for p in (perf, strace):
            if p:
                p.send_signal(2)
                p.wait(timeout=60)
        cpu = r["cpu_s"].get("supagate", 0) / r["requests"] * 1e6
        print(f"{scenario}: {r['rps']:.0f} req/s, supagate {cpu:.1f} µs CPU/req "
              f"(perf running), upstream calls/req {r.get('upstream_calls')}")
        with open(os.path.join(RUN, "report.txt"), "w") as out:
            subprocess.run(["perf", "report", "-i", os.path.join(RUN, "perf.data"),
                            "--no-children", "--stdio", "--percent-limit", "0.4",
                            "-g", "none", "--sort", "dso,symbol"], stdout=out,
                           stderr=subprocess.DEVNULL)
        print(f"report: {RUN}/report.txt")
    finally:
        for s in servers.values():
            s.stop()


if __name__ == "__main__":
    main()
