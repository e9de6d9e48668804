"""One writer: the lease a writable mount holds in the regions.

"Another machine" is a second test directory holding a copy of the first
one's cache_dir (taken while it was unmounted), its own mountpoint, and a
config naming the same regions and key file: it has its own cache_dir/lock,
so only the lease in the regions can tell the two mounts apart.

Lease objects are files under l/ in a dir: region.  A mount must never
delete or overwrite one: the tests record each file's inode, size and
mtime and check that every one is still there, unchanged, afterwards.
"""

import itertools
import os
import re
import socket
import subprocess
import time

from conftest import (DEFAULT_CONFIG, MOUNT_OPTS, is_fuse_mounted, read_file,
                      write_file)

HOST = socket.gethostname()


def config_text(fs, cache_dir=None, lease_time=None):
    text = DEFAULT_CONFIG.format(cache_dir=cache_dir or fs.cache_dir,
                                 key_file=fs.key_file,
                                 region_dir_a=fs.region_dir_a,
                                 region_dir_b=fs.region_dir_b)
    if lease_time:
        text = text.replace("seal_delay = 1s\n",
                            f"seal_delay = 1s\nlease_time = {lease_time}\n")
    return text


def first_machine(factory, lease_time=None):
    """A formatted filesystem with one file in it, not mounted."""
    fs = factory(mounted=False, tag="lease")
    fs.write_config(config_text(fs, lease_time=lease_time))
    fs.mkfs()
    fs.mount()
    write_file(fs.path("letter"), b"dear doctor")
    fs.umount()
    return fs


def second_machine(factory, fs, lease_time=None):
    """Another machine with fs's regions and key: a copy of fs's cache_dir
    (fs must be unmounted) and a config of its own."""
    other = factory(mounted=False, tag="lease2")
    subprocess.run(["cp", "-a", fs.cache_dir + "/.", other.cache_dir],
                   check=True)
    text = config_text(fs, cache_dir=other.cache_dir, lease_time=lease_time)
    other.write_config(text)
    return other


def mount_bg(fs, *extra, opts=MOUNT_OPTS):
    """`phifs mount` in the background, as a user runs it; on success the
    fixture knows the daemon (so that fs.umount() works)."""
    assert not is_fuse_mounted(fs.mnt)
    p = fs.run("mount", fs.config, fs.mnt, *extra, "-o", opts)
    if p.returncode == 0:
        assert is_fuse_mounted(fs.mnt)
        fs.pid, fs.proc = fs.status()["pid"], None
    return p


def lease_objects(fs):
    """{(region, name): (inode, size, mtime_ns)} of every lease object."""
    res = {}
    for region, root in (("a", fs.region_dir_a), ("b", fs.region_dir_b)):
        d = os.path.join(root, "l")
        if not os.path.isdir(d):
            continue
        for n in os.listdir(d):
            if n.startswith("."):
                continue            # the dir driver's temporary files
            st = os.stat(os.path.join(d, n))
            res[(region, "l/" + n)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return res


def wait_lease_objects(fs, pred, timeout=60.0):
    """Poll lease_objects(fs) until pred(objects) holds (renewals are
    written by the mount's thread, later under a slow build or a loaded
    machine); return the last."""
    deadline = time.monotonic() + timeout
    while True:
        objs = lease_objects(fs)
        if pred(objs) or time.monotonic() > deadline:
            return objs
        time.sleep(0.1)


def assert_only_grew(before, after):
    gone = sorted(k for k in before if k not in after)
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    assert not gone, f"lease objects removed: {gone}"
    assert not changed, f"lease objects overwritten: {changed}"


def refusal(p):
    """p is a refused mount: exit 1, and its last stderr line is the
    refusal (warnings about regions may come first)."""
    assert p.returncode == 1, \
        f"expected a refusal, got exit {p.returncode}: {p.stderr!r}"
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert lines, "nothing on stderr"
    line = lines[-1]
    assert line.startswith("phifs: filesystem is in use: mounted on "), line
    return line


def log_text(fs):
    with open(fs.logs[-1], errors="replace") as f:
        return f.read()


def lease_warnings(text):
    return [x for x in text.splitlines() if "warning" in x and "lease" in x]


# --- a second writer is refused --------------------------------------------

def test_second_machine_is_refused(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    earlier = lease_objects(fs)             # mkfs's mount: first, released
    fs.mount()
    before = lease_objects(fs)
    assert len(before) == len(earlier) + 2, before  # first renewal, a and b
    p = other.run("mount", other.config, other.mnt, "-o", MOUNT_OPTS)
    line = refusal(p)
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert f"mounted on {HOST} (pid {fs.pid}) since " in line, line
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, lease "
                     r"renewed \d+ s ago; unmount it there, or wait until "
                     r"the lease expires at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                     r"UTC, or mount with --force$", line), line
    assert not is_fuse_mounted(other.mnt)
    assert lease_objects(fs) == before, "a refused mount wrote a lease"
    # -f too: the same line, in its log
    p = other.run("mount", other.config, other.mnt, "-f", "-o", MOUNT_OPTS)
    refusal(p)
    assert read_file(fs.path("letter")) == b"dear doctor"
    fs.umount()


def test_one_failing_region_hides_nothing(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    fs.mount()
    other.set_faults("a", "fail_all error=eio list")
    p = other.run("mount", other.config, other.mnt, "-o", MOUNT_OPTS)
    line = refusal(p)
    assert f"(pid {fs.pid})" in line, line
    assert "region a: cannot read the leases" in p.stderr, p.stderr
    # the lease only in region a: still seen
    other.set_faults("a", None)
    for name in os.listdir(os.path.join(fs.region_dir_b, "l")):
        os.unlink(os.path.join(fs.region_dir_b, "l", name))
    p = other.run("mount", other.config, other.mnt, "-o", MOUNT_OPTS)
    assert f"(pid {fs.pid})" in refusal(p)
    fs.umount()


def test_region_refusing_the_lease_warns(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    fs.set_faults("a", "fail_all error=eacces put")
    p = mount_bg(fs)
    assert p.returncode == 0, p.stderr
    assert "phifs: warning: region a: cannot write the lease (" in \
        p.stderr and "retrying every 100 s" in p.stderr, p.stderr
    # region b holds it
    assert f"(pid {fs.pid})" in refusal(mount_bg(other))
    fs.umount()


def test_mounts_racing_one_wins(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    procs = [subprocess.Popen(
        [os.environ["PHIFS"], "mount", x.config, x.mnt, "-o", MOUNT_OPTS],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=x.environ(), cwd=x.base,
        start_new_session=True) for x in (fs, other)]
    results = [p.communicate(timeout=60) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 1], (codes, results)
    winner, loser = (fs, other) if codes[0] == 0 else (other, fs)
    winner.pid = winner.status()["pid"]
    line = results[codes.index(1)][1].splitlines()[-1]
    assert f"(pid {winner.pid})" in line, line
    assert not is_fuse_mounted(loser.mnt)
    winner.umount()


# --- taking over ------------------------------------------------------------

def test_takeover_after_expiry(phifs_factory):
    # long enough that the refused mount below surely reads the leases
    # before the crashed mount's expires, however slow the build
    lease = 20
    fs = first_machine(phifs_factory, lease_time=f"{lease}s")
    other = second_machine(phifs_factory, fs, lease_time=f"{lease}s")
    fs.mount()
    old = fs.pid
    fs.kill9()                      # a crash: no release
    killed = time.monotonic()       # no renewal after this
    p = other.run("mount", other.config, other.mnt, "-o", MOUNT_OPTS)
    assert f"(pid {old})" in refusal(p)
    time.sleep(max(0.0, killed + lease + 1 - time.monotonic()))
    other.mount()
    log = log_text(other)
    assert f"phifs: warning: taking over an expired lease: the mount on " \
           f"{HOST} (pid {old}) since " in log, log
    assert "stopped without unmounting" in log, log
    assert read_file(other.path("letter")) == b"dear doctor"
    other.umount()


def test_kill9_then_mount_here_again(phifs_factory):
    fs = first_machine(phifs_factory)       # lease_time 5m
    other = second_machine(phifs_factory, fs)
    fs.mount()
    old = fs.pid
    fs.kill9()
    # another machine waits for the lease to expire...
    assert f"(pid {old})" in refusal(mount_bg(other))
    # ...but the same cache_dir here need not: its lock says no mount
    # of it runs
    fs.mount()
    log = log_text(fs)
    assert f"phifs: warning: taking over the lease of the last mount of " \
           f"this cache_dir on {HOST} (pid {old}) since " in log, log
    assert read_file(fs.path("letter")) == b"dear doctor"
    assert f"(pid {fs.pid})" in refusal(mount_bg(other))
    fs.umount()


def test_clean_umount_after_a_crash_releases_both(phifs_factory):
    fs = first_machine(phifs_factory)       # lease_time 5m
    other = second_machine(phifs_factory, fs)
    fs.mount()
    fs.kill9()
    fs.mount()                              # takes its own lease over
    fs.umount()                             # cleanly: nothing is held
    p = mount_bg(other)
    assert p.returncode == 0, p.stderr
    assert not lease_warnings(p.stderr), p.stderr
    assert read_file(other.path("letter")) == b"dear doctor"
    other.umount()


def test_crashes_in_a_row_give_one_warning(phifs_factory):
    fs = first_machine(phifs_factory)       # lease_time 5m
    other = second_machine(phifs_factory, fs)
    pids = []
    for _ in range(3):
        fs.mount()
        pids.append(fs.pid)
        fs.kill9()
    seen = lease_objects(fs)
    fs.mount()
    warnings = lease_warnings(log_text(fs))
    assert len(warnings) == 1, warnings
    assert f"taking over the lease of the last mount of this cache_dir " \
           f"on {HOST} (pid {pids[-1]}) since " in warnings[0], warnings
    assert_only_grew(seen, lease_objects(fs))
    fs.umount()
    # every crashed mount's lease is released with it
    p = mount_bg(other)
    assert p.returncode == 0 and not lease_warnings(p.stderr), p.stderr
    other.umount()


def test_force_takes_over_a_live_lease(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    fs.mount()
    p = mount_bg(other, "--force")
    assert p.returncode == 0, p.stderr
    assert f"phifs: warning: --force: taking over the lease of the mount " \
           f"on {HOST} (pid {fs.pid}) since " in p.stderr, p.stderr
    assert read_file(other.path("letter")) == b"dear doctor"
    other.umount()
    # the first mount still renews: it still holds the lease
    assert f"(pid {fs.pid})" in refusal(mount_bg(other))
    fs.umount()
    p = mount_bg(other)
    assert p.returncode == 0 and not lease_warnings(p.stderr), p.stderr
    other.umount()


def test_force_without_a_holder_says_nothing(phifs_factory):
    fs = first_machine(phifs_factory)
    p = mount_bg(fs, "--force")
    assert p.returncode == 0 and not lease_warnings(p.stderr), p.stderr
    fs.umount()


# --- no lease needed or left -----------------------------------------------

def test_read_only_mount_needs_no_lease(phifs_factory):
    fs = first_machine(phifs_factory)
    other = second_machine(phifs_factory, fs)
    fs.mount()
    before = lease_objects(fs)
    other.mount(opts="ro," + MOUNT_OPTS)
    assert read_file(other.path("letter")) == b"dear doctor"
    assert not lease_warnings(log_text(other)), log_text(other)
    other.umount()
    assert lease_objects(fs) == before, "a read-only mount wrote a lease"
    # "rw" after "ro" makes it writable again, and so needs the lease
    refusal(mount_bg(other, opts="ro,rw," + MOUNT_OPTS))
    fs.umount()


def test_clean_umount_releases(phifs_factory):
    fs = first_machine(phifs_factory)       # lease_time 5m
    other = second_machine(phifs_factory, fs)
    fs.mount()
    fs.umount()
    start = time.monotonic()
    other.mount()                           # no waiting, no warning
    assert time.monotonic() - start < 20
    assert not lease_warnings(log_text(other)), log_text(other)
    write_file(other.path("second"), b"from the other machine")
    other.umount()
    fs.mount()
    assert not lease_warnings(log_text(fs)), log_text(fs)
    fs.umount()


def test_mount_never_deletes_or_overwrites(phifs_factory):
    fs = first_machine(phifs_factory, lease_time="1s")
    other = second_machine(phifs_factory, fs, lease_time="1s")
    # regions that refuse every delete, as a ransomware-safe setup would:
    # the lease must not need one
    for x in (fs, other):
        x.set_faults("a", "fail_all error=eacces del")
        x.set_faults("b", "fail_all error=eacces del")
    seen = lease_objects(fs)
    fs.mount()
    # renewed every 333 ms: the first and three more, in each region
    now = wait_lease_objects(fs, lambda o: len(o) >= len(seen) + 2 * 4)
    assert_only_grew(seen, now)
    assert len(now) >= len(seen) + 2 * 4, (len(seen), len(now))
    seen = now
    fs.umount()                             # released
    now = lease_objects(fs)
    assert_only_grew(seen, now)
    assert len(now) > len(seen)
    seen = now
    other.mount()
    other.kill9()
    time.sleep(1.5)
    fs.mount()                              # takes over an expired lease
    assert "taking over an expired lease" in log_text(fs)
    p = mount_bg(other, "--force")          # and is forced out
    assert p.returncode == 0, p.stderr
    other.umount()
    fs.umount()
    assert_only_grew(seen, lease_objects(fs))


def test_lease_names_say_nothing(phifs_factory):
    fs = first_machine(phifs_factory, lease_time="1s")
    before = lease_objects(fs)
    fs.mount()
    pid = fs.pid
    # the first object and a renewal, in each region (every 333 ms)
    wait_lease_objects(fs, lambda o: len(o) >= len(before) + 2 * 2)
    fs.umount()
    objs = lease_objects(fs)
    names = {n for _, n in objs}
    assert {n for r, n in objs if r == "a"} == \
        {n for r, n in objs if r == "b"}
    assert len(names) >= 3, names           # first, renewals, released
    for n in names:
        assert re.fullmatch(r"l/[0-9a-f]{32}", n), n
        assert len(HOST) < 8 or HOST not in n, n  # short names match hex
    # each name is one AES block: the names of one mount (one host, pid
    # and mount id) have no more in common than random ones
    for x, y in itertools.combinations(sorted(names), 2):
        same = sum(a == b for a, b in zip(x[2:], y[2:]))
        assert same < 12, (x, y)
    for region, n in objs:
        root = fs.region_dir_a if region == "a" else fs.region_dir_b
        body = read_file(os.path.join(root, n))
        # the plaintext holds "host=NAME" and "pid=N" lines; look for
        # those, not for the bare name or number, which a short host
        # name ("vm") or pid matches in random ciphertext by chance
        for clear in ("host=" + HOST, "pid=%d" % pid, "host=", "pid="):
            assert clear.encode() not in body, (n, clear)


# --- configuration ----------------------------------------------------------

def test_lease_time_config(phifs_factory):
    fs = phifs_factory(mounted=False, tag="lease")
    for bad, why in (("500ms", "must be from 1s to 1h"),
                     ("2h", "must be from 1s to 1h"),
                     ("soon", "bad duration 'soon'")):
        fs.write_config(config_text(fs, lease_time=bad))
        p = fs.run("mount", fs.config, fs.mnt)
        lines = p.stderr.splitlines()
        assert p.returncode == 1 and len(lines) == 1, p.stderr
        assert f"lease_time: {why}" in lines[0], lines[0]
    p = fs.run("help", "config")
    assert re.search(r"lease_time\s+TIME\s+5m", p.stdout), p.stdout
