"""Long-running behaviour of one daemon: its memory stays bounded.

A clinic's daemon runs for months.  Issue 8 found one that grew from 7 MB
to 78 MB over 104,000 operations and kept it after `phifs sync`, while a
fresh daemon serving the same files needed 13 MB.  These tests run the same
kind of workload (files created, written, read back, many of them unlinked
again) and measure the daemon's own memory (RssAnon in /proc/PID/status:
its heap, not the mapped LMDB file nor the binary).

The bounds are generous: they leave room for the buffers a busy daemon
keeps (a FUSE request buffer per thread, the sealer's pack) and for the
allocator's slack, and catch only memory that grows with the work done.
"""

import os
import random
import time

import pytest

from conftest import PHIFS, read_file, write_file

MiB = 1 << 20

SOAK_CONFIG = """\
[filesystem]
cache_dir = {cache_dir}
cache_size = 20G
block_size = 64K
key_file = {key_file}
seal_delay = 1s

[region a]
url = dir:{region_dir_a}

[region b]
url = dir:{region_dir_b}
"""


def sanitized():
    """An AddressSanitizer build keeps freed memory in quarantine: its
    sizes say nothing about ours."""
    with open(PHIFS, "rb") as f:
        return b"__asan_init" in f.read()


@pytest.fixture
def soak_fs(phifs_bare):
    if sanitized():
        pytest.skip("memory sizes of an AddressSanitizer build")
    fs = phifs_bare
    fs.write_config(SOAK_CONFIG.format(cache_dir=fs.cache_dir,
                                       key_file=fs.key_file,
                                       region_dir_a=fs.region_dir_a,
                                       region_dir_b=fs.region_dir_b))
    fs.mkfs()
    fs.mount()
    return fs


def heap_kb(pid):
    """The daemon's anonymous resident memory, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError(f"no RssAnon in /proc/{pid}/status")


def settled_heap_kb(fs):
    """RssAnon once everything written is in every region and the
    daemon has had a moment to drop what that took."""
    fs.run("sync", fs.config, check=True)
    time.sleep(1.0)
    return heap_kb(fs.pid)


def one_round(fs, r, files, rng):
    """Save `files` files of up to 300 KiB (several blocks each), read each
    back, unlink half of them again.  Returns the names kept."""
    d = fs.path(f"round-{r:02d}")
    os.mkdir(d)
    kept = []
    for i in range(files):
        p = os.path.join(d, f"rec-{i:05d}.dcm")
        data = rng.randbytes(rng.randrange(1, 300 << 10))
        write_file(p, data)
        assert read_file(p) == data, f"{p} reads back other content"
        if i % 2:
            os.unlink(p)
        else:
            kept.append(p)
    return kept


def test_daemon_memory_bounded_over_rounds(soak_fs):
    """After a warm-up round, more rounds of the same work must not keep
    adding memory, and after `phifs sync` the daemon must need little more
    than a fresh daemon that serves the same files."""
    fs = soak_fs
    rng = random.Random(8)
    files, rounds = 800, 5
    kept = one_round(fs, 0, files, rng)
    warm = settled_heap_kb(fs)
    for r in range(1, rounds + 1):
        kept += one_round(fs, r, files, rng)
    after = settled_heap_kb(fs)
    fs.remount()
    for p in kept:          # the kernel knows every file again
        os.stat(p)
    fresh = heap_kb(fs.pid)
    worked = f"warm-up {warm} KiB, after {rounds} more rounds of " \
             f"{files} files {after} KiB, a fresh daemon serving the " \
             f"same {len(kept)} files {fresh} KiB"
    # 400 files kept per round: what a node of a file the kernel
    # remembers costs, with room to spare
    assert after - warm <= 6 * 1024, f"memory keeps growing: {worked}"
    assert after - fresh <= 12 * 1024, \
        f"memory not given back after sync: {worked}"


def metadata_objects(region_dir):
    """Journal segments and snapshots a dir: region holds (keys m/...)."""
    n = 0
    for _, _, names in os.walk(os.path.join(region_dir, "m")):
        n += len(names)
    return n


def test_reading_evicted_files_sends_nothing(phifs_bare):
    """Reading files back from the regions into a small cache fills the
    cache, but changes nothing the regions must hear of: after a sync,
    reading every file and syncing again writes no new metadata object.
    (Issue 8: each file read made a journal record, and 15,600 of them
    made `sync` and `umount` take seconds.)"""
    fs = phifs_bare
    # The audit trail off: with it on, the reads' open and release events
    # are sealed into a/ segments at the next metadata send, and a
    # metadata object binds the chain's head (issue 12), one per send
    # however many files were read; this case is about the journal, which
    # reads must leave alone.
    fs.write_config(SOAK_CONFIG.replace("cache_size = 20G", "cache_size = 4M")
                    .replace("seal_delay = 1s", "seal_delay = 1s\naudit = off")
                    .format(cache_dir=fs.cache_dir, key_file=fs.key_file,
                            region_dir_a=fs.region_dir_a,
                            region_dir_b=fs.region_dir_b))
    fs.mkfs()
    fs.mount()
    rng = random.Random(3)
    files = {}
    for i in range(300):
        files[fs.path(f"scan-{i:04d}.pdf")] = rng.randbytes(
            rng.randrange(40 << 10, 100 << 10))
    for p, data in files.items():
        write_file(p, data)
    fs.run("sync", fs.config, check=True)
    # twice: the first sync's own records may still be on their way
    fs.run("sync", fs.config, check=True)
    before = metadata_objects(fs.region_dir_a)
    # eviction is the daemon's, in the background
    evicted = fs.wait_status(lambda s: s["evicted_blocks"] > 0)[
        "evicted_blocks"]
    assert evicted > 0, "nothing was evicted: the reads would not fetch"
    for p, data in files.items():
        assert read_file(p) == data, f"{p} reads back other content"
    fs.run("sync", fs.config, check=True)
    st = fs.status()
    after = metadata_objects(fs.region_dir_a)
    assert after == before, \
        f"reading {len(files)} files made {after - before} metadata " \
        f"object(s) to upload"
    assert st["dirty_blocks"] == 0 and st["sync_waiting"] == 0, st
