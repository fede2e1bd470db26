"""Every Python example of the 20ft SDK document (shared/seeds/20ft-sdk-docs.rst), run as the script it
is (tests/examples/, changed only in the import line and the Location argument; the concurrent-boot
examples run nginx instead of '337c501c333c', a private 20ft upload) against `tycho dev`, each checked
for what the document says it shows. Scripts that end in `signal.pause()` are ended with Ctrl-C, as the
document says, which must end their session: its Lease and every System it spawned are deleted.
"""

import json
import re
import time
import urllib.request
from datetime import datetime

WELCOME = "<title>Welcome to nginx!</title>"


def get(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def wait_gone(cluster, session, timeout=30):
    """The session's Lease and Systems are deleted (the controller collects a closed session)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.lease_exists(session) and not cluster.session_systems(session):
            return True
        time.sleep(0.2)
    return False


def ctrl_c_ends_the_session(cluster, ex):
    session = ex.session()
    assert cluster.session_systems(session), "the session's containers run before Ctrl-C"
    code = ex.interrupt()
    assert code != 0, "Ctrl-C ended the script with a KeyboardInterrupt"
    assert "KeyboardInterrupt" in ex.stderr()
    assert wait_gone(cluster, session), f"session {session} left behind\n{ex.report()}"


def test_first_container_opens_a_browser_on_nginx(cluster, example):
    """Quickstart: best_node().spawn('nginx').attach_browser(), then Ctrl-C cleans up."""
    ex = example("first_container")
    (url,) = ex.until("a browser", ex.browsed)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
    status, body = get(url)
    assert status == 200 and WELCOME in body
    # The steps 20ft logged at INFO (debug_log=False).
    for step in ("Connecting to:", "Spawning container:", "Created tunnel object onto:", "Connected onto:"):
        assert step in ex.stderr(), step
    ctrl_c_ends_the_session(cluster, ex)


def test_docker_workflow_runs_the_last_image(cluster, example):
    """last_image(): the newest local image (here nginx:latest, from the docker stand-in)."""
    ex = example("docker_workflow")
    (url,) = ex.until("a browser", ex.browsed)
    assert WELCOME in get(url)[1]
    (system,) = cluster.session_systems(ex.session())
    assert system["spec"]["containers"][0]["image"] == "nginx:latest"
    ctrl_c_ends_the_session(cluster, ex)


def test_chained_calls_keep_everything_alive(cluster, example):
    """Location(...).best_node().spawn(...).attach_browser() with no reference kept still serves."""
    ex = example("chained")
    (url,) = ex.until("a browser", ex.browsed)
    assert WELCOME in get(url)[1]
    ctrl_c_ends_the_session(cluster, ex)


def test_logs_arrive_as_a_list_of_dictionaries(cluster, example):
    ex = example("some_logs")
    ex.until("a browser", ex.browsed)
    out = ex.until("logs", lambda: "}" in ex.stdout() and ex.stdout())
    decoder = json.JSONDecoder()
    logs, rest = [], out.strip()
    while rest:
        obj, end = decoder.raw_decode(rest)
        logs.append(obj)
        rest = rest[end:].strip()
    assert logs and all(set(log) == {"time", "log"} for log in logs), logs
    assert all(datetime.fromisoformat(log["time"]) for log in logs)
    # wait_http_200's request is in the access log.
    assert any('"GET / HTTP/1.1" 200' in log["log"] for log in logs), logs
    ctrl_c_ends_the_session(cluster, ex)


def test_put_creates_the_path_and_fetch_reads_files(cluster, example):
    ex = example("put_fetch")
    assert ex.finish() == 0, ex.report()
    first, _, conf = ex.stdout().partition("------------------------------------\n")
    assert first == "b'Some data'\n"
    assert "worker_processes" in conf and "http {" in conf
    # The script ended without close(): the session ended at interpreter exit.
    assert wait_gone(cluster, ex.session())


def test_tunnel_to_a_chosen_local_port(cluster, example):
    ex = example("tunnel")
    ex.until("the tunnel", lambda: "Created tunnel object onto:" in ex.stderr())
    status, body = get("http://127.0.0.1:1234/")
    assert status == 200 and WELCOME in body
    assert "(1234 -> 80)" in ex.stderr()
    ctrl_c_ends_the_session(cluster, ex)


def test_webserver_special_case_attach_browser(cluster, example):
    ex = example("webserver")
    (url,) = ex.until("a browser", ex.browsed)
    assert WELCOME in get(url)[1]
    ctrl_c_ends_the_session(cluster, ex)


def test_preboot_files_are_served(cluster, example):
    """debug_log=True, and the pre-boot index.html is what the browser gets."""
    ex = example("preboot")
    (url,) = ex.until("a browser", ex.browsed)
    assert get(url) == (200, "Hello World!")
    assert " INFO " in ex.stderr() and "Connecting to:" in ex.stderr()
    ctrl_c_ends_the_session(cluster, ex)


def test_synchronous_process_lists_processes(cluster, example):
    ex = example("process_sync")
    assert ex.finish() == 0, ex.report()
    lines = ex.stdout().splitlines()
    assert lines[0].split()[:2] == ["PID", "USER"], ex.stdout()
    assert any(line.split()[0] == "1" and "nginx" in line for line in lines[1:]), ex.stdout()
    assert any("ps faxu" in line for line in lines[1:]), ex.stdout()


def test_asynchronous_processes_call_back(cluster, example):
    """Both termination callbacks run; the sleep's after about 3 s. The emulator's shell has no vmstat,
    so its output (through data_callback) is the shell's 'not found' and it ends at once;
    test_api.py::test_callbacks_stream_and_destroy_terminates shows streaming and destroy()."""
    ex = example("process_async")
    start = time.monotonic()
    ex.until("the sleep's end", lambda: "---Sleep terminated---" in ex.stdout(), timeout=60)
    slept = time.monotonic() - start
    assert ex.finish() == 0, ex.report()
    out = ex.stdout()
    assert "vmstat: command not found" in out
    assert out.count("Vmstat terminated") == 1
    assert out.count("---Sleep terminated---") == 1
    assert slept >= 3, "the sleep ran its 3 s"


def test_container_started_asleep_runs_nginx_later(cluster, example):
    ex = example("asleep")
    out = ex.until("two ps listings", lambda: ex.stdout().count("PID") == 2 and ex.stdout(), timeout=120)
    before, after = out.split("PID")[1:]
    assert not any(line.endswith(" nginx") for line in before.splitlines()), before
    assert any(line.endswith(" nginx") for line in after.splitlines()), after
    assert "Connected onto:" in ex.stderr()
    ctrl_c_ends_the_session(cluster, ex)


def stamp(line):
    """The time of a log line in 20ft's format (MMDDhhmmss.mmm)."""
    return datetime.strptime(line.split()[0], "%m%d%H%M%S.%f")


def elapsed(ex):
    lines = ex.stderr().splitlines()
    start = next(line for line in lines if "-----Starting" in line)
    end = next(line for line in lines if "-----Finished" in line)
    return (stamp(end) - stamp(start)).total_seconds()


def test_concurrent_boot_is_faster_than_sequential(cluster, example):
    seq = example("boot_sequential")
    assert seq.finish(timeout=300) == 0, seq.report()
    par = example("boot_concurrent")
    assert par.finish(timeout=300) == 0, par.report()
    for ex in (seq, par):
        assert ex.stderr().count("Connected onto: http://www.atomicdroplet.com:") == 10, ex.report()
    sequential, concurrent = elapsed(seq), elapsed(par)
    print(f"MEASURE 10 containers: sequential {sequential:.2f} s, concurrent {concurrent:.2f} s, "
          f"ratio {sequential / concurrent:.1f}")
    assert concurrent < sequential
