"""The `phifs` command line: bad input, status, mount and unmount.

Every bad input must give a non-zero exit, exactly one non-empty line on
stderr (naming file, line and key for config errors) and leave everything
as it was: the tests snapshot the test's whole private directory (config,
cache_dir, region, mountpoint) before and after.
"""

import hashlib
import os
import re
import signal
import stat
import time

import pytest

from conftest import (MOUNT_OPTS, OTHER_UID, fuse_mounts_under,
                      is_fuse_mounted, mounts, pid_alive, pids_referencing,
                      read_file, write_file)

MiB = 1 << 20
GiB = 1 << 30


def snapshot(root):
    """Everything under root: type, mode, owner, and for files size, mtime
    and content.  LMDB's lock.mdb holds reader slots, not data: only its
    existence counts."""
    res = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            key = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                   st.st_uid, st.st_gid)
            if n == "lock.mdb":
                res[rel] = ("lock.mdb",)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                res[rel] = key + (st.st_size, st.st_mtime_ns, digest)
            elif stat.S_ISLNK(st.st_mode):
                res[rel] = key + (os.readlink(p),)
            else:
                res[rel] = key
    return res


def assert_unchanged(before, after):
    if before == after:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after)
                     if before[k] != after[k])
    raise AssertionError(f"a failed command changed things: added {added}, "
                         f"removed {removed}, changed {changed}")


def one_error_line(p):
    """p failed with exactly one non-empty line on stderr; return it."""
    assert p.returncode != 0, \
        f"expected failure, got exit 0 (stdout {p.stdout!r})"
    assert p.returncode > 0, f"killed by signal {-p.returncode}: {p.stderr!r}"
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), \
        f"stderr must be exactly one non-empty line, got {p.stderr!r}"
    return lines[0]


def names_file_line_key(line, path, lineno, key):
    """A config error "FILE:LINE: KEY: message" (FILE as given or its
    basename)."""
    files = "|".join(re.escape(x) for x in {path, os.path.basename(path)})
    pat = rf"(^|[\s'\"`])({files}):{lineno}: {re.escape(key)}: \S"
    assert re.search(pat, line), \
        f"error does not name {os.path.basename(path)}:{lineno}: {key}: " \
        f"{line!r}"


def no_daemon_left(fs):
    time.sleep(0.2)
    left = [p for p in pids_referencing(fs.base) if pid_alive(p)]
    assert not left, f"processes left running: {left}"
    assert not fuse_mounts_under(fs.base), "a mount was left behind"


# --- help -----------------------------------------------------------------

def test_help(phifs_bare):
    p = phifs_bare.run("help")
    assert p.returncode == 0, p.stderr
    for word in ("mkfs", "mount", "umount", "status"):
        assert word in p.stdout, f"'phifs help' does not mention {word}"


@pytest.mark.parametrize("cmd", ["mkfs", "mount", "umount", "status"])
def test_subcommand_help(phifs_bare, cmd):
    before = snapshot(phifs_bare.base)
    p = phifs_bare.run(cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert cmd in p.stdout and len(p.stdout.strip()) > len(cmd), \
        f"'phifs {cmd} --help' printed {p.stdout!r}"
    assert_unchanged(before, snapshot(phifs_bare.base))


def test_unknown_subcommand(phifs_bare):
    before = snapshot(phifs_bare.base)
    line = one_error_line(phifs_bare.run("frobnicate", phifs_bare.config))
    assert "frobnicate" in line
    assert_unchanged(before, snapshot(phifs_bare.base))


# --- configuration errors -----------------------------------------------------

@pytest.mark.parametrize("cmd", ["mkfs", "mount", "status"])
def test_missing_config(phifs_bare, cmd):
    fs = phifs_bare
    missing = os.path.join(fs.base, "none.ini")
    args = [cmd, missing] + ([fs.mnt] if cmd == "mount" else [])
    before = snapshot(fs.base)
    line = one_error_line(fs.run(*args))
    assert "none.ini" in line, line
    assert_unchanged(before, snapshot(fs.base))
    assert not is_fuse_mounted(fs.mnt)


def test_unreadable_config(phifs_bare):
    fs = phifs_bare
    os.chmod(fs.config, 0o000)
    before = snapshot(fs.base)
    # root reads anything, so run phifs as another user
    line = one_error_line(fs.run("mkfs", fs.config, user=OTHER_UID))
    assert "phifs.ini" in line, line
    assert_unchanged(before, snapshot(fs.base))


def _config(fs, filesystem_extra="", region_extra="", cache_dir=None,
            url=None, cache_size="20G"):
    """Lines: 1 [filesystem], 2 cache_dir, 3 cache_size, 4 filesystem_extra
    (if any), then [region a], url, region_extra."""
    lines = ["[filesystem]",
             f"cache_dir = {cache_dir or fs.cache_dir}",
             f"cache_size = {cache_size}".rstrip()]
    if filesystem_extra:
        lines.append(filesystem_extra)
    lines += ["", "[region a]", f"url = {url or 'dir:' + fs.region_dir}"]
    if region_extra:
        lines.append(region_extra)
    return "\n".join(lines) + "\n"


# (id, config changes, line, key)
BAD_CONFIGS = [
    ("unknown-key", dict(filesystem_extra="colour = blue"), 4, "colour"),
    ("unknown-region-key", dict(region_extra="endpont = x"), 7, "endpont"),
    ("bad-size-suffix", dict(cache_size="20Q"), 3, "cache_size"),
    ("bad-size-negative", dict(cache_size="-1G"), 3, "cache_size"),
    ("bad-size-empty", dict(cache_size=""), 3, "cache_size"),
    ("bad-size-words", dict(cache_size="twenty gigs"), 3, "cache_size"),
    ("block-size-not-power-of-two", dict(filesystem_extra="block_size = 3K"),
     4, "block_size"),
    ("block-size-too-big", dict(filesystem_extra="block_size = 32M"), 4,
     "block_size"),
    ("block-size-too-small", dict(filesystem_extra="block_size = 1K"), 4,
     "block_size"),
    ("relative-cache-dir", dict(cache_dir="relative/cache"), 2, "cache_dir"),
    ("bad-url", dict(url="ftp://example.org/x"), 6, "url"),
]


@pytest.mark.parametrize("changes,lineno,key",
                         [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config(phifs_bare, changes, lineno, key):
    fs = phifs_bare
    fs.write_config(_config(fs, **changes))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    names_file_line_key(line, fs.config, lineno, key)
    assert_unchanged(before, snapshot(fs.base))
    assert os.listdir(fs.cache_dir) == []


@pytest.mark.parametrize("cmd", ["mount", "status"])
def test_bad_config_other_commands(phifs_bare, cmd):
    fs = phifs_bare
    fs.mkfs()
    fs.write_config(_config(fs, filesystem_extra="colour = blue"))
    before = snapshot(fs.base)
    args = [cmd, fs.config] + ([fs.mnt] if cmd == "mount" else [])
    line = one_error_line(fs.run(*args))
    names_file_line_key(line, fs.config, 4, "colour")
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_cache_dir_not_writable(phifs_bare):
    fs = phifs_bare
    os.chmod(fs.config, 0o644)
    assert os.stat(fs.cache_dir).st_uid == 0
    os.chmod(fs.cache_dir, 0o755)
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config, user=OTHER_UID))
    assert fs.cache_dir in line or "cache_dir" in line, line
    assert_unchanged(before, snapshot(fs.base))


def test_cache_dir_missing(phifs_bare):
    fs = phifs_bare
    missing = os.path.join(fs.base, "no-such-cache")
    fs.write_config(_config(fs, cache_dir=missing))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert missing in line or "cache_dir" in line, line
    assert not os.path.exists(missing)
    assert_unchanged(before, snapshot(fs.base))


# --- mount errors -----------------------------------------------------------

def test_mountpoint_missing(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    missing = os.path.join(fs.base, "nomnt")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, missing, "-o", MOUNT_OPTS))
    assert "nomnt" in line, line
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_mountpoint_already_mounted(phifs, phifs_factory):
    other = phifs_factory(mounted=False)
    other.mkfs()
    write_file(phifs.path("mine"), b"first filesystem")
    before = snapshot(other.base)
    line = one_error_line(other.run("mount", other.config, phifs.mnt,
                                    "-o", MOUNT_OPTS))
    assert phifs.mnt in line or "mounted" in line, line
    assert_unchanged(before, snapshot(other.base))
    assert [mp for mp, _ in mounts()].count(phifs.mnt) == 1
    assert read_file(phifs.path("mine")) == b"first filesystem"
    no_daemon_left(other)


def test_mkfs_twice(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    assert os.listdir(fs.cache_dir), "mkfs created nothing in cache_dir"
    before = snapshot(fs.base)
    one_error_line(fs.run("mkfs", fs.config))
    assert_unchanged(before, snapshot(fs.base))
    fs.mount()
    assert os.listdir(fs.mnt) == []


def test_mkfs_while_mounted(phifs):
    write_file(phifs.path("keep"), b"keep me")
    before = snapshot(phifs.cache_dir)
    one_error_line(phifs.run("mkfs", phifs.config))
    assert set(snapshot(phifs.cache_dir)) == set(before)
    assert read_file(phifs.path("keep")) == b"keep me"
    phifs.remount()
    assert read_file(phifs.path("keep")) == b"keep me"


def test_mount_without_filesystem(phifs_bare):
    fs = phifs_bare
    before = snapshot(fs.base)
    one_error_line(fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS))
    assert not is_fuse_mounted(fs.mnt)
    assert os.listdir(fs.cache_dir) == []
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_second_mount_of_same_cache_dir(phifs):
    mnt2 = os.path.join(phifs.base, "mnt2")
    os.mkdir(mnt2)
    write_file(phifs.path("f"), b"data")
    copy = os.path.join(phifs.base, "copy.ini")
    with open(phifs.config) as src, open(copy, "w") as dst:
        dst.write(src.read())
    for config in (phifs.config, copy):
        p = phifs.run("mount", config, mnt2, "-o", MOUNT_OPTS, timeout=60)
        one_error_line(p)
        assert not is_fuse_mounted(mnt2)
    assert os.listdir(mnt2) == []
    assert read_file(phifs.path("f")) == b"data"
    write_file(phifs.path("g"), b"still writable")
    assert read_file(phifs.path("g")) == b"still writable"
    assert phifs.status()["pid"] == phifs.pid


def test_umount_not_mounted(phifs_bare):
    fs = phifs_bare
    before = snapshot(fs.base)
    one_error_line(fs.run("umount", fs.mnt))
    line = one_error_line(fs.run("umount", os.path.join(fs.base, "nowhere")))
    assert "nowhere" in line, line
    assert_unchanged(before, snapshot(fs.base))


# --- status ---------------------------------------------------------------

REQUIRED_KEYS = ("mounted", "pid", "inodes", "used_bytes", "cache_size",
                 "block_size", "fsid")


def test_status_while_mounted(phifs):
    st = phifs.status()
    missing = [k for k in REQUIRED_KEYS if k not in st]
    assert not missing, f"status --json lacks {missing}: {st}"
    assert st["mounted"] is True
    assert st["pid"] == phifs.pid and pid_alive(st["pid"])
    assert st["cache_size"] == 20 * GiB
    assert st["block_size"] == MiB
    assert isinstance(st["fsid"], str) and st["fsid"]
    assert isinstance(st["inodes"], int) and st["inodes"] >= 1
    assert isinstance(st["used_bytes"], int) and st["used_bytes"] >= 0
    n0, used0 = st["inodes"], st["used_bytes"]
    for i in range(3):
        write_file(phifs.path(f"f{i}"), os.urandom(MiB))
    os.mkdir(phifs.path("d"))
    st2 = phifs.wait_status(lambda s: s["used_bytes"] >= used0 + 3 * MiB)
    assert st2["inodes"] == n0 + 4, (n0, st2)
    assert st2["used_bytes"] >= used0 + 3 * MiB, (used0, st2)
    assert st2["fsid"] == st["fsid"]
    # plain text works too
    p = phifs.run("status", phifs.config)
    assert p.returncode == 0 and p.stdout.strip(), p.stderr


def test_status_unmounted_and_after_crash(phifs):
    write_file(phifs.path("f"), b"x")
    mounted = phifs.status()
    phifs.umount()
    st = phifs.status()
    assert st["mounted"] is False and st["pid"] is None, st
    assert st["fsid"] == mounted["fsid"]
    assert st["inodes"] == mounted["inodes"]
    phifs.mount()
    phifs.kill9()
    st = phifs.status()
    assert st["mounted"] is False and st["pid"] is None, st
    assert st["fsid"] == mounted["fsid"]


def test_status_no_filesystem(phifs_bare):
    before = snapshot(phifs_bare.base)
    one_error_line(phifs_bare.run("status", phifs_bare.config, "--json"))
    assert_unchanged(before, snapshot(phifs_bare.base))


# --- mount and unmount ----------------------------------------------------

def test_umount_flushes(phifs):
    data = os.urandom(3 * MiB + 5)
    p = phifs.path("unsynced")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o640)
    os.write(fd, data)
    os.close(fd)                       # no fsync
    os.setxattr(p, "user.k", b"v")
    os.utime(p, ns=(1, 1234567890123456789))
    os.mkdir(phifs.path("dir"))
    os.symlink("unsynced", phifs.path("dir", "link"))
    ino = os.stat(p).st_ino
    phifs.umount()
    phifs.mount()
    st = os.stat(p)
    assert read_file(p) == data
    assert (st.st_size, st.st_ino, stat.S_IMODE(st.st_mode)) == \
        (len(data), ino, 0o640)
    assert st.st_mtime_ns == 1234567890123456789
    assert os.getxattr(p, "user.k") == b"v"
    assert os.readlink(phifs.path("dir", "link")) == "unsynced"


def test_daemonized_mount(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS)
    assert p.returncode == 0, p.stderr
    # returns only once the mount is ready
    assert is_fuse_mounted(fs.mnt)
    st = fs.status()
    assert st["mounted"] is True and isinstance(st["pid"], int), st
    pid = st["pid"]
    fs.pid = pid                       # let teardown clean up on failure
    assert pid_alive(pid)
    write_file(fs.path("f"), b"daemon")
    p = fs.run("umount", fs.mnt)
    assert p.returncode == 0, p.stderr
    assert not is_fuse_mounted(fs.mnt)
    assert not pid_alive(pid), "phifs umount returned before the daemon exited"
    fs.pid = None
    fs.mount(foreground=False)
    assert read_file(fs.path("f")) == b"daemon"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_stops_on_signal(phifs, sig):
    write_file(phifs.path("f"), b"before signal")
    proc = phifs.proc
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    phifs.proc = phifs.pid = None
    assert not is_fuse_mounted(phifs.mnt), "still mounted after the signal"
    assert rc == 0, f"exit status {rc} after {sig.name}: {phifs.log_tail()}"
    phifs.mount()
    assert read_file(phifs.path("f")) == b"before signal"


def test_mount_read_only(phifs):
    write_file(phifs.path("f"), b"readable")
    phifs.umount()
    phifs.mount(opts="ro," + MOUNT_OPTS)
    assert read_file(phifs.path("f")) == b"readable"
    for fn, args in ((write_file, (phifs.path("new"), b"")),
                     (os.mkdir, (phifs.path("d"),)),
                     (os.unlink, (phifs.path("f"),)),
                     (os.chmod, (phifs.path("f"), 0o600))):
        with pytest.raises(OSError) as ei:
            fn(*args)
        assert ei.value.errno == 30, f"{fn.__name__}: {ei.value}"   # EROFS
    with pytest.raises(OSError):
        os.open(phifs.path("f"), os.O_WRONLY)
    assert sorted(os.listdir(phifs.mnt)) == ["f"]
