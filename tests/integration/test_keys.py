"""phifs key: list, add, passwd, remove, rotate, and where each change
lands.

A change must reach cache_dir/superblock and every region's "superblock",
byte for byte; a region that does not answer stops it (unless --force,
and then fsck --repair brings the region up to date); it works mounted
or not; a removed or changed passphrase no longer opens any copy.

Probes.  Whether a secret opens cache_dir's copy: `phifs fsck --scrub`
(it unlocks cache_dir's superblock first).  Whether it opens region R's
copy: `phifs versions CONFIG / --region R` while the other region is down
(it unlocks the newest superblock of the regions that answer).  Both print "wrong passphrase" when nothing opens, and
something else (the filesystem has no history yet) when a slot does.
"""

import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import time

from conftest import (MOUNT_OPTS, PHIFS, empty_dir, is_fuse_mounted,
                      read_file, write_file)

KDF = "1024"        # cheap scrypt for new passphrase slots (test hook)
HERE = os.path.dirname(os.path.abspath(__file__))


def no_key_file(fs):
    """fs's config without key_file: a passphrase opens it."""
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(f"key_file = {fs.key_file}\n", ""))


def passphrase_fs(fs, pw="first pass"):
    no_key_file(fs)
    fs.env["PHIFS_KDF_N"] = KDF
    fs.run("mkfs", fs.config, env={"PHIFS_PASSPHRASE": pw}, check=True)


def key(fs, *args, pw=None, new=None):
    env = {}
    if pw is not None:
        env["PHIFS_PASSPHRASE"] = pw
    if new is not None:
        env["PHIFS_NEW_PASSPHRASE"] = new
    return fs.run("key", *args, env=env)


def ok(p):
    assert p.returncode == 0, p.stderr
    return p


def one_error(p):
    assert p.returncode != 0, p.stdout
    lines = [l for l in p.stderr.splitlines() if "warning" not in l]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("phifs: "), lines
    return lines[0]


def slots(fs):
    """{slot number: (kind, label)} from phifs key list."""
    out = {}
    for line in ok(key(fs, "list", fs.config)).stdout.splitlines()[2:]:
        m = re.match(r"(\d)\s+(passphrase|key file|recovery code)\s+"
                     r"(\S+ \S+ UTC|unknown)\s*(.*)$", line)
        assert m, line
        out[int(m.group(1))] = (m.group(2), m.group(4))
    return out


def copies(fs):
    return [read_file(os.path.join(d, "superblock"))
            for d in (fs.cache_dir, fs.region_dir_a, fs.region_dir_b)]


def assert_copies_equal(fs):
    local, a, b = copies(fs)
    assert len(local) == 3932
    assert a == local and b == local


def opens_local(fs, pw):
    p = fs.run("fsck", fs.config, "--scrub", env={"PHIFS_PASSPHRASE": pw})
    return "wrong passphrase" not in p.stderr


def opens_region(fs, region, pw):
    # the other region is down meanwhile: versions unlocks the newest
    # superblock of the regions that answer, and must see this one's
    other = "b" if region == "a" else "a"
    fs.set_faults(other, "fail_all")
    try:
        p = fs.run("versions", fs.config, "/", "--region", region,
                   env={"PHIFS_PASSPHRASE": pw})
    finally:
        fs.set_faults(other, None)
    return "wrong passphrase" not in p.stderr


def opens_everywhere(fs, pw):
    return [opens_local(fs, pw), opens_region(fs, "a", pw),
            opens_region(fs, "b", pw)]


# --- list and add ---------------------------------------------------------

def test_list_after_mkfs(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    p = ok(key(fs, "list", fs.config))
    assert p.stdout.splitlines()[0] == \
        "superblock format 3, serial 2, key generation 0, 1 of 8 slots in use"
    assert slots(fs) == {0: ("key file", "")}
    assert "unknown" not in p.stdout


def test_add_passphrase_reaches_every_copy(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    before = copies(fs)
    p = ok(key(fs, "add", fs.config, "--label", "front desk",
               pw="first pass", new="second pass"))
    assert p.stdout.strip() == "added slot 1 (passphrase)"
    assert slots(fs) == {0: ("passphrase", ""),
                         1: ("passphrase", "front desk")}
    assert_copies_equal(fs)
    assert copies(fs)[0] != before[0]
    assert opens_everywhere(fs, "second pass") == [True, True, True]
    assert opens_everywhere(fs, "first pass") == [True, True, True]
    assert opens_everywhere(fs, "third pass") == [False, False, False]


def test_add_refused_with_wrong_passphrase(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    before = copies(fs)
    line = one_error(key(fs, "add", fs.config, pw="not it",
                         new="second pass"))
    assert "wrong passphrase" in line, line
    assert copies(fs) == before
    assert not os.path.exists(os.path.join(fs.cache_dir, "superblock.new"))


def test_add_key_file_and_bad_label(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    kf = os.path.join(fs.base, "second-key")
    p = ok(key(fs, "add", fs.config, "--key-file", kf, "--label", "usb"))
    assert "added slot 1 (key file)" in p.stdout
    assert os.stat(kf).st_mode & 0o777 == 0o600
    assert slots(fs)[1] == ("key file", "usb")
    assert_copies_equal(fs)
    # the new key file opens the filesystem alone
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(fs.key_file, kf))
    fs.mount()
    fs.umount()
    p = key(fs, "add", fs.config, "--label", "tab\there")
    assert p.returncode == 2 and "--label" in p.stderr


def test_recovery_code_opens(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    p = ok(key(fs, "add", fs.config, "--recovery", "--label", "safe",
               pw="first pass"))
    m = re.search(r"recovery code: ((?:[0-9A-Z]{4}-){13}[0-9A-Z]{4})\n",
                  p.stdout)
    assert m, p.stdout
    code = m.group(1)
    assert slots(fs)[1] == ("recovery code", "safe")
    assert_copies_equal(fs)
    # typed back in lower case, without dashes: it opens every copy
    typed = code.replace("-", "").lower()
    assert opens_everywhere(fs, typed) == [True, True, True]
    # one character off: refused, and told apart from a wrong secret
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    p = fs.run("versions", fs.config, "/", "--region", "a",
               env={"PHIFS_PASSPHRASE": bad})
    assert "looks like a recovery code with a typo" in p.stderr, p.stderr
    # and it authorises changes like a passphrase
    ok(key(fs, "add", fs.config, pw=code, new="via recovery"))
    assert opens_local(fs, "via recovery")


# --- passwd ---------------------------------------------------------------

def test_passwd_old_passphrase_fails(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, "--label", "nurse", pw="first pass",
           new="nurse pass"))
    p = ok(key(fs, "passwd", fs.config, pw="nurse pass", new="nurse new"))
    assert p.stdout.strip() == "changed the passphrase of slot 1"
    assert slots(fs) == {0: ("passphrase", ""),
                         1: ("passphrase", "nurse")}
    assert_copies_equal(fs)
    assert opens_everywhere(fs, "nurse pass") == [False, False, False]
    assert opens_everywhere(fs, "nurse new") == [True, True, True]
    assert opens_everywhere(fs, "first pass") == [True, True, True]


def test_passwd_refuses_key_file_slot(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    before = copies(fs)
    line = one_error(key(fs, "passwd", fs.config, new="x"))
    assert "key file, not a passphrase" in line, line
    assert copies(fs) == before


# --- remove ---------------------------------------------------------------

def test_remove_and_last_slot(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="second pass"))
    p = ok(key(fs, "remove", fs.config, "0", pw="second pass"))
    assert p.stdout.strip() == "removed slot 0"
    assert slots(fs) == {1: ("passphrase", "")}
    assert_copies_equal(fs)
    assert opens_everywhere(fs, "first pass") == [False, False, False]
    assert opens_everywhere(fs, "second pass") == [True, True, True]
    before = copies(fs)
    line = one_error(key(fs, "remove", fs.config, "1", pw="second pass"))
    assert "last key slot" in line, line
    line = one_error(key(fs, "remove", fs.config, "5", pw="second pass"))
    assert "slot 5 is not in use" in line, line
    assert copies(fs) == before
    p = key(fs, "remove", fs.config, "9", pw="second pass")
    assert p.returncode == 2 and "not a slot number" in p.stderr


# --- mounted --------------------------------------------------------------

def test_changes_while_mounted(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    write_file(fs.path("before"), b"1")
    del fs.env["PHIFS_PASSPHRASE"]
    ok(key(fs, "add", fs.config, pw="first pass", new="second pass"))
    ok(key(fs, "remove", fs.config, "0", pw="second pass"))
    assert_copies_equal(fs)
    # the running mount goes on with the same master key
    write_file(fs.path("after"), b"2")
    assert read_file(fs.path("before")) == b"1"
    fs.umount()
    assert opens_everywhere(fs, "first pass") == [False, False, False]
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS,
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert p.returncode != 0 and "wrong passphrase" in p.stderr
    assert not is_fuse_mounted(fs.mnt)
    fs.env["PHIFS_PASSPHRASE"] = "second pass"
    fs.mount()
    assert read_file(fs.path("after")) == b"2"


# --- re-seeding an emptied region while mounted (issue 11) -----------------

def mount_with_a_emptied(fs, pw="first pass", synced=False):
    """fs mounted with region a emptied and refusing puts: the mount holds
    it to be re-seeded, and cannot store its superblock yet."""
    if not synced:
        synced_write(fs, pw, "f", b"kept")
    empty_dir(fs.region_dir_a)
    fs.set_faults("a", "fail_all put")
    fs.env["PHIFS_PASSPHRASE"] = pw
    fs.mount()
    del fs.env["PHIFS_PASSPHRASE"]


def reseed_a(fs):
    """Region a takes puts again; its superblock once it is whole."""
    fs.set_faults("a", None)
    p = fs.run("sync", fs.config, "--timeout", "60s", timeout=120)
    assert p.returncode == 0, p.stderr + fs.log_tail()
    return read_file(os.path.join(fs.region_dir_a, "superblock"))


def test_reseed_stores_a_key_change_made_while_mounted(phifs_bare):
    """A region emptied gets the newest superblock, not the one the mount
    read when it started: a passphrase removed while mounted does not come
    back in that region."""
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="leaked pass"))
    mount_with_a_emptied(fs)
    p = ok(key(fs, "remove", fs.config, "1", pw="first pass"))
    assert "region a holds no superblock" in p.stderr, p.stderr
    newest = read_file(os.path.join(fs.cache_dir, "superblock"))
    assert reseed_a(fs) == newest
    assert copies(fs) == [newest, newest, newest]
    fs.umount()
    assert opens_region(fs, "a", "leaked pass") is False
    assert opens_region(fs, "a", "first pass") is True


def test_reseed_after_rotate_while_mounted(phifs_bare):
    """The remedy for a leaked passphrase (remove it, rotate) reaches a
    region emptied meanwhile: it gets the new generation's superblock,
    which the mount checks with the key rotate handed it."""
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="leaked pass"))
    mount_with_a_emptied(fs)
    ok(key(fs, "remove", fs.config, "1", pw="first pass"))
    p = ok(key(fs, "rotate", fs.config, pw="first pass"))
    assert "seals under it now" in p.stdout, p.stdout
    newest = read_file(os.path.join(fs.cache_dir, "superblock"))
    assert reseed_a(fs) == newest
    fs.umount()
    assert opens_region(fs, "a", "leaked pass") is False
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    assert read_file(fs.path("f")) == b"kept"


def test_reseed_takes_the_newest_copy_that_verifies(phifs_bare):
    """cache_dir's copy may be behind a region's (a key change made from
    another machine) or altered: the region emptied gets the newest copy
    whose MAC holds under the key, never an altered one."""
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="leaked pass"))
    mount_with_a_emptied(fs)
    ok(key(fs, "remove", fs.config, "1", pw="first pass"))
    newest = read_file(os.path.join(fs.region_dir_b, "superblock"))
    # cache_dir: the newest copy with its serial (offset 44) raised,
    # so that its MAC fails
    forged = bytearray(newest)
    forged[44:52] = (1 << 40).to_bytes(8, "big")
    write_file(os.path.join(fs.cache_dir, "superblock"), bytes(forged),
               0o600)
    assert reseed_a(fs) == newest
    fs.umount()
    assert opens_region(fs, "a", "leaked pass") is False


def test_reseed_waits_for_the_key_of_a_newer_generation(phifs_bare):
    """A newer superblock of a key generation the mount lacks (here a
    rotation made through another cache_dir) cannot be checked: while
    the mount waits for the key, the region being seeded gets none."""
    fs = phifs_bare
    passphrase_fs(fs)
    synced_write(fs, "first pass", "f", b"kept")
    other = os.path.join(fs.base, "other-cache")
    shutil.copytree(fs.cache_dir, other)
    with open(fs.config) as f:
        text = f.read()
    other_config = os.path.join(fs.base, "other.conf")
    with open(other_config, "w") as f:
        f.write(text.replace(f"cache_dir = {fs.cache_dir}\n",
                             f"cache_dir = {other}\n"))
    mount_with_a_emptied(fs, synced=True)
    ok(key(fs, "rotate", other_config, pw="first pass"))
    newer = read_file(os.path.join(fs.region_dir_b, "superblock"))
    assert newer != read_file(os.path.join(fs.cache_dir, "superblock"))
    fs.set_faults("a", None)
    p = fs.run("sync", fs.config, "--timeout", "8", timeout=60)
    assert p.returncode != 0 and "region a" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(fs.region_dir_a, "superblock"))
    assert "which this mount does not hold yet" in fs.log_tail()
    fs.umount()
    assert not os.path.exists(os.path.join(fs.region_dir_a, "superblock"))


# --- a region down --------------------------------------------------------

def test_region_down_refuses_then_force_and_repair(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="second pass"))
    before = copies(fs)
    fs.set_faults("b", "fail_all")
    line = one_error(key(fs, "remove", fs.config, "0", pw="second pass"))
    assert "region b does not answer" in line and "--force" in line, line
    assert copies(fs) == before
    p = ok(key(fs, "remove", fs.config, "0", "--force", pw="second pass"))
    assert "warning: region b does not answer" in p.stderr, p.stderr
    local, a, b = copies(fs)
    assert a == local and b == before[2]
    fs.set_faults("b", None)
    # region b still holds the old superblock, where slot 0 opens ...
    assert opens_region(fs, "b", "first pass")
    assert not opens_region(fs, "a", "first pass")
    # ... until repair spreads the newest one
    p = fs.run("fsck", fs.config, "--repair",
               env={"PHIFS_PASSPHRASE": "second pass"})
    assert "region b: superblock differs" in p.stdout, p.stdout
    assert_copies_equal(fs)
    assert opens_everywhere(fs, "first pass") == [False, False, False]


def test_newer_region_copy_wins(phifs_bare):
    """cache_dir holding an older superblock than the regions (restored
    from a backup, say): key edits the newest, repair never spreads the
    older one but brings cache_dir up to date, and mount refuses until
    then."""
    fs = phifs_bare
    passphrase_fs(fs)
    old_local = copies(fs)[0]
    local = os.path.join(fs.cache_dir, "superblock")
    ok(key(fs, "add", fs.config, "--label", "new", pw="first pass",
           new="second pass"))
    write_file(local, old_local, 0o600)
    p = ok(key(fs, "add", fs.config, "--label", "third", pw="first pass",
               new="third pass"))
    assert "holds a newer superblock than cache_dir" in p.stderr
    assert slots(fs) == {0: ("passphrase", ""), 1: ("passphrase", "new"),
                         2: ("passphrase", "third")}
    assert_copies_equal(fs)
    newest = copies(fs)[0]

    write_file(local, old_local, 0o600)
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS,
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert p.returncode != 0, p.stderr
    assert "region a holds a newer superblock" in p.stderr, p.stderr
    assert not is_fuse_mounted(fs.mnt)
    p = fs.run("fsck", fs.config, "--repair",
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert "region a: superblock is newer" in p.stdout, p.stdout
    assert "cache_dir: superblock brought up to date from region a" \
        in p.stdout, p.stdout
    assert copies(fs) == [newest, newest, newest]
    fs.env["PHIFS_PASSPHRASE"] = "third pass"
    fs.mount()


# --- filesystems made before key management -------------------------------

def format1_fs(fs):
    """Replace fs's cache_dir and regions with fixtures/format1-fs.tar.gz,
    made by phifs before key management with the passphrase "old pass"."""
    for d in (fs.cache_dir, fs.region_dir_a, fs.region_dir_b):
        shutil.rmtree(d)
    with tarfile.open(os.path.join(HERE, "fixtures",
                                   "format1-fs.tar.gz")) as t:
        t.extractall(fs.base)
    os.rename(os.path.join(fs.base, "cache"), fs.cache_dir)
    no_key_file(fs)


def test_format1_filesystem_mounts_and_lifts(phifs_bare):
    """A filesystem made by phifs before this change (a 972-byte format-1
    superblock; fixtures/format1-fs.tar.gz, made by that binary with the
    passphrase "old pass") still mounts, and its first key change lifts
    it to format 2 everywhere."""
    fs = phifs_bare
    format1_fs(fs)
    assert [len(c) for c in copies(fs)] == [972, 972, 972]
    assert ok(key(fs, "list", fs.config)).stdout.splitlines()[0] == \
        "superblock format 1, serial 0, key generation 0, 1 of 8 slots in use"
    assert slots(fs) == {0: ("passphrase", "")}
    fs.env["PHIFS_PASSPHRASE"] = "old pass"
    fs.mount()
    write_file(fs.path("f"), b"old fs")
    fs.umount()
    del fs.env["PHIFS_PASSPHRASE"]
    fs.env["PHIFS_KDF_N"] = KDF
    ok(key(fs, "add", fs.config, "--label", "new", pw="old pass",
           new="new pass"))
    assert_copies_equal(fs)
    assert opens_everywhere(fs, "old pass") == [True, True, True]
    fs.env["PHIFS_PASSPHRASE"] = "new pass"
    fs.mount()
    assert read_file(fs.path("f")) == b"old fs"


def test_removed_slot_cannot_authorise_through_older_local_copy(phifs_bare):
    """A passphrase removed in the regions' newer superblock cannot make
    changes by opening an older cache_dir copy that still has it."""
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="second pass"))
    old_local = copies(fs)[0]
    ok(key(fs, "remove", fs.config, "0", pw="second pass"))
    newest = copies(fs)[1]
    write_file(os.path.join(fs.cache_dir, "superblock"), old_local, 0o600)
    line = one_error(key(fs, "add", fs.config, pw="first pass",
                         new="sneaky"))
    assert "wrong passphrase" in line, line
    assert copies(fs)[1:] == [newest, newest]
    assert copies(fs)[0] == old_local
    # nor mount with it
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS,
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert p.returncode != 0 and "newer superblock" in p.stderr, p.stderr
    assert not is_fuse_mounted(fs.mnt)


def test_recover_takes_the_newest_superblock(phifs_bare):
    """On a new machine, recover stores the newest superblock of the
    regions, not the first region's older one: a slot removed while
    region a was down opens nothing there."""
    fs = phifs_bare
    passphrase_fs(fs)
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    write_file(fs.path("f"), b"kept")
    p = fs.run("sync", fs.config, "--timeout", "60s", timeout=120)
    assert p.returncode == 0, p.stderr
    fs.umount()
    del fs.env["PHIFS_PASSPHRASE"]
    ok(key(fs, "add", fs.config, pw="first pass", new="second pass"))
    fs.set_faults("a", "fail_all")
    ok(key(fs, "remove", fs.config, "0", "--force", pw="second pass"))
    fs.set_faults("a", None)
    newest = copies(fs)[2]
    assert copies(fs)[1] != newest
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    p = fs.run("recover", fs.config, env={"PHIFS_PASSPHRASE": "first pass"})
    assert p.returncode == 1 and "wrong passphrase" in p.stderr, p.stderr
    assert os.listdir(fs.cache_dir) == []
    p = fs.run("recover", fs.config,
               env={"PHIFS_PASSPHRASE": "second pass"})
    assert p.returncode == 0, p.stderr
    assert read_file(os.path.join(fs.cache_dir, "superblock")) == newest
    fs.env["PHIFS_PASSPHRASE"] = "second pass"
    fs.mount()
    assert read_file(fs.path("f")) == b"kept"


def test_change_refused_without_local_superblock(phifs_bare):
    """Keys change on the machine that mounts: elsewhere (no superblock in
    cache_dir) the copy that machine's mount reads would stay behind.
    Listing works anywhere."""
    fs = phifs_bare
    passphrase_fs(fs)
    before = copies(fs)[1:]
    os.unlink(os.path.join(fs.cache_dir, "superblock"))
    line = one_error(key(fs, "add", fs.config, pw="first pass",
                         new="second pass"))
    assert "holds no superblock" in line, line
    assert [read_file(os.path.join(d, "superblock"))
            for d in (fs.region_dir_a, fs.region_dir_b)] == before
    assert slots(fs) == {0: ("passphrase", "")}


# --- rotate ---------------------------------------------------------------

def frame_versions(region_dir):
    """{frame version byte: count} of the sealed objects under d/ of a
    dir: region (each object starts with a frame: "PHIS" and a version)."""
    out = {}
    for root, _dirs, files in os.walk(os.path.join(region_dir, "d")):
        for name in files:
            head = read_file(os.path.join(root, name))[:5]
            assert head[:4] == b"PHIS", name
            out[head[4]] = out.get(head[4], 0) + 1
    return out


def synced_write(fs, pw, name, data):
    fs.env["PHIFS_PASSPHRASE"] = pw
    fs.mount()
    write_file(fs.path(name), data)
    p = fs.run("sync", fs.config, "--timeout", "60s", timeout=120)
    assert p.returncode == 0, p.stderr
    fs.umount()
    del fs.env["PHIFS_PASSPHRASE"]


def test_rotate_seals_new_content_under_a_new_key(phifs_bare):
    """After rotate every slot opens the filesystem, old and new content
    read back, and what is sealed from then on carries the new
    generation; a slot removed before the rotation, through the copy of
    the superblock it still opens, cannot read the new content."""
    fs = phifs_bare
    passphrase_fs(fs)
    ok(key(fs, "add", fs.config, pw="first pass", new="leaked pass"))
    synced_write(fs, "first pass", "old", b"before the rotation")
    assert set(frame_versions(fs.region_dir_a)) == {2}
    leaked_copy = copies(fs)[1]
    ok(key(fs, "remove", fs.config, "1", pw="first pass"))
    p = ok(key(fs, "rotate", fs.config, pw="first pass"))
    assert p.stdout.splitlines() == [
        "rotated the master key: generation 1 seals everything written "
        "from now on; every slot opens it"]
    assert_copies_equal(fs)
    assert ok(key(fs, "list", fs.config)).stdout.splitlines()[0] == \
        "superblock format 3, serial 5, key generation 1, 1 of 8 slots in use"
    synced_write(fs, "first pass", "new", b"after the rotation")
    assert frame_versions(fs.region_dir_a).get(3, 0) > 0
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    assert read_file(fs.path("old")) == b"before the rotation"
    assert read_file(fs.path("new")) == b"after the rotation"
    fs.umount()
    del fs.env["PHIFS_PASSPHRASE"]

    # someone with the old copy and the removed passphrase, on a new
    # machine with region a: nothing sealed since opens
    for d in (fs.region_dir_b,):
        shutil.rmtree(d)
    write_file(os.path.join(fs.region_dir_a, "superblock"), leaked_copy,
               0o600)
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    p = fs.run("recover", fs.config, env={"PHIFS_PASSPHRASE": "leaked pass"})
    assert p.returncode != 0, p.stdout
    assert "failed authentication" in p.stderr, p.stderr


def test_rotate_while_mounted(phifs_bare):
    """A running mount takes the new key at once: what it seals after
    rotate returns carries the new generation, and everything reads back,
    then and after a new mount."""
    fs = phifs_bare
    passphrase_fs(fs)
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    write_file(fs.path("before"), b"sealed under generation 0")
    p = fs.run("sync", fs.config, "--timeout", "60s", timeout=120)
    assert p.returncode == 0, p.stderr
    assert set(frame_versions(fs.region_dir_a)) == {2}
    p = ok(key(fs, "rotate", fs.config, pw="first pass"))
    lines = p.stdout.splitlines()
    assert lines[0].startswith("rotated the master key: generation 1"), lines
    assert re.fullmatch(r"the mount \(pid \d+\) seals under it now",
                        lines[1]), lines
    assert_copies_equal(fs)
    for name in ("rekey.msg", "rekey.ack"):
        assert not os.path.exists(os.path.join(fs.cache_dir, name))
    write_file(fs.path("after"), b"sealed under generation 1")
    p = fs.run("sync", fs.config, "--timeout", "60s", timeout=120)
    assert p.returncode == 0, p.stderr
    assert frame_versions(fs.region_dir_a).get(3, 0) > 0
    assert read_file(fs.path("before")) == b"sealed under generation 0"
    fs.umount()
    assert not os.path.exists(os.path.join(fs.cache_dir, "rekey.pub"))
    fs.mount()
    assert read_file(fs.path("before")) == b"sealed under generation 0"
    assert read_file(fs.path("after")) == b"sealed under generation 1"
    # and a second rotation, mounted again
    p = ok(key(fs, "rotate", fs.config, pw="first pass"))
    assert p.stdout.startswith("rotated the master key: generation 2")
    write_file(fs.path("later"), b"generation 2")
    fs.umount()
    fs.mount()
    assert read_file(fs.path("later")) == b"generation 2"


def test_rotate_region_down_then_force_and_repair(phifs_bare):
    fs = phifs_bare
    passphrase_fs(fs)
    before = copies(fs)
    fs.set_faults("b", "fail_all")
    line = one_error(key(fs, "rotate", fs.config, pw="first pass"))
    assert "region b does not answer" in line and "--force" in line, line
    assert copies(fs) == before
    ok(key(fs, "rotate", fs.config, "--force", pw="first pass"))
    local, a, b = copies(fs)
    assert a == local and b == before[2]
    fs.set_faults("b", None)
    p = fs.run("fsck", fs.config, "--repair",
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert "region b: superblock differs" in p.stdout, p.stdout
    assert_copies_equal(fs)
    synced_write(fs, "first pass", "f", b"generation 1")


def test_rotate_waits_for_slots_from_before_rotation(phifs_bare):
    """A format-1 filesystem's slot opens only the old key itself: rotate
    names it and changes nothing until passwd (which may keep the same
    passphrase) makes it again."""
    fs = phifs_bare
    format1_fs(fs)
    fs.env["PHIFS_KDF_N"] = KDF
    before = copies(fs)
    line = one_error(key(fs, "rotate", fs.config, pw="old pass"))
    assert "slots 0 were made before key rotation" in line, line
    assert "phifs key passwd" in line, line
    assert copies(fs) == before
    ok(key(fs, "passwd", fs.config, pw="old pass", new="old pass"))
    ok(key(fs, "rotate", fs.config, pw="old pass"))
    assert_copies_equal(fs)
    synced_write(fs, "old pass", "g", b"new")
    fs.env["PHIFS_PASSPHRASE"] = "old pass"
    fs.mount()
    assert read_file(fs.path("g")) == b"new"


def test_stale_cache_dir_after_rotation(phifs_bare):
    """A cache_dir superblock from before a rotation (restored from a
    backup) is older than the regions' copies, though the old key cannot
    check them: the mount refuses, and fsck --repair, opening the newer
    copy with the secret, brings cache_dir up to date and never writes
    the older one over the regions'."""
    fs = phifs_bare
    passphrase_fs(fs)
    synced_write(fs, "first pass", "f", b"before")
    old_local = copies(fs)[0]
    ok(key(fs, "rotate", fs.config, pw="first pass"))
    newest = copies(fs)[1]
    write_file(os.path.join(fs.cache_dir, "superblock"), old_local, 0o600)
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS,
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert p.returncode != 0 and "newer superblock" in p.stderr, p.stderr
    assert not is_fuse_mounted(fs.mnt)
    p = fs.run("fsck", fs.config, "--repair",
               env={"PHIFS_PASSPHRASE": "first pass"})
    assert "superblock brought up to date from region" in p.stdout, \
        (p.stdout, p.stderr)
    assert copies(fs) == [newest, newest, newest]
    synced_write(fs, "first pass", "g", b"after")
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    assert read_file(fs.path("f")) == b"before"
    assert read_file(fs.path("g")) == b"after"


def test_rotate_refused_while_another_command_holds_the_cache(phifs_bare):
    """Not mounted, but a command (here a sync that waits for a region
    that is down) holds cache_dir/lock: rotate refuses and changes
    nothing."""
    fs = phifs_bare
    passphrase_fs(fs)
    synced_write(fs, "first pass", "f", b"data")
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    write_file(fs.path("g"), b"unsent")
    fs.umount()
    del fs.env["PHIFS_PASSPHRASE"]
    before = copies(fs)
    fs.set_faults("a", "fail_all")
    fs.set_faults("b", "fail_all")
    sync = subprocess.Popen([PHIFS, "sync", fs.config, "--timeout", "60s"],
                            env=fs.environ({"PHIFS_PASSPHRASE":
                                            "first pass"}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        lock = os.path.join(fs.cache_dir, "lock")
        held = False
        for _ in range(600):    # until the sync holds the lock
            with open(lock, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    held = True
            if held:
                break
            assert sync.poll() is None, sync.stderr.read()
            time.sleep(0.1)
        assert held
        line = one_error(key(fs, "rotate", fs.config, "--force",
                             pw="first pass"))
        assert "in use by another phifs command" in line, line
        assert copies(fs) == before
    finally:
        sync.kill()
        sync.wait()
        fs.set_faults("a", None)
        fs.set_faults("b", None)


def test_rotate_refused_when_the_mount_cannot_take_the_key(phifs_bare):
    """Mounted, rotate checks the mount's receiver before it changes
    anything: one written by someone without the key (its tag fails), or
    none, and nothing changes."""
    fs = phifs_bare
    passphrase_fs(fs)
    fs.env["PHIFS_PASSPHRASE"] = "first pass"
    fs.mount()
    del fs.env["PHIFS_PASSPHRASE"]
    before = copies(fs)
    pub = os.path.join(fs.cache_dir, "rekey.pub")
    good = read_file(pub)
    pid, gen, key_hex, tag = good.decode().split()
    forged = f"{pid} {gen} {'ab' * 32} {tag}\n".encode()
    write_file(pub, forged, 0o600)
    line = one_error(key(fs, "rotate", fs.config, pw="first pass"))
    assert "was not written by a mount of this filesystem" in line, line
    assert "nothing changed" in line, line
    os.unlink(pub)
    line = one_error(key(fs, "rotate", fs.config, pw="first pass"))
    assert "does not take keys while running" in line, line
    assert copies(fs) == before
    write_file(pub, good, 0o600)
    ok(key(fs, "rotate", fs.config, pw="first pass"))
