"""fsck, scrub and repair, and gc, through the phifs command.

Two dir: regions; the damage is done by hand to the region folders.
"""

import os
import re
import time

from conftest import empty_dir, read_file, write_file


def sync(fs, timeout=120):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    assert p.returncode == 0, f"sync: {p.stderr}\n{fs.log_tail()}"


def objects(root, prefix):
    out = []
    top = os.path.join(root, prefix)
    for d, _, files in os.walk(top):
        out += [os.path.join(d, f) for f in files]
    return sorted(out)


def flip(path, at=60):
    with open(path, "r+b") as f:
        f.seek(min(at, os.path.getsize(path) - 1))
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))


def test_fsck_clean_while_mounted(phifs):
    os.makedirs(phifs.path("a", "b"))
    write_file(phifs.path("a", "b", "f"), b"x" * 5000)
    os.link(phifs.path("a", "b", "f"), phifs.path("a", "g"))
    os.symlink("b/f", phifs.path("a", "l"))
    os.rename(phifs.path("a", "b"), phifs.path("c"))
    sync(phifs)
    p = phifs.run("fsck", phifs.config)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "metadata: 0 problems" in p.stdout


def test_scrub_finds_damage_and_repair_mends_it(phifs):
    for i in range(5):
        write_file(phifs.path(f"f{i}"), os.urandom(300_000))
    sync(phifs)
    p = phifs.run("fsck", phifs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    # region a loses a pack, region b gets a damaged metadata object
    packs = objects(phifs.region_dir_a, "d")
    metas = objects(phifs.region_dir_b, "m")
    assert packs and metas
    os.unlink(packs[0])
    flip(metas[-1])
    p = phifs.run("fsck", phifs.config, "--scrub")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "region a:" in p.stdout and "is missing" in p.stdout
    assert "region b:" in p.stdout and "fails authentication" in p.stdout
    p = phifs.run("fsck", phifs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "repaired" in p.stdout
    p = phifs.run("fsck", phifs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr


def test_damaged_metadata_is_not_trusted_by_recover(phifs_factory):
    fs = phifs_factory()
    write_file(fs.path("f"), b"hello")
    sync(fs)
    for m in objects(fs.region_dir_b, "m"):
        flip(m)
    other = phifs_factory(mounted=False, tag="rec")
    with open(fs.config) as f:
        text = f.read()
    other.write_config(text.replace(fs.cache_dir, other.cache_dir))
    p = other.run("recover", other.config, "--region", "b")
    assert p.returncode != 0
    assert not os.path.exists(os.path.join(other.cache_dir, "meta"))
    p = other.run("recover", other.config, "--region", "a")
    assert p.returncode == 0, p.stderr


def test_gc_drops_what_retention_no_longer_needs(phifs_bare):
    fs = phifs_bare
    with open(fs.config) as f:
        text = f.read()
    text = text.replace("[filesystem]\n",
                        "[filesystem]\nretention = 3s\n", 1)
    fs.write_config(text)
    fs.mkfs()
    fs.mount()
    for i in range(6):                  # a history of versions
        write_file(fs.path("note"), f"version {i}".encode() * 1000)
        sync(fs)
    time.sleep(4)                       # all of it past retention
    write_file(fs.path("note"), b"the last version")
    sync(fs)
    before = objects(fs.region_dir_a, "")
    p = fs.run("gc", fs.config, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "would delete" in p.stdout
    assert objects(fs.region_dir_a, "") == before
    p = fs.run("gc", fs.config)
    assert p.returncode == 0, p.stderr
    m = re.search(r"deleted (\d+) metadata objects, (\d+) packs", p.stdout)
    assert m and int(m.group(1)) > 0, p.stdout
    after = objects(fs.region_dir_a, "")
    assert len(after) < len(before)
    # what is kept still restores, and the mount goes on
    dest = os.path.join(fs.base, "restored")
    os.mkdir(dest)
    p = fs.run("restore", fs.config, "note", dest)
    assert p.returncode == 0, p.stderr
    assert read_file(os.path.join(dest, "note")) == b"the last version"
    write_file(fs.path("after-gc"), b"still works")
    sync(fs)
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr


def region_objects(root):
    """Every object of a region but its lease objects, which each region
    gets on its own from the mount that writes them."""
    return {os.path.relpath(p, root) for p in objects(root, "")
            if not os.path.relpath(p, root).startswith("l/")}


def test_repair_refills_an_emptied_region(phifs):
    fs = phifs
    for i in range(4):
        write_file(fs.path(f"f{i}"), os.urandom(200_000))
    sync(fs)
    fs.umount()
    want = region_objects(fs.region_dir_b)
    assert "superblock" in want and any(k.startswith("m/") for k in want)
    empty_dir(fs.region_dir_a)
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "region a: superblock is missing" in p.stdout, p.stdout
    # a region that takes nothing cannot be repaired: say so, exit 1
    fs.set_faults("a", "fail_all put")
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "superblock" not in region_objects(fs.region_dir_a)
    fs.set_faults("a", None)
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert region_objects(fs.region_dir_a) == want
    assert read_file(os.path.join(fs.region_dir_a, "superblock")) == \
        read_file(os.path.join(fs.region_dir_b, "superblock"))
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    # region a alone is enough again: the mount takes it, and b can go
    empty_dir(fs.region_dir_b)
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    fs.mount()
    for i in range(4):
        assert len(read_file(fs.path(f"f{i}"))) == 200_000
