"""pyctr's embedded DNS server: 127.0.0.11:53 inside every container on a user-defined network.

Stdlib only, run as `python -I -S dns_server.py <network dir>`: one process per pyctr root, started by the
first container that needs it, gone once no container is registered and no user network exists. Like
Docker's resolver it listens inside each container's network namespace, but without a DNAT: the runtime binds
a UDP socket to 127.0.0.11:53 from a thread that entered the namespace and hands it over this server's control
socket (`dns.sock`, SCM_RIGHTS) with the container's pid; a pidfd of that pid tells when to close it again (the
socket would otherwise keep the namespace, and the veth in it, alive).

Answers come from `dns.json` (written atomically by the runtime under the network lock on every connect,
disconnect, start and stop; re-read when its identity changes): A records for the container names, network
aliases and short ids on the networks of the container that asks (and its --link aliases), PTR for their
addresses (`name.network`, as Docker's); AAAA for a known name is an empty NOERROR (no IPv6), as Docker's;
anything else goes to the container's upstream resolvers from the host's namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

TTL = 600
TYPE_A, TYPE_PTR, TYPE_AAAA, CLASS_IN = 1, 12, 28, 1
RCODE_OK, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 1, 2, 3
UPSTREAM_TIMEOUT = 3.0
IDLE_CHECK_SECONDS = 0.5
MAX_FORWARDS = 64  # queries waiting upstream at once: a container flooding unknown names gets SERVFAIL beyond
MAX_FORWARDS_PER_CONTAINER = MAX_FORWARDS // 4  # so one container's flood never starves the others
TCP_MESSAGE_DEADLINE = 3.0  # a whole TCP message, not each recv: a byte every few seconds holds no slot for long
CONTROL_NAME, RECORDS_NAME, LOCK_NAME, NETWORKS_NAME = "dns.sock", "dns.json", "dns.lock", "networks.json"


# ------------------------------------------------------------------------------------------- packets (pure)

class Query:
    """The parts of a DNS query the server needs: id, flags, the one question (name lower-cased, raw bytes)."""

    __slots__ = ("ident", "flags", "name", "qtype", "qclass", "question")

    def __init__(self, ident: int, flags: int, name: str, qtype: int, qclass: int, question: bytes) -> None:
        self.ident, self.flags, self.name, self.qtype, self.qclass, self.question = \
            ident, flags, name, qtype, qclass, question


def parse_query(packet: bytes) -> Query | None:
    """A standard query with exactly one question, else None (answered FORMERR or forwarded by the caller)."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack_from("!HHH", packet)
    if flags & 0x8000 or (flags >> 11) & 0xF or qdcount != 1:
        return None
    offset, labels = 12, []
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(packet):
            return None
        labels.append(packet[offset:offset + length])
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    try:
        name = b".".join(labels).decode("ascii").lower()
    except UnicodeDecodeError:
        return None
    return Query(ident, flags, name, qtype, qclass, packet[12:offset + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_query(ident: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A recursive query (for tests and the latency client)."""
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def build_response(query: Query, addresses: list[str], rcode: int = RCODE_OK) -> bytes:
    """The answer to `query`: its question echoed (case kept), one A record per address (name by pointer)."""
    flags = 0x8000 | (query.flags & 0x7900) | 0x0080 | rcode  # QR, opcode+RD kept, RA
    header = struct.pack("!HHHHHH", query.ident, flags, 1, len(addresses), 0, 0)
    answers = b"".join(struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
                       for a in addresses)
    return header + query.question + answers


def build_ptr_response(query: Query, target: str) -> bytes:
    """The answer to a PTR query: one PTR record naming `target` (the question's name by pointer)."""
    flags = 0x8000 | (query.flags & 0x7900) | 0x0080 | RCODE_OK
    header = struct.pack("!HHHHHH", query.ident, flags, 1, 1, 0, 0)
    rdata = encode_name(target)
    return header + query.question + struct.pack("!HHHIH", 0xC00C, TYPE_PTR, CLASS_IN, TTL, len(rdata)) + rdata


def reverse_name(ip: str) -> str:
    """`172.18.0.2` -> `2.0.18.172.in-addr.arpa` (the name a PTR query asks)."""
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def formerr(packet: bytes) -> bytes | None:
    """FORMERR for a malformed query; None for what is no query at all: too short, or a response (QR set).
    Never answering a response is what stops a forged packet from 127.0.0.11:53 to itself from looping."""
    if len(packet) < 12:
        return None
    ident, flags = struct.unpack_from("!HH", packet)
    if flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x7900) | RCODE_FORMERR, 0, 0, 0, 0)


def parse_answer(packet: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a response: what tests and the latency client read."""
    _, flags, qdcount, ancount = struct.unpack_from("!HHHH", packet)
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(packet, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = _skip_name(packet, offset)
        rtype, _, _, length = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        if rtype == TYPE_A and length == 4:
            addresses.append(socket.inet_ntoa(packet[offset:offset + 4]))
        offset += length
    return flags & 0xF, addresses


def _skip_name(packet: bytes, offset: int) -> int:
    while True:
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def decide(query: Query, names: dict[str, list[str]], forward: bool,
           reverse: dict[str, str] | None = None) -> tuple[str, list[str], int]:
    """("answer", addresses, rcode), ("ptr", [name], 0) or ("forward", [], 0): Docker's resolver in one table.

    A and AAAA of a name on the asker's networks are answered here (AAAA empty: no IPv6), and PTR of an
    address on them (`reverse`: in-addr.arpa name -> `container.network`); other names and types go upstream
    unless the container is only on internal networks (then SERVFAIL)."""
    known = names.get(query.name.rstrip("."))
    if known is not None and query.qclass == CLASS_IN and query.qtype in (TYPE_A, TYPE_AAAA):
        return "answer", (list(known) if query.qtype == TYPE_A else []), RCODE_OK
    target = (reverse or {}).get(query.name.rstrip("."))
    if target is not None and query.qclass == CLASS_IN and query.qtype == TYPE_PTR:
        return "ptr", [target], RCODE_OK
    if forward:
        return "forward", [], 0
    return "answer", [], RCODE_SERVFAIL


# ------------------------------------------------------------------------------------------- the server

class ForwardSlots:
    """Who holds the server's forwarding threads (UDP queries waiting upstream, TCP connections).

    A bounded semaphore alone let one container take all MAX_FORWARDS with slow TCP messages, and every
    other container then got SERVFAIL: each container may also hold at most `per_container`. Thread-safe;
    a container holding nothing has no entry (no growth over container lifetimes)."""

    def __init__(self, total: int = MAX_FORWARDS, per_container: int = MAX_FORWARDS_PER_CONTAINER) -> None:
        self.total, self.per_container = total, per_container
        self.held: dict[str, int] = {}
        self.lock = threading.Lock()

    def acquire(self, container_id: str) -> bool:
        """Take a slot for `container_id`; False when the server or that container is at its limit."""
        with self.lock:
            mine = self.held.get(container_id, 0)
            if mine >= self.per_container or sum(self.held.values()) >= self.total:
                return False
            self.held[container_id] = mine + 1
            return True

    def release(self, container_id: str) -> None:
        with self.lock:
            mine = self.held.get(container_id, 0)
            if mine <= 1:
                self.held.pop(container_id, None)
            else:
                self.held[container_id] = mine - 1

    def in_use(self, container_id: str | None = None) -> int:
        with self.lock:
            return sum(self.held.values()) if container_id is None else self.held.get(container_id, 0)


class Records:
    """dns.json, re-read whenever the runtime replaced it (a stat per query: ~2 us)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: tuple | None = None
        self.table: dict = {"networks": {}, "containers": {}}
        self.views: dict[str, dict[str, list[str]]] = {}
        self.reverse_views: dict[str, dict[str, str]] = {}

    def view(self, container_id: str) -> tuple[dict[str, list[str]], bool]:
        """The names container `container_id` may resolve, and whether it may forward."""
        self._refresh()
        entry = self.table["containers"].get(container_id) or {}
        names = self.views.get(container_id)
        if names is None:
            names = {}
            for network_id in entry.get("networks", []):
                for name, addresses in self.table["networks"].get(network_id, {}).items():
                    names.setdefault(name, [])
                    names[name] += [a for a in addresses if a not in names[name]]
            for alias, target in (entry.get("links") or {}).items():  # --link on a user network: its own alias
                if target in names:
                    names[alias] = list(names[target])
            self.views[container_id] = names
        return names, not entry.get("internal", False)

    def reverse_view(self, container_id: str) -> dict[str, str]:
        """in-addr.arpa name -> `container.network` for the addresses on the asker's networks (call after view)."""
        reverse = self.reverse_views.get(container_id)
        if reverse is None:
            reverse = {}
            entry = self.table["containers"].get(container_id) or {}
            for network_id in entry.get("networks", []):
                for name, target in (self.table.get("reverse") or {}).get(network_id, {}).items():
                    reverse.setdefault(name, target)
            self.reverse_views[container_id] = reverse
        return reverse

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity == self.identity:
            return
        try:
            with open(self.path) as f:
                self.table = json.load(f)
        except (OSError, ValueError):
            return
        self.identity = identity
        self.views = {}
        self.reverse_views = {}


class Server:
    def __init__(self, network_dir: str) -> None:
        self.network_dir = network_dir
        self.records = Records(os.path.join(network_dir, RECORDS_NAME))
        self.selector = selectors.DefaultSelector()
        # container id -> ([udp, tcp listener], pidfd, upstream resolvers)
        self.containers: dict[str, tuple[list[socket.socket], int, list[str]]] = {}
        self.forwarding = ForwardSlots()
        self.records_lock = threading.Lock()  # TCP connections read the records from their own threads

    def serve(self, control: socket.socket) -> None:
        self.selector.register(control, selectors.EVENT_READ, ("control", None))
        while True:
            events = self.selector.select(IDLE_CHECK_SECONDS)
            for key, _ in events:
                kind, container_id = key.data
                if kind == "control":
                    self._accept(control)
                elif kind == "dns":
                    self._answer(container_id)
                elif kind == "tcp":
                    self._accept_tcp(container_id)
                elif kind == "gone":
                    self._drop(container_id)
            if not self.containers and not events and not self._networks_exist():
                return

    def _networks_exist(self) -> bool:
        try:
            with open(os.path.join(self.network_dir, NETWORKS_NAME)) as f:
                return bool(json.load(f).get("networks"))
        except (OSError, ValueError, AttributeError):
            return False

    def _accept(self, control: socket.socket) -> None:
        try:
            conn, _ = control.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2)
            try:
                message, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            except OSError:
                return
            try:
                reply = self._command(message.decode(errors="replace").split(), fds)
            except (ValueError, OSError) as e:  # a malformed request never takes the server down
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                reply = f"bad request: {e}"
            with contextlib.suppress(OSError):
                conn.sendall(reply.encode())

    def _command(self, words: list[str], fds: list[int]) -> str:
        if words[:1] == ["add"] and len(words) >= 3 and len(fds) in (1, 2):
            container_id, pid = words[1], int(words[2])
            upstream = words[3].split(",") if len(words) > 3 and words[3] != "-" else []
            self._drop(container_id)
            sockets = [socket.socket(fileno=fd) for fd in fds]  # UDP, then the TCP listener
            for sock in sockets:
                sock.setblocking(False)
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                for sock in sockets:
                    sock.close()
                return "gone"
            self.containers[container_id] = (sockets, pidfd, upstream)
            self.selector.register(sockets[0], selectors.EVENT_READ, ("dns", container_id))
            if len(sockets) > 1:
                self.selector.register(sockets[1], selectors.EVENT_READ, ("tcp", container_id))
            self.selector.register(pidfd, selectors.EVENT_READ, ("gone", container_id))
            return "ok"
        for fd in fds:
            os.close(fd)
        if words[:1] == ["del"] and len(words) == 2:
            self._drop(words[1])
            return "ok"
        if words == ["ping"]:
            return "ok"
        return "bad request"

    def _drop(self, container_id: str) -> None:
        entry = self.containers.pop(container_id, None)
        if entry is None:
            return
        sockets, pidfd, _ = entry
        for item in (*sockets, pidfd):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(item)
        for sock in sockets:
            sock.close()
        os.close(pidfd)

    def _accept_tcp(self, container_id: str) -> None:
        """DNS over TCP (clients retry there after a truncated UDP answer): one thread per connection."""
        listener = self.containers[container_id][0][1]
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        if not self.forwarding.acquire(container_id):
            conn.close()
            return
        threading.Thread(target=self._serve_tcp, args=(conn, container_id), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket, container_id: str) -> None:
        try:
            with conn:
                while True:
                    packet = read_tcp_message(conn, time.monotonic() + TCP_MESSAGE_DEADLINE)
                    if packet is None:
                        return
                    reply = self._tcp_reply(packet, container_id)
                    if reply is None:
                        return
                    conn.settimeout(TCP_MESSAGE_DEADLINE)  # not the read's leftover
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            self.forwarding.release(container_id)

    def _tcp_reply(self, packet: bytes, container_id: str) -> bytes | None:
        query = parse_query(packet)
        if query is None:
            return formerr(packet)
        entry = self.containers.get(container_id)
        upstream = entry[2] if entry else []
        with self.records_lock:
            names, forward = self.records.view(container_id)
            reverse = self.records.reverse_view(container_id)
        action, addresses, rcode = decide(query, names, forward and bool(upstream), reverse)
        if action == "answer":
            return build_response(query, addresses, rcode)
        if action == "ptr":
            return build_ptr_response(query, addresses[0])
        for server in upstream:
            try:
                with socket.create_connection((server, 53), timeout=UPSTREAM_TIMEOUT) as out:
                    out.sendall(struct.pack("!H", len(packet)) + packet)
                    reply = read_tcp_message(out, time.monotonic() + UPSTREAM_TIMEOUT)
                if reply is not None:
                    return reply
            except OSError:
                continue
        return build_response(query, [], RCODE_SERVFAIL)

    def _answer(self, container_id: str) -> None:
        sockets, _, upstream = self.containers[container_id]
        sock = sockets[0]
        for _ in range(64):  # drain what is queued, then back to select
            try:
                packet, peer = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(container_id)
                return
            if peer == sock.getsockname():  # spoofed from the server's own address: answering would loop
                continue
            query = parse_query(packet)
            if query is None:
                reply = formerr(packet)
                if reply:
                    with contextlib.suppress(OSError):
                        sock.sendto(reply, peer)
                continue
            with self.records_lock:
                names, forward = self.records.view(container_id)
                reverse = self.records.reverse_view(container_id)
            action, addresses, rcode = decide(query, names, forward and bool(upstream), reverse)
            if action in ("answer", "ptr"):
                reply = build_response(query, addresses, rcode) if action == "answer" else \
                    build_ptr_response(query, addresses[0])
                with contextlib.suppress(OSError):
                    sock.sendto(reply, peer)
            elif self.forwarding.acquire(container_id):
                threading.Thread(target=self._forward, args=(container_id, sock, peer, packet, query, upstream),
                                 daemon=True).start()
            else:
                with contextlib.suppress(OSError):
                    sock.sendto(build_response(query, [], RCODE_SERVFAIL), peer)

    def _forward(self, container_id: str, *args) -> None:
        try:
            forward_query(*args)
        finally:
            self.forwarding.release(container_id)


def read_tcp_message(conn: socket.socket, deadline: float | None = None) -> bytes | None:
    """One length-prefixed DNS message from a TCP stream (None at its end); with `deadline` (monotonic), whole
    by then or TimeoutError: a timeout per recv would let a peer dripping a byte at a time hold its thread
    forever. Without one, the socket's own timeout applies to each recv (tests, clients)."""
    head = _read_exactly(conn, 2, deadline)
    if head is None:
        return None
    return _read_exactly(conn, struct.unpack("!H", head)[0], deadline)


def _read_exactly(conn: socket.socket, size: int, deadline: float | None) -> bytes | None:
    data = b""
    while len(data) < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("DNS message not complete in time")
            conn.settimeout(left)
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def forward_query(sock: socket.socket, peer, packet: bytes, query: Query, upstream: list[str]) -> None:
    """Ask each upstream resolver in turn (from the host's namespace); relay the first answer."""
    for server in upstream:
        with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.settimeout(UPSTREAM_TIMEOUT)
            try:
                out.connect((server, 53))
                out.send(packet)
                while True:
                    reply = out.recv(65535)
                    if len(reply) >= 2 and reply[:2] == packet[:2]:
                        break
            except OSError:
                continue
        with contextlib.suppress(OSError):
            sock.sendto(reply, peer)
        return
    with contextlib.suppress(OSError):
        sock.sendto(build_response(query, [], RCODE_SERVFAIL), peer)


# ------------------------------------------------------------------------------------------- client side

def control_path(network_dir: str) -> str:
    return os.path.join(network_dir, CONTROL_NAME)


def send_command(network_dir: str, words: list[str], fds: list[int] = (), timeout: float = 2.0) -> str:  # type: ignore[assignment]
    """One request to the running server; raises OSError when none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.settimeout(timeout)
        conn.connect(control_path(network_dir))
        socket.send_fds(conn, [" ".join(words).encode()], list(fds))
        return conn.recv(4096).decode(errors="replace")


def main(argv: list[str]) -> int:
    network_dir = argv[1]
    if os.fork():  # the starter reaps this parent at once: the server is nobody's child (no zombie later)
        return 0
    lock_fd = os.open(os.path.join(network_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + 1.0
    while True:  # a server on its way out holds the lock for a moment: wait for it, not for a live one
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                return 0  # another server runs for this root
            time.sleep(0.01)
    path = control_path(network_dir)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o077)
    try:
        control.bind(path)
    finally:
        os.umask(old_umask)
    control.listen(64)
    control.setblocking(False)
    try:
        Server(network_dir).serve(control)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still under the lock: a new server cannot have bound it meanwhile
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
