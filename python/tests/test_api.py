"""The Python API beyond the seed's examples: sessions ending with `with` and on Ctrl-C during a wait,
errors as Python exceptions, callbacks that stream while the main thread waits without the GIL, nodes."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import tycho
from tycho import Location, SessionLostError, TychoError, Wait

from conftest import interruptible


@pytest.fixture(scope="module")
def location(cluster):
    with Location(lease_duration=10) as loc:
        yield loc


@pytest.fixture(scope="module")
def nginx(location):
    return location.spawn("nginx", ports=[80]).wait_ready()


def test_with_block_ends_the_session_and_its_containers(cluster):
    with Location() as loc:
        session = loc.session
        c = loc.best_node().spawn("nginx")
        c.wait_ready()
        assert [s["metadata"]["name"] for s in cluster.session_systems(session)] == [c.name]
    assert loc.closed
    with pytest.raises(SessionLostError):
        loc.best_node()
    deadline = time.monotonic() + 30
    while cluster.session_systems(session) or cluster.lease_exists(session):
        assert time.monotonic() < deadline, "the session's System was not collected"
        time.sleep(0.2)


def test_location_argument_is_a_kubeconfig_path_or_a_context(cluster):
    with Location(str(cluster.kubeconfig)) as loc:
        assert loc.server == cluster.server.rstrip("/") or loc.server.startswith(cluster.server)
        assert loc.namespace == "default"
    with pytest.raises(ValueError, match="no kubeconfig file"):
        Location("/no/such/kubeconfig")
    with pytest.raises(ConnectionError):
        Location("no-such-context")
    with pytest.raises(ValueError, match="lease_duration"):
        Location(lease_duration=0)


def test_ranked_nodes_best_first(location):
    nodes = location.ranked_nodes()
    assert len(nodes) == 3, nodes  # tycho dev's default
    assert [n.free_memory for n in nodes] == sorted((n.free_memory for n in nodes), reverse=True)
    assert location.best_node().name == nodes[0].name
    assert all(0 < n.free_cpu <= n.cpu for n in nodes)


def test_errors_are_python_exceptions(location, nginx):
    with pytest.raises(ValueError, match="no such file"):
        nginx.fetch("/no/such/file")
    with pytest.raises(ValueError, match="absolute"):
        nginx.put("relative/path", b"x")
    with pytest.raises(ValueError, match="image is empty"):
        location.spawn("")
    with pytest.raises(ValueError, match="absolute"):
        location.spawn("nginx", pre_boot_files={"relative": "x"})
    with pytest.raises(ValueError, match="not an IP address"):
        nginx.attach_tunnel(80, bind="nowhere")
    with pytest.raises(TimeoutError, match="TCP port 81"):
        nginx.wait_for(Wait.port(81), timeout=2)
    assert issubclass(SessionLostError, TychoError)
    out = nginx.spawn_process("echo out; cat /no/such/file; exit 3")
    assert out.wait_until_complete() == b"out\n"
    assert out.returncode == 3 and b"No such file" in out.stderr


def test_put_and_fetch_bytes_and_text(nginx):
    blob = bytes(range(256)) * 100
    nginx.put("/tmp/a/b/blob.bin", blob)
    assert nginx.fetch("/tmp/a/b/blob.bin") == blob
    nginx.put("/tmp/text.txt", "héllo")
    assert nginx.fetch("/tmp/text.txt") == "héllo".encode()


def test_callbacks_stream_and_destroy_terminates(nginx):
    chunks, ended = [], threading.Event()

    def dc(obj, data):
        chunks.append((time.monotonic(), obj, data))

    def tc(obj):
        ended.set()

    p = nginx.spawn_process("echo tick; sleep 1; echo tock; sleep 60", data_callback=dc, termination_callback=tc)
    deadline = time.monotonic() + 20
    while b"".join(c[2] for c in chunks) != b"tick\ntock\n":
        assert time.monotonic() < deadline, chunks
        time.sleep(0.05)
    # Streamed as written: 'tick' came alone, a second before 'tock'; the callback got the Process.
    assert chunks[0][2] == b"tick\n" and chunks[0][1] is p
    assert chunks[-1][0] - chunks[0][0] > 0.5
    assert not ended.is_set(), "still sleeping"
    p.destroy()
    assert ended.wait(10), "destroy() runs the termination callback"
    assert p.wait_until_complete() == b""


def test_callbacks_run_while_the_main_thread_waits(nginx):
    """A blocking call releases the GIL: callbacks run during it, not after it."""
    seen = []
    nginx.spawn_process("echo a; sleep 1; echo b", data_callback=lambda obj, d: seen.append((time.monotonic(), d)))
    nginx.spawn_process("sleep 3").wait_until_complete()
    waited = time.monotonic()
    assert b"".join(d for _, d in seen) == b"a\nb\n"
    # Held GIL: the callbacks could only run once the wait returned.
    assert all(t < waited - 0.3 for t, _ in seen), (seen, waited)


def test_ctrl_c_interrupts_a_wait_and_ends_the_session(cluster, tmp_path):
    script = tmp_path / "wait_forever.py"
    script.write_text(
        "from tycho import Location, Wait\n"
        "loc = Location(debug_log=False)\n"
        "c = loc.spawn('nginx', ports=[80])\n"
        "print(loc.session, flush=True)\n"
        "c.wait_for(Wait.log('never logged'), timeout=600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    session = proc.stdout.readline().strip()
    assert session, proc.stderr.read()
    deadline = time.monotonic() + 30
    while not cluster.session_systems(session):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)  # well inside the wait
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t < 10, "Ctrl-C ended the wait at once"
    assert "KeyboardInterrupt" in err, err
    deadline = time.monotonic() + 30
    while cluster.session_systems(session) or cluster.lease_exists(session):
        assert time.monotonic() < deadline, "session left behind"
        time.sleep(0.2)


def test_module_surface():
    for name in ("Location", "Node", "Container", "Tunnel", "Process", "Wait", "last_image",
                 "TychoError", "SessionLostError"):
        assert hasattr(tycho, name), name
    stub = os.path.join(os.path.dirname(tycho.__file__), "__init__.pyi")
    assert os.path.exists(stub), "the type stub is installed"
    assert os.path.exists(os.path.join(os.path.dirname(tycho.__file__), "py.typed"))


def test_last_image_asks_docker(tmp_path, monkeypatch):
    """The newest image's repository:tag, or its ID when untagged; ValueError without Docker."""
    docker = tmp_path / "docker"
    docker.write_text('#!/bin/sh\necho "<none>:<none> 91e2255020fe"\necho "web:1 0123456789ab"\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert tycho.last_image() == "91e2255020fe"
    docker.write_text('#!/bin/sh\necho "web:1 0123456789ab"\n')
    assert tycho.last_image() == "web:1"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="cannot run docker"):
        tycho.last_image()
