#!/usr/bin/env python3
"""Interop test: the official Vobiz Python SDK (vobiz-python 0.1.1, unchanged) against a real sipd.

    python vobiz_sdk.py PATH/TO/sipd

Starts `sipd serve` in a temporary folder (SQLite database, API on a free port chosen by the
kernel and read back from sipd's log), creates an account with `sipd account create`, then
drives endpoints, applications and sub-accounts through the SDK and checks what comes back.
Prints one line per check and closes with "N passed, N failed"; exits non-zero on any failure.
The server is stopped on the way out, whatever happened.

Run it through run_vobiz_sdk.sh, which installs the SDK into a venv and builds sipd.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import vobiz
import vobiz.resources.applications
import vobiz.resources.subaccounts
from vobiz.exceptions import (
    AuthenticationError,
    InvalidRequestError,
    ResourceNotFoundError,
    ValidationError,
)

# Upper bound of every wait for sipd (start, a command, the stop); each wait ends at the event.
TIMEOUT_SECONDS = 60


class Sipd:
    """A `sipd serve` in its own folder; `base_url` is read from its "API listening" log line."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        # Only what this test sets: no SIPD_* settings leak in from the caller's environment.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SIPD_")}
        self.env["SIPD_API_LISTEN"] = "127.0.0.1:0"
        # This test speaks only HTTP: SIP on free loopback ports, so 5060 and friends may be taken.
        for transport in ("UDP", "TCP", "TLS", "WSS"):
            self.env[f"SIPD_SIP_{transport}"] = "127.0.0.1:0"
        self.env["SIPD_DATABASE_URL"] = "sqlite://data/sipd.db"
        self.log = []
        self.process = None
        self.base_url = None

    def run(self, *args):
        """Runs a one-shot sipd command; returns its stdout."""
        done = subprocess.run(
            [self.binary, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sipd {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "serve"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()

        def read_stderr():
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        marker = "API listening on http://"
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("sipd did not start in time:\n" + "\n".join(self.log))
            if line is None:
                raise RuntimeError("sipd exited during start:\n" + "\n".join(self.log))
            if marker in line:
                address = line.split(marker, 1)[1].split()[0].strip('"')
                self.base_url = "http://" + address
                return

    def stop(self):
        """SIGTERM, then wait for the exit; returns the exit code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


def sdk_client(base_url, auth_id, auth_token):
    """An unmodified SDK client aimed at sipd. The SDK has no base-URL option: endpoint calls
    use the client's `base_uri` attribute, while the applications and sub-accounts modules build
    URLs from their module-level `VOBIZ_API_V1` constant, so those three values are set."""
    client = vobiz.RestClient(auth_id=auth_id, auth_token=auth_token, timeout=30)
    client.base_uri = base_url + "/api/v1/Account"
    vobiz.resources.applications.VOBIZ_API_V1 = base_url + "/api/v1"
    vobiz.resources.subaccounts.VOBIZ_API_V1 = base_url + "/api/v1"
    return client


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, check):
        try:
            check()
        except Exception:  # a failed check is reported, the others still run
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect_error(error_type, call):
    try:
        call()
    except error_type as error:
        return error
    raise AssertionError(f"expected {error_type.__name__}")


def field(obj, name):
    """A reply field; the SDK hands out ResponseObjects (attributes), or dicts inside lists."""
    if isinstance(obj, dict):
        return obj[name]
    return getattr(obj, name)


def endpoint_checks(checks, client, state):
    def create():
        reply = client.endpoints.create(username="alice01", password="s3cret-pass1", alias="Alice Desk")
        assert field(reply, "message") == "created", reply
        assert field(reply, "username") == "alice01", reply
        assert field(reply, "endpoint_id").isdigit(), reply
        assert field(reply, "sip_uri").startswith("sip:alice01@"), reply
        state["endpoint_id"] = field(reply, "endpoint_id")

    def retrieve():
        endpoint = client.endpoints.get(state["endpoint_id"])
        assert field(endpoint, "endpoint_id") == state["endpoint_id"], endpoint
        assert field(endpoint, "alias") == "Alice Desk", endpoint
        assert field(endpoint, "username") == "alice01", endpoint
        assert field(endpoint, "sip_registered") == "false", endpoint
        assert "password" not in endpoint, endpoint

    def list_and_page():
        created = {state["endpoint_id"]}
        for n in range(24):
            reply = client.endpoints.create(username=f"user{n:02d}", password="s3cret-pass1")
            created.add(field(reply, "endpoint_id"))
        first = client.endpoints.list()
        assert field(first.meta, "total_count") == 25, first.meta
        assert len(first.objects) == 20 and field(first.meta, "limit") == 20, first.meta
        seen = []
        offset = 0
        while True:  # the way the SDK's own iterator pages: limit 10, offset += 10 until empty
            page = client.endpoints.list(limit=10, offset=offset)
            if not page.objects:
                break
            seen.extend(field(obj, "endpoint_id") for obj in page.objects)
            offset += 10
        assert len(seen) == len(set(seen)) == 25, seen
        assert set(seen) == created
        filtered = client.endpoints.list(username__exact="alice01")
        assert [field(obj, "endpoint_id") for obj in filtered.objects] == [state["endpoint_id"]]

    def update():
        client.endpoints.update(state["endpoint_id"], alias="Alice Mobile", password="n3w-password")
        endpoint = client.endpoints.get(state["endpoint_id"])
        assert field(endpoint, "alias") == "Alice Mobile", endpoint

    def invalid_input():
        error = expect_error(
            ValidationError, lambda: client.endpoints.update(state["endpoint_id"], password="short")
        )
        assert "invalid" in str(error).lower(), error
        expect_error(
            InvalidRequestError,
            lambda: client.endpoints.create(username="alice01", password="s3cret-pass1"),
        )

    def delete():
        client.endpoints.delete(state["endpoint_id"])
        expect_error(ResourceNotFoundError, lambda: client.endpoints.get(state["endpoint_id"]))
        assert field(client.endpoints.list().meta, "total_count") == 24

    checks.run("endpoint create", create)
    checks.run("endpoint retrieve", retrieve)
    checks.run("endpoint list and paging", list_and_page)
    checks.run("endpoint update", update)
    checks.run("endpoint invalid input (400, 409)", invalid_input)
    checks.run("endpoint delete", delete)


def application_checks(checks, client, state):
    def create():
        reply = client.applications.create(
            name="support-app",
            answer_url="https://example.com/answer",
            hangup_url="https://example.com/hangup",
            application_type="XML",
        )
        assert field(reply, "message") == "created", reply
        assert field(reply, "app_id").isdigit(), reply
        state["app_id"] = field(reply, "app_id")

    def retrieve():
        app = client.applications.get(state["app_id"])
        assert field(app, "app_id") == state["app_id"], app
        assert field(app, "app_name") == "support-app", app
        assert field(app, "answer_url") == "https://example.com/answer", app
        assert field(app, "answer_method") == "POST", app
        assert field(app, "hangup_url") == "https://example.com/hangup", app

    def list_and_page():
        created = {state["app_id"]}
        for n in range(6):
            reply = client.applications.create(name=f"app-{n}", answer_url=f"https://example.com/{n}")
            created.add(field(reply, "app_id"))
        seen = []
        page_number = 1
        while True:  # the SDK's application list pages with page/size
            page = client.applications.list(page=page_number, size=3)
            if not page.objects:
                break
            assert field(page.meta, "total_count") == 7, page.meta
            seen.extend(field(obj, "app_id") for obj in page.objects)
            page_number += 1
        assert page_number == 4, page_number  # pages of 3, 3 and 1
        assert len(seen) == len(set(seen)) == 7 and set(seen) == created, seen

    def update():
        client.applications.update(state["app_id"], answer_url="https://example.com/v2", answer_method="GET")
        app = client.applications.get(state["app_id"])
        assert field(app, "answer_url") == "https://example.com/v2", app
        assert field(app, "answer_method") == "GET", app

    def bind_endpoint():
        reply = client.endpoints.create(username="bob01", password="s3cret-pass1", application=state["app_id"])
        endpoint = client.endpoints.get(field(reply, "endpoint_id"))
        assert field(endpoint, "application").endswith(f"/Application/{state['app_id']}/"), endpoint
        expect_error(
            ValidationError,
            lambda: client.endpoints.create(username="bob02", password="s3cret-pass1", application="1234"),
        )

    def delete():
        client.applications.delete(state["app_id"])
        expect_error(ResourceNotFoundError, lambda: client.applications.get(state["app_id"]))

    checks.run("application create", create)
    checks.run("application retrieve", retrieve)
    checks.run("application list and paging (page/size)", list_and_page)
    checks.run("application update", update)
    checks.run("endpoint bound to an application", bind_endpoint)
    checks.run("application delete", delete)


def sub_account_checks(checks, client, base_url, state):
    def create():
        reply = client.subaccounts.create(
            name="Tenant A",
            email="ops@tenant-a.example",
            rate_limit=500,
            permissions={"calls": True, "cdr": True},
            password="console-pass1",
        )
        sub = field(reply, "sub_account")
        credentials = field(reply, "auth_credentials")
        assert field(sub, "auth_id").startswith("SA_"), reply
        assert field(sub, "name") == "Tenant A", reply
        assert field(sub, "rate_limit") == 500, reply
        assert field(credentials, "auth_id") == field(sub, "auth_id"), reply
        state["sub_auth_id"] = field(credentials, "auth_id")
        state["sub_auth_token"] = field(credentials, "auth_token")

    def list_and_retrieve():
        client.subaccounts.create(
            name="Tenant B", email="ops@tenant-b.example", rate_limit=100, permissions={}, password="console-pass1"
        )
        listing = client.subaccounts.list(page=1, size=10)
        names = [field(sub, "name") for sub in field(listing, "sub_accounts")]
        assert field(listing, "total") == 2 and sorted(names) == ["Tenant A", "Tenant B"], listing
        sub = client.subaccounts.get(state["sub_auth_id"])
        assert field(sub, "name") == "Tenant A", sub
        assert field(sub, "auth_token") != state["sub_auth_token"], "a read reveals the token"

    def update():
        client.subaccounts.update(state["sub_auth_id"], name="Tenant A2", rate_limit=750)
        sub = client.subaccounts.get(state["sub_auth_id"])
        assert field(sub, "name") == "Tenant A2" and field(sub, "rate_limit") == 750, sub

    def own_credentials():
        child = sdk_client(base_url, state["sub_auth_id"], state["sub_auth_token"])
        reply = child.endpoints.create(username="tenant01", password="s3cret-pass1")
        endpoint = child.endpoints.get(field(reply, "endpoint_id"))
        assert field(endpoint, "sub_account") == state["sub_auth_id"], endpoint
        # The parent sees the child's endpoint, tagged with the sub-account.
        parent_view = client.endpoints.list(sub_account=state["sub_auth_id"])
        assert [field(obj, "username") for obj in parent_view.objects] == ["tenant01"], parent_view

    def delete():
        client.subaccounts.delete(state["sub_auth_id"])
        expect_error(ResourceNotFoundError, lambda: client.subaccounts.get(state["sub_auth_id"]))

    checks.run("sub-account create", create)
    checks.run("sub-account list and retrieve", list_and_retrieve)
    checks.run("sub-account update", update)
    checks.run("sub-account uses its own credentials", own_credentials)
    checks.run("sub-account delete", delete)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="sipd-interop-") as workdir:
        sipd = Sipd(binary, workdir)
        try:
            credentials = json.loads(sipd.run("account", "create", "--name", "Interop"))
            sipd.start()
            print(f"sipd {sipd.base_url}, account {credentials['auth_id']}")
            client = sdk_client(sipd.base_url, credentials["auth_id"], credentials["auth_token"])
            state = {}

            def health():
                import requests  # installed with the SDK

                assert requests.get(sipd.base_url + "/health", timeout=30).status_code == 200

            def wrong_token():
                stranger = sdk_client(sipd.base_url, credentials["auth_id"], "not-the-token")
                expect_error(AuthenticationError, lambda: stranger.endpoints.list())

            checks.run("health", health)
            checks.run("wrong token is refused (401)", wrong_token)
            endpoint_checks(checks, client, state)
            application_checks(checks, client, state)
            sub_account_checks(checks, client, sipd.base_url, state)
        except Exception:
            checks.failed += 1
            print("FAIL setup")
            traceback.print_exc(file=sys.stdout)
        finally:
            exit_code = sipd.stop()
            if sipd.process is not None and exit_code != 0:
                checks.failed += 1
                print(f"FAIL sipd stopped with exit code {exit_code}")
            if checks.failed:
                print("--- sipd log ---")
                print("\n".join(sipd.log))
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
