"""Sealing and replication over a real mount with two dir: regions.

What leaves the machine must say nothing (no name, no content), reach both
regions by `phifs sync`, and come back when the local copy is gone: after
eviction, with region A deleted or damaged, after region A failed for a
while, and after the daemon was killed in the middle of its uploads.
"""

import hashlib
import os
import random
import re
import shutil
import subprocess

import pytest

from conftest import empty_dir, read_file, write_file

MiB = 1 << 20
MARKER = b"PHIFS-MARKER-31c9e0d4"


def region_files(root):
    """{relative path: bytes} of every file under a region directory."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = read_file(p)
    return out


def objects(root):
    """Data and metadata objects; not the superblock, and not lease
    objects, which each region gets on its own as it answers."""
    return {k for k in region_files(root)
            if k != "superblock" and not k.startswith("l/")}


def sync(fs, timeout=120, check=True):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    if check:
        assert p.returncode == 0, \
            f"phifs sync exited {p.returncode}: {p.stderr.strip()}\n" \
            f"{fs.log_tail()}"
    return p


def small_config(fs, size):
    """cache_size = size, with 256 KiB blocks so that it may be small."""
    with open(fs.config) as f:
        text = f.read()
    text = re.sub(r"cache_size = \S+", f"cache_size = {size}", text)
    fs.write_config(re.sub(r"block_size = \S+", "block_size = 256K", text))


def small_cache(fs, size="6M"):
    """Format and mount fs with a cache_size of `size`."""
    small_config(fs, size)
    fs.mkfs()
    fs.mount()


def blob(seed, size):
    return random.Random(seed).randbytes(size)


def digest(data):
    return hashlib.sha256(data).hexdigest()


def write_tree(fs, count, size, seed=0):
    """count files of `size` random bytes; returns {name: sha256}."""
    made = {}
    for i in range(count):
        data = blob(seed * 100000 + i, size)
        name = f"f{seed}-{i}"
        write_file(fs.path(name), data)
        made[name] = digest(data)
    return made


def check_tree(fs, made):
    for name, want in made.items():
        assert digest(read_file(fs.path(name))) == want, name


def status(fs):
    return fs.status()


def region_state(st, name):
    for r in st["region_state"]:
        if r["name"] == name:
            return r
    raise AssertionError(f"no region {name} in status: {st}")


def test_nothing_readable_leaves_the_machine(phifs):
    text = (MARKER + b" patient letter\n") * 4000
    os.mkdir(phifs.path(MARKER.decode()))
    write_file(phifs.path(MARKER.decode(), MARKER.decode() + ".txt"), text)
    write_file(phifs.path("small"), MARKER)
    os.setxattr(phifs.path("small"), "user.note", MARKER)
    sync(phifs)
    for root in (phifs.region_dir_a, phifs.region_dir_b):
        files = region_files(root)
        assert objects(root), f"nothing in {root}"
        for name, data in files.items():
            assert MARKER.decode() not in name
            assert MARKER not in data, f"marker in {name}"
    assert objects(phifs.region_dir_a) == objects(phifs.region_dir_b)


def test_state_xattr_and_status(phifs):
    write_file(phifs.path("f"), blob(1, 3 * MiB))
    assert os.getxattr(phifs.path("f"), "user.phifs.state") == b"dirty"
    assert "user.phifs.state" not in os.listxattr(phifs.path("f"))
    sync(phifs)
    assert os.getxattr(phifs.path("f"), "user.phifs.state") == \
        b"replicated"
    st = phifs.wait_status(lambda s: s["dirty_bytes"] == 0)
    assert st["dirty_bytes"] == 0
    assert st["sealed_objects"] == 0
    assert st["resident_blocks"] == 3
    for name in ("a", "b"):
        r = region_state(st, name)
        assert r["waiting"] == 0 and not r["down"], r
    # cp -a does not carry it over, and it cannot be set
    subprocess.run(["cp", "-a", phifs.path("f"), phifs.path("g")],
                   check=True)
    assert "user.phifs.state" not in os.listxattr(phifs.path("g"))
    try:
        os.setxattr(phifs.path("f"), "user.phifs.state", b"replicated")
        raise AssertionError("user.phifs.state could be set")
    except PermissionError:
        pass


def test_working_set_larger_than_cache(phifs_bare):
    fs = phifs_bare
    small_cache(fs, "6M")
    made = {}
    for round_ in range(4):             # 4 x 4 MiB through a 6 MiB cache
        made.update(write_tree(fs, 4, MiB, seed=round_))
        sync(fs)
    st = fs.wait_status(lambda s: s["evicted_blocks"] > 0)
    assert st["evicted_blocks"] > 0, st
    assert st["used_bytes"] <= 6 * MiB, st
    check_tree(fs, made)                # fetched back from the regions
    check_tree(fs, made)
    fs.remount()
    check_tree(fs, made)


def test_region_a_deleted_then_corrupted(phifs_bare):
    fs = phifs_bare
    small_cache(fs, "4M")
    made = write_tree(fs, 12, MiB)
    sync(fs)
    fs.umount()
    # A loses every data object: reads fail over to B
    for name in objects(fs.region_dir_a):
        os.unlink(os.path.join(fs.region_dir_a, name))
    fs.mount()
    check_tree(fs, made)
    fs.umount()
    # B is fine, A gets them back but damaged: still readable
    shutil.rmtree(fs.region_dir_a)
    shutil.copytree(fs.region_dir_b, fs.region_dir_a)
    for name in objects(fs.region_dir_a):
        p = os.path.join(fs.region_dir_a, name)
        data = bytearray(read_file(p))
        data[len(data) // 2] ^= 0xFF
        write_file(p, bytes(data))
    fs.mount()
    write_tree(fs, 6, MiB, seed=9)      # pressure evicts the first files
    sync(fs)
    check_tree(fs, made)
    st = fs.status()
    assert region_state(st, "a")["bad"] > 0, st
    assert region_state(st, "b")["bad"] == 0, st


def test_region_a_fails_during_writes_and_catches_up(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.set_faults("a", "fail_all")
    fs.mount()
    made = write_tree(fs, 10, MiB // 2)
    p = sync(fs, timeout=5, check=False)
    assert p.returncode != 0
    assert "a" in p.stderr or "a" in p.stdout
    # b may still be taking the last of it on a slow machine: wait
    st = fs.wait_status(lambda st: region_state(st, "a")["waiting"] > 0 and
                        region_state(st, "b")["waiting"] == 0)
    assert region_state(st, "a")["waiting"] > 0, st
    assert region_state(st, "b")["waiting"] == 0, st
    assert not objects(fs.region_dir_a)
    fs.set_faults("a", None)
    sync(fs)
    assert objects(fs.region_dir_a) == objects(fs.region_dir_b)
    st = fs.status()
    assert region_state(st, "a")["waiting"] == 0, st
    check_tree(fs, made)


def test_kill9_during_uploads_resumes(phifs_bare):
    fs = phifs_bare
    small_config(fs, "8M")
    fs.mkfs()
    fs.set_faults("a", "latency_ms=300 put")
    fs.set_faults("b", "latency_ms=300 put")
    fs.mount()
    made = write_tree(fs, 30, 256 * 1024)
    sync(fs, timeout=1, check=False)    # seal now; uploads under way
    fs.kill9()
    fs.set_faults("a", None)
    fs.set_faults("b", None)
    fs.mount()
    sync(fs)
    a, b = objects(fs.region_dir_a), objects(fs.region_dir_b)
    assert a and a == b
    # push the files out of the 8 MiB cache, then read them from the regions
    write_tree(fs, 8, MiB, seed=7)
    sync(fs)
    check_tree(fs, made)


def flip_objects(root, prefix):
    """Damage every object of a region under prefix in the middle."""
    for name in objects(root):
        if name.startswith(prefix):
            p = os.path.join(root, name)
            data = bytearray(read_file(p))
            data[len(data) // 2] ^= 0xFF
            write_file(p, bytes(data))


def test_repaired_copies_leave_the_bad_count(phifs_bare):
    fs = phifs_bare
    small_cache(fs, "4M")
    made = write_tree(fs, 12, MiB)
    sync(fs)
    fs.umount()
    flip_objects(fs.region_dir_a, "d/")
    fs.mount()
    check_tree(fs, made)                # fetched from b, a is recorded
    st = fs.status()
    assert region_state(st, "a")["bad"] > 0, st
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    # the mount looks at the copies it recorded again
    st = fs.wait_status(lambda s: region_state(s, "a")["bad"] == 0)
    assert region_state(st, "a")["bad"] == 0, st
    # and once more with the filesystem not mounted
    write_tree(fs, 6, MiB, seed=5)      # pushes the first files out
    sync(fs)
    fs.umount()
    flip_objects(fs.region_dir_a, "d/")
    fs.mount()
    check_tree(fs, made)
    fs.umount()
    assert region_state(fs.status(), "a")["bad"] > 0
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    st = fs.status()
    assert region_state(st, "a")["bad"] == 0, st


def test_a_region_that_answers_again_is_up(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.set_faults("a", "fail_all")
    fs.mount()
    write_tree(fs, 3, MiB)
    p = sync(fs, timeout=5, check=False)
    assert p.returncode == 1
    st = fs.wait_status(lambda s: region_state(s, "a")["down"])
    assert region_state(st, "a")["down"], st
    fs.umount()
    # region a is back and repaired while nothing is mounted
    fs.set_faults("a", None)
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    st = fs.status()
    assert not region_state(st, "a")["down"], st
    assert region_state(st, "a")["fails"] == 0, st


def test_mount_reseeds_an_emptied_region(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    made = write_tree(fs, 6, MiB)
    sync(fs)
    fs.umount()
    want = objects(fs.region_dir_b)
    size = sum(os.path.getsize(os.path.join(fs.region_dir_b, k))
               for k in want | {"superblock"})
    empty_dir(fs.region_dir_a)
    # region a answers but takes nothing yet: the copy cannot start
    fs.set_faults("a", "fail_all put")
    fs.mount()
    st = fs.wait_status(
        lambda s: (region_state(s, "a")["seed"] or {}).get("objects_total"))
    a = region_state(st, "a")
    assert a["complete"] is False, a
    assert a["seed"] == {"objects": 0, "objects_total": len(want) + 1,
                         "bytes": 0, "bytes_total": size}, (a, want)
    assert region_state(st, "b")["complete"] is True
    assert region_state(st, "b")["seed"] is None
    p = fs.run("status", fs.config)
    assert re.search(rf"region +a .* being filled from the other regions: "
                     rf"0 of {len(want) + 1} objects", p.stdout), p.stdout
    p = sync(fs, timeout=3, check=False)
    assert p.returncode == 1 and "region a" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(fs.region_dir_a, "superblock"))
    # region a takes objects again: sync waits until it holds them all
    fs.set_faults("a", None)
    sync(fs)
    st = fs.status()
    assert region_state(st, "a")["complete"] is True, st
    assert region_state(st, "a")["seed"] is None, st
    assert objects(fs.region_dir_a) == objects(fs.region_dir_b)
    assert want <= objects(fs.region_dir_a)
    assert read_file(os.path.join(fs.region_dir_a, "superblock")) == \
        read_file(os.path.join(fs.region_dir_b, "superblock"))
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    # region a alone holds the whole filesystem again
    fs.umount()
    empty_dir(fs.region_dir_b)
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    p = fs.run("recover", fs.config, "--region", "a")
    assert p.returncode == 0, p.stderr
    fs.mount()
    check_tree(fs, made)


def test_a_new_region_is_filled(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    made = write_tree(fs, 4, MiB)
    sync(fs)
    fs.umount()
    region_c = os.path.join(fs.base, "region-c")
    os.mkdir(region_c)
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text + f"\n[region c]\nurl = dir:{region_c}\n")
    fs.mount()
    write_tree(fs, 2, MiB, seed=1)
    sync(fs)
    st = fs.status()
    assert region_state(st, "c")["complete"] is True, st
    assert objects(region_c) == objects(fs.region_dir_a)
    assert objects(region_c) == objects(fs.region_dir_b)
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    check_tree(fs, made)


def local_store_bytes(fs):
    """What the cache's local store takes on the disk: the data files and
    the sealed objects waiting for upload (not LMDB, not journals)."""
    total = 0
    for sub in ("data", "packs"):
        for d, _, files in os.walk(os.path.join(fs.cache_dir, sub)):
            for f in files:
                try:
                    total += os.lstat(os.path.join(d, f)).st_blocks * 512
                except FileNotFoundError:
                    pass        # a pack deleted once both regions had it
    return total


@pytest.mark.parametrize("fsync_midway", [False, True],
                         ids=["one-open", "fsync-midway"])
def test_file_four_times_the_cache_in_one_open(phifs_bare, fsync_midway):
    """A file larger than cache_size is written in one open, sequentially:
    its blocks are sealed, replicated and evicted while it is still open,
    so only what is not in every region yet is bounded by the cache."""
    fs = phifs_bare
    small_cache(fs, "16M")
    data = blob(64, 64 * MiB)
    most = 0
    fd = os.open(fs.path("big"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 0o644)
    try:
        for off in range(0, len(data), MiB):
            view = memoryview(data)[off:off + MiB]
            while view:
                view = view[os.write(fd, view):]
            if fsync_midway and off == 32 * MiB:
                os.fsync(fd)
            most = max(most, local_store_bytes(fs))
    finally:
        os.close(fd)
    most = max(most, local_store_bytes(fs))
    assert most <= 16 * MiB, f"the local store reached {most} bytes"
    sync(fs)
    st = fs.wait_status(lambda s: s["evicted_blocks"] > 0)
    assert st["evicted_blocks"] > 0, st
    assert st["used_bytes"] <= 16 * MiB, st
    assert digest(read_file(fs.path("big"))) == digest(data)
    fs.remount()
    assert digest(read_file(fs.path("big"))) == digest(data)
    for region in ("a", "b"):
        dest = os.path.join(fs.base, f"restore-{region}")
        os.mkdir(dest)
        p = fs.run("restore", fs.config, "/", dest, "--region", region,
                   timeout=300)
        assert p.returncode == 0, \
            f"restore --region {region} exited {p.returncode}: " \
            f"{p.stderr.strip()}"
        assert digest(read_file(os.path.join(dest, "big"))) == \
            digest(data), f"region {region}"
        shutil.rmtree(dest)
