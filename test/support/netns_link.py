"""Two network namespaces joined by one veth pair, shaped with tc: an emulated two-host link.

Safety (the only network this module touches is its own):
- the namespaces, the veth pair and the drop device get names unique to this process, and only
  the test's private /30 addresses (10.203.X.1 and .2), set inside the namespaces;
- nothing is bridged or routed to any other interface (the namespaces have no default route);
- :meth:`TwoHostLink.close` deletes both namespaces (which removes every device in them) and
  runs from ``__exit__``, so a failing test cleans up too.

Shaping, per direction (each veth end's egress), with real tc:
- bandwidth cap: ``tbf``;
- loss: a classic-BPF classifier on ``clsact`` egress that matches a random fraction of the
  packets (``ld rand``) and redirects them to a device that is down (``mirred``), which drops
  them; an outage is the same filter matching every packet;
- delay and jitter: ``netem``, where the kernel has it (``sch_netem``). Where it does not,
  ``TwoHostLink(delay_line=True)`` puts a third namespace ("wire", no address, no route) between
  the two: each side's veth pair ends there, and delay_line.py, running inside it, passes every
  frame from one inner end to the other after the delay (user space, in order); the outer ends'
  tx checksum offload is switched off so that the frames it re-sends carry their checksums.
  Without either, a profile with delay is refused by :meth:`shape` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import shutil
import subprocess
import sys
import time

SUPPORT_DIR = os.path.dirname(os.path.abspath(__file__))
RANDOM_LOAD = 4294963256  # classic BPF: ld [SKF_AD_OFF + SKF_AD_RANDOM] (a random u32)
MATCH, NO_MATCH = 4294967295, 0  # classic BPF return values of cls_bpf: -1 = match
# `ethtool -K DEVICE tx off` without ethtool: the ETHTOOL_STXCSUM (0x17) ioctl (SIOCETHTOOL).
TX_CHECKSUM_OFF = ('import ctypes, fcntl, socket, struct, sys\n'
                   'value = (ctypes.c_uint32 * 2)(0x17, 0)\n'
                   'request = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(value))\n'
                   'probe = socket.socket()\n'
                   'fcntl.ioctl(probe.fileno(), 0x8946, request)\n')


@dataclass(frozen=True)
class LinkProfile:
    """One emulated link, applied to both directions."""

    name: str
    delay_ms: float = 0.0  # one-way delay (netem)
    jitter_ms: float = 0.0  # netem jitter around delay_ms
    loss_pct: float = 0.0  # packets dropped at random, per direction
    rate_mbit: float = 0.0  # bandwidth cap per direction; 0 = the veth's own speed

    @property
    def needs_netem(self) -> bool:
        """Whether the profile delays packets (only netem can)."""
        return self.delay_ms > 0 or self.jitter_ms > 0

    def describe(self) -> str:
        """A short description for tables."""
        parts = []
        if self.delay_ms:
            parts.append(f'{self.delay_ms:g} ms' + (f' ± {self.jitter_ms:g}' if self.jitter_ms
                                                    else ''))
        if self.loss_pct:
            parts.append(f'{self.loss_pct:g} % loss')
        if self.rate_mbit:
            parts.append(f'{self.rate_mbit:g} Mbit/s')
        return ', '.join(parts) or 'unshaped veth'


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)


def _must(*command: str) -> None:
    result = _run(*command)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(command)}: {result.stderr.strip()}')


def namespaces_unavailable() -> str:
    """Why this machine cannot make network namespaces ('' when it can)."""
    if shutil.which('ip') is None or shutil.which('tc') is None:
        return 'iproute2 (ip, tc) is not installed'
    if os.geteuid() != 0:
        return 'network namespaces need root (CAP_NET_ADMIN)'
    probe = f'vla_probe_{os.getpid()}'
    created = _run('ip', 'netns', 'add', probe)
    if created.returncode != 0:
        return f'ip netns add failed: {created.stderr.strip()}'
    _run('ip', 'netns', 'del', probe)
    return ''


class TwoHostLink:
    """Namespaces ``robot`` and ``policy`` joined by a veth pair; see the module docstring."""

    def __init__(self, tag: str | None = None, delay_line: bool = False) -> None:
        tag = tag or str(os.getpid() % 100000)
        self.namespaces = {'robot': f'vla_r{tag}', 'policy': f'vla_p{tag}'}
        self.devices = {'robot': f'vlr{tag}', 'policy': f'vlp{tag}'}  # <= 15 characters
        # The wire namespace and the inner veth ends, with delay_line only.
        self.wire = f'vla_w{tag}' if delay_line else ''
        self.wire_devices = {'robot': f'vwr{tag}', 'policy': f'vwp{tag}'}
        self._delay_process: subprocess.Popen | None = None
        subnet = int(tag) % 250
        self.addresses = {'robot': f'10.203.{subnet}.1', 'policy': f'10.203.{subnet}.2'}
        self._drop_device = f'vld{tag}'
        self.profile = LinkProfile('unshaped')
        self._open = False

    def peer(self, side: str) -> str:
        """The address of the other side of ``side``."""
        return self.addresses['policy' if side == 'robot' else 'robot']

    def __enter__(self) -> TwoHostLink:
        self._open = True
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _create(self) -> None:
        robot, policy = self.namespaces['robot'], self.namespaces['policy']
        for namespace in (robot, policy, *([self.wire] if self.wire else [])):
            _must('ip', 'netns', 'add', namespace)
        if self.wire:
            for side, namespace in self.namespaces.items():
                _must('ip', 'link', 'add', self.devices[side], 'netns', namespace, 'type',
                      'veth', 'peer', 'name', self.wire_devices[side], 'netns', self.wire)
                _must('ip', '-n', self.wire, 'link', 'set', self.wire_devices[side], 'up',
                      'promisc', 'on')
                _must('ip', 'netns', 'exec', namespace, sys.executable, '-c', TX_CHECKSUM_OFF,
                      self.devices[side])
        else:
            _must('ip', 'link', 'add', self.devices['robot'], 'netns', robot, 'type', 'veth',
                  'peer', 'name', self.devices['policy'], 'netns', policy)
        for side, namespace in self.namespaces.items():
            device = self.devices[side]
            _must('ip', '-n', namespace, 'addr', 'add', f'{self.addresses[side]}/30', 'dev',
                  device)
            _must('ip', '-n', namespace, 'link', 'set', 'lo', 'up')
            _must('ip', '-n', namespace, 'link', 'set', device, 'up')
            # The drop device: an ifb that stays down; mirred to it discards the packet.
            _must('ip', '-n', namespace, 'link', 'add', self._drop_device, 'type', 'ifb')
            self._tc(side, 'qdisc', 'add', 'dev', device, 'clsact')
        for side in self.namespaces:
            self._wait_running(side)

    def _wait_running(self, side: str, timeout_s: float = 5.0) -> None:
        """Wait until ``side``'s veth end is RUNNING (its operational state is up).

        The kernel sets IFF_RUNNING a moment after `ip link set up` (its link watch runs up to
        a second later), and a DDS participant created before that leaves the interface out:
        it announces only 127.0.0.1 and is never discovered across the link.
        """
        state_file = f'/sys/class/net/{self.devices[side]}/operstate'
        deadline = time.monotonic() + timeout_s
        while True:
            state = _run('ip', 'netns', 'exec', self.namespaces[side], 'cat', state_file)
            if state.stdout.strip() == 'up':
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f'{self.devices[side]} in {self.namespaces[side]} not '
                                   f'running after {timeout_s:g} s (operstate '
                                   f'{state.stdout.strip()!r}{state.stderr.strip()})')
            time.sleep(0.05)

    def _tc(self, side: str, *arguments: str) -> None:
        _must('ip', 'netns', 'exec', self.namespaces[side], 'tc', *arguments)

    def _set_drop_fraction(self, side: str, fraction: float) -> None:
        """Drop ``fraction`` of the packets leaving ``side`` (0 removes the filter)."""
        device = self.devices[side]
        _run('ip', 'netns', 'exec', self.namespaces[side], 'tc', 'filter', 'del', 'dev', device,
             'egress')
        if fraction <= 0:
            return
        threshold = min(int(fraction * 2**32), 2**32 - 1)
        if fraction >= 1:
            program = f'1,6 0 0 {MATCH}'
        else:  # A = random; A >= threshold: no match (pass), else match (drop)
            program = (f'4,32 0 0 {RANDOM_LOAD},53 1 0 {threshold},6 0 0 {MATCH},'
                       f'6 0 0 {NO_MATCH}')
        self._tc(side, 'filter', 'add', 'dev', device, 'egress', 'bpf', 'bytecode', program,
                 'action', 'mirred', 'egress', 'redirect', 'dev', self._drop_device)

    def shape(self, profile: LinkProfile) -> None:
        """Apply ``profile`` to both directions (replacing the previous one)."""
        use_netem = profile.needs_netem and netem_available(self)
        if profile.needs_netem and not use_netem and not self.wire:
            raise RuntimeError(f'profile {profile.name!r} needs netem for its delay, and this '
                               'kernel has no sch_netem (TwoHostLink(delay_line=True) delays '
                               'in user space instead)')
        self._stop_delay_line()
        for side, device in self.devices.items():
            _run('ip', 'netns', 'exec', self.namespaces[side], 'tc', 'qdisc', 'del', 'dev',
                 device, 'root')
            if use_netem:
                netem = ['netem', 'delay', f'{profile.delay_ms}ms', f'{profile.jitter_ms}ms',
                         'limit', '10000']
                if profile.rate_mbit:
                    netem += ['rate', f'{profile.rate_mbit}mbit']
                self._tc(side, 'qdisc', 'add', 'dev', device, 'root', *netem)
            elif profile.rate_mbit:
                self._tc(side, 'qdisc', 'add', 'dev', device, 'root', 'tbf', 'rate',
                         f'{profile.rate_mbit}mbit', 'burst', '64kb', 'latency', '200ms')
            self._set_drop_fraction(side, profile.loss_pct / 100.0)
        if profile.needs_netem and not use_netem:
            self._start_delay_line(profile)
        self.profile = profile

    def _start_delay_line(self, profile: LinkProfile) -> None:
        self._delay_process = subprocess.Popen(
            ['ip', 'netns', 'exec', self.wire, sys.executable,
             os.path.join(SUPPORT_DIR, 'delay_line.py'), self.wire_devices['robot'],
             self.wire_devices['policy'], '--delay_ms', str(profile.delay_ms), '--jitter_ms',
             str(profile.jitter_ms)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        line = self._delay_process.stdout.readline()  # once its sockets are bound
        if 'running' not in line:
            raise RuntimeError(f'delay line did not start: {line}{self._stop_delay_line()}')

    def _stop_delay_line(self) -> str:
        """Stop the delay line (if any); return what it printed."""
        process, self._delay_process = self._delay_process, None
        if process is None:
            return ''
        process.terminate()
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return output

    def outage(self, on: bool) -> None:
        """Drop every packet in both directions (on) or return to the profile's loss (off)."""
        for side in self.devices:
            self._set_drop_fraction(side, 1.0 if on else self.profile.loss_pct / 100.0)

    def exec_command(self, side: str, command: list[str]) -> list[str]:
        """``command`` run inside the namespace of ``side``."""
        return ['ip', 'netns', 'exec', self.namespaces[side], *command]

    def close(self) -> None:
        """Delete both namespaces (their devices go with them); safe to call twice."""
        if not self._open:
            return
        self._stop_delay_line()
        for namespace in (*self.namespaces.values(), *([self.wire] if self.wire else [])):
            _run('ip', 'netns', 'del', namespace)
        self._open = False


_NETEM: dict[str, bool] = {}


def netem_available(link: TwoHostLink) -> bool:
    """Whether the kernel has sch_netem (probed once on ``link``'s robot end)."""
    if 'netem' not in _NETEM:
        device = link.devices['robot']
        added = _run('ip', 'netns', 'exec', link.namespaces['robot'], 'tc', 'qdisc', 'add',
                     'dev', device, 'root', 'netem', 'delay', '1ms')
        _NETEM['netem'] = added.returncode == 0
        _run('ip', 'netns', 'exec', link.namespaces['robot'], 'tc', 'qdisc', 'del', 'dev',
             device, 'root')
    return _NETEM['netem']
