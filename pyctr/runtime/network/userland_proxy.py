"""The IPv6 userland proxy: a standalone, stdlib-only script (Docker's docker-proxy, one per container).

pyctr publishes IPv4 by kernel DNAT. A publish without a host address is also
served on [::] when the host has IPv6, as Docker's default docker-proxy does,
by this process: it forwards each TCP connection (and each UDP client's
datagrams) to the container's IPv4 address. The sockets arrive already bound
(setup_network binds them under the network lock, so the port is taken before
`run` goes on and this interpreter's start-up is off the run path).

It never imports pyctr: it is run as `python -I -S userland_proxy.py` and must
start fast and stay small. It lives until teardown_network (or reap_stale)
kills it; the container id in its argv lets them tell it from a reused pid.

Usage: userland_proxy.py CONTAINER_ID FD/PROTO/TARGET_IP/TARGET_PORT ...
"""

import selectors
import socket
import sys
import threading
import time

COPY_SIZE = 64 * 1024
CONNECT_TIMEOUT = 5.0
UDP_IDLE_SECONDS = 90.0  # docker-proxy's UDPConnTrackTimeout
UDP_SIZE = 65535


def parse_forward(arg):
    """"5/tcp/172.17.0.2/80" -> (5, "tcp", ("172.17.0.2", 80))."""
    fd, proto, ip, port = arg.split("/")
    return int(fd), proto, (ip, int(port))


def pump(source, sink):
    """Copy one direction until EOF, then pass the half-close on (HTTP clients rely on it)."""
    try:
        while True:
            data = source.recv(COPY_SIZE)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
        try:
            sock.shutdown(how)
        except OSError:
            pass


def serve_connection(client, target):
    """One TCP client: connect to the container and copy both ways (a thread each)."""
    try:
        upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


class UdpForward:
    """One [::] UDP port: a connected socket to the container per client address, dropped when idle."""

    def __init__(self, listener, target, selector):
        self.listener = listener
        self.target = target
        self.selector = selector
        self.flows = {}  # client address -> [upstream socket, last use]

    def from_client(self):
        try:
            data, client = self.listener.recvfrom(UDP_SIZE)
        except OSError:
            return
        flow = self.flows.get(client)
        if flow is None:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.connect(self.target)
            flow = self.flows[client] = [upstream, 0.0]
            self.selector.register(upstream, selectors.EVENT_READ, ("udp-reply", self, client))
        flow[1] = time.monotonic()
        try:
            flow[0].send(data)
        except OSError:
            pass

    def from_container(self, client):
        flow = self.flows.get(client)
        if flow is None:
            return
        try:
            data = flow[0].recv(UDP_SIZE)
            self.listener.sendto(data, client)
        except OSError:
            return
        flow[1] = time.monotonic()

    def expire(self, now):
        for client, (upstream, last) in list(self.flows.items()):
            if now - last > UDP_IDLE_SECONDS:
                self.selector.unregister(upstream)
                upstream.close()
                del self.flows[client]


def main(argv):
    selector = selectors.DefaultSelector()
    udp = []
    for arg in argv[2:]:  # argv[1] is the container id (for whoever stops this process)
        fd, proto, target = parse_forward(arg)
        if proto == "tcp":
            selector.register(socket.socket(fileno=fd), selectors.EVENT_READ, ("tcp", target))
        else:
            forward = UdpForward(socket.socket(fileno=fd), target, selector)
            selector.register(forward.listener, selectors.EVENT_READ, ("udp", forward))
            udp.append(forward)
    while True:
        for key, _ in selector.select(timeout=UDP_IDLE_SECONDS / 3 if udp else None):
            kind = key.data[0]
            if kind == "tcp":
                try:
                    client, _ = key.fileobj.accept()
                except OSError:
                    continue
                threading.Thread(target=serve_connection, args=(client, key.data[1]), daemon=True).start()
            elif kind == "udp":
                key.data[1].from_client()
            else:
                key.data[1].from_container(key.data[2])
        now = time.monotonic()
        for forward in udp:
            forward.expire(now)


if __name__ == "__main__":
    main(sys.argv)
