#!/usr/bin/env python3
"""SIP call interop: real clients call each other through the proxy. Run through run.sh
against sipd, or directly against the Kamailio anchor:

    python3 calls.py --server sipd --sipd PATH/TO/sipd      # SQLite, and PostgreSQL when
                                                            # SIPD_TEST_DATABASE_URL is set
    python3 calls.py --server kamailio [--kamailio-dir DIR] # the anchor (UDP/TCP only)

Every server is driven the same way: domain sip.test, users u00001/pw00001... (sipd: endpoints
created through the REST API; Kamailio: the anchor's setup-db.sh), callers challenged with 407.
The checks, each a PASS/FAIL line:

* sipp caller -> sipp callee registered as an endpoint (uas-answer.xml), over UDP, TCP, TLS
  (sipd only; a local relay carries sipp's TCP over TLS: Debian's sipp has no TLS) and mixed
  (caller UDP, callee TCP): 407 (MD5, realm = domain, qop=auth for sipd), 180, 200, ACK, BYE;
  the Record-Route the callee saw is the one the caller got (one value; two when the legs use
  different transports, RFC 5658); the caller's ACK and BYE carry it as Route, reversed; the
  callee gets them with the proxy's Route values removed.
* CANCEL while ringing: 487 to the caller, CANCEL + ACK at the callee.
* a callee on two devices: both ring (the caller sees both 180s), the first to answer gets
  ACK and BYE, the other gets CANCEL.
* a callee with no registration: 480 (the anchor's config answers 404: expected there).
* MESSAGE: baresip -> baresip and sipsak -> baresip, through the proxy, with 407.
* baresip calls baresip over UDP: established both sides, RTP flows (sine source, no sound
  card), hung up by BYE, both sides closed.
* sipd only: JsSIP over WSS (node/call_wss.js) calls a sipp callee over UDP, and a sipp caller
  over UDP calls JsSIP: two Record-Route values, the in-dialog BYE crossing transports.

Ends with "N passed, N failed"; non-zero exit on any failure; logs kept on failure (--keep
always). Every wait has a deadline; all traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sip_tools as t  # noqa: E402
import sipd_harness as h  # noqa: E402
from interop import Report, need_tool, with_scratch_postgres  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = t.KAMAILIO_DOMAIN  # the same domain on every server
SIPD_UDP_PORT, SIPD_TLS_PORT, SIPD_WSS_PORT = 15160, 15161, 17543  # apart from interop.py's
SIPD_TCP_PORT = SIPD_UDP_PORT
PORT_BASE = 25170  # sipp, relays, baresip: 127.0.0.1:25170... (one range per suite, see Suite.port)
USERS = 60  # endpoints created on sipd; the anchor has 10,000
EXPIRES = 600
# The proxy verifies the certificate of a TLS callee (issue 8); the test CA goes in this setting.
SIPD_TLS_CA_ENV = "SIPD_SIP_TLS_CA_FILE"
TRANSPORT = {  # name -> (sipp -t, Via spelling, URI spelling, the port's protocol)
    "udp": ("u1", "UDP", "udp", "udp"),
    "tcp": ("t1", "TCP", "tcp", "tcp"),
    "tls": ("t1", "TLS", "tls", "tcp"),
}


# ---- servers -------------------------------------------------------------------------------
class SipdServer:
    transports = ("udp", "tcp", "tls", "wss")
    unavailable_status = 480
    qop = True

    def __init__(self, args, label, database_url, workdir, ca_file):
        self.label, self.workdir = label, workdir
        self.ports = {"udp": SIPD_UDP_PORT, "tcp": SIPD_TCP_PORT, "tls": SIPD_TLS_PORT, "wss": SIPD_WSS_PORT}
        sip = {k: f"127.0.0.1:{v}" for k, v in self.ports.items()}
        self.sipd = h.Sipd(args.sipd, workdir, database_url, DOMAIN, sip,
                           extra_env={"SIPD_SIP_MAX_CONNECTIONS_PER_IP": "500",
                                      SIPD_TLS_CA_ENV: ca_file})
        self.log_path = self.sipd.log_path

    def start(self):
        t0 = time.monotonic()
        auth = self.sipd.create_account("sip-calls")
        self.sipd.start()
        self.sipd.wait_sip_ready(timeout=60)
        self.api = h.Api(self.sipd.api_host, self.sipd.api_port, *auth)
        for i in range(1, USERS + 1):
            self.api.create_endpoint(*t.user(i, sipd=True))
        return f"in {time.monotonic() - t0:.1f}s, {USERS} endpoints created through the API"

    def alive(self):
        return self.sipd.process is not None and self.sipd.process.poll() is None

    def stop(self):
        return self.sipd.stop()

    def tail_log(self):
        return self.sipd.tail_log()


class KamailioServer:
    transports = ("udp", "tcp")
    unavailable_status = 404  # the anchor's kamailio.cfg: lookup() failed -> 404
    qop = False  # the anchor challenges without qop

    def __init__(self, args, workdir):
        self.label, self.workdir = "kamailio", workdir
        self.ports = {"udp": t.KAMAILIO_PORT, "tcp": t.KAMAILIO_PORT}
        self.kamailio = t.Kamailio(args.kamailio_dir, os.path.join(workdir, "kamailio"), USERS)
        self.log_path = self.kamailio.log_path

    def start(self):
        return self.kamailio.start()

    def alive(self):
        return self.kamailio.alive()

    def stop(self):
        return self.kamailio.stop()

    def tail_log(self):
        return self.kamailio.tail_log()


# ---- baresip -------------------------------------------------------------------------------
class Baresip:
    """One baresip with ctrl_tcp (JSON commands and events) and its SIP trace (-s) on stdout.
    No sound card: a sine source (ausine), the aubridge player."""

    ANSI = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, workdir, name, password, sip_port, ctrl_port, rtp_port, server_port, transport="udp",
                 contact=None):
        self.name = name
        self.dir = os.path.join(workdir, f"baresip-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.ctrl_port = ctrl_port
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(
                "poll_method\t\tepoll\n"
                f"sip_listen\t\t127.0.0.1:{sip_port}\n"
                "net_interface\t\t127.0.0.1\n"
                f"rtp_ports\t\t{rtp_port}-{rtp_port + 9}\n"
                "module_path\t\t/usr/lib/baresip/modules\n"
                "module\t\t\tg711.so\n"
                "module\t\t\tausine.so\n"
                "module\t\t\taubridge.so\n"
                "module_app\t\taccount.so\n"
                "module_app\t\tcontact.so\n"
                "module_app\t\tmenu.so\n"
                "module_app\t\tctrl_tcp.so\n"
                f"ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n"
                # ausine only makes 48 kHz stereo; baresip resamples to the codec's 8 kHz mono.
                "audio_source\t\tausine,440\n"
                f"audio_player\t\taubridge,speaker-{name}\n"
                f"audio_alert\t\taubridge,alert-{name}\n"
                "ausrc_srate\t\t48000\n"
                "ausrc_channels\t\t2\n"
                "auplay_srate\t\t48000\n"
            )
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f'<sip:{name}@{DOMAIN};transport={transport}>;auth_pass={password};'
                    f'outbound="sip:127.0.0.1:{server_port};transport={transport}";regint={EXPIRES}\n')
        with open(os.path.join(self.dir, "contacts"), "w") as f:
            f.write(f'"peer" <{contact}>\n' if contact else "")
        self.lines, self.events = [], []
        self.changed = threading.Condition()
        self.proc = None
        self.sock = None

    def start(self):
        self.log = open(os.path.join(self.dir, "baresip.log"), "w")
        self.proc = subprocess.Popen(["stdbuf", "-oL", "-eL", "baresip", "-s", "-f", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self):
        for line in self.proc.stdout:
            line = self.ANSI.sub("", line)
            self.log.write(line)
            self.log.flush()
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate, deadline_s):
        """Waits until predicate() is true (re-checked on each new line or event)."""
        deadline = time.monotonic() + deadline_s
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not predicate()):
                    return False
                self.changed.wait(min(left, 0.5))
            return True

    def text(self):
        with self.changed:
            return "\n".join(self.lines)

    def registered(self, deadline_s=15):
        return self.wait_for(lambda: any(re.search(r"\b200 OK\b.*\[\d+ binding", l) for l in self.lines), deadline_s)

    def connect(self, deadline_s=10):
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)  # ctrl_tcp not listening yet; bounded by the deadline
        self.sock.settimeout(None)
        threading.Thread(target=self._read_ctrl, daemon=True).start()

    def _read_ctrl(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while True:  # netstrings: LEN:JSON,
                m = re.match(rb"(\d+):", buf)
                if not m or len(buf) < m.end() + int(m.group(1)) + 1:
                    break
                end = m.end() + int(m.group(1))
                event = json.loads(buf[m.end():end])
                buf = buf[end + 1:]
                with self.changed:
                    self.events.append(event)
                    self.changed.notify_all()

    def command(self, command, params=None):
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def event(self, kind, deadline_s):
        if self.wait_for(lambda: any(e.get("type") == kind for e in self.events), deadline_s):
            return next(e for e in self.events if e.get("type") == kind)
        return None

    def stop(self):
        if self.sock:
            self.sock.close()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---- the checks ----------------------------------------------------------------------------
def rr_expected(caller_tp, callee_tp):
    return 1 if caller_tp == callee_tp else 2


class Suite:
    def __init__(self, report, args, server, workdir, ca):
        self.r, self.args, self.s, self.workdir = report, args, server, workdir
        self.ca_file, self.cert, self.key = ca
        self.next_user = 1
        self.next_port = PORT_BASE
        self.keep = []

    def name(self, text):
        return f"[{self.s.label}] {text}"

    def user(self):
        u = t.user(self.next_user, sipd=isinstance(self.s, SipdServer))
        self.next_user += 1
        return u

    def port(self):
        # A fresh port per socket: no test meets the previous one's connections or TIME_WAIT.
        p = self.next_port
        self.next_port += 1
        return p

    def run(self):
        try:
            if not self.r.run(self.name("server starts"), lambda: (True, self.s.start())):
                print(self.s.tail_log(), flush=True)
                return
            if need_tool(self.r, "sipp"):
                for caller_tp, callee_tp in (("udp", "udp"), ("tcp", "tcp"), ("tls", "tls"), ("udp", "tcp")):
                    if caller_tp in self.s.transports and callee_tp in self.s.transports:
                        self.check(f"sipp call {caller_tp.upper()} -> {callee_tp.upper()}: 407, 180, 200, ACK, "
                                   "BYE through the proxy, Record-Route/Route",
                                   lambda a=caller_tp, b=callee_tp: self.sipp_call(a, b))
                    else:
                        print(f"SKIP [{self.s.label}] sipp call {caller_tp.upper()} -> {callee_tp.upper()}: "
                              "this server has no TLS", flush=True)
                self.check("CANCEL while ringing: 487 to the caller, CANCEL and ACK at the callee", self.cancel)
                self.check("callee on two devices: both ring, the first answer wins, the other gets CANCEL",
                           self.two_devices)
                self.check(f"callee with no registration: {self.s.unavailable_status}", self.unregistered)
            if need_tool(self.r, "baresip"):
                self.check("MESSAGE baresip -> baresip with 407", self.message_baresip)
                if need_tool(self.r, "sipsak"):
                    self.check("MESSAGE sipsak -> baresip with 407", self.message_sipsak)
                self.check("baresip calls baresip over UDP: established, RTP both ways, BYE, both closed",
                           self.baresip_call)
            if "wss" in self.s.transports:
                self.jssip_checks()
            else:
                print(f"SKIP [{self.s.label}] JsSIP over WSS: this server has no WSS", flush=True)
            self.r.check(self.name("server still running after every call"), self.s.alive())
        finally:
            code = self.s.stop()
            self.r.check(self.name("server stops cleanly"), code == 0, f"exit code {code}")

    def check(self, text, fn):
        if self.args.only and self.args.only not in text:
            return
        if not self.r.run(self.name(text), fn):
            print(f"  logs: {self.workdir}; server log tail:\n{self.s.tail_log()}", flush=True)

    # -- sipp helpers -------------------------------------------------------------------------
    def csv(self, tag, lines):
        path = os.path.join(self.workdir, f"{tag}.csv")
        with open(path, "w") as f:
            f.write("SEQUENTIAL\n" + "".join(l + "\n" for l in lines))
        return path

    def keys(self, tp, **more):
        _, via, uri, _ = TRANSPORT[tp]
        return {"domain": DOMAIN, "via_transport": via, "uri_transport": uri, **more}

    def client_target(self, tp, relays):
        """The address a client sipp sends to for transport tp: the server, or a TLS relay."""
        if tp == "tls":
            relay = t.TlsRelay(self.port(), self.s.ports["tls"], "to_tls")
            relays.append(relay)
            return f"127.0.0.1:{relay.listen_port}"
        return f"127.0.0.1:{self.s.ports[tp]}"

    def register(self, tag, callee, contact_port, tp):
        """REGISTERs callee with Contact sip:callee@127.0.0.1:contact_port;transport=tp."""
        relays = []
        try:
            target = self.client_target(tp, relays)
            sipp = t.Sipp(self.workdir, tag, "register-contact.xml", remote=target, transport=TRANSPORT[tp][0],
                          local_port=contact_port if tp == "udp" else None,
                          csv=self.csv(tag, [f"{callee[0]};{t.auth_field(*callee)}"]),
                          keys=self.keys(tp, contact_port=contact_port, expires=EXPIRES), timeout_s=15).run()
        finally:
            for relay in relays:
                relay.close()
        if not sipp.ok:
            raise AssertionError(f"REGISTER of {callee[0]} failed: {sipp.summary()}")
        return sipp

    def unregister(self, callee):
        sipp = t.Sipp(self.workdir, f"unregister-{callee[0]}", "unregister-all.xml",
                      remote=f"127.0.0.1:{self.s.ports['udp']}", local_port=self.port(),
                      csv=self.csv(f"unregister-{callee[0]}", [f"{callee[0]};{t.auth_field(*callee)}"]),
                      keys={"domain": DOMAIN}, timeout_s=15, trace_msg=False).run()
        return sipp.ok

    def device(self, tag, callee, tp, scenario, pause_ms=0):
        """A callee device: registered, then its sipp server started (behind a TLS relay for tls).
        Returns (sipp, relays)."""
        sipp_port = self.port()
        contact_port = sipp_port
        relays = []
        if tp == "tls":
            contact_port = self.port()
            relays.append(t.TlsRelay(contact_port, sipp_port, "from_tls", self.cert, self.key))
        # Over UDP the REGISTER leaves from the device's own port, before the device binds it.
        self.register(f"{tag}-register", callee, sipp_port if tp == "udp" else contact_port, tp)
        sipp = t.Sipp(self.workdir, tag, scenario, transport=TRANSPORT[tp][0], local_port=sipp_port,
                      keys={"uri_transport": TRANSPORT[tp][2], "contact_port": contact_port},
                      pause_ms=pause_ms, timeout_s=30).start()
        if not t.wait_port(sipp_port, TRANSPORT[tp][3], 10, sipp.proc):
            sipp.kill()
            raise AssertionError(f"{tag}: sipp did not bind {TRANSPORT[tp][3]} port {sipp_port}: {sipp.summary()}")
        return sipp, relays

    def caller(self, tag, scenario, caller, callee, tp, pause_ms=500, relays=None):
        relays = [] if relays is None else relays
        target = self.client_target(tp, relays)
        return t.Sipp(self.workdir, tag, scenario, remote=target, transport=TRANSPORT[tp][0],
                      local_port=self.port() if tp == "udp" else None,
                      csv=self.csv(tag, [f"{caller[0]};{t.auth_field(*caller)};{callee[0]}"]),
                      keys=self.keys(tp), pause_ms=pause_ms, timeout_s=30).run()

    def challenge_ok(self, messages):
        """The 407 the caller got: Digest, MD5 (named or implied), realm = domain, qop=auth where
        the server promises it. Returns (ok, text)."""
        r407 = next((m for m in messages if m.direction == "received" and m.status == 407), None)
        if r407 is None:
            return False, "no 407"
        challenges = r407.values("proxy-authenticate")

        def md5(c):
            m = re.search(r'algorithm="?([\w-]+)', c, re.I)
            return m is None or m.group(1).upper() == "MD5"  # no algorithm means MD5

        good = [c for c in challenges
                if c.lower().startswith("digest") and f'realm="{DOMAIN}"' in c and md5(c)]
        if self.s.qop:
            good = [c for c in good if re.search(r'qop="?([\w-]+,)*auth(,[\w-]+)*"?', c)]
        authorized = any(m.direction == "sent" and m.method == "INVITE" and m.header("proxy-authorization")
                         for m in messages)
        return bool(good) and authorized, "407 " + (good[0] if good else " | ".join(challenges))

    @staticmethod
    def received(messages, method=None, status=None, cseq=None):
        return [m for m in messages if m.direction == "received"
                and (method is None or m.method == method) and (status is None or m.status == status)
                and (cseq is None or m.cseq_method == cseq)]

    @staticmethod
    def sent(messages, method=None, status=None):
        return [m for m in messages if m.direction == "sent"
                and (method is None or m.method == method) and (status is None or m.status == status)]

    def finish(self, *devices):
        for sipp, relays in devices:
            sipp.wait()
            for relay in relays:
                relay.close()

    # -- sipp calls ---------------------------------------------------------------------------
    def sipp_call(self, caller_tp, callee_tp):
        caller, callee = self.user(), self.user()
        tag = f"call-{caller_tp}-{callee_tp}"
        relays = []
        dev = self.device(f"{tag}-callee", callee, callee_tp, "uas-answer.xml", pause_ms=100)
        try:
            uac = self.caller(f"{tag}-caller", "uac-call.xml", caller, callee, caller_tp, relays=relays)
        finally:
            self.finish(dev)
            for relay in relays:
                relay.close()
            self.unregister(callee)
        uas = dev[0]
        problems = []
        if not uac.ok:
            problems.append(uac.summary())
        if not uas.ok:
            problems.append(uas.summary())
        cm, um = uac.messages, uas.messages
        auth_ok, auth_text = self.challenge_ok(cm)
        if not auth_ok:
            problems.append(f"challenge: {auth_text}")
        invites = self.received(um, method="INVITE")
        ok200 = self.received(cm, status=200, cseq="INVITE")
        rr_callee = invites[0].values("record-route") if invites else []
        rr_caller = ok200[0].values("record-route") if ok200 else []
        want = rr_expected(caller_tp, callee_tp)
        if len(rr_callee) != want:
            problems.append(f"callee saw {len(rr_callee)} Record-Route values, expected {want}: {rr_callee}")
        if rr_caller != rr_callee:
            problems.append(f"caller's 200 Record-Route {rr_caller} differs from the callee's {rr_callee}")
        for method in ("ACK", "BYE"):
            sent = self.sent(cm, method=method)
            routes = sent[-1].values("route") if sent else None
            if routes != list(reversed(rr_caller)):
                problems.append(f"caller's {method} Route {routes}, expected {list(reversed(rr_caller))}")
            got = self.received(um, method=method)
            if not got:
                problems.append(f"callee got no {method}")
            elif got[0].values("route"):
                problems.append(f"callee's {method} still has Route {got[0].values('route')}")
        if invites and invites[0].transport != TRANSPORT[callee_tp][3].upper():
            problems.append(f"callee got the INVITE over {invites[0].transport}")
        if not self.received(cm, status=180):
            problems.append("caller got no 180")
        detail = (f"{auth_text[:120]}; 180, 200; Record-Route {rr_callee}; ACK and BYE by Route; "
                  f"BYE 200" if not problems else "; ".join(problems))
        return not problems, detail

    def cancel(self):
        caller, callee = self.user(), self.user()
        dev = self.device("cancel-callee", callee, "udp", "uas-ring.xml")
        try:
            uac = self.caller("cancel-caller", "uac-cancel.xml", caller, callee, "udp")
        finally:
            self.finish(dev)
            self.unregister(callee)
        uas = dev[0]
        problems = [s.summary() for s in (uac, uas) if not s.ok]
        cm, um = uac.messages, uas.messages
        r487 = self.received(cm, status=487)
        callee_tag = next((m.tag() for m in self.sent(um, status=487)), None)
        if not r487:
            problems.append("caller got no 487")
        elif r487[0].tag() != callee_tag:
            problems.append(f"the 487's To-tag {r487[0].tag()} is not the callee's {callee_tag}")
        for method in ("CANCEL", "ACK"):
            if not self.received(um, method=method):
                problems.append(f"callee got no {method}")
        return not problems, ("caller: 180, CANCEL -> 200, 487 (callee's tag), ACK; callee: CANCEL, 200, 487, ACK"
                              if not problems else "; ".join(problems))

    def two_devices(self):
        caller, callee = self.user(), self.user()
        # The answering device rings 1 s first, so both ring before the answer.
        answering = self.device("fork-answers", callee, "udp", "uas-answer.xml", pause_ms=1000)
        ringing = None
        try:
            ringing = self.device("fork-rings", callee, "udp", "uas-ring.xml")
            uac = self.caller("fork-caller", "uac-call.xml", caller, callee, "udp")
        finally:
            self.finish(*[d for d in (answering, ringing) if d])
            self.unregister(callee)
        a, b = answering[0], ringing[0]
        problems = [s.summary() for s in (uac, a, b) if not s.ok]
        cm = uac.messages
        tags180 = {m.tag() for m in self.received(cm, status=180)}
        a_tag = next((m.tag() for m in self.sent(a.messages, status=200)), None)
        b_tag = next((m.tag() for m in self.sent(b.messages, status=180)), None)
        if not (a_tag in tags180 and b_tag in tags180):
            problems.append(f"caller's 180 To-tags {sorted(filter(None, tags180))}, devices' {a_tag} and {b_tag}")
        ok200 = self.received(cm, status=200, cseq="INVITE")
        if not ok200 or ok200[0].tag() != a_tag:
            problems.append(f"200 To-tag {ok200[0].tag() if ok200 else None}, answering device's {a_tag}")
        if not self.received(b.messages, method="CANCEL"):
            problems.append("the ringing device got no CANCEL")
        if not self.received(a.messages, method="BYE"):
            problems.append("the answering device got no BYE")
        return not problems, ("both devices got the INVITE and rang (caller saw both 180s); the answering one "
                              "got ACK and BYE; the other got CANCEL, answered 487, got ACK"
                              if not problems else "; ".join(problems))

    def unregistered(self):
        caller, callee = self.user(), self.user()
        self.unregister(callee)  # no binding, whatever ran before
        scenario = "uac-unavailable.xml"
        status = self.s.unavailable_status
        if status != 480:
            # The same scenario, expecting this server's answer instead of 480.
            with open(os.path.join(t.SCENARIOS, scenario)) as f:
                text = f.read().replace('<recv response="480" />', f'<recv response="{status}" />')
            scenario = os.path.join(self.workdir, f"uac-unavailable-{status}.xml")
            with open(scenario, "w") as f:
                f.write(text)
        uac = self.caller("unregistered-caller", scenario, caller, callee, "udp")
        final = [m.first for m in self.received(uac.messages) if m.status and m.status >= 300 and m.status != 407]
        return uac.ok, f"final response: {final}" + ("" if uac.ok else f"; {uac.summary()}")

    # -- baresip and sipsak -------------------------------------------------------------------
    def baresip(self, who, contact=None):
        name, pw = who
        sip_port = self.port()
        self.port()  # baresip also listens for TLS on its SIP port + 1
        b = Baresip(self.workdir, name, pw, sip_port, self.port(), self.reserve_rtp(), self.s.ports["udp"],
                    contact=contact)
        return b.start()

    def reserve_rtp(self):
        base = self.next_port
        self.next_port += 10
        return base

    def message_baresip(self):
        sender, receiver = self.user(), self.user()
        body = f"hello-{uuid.uuid4().hex[:8]}"
        b_recv = self.baresip(receiver)
        b_send = self.baresip(sender, contact=f"sip:{receiver[0]}@{DOMAIN}")
        try:
            if not (b_recv.registered() and b_send.registered()):
                return False, "baresip did not register within 15s"
            b_send.connect()
            b_send.command("message", body)
            got = b_recv.wait_for(lambda: any(body in l for l in b_recv.lines), 10)
            answered = b_send.wait_for(lambda: re.search(r"SIP/2\.0 200 OK(?:(?!\n#).)*?CSeq: \d+ MESSAGE",
                                                         "\n".join(b_send.lines), re.S) is not None, 10)
            challenged = "407 Proxy Authentication Required" in b_send.text() or "SIP/2.0 407" in b_send.text()
            ok = got and answered and challenged
            return ok, (f"407 then 200 from the receiver; the receiver got the body {body!r}" if ok else
                        f"407 seen {challenged}, body received {got}, 200 back {answered}; logs in {b_send.dir}")
        finally:
            b_send.stop()
            b_recv.stop()
            self.unregister(receiver)

    def message_sipsak(self):
        sender, receiver = self.user(), self.user()
        body = f"hello-{uuid.uuid4().hex[:8]}"
        b_recv = self.baresip(receiver)
        try:
            if not b_recv.registered():
                return False, "baresip did not register within 15s"
            # sipsak's own MESSAGE mode (-M) crashes (0.9.8.1), so it sends this request from a
            # file and answers the 407 itself. It resolves the host of -s, so -s names the
            # server's address: it is only where the request is sent.
            target = f"sip:{receiver[0]}@127.0.0.1:{self.s.ports['udp']}"
            request = os.path.join(self.workdir, "sipsak-message.sip")
            with open(request, "w") as f:
                f.write(f"MESSAGE sip:{receiver[0]}@{DOMAIN} SIP/2.0\n"
                        f"From: <sip:{sender[0]}@{DOMAIN}>;tag={uuid.uuid4().hex[:8]}\n"
                        f"To: <sip:{receiver[0]}@{DOMAIN}>\nCall-ID: {uuid.uuid4().hex}@127.0.0.1\n"
                        f"CSeq: 1 MESSAGE\nMax-Forwards: 70\nContent-Type: text/plain\n"
                        f"Content-Length: {len(body)}\n\n{body}")
            cmd = ["sipsak", "-f", request, "-s", target, "-u", sender[0], "-a", sender[1],
                   "-l", str(self.port()), "-vv"]
            done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=30,
                                  stdin=subprocess.DEVNULL)
            with open(os.path.join(self.workdir, "sipsak-message.log"), "w") as f:
                f.write(" ".join(cmd) + "\n" + done.stdout + done.stderr)
            got = b_recv.wait_for(lambda: any(body in l for l in b_recv.lines), 10)
            out = done.stdout + done.stderr
            challenged = "authorizing" in out  # sipsak -vv: it answered a challenge
            final = re.findall(r"^SIP/2\.0 (\d{3})", out, re.M)
            ok = done.returncode == 0 and got and challenged and final[-1:] == ["200"]
            return ok, (f"sipsak answered the challenge, got 200; the receiver got {body!r}" if ok else
                        f"sipsak exit {done.returncode}, 407 seen {challenged}, body received {got}: {out[-400:]!r}")
        finally:
            b_recv.stop()
            self.unregister(receiver)

    def baresip_call(self):
        alice, bob = self.user(), self.user()
        b = self.baresip(bob)
        a = self.baresip(alice)
        try:
            if not (a.registered() and b.registered()):
                return False, "baresip did not register within 15s"
            a.connect()
            b.connect()
            a.command("dial", f"sip:{bob[0]}@{DOMAIN}")
            if not b.event("CALL_INCOMING", 10):
                return False, f"no CALL_INCOMING at {bob[0]} within 10s (logs {a.dir}, {b.dir})"
            b.command("accept")
            steps = {
                "established (caller)": a.event("CALL_ESTABLISHED", 10) is not None,
                "established (callee)": b.event("CALL_ESTABLISHED", 10) is not None,
                "RTP in (caller)": a.wait_for(lambda: any("incoming rtp for 'audio' established" in l
                                                          for l in a.lines), 10),
                "RTP in (callee)": b.wait_for(lambda: any("incoming rtp for 'audio' established" in l
                                                          for l in b.lines), 10),
            }
            a.command("hangup")
            steps["closed (caller)"] = a.event("CALL_CLOSED", 10) is not None
            steps["closed by BYE (callee)"] = b.event("CALL_CLOSED", 10) is not None
            steps["BYE answered 200"] = a.wait_for(
                lambda: re.search(r"SIP/2\.0 200 OK(?:(?!\n#).)*?CSeq: \d+ BYE", "\n".join(a.lines), re.S)
                is not None, 10)
            failed = [k for k, v in steps.items() if not v]
            return not failed, ("; ".join(steps) if not failed else f"failed: {failed}; logs {a.dir}, {b.dir}")
        finally:
            a.stop()
            b.stop()
            self.unregister(alice)
            self.unregister(bob)

    # -- JsSIP over WSS -----------------------------------------------------------------------
    def jssip_checks(self):
        if not need_tool(self.r, "node"):
            return
        node_dir = os.path.join(HERE, "node")
        if not self.r.check(self.name("jssip and ws installed in tests/interop/sip/node"),
                            os.path.isdir(os.path.join(node_dir, "node_modules", "jssip")),
                            "run tests/interop/sip/install.sh"):
            return
        self.check("JsSIP (WSS) calls a sipp callee (UDP): two Record-Route values, BYE from WSS to UDP",
                   self.wss_calls_udp)
        self.check("sipp caller (UDP) calls JsSIP (WSS): two Record-Route values, BYE from UDP to WSS",
                   self.udp_calls_wss)

    def jssip(self, mode, who, target=None, deadline_s=30):
        """Starts node call_wss.js; returns the process (its stdout ends with one JSON line)."""
        cmd = ["node", os.path.join(HERE, "node", "call_wss.js"), "--mode", mode,
               "--wss", f"wss://127.0.0.1:{self.s.ports['wss']}", "--domain", DOMAIN,
               "--user", who[0], "--password", who[1], "--timeout", str(deadline_s)]
        if target:
            cmd += ["--target", target]
        log = open(os.path.join(self.workdir, f"jssip-{mode}-{who[0]}.log"), "w")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, stdin=subprocess.DEVNULL)
        return proc

    @staticmethod
    def jssip_result(proc, deadline_s):
        try:
            out, _ = proc.communicate(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
        return json.loads(lines[-1][7:]) if lines else {"ok": False, "error": f"no RESULT line: {out[-500:]!r}"}

    def wss_calls_udp(self):
        caller, callee = self.user(), self.user()
        dev = self.device("wss-udp-callee", callee, "udp", "uas-answer.xml", pause_ms=100)
        try:
            proc = self.jssip("call", caller, target=f"sip:{callee[0]}@{DOMAIN}")
            result = self.jssip_result(proc, 45)
        finally:
            self.finish(dev)
            self.unregister(callee)
        uas = dev[0]
        problems = [] if result.get("ok") else [f"JsSIP: {result.get('error')}"]
        if not uas.ok:
            problems.append(uas.summary())
        invites = self.received(uas.messages, method="INVITE")
        rr_callee = invites[0].values("record-route") if invites else []
        rr_caller = result.get("record_route", [])
        if len(rr_callee) != 2:
            problems.append(f"the UDP callee saw Record-Route {rr_callee}, expected two values")
        if rr_caller != rr_callee:
            problems.append(f"JsSIP's 200 Record-Route {rr_caller} differs from the callee's {rr_callee}")
        byes = self.received(uas.messages, method="BYE")
        if not byes:
            problems.append("the UDP callee got no BYE")
        elif byes[0].values("route"):
            problems.append(f"the callee's BYE still has Route {byes[0].values('route')}")
        if result.get("ended_by") != "local":
            problems.append(f"JsSIP session ended by {result.get('ended_by')} ({result.get('cause')})")
        return not problems, (f"Record-Route {rr_callee}; ACK and BYE reached the UDP callee"
                              if not problems else "; ".join(problems))

    def udp_calls_wss(self):
        caller, callee = self.user(), self.user()
        proc = self.jssip("answer", callee)
        try:
            registered = False
            deadline = time.monotonic() + 20
            # call_wss.js prints "REGISTERED" once its REGISTER got 200.
            while time.monotonic() < deadline and not registered:
                line = proc.stdout.readline()
                if not line:
                    break
                registered = line.strip() == "REGISTERED"
            if not registered:
                proc.kill()
                return False, f"JsSIP did not register over WSS: {self.jssip_result(proc, 5)}"
            uac = self.caller("udp-wss-caller", "uac-call.xml", caller, callee, "udp", pause_ms=1000)
            result = self.jssip_result(proc, 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        problems = [] if result.get("ok") else [f"JsSIP: {result.get('error')}"]
        if not uac.ok:
            problems.append(uac.summary())
        ok200 = self.received(uac.messages, status=200, cseq="INVITE")
        rr_caller = ok200[0].values("record-route") if ok200 else []
        rr_callee = result.get("record_route", [])
        if len(rr_callee) != 2:
            problems.append(f"JsSIP saw Record-Route {rr_callee}, expected two values")
        if rr_caller != rr_callee:
            problems.append(f"the caller's 200 Record-Route {rr_caller} differs from JsSIP's {rr_callee}")
        for method in ("ACK", "BYE"):
            sent = self.sent(uac.messages, method=method)
            if not sent or sent[-1].values("route") != list(reversed(rr_caller)):
                problems.append(f"the caller's {method} Route {sent[-1].values('route') if sent else None}")
        if result.get("ended_by") != "remote":
            problems.append(f"JsSIP session ended by {result.get('ended_by')} ({result.get('cause')}), "
                            "expected the caller's BYE")
        return not problems, (f"Record-Route {rr_callee}; the UDP caller's BYE reached JsSIP"
                              if not problems else "; ".join(problems))


# ---- main ----------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=("sipd", "kamailio"), default="sipd")
    parser.add_argument("--sipd", help="the sipd binary (--server sipd)")
    parser.add_argument("--kamailio-dir", default=t.KAMAILIO_ANCHOR, help="the Kamailio anchor's folder")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--only", help="run only the checks whose name contains this text")
    args = parser.parse_args()
    if args.server == "sipd" and not args.sipd:
        parser.error("--server sipd needs --sipd PATH")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = Report()
    started = time.monotonic()
    root = tempfile.mkdtemp(prefix="sipd-sip-calls-")
    try:
        ca = t.make_test_ca(os.path.join(root, "tls"))
        if args.server == "kamailio":
            os.makedirs(os.path.join(root, "kamailio"))
            Suite(report, args, KamailioServer(args, os.path.join(root, "kamailio")),
                  os.path.join(root, "kamailio"), ca).run()
        else:
            workdir = os.path.join(root, "sqlite")
            os.makedirs(workdir)
            Suite(report, args, SipdServer(args, "sqlite", "sqlite://data/sipd.db", workdir, ca[0]), workdir,
                  ca).run()
            pg = os.environ.get("SIPD_TEST_DATABASE_URL")
            if pg:
                workdir = os.path.join(root, "postgres")
                os.makedirs(workdir)
                try:
                    with_scratch_postgres(pg, lambda url: Suite(
                        report, args, SipdServer(args, "postgres", url, workdir, ca[0]), workdir, ca).run())
                except Exception as error:
                    traceback.print_exc(file=sys.stdout)
                    report.check("[postgres] scratch database", False, f"{type(error).__name__}: {error}")
            else:
                print("NOTE SIPD_TEST_DATABASE_URL is not set: PostgreSQL run not requested", flush=True)
    finally:
        if args.keep or report.failed:
            print(f"logs kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"SIP calls interop finished in {time.monotonic() - started:.0f}s", flush=True)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
