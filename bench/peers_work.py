#!/usr/bin/python3
"""bench/peers_work.py - the file workloads of bench/peers.sh.

    peers_work.py POOL write DIR SET SALT      write SET into DIR (new)
    peers_work.py POOL read DIR SET SALT       read SET back, check every byte
    peers_work.py POOL legacy DIR N SALT       N legacy saves into DIR (new)

POOL is a file of random bytes (made by peers.sh); it is read into memory
before the clock starts. Every file's content is a slice of the pool
chosen by the file's number and SALT, and its first 16 bytes are the salt
and the number, so no two files are alike and a reader can work out what
each file must hold without a second copy of the data. SET is one of:

    small:N         N files of 4 KiB
    ct:N            a CT series: N slices of 512 KiB
    big:MIB         one file of MIB MiB
    mix:CT:PDF:LET  a clinical mix: CT slices of 512 KiB, PDFs of 200 KiB
                    to 2 MiB and letters of 1 to 16 KiB, in three folders

Prints the seconds the work took (from before the first open to after
the last close; for read, before the check), or one error line on
stderr and exits 1.
"""
import os
import random
import sys
import time

KIB = 1024
MIB = 1024 * KIB


def layout(spec, salt):
    """The files of a set: a list of (relative path, size)."""
    kind, _, rest = spec.partition(":")
    args = [int(a) for a in rest.split(":")] if rest else []
    if kind == "small" and len(args) == 1:
        return [("f%05d" % i, 4 * KIB) for i in range(args[0])]
    if kind == "ct" and len(args) == 1:
        return [("slice%04d.dcm" % i, 512 * KIB) for i in range(args[0])]
    if kind == "big" and len(args) == 1:
        return [("big.raw", args[0] * MIB)]
    if kind == "mix" and len(args) == 3:
        rnd = random.Random(salt)
        files = [("ct/slice%04d.dcm" % i, 512 * KIB) for i in range(args[0])]
        files += [("pdf/report%03d.pdf" % i, rnd.randint(200 * KIB, 2 * MIB))
                  for i in range(args[1])]
        files += [("letters/letter%05d.txt" % i, rnd.randint(KIB, 16 * KIB))
                  for i in range(args[2])]
        return files
    raise ValueError("unknown set '%s'" % spec)


def content(pool, salt, i, size):
    """What file number i of a set with this salt holds."""
    head = b"%08x%08x" % (salt & 0xffffffff, i)
    span = len(pool) - size
    if span < 0:
        raise ValueError("pool of %d bytes is smaller than a file of %d"
                         % (len(pool), size))
    off = ((salt * 1000003 + i * 7919) * 4096) % (span + 1)
    return (head + pool[off + len(head):off + size])[:size]


def folders(d, files):
    for sub in sorted({os.path.dirname(p) for p, _ in files} - {""}):
        os.makedirs(os.path.join(d, sub), exist_ok=True)


def write(pool, d, spec, salt):
    files = layout(spec, salt)
    data = [content(pool, salt, i, size) for i, (_, size) in enumerate(files)]
    t0 = time.monotonic()
    os.mkdir(d)
    folders(d, files)
    for (path, _), body in zip(files, data):
        with open(os.path.join(d, path), "wb") as f:
            f.write(body)
    return time.monotonic() - t0


def read(pool, d, spec, salt):
    files = layout(spec, salt)
    got = []
    t0 = time.monotonic()
    for path, _ in files:
        with open(os.path.join(d, path), "rb") as f:
            got.append(f.read())
    took = time.monotonic() - t0
    for i, ((path, size), body) in enumerate(zip(files, got)):
        if body != content(pool, salt, i, size):
            raise ValueError("%s: %d bytes read back differ from the %d "
                             "written" % (path, len(body), size))
    return took


def legacy(pool, d, n, salt):
    """The save of an old practice program: write a temporary file, fsync
    it, rename it over the document; 20 documents, saved in turn."""
    docs = 20
    data = [content(pool, salt, i, 16 * KIB + (i % 7) * KIB)
            for i in range(n)]
    t0 = time.monotonic()
    os.mkdir(d)
    for i, body in enumerate(data):
        tmp = os.path.join(d, "doc%02d.tmp" % (i % docs))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(d, "doc%02d.dat" % (i % docs)))
    took = time.monotonic() - t0
    for i in range(max(0, n - docs), n):
        with open(os.path.join(d, "doc%02d.dat" % (i % docs)), "rb") as f:
            if f.read() != data[i]:
                raise ValueError("doc%02d.dat: read back differs from the "
                                 "last save" % (i % docs))
    return took


def main(argv):
    if len(argv) != 6:
        sys.stderr.write(__doc__)
        return 2
    pool_path, cmd, d, what, salt = argv[1:]
    salt = int(salt)
    with open(pool_path, "rb") as f:
        pool = f.read()
    try:
        if cmd == "write":
            took = write(pool, d, what, salt)
        elif cmd == "read":
            took = read(pool, d, what, salt)
        elif cmd == "legacy":
            took = legacy(pool, d, int(what), salt)
        else:
            raise ValueError("unknown command '%s'" % cmd)
    except (OSError, ValueError) as e:
        print("peers_work.py: %s %s: %s" % (cmd, what, e), file=sys.stderr)
        return 1
    print("%.4f" % took)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
