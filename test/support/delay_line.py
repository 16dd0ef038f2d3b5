"""Child process: a delay line between two network devices, for kernels without sch_netem.

    delay_line.py DEVICE_A DEVICE_B --delay_ms 20 [--jitter_ms 5] [--seed 0]

Run inside the "wire" namespace of netns_link.TwoHostLink(delay_line=True), which holds the
inner ends of the two veth pairs and nothing else (no address, no route). Every Ethernet frame
received on one device is sent out of the other after delay_ms plus a uniform jitter in
[-jitter_ms, +jitter_ms], in arrival order (a frame never overtakes an earlier one, so the
jitter bunches frames instead of reordering them). Loss, the bandwidth cap and outages stay
with tc on the outer ends. The outer ends must not leave checksums to the hardware
(TwoHostLink switches their tx checksum offload off): a frame read here is re-sent as is.
Runs until SIGINT / SIGTERM.
"""

import argparse
import collections
import random
import signal
import socket
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent itself
RECEIVE_BUFFER = 8 << 20
MAX_QUEUED = 20000  # frames held per direction (about 30 MB), then the newest are dropped


def open_device(name: str) -> socket.socket:
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    raw.bind((name, 0))
    return raw


class Direction:
    """One direction of the line: a receiver thread queues, a sender thread sends when due."""

    def __init__(self, source: socket.socket, target: socket.socket, delay_s: float,
                 jitter_s: float, seed: int) -> None:
        self.source, self.target = source, target
        self.delay_s, self.jitter_s = delay_s, jitter_s
        self.random = random.Random(seed)
        self.queue: collections.deque = collections.deque()
        self.ready = threading.Condition()
        self.last_due = 0.0
        self.stopped = False

    def receive(self) -> None:
        while not self.stopped:
            try:
                frame, address = self.source.recvfrom(65536)
            except OSError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            jitter = self.random.uniform(-self.jitter_s, self.jitter_s)
            due = max(self.last_due, time.monotonic() + self.delay_s + jitter)
            self.last_due = due
            with self.ready:
                if len(self.queue) < MAX_QUEUED:
                    self.queue.append((due, frame))
                    self.ready.notify()

    def send(self) -> None:
        while not self.stopped:
            with self.ready:
                while not self.queue and not self.stopped:
                    self.ready.wait(0.2)
                if self.stopped:
                    return
                due, frame = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self.ready.wait(wait)  # a new frame never comes due earlier
                    continue
                self.queue.popleft()
            try:
                self.target.send(frame)
            except OSError:
                pass  # the device went down with the namespace: nothing to deliver to


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('device_a')
    parser.add_argument('device_b')
    parser.add_argument('--delay_ms', type=float, required=True)
    parser.add_argument('--jitter_ms', type=float, default=0.0)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    a, b = open_device(args.device_a), open_device(args.device_b)
    delay_s, jitter_s = args.delay_ms * 1e-3, min(args.jitter_ms, args.delay_ms) * 1e-3
    directions = [Direction(a, b, delay_s, jitter_s, args.seed),
                  Direction(b, a, delay_s, jitter_s, args.seed + 1)]
    for direction in directions:
        for work in (direction.receive, direction.send):
            threading.Thread(target=work, daemon=True).start()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    print('delay line running', flush=True)
    stop.wait()
    for direction in directions:
        direction.stopped = True
    a.close()
    b.close()


if __name__ == '__main__':
    main()
