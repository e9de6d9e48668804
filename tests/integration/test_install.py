"""Installing phifs the way a Debian server runs it: `meson install`, the
mount(8) helper mount.phifs, the systemd unit phifs@.service (Type=notify
through NOTIFY_SOCKET: this machine has no systemd running) and the
Debian package built from debian/.

Registered for the plain build only (not the sanitizer builds): the
package is built from a copy of the source tree, never in the checkout.
The part that installs the package refuses to run (skips) when a phifs
package, or any file the package would install, is already on the
machine: it may be someone's live one.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import conftest
from conftest import (PHIFS, is_fuse_mounted, pid_alive, read_file,
                      wait_pid_gone, write_file)

MiB = 1 << 20
SRC = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.dirname(os.path.dirname(os.path.realpath(PHIFS or ".")))
NOTIFY_TIMEOUT = 30.0
PACKAGED = ["/usr/bin/phifs", "/sbin/mount.phifs",
            "/lib/systemd/system/phifs@.service"]


def run(args, timeout=120, **kw):
    return subprocess.run(args, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", timeout=timeout, **kw)


def readme_fstab_options():
    """The options of the fstab line the README shows."""
    with open(os.path.join(SRC, "README.md")) as f:
        lines = [m.group(1) for m in (re.match(
            r"^/etc/phifs/\S+\s+/\S+\s+phifs\s+(\S+)\s+0\s+0$", x)
            for x in f) if m]
    assert len(lines) == 1, f"README shows {len(lines)} fstab lines"
    return lines[0]


def add_config(fs, **keys):
    """Set KEY = VALUE in the [filesystem] section of fs.config."""
    text = "".join(x for x in read_file(fs.config).decode().splitlines(True)
                   if x.split("=")[0].strip() not in keys)
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    fs.write_config(text.replace("[filesystem]\n", "[filesystem]\n" + extra,
                                 1))


@pytest.fixture(scope="module")
def workdir():
    """This file's private directory (in the run's test_tmp()), removed
    at the end."""
    path = tempfile.mkdtemp(prefix="phifs-install-", dir=conftest.test_tmp())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tmp_dir(workdir, request):
    """A fresh folder in workdir for one test."""
    return tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=workdir)


# --- meson install ------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(workdir):
    """`meson install --destdir` of the build under test: (destdir,
    prefix)."""
    if not os.path.isfile(os.path.join(BUILD, "build.ninja")):
        pytest.skip(f"{BUILD} is not a meson build directory")
    dest = os.path.join(workdir, "destdir")
    p = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet",
             "--destdir", dest])
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(["meson", "introspect", BUILD, "--buildoptions"])
    prefix = re.search(r'"name": "prefix", "value": "([^"]*)"', p.stdout)
    assert prefix, "no prefix in meson introspect --buildoptions"
    return dest, prefix.group(1)


def find_unit(dest):
    for dirpath, _, names in os.walk(dest):
        if "phifs@.service" in names:
            return os.path.join(dirpath, "phifs@.service")
    return None


def test_meson_install_lists_the_files(installed):
    dest, prefix = installed
    files = sorted(os.path.relpath(os.path.join(d, n), dest)
                   for d, _, names in os.walk(dest) for n in names)
    binary = os.path.join(prefix, "bin", "phifs")
    assert os.access(dest + binary, os.X_OK), files
    helper = os.path.join(dest, "sbin", "mount.phifs")
    assert os.path.islink(helper), files
    assert os.readlink(helper) == binary
    unit = find_unit(dest)
    assert unit and re.search(r"/lib/systemd/system/phifs@\.service$",
                              unit), files
    text = read_file(unit).decode()
    assert f"ExecStart={binary} mount -f /etc/phifs/%i.ini\n" in text, text
    assert "Type=notify\n" in text, text


def test_systemd_analyze_verify(installed, tmp_dir):
    """The unit as installed, its ExecStart pointed at the binary under
    test (verify wants the program to exist), for an instance."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    dest, prefix = installed
    text = read_file(find_unit(dest)).decode()
    text = text.replace(f"ExecStart={prefix}/bin/phifs ",
                        f"ExecStart={PHIFS} ")
    assert f"ExecStart={PHIFS} mount" in text
    unit = os.path.join(tmp_dir, "phifs@clinic.service")
    with open(unit, "w") as f:
        f.write(text)
    p = run(["systemd-analyze", "verify", unit])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "phifs" not in p.stdout + p.stderr, p.stdout + p.stderr


def test_readme_fstab_line_through_systemd(tmp_dir):
    """systemd's fstab generator makes an automount, ordered after the
    network, from the README's line, and the units it makes verify."""
    gen = "/lib/systemd/system-generators/systemd-fstab-generator"
    if not os.access(gen, os.X_OK) or not shutil.which("systemd-analyze"):
        pytest.skip("systemd is not installed")
    opts = readme_fstab_options()
    assert "x-systemd.automount" in opts.split(","), opts
    mnt = os.path.join(tmp_dir, "records")
    os.mkdir(mnt)
    fstab = os.path.join(tmp_dir, "fstab")
    with open(fstab, "w") as f:
        f.write(f"/etc/phifs/clinic.ini {mnt} phifs {opts} 0 0\n")
    out = os.path.join(tmp_dir, "units")
    os.mkdir(out)
    p = run([gen, out, out, out], env=dict(os.environ, SYSTEMD_FSTAB=fstab,
                                           SYSTEMD_PROC_CMDLINE=""))
    assert p.returncode == 0, p.stderr
    name = run(["systemd-escape", "--path", mnt]).stdout.strip()
    automount = os.path.join(out, name + ".automount")
    mount = os.path.join(out, name + ".mount")
    assert os.path.isfile(automount) and os.path.isfile(mount), \
        os.listdir(out)
    assert os.path.exists(os.path.join(out, "remote-fs.target.wants",
                                       name + ".automount"))
    text = read_file(mount).decode()
    assert "Type=phifs\n" in text and f"Options={opts}\n" in text, text
    p = run(["systemd-analyze", "verify", mount, automount])
    assert p.returncode == 0, p.stdout + p.stderr


# --- NOTIFY_SOCKET ------------------------------------------------------------

class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket;
    every message as a dict of its KEY=VALUE lines, in order."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def next(self, timeout=NOTIFY_TIMEOUT):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None
        msg = dict(line.split("=", 1)
                   for line in data.decode().splitlines() if "=" in line)
        self.messages.append(msg)
        return msg

    def wait_for(self, pred, what, proc, timeout=NOTIFY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.next(max(0.1, deadline - time.monotonic()))
            if msg is not None and pred(msg):
                return msg
            if msg is None and proc.poll() is not None:
                break
        raise AssertionError(f"no {what}; messages: {self.messages}")

    def close(self):
        self.sock.close()


def start_notify_mount(fs, listener):
    """`phifs mount -f CONFIG` (the mountpoint from the configuration) as
    phifs@.service runs it, with NOTIFY_SOCKET set."""
    log = os.path.join(fs.base, "daemon-notify.log")
    fs.logs.append(log)
    with open(log, "wb") as lf:
        fs.proc = subprocess.Popen(
            [PHIFS, "mount", "-f", fs.config], stdin=subprocess.DEVNULL,
            stdout=lf, stderr=lf, cwd=fs.base, start_new_session=True,
            env=fs.environ({"NOTIFY_SOCKET": listener.path}))
    fs.pid = fs.proc.pid
    threading.Thread(target=fs.proc.wait, daemon=True).start()


def test_notify_ready_status_stopping(phifs_bare):
    fs = phifs_bare
    add_config(fs, mountpoint=fs.mnt, seal_delay="1h")
    fs.set_faults("a", None)        # the fault hook on, no faults yet
    fs.mkfs()
    listener = NotifyListener(os.path.join(fs.base, "notify"))
    try:
        start_notify_mount(fs, listener)
        ready = listener.next()
        assert ready is not None, f"no message: {fs.log_tail()}"
        # the first message says ready, and only once the mount answers
        assert ready.get("READY") == "1", listener.messages
        assert is_fuse_mounted(fs.mnt)
        assert os.listdir(fs.mnt) == []
        assert ready["STATUS"] == ("dirty 0 B, 0 B waiting for the "
                                   "regions, all 2 up"), ready

        # an open file is not sealed (seal_delay 1h): its blocks stay
        # dirty; the status counts their bytes, not whole blocks
        data = os.urandom(3 * MiB + 12 * 1024)
        fd = os.open(fs.path("scan.dcm"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            assert os.write(fd, data) == len(data)
            listener.wait_for(lambda m: m.get("STATUS", "").startswith(
                "dirty 3.0 MiB,"), "STATUS with the dirty bytes", fs.proc)
            fs.set_faults("a", "fail_all put")
        finally:
            os.close(fd)                # sealed now, region a refuses it
        down = listener.wait_for(
            lambda m: m.get("STATUS", "").endswith("1 of 2 down: a"),
            "STATUS with region a down", fs.proc)
        assert not down["STATUS"].startswith("dirty 0 B, 0 B"), down
        fs.set_faults("a", None)

        fs.proc.send_signal(signal.SIGTERM)    # systemctl stop
        stopping = listener.wait_for(lambda m: "STOPPING" in m,
                                     "STOPPING=1", fs.proc)
        assert stopping["STOPPING"] == "1"
        assert fs.proc.wait(timeout=60) == 0, fs.log_tail()
        fs.proc = fs.pid = None
        assert listener.next(timeout=0) is None, "sent after STOPPING=1"
        assert not is_fuse_mounted(fs.mnt)
        assert "unmounted cleanly" in fs.log_tail()
        assert all("READY" not in m for m in listener.messages[1:])
    finally:
        listener.close()
    fs.set_faults("a", None)
    fs.mount()
    assert read_file(fs.path("scan.dcm")) == data
    fs.umount()


def test_mount_without_mountpoint_needs_the_key(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    p = fs.run("mount", fs.config)
    assert p.returncode == 2
    assert p.stderr.strip() == (f"phifs: {fs.config}: no mountpoint: give "
                                "one after CONFIG or set mountpoint in "
                                "[filesystem]"), p.stderr
    assert not is_fuse_mounted(fs.mnt)


# --- mount.phifs ---------------------------------------------------------------

@pytest.fixture
def helper(tmp_dir):
    """mount.phifs as meson installs it: a link to the phifs binary."""
    path = os.path.join(tmp_dir, "mount.phifs")
    os.symlink(PHIFS, path)
    return path


def helper_mount(fs, helper, *args):
    """mount.phifs CONFIG MOUNTPOINT ARGS; the daemon logs to a file (no
    syslog here)."""
    add_config(fs, log_file=os.path.join(fs.base, "daemon.log"))
    p = run([helper, fs.config, fs.mnt] + list(args), cwd=fs.base,
            env=fs.environ(), start_new_session=True)
    if p.returncode == 0:
        fs.pid = fs.status()["pid"]
    return p


def test_mount_helper_drops_fstab_options(phifs_bare, helper):
    fs = phifs_bare
    fs.mkfs()
    p = helper_mount(fs, helper, "-n", "-o",
                     "rw,allow_other,_netdev,nofail,defaults,noauto,"
                     "x-systemd.automount,x-systemd.mount-timeout=30,"
                     "comment=clinic,user,nouser")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert is_fuse_mounted(fs.mnt)
    with open("/proc/self/mountinfo") as f:
        line = next(x for x in f if f" {fs.mnt} " in x)
    assert "allow_other" in line, line
    write_file(fs.path("a"), b"x")
    fs.umount()


def test_mount_helper_refuses_an_unknown_option(phifs_bare, helper):
    fs = phifs_bare
    fs.mkfs()
    p = helper_mount(fs, helper, "-o", "allow_other,_netdev,frobnicate")
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "frobnicate" in p.stderr, p.stderr
    assert not is_fuse_mounted(fs.mnt)
    p = helper_mount(fs, helper, "-f", "-o", "frobnicate")     # fake
    assert p.returncode == 1 and "frobnicate" in p.stderr, p.stderr
    assert not is_fuse_mounted(fs.mnt)


def test_mount_helper_fake_and_sloppy(phifs_bare, helper):
    fs = phifs_bare
    fs.mkfs()
    p = helper_mount(fs, helper, "-fv", "-o", "allow_other,nofail")
    assert p.returncode == 0, p.stderr
    assert f"phifs mount {fs.config} {fs.mnt} -o allow_other" in p.stderr
    assert not is_fuse_mounted(fs.mnt)
    p = helper_mount(fs, helper, "-s", "-o", "frobnicate,allow_other")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == ("phifs: warning: ignoring unknown mount "
                                "option 'frobnicate' (-s)"), p.stderr
    assert is_fuse_mounted(fs.mnt)
    fs.umount()


def test_mount_helper_usage(helper):
    p = run([helper, "only-one-argument"])
    assert p.returncode == 2
    assert p.stderr.startswith("phifs: usage: mount.phifs CONFIG "
                               "MOUNTPOINT"), p.stderr
    p = run([helper, "c", "m", "-t", "ext4"])
    assert p.returncode == 1
    assert p.stderr.strip() == "phifs: mount.phifs -t ext4: the type " \
                               "is not phifs", p.stderr
    p = run([helper, "c", "m", "-x"])
    assert p.returncode == 1
    assert p.stderr.strip() == "phifs: unknown mount.phifs flag '-x' " \
                               "(see mount.phifs --help)", p.stderr


# --- the Debian package ---------------------------------------------------------

def copy_source(dest):
    """The source tree without build directories or VCS data."""
    tmp = os.path.realpath(conftest.test_tmp())

    left = (".debhelper", "phifs", "phifs-dbgsym", "debhelper-build-stamp",
            "files")     # by a dpkg-buildpackage in the checkout

    def ignore(d, names):
        top = os.path.realpath(d) == SRC
        deb = os.path.realpath(d) == os.path.join(SRC, "debian")
        return [n for n in names
                if n in (".git", "__pycache__", ".pytest_cache")
                or os.path.realpath(os.path.join(d, n)) == tmp
                or (top and (n.startswith("build") or n.startswith("obj-")))
                or (deb and (n in left or n.endswith(".substvars")))]
    shutil.copytree(SRC, dest, ignore=ignore, symlinks=True)


def package_installed():
    p = run(["dpkg-query", "-W", "-f=${Status}", "phifs"])
    return p.returncode == 0 and "not-installed" not in p.stdout \
        and p.stdout.strip() != ""


@pytest.fixture(scope="module")
def package(workdir):
    """dpkg-buildpackage -us -uc -b on a copy of the tree: the .deb."""
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/deps.sh)")
    top = os.path.join(workdir, "package")
    os.mkdir(top)
    src = os.path.join(top, "phifs")
    copy_source(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    env.pop("MAKEFLAGS", None)
    p = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
            timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    debs = [n for n in os.listdir(top)
            if n.startswith("phifs_") and n.endswith(".deb")]
    assert len(debs) == 1, os.listdir(top)
    return os.path.join(top, debs[0])


def test_package_contents_and_lintian(package):
    p = run(["dpkg-deb", "-c", package])
    assert p.returncode == 0, p.stderr
    for path in PACKAGED:
        assert re.search(r"\s\." + re.escape(path) + r"( -> |\n)",
                         p.stdout), p.stdout
    assert "./sbin/mount.phifs -> /usr/bin/phifs\n" in p.stdout, p.stdout
    p = run(["lintian", "--fail-on", "error", package])
    errors = [x for x in p.stdout.splitlines() if x.startswith("E:")]
    assert p.returncode == 0 and not errors, p.stdout + p.stderr


@pytest.fixture
def dpkg_installed(package):
    """The package installed; purged at teardown."""
    if package_installed():
        pytest.skip("a phifs package is installed on this machine; not "
                    "touching it")
    there = [x for x in PACKAGED if os.path.lexists(x)]
    if there:
        pytest.skip(f"{there[0]} exists (another install of phifs); not "
                    "touching it")
    p = run(["dpkg", "-i", package], timeout=300)
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        yield
    finally:
        q = run(["dpkg", "--purge", "phifs"], timeout=300)
        assert q.returncode == 0, q.stdout + q.stderr
    assert not [x for x in PACKAGED if os.path.lexists(x)]


def wait_unmounted(fs, pid):
    """After umount(8): the daemon flushes, then exits."""
    assert not is_fuse_mounted(fs.mnt)
    assert wait_pid_gone(pid, 60), "the daemon did not exit after umount"
    fs.pid = None


def test_package_installs_mounts_and_purges(dpkg_installed, phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    # the unit as installed, for an instance
    unit = os.path.join(fs.base, "phifs@clinic.service")
    shutil.copy("/lib/systemd/system/phifs@.service", unit)
    assert "ExecStart=/usr/bin/phifs mount -f" in read_file(unit).decode()
    if shutil.which("systemd-analyze"):
        p = run(["systemd-analyze", "verify", unit])
        assert p.returncode == 0, p.stdout + p.stderr

    p = run(["mount", "-t", "phifs", fs.config, fs.mnt, "-o",
             "allow_other,_netdev,nofail"], cwd=fs.base, env=fs.environ())
    assert p.returncode == 0, p.stdout + p.stderr
    assert is_fuse_mounted(fs.mnt)
    pid = fs.pid = fs.status()["pid"]
    write_file(fs.path("letter.txt"), b"dear colleague\n")
    p = run(["umount", fs.mnt])
    assert p.returncode == 0, p.stderr
    wait_unmounted(fs, pid)

    fstab = os.path.join(fs.base, "fstab")
    with open(fstab, "w") as f:
        f.write("# made by test_install.py, with the README's options\n"
                f"{fs.config} {fs.mnt} phifs {readme_fstab_options()} "
                "0 0\n")
    p = run(["mount", "--fstab", fstab, fs.mnt], cwd=fs.base,
            env=fs.environ())
    assert p.returncode == 0, p.stdout + p.stderr
    assert is_fuse_mounted(fs.mnt)
    fs.pid = fs.status()["pid"]
    assert read_file(fs.path("letter.txt")) == b"dear colleague\n"
    p = run(["/usr/bin/phifs", "umount", fs.mnt])
    assert p.returncode == 0, p.stderr
    assert not pid_alive(fs.pid)
    fs.pid = None
    assert not is_fuse_mounted(fs.mnt)
