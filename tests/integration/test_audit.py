"""The audit trail: one event per operation, who made it, what it
touched, and `phifs audit` to ask.

Each test mounts its own filesystem with patient_folders = /Patients/*
and reads the trail back with `phifs audit --format json` (one object per
line).  Operations run as another uid in a forked child whose process name
is set with prctl(PR_SET_NAME), so that the uid and the process name the
trail shows are the child's, not the test's.
"""

import base64
import ctypes
import errno
import json
import math
import os
import shutil
import time

from conftest import OTHER_GID, OTHER_UID, run_as, write_file

COMM = "audtest"
PR_SET_NAME = 15


def mount_with(phifs_factory, extra="patient_folders = /Patients/*\n"):
    """A filesystem with extra lines in [filesystem], mounted, with a
    /Patients folder everyone may write to."""
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("[filesystem]\n",
                                 "[filesystem]\n" + extra, 1))
    fs.mkfs()
    fs.mount()
    os.mkdir(fs.path("Patients"))
    os.chmod(fs.path("Patients"), 0o777)
    return fs


def events(fs, *args, kinds=None):
    """The trail through `phifs audit --format json`; the query events
    (which every call adds) are left out unless kinds names them."""
    p = fs.run("audit", fs.config, "--format", "json", *args)
    assert p.returncode == 0, f"phifs audit exited {p.returncode}: {p.stderr}"
    out = [json.loads(line) for line in p.stdout.splitlines()]
    if kinds is None:
        return [e for e in out if e["event"] != "query"]
    return [e for e in out if e["event"] in kinds]


def named(comm):
    """Set this process's name, as /proc/PID/comm shows it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME,
                                            comm.encode(), 0, 0, 0)


def as_other(fn, *args):
    """fn(*args) as OTHER_UID in a child named COMM."""
    def body():
        named(COMM)
        return fn(*args)
    return run_as(OTHER_UID, OTHER_GID, body)


def settle(fs):
    """Make a change, so that the events of requests that changed
    nothing (opens, releases, refusals), which wait for the next change
    or at most two seconds, are written before the test reads them."""
    os.mkdir(fs.path("settle.%d" % time.monotonic_ns()))


def events_when(fs, done, *args):
    """The trail, once done(events) holds, or as it is after a minute.
    A release reaches phifs after close() has returned (the kernel sends
    it on its own), so a test that wants a release event waits for it;
    the test's own assertions then say what is missing."""
    deadline = time.monotonic() + 60
    while True:
        settle(fs)
        evs = events(fs, *args)
        if done(evs) or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)


def releases(n, path=None):
    """A done() for events_when(): n release events (on path)."""
    return lambda evs: len([e for e in evs if e["event"] == "release" and
                            (path is None or e["path"] == path)]) >= n


def one(evs, kind, path=None):
    found = [e for e in evs if e["event"] == kind and
             (path is None or e["path"] == path)]
    assert len(found) == 1, f"want one {kind} {path}, got {found} in {evs}"
    return found[0]


def every_kind(mnt):
    p = os.path.join(mnt, "Patients", "Doe^Jane")
    os.mkdir(p)
    f = os.path.join(p, "note.txt")
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x" * 100)
    os.close(fd)
    fd = os.open(f, os.O_RDONLY)
    os.read(fd, 1000)
    os.close(fd)
    os.mkfifo(os.path.join(p, "fifo"))
    os.symlink("note.txt", os.path.join(p, "sym"))
    os.link(f, os.path.join(p, "hard"))
    os.rename(os.path.join(p, "hard"), os.path.join(p, "hard2"))
    os.truncate(f, 10)
    os.chmod(f, 0o600)
    os.chown(f, OTHER_UID, OTHER_GID)
    os.utime(f, (1000, 2000))
    os.setxattr(f, "user.tag", b"v")
    os.removexattr(f, "user.tag")
    os.unlink(os.path.join(p, "hard2"))
    os.mkdir(os.path.join(p, "sub"))
    os.rmdir(os.path.join(p, "sub"))
    return os.stat(f).st_ino


def test_every_kind_names_user_process_paths_patient(phifs_factory):
    fs = mount_with(phifs_factory)
    ino = as_other(every_kind, fs.mnt)
    d = "/Patients/Doe^Jane"
    f = d + "/note.txt"
    evs = [e for e in events_when(fs, releases(2, f))
           if e["uid"] == OTHER_UID]
    for e in evs:
        assert e["process"] == COMM, e
        assert e["gid"] == OTHER_GID, e
        assert e["patient"] == "Doe^Jane", json.dumps(evs)
        assert e["errno"] == 0, e
        assert e["host"] == os.uname().nodename, e
    assert one(evs, "mkdir", d)
    create = one(evs, "create", f)
    assert create["ino"] == ino
    opens = [e for e in evs if e["event"] == "open" and e["path"] == f]
    assert len(opens) == 1 and opens[0]["flags"] & 3 == os.O_RDONLY
    rel = [e for e in evs if e["event"] == "release" and e["path"] == f]
    assert [(e["bytes_written"], e["bytes_read"]) for e in rel] == \
        [(100, 0), (0, 100)]
    assert one(evs, "mknod", d + "/fifo")
    sym = one(evs, "symlink", d + "/sym")
    assert sym["path2"] == "note.txt"
    link = one(evs, "link", f)
    assert link["path2"] == d + "/hard"
    ren = one(evs, "rename", d + "/hard")
    assert ren["path2"] == d + "/hard2" and ren["ino"] == ino
    assert one(evs, "truncate", f)["detail"] == "size=10"
    assert one(evs, "chmod", f)["detail"] == "mode=0600"
    assert one(evs, "chown", f)["ino"] == ino
    assert one(evs, "utimes", f)["ino"] == ino
    assert one(evs, "setxattr", f)["detail"] == "user.tag"
    assert one(evs, "removexattr", f)["detail"] == "user.tag"
    assert one(evs, "unlink", d + "/hard2")["ino"] == ino
    assert one(evs, "rmdir", d + "/sub")
    # names at the time, as this machine has them
    for e in evs:
        assert e["user"] == _name_of_uid(OTHER_UID), e


def _name_of_uid(uid):
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def test_rename_and_unlink_of_an_open_file(phifs_factory):
    fs = mount_with(phifs_factory)
    d = fs.path("Patients", "P1")
    os.mkdir(d)
    fd = os.open(os.path.join(d, "a"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"1" * 10)
        os.rename(os.path.join(d, "a"), os.path.join(d, "b"))
        os.write(fd, b"2" * 10)
        os.unlink(os.path.join(d, "b"))
        os.write(fd, b"3" * 10)
    finally:
        os.close(fd)
    evs = events_when(fs, releases(1), "--path", "/Patients/P1")
    ino = one(evs, "create", "/Patients/P1/a")["ino"]
    ren = one(evs, "rename", "/Patients/P1/a")
    assert (ren["path2"], ren["ino"]) == ("/Patients/P1/b", ino)
    assert one(evs, "unlink", "/Patients/P1/b")["ino"] == ino
    # the release names the file as it was last called, and counts all
    rel = one(evs, "release")
    assert (rel["path"], rel["ino"], rel["bytes_written"]) == \
        ("/Patients/P1/b", ino, 30)
    kinds = [e["event"] for e in evs if e["event"] != "mkdir"]
    assert kinds == ["create", "rename", "unlink", "release"]


def test_names_and_counts_are_kept_before_the_answer_leaves(phifs_factory):
    """The program's next request may reach another thread of the
    daemon as soon as the answer reaches the kernel: a create in a folder
    just made, an unlink of the name a rename just gave, the release
    after the last write.  Each must find what the answer before it
    told the kernel."""
    fs = mount_with(phifs_factory)
    rounds = 150

    def churn():
        for i in range(rounds):
            d = fs.path("Patients", f"P{i}")
            os.mkdir(d)
            fd = os.open(os.path.join(d, "a"), os.O_RDWR | os.O_CREAT,
                         0o644)
            os.write(fd, b"1" * 10)
            os.rename(os.path.join(d, "a"), os.path.join(d, "b"))
            os.unlink(os.path.join(d, "b"))
            os.write(fd, b"2" * 10)
            os.close(fd)
            # an open's event is queued: before its own release's (the
            # kernel may send the release of the write_file() after it)
            write_file(os.path.join(d, "c"), b"c")
            fd = os.open(os.path.join(d, "c"), os.O_WRONLY)
            os.write(fd, b"xy")
            os.close(fd)
    churn()
    evs = events_when(fs, releases(3 * rounds))
    for i in range(rounds):
        d = f"/Patients/P{i}"
        mine = [e for e in evs if e["patient"] == f"P{i}"]
        create = one(mine, "create", d + "/a")
        ino = create["ino"]
        assert one(mine, "rename", d + "/a")["ino"] == ino
        assert one(mine, "unlink", d + "/b")["ino"] == ino
        rel = one(mine, "release", d + "/b")
        assert (rel["ino"], rel["bytes_written"]) == (ino, 20)
        c = [e for e in mine if e["path"] == d + "/c"]
        assert sorted(e["event"] for e in c) == \
            ["create", "open", "release", "release"], c
        assert [e["event"] for e in c].index("open") < \
            [e["bytes_written"] for e in c].index(2), c


def test_small_reads_make_one_event_with_the_byte_count(phifs_factory):
    fs = mount_with(phifs_factory)
    f = fs.path("Patients", "scan.dat")
    write_file(f, os.urandom(256 << 10))
    # a fresh mount has none of the file in the kernel's page cache, so
    # every byte read reaches phifs (fadvise(DONTNEED) may leave pages)
    fs.umount()
    fs.mount()

    def read_small():
        n = 0
        with open(f, "rb", buffering=0) as fh:
            while True:
                b = fh.read(4096)
                if not b:
                    return n
                n += len(b)

    assert as_other(read_small) == 256 << 10
    evs = [e for e in events_when(fs, releases(2, "/Patients/scan.dat"))
           if e["path"] == "/Patients/scan.dat" and e["uid"] == OTHER_UID]
    assert [e["event"] for e in evs] == ["open", "release"], evs
    assert evs[1]["bytes_read"] == 256 << 10
    assert evs[1]["uid"] == OTHER_UID and evs[1]["process"] == COMM


def test_refusals_phifs_answers_are_recorded_with_their_errno(
        phifs_factory):
    fs = mount_with(phifs_factory)
    f = fs.path("Patients", "x")
    write_file(f, b"x")
    os.mkdir(fs.path("Patients", "full"))
    write_file(fs.path("Patients", "full", "y"), b"y")

    def refused():
        named(COMM)
        out = []
        for fn in (lambda: os.setxattr(f, "user.phifs.state", b"x"),
                   lambda: os.rmdir(fs.path("Patients", "full")),
                   lambda: os.removexattr(f, "user.none")):
            try:
                fn()
                out.append(0)
            except OSError as e:
                out.append(e.errno)
        return out

    # as root: the kernel's permission checks let everything through
    assert run_as(None, None, refused) == \
        [errno.EPERM, errno.ENOTEMPTY, errno.ENODATA]
    # a refusal's event is queued once the answer has left: wait for it
    evs = events_when(fs, lambda evs: {"setxattr", "rmdir", "removexattr"}
                      <= {e["event"] for e in evs})
    assert one(evs, "setxattr", "/Patients/x")["errno"] == errno.EPERM
    assert one(evs, "rmdir", "/Patients/full")["errno"] == errno.ENOTEMPTY
    assert one(evs, "removexattr", "/Patients/x")["errno"] == errno.ENODATA
    p = fs.run("audit", fs.config, "--path", "/Patients/full")
    assert p.returncode == 0
    line = [x for x in p.stdout.splitlines() if " rmdir " in x]
    assert len(line) == 1 and " ENOTEMPTY " in line[0], p.stdout


def test_events_survive_kill9_for_every_operation_that_did(phifs_factory):
    fs = mount_with(phifs_factory)
    d = fs.path("Patients", "P9")
    os.mkdir(d)
    names = []
    for i in range(200):
        name = f"f{i}"
        write_file(os.path.join(d, name), b"z" * 100)
        names.append(name)
        if i % 3 == 0:
            os.rename(os.path.join(d, name), os.path.join(d, name + ".r"))
    fs.kill9()
    fs.mount()
    there = set(os.listdir(d))
    evs = events(fs, "--patient", "P9")
    created = {e["path"].rsplit("/", 1)[1] for e in evs
               if e["event"] == "create" and e["errno"] == 0}
    renamed = {e["path2"].rsplit("/", 1)[1] for e in evs
               if e["event"] == "rename" and e["errno"] == 0}
    for name in there:
        if name.endswith(".r"):
            assert name in renamed, f"{name} survived, its rename event not"
            assert name[:-2] in created, f"{name} survived, its create not"
        else:
            assert name in created, f"{name} survived, its create event not"
    assert there, "nothing survived: the test tested nothing"


def test_queries_by_patient_user_path_and_time_and_the_query_recorded(
        phifs_factory):
    fs = mount_with(phifs_factory)
    os.mkdir(fs.path("Patients", "A"))
    os.mkdir(fs.path("Patients", "B"))
    os.chmod(fs.path("Patients", "A"), 0o777)
    write_file(fs.path("Patients", "A", "root.txt"), b"r")
    # the moment between is taken once root.txt's last event (its
    # release, which the kernel sends after close() returns) is in the
    # trail, so that it is before the moment however slow the machine
    events_when(fs, releases(1, "/Patients/A/root.txt"))
    mid = math.ceil(time.time()) + 1   # --since takes whole seconds
    while time.time() < mid + 0.1:
        time.sleep(0.1)
    as_other(write_file, fs.path("Patients", "A", "other.txt"), b"o")
    write_file(fs.path("Patients", "B", "b.txt"), b"b")
    write_file(fs.path("elsewhere.txt"), b"e")
    # every release is in before the queries compare what they see
    events_when(fs, releases(4))

    pa = events(fs, "--patient", "A")
    assert pa and all(e["patient"] == "A" for e in pa)
    assert {e["path"] for e in pa} == {"/Patients/A", "/Patients/A/root.txt",
                                       "/Patients/A/other.txt"}
    by_user = events(fs, "--user", str(OTHER_UID))
    assert by_user and all(e["uid"] == OTHER_UID for e in by_user)
    assert {e["path"] for e in by_user} == {"/Patients/A/other.txt"}
    by_path = events(fs, "--path", "/Patients/B")
    assert {e["path"] for e in by_path} == {"/Patients/B",
                                            "/Patients/B/b.txt"}
    since = events(fs, "--since", "@%d" % mid)
    assert {e["path"] for e in since} >= {"/Patients/A/other.txt",
                                          "/Patients/B/b.txt",
                                          "/elsewhere.txt"}
    assert "/Patients/A/root.txt" not in {e["path"] for e in since}
    until = events(fs, "--until", "@%d" % mid)
    assert "/Patients/A/root.txt" in {e["path"] for e in until}
    assert "/Patients/B/b.txt" not in {e["path"] for e in until}
    # TIME as --at takes it elsewhere: ISO 8601, a date, a time back
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mid))
    assert events(fs, "--since", iso) == since
    assert events(fs, "--until", iso) == until
    assert {e["path"] for e in events(fs, "--since", "-1h")} >= \
        {"/Patients/A/root.txt", "/Patients/B/b.txt"}
    assert events(fs, "--since", "2999-01-01") == []
    p = fs.run("audit", fs.config, "--since", "last week")
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr.startswith("phifs: --since: bad time 'last week'"), \
        p.stderr

    # who looked: the query names its asker and what it asked about,
    # mounted or not
    fs.umount()
    p = fs.run("audit", fs.config, "--patient", "A", "--format", "json")
    assert p.returncode == 0, p.stderr
    queries = [json.loads(x) for x in p.stdout.splitlines()
               if json.loads(x)["event"] == "query"]
    asked = [q for q in queries if q["patient"] == "A"]
    assert len(asked) == 2, queries   # the one above and this one
    assert asked[-1]["uid"] == os.getuid()
    assert asked[-1]["process"] == "phifs"
    fs.mount()


def test_audit_off_records_nothing(phifs_factory):
    fs = mount_with(phifs_factory, extra="audit = off\n")
    write_file(fs.path("Patients", "x"), b"x")
    assert events(fs) == []


def test_bad_patient_folders_is_refused_with_one_line(phifs_bare):
    with open(phifs_bare.config) as f:
        text = f.read()
    phifs_bare.write_config(text.replace(
        "[filesystem]\n", "[filesystem]\npatient_folders = Patients\n", 1))
    p = phifs_bare.run("mkfs", phifs_bare.config)
    assert p.returncode != 0
    assert len(p.stderr.strip().splitlines()) == 1
    assert "patient_folders" in p.stderr


# --- FHIR ---------------------------------------------------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ROLE = "http://terminology.hl7.org/CodeSystem/object-role"


def fhir(fs, *args):
    """The trail through `phifs audit --format fhir`: one resource per
    line, every line JSON."""
    p = fs.run("audit", fs.config, "--format", "fhir", *args)
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("\n")
    return [json.loads(line) for line in p.stdout.splitlines()]


def kind_of(r):
    """phifs's name of the event, the subtype without a code system."""
    return [c["code"] for c in r["subtype"] if "system" not in c][0]


def path_of(r):
    what = r["entity"][0].get("what", {})
    return what.get("display")


def patients_of(r):
    return [e["what"]["display"] for e in r["entity"]
            if e.get("role", {}).get("system") == ROLE and
            e["role"]["code"] == "1"]


def test_fhir_one_resource_per_event_with_codes_agents_and_patient(
        phifs_factory):
    fs = mount_with(phifs_factory)
    d = fs.path("Patients", "Doe^Jane")
    os.mkdir(d)
    write_file(os.path.join(d, "note"), b"n" * 10)      # create, release
    fd = os.open(os.path.join(d, "note"), os.O_RDONLY)  # open for read
    os.close(fd)
    fd = os.open(os.path.join(d, "note"), os.O_WRONLY)  # open for write
    os.close(fd)
    write_file(fs.path("elsewhere"), b"e")
    odd = os.path.join(os.fsencode(d), b'q"\x01\xff')   # not UTF-8
    write_file(odd, b"o")
    try:
        os.removexattr(os.path.join(d, "note"), "user.none")
    except OSError as e:
        assert e.errno == errno.ENODATA
    os.unlink(os.path.join(d, "note"))
    # the three releases and the refusal are in before the two queries
    # are compared event by event
    events_when(fs, lambda evs: releases(3)(evs) and
                "removexattr" in {e["event"] for e in evs})
    res = fhir(fs)
    # one resource per event: all the trail held, and this query
    p = fs.run("audit", fs.config, "--format", "json")
    every = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(res) == len(every) - 1, (len(res), len(every))
    for r, e in zip(res, every):
        assert r["resourceType"] == "AuditEvent"
        assert kind_of(r) == e["event"]
        assert r["recorded"] == e["time"]
        user, proc = r["agent"]
        assert user["requestor"] is True and proc["requestor"] is False
        assert user["who"]["identifier"]["value"] == str(e["uid"])
        assert proc["who"]["identifier"]["value"] == str(e["pid"])
        assert user["network"] == {"address": os.uname().nodename,
                                   "type": "1"}
        assert r["source"]["observer"]["display"] == \
            "phifs on " + os.uname().nodename
        assert r["source"]["type"][0]["code"] == "4"
        if e["errno"] == 0:
            assert r["outcome"] == "0" and "outcomeDesc" not in r
        if e["ino"]:
            assert r["entity"][0]["what"]["identifier"]["value"] == \
                str(e["ino"])

    def find(kind, path, pred=lambda r: True):
        found = [r for r in res if kind_of(r) == kind and
                 path_of(r) == path and pred(r)]
        assert len(found) >= 1, (kind, path)
        return found[0]

    note = "/Patients/Doe^Jane/note"
    assert find("create", note)["action"] == "C"
    assert find("mkdir", "/Patients/Doe^Jane")["action"] == "C"
    opens = {r["action"] for r in res
             if kind_of(r) == "open" and path_of(r) == note}
    assert opens == {"R", "U"}, opens
    assert find("unlink", note)["action"] == "D"
    q = [r for r in res if kind_of(r) == "query"]
    assert q and all(r["action"] == "E" and r["type"] ==
                     {"system": DCM, "code": "110112", "display": "Query"}
                     for r in q)
    assert find("create", note)["type"]["code"] == "110110"
    # the patient as a second entity, a person in the role of patient
    c = find("create", note)
    assert patients_of(c) == ["Doe^Jane"]
    pat = c["entity"][1]
    assert pat["type"]["code"] == "1" and pat["type"]["display"] == "Person"
    assert find("create", "/elsewhere")["entity"][1:] == []
    assert patients_of(find("create", "/elsewhere")) == []
    # a refusal: a minor failure, with the errno in words
    rx = find("removexattr", note)
    assert rx["outcome"] == "4"
    assert rx["outcomeDesc"].startswith("ENODATA: ")
    # a name that is not UTF-8: U+FFFD shown, the bytes kept in base64
    bad = [r for r in res if kind_of(r) == "create" and
           "\ufffd" in (path_of(r) or "")]
    assert len(bad) == 1
    assert path_of(bad[0]) == '/Patients/Doe^Jane/q"\x01\ufffd'
    raw = [x["valueBase64Binary"] for x in bad[0]["entity"][0]["detail"]
           if x["type"] == "path bytes"]
    assert [base64.b64decode(x) for x in raw] == \
        [b'/Patients/Doe^Jane/q"\x01\xff']


# --- administrative commands ---------------------------------------------

def admin(fs, kind):
    """The one event of kind in the trail, checked to name this process's
    user on this host."""
    found = events(fs, kinds={kind})
    assert len(found) == 1, f"want one {kind}, got {found}"
    e = found[0]
    assert e["uid"] == os.getuid() and e["errno"] == 0, e
    assert e["host"] == os.uname().nodename, e
    assert e["process"] == "phifs", e
    return e


def test_mount_and_unmount_are_recorded_in_order(phifs_factory):
    fs = mount_with(phifs_factory)
    pid = fs.pid
    write_file(fs.path("Patients", "x"), b"x")
    fs.umount()
    evs = [e for e in events(fs, kinds={"mount", "unmount", "create",
                                        "mkdir"})]
    kinds = [e["event"] for e in evs]
    # the first mount made /Patients: its mount event comes first
    assert kinds == ["mount", "mkdir", "create", "unmount"], kinds
    m, u = admin(fs, "mount"), admin(fs, "unmount")
    assert m["pid"] == pid and u["pid"] == pid
    assert m["detail"].startswith("mountpoint=" + fs.mnt), m
    assert u["detail"] == "unmounted", u
    fs.mount()
    assert [e["event"] for e in events(fs, kinds={"mount"})] == \
        ["mount", "mount"]


def test_restore_is_recorded_with_what_when_and_where(phifs_factory):
    fs = mount_with(phifs_factory)
    os.mkdir(fs.path("Patients", "P"))
    write_file(fs.path("Patients", "P", "a"), b"a" * 100)
    p = fs.run("sync", fs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    dest = os.path.join(fs.base, "dest")
    os.mkdir(dest)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    p = fs.run("restore", fs.config, "/Patients/P/a", dest, "--at", at)
    assert p.returncode == 0, p.stderr
    assert os.path.exists(os.path.join(dest, "a"))
    e = admin(fs, "restore")
    assert e["path"] == "/Patients/P/a" and e["patient"] == "P", e
    d = dict(x.split("=", 1) for x in e["detail"].split(" "))
    assert d["at"] == at.replace("Z", ".000Z"), d
    assert d["dest"] == os.path.realpath(dest), d
    assert d["region"] in ("a", "b"), d
    assert d["moment"] <= d["at"], d


def test_restore_where_there_is_no_trail_works_and_says_so(phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "f"), b"f")
    p = fs.run("sync", fs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    other = phifs_factory(mounted=False, tag="audnew")    # no filesystem
    with open(fs.config) as f:
        text = f.read()
    other.write_config(text.replace(fs.cache_dir, other.cache_dir))
    dest = os.path.join(other.base, "dest")
    os.mkdir(dest)
    p = other.run("restore", other.config, "/Patients/f", dest)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(dest, "f"), "rb") as f:
        assert f.read() == b"f"
    warned = [x for x in p.stderr.splitlines() if "audit trail" in x]
    assert warned == ["phifs: warning: not in an audit trail: the "
                      "filesystem has no cache_dir on this machine to keep "
                      "one"], p.stderr
    assert events(fs, kinds={"restore"}) == []


def test_recover_is_recorded_in_the_trail_it_made(phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "f"), b"f")
    p = fs.run("sync", fs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    other = phifs_factory(mounted=False, tag="audrec")
    with open(fs.config) as f:
        text = f.read()
    other.write_config(text.replace(fs.cache_dir, other.cache_dir))
    p = other.run("recover", other.config, "--region", "b")
    assert p.returncode == 0, p.stderr
    e = admin(other, "recover")
    assert e["detail"].startswith("region=b at=latest moment=20"), e
    assert events(fs, kinds={"recover"}) == []


def test_fsck_repair_is_recorded_and_a_scrub_is_not(phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "f"), b"f")
    p = fs.run("sync", fs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode == 0, p.stdout + p.stderr
    assert events(fs, kinds={"fsck-repair"}) == []
    # the query just made is an event the mount sends with its next
    # metadata: let that reach both regions first, or the repair may
    # list it in one region before the other and "repair" it
    p = fs.run("sync", fs.config, "--timeout", "120", timeout=180)
    assert p.returncode == 0, p.stderr
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    e = admin(fs, "fsck-repair")
    assert " 0 repaired, 0 with no good copy" in e["detail"], e


def test_key_changes_are_recorded_without_the_secret(phifs_factory):
    fs = mount_with(phifs_factory)
    fs.env["PHIFS_KDF_N"] = "1024"      # cheap scrypt (test hook)
    secret = "an unguessable passphrase"
    p = fs.run("key", "add", fs.config, "--label", "front desk",
               env={"PHIFS_NEW_PASSPHRASE": secret})
    assert p.returncode == 0, p.stderr
    e = admin(fs, "key-add")
    assert e["detail"] == "slot=1 kind=passphrase label=front desk " \
                          "by-slot=0", e
    # passwd changes the slot that opens: open with the passphrase
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(f"key_file = {fs.key_file}\n", ""))
    p = fs.run("key", "passwd", fs.config,
               env={"PHIFS_PASSPHRASE": secret,
                    "PHIFS_NEW_PASSPHRASE": secret + " 2"})
    assert p.returncode == 0, p.stderr
    fs.write_config(text)       # reading a sealed trail takes the key
    assert admin(fs, "key-passwd")["detail"] == "slot=1 by-slot=1"
    p = fs.run("key", "remove", fs.config, "1")
    assert p.returncode == 0, p.stderr
    assert admin(fs, "key-remove")["detail"] == "slot=1 by-slot=0"
    for fmt in ("text", "json", "fhir"):
        p = fs.run("audit", fs.config, "--format", fmt)
        assert p.returncode == 0 and secret not in p.stdout


# --- the trail in the regions: sealed segments, the chain, verify -------

def sealed(fs, nrel=0):
    """Make every event so far reach the table (settle; with nrel, until
    the trail holds nrel release events, which the kernel sends after
    close() returns), then sync: the flush it forces cuts them into
    segments that reach every region."""
    if nrel:
        events_when(fs, releases(nrel))
    else:
        settle(fs)
    fs.run("sync", fs.config, check=True)


def segments(region_dir):
    """The audit segments a dir: region holds, oldest first."""
    d = os.path.join(region_dir, "a")
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if n != "base" and
                  not n.startswith("."))


def region_events(fs, region, *args):
    p = fs.run("audit", fs.config, "--region", region, "--format", "json",
               *args)
    assert p.returncode == 0, f"audit --region exited {p.returncode}: " \
        f"{p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines()]


def verify(fs, *args):
    return fs.run("audit", "verify", fs.config, *args)


def three_segments(fs):
    """Events in three syncs: at least three segments in each region."""
    for i in range(3):
        os.makedirs(fs.path("Patients", "P%d" % i))
        write_file(fs.path("Patients", "P%d" % i, "n.txt"), b"x" * i)
        sealed(fs, i)       # P0 gets b"", which moves no byte: no release
    segs = segments(fs.region_dir_a)
    assert len(segs) >= 3, segs
    assert segments(fs.region_dir_b) == segs
    return segs


def test_segments_reach_every_region_and_read_back(phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "Roe^Ann.txt"), b"r")
    as_other(lambda: os.mkdir(os.path.join(fs.mnt, "Patients", "Roe^Bob")))
    sealed(fs, 1)
    segs = segments(fs.region_dir_a)
    assert segs and segments(fs.region_dir_b) == segs
    # the objects are sealed: no path of an event is readable in them
    for s in segs:
        with open(os.path.join(fs.region_dir_a, "a", s), "rb") as f:
            assert b"Roe^" not in f.read()

    local = events(fs)
    for region in ("a", "b"):
        got = [e for e in region_events(fs, region) if e["event"] != "query"]
        assert got == local
    # filters apply as to the local table
    by = [e for e in region_events(fs, "a", "--user", str(OTHER_UID))]
    assert [e["path"] for e in by] == ["/Patients/Roe^Bob"]
    # looking is recorded, naming the region
    q = events(fs, kinds=("query",))
    assert any("region=a" in e.get("detail", "") for e in q), q

    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 regions: whole" in p.stdout, p.stdout


def test_region_query_without_cache_dir(phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "Poe^Al.txt"), b"p")
    sealed(fs, 1)
    local = events(fs)
    fs.umount()
    # an auditor's machine: the configuration and the key, no cache_dir
    with open(fs.config) as f:
        text = f.read()
    empty = os.path.join(fs.base, "empty-cache")
    os.mkdir(empty)
    fs.write_config(text.replace(fs.cache_dir, empty))
    try:
        got = [e for e in region_events(fs, "b") if e["event"] != "query"]
        assert got == local
        p = verify(fs, "--region", "b")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "1 region: whole" in p.stdout
    finally:
        fs.write_config(text)
    fs.mount()


def expect_broken(fs, region, obj):
    p = verify(fs)
    assert p.returncode == 1, p.stdout + p.stderr
    bad = [line for line in p.stdout.splitlines()
           if line.startswith("region ")]
    assert bad, p.stdout
    assert all(line.startswith(f"region {region}: ") for line in bad), bad
    assert any(obj in line for line in bad), (obj, bad)
    assert "NOT whole" in p.stdout.splitlines()[-1]
    other = "b" if region == "a" else "a"
    p = verify(fs, "--region", other)
    assert p.returncode == 0, p.stdout + p.stderr


def test_verify_detects_truncated_tail(phifs_factory):
    fs = mount_with(phifs_factory)
    segs = three_segments(fs)
    fs.umount()
    os.unlink(os.path.join(fs.region_dir_a, "a", segs[-1]))
    # names the segment it now ends at, and that the metadata binds more
    expect_broken(fs, "a", "a/" + segs[-2])
    fs.mount()


def test_verify_detects_altered_segment(phifs_factory):
    fs = mount_with(phifs_factory)
    segs = three_segments(fs)
    fs.umount()
    path = os.path.join(fs.region_dir_a, "a", segs[1])
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0x01
        f.seek(0)
        f.write(data)
    expect_broken(fs, "a", "a/" + segs[1])
    fs.mount()


def test_verify_detects_missing_middle_segment(phifs_factory):
    fs = mount_with(phifs_factory)
    segs = three_segments(fs)
    fs.umount()
    os.unlink(os.path.join(fs.region_dir_b, "a", segs[1]))
    # the one after the hole says which events are missing before it
    expect_broken(fs, "b", "a/" + segs[2])
    fs.mount()


def test_verify_detects_segment_from_another_place(phifs_factory):
    fs = mount_with(phifs_factory)
    segs = three_segments(fs)
    fs.umount()
    # a segment copied over another name fails to open (sealed to it)
    src = os.path.join(fs.region_dir_a, "a", segs[0])
    dst = os.path.join(fs.region_dir_a, "a", segs[1])
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    expect_broken(fs, "a", "a/" + segs[1])
    fs.mount()


def test_kill9_then_remount_leaves_no_gap(phifs_factory):
    fs = mount_with(phifs_factory)
    for i in range(5):
        write_file(fs.path("Patients", "k%d" % i), b"k")
    sealed(fs, 5)
    for i in range(5, 40):
        write_file(fs.path("Patients", "k%d" % i), b"k")
    fs.kill9()
    fs.mount()
    write_file(fs.path("Patients", "after"), b"a")
    sealed(fs)
    for region in ("a", "b"):
        seqs = [e["seq"] for e in region_events(fs, region)]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
    local = events(fs)
    got = [e for e in region_events(fs, "a") if e["event"] != "query"]
    assert got == local[:len(got)]
    paths = {e["path"] for e in got}
    assert "/Patients/after" in paths and "/Patients/k39" in paths
    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr


def test_scrub_finds_and_repair_mends_a_lost_segment(phifs_factory):
    fs = mount_with(phifs_factory)
    segs = three_segments(fs)
    fs.umount()
    os.unlink(os.path.join(fs.region_dir_b, "a", segs[1]))
    p = fs.run("fsck", fs.config, "--scrub")
    assert p.returncode != 0, p.stdout + p.stderr
    assert f"region b: a/{segs[1]} is missing" in p.stdout, p.stdout
    p = fs.run("fsck", fs.config, "--repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert segments(fs.region_dir_b) == segs
    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr
    fs.mount()


def test_gc_keeps_recent_segments_and_every_one_under_a_hold(phifs_factory):
    fs = mount_with(phifs_factory, extra="patient_folders = /Patients/*\n"
                    "audit_retention = 2s\n")
    old = three_segments(fs)
    time.sleep(3)               # the three are now past audit_retention
    os.makedirs(fs.path("Patients", "late"))
    sealed(fs)
    segs = segments(fs.region_dir_a)
    assert segs[:len(old)] == old and len(segs) > len(old), segs

    # while a legal hold stands, none goes
    p = fs.run("hold", "add", fs.config, "/Patients/P0", "--reason", "case")
    assert p.returncode == 0, p.stderr
    hid = p.stdout.split()[1]
    p = fs.run("gc", fs.config)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "kept every audit trail segment: a legal hold stands" in p.stdout
    assert segments(fs.region_dir_a) == segs
    assert fs.run("hold", "remove", fs.config, hid).returncode == 0

    p = fs.run("gc", fs.config, "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"would delete {2 * len(old)} audit trail segments" in p.stdout
    assert segments(fs.region_dir_a) == segs
    p = fs.run("gc", fs.config)
    assert p.returncode == 0, p.stdout + p.stderr
    # in both regions: the old ones, never the newest
    assert f"deleted {2 * len(old)} audit trail segments" in p.stdout
    for d in (fs.region_dir_a, fs.region_dir_b):
        assert segments(d) == segs[len(old):]
        assert os.path.exists(os.path.join(d, "a", "base"))
    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr
    paths = {e["path"] for e in region_events(fs, "a")}
    assert "/Patients/late" in paths and "/Patients/P0" not in paths
    gcs = events(fs, kinds=("gc",))
    assert f"{2 * len(old)} audit segments deleted" in gcs[-1]["detail"]
    # the chain goes on from what gc left
    write_file(fs.path("Patients", "later"), b"l")
    sealed(fs)
    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr


def test_recover_as_at_an_earlier_moment_goes_on_after_the_trail(
        phifs_factory):
    fs = mount_with(phifs_factory)
    write_file(fs.path("Patients", "early"), b"e")
    sealed(fs, 1)
    time.sleep(1.1)             # a moment between the two syncs
    mid = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    write_file(fs.path("Patients", "late"), b"l")
    sealed(fs, 2)
    before = segments(fs.region_dir_a)
    fs.umount()
    # the local disk is lost; the filesystem comes back as it was at mid
    for name in os.listdir(fs.cache_dir):
        p = os.path.join(fs.cache_dir, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    p = fs.run("recover", fs.config, "--at", mid)
    assert p.returncode == 0, p.stdout + p.stderr
    fs.mount()
    assert not os.path.exists(fs.path("Patients", "late"))
    write_file(fs.path("Patients", "after"), b"a")
    sealed(fs)
    after = segments(fs.region_dir_a)
    # no segment remade under a name in use: the old ones are as they
    # were, and the numbers go on after them
    assert after[:len(before)] == before and len(after) > len(before)
    seqs = [e["seq"] for e in region_events(fs, "a")]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    paths = [e["path"] for e in region_events(fs, "b")]
    assert "/Patients/late" in paths and "/Patients/after" in paths
    p = verify(fs)
    assert p.returncode == 0, p.stdout + p.stderr
