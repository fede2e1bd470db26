"""Wait strategies (tycho.Wait, over tycho_sdk::wait): a log line by regular expression, a TCP port, an
HTTP status other than 200, a command's exit code, and all of them in turn."""

import re
import threading
import time
import urllib.request

import pytest

from tycho import Location, Wait


@pytest.fixture(scope="module")
def location(cluster):
    with Location(lease_duration=10) as loc:
        yield loc


def test_log_line_by_regex_counted(location):
    c = location.spawn("nginx", ports=[80])
    c.wait_for(Wait.log(r"listening on port \d+/TCP"))
    tnl = c.attach_tunnel(80)

    def requests_later():
        time.sleep(1)
        for _ in range(2):
            urllib.request.urlopen(f"http://127.0.0.1:{tnl.localport}/", timeout=10).read()

    t = threading.Thread(target=requests_later)
    t.start()
    start = time.monotonic()
    c.wait_for(Wait.log(re.compile(r'"GET / HTTP/1\.1" 200'), times=2), timeout=30)
    assert time.monotonic() - start >= 0.9, "it waited for the requests"
    t.join()
    with pytest.raises(TimeoutError, match=r"3 log lines matching"):
        c.wait_for(Wait.log(r'"GET / HTTP/1\.1" 200', times=3), timeout=2)
    with pytest.raises(ValueError, match="invalid regular expression"):
        Wait.log("(unclosed")


def test_tcp_port_of_a_server_started_later(location):
    c = location.spawn("nginx", ports=[80], sleep=True)
    with pytest.raises(TimeoutError, match="TCP port 80"):
        c.wait_for(Wait.port(80), timeout=4)
    c.spawn_process("nginx")
    c.wait_for(Wait.port(80), timeout=30)


def test_http_status_other_than_200(location):
    c = location.spawn("nginx", ports=[80])
    c.wait_for(Wait.http("/missing", status=404), timeout=60)
    with pytest.raises(TimeoutError, match=r"HTTP 404 from GET / .*last: HTTP 200"):
        c.wait_for(Wait.http("/", status=404), timeout=2)


def test_command_exit_code(location):
    c = location.spawn("nginx", ports=[80]).wait_ready()

    def ready_later():
        time.sleep(1.5)
        c.put("/tmp/ready", b"1")

    t = threading.Thread(target=ready_later)
    t.start()
    start = time.monotonic()
    c.wait_for(Wait.command("test -f /tmp/ready"), timeout=30)
    assert time.monotonic() - start >= 1.4, "it waited for the file"
    t.join()
    c.wait_for(Wait.command("exit 3", exit_code=3), timeout=10)
    with pytest.raises(TimeoutError, match=r"`false` to exit with 0 \(last: exit code 1\)"):
        c.wait_for(Wait.command("false"), timeout=2)


def test_all_in_turn(location):
    c = location.spawn("nginx", ports=[80])
    strategy = Wait.all(Wait.ready(), Wait.port(80), Wait.http("/"), Wait.command("true"))
    assert "then" in repr(strategy)
    assert c.wait_for(strategy, timeout=60) is c
