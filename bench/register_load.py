#!/usr/bin/env python3
"""REGISTER-with-digest load against sipd over UDP with sipp. Run through register-load.sh.

    python3 register_load.py --sipd target/release/sipd --db sqlite|postgres
        [--endpoints 10000] [--rates 1000,2000,...] [--seconds 5] [--memory-bindings 100000]

Phase 1 (rate steps): a scratch database, N endpoints created through the REST API, every
endpoint registered once (warm-up), then for each rate one sipp run of rate x seconds calls,
with --cooldown idle seconds between steps (sipd holds each server transaction 32 s after
its final response, at most 100,000 per shard: see --cooldown)
(REGISTER -> 401 -> REGISTER with Authorization -> 200; the injection file cycles through the N
users, so most steps are refreshes of live bindings). Per step it prints the rate offered and
achieved, failed calls, UDP retransmissions, p50/p99/max of the whole exchange (first REGISTER
sent to 200 received, from sipp's -trace_rtt), and the CPU used by sipp and by sipd.

Phase 2 (memory): a second scratch database; M endpoints created, sipd restarted (a fresh
process is the baseline), all M registered with a long expiry (7200 s), VmRSS read right after,
again once every transaction has ended, and again after a restart reloaded the bindings.

All traffic is on 127.0.0.1; every sipp run is bounded in calls and time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop", "sip"))
import sipd_harness as h  # noqa: E402

SCENARIO = os.path.join(HERE, "..", "tests", "interop", "sip", "sipp", "register.xml")
DOMAIN = "bench.sipd.test"
SIP_PORT = 16060
SIPP_PORT = 26060
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def postgres_cpu_seconds():
    """CPU time of every local process named postgres (the server under test, when local)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        if name.startswith("postgres"):
            fields = raw.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def write_csv(path, users):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for name, (_, pw) in sorted(users.items()):
            f.write(f"{name};[authentication username={name} password={pw}]\n")


def run_sipp(workdir, tag, csv, rate, calls, expires, timeout_s):
    """One bounded sipp run. Returns a dict of results."""
    out = os.path.join(workdir, tag)
    os.makedirs(out, exist_ok=True)
    cmd = [
        "sipp", f"127.0.0.1:{SIP_PORT}", "-sf", SCENARIO, "-inf", csv,
        "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(max(1000, rate)),
        "-i", "127.0.0.1", "-p", str(SIPP_PORT), "-t", "u1",
        "-key", "domain", DOMAIN, "-key", "expires", str(expires),
        "-nostdin", "-recv_timeout", "5000", "-timeout", f"{timeout_s}s", "-timeout_error",
        "-trace_err", "-error_file", os.path.join(out, "errors.log"),
        "-trace_stat", "-stf", os.path.join(out, "stat.csv"), "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1",
        "-buff_size", str(4 * 1024 * 1024),
    ]
    started = time.monotonic()
    with open(os.path.join(out, "stdout.log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = started + timeout_s + 30
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)  # poll interval for sipp's exit, bounded by the deadline
    wall = time.monotonic() - started
    rc = os.waitstatus_to_exitcode(status)
    stat = h_stat(os.path.join(out, "stat.csv"))
    rtts, times = [], []
    for name in os.listdir(out):
        if name.endswith("_rtt.csv"):
            with open(os.path.join(out, name)) as f:
                for line in f:
                    parts = line.strip().split(";")
                    if len(parts) >= 3 and parts[0][:1].isdigit():
                        times.append(float(parts[0]))
                        rtts.append(float(parts[1]))
    rtts.sort()
    times.sort()
    achieved = (len(times) - 1) / ((times[-1] - times[0]) / 1000) if len(times) > 1 and times[-1] > times[0] else 0
    first_error = ""
    try:
        with open(os.path.join(out, "errors.log"), errors="replace") as f:
            for line in f:
                if "Aborting" in line or "rror" in line or "timeout" in line.lower():
                    first_error = line.strip()[:200]
                    break
    except OSError:
        pass
    return {
        "rc": rc,
        "wall_s": wall,
        "sipp_cpu_s": rusage.ru_utime + rusage.ru_stime,
        "successful": int(stat.get("SuccessfulCall(C)", "0") or 0),
        "failed": int(stat.get("FailedCall(C)", "0") or 0),
        "retrans": int(stat.get("Retransmissions(C)", "0") or 0),
        "achieved": achieved,
        "p50": percentile(rtts, 50),
        "p99": percentile(rtts, 99),
        "max": rtts[-1] if rtts else float("nan"),
        "rtt_samples": len(rtts),
        "first_error": first_error,
    }


def h_stat(path):
    try:
        with open(path, errors="replace") as f:
            rows = [line.rstrip("\n").split(";") for line in f if line.strip()]
    except OSError:
        return {}
    return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}


class Server:
    """sipd on a scratch database (SQLite file or a PostgreSQL database created here)."""

    def __init__(self, args, workdir, tag):
        self.args, self.workdir, self.tag = args, workdir, tag
        self.pg_db = None
        os.makedirs(workdir, exist_ok=True)
        if args.db == "postgres":
            self.pg_db = f"sipd_bench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            psql(f'CREATE DATABASE "{self.pg_db}"')
            url = f"{PG_SERVER}/{self.pg_db}"
        else:
            url = "sqlite://data/sipd.db"
        self.sipd = h.Sipd(args.sipd, workdir, url, DOMAIN, {"udp": f"127.0.0.1:{SIP_PORT}"},
                           # Default settings: the MD5 challenge sipp 3.6 can answer.
                           extra_env={"SIPD_LOG_LEVEL": args.log_level})

    def start(self):
        self.auth = self.sipd.create_account("bench")
        self.sipd.start()
        self.sipd.wait_sip_ready(timeout=60)
        self.api = h.Api(self.sipd.api_host, self.sipd.api_port, *self.auth)
        return self

    def restart(self):
        """A new sipd process on the same database (it reloads the bindings at start)."""
        self.sipd.stop()
        self.sipd.start()
        self.sipd.wait_sip_ready(timeout=60)
        self.api = h.Api(self.sipd.api_host, self.sipd.api_port, *self.auth)

    def stop(self):
        code = self.sipd.stop()
        if self.pg_db:
            psql(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
        return code


def psql(sql):
    subprocess.run(["psql", f"{PG_SERVER}/postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                   check=True, timeout=120)


def create_users(api, count, start=0):
    t0 = time.monotonic()
    users = h.create_endpoints(api, count, prefix="b", workers=8, start=start)
    elapsed = time.monotonic() - t0
    print(f"  created {count} endpoints through the API in {elapsed:.1f}s ({count / elapsed:.0f}/s)", flush=True)
    return users


def warning_summary(log_path, top=6):
    """The most frequent WARN/ERROR messages in sipd's log (message text, fields stripped)."""
    counts = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = re.search(r"\s(WARN|ERROR)\s+(\S+):\s+(.*)", line)
                if not m:
                    continue
                text = re.split(r"\s\w+=", m.group(3), maxsplit=1)[0].strip()
                key = f"{m.group(1)} {m.group(2)}: {text[:100]}"
                counts[key] = counts.get(key, 0) + 1
    except OSError:
        return []
    return sorted(counts.items(), key=lambda kv: -kv[1])[:top]


def print_warnings(server):
    for text, count in warning_summary(server.sipd.log_path):
        print(f"  sipd log: {count:>7} x {text}", flush=True)


def fmt_ms(v):
    return "-" if v != v else f"{v:.1f}"


def rate_steps(args, root):
    print(f"== phase 1: rate steps on {args.db}, {args.endpoints} endpoints, {args.seconds}s per step, "
          f"{args.cooldown:g}s idle between steps", flush=True)
    server = Server(args, os.path.join(root, "steps"), "steps")
    results = []
    try:
        server.start()
        users = create_users(server.api, args.endpoints)
        csv = os.path.join(server.workdir, "users.csv")
        write_csv(csv, users)
        warm = run_sipp(server.workdir, "warmup", csv, min(2000, args.endpoints), args.endpoints,
                        3600, timeout_s=max(60, args.endpoints // 500 + 30))
        print(f"  warm-up: {args.endpoints} registrations, {warm['successful']} ok, {warm['failed']} failed, "
              f"p99 {fmt_ms(warm['p99'])} ms", flush=True)
        header = (f"  {'offered/s':>9} {'achieved/s':>10} {'calls':>7} {'failed':>6} {'retrans':>7} "
                  f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'sipp CPU':>8} {'sipd CPU':>8}"
                  + (f" {'PG CPU':>7}" if args.db == "postgres" else ""))
        print(header, flush=True)
        for index, rate in enumerate(args.rates):
            if args.cooldown and index:
                # Not a wait for an event: a designed idle interval. sipd keeps every non-INVITE
                # server transaction for Timer J (64 x T1 = 32 s over UDP) after its final
                # response, at most 100,000 per shard, and one UDP flow (sipp's) is one shard;
                # without the pause, step N inherits step N-1's transactions and hits 503.
                time.sleep(args.cooldown)
            calls = rate * args.seconds
            cpu0 = proc_cpu_seconds(server.sipd.pid())
            pg0 = postgres_cpu_seconds() if args.db == "postgres" else 0.0
            # One folder per step: sipp's RTT files of a repeated rate must not add up.
            r = run_sipp(server.workdir, f"step{index + 1}-{rate}", csv, rate, calls, 3600,
                         timeout_s=args.seconds * 4 + 20)
            sipd_cpu = proc_cpu_seconds(server.sipd.pid()) - cpu0
            pg_cpu = (postgres_cpu_seconds() - pg0) if args.db == "postgres" else 0.0
            r.update(rate=rate, calls=calls,
                     sipp_cpu_pct=100 * r["sipp_cpu_s"] / r["wall_s"],
                     sipd_cpu_pct=100 * sipd_cpu / r["wall_s"],
                     postgres_cpu_pct=100 * pg_cpu / r["wall_s"])
            r["failed"] += max(0, calls - r["successful"] - r["failed"])  # calls never started or lost
            results.append(r)
            print(f"  {rate:>9} {r['achieved']:>10.0f} {calls:>7} {r['failed']:>6} {r['retrans']:>7} "
                  f"{fmt_ms(r['p50']):>7} {fmt_ms(r['p99']):>7} {fmt_ms(r['max']):>7} "
                  f"{r['sipp_cpu_pct']:>7.0f}% {r['sipd_cpu_pct']:>7.0f}%"
                  + (f" {r['postgres_cpu_pct']:>6.0f}%" if args.db == "postgres" else "")
                  + (f"  [{r['first_error']}]" if r["failed"] and r["first_error"] else ""), flush=True)
            if server.sipd.process.poll() is not None:
                print("  sipd exited during the step!", flush=True)
                break
    finally:
        code = server.stop()
        print(f"  sipd stopped (exit code {code})", flush=True)
        print_warnings(server)
    # A step counts only if every call succeeded AND the offered rate was actually carried
    # (sipp falls behind, retransmitting, when sipd answers late).
    clean = [r for r in results if r["failed"] == 0 and r["rc"] == 0 and r["achieved"] >= 0.95 * r["rate"]]
    best = max((r["rate"] for r in clean), default=None)
    best_p99 = max((r["rate"] for r in clean if r["p99"] < 20), default=None)
    print(f"  highest offered rate carried (>= 95 %) with zero failures: {best if best else 'none'}/s"
          + (f" (achieved {next(r['achieved'] for r in clean if r['rate'] == best):.0f}/s)" if best else ""),
          flush=True)
    print(f"  same, and p99 < 20 ms: {best_p99 if best_p99 else 'none'}/s",
          flush=True)
    return results


def memory(args, root):
    m = args.memory_bindings
    print(f"== phase 2: memory per binding on {args.db}, {m} bindings (expires 7200 s)", flush=True)
    server = Server(args, os.path.join(root, "memory"), "memory")
    try:
        server.start()
        users = create_users(server.api, m)
        csv = os.path.join(server.workdir, "users.csv")
        write_csv(csv, users)
        # A fresh process, so the baseline holds nothing the API phase left in the allocator.
        server.restart()
        rss0 = server.sipd.rss_kib()
        rate = args.memory_rate
        r = run_sipp(server.workdir, "memory", csv, rate, m, 7200, timeout_s=m // rate * 4 + 60)
        listed = server.api.request("GET", "/Endpoint/?limit=1")["meta"]["total_count"]
        rss1 = server.sipd.rss_kib()
        n = max(1, r["successful"])
        print(f"  registered {r['successful']} ({r['failed']} failed) at {rate}/s; endpoints {listed}", flush=True)
        print(f"  VmRSS of a fresh sipd {rss0} KiB; right after the registrations {rss1} KiB: "
              f"{(rss1 - rss0) * 1024 / n:.0f} B per binding (with the ~{rate * 32} REGISTER "
              f"transactions still held for Timer J)", flush=True)
        # A designed idle interval, not a wait for an event: Timer J (32 s) ends every
        # transaction, and the allocator returns the freed pages within seconds.
        time.sleep(args.memory_idle)
        rss2 = server.sipd.rss_kib()
        print(f"  {args.memory_idle:g} s later (no transaction left): {rss2} KiB: "
              f"{(rss2 - rss0) * 1024 / n:.0f} B per binding (bindings + credential cache)", flush=True)
        server.restart()
        rss3 = server.sipd.rss_kib()
        print(f"  after a restart that reloaded the bindings: {rss3} KiB: "
              f"{(rss3 - rss0) * 1024 / n:.0f} B per binding (bindings only)", flush=True)
        return {"rss_fresh_kib": rss0, "rss_after_kib": rss1, "rss_idle_kib": rss2, "rss_reloaded_kib": rss3,
                "bindings": r["successful"], "failed": r["failed"],
                "bytes_per_binding_idle": (rss2 - rss0) * 1024 / n,
                "bytes_per_binding_reloaded": (rss3 - rss0) * 1024 / n}
    finally:
        code = server.stop()
        print(f"  sipd stopped (exit code {code})", flush=True)
        print_warnings(server)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sipd", required=True)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--endpoints", type=int, default=10000)
    p.add_argument("--rates", default="1000,2000,4000,6000,8000,10000,12000")
    p.add_argument("--seconds", type=int, default=5, help="length of each rate step (calls = rate x seconds)")
    p.add_argument("--memory-bindings", type=int, default=100000, help="0 skips the memory phase")
    p.add_argument("--memory-rate", type=int, default=2000,
                   help="below sipd's sustainable rate on one flow (sip.max_transactions / 32 s)")
    p.add_argument("--memory-idle", type=float, default=45,
                   help="idle seconds before the memory reading (Timer J + the allocator's return)")
    p.add_argument("--cooldown", type=float, default=33,
                   help="idle seconds between rate steps (Timer J + 1 s); 0 runs them back to back")
    p.add_argument("--log-level", default="warn,sipd::serve=info,sipd::sip=info",
                   help="sipd log filter during the benchmark (start-up lines are needed)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (sipd and sipp logs)")
    args = p.parse_args()
    args.rates = [int(x) for x in args.rates.split(",") if x]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = tempfile.mkdtemp(prefix="sipd-register-load-")
    print(f"scratch {root}; sipd {args.sipd}; load average {os.getloadavg()[0]:.2f}", flush=True)
    ok = False
    try:
        steps = rate_steps(args, root) if args.rates else []
        mem = memory(args, root) if args.memory_bindings else None
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"db": args.db, "steps": steps, "memory": mem}, f, indent=1)
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
