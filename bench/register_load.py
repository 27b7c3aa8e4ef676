#!/usr/bin/env python3
"""REGISTER-with-digest load over UDP with sipp: sipd and the Kamailio anchor side by side. Run
through register-load.sh.

    python3 register_load.py --sipd target/release/sipd [--servers sipd,kamailio]
        [--db sqlite|postgres] [--sockets one|per-phone|one,per-phone] [--endpoints 10000]
        [--rates 1000,2000,...] [--seconds 5] [--repeat RATE:COUNT] [--cooldown 33]
        [--memory-bindings 100000 | 0] [--kamailio-dir DIR] [--kamailio-dbmode 1] [--json FILE]

e.g. the issue's check: --db postgres --rates 4000,6000,8000 --repeat 8000:3 --seconds 60
--sockets one,per-phone --memory-bindings 0.

Phase 1 (rate steps), once per --sockets mode, each its own table: every server of --servers
(sipd on a scratch database, SQLite file or a PostgreSQL database created here; the Kamailio
anchor from shared/anchors/kamailio, its users in PostgreSQL, usrloc --kamailio-dbmode) is
started afresh with the same N users (u00001/pw00001..., sipd's through its REST API, their
passwords suffixed "-sip"; domain sip.test), every user registered once (warm-up, unmeasured),
then for each rate of --rates (then each --repeat, the decisive step again) one sipp run of
rate x seconds calls per server, the servers one after the other (sipd's step at a rate, then
Kamailio's, so both meet the same machine load), then a "sipd / kamailio" ratio row: achieved
rate, latencies and CPU (below 1 is better for sipd, except the achieved rate). A server idles
--cooldown seconds after its previous step (sipd holds each answered REGISTER 32 s, Timer J).
(REGISTER -> 401 -> REGISTER with Authorization -> 200; the injection file cycles through the N
users, so most calls are refreshes of live bindings, Expires 3600.) Sockets:
  one        sipp -t u1: every REGISTER from one UDP socket (one flow, like a proxy in front);
             Contact sip:uNNNNN@127.0.0.1:<that socket's port>.
  per-phone  sipp -t un: a UDP socket of its own per REGISTER exchange (opened for the call,
             closed when it ends: the nearest sipp comes to a socket per phone), so every
             exchange is its own flow; each user keeps one Contact (a port of its own, from
             the injection file) as a phone does, so refreshes replace its binding.
             sipp's -max_socket and -l are set under the open-files limit (raised to the hard
             limit here): concurrent calls at most about half of it.
Per step and server it prints the rate offered and achieved, failed calls (sipp's failures plus
calls never completed), UDP retransmissions, p50/p99/max of the whole exchange (first REGISTER
sent to 200 received, from sipp's -trace_rtt), and the CPU used by sipp, by the server (all of
Kamailio's processes) and by the local PostgreSQL. A rate counts as carried when every run of
it had no failure and achieved >= 95 % of the offered rate.

Phase 2 (memory, sipd only, when sipd is among --servers): a second scratch database; M
endpoints created, sipd restarted (a fresh process is the baseline), all M registered with a
long expiry (7200 s), VmRSS read right after, again once every transaction has ended, and again
after a restart reloaded the bindings.

All traffic is on 127.0.0.1; every sipp run is bounded in calls and time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop", "sip"))
import sip_tools as t  # noqa: E402
import sipd_harness as h  # noqa: E402

SCENARIO = os.path.join(HERE, "..", "tests", "interop", "sip", "sipp", "register.xml")
DOMAIN = t.KAMAILIO_DOMAIN  # the anchor's domain and realm; sipd serves the same
SIP_PORT = 16060  # sipd; Kamailio: t.KAMAILIO_PORT (25060, fixed by the anchor)
SIPP_PORT = 26060
SIPP_PORTS = {"sipd": SIPP_PORT, "kamailio": 26061}  # sipp's main socket, per server
SOCKETS = {"one": "u1", "per-phone": "un"}  # --sockets -> sipp -t
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


def write_step_csv(path, users):
    """users: [(name, password)]. Field 2 is the user's own Contact port (--sockets per-phone)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i, (name, pw) in enumerate(users):
            f.write(f"{name};[authentication username={name} password={pw}];{20000 + i % 40000}\n")
    return path


def per_phone_scenario(workdir):
    """register.xml with the Contact on the user's own port (field 2 of the injection file)
    instead of [local_port]: under -t un, [local_port] is the port of the call's fresh socket,
    so every REGISTER would add a binding (Kamailio's max_contacts 10 then answers 503)."""
    with open(SCENARIO) as f:
        text = f.read()
    old = "Contact: <sip:[field0]@[local_ip]:[local_port];"
    if text.count(old) != 2:
        raise SystemExit(f"{SCENARIO}: expected two '{old}' lines (the scenario changed?)")
    path = os.path.join(workdir, "register-per-phone.xml")
    with open(path, "w") as f:
        f.write(text.replace(old, "Contact: <sip:[field0]@[local_ip]:[field2];"))
    return path


def open_files_limit():
    """Raises this process's open-files soft limit to the hard limit (sipp inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def run_sipp(workdir, tag, csv, rate, calls, expires, timeout_s, *, port=SIP_PORT, local_port=SIPP_PORT,
             sockets="one", scenario=SCENARIO):
    """One bounded sipp run. Returns a dict of results."""
    out = os.path.join(workdir, tag)
    os.makedirs(out, exist_ok=True)
    limit = max(1000, rate)  # concurrent calls
    extra = []
    if sockets == "per-phone":
        # A socket per call: sipp refuses to start unless -max_socket <= the open-files limit,
        # and warns unless -max_socket + -l are under it; past -max_socket it would share
        # sockets between calls.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        limit = max(1, min(limit, nofile // 2 - 32))
        extra = ["-max_socket", str(nofile - limit - 32)]
    cmd = [
        "sipp", f"127.0.0.1:{port}", "-sf", scenario, "-inf", csv,
        "-m", str(calls), "-r", str(rate), "-rp", "1000", "-l", str(limit),
        "-i", "127.0.0.1", "-p", str(local_port), "-t", SOCKETS[sockets], *extra,
        "-key", "domain", DOMAIN, "-key", "expires", str(expires),
        "-nostdin", "-recv_timeout", "5000", "-timeout", f"{timeout_s}s", "-timeout_error",
        "-trace_err", "-error_file", os.path.join(out, "errors.log"),
        "-trace_stat", "-stf", os.path.join(out, "stat.csv"), "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1",
        "-buff_size", str(4 * 1024 * 1024),
    ]
    with open(os.path.join(out, "command.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    started = time.monotonic()
    fds_peak, next_fd_check = 0, started
    with open(os.path.join(out, "stdout.log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = started + timeout_s + 30
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now > deadline:
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            if now >= next_fd_check:  # sipp's open files (its sockets), once a second
                fds_peak = max(fds_peak, fd_count(proc.pid))
                next_fd_check = now + 1
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
        "sipp_max_calls": limit,
        "sipp_fds_peak": fds_peak,
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


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
    return total


class SipdTarget:
    """sipd for the rate steps: a Server with the anchor's user names (passwords + "-sip")."""

    name = "sipd"

    def __init__(self, args, workdir, tag):
        self.args, self.workdir = args, workdir
        self.port = SIP_PORT
        self.server = Server(args, workdir, tag)

    def users(self, count):
        return [t.user(i, sipd=True) for i in range(1, count + 1)]

    def start(self, count):
        self.server.start()
        api = self.server.api
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda user: api.create_endpoint(*user), self.users(count)))
        elapsed = time.monotonic() - t0
        return (f"sipd on {self.args.db}, {count} endpoints created through the API in {elapsed:.1f}s "
                f"({count / elapsed:.0f}/s)")

    def pids(self):
        return [self.server.sipd.pid()] if self.alive() else []

    def alive(self):
        return self.server.sipd.process is not None and self.server.sipd.process.poll() is None

    def stop(self):
        code = self.server.stop()
        print(f"  sipd stopped (exit code {code})", flush=True)
        print_warnings(self.server)


class KamailioTarget:
    """The Kamailio anchor (its start.sh empties its location table first)."""

    name = "kamailio"

    def __init__(self, args, workdir, count):
        self.workdir = workdir
        self.port = t.KAMAILIO_PORT
        os.makedirs(workdir, exist_ok=True)
        # Fewer users in its database than needed: sip_tools runs the anchor's setup-db.sh.
        self.kamailio = t.Kamailio(args.kamailio_dir, os.path.join(workdir, "kamailio"), count,
                                   dbmode=args.kamailio_dbmode)

    def users(self, count):
        return [t.user(i) for i in range(1, count + 1)]

    def start(self, count):
        return self.kamailio.start()

    def pids(self):
        return self.kamailio.pids()

    def alive(self):
        return self.kamailio.alive()

    def stop(self):
        # Read before stopping: its shutdown logs errors of its own (children losing a pipe).
        errors = [l for l in self.kamailio.tail_log(2000).splitlines() if "ERROR" in l or "CRITICAL" in l]
        code = self.kamailio.stop()
        print(f"  kamailio stopped (stop.sh exit code {code})", flush=True)
        for line in errors[-3:]:
            print(f"  kamailio log: {line[:200]}", flush=True)
        if errors:
            print(f"  kamailio log: {len(errors)} ERROR/CRITICAL lines in the last 2,000 lines", flush=True)


def clean(r):
    """A step counts only if every call succeeded AND the offered rate was actually carried
    (sipp falls behind, retransmitting, when the server answers late)."""
    return r["failed"] == 0 and r["rc"] == 0 and r["achieved"] >= 0.95 * r["rate"]


def ratio(a, b):
    return (a / b) if b and a == a and b == b else float("nan")


def fmt_ratio(v):
    return "-" if v != v else f"x{v:.2f}"


def header(pg):
    return (f"  {'offered/s':>9} {'server':>8} {'achieved/s':>10} {'calls':>7} {'failed':>6} {'retrans':>7} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'sipp CPU':>8} {'srv CPU':>8}"
            + (f" {'PG CPU':>7}" if pg else ""))


def row(r, pg):
    return (f"  {r['rate']:>9} {r['server']:>8} {r['achieved']:>10.0f} {r['calls']:>7} {r['failed']:>6} "
            f"{r['retrans']:>7} {fmt_ms(r['p50']):>7} {fmt_ms(r['p99']):>7} {fmt_ms(r['max']):>7} "
            f"{r['sipp_cpu_pct']:>7.0f}% {r['server_cpu_pct']:>7.0f}%"
            + (f" {r['postgres_cpu_pct']:>6.0f}%" if pg else "")
            + (f"  [{r['first_error']}]" if r["failed"] and r["first_error"] else ""))


def ratios(s, k):
    """sipd / Kamailio for one step."""
    return {"rate": s["rate"], "sockets": s["sockets"], "step": s["step"],
            **{key: ratio(s[key], k[key]) for key in
               ("achieved", "p50", "p99", "max", "server_cpu_pct", "postgres_cpu_pct")}}


def ratio_row(q, pg):
    return (f"  {q['rate']:>9} {'ratio':>8} {fmt_ratio(q['achieved']):>10} {'':>7} {'':>6} {'':>7} "
            f"{fmt_ratio(q['p50']):>7} {fmt_ratio(q['p99']):>7} {fmt_ratio(q['max']):>7} {'':>8} "
            f"{fmt_ratio(q['server_cpu_pct']):>8}"
            + (f" {fmt_ratio(q['postgres_cpu_pct']):>7}" if pg else "") + "  (sipd / kamailio)")


def step(args, target, index, rate, sockets, scenario, pg):
    calls = rate * args.seconds
    pids = target.pids()
    cpu0 = cpu_seconds(pids)
    pg0 = postgres_cpu_seconds() if pg else 0.0
    # One folder per step: sipp's RTT files of a repeated rate must not add up.
    r = run_sipp(target.workdir, f"step{index}-{rate}", target.csv, rate, calls, 3600,
                 timeout_s=args.seconds * 4 + 20, port=target.port, local_port=SIPP_PORTS[target.name],
                 sockets=sockets, scenario=scenario)
    target.last_step_end = time.monotonic()
    cpu = cpu_seconds(pids) - cpu0
    pg_cpu = (postgres_cpu_seconds() - pg0) if pg else 0.0
    r.update(server=target.name, sockets=sockets, step=index, rate=rate, calls=calls,
             sipp_cpu_pct=100 * r["sipp_cpu_s"] / r["wall_s"],
             server_cpu_pct=100 * cpu / r["wall_s"],
             postgres_cpu_pct=100 * pg_cpu / r["wall_s"] if pg else float("nan"))
    if target.name == "sipd":
        r["sipd_cpu_pct"] = r["server_cpu_pct"]  # the field's name before --servers
    r["failed"] += max(0, calls - r["successful"] - r["failed"])  # calls never started or lost
    return r


def summarize(results, name, label):
    by_rate = {}
    for r in results:
        if r["server"] == name:
            by_rate.setdefault(r["rate"], []).append(r)
    carried = [rate for rate, runs in by_rate.items() if all(clean(r) for r in runs)]
    best = max(carried, default=None)
    best_p99 = max((rate for rate in carried if all(r["p99"] < 20 for r in by_rate[rate])), default=None)
    every = " in every run" if any(len(runs) > 1 for runs in by_rate.values()) else ""
    achieved = "/".join(f"{r['achieved']:.0f}" for r in by_rate[best]) if best else ""
    print(f"  {name}, {label}: highest offered rate carried (>= 95 %) with zero failures{every}: "
          f"{best if best else 'none'}/s" + (f" (achieved {achieved}/s)" if best else ""), flush=True)
    print(f"  {name}, {label}: same, and p99 < 20 ms{every}: {best_p99 if best_p99 else 'none'}/s", flush=True)
    for rate, runs in by_rate.items():
        if len(runs) > 1:
            print(f"  {name}, {label}: {rate}/s, {len(runs)} runs: achieved "
                  + "/".join(f"{r['achieved']:.0f}" for r in runs) + "/s, failed "
                  + "/".join(str(r["failed"]) for r in runs) + ", p99 "
                  + "/".join(fmt_ms(r["p99"]) for r in runs) + " ms; "
                  + f"{sum(1 for r in runs if clean(r) and r['p99'] < 20)} of {len(runs)} clean with p99 < 20 ms",
                  flush=True)


def rate_steps(args, root, sockets):
    transport = SOCKETS[sockets]
    label = f"sockets {sockets}"
    pg = args.db == "postgres" or "kamailio" in args.servers
    print(f"== phase 1: rate steps, {label} (sipp -t {transport}), {', '.join(args.servers)}"
          f"{' (sipd on ' + args.db + ')' if 'sipd' in args.servers else ''}, {args.endpoints} users, "
          f"steps {args.steps}/s x {args.seconds}s, {args.cooldown:g}s idle between a server's steps",
          flush=True)
    folder = os.path.join(root, f"steps-{sockets}")
    os.makedirs(folder, exist_ok=True)
    scenario = per_phone_scenario(folder) if sockets == "per-phone" else SCENARIO
    targets, results, pairs = [], [], []
    try:
        for name in args.servers:
            workdir = os.path.join(folder, name)
            target = (SipdTarget(args, workdir, f"steps_{sockets.replace('-', '_')}") if name == "sipd"
                      else KamailioTarget(args, workdir, args.endpoints))
            targets.append(target)
            print(f"  {name}: {target.start(args.endpoints)}", flush=True)
            target.csv = write_step_csv(os.path.join(workdir, "users.csv"), target.users(args.endpoints))
            rate = min(2000, args.endpoints)
            warm = run_sipp(workdir, "warmup", target.csv, rate, args.endpoints, 3600,
                            timeout_s=max(60, args.endpoints // 500 + 30), port=target.port,
                            local_port=SIPP_PORTS[name], sockets=sockets, scenario=scenario)
            target.last_step_end = None
            print(f"  {name}: warm-up, {args.endpoints} registrations at {rate}/s, {warm['successful']} ok, "
                  f"{warm['failed']} failed, p99 {fmt_ms(warm['p99'])} ms; sipp had at most "
                  f"{warm['sipp_fds_peak']} files open"
                  + (f"  [{warm['first_error']}]" if warm["failed"] and warm["first_error"] else ""), flush=True)
        print(header(pg), flush=True)
        for index, rate in enumerate(args.steps, 1):
            by_server = {}
            for target in targets:
                if target.last_step_end is not None and args.cooldown:
                    rest = args.cooldown - (time.monotonic() - target.last_step_end)
                    if rest > 0:
                        # Not a wait for an event: a designed idle interval. sipd keeps every
                        # answered non-INVITE request for Timer J (64 x T1 = 32 s over UDP);
                        # without the pause, a step inherits the previous step's records.
                        time.sleep(rest)
                r = step(args, target, index, rate, sockets, scenario, pg)
                results.append(r)
                by_server[target.name] = r
                print(row(r, pg), flush=True)
                if not target.alive():
                    print(f"  {target.name} exited during the step!", flush=True)
            if len(by_server) == 2:
                q = ratios(by_server["sipd"], by_server["kamailio"])
                pairs.append(q)
                print(ratio_row(q, pg), flush=True)
            if not all(target.alive() for target in targets):
                break
    finally:
        for target in targets:
            target.stop()
    for target in targets:
        summarize(results, target.name, label)
    return results, pairs


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
    p.add_argument("--sipd", help="the sipd binary (release build), for --servers with sipd")
    p.add_argument("--servers", default="sipd,kamailio", help="sipd, kamailio or both (the same load each)")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="sipd's database")
    p.add_argument("--sockets", default="one",
                   help="one (sipp -t u1), per-phone (sipp -t un) or one,per-phone (a table each)")
    p.add_argument("--endpoints", type=int, default=10000)
    p.add_argument("--rates", default="1000,2000,4000,6000,8000,10000,12000")
    p.add_argument("--seconds", type=int, default=5, help="length of each rate step (calls = rate x seconds)")
    p.add_argument("--repeat", action="append", default=[], metavar="RATE:COUNT",
                   help="after the steps, run RATE COUNT more times (a decisive step, repeated); repeatable")
    p.add_argument("--memory-bindings", type=int, default=100000, help="0 skips the memory phase (sipd only)")
    p.add_argument("--memory-rate", type=int, default=2000,
                   help="registrations/s of the memory phase (one socket)")
    p.add_argument("--memory-idle", type=float, default=45,
                   help="idle seconds before the memory reading (Timer J + the allocator's return)")
    p.add_argument("--cooldown", type=float, default=33,
                   help="idle seconds for a server between two of its steps (Timer J + 1 s); 0: none")
    p.add_argument("--kamailio-dir", default=t.KAMAILIO_ANCHOR)
    p.add_argument("--kamailio-dbmode", default="1", help="the anchor's usrloc db_mode (1: write-through)")
    p.add_argument("--log-level", default="warn,sipd::serve=info,sipd::sip=info",
                   help="sipd log filter during the benchmark (start-up lines are needed)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (server and sipp logs)")
    args = p.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    if not args.servers or any(s not in ("sipd", "kamailio") for s in args.servers) \
            or len(set(args.servers)) != len(args.servers):
        p.error("--servers takes sipd, kamailio or sipd,kamailio")
    if "sipd" in args.servers and not args.sipd:
        p.error("--servers with sipd needs --sipd PATH")
    args.sockets = [s for s in args.sockets.split(",") if s]
    if not args.sockets or any(s not in SOCKETS for s in args.sockets):
        p.error("--sockets takes one, per-phone or one,per-phone")
    args.rates = [int(x) for x in args.rates.split(",") if x]
    args.steps = list(args.rates)
    for spec in args.repeat:
        rate, _, count = spec.partition(":")
        args.steps += [int(rate)] * int(count or 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nofile = open_files_limit()
    root = tempfile.mkdtemp(prefix="sipd-register-load-")
    print(f"scratch {root}; sipd {args.sipd or '-'}; servers {','.join(args.servers)}; "
          f"sockets {','.join(args.sockets)}; open files limit {nofile}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    ok = False
    try:
        steps, pairs = [], []
        if args.steps:
            for sockets in args.sockets:
                results, ratio_rows = rate_steps(args, root, sockets)
                steps += results
                pairs += ratio_rows
        mem = memory(args, root) if args.memory_bindings and "sipd" in args.servers else None
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"db": args.db, "servers": args.servers, "sockets": args.sockets,
                           "args": vars(args), "steps": steps, "ratios": pairs, "memory": mem}, f, indent=1)
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
