"""Disaster recovery from the regions: phifs recover, restore and versions.

The drill: a tree with every kind of entry is written over a mount and
synced; then the machine is "lost" (cache_dir destroyed) and with it one
region, and the filesystem is rebuilt from the other region alone.
Manifests (type, mode, owner, size, mtime in ns, link groups, symlink
targets, user.* xattrs, sha256 of content) taken of the live tree are
compared with what comes back: through a new mount after recover, or as a
folder written by restore.
"""

import hashlib
import itertools
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import (PHIFS, OTHER_GID, OTHER_UID, read_file, write_file)

MiB = 1 << 20


# --- helpers ---------------------------------------------------------------

def set_keys(fs, **keys):
    """Set [filesystem] keys in fs's config (added after seal_delay)."""
    with open(fs.config) as f:
        text = f.read()
    for k, v in keys.items():
        if re.search(rf"^{k} = ", text, re.M):
            text = re.sub(rf"^{k} = .*$", f"{k} = {v}", text, flags=re.M)
        else:
            text = text.replace("seal_delay = 1s\n",
                                f"seal_delay = 1s\n{k} = {v}\n")
    fs.write_config(text)


def sync(fs, timeout=120):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    assert p.returncode == 0, \
        f"phifs sync exited {p.returncode}: {p.stderr.strip()}\n" \
        f"{fs.log_tail()}"


def ok(p, what):
    assert p.returncode == 0, \
        f"phifs {what} exited {p.returncode}: {p.stderr.strip()}"
    return p


def now_iso():
    """Now, as ISO 8601 in UTC with ms."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % int((t % 1) * 1000)


def note_time():
    """A moment strictly between what came before and what comes after."""
    time.sleep(1.1)
    t = now_iso()
    time.sleep(1.1)
    return t


def empty_dir(path):
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(root, nlink=True):
    """{relative path: attributes} of root and everything under it ("."
    is root).  Hard links are grouped by the first path of their inode in
    sorted order; atime and directory link counts are left out."""
    out, first = {}, {}

    def entry(path, rel):
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        e = {"type": kind, "mode": stat.S_IMODE(st.st_mode),
             "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns}
        if kind == stat.S_IFREG:
            e["size"] = st.st_size
            e["sha"] = sha(path)
            e["first"] = first.setdefault((st.st_dev, st.st_ino), rel)
            if nlink:
                e["nlink"] = st.st_nlink
        if kind == stat.S_IFLNK:
            e["target"] = os.readlink(path)
        if kind in (stat.S_IFREG, stat.S_IFDIR):
            e["xattrs"] = {n: os.getxattr(path, n) for n in
                           sorted(os.listxattr(path))
                           if n.startswith("user.")}
        out[rel] = e
        if kind == stat.S_IFDIR:
            for name in sorted(os.listdir(path)):
                entry(os.path.join(path, name),
                      name if rel == "." else f"{rel}/{name}")

    entry(root, ".")
    return out


def same_tree(want, got, skip_root=False):
    """Assert two manifests are equal, naming what differs."""
    keys = set(want) | set(got)
    if skip_root:
        keys.discard(".")
    problems = []
    for k in sorted(keys):
        if k not in got:
            problems.append(f"{k}: missing")
        elif k not in want:
            problems.append(f"{k}: unexpected")
        elif want[k] != got[k]:
            d = {a: (want[k].get(a), got[k].get(a))
                 for a in set(want[k]) | set(got[k])
                 if want[k].get(a) != got[k].get(a)}
            problems.append(f"{k}: {d}")
    assert not problems, "trees differ:\n" + "\n".join(problems[:40])


NS = 1_000_000_000
T_BASE = 1_790_000_000 * NS     # a fixed moment in 2026


def write_tree(root, seed):
    """Nested folders, a 3 MiB file and small ones, a sparse file, hard
    links, symlinks, a fifo, xattrs, modes, owners and ns mtimes."""
    rnd = random.Random(seed)
    anna = os.path.join(root, "patients", "anna")
    scans = os.path.join(anna, "scans")
    bob = os.path.join(root, "patients", "bob")
    os.makedirs(scans)
    os.makedirs(bob)
    os.makedirs(os.path.join(root, "empty"))
    write_file(os.path.join(scans, "ct.bin"), rnd.randbytes(3 * MiB))
    for i in range(12):
        write_file(os.path.join(bob, f"note-{i}.txt"),
                   rnd.randbytes(rnd.randrange(0, 5000)))
    letter = os.path.join(anna, "letter.txt")
    write_file(letter, b"Dear doctor,\n" * 50, mode=0o600)
    os.link(letter, os.path.join(scans, "letter-link"))
    os.link(letter, os.path.join(bob, "anna-letter"))
    with open(os.path.join(anna, "sparse.img"), "wb") as f:
        f.truncate(2 * MiB)
        f.seek(MiB + 100)
        f.write(b"middle")
    os.symlink("scans/ct.bin", os.path.join(anna, "latest"))
    os.symlink("/nowhere/at/all", os.path.join(anna, "dangling"))
    os.mkfifo(os.path.join(bob, "pipe"), 0o640)
    os.setxattr(letter, "user.patient", b"anna")
    os.setxattr(letter, "user.empty", b"")
    os.setxattr(anna, "user.folder", rnd.randbytes(300))
    os.chown(bob, OTHER_UID, OTHER_GID)
    os.chown(os.path.join(bob, "note-3.txt"), OTHER_UID, OTHER_GID)
    os.lchown(os.path.join(anna, "dangling"), OTHER_UID, OTHER_GID)
    os.chmod(os.path.join(bob, "note-4.txt"), 0o4750)
    os.chmod(os.path.join(bob, "note-5.txt"), 0o400)
    os.chmod(scans, 0o750)
    stamp_tree(root, rnd)


def stamp_tree(root, rnd):
    """Distinct ns mtimes on everything, folders last (deepest first)."""
    for d, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            p = os.path.join(d, name)
            t = T_BASE + rnd.randrange(0, 10**6) * NS + rnd.randrange(NS)
            os.utime(p, ns=(t, t), follow_symlinks=False)
    t = T_BASE + 123456789
    os.utime(root, ns=(t, t))


def restore(fs, path, dest, *extra, config=None, check=True):
    p = fs.run("restore", config or fs.config, path, dest, *extra,
               timeout=300)
    if check:
        ok(p, f"restore {path} {dest} {' '.join(extra)}")
    return p


def fresh_dir(fs, name):
    d = os.path.join(fs.base, name)
    os.mkdir(d)
    return d


def second_config(fs, name="cache2"):
    """Another cache_dir (a new machine) with fs's regions and key."""
    cache = fresh_dir(fs, name)
    with open(fs.config) as f:
        text = f.read()
    path = os.path.join(fs.base, f"{name}.ini")
    with open(path, "w") as f:
        f.write(text.replace(f"cache_dir = {fs.cache_dir}\n",
                             f"cache_dir = {cache}\n"))
    return path, cache


def region_objects(root):
    """Every object of a region but lease objects (each region has its
    own)."""
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            k = os.path.relpath(os.path.join(d, f), root)
            if not k.startswith("l/"):
                out.add(k)
    return out


def scratch_left(fs):
    return [n for n in os.listdir(fs.base) if n.startswith(".phifs-")]


# --- the drill -------------------------------------------------------------

def test_full_drill_from_region_b(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    write_tree(fs.mnt, seed=1)
    want = manifest(fs.mnt)
    sync(fs)
    fs.umount()

    # the machine and region A are lost
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    empty_dir(fs.region_dir_a)

    p = ok(fs.run("recover", fs.config, "--region", "b", timeout=300),
           "recover")
    assert re.search(r"^recovered phifs filesystem [0-9a-f]{32} in "
                     rf"{re.escape(fs.cache_dir)} from region b as at "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: \d+ metadata "
                     r"objects? \(.*\), \d+ inodes?, [\d.]+ s$",
                     p.stdout, re.M), p.stdout
    assert "region a held no superblock" in p.stdout
    assert os.path.exists(os.path.join(fs.cache_dir, "superblock"))
    assert os.path.exists(os.path.join(fs.region_dir_a, "superblock"))

    fs.mount()
    same_tree(want, manifest(fs.mnt))
    # the recovered filesystem goes on working and replicating, and the
    # mount fills the emptied region a with everything region b holds
    write_file(fs.path("after.txt"), b"written after the recovery")
    sync(fs)
    assert region_objects(fs.region_dir_a) == \
        region_objects(fs.region_dir_b)
    fs.umount()
    fs.mount()
    assert read_file(fs.path("after.txt")) == b"written after the recovery"


def test_after_a_recover_restore_and_versions_find_the_history(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    write_file(fs.path("chart.txt"), b"the chart")
    sync(fs)
    fs.umount()
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    empty_dir(fs.region_dir_a)
    ok(fs.run("recover", fs.config, "--region", "b"), "recover")
    # region a, first in the config, now holds a superblock and no history
    assert os.listdir(fs.region_dir_a) == ["superblock"]
    dest = fresh_dir(fs, "dest")
    p = restore(fs, "/chart.txt", dest)
    assert read_file(os.path.join(dest, "chart.txt")) == b"the chart"
    # (reads of content fail over from region a, which says so)
    assert re.search(r"^phifs: history read from region b, the one with "
                     r"the latest moment \(\S+Z\)$", p.stderr, re.M), \
        p.stderr
    p = ok(fs.run("versions", fs.config, "/chart.txt"), "versions")
    assert len(p.stdout.splitlines()) == 1 and "size 9" in p.stdout, \
        p.stdout
    assert "from region b" in p.stderr, p.stderr
    # asked for by name, region a still says what it lacks
    p = fs.run("versions", fs.config, "/chart.txt", "--region", "a")
    assert p.returncode == 1 and "region a holds no metadata history" in \
        p.stderr, p.stderr


def test_point_in_time_restore_and_versions(phifs_bare):
    fs = phifs_bare
    set_keys(fs, metadata_interval="2s")
    fs.mkfs()
    fs.mount()
    top = fs.path("patients")
    os.makedirs(os.path.join(top, "sub"))
    write_file(os.path.join(top, "a.txt"), b"a" * 100)
    write_file(os.path.join(top, "b.txt"), b"b" * 2000)
    write_file(os.path.join(top, "sub", "c.bin"),
               random.Random(2).randbytes(200 * 1024))
    os.setxattr(os.path.join(top, "a.txt"), "user.v", b"1")
    sync(fs)
    t1 = note_time()
    m1 = manifest(top)

    write_file(os.path.join(top, "a.txt"), b"A" * 300)
    os.unlink(os.path.join(top, "b.txt"))
    os.rename(os.path.join(top, "sub", "c.bin"),
              os.path.join(top, "sub", "d.bin"))
    write_file(os.path.join(top, "e.txt"), b"new in two")
    os.chmod(os.path.join(top, "e.txt"), 0o640)
    os.setxattr(os.path.join(top, "a.txt"), "user.v", b"2")
    sync(fs)
    t2 = note_time()
    m2 = manifest(top)

    # the classic save: a new inode renamed over the old name
    tmp = os.path.join(top, "a.tmp")
    write_file(tmp, b"x" * 50)
    os.rename(tmp, os.path.join(top, "a.txt"))
    shutil.rmtree(os.path.join(top, "sub"))
    sync(fs)
    t3 = note_time()
    m3 = manifest(top)

    for i, (t, m) in enumerate(((t1, m1), (t2, m2), (t3, m3))):
        dest = fresh_dir(fs, f"dest{i}")
        p = restore(fs, "/patients", dest, "--at", t)
        assert re.search(r"^restored /patients as at .* into "
                         rf"{re.escape(dest)}/patients: ", p.stdout,
                         re.M), p.stdout
        same_tree(m, manifest(os.path.join(dest, "patients")))
    # the latest, without --at, and a single file
    dest = fresh_dir(fs, "dest-latest")
    restore(fs, "patients/a.txt", dest)
    assert read_file(os.path.join(dest, "a.txt")) == b"x" * 50
    # the new inode of the save has no xattr of the old one
    assert os.listxattr(os.path.join(dest, "a.txt")) == []
    assert not scratch_left(fs)

    p = ok(fs.run("versions", fs.config, "/patients/a.txt"), "versions")
    lines = p.stdout.splitlines()
    sizes = [int(re.search(r"  size (\d+)  ", ln).group(1)) for ln in lines
             if "  size " in ln]
    # Each state the regions' metadata recorded is a version: a save that
    # truncates and then writes may show its empty moment too, when the
    # metadata interval fell between the two.
    assert [x for x in sizes if x] == [100, 300, 50], p.stdout
    assert all(x == 0 for x in sizes if x not in (100, 300, 50)), p.stdout
    for ln in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  size \d+"
                        r"  mtime \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                        ln), ln
    # each moment listed gives back its version
    first = lines[0].split()[0]
    dest = fresh_dir(fs, "dest-v")
    restore(fs, "/patients/a.txt", dest, "--at", first)
    assert read_file(os.path.join(dest, "a.txt")) == b"a" * 100

    p = ok(fs.run("versions", fs.config, "/patients/b.txt"), "versions")
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and "size 2000" in lines[0] and \
        lines[1].endswith("  deleted"), p.stdout
    assert lines[1].split()[0] < t2, p.stdout
    assert not scratch_left(fs)


def test_versions_within_retention(phifs_bare):
    fs = phifs_bare
    set_keys(fs, metadata_interval="2s")
    fs.mkfs()
    fs.mount()
    for size in (10, 20, 30):
        write_file(fs.path("f"), b"v" * size)
        sync(fs)
        time.sleep(1.1)
    t30 = time.monotonic()          # the change to 30 is older
    time.sleep(6)
    t40 = time.monotonic()          # the change to 40 is newer
    # in place, one write: a truncate first would be a change of its own
    # (to size 0), which the journal, due since the sleep, may catch
    fd = os.open(fs.path("f"), os.O_WRONLY)
    try:
        assert os.pwrite(fd, b"v" * 40, 0) == 40
    finally:
        os.close(fd)
    sync(fs)
    # a retention whose window starts within a second after t30, however
    # long the sync took: the changes to 10 and 20 are older; 30 was
    # still the file at the start of the window, so it is listed, then
    # 40 (versions has 5 s to read its clock before the start passes t40)
    keep = int(time.monotonic() - t30)
    set_keys(fs, retention=f"{keep}s")
    p = ok(fs.run("versions", fs.config, "f"), "versions")
    sizes = re.findall(r"  size (\d+)  ", p.stdout)
    assert sizes == ["30", "40"], p.stdout
    set_keys(fs, retention="30d")
    p = ok(fs.run("versions", fs.config, "f"), "versions")
    assert re.findall(r"  size (\d+)  ", p.stdout) == \
        ["10", "20", "30", "40"], p.stdout
    p = fs.run("versions", fs.config, "no-such-file")
    assert p.returncode == 1
    assert p.stderr.strip() == \
        "phifs: no-such-file: not in the history of region a", p.stderr


def test_metadata_reaches_regions_without_sync(phifs_bare):
    fs = phifs_bare
    set_keys(fs, metadata_interval="2s")
    fs.mkfs()
    fs.mount()
    data = random.Random(3).randbytes(300 * 1024)
    os.mkdir(fs.path("ward"))
    write_file(fs.path("ward", "chart.pdf"), data)
    # no sync: seal_delay 1s, metadata_interval 2s.  A new machine, while
    # the first one is still mounted, reads the regions only; it polls,
    # since the mount's uploads take longer on a loaded machine
    config2, cache2 = second_config(fs)
    got = None
    deadline = time.monotonic() + 120
    for n in itertools.count():
        dest = fresh_dir(fs, f"dest{n}")
        p = restore(fs, "/ward", dest, config=config2, check=False)
        chart = os.path.join(dest, "ward", "chart.pdf")
        got = read_file(chart) if os.path.exists(chart) else None
        if (p.returncode == 0 and got == data) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ok(p, "restore /ward")
    assert got == data
    ok(fs.run("recover", config2, timeout=300), "recover")
    assert os.path.isdir(os.path.join(cache2, "meta"))


def test_a_lagging_region_is_named(phifs_bare):
    fs = phifs_bare
    fs.set_faults("b", None)        # the mount obeys the hook from now on
    fs.mkfs()
    fs.mount()
    write_file(fs.path("first"), b"in both regions")
    sync(fs)
    fs.set_faults("b", "fail_all put")
    time.sleep(1.1)
    write_file(fs.path("second"), b"only in region a")
    p = fs.run("sync", fs.config, "--timeout", "3")
    assert p.returncode == 1, p.stdout + p.stderr

    def waits(st, name):
        return [r for r in st["region_state"] if r["name"] == name][0][
            "waiting"]
    # region a may still be taking the change on a slow machine: wait
    # until it has everything and b lacks something
    st = fs.wait_status(lambda st: st["dirty_blocks"] == 0 and
                        waits(st, "a") == 0 and waits(st, "b") > 0)
    assert waits(st, "a") == 0 and waits(st, "b") > 0, st
    config2, cache2 = second_config(fs)
    p = ok(fs.run("recover", config2, "--region", "b"), "recover")
    assert re.search(r"^phifs: warning: region a holds a later moment "
                     r"\(\S+Z\) than the \S+Z used from region b \(it may "
                     r"lag behind, or miss a segment\); --region a would "
                     r"give the later one$", p.stderr, re.M), p.stderr
    dest = fresh_dir(fs, "dest")
    p = restore(fs, "/", dest, "--region", "b", config=config2)
    assert "region a holds a later moment" in p.stderr
    assert sorted(os.listdir(dest)) == ["first"]
    p = restore(fs, "/", dest, config=config2)
    assert re.fullmatch(r"phifs: history read from region a, the one with "
                        r"the latest moment \(\S+Z\)\n", p.stderr), p.stderr
    assert read_file(os.path.join(dest, "second")) == b"only in region a"


def many_moments(fs, files=300, rounds=12):
    """files small files written over `rounds` syncs (so many objects)."""
    made = {}
    for r in range(rounds):
        d = fs.path(f"d{r}")
        os.mkdir(d)
        for i in range(files // rounds):
            data = f"file {r}/{i}\n".encode() * (i + 1)
            write_file(os.path.join(d, f"f{i}"), data)
            made[f"d{r}/f{i}"] = data
        sync(fs)
    return made


def test_interrupted_recover_runs_again(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    made = many_moments(fs)
    want = manifest(fs.mnt)
    fs.umount()
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)

    fs.set_faults("b", "latency_ms=300 get")
    p = subprocess.Popen([PHIFS, "recover", fs.config, "--region", "b"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=fs.base,
                         env=fs.environ(), start_new_session=True)
    time.sleep(1.5)
    assert p.poll() is None, "recover finished before it could be killed"
    p.kill()
    p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(fs.cache_dir, "meta"))
    p = fs.run("status", fs.config)
    assert p.returncode != 0, "an interrupted recover left a filesystem"

    fs.set_faults("b", None)
    ok(fs.run("recover", fs.config, "--region", "b", timeout=300),
       "recover")
    assert os.listdir(fs.cache_dir) and \
        "recover.tmp" not in os.listdir(fs.cache_dir)
    fs.mount()
    same_tree(want, manifest(fs.mnt))
    for name, data in list(made.items())[::37]:
        assert read_file(fs.path(name)) == data


# --- restore -----------------------------------------------------------------

def test_restore_dry_run_and_into_the_live_mount(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    write_tree(fs.mnt, seed=5)
    anna = fs.path("patients", "anna")
    # letter.txt has a third name outside anna/: link counts differ
    want = manifest(anna, nlink=False)
    sync(fs)
    t = note_time()     # later changes to the mount are not restored

    # into an empty folder, as a dry run: every entry is to be created
    dest = fresh_dir(fs, "dest")
    p = restore(fs, "/patients/anna", dest, "--dry-run", "--at", t)
    lines = p.stdout.splitlines()
    assert lines[-1].startswith("dry run, nothing written: "), p.stdout
    entries = lines[:-1]
    assert sorted(entries) == sorted(
        f"create {dest}/anna" + ("" if k == "." else f"/{k}")
        for k in want), p.stdout
    assert os.listdir(dest) == []

    # for real, then once more: everything is the same
    restore(fs, "/patients/anna", dest, "--at", t)
    same_tree(want, manifest(os.path.join(dest, "anna"), nlink=False))
    p = restore(fs, "/patients/anna", dest, "--dry-run", "--at", t)
    assert all(ln.startswith("same ") for ln in p.stdout.splitlines()[:-1]), \
        p.stdout

    # change the copy; the dry run names what differs, the run repairs it
    copy = os.path.join(dest, "anna")
    write_file(os.path.join(copy, "letter.txt"), b"tampered")
    with open(os.path.join(copy, "scans", "ct.bin"), "r+b") as f:
        f.seek(MiB)
        f.write(b"X")
    os.chmod(os.path.join(copy, "sparse.img"), 0o666)
    os.unlink(os.path.join(copy, "latest"))
    os.symlink("elsewhere", os.path.join(copy, "latest"))
    os.setxattr(os.path.join(copy, "scans", "ct.bin"), "user.extra", b"1")
    p = restore(fs, "/patients/anna", dest, "--dry-run", "--at", t)
    out = p.stdout
    # whichever name of the letter comes first differs in size; the
    # other must follow it as a new link
    assert {f"replace {copy}/letter.txt (differs: size)\n" in out,
            f"replace {copy}/scans/letter-link (differs: size)\n" in out} \
        == {True, False}, out
    assert {f"replace {copy}/letter.txt (differs: link)\n" in out,
            f"replace {copy}/scans/letter-link (differs: link)\n" in out} \
        == {True, False}, out
    assert f"replace {copy}/scans/ct.bin (differs: content)\n" in out, out
    assert f"replace {copy}/sparse.img (differs: mode)\n" in out, out
    assert f"replace {copy}/latest (differs: target)\n" in out, out
    assert f"same {copy}/dangling\n" in out, out
    assert read_file(os.path.join(copy, "letter.txt")) == b"tampered"
    restore(fs, "/patients/anna", dest, "--at", t)
    same_tree(want, manifest(copy, nlink=False))

    # into the live mount itself: a folder of the filesystem comes back
    # from the regions beside (and over) what is there now
    shutil.rmtree(fs.path("patients", "anna", "scans"))
    os.unlink(fs.path("patients", "anna", "letter.txt"))
    restore(fs, "/patients/anna", fs.path("patients"), "--at", t)
    same_tree(want, manifest(anna, nlink=False))
    # root: the entries of the root go into DEST itself
    dest = fresh_dir(fs, "dest-root")
    restore(fs, "/", dest, "--at", t)
    assert sorted(os.listdir(dest)) == sorted(os.listdir(fs.mnt))
    assert not scratch_left(fs)


def test_restore_interrupted_converges(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    fs.mount()
    made = many_moments(fs, files=120, rounds=2)
    write_file(fs.path("d0", "big"), random.Random(7).randbytes(6 * MiB))
    want = manifest(fs.mnt)
    sync(fs)
    fs.umount()
    # content comes from the regions: make them slow
    dest = fresh_dir(fs, "dest")
    fs.set_faults("a", "latency_ms=100 get")
    fs.set_faults("b", "latency_ms=100 get")
    p = subprocess.Popen([PHIFS, "restore", fs.config, "/", dest],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=fs.base,
                         env=fs.environ(), start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(os.scandir(dest)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    fs.set_faults("a", None)
    fs.set_faults("b", None)
    restore(fs, "/", dest)
    got = manifest(dest)
    same_tree(want, got, skip_root=True)
    assert not [n for d, _, f in os.walk(dest) for n in f
                if n.startswith(".phifs-restore-")]
    assert not scratch_left(fs)
    assert made


def test_restore_refuses_to_mix_files_and_folders(phifs):
    fs = phifs
    os.makedirs(fs.path("x", "folder"))
    write_file(fs.path("x", "file"), b"content")
    sync(fs)
    dest = fresh_dir(fs, "dest")
    write_file(os.path.join(dest, "folder"), b"a file in the way")
    os.mkdir(os.path.join(dest, "file"))
    p = restore(fs, "/x/folder", dest, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == \
        f"phifs: {dest}/folder exists and is not a folder: will not " \
        "replace it with one (move it away first)", p.stderr
    p = restore(fs, "/x/file", dest, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == \
        f"phifs: {dest}/file is a folder: will not replace it with a " \
        "file (move it away first)", p.stderr
    p = restore(fs, "/x/nothing", dest, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == "phifs: /x/nothing: no such file or " \
        "folder in the filesystem at that moment", p.stderr
    p = restore(fs, "/x", os.path.join(dest, "missing"), check=False)
    assert p.returncode == 1 and "cannot restore into" in p.stderr
    assert not scratch_left(fs)


# --- errors ------------------------------------------------------------------

def test_recover_errors(phifs):
    fs = phifs
    write_file(fs.path("f"), b"data")
    sync(fs)
    before = sorted(os.listdir(fs.cache_dir))

    # cache_dir holds a filesystem (mounted, even)
    p = fs.run("recover", fs.config)
    assert p.returncode == 1
    assert p.stderr.strip() == \
        f"phifs: {fs.config}: cache_dir {fs.cache_dir} already holds a " \
        "phifs filesystem; refusing to overwrite it", p.stderr
    assert sorted(os.listdir(fs.cache_dir)) == before

    config2, cache2 = second_config(fs)
    p = fs.run("recover", config2, "--region", "c")
    assert p.returncode == 1
    assert p.stderr.strip() == \
        f"phifs: --region c: {config2} has no [region c] (its regions: " \
        "a, b)", p.stderr

    p = fs.run("recover", config2, "--at", "2020-01-01T00:00:00Z")
    assert p.returncode == 1
    assert re.fullmatch(r"phifs: --at 2020-01-01T00:00:00\.000Z: nothing "
                        r"to recover that early: the oldest moment region "
                        r"a holds is \d{4}-\S+Z", p.stderr.strip()), p.stderr
    assert os.listdir(cache2) == []

    for bad in ("yesterday", "2026-02-30T10:00:00Z", "-90", "12:00"):
        p = fs.run("recover", config2, "--at", bad)
        assert p.returncode == 2
        assert p.stderr.strip() == \
            f"phifs: --at: bad time '{bad}' (use 2026-11-29T10:00:00Z, " \
            "2026-11-29T10:00:00 for local time, or -90s, -30m, -2h, -3d)", \
            p.stderr
        p = fs.run("restore", config2, "/f", cache2, "--at", bad)
        assert p.returncode == 2 and f"--at: bad time '{bad}'" in p.stderr
    assert os.listdir(cache2) == []

    p = fs.run("recover", config2, "--bogus")
    assert p.returncode == 2 and "usage: phifs recover" in p.stderr

    # an emptied region cannot be the source
    fs.umount()
    empty_dir(fs.region_dir_b)
    p = fs.run("recover", config2, "--region", "b")
    assert p.returncode == 1
    assert p.stderr.strip() == \
        "phifs: region b holds no superblock: no phifs filesystem is " \
        "there (check its url), or it was emptied", p.stderr
    assert os.listdir(cache2) == []

    # a wrong key changes nothing
    with open(config2) as f:
        text = f.read()
    wrong = os.path.join(fs.base, "wrong.key")
    with open(wrong, "wb") as f:
        f.write(os.urandom(64))
    os.chmod(wrong, 0o600)
    with open(config2, "w") as f:
        f.write(text.replace(fs.key_file, wrong))
    p = fs.run("recover", config2)
    assert p.returncode == 1
    assert p.stderr.strip().endswith(
        "wrong passphrase or key file: no key slot opens"), p.stderr
    assert os.listdir(cache2) == []


def test_recover_with_a_passphrase(phifs_bare):
    fs = phifs_bare
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(re.sub(r"^key_file = .*\n", "", text, flags=re.M))
    fs.env.update(PHIFS_PASSPHRASE="correct horse", PHIFS_KDF_N="1024")
    fs.mkfs()
    fs.mount()
    write_file(fs.path("f"), b"behind a passphrase")
    sync(fs)
    fs.umount()
    shutil.rmtree(fs.cache_dir)
    os.mkdir(fs.cache_dir)
    p = fs.run("recover", fs.config, env={"PHIFS_PASSPHRASE": "wrong"})
    assert p.returncode == 1
    assert p.stderr.strip().endswith(
        "wrong passphrase or key file: no key slot opens"), p.stderr
    assert os.listdir(fs.cache_dir) == []
    del fs.env["PHIFS_PASSPHRASE"]      # and no terminal to ask on
    p = fs.run("recover", fs.config)
    assert p.returncode == 1 and "passphrase" in p.stderr, p.stderr
    assert os.listdir(fs.cache_dir) == []
    fs.env["PHIFS_PASSPHRASE"] = "correct horse"
    ok(fs.run("recover", fs.config), "recover")
    fs.mount()
    assert read_file(fs.path("f")) == b"behind a passphrase"


def test_help_names_the_commands(phifs_bare):
    p = phifs_bare.run("help")
    for cmd in ("recover", "restore", "versions"):
        assert re.search(rf"^  {cmd} ", p.stdout, re.M), p.stdout
        q = phifs_bare.run("help", cmd)
        assert q.returncode == 0 and q.stdout.startswith(
            f"usage: phifs {cmd} CONFIG"), q.stdout
    p = phifs_bare.run("help", "config")
    assert "metadata_interval" in p.stdout and "retention" in p.stdout


@pytest.mark.parametrize("cmd", ["restore", "versions"])
def test_usage_errors(phifs_bare, cmd):
    p = phifs_bare.run(cmd, phifs_bare.config)
    assert p.returncode == 2 and f"usage: phifs {cmd}" in p.stderr
