"""Samba sharing a phifs mount, driven by Samba's own clients.

Each test starts a private smbd on 127.0.0.1, with its smb.conf and every
directory it writes (private, lock, state, cache, pid, ncalrpc, log)
inside the test's directory, so that a system smbd and /etc/samba are
never touched.  smbd runs in a network namespace of its own (unshare
--net), listening on port 445 of that namespace's loopback, and the
clients (smbclient, smbcacls, smbtorture) join it with nsenter: smbcacls
cannot be told another port, and no port on the host is taken.  The users
live in a private passwd file that smbd, smbpasswd and the clients read
through nss_wrapper (Debian's libnss-wrapper), each with a password made
afresh for the run and handed to the clients in a mode 0600
authentication file, never on a command line.

smbd shares two folders with the share stanza that the README tells
clinics to use, read out of the README verbatim (only the share name and
`path` differ): [records], a folder on the phifs mount (mounted
allow_other, so that smbd's processes, running as the connected user,
reach it), and [reference], a folder on the local disk beside it.  The
ACL test runs on both; the smbtorture tests require of phifs every
subtest that passes on the local disk, so a failure on both is Samba's
or the test machine's, not phifs's.

Teardown always stops smbd (its whole process group) before the phifs
fixture unmounts, also when the test failed.
"""

import contextlib
import errno
import glob
import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import conftest
from conftest import (OTHER_GID, OTHER_UID, errno_of, read_file, run_as,
                      write_file)

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
README_SECTION = "## Sharing with Samba"
README_SHARE_PATH = "/srv/records"

SAMBA_TOOLS = ("smbd", "smbpasswd", "smbclient", "smbcacls", "smbtorture",
               "testparm", "unshare", "nsenter", "ip")
NETBIOS_NAME = "PHIFSTEST"
# the users smbd knows: name -> uid (gid the same); clinic is the uid the
# other integration tests use for "another user"
USERS = {"clinic": OTHER_UID, "reader": OTHER_UID + 1}
assert OTHER_GID == OTHER_UID
# smbd runs in a network namespace of its own (see Samba.start), so it
# takes the standard port: smbcacls and libsmb cannot be told another one
PORT = 445
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MiB = 1 << 20


# --- the share stanza of the README -----------------------------------

def readme_share_stanza():
    """The first ```ini block of the README's Samba section, verbatim."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.find("\n" + README_SECTION + "\n")
    assert start >= 0, f"README has no '{README_SECTION}' section"
    section = text[start + 1:]
    nxt = re.search(r"^## ", section[len(README_SECTION):], re.M)
    if nxt:
        section = section[:len(README_SECTION) + nxt.start()]
    m = re.search(r"^```ini\n(.*?)^```$", section, re.M | re.S)
    assert m, f"README's '{README_SECTION}' has no ```ini block"
    return m.group(1)


def share_stanza(name, path):
    """The README's stanza with its share name and path replaced."""
    lines = readme_share_stanza().splitlines()
    heads = [i for i, ln in enumerate(lines) if re.match(r"^\[.+\]\s*$", ln)]
    paths = [i for i, ln in enumerate(lines)
             if re.match(r"^\s*path\s*=\s*" + re.escape(README_SHARE_PATH)
                         + r"\s*$", ln)]
    assert len(heads) == 1, f"README's stanza has {len(heads)} sections"
    assert len(paths) == 1, \
        f"README's stanza has no single 'path = {README_SHARE_PATH}' line"
    lines[heads[0]] = f"[{name}]"
    lines[paths[0]] = re.sub(r"=.*", "= " + path, lines[paths[0]])
    return "\n".join(lines) + "\n"


# --- a private smbd ------------------------------------------------------

def nss_wrapper_lib():
    found = glob.glob("/usr/lib/*/libnss_wrapper.so") + \
        glob.glob("/usr/lib/libnss_wrapper.so")
    return found[0] if found else None


def missing_tools():
    missing = [t for t in SAMBA_TOOLS
               if shutil.which(t) is None and
               not os.access(f"/usr/sbin/{t}", os.X_OK)]
    if nss_wrapper_lib() is None:
        missing.append("libnss_wrapper.so")
    return missing


GLOBAL_CONF = """\
[global]
  netbios name = {netbios}
  workgroup = WORKGROUP
  server role = standalone server
  interfaces = 127.0.0.1
  bind interfaces only = yes
  smb ports = {port}
  disable netbios = yes
  private dir = {dir}/private
  lock directory = {dir}/lock
  state directory = {dir}/state
  cache directory = {dir}/cache
  pid directory = {dir}/pid
  ncalrpc dir = {dir}/ncalrpc
  binddns dir = {dir}/bind-dns
  winbindd socket directory = {dir}/winbindd
  passdb backend = tdbsam:{dir}/private/passdb.tdb
  smb passwd file = {dir}/private/smbpasswd
  usershare path = {dir}/usershares
  log file = {dir}/log/smbd.log
  max log size = 0
  log level = 1
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  unix password sync = no
  obey pam restrictions = no

"""


class Samba:
    """One private smbd; see the top of this file."""

    def __init__(self, parent):
        self.dir = os.path.join(parent, "samba")
        self.conf = os.path.join(self.dir, "smb.conf")
        self.log = os.path.join(self.dir, "log", "smbd.log")
        for sub in ("", "private", "lock", "state", "cache", "pid",
                    "ncalrpc", "bind-dns", "winbindd", "usershares", "log",
                    "auth"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(os.path.join(self.dir, "private"), 0o700)
        os.chmod(os.path.join(self.dir, "auth"), 0o700)
        passwd = os.path.join(self.dir, "passwd")
        group = os.path.join(self.dir, "group")
        with open(passwd, "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n"
                    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
            for name, uid in USERS.items():
                f.write(f"{name}:x:{uid}:{uid}:{name}:/nonexistent:"
                        "/bin/false\n")
        with open(group, "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
            for name, uid in USERS.items():
                f.write(f"{name}:x:{uid}:\n")
        self.env = dict(os.environ)
        self.env.update(LD_PRELOAD=nss_wrapper_lib(),
                        NSS_WRAPPER_PASSWD=passwd, NSS_WRAPPER_GROUP=group,
                        # never ask a system winbindd
                        _NO_WINBINDD="1")
        self.passwords = {u: secrets.token_urlsafe(24) for u in USERS}
        self.shares = []
        self.proc = None

    def share(self, name, path):
        """Share path as name with the README's stanza."""
        self.shares.append(share_stanza(name, path))

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write(GLOBAL_CONF.format(netbios=NETBIOS_NAME, port=PORT,
                                       dir=self.dir))
            f.write("\n".join(self.shares))

    def run(self, args, stdin=None, timeout=60):
        return subprocess.run(args, input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              errors="replace", env=self.env, cwd=self.dir,
                              timeout=timeout)

    def add_users(self):
        for user, pw in self.passwords.items():
            p = self.run(["smbpasswd", "-c", self.conf, "-a", "-s", user],
                         stdin=f"{pw}\n{pw}\n")
            assert p.returncode == 0, \
                f"smbpasswd -a {user} exited {p.returncode}: {p.stdout}"
            auth = self.auth_file(user)
            fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"username = {user}\npassword = {pw}\n"
                        f"domain = {NETBIOS_NAME}\n")

    def auth_file(self, user):
        return os.path.join(self.dir, "auth", user)

    def start(self):
        """Start smbd in a network namespace of its own and wait until it
        listens there."""
        assert self.proc is None
        self.write_conf()
        if not os.path.exists(os.path.join(self.dir, "private",
                                           "passdb.tdb")):
            self.add_users()
        smbd = shutil.which("smbd") or "/usr/sbin/smbd"
        out = os.path.join(self.dir, "log", "start.log")
        with open(out, "ab") as f:
            self.proc = subprocess.Popen(
                ["unshare", "--net", "--", "sh", "-c",
                 'ip link set lo up && exec "$0" -F --no-process-group '
                 '-s "$1"', smbd, self.conf],
                stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=self.env,
                cwd=self.dir, start_new_session=True)
        if not self.wait_listening():
            self.stop()
            with open(out, errors="replace") as f:
                started = f.read().strip()
            raise AssertionError(f"smbd did not start: {started}\n"
                                 f"{self.log_tail()}")

    def listening(self):
        """True once smbd's namespace has a socket listening on
        127.0.0.1:PORT (its /proc/PID/net/tcp is that namespace's)."""
        want = "0100007F:%04X" % PORT
        try:
            with open(f"/proc/{self.proc.pid}/net/tcp") as f:
                rows = [ln.split() for ln in f.readlines()[1:]]
        except OSError:
            return False
        return any(r[1] == want and r[3] == "0A" for r in rows)

    def wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.listening():
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        """Stop smbd and every process it forked (its process group)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # children may outlive the parent for a moment
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def log_tail(self, n=4000):
        try:
            with open(self.log, "rb") as f:
                data = f.read()
        except OSError:
            return "(no smbd log)"
        return "smbd log:\n" + data[-n:].decode("utf-8", "replace")

    # clients

    def client(self, tool, share, user, *args):
        """The command line of a Samba client run in smbd's namespace."""
        return ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--",
                tool, f"//127.0.0.1/{share}", "-s", self.conf,
                "-A", self.auth_file(user)] + list(args)

    def smbclient(self, share, commands, user="clinic", check=True):
        """Run `smbclient -c COMMANDS` against share; returns its output.
        With check, any NT_STATUS error or a non-zero exit fails."""
        p = self.run(self.client("smbclient", share, user, "-c", commands))
        if check:
            assert p.returncode == 0 and "NT_STATUS_" not in p.stdout, \
                f"smbclient {commands!r} exited {p.returncode}: {p.stdout}"
        return p.stdout

    def smbcacls(self, share, path, *args, user="clinic", check=True):
        p = self.run(self.client("smbcacls", share, user, path, *args))
        if check:
            assert p.returncode == 0, \
                f"smbcacls {path} {' '.join(args)} exited {p.returncode}: " \
                f"{p.stdout}"
        return p.stdout

    def smbtorture(self, share, test, user="clinic"):
        """Run one smbtorture test; return {subtest: result} with result
        success, failure, error, skip or xfail."""
        p = self.run(self.client("smbtorture", share, user, test),
                     timeout=120)
        res = {}
        for line in p.stdout.splitlines():
            m = re.match(r"^(success|failure|error|skip|xfail): (\S+)", line)
            if m:
                res[m.group(2)] = m.group(1)
        assert res, f"smbtorture {test} ran nothing: {p.stdout[-3000:]}"
        return res, p.stdout


@pytest.fixture
def samba(phifs, request):
    """smbd sharing [records] (a folder on the phifs mount) and
    [reference] (a folder on the local disk), both owned by the user
    clinic, with the README's stanza."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"Samba test tools missing ({', '.join(missing)}): "
                    "bash scripts/deps.sh installs them")
    s = Samba(phifs.base)
    s.records = phifs.path("records")
    s.reference = os.path.join(phifs.base, "reference")
    for name, path in (("records", s.records), ("reference", s.reference)):
        os.mkdir(path)
        os.chown(path, USERS["clinic"], USERS["clinic"])
        os.chmod(path, 0o755)
        s.share(name, path)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        call = getattr(request.node, "rep_call", None)
        if call is None or call.failed:
            sys.stderr.write(s.log_tail() + "\n")


# --- helpers ---------------------------------------------------------------

def tree(root):
    """{relative path: bytes, or None for a folder} of everything under
    root, root itself left out."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for name in dirs:
            out[os.path.normpath(os.path.join(rel, name))] = None
        for name in files:
            out[os.path.normpath(os.path.join(rel, name))] = \
                read_file(os.path.join(d, name))
    return out


def tree_differences(want, got):
    """Lines naming what differs between two tree() results."""
    lines = []
    for p in sorted(set(want) | set(got)):
        if p not in got:
            lines.append(f"missing: {p}")
        elif p not in want:
            lines.append(f"unexpected: {p}")
        elif want[p] != got[p]:
            if want[p] is None or got[p] is None:
                lines.append(f"file/folder mix-up: {p}")
            else:
                lines.append(
                    f"differs: {p} ({len(want[p])} bytes "
                    f"{hashlib.sha256(want[p]).hexdigest()[:12]}, got "
                    f"{len(got[p])} bytes "
                    f"{hashlib.sha256(got[p]).hexdigest()[:12]})")
    return lines


def dos_info(allinfo):
    """The attributes and creation time from smbclient's allinfo."""
    out = {}
    for ln in allinfo.splitlines():
        key, _, value = ln.partition(":")
        if key in ("attributes", "create_time"):
            out[key] = value.strip()
    assert len(out) == 2, f"allinfo: {allinfo}"
    return out


# a patient folder as a practice keeps it: nested folders, names with
# spaces, commas, apostrophes, parentheses and UTF-8 (NFC), a few MB in
# all, sizes on and across the 1 MiB block boundary, and an empty file
PATIENT = "Müller-Lüdenscheidt, Anna (1957-03-02)"
PATIENT_FILES = {
    "Stammdaten.txt": 2_000,
    "Befunde 2024/Röntgen Thorax p.a. 12.03.2024.dcm": MiB + 1,
    "Befunde 2024/Labor – Blutbild & CRP.pdf": 180_000,
    "Befunde 2024/leer.txt": 0,
    "Befunde 2024/Kardiologie/EKG Ruhe (12 Kanal).xml": MiB,
    "Befunde 2024/Kardiologie/Échographie cœur.pdf": 700_000,
    "Briefe/Arztbrief an Dr. O'Brien.docx": 45_000,
    "Briefe/Überweisung Ørthopädie 日本語.odt": 33_333,
    "Briefe/Alt/Brief  mit  zwei  Leerzeichen.txt": 1_234,
    "Bilder/Wunde Tag 1.jpg": 2 * MiB - 17,
}


def make_patient_folder(root, rng):
    for rel, size in PATIENT_FILES.items():
        path = os.path.join(root, PATIENT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, rng.randbytes(size))
    os.makedirs(os.path.join(root, PATIENT, "Briefe", "leerer Ordner"))


# --- tests -------------------------------------------------------------------

def test_readme_share_stanza_is_valid():
    """testparm takes every line of the README's share as written: no
    unknown parameter (smbd would only log and ignore it), and each value
    is the one the share gets."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"Samba test tools missing ({', '.join(missing)}): "
                    "bash scripts/deps.sh installs them")
    stanza = readme_share_stanza()
    settings = [tuple(x.strip() for x in ln.split("=", 1))
                for ln in stanza.splitlines()[1:]
                if ln.strip() and not ln.lstrip().startswith(("#", ";"))]
    keys = [k for k, _ in settings]
    for key in ("vfs objects", "map acl inherit", "store dos attributes",
                "strict sync", "kernel oplocks", "posix locking"):
        assert key in keys, f"README's share does not set '{key}'"
    base = tempfile.mkdtemp(prefix="phifs-samba-", dir=conftest.test_tmp())
    try:
        s = Samba(base)
        s.share("records", base)
        s.write_conf()
        p = s.run(["testparm", "-s", s.conf])
        bad = [ln for ln in p.stdout.splitlines()
               if re.search(r"unknown parameter|^ERROR|^WARNING", ln, re.I)]
        assert p.returncode == 0 and not bad, p.stdout
        for key, value in settings:
            if key == "path":
                continue
            p = s.run(["testparm", "-s", "--section-name=records",
                       f"--parameter-name={key}", s.conf])
            got = p.stdout.splitlines()[-1].strip() if p.stdout else ""
            assert got.lower() == value.lower(), \
                f"testparm: {key} = {got!r}, README says {value!r}"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_patient_folder_in_and_out(samba, phifs):
    rng = random.Random(13)
    src = os.path.join(phifs.base, "src")
    os.mkdir(src)
    make_patient_folder(src, rng)
    want = tree(src)
    samba.smbclient("records", f'lcd "{src}"; prompt off; recurse on; '
                               f'mput "{PATIENT}"')
    got = tree(samba.records)
    assert not tree_differences(want, got), \
        "copied in over SMB:\n" + "\n".join(tree_differences(want, got))

    # DOS attributes and the creation time (user.DOSATTRIB)
    stamm = f"{PATIENT}/Stammdaten.txt"
    samba.smbclient("records", f'setmode "{stamm}" +hs')
    info = dos_info(samba.smbclient("records", f'allinfo "{stamm}"'))
    assert info["attributes"].startswith("HSA"), info

    # what smbd wrote is on the disk: stop smbd, remount, copy out again
    samba.stop()
    phifs.remount()
    samba.start()
    assert dos_info(samba.smbclient("records", f'allinfo "{stamm}"')) == info
    out = os.path.join(phifs.base, "out")
    os.mkdir(out)
    samba.smbclient("records", f'lcd "{out}"; prompt off; recurse on; '
                               f'mget "{PATIENT}"')
    got = tree(out)
    assert not tree_differences(want, got), \
        "copied out over SMB after a remount:\n" + \
        "\n".join(tree_differences(want, got))


def test_rename_over_an_existing_file(samba, phifs):
    """A Windows program's safe save: write a temporary file, then rename
    it over the original (FileRenameInformation with ReplaceIfExists,
    which smbclient sends for `rename SRC DEST -f`)."""
    rng = random.Random(1313)
    old, new = rng.randbytes(300_000), rng.randbytes(200_001)
    local = os.path.join(phifs.base, "local")
    os.mkdir(local)
    write_file(os.path.join(local, "old"), old)
    write_file(os.path.join(local, "new"), new)
    doc, tmp = "Arztbrief an Dr. Ørsted.docx", "~WRL0001.tmp"
    samba.smbclient("records", f'lcd "{local}"; put old "{doc}"; '
                               f'put new "{tmp}"')

    # without -f an existing name is refused and nothing changes
    out = samba.smbclient("records", f'rename "{tmp}" "{doc}"', check=False)
    assert "NT_STATUS_OBJECT_NAME_COLLISION" in out, out
    assert read_file(os.path.join(samba.records, doc)) == old
    assert read_file(os.path.join(samba.records, tmp)) == new

    samba.smbclient("records", f'rename "{tmp}" "{doc}" -f')
    assert sorted(os.listdir(samba.records)) == [doc]
    assert read_file(os.path.join(samba.records, doc)) == new
    samba.smbclient("records", f'lcd "{local}"; get "{doc}" back')
    assert read_file(os.path.join(local, "back")) == new


def compare_with_local_disk(samba, suite, required=()):
    """Run an smbtorture suite against [records] and [reference]; every
    subtest that passes on the local disk, and every one named in
    required, must pass on phifs."""
    on_phifs, out = samba.smbtorture("records", suite)
    on_disk, _ = samba.smbtorture("reference", suite)
    passing = sorted(set(required) |
                     {t for t, r in on_disk.items() if r == "success"})
    assert passing, f"no {suite} subtest passes on the local disk: {on_disk}"
    worse = {t: on_phifs.get(t, "not run") for t in passing
             if on_phifs.get(t) != "success"}
    assert not worse, \
        f"{suite}: fail on phifs, pass on the local disk or are needed: " \
        f"{worse} (local disk: {on_disk})\n" \
        f"{out[-6000:]}"


def test_byte_range_locks_between_clients(samba):
    """smbtorture's smb2.lock: byte-range locks (conflicts, shared and
    exclusive, waiting and cancelled locks, unlock on close); its subtest
    overlap takes them from two connections."""
    compare_with_local_disk(samba, "smb2.lock", required=("overlap",))


def test_durable_handles_survive_a_reconnect(samba):
    """smbtorture's smb2.durable-open: a client that loses its connection
    gets its open files back, with their oplocks, leases and byte-range
    locks (the README's share turns kernel oplocks off, without which no
    handle is durable, and posix locking, without which a locked one is
    not)."""
    compare_with_local_disk(samba, "smb2.durable-open",
                            required=("reopen1", "lock-oplock", "lock-lease"))


def acl_lines(out):
    """The ACE lines of smbcacls output.  For an ACE without flags
    smbcacls (4.17) looks at the byte before its empty flag string, so it
    prints "/0x0/" or, now and then, "//": both mean no flags."""
    return [re.sub(r"^(ACL:[^:]*:[A-Z]+)//", r"\1/0x0/", ln)
            for ln in out.splitlines() if ln.startswith("ACL:")]



@pytest.mark.parametrize("share", ["records", "reference"])
def test_windows_acls_set_and_read_back(samba, phifs, share):
    """Windows permissions through acl_xattr: an ACL set with smbcacls
    reads back the same, is enforced for another user, is kept in
    security.NTACL, is inherited by a new file from its folder, and
    survives a restart of smbd and a remount."""
    root = samba.records if share == "records" else samba.reference
    local = os.path.join(phifs.base, "local")
    os.mkdir(local)
    data = random.Random(7).randbytes(50_000)
    write_file(os.path.join(local, "befund"), data)
    samba.smbclient(share, f'lcd "{local}"; mkdir Akte; '
                           'put befund "Akte/Befund.pdf"')
    clinic = f"ACL:{NETBIOS_NAME}\\clinic:ALLOWED/0x0/FULL"
    reader = f"ACL:{NETBIOS_NAME}\\reader:ALLOWED/0x0/READ"

    # only clinic: reader is refused
    samba.smbcacls(share, "Akte/Befund.pdf", "--set", clinic)
    assert acl_lines(samba.smbcacls(share, "Akte/Befund.pdf")) == [clinic]
    get = f'lcd "{local}"; get "Akte/Befund.pdf" got'
    out = samba.smbclient(share, get, user="reader", check=False)
    assert "NT_STATUS_ACCESS_DENIED" in out, out

    # reader may read once an ACE says so
    samba.smbcacls(share, "Akte/Befund.pdf", "--add", reader)
    assert sorted(acl_lines(samba.smbcacls(share, "Akte/Befund.pdf"))) == \
        sorted([clinic, reader])
    samba.smbclient(share, get, user="reader")
    assert read_file(os.path.join(local, "got")) == data
    # the POSIX side: the kernel lets reader's programs on the server read
    # it too, and no one else's
    path = os.path.join(root, "Akte", "Befund.pdf")
    assert run_as(USERS["reader"], USERS["reader"], read_file, path) == data
    assert errno_of(run_as, OTHER_UID + 2, OTHER_UID + 2, read_file,
                    path) == errno.EACCES
    assert os.getxattr(os.path.join(root, "Akte", "Befund.pdf"),
                       "security.NTACL")

    # an inheritable ACE on the folder reaches a file made in it: a deny,
    # which POSIX ACLs cannot say, so it comes from the folder's NT ACL
    deny = f"ACL:{NETBIOS_NAME}\\reader:DENIED/OI|CI/READ"
    samba.smbcacls(share, "Akte", "--add", deny)
    samba.smbclient(share, f'lcd "{local}"; put befund "Akte/Brief.txt"')
    brief = acl_lines(samba.smbcacls(share, "Akte/Brief.txt"))
    assert any(re.fullmatch(rf"ACL:{NETBIOS_NAME}\\reader:DENIED/(0x0|I)/READ",
                            ln) for ln in brief), brief
    out = samba.smbclient(share, f'lcd "{local}"; get "Akte/Brief.txt" b',
                          user="reader", check=False)
    assert "NT_STATUS_ACCESS_DENIED" in out, out
    samba.smbclient(share, f'lcd "{local}"; get "Akte/Brief.txt" b')
    assert read_file(os.path.join(local, "b")) == data

    # all of it is on the disk
    before = {p: samba.smbcacls(share, p)
              for p in ("Akte", "Akte/Befund.pdf", "Akte/Brief.txt")}
    samba.stop()
    phifs.remount()
    samba.start()
    after = {p: samba.smbcacls(share, p) for p in before}
    assert after == before


def traced_by(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def test_windows_flush_is_an_fsync_on_phifs(samba):
    """strict sync: an SMB2 FLUSH (smbtorture's flush_flush sends two)
    makes smbd fsync the file on the phifs mount before it answers."""
    if shutil.which("strace") is None:
        pytest.skip("strace is missing: bash scripts/deps.sh installs it")
    trace = os.path.join(samba.dir, "log", "strace")
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync",
         "-o", trace, "-p", str(samba.proc.pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while traced_by(samba.proc.pid) != tracer.pid:
            assert tracer.poll() is None, "strace could not attach to smbd"
            assert time.monotonic() < deadline, "strace did not attach"
            time.sleep(0.02)
        res, out = samba.smbtorture("records",
                                    "smb2.compound_async.flush_flush")
        assert set(res.values()) == {"success"}, out[-3000:]
    finally:
        tracer.terminate()
        tracer.wait(timeout=STOP_TIMEOUT)
    with open(trace, errors="replace") as f:
        calls = [ln for ln in f
                 if re.search(r"\b(fsync|fdatasync)\(\d+<" +
                              re.escape(samba.records) + r"/.*= 0$", ln)]
    assert calls, "smbd did not fsync a file on the phifs mount"
