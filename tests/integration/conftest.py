"""Fixtures and a TAP reporter for the phifs integration tests.

Every test gets a private directory holding a config file, a cache_dir,
two dir: regions (a and b), a mountpoint, and the key file that mkfs
creates there (so that nothing ever asks for a passphrase).  Those
directories go in $PHIFS_TEST_TMP, the one directory scripts/test.sh makes
for its run (else in $TMPDIR, else /tmp), so that a run can clear what a
crashed test left behind without touching anyone else's mounts.  The
`phifs` fixture formats and
mounts a fresh filesystem there (with -f, in a child process whose pid the
test can kill -9) and always unmounts and removes it afterwards, also when
the test failed or the daemon died.  `phifs_bare` gives the same directory
with a config but nothing formatted or mounted, and `phifs_factory` makes
more of either kind.

The tests need root (other uids, allow_other) and /dev/fuse; without them
every test is skipped.  The binary under test is $PHIFS.

Every phifs command a fixture runs gets PhiFS.env on top of the test's
environment: a test sets PHIFS_PASSPHRASE or PHIFS_FAULT_DIR there.  The
fault hook: with PHIFS_FAULT_DIR set, each region is wrapped in a fault
backend that obeys the file $PHIFS_FAULT_DIR/<region name> (see
PhiFS.set_faults()).  Commands run in a new session, without a
controlling terminal, so a missing secret fails instead of prompting.

TAP.  meson runs each test file with protocol 'tap'.  The plugin at the end
of this file writes "ok N - nodeid" / "not ok N - nodeid" for each test to
the original stdout, with failure details as "# " comment lines, and the
plan "1..N" last.  pytest's own terminal report goes to stderr, so nothing
else reaches stdout.
"""

import contextlib
import ctypes
import ctypes.util
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import pytest

PHIFS = os.environ.get("PHIFS")
MOUNT_OPTS = "allow_other,default_permissions"
OTHER_UID = 1234
OTHER_GID = 1234
MOUNT_TIMEOUT = 60.0     # a deadline on a poll: ASan on a loaded box
UMOUNT_TIMEOUT = 60.0


# --- environment ---------------------------------------------------------

def skip_reason():
    """Why the integration tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "integration tests need root (other uids, allow_other)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    if not PHIFS:
        return "PHIFS is not set (run the tests through meson test)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = skip_reason()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))
        return
    if not (os.path.isfile(PHIFS) and os.access(PHIFS, os.X_OK)):
        for item in items:
            item.add_marker(pytest.mark.skip(
                reason=f"PHIFS={PHIFS} is not an executable file"))


# --- mounts and processes ------------------------------------------------

def _unescape_mountinfo(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out = bytearray()
    b = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(b):
        if b[i:i + 1] == b"\\" and i + 4 <= len(b) and b[i + 1:i + 4].isdigit():
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def mounts():
    """[(mountpoint, fstype)] from /proc/self/mountinfo."""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            res.append((_unescape_mountinfo(fields[4]), right.split()[0]))
    return res


def is_fuse_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path and t.startswith("fuse") for mp, t in mounts())


def fuse_mounts_under(base):
    base = os.path.realpath(base).rstrip("/") + "/"
    return [mp for mp, t in mounts()
            if t.startswith("fuse") and (mp + "/").startswith(base)]


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return st.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_pid_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


def pids_referencing(text):
    """Pids whose command line contains text (our private temp dir)."""
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            res.append(int(d))
    return res


def fusermount_u(mnt, lazy=False):
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mnt]
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=30)


# --- running code as another user ----------------------------------------

class ChildError(Exception):
    """The child of run_as() died or produced no result."""


def run_as(uid, gid, fn, *args, groups=(), timeout=60.0, **kwargs):
    """Run fn(*args, **kwargs) in a forked child and return its result.

    With uid/gid not None the child first drops to groups/gid/uid.  An
    exception raised in the child is re-raised here (OSError keeps its
    errno) with the child's traceback as a note.  The result must pickle.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                if gid is not None:
                    os.setgroups(list(groups))
                    os.setgid(gid)
                if uid is not None:
                    os.setuid(uid)
                res = ("ok", fn(*args, **kwargs))
            except BaseException as e:  # noqa: B902 - report everything
                res = ("err", e, traceback.format_exc())
            try:
                data = pickle.dumps(res)
            except Exception as e:
                data = pickle.dumps(("err", ChildError(
                    f"unpicklable child result {res!r}: {e}"), ""))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise ChildError(f"child {pid} did not finish in {timeout}s")
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if not chunks:
        raise ChildError(f"child died without a result (wait status {status})")
    res = pickle.loads(b"".join(chunks))
    if res[0] == "ok":
        return res[1]
    exc, tb = res[1], res[2]
    if tb and hasattr(exc, "add_note"):
        exc.add_note("in child (uid %s gid %s):\n%s" % (uid, gid, tb))
    raise exc


def run_in_child(fn, *args, **kwargs):
    """Run fn in another process with our own ids (for locks)."""
    return run_as(None, None, fn, *args, **kwargs)


def errno_of(fn, *args, **kwargs):
    """Call fn; return 0 on success or the errno of the OSError it raised."""
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return e.errno
    return 0


# --- the filesystem under test -------------------------------------------

DEFAULT_CONFIG = """\
[filesystem]
cache_dir = {cache_dir}
cache_size = 20G
block_size = 1M
key_file = {key_file}
seal_delay = 1s

[region a]
url = dir:{region_dir_a}

[region b]
url = dir:{region_dir_b}
"""


_ALL = []       # every PhiFS made, for the safety net at the end


def test_tmp():
    """Where this run's private directories go."""
    return os.environ.get("PHIFS_TEST_TMP") or tempfile.gettempdir()


class PhiFS:
    """One private filesystem: config, cache_dir, regions, mountpoint.
    parent: where its directory goes (default test_tmp())."""

    def __init__(self, tag="it", parent=None):
        self.base = tempfile.mkdtemp(prefix=f"phifs-{tag}-",
                                     dir=parent or test_tmp())
        # other uids must reach the mountpoint through base
        os.chmod(self.base, 0o755)
        self.cache_dir = os.path.join(self.base, "cache")
        self.region_dir_a = os.path.join(self.base, "region-a")
        self.region_dir_b = os.path.join(self.base, "region-b")
        self.region_dir = self.region_dir_a     # older tests: one region
        self.key_file = os.path.join(self.base, "key")    # made by mkfs
        self.fault_dir = os.path.join(self.base, "faults")
        self.mnt = os.path.join(self.base, "mnt")
        self.config = os.path.join(self.base, "phifs.ini")
        for d in (self.cache_dir, self.region_dir_a, self.region_dir_b,
                  self.mnt):
            os.mkdir(d)
            os.chmod(d, 0o755)
        self.env = {}           # added to every phifs command's environment
        self.write_config()
        self.proc = None        # Popen of a -f mount
        self.pid = None         # daemon pid
        self.logs = []          # daemon log files, newest last
        self.unexpected = []    # problems to report at teardown
        self.mount_count = 0
        self.cleaned = False
        _ALL.append(self)

    # config and commands

    def write_config(self, text=None):
        if text is None:
            text = DEFAULT_CONFIG.format(cache_dir=self.cache_dir,
                                         key_file=self.key_file,
                                         region_dir_a=self.region_dir_a,
                                         region_dir_b=self.region_dir_b)
        with open(self.config, "w") as f:
            f.write(text)

    def environ(self, env=None):
        e = dict(os.environ)
        e.update(self.env)
        e.update(env or {})
        return e

    def set_faults(self, region, words):
        """Make region misbehave ("fail_all", "latency_ms=200 put", ...;
        None for no faults) in processes started with the fault hook on,
        which set_faults() turns on for later commands."""
        os.makedirs(self.fault_dir, exist_ok=True)
        self.env["PHIFS_FAULT_DIR"] = self.fault_dir
        path = os.path.join(self.fault_dir, region)
        if words is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(words + "\n")
        os.rename(tmp, path)        # whole, as the fault backend reads it

    def run(self, *args, timeout=120, user=None, check=False, cwd=None,
            env=None):
        """Run `phifs ARGS`; return the CompletedProcess (text)."""
        kw = {}
        if user is not None:
            kw = dict(user=user, group=user, extra_groups=[])
        p = subprocess.run([PHIFS] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors="replace", timeout=timeout,
                           cwd=cwd or self.base, env=self.environ(env),
                           start_new_session=True, **kw)
        if check and p.returncode != 0:
            raise AssertionError(
                f"phifs {' '.join(args)} exited {p.returncode}: "
                f"{p.stderr.strip()}")
        return p

    def mkfs(self):
        self.run("mkfs", self.config, check=True)

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    # mounting

    def mount(self, opts=MOUNT_OPTS, foreground=True, nofile=None):
        """Mount and wait until the mount is there.  nofile: soft limit on
        the daemon's open files (systemd starts services with 1024)."""
        assert not is_fuse_mounted(self.mnt), f"{self.mnt} is already mounted"
        self.mount_count += 1
        if not foreground:
            p = self.run("mount", self.config, self.mnt, "-o", opts)
            assert p.returncode == 0, \
                f"phifs mount exited {p.returncode}: {p.stderr.strip()}"
            assert is_fuse_mounted(self.mnt), \
                "phifs mount returned before the mount was ready"
            st = self.status()
            assert isinstance(st.get("pid"), int), f"status: {st}"
            self.pid, self.proc = st["pid"], None
            return
        log = os.path.join(self.base, f"daemon-{self.mount_count}.log")
        self.logs.append(log)
        prefix = [] if nofile is None else ["prlimit", f"--nofile={nofile}:"]
        with open(log, "wb") as lf:
            self.proc = subprocess.Popen(
                prefix + [PHIFS, "mount", self.config, self.mnt, "-f",
                          "-o", opts],
                stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                cwd=self.base, env=self.environ(), start_new_session=True)
        self.pid = self.proc.pid
        # Reap the daemon as soon as it exits, as systemd or a shell would:
        # `phifs umount` waits for the daemon to be gone, not a zombie.
        threading.Thread(target=self.proc.wait, daemon=True).start()
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_fuse_mounted(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = self.pid = None
                raise AssertionError(
                    f"phifs mount -f exited {rc} before mounting: "
                    f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no mount at {self.mnt} after {MOUNT_TIMEOUT}s: "
                    f"{self.log_tail()}")
            time.sleep(0.01)

    def daemon_alive(self):
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def umount(self):
        """`phifs umount`; the daemon must exit cleanly."""
        assert self.pid is not None, "not mounted by this fixture"
        if not self.daemon_alive():
            rc = self.proc.returncode if self.proc else None
            raise AssertionError(
                f"the daemon died during the test (exit {rc}): "
                f"{self.log_tail()}")
        p = self.run("umount", self.mnt, timeout=UMOUNT_TIMEOUT)
        assert p.returncode == 0, \
            f"phifs umount exited {p.returncode}: {p.stderr.strip()}"
        assert not is_fuse_mounted(self.mnt), "still mounted after umount"
        if self.proc is not None:
            try:
                rc = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError("phifs umount returned before the "
                                     "daemon exited")
            assert rc == 0, f"daemon exited {rc}: {self.log_tail()}"
        else:
            assert wait_pid_gone(self.pid, 5), \
                "phifs umount returned before the daemon exited"
        self.proc = self.pid = None

    def remount(self, opts=MOUNT_OPTS):
        self.umount()
        self.mount(opts)

    def kill9(self, before_umount=None):
        """kill -9 the daemon and remove the dead mount.  before_umount()
        runs once the daemon is dead (to stop processes using the mount)."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        else:
            wait_pid_gone(self.pid, 30)
        self.proc = self.pid = None
        if before_umount is not None:
            before_umount()
        p = fusermount_u(self.mnt)
        if p.returncode != 0 or is_fuse_mounted(self.mnt):
            fusermount_u(self.mnt, lazy=True)
        assert not is_fuse_mounted(self.mnt), \
            f"dead mount stays: {p.stderr.strip()}"

    def status(self):
        p = self.run("status", self.config, "--json")
        assert p.returncode == 0, \
            f"phifs status exited {p.returncode}: {p.stderr.strip()}"
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError(f"status --json is no JSON ({e}): "
                                 f"{p.stdout!r}")

    def wait_status(self, pred, timeout=60.0):
        """Poll `phifs status --json` until pred(status) holds (sizes are
        recorded by the daemon within a few seconds; an ASan build on a
        loaded machine takes many times that); return the last."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.2)

    def log_tail(self, n=4000):
        if not self.logs:
            return "(no daemon log)"
        try:
            with open(self.logs[-1], "rb") as f:
                data = f.read()
        except OSError:
            return "(no daemon log)"
        text = data[-n:].decode("utf-8", "replace").strip()
        return f"daemon log {self.logs[-1]}:\n{text}" if text else \
            "(daemon log is empty)"

    # teardown

    def cleanup(self):
        """Unmount whatever is mounted under base, stop our daemons, remove
        base.  Returns a list of problems (empty when all went cleanly)."""
        self.cleaned = True
        problems = list(self.unexpected)
        if self.pid is not None:
            try:
                self.umount()
            except Exception as e:  # keep cleaning up
                problems.append(f"unmount at teardown failed: {e}")
        for mp in fuse_mounts_under(self.base):
            p = self.run("umount", mp, timeout=UMOUNT_TIMEOUT) \
                if PHIFS else None
            if is_fuse_mounted(mp):
                fusermount_u(mp, lazy=True)
            if p is not None and p.returncode != 0:
                problems.append(f"left a mount at {mp}")
        for pid in ([self.pid] if self.pid else []) + \
                pids_referencing(self.base):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_pid_gone(pid, 10)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        self.proc = self.pid = None
        if fuse_mounts_under(self.base):
            problems.append(f"cannot unmount under {self.base}; left in place")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        return problems


def pytest_unconfigure(config):
    """Safety net: nothing stays mounted, even after an interrupted run."""
    for fs in _ALL:
        if not fs.cleaned:
            fs.cleanup()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _finish(request, objs):
    problems = []
    call = getattr(request.node, "rep_call", None)
    failed = call is None or call.failed
    for fs in objs:
        if failed and fs.logs:
            sys.stderr.write(fs.log_tail() + "\n")
        problems += fs.cleanup()
    if problems and failed:
        # the failed test may have left files open in the mount; its own
        # report says what went wrong
        sys.stderr.write("teardown: " + "; ".join(problems) + "\n")
    elif problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def phifs_factory(request):
    """make(mounted=True, tag, parent) -> PhiFS; all are cleaned up at
    teardown."""
    made = []

    def make(mounted=True, tag="it", parent=None):
        fs = PhiFS(tag, parent)
        made.append(fs)
        if mounted:
            fs.mkfs()
            fs.mount()
        return fs

    yield make
    _finish(request, made)


@pytest.fixture
def phifs(phifs_factory):
    """A freshly formatted filesystem, mounted with MOUNT_OPTS."""
    return phifs_factory(mounted=True)


@pytest.fixture
def phifs_bare(phifs_factory):
    """Directories and a config; nothing formatted or mounted."""
    return phifs_factory(mounted=False)


@pytest.fixture(autouse=True)
def _umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --- small helpers shared by the test files -------------------------------

def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def empty_dir(root):
    """Remove everything in root, keeping root (an emptied region)."""
    for name in os.listdir(root):
        p = os.path.join(root, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def pread_all(fd, size, off):
    out = bytearray()
    while len(out) < size:
        b = os.pread(fd, size - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                            use_errno=True)
    return _libc


def check_libc(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


# --- TAP ------------------------------------------------------------------

class TapReporter:
    """Writes one TAP line per test to the original stdout."""

    def __init__(self, config):
        capman = config.pluginmanager.getplugin("capturemanager")
        ctx = capman.global_and_fixture_disabled() if capman \
            else contextlib.nullcontext()
        with ctx:
            sys.stdout.flush()
            fd = os.dup(1)
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8",
                             errors="replace")
        self.n = 0
        self.reports = {}

    def emit(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def comment(self, text):
        lines = str(text).splitlines()
        if len(lines) > 300:
            lines = lines[:100] + ["..."] + lines[-200:]
        for line in lines:
            self.emit("# " + line)

    @staticmethod
    def name(nodeid):
        return nodeid.replace("#", "_").replace("\n", " ")

    def pytest_runtest_logreport(self, report):
        self.reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid, location):
        reps = self.reports.pop(nodeid, [])
        self.n += 1
        name = self.name(nodeid)
        failed = [r for r in reps if r.failed]
        xfail = [r for r in reps if hasattr(r, "wasxfail")]
        skipped = [r for r in reps if r.skipped and not hasattr(r, "wasxfail")]
        if failed:
            self.emit(f"not ok {self.n} - {name}")
            for r in failed:
                self.comment(f"--- {r.when} ---")
                self.comment(r.longreprtext)
                for sec, content in r.sections:
                    if content.strip():
                        self.comment(f"--- {sec} ---")
                        self.comment(content)
        elif xfail:
            ok = "ok" if all(r.passed for r in xfail) else "not ok"
            self.emit(f"{ok} {self.n} - {name} # TODO {xfail[0].wasxfail}")
        elif skipped:
            rep = skipped[0]
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) \
                else str(rep.longrepr)
            if reason.startswith("Skipped: "):
                reason = reason[len("Skipped: "):]
            reason = reason.replace("\n", " ")
            self.emit(f"ok {self.n} - {name} # SKIP {reason}")
        else:
            self.emit(f"ok {self.n} - {name}")

    def pytest_collectreport(self, report):
        if report.failed:
            self.n += 1
            self.emit(f"not ok {self.n} - collect {self.name(report.nodeid)}")
            self.comment(report.longreprtext)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.n == 0:
            self.emit("1..0 # SKIP no tests ran")
        else:
            self.emit(f"1..{self.n}")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if config.pluginmanager.has_plugin("phifs-tap"):
        return
    config.pluginmanager.register(TapReporter(config), "phifs-tap")
    # pytest's own report goes to stderr so that stdout stays pure TAP
    tr = config.pluginmanager.getplugin("terminalreporter")
    if tr is not None:
        from _pytest.config import create_terminal_writer
        tr._tw = create_terminal_writer(config, sys.stderr)
