#!/usr/bin/env python3
"""SIP interop test: real SIP clients register with a real sipd. Run through run.sh.

    python3 interop.py --sipd PATH/TO/sipd [--endpoints 1000]

For SQLite (always) and PostgreSQL (when SIPD_TEST_DATABASE_URL is set: a scratch database is
created on that server and dropped afterwards), it starts `sipd serve` with SIP on loopback
high ports, creates an account and the endpoints through the REST API, then:

(sipd runs with its default `registrar.digest_algorithms = "MD5"`: stock sipp 3.6 and sipsak
read only the first WWW-Authenticate, baresip (libre) gives up if any challenge is not MD5, and
JsSIP reads only the last one; none of them does SHA-256. SHA-256, offered first by
configuration, is covered by crates/sipd/tests/sip_register.rs.)

* sipp registers every endpoint with digest over UDP, then over TCP; the API must show each
  one registered with the Contact sipp sent; sipp unregisters them all; the API must show
  them all "false";
* baresip registers over TLS and over UDP, then unregisters on exit;
* sipsak registers over UDP with digest;
* JsSIP (Node, `ws` as WebSocket) registers over WSS, then unregisters.

Every check prints PASS or FAIL; the run ends with "N passed, N failed" and exits non-zero on
any failure. A missing tool is a failure. Every wait has a deadline; all traffic is loopback.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipd_harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = "localhost"  # sipsak resolves the host of -s; everything else is addressed by IP
UDP_PORT, TLS_PORT, WSS_PORT = 15060, 15061, 17443
TCP_PORT = UDP_PORT
SIPP_UDP_LOCAL_PORT = 25070
SIPSAK_LOCAL_PORT = 25080
SIPP_RATE = 200  # registrations/s offered by sipp in the functional run
# What sipd offers by default, the one challenge every stock client here answers (see above).
DIGEST_ALGORITHMS = "MD5"


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.lines = []

    def check(self, name, ok, detail=""):
        line = f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else "")
        print(line, flush=True)
        self.lines.append(line)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def run(self, name, fn):
        """Runs fn() -> (ok, detail); an exception is a FAIL with its message."""
        try:
            ok, detail = fn()
        except Exception as error:  # a failed check is reported; the others still run
            traceback.print_exc(file=sys.stdout)
            ok, detail = False, f"{type(error).__name__}: {error}"
        return self.check(name, ok, detail)


def need_tool(report, name):
    path = shutil.which(name)
    report.check(f"tool {name} installed", path is not None, path or "not on PATH (run tests/interop/sip/install.sh)")
    return path is not None


# ---- sipp --------------------------------------------------------------------------------
def run_sipp(workdir, scenario, csv, calls, transport, extra_keys, rate=SIPP_RATE,
             local_port=None, timeout=120, tag="sipp", extra_args=(), while_running=None):
    """Runs sipp to completion; returns (exit code, errors text, stat dict). while_running, if
    given, is called once sipp has started and its result is returned as a fourth item."""
    out = os.path.join(workdir, tag)
    os.makedirs(out, exist_ok=True)
    target = f"127.0.0.1:{UDP_PORT if transport == 'u1' else TCP_PORT}"
    cmd = [
        "sipp", target, "-sf", os.path.join(HERE, "sipp", scenario), "-inf", csv,
        "-m", str(calls), "-r", str(rate), "-i", "127.0.0.1", "-t", transport,
        "-nostdin", "-trace_err", "-error_file", os.path.join(out, "errors.log"),
        "-trace_stat", "-stf", os.path.join(out, "stat.csv"), "-fd", "1",
        "-timeout", f"{timeout}s", "-timeout_error",
        "-recv_timeout", "10000",
        "-key", "domain", DOMAIN,
    ]
    for k, v in extra_keys.items():
        cmd += ["-key", k, str(v)]
    if local_port:
        cmd += ["-p", str(local_port)]
    if transport == "tn":
        cmd += ["-max_socket", "4096"]  # sipp's default (50000) exceeds the usual open-file limit
    cmd += list(extra_args)
    during = None
    with open(os.path.join(out, "stdout.log"), "w") as log:
        proc = subprocess.Popen(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            if while_running:
                during = while_running()
            rc = proc.wait(timeout=timeout + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errors = ""
    if os.path.exists(os.path.join(out, "errors.log")):
        with open(os.path.join(out, "errors.log"), errors="replace") as f:
            errors = f.read()
    result = (rc, errors, read_sipp_stat(os.path.join(out, "stat.csv")))
    return result + (during,) if while_running else result


def read_sipp_stat(path):
    """Last row of sipp's -trace_stat file as {column: value}."""
    try:
        with open(path, errors="replace") as f:
            rows = [line.rstrip("\n").split(";") for line in f if line.strip()]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def sipp_summary(rc, errors, stat):
    first_error = ""
    for line in errors.splitlines():
        if ":" in line and ("Aborting" in line or "createAuthHeader" in line or "rror" in line):
            first_error = line.strip()[:300]
            break
    return (f"exit {rc}, successful {stat.get('SuccessfulCall(C)', '?')}, "
            f"failed {stat.get('FailedCall(C)', '?')}" + (f"; first error: {first_error}" if first_error else ""))


def first_line_with(text, needles):
    for line in text.splitlines():
        if any(n in line for n in needles):
            return line.strip()
    return ""


def contact_transport_ok(contact, transport):
    """transport=<t> in the Contact URI; for UDP, no transport parameter also means UDP."""
    found = re.search(r";transport=([a-z]+)", contact, re.I)
    return (found.group(1).lower() == transport) if found else transport == "udp"


def sipsak_ok(rc, out):
    return rc == 0 and "usrloc tests completed successful" in out


# ---- API state ---------------------------------------------------------------------------
def wait_api_state(api, want, deadline_s=30):
    """Polls the list endpoint until want(objects) is an empty list of problems; returns the
    last problems (empty: all good)."""
    deadline = time.monotonic() + deadline_s
    while True:
        problems = want(api.list_endpoints())
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.2)  # poll interval, bounded by the deadline


def all_registered(users, contact_re):
    def want(objects):
        by_name = {o["username"]: o for o in objects}
        problems = []
        for name in users:
            o = by_name.get(name)
            if o is None:
                problems.append(f"{name}: missing from the list")
            elif o.get("sip_registered") != "true":
                problems.append(f"{name}: sip_registered={o.get('sip_registered')}")
            elif not re.search(contact_re(name), o.get("sip_contact") or "", re.I):
                problems.append(f"{name}: sip_contact={o.get('sip_contact')!r}")
        return problems
    return want


def all_unregistered(users):
    def want(objects):
        by_name = {o["username"]: o for o in objects}
        return [f"{n}: sip_registered={by_name.get(n, {}).get('sip_registered')}"
                for n in users if by_name.get(n, {}).get("sip_registered") != "false"]
    return want


def problems_detail(problems, total):
    if not problems:
        return f"{total}/{total} as expected"
    return f"{total - len(problems)}/{total} as expected; e.g. " + "; ".join(problems[:3])


# ---- one database ------------------------------------------------------------------------
class Suite:
    def __init__(self, report, args, label, database_url, workdir):
        self.r = report
        self.args = args
        self.label = label
        self.database_url = database_url
        self.workdir = workdir
        self.sipd = None
        self.api = None
        self.users = {}
        self.extra = {}

    def name(self, text):
        return f"[{self.label}] {text}"

    def run(self):
        sip = {"udp": f"127.0.0.1:{UDP_PORT}", "tcp": f"127.0.0.1:{TCP_PORT}",
               "tls": f"127.0.0.1:{TLS_PORT}", "wss": f"127.0.0.1:{WSS_PORT}"}
        # Every client is on 127.0.0.1: sipp holds one TCP connection per AOR (1,000), beyond
        # the default per-IP limit (64, a NAT's worth of devices).
        # Digest: sipd's default (MD5 alone), which every stock client here can answer.
        self.sipd = h.Sipd(self.args.sipd, self.workdir, self.database_url, DOMAIN, sip,
                           extra_env={"SIPD_SIP_MAX_CONNECTIONS_PER_IP": str(self.args.endpoints + 100)})
        try:
            if not self.r.run(self.name("sipd starts, API and SIP (UDP/TCP/TLS/WSS) answer"), self.start):
                print(self.sipd.tail_log(), flush=True)
                return
            if not self.r.run(self.name(f"create {self.args.endpoints} endpoints through the API"),
                              self.create_endpoints):
                return
            self.r.run(self.name(f"401 to REGISTER: challenges as configured ({DIGEST_ALGORITHMS}), qop=auth, "
                                 "realm = SIP domain"),
                       self.challenge_check)
            self.sipp_checks()
            self.baresip_checks()
            self.sipsak_checks()
            self.jssip_checks()
            self.r.run(self.name("sipd still running after all clients"),
                       lambda: (self.sipd.process.poll() is None, f"pid {self.sipd.pid()}"))
        finally:
            code = self.sipd.stop()
            self.r.check(self.name("sipd stops on SIGTERM with exit code 0"), code == 0, f"exit code {code}")

    def start(self):
        t0 = time.monotonic()
        self.auth_id, self.auth_token = self.sipd.create_account("sip-interop")
        self.sipd.start()
        self.sipd.wait_sip_ready(timeout=60)
        self.api = h.Api(self.sipd.api_host, self.sipd.api_port, self.auth_id, self.auth_token)
        return True, f"in {time.monotonic() - t0:.1f}s, API on {self.sipd.api_host}:{self.sipd.api_port}"

    def create_endpoints(self):
        t0 = time.monotonic()
        self.users = h.create_endpoints(self.api, self.args.endpoints, prefix="u")
        # One endpoint per single-client check.
        for i, key in enumerate(("baresip_tls", "baresip_udp", "sipsak", "jssip")):
            name, pw = f"{key.replace('_', '')}{i}", f"{key}-pw-{uuid.uuid4().hex[:12]}"
            self.extra[key] = (name, self.api.create_endpoint(name, pw), pw)
        elapsed = time.monotonic() - t0
        listed = self.api.list_endpoints()
        n = len(self.users) + len(self.extra)
        return len(listed) == n, f"{n} created in {elapsed:.1f}s ({n / elapsed:.0f}/s), list shows {len(listed)}"

    def challenge_check(self):
        user = sorted(self.users)[0]
        reply = h.udp_register("127.0.0.1", UDP_PORT, DOMAIN, user, expires=60, timeout=5)
        if reply is None:
            return False, "no reply within 5s"
        status = reply.split("\r\n", 1)[0]
        challenges = [line.split(":", 1)[1].strip() for line in reply.split("\r\n")
                      if line.lower().startswith("www-authenticate:")]
        algos = [(re.search(r"algorithm=\"?([\w-]+)", c) or [None, None])[1] for c in challenges]
        ok = (status.startswith("SIP/2.0 401")
              and [a.upper() if a else a for a in algos] == DIGEST_ALGORITHMS.split(",")
              and all(re.search(r'qop="?auth"?(,|$|\s)', c) for c in challenges)
              and all(f'realm="{DOMAIN}"' in c for c in challenges))
        return ok, f"{status}; " + " | ".join(challenges)

    # -- sipp -------------------------------------------------------------------------------
    def sipp_checks(self):
        if not need_tool(self.r, "sipp"):
            return
        csv = os.path.join(self.workdir, "users.csv")
        with open(csv, "w") as f:
            f.write("SEQUENTIAL\n")
            for name, (_, pw) in sorted(self.users.items()):
                f.write(f"{name};[authentication username={name} password={pw}]\n")
        n = len(self.users)

        # UDP: register all, check, unregister (same Contact, Expires: 0), check.
        rc, errors, stat = run_sipp(self.workdir, "register.xml", csv, n, "u1", {"expires": 3600},
                                    local_port=SIPP_UDP_LOCAL_PORT, tag="sipp-udp-register")
        self.r.check(self.name(f"sipp registers {n} endpoints over UDP with digest"),
                     rc == 0 and stat.get("FailedCall(C)") == "0", sipp_summary(rc, errors, stat))
        contact_udp = lambda name: rf"^<?sip:{name}@127\.0\.0\.1:{SIPP_UDP_LOCAL_PORT};transport=udp>?$"  # noqa: E731
        self.r.run(self.name(f"API lists all {n} endpoints registered with sipp's UDP Contact"),
                   lambda: self.api_check(all_registered(self.users, contact_udp), n))
        rc, errors, stat = run_sipp(self.workdir, "unregister-all.xml", csv, n, "u1", {},
                                    local_port=SIPP_UDP_LOCAL_PORT, tag="sipp-udp-unregister")
        self.r.check(self.name(f"sipp unregisters {n} endpoints over UDP (Contact: *, Expires: 0)"),
                     rc == 0 and stat.get("FailedCall(C)") == "0", sipp_summary(rc, errors, stat))
        self.r.run(self.name(f"API lists all {n} endpoints sip_registered \"false\" after UDP unREGISTER"),
                   lambda: self.api_check(all_unregistered(self.users), n))

        # TCP, one connection per AOR (-t tn): register, hold the connection while the API is
        # read (sipd drops a connection's bindings when it closes), unregister the same Contact
        # on the same connection, then the API again.
        contact_tcp = lambda name: rf"^<?sip:{name}@127\.0\.0\.1:\d+;transport=tcp>?$"  # noqa: E731
        hold_ms = int(n / SIPP_RATE * 1000) + 20000
        rc, errors, stat, during = run_sipp(
            self.workdir, "register-hold-unregister.xml", csv, n, "tn", {"expires": 3600},
            tag="sipp-tcp", extra_args=["-d", str(hold_ms)], timeout=hold_ms // 1000 + 60,
            while_running=lambda: self.api_check(all_registered(self.users, contact_tcp), n,
                                                 deadline_s=hold_ms / 1000 - 5))
        self.r.check(self.name(f"API lists all {n} endpoints registered with sipp's TCP Contact "
                               f"({n} connections open)"), during[0], during[1])
        self.r.check(self.name(f"sipp registers then unregisters (same Contact, Expires: 0) {n} endpoints "
                               "over TCP with digest"),
                     rc == 0 and stat.get("FailedCall(C)") == "0", sipp_summary(rc, errors, stat))
        self.r.run(self.name(f"API lists all {n} endpoints sip_registered \"false\" after TCP unREGISTER"),
                   lambda: self.api_check(all_unregistered(self.users), n))

    def api_check(self, want, n, deadline_s=30):
        problems = wait_api_state(self.api, want, deadline_s)
        return not problems, problems_detail(problems, n)

    def endpoint_state(self, endpoint_id, want, deadline_s=15):
        deadline = time.monotonic() + deadline_s
        while True:
            e = self.api.get_endpoint(endpoint_id)
            if want(e) or time.monotonic() > deadline:
                return e
            time.sleep(0.1)  # poll interval, bounded by the deadline

    # -- baresip ----------------------------------------------------------------------------
    def baresip_checks(self):
        if not need_tool(self.r, "baresip"):
            return
        for transport, port, key in (("tls", TLS_PORT, "baresip_tls"), ("udp", UDP_PORT, "baresip_udp")):
            self.baresip_one(transport, port, key)

    def baresip_one(self, transport, port, key):
        """One baresip run; returns (registered, its output)."""
        name, endpoint_id, pw = self.extra[key]
        conf = os.path.join(self.workdir, f"baresip-{transport}")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "config"), "w") as f:
            f.write(
                "poll_method\t\tepoll\n"
                "sip_listen\t\t127.0.0.1:0\n"
                "module_path\t\t/usr/lib/baresip/modules\n"
                "module\t\t\tg711.so\n"
                "module_app\t\taccount.so\n"
                "audio_player\t\tnone\n"
                "audio_source\t\tnone\n"
                "audio_alert\t\tnone\n"
            )
        with open(os.path.join(conf, "accounts"), "w") as f:
            f.write(f'<sip:{name}@{DOMAIN};transport={transport}>;auth_pass={pw};'
                    f'outbound="sip:127.0.0.1:{port};transport={transport}";regint=600\n')
        open(os.path.join(conf, "contacts"), "w").close()
        log_path = os.path.join(conf, "baresip.log")
        lines, done = [], threading.Event()
        registered, failed_reason = threading.Event(), []
        ok_re = re.compile(r"\b200 OK\b.*\[\d+ binding")
        fail_re = re.compile(r"(reg: |register: |\b4\d\d |\b5\d\d |failed|error)", re.I)
        proc = subprocess.Popen(["stdbuf", "-oL", "-eL", "baresip", "-f", conf, "-t", "60"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)

        def pump():
            with open(log_path, "w") as log:
                for line in proc.stdout:
                    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                    log.write(line)
                    log.flush()
                    lines.append(line.rstrip())
                    if ok_re.search(line):
                        registered.set()
                    elif fail_re.search(line) and not registered.is_set() and "binding" not in line:
                        failed_reason.append(line.strip())
            done.set()

        threading.Thread(target=pump, daemon=True).start()
        label = f"baresip registers over {transport.upper()} with digest"
        try:
            deadline = time.monotonic() + 20
            while not registered.is_set() and not done.is_set() and time.monotonic() < deadline:
                registered.wait(0.1)
            ok = registered.is_set()
            detail = next((l for l in lines if ok_re.search(l)), "") if ok else \
                ("; ".join(failed_reason[-3:]) or "no '200 OK … binding' line within 20s") + f" (log {log_path})"
            if not self.r.check(self.name(label), ok, detail):
                print("\n".join(lines[-25:]), flush=True)
                return False, "\n".join(lines)
            e = self.endpoint_state(endpoint_id, lambda e: e.get("sip_registered") == "true")
            self.r.check(self.name(f"API shows the baresip {transport.upper()} registration"),
                         e.get("sip_registered") == "true"
                         and contact_transport_ok(e.get("sip_contact") or "", transport)
                         and "baresip" in (e.get("sip_user_agent") or "").lower(),
                         f"sip_registered={e.get('sip_registered')} sip_contact={e.get('sip_contact')} "
                         f"sip_user_agent={e.get('sip_user_agent')}")
            # SIGTERM: baresip unregisters (Expires: 0) before it exits.
            os.killpg(proc.pid, signal.SIGTERM)
            e = self.endpoint_state(endpoint_id, lambda e: e.get("sip_registered") == "false")
            self.r.check(self.name(f"baresip unregisters over {transport.upper()} on exit; API shows \"false\""),
                         e.get("sip_registered") == "false", f"sip_registered={e.get('sip_registered')}")
            return True, "\n".join(lines)
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    # -- sipsak -----------------------------------------------------------------------------
    def sipsak_checks(self):
        if not need_tool(self.r, "sipsak"):
            return
        name, endpoint_id, pw = self.extra["sipsak"]

        def sipsak(expires):
            # A fixed local port, so the unREGISTER's Contact is the registered one.
            cmd = ["sipsak", "-U", "-s", f"sip:{name}@{DOMAIN}:{UDP_PORT}", "-u", name, "-a", pw,
                   "-x", str(expires), "-l", str(SIPSAK_LOCAL_PORT), "-i", "-vv"]
            done = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=30, stdin=subprocess.DEVNULL)
            return done.returncode, done.stdout + done.stderr

        rc, out = sipsak(600)
        if not self.r.check(self.name("sipsak registers over UDP with digest"), sipsak_ok(rc, out),
                            f"exit {rc}; {first_line_with(out, ('OK', 'rror'))}"):
            print(out[-2000:], flush=True)
            return
        e = self.endpoint_state(endpoint_id, lambda e: e.get("sip_registered") == "true")
        self.r.check(self.name("API shows the sipsak registration"),
                     e.get("sip_registered") == "true" and "sipsak" in (e.get("sip_user_agent") or "").lower(),
                     f"sip_registered={e.get('sip_registered')} sip_contact={e.get('sip_contact')} "
                     f"sip_user_agent={e.get('sip_user_agent')}")
        rc, out = sipsak(0)
        e = self.endpoint_state(endpoint_id, lambda e: e.get("sip_registered") == "false")
        self.r.check(self.name("sipsak unregisters (Expires: 0); API shows \"false\""),
                     e.get("sip_registered") == "false", f"sipsak exit {rc}, sip_registered={e.get('sip_registered')}")

    # -- JsSIP ------------------------------------------------------------------------------
    def jssip_checks(self):
        if not need_tool(self.r, "node"):
            return
        node_dir = os.path.join(HERE, "node")
        if not self.r.check(self.name("jssip and ws installed in tests/interop/sip/node"),
                            os.path.isdir(os.path.join(node_dir, "node_modules", "jssip"))
                            and os.path.isdir(os.path.join(node_dir, "node_modules", "ws")),
                            "node_modules present" if os.path.isdir(os.path.join(node_dir, "node_modules"))
                            else "run tests/interop/sip/install.sh"):
            return
        name, endpoint_id, pw = self.extra["jssip"]
        cmd = ["node", os.path.join(node_dir, "register_wss.js"),
               "--wss", f"wss://127.0.0.1:{WSS_PORT}", "--domain", DOMAIN, "--user", name, "--password", pw,
               "--api", f"http://{self.sipd.api_host}:{self.sipd.api_port}", "--auth-id", self.auth_id,
               "--auth-token", self.auth_token, "--endpoint-id", endpoint_id, "--timeout", "20"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=40, stdin=subprocess.DEVNULL)
            out, rc = done.stdout, done.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), None
        results = [l for l in out.splitlines() if l.startswith(("PASS ", "FAIL "))]
        for line in results:
            ok = line.startswith("PASS ")
            name_detail = line[5:]
            check, _, detail = name_detail.partition(": ")
            self.r.check(self.name(check), ok, detail)
        if not results or (rc != 0 and all(l.startswith("PASS") for l in results)):
            self.r.check(self.name("JsSIP over WSS"), False, f"exit {rc}; output: {out[-1500:]!r}")


# ---- PostgreSQL scratch database ---------------------------------------------------------
def with_scratch_postgres(base_url, fn):
    """Creates a scratch database on base_url's server, calls fn(url), drops it."""
    m = re.match(r"^(postgres(?:ql)?://[^/]+)/([^?]*)(\?.*)?$", base_url)
    if not m:
        raise ValueError(f"cannot parse SIPD_TEST_DATABASE_URL {base_url!r}")
    server, _, query = m.group(1), m.group(2), m.group(3) or ""
    name = f"sipd_sip_interop_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    psql = ["psql", base_url, "-v", "ON_ERROR_STOP=1", "-qAtc"]
    subprocess.run(psql + [f'CREATE DATABASE "{name}"'], check=True, timeout=60)
    try:
        return fn(f"{server}/{name}{query}")
    finally:
        subprocess.run(psql + [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sipd", required=True)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    # SIGTERM (timeout, the caller's trap) unwinds like an exception, so sipd is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Report()
    started = time.monotonic()
    root = tempfile.mkdtemp(prefix="sipd-sip-interop-")
    try:
        os.makedirs(os.path.join(root, "sqlite"))
        Suite(report, args, "sqlite", "sqlite://data/sipd.db", os.path.join(root, "sqlite")).run()
        pg = os.environ.get("SIPD_TEST_DATABASE_URL")
        if pg:
            os.makedirs(os.path.join(root, "postgres"))
            try:
                with_scratch_postgres(pg, lambda url: Suite(report, args, "postgres", url,
                                                            os.path.join(root, "postgres")).run())
            except Exception as error:
                report.check("[postgres] scratch database", False, f"{type(error).__name__}: {error}")
        else:
            print("NOTE SIPD_TEST_DATABASE_URL is not set: PostgreSQL run not requested", flush=True)
    finally:
        if args.keep or report.failed:
            print(f"logs kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"SIP interop finished in {time.monotonic() - started:.0f}s", flush=True)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
