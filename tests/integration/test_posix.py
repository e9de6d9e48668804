"""POSIX behaviour a desktop program relies on, over a real phifs mount.

Each test gets a freshly formatted filesystem mounted with
allow_other,default_permissions (see conftest.py) and checks real results;
where persistence matters the test remounts and checks again.
"""

import ast
import collections
import concurrent.futures
import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import platform
import random
import re
import shutil
import socket
import stat
import struct
import tempfile
import time
import urllib.request

import pytest

import conftest
from conftest import (OTHER_GID, OTHER_UID, check_libc, errno_of, libc,
                      pread_all, read_file, run_as, run_in_child, write_file)

MiB = 1 << 20
GiB = 1 << 30
AT_FDCWD = -100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61, "riscv64": 61,
                  "ppc64le": 202, "s390x": 220}.get(platform.machine())


def ename(e):
    return "success" if e == 0 else errno.errorcode.get(e, str(e))


def expect_errno(expected, fn, *args, **kwargs):
    """fn(*args) must fail with one of the expected errnos."""
    exp = expected if isinstance(expected, (tuple, list, set)) else (expected,)
    got = errno_of(fn, *args, **kwargs)
    assert got in exp, (f"{getattr(fn, '__name__', fn)}{args}: expected "
                        f"{'/'.join(ename(e) for e in exp)}, got {ename(got)}")


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def utimensat(path, atime, mtime):
    """atime/mtime: (sec, nsec) tuples, or UTIME_NOW / UTIME_OMIT."""
    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    def ts(v):
        return Timespec(0, v) if isinstance(v, int) else Timespec(*v)
    times = (Timespec * 2)(ts(atime), ts(mtime))
    check_libc(libc().utimensat(AT_FDCWD, os.fsencode(path), times, 0))


def renameat2(old, new, flags):
    check_libc(libc().renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                                os.fsencode(new), ctypes.c_uint(flags)))


def fallocate(fd, mode, off, length):
    f = libc().fallocate
    f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    check_libc(f(fd, mode, off, length))


def getxattr_sized(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = check_libc(libc().getxattr(os.fsencode(path), name.encode(), buf,
                                   ctypes.c_size_t(size)))
    return buf.raw[:n] if size else n


def listxattr_sized(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return check_libc(libc().listxattr(os.fsencode(path), buf,
                                       ctypes.c_size_t(size)))


Dirent = collections.namedtuple("Dirent", "name ino off type")


def getdents(fd, bufsize):
    """One getdents64(2) call with a buffer of bufsize bytes."""
    if SYS_GETDENTS64 is None:
        pytest.skip(f"getdents64 number unknown on {platform.machine()}")
    buf = ctypes.create_string_buffer(bufsize)
    sc = libc().syscall
    sc.restype = ctypes.c_long
    n = check_libc(sc(ctypes.c_long(SYS_GETDENTS64), ctypes.c_long(fd), buf,
                      ctypes.c_long(bufsize)))
    raw, res, pos = buf.raw[:n], [], 0
    while pos < n:
        ino, off, reclen, typ = struct.unpack_from("=QqHB", raw, pos)
        name = raw[pos + 19:pos + reclen].split(b"\0", 1)[0]
        res.append(Dirent(name, ino, off, typ))
        pos += reclen
    return res


def sha(data):
    return hashlib.sha256(data).hexdigest()


# --- names and attributes -------------------------------------------------

def test_lookup_getattr(phifs):
    root = os.stat(phifs.mnt)
    assert stat.S_ISDIR(root.st_mode)
    assert (root.st_uid, root.st_gid) == (0, 0)
    assert stat.S_IMODE(root.st_mode) == 0o755
    p = phifs.path("a.txt")
    write_file(p, b"hello world")
    st = os.stat(p)
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 11
    assert st.st_nlink == 1
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_ino != root.st_ino
    assert st.st_dev == root.st_dev
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.fstat(fd).st_ino == st.st_ino
    finally:
        os.close(fd)
    assert os.lstat(p).st_ino == st.st_ino
    expect_errno(errno.ENOENT, os.stat, phifs.path("missing"))
    expect_errno(errno.ENOTDIR, os.stat, phifs.path("a.txt", "x"))
    assert os.listdir(phifs.mnt) == ["a.txt"]
    phifs.remount()
    st2 = os.stat(p)
    assert (st2.st_ino, st2.st_size, st2.st_mode, st2.st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns)


def test_chmod(phifs):
    p = phifs.path("f")
    write_file(p, b"x")
    for m in (0o600, 0o640, 0o4755, 0o2755, 0o1644, 0o000, 0o777, 0o6711):
        os.chmod(p, m)
        assert mode_of(p) == m, f"chmod {oct(m)} gave {oct(mode_of(p))}"
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o751)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o751
    finally:
        os.close(fd)
    d = phifs.path("d")
    os.mkdir(d)
    os.chmod(d, 0o1777)
    assert mode_of(d) == 0o1777
    assert stat.S_ISDIR(os.lstat(d).st_mode)
    phifs.remount()
    assert mode_of(p) == 0o751
    assert mode_of(d) == 0o1777


def test_chown(phifs):
    p = phifs.path("f")
    write_file(p, b"x")
    os.chown(p, 1234, 4321)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 4321)
    os.chown(p, -1, 55)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 55)
    os.chown(p, 77, -1)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (77, 55)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fchown(fd, 1234, 1234)
        assert (os.fstat(fd).st_uid, os.fstat(fd).st_gid) == (1234, 1234)
    finally:
        os.close(fd)
    ln = phifs.path("link")
    os.symlink("f", ln)
    os.lchown(ln, 999, 998)
    assert (os.lstat(ln).st_uid, os.lstat(ln).st_gid) == (999, 998)
    assert (os.stat(p).st_uid, os.stat(p).st_gid) == (1234, 1234)
    d = phifs.path("d")
    os.mkdir(d)
    os.chown(d, 4000, 4001)
    assert (os.stat(d).st_uid, os.stat(d).st_gid) == (4000, 4001)
    # the owner may not give the file away
    expect_errno(errno.EPERM, run_as, OTHER_UID, OTHER_GID, os.chown, p, 0, 0)
    phifs.remount()
    assert (os.stat(p).st_uid, os.stat(p).st_gid) == (1234, 1234)
    assert (os.lstat(ln).st_uid, os.lstat(ln).st_gid) == (999, 998)
    assert (os.stat(d).st_uid, os.stat(d).st_gid) == (4000, 4001)


def test_chown_clears_setuid(phifs):
    p = phifs.path("prog")
    write_file(p, b"#!/bin/sh\n")
    os.chmod(p, 0o6755)
    os.chown(p, 1234, 1234)
    assert mode_of(p) == 0o755, oct(mode_of(p))


# --- setuid, setgid and file capabilities after a change ------------------
#
# A write, a truncate or a chown clears a file's setuid and setgid bits and
# its file capabilities (security.capability) as on ext4.  The kernel does
# it, not phifs (fs/README.md, "Setuid, setgid and capabilities"): these
# cases hold whoever does it, and would catch a mount that asked the kernel
# to leave the job to phifs (FUSE_CAP_HANDLE_KILLPRIV) without doing it.
# Each case runs on the mount and on a plain directory of the same machine.

CAP_NET_RAW_EP = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # v2


def _write_one(p):
    with open(p, "r+b") as f:
        f.write(b"x")


def _open_trunc(p):
    os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))


def _ftruncate(p):
    fd = os.open(p, os.O_WRONLY)
    try:
        os.ftruncate(fd, 3)
    finally:
        os.close(fd)


def _chown_other(p):
    os.chown(p, OTHER_UID, OTHER_GID)


def _chgrp_other(p):
    os.chown(p, -1, OTHER_GID)


def _chmod_700(p):
    os.chmod(p, 0o700)


ROOT, OTHER = (0, 0), (OTHER_UID, OTHER_GID)

# name: (mode, owner, with a capability, change, done by, mode after,
#        capability kept)
SETID_CASES = {
    "write by another user": (0o6777, ROOT, False, _write_one, OTHER,
                              0o777, False),
    "write by the owner": (0o6777, OTHER, False, _write_one, OTHER,
                           0o777, False),
    "write by root": (0o6777, ROOT, False, _write_one, ROOT, 0o6777, False),
    "write by a group member, setgid without group exec":
        (0o2767, (0, OTHER_GID), False, _write_one, OTHER, 0o2767, False),
    # the kernel's FUSE code leaves this one to phifs (fs_write())
    "write by another user, setgid without group exec":
        (0o2767, ROOT, False, _write_one, OTHER, 0o767, False),
    "truncate by another user": (0o6777, ROOT, False,
                                 lambda p: os.truncate(p, 3), OTHER,
                                 0o777, False),
    "ftruncate by another user": (0o6777, ROOT, False, _ftruncate, OTHER,
                                  0o777, False),
    "truncate by root": (0o6777, ROOT, False, lambda p: os.truncate(p, 3),
                         ROOT, 0o6777, False),
    "O_TRUNC open by root": (0o6777, ROOT, False, _open_trunc, ROOT,
                             0o6777, False),
    # with atomic O_TRUNC the kernel sends no setattr: phifs clears them
    "O_TRUNC open by another user": (0o6777, ROOT, False, _open_trunc,
                                     OTHER, 0o777, False),
    "O_TRUNC open by another user, setgid without group exec":
        (0o2767, ROOT, False, _open_trunc, OTHER, 0o767, False),
    "O_TRUNC open by a group member, setgid without group exec":
        (0o2767, (0, OTHER_GID), False, _open_trunc, OTHER, 0o2767, False),
    "chown by root": (0o6755, ROOT, False, _chown_other, ROOT, 0o755, False),
    "chown by root, setgid without group exec":
        (0o6745, ROOT, False, _chown_other, ROOT, 0o2745, False),
    "chgrp by the owner": (0o6755, OTHER, False, _chgrp_other, OTHER,
                           0o755, False),
    "capability, write by root": (0o755, ROOT, True, _write_one, ROOT,
                                  0o755, False),
    "capability, write by another user": (0o777, ROOT, True, _write_one,
                                          OTHER, 0o777, False),
    "capability, truncate by root": (0o755, ROOT, True,
                                     lambda p: os.truncate(p, 1), ROOT,
                                     0o755, False),
    "capability, O_TRUNC open by root": (0o755, ROOT, True, _open_trunc,
                                         ROOT, 0o755, False),
    "capability, chown by root": (0o755, ROOT, True, _chown_other, ROOT,
                                  0o755, False),
    "capability, chmod keeps it": (0o755, ROOT, True, _chmod_700, ROOT,
                                   0o700, True),
}

def _has_cap(p):
    try:
        os.getxattr(p, "security.capability")
    except OSError as e:
        assert e.errno == errno.ENODATA, e
        return False
    return True


def _setid_case(d, name, mode, owner, cap, change, by):
    """(mode, capability kept) of a file of d after change, done by."""
    p = os.path.join(d, name.replace(" ", "_").replace(",", ""))
    write_file(p, b"0123456789")
    os.chown(p, *owner)
    os.chmod(p, mode)
    if cap:
        os.setxattr(p, "security.capability", CAP_NET_RAW_EP)
    if by == ROOT:
        change(p)
    else:
        run_as(by[0], by[1], change, p)
    return mode_of(p), _has_cap(p)


@pytest.fixture
def plain_dir():
    """A directory outside the mount that other users may write in."""
    d = tempfile.mkdtemp(prefix="phifs-plain-", dir=conftest.test_tmp())
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d)


def _shared_dir(phifs):
    d = phifs.path("d")
    os.mkdir(d)
    os.chmod(d, 0o777)
    return d


def test_change_clears_setid_and_capabilities(phifs, plain_dir):
    d = _shared_dir(phifs)
    try:
        os.setxattr(plain_dir, "security.capability", CAP_NET_RAW_EP)
        os.removexattr(plain_dir, "security.capability")
        plain_caps = True
    except OSError:
        plain_caps = False      # no security.* there: compare modes only
    wrong = []
    for name, (mode, owner, cap, change, by, want_mode,
               want_cap) in SETID_CASES.items():
        want = (want_mode, want_cap)
        got = _setid_case(d, name, mode, owner, cap, change, by)
        ref = _setid_case(plain_dir, name, mode, owner, cap and plain_caps,
                          change, by)
        if got != want or (ref[0] != want[0] or
                           (plain_caps and ref[1] != want[1])):
            wrong.append(f"{name}: mount {oct(got[0])} cap={got[1]}, "
                         f"plain {oct(ref[0])} cap={ref[1]}, "
                         f"expected {oct(want[0])} cap={want[1]}")
    assert not wrong, "\n".join(wrong)


def test_truncate_down_and_up(phifs):
    p = phifs.path("t")
    data = random.Random(1).randbytes(3 * MiB + 17)
    write_file(p, data)
    os.truncate(p, 100000)
    assert os.stat(p).st_size == 100000
    assert read_file(p) == data[:100000]
    os.truncate(p, 250000)
    assert read_file(p) == data[:100000] + bytes(150000), \
        "old content came back after truncate down and up"
    # across block boundaries (block_size 1M)
    write_file(p, data)
    os.truncate(p, MiB + MiB // 2)
    os.truncate(p, len(data))
    got = read_file(p)
    assert got[:MiB + MiB // 2] == data[:MiB + MiB // 2]
    assert got[MiB + MiB // 2:] == bytes(len(data) - MiB - MiB // 2)
    fd = os.open(p, os.O_RDWR)
    try:
        os.ftruncate(fd, 0)
        assert os.fstat(fd).st_size == 0
        assert os.pread(fd, 10, 0) == b""
        assert os.pwrite(fd, b"tail", 10) == 4
        assert pread_all(fd, 100, 0) == bytes(10) + b"tail"
        os.ftruncate(fd, 2 * MiB + 123)
        assert os.fstat(fd).st_size == 2 * MiB + 123
    finally:
        os.close(fd)
    expected = bytes(10) + b"tail" + bytes(2 * MiB + 123 - 14)
    assert read_file(p) == expected
    phifs.remount()
    assert read_file(p) == expected


def test_truncate_updates_mtime(phifs):
    p = phifs.path("t")
    write_file(p, b"0123456789")
    os.utime(p, ns=(10**18, 10**18))
    os.truncate(p, 5)
    assert os.stat(p).st_mtime_ns > 10**18 + 10**9
    os.utime(p, ns=(10**18, 10**18))
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    st = os.stat(p)
    assert st.st_size == 0
    assert st.st_mtime_ns > 10**18 + 10**9, "O_TRUNC did not update mtime"


def test_utimens_explicit_now_omit(phifs):
    p = phifs.path("u")
    write_file(p, b"x")
    os.utime(p, ns=(1_000_000_001, 2_000_000_002))
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_001, 2_000_000_002)
    slack = 50_000_000
    t0 = time.time_ns()
    os.utime(p)                        # both UTIME_NOW
    t1 = time.time_ns()
    st = os.stat(p)
    assert t0 - slack <= st.st_mtime_ns <= t1 + slack
    assert t0 - slack <= st.st_atime_ns <= t1 + slack
    # atime set, mtime omitted
    os.utime(p, ns=(5, 6))
    utimensat(p, (123, 456), UTIME_OMIT)
    st = os.stat(p)
    assert st.st_atime_ns == 123 * 10**9 + 456
    assert st.st_mtime_ns == 6, "UTIME_OMIT changed mtime"
    # mtime now, atime omitted
    t0 = time.time_ns()
    utimensat(p, UTIME_OMIT, UTIME_NOW)
    t1 = time.time_ns()
    st = os.stat(p)
    assert st.st_atime_ns == 123 * 10**9 + 456, "UTIME_OMIT changed atime"
    assert t0 - slack <= st.st_mtime_ns <= t1 + slack
    # mtime explicit, atime now
    utimensat(p, UTIME_NOW, (7, 8))
    st = os.stat(p)
    assert st.st_mtime_ns == 7 * 10**9 + 8
    assert st.st_atime_ns >= t0 - slack
    phifs.remount()
    assert os.stat(p).st_mtime_ns == 7 * 10**9 + 8


def test_mtime_nanoseconds_exact(phifs):
    values = [1234567890123456789, 1, 999999999, 1700000000000000001,
              4102444800999999999, 2**33 * 10**9 + 7]
    for i, v in enumerate(values):
        p = phifs.path(f"f{i}")
        write_file(p, b"x")
        os.utime(p, ns=(v - 1, v))
        st = os.stat(p)
        assert (st.st_atime_ns, st.st_mtime_ns) == (v - 1, v)
    d = phifs.path("dir")
    os.mkdir(d)
    os.utime(d, ns=(values[0], values[0]))
    assert os.stat(d).st_mtime_ns == values[0]
    phifs.remount()
    for i, v in enumerate(values):
        st = os.stat(phifs.path(f"f{i}"))
        assert st.st_mtime_ns == v, f"after remount: {st.st_mtime_ns} != {v}"
        assert st.st_atime_ns == v - 1
    assert os.stat(d).st_mtime_ns == values[0]


def _ctime_op(phifs, op):
    """Prepare, then return (path to stat afterwards, action)."""
    p = phifs.path("f")
    write_file(p, b"content")
    if op == "chmod":
        return p, lambda: os.chmod(p, 0o600)
    if op == "chown":
        return p, lambda: os.chown(p, 1234, 1234)
    if op == "write":
        def w():
            fd = os.open(p, os.O_WRONLY)
            os.pwrite(fd, b"X", 3)
            os.close(fd)
        return p, w
    if op == "truncate":
        return p, lambda: os.truncate(p, 2)
    if op == "link":
        return p, lambda: os.link(p, phifs.path("g"))
    if op == "unlink_other_link":
        os.link(p, phifs.path("g"))
        return p, lambda: os.unlink(phifs.path("g"))
    if op == "rename":
        os.mkdir(phifs.path("d"))
        return phifs.path("d", "h"), lambda: os.rename(p, phifs.path("d", "h"))
    if op == "setxattr":
        return p, lambda: os.setxattr(p, "user.k", b"v")
    if op == "utime":
        return p, lambda: os.utime(p, ns=(5, 5))
    raise AssertionError(op)


@pytest.mark.parametrize("op", ["chmod", "chown", "write", "truncate", "link",
                                "unlink_other_link", "rename", "setxattr",
                                "utime"])
def test_ctime_changes(phifs, op):
    after_path, action = _ctime_op(phifs, op)
    before = os.stat(phifs.path("f"))
    time.sleep(0.05)
    action()
    after = os.stat(after_path)
    assert after.st_ino == before.st_ino
    assert after.st_ctime_ns > before.st_ctime_ns, \
        f"{op} did not change ctime ({before.st_ctime_ns})"


def test_read_changes_neither_ctime_nor_mtime(phifs):
    p = phifs.path("r")
    write_file(p, os.urandom(200000))
    d = phifs.path("d")
    os.mkdir(d)
    write_file(os.path.join(d, "x"), b"x")
    before, dbefore = os.stat(p), os.stat(d)
    time.sleep(0.05)
    assert len(read_file(p)) == 200000
    fd = os.open(p, os.O_RDWR)     # opened for writing, nothing written
    os.pread(fd, 10, 0)
    os.close(fd)
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0,
                                       prot=mmap.PROT_READ) as m:
        assert len(m[:]) == 200000
    assert os.listdir(d) == ["x"]
    after, dafter = os.stat(p), os.stat(d)
    assert after.st_ctime_ns == before.st_ctime_ns, "read changed ctime"
    assert after.st_mtime_ns == before.st_mtime_ns, "read changed mtime"
    assert after.st_size == before.st_size
    assert dafter.st_mtime_ns == dbefore.st_mtime_ns, "readdir changed mtime"
    assert dafter.st_ctime_ns == dbefore.st_ctime_ns, "readdir changed ctime"


def test_write_updates_mtime(phifs):
    p = phifs.path("w")
    write_file(p, b"abc")
    os.utime(p, ns=(10**18, 10**18))
    t0 = time.time_ns()
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"Z", 1)
    os.close(fd)
    st = os.stat(p)
    assert st.st_mtime_ns >= t0 - 50_000_000, "write did not update mtime"
    assert read_file(p) == b"aZc"


@pytest.mark.parametrize("op", ["create", "unlink", "mkdir", "rmdir",
                                "rename_in", "rename_out", "symlink", "link"])
def test_dir_mtime_changes(phifs, op):
    d = phifs.path("d")
    os.mkdir(d)
    write_file(os.path.join(d, "old"), b"x")
    os.mkdir(os.path.join(d, "olddir"))
    write_file(phifs.path("outside"), b"y")
    os.utime(d, ns=(10**18, 10**18))
    before = os.stat(d)
    actions = {
        "create": lambda: write_file(os.path.join(d, "new"), b""),
        "unlink": lambda: os.unlink(os.path.join(d, "old")),
        "mkdir": lambda: os.mkdir(os.path.join(d, "newdir")),
        "rmdir": lambda: os.rmdir(os.path.join(d, "olddir")),
        "rename_in": lambda: os.rename(phifs.path("outside"),
                                       os.path.join(d, "in")),
        "rename_out": lambda: os.rename(os.path.join(d, "old"),
                                        phifs.path("out")),
        "symlink": lambda: os.symlink("old", os.path.join(d, "sl")),
        "link": lambda: os.link(phifs.path("outside"), os.path.join(d, "hl")),
    }
    actions[op]()
    after = os.stat(d)
    assert after.st_mtime_ns > before.st_mtime_ns + 10**9, \
        f"{op} did not change the directory's mtime"
    assert after.st_ctime_ns >= before.st_ctime_ns


# --- open flags and I/O ---------------------------------------------------

def test_open_creat_excl(phifs):
    p = phifs.path("e")
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, b"first")
    os.close(fd)
    assert mode_of(p) == 0o600
    expect_errno(errno.EEXIST, os.open, p,
                 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert read_file(p) == b"first"
    os.mkdir(phifs.path("dir"))
    expect_errno(errno.EEXIST, os.open, phifs.path("dir"),
                 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.symlink("nowhere", phifs.path("dangling"))
    expect_errno(errno.EEXIST, os.open, phifs.path("dangling"),
                 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert not os.path.exists(phifs.path("nowhere"))
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)   # no EXCL: opens it
    os.close(fd)
    assert read_file(p) == b"first"
    assert mode_of(p) == 0o600
    expect_errno(errno.ENOENT, os.open, phifs.path("nodir", "x"),
                 os.O_CREAT | os.O_WRONLY, 0o644)


def test_open_trunc(phifs):
    p = phifs.path("t")
    write_file(p, os.urandom(5000))
    reader = os.open(p, os.O_RDONLY)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        assert os.fstat(fd).st_size == 0
        os.write(fd, b"new")
        os.close(fd)
        assert pread_all(reader, 10000, 0) == b"new"
    finally:
        os.close(reader)
    assert read_file(p) == b"new"
    assert os.stat(p).st_size == 3


def test_append_two_fds(phifs):
    p = phifs.path("log")
    fds = [os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
           for _ in range(2)]
    expected = bytearray()
    try:
        for i in range(60):
            line = f"line {i:03d} via fd {i % 2} {'x' * (i * 7)}\n".encode()
            assert os.write(fds[i % 2], line) == len(line)
            expected += line
        # a plain fd writing at 0 does not move the append position
        other = os.open(p, os.O_WRONLY)
        os.pwrite(other, b"L", 0)
        os.close(other)
        expected[0:1] = b"L"
        os.write(fds[1], b"end\n")
        expected += b"end\n"
    finally:
        for fd in fds:
            os.close(fd)
    assert read_file(p) == bytes(expected)


def test_random_offset_writes(phifs):
    rng = random.Random(20240601)
    p = phifs.path("random.bin")
    model = bytearray()
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for i in range(300):
            off = rng.randrange(0, 3 * MiB + MiB // 2)
            ln = rng.choice([1, 7, 4095, 4096, 4097, 65536, 131073, 200000,
                             rng.randrange(1, 300000)])
            data = rng.randbytes(ln)
            assert os.pwrite(fd, data, off) == ln
            if len(model) < off + ln:
                model.extend(bytes(off + ln - len(model)))
            model[off:off + ln] = data
            if i % 25 == 0:
                assert os.fstat(fd).st_size == len(model)
                for _ in range(5):
                    ro = rng.randrange(0, len(model) + 1000)
                    rl = rng.randrange(1, 400000)
                    assert pread_all(fd, rl, ro) == bytes(model[ro:ro + rl]), \
                        f"op {i}: pread({rl}, {ro}) differs"
    finally:
        os.close(fd)
    assert sha(read_file(p)) == sha(model)
    phifs.remount()
    assert os.stat(p).st_size == len(model)
    assert sha(read_file(p)) == sha(model)


def test_sparse_file_with_1gib_hole(phifs):
    p = phifs.path("sparse")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.pwrite(fd, b"X", GiB) == 1
        assert os.fstat(fd).st_size == GiB + 1
        assert os.pread(fd, MiB, 0) == bytes(MiB)
        assert os.pread(fd, MiB, GiB // 2) == bytes(MiB)
        assert os.pread(fd, 10, GiB - 5) == bytes(5) + b"X"
    finally:
        os.close(fd)

    def check():
        st = os.stat(p)
        assert st.st_size == GiB + 1
        assert st.st_blocks * 512 < 32 * MiB, \
            f"st_blocks {st.st_blocks} for a file that is one byte and a hole"
        with open(p, "rb") as f:
            f.seek(GiB - MiB)
            assert f.read() == bytes(MiB) + b"X"
        used = phifs.status()["used_bytes"]
        assert used < 64 * MiB, f"status used_bytes {used} with a 1 GiB hole"
    check()
    phifs.remount()
    check()


def bdi_read_ahead(mnt):
    """The read_ahead_kb file of the device of the mount at mnt."""
    st = os.stat(mnt)
    return f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}" \
        "/read_ahead_kb"


def fuse_reads(port):
    """READ requests the mount has served (its metrics endpoint)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^phifs_fuse_operations_total\{op="read"\} (\S+)$',
                  text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("local_seal", ["on", "off"])
def test_reads_in_order_come_whole_and_right(phifs, local_seal):
    """A file read in order: mounted by root, phifs raises its device's
    read_ahead_kb to 2 MiB, and the kernel asks in requests of up to
    1 MiB, which a plain store answers by splice (up to 128 KiB) or by
    copy, and a sealed one by copy, through a pool of eight buffers that
    more readers at once overflow; every byte comes back, cold and warm,
    whatever the reader's size and offset."""
    fs = phifs
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    with open(fs.config) as f:
        text = f.read()
    fs.umount()
    fs.write_config(text.replace(
        "[filesystem]\n", f"[filesystem]\nlocal_seal = {local_seal}\n"
        f"metrics_listen = 127.0.0.1:{port}\n"))
    fs.mount()
    raised = os.geteuid() == 0 and os.access(bdi_read_ahead(fs.mnt),
                                             os.W_OK)
    if raised:
        with open(bdi_read_ahead(fs.mnt)) as f:
            assert int(f.read()) == 2048
    rng = random.Random(7)
    data = rng.randbytes(9 * MiB + 12345)
    p = fs.path("series.bin")
    write_file(p, data)
    others = [rng.randbytes(n) for n in
              (1, 100, 4096, 4097, 128 << 10, (128 << 10) + 1, MiB - 1,
               MiB, MiB + 7, 3 * MiB + 5, 2 * MiB, 5 * MiB + 1)]
    for i, d in enumerate(others):
        write_file(fs.path(f"slice-{i:02d}"), d)
    fs.remount()                    # cold: nothing in the page cache
    assert fs.status()["local_sealed"] is (local_seal == "on")
    before = fuse_reads(port)
    with open(p, "rb", buffering=0) as f:
        got = bytearray()
        while chunk := f.read(MiB):
            got += chunk
    assert got == data, "1 MiB reads return other bytes"
    if raised:
        # 10 requests of up to 1 MiB; 73 of 128 KiB without the raise
        reads = fuse_reads(port) - before
        assert reads <= 20, f"{reads:.0f} READ requests for 9 MiB"
    for size in (3 * MiB + 7, 4096, 1000):
        got = bytearray()
        with open(p, "rb", buffering=0) as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while chunk := f.read(size):
                got += chunk
        assert got == data, f"{size}-byte reads return other bytes"
    for off in (1, MiB - 1, 4 * MiB + 4095):
        assert os.pread(fd := os.open(p, os.O_RDONLY), 2 * MiB, off) == \
            data[off:off + 2 * MiB]
        os.close(fd)

    # more readers at once than the pool keeps buffers
    def read_one(i):
        with open(fs.path(f"slice-{i:02d}"), "rb") as f:
            return f.read()
    with concurrent.futures.ThreadPoolExecutor(len(others)) as ex:
        for _ in range(3):
            for i, d in enumerate(others):
                os.posix_fadvise(fd := os.open(fs.path(f"slice-{i:02d}"),
                                               os.O_RDONLY),
                                 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
            got = list(ex.map(read_one, range(len(others))))
            for i, d in enumerate(others):
                assert got[i] == d, f"slice {i} read at once with others"


def test_file_over_4gib(phifs):
    p = phifs.path("big")
    off = 5 * GiB
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.pwrite(fd, b"beyond 4 GiB", off) == 12
        assert os.fstat(fd).st_size == off + 12
        assert os.pread(fd, 12, off) == b"beyond 4 GiB"
        # a 32-bit truncated offset would have landed at 1 GiB
        assert os.pread(fd, 12, off - 4 * GiB) == bytes(12)
        assert os.pread(fd, 16, 4 * GiB - 8) == bytes(16)
    finally:
        os.close(fd)
    phifs.remount()
    assert os.stat(p).st_size == off + 12
    with open(p, "rb") as f:
        f.seek(off - 4)
        assert f.read() == bytes(4) + b"beyond 4 GiB"
        f.seek(GiB)
        assert f.read(12) == bytes(12)


def test_flush_fsync_fdatasync_dirfsync_survive_kill9(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    os.mkdir(phifs.path("d"))
    c = phifs.path("d", "c")
    da, db, dc = os.urandom(300000), os.urandom(1234567), os.urandom(4096)
    fd = os.open(a, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, da)
    os.fsync(fd)
    os.close(fd)
    fd = os.open(b, os.O_WRONLY | os.O_CREAT, 0o640)
    os.write(fd, db)
    os.fdatasync(fd)
    os.close(fd)
    fd = os.open(c, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, dc)
    os.fsync(fd)
    os.close(fd)
    for d in (phifs.mnt, phifs.path("d")):
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    # flush (close) made the data visible to a new open
    assert read_file(a) == da
    phifs.kill9()
    phifs.mount()
    assert read_file(a) == da
    assert read_file(b) == db
    assert os.stat(b).st_size == len(db)
    assert read_file(c) == dc
    assert (mode_of(a), mode_of(b), mode_of(c)) == (0o644, 0o640, 0o600)


# --- directories ----------------------------------------------------------

def test_mkdir_rmdir(phifs):
    d = phifs.path("d")
    os.mkdir(d, 0o750)
    st = os.stat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_nlink == 2
    assert os.listdir(d) == []
    expect_errno(errno.EEXIST, os.mkdir, d)
    write_file(phifs.path("f"), b"x")
    expect_errno(errno.EEXIST, os.mkdir, phifs.path("f"))
    expect_errno(errno.ENOTDIR, os.mkdir, phifs.path("f", "sub"))
    expect_errno(errno.ENOENT, os.mkdir, phifs.path("no", "sub"))
    os.mkdir(os.path.join(d, "sub"))
    expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    write_file(os.path.join(d, "sub", "file"), b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, os.path.join(d, "sub"))
    expect_errno(errno.ENOTDIR, os.rmdir, phifs.path("f"))
    expect_errno(errno.ENOENT, os.rmdir, phifs.path("missing"))
    os.unlink(os.path.join(d, "sub", "file"))
    os.rmdir(os.path.join(d, "sub"))
    os.rmdir(d)
    expect_errno(errno.ENOENT, os.stat, d)
    assert os.listdir(phifs.mnt) == ["f"]
    os.mkdir(d)             # the name can be used again
    assert os.listdir(d) == []


def test_unlink_open_file(phifs):
    p = phifs.path("open")
    data = os.urandom(300000)
    write_file(p, data)
    inodes0 = phifs.status()["inodes"]
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        expect_errno(errno.ENOENT, os.stat, p)
        assert "open" not in os.listdir(phifs.mnt)
        assert os.fstat(fd).st_nlink == 0
        assert pread_all(fd, len(data) + 10, 0) == data
        os.pwrite(fd, b"more", len(data))
        assert os.fstat(fd).st_size == len(data) + 4
        assert pread_all(fd, 10, len(data) - 6) == data[-6:] + b"more"
        # the name is free for a new, independent file
        write_file(p, b"new file")
        assert read_file(p) == b"new file"
        assert pread_all(fd, 4, len(data)) == b"more"
    finally:
        os.close(fd)
    expect_errno(errno.EISDIR, os.unlink, phifs.mnt)
    os.unlink(p)
    # all gone: the inode count is back where it was without "open"
    st = phifs.wait_status(lambda s: s["inodes"] == inodes0 - 1)
    assert st["inodes"] == inodes0 - 1, (inodes0, st)


# --- rename ---------------------------------------------------------------

def test_rename_plain(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    write_file(a, b"content of a")
    ino = os.stat(a).st_ino
    os.rename(a, b)
    expect_errno(errno.ENOENT, os.stat, a)
    assert os.stat(b).st_ino == ino
    assert read_file(b) == b"content of a"
    os.mkdir(phifs.path("d1"))
    os.mkdir(phifs.path("d1", "inner"))
    write_file(phifs.path("d1", "inner", "f"), b"deep")
    os.rename(phifs.path("d1"), phifs.path("d2"))
    assert read_file(phifs.path("d2", "inner", "f")) == b"deep"
    os.rename(b, phifs.path("d2", "inner", "b"))
    assert sorted(os.listdir(phifs.path("d2", "inner"))) == ["b", "f"]
    assert sorted(os.listdir(phifs.mnt)) == ["d2"]
    expect_errno(errno.ENOENT, os.rename, phifs.path("nope"), phifs.path("x"))
    phifs.remount()
    assert sorted(os.listdir(phifs.mnt)) == ["d2"]
    assert read_file(phifs.path("d2", "inner", "b")) == b"content of a"


def test_rename_over_existing_file(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    write_file(a, b"AAAA")
    write_file(b, b"BBBBBBBB")
    ino_a = os.stat(a).st_ino
    fd = os.open(b, os.O_RDONLY)
    try:
        os.rename(a, b)
        st = os.stat(b)
        assert st.st_ino == ino_a and st.st_nlink == 1
        assert read_file(b) == b"AAAA"
        assert os.listdir(phifs.mnt) == ["b"]
        # the replaced file lives on through its fd
        assert pread_all(fd, 100, 0) == b"BBBBBBBB"
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    phifs.remount()
    assert read_file(b) == b"AAAA"


def test_rename_dir_over_empty_dir(phifs):
    os.mkdir(phifs.path("src"))
    write_file(phifs.path("src", "f"), b"x")
    os.mkdir(phifs.path("dst"))
    os.rename(phifs.path("src"), phifs.path("dst"))
    assert os.listdir(phifs.mnt) == ["dst"]
    assert read_file(phifs.path("dst", "f")) == b"x"
    assert os.stat(phifs.mnt).st_nlink == 3


def test_rename_dir_over_nonempty_dir(phifs):
    os.mkdir(phifs.path("src"))
    os.mkdir(phifs.path("dst"))
    write_file(phifs.path("dst", "keep"), b"k")
    expect_errno(errno.ENOTEMPTY, os.rename, phifs.path("src"),
                 phifs.path("dst"))
    assert sorted(os.listdir(phifs.mnt)) == ["dst", "src"]
    assert read_file(phifs.path("dst", "keep")) == b"k"


def test_rename_dir_over_file(phifs):
    os.mkdir(phifs.path("d"))
    write_file(phifs.path("f"), b"f")
    expect_errno(errno.ENOTDIR, os.rename, phifs.path("d"), phifs.path("f"))
    assert read_file(phifs.path("f")) == b"f"
    assert os.path.isdir(phifs.path("d"))


def test_rename_file_over_dir(phifs):
    os.mkdir(phifs.path("d"))
    write_file(phifs.path("f"), b"f")
    expect_errno(errno.EISDIR, os.rename, phifs.path("f"), phifs.path("d"))
    assert read_file(phifs.path("f")) == b"f"
    assert os.path.isdir(phifs.path("d"))


def test_rename_dir_into_own_subdir(phifs):
    os.makedirs(phifs.path("a", "b", "c"))
    expect_errno(errno.EINVAL, os.rename, phifs.path("a"),
                 phifs.path("a", "b", "c", "a"))
    expect_errno(errno.EINVAL, os.rename, phifs.path("a"),
                 phifs.path("a", "x"))
    assert os.path.isdir(phifs.path("a", "b", "c"))
    assert os.listdir(phifs.path("a", "b", "c")) == []


def test_rename_noreplace(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    write_file(a, b"A")
    write_file(b, b"B")
    expect_errno(errno.EEXIST, renameat2, a, b, RENAME_NOREPLACE)
    assert (read_file(a), read_file(b)) == (b"A", b"B")
    renameat2(a, phifs.path("c"), RENAME_NOREPLACE)
    assert sorted(os.listdir(phifs.mnt)) == ["b", "c"]
    assert read_file(phifs.path("c")) == b"A"


def test_rename_exchange(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    write_file(a, b"A")
    write_file(b, b"BB")
    ia, ib = os.stat(a).st_ino, os.stat(b).st_ino
    renameat2(a, b, RENAME_EXCHANGE)
    assert (read_file(a), read_file(b)) == (b"BB", b"A")
    assert (os.stat(a).st_ino, os.stat(b).st_ino) == (ib, ia)
    # a file and a directory in different parents
    os.mkdir(phifs.path("d"))
    os.mkdir(phifs.path("p"))
    write_file(phifs.path("d", "inside"), b"i")
    renameat2(a, phifs.path("d"), RENAME_EXCHANGE)
    assert read_file(phifs.path("d")) == b"BB"
    assert read_file(phifs.path("a", "inside")) == b"i"
    renameat2(phifs.path("a"), phifs.path("p", "x"), RENAME_NOREPLACE)
    assert os.stat(phifs.mnt).st_nlink == 3   # 2 + the one subdir p
    expect_errno(errno.ENOENT, renameat2, phifs.path("missing"), b,
                 RENAME_EXCHANGE)
    phifs.remount()
    assert read_file(b) == b"A"
    assert read_file(phifs.path("d")) == b"BB"
    assert read_file(phifs.path("p", "x", "inside")) == b"i"


def test_rename_open_file_then_read(phifs):
    os.mkdir(phifs.path("dst"))
    p = phifs.path("f")
    write_file(p, b"0123456789")
    fd = os.open(p, os.O_RDWR)
    try:
        os.rename(p, phifs.path("dst", "g"))
        assert pread_all(fd, 100, 0) == b"0123456789"
        os.pwrite(fd, b"AB", 10)
        assert read_file(phifs.path("dst", "g")) == b"0123456789AB"
    finally:
        os.close(fd)
    phifs.remount()
    assert read_file(phifs.path("dst", "g")) == b"0123456789AB"


def test_rename_between_links_of_same_inode(phifs):
    write_file(phifs.path("a"), b"x")
    os.link(phifs.path("a"), phifs.path("b"))
    os.rename(phifs.path("a"), phifs.path("b"))     # POSIX: does nothing
    assert sorted(os.listdir(phifs.mnt)) == ["a", "b"]
    assert os.stat(phifs.path("a")).st_nlink == 2


# --- links ----------------------------------------------------------------

def test_hard_links(phifs):
    a, b = phifs.path("a"), phifs.path("b")
    os.mkdir(phifs.path("d"))
    c = phifs.path("d", "c")
    write_file(a, b"shared")
    os.link(a, b)
    assert os.stat(a).st_nlink == 2 and os.stat(b).st_nlink == 2
    assert os.stat(a).st_ino == os.stat(b).st_ino
    os.link(b, c)
    assert os.stat(a).st_nlink == 3
    fd = os.open(b, os.O_WRONLY)
    os.pwrite(fd, b"S", 0)
    os.close(fd)
    assert read_file(a) == b"Shared" and read_file(c) == b"Shared"
    os.unlink(a)
    assert os.stat(b).st_nlink == 2
    expect_errno(errno.EEXIST, os.link, b, c)
    expect_errno(errno.EPERM, os.link, phifs.path("d"), phifs.path("d2"))
    expect_errno(errno.ENOENT, os.link, a, phifs.path("z"))
    phifs.remount()
    assert os.stat(b).st_nlink == 2
    assert os.stat(b).st_ino == os.stat(c).st_ino
    os.unlink(c)
    assert os.stat(b).st_nlink == 1
    assert read_file(b) == b"Shared"


def test_directory_nlink(phifs):
    root = phifs.mnt
    assert os.stat(root).st_nlink == 2
    d = phifs.path("d")
    os.mkdir(d)
    assert os.stat(root).st_nlink == 3
    assert os.stat(d).st_nlink == 2
    os.mkdir(os.path.join(d, "s1"))
    os.mkdir(os.path.join(d, "s2"))
    write_file(os.path.join(d, "file"), b"")
    assert os.stat(d).st_nlink == 4
    os.rmdir(os.path.join(d, "s1"))
    assert os.stat(d).st_nlink == 3
    os.rename(os.path.join(d, "s2"), phifs.path("s2"))
    assert os.stat(d).st_nlink == 2
    assert os.stat(root).st_nlink == 4
    phifs.remount()
    assert os.stat(d).st_nlink == 2
    assert os.stat(root).st_nlink == 4


def test_symlink_readlink(phifs):
    ln = phifs.path("ln")
    os.symlink("some/target", ln)
    assert os.readlink(ln) == "some/target"
    st = os.lstat(ln)
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("some/target")
    expect_errno(errno.ENOENT, os.stat, ln)          # dangling
    write_file(phifs.path("real"), b"real content")
    os.symlink("real", phifs.path("good"))
    assert os.stat(phifs.path("good")).st_ino == os.stat(phifs.path("real")).st_ino
    assert read_file(phifs.path("good")) == b"real content"
    long_target = "d/" * 1999 + "xx"
    assert len(long_target) == 4000
    os.symlink(long_target, phifs.path("long"))
    assert os.readlink(phifs.path("long")) == long_target
    assert os.lstat(phifs.path("long")).st_size == 4000
    expect_errno(errno.EEXIST, os.symlink, "x", ln)
    expect_errno(errno.EINVAL, os.readlink, phifs.path("real"))
    phifs.remount()
    assert os.readlink(ln) == "some/target"
    assert os.readlink(phifs.path("long")) == long_target


def test_fifo(phifs):
    p = phifs.path("fifo")
    os.mkfifo(p, 0o640)
    st = os.lstat(p)
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        w = os.open(p, os.O_WRONLY)
        try:
            os.write(w, b"through the fifo")
            assert os.read(r, 100) == b"through the fifo"
        finally:
            os.close(w)
    finally:
        os.close(r)
    phifs.remount()
    assert stat.S_ISFIFO(os.lstat(p).st_mode)


def test_unix_socket(phifs):
    p = phifs.path("sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(p)
        srv.listen(1)
        assert stat.S_ISSOCK(os.lstat(p).st_mode)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            cli.settimeout(10)
            cli.connect(p)
            conn, _ = srv.accept()
            with conn:
                cli.sendall(b"ping")
                assert conn.recv(4) == b"ping"
        finally:
            cli.close()
    finally:
        srv.close()
    os.unlink(p)
    assert os.listdir(phifs.mnt) == []


# --- readdir --------------------------------------------------------------

def test_readdir_1000_entries(phifs):
    d = phifs.path("big")
    os.mkdir(d)
    names = {f"entry-{i:04d}-{'n' * (i % 50)}" for i in range(1000)}
    for n in names:
        write_file(os.path.join(d, n), n.encode())
    listed = os.listdir(d)
    assert len(listed) == 1000 and set(listed) == names
    inos = set()
    with os.scandir(d) as it:
        for e in it:
            assert e.is_file(follow_symlinks=False)
            inos.add(e.inode())
            if len(inos) % 97 == 0:
                assert e.inode() == os.lstat(e.path).st_ino
    assert len(inos) == 1000
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        allnames = []
        while True:
            ents = getdents(fd, 4096)
            if not ents:
                break
            allnames += [e.name for e in ents]
    finally:
        os.close(fd)
    assert sorted(allnames) == sorted([b".", b".."] +
                                      [n.encode() for n in names])
    phifs.remount()
    assert set(os.listdir(d)) == names


def test_many_files_under_systemd_fd_limit(phifs):
    """A program (indexer, backup, virus scanner) opens thousands of files
    one after another; the daemon runs with systemd's default soft limit of
    1024 open files."""
    phifs.umount()
    phifs.mount(nofile=1024)
    d = phifs.path("archive")
    os.mkdir(d)
    n = 3000
    for i in range(n):
        write_file(os.path.join(d, f"doc-{i:05d}.pdf"), b"%d" % i)
    for i in range(n):
        assert read_file(os.path.join(d, f"doc-{i:05d}.pdf")) == b"%d" % i
    assert len(os.listdir(d)) == n
    phifs.remount()
    assert read_file(os.path.join(d, f"doc-{n - 1:05d}.pdf")) == b"%d" % (n - 1)


def test_readdir_offsets_stable_while_changing(phifs):
    d = phifs.path("dir")
    os.mkdir(d)
    keep = [f"keep-{i:04d}-{'k' * 30}".encode() for i in range(400)]
    tmp = [f"tmp-{i:04d}-{'t' * 30}".encode() for i in range(200)]
    bd = os.fsencode(d)
    for n in keep + tmp:
        write_file(os.path.join(bd, n), b"")
    ever = set(keep) | set(tmp) | {b".", b".."}
    tmp_left = list(tmp)
    rng = random.Random(7)
    removed_keep = set()
    seen = collections.Counter()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    rounds = 0
    try:
        while True:
            ents = getdents(fd, 1024)
            if not ents:
                break
            rounds += 1
            assert rounds < 2000, "the listing does not end"
            for e in ents:
                seen[e.name] += 1
            if rounds > 30:
                continue    # new entries go to the end: let the reader finish
            # change the directory between calls
            for _ in range(min(3, len(tmp_left))):
                n = tmp_left.pop(rng.randrange(len(tmp_left)))
                os.unlink(os.path.join(bd, n))
            for j in range(3):
                n = f"new-{rounds:03d}-{j}-{'w' * 30}".encode()
                write_file(os.path.join(bd, n), b"")
                ever.add(n)
            seen_keep = [k for k in keep if seen[k] and k not in removed_keep]
            if rounds % 2 == 0 and seen_keep:
                k = rng.choice(seen_keep)
                os.unlink(os.path.join(bd, k))
                removed_keep.add(k)
    finally:
        os.close(fd)
    assert rounds >= 10, f"only {rounds} getdents calls; test did not bite"
    assert removed_keep, "no entry was removed during the listing"
    dup = {n: c for n, c in seen.items() if c > 1}
    assert not dup, f"entries listed more than once: {dup}"
    missing = [k for k in keep if k not in removed_keep and seen[k] != 1]
    assert not missing, f"{len(missing)} untouched entries not listed, " \
                        f"e.g. {missing[:3]}"
    assert seen[b"."] == 1 and seen[b".."] == 1
    stray = set(seen) - ever
    assert not stray, f"names that never existed: {stray}"


def test_readdir_scandir_while_changing(phifs):
    d = phifs.path("dir")
    os.mkdir(d)
    names = [f"file-{i:05d}-{'s' * 100}" for i in range(1500)]
    for n in names:
        write_file(os.path.join(d, n), b"")
    seen = collections.Counter()
    deleted, created = set(), set()
    with os.scandir(d) as it:
        for i, e in enumerate(it):
            seen[e.name] += 1
            if i == 300:
                done = [n for n in names if seen[n]][:100]
                for n in done:
                    os.unlink(os.path.join(d, n))
                    deleted.add(n)
                for j in range(100):
                    n = f"created-{j:03d}-{'c' * 100}"
                    write_file(os.path.join(d, n), b"")
                    created.add(n)
    assert deleted, "scandir ended before the change"
    assert max(seen.values()) == 1, \
        [n for n, c in seen.items() if c > 1][:3]
    untouched = [n for n in names if n not in deleted]
    assert all(seen[n] == 1 for n in untouched), \
        [n for n in untouched if seen[n] != 1][:3]
    assert set(seen) <= set(names) | created


def _replace_loop(d, stop, wfd):
    """Save "doc" over and over the way editors do: write "doc.tmp",
    rename it over "doc"; until the file stop exists.  Writes the count."""
    doc, tmp = os.path.join(d, "doc"), os.path.join(d, "doc.tmp")
    saves = 0
    deadline = time.monotonic() + 60
    while not os.path.exists(stop) and time.monotonic() < deadline:
        write_file(tmp, b"%d" % saves)
        os.rename(tmp, doc)
        saves += 1
    os.write(wfd, b"%d" % saves)


def test_readdir_name_replaced_by_rename_listed_once(phifs):
    """While another process replaces a name by rename(2), a listing of
    the directory may show that name or not (POSIX), but never twice: the
    replacing entry takes the replaced one's place, as on ext4 (where the
    place is the name's hash) and tmpfs."""
    d = phifs.path("dir")
    os.mkdir(d)
    write_file(os.path.join(d, "doc"), b"first")
    # enough entries that a listing takes several FUSE requests
    keep = {f"keep-{i:03d}-{'k' * 40}" for i in range(150)}
    for n in sorted(keep):
        write_file(os.path.join(d, n), b"")
    stop = os.path.join(phifs.base, "stop-saver")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _replace_loop(d, stop, w)
        finally:
            os._exit(0)
    os.close(w)
    bad, listings = [], 0
    try:
        deadline = time.monotonic() + 20
        while listings < 3000 and time.monotonic() < deadline and \
                len(bad) < 5:
            seen = collections.Counter(os.listdir(d))
            listings += 1
            # "doc.tmp" is a new file each time: unspecified, not checked
            twice = sorted(n for n, c in seen.items()
                           if c > 1 and n != "doc.tmp")
            lost = sorted(keep - set(seen))
            if twice or lost:
                bad.append(f"listing {listings}: twice {twice}, "
                           f"untouched names missing {lost[:3]}")
    finally:
        write_file(stop, b"")
        out = b""
        while True:
            b = os.read(r, 64)
            if not b:
                break
            out += b
        os.close(r)
        os.waitpid(pid, 0)
    saves = int(out or b"0")
    assert not bad, f"{len(bad)}+ bad listings of {listings} " \
                    f"({saves} saves meanwhile): {bad}"
    assert saves >= 50 and listings >= 50, \
        f"only {saves} saves during {listings} listings: no race was run"
    assert sorted(os.listdir(d)) == sorted(keep | {"doc"})


def test_readdir_seek_tell(phifs):
    d = phifs.path("dir")
    os.mkdir(d)
    for i in range(300):
        write_file(os.path.join(d, f"entry-{i:03d}-{'x' * 40}"), b"")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = getdents(fd, 1024)
        assert first and len(first) < 302
        pos = first[-1].off
        rest1 = []
        while True:
            ents = getdents(fd, 1024)
            if not ents:
                break
            rest1 += ents
        assert os.lseek(fd, pos, os.SEEK_SET) == pos
        rest2 = []
        while True:
            ents = getdents(fd, 2048)
            if not ents:
                break
            rest2 += ents
        assert [e.name for e in rest2] == [e.name for e in rest1]
        os.lseek(fd, 0, os.SEEK_SET)
        again = []
        while True:
            ents = getdents(fd, 8192)
            if not ents:
                break
            again += ents
        assert [e.name for e in again] == [e.name for e in first + rest1]
        assert len(again) == 302
    finally:
        os.close(fd)


# --- names ----------------------------------------------------------------

def test_name_lengths(phifs):
    n255 = "a" * 255
    n256 = "b" * 256
    write_file(phifs.path(n255), b"255")
    assert read_file(phifs.path(n255)) == b"255"
    assert os.listdir(phifs.mnt) == [n255]
    os.mkdir(phifs.path("d" * 255))
    os.symlink("t", phifs.path("s" * 255))
    utf255 = "é" * 127 + "a"
    utf256 = "é" * 128
    assert len(utf255.encode()) == 255 and len(utf256.encode()) == 256
    write_file(phifs.path(utf255), b"u")
    assert utf255 in os.listdir(phifs.mnt)
    creat = os.O_CREAT | os.O_WRONLY
    expect_errno(errno.ENAMETOOLONG, os.open, phifs.path(n256), creat, 0o644)
    expect_errno(errno.ENAMETOOLONG, os.open, phifs.path(utf256), creat, 0o644)
    expect_errno(errno.ENAMETOOLONG, os.mkdir, phifs.path(n256))
    expect_errno(errno.ENAMETOOLONG, os.symlink, "t", phifs.path(n256))
    expect_errno(errno.ENAMETOOLONG, os.mkfifo, phifs.path(n256))
    expect_errno(errno.ENAMETOOLONG, os.rename, phifs.path(n255),
                 phifs.path(n256))
    expect_errno(errno.ENAMETOOLONG, os.link, phifs.path(n255),
                 phifs.path(n256))
    expect_errno((errno.ENAMETOOLONG, errno.ENOENT), os.stat,
                 phifs.path(n256))
    assert sorted(os.listdir(phifs.mnt)) == sorted(
        [n255, "d" * 255, "s" * 255, utf255])
    phifs.remount()
    assert read_file(phifs.path(n255)) == b"255"


def test_non_utf8_and_utf8_names(phifs):
    names = [b"\xff\xfe\xfd", b"caf\xe9.txt", b"mixed-\xc3\xa9-\xe9",
             "Müller, Jürgen – Befund 日本語 ✓.pdf".encode(),
             b"with space ", b"new\nline", b"back\\slash", b"-dash",
             b".hidden", b"ctl\x01\x1f\x7f", b"\xc3\x28 invalid utf8",
             b"quote\"'`$"]
    mnt = os.fsencode(phifs.mnt)
    for n in names:
        write_file(os.path.join(mnt, n), n)
    assert sorted(os.listdir(mnt)) == sorted(names)
    for n in names:
        assert read_file(os.path.join(mnt, n)) == n
    for n in names[:4]:
        os.rename(os.path.join(mnt, n), os.path.join(mnt, n + b".2"))
    expected = sorted([n + b".2" for n in names[:4]] + names[4:])
    assert sorted(os.listdir(mnt)) == expected
    phifs.remount()
    assert sorted(os.listdir(mnt)) == expected
    for n in expected:
        assert read_file(os.path.join(mnt, n)).startswith(n[:3])


def test_statfs(phifs):
    v = os.statvfs(phifs.mnt)
    assert v.f_namemax == 255
    assert v.f_bsize > 0 and v.f_frsize > 0
    assert v.f_blocks > 0
    assert v.f_bfree <= v.f_blocks and v.f_bavail <= v.f_blocks
    assert v.f_ffree <= v.f_files or v.f_files == 0


# --- extended attributes ----------------------------------------------------

def test_xattr_user(phifs):
    p = phifs.path("x")
    write_file(p, b"x")
    os.setxattr(p, "user.a", b"1")
    assert os.getxattr(p, "user.a") == b"1"
    os.setxattr(p, "user.bin", b"\x00\xff" * 50)
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.bin") == b"\x00\xff" * 50
    assert os.getxattr(p, "user.empty") == b""
    assert {"user.a", "user.bin", "user.empty"} <= set(os.listxattr(p))
    expect_errno(errno.EEXIST, os.setxattr, p, "user.a", b"2",
                 os.XATTR_CREATE)
    assert os.getxattr(p, "user.a") == b"1"
    expect_errno(errno.ENODATA, os.setxattr, p, "user.new", b"2",
                 os.XATTR_REPLACE)
    expect_errno(errno.ENODATA, os.getxattr, p, "user.new")
    os.setxattr(p, "user.a", b"replaced", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.a") == b"replaced"
    os.setxattr(p, "user.created", b"c", os.XATTR_CREATE)
    assert os.getxattr(p, "user.created") == b"c"
    # size probing and ERANGE
    assert getxattr_sized(p, "user.a", 0) == len(b"replaced")
    expect_errno(errno.ERANGE, getxattr_sized, p, "user.a", 1)
    assert getxattr_sized(p, "user.a", 100) == b"replaced"
    need = listxattr_sized(p, 0)
    assert need >= len(b"user.a\0user.bin\0user.empty\0user.created\0")
    expect_errno(errno.ERANGE, listxattr_sized, p, 1)
    # removal
    os.removexattr(p, "user.bin")
    assert "user.bin" not in os.listxattr(p)
    expect_errno(errno.ENODATA, os.getxattr, p, "user.bin")
    expect_errno(errno.ENODATA, os.removexattr, p, "user.bin")
    # the largest value and a long name
    big = random.Random(3).randbytes(65536)
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    long_name = "user." + "n" * 250
    os.setxattr(p, long_name, b"long")
    assert os.getxattr(p, long_name) == b"long"
    expect_errno(errno.E2BIG, os.setxattr, p, "user.toobig", bytes(65537))
    # directories too
    d = phifs.path("d")
    os.mkdir(d)
    os.setxattr(d, "user.dir", b"on a dir")
    assert os.getxattr(d, "user.dir") == b"on a dir"
    phifs.remount()
    assert os.getxattr(p, "user.a") == b"replaced"
    assert os.getxattr(p, "user.big") == big
    assert os.getxattr(p, "user.empty") == b""
    assert os.getxattr(d, "user.dir") == b"on a dir"
    assert sorted(x for x in os.listxattr(p) if x.startswith("user.")) == \
        sorted(["user.a", "user.empty", "user.created", "user.big", long_name])


def test_xattr_other_namespaces(phifs):
    p = phifs.path("x")
    write_file(p, b"x")
    for name in ("trusted.phifs", "security.phifs"):
        e = errno_of(os.setxattr, p, name, b"value")
        if e == 0:
            assert os.getxattr(p, name) == b"value"
            assert name in os.listxattr(p)
        else:
            assert e in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES), \
                f"setxattr {name}: {ename(e)}"
            assert errno_of(os.getxattr, p, name) in \
                (errno.ENODATA, errno.EOPNOTSUPP)
            assert name not in os.listxattr(p)
    e = errno_of(os.setxattr, p, "system.posix_acl_access", b"junk")
    assert e in (errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM), ename(e)
    # the file still works and user.* still does
    os.setxattr(p, "user.ok", b"1")
    assert os.getxattr(p, "user.ok") == b"1"


# --- allocation and mapping -------------------------------------------------

def test_fallocate(phifs):
    p = phifs.path("fa")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, MiB + 5)
        assert os.fstat(fd).st_size == MiB + 5
        assert pread_all(fd, MiB + 100, 0) == bytes(MiB + 5)
        os.pwrite(fd, b"abc", 0)
        os.posix_fallocate(fd, 0, 10)            # inside: no change
        assert os.fstat(fd).st_size == MiB + 5
        assert os.pread(fd, 4, 0) == b"abc\0"
        fallocate(fd, 0, 2 * MiB, 4096)          # mode 0 through the fs
        assert os.fstat(fd).st_size == 2 * MiB + 4096
        assert pread_all(fd, 3 * MiB, MiB) == bytes(MiB + 4096)
        assert os.pread(fd, 3, 0) == b"abc"
        e = errno_of(fallocate, fd, FALLOC_FL_KEEP_SIZE, 3 * MiB, 4096)
        assert e in (0, errno.EOPNOTSUPP), ename(e)
        assert os.fstat(fd).st_size == 2 * MiB + 4096
        os.pwrite(fd, b"\xff" * 8192, 0)
        e = errno_of(fallocate, fd,
                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
        assert e in (0, errno.EOPNOTSUPP), ename(e)
        want = bytes(4096) if e == 0 else b"\xff" * 4096
        assert os.pread(fd, 8192, 0) == want + b"\xff" * 4096
        assert os.fstat(fd).st_size == 2 * MiB + 4096
    finally:
        os.close(fd)
    phifs.remount()
    assert os.stat(p).st_size == 2 * MiB + 4096


def test_mmap_shared_write(phifs):
    p = phifs.path("map")
    size = 3 * 4096 + 100
    write_file(p, b"a" * size)
    fd = os.open(p, os.O_RDWR)
    try:
        m = mmap.mmap(fd, size, mmap.MAP_SHARED,
                      mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            m[100:110] = b"0123456789"
            m[8190:8200] = b"ACROSSPAGE"
            m[size - 3:size] = b"END"
            m.flush()                       # msync(MS_SYNC)
        finally:
            m.close()
    finally:
        os.close(fd)
    expected = bytearray(b"a" * size)
    expected[100:110] = b"0123456789"
    expected[8190:8200] = b"ACROSSPAGE"
    expected[size - 3:size] = b"END"
    fd2 = os.open(p, os.O_RDONLY)
    try:
        assert pread_all(fd2, size + 10, 0) == bytes(expected)
    finally:
        os.close(fd2)
    phifs.remount()
    assert read_file(p) == bytes(expected)
    assert os.stat(p).st_size == size


# --- locks ----------------------------------------------------------------

def _try_lockf(path, how, length, start):
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.lockf(fd, how, length, start)
        except OSError as e:
            return e.errno
        return 0
    finally:
        os.close(fd)


def _getlk(path, start, length):
    fd = os.open(path, os.O_RDWR)
    try:
        req = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start,
                          length, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        typ, _, lstart, llen, pid = struct.unpack("@hhqqi4x", res)
        return typ, lstart, llen, pid
    finally:
        os.close(fd)


def test_fcntl_byte_range_locks(phifs):
    p = phifs.path("locked")
    write_file(p, bytes(1000))
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)   # [0, 100)
        nb = fcntl.LOCK_NB
        e = run_in_child(_try_lockf, p, fcntl.LOCK_EX | nb, 10, 50)
        assert e in (errno.EAGAIN, errno.EACCES), ename(e)
        e = run_in_child(_try_lockf, p, fcntl.LOCK_SH | nb, 1, 99)
        assert e in (errno.EAGAIN, errno.EACCES), ename(e)
        assert run_in_child(_try_lockf, p, fcntl.LOCK_EX | nb, 100, 200) == 0
        typ, start, length, pid = run_in_child(_getlk, p, 0, 10)
        assert typ == fcntl.F_WRLCK and pid == os.getpid()
        assert (start, length) == (0, 100)
        fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
        assert run_in_child(_try_lockf, p, fcntl.LOCK_EX | nb, 10, 50) == 0
        typ, *_ = run_in_child(_getlk, p, 0, 10)
        assert typ == fcntl.F_UNLCK
        fcntl.lockf(fd, fcntl.LOCK_SH | nb, 0, 0)               # whole file
        assert run_in_child(_try_lockf, p, fcntl.LOCK_SH | nb, 10, 0) == 0
        e = run_in_child(_try_lockf, p, fcntl.LOCK_EX | nb, 10, 500)
        assert e in (errno.EAGAIN, errno.EACCES), ename(e)
    finally:
        os.close(fd)
    # closing released everything
    assert run_in_child(_try_lockf, p, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0) == 0


def _try_flock(path, how):
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, how)
        except OSError as e:
            return e.errno
        return 0
    finally:
        os.close(fd)


def test_flock_between_processes(phifs):
    p = phifs.path("flocked")
    write_file(p, b"x")
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        nb = fcntl.LOCK_NB
        assert run_in_child(_try_flock, p, fcntl.LOCK_EX | nb) == \
            errno.EWOULDBLOCK
        assert run_in_child(_try_flock, p, fcntl.LOCK_SH | nb) == \
            errno.EWOULDBLOCK
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert run_in_child(_try_flock, p, fcntl.LOCK_SH | nb) == 0
        assert run_in_child(_try_flock, p, fcntl.LOCK_EX | nb) == \
            errno.EWOULDBLOCK
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert run_in_child(_try_flock, p, fcntl.LOCK_EX | nb) == 0
    finally:
        os.close(fd)


# --- ownership and permissions ---------------------------------------------

def _create_all(d):
    write_file(os.path.join(d, "file"), b"mine")
    os.mkdir(os.path.join(d, "dir"))
    os.symlink("file", os.path.join(d, "link"))
    os.mkfifo(os.path.join(d, "fifo"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(d, "sock"))
    s.close()
    return sorted(os.listdir(d))


def test_ownership_of_new_nodes(phifs):
    d = phifs.path("shared")
    os.mkdir(d)
    os.chmod(d, 0o777)
    names = run_as(OTHER_UID, OTHER_GID, _create_all, d)
    assert names == ["dir", "fifo", "file", "link", "sock"]

    def check():
        for n in names:
            st = os.lstat(os.path.join(d, n))
            assert (st.st_uid, st.st_gid) == (OTHER_UID, OTHER_GID), \
                f"{n} belongs to {st.st_uid}:{st.st_gid}"
    check()
    phifs.remount()
    check()


def test_setgid_directory(phifs):
    d = phifs.path("group")
    os.mkdir(d)
    os.chown(d, 0, 4321)
    os.chmod(d, 0o2775)
    assert mode_of(d) == 0o2775
    write_file(os.path.join(d, "rootfile"), b"x")
    assert os.stat(os.path.join(d, "rootfile")).st_gid == 4321
    os.mkdir(os.path.join(d, "sub"))
    st = os.stat(os.path.join(d, "sub"))
    assert st.st_gid == 4321
    assert st.st_mode & stat.S_ISGID, "new subdirectory is not setgid"
    write_file(os.path.join(d, "sub", "deeper"), b"x")
    assert os.stat(os.path.join(d, "sub", "deeper")).st_gid == 4321

    def as_user():
        write_file(os.path.join(d, "userfile"), b"u")
        os.mkdir(os.path.join(d, "userdir"))
        os.symlink("userfile", os.path.join(d, "userlink"))
    run_as(OTHER_UID, OTHER_GID, as_user, groups=[4321])
    st = os.stat(os.path.join(d, "userfile"))
    assert (st.st_uid, st.st_gid) == (OTHER_UID, 4321)
    st = os.stat(os.path.join(d, "userdir"))
    assert (st.st_uid, st.st_gid) == (OTHER_UID, 4321)
    assert st.st_mode & stat.S_ISGID
    assert os.lstat(os.path.join(d, "userlink")).st_gid == 4321
    # outside the setgid directory the creator's group applies again
    os.chmod(phifs.mnt, 0o777)
    run_as(OTHER_UID, OTHER_GID, write_file, phifs.path("plain"), b"p",
           groups=[4321])
    assert os.stat(phifs.path("plain")).st_gid == OTHER_GID
    phifs.remount()
    assert os.stat(os.path.join(d, "userdir")).st_mode & stat.S_ISGID
    assert os.stat(os.path.join(d, "userfile")).st_gid == 4321


def test_default_permissions(phifs):
    secret, public = phifs.path("secret"), phifs.path("public")
    write_file(secret, b"patient data", 0o600)
    os.chmod(secret, 0o600)
    write_file(public, b"public", 0o644)
    u = (OTHER_UID, OTHER_GID)
    expect_errno(errno.EACCES, run_as, *u, read_file, secret)
    assert run_as(*u, read_file, public) == b"public"      # control
    expect_errno(errno.EACCES, run_as, *u, write_file, phifs.path("new"), b"")
    expect_errno(errno.EACCES, run_as, *u, os.mkdir, phifs.path("newdir"))
    expect_errno(errno.EACCES, run_as, *u, os.unlink, public)
    expect_errno(errno.EACCES, run_as, *u, os.rename, public,
                 phifs.path("moved"))
    expect_errno(errno.EACCES, run_as, *u, os.truncate, public, 0)
    expect_errno(errno.EACCES, run_as, *u, os.open, public, os.O_WRONLY)
    expect_errno(errno.EPERM, run_as, *u, os.chmod, public, 0o666)
    expect_errno(errno.EPERM, run_as, *u, os.utime, public, ns=(1, 1))
    expect_errno(errno.EACCES, run_as, *u, os.utime, public)
    expect_errno((errno.EACCES, errno.EPERM), run_as, *u, os.setxattr,
                 public, "user.x", b"1")
    assert sorted(os.listdir(phifs.mnt)) == ["public", "secret"]
    assert read_file(public) == b"public"
    assert mode_of(public) == 0o644


def test_allow_other(phifs):
    write_file(phifs.path("visible"), b"v")
    os.mkdir(phifs.path("folder"))
    listing = run_as(OTHER_UID, OTHER_GID, lambda: sorted(os.listdir(phifs.mnt)))
    assert listing == ["folder", "visible"]
    assert run_as(65534, 65534, read_file, phifs.path("visible")) == b"v"


# --- the legacy save pattern ------------------------------------------------

def _version(k):
    body_len = 1 + (k * 7919) % 150000
    return b"VERSION %06d LEN %08d\n" % (k, body_len) + \
        bytes([k % 251 + 1]) * body_len


def _reader(path, stop, wfd):
    reads, bad, versions = 0, [], set()
    deadline = time.monotonic() + 120
    while not os.path.exists(stop) and time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            bad.append(f"open/read: {e}")
            continue
        reads += 1
        try:
            k = int(data[8:14])
            ok = data == _version(k)
        except ValueError:
            ok = False
        if ok:
            versions.add(k)
        else:
            bad.append(f"torn content: {len(data)} bytes, head {data[:32]!r}")
        if len(bad) > 20:
            break
    os.write(wfd, repr((reads, bad, len(versions))).encode())


def test_save_pattern_reader_sees_whole_versions(phifs):
    doc, tmp = phifs.path("letter.doc"), phifs.path("letter.doc.tmp~")
    stop = os.path.join(phifs.base, "stop-reader")
    write_file(doc, _version(0))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _reader(doc, stop, w)
        finally:
            os._exit(0)
    os.close(w)
    try:
        for k in range(1, 201):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            data = _version(k)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, doc)
    finally:
        write_file(stop, b"")
        out = b""
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            out += b
        os.close(r)
        os.waitpid(pid, 0)
    reads, bad, nversions = ast.literal_eval(out.decode()) if out \
        else (0, ["reader died without a result"], 0)
    assert not bad, f"{len(bad)} bad reads of {reads}: {bad[:5]}"
    assert reads >= 20, f"reader only managed {reads} reads"
    assert nversions >= 2, "reader never saw the file change"
    assert read_file(doc) == _version(200)
    assert os.listdir(phifs.mnt) == ["letter.doc"]
