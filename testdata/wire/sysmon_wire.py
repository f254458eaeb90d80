#!/usr/bin/env python3
"""Independent decoder of the sysmon.v1 binary wire format, written from
pkg/wire/SPEC.md alone (standard library only), to show the specification is
enough to read the stream in another language. pkg/wire's tests run it over
every test vector and compare its output with the Go decoder's.

Usage: sysmon_wire.py FILE.bin...
For each file prints one line: "NAME<TAB>ok<TAB>JSON" with the message in the
sysmon.v1+json rendering, or "NAME<TAB>error<TAB>CLASS<TAB>why" where CLASS is
malformed, too_big or unknown_type (SPEC.md section 9).

As a library: decode(message_bytes) -> dict, raising WireError.
"""

import json
import math
import os
import struct
import sys
from datetime import datetime, timedelta, timezone

MAX_MESSAGE_BYTES = 4 << 20
MAX_SAMPLES_PER_BATCH = 512
MAX_PROCS_PER_SAMPLE = 4096
MAX_ROWS_PER_TABLE = 8192
MAX_ROWS_PER_MESSAGE = 1 << 17
MAX_STRING_BYTES = 64 << 10
MAX_CAPABILITIES = 256

M64 = (1 << 64) - 1
REAL_LIMIT = 1 << 50


class WireError(Exception):
    cls = "malformed"


class Malformed(WireError):
    cls = "malformed"


class TooBig(WireError):
    cls = "too_big"


class UnknownType(WireError):
    cls = "unknown_type"


def unzigzag(u):
    return (u >> 1) ^ -(u & 1)


def signed64(u):
    u &= M64
    return u - (1 << 64) if u >= 1 << 63 else u


class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def done(self):
        return self.o >= len(self.b)

    def uvarint(self):
        v = shift = 0
        for i in range(10):
            if self.o >= len(self.b):
                raise Malformed("truncated varint")
            c = self.b[self.o]
            self.o += 1
            if i == 9 and c > 1:
                raise Malformed("varint overflows 64 bits")
            v |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return v
        raise Malformed("varint overflows 64 bits")

    def fixed64(self):
        if len(self.b) - self.o < 8:
            raise Malformed("truncated fixed64")
        v = struct.unpack_from("<Q", self.b, self.o)[0]
        self.o += 8
        return v

    def bytes(self):
        n = self.uvarint()
        if n > len(self.b) - self.o:
            raise Malformed("length past the end")
        v = self.b[self.o:self.o + n]
        self.o += n
        return v


def fields(body):
    """Yields (number, wire type, value) for every field of a record."""
    r = Reader(body)
    while not r.done():
        key = r.uvarint()
        num, wt = key >> 3, key & 7
        if num == 0 or wt > 2:
            raise Malformed("bad field key %#x" % key)
        if wt == 0:
            yield num, wt, r.uvarint()
        elif wt == 1:
            yield num, wt, r.fixed64()
        else:
            yield num, wt, r.bytes()


def record(body, known, repeated=()):
    """Known fields of a record: {number: (wt, value)}; lists for repeated ones."""
    out = {n: [] for n in repeated}
    for num, wt, val in fields(body):
        if num not in known:
            continue  # unknown field: skipped (SPEC.md 6.3)
        if num in repeated:
            out[num].append((wt, val))
        elif num in out:
            raise Malformed("field %d repeated" % num)
        else:
            out[num] = (wt, val)
    return out


def want(f, wt):
    if f[0] != wt:
        raise Malformed("wrong wire type")
    return f[1]


def get_uint(rec, num, bits=64):
    if num not in rec:
        return 0
    v = want(rec[num], 0)
    if v >= 1 << bits:
        raise Malformed("value out of range")
    return v


def get_bytes(rec, num):
    return want(rec[num], 2) if num in rec else None


def text(b):
    try:
        return bytes(b).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("invalid UTF-8")


def round_away(y):
    t = math.trunc(y)
    if abs(y - t) == 0.5:
        return t + (1 if y > 0 else -1)
    return round(y)


def finite(x):
    if math.isnan(x) or math.isinf(x):
        raise Malformed("float not finite")
    return x


def from_milli(n):
    if not -REAL_LIMIT < n < REAL_LIMIT:
        raise Malformed("fixed-point value out of range")
    return n / 1000


def from_bits(u):
    x = finite(struct.unpack("<d", struct.pack("<Q", u))[0])
    n = round_away(x * 1000)
    if -REAL_LIMIT < n < REAL_LIMIT:  # a conforming writer would have used fixed-point
        return n / 1000
    return x


def get_real(rec, num):
    if num not in rec:
        return 0.0
    wt, v = rec[num]
    if wt == 0:
        return from_milli(unzigzag(v))
    if wt == 1:
        return from_bits(v)
    raise Malformed("float field with wire type 2")


def fmt_time(ns):
    secs, frac = divmod(ns, 10**9)
    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=secs)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        s += ("." + "%09d" % frac).rstrip("0")
    return s + "Z"


class Column:
    """A column's N values; an absent column yields zeros."""

    def __init__(self, cols, num):
        self.r = Reader(want(cols[num], 2)) if num in cols else None

    def next(self):
        return self.r.uvarint() if self.r else 0

    def real(self):
        if not self.r:
            return 0.0
        u = self.r.uvarint()
        if u & 1 == 0:
            return from_milli(unzigzag(u >> 1))
        if u != 1:
            raise Malformed("bad float tag")
        return from_bits(self.r.fixed64())

    def end(self):
        if self.r and not self.r.done():
            raise Malformed("column longer than the row count")


# Process table columns (SPEC.md section 5, proc): (number, name, kind, range)
PROC_COLS = [
    (3, "pid", "int", "i32"), (4, "start_time", "int", "u64"), (5, "comm", "str", None),
    (6, "cmdline", "str", None), (7, "state", "str", None), (8, "ppid", "int", "i32"),
    (9, "user", "str", None), (10, "app", "str", None), (11, "cpu_pct", "real", None),
    (12, "cpu_time_ms", "int", "u64"), (13, "rss", "int", "u64"), (14, "d_rss", "int", "i64"),
    (15, "vsz", "int", "u64"), (16, "threads", "int", "u32"), (17, "fds", "int", "i32"),
    (18, "read_bps", "real", None), (19, "write_bps", "real", None),
    (20, "runq_wait_pct", "real", None), (21, "wchan", "str", None),
]


def in_range(u, rng):
    """u is a value mod 2^64; returns it as the field's integer or raises."""
    if rng == "u64":
        return u
    if rng == "i64":
        return signed64(u)
    if rng == "u32":
        if u > 0xFFFFFFFF:
            raise Malformed("value out of range")
        return u
    s = signed64(u)
    if not -(1 << 31) <= s < 1 << 31:
        raise Malformed("value out of range")
    return s


class Batch:
    def __init__(self):
        self.strings = []
        self.rows = 0
        self.prev_rows = []  # previous sample's proc rows: (values by column, ids by column)

    def string(self, sid):
        if sid == 0:
            return ""
        if sid > len(self.strings):
            raise Malformed("string id past the table")
        return self.strings[sid - 1]

    def read_strings(self, table):
        r = Reader(table)
        n = r.uvarint()
        if n > (len(table) - r.o) // 2:
            raise Malformed("string count larger than the table")
        for _ in range(n):
            ln = r.uvarint()
            if ln == 0:
                raise Malformed("empty string in the table")
            if ln > MAX_STRING_BYTES:
                raise TooBig("string too long")
            if ln > len(table) - r.o:
                raise Malformed("string past the end")
            self.strings.append(text(table[r.o:r.o + ln]))
            r.o += ln
        if not r.done():
            raise Malformed("bytes after the last string")

    def table(self, body, ncols, limit):
        cols = record(body, set(range(1, ncols + 1)))
        n = get_uint(cols, 1)
        if n > limit:
            raise TooBig("too many rows")
        if n > len(body):
            raise Malformed("more rows than bytes")
        self.rows += n
        if self.rows > MAX_ROWS_PER_MESSAGE:
            raise TooBig("too many rows in the message")
        for c in range(2, ncols + 1):
            if c in cols:
                want(cols[c], 2)
        return n, cols

    def str_col(self, cols, num, n):
        col, pred, out = Column(cols, num), 0, []
        for _ in range(n):
            sid = (pred + unzigzag(col.next())) & M64
            out.append(self.string(sid))
            pred = sid
        col.end()
        return out

    def procs(self, body):
        n, cols = self.table(body, 21, MAX_PROCS_PER_SAMPLE)
        prev = self.prev_rows
        refs, col = [], Column(cols, 2)
        for i in range(n):
            u = col.next()
            r = None
            if u:
                r = i + unzigzag(u - 1)
                if not 0 <= r < len(prev):
                    raise Malformed("reference outside the previous sample")
            refs.append(r)
        col.end()
        rows = [{} for _ in range(n)]
        raw = [{} for _ in range(n)]  # integer values mod 2^64 and string ids, for prediction
        for num, name, kind, rng in PROC_COLS:
            col = Column(cols, num)
            for i in range(n):
                if kind == "real":
                    rows[i][name] = finite(col.real())
                    continue
                if refs[i] is not None:
                    pred = prev[refs[i]][num]
                elif i > 0:
                    pred = raw[i - 1][num]
                else:
                    pred = 0
                u = (pred + unzigzag(col.next())) & M64
                raw[i][num] = u
                rows[i][name] = self.string(u) if kind == "str" else in_range(u, rng)
            col.end()
        self.prev_rows = raw
        return rows

    def sample(self, body, prev_t):
        s = record(body, set(range(1, 10)))
        t = (prev_t + unzigzag(get_uint(s, 1))) & M64
        out = {"ts": fmt_time(signed64(t))}
        host = get_bytes(s, 2)
        if host is not None:
            h = record(host, set(range(1, 13)))
            out["host"] = {k: finite(get_real(h, i + 1)) for i, k in enumerate(
                ["load1", "load5", "load15", "cpu_user", "cpu_system", "cpu_iowait", "cpu_idle", "cpu_steal"])}
            for num, k in [(9, "procs_running"), (10, "procs_blocked"), (11, "procs_total")]:
                out["host"][k] = get_uint(h, num, 32)
            p = get_bytes(h, 12)
            if p is not None:
                pr = record(p, set(range(1, 6)))
                out["host"]["pressure"] = {k: finite(get_real(pr, i + 1)) for i, k in enumerate(
                    ["cpu_some", "memory_some", "memory_full", "io_some", "io_full"])}
        mem = get_bytes(s, 3)
        if mem is not None:
            m = record(mem, set(range(1, 8)))
            out["memory"] = {k: get_uint(m, i + 1) for i, k in enumerate(
                ["total", "free", "available", "buffers", "cached", "swap_total", "swap_free"])}
        procs = get_bytes(s, 4)
        if procs is not None:
            rows = self.procs(procs)
            if rows:
                out["procs"] = rows
        else:
            self.prev_rows = []
        out["procs_seen"] = get_uint(s, 5, 32)
        apps = get_bytes(s, 6)
        if apps is not None:
            n, cols = self.table(apps, 5, MAX_ROWS_PER_TABLE)
            if n:
                g, a, u = (self.str_col(cols, c, n) for c in (2, 3, 4))
                col = Column(cols, 5)
                v = [finite(col.real()) for _ in range(n)]
                col.end()
                out["app_top"] = [{"group": g[i], "application": a[i], "unit": u[i], "value": v[i]} for i in range(n)]
        funs = get_bytes(s, 7)
        if funs is not None:
            n, cols = self.table(funs, 4, MAX_ROWS_PER_TABLE)
            if n:
                f, ft = self.str_col(cols, 2, n), self.str_col(cols, 3, n)
                col, pred, num = Column(cols, 4), 0, []
                for _ in range(n):
                    pred = (pred + unzigzag(col.next())) & M64
                    num.append(in_range(pred, "u32"))
                col.end()
                out["fun_top"] = [{"fun": f[i], "fun_type": ft[i], "num_processes": num[i]} for i in range(n)]
        status = get_bytes(s, 8)
        if status is not None:
            st = record(status, {1})
            out["status"] = {"data": self.string(get_uint(st, 1))}
        events = get_bytes(s, 9)
        if events is not None:
            n, cols = self.table(events, 5, MAX_ROWS_PER_TABLE)
            if n:
                col, pred, ts = Column(cols, 2), t, []
                for _ in range(n):
                    pred = (pred + unzigzag(col.next())) & M64
                    ts.append(fmt_time(signed64(pred)))
                col.end()
                k, sub, d = (self.str_col(cols, c, n) for c in (3, 4, 5))
                out["events"] = [{"ts": ts[i], "kind": k[i], "subject": sub[i], "detail": d[i]} for i in range(n)]
        return out, t


def decode_batch(body):
    b = Batch()
    rec = record(body, {1, 2, 3}, repeated=(3,))
    if len(rec[3]) > MAX_SAMPLES_PER_BATCH:
        raise TooBig("too many samples")
    seq = get_uint(rec, 1)
    table = get_bytes(rec, 2)
    if table is not None:
        b.read_strings(table)
    samples, t = [], 0
    for f in rec[3]:
        s, t = b.sample(want(f, 2), t)
        samples.append(s)
    if seq == 0:
        raise Malformed("batch with seq 0")
    return {"type": "batch", "seq": seq, "samples": samples or None}


def decode_hello(body):
    rec = record(body, {1, 2, 3, 4, 5}, repeated=(5,))
    out = {"type": "hello"}
    for num, k in [(1, "node"), (2, "agent_version"), (3, "boot_id"), (4, "spool_id")]:
        v = get_bytes(rec, num)
        if v is not None and len(v) > MAX_STRING_BYTES:
            raise TooBig("string too long")
        out[k] = text(v) if v is not None else ""
    caps = []
    for f in rec[5]:
        v = want(f, 2)
        if len(v) > MAX_STRING_BYTES:
            raise TooBig("string too long")
        caps.append(text(v))
    if len(caps) > MAX_CAPABILITIES:
        raise TooBig("too many capabilities")
    if caps:
        out["capabilities"] = caps
    if not out["node"]:
        raise Malformed("hello without node")
    return out


def decode_welcome(body):
    rec = record(body, {1, 2})
    v = get_bytes(rec, 1)
    if v is not None and len(v) > MAX_STRING_BYTES:
        raise TooBig("string too long")
    return {"type": "welcome", "consumer_version": text(v) if v is not None else "", "last_seq": get_uint(rec, 2)}


def decode_ack(body):
    return {"type": "ack", "seq": get_uint(record(body, {1}), 1)}


def decode(msg):
    """Decodes one binary message (SPEC.md section 6) to its JSON rendering."""
    if len(msg) > MAX_MESSAGE_BYTES:
        raise TooBig("message too big")
    if len(msg) < 5:
        raise Malformed("short header")
    if msg[0:2] != b"SM":
        raise Malformed("bad magic")
    if msg[2] != 1:
        raise Malformed("unknown format version")
    r = Reader(msg)
    r.o = 4
    n = r.uvarint()
    if n > MAX_MESSAGE_BYTES:
        raise TooBig("body too big")
    if n != len(msg) - r.o:
        raise Malformed("body length does not match")
    body = memoryview(msg)[r.o:]
    kind = msg[3]
    if kind == 1:
        return decode_hello(body)
    if kind == 2:
        return decode_welcome(body)
    if kind == 3:
        return decode_batch(body)
    if kind == 4:
        return decode_ack(body)
    raise UnknownType("message type %d" % kind)


def main(paths):
    for path in paths:
        name = os.path.basename(path)[:-len(".bin")] if path.endswith(".bin") else path
        with open(path, "rb") as f:
            data = f.read()
        try:
            line = "ok\t" + json.dumps(decode(data), ensure_ascii=False, separators=(",", ":"))
        except WireError as e:
            line = "error\t%s\t%s" % (e.cls, e)
        print("%s\t%s" % (name, line))


if __name__ == "__main__":
    main(sys.argv[1:])
