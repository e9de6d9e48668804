"""Crash tests: kill -9 the daemon while a program writes.

A writer process creates and saves files in the mount and, each time an
fsync has returned, appends what it made durable to a log on the plain
disk (fsync'ed too).  The test kills the daemon at random moments, removes
the dead mount, mounts again and checks that everything the log promises is
there, byte for byte; that the tree is consistent; and that new writes
work.  PHIFS_SEED=<n> repeats a run.

Log lines (in order; the last line for a name decides):
  ok NAME SHA        NAME holds exactly SHA (fsync of file and dir returned)
  pending NAME SHA   a save (temp file, fsync, rename over NAME) is under
                     way: NAME holds the previous content or SHA, never a mix
  begin NAME         an in-place overwrite is under way: NAME exists
"""

import collections
import hashlib
import os
import random
import shutil
import signal
import stat
import time

from conftest import read_file, write_file

MiB = 1 << 20


def sha(data):
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _writer(mnt, logpath, seed):
    """Runs in a child until killed or the mount goes away."""
    rng = random.Random(seed)
    logfd = os.open(logpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(line):
        os.write(logfd, (line + "\n").encode())
        os.fsync(logfd)

    existing = []
    for d in sorted(os.listdir(mnt)):
        if os.path.isdir(os.path.join(mnt, d)):
            existing += [f"{d}/{n}" for n in sorted(os.listdir(
                os.path.join(mnt, d))) if ".tmp" not in n]
    for i in range(1, 1 << 30):
        dname = f"d{rng.randrange(4)}"
        dpath = os.path.join(mnt, dname)
        if not os.path.isdir(dpath):
            os.mkdir(dpath)
            _fsync_dir(mnt)
        r = rng.random()
        if r < 0.55 or not existing:                    # new file
            name = f"{dname}/s{seed}-{i}"
            data = rng.randbytes(rng.choice(
                [0, 100, 4096, rng.randrange(1, 600000),
                 rng.randrange(MiB, 2 * MiB)]))
            fd = os.open(os.path.join(mnt, name),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            _write_all(fd, data)
            os.fsync(fd)
            os.close(fd)
            _fsync_dir(dpath)
            log(f"ok {name} {sha(data)}")
            existing.append(name)
        elif r < 0.8:                                   # save pattern
            name = rng.choice(existing)
            tmp = f"{name}.tmp{seed}-{i}"
            data = rng.randbytes(rng.randrange(1, 300000))
            fd = os.open(os.path.join(mnt, tmp),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            _write_all(fd, data)
            os.fsync(fd)
            os.close(fd)
            log(f"pending {name} {sha(data)}")
            os.rename(os.path.join(mnt, tmp), os.path.join(mnt, name))
            _fsync_dir(os.path.dirname(os.path.join(mnt, name)))
            log(f"ok {name} {sha(data)}")
        else:                                           # in-place overwrite
            name = rng.choice(existing)
            path = os.path.join(mnt, name)
            log(f"begin {name}")
            fd = os.open(path, os.O_RDWR)
            content = bytearray()
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                content += b
            off = rng.randrange(0, len(content) + 5000)
            patch = rng.randbytes(rng.randrange(1, 100000))
            os.pwrite(fd, patch, off)
            if len(content) < off:
                content += bytes(off - len(content))
            content[off:off + len(patch)] = patch
            os.fsync(fd)
            os.close(fd)
            log(f"ok {name} {sha(content)}")


def start_writer(mnt, logpath, seed):
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            _writer(mnt, logpath, seed)
        except BaseException:
            pass
        finally:
            os._exit(0)
    return pid


def stop(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def expectations(logpath):
    """{name: (kind, set of acceptable sha)} from the log."""
    exp = {}
    if not os.path.exists(logpath):
        return exp
    with open(logpath) as f:
        for line in f:
            parts = line.split()
            if not line.endswith("\n") or not parts:
                continue            # a line cut by the kill
            if parts[0] == "ok":
                exp[parts[1]] = ("exact", {parts[2]})
            elif parts[0] == "pending":
                prev = exp.get(parts[1], ("any", set()))
                exp[parts[1]] = ("oneof", prev[1] | {parts[2]}) \
                    if prev[0] != "any" else ("any", set())
            elif parts[0] == "begin":
                exp[parts[1]] = ("any", set())
    return exp


def verify_log(mnt, logpath, seed, when):
    exp = expectations(logpath)
    bad = []
    for name, (kind, shas) in sorted(exp.items()):
        p = os.path.join(mnt, name)
        try:
            with open(p, "rb") as f:
                got = sha(f.read())
        except OSError as e:
            bad.append(f"{name}: {e}")
            continue
        if kind != "any" and got not in shas:
            bad.append(f"{name}: content {got[:12]} is not the fsync'ed "
                       f"{'/'.join(s[:12] for s in shas)} ({kind})")
    assert not bad, (f"seed {seed}, {when}: {len(bad)} of {len(exp)} "
                     f"fsync'ed files wrong: {bad[:10]}")
    kinds = collections.Counter(k for k, _ in exp.values())
    print(f"{when}: {len(exp)} files checked {dict(kinds)}")
    return len(exp)


def check_consistent(mnt):
    """Walk everything; stat, read, readlink, listxattr must all work."""
    problems, nfiles = [], 0
    for dirpath, dirnames, filenames in os.walk(
            mnt, onerror=lambda e: problems.append(f"walk: {e}")):
        try:
            st = os.lstat(dirpath)
            subdirs = sum(1 for d in dirnames if stat.S_ISDIR(
                os.lstat(os.path.join(dirpath, d)).st_mode))
            if st.st_nlink != 2 + subdirs:
                problems.append(f"{dirpath}: nlink {st.st_nlink}, "
                                f"{subdirs} subdirectories")
            os.listxattr(dirpath)
        except OSError as e:
            problems.append(f"{dirpath}: {e}")
        for n in filenames:
            p = os.path.join(dirpath, n)
            try:
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        data = f.read()
                    if len(data) != st.st_size:
                        problems.append(f"{p}: read {len(data)} bytes, "
                                        f"size {st.st_size}")
                    if st.st_nlink < 1:
                        problems.append(f"{p}: nlink {st.st_nlink}")
                    os.listxattr(p)
                    nfiles += 1
                elif stat.S_ISLNK(st.st_mode):
                    os.readlink(p)
            except OSError as e:
                problems.append(f"{p}: {e}")
    assert not problems, f"inconsistent after crash: {problems[:10]}"
    return nfiles


def check_new_writes(phifs):
    data = os.urandom(MiB + 77)
    write_file(phifs.path("after-crash"), data)
    assert read_file(phifs.path("after-crash")) == data
    os.mkdir(phifs.path("new-dir"))
    os.rename(phifs.path("after-crash"), phifs.path("new-dir", "moved"))
    phifs.remount()
    assert read_file(phifs.path("new-dir", "moved")) == data


def test_kill9_keeps_fsynced_data(phifs):
    seed = int(os.environ.get("PHIFS_SEED") or random.randrange(2**32))
    print(f"PHIFS_SEED={seed}")
    rng = random.Random(seed)
    logpath = os.path.join(phifs.base, "writer.log")
    kills = rng.randint(3, 5)
    total = 0
    # PHIFS_KEEP_EVIDENCE=DIR keeps the log and the cache_dir as the crash
    # left it (before the remount) when a check fails
    keep = os.environ.get("PHIFS_KEEP_EVIDENCE")
    evidence = os.path.join(keep, f"crash-{seed}") if keep else None
    for k in range(kills):
        writer = start_writer(phifs.mnt, logpath, seed * 10 + k)
        try:
            time.sleep(rng.uniform(0.2, 1.5))
        finally:
            phifs.kill9(before_umount=lambda: stop(writer))
        if evidence:
            shutil.rmtree(evidence, ignore_errors=True)
            shutil.copytree(phifs.cache_dir, os.path.join(evidence, "cache"))
        phifs.mount()
        try:
            total = verify_log(phifs.mnt, logpath, seed,
                               f"after kill {k + 1}")
            check_consistent(phifs.mnt)
        except AssertionError as e:
            if evidence:
                shutil.copy(logpath, evidence)
                e.add_note(f"evidence kept in {evidence}")
            raise
        if evidence:
            shutil.rmtree(evidence, ignore_errors=True)
    assert total >= 5, f"seed {seed}: the writer made only {total} files " \
                       f"durable; the test did not bite"
    check_new_writes(phifs)
    verify_log(phifs.mnt, logpath, seed, "after the final remount")


def test_unsynced_tail_never_reappears(phifs):
    """Bytes written after the last fsync may be lost in a crash, but they
    must not come back later: growing the file again (by writing past the
    end or by truncate) must show zeros in the gap, as for any hole."""
    a, b = phifs.path("a"), phifs.path("b")
    for p in (a, b):
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"A" * 100)
        os.fsync(fd)
        os.pwrite(fd, b"B" * 400000, 100)       # never fsync'ed
        os.close(fd)
    phifs.kill9()
    phifs.mount()
    size = os.stat(a).st_size
    assert size in (100, 400100), f"size {size} after the crash"
    if size == 400100:
        return      # the tail was recorded after all: nothing to check
    fd = os.open(a, os.O_WRONLY)
    os.pwrite(fd, b"C", 200000)
    os.close(fd)
    os.truncate(b, 300000)
    want_a = b"A" * 100 + bytes(200000 - 100) + b"C"
    want_b = b"A" * 100 + bytes(300000 - 100)
    got_a, got_b = read_file(a), read_file(b)
    assert got_a == want_a, \
        f"gap after pwrite past EOF holds {got_a[100:110]!r}..., not zeros"
    assert got_b == want_b, \
        f"gap after truncate up holds {got_b[100:110]!r}..., not zeros"
    phifs.remount()
    assert read_file(a) == want_a and read_file(b) == want_b


def _hold_open(path, wfd):
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 1)
    os.write(wfd, b"x")
    while True:
        time.sleep(10)


def test_unlinked_open_file_is_gone_after_crash(phifs):
    fd = os.open(phifs.path("other"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"stays")
    os.fsync(fd)
    os.close(fd)
    before = phifs.wait_status(lambda s: s["used_bytes"] > 0)
    big = phifs.path("big")
    data = os.urandom(8 * MiB)
    fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o644)
    _write_all(fd, data)
    os.fsync(fd)
    os.close(fd)
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:
        try:
            os.close(r)
            _hold_open(big, w)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x", "holder could not open the file"
        os.unlink(big)
        _fsync_dir(phifs.mnt)
        during = phifs.wait_status(
            lambda s: s["used_bytes"] >= before["used_bytes"] + 8 * MiB)
        assert during["used_bytes"] >= before["used_bytes"] + 8 * MiB, \
            (before, during)
    finally:
        os.close(r)
        phifs.kill9(before_umount=lambda: stop(holder))
    phifs.mount()
    assert os.listdir(phifs.mnt) == ["other"]
    after = phifs.status()
    assert after["inodes"] == before["inodes"], (before, after)
    assert after["used_bytes"] < before["used_bytes"] + MiB, \
        f"space of the unlinked file not freed: {before} -> {after}"
    if "orphans" in after:
        assert after["orphans"] == 0, after
    assert read_file(phifs.path("other")) == b"stays"
    check_new_writes(phifs)
