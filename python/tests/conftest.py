"""Fixtures of the Python tests: `tycho dev` (the API emulator, its simulated nodes and kubelet, the
CRD and the controller in one process) started once per test session from the `tycho` binary of this
repository, and the environment the seed's examples run in.

The binary: `pytest --tycho PATH`, else `$TYCHO_BIN`, else `target/debug/tycho` of the repository,
else `tycho` on PATH.

The environment (set for this process, so the unittest example sees it too, and inherited by the
example scripts run as subprocesses):
- KUBECONFIG: the emulator's, so `Location()` connects to it as kubectl would;
- XDG_CACHE_HOME: a folder holding the SDK's image-config cache with the ExposedPorts of the images
  the examples run (nginx: 80/tcp, as its registry says), so `spawn('nginx')` exposes port 80 as with
  20ft, without a registry (the machines the tests run on reach none);
- BROWSER: a script that records the URL it is given (`attach_browser`);
- PATH: first a `docker` stand-in whose `docker image ls` lists `nginx:latest`, the image
  `last_image()` then returns (no Docker engine runs here).
"""

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).resolve().parent / "examples"
# The images the examples spawn, with the ports their configuration exposes.
IMAGE_PORTS = {"docker.io/library/nginx:latest": ["80/tcp"]}


def pytest_addoption(parser):
    parser.addoption("--tycho", default=None, help="the tycho binary to run `tycho dev` with")


def tycho_binary(config):
    for candidate in (config.getoption("--tycho"), os.environ.get("TYCHO_BIN")):
        if candidate:
            return str(Path(candidate).resolve())
    built = REPO / "target" / "debug" / "tycho"
    if built.is_file():
        return str(built)
    found = shutil.which("tycho")
    if found:
        return found
    pytest.exit("no tycho binary: pass --tycho PATH or set TYCHO_BIN", returncode=2)


def cache_file_name(key):
    """The SDK's cache file name for `reference platform` (crates/sdk/src/registry.rs)."""
    out = []
    for b in key.encode():
        c = chr(b)
        out.append(c if (c.isascii() and c.isalnum()) or c in ".-" else f"_{b:02x}")
    return "".join(out) + ".json"


def seed_image_cache(cache_home):
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    folder = Path(cache_home) / "tycho" / "image-config"
    folder.mkdir(parents=True, exist_ok=True)
    for reference, ports in IMAGE_PORTS.items():
        plat = f"linux/{arch}"
        entry = {
            "reference": reference,
            "platform": plat,
            "digest": "sha256:" + "0" * 64,
            "fetched": int(time.time()),
            "exposedPorts": ports,
        }
        (folder / cache_file_name(f"{reference} {plat}")).write_text(json.dumps(entry))


class Cluster:
    """The running `tycho dev`: its kubeconfig and a small reader of its API."""

    def __init__(self, kubeconfig, server, workdir):
        self.kubeconfig = kubeconfig
        self.server = server
        self.workdir = workdir

    def get(self, path):
        with urllib.request.urlopen(self.server + path, timeout=10) as r:
            return json.load(r)

    def systems(self, namespace="default"):
        return self.get(f"/apis/tycho.dev/v1alpha1/namespaces/{namespace}/systems")["items"]

    def lease_exists(self, name, namespace="default"):
        try:
            self.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
            return True
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise

    def session_systems(self, session):
        return [s for s in self.systems() if s["spec"].get("session") == session]


def interruptible():
    """For Popen's preexec_fn: give the child the default SIGINT disposition. A shell without job control
    starts background commands with SIGINT ignored, children inherit that, and Python then installs no
    KeyboardInterrupt handler, so the examples' Ctrl-C (sent by these tests) would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def cluster(request, tmp_path_factory):
    binary = tycho_binary(request.config)
    work = tmp_path_factory.mktemp("tycho-dev")
    kubeconfig = work / "kubeconfig"
    log = open(work / "tycho-dev.log", "w")
    proc = subprocess.Popen(
        [binary, "dev", "--kubeconfig", str(kubeconfig), "--metrics-addr", "127.0.0.1:0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    text = ""
    while "Press Ctrl-C to stop." not in text:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.exit(f"tycho dev did not start:\n{(work / 'tycho-dev.log').read_text()}", 2)
        time.sleep(0.1)
        text = (work / "tycho-dev.log").read_text()
    server = re.search(r"listening on (http://\S+)", text).group(1)

    cache_home = work / "cache"
    seed_image_cache(cache_home)
    browser = work / "browser"
    browser.write_text('#!/bin/sh\necho "$1" >> "${TYCHO_TEST_BROWSER_LOG:-/dev/null}"\n')
    browser.chmod(0o755)
    bindir = work / "bin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(
        "#!/bin/sh\n"
        "# A stand-in for the Docker CLI: the newest local image is nginx:latest.\n"
        'if [ "$1 $2" = "image ls" ]; then echo "nginx:latest 605c77e624dd"; exit 0; fi\n'
        'echo "docker stand-in: $*: not supported" >&2; exit 1\n'
    )
    docker.chmod(0o755)
    env = {
        "KUBECONFIG": str(kubeconfig),
        "XDG_CACHE_HOME": str(cache_home),
        "BROWSER": str(browser),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield Cluster(kubeconfig, server, work)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    # Sessions this process still holds end now, while the API server still answers.
    if "tycho" in sys.modules:
        sys.modules["tycho"]._close_all()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


class Example:
    """One of the seed's examples, run as a script (python3 examples/NAME.py) in its own process."""

    def __init__(self, name, workdir):
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self.browser_log = workdir / f"{name}.browser"
        env = dict(os.environ, TYCHO_TEST_BROWSER_LOG=str(self.browser_log))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py")],
            stdout=open(self.out, "w"),
            stderr=open(self.err, "w"),
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=interruptible,
        )

    def stdout(self):
        return self.out.read_text()

    def stderr(self):
        return self.err.read_text()

    def browsed(self):
        return self.browser_log.read_text().split() if self.browser_log.exists() else []

    def until(self, what, check, timeout=90):
        """Poll `check()` until truthy (returned); fail with the outputs when the script ended or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.proc.poll() is not None:
                value = check()
                if value:
                    return value
                pytest.fail(f"{self.name} exited ({self.proc.returncode}) before {what}\n{self.report()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"{self.name}: no {what} within {timeout} s\n{self.report()}")
            time.sleep(0.1)

    def finish(self, timeout=120):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"{self.name} did not end within {timeout} s\n{self.report()}")
        return self.proc.returncode

    def interrupt(self, timeout=30):
        """Ctrl-C, as in the seed's examples that end in signal.pause(); the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def session(self):
        m = re.search(r"Session (\S+) open in namespace", self.stderr())
        assert m, f"{self.name} logged no session\n{self.report()}"
        return m.group(1)

    def report(self):
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"


@pytest.fixture
def example(cluster):
    started = []

    def run(name):
        e = Example(name, cluster.workdir)
        started.append(e)
        return e

    yield run
    for e in started:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait()
