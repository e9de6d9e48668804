"""A region is the folder its url names, and what it held at mount.

A dir: region's folder may be moved, deleted or swapped under a running
mount.  The mount must follow the configured path, never write into a
folder moved away, and report a region down while the folder there is
not the region (empty: deleted and made again, or replaced), until it is
put back.  Superblocks in the regions are checked at mount and by
`fsck --scrub`.
"""

import os
import shutil

from conftest import MOUNT_OPTS, is_fuse_mounted, read_file, write_file

PHRASE = "region folder was moved, replaced or emptied since it was opened"


def tree(root):
    """{relative path: (size, mtime_ns)} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def objects(root):
    """Data and metadata objects: not the superblock, not lease objects
    (each region gets its own as it answers), not temporary files."""
    return {k for k in tree(root)
            if k != "superblock" and not k.startswith("l/")
            and not os.path.basename(k).startswith(".")}


def sync(fs, timeout=60):
    return fs.run("sync", fs.config, "--timeout", f"{timeout}s",
                  timeout=timeout + 60)


def region_state(st, name):
    for r in st["region_state"]:
        if r["name"] == name:
            return r
    raise AssertionError(f"no region {name} in status: {st}")


def log_text(fs):
    with open(fs.logs[-1], errors="replace") as f:
        return f.read()


def down_lines(fs):
    return [x for x in log_text(fs).splitlines()
            if "region a is down" in x]


def expect_region_a_down(fs):
    """sync fails naming region a, status says it is down, and the log
    says why, once."""
    p = sync(fs, timeout=8)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "region a" in p.stderr, p.stderr
    st = fs.wait_status(lambda s: region_state(s, "a")["down"])
    assert region_state(st, "a")["down"], st
    assert not region_state(st, "b")["down"], st
    lines = down_lines(fs)
    assert len(lines) == 1, lines
    assert PHRASE in lines[0], lines[0]


# --- a dir: region follows its path --------------------------------------

def test_region_moved_away_and_replaced(phifs):
    fs = phifs
    write_file(fs.path("first"), b"first letter")
    assert sync(fs).returncode == 0
    moved = fs.region_dir_a + ".moved"
    os.rename(fs.region_dir_a, moved)
    os.mkdir(fs.region_dir_a)
    before = tree(moved)
    write_file(fs.path("second"), b"second letter" * 1000)
    expect_region_a_down(fs)
    # nothing written into the folder moved away, nor into the empty one
    assert tree(moved) == before
    assert tree(fs.region_dir_a) == {}
    # moved back: the region is back, and gets what it missed
    os.rmdir(fs.region_dir_a)
    os.rename(moved, fs.region_dir_a)
    p = sync(fs)
    assert p.returncode == 0, p.stderr
    assert objects(fs.region_dir_a) == objects(fs.region_dir_b)
    assert "region a is back" in log_text(fs)
    fs.umount()


def test_region_deleted_and_recreated(phifs):
    fs = phifs
    write_file(fs.path("first"), b"first letter")
    assert sync(fs).returncode == 0
    shutil.rmtree(fs.region_dir_a)
    os.mkdir(fs.region_dir_a)
    write_file(fs.path("second"), b"second letter" * 1000)
    expect_region_a_down(fs)
    # an empty folder takes no objects as if it were the whole region
    assert tree(fs.region_dir_a) == {}
    # repaired while mounted: the superblock back, then scrub --repair
    shutil.copy2(os.path.join(fs.region_dir_b, "superblock"),
                 os.path.join(fs.region_dir_a, "superblock"))
    p = fs.run("fsck", fs.config, "--repair")
    assert "region a" in p.stdout, p.stdout
    p = sync(fs)
    assert p.returncode == 0, p.stderr
    assert objects(fs.region_dir_a) == objects(fs.region_dir_b)
    assert read_file(fs.path("second")) == b"second letter" * 1000
    fs.umount()


# --- the regions' superblocks ---------------------------------------------

def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def flip(path, offset):
    data = bytearray(read_file(path))
    data[offset] ^= 0x01
    write_file(path, bytes(data))


def mount_bg(fs):
    """`phifs mount` in the background, as a user runs it."""
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS)
    if p.returncode == 0:
        fs.pid, fs.proc = fs.status()["pid"], None
    return p


def scrub(fs):
    return fs.run("fsck", fs.config, "--scrub")


def test_truncated_superblock_in_one_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    sb_a = os.path.join(fs.region_dir_a, "superblock")
    truncate(sb_a, 100)
    p = mount_bg(fs)
    assert p.returncode == 0, p.stderr
    assert "phifs: warning: corrupt superblock in region a (100 bytes, " \
           "where a superblock has 3932: truncated or overwritten); " \
           "mounting with the good copy of the other regions" in \
           p.stderr.splitlines(), p.stderr
    assert "region b" not in p.stderr, p.stderr
    write_file(fs.path("f"), b"still works")
    assert sync(fs).returncode == 0
    fs.umount()
    p = scrub(fs)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "region a: corrupt superblock (100 bytes, where a superblock " \
           "has 3932: truncated or overwritten)" in p.stdout.splitlines(), \
        p.stdout
    assert "region b: corrupt" not in p.stdout, p.stdout


def test_altered_superblock_in_one_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    # one bit of the first key slot's salt: still parses, MAC fails
    flip(os.path.join(fs.region_dir_b, "superblock"), 64 + 30)
    p = mount_bg(fs)
    assert p.returncode == 0, p.stderr
    assert "phifs: warning: corrupt superblock in region b (damaged or " \
           "altered: its MAC does not verify)" in p.stderr, p.stderr
    fs.umount()
    p = scrub(fs)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "region b: corrupt superblock (damaged or altered: its MAC " \
           "does not verify)" in p.stdout.splitlines(), p.stdout


def test_no_good_superblock_refuses_mount(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    truncate(os.path.join(fs.region_dir_a, "superblock"), 100)
    flip(os.path.join(fs.region_dir_b, "superblock"), 64 + 30)
    p = fs.run("mount", fs.config, fs.mnt, "-o", MOUNT_OPTS)
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert lines == [
        "phifs: no region holds a good superblock (region a: 100 bytes, "
        "where a superblock has 3932: truncated or overwritten; region b: "
        "damaged or altered: its MAC does not verify); refusing to "
        "mount"], p.stderr
    assert not is_fuse_mounted(fs.mnt)


def test_truncated_superblock_not_fetched(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    local = os.path.join(fs.cache_dir, "superblock")
    good = read_file(local)
    os.unlink(local)
    truncate(os.path.join(fs.region_dir_a, "superblock"), 100)
    p = mount_bg(fs)
    assert p.returncode == 0, p.stderr
    assert "phifs: warning: corrupt superblock in region a (100 bytes, " \
           "where a superblock has 3932: truncated or overwritten); trying " \
           "the next region" in p.stderr, p.stderr
    assert read_file(local) == good
    fs.umount()
