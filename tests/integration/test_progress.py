"""Progress lines of the long commands (sync, fsck --scrub and --repair,
gc): drawn on stderr when it is a terminal (a pseudo-terminal here), and
nothing of them in a pipe, where scripts read the output.

A progress line is redrawn in place: "\\rLABEL: DONE of TOTAL ... ESC[K",
and erased ("\\rESC[K") before the command prints anything else.
"""

import os
import subprocess
import threading

from conftest import PHIFS, write_file


def run_tty(fs, *args, timeout=120):
    """Run `phifs ARGS` with stderr on a pseudo-terminal and stdout on a
    pipe; return (exit status, stdout, what the terminal got)."""
    master, slave = os.openpty()
    got = []

    def drain():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:         # EIO: every writer has closed it
                break
            if not b:
                break
            got.append(b)

    try:
        p = subprocess.Popen([PHIFS] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=slave,
                             cwd=fs.base, env=fs.environ(),
                             start_new_session=True)
        os.close(slave)
        slave = None
        t = threading.Thread(target=drain, daemon=True)
        t.start()
        out, _ = p.communicate(timeout=timeout)
        t.join(timeout=30)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return (p.returncode, out.decode(errors="replace"),
            b"".join(got).decode(errors="replace"))


def progress_lines(term, label):
    """The progress lines drawn with label, e.g. 'scrub: 3 of 9 objects'."""
    return [s for s in term.split("\r") if s.startswith(label + ": ") and
            " of " in s and s.endswith("\033[K")]


def assert_erased(term):
    """No progress line is left on the terminal at the end: what follows
    the last carriage return is an erase or a whole line."""
    last = term.split("\r")[-1]
    assert last == "\033[K" or last.endswith("\n"), repr(term)


def assert_no_progress(p):
    """Nothing of a progress line in piped output."""
    for stream in (p.stdout, p.stderr):
        assert "\r" not in stream and "\033" not in stream, repr(stream)


def test_sync_shows_progress_on_a_terminal_only(phifs_bare):
    fs = phifs_bare
    fs.mkfs()
    # region b takes nothing: what is written stays waiting for it
    fs.set_faults("b", "fail_all put")
    fs.mount()
    write_file(fs.path("scan.bin"), os.urandom(400_000))
    fs.umount()
    rc, out, term = run_tty(fs, "sync", fs.config, "--timeout", "2")
    assert rc == 1, term
    assert progress_lines(term, "sync"), repr(term)
    assert_erased(term)
    assert "region b" in term            # the one line saying what lacks
    p = fs.run("sync", fs.config, "--timeout", "2")
    assert p.returncode == 1
    assert_no_progress(p)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    # region b answers again: sync finishes, and its line goes away first
    fs.set_faults("b", None)
    rc, out, term = run_tty(fs, "sync", fs.config, "--timeout", "60")
    assert rc == 0, term
    assert progress_lines(term, "sync"), repr(term)
    assert_erased(term)
    assert out.startswith("synced:"), out


def test_scrub_and_repair_show_progress_on_a_terminal_only(phifs):
    for i in range(3):
        write_file(phifs.path(f"f{i}"), os.urandom(100_000))
    p = phifs.run("sync", phifs.config, "--timeout", "60", timeout=120)
    assert p.returncode == 0, p.stderr
    rc, out, term = run_tty(phifs, "fsck", phifs.config, "--scrub")
    assert rc == 0, out + term
    lines = progress_lines(term, "scrub")
    assert lines and "objects" in lines[-1], repr(term)
    # then each region's history is read and compared with this machine
    for region in ("a", "b"):
        assert progress_lines(term, "reading region " + region), repr(term)
        lines = progress_lines(term, "comparing with region " + region)
        assert lines and "blocks" in lines[-1], repr(term)
    assert_erased(term)
    assert "regions: " in out
    rc, out, term = run_tty(phifs, "fsck", phifs.config, "--repair")
    assert rc == 0, out + term
    assert progress_lines(term, "repair"), repr(term)
    for opt in ("--scrub", "--repair"):
        p = phifs.run("fsck", phifs.config, opt)
        assert p.returncode == 0, p.stdout + p.stderr
        assert_no_progress(p)
        assert p.stderr == ""


def test_gc_shows_progress_on_a_terminal_only(phifs):
    write_file(phifs.path("note"), b"a letter")
    p = phifs.run("sync", phifs.config, "--timeout", "60", timeout=120)
    assert p.returncode == 0, p.stderr
    # the mount's lease objects are among what gc looks at in each region
    rc, out, term = run_tty(phifs, "gc", phifs.config, "--dry-run")
    assert rc == 0, out + term
    lines = progress_lines(term, "gc")
    assert any("objects of region a" in s for s in lines), repr(term)
    assert any("objects of region b" in s for s in lines), repr(term)
    assert_erased(term)
    assert "would delete" in out
    p = phifs.run("gc", phifs.config, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert_no_progress(p)
    assert p.stderr == ""
