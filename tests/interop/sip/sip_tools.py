"""Pieces shared by the call interop driver (calls.py) and the call-load benchmark (bench/):
running sipp, reading what it saw, the Kamailio anchor, a TLS relay, and waiting for a
socket to be bound. Python 3.11 standard library only; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "sipp")
# Beside the repository (CI lays a copy of shared/ next to its clone).
KAMAILIO_ANCHOR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "anchors", "kamailio"))
KAMAILIO_PORT = 25060  # fixed by the anchor's kamailio.cfg (UDP and TCP on 127.0.0.1)
KAMAILIO_DOMAIN = "sip.test"


class ToolError(RuntimeError):
    pass


# ---- users ---------------------------------------------------------------------------------
def user(i, sipd=False):
    """The i-th test user, the Kamailio anchor's naming (setup-db.sh): u00001 / pw00001. sipd's
    API asks for passwords of 8 characters or more, so its users' have a suffix."""
    return f"u{i:05d}", f"pw{i:05d}" + ("-sip" if sipd else "")


def auth_field(name, password):
    return f"[authentication username={name} password={password}]"


# ---- sockets -------------------------------------------------------------------------------
def port_bound(port, proto):
    """True when something on this machine listens on `port` (TCP) or has it bound (UDP)."""
    files = {"tcp": ("/proc/net/tcp", "/proc/net/tcp6"), "udp": ("/proc/net/udp", "/proc/net/udp6")}[proto]
    for path in files:
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    listening = proto == "udp" or fields[3] == "0A"
                    if local_port == port and listening:
                        return True
        except OSError:
            continue
    return False


def wait_port(port, proto, deadline_s, process=None):
    """Waits until `port` is bound (see port_bound); False on deadline or when `process` exits."""
    deadline = time.monotonic() + deadline_s
    while not port_bound(port, proto):
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            return False
        time.sleep(0.02)  # poll interval, bounded by the deadline
    return True


# ---- SIP text ------------------------------------------------------------------------------
COMPACT = {"v": "via", "m": "contact", "f": "from", "t": "to", "i": "call-id", "l": "content-length",
           "c": "content-type"}


def split_commas(value):
    """Splits a header value at commas outside <...> and quotes."""
    parts, depth, quoted, current = [], 0, False, []
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        if ch == "," and not quoted and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


class SipMessage:
    def __init__(self, text, direction="", transport=""):
        self.text = text
        self.direction = direction  # "sent" / "received" (sipp's view)
        self.transport = transport  # "UDP" / "TCP" as sipp logged it
        head, _, self.body = text.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        self.first = lines[0].strip()
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                self.headers.append((COMPACT.get(name, name), value.strip()))

    @property
    def status(self):
        m = re.match(r"SIP/2\.0 (\d{3})", self.first)
        return int(m.group(1)) if m else None

    @property
    def method(self):
        return None if self.status else self.first.split(" ", 1)[0]

    @property
    def cseq_method(self):
        value = self.header("cseq")
        return value.split()[-1] if value else None

    def header(self, name):
        values = self.values(name)
        return values[0] if values else None

    def values(self, name):
        """Every value of the header, comma lists split (Via, Route, Record-Route...)."""
        name = name.lower()
        out = []
        for n, v in self.headers:
            if n == name:
                out.extend(split_commas(v) if name not in ("www-authenticate", "proxy-authenticate",
                                                              "authorization", "proxy-authorization") else [v])
        return out

    def tag(self, header="to"):
        m = re.search(r";\s*tag=([^;>\s]+)", self.header(header) or "")
        return m.group(1) if m else None

    def __repr__(self):
        return f"<{self.direction} {self.first}>"


def read_sipp_messages(path):
    """sipp's -trace_msg file as SipMessages in order."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for chunk in re.split(r"^-{20,} [^\n]*\n", text, flags=re.M):
        m = re.match(r"\s*(UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*\n\n?", chunk)
        if m:
            out.append(SipMessage(chunk[m.end():].strip("\n") + "\n", m.group(2), m.group(1)))
    return out


def read_sipp_stat(path):
    """Last row of sipp's -trace_stat file as {column: value}."""
    try:
        with open(path, errors="replace") as f:
            rows = [line.rstrip("\n").split(";") for line in f if line.strip()]
    except OSError:
        return {}
    return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}


# ---- sipp ----------------------------------------------------------------------------------
class Sipp:
    """One sipp process with its own folder (stat, errors, messages, stdout).

    remote: "host:port" (client scenarios) or None (server scenarios, first element a recv).
    transport: sipp's -t value (u1, t1...). keys: -key values for the scenario.
    """

    def __init__(self, workdir, tag, scenario, *, remote=None, transport="u1", local_port=None,
                 csv=None, calls=1, rate=None, keys=None, pause_ms=None, timeout_s=30,
                 trace_msg=True, extra=()):
        self.dir = os.path.join(workdir, tag)
        os.makedirs(self.dir, exist_ok=True)
        self.tag = tag
        self.timeout_s = timeout_s
        self.scenario = scenario if os.path.isabs(scenario) else os.path.join(SCENARIOS, scenario)
        cmd = ["sipp"] + ([remote] if remote else []) + [
            "-sf", self.scenario, "-t", transport, "-i", "127.0.0.1", "-bind_local",
            "-nostdin",
            "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err", "-error_file", self.path("errors.log"),
            "-trace_stat", "-stf", self.path("stat.csv"), "-fd", "1",
        ]
        if trace_msg:
            cmd += ["-trace_msg", "-message_file", self.path("messages.log")]
        if calls:  # None: no limit (a callee serving a whole benchmark)
            cmd += ["-m", str(calls)]
        if csv:
            cmd += ["-inf", csv]
        if rate:
            cmd += ["-r", str(rate)]
        if local_port:
            cmd += ["-p", str(local_port)]
        if pause_ms is not None:
            cmd += ["-d", str(pause_ms)]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, str(v)]
        cmd += list(extra)
        self.cmd = cmd
        self.proc = None
        self.rc = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        with open(self.path("command.txt"), "w") as f:
            f.write(" ".join(self.cmd) + "\n")
        self.log = open(self.path("stdout.log"), "w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait(self, grace_s=15):
        """Waits for exit (sipp's own -timeout plus grace); kills it past that. Returns self."""
        try:
            self.rc = self.proc.wait(timeout=self.timeout_s + grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.rc = "killed"
        self.log.close()
        return self

    def run(self):
        return self.start().wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def stat(self):
        return read_sipp_stat(self.path("stat.csv"))

    @property
    def messages(self):
        return read_sipp_messages(self.path("messages.log"))

    @property
    def ok(self):
        s = self.stat
        return self.rc == 0 and s.get("FailedCall(C)") == "0" and s.get("SuccessfulCall(C)", "0") != "0"

    def errors(self):
        try:
            with open(self.path("errors.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def summary(self):
        s = self.stat
        first_error = next((l.strip()[:240] for l in self.errors().splitlines()
                            if l.strip() and not l.startswith("---") and "sipp" not in l[:5]), "")
        text = (f"{self.tag}: exit {self.rc}, successful {s.get('SuccessfulCall(C)', '?')}, "
                f"failed {s.get('FailedCall(C)', '?')}")
        return text + (f" [{first_error}]" if first_error and not self.ok else "")


# ---- TLS relay -----------------------------------------------------------------------------
class TlsRelay:
    """Debian's sipp has no TLS: this relay carries a sipp's TCP connections over TLS.

    to_tls: accepts plain TCP on listen_port, opens TLS (no verification: the servers under
    test use self-signed certificates) to upstream_port (a caller's sipp -> the server's TLS).
    from_tls: accepts TLS on listen_port with cert/key, opens plain TCP to upstream_port (the
    server's outbound TLS -> a callee's sipp). Loopback only.

    One asyncio loop in a thread of its own drives every connection: an OpenSSL connection
    must not be read and written from two threads at once (that corrupts its records).
    """

    def __init__(self, listen_port, upstream_port, mode, cert=None, key=None):
        self.listen_port, self.upstream_port, self.mode = listen_port, upstream_port, mode
        self.server_ctx = None
        if mode == "from_tls":
            self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        self.connections = 0
        self.errors = []
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._server = None
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        if not started.wait(10) or self._server is None:
            raise RuntimeError(f"TLS relay cannot listen on 127.0.0.1:{listen_port}: {self.errors}")

    def _run(self, started):
        asyncio.set_event_loop(self.loop)

        async def listen():
            try:
                self._server = await asyncio.start_server(
                    self._serve, "127.0.0.1", self.listen_port, ssl=self.server_ctx, reuse_address=True)
            except OSError as error:
                self.errors.append(f"{type(error).__name__}: {error}")
            started.set()

        self.loop.run_until_complete(listen())
        self.loop.run_forever()

    async def _serve(self, client_reader, client_writer):
        try:
            if self.mode == "from_tls":
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.upstream_port), 10)
            else:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.upstream_port, ssl=self.client_ctx,
                                            server_hostname="127.0.0.1"), 10)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
            self.errors.append(f"{type(error).__name__}: {error}")
            client_writer.close()
            return
        self.connections += 1
        await asyncio.gather(self._pump(client_reader, up_writer), self._pump(up_reader, client_writer))

    @staticmethod
    async def _pump(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        try:
            writer.close()
        except (OSError, RuntimeError):
            pass

    def close(self):
        def stop():
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(stop)


def make_test_ca(folder):
    """A CA and a leaf certificate for 127.0.0.1 (IP SAN) signed by it, with openssl.
    Returns (ca_cert, leaf_cert, leaf_key) paths."""
    os.makedirs(folder, exist_ok=True)
    p = lambda name: os.path.join(folder, name)  # noqa: E731

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sipd interop test CA",
            "-keyout", p("ca.key"), "-out", p("ca.pem"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", p("leaf.key"), "-out", p("leaf.csr"))
    with open(p("leaf.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", p("leaf.ext"), "-out", p("leaf.pem"))
    return p("ca.pem"), p("leaf.pem"), p("leaf.key")


# ---- Kamailio anchor -----------------------------------------------------------------------
class Kamailio:
    """The Kamailio anchor (shared/anchors/kamailio) run from its own scripts, in run_dir."""

    def __init__(self, anchor_dir, run_dir, users_needed, dbmode="1"):
        self.anchor_dir, self.run_dir = anchor_dir, run_dir
        self.users_needed = users_needed
        self.env = dict(os.environ, RUN_DIR=run_dir, WIPE_LOCATION="1", DBMODE=dbmode)
        self.log_path = os.path.join(run_dir, "kamailio.log")
        self.pid_file = os.path.join(run_dir, "kamailio.pid")

    def subscribers(self):
        done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "kamailio", "-d", "kamailio", "-Atc",
                               "select count(*) from subscriber"],
                              env=dict(os.environ, PGPASSWORD="kamailiorw"), capture_output=True, text=True,
                              timeout=30)
        return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip().isdigit() else 0

    def start(self):
        if not os.path.isfile(os.path.join(self.anchor_dir, "start.sh")):
            raise ToolError(f"no Kamailio anchor in {self.anchor_dir} (--kamailio-dir)")
        if port_bound(KAMAILIO_PORT, "udp"):
            raise ToolError(f"127.0.0.1:{KAMAILIO_PORT} is already in use (another Kamailio?): not touching it")
        if self.subscribers() < self.users_needed:
            # Creates (drops and recreates) the anchor's database with 10,000 users.
            subprocess.run(["bash", os.path.join(self.anchor_dir, "setup-db.sh"), str(max(10000, self.users_needed))],
                           check=True, capture_output=True, timeout=300)
        os.makedirs(self.run_dir, exist_ok=True)
        done = subprocess.run(["bash", os.path.join(self.anchor_dir, "start.sh")], env=self.env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ToolError(f"Kamailio start.sh failed: {done.stdout}{done.stderr}")
        return done.stdout.strip()

    def pids(self):
        """Every process of the Kamailio started here (the main one and its children)."""
        try:
            with open(self.pid_file) as f:
                main = int(f.read().strip())
        except (OSError, ValueError):
            return []
        pids = [main]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == main:
                            pids.append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        return pids

    def alive(self):
        pids = self.pids()
        return bool(pids) and os.path.exists(f"/proc/{pids[0]}")

    def stop(self):
        done = subprocess.run(["bash", os.path.join(self.anchor_dir, "stop.sh")], env=self.env,
                              capture_output=True, text=True, timeout=60)
        return done.returncode

    def tail_log(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def memory_kib(pids):
    """Proportional set size (PSS) summed over pids, in KiB: for one process it is its own
    memory; for Kamailio's processes it counts their shared memory once, not once per process."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total
