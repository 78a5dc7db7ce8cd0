"""autopara's ASE calculator worker, protocol version 1 (docs/ase-bridge.md).

autopara ships this file inside its binary and starts it as
`python -c <bootstrap> <length>`: the bootstrap reads these <length> bytes
from stdin and runs them. The worker then builds one calculator from the INIT
message and serves every CALC request of one autopara worker until its input
closes. It needs numpy and ASE, and the user's calculator package; nothing
else is installed.

The protocol runs on private copies of stdin and stdout: the calculator's own
prints go to stderr, and what it reads from stdin is empty.
"""

import faulthandler
import importlib
import json
import os
import select
import struct
import sys
import time
import traceback

PROTOCOL = 1
HEADER = struct.Struct("<4sQ")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
# CALC payload head: wanted properties, number of atoms, pbc, 5 bytes padding;
# then the cell (9 float64) at byte 16 and the positions (3n float64) at byte 88.
CALC_HEAD = struct.Struct("<II3B5x")
CELL_AT, POSITIONS_AT = 16, 88
# RSLT payload head: properties present, number of atoms, energy, free energy.
RESULT_HEAD = struct.Struct("<IIdd")

WANT_ENERGY, WANT_FORCES, WANT_STRESS, WANT_ENERGIES = 1, 2, 4, 8
HAS_ENERGY, HAS_FREE_ENERGY, HAS_FORCES, HAS_STRESS, HAS_ENERGIES = 1, 2, 4, 8, 16
NAN = float("nan")
# Seconds a wait for the next request polls before it sleeps (Channel).
SPIN = 50e-6


class Closed(Exception):
    """autopara closed the worker's input: the run is over."""


class Channel:
    """Framed messages on two file descriptors: a 4-byte tag and a u64 length.

    Input is read from a non-blocking descriptor into one buffer. Waiting for
    a message first polls for SPIN seconds (yielding the core between reads),
    then sleeps in poll(): the next request of a quick loop (an md step) is
    read at once, without the wake-up time of an idle core.
    """

    def __init__(self, fd_in, fd_out):
        self.fd_in = fd_in
        os.set_blocking(fd_in, False)
        self.poller = select.poll()
        self.poller.register(fd_in, select.POLLIN)
        self.fd_out = fd_out
        self.buffer = bytearray(1 << 16)
        # Unread input is buffer[start:end].
        self.start = self.end = 0

    def fill(self, need):
        """Reads until buffer[start:] holds `need` bytes; raises Closed at end of input."""
        if self.end - self.start >= need:
            return
        if self.start == self.end:
            self.start = self.end = 0
        if len(self.buffer) - self.start < need:
            # Too little room after the unread bytes: move them to the front
            # of a new buffer (the old one may still be viewed by a payload).
            size = max(len(self.buffer), need)
            fresh = bytearray(size)
            fresh[:self.end - self.start] = self.buffer[self.start:self.end]
            self.buffer, self.start, self.end = fresh, 0, self.end - self.start
        spin_until = None
        view = memoryview(self.buffer)
        while self.end - self.start < need:
            try:
                got = os.readv(self.fd_in, [view[self.end:]])
            except BlockingIOError:
                now = time.perf_counter()
                if spin_until is None:
                    spin_until = now + SPIN
                if now < spin_until:
                    os.sched_yield()
                else:
                    self.poller.poll()
                continue
            except InterruptedError:
                continue
            if got == 0:
                raise Closed()
            self.end += got

    def recv(self):
        self.fill(HEADER.size)
        tag, length = HEADER.unpack_from(self.buffer, self.start)
        self.start += HEADER.size
        self.fill(length)
        payload = memoryview(self.buffer)[self.start:self.start + length]
        self.start += length
        return tag, payload

    def send(self, tag, *parts):
        data = memoryview(b"".join((HEADER.pack(tag, sum(len(p) for p in parts)), *parts)))
        while data:
            data = data[os.write(self.fd_out, data):]


def failure_payload(exc, stage):
    """A FAIL payload for `exc`; its traceback goes to stderr."""
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.flush()
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return json.dumps({"type": name, "message": str(exc), "stage": stage}).encode()


def resolve(path):
    """The object named by `pkg.mod.Name` or `pkg.mod:attr.path`."""
    if ":" in path:
        module, _, attrs = path.partition(":")
    else:
        module, _, attrs = path.rpartition(".")
    if not module or not attrs:
        raise ValueError(f"constructor {path!r} is not of the form pkg.mod.Name or pkg.mod:name")
    obj = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


def construct(init):
    """Imports the constructor and builds the calculator: (calculator, name) or raises (stage, exc)."""
    for path in reversed(init.get("pythonpath", [])):
        sys.path.insert(0, path)
    stage = "import"
    try:
        global np, Atoms, all_changes, BaseCalculator, full_3x3_to_voigt_6_stress
        import numpy as np
        from ase import Atoms
        from ase.calculators.calculator import BaseCalculator, all_changes
        from ase.stress import full_3x3_to_voigt_6_stress

        target = resolve(init["constructor"])
        stage = "construct"
        calc = target(*init.get("args", []), **init.get("kwargs", {}))
        if not (hasattr(calc, "calculate") or hasattr(calc, "get_potential_energy")):
            raise TypeError(f"{init['constructor']} returned a {type(calc).__name__}, not an ASE calculator")
    except Exception as exc:
        raise ConstructionFailed(stage, exc) from exc
    name = getattr(target, "__name__", None) or type(calc).__name__
    return calc, name


class ConstructionFailed(Exception):
    def __init__(self, stage, exc):
        super().__init__(stage)
        self.stage, self.exc = stage, exc


def read_value(buf, off):
    """One typed value of a META entry: (value, next offset)."""
    dtype, ndim = buf[off], buf[off + 1]
    off += 2
    shape = []
    for _ in range(ndim):
        shape.append(U64.unpack_from(buf, off)[0])
        off += 8
    count = 1
    for d in shape:
        count *= d
    if dtype == 3:
        items = []
        for _ in range(count):
            (k,) = U32.unpack_from(buf, off)
            items.append(bytes(buf[off + 4:off + 4 + k]).decode())
            off += 4 + k
        if not shape:
            return items[0], off
        return np.array(items, dtype=object if not items else None).reshape(shape), off
    fmt, size = {0: ("u1", 1), 1: ("<i8", 8), 2: ("<f8", 8)}[dtype]
    arr = np.frombuffer(buf, fmt, count, off).copy()
    off += count * size
    if dtype == 0:
        arr = arr.astype(bool)
    if not shape:
        return arr[0].item(), off
    return arr.reshape(shape), off


def read_entries(buf, off):
    (count,) = U32.unpack_from(buf, off)
    off += 4
    out = {}
    for _ in range(count):
        (k,) = U32.unpack_from(buf, off)
        key = bytes(buf[off + 4:off + 4 + k]).decode()
        out[key], off = read_value(buf, off + 4 + k)
    return out, off


class Server:
    """The calculator and the configuration it works on."""

    def __init__(self, calc):
        self.calc = calc
        # ASE calculators (BaseCalculator and friends) are driven as ASE's
        # get_property drives them, for all wanted properties at once; anything
        # else through an Atoms object's get_* methods.
        self.ase_style = all(hasattr(calc, a) for a in ("check_state", "calculate", "results"))
        implemented = getattr(calc, "implemented_properties", None)
        self.names = []
        for want in range(16):
            names = [n for bit, n in ((1, "energy"), (2, "forces"), (4, "stress")) if want & bit]
            if want & WANT_ENERGIES and (implemented is None or "energies" in implemented):
                names.append("energies")
            self.names.append(names)
        self.atoms = None
        self.deferred = None
        # What changed since the last CALC is found as ASE's check_state finds
        # it, but by comparing bytes: a microsecond where check_state costs
        # hundreds. `last` holds the pbc, cell and positions bytes of the last
        # CALC, or None when the calculator is to be told that everything
        # changed: a fresh worker, after a failure, and at every new
        # configuration (NUMS or META), so that its results never depend on
        # the configurations this worker computed before (autopara's outputs
        # are the same for any number of workers, ranks or jobs).
        self.last = None
        self.ignored = set(getattr(calc, "ignored_changes", None) or ())
        # A BaseCalculator without its cache is told of all changes every
        # time (its check_state); Calculator, which turns that cache off for
        # its own, compares.
        self.uncached = (self.ase_style and not getattr(calc, "use_cache", True)
                         and getattr(type(calc), "check_state", None) is BaseCalculator.check_state)

    def set_numbers(self, buf):
        (n,) = U32.unpack_from(buf, 0)
        numbers = np.frombuffer(buf, "<i4", n, 4)
        self.atoms = Atoms(numbers=numbers, pbc=False)
        self.forget()

    def set_meta(self, buf):
        # New info may hold settings that check_state does not look at.
        self.forget()
        atoms = self.atoms
        info, off = read_entries(buf, 0)
        arrays, _ = read_entries(buf, off)
        for key in [k for k in atoms.arrays if k not in ("numbers", "positions")]:
            del atoms.arrays[key]
        for key, value in arrays.items():
            if key in ("numbers", "positions"):
                continue
            if len(value) != len(atoms):
                raise ValueError(f"array {key!r} has {len(value)} rows for {len(atoms)} atoms")
            atoms.arrays[key] = value
        atoms.info = info

    def changes(self, buf, n):
        """What differs from the last CALC, in ASE's system_changes names."""
        now = (bytes(buf[CELL_AT:POSITIONS_AT]), bytes(buf[8:11]), bytes(buf[POSITIONS_AT:POSITIONS_AT + 24 * n]))
        last, self.last = self.last, now
        if last is None or self.uncached:
            return list(all_changes)
        changed = [name for name, a, b in zip(("cell", "pbc", "positions"), last, now) if a != b]
        return [name for name in changed if name not in self.ignored]

    def compute(self, atoms, names, changes):
        calc = self.calc
        if not self.ase_style:
            atoms.calc = calc
            getters = {"energy": atoms.get_potential_energy, "forces": atoms.get_forces,
                       "stress": atoms.get_stress, "energies": atoms.get_potential_energies}
            return {n: getters[n]() for n in names}
        # As ASE's get_property, with the changes known from the bytes.
        if changes:
            calc.atoms = None
            calc.results = {}
        missing = [n for n in names if n not in calc.results]
        if missing:
            if getattr(calc, "use_cache", True):
                calc.atoms = atoms.copy()
            calc.calculate(atoms, missing, changes)
        return calc.results

    def forget(self):
        """Drops cached results (after a failure they may be half made)."""
        self.last = None
        if self.ase_style:
            self.calc.atoms = None
            self.calc.results = {}

    def calculate(self, buf):
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            raise deferred
        want, n, p0, p1, p2 = CALC_HEAD.unpack_from(buf, 0)
        atoms = self.atoms
        if atoms is None or len(atoms) != n:
            raise ValueError(f"protocol: CALC for {n} atoms, but the atomic numbers sent were for "
                             f"{0 if atoms is None else len(atoms)}")
        atoms.cell.array[:] = np.frombuffer(buf, "<f8", 9, CELL_AT).reshape(3, 3)
        atoms.pbc[:] = (p0, p1, p2)
        atoms.arrays["positions"][:] = np.frombuffer(buf, "<f8", 3 * n, POSITIONS_AT).reshape(n, 3)
        results = self.compute(atoms, self.names[want & 15], self.changes(buf, n))
        flags, parts = 0, []
        energy = results.get("energy")
        if energy is not None:
            flags |= HAS_ENERGY
        free = results.get("free_energy")
        if free is not None:
            flags |= HAS_FREE_ENERGY
        if want & WANT_ENERGY and energy is None:
            raise RuntimeError("the calculator computed no energy")
        if want & WANT_FORCES:
            parts.append(self.array("forces", results, (n, 3)))
            flags |= HAS_FORCES
        if want & WANT_STRESS:
            stress = results.get("stress")
            if stress is not None and np.shape(stress) == (3, 3):
                stress = full_3x3_to_voigt_6_stress(stress)
            parts.append(self.array("stress", {"stress": stress}, (6,)))
            flags |= HAS_STRESS
        if want & WANT_ENERGIES and results.get("energies") is not None:
            parts.append(self.array("energies", results, (n,)))
            flags |= HAS_ENERGIES
        head = RESULT_HEAD.pack(flags, n, NAN if energy is None else float(energy),
                                NAN if free is None else float(free))
        return (head, *parts)

    @staticmethod
    def array(name, results, shape):
        value = results.get(name)
        if value is None:
            raise RuntimeError(f"the calculator computed no {name}")
        arr = np.ascontiguousarray(value, dtype="<f8")
        if arr.shape != shape:
            raise ValueError(f"the calculator's {name} have shape {arr.shape}, expected {shape}")
        return arr.tobytes()


def main():
    faulthandler.enable()
    # The protocol gets private copies of stdin and stdout (not inherited by
    # any program the calculator starts); fd 0 becomes /dev/null and fd 1 stderr.
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    channel = Channel(fd_in, fd_out)
    try:
        tag, payload = channel.recv()
    except Closed:
        return 0
    if tag != b"INIT":
        channel.send(b"FAIL", failure_payload(ValueError(f"protocol: expected INIT, got {tag!r}"), "protocol"))
        return 1
    init = json.loads(bytes(payload))
    if init.get("protocol") != PROTOCOL:
        message = f"protocol: autopara speaks version {init.get('protocol')}, this worker {PROTOCOL}"
        channel.send(b"FAIL", failure_payload(ValueError(message), "protocol"))
        return 1
    try:
        calc, name = construct(init)
    except ConstructionFailed as failed:
        channel.send(b"FAIL", failure_payload(failed.exc, failed.stage))
        return 1
    implemented = getattr(calc, "implemented_properties", None)
    ready = {"protocol": PROTOCOL, "name": name, "pid": os.getpid(), "python": sys.version.split()[0],
             "implemented_properties": None if implemented is None else list(implemented)}
    channel.send(b"REDY", json.dumps(ready).encode())
    server = Server(calc)
    while True:
        try:
            tag, payload = channel.recv()
        except Closed:
            return 0
        if tag == b"CALC":
            try:
                reply = server.calculate(payload)
            except Exception as exc:
                server.forget()
                channel.send(b"FAIL", failure_payload(exc, "calculate"))
            else:
                channel.send(b"RSLT", *reply)
        elif tag in (b"NUMS", b"META"):
            try:
                (server.set_numbers if tag == b"NUMS" else server.set_meta)(payload)
            except Exception as exc:
                # Reported by the next CALC, the first message with a reply.
                server.deferred = exc
        elif tag == b"STOP":
            return 0
        else:
            server.deferred = ValueError(f"protocol: unknown message {tag!r}")


sys.exit(main())
