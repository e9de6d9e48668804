"""What a stolen cache_dir gives away: the local store (cache_dir/data)
holds no content in the clear, mounted or not, with local_seal on (the
default); local_seal off turns it plain, and on again seals it, with
nothing lost either way.

The metadata in LMDB (cache_dir/meta: names, link targets, xattrs) is
not sealed yet; these tests look at the blocks only.
"""

import os

from conftest import read_file, write_file

MARK = "PatientMarker-Q7X2"
ENCODINGS = ("ascii", "utf-16-le", "utf-16-be")


def marked(n):
    """n bytes of text carrying MARK in every encoding."""
    unit = b"".join(f"{MARK} record line {i}\n".encode(e)
                    for i, e in enumerate(ENCODINGS))
    return (unit * (n // len(unit) + 1))[:n]


def holders(root):
    """The files under root whose bytes hold MARK in any encoding."""
    needles = [MARK.encode(e) for e in ENCODINGS]
    found = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
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
    return want


def check(fs, want):
    for name, data in want.items():
        assert read_file(fs.path(name)) == data, name


def test_local_blocks_hold_no_content(phifs):
    fs = phifs
    data_dir = os.path.join(fs.cache_dir, "data")
    want = write_marked_tree(fs)
    # mounted, before and after sealing for the regions
    assert holders(data_dir) == []
    fs.run("sync", fs.config, check=True)
    assert holders(data_dir) == []
    fs.umount()
    assert holders(data_dir) == []
    st = fs.status()
    assert st["local_sealed"] is True, st
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
    assert holders(data_dir) != []      # this test's own files, plain
    assert fs.status()["local_sealed"] is False
    fs.umount()
    fs.write_config(text)
    fs.mount()
    check(fs, want)
    assert holders(data_dir) == []
    assert fs.status()["local_sealed"] is True
