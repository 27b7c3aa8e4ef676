#!/usr/bin/env python3
"""Call load through the proxy with sipp, sipd and the Kamailio anchor side by side. Run through
call-load.sh.

    python3 call_load.py --sipd target/release/sipd [--servers sipd,kamailio] [--db sqlite|postgres]
        [--rates 500,1000,1500,2000] [--seconds 20] [--pause-ms 1000] [--callers 1000]
        [--callees 100] [--repeat RATE:COUNT] [--cooldown 35] [--json results.json]

Each server (sipd on a scratch database; the Kamailio anchor from shared/anchors/kamailio) gets
the same load: --callees endpoints registered (REGISTER with digest, Expires 3600) at the socket
of one sipp callee (tests/interop/sip/sipp/uas-answer.xml: 180, 200 with SDP, ACK, BYE, 200)
running for the whole benchmark, and for each rate step one sipp caller over UDP from one
socket (uac-call.xml: INVITE, 407, ACK, INVITE with Proxy-Authorization, 100, 180, 200, ACK,
pause --pause-ms, BYE, 200) placing rate x seconds calls, cycling through --callers callers
and the callees, after an unmeasured warm-up step (--warmup-seconds). The steps alternate
between the servers (sipd's step at a rate, then Kamailio's), so both meet the same
machine load; a server waits --cooldown seconds after its
previous step (sipd holds each completed transaction for Timer J/K, 32 s over UDP).

Per step and server: offered and achieved rate, calls, failed calls (sipp's failures plus calls
never completed), retransmissions (sipp, both sides), p50/p90/p99 of INVITE->200 (first INVITE
sent to 200 received, the 407 round included) and of BYE->200 (sipp -trace_rtt, every call),
the server's CPU, its memory (PSS: Kamailio's processes share memory, PSS counts it once)
before the step and at its peak, and that growth divided by the most calls up at once (rate x
the hold time --pause-ms, or x the step's length when that is shorter): memory per call,
transactions the server still holds after a call included. A hold longer than the step
(e.g. --seconds 20 --pause-ms 60000) measures the calls in progress alone: every call is up at
the step's end and none has ended. Then sipd / Kamailio ratios.

All traffic is on 127.0.0.1; every sipp run is bounded in calls and time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop", "sip"))
import sip_tools as t  # noqa: E402
import sipd_harness as h  # noqa: E402
from register_load import PG_SERVER, cpu_seconds, percentile, psql  # noqa: E402

DOMAIN = t.KAMAILIO_DOMAIN
SIPD_PORT = 16070
# sipp sockets per server: (caller, callee)
SIPP_PORTS = {"sipd": (26070, 26071), "kamailio": (26080, 26081)}
REGISTER_RATE = 500


class SipdServer:
    name = "sipd"

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.port = SIPD_PORT
        self.pg_db = None
        os.makedirs(workdir, exist_ok=True)
        if args.db == "postgres":
            self.pg_db = f"sipd_call_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            psql(f'CREATE DATABASE "{self.pg_db}"')
            url = f"{PG_SERVER}/{self.pg_db}"
        else:
            url = "sqlite://data/sipd.db"
        self.sipd = h.Sipd(args.sipd, workdir, url, DOMAIN, {"udp": f"127.0.0.1:{SIPD_PORT}"},
                           extra_env={"SIPD_LOG_LEVEL": args.log_level})

    def start(self, users):
        auth = self.sipd.create_account("call-bench")
        self.sipd.start()
        self.sipd.wait_sip_ready(timeout=60)
        api = h.Api(self.sipd.api_host, self.sipd.api_port, *auth)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: api.create_endpoint(*t.user(i, sipd=True)), range(1, users + 1)))
        return f"sipd on {self.args.db}, {users} endpoints created through the API in {time.monotonic() - t0:.1f}s"

    def pids(self):
        return [self.sipd.pid()] if self.alive() else []

    def alive(self):
        return self.sipd.process is not None and self.sipd.process.poll() is None

    def stop(self):
        code = self.sipd.stop()
        if self.pg_db:
            psql(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
        return code


class KamailioServer:
    name = "kamailio"

    def __init__(self, args, workdir):
        self.port = t.KAMAILIO_PORT
        self.kamailio = t.Kamailio(args.kamailio_dir, os.path.join(workdir, "kamailio"), 10000,
                                   dbmode=args.kamailio_dbmode)

    def start(self, users):
        return self.kamailio.start()

    def pids(self):
        return self.kamailio.pids()

    def alive(self):
        return self.kamailio.alive()

    def stop(self):
        return self.kamailio.stop()


def write_csv(path, lines):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n" + "".join(line + "\n" for line in lines))
    return path


class Load:
    """One server with its callee sipp; runs steps against it."""

    def __init__(self, args, server, workdir):
        self.args, self.server, self.workdir = args, server, workdir
        self.caller_port, self.callee_port = SIPP_PORTS[server.name]
        self.callee = None
        self.last_step_end = None

    def prepare(self):
        a = self.args
        print(f"  {self.server.name}: {self.server.start(a.callers + a.callees)}", flush=True)
        first_callee = a.callers + 1
        sipd = self.server.name == "sipd"
        callees = [t.user(i, sipd) for i in range(first_callee, first_callee + a.callees)]
        callers = [t.user(i, sipd) for i in range(1, a.callers + 1)]
        reg_csv = write_csv(os.path.join(self.workdir, "callees.csv"),
                            [f"{n};{t.auth_field(n, p)}" for n, p in callees])
        keys = {"domain": DOMAIN, "via_transport": "UDP", "uri_transport": "udp"}
        # The callees' REGISTERs leave from the callee sipp's port, before it binds it.
        reg = t.Sipp(self.workdir, "register-callees", "register-contact.xml",
                     remote=f"127.0.0.1:{self.server.port}", local_port=self.callee_port, csv=reg_csv,
                     calls=len(callees), rate=REGISTER_RATE, trace_msg=False,
                     keys={**keys, "contact_port": self.callee_port, "expires": 3600},
                     timeout_s=len(callees) // REGISTER_RATE + 30).run()
        if not reg.ok:
            raise t.ToolError(f"{self.server.name}: callee registration failed: {reg.summary()}")
        lines = max(len(callers), len(callees))
        self.calls_csv = write_csv(
            os.path.join(self.workdir, "calls.csv"),
            [f"{callers[k % len(callers)][0]};{t.auth_field(*callers[k % len(callers)])};"
             f"{callees[k % len(callees)][0]}" for k in range(lines)])
        total_s = (len(a.steps) * (a.seconds + a.cooldown + 60)) * 2 + 600
        self.callee = t.Sipp(self.workdir, "callee", "uas-answer.xml", local_port=self.callee_port, calls=None,
                             pause_ms=0, trace_msg=False, timeout_s=total_s,
                             keys={"uri_transport": "udp", "contact_port": self.callee_port},
                             extra=["-buff_size", str(8 * 1024 * 1024), "-max_recv_loops", "10000"]).start()
        if not t.wait_port(self.callee_port, "udp", 10, self.callee.proc):
            raise t.ToolError(f"{self.server.name}: the callee sipp did not start: {self.callee.summary()}")
        print(f"  {self.server.name}: {len(callees)} callees registered at the callee sipp "
              f"(127.0.0.1:{self.callee_port}); {len(callers)} callers", flush=True)

    def step(self, index, rate, seconds=None):
        a = self.args
        seconds = seconds or a.seconds
        if self.last_step_end is not None:
            rest = a.cooldown - (time.monotonic() - self.last_step_end)
            if rest > 0:
                # A designed idle interval, not a wait for an event: the previous step's
                # completed transactions must end first (Timer J/K, 32 s over UDP).
                time.sleep(rest)
        calls = rate * seconds
        hold_s = a.pause_ms / 1000
        callee_retrans0 = int(self.callee.stat.get("Retransmissions(C)", "0") or 0)
        pids = self.server.pids()
        mem0 = t.memory_kib(pids)
        cpu0 = cpu_seconds(pids)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(0.5):  # memory sampled every 0.5 s during the step
                samples.append(t.memory_kib(self.server.pids()))

        sampler = threading.Thread(target=sample, daemon=True)
        timeout_s = int(seconds * 3 + hold_s + 40)
        caller = t.Sipp(self.workdir, f"step{index}-{rate}" if index else "warmup", "uac-call.xml", remote=f"127.0.0.1:{self.server.port}",
                        local_port=self.caller_port, csv=self.calls_csv, calls=calls, rate=rate,
                        pause_ms=a.pause_ms, trace_msg=False, timeout_s=timeout_s,
                        keys={"domain": DOMAIN, "via_transport": "UDP", "uri_transport": "udp"},
                        # Concurrent calls capped: sipp needs a file descriptor per call (limit 20,000 here).
                        extra=["-rp", "1000", "-l", str(min(15000, int(rate * (hold_s + 5)))),
                               "-recv_timeout", "10000", "-trace_rtt", "-rtt_freq", "1",
                               "-buff_size", str(8 * 1024 * 1024), "-max_recv_loops", "10000"])
        started = time.monotonic()
        sampler.start()
        caller.run()
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        self.last_step_end = time.monotonic()
        cpu = cpu_seconds(self.server.pids()) - cpu0
        stat = caller.stat
        rtt = {"1": [], "2": []}
        times = []
        for name in os.listdir(caller.dir):
            if name.endswith("_rtt.csv"):
                with open(os.path.join(caller.dir, name)) as f:
                    for line in f:
                        parts = line.strip().split(";")
                        if len(parts) >= 3 and parts[0][:1].isdigit() and parts[2] in rtt:
                            rtt[parts[2]].append(float(parts[1]))
                            if parts[2] == "1":
                                times.append(float(parts[0]))
        for values in rtt.values():
            values.sort()
        times.sort()
        achieved = ((len(times) - 1) / ((times[-1] - times[0]) / 1000)
                    if len(times) > 1 and times[-1] > times[0] else 0.0)
        successful = int(stat.get("SuccessfulCall(C)", "0") or 0)
        failed = int(stat.get("FailedCall(C)", "0") or 0)
        failed += max(0, calls - successful - failed)  # calls never started or never finished
        peak = max(samples, default=mem0)
        # At most rate x hold calls are up at once; fewer when the step ends first.
        in_progress = rate * min(hold_s, seconds)
        # sipp's error lines: "DATE<TAB>TIME<TAB>EPOCH: text"; the first text says what failed.
        first_error = next((l.split(": ", 1)[1].strip()[:160] for l in caller.errors().splitlines()
                            if re.match(r"\d{4}-\d\d-\d\d\t", l) and ": " in l), "")
        return {
            "server": self.server.name, "rate": rate, "calls": calls, "rc": caller.rc,
            "successful": successful, "failed": failed,
            "retrans": int(stat.get("Retransmissions(C)", "0") or 0)
            + int(self.callee.stat.get("Retransmissions(C)", "0") or 0) - callee_retrans0,
            "achieved": achieved,
            **{f"setup_p{p}": percentile(rtt["1"], p) for p in (50, 90, 99)},
            **{f"bye_p{p}": percentile(rtt["2"], p) for p in (50, 90, 99)},
            "cpu_pct": 100 * cpu / wall,
            "mem_before_kib": mem0, "mem_peak_kib": peak,
            "calls_in_progress": in_progress,
            "bytes_per_call": (peak - mem0) * 1024 / in_progress if in_progress else float("nan"),
            "first_error": first_error if failed else "",
        }

    def close(self):
        if self.callee:
            self.callee.kill()
            self.callee.log.close()


def fmt(v, digits=0):
    return "-" if v != v else f"{v:,.{digits}f}"


HEADER = (f"  {'offered/s':>9} {'server':>8} {'achieved/s':>10} {'calls':>7} {'failed':>6} {'retrans':>7} "
          f"{'setup p50/p90/p99 ms':>21} {'BYE p50/p90/p99 ms':>19} {'CPU':>5} "
          f"{'mem before':>10} {'mem peak':>10} {'B/call':>7}")


def row(r):
    return (f"  {r['rate']:>9} {r['server']:>8} {fmt(r['achieved']):>10} {r['calls']:>7} {r['failed']:>6} "
            f"{r['retrans']:>7} "
            f"{fmt(r['setup_p50']) + '/' + fmt(r['setup_p90']) + '/' + fmt(r['setup_p99']):>21} "
            f"{fmt(r['bye_p50']) + '/' + fmt(r['bye_p90']) + '/' + fmt(r['bye_p99']):>19} "
            f"{r['cpu_pct']:>4.0f}% {r['mem_before_kib']:>7,} KiB {r['mem_peak_kib']:>6,} KiB "
            f"{fmt(r['bytes_per_call']):>7}"
            + (f"  [{r['first_error']}]" if r["first_error"] else ""))


def ratio(a, b):
    return (a / b) if b and a == a and b == b else float("nan")


def ratio_row(s, k):
    """sipd / Kamailio for one step; p99s and CPU: below 1 is better for sipd."""
    return (f"  {s['rate']:>9} {'ratio':>8} {fmt(ratio(s['achieved'], k['achieved']), 2):>10} "
            f"{'':>7} {'':>6} {'':>7} {'p99 x' + fmt(ratio(s['setup_p99'], k['setup_p99']), 2):>21} "
            f"{'p99 x' + fmt(ratio(s['bye_p99'], k['bye_p99']), 2):>19} "
            f"{fmt(ratio(s['cpu_pct'], k['cpu_pct']), 2):>5} {'':>10} {'':>10} "
            f"{fmt(ratio(s['bytes_per_call'], k['bytes_per_call']), 2):>7}   (sipd / kamailio)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sipd", help="the sipd binary (release build), for --servers with sipd")
    p.add_argument("--servers", default="sipd,kamailio", help="sipd, kamailio or both (the same load each)")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="postgres", help="sipd's database")
    p.add_argument("--rates", default="500,1000,1500,2000", help="calls/s per step")
    p.add_argument("--seconds", type=int, default=20, help="length of a step (calls = rate x seconds)")
    p.add_argument("--pause-ms", type=int, default=1000, help="how long each call is held between ACK and BYE")
    p.add_argument("--callers", type=int, default=1000)
    p.add_argument("--callees", type=int, default=100, help="endpoints registered at the callee sipp")
    p.add_argument("--repeat", action="append", default=[], metavar="RATE:COUNT",
                   help="after the steps, run RATE COUNT more times (a decisive step, repeated)")
    p.add_argument("--warmup-seconds", type=int, default=5,
                   help="an unmeasured step at the first rate before the steps, per server (first use of "
                        "the servers' memory pools and caches); 0: none")
    p.add_argument("--cooldown", type=float, default=35,
                   help="idle seconds for a server between two of its steps (Timer J/K + 3 s)")
    p.add_argument("--kamailio-dir", default=t.KAMAILIO_ANCHOR)
    p.add_argument("--kamailio-dbmode", default="1", help="the anchor's usrloc db_mode (1: write-through)")
    p.add_argument("--log-level", default="warn,sipd::serve=info,sipd::sip=info",
                   help="sipd log filter (its start-up lines are needed)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (server and sipp logs)")
    args = p.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    if not servers or any(s not in ("sipd", "kamailio") for s in servers):
        p.error("--servers takes sipd, kamailio or sipd,kamailio")
    if "sipd" in servers and not args.sipd:
        p.error("--servers sipd needs --sipd PATH")
    if args.callers + args.callees > 10000:
        p.error("the anchor has 10,000 users: --callers + --callees <= 10000")
    args.steps = [int(x) for x in args.rates.split(",") if x]
    for spec in args.repeat:
        rate, _, count = spec.partition(":")
        args.steps += [int(rate)] * int(count or 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = tempfile.mkdtemp(prefix="sipd-call-load-")
    print(f"scratch {root}; load average {os.getloadavg()[0]:.2f}; steps {args.steps} calls/s x {args.seconds}s, "
          f"hold {args.pause_ms} ms, {args.callers} callers -> {args.callees} callees, "
          f"cooldown {args.cooldown:g}s", flush=True)
    loads, results, ok = [], [], False
    try:
        for name in servers:
            workdir = os.path.join(root, name)
            server = SipdServer(args, workdir) if name == "sipd" else KamailioServer(args, workdir)
            load = Load(args, server, workdir)
            loads.append(load)
            load.prepare()
        if args.warmup_seconds:
            for load in loads:
                r = load.step(0, args.steps[0], seconds=args.warmup_seconds)
                print(f"  {load.server.name}: warm-up, {r['calls']} calls at {r['rate']}/s, {r['failed']} failed",
                      flush=True)
        print(HEADER, flush=True)
        for index, rate in enumerate(args.steps, 1):
            step = {}
            for load in loads:
                r = load.step(index, rate)
                step[load.server.name] = r
                results.append(dict(r, step=index))
                print(row(r), flush=True)
                if not load.server.alive():
                    print(f"  {load.server.name} exited during the step!", flush=True)
            if len(step) == 2:
                print(ratio_row(step["sipd"], step["kamailio"]), flush=True)
        for load in loads:
            clean = [r for r in results if r["server"] == load.server.name and r["failed"] == 0
                     and r["achieved"] >= 0.95 * r["rate"]]
            best = max((r["rate"] for r in clean), default=None)
            best_p99 = max((r["rate"] for r in clean if r["setup_p99"] < 20 and r["bye_p99"] < 20), default=None)
            print(f"  {load.server.name}: highest rate carried (>= 95 %) with zero failed calls: "
                  f"{best or 'none'}/s; with p99 < 20 ms too: {best_p99 or 'none'}/s", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": {k: v for k, v in vars(args).items()}, "steps": results}, f, indent=1)
        ok = True
    finally:
        for load in loads:
            load.close()
            code = load.server.stop()
            print(f"  {load.server.name} stopped (exit code {code})", flush=True)
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"logs kept in {root}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
