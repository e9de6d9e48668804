"""The test harness itself: scripts/test.sh touches only what its run made.

Issue 8: test.sh lazily unmounted every phifs mount under /tmp, and a run
of the suite broke three unrelated live mounts on the same machine.  Now
each run makes one directory for all its tests, and clears stale mounts
there only.

The clearing function runs in a private mount namespace (unshare -m):
whatever it unmounts there, right or wrong, stays unmounted there only, so
that this test can never harm a mount it did not make.
"""

import os
import shutil
import signal
import subprocess

import pytest

from conftest import fusermount_u, is_fuse_mounted

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "..", "..", "scripts", "test.sh")

# In a namespace of its own: clear the stale mounts of run directory $1,
# then say which of the mountpoints $2 (foreign) and $3 (the run's own)
# are still there.
CLEAR = r"""
. "$SCRIPT"
clear_stale_mounts test "$1" 2>&1
for mp in "$2" "$3"; do
	if awk -v m="$mp" '$5 == m { found = 1 } END { exit !found }' \
	       /proc/self/mountinfo; then
		echo "mounted $mp"
	else
		echo "gone $mp"
	fi
done
"""


def test_clear_stale_mounts_leaves_other_mounts(phifs_factory):
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    # a live mount in /tmp itself, outside any test run's directory, as a
    # clinic's or another run's would be
    foreign = phifs_factory(mounted=True, tag="foreign", parent="/tmp")
    # the run's directory, with a mount whose daemon died
    run = phifs_factory(mounted=True, tag="run")
    os.kill(run.pid, signal.SIGKILL)
    run.proc.wait(timeout=30)
    run.proc = run.pid = None
    try:
        assert is_fuse_mounted(run.mnt), "the dead mount went by itself"
        p = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "bash", "-c",
             CLEAR, "clear", run.base, foreign.mnt, run.mnt],
            env=dict(os.environ, SCRIPT=SCRIPT), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60)
    finally:
        # outside the namespace, the dead mount is still ours to remove
        fusermount_u(run.mnt, lazy=True)
    assert p.returncode == 0, p.stdout
    assert f"mounted {foreign.mnt}" in p.stdout, \
        f"a mount outside the run's directory was unmounted:\n{p.stdout}"
    assert f"gone {run.mnt}" in p.stdout, \
        f"the run's own stale mount was left:\n{p.stdout}"
    assert is_fuse_mounted(foreign.mnt)
    assert os.listdir(foreign.mnt) == []


# Print unit_args' lines for the arguments given, or "skip" when it fails.
UNIT_ARGS = r"""
. "$SCRIPT"
unit_args "$@" || echo skip
"""


@pytest.mark.parametrize("args, want", [
    ([], ["--suite", "unit"]),
    (["--suite", "unit"], ["--suite", "unit"]),
    (["--suite", "integration"], ["skip"]),
    (["--suite=phifs:unit", "-v"], ["-v", "--suite", "unit"]),
    (["test_fs", "--suite", "integration", "--suite", "unit"],
     ["test_fs", "--suite", "unit"]),
    (["--no-suite", "integration"],
     ["--no-suite", "integration", "--suite", "unit"]),
])
def test_tsan_run_takes_the_unit_suite_only(args, want):
    """The ThreadSanitizer run of test.sh runs unit tests only, whatever
    suites the command line chose for the other runs, and none at all when
    it chose suites without unit."""
    p = subprocess.run(["bash", "-c", UNIT_ARGS, "unit_args"] + args,
                       env=dict(os.environ, SCRIPT=SCRIPT),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    assert p.stdout.split("\n")[:-1] == want
