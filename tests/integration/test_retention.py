"""Retention rules and legal holds: what gc must keep, and what it may not.

Two dir: regions, retention = 3s, so that history falls out of the
filesystem's retention within a test; the rules and holds then decide.
Each version is synced on its own, so that it sits in packs of its own.
"""

import json
import os
import re
import time

from conftest import read_file, write_file


def sync(fs, timeout=120):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    assert p.returncode == 0, f"sync: {p.stderr}\n{fs.log_tail()}"


def configure(fs, rules=""):
    with open(fs.config) as f:
        text = f.read()
    text = text.replace("[filesystem]\n", "[filesystem]\nretention = 3s\n", 1)
    fs.write_config(text + rules)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % int((t % 1) * 1000)


def versions_of(fs, path, n):
    """Write n versions of path, each synced alone; the moment after
    each (to give restore --at)."""
    moments = []
    for i in range(n):
        write_file(fs.path(*path.strip("/").split("/")),
                   f"{path} version {i}\n".encode() * 500)
        sync(fs)
        moments.append(time.time())
        time.sleep(0.05)
    return moments


def snapshot_now(fs):
    """Make the next metadata object a snapshot: one comes once the
    segments since the last outweigh it, so a large xattr is set and
    removed.  gc keeps every moment from the last snapshot before
    retention on; this one fixes which that is."""
    pad = fs.path("pad")
    if not os.path.exists(pad):
        write_file(pad, b"")
    os.setxattr(pad, "user.pad", os.urandom(48 * 1024))
    sync(fs)
    os.removexattr(pad, "user.pad")
    sync(fs)


def restore(fs, path, at):
    dest = os.path.join(fs.base, "restored-%d" % time.monotonic_ns())
    os.mkdir(dest)
    p = fs.run("restore", fs.config, path, dest, "--at", iso(at))
    name = os.path.join(dest, os.path.basename(path))
    if p.returncode == 0:
        return read_file(name), p
    return None, p


def gc(fs):
    p = fs.run("gc", fs.config)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"deleted (\d+) metadata objects, (\d+) packs", p.stdout)
    assert m, p.stdout
    return int(m.group(2)), p.stdout


def test_gc_keeps_what_a_retention_rule_protects_and_deletes_the_rest(
        phifs_bare):
    fs = phifs_bare
    configure(fs, "\n[retention]\n/Patients = 1h\n/Scratch = 1s\n")
    fs.mkfs()
    fs.mount()
    os.makedirs(fs.path("Patients", "anna"))
    os.makedirs(fs.path("Scratch"))
    chart = versions_of(fs, "/Patients/anna/chart", 3)
    letter = versions_of(fs, "/letter", 3)
    scratch = versions_of(fs, "/Scratch/tmp", 2)
    # a file deleted from a protected folder is a version that ended too
    write_file(fs.path("Patients", "anna", "gone"), b"deleted later\n")
    sync(fs)
    gone = time.time()
    os.unlink(fs.path("Patients", "anna", "gone"))
    sync(fs)
    snapshot_now(fs)
    time.sleep(4)                       # all of it past retention
    for p in ("Patients/anna/chart", "letter", "Scratch/tmp"):
        write_file(fs.path(*p.split("/")), b"the last version\n")
    sync(fs)
    deleted, out = gc(fs)
    # letter 0 and 1, tmp 0 go; chart 0 and 1 and gone stay
    assert deleted == 3 * 2, out        # in each of the two regions
    m = re.search(r"^kept (\d+) packs for versions that retention rules "
                  r"and legal holds protect$", out, re.M)
    assert m and int(m.group(1)) == 3 * 2, out
    for i, t in enumerate(chart):
        data, p = restore(fs, "/Patients/anna/chart", t)
        assert data == f"/Patients/anna/chart version {i}\n".encode() * 500, \
            p.stderr
    data, p = restore(fs, "/Patients/anna/gone", gone)
    assert data == b"deleted later\n", p.stderr
    for path, t in (("/letter", letter[0]), ("/Scratch/tmp", scratch[0])):
        data, p = restore(fs, path, t)
        assert data is None, f"{path}: an old version was kept"
    p = fs.run("versions", fs.config, "/Patients/anna/chart")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) >= 4, p.stdout
    # what is current is whole, and a second gc finds nothing more to do
    assert read_file(fs.path("letter")) == b"the last version\n"
    deleted, out = gc(fs)
    assert deleted == 0, out
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_legal_hold_keeps_everything_under_it_until_removed(phifs_bare):
    fs = phifs_bare
    configure(fs)
    fs.mkfs()
    fs.mount()
    os.makedirs(fs.path("Patients", "bob"))
    bob = versions_of(fs, "/Patients/bob/scan", 2)
    snapshot_now(fs)
    time.sleep(4)
    write_file(fs.path("Patients", "bob", "scan"), b"the last version\n")
    sync(fs)
    p = fs.run("hold", "add", fs.config, "/Patients/bob", "--reason",
               "Case 2026-17, asked by counsel")
    assert p.returncode == 0, p.stderr
    m = re.match(r"hold ([0-9a-f]{8}) placed on /Patients/bob, in 2 of 2 "
                 r"regions$", p.stdout.strip())
    assert m, p.stdout
    hid = m.group(1)
    p = fs.run("hold", "list", fs.config)
    assert p.returncode == 0, p.stderr
    assert re.search(rf"^{hid}  /Patients/bob  until removed  placed "
                     r"\S+Z by root \(uid 0\) on \S+: Case 2026-17, asked "
                     r"by counsel$", p.stdout, re.M), p.stdout
    # the hold is sealed: its text is in no region in the clear
    for root in (fs.region_dir_a, fs.region_dir_b):
        for d, _, files in os.walk(root):
            for f in files:
                assert b"2026-17" not in read_file(os.path.join(d, f))
    # versions reaches every moment the hold keeps, retention or not
    p = fs.run("versions", fs.config, "/Patients/bob/scan")
    assert p.returncode == 0, p.stderr
    held = p.stdout.splitlines()
    assert len(held) == 3, p.stdout     # version 0, 1 and the last
    deleted, out = gc(fs)
    assert deleted == 0, out
    assert re.search(r"^kept 2 packs for versions", out, re.M), out
    data, p = restore(fs, "/Patients/bob/scan", bob[0])
    assert data == b"/Patients/bob/scan version 0\n" * 500, p.stderr
    p = fs.run("hold", "remove", fs.config, hid)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"hold {hid} on /Patients/bob removed"
    assert fs.run("hold", "list", fs.config).stdout == "no legal holds\n"
    p = fs.run("versions", fs.config, "/Patients/bob/scan")
    assert p.returncode == 0 and len(p.stdout.splitlines()) < 3, p.stdout
    deleted, out = gc(fs)
    assert deleted == 2, out
    data, p = restore(fs, "/Patients/bob/scan", bob[0])
    assert data is None
    # every hold change, and every gc, is in the audit trail
    p = fs.run("audit", fs.config, "--format", "json")
    assert p.returncode == 0, p.stderr
    trail = [json.loads(line) for line in p.stdout.splitlines()]
    mine = [e for e in trail if e["event"] in ("hold-add", "hold-remove",
                                               "gc")]
    assert [e["event"] for e in mine] == ["hold-add", "gc", "hold-remove",
                                          "gc"], mine
    add, kept, remove, gone = mine
    assert add["path"] == remove["path"] == "/Patients/bob"
    assert f"id={hid}" in add["detail"] and f"id={hid}" in remove["detail"]
    assert "reason=Case 2026-17, asked by counsel" in add["detail"]
    assert all(e["user"] == "root" and e["uid"] == 0 and e["errno"] == 0
               for e in mine), mine
    assert "2 packs kept" in kept["detail"], kept
    assert "2 packs, " in gone["detail"], gone


def test_hold_refuses_bad_input_and_a_silent_region(phifs_bare):
    fs = phifs_bare
    configure(fs)
    fs.mkfs()
    fs.mount()                          # a history for fsck to compare
    write_file(fs.path("f"), b"x")
    sync(fs)
    fs.umount()

    def refused(*args, code=2):
        p = fs.run("hold", *args)
        assert p.returncode == code, p.stdout + p.stderr
        assert p.stdout == "", p.stdout
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        return p.stderr

    assert "--reason" in refused("add", fs.config, "/Patients")
    assert "must start with '/'" in refused("add", fs.config, "Patients",
                                            "--reason", "x")
    assert "plain path" in refused("add", fs.config, "/a/../b",
                                   "--reason", "x")
    assert "not in the future" in refused("add", fs.config, "/a",
                                          "--reason", "x", "--until", "-1h")
    assert "not a hold id" in refused("remove", fs.config, "xyz")
    assert "no legal hold" in refused("remove", fs.config, "0123abcd",
                                      code=1)
    assert "add, list or remove" in refused("place", fs.config)
    # a region that does not answer: nothing placed without --force
    fs.set_faults("a", "fail_all list")
    err = refused("add", fs.config, "/a", "--reason", "x", code=1)
    assert "region a does not answer" in err, err
    fs.set_faults("a", None)
    assert fs.run("hold", "list", fs.config).stdout == "no legal holds\n"
    fs.set_faults("a", "fail_all list")
    p = fs.run("hold", "add", fs.config, "/a", "--reason", "x", "--force")
    assert p.returncode == 1, p.stderr
    assert "in 1 of 2 regions" in p.stdout, p.stdout
    # gc must know every hold: with region a silent it deletes nothing
    p = fs.run("gc", fs.config)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "region a: cannot list its legal holds" in p.stderr, p.stderr
    fs.set_faults("a", None)
    p = fs.run("hold", "list", fs.config)
    assert p.returncode == 0 and "/a  until removed" in p.stdout, p.stdout
    # the scrub finds the hold missing from region a; repair copies it
    holds = lambda root: sorted(os.listdir(os.path.join(root, "h"))) \
        if os.path.isdir(os.path.join(root, "h")) else []
    assert holds(fs.region_dir_a) == [] and len(holds(fs.region_dir_b)) == 1
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 1, p.stdout + p.stderr
    assert re.search(r"^region a: h/[0-9a-f]{32} is missing$", p.stdout,
                     re.M), p.stdout
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert holds(fs.region_dir_a) == holds(fs.region_dir_b)
