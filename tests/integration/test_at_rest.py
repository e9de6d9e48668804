"""What a stolen cache_dir gives away: with local_seal on (the default)
not one file under it holds a marker written into file and folder names,
contents, xattr names and values and symlink targets, in ASCII or UTF-16,
mounted (but LMDB's lock file) or not; local_seal off turns the store
plain (so the search itself is shown to work), and on again seals it,
with nothing lost either way.
"""

import fcntl
import json
import os

from conftest import read_file, write_file

MARK = "PatientMarker-Q7X2"
ENCODINGS = ("ascii", "utf-16-le", "utf-16-be")


def marked(n):
    """n bytes of text carrying MARK in every encoding."""
    unit = b"".join(f"{MARK} record line {i}\n".encode(e)
                    for i, e in enumerate(ENCODINGS))
    return (unit * (n // len(unit) + 1))[:n]


def holders(root, skip=()):
    """The files under root (but those named in skip) whose bytes hold
    MARK in any encoding."""
    needles = [MARK.encode(e) for e in ENCODINGS]
    found = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.relpath(p, root) in skip:
                continue
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                data = fh.read()
            if any(n in data for n in needles):
                found.append(os.path.relpath(p, root))
    return found


def write_marked_tree(fs):
    """Files of several shapes: small, partial sectors, large, rewritten
    in place, cut; the content each should read."""
    want = {}
    want["letter.txt"] = marked(3000)
    want["scan.bin"] = marked(3 * 1024 * 1024 + 77)
    for name, data in want.items():
        write_file(fs.path(name), data)
    # a rewrite in the middle of a sector, and a cut inside one
    with open(fs.path("scan.bin"), "r+b") as f:
        f.seek(5000)
        f.write(marked(900))
        f.truncate(2 * 1024 * 1024 + 5)
    data = bytearray(want["scan.bin"])
    data[5000:5900] = marked(900)
    want["scan.bin"] = bytes(data[:2 * 1024 * 1024 + 5])
    # names, an xattr's name and value, a link's target
    folder = f"Doe^Jane {MARK}"
    os.mkdir(fs.path(folder))
    note = f"{folder}/{MARK} letter.txt"
    want[note] = marked(100)
    write_file(fs.path(note), want[note])
    os.setxattr(fs.path(note), f"user.{MARK}", marked(200))
    os.symlink(f"../{MARK}/target", fs.path(f"{folder}/link"))
    return want


def check(fs, want):
    for name, data in want.items():
        assert read_file(fs.path(name)) == data, name
    folder = f"Doe^Jane {MARK}"
    note = fs.path(f"{folder}/{MARK} letter.txt")
    assert os.getxattr(note, f"user.{MARK}") == marked(200)
    assert os.readlink(fs.path(f"{folder}/link")) == f"../{MARK}/target"


LOCK = os.path.join("meta", "lock.mdb")


def test_cache_dir_holds_no_marker(phifs):
    fs = phifs
    want = write_marked_tree(fs)
    # mounted, before and after sealing for the regions
    os.sync()
    assert holders(fs.cache_dir, skip=(LOCK,)) == []
    fs.run("sync", fs.config, check=True)
    assert holders(fs.cache_dir, skip=(LOCK,)) == []
    fs.umount()
    assert holders(fs.cache_dir) == []
    st = fs.status()
    assert st["local_sealed"] is True, st
    assert MARK not in json.dumps(st)
    fs.mount()
    check(fs, want)


def test_local_seal_off_and_on_again_keeps_everything(phifs):
    fs = phifs
    data_dir = os.path.join(fs.cache_dir, "data")
    want = write_marked_tree(fs)
    fs.umount()
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("[filesystem]\n",
                                 "[filesystem]\nlocal_seal = off\n"))
    fs.mount()
    check(fs, want)
    os.sync()
    # this test's own files, plain: contents and names alike
    assert holders(data_dir) != []
    assert os.path.join("meta", "data.mdb") in holders(fs.cache_dir)
    assert fs.status()["local_sealed"] is False
    fs.umount()
    fs.write_config(text)
    fs.mount()
    check(fs, want)
    fs.umount()
    # sealing again rewrote data.mdb without the pages that held names
    assert holders(fs.cache_dir) == []
    assert fs.status()["local_sealed"] is True
    fs.mount()
    check(fs, want)


def test_rewrite_of_the_metadata_file_waits_for_other_readers(phifs):
    """Sealing rewrites data.mdb without its free pages, but never under
    a process that has it open (a status, an audit query): it waits for
    an open that finds none, and nothing is lost meanwhile."""
    fs = phifs
    with open(fs.config) as f:
        text = f.read()
    fs.umount()
    fs.write_config(text.replace("[filesystem]\n",
                                 "[filesystem]\nlocal_seal = off\n"))
    fs.mount()
    want = write_marked_tree(fs)
    fs.umount()
    fs.write_config(text)
    lock = os.path.join(fs.cache_dir, LOCK)
    # another reader of the environment: LMDB's shared lock on byte 0
    with open(lock, "r+b") as held:
        fcntl.lockf(held, fcntl.LOCK_SH, 1, 0, os.SEEK_SET)
        fs.mount()
        check(fs, want)
        fs.umount()
        assert REWRITTEN not in last_log(fs)
        fcntl.lockf(held, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)
    fs.mount()
    check(fs, want)
    fs.umount()
    assert REWRITTEN in last_log(fs)
    assert holders(fs.cache_dir) == []
    fs.mount()


REWRITTEN = "metadata file rewritten without its free pages"


def last_log(fs):
    """What the daemon of the last mount logged."""
    with open(os.path.join(fs.base, f"daemon-{fs.mount_count}.log")) as f:
        return f.read()
