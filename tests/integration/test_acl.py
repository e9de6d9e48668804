"""POSIX ACLs and security.* / trusted.* extended attributes over a mount.

phifs asks the kernel to enforce POSIX ACLs (FUSE_CAP_POSIX_ACL) and keeps
what ext4 keeps around them: the mode follows an access ACL, chmod moves
the ACL's mask, new nodes inherit a directory's default ACL.  Where it
helps, the same steps run on an ext4 folder (the tests' temp dir) and the
outputs of getfacl are compared, so the reference is the kernel's own
filesystem, not a hard-coded answer.  The tools come from the `acl` and
`rsync` packages; without them those cases are skipped.
"""

import errno
import os
import shutil
import stat
import subprocess

import pytest

from conftest import (OTHER_GID, OTHER_UID, errno_of, read_file, run_as,
                      write_file)

needs_acl = pytest.mark.skipif(shutil.which("setfacl") is None or
                               shutil.which("getfacl") is None,
                               reason="the acl package is not installed")
needs_rsync = pytest.mark.skipif(shutil.which("rsync") is None,
                                 reason="rsync is not installed")

ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"


# --- helpers ---------------------------------------------------------------

def sh(*args, cwd=None, umask=None):
    """Run a command; return its stdout, failing the test if it fails."""
    pre = None if umask is None else (lambda: os.umask(umask))
    p = subprocess.run(list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, cwd=cwd,
                       preexec_fn=pre, timeout=120)
    assert p.returncode == 0, f"{args} exited {p.returncode}: {p.stderr}"
    return p.stdout


def getfacl(path, *opts):
    """getfacl's text for path, without the '# file:' line (it names the
    path), so that the same tree in two places gives the same text."""
    out = sh("getfacl", "-p", "-n", *opts, path)
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith("# file:"))


def getfacl_tree(root):
    """getfacl -R of root, relative names, so two trees compare."""
    return sh("getfacl", "-R", "-p", "-n", ".", cwd=root)


def ext4_dir(fs, name):
    """A folder on the tests' own disk (ext4) next to the mount."""
    d = os.path.join(fs.base, name)
    os.mkdir(d)
    os.chmod(d, 0o755)
    return d


def both(fs, name):
    """(a folder in the mount, the same on ext4)."""
    m = fs.path(name)
    os.mkdir(m)
    return m, ext4_dir(fs, name)


def sync(fs, timeout=120):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    assert p.returncode == 0, f"phifs sync: {p.stderr.strip()}"


def acl_tree(root):
    """A tree with access and default ACLs, named users and groups."""
    os.makedirs(os.path.join(root, "patient", "scans"))
    write_file(os.path.join(root, "patient", "letter.txt"), b"letter")
    write_file(os.path.join(root, "patient", "scans", "ct.dcm"), b"\0" * 999)
    sh("setfacl", "-m", f"u:{OTHER_UID}:r,g:{OTHER_GID}:rw,m::rw",
       os.path.join(root, "patient", "letter.txt"))
    sh("setfacl", "-d", "-m", f"u:{OTHER_UID}:rx,g:{OTHER_GID}:rwx",
       os.path.join(root, "patient"))
    sh("setfacl", "-m", f"u:{OTHER_UID}:rx",
       os.path.join(root, "patient", "scans"))
    os.setxattr(os.path.join(root, "patient", "letter.txt"),
                "security.NTACL", b"\x04\x00windows acl\xff")
    os.setxattr(os.path.join(root, "patient", "scans"),
                "user.modality", b"CT")


# --- round trip and what getfacl shows ---------------------------------------

@needs_acl
def test_setfacl_getfacl_round_trip_as_ext4(phifs):
    m, e = both(phifs, "d")
    for root in (m, e):
        f = os.path.join(root, "f")
        write_file(f, b"x", 0o640)
        sh("setfacl", "-m",
           f"u:{OTHER_UID}:rw,u:4321:r,g:{OTHER_GID}:r,g:4322:rwx", f)
        sh("setfacl", "-m", "o::r", f)
        sh("setfacl", "-d", "-m", f"u:{OTHER_UID}:rwx,g::r", root)
    for name in ("f", "."):
        assert getfacl(os.path.join(m, name)) == \
            getfacl(os.path.join(e, name))
    f = os.path.join(m, "f")
    text = getfacl(f)
    assert f"user:{OTHER_UID}:rw-" in text and "group:4322:rwx" in text
    assert "mask::rwx" in text, text
    # the mode shows the mask in its group bits, as on ext4
    assert stat.S_IMODE(os.stat(f).st_mode) == \
        stat.S_IMODE(os.stat(os.path.join(e, "f")).st_mode) == 0o674
    assert ACL_ACCESS in os.listxattr(f)
    # removing entries, then the whole ACL
    for root in (m, e):
        sh("setfacl", "-x", "u:4321", os.path.join(root, "f"))
    assert getfacl(f) == getfacl(os.path.join(e, "f"))
    for root in (m, e):
        sh("setfacl", "-b", os.path.join(root, "f"))
        sh("setfacl", "-k", root)
    assert getfacl(f) == getfacl(os.path.join(e, "f"))
    assert getfacl(m) == getfacl(e)
    assert ACL_ACCESS not in os.listxattr(f)
    assert errno_of(os.getxattr, f, ACL_ACCESS) == errno.ENODATA
    # -b on a file without an ACL is no error
    sh("setfacl", "-b", f)
    phifs.remount()
    assert getfacl(f) == getfacl(os.path.join(e, "f"))


@needs_acl
def test_an_acl_the_mode_says_is_not_stored(phifs):
    f = phifs.path("f")
    write_file(f, b"x", 0o600)
    sh("setfacl", "-m", "u::rwx,g::r,o::x", f)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o741
    assert ACL_ACCESS not in os.listxattr(f)


@needs_acl
def test_acls_survive_a_remount(phifs):
    acl_tree(phifs.mnt)
    want = getfacl_tree(phifs.mnt)
    assert f"default:user:{OTHER_UID}:r-x" in want
    phifs.remount()
    assert getfacl_tree(phifs.mnt) == want
    assert os.getxattr(phifs.path("patient", "letter.txt"),
                       "security.NTACL") == b"\x04\x00windows acl\xff"


def acl_value(*entries, version=2):
    """A posix_acl_xattr value from (tag, perm, id) entries."""
    out = version.to_bytes(4, "little")
    for tag, perm, ident in entries:
        out += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + \
            ident.to_bytes(4, "little")
    return out


def test_malformed_acls_are_refused_as_ext4(phifs):
    m, e = both(phifs, "d")
    owner, user, group, grp, mask, other = 1, 2, 4, 8, 0x10, 0x20
    any_id = 0xffffffff
    good = [(owner, 6, any_id), (group, 4, any_id), (other, 4, any_id)]
    bad = [
        acl_value(*good, version=1),
        acl_value((owner, 6, any_id), (other, 4, any_id)),     # no group
        acl_value(*good)[:-3],                                 # cut short
        acl_value((owner, 6, any_id), (user, 4, 5), (group, 4, any_id),
                  (other, 4, any_id)),                         # no mask
        acl_value((owner, 6, any_id), (group, 4, any_id), (user, 4, 9),
                  (mask, 7, any_id), (other, 4, any_id)),      # user late
        acl_value((owner, 6, any_id), (group, 4, any_id), (grp, 4, any_id),
                  (mask, 7, any_id), (other, 4, any_id)),      # id -1
        acl_value(*good, (other, 4, any_id)),                  # 2 others
        acl_value((owner, 8, any_id), (group, 4, any_id),
                  (other, 4, any_id)),                         # perm 8
        acl_value((group, 4, any_id), (owner, 6, any_id),
                  (other, 4, any_id)),                         # order
    ]
    for root in (m, e):
        write_file(os.path.join(root, "f"), b"x", 0o644)
    for value in bad:
        got = [errno_of(os.setxattr, os.path.join(root, "f"), ACL_ACCESS,
                        value) for root in (m, e)]
        assert got[0] == got[1] != 0, (value, got)
    assert errno_of(os.getxattr, os.path.join(m, "f"), ACL_ACCESS) == \
        errno.ENODATA
    # a well-formed one, written raw, reads back as written
    value = acl_value((owner, 6, any_id), (user, 5, OTHER_UID),
                      (group, 4, any_id), (mask, 5, any_id),
                      (other, 0, any_id))
    for root in (m, e):
        os.setxattr(os.path.join(root, "f"), ACL_ACCESS, value)
    assert os.getxattr(os.path.join(m, "f"), ACL_ACCESS) == value == \
        os.getxattr(os.path.join(e, "f"), ACL_ACCESS)
    assert stat.S_IMODE(os.stat(os.path.join(m, "f")).st_mode) == 0o650


@needs_acl
def test_a_default_acl_is_for_directories(phifs):
    m, e = both(phifs, "d")
    for root in (m, e):
        f = os.path.join(root, "f")
        write_file(f, b"x")
        p = subprocess.run(["setfacl", "-d", "-m", "u::rwx", f],
                           stderr=subprocess.PIPE, text=True)
        assert p.returncode != 0
    # the default ACL of a directory, read raw, is what setfacl wrote
    for root in (m, e):
        sh("setfacl", "-d", "-m", f"g:{OTHER_GID}:rx", root)
    assert os.getxattr(m, ACL_DEFAULT) == os.getxattr(e, ACL_DEFAULT)
    assert ACL_DEFAULT in os.listxattr(m)


# --- enforcement by the kernel ----------------------------------------------

@needs_acl
def test_the_kernel_enforces_acl_entries(phifs):
    d = phifs.path("records")
    os.mkdir(d, 0o755)
    f = os.path.join(d, "chart.txt")
    write_file(f, b"private", 0o600)
    g = os.path.join(d, "group.txt")
    write_file(g, b"for the group", 0o600)

    def read(path):
        with open(path, "rb") as fh:
            return fh.read()

    def append(path):
        with open(path, "ab") as fh:
            fh.write(b"+")

    assert errno_of(run_as, OTHER_UID, OTHER_GID, read, f) == errno.EACCES
    sh("setfacl", "-m", f"u:{OTHER_UID}:r", f)
    assert run_as(OTHER_UID, OTHER_GID, read, f) == b"private"
    assert errno_of(run_as, OTHER_UID, OTHER_GID, append, f) == errno.EACCES
    # a named group, for a member by supplementary group only
    sh("setfacl", "-m", "g:4444:rw", g)
    assert run_as(OTHER_UID, OTHER_GID, read, g, groups=[4444]) == \
        b"for the group"
    run_as(OTHER_UID, OTHER_GID, append, g, groups=[4444])
    assert errno_of(run_as, OTHER_UID, OTHER_GID, read, g) == errno.EACCES
    # the mask limits named entries: chmod g-w takes the write away
    os.chmod(g, 0o640)
    assert "mask::r--" in getfacl(g)
    assert errno_of(run_as, OTHER_UID, OTHER_GID, append, g,
                    groups=[4444]) == errno.EACCES
    # a named entry with no rights denies what "other" would allow (as
    # long as the mask is not empty: with no group bits the kernel looks
    # at no ACL, on ext4 too)
    e = os.path.join(ext4_dir(phifs, "ext4"), "chart.txt")
    write_file(e, b"private", 0o604)
    for p in (f, e):
        os.chmod(p, 0o604)
        sh("setfacl", "-m", f"u:{OTHER_UID}:-,g::r", p)
        assert errno_of(run_as, OTHER_UID, OTHER_GID, read, p) == \
            errno.EACCES, p
        assert run_as(4445, 4445, read, p) == b"private"
        sh("setfacl", "-m", "g::-", p)
        assert run_as(OTHER_UID, OTHER_GID, read, p) == b"private"
        sh("setfacl", "-m", "g::r", p)
    assert getfacl(f) == getfacl(e)
    # the ACL is kept across a remount and enforced from there too
    phifs.remount()
    assert errno_of(run_as, OTHER_UID, OTHER_GID, read, f) == errno.EACCES
    assert run_as(4445, 4445, read, f) == b"private"
    # only the owner may change an ACL
    assert errno_of(run_as, 4445, 4445, os.setxattr, f, ACL_ACCESS,
                    os.getxattr(f, ACL_ACCESS)) == errno.EPERM


@needs_acl
def test_directory_acl_grants_entry(phifs):
    d = phifs.path("private")
    os.mkdir(d, 0o700)
    write_file(os.path.join(d, "x"), b"x", 0o644)
    assert errno_of(run_as, OTHER_UID, OTHER_GID, os.listdir, d) == \
        errno.EACCES
    sh("setfacl", "-m", f"u:{OTHER_UID}:rx", d)
    assert run_as(OTHER_UID, OTHER_GID, os.listdir, d) == ["x"]
    assert errno_of(run_as, OTHER_UID, OTHER_GID, write_file,
                    os.path.join(d, "new"), b"n") == errno.EACCES


# --- inheritance --------------------------------------------------------------

@needs_acl
def test_default_acl_inheritance_as_ext4(phifs):
    m, e = both(phifs, "top")
    for root in (m, e):
        sh("setfacl", "-d", "-m",
           f"u::rwx,u:{OTHER_UID}:rwx,g::rx,g:{OTHER_GID}:r,m::rwx,o::-",
           root)
        # a umask that would take more away is not applied
        sh("sh", "-c", "echo x > file; mkdir dir; mkfifo fifo; "
           "mknod blk b 7 200; ln -s file link; mkdir -m 0750 dir750; "
           "touch t; chmod 0600 t", cwd=root, umask=0o077)
        fd = os.open(os.path.join(root, "create640"),
                     os.O_CREAT | os.O_WRONLY, 0o640)
        os.close(fd)
        os.mknod(os.path.join(root, "node"), 0o600 | stat.S_IFREG)
        os.makedirs(os.path.join(root, "dir", "sub", "deeper"))
        write_file(os.path.join(root, "dir", "sub", "deeper", "f"), b"f",
                   0o666)
    for name in ("file", "dir", "fifo", "blk", "dir750", "t", "create640",
                 "node", "dir/sub", "dir/sub/deeper", "dir/sub/deeper/f"):
        mp, ep = os.path.join(m, name), os.path.join(e, name)
        assert getfacl(mp) == getfacl(ep), name
        assert stat.S_IMODE(os.lstat(mp).st_mode) == \
            stat.S_IMODE(os.lstat(ep).st_mode), name
    # a symlink gets no ACL
    assert ACL_ACCESS not in os.listxattr(os.path.join(m, "link"),
                                          follow_symlinks=False)
    assert f"user:{OTHER_UID}:rwx" in getfacl(os.path.join(m, "file"))
    assert "default:" in getfacl(os.path.join(m, "dir", "sub"))
    # the inherited entries are enforced: OTHER_UID may write there
    run_as(OTHER_UID, OTHER_GID, write_file,
           os.path.join(m, "dir", "by_other"), b"o")
    assert read_file(os.path.join(m, "dir", "by_other")) == b"o"


@needs_acl
def test_without_a_default_acl_the_umask_applies(phifs):
    m, e = both(phifs, "d")
    for root in (m, e):
        sh("sh", "-c", "echo x > f; mkdir d; mkfifo p", cwd=root,
           umask=0o027)
    for name in ("f", "d", "p"):
        assert stat.S_IMODE(os.stat(os.path.join(m, name)).st_mode) == \
            stat.S_IMODE(os.stat(os.path.join(e, name)).st_mode), name
    assert stat.S_IMODE(os.stat(os.path.join(m, "d")).st_mode) == 0o750
    assert ACL_ACCESS not in os.listxattr(os.path.join(m, "f"))


# --- chmod and the mask ---------------------------------------------------------

@needs_acl
def test_chmod_moves_the_mask_as_ext4(phifs):
    m, e = both(phifs, "d")
    for root in (m, e):
        f = os.path.join(root, "f")
        write_file(f, b"x", 0o644)
        sh("setfacl", "-m", f"u:{OTHER_UID}:rwx,g:{OTHER_GID}:rw", f)
        os.chmod(f, 0o604)
        g = os.path.join(root, "g")
        write_file(g, b"x", 0o644)
        sh("setfacl", "-m", f"u:{OTHER_UID}:rw", g)
        os.chmod(g, 0o2771)
    for name in ("f", "g"):
        mp, ep = os.path.join(m, name), os.path.join(e, name)
        assert getfacl(mp) == getfacl(ep), name
        assert os.stat(mp).st_mode == os.stat(ep).st_mode, name
    assert "mask::---" in getfacl(os.path.join(m, "f"))
    # and back: the named entries are still there, the mask opens again
    os.chmod(os.path.join(m, "f"), 0o674)
    assert f"user:{OTHER_UID}:rwx" in getfacl(os.path.join(m, "f"))
    assert "mask::rwx" in getfacl(os.path.join(m, "f"))
    phifs.remount()
    assert "mask::rwx" in getfacl(os.path.join(m, "f"))


# --- security.* and trusted.* ------------------------------------------------------

def test_security_xattrs(phifs):
    f = phifs.path("f")
    write_file(f, b"x")
    d = phifs.path("d")
    os.mkdir(d)
    os.setxattr(f, "security.NTACL", b"\x01\x02" * 300)
    os.setxattr(d, "security.NTACL", b"dir")
    os.setxattr(f, "security.phifs", b"")
    assert os.getxattr(f, "security.NTACL") == b"\x01\x02" * 300
    assert os.getxattr(f, "security.phifs") == b""
    assert {"security.NTACL", "security.phifs"} <= set(os.listxattr(f))
    assert errno_of(os.setxattr, f, "security.NTACL", b"x",
                    os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.getxattr, f, "security.none") == errno.ENODATA
    # any user reads them; only root writes them (as on ext4)
    assert run_as(OTHER_UID, OTHER_GID, os.getxattr, f,
                  "security.NTACL") == b"\x01\x02" * 300
    os.chmod(f, 0o666)
    assert errno_of(run_as, OTHER_UID, OTHER_GID, os.setxattr, f,
                    "security.NTACL", b"x") == errno.EPERM
    os.removexattr(f, "security.phifs")
    assert "security.phifs" not in os.listxattr(f)
    assert errno_of(os.removexattr, f, "security.phifs") == errno.ENODATA
    phifs.remount()
    assert os.getxattr(f, "security.NTACL") == b"\x01\x02" * 300
    assert os.getxattr(d, "security.NTACL") == b"dir"
    # a write asks for security.capability; without one, it just works
    write_file(f, b"rewritten")
    assert read_file(f) == b"rewritten"


def test_trusted_xattrs_are_root_only(phifs):
    f = phifs.path("f")
    write_file(f, b"x", 0o666)
    os.setxattr(f, "trusted.overlay", b"t")
    assert os.getxattr(f, "trusted.overlay") == b"t"
    assert "trusted.overlay" in os.listxattr(f)
    assert "trusted.overlay" not in run_as(OTHER_UID, OTHER_GID,
                                           os.listxattr, f)
    assert errno_of(run_as, OTHER_UID, OTHER_GID, os.getxattr, f,
                    "trusted.overlay") == errno.ENODATA
    assert errno_of(run_as, OTHER_UID, OTHER_GID, os.setxattr, f,
                    "trusted.x", b"y") == errno.EPERM


# --- copies: cp -a and rsync -aAX, in and out --------------------------------------

@needs_acl
def test_cp_a_in_and_out_keeps_acls(phifs):
    src = ext4_dir(phifs, "src")
    acl_tree(src)
    want = getfacl_tree(src)
    sh("cp", "-a", os.path.join(src, "patient"), phifs.mnt)
    assert getfacl_tree(phifs.mnt) == want
    assert os.getxattr(phifs.path("patient", "letter.txt"),
                       "security.NTACL") == b"\x04\x00windows acl\xff"
    back = ext4_dir(phifs, "back")
    sh("cp", "-a", phifs.path("patient"), back)
    assert getfacl_tree(back) == want
    assert os.getxattr(os.path.join(back, "patient", "letter.txt"),
                       "security.NTACL") == b"\x04\x00windows acl\xff"


@needs_acl
@needs_rsync
def test_rsync_aAX_in_and_out_keeps_acls(phifs):
    src = ext4_dir(phifs, "src")
    acl_tree(src)
    want = getfacl_tree(src)
    sh("rsync", "-aAX", src + "/", phifs.mnt + "/")
    assert getfacl_tree(phifs.mnt) == want
    back = ext4_dir(phifs, "back")
    sh("rsync", "-aAX", phifs.mnt + "/", back + "/")
    assert getfacl_tree(back) == want
    assert os.getxattr(os.path.join(back, "patient", "scans"),
                       "user.modality") == b"CT"
    # a second run finds nothing to change
    out = sh("rsync", "-aAXi", src + "/", phifs.mnt + "/")
    assert out.strip() == "", out


# --- restore and recover -------------------------------------------------------------

@needs_acl
def test_restore_writes_the_acls(phifs):
    acl_tree(phifs.mnt)
    want = getfacl_tree(phifs.mnt)
    sync(phifs)
    dest = ext4_dir(phifs, "dest")
    p = phifs.run("restore", phifs.config, "/", dest, timeout=300)
    assert p.returncode == 0, p.stderr
    assert getfacl_tree(dest) == want
    assert os.getxattr(os.path.join(dest, "patient", "letter.txt"),
                       "security.NTACL") == b"\x04\x00windows acl\xff"
    # an ACL added on the target since is taken away by a second restore
    sh("setfacl", "-m", "u:4999:rwx", os.path.join(dest, "patient"))
    p = phifs.run("restore", phifs.config, "/", dest, timeout=300)
    assert p.returncode == 0, p.stderr
    assert getfacl_tree(dest) == want


@needs_acl
def test_recover_keeps_the_acls(phifs):
    acl_tree(phifs.mnt)
    want = getfacl_tree(phifs.mnt)
    sync(phifs)
    phifs.umount()
    shutil.rmtree(phifs.cache_dir)
    os.mkdir(phifs.cache_dir)
    p = phifs.run("recover", phifs.config, "--region", "b", timeout=300)
    assert p.returncode == 0, p.stderr
    phifs.mount()
    assert getfacl_tree(phifs.mnt) == want
    assert os.getxattr(phifs.path("patient", "letter.txt"),
                       "security.NTACL") == b"\x04\x00windows acl\xff"
    # and inheritance goes on from the recovered default ACL
    write_file(phifs.path("patient", "new.txt"), b"n", 0o660)
    assert f"user:{OTHER_UID}:r-x" in \
        getfacl(phifs.path("patient", "new.txt"))
