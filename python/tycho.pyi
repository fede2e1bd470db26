"""The Tycho SDK for Python: containers as objects on Kubernetes, the 20ft way.

A binding of the Rust SDK (``tycho_sdk``). ``Location()`` connects like kubectl and opens a session
(a Lease renewed in the background); everything spawned in it is deleted by the Tycho controller
when the session ends: ``Location.close()``, the end of a ``with`` block, or interpreter exit
(also after Ctrl-C). Blocking calls release the GIL and can be interrupted with Ctrl-C.

Errors: ``ValueError`` for bad arguments and for ``fetch``/``put`` of a missing or too large file
(as 20ft), ``TimeoutError``, ``ConnectionError`` (no cluster), ``OSError`` (local I/O),
``SessionLostError`` (the session is gone), ``TychoError`` for everything else.
"""

import os
from typing import Callable, Iterable, Mapping, Optional, Pattern, Sequence, Tuple, Union

__version__: str

Content = Union[str, bytes]
Files = Union[Mapping[str, Content], Iterable[Tuple[str, Content]]]
Env = Union[Mapping[str, object], Iterable[Tuple[str, object]]]

class TychoError(Exception):
    """An operation failed: the API server refused it, a command in a container failed, a stream
    broke, or a container cannot run (its System failed)."""

class SessionLostError(TychoError):
    """The session is gone: its Lease was deleted, collected or not renewed in time, or the
    Location was closed."""

class Location:
    """A connection to a Kubernetes cluster with an open session (20ft's Location).

    ``location`` names a kubeconfig file (a path) or a context of the default kubeconfig; without
    it the kubeconfig is found as kubectl finds it (``$KUBECONFIG``, ``~/.kube/config``, or the
    in-cluster configuration). ``debug_log``: None leaves logging alone, False sets Python logging
    to INFO and True to DEBUG (20ft's ``-v``/``-vv``); the SDK logs its steps on the ``tycho``
    logger. The session Lease lasts ``lease_duration`` seconds without renewal.

    Use it as a context manager to end the session at the end of the block::

        with Location() as loc:
            loc.best_node().spawn('nginx', ports=[80]).wait_http_200()
    """

    def __init__(
        self,
        location: Optional[str] = None,
        *,
        kubeconfig: Optional[Union[str, os.PathLike[str]]] = None,
        context: Optional[str] = None,
        namespace: Optional[str] = None,
        debug_log: Optional[bool] = None,
        lease_duration: float = 30.0,
    ) -> None: ...
    @property
    def server(self) -> str:
        """The API server's URL."""
    @property
    def namespace(self) -> str:
        """The namespace containers are spawned in."""
    @property
    def session(self) -> str:
        """Name of the session Lease."""
    @property
    def closed(self) -> bool:
        """Whether the session is gone (closed, or lost)."""
    def ranked_nodes(self) -> list[Node]:
        """Ready, schedulable nodes, best first (most free memory, then CPU)."""
    def best_node(self) -> Node:
        """The node with the most free memory and CPU."""
    def spawn(
        self,
        image: str,
        *,
        pre_boot_files: Optional[Files] = None,
        sleep: bool = False,
        env: Optional[Env] = None,
        ports: Optional[Sequence[int]] = None,
        command: Optional[Union[str, Sequence[str]]] = None,
        cpus: Optional[str] = None,
        memory: Optional[str] = None,
        name: Optional[str] = None,
        no_image_check: bool = False,
    ) -> Container:
        """Spawn a container wherever the scheduler puts it; see ``Node.spawn``."""
    def ensure_image_uploaded(self, image: str) -> None:
        """Nothing to do: Kubernetes nodes pull images from their registry. Kept for 20ft scripts."""
    def close(self) -> None:
        """End the session: tunnels and processes stop, the Lease is deleted, and the controller
        deletes every container spawned in it. Closing twice does nothing."""
    def disconnect(self) -> None:
        """20ft's name of ``close``."""
    def __enter__(self) -> Location: ...
    def __exit__(self, *exc: object) -> bool: ...

class Node:
    """A Ready node of the cluster, with its free resources when listed."""

    @property
    def name(self) -> str: ...
    @property
    def free_cpu(self) -> float:
        """Allocatable minus requested CPU, in CPUs."""
    @property
    def free_memory(self) -> int:
        """Allocatable minus requested memory, in bytes."""
    @property
    def cpu(self) -> float:
        """Allocatable CPU, in CPUs."""
    @property
    def memory(self) -> int:
        """Allocatable memory, in bytes."""
    def spawn(
        self,
        image: str,
        *,
        pre_boot_files: Optional[Files] = None,
        sleep: bool = False,
        env: Optional[Env] = None,
        ports: Optional[Sequence[int]] = None,
        command: Optional[Union[str, Sequence[str]]] = None,
        cpus: Optional[str] = None,
        memory: Optional[str] = None,
        name: Optional[str] = None,
        no_image_check: bool = False,
    ) -> Container:
        """Spawn a container on this node and return at once (boot is asynchronous: spawn many,
        then wait, and they boot in parallel).

        ``pre_boot_files`` maps absolute paths to contents written before the container starts;
        ``sleep=True`` starts an idle process instead of the image's (start servers later with
        ``spawn_process``); ``ports`` are the container ports to expose (default: the image's
        exposed ports, read from its registry); ``command`` replaces the entrypoint (a str runs
        with ``sh -c``); ``cpus``/``memory`` are limits such as ``"500m"``/``"256Mi"``;
        ``no_image_check`` is accepted for 20ft scripts and ignored.
        """

class Container:
    """A spawned container (a session-owned System with one container)."""

    @property
    def name(self) -> str:
        """Name of the System."""
    @property
    def uuid(self) -> str:
        """20ft's name of ``name``."""
    @property
    def ports(self) -> list[int]:
        """The exposed ports."""
    def wait_ready(self, timeout: float = 120.0) -> Container:
        """Wait until the container runs; returns self."""
    def attach_tunnel(
        self,
        port: int,
        localport: Optional[int] = None,
        bind: Optional[str] = None,
        timeout: float = 120.0,
    ) -> Tunnel:
        """A TCP tunnel from ``bind:localport`` (default 127.0.0.1 and a free port, then in
        ``.localport``) to ``port`` of the container, through the API server. It lives until
        destroyed or the session ends. Waits for the container to run first."""
    def wait_http_200(
        self,
        port: Optional[int] = None,
        fqdn: Optional[str] = None,
        path: str = "/",
        timeout: float = 120.0,
    ) -> Tunnel:
        """Tunnel to ``port`` (default: the first exposed port, else 80) and poll ``path`` until it
        answers HTTP 200, with ``fqdn`` as the Host header. Returns the tunnel."""
    def attach_browser(
        self,
        port: Optional[int] = None,
        fqdn: Optional[str] = None,
        path: str = "/",
        timeout: float = 120.0,
    ) -> Tunnel:
        """``wait_http_200``, then open a web browser on the tunnel (``$BROWSER``, else
        ``xdg-open``/``open``)."""
    def logs(self) -> list[dict[str, str]]:
        """The log so far: ``[{"time": ISO 8601, "log": text}, ...]``."""
    def fetch(self, filename: str) -> bytes:
        """The content of a file (held in memory). ValueError when missing or too large."""
    def put(self, filename: str, data: Content) -> None:
        """Write a file, creating missing directories. ValueError for a relative path."""
    def spawn_process(
        self,
        cmd: str,
        data_callback: Optional[Callable[[Process, bytes], object]] = None,
        termination_callback: Optional[Callable[[Process], object]] = None,
    ) -> Process:
        """Start a shell command line in the container. ``data_callback(process, data)`` receives
        its output (stdout and stderr) as it comes and ``termination_callback(process)`` runs when
        it ends, on a thread of their own. It runs until it ends, is destroyed, or the session
        ends."""
    def wait_for(self, strategy: Wait, timeout: float = 60.0) -> Container:
        """Wait until ``strategy`` holds (after the container runs); returns self. TimeoutError
        names what was awaited and the last observation."""
    def destroy(self) -> None:
        """Delete the container."""
    def __enter__(self) -> Container: ...
    def __exit__(self, *exc: object) -> bool:
        """Destroys the container."""

class Tunnel:
    """A TCP tunnel from a local port to a container port."""

    @property
    def localport(self) -> int: ...
    @property
    def port(self) -> int:
        """The container port."""
    @property
    def dest_port(self) -> int:
        """20ft's name of ``port``."""
    @property
    def bind(self) -> str:
        """The local address it listens on."""
    @property
    def open(self) -> bool:
        """Whether it still listens."""
    def url(self, fqdn: Optional[str] = None, path: str = "/") -> str:
        """``http://HOST:LOCALPORT/PATH``."""
    def destroy(self) -> None:
        """Stop listening."""
    def __enter__(self) -> Tunnel: ...
    def __exit__(self, *exc: object) -> bool: ...

class Process:
    """A command running in a container."""

    @property
    def cmd(self) -> str: ...
    @property
    def returncode(self) -> Optional[int]:
        """The exit code once it ended."""
    @property
    def stderr(self) -> Optional[bytes]:
        """Its stderr, once ``wait_until_complete`` returned (None with callbacks)."""
    def wait_until_complete(self, timeout: Optional[float] = None) -> bytes:
        """Wait until it ends; its stdout (``b""`` when callbacks received the output, or after
        ``destroy()``). ``timeout`` in seconds raises TimeoutError: a process without callbacks is
        then stopped, one with callbacks keeps running."""
    def destroy(self) -> None:
        """Terminate it (the termination callback runs)."""

class Wait:
    """A condition for ``Container.wait_for``, as Testcontainers' wait strategies."""

    @staticmethod
    def log(pattern: Union[str, Pattern[str]], times: int = 1) -> Wait:
        """A log line matching a regular expression (Rust ``regex`` syntax), ``times`` times."""
    @staticmethod
    def port(port: int) -> Wait:
        """A container port accepts TCP connections."""
    @staticmethod
    def http(
        path: str = "/", status: int = 200, port: Optional[int] = None, fqdn: Optional[str] = None
    ) -> Wait:
        """``GET path`` answers ``status``."""
    @staticmethod
    def command(cmd: str, exit_code: int = 0) -> Wait:
        """A shell command in the container exits with ``exit_code``."""
    @staticmethod
    def ready() -> Wait:
        """The container runs."""
    @staticmethod
    def all(*strategies: Wait) -> Wait:
        """Each strategy in turn, within one timeout."""

def last_image() -> str:
    """The newest image of the local Docker engine (``repository:tag``, or its ID when untagged).
    ValueError when Docker is missing or has no image."""
