"""Shared helpers for the SIP interop test (tests/interop/sip) and the load benchmark (bench/).

Python 3.11 standard library only. Starts `sipd serve` in a scratch folder with SIP on chosen
loopback ports, creates an account and endpoints through the REST API (a thread pool of
keep-alive HTTP connections), and reads endpoint state back through the paged list endpoint.
Every wait polls for its event with a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import queue
import socket
import ssl
import subprocess
import threading
import time
import uuid

API_TIMEOUT_SECONDS = 30


class SipdError(RuntimeError):
    pass


class Sipd:
    """One `sipd serve` in `workdir`. `sip` maps transport -> "127.0.0.1:port" or "off"."""

    def __init__(self, binary, workdir, database_url, domain, sip, extra_env=None):
        self.binary = binary
        self.workdir = workdir
        self.domain = domain
        self.sip = dict(sip)
        # Only what we set: no SIPD_* settings leak in from the caller's environment.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIPD_")}
        self.env.update(
            {
                "SIPD_API_LISTEN": "127.0.0.1:0",
                "SIPD_DATABASE_URL": database_url,
                "SIPD_SIP_DOMAIN": domain,
                "SIPD_DATA_DIR": os.path.join(workdir, "data"),
                "SIPD_LOG_LEVEL": os.environ.get("SIPD_HARNESS_LOG_LEVEL", "info"),
            }
        )
        for transport in ("udp", "tcp", "tls", "wss", "ws"):
            self.env[f"SIPD_SIP_{transport.upper()}"] = self.sip.get(transport, "off")
        if extra_env:
            self.env.update(extra_env)
        self.process = None
        self.log_path = os.path.join(workdir, "sipd.log")
        self._log_file = None
        self.api_host = None
        self.api_port = None

    # -- one-shot commands ------------------------------------------------------------------
    def run(self, *args, timeout=120):
        done = subprocess.run(
            [self.binary, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise SipdError(f"sipd {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def create_account(self, name="interop"):
        out = self.run("account", "create", "--name", name)
        account = json.loads(out.strip().splitlines()[-1])
        return account["auth_id"], account["auth_token"]

    # -- serve ----------------------------------------------------------------------------
    def start(self, timeout=120):
        self._log_file = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            [self.binary, "serve"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        # Callers' shell traps kill what is listed here if this Python process dies first.
        pid_list = os.environ.get("SIPD_HARNESS_PID_FILE")
        if pid_list:
            with open(pid_list, "a", encoding="ascii") as f:
                f.write(f"{self.process.pid}\n")
        lines: queue.Queue = queue.Queue()

        def pump():
            for line in self.process.stderr:
                self._log_file.write(line)
                self._log_file.flush()
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        marker = "API listening on http://"
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise SipdError(f"sipd did not log '{marker}' within {timeout}s; see {self.log_path}")
            if line is None:
                raise SipdError(f"sipd exited during start; see {self.log_path}:\n{self.tail_log()}")
            if marker in line:
                address = line.split(marker, 1)[1].split()[0].strip('"')
                host, port = address.rsplit(":", 1)
                self.api_host, self.api_port = host, int(port)
                break
        # Drain the queue in the background so the pipe never fills.
        threading.Thread(target=lambda: [None for _ in iter(lines.get, None)], daemon=True).start()

    def wait_sip_ready(self, timeout=60):
        """Polls every enabled SIP transport until it answers (UDP: any SIP response to a probe
        REGISTER; stream transports: the port accepts connections)."""
        deadline = time.monotonic() + timeout
        for transport, address in self.sip.items():
            if address == "off":
                continue
            host, port = address.rsplit(":", 1)
            port = int(port)
            while True:
                if self.process.poll() is not None:
                    raise SipdError(f"sipd exited; see {self.log_path}:\n{self.tail_log()}")
                ok = udp_probe(host, port, self.domain) if transport == "udp" else tcp_open(host, port)
                if ok:
                    break
                if time.monotonic() > deadline:
                    raise SipdError(f"SIP {transport} on {address} did not answer within {timeout}s")
                time.sleep(0.1)  # poll interval between probes, bounded by the deadline

    def pid(self):
        return self.process.pid

    def rss_kib(self):
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise SipdError("no VmRSS")

    def tail_log(self, lines=40):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=30):
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file:
            # The pump thread may still hold the file; flush what we have.
            try:
                self._log_file.flush()
            except ValueError:
                pass
        return self.process.returncode


def tcp_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def udp_register(host, port, domain, user, expires=0, timeout=0.5):
    """Sends one unauthenticated REGISTER over UDP; returns the first reply's text or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex
        msg = (
            f"REGISTER sip:{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{domain}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:{user}@{domain}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{local_port}>\r\n"
            f"Expires: {expires}\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(timeout)
        sock.sendto(msg.encode(), (host, port))
        deadline = time.monotonic() + timeout
        while True:
            data, _ = sock.recvfrom(65535)
            text = data.decode("utf-8", "replace")
            # Skip provisional replies (100 Trying).
            if not text.startswith("SIP/2.0 1") or time.monotonic() > deadline:
                return text
    except OSError:
        return None
    finally:
        sock.close()


def udp_probe(host, port, domain):
    """An unauthenticated REGISTER for a user that does not exist; any SIP reply counts."""
    reply = udp_register(host, port, domain, "probe")
    return reply is not None and reply.startswith("SIP/2.0 ")


class Api:
    """Minimal Vobiz-style API client; one keep-alive connection per thread."""

    def __init__(self, host, port, auth_id, auth_token):
        self.host, self.port = host, port
        self.auth_id, self.auth_token = auth_id, auth_token
        self.base = f"/api/v1/Account/{auth_id}"
        self._local = threading.local()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=API_TIMEOUT_SECONDS)
            self._local.conn = conn
        return conn

    def request(self, method, path, body=None):
        headers = {"X-Auth-ID": self.auth_id, "X-Auth-Token": self.auth_token}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):  # one retry on a connection the server closed meanwhile
            conn = self._conn()
            try:
                conn.request(method, self.base + path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 1:
                    raise
        text = data.decode("utf-8", "replace")
        if resp.status >= 300:
            raise SipdError(f"{method} {path} -> {resp.status}: {text[:300]}")
        return json.loads(text) if text else None

    def create_endpoint(self, username, password):
        reply = self.request(
            "POST", "/Endpoint/", {"username": username, "password": password, "alias": username}
        )
        return reply["endpoint_id"]

    def get_endpoint(self, endpoint_id):
        return self.request("GET", f"/Endpoint/{endpoint_id}/")

    def list_endpoints(self):
        """Every endpoint of the account, through the paged list (limit 100)."""
        objects, offset = [], 0
        while True:
            page = self.request("GET", f"/Endpoint/?limit=100&offset={offset}")
            objects.extend(page["objects"])
            offset += len(page["objects"])
            if not page["objects"] or offset >= page["meta"]["total_count"]:
                return objects


def user_name(prefix, i):
    return f"{prefix}{i:06d}"


def user_password(i):
    return f"pw-{i:06d}-secret"


def create_endpoints(api, count, prefix="u", workers=16, start=0):
    """Creates `count` endpoints in parallel; returns {username: (endpoint_id, password)}."""

    def one(i):
        name, password = user_name(prefix, i), user_password(i)
        return name, api.create_endpoint(name, password), password

    result = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for name, endpoint_id, password in pool.map(one, range(start, start + count)):
            result[name] = (endpoint_id, password)
    return result


def write_users_csv(path, users):
    """sipp injection file: SEQUENTIAL, one `username;password` line per user."""
    with open(path, "w", encoding="ascii") as f:
        f.write("SEQUENTIAL\n")
        for name, (_, password) in sorted(users.items()):
            f.write(f"{name};{password}\n")


def insecure_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
