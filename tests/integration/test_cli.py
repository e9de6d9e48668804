"""The `phifs` command line: bad input, keys, regions, status, sync, mount
and unmount, and the progress lines of the long commands on a terminal.

Every bad input must give a non-zero exit, exactly one non-empty line on
stderr (naming file, line and key for config errors) and leave everything
as it was: the tests snapshot the test's whole private directory (config,
key file, cache_dir, regions, mountpoint) before and after.
"""

import hashlib
import os
import re
import signal
import stat
import subprocess
import threading
import time

import pytest

from conftest import (MOUNT_OPTS, OTHER_UID, PHIFS, fuse_mounts_under,
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


def no_daemon_left(fs, timeout=30.0):
    """No process of fs's is left running: one that failed may still be
    on its way out (an ASan build checks for leaks as it exits), so wait
    for that, with a deadline no lingering daemon outlives."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids_referencing(fs.base) if pid_alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"processes left running: {left}"
    assert not fuse_mounts_under(fs.base), "a mount was left behind"


# --- help -----------------------------------------------------------------

def test_help(phifs_bare):
    p = phifs_bare.run("help")
    assert p.returncode == 0, p.stderr
    for word in ("mkfs", "mount", "umount", "status", "sync"):
        assert word in p.stdout, f"'phifs help' does not mention {word}"


@pytest.mark.parametrize("cmd", ["mkfs", "mount", "umount", "status",
                                 "sync"])
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

@pytest.mark.parametrize("cmd", ["mkfs", "mount", "status", "sync"])
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
            url=None, cache_size="20G", key_file=True):
    """Lines: 1 [filesystem], 2 cache_dir, 3 cache_size, 4 filesystem_extra
    (if any), then key_file (unless key_file=False), [region a], url,
    region_extra."""
    lines = ["[filesystem]",
             f"cache_dir = {cache_dir or fs.cache_dir}",
             f"cache_size = {cache_size}".rstrip()]
    if filesystem_extra:
        lines.append(filesystem_extra)
    if key_file:
        lines.append(f"key_file = {fs.key_file}")
    lines += ["", "[region a]", f"url = {url or 'dir:' + fs.region_dir}"]
    if region_extra:
        lines.append(region_extra)
    return "\n".join(lines) + "\n"


# (id, config changes, line, key)
BAD_CONFIGS = [
    ("unknown-key", dict(filesystem_extra="colour = blue"), 4, "colour"),
    ("unknown-region-key", dict(region_extra="endpont = x"), 8, "endpont"),
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
    ("bad-url", dict(url="ftp://example.org/x"), 7, "url"),
    ("seal-delay-zero", dict(filesystem_extra="seal_delay = 0"), 4,
     "seal_delay"),
    ("seal-delay-words", dict(filesystem_extra="seal_delay = soon"), 4,
     "seal_delay"),
    ("uploaders-too-many", dict(filesystem_extra="uploaders = 65"), 4,
     "uploaders"),
    ("pack-size-too-small", dict(filesystem_extra="pack_size = 4K"), 4,
     "pack_size"),
    ("dirty-limit-too-big", dict(filesystem_extra="dirty_limit = 20G"), 4,
     "dirty_limit"),
    ("relative-key-file", dict(filesystem_extra="key_file = k"), 4,
     "key_file"),
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


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "nul-byte"])
def test_config_must_be_a_text_file(phifs_bare, kind):
    """/dev/zero made status spin for ever, a FIFO hung it, and a NUL byte
    silently cut a value ("5\\0s" read as 5 seconds)."""
    fs = phifs_bare
    fs.mkfs()
    if kind == "dev-zero":
        config = "/dev/zero"
    elif kind == "fifo":
        config = os.path.join(fs.base, "fifo.ini")
        os.mkfifo(config)
    else:
        config = fs.config
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("seal_delay = 1s", "seal_delay = 5\0s"))
    before = snapshot(fs.base)
    for cmd in ("status", "mount"):
        args = [cmd, config] + ([fs.mnt] if cmd == "mount" else [])
        line = one_error_line(fs.run(*args, timeout=30))
        assert config in line, line
        if kind == "nul-byte":
            assert re.search(r":\d+: NUL byte", line), line
        else:
            assert "not a regular file" in line, line
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_block_size_differs_from_filesystem(phifs_bare):
    """block_size is fixed at mkfs: a config naming another one was
    ignored without a word; every command that opens the filesystem
    refuses it, and leaving the key out is the fix."""
    fs = phifs_bare
    with open(fs.config) as f:
        made = f.read().replace("block_size = 1M", "block_size = 64K")
    fs.write_config(made)
    fs.mkfs()
    lineno = made.splitlines().index("block_size = 64K") + 1
    fs.write_config(made.replace("block_size = 64K", "block_size = 1M"))
    before = snapshot(fs.base)
    for args in (["mount", fs.config, fs.mnt, "-o", MOUNT_OPTS],
                 ["status", fs.config], ["sync", fs.config],
                 ["fsck", fs.config], ["versions", fs.config, "/"]):
        line = one_error_line(fs.run(*args))
        names_file_line_key(line, fs.config, lineno, "block_size")
        assert "1M" in line and "64K" in line, (args, line)
        assert "set it to 64K" in line, (args, line)
        assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)
    # without the key the filesystem's own block size is used
    fs.write_config(made.replace("block_size = 64K\n", ""))
    fs.mount()
    write_file(fs.path("f"), b"x" * 100000)
    assert fs.status()["block_size"] == 64 << 10


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


def lease_objects(fs):
    """Lease objects (l/... in a dir: region, as test_lease.py finds
    them), by region."""
    res = set()
    for region, root in (("a", fs.region_dir_a), ("b", fs.region_dir_b)):
        d = os.path.join(root, "l")
        if os.path.isdir(d):
            res |= {(region, n) for n in os.listdir(d)
                    if not n.startswith(".")}
    return res


@pytest.mark.parametrize("case", ["unknown-option", "lock-is-a-folder"])
def test_mount_checks_local_things_before_the_lease(phifs_bare, case):
    """mount -o nosuchopt, or a cache_dir/lock that is a folder, wrote a
    lease object to every region before failing: everything local is
    checked first."""
    fs = phifs_bare
    fs.mkfs()
    opts = MOUNT_OPTS
    if case == "unknown-option":
        opts += ",nosuchopt"
    else:
        lock = os.path.join(fs.cache_dir, "lock")
        os.unlink(lock)
        os.mkdir(lock)
    leases = lease_objects(fs)
    before = snapshot(fs.base)
    for extra in ([], ["-f"]):
        p = fs.run("mount", fs.config, fs.mnt, *extra, "-o", opts)
        assert lease_objects(fs) == leases, \
            f"a lease was written: {p.stderr!r}"
        line = one_error_line(p)
        assert ("nosuchopt" if case == "unknown-option" else "lock") \
            in line, line
        assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def _two_regions(fs, url_a, url_b, cache_dir=None):
    return (f"[filesystem]\ncache_dir = {cache_dir or fs.cache_dir}\n"
            f"key_file = {fs.key_file}\n\n[region a]\nurl = dir:{url_a}\n\n"
            f"[region b]\nurl = dir:{url_b}\n")


# (id, region a, region b, cache_dir, words in the error); paths relative
# to the test's directory
OVERLAPPING_PLACES = [
    ("same-with-slash", "x", "x/", None, ["region a", "region b", "same"]),
    ("same-through-dotdot", "x", "y/../x", None, ["same"]),
    ("same-through-missing-dotdot", "x", "nothere/../x", None, ["same"]),
    ("same-through-symlink", "x", "link-to-x", None, ["same"]),
    ("region-inside-region", "x", "x/sub", None, ["inside"]),
    ("region-is-cache-dir", "x", "cache", None, ["cache_dir", "same"]),
    ("region-inside-cache-dir", "x", "cache/r", None, ["inside"]),
    ("cache-dir-inside-region", "x", "z", "z/cache", ["inside"]),
]


@pytest.mark.parametrize("a,b,cache,words",
                         [c[1:] for c in OVERLAPPING_PLACES],
                         ids=[c[0] for c in OVERLAPPING_PLACES])
def test_places_must_be_apart_at_mkfs(phifs_bare, a, b, cache, words):
    """Two regions that are one folder were accepted: one copy pretending
    to be two; so were regions in cache_dir and the other way round."""
    fs = phifs_bare
    for d in ("x", "y", "z", "z/cache"):
        os.makedirs(os.path.join(fs.base, d), exist_ok=True)
    os.symlink(os.path.join(fs.base, "x"), os.path.join(fs.base, "link-to-x"))
    fs.write_config(_two_regions(
        fs, os.path.join(fs.base, a), os.path.join(fs.base, b),
        cache_dir=cache and os.path.join(fs.base, cache)))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    for w in words:
        assert w in line, line
    assert_unchanged(before, snapshot(fs.base))


@pytest.mark.parametrize("where", ["cache-dir", "region", "inside-cache-dir",
                                   "inside-region", "holds-cache-dir",
                                   "holds-log-file"])
def test_mountpoint_apart_from_cache_and_regions(phifs_bare, where):
    fs = phifs_bare
    fs.mkfs()
    mnt = {"cache-dir": fs.cache_dir, "region": fs.region_dir_b + "/",
           "inside-cache-dir": os.path.join(fs.cache_dir, "m"),
           "inside-region": os.path.join(fs.region_dir_a, "m"),
           "holds-cache-dir": fs.base, "holds-log-file": fs.mnt}[where]
    os.makedirs(mnt, exist_ok=True)
    if where == "holds-log-file":
        with open(fs.config) as f:
            text = f.read()
        fs.write_config(text.replace(
            "seal_delay = 1s\n",
            f"seal_delay = 1s\nlog_file = {fs.mnt}/phifs.log\n"))
    leases = lease_objects(fs)
    before = snapshot(fs.base)
    for extra in ([], ["-f"]):
        p = fs.run("mount", fs.config, mnt, *extra, "-o", MOUNT_OPTS)
        assert not fuse_mounts_under(fs.base), p.stderr
        line = one_error_line(p)
        assert "mountpoint" in line, line
        assert lease_objects(fs) == leases
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


@pytest.mark.parametrize("cmd", ["recover", "restore", "versions", "mkfs"])
def test_nothing_written_into_a_live_mount(phifs, cmd):
    """recover once wrote a filesystem into the live mount: a cache_dir
    inside a phifs mount is refused."""
    write_file(phifs.path("f"), b"live")
    p = phifs.run("sync", phifs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    inner = phifs.path("cache2")
    os.mkdir(inner)
    config2 = os.path.join(phifs.base, "inner.ini")
    with open(phifs.config) as f:
        text = f.read()
    with open(config2, "w") as f:
        f.write(text.replace(f"cache_dir = {phifs.cache_dir}\n",
                             f"cache_dir = {inner}\n"))
    dest = os.path.join(phifs.base, "dest")
    os.mkdir(dest)
    args = {"recover": [config2], "restore": [config2, "/f", dest],
            "versions": [config2, "/f"], "mkfs": [config2]}[cmd]
    line = one_error_line(phifs.run(cmd, *args, timeout=120))
    assert "inside the phifs mount" in line and phifs.mnt in line, line
    assert os.listdir(inner) == [] and os.listdir(dest) == []
    assert sorted(os.listdir(phifs.mnt)) == ["cache2", "f"]


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


def run_into_closed_pipe(fs, *args):
    """`phifs ARGS` with stdout a pipe whose reader is gone before phifs
    starts (as `| head` is once it has read enough): every write to it
    fails."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([PHIFS] + list(args), stdin=subprocess.DEVNULL,
                              stdout=w, stderr=subprocess.PIPE, text=True,
                              errors="replace", timeout=300, cwd=fs.base,
                              env=fs.environ(), start_new_session=True)
    finally:
        os.close(w)


def test_closed_pipe_is_a_normal_end(phifs):
    """`phifs versions ... | head` said "interrupted by signal 13" and
    exited 141; status died of SIGPIPE.  A reader that stops early is a
    normal end: exit 0, nothing on stderr."""
    for i in range(3):
        write_file(phifs.path("f"), b"v" * (i + 1))
        p = phifs.run("sync", phifs.config, "--timeout", "120", timeout=180)
        assert p.returncode == 0, p.stderr
    dest = os.path.join(phifs.base, "dest")
    os.mkdir(dest)
    for args in (["versions", phifs.config, "/f"],
                 ["restore", phifs.config, "/f", dest, "--dry-run"],
                 ["status", phifs.config], ["status", phifs.config, "--json"],
                 ["help"], ["help", "config"]):
        p = run_into_closed_pipe(phifs, *args)
        # which region the history came from is said on stderr, by design
        err = "".join(line for line in p.stderr.splitlines(True)
                      if not line.startswith("phifs: history read from "
                                             "region "))
        assert (p.returncode, err) == (0, ""), (args, p.returncode,
                                                p.stderr)
    assert os.listdir(dest) == []
    assert not [n for n in os.listdir(phifs.base)
                if n.startswith(".phifs-")], "a scratch folder was left"


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


def log_lines(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def test_log_file_and_why_the_daemon_stops(phifs_bare):
    """In the background without syslog every log line was lost: log_file
    takes them, status says where the log goes, and the log says why the
    daemon stopped."""
    fs = phifs_bare
    log = os.path.join(fs.base, "phifs.log")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("seal_delay = 1s\n",
                                 f"seal_delay = 1s\nlog_file = {log}\n"))
    fs.mkfs()
    fs.mount(foreground=False)
    st = fs.status()
    assert st["log"] == {"to": "file", "path": log, "from_mount": True,
                         "syslog_available": st["log"]["syslog_available"]}
    p = fs.run("status", fs.config)
    assert f"\nlog          file {log}\n" in p.stdout, p.stdout
    pid = fs.pid
    assert any(f"phifs[{pid}]: notice: mounted (pid {pid})" in x
               for x in log_lines(log)), log_lines(log)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    # a signal: named, with who sent it
    os.kill(pid, signal.SIGTERM)
    assert wait_gone(pid), "the daemon did not stop on SIGTERM"
    fs.pid = None
    assert not is_fuse_mounted(fs.mnt)
    lines = log_lines(log)
    assert any(x.endswith(f"phifs[{pid}]: notice: stopping: SIGTERM from "
                          f"pid {os.getpid()}") for x in lines), lines
    assert lines[-1].endswith(f"phifs[{pid}]: notice: unmounted cleanly"), \
        lines
    st = fs.status()
    assert st["log"]["to"] == "file" and not st["log"]["from_mount"], st
    # an unmount
    fs.mount(foreground=False)
    pid = fs.pid
    fs.umount()
    lines = log_lines(log)
    assert any(f"phifs[{pid}]: notice: stopping: unmounted" in x
               for x in lines), lines
    # in the foreground: stderr, and status says so
    fs.mount()
    st = fs.status()
    assert st["log"]["to"] == "stderr" and st["log"]["from_mount"], st
    assert st["log"]["path"] is None, st
    fs.proc.send_signal(signal.SIGINT)
    assert fs.proc.wait(timeout=60) == 0
    fs.proc = fs.pid = None
    assert "phifs: notice: stopping: SIGINT from pid " in fs.log_tail()


def wait_gone(pid, timeout=60):
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_log_without_syslog_or_log_file(phifs_bare):
    """Without log_file, a mount in the background logs to syslog; where
    there is none (no /dev/log) its lines are lost, and mount and status
    say so."""
    fs = phifs_bare
    fs.mkfs()
    st = fs.status()
    have = os.path.exists("/dev/log")
    assert st["log"] == {"to": "syslog", "path": None, "from_mount": False,
                         "syslog_available": have}, st
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS)
    if p.returncode == 0:
        fs.pid = fs.status()["pid"]
    assert p.returncode == 0, p.stderr
    warned = "no syslog here (no /dev/log)" in p.stderr
    assert warned == (not have), p.stderr
    assert fs.status()["log"]["from_mount"] is True
    p = fs.run("status", fs.config)
    assert ("lines are lost; set log_file" in p.stdout) == (not have), \
        p.stdout


def test_log_file_unusable(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    bad = os.path.join(fs.base, "logdir")
    os.mkdir(bad)
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("seal_delay = 1s\n",
                                 f"seal_delay = 1s\nlog_file = {bad}\n"))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert "log_file" in line and bad in line, line
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


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


# --- keys and regions at mkfs ----------------------------------------------

def region_objects(path):
    """Relative paths of the objects in a dir: region, lease objects
    aside (each region gets its own as it answers; they are not
    replicated through the upload queue)."""
    res = set()
    for dirpath, _, filenames in os.walk(path):
        for n in filenames:
            rel = os.path.relpath(os.path.join(dirpath, n), path)
            if not n.startswith(".") and not rel.startswith("l/"):
                res.add(rel)
    return res


def test_mkfs_creates_key_file_and_superblocks(phifs_bare):
    fs = phifs_bare
    p = fs.run("mkfs", fs.config)
    assert p.returncode == 0, p.stderr
    st = os.stat(fs.key_file)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size >= 32, st
    assert fs.key_file in p.stdout and "safe" in p.stdout, p.stdout
    local = os.path.join(fs.cache_dir, "superblock")
    assert stat.S_IMODE(os.stat(local).st_mode) == 0o600
    sb = read_file(local)
    for region in (fs.region_dir_a, fs.region_dir_b):
        assert region_objects(region) == {"superblock"}
        assert read_file(os.path.join(region, "superblock")) == sb
    fsid = fs.status()["fsid"]
    assert fsid in p.stdout and "1048576" in p.stdout, p.stdout
    key = read_file(fs.key_file)
    fs.mount()
    write_file(fs.path("f"), b"with a key")
    fs.remount()
    assert read_file(fs.path("f")) == b"with a key"
    assert read_file(fs.key_file) == key


def test_mkfs_uses_existing_key_file(phifs_bare):
    fs = phifs_bare
    key = os.urandom(48)
    write_file(fs.key_file, key, mode=0o600)
    fs.mkfs()
    assert read_file(fs.key_file) == key
    fs.mount()
    assert os.listdir(fs.mnt) == []


def test_mkfs_without_region(phifs_bare):
    fs = phifs_bare
    fs.write_config(f"[filesystem]\ncache_dir = {fs.cache_dir}\n"
                    f"key_file = {fs.key_file}\n")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert "region" in line, line
    assert_unchanged(before, snapshot(fs.base))


def test_mkfs_key_file_readable_by_others(phifs_bare):
    fs = phifs_bare
    write_file(fs.key_file, os.urandom(64), mode=0o640)
    os.chmod(fs.key_file, 0o640)
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert fs.key_file in line, line
    assert_unchanged(before, snapshot(fs.base))
    assert os.listdir(fs.cache_dir) == []


def test_mkfs_region_holds_superblock(phifs_bare):
    fs = phifs_bare
    write_file(os.path.join(fs.region_dir_b, "superblock"), b"another fs")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert "region b" in line and "superblock" in line, line
    assert_unchanged(before, snapshot(fs.base))
    assert not os.path.exists(fs.key_file)


def test_mkfs_region_not_writable(phifs_bare):
    fs = phifs_bare
    fs.set_faults("b", "fail_all put")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert "region b" in line, line
    assert_unchanged(before, snapshot(fs.base))
    assert os.listdir(fs.cache_dir) == []


def test_mkfs_undoes_a_late_failure(phifs_bare):
    fs = phifs_bare
    # region b takes the test object (put 1), then refuses the superblock
    # (put 2) after region a already has it
    fs.set_faults("b", "fail_nth=2 put")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert "region b" in line, line
    assert_unchanged(before, snapshot(fs.base))
    assert region_objects(fs.region_dir_a) == set()
    assert not os.path.exists(fs.key_file)
    fs.set_faults("b", None)
    fs.mkfs()


def test_mkfs_unreachable_region(phifs_bare):
    fs = phifs_bare
    fs.set_faults("a", "fail_all")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mkfs", fs.config))
    assert "region a" in line, line
    assert_unchanged(before, snapshot(fs.base))


# --- keys at mount -----------------------------------------------------------

def test_mount_wrong_key_file(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    other = os.path.join(fs.base, "other.key")
    write_file(other, os.urandom(64), mode=0o600)
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(f"key_file = {fs.key_file}",
                                 f"key_file = {other}"))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert "wrong passphrase or key file" in line, line
    assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_mount_key_file_readable_by_others(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    os.chmod(fs.key_file, 0o644)
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert fs.key_file in line, line
    assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)
    os.chmod(fs.key_file, 0o600)
    fs.mount()


def test_passphrase(phifs_bare):
    fs = phifs_bare
    fs.write_config(_config(fs, key_file=False))
    fs.env.update(PHIFS_PASSPHRASE="correct horse", PHIFS_KDF_N="1024")
    fs.mkfs()
    assert not os.path.exists(fs.key_file)
    fs.mount()
    write_file(fs.path("f"), b"passphrase")
    fs.umount()
    before = snapshot(fs.base)
    for env in ({"PHIFS_PASSPHRASE": "wrong horse"},
                {"PHIFS_PASSPHRASE": ""}):
        line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                     MOUNT_OPTS, env=env))
        if env["PHIFS_PASSPHRASE"]:
            assert "wrong passphrase" in line, line
        assert not is_fuse_mounted(fs.mnt)
    # no passphrase at all, and no terminal to ask on
    del fs.env["PHIFS_PASSPHRASE"]
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert "passphrase" in line, line
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)
    fs.env["PHIFS_PASSPHRASE"] = "correct horse"
    # fsck --scrub unlocks more than once (the scrub, then each region's
    # history): the passphrase, wiped from its environment at the first,
    # still serves the others, with no terminal to ask on
    assert fs.run("sync", fs.config).returncode == 0
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    fs.mount(foreground=False)
    assert read_file(fs.path("f")) == b"passphrase"
    # The daemon's environment holds no passphrase: /proc/PID/environ
    # shows the environment block it started with, wiped in place.
    with open(f"/proc/{fs.pid}/environ", "rb") as f:
        environ = f.read()
    assert b"PHIFS_PASSPHRASE=\0" in environ
    assert b"correct horse" not in environ


def test_mount_region_without_superblock(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    # region b holds objects but no superblock (an empty one is re-seeded)
    fs.mount()
    write_file(fs.path("f"), b"data")
    assert fs.run("sync", fs.config).returncode == 0
    fs.umount()
    os.unlink(os.path.join(fs.region_dir_b, "superblock"))
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert "region b" in line and "superblock" in line, line
    assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_mount_region_refusing_credentials(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.set_faults("a", "fail_all error=auth")
    before = snapshot(fs.base)
    line = one_error_line(fs.run("mount", fs.config, fs.mnt, "-o",
                                 MOUNT_OPTS))
    assert "region a" in line, line
    assert not is_fuse_mounted(fs.mnt)
    assert_unchanged(before, snapshot(fs.base))
    no_daemon_left(fs)


def test_mount_with_unreachable_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.set_faults("b", "fail_all")
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS)
    if p.returncode == 0:
        fs.pid = fs.status()["pid"]
    assert p.returncode == 0, p.stderr
    assert "warning" in p.stderr and "region b" in p.stderr, p.stderr
    write_file(fs.path("f"), b"region b is away")
    assert read_file(fs.path("f")) == b"region b is away"


def test_superblock_fetched_from_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    local = os.path.join(fs.cache_dir, "superblock")
    sb = read_file(local)
    os.unlink(local)
    fs.mount()
    assert read_file(local) == sb
    assert stat.S_IMODE(os.stat(local).st_mode) == 0o600


# --- sync ------------------------------------------------------------------

def test_sync_mounted(phifs):
    write_file(phifs.path("f"), os.urandom(3 * MiB))
    p = phifs.run("sync", phifs.config, "--timeout", "60")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), "sync printed nothing"
    a, b = (region_objects(phifs.region_dir_a),
            region_objects(phifs.region_dir_b))
    assert a == b and len(a) > 1, (a, b)
    st = phifs.status()
    assert st["sync_waiting"] == 0 and st["dirty_blocks"] == 0, st


def test_sync_unmounted(phifs):
    write_file(phifs.path("f"), os.urandom(2 * MiB + 7))
    phifs.umount()
    p = phifs.run("sync", phifs.config, "--timeout", "60")
    assert p.returncode == 0, p.stderr
    a, b = (region_objects(phifs.region_dir_a),
            region_objects(phifs.region_dir_b))
    assert a == b and len(a) > 1, (a, b)
    st = phifs.status()
    assert st["mounted"] is False and st["sync_waiting"] == 0, st
    phifs.mount()
    assert len(read_file(phifs.path("f"))) == 2 * MiB + 7


def test_sync_timeout_names_faulted_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.set_faults("a", "fail_all put")
    fs.mount()
    data = os.urandom(2 * MiB)
    write_file(fs.path("f"), data)

    def waits(st, name):
        return [r for r in st["region_state"] if r["name"] == name][0][
            "waiting"]
    # region b has it all before the sync starts its 5 s, however slow
    # the machine: only region a can be what the sync still waits for
    st = fs.wait_status(lambda st: st["dirty_blocks"] == 0 and
                        waits(st, "b") == 0 and waits(st, "a") > 0)
    assert waits(st, "b") == 0 and waits(st, "a") > 0, st
    p = fs.run("sync", fs.config, "--timeout", "5")
    line = one_error_line(p)
    assert p.returncode == 1, p.returncode
    assert "region a" in line and "region b" not in line, line
    # region a is back: everything goes out
    fs.set_faults("a", None)
    p = fs.run("sync", fs.config, "--timeout", "120")
    assert p.returncode == 0, p.stderr
    assert region_objects(fs.region_dir_a) == \
        region_objects(fs.region_dir_b)
    assert read_file(fs.path("f")) == data


def test_sync_bad_arguments(phifs):
    for args in (["sync"], ["sync", phifs.config, "--timeout", "soon"],
                 ["sync", phifs.config, "--bogus"]):
        p = phifs.run(*args)
        one_error_line(p)
        assert p.returncode == 2, (args, p.returncode)


# --- status with sealing and regions ---------------------------------------

NEW_STATUS_KEYS = ("dirty_bytes", "dirty_blocks", "sealed_objects",
                   "sealed_bytes", "resident_blocks", "evicted_blocks")


def test_status_counts_the_bytes_written_not_whole_blocks(phifs_bare):
    fs = phifs_bare
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("seal_delay = 1s", "seal_delay = 1h"))
    fs.mkfs()
    fs.mount()
    write_file(fs.path("a"), os.urandom(6 * 1024))
    write_file(fs.path("b"), os.urandom(6 * 1024))
    st = fs.wait_status(lambda s: s.get("dirty_data_bytes") == 12 * 1024)
    assert st["dirty_data_bytes"] == 12 * 1024, st
    assert st["dirty_blocks"] == 2, st
    assert st["dirty_bytes"] == 2 * MiB, st     # whole blocks, as before
    p = fs.run("status", fs.config)
    assert p.returncode == 0, p.stderr
    assert "not sealed   12.0 KiB in 2 blocks\n" in p.stdout, p.stdout


def test_status_json_sealing_and_regions(phifs):
    write_file(phifs.path("f"), os.urandom(MiB))
    st = phifs.status()
    for k in NEW_STATUS_KEYS:
        assert isinstance(st.get(k), int) and st[k] >= 0, (k, st)
    assert st["regions"] == [
        {"name": "a", "url": "dir:" + phifs.region_dir_a},
        {"name": "b", "url": "dir:" + phifs.region_dir_b}], st
    names = [r["name"] for r in st["region_state"]]
    assert names == ["a", "b"], st
    for r in st["region_state"]:
        assert r["kind"] == "dir"
        for k in ("waiting", "waiting_bytes", "fails", "bad"):
            assert isinstance(r[k], int) and r[k] >= 0, (k, r)
        assert isinstance(r["down"], bool), r
        assert r["last_ok"] is None or isinstance(r["last_ok"], int), r
    p = phifs.run("status", phifs.config)
    assert p.returncode == 0, p.stderr
    assert "region       a" in p.stdout and "not sealed" in p.stdout, \
        p.stdout


# --- progress on a terminal ------------------------------------------------
#
# The long commands (sync, fsck --scrub and --repair, gc) draw a progress
# line on stderr when it is a terminal (a pseudo-terminal here), and
# nothing of it in a pipe, where scripts read the output.  A progress line
# is redrawn in place: "\rLABEL: DONE of TOTAL ... ESC[K", and erased
# ("\rESC[K") before the command prints anything else.


def run_tty(fs, *args, timeout=120):
    """Run `phifs ARGS` with stderr on a pseudo-terminal and stdout on a
    pipe; return (exit status, stdout, what the terminal got)."""
    master, slave = os.openpty()
    got = []

    def drain():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:         # EIO: every writer has closed it
                break
            if not b:
                break
            got.append(b)

    try:
        p = subprocess.Popen([PHIFS] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave,
                             cwd=fs.base, env=fs.environ(),
                             start_new_session=True)
        os.close(slave)
        slave = None
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        out, _ = p.communicate(timeout=timeout)
        t.join(timeout=30)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return (p.returncode, out.decode(errors="replace"),
            b"".join(got).decode(errors="replace"))


def progress_lines(term, label):
    """The progress lines drawn with label, e.g. 'scrub: 3 of 9 objects'."""
    return [s for s in term.split("\r") if s.startswith(label + ": ") and
            " of " in s and s.endswith("\033[K")]


def assert_erased(term):
    """No progress line is left on the terminal at the end: what follows
    the last carriage return is an erase or a whole line."""
    last = term.split("\r")[-1]
    assert last == "\033[K" or last.endswith("\n"), repr(term)


def assert_no_progress(p):
    """Nothing of a progress line in piped output."""
    for stream in (p.stdout, p.stderr):
        assert "\r" not in stream and "\033" not in stream, repr(stream)


def test_sync_shows_progress_on_a_terminal_only(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    # region b takes nothing: what is written stays waiting for it
    fs.set_faults("b", "fail_all put")
    fs.mount()
    write_file(fs.path("scan.bin"), os.urandom(400_000))
    fs.umount()
    rc, out, term = run_tty(fs, "sync", fs.config, "--timeout", "2")
    assert rc == 1, term
    assert progress_lines(term, "sync"), repr(term)
    assert_erased(term)
    assert "region b" in term            # the one line saying what lacks
    p = fs.run("sync", fs.config, "--timeout", "2")
    assert p.returncode == 1
    assert_no_progress(p)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    # region b answers again, slowly, so that the sync has something to
    # show before it is done: it finishes, and its line goes away first
    fs.set_faults("b", "latency_ms=1000 put")
    rc, out, term = run_tty(fs, "sync", fs.config, "--timeout", "60")
    assert rc == 0, term
    assert progress_lines(term, "sync"), repr(term)
    assert_erased(term)
    assert out.startswith("synced:"), out


def test_scrub_and_repair_show_progress_on_a_terminal_only(phifs):
    for i in range(3):
        write_file(phifs.path(f"f{i}"), os.urandom(100_000))
    p = phifs.run("sync", phifs.config, "--timeout", "60", timeout=120)
    assert p.returncode == 0, p.stderr
    rc, out, term = run_tty(phifs, "fsck", phifs.config, "--scrub")
    assert rc == 0, out + term
    lines = progress_lines(term, "scrub")
    assert lines and "objects" in lines[-1], repr(term)
    # then each region's history is read and compared with this machine
    for region in ("a", "b"):
        assert progress_lines(term, "reading region " + region), repr(term)
        lines = progress_lines(term, "comparing with region " + region)
        assert lines and "blocks" in lines[-1], repr(term)
    assert_erased(term)
    assert "regions: " in out
    rc, out, term = run_tty(phifs, "fsck", phifs.config, "--repair")
    assert rc == 0, out + term
    assert progress_lines(term, "repair"), repr(term)
    for opt in ("--scrub", "--repair"):
        p = phifs.run("fsck", phifs.config, opt)
        assert p.returncode == 0, p.stdout + p.stderr
        assert_no_progress(p)
        assert p.stderr == ""


def test_gc_shows_progress_on_a_terminal_only(phifs):
    write_file(phifs.path("note"), b"a letter")
    p = phifs.run("sync", phifs.config, "--timeout", "60", timeout=120)
    assert p.returncode == 0, p.stderr
    # the mount's lease objects are among what gc looks at in each region
    rc, out, term = run_tty(phifs, "gc", phifs.config, "--dry-run")
    assert rc == 0, out + term
    lines = progress_lines(term, "gc")
    assert any("objects of region a" in s for s in lines), repr(term)
    assert any("objects of region b" in s for s in lines), repr(term)
    assert_erased(term)
    assert "would delete" in out
    p = phifs.run("gc", phifs.config, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert_no_progress(p)
    assert p.stderr == ""


def test_restore_shows_progress_on_a_terminal_only(phifs):
    write_file(phifs.path("scan.bin"), os.urandom(200_000))
    p = phifs.run("sync", phifs.config, "--timeout", "60", timeout=120)
    assert p.returncode == 0, p.stderr
    for dest in ("tty", "pipe"):
        os.mkdir(os.path.join(phifs.base, dest))
    rc, out, term = run_tty(phifs, "restore", phifs.config, "scan.bin",
                            os.path.join(phifs.base, "tty"))
    assert rc == 0, out + term
    assert progress_lines(term, "reading history"), repr(term)
    assert_erased(term)
    assert "history read from region" in term     # its line, whole
    p = phifs.run("restore", phifs.config, "scan.bin",
                  os.path.join(phifs.base, "pipe"))
    assert p.returncode == 0, p.stderr
    assert_no_progress(p)


def test_key_shows_progress_on_a_terminal_only(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    env = {"PHIFS_NEW_PASSPHRASE": "a colleague's passphrase"}
    fs.env.update(env)
    rc, out, term = run_tty(fs, "key", "add", fs.config, "--label", "tty")
    assert rc == 0, out + term
    lines = progress_lines(term, "key")
    assert any("regions read" in s for s in lines), repr(term)
    assert any("2 of 2 regions written" in s for s in lines), repr(term)
    assert_erased(term)
    assert "added slot" in out
    p = fs.run("key", "add", fs.config, "--label", "pipe")
    assert p.returncode == 0, p.stderr
    assert_no_progress(p)
