"""A real mount over two S3 regions: two Swift/s3api servers on 127.0.0.1.

The module starts two instances of tests/lib/s3server.sh (one bucket
each) on free loopback ports, and always stops them.  Objects are checked
with an independent client, Debian's aws CLI.  Without Swift installed
every case is skipped (scripts/deps.sh installs it).
"""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import read_file, write_file

HERE = os.path.dirname(os.path.abspath(__file__))
S3SERVER = os.path.join(HERE, "..", "lib", "s3server.sh")
SIGNING_REGION = "phifs-test-1"
AWS = "/usr/bin/aws"
MiB = 1 << 20


def _port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _pick_base(taken):
    for base in random.sample(range(19000, 19990, 5), 60):
        ports = range(base, base + 5)
        if not taken.intersection(ports) and all(map(_port_free, ports)):
            return base
    raise RuntimeError("no five free ports in 127.0.0.1:19000-19999")


class Server:
    def __init__(self, root, name, taken):
        self.name = name
        self.dir = os.path.join(root, name)
        self.bucket = f"phifs-{name}"
        self.port = _pick_base(taken)
        taken.update(range(self.port, self.port + 5))
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _sh(self, *args, timeout=120):
        p = subprocess.run(["bash", S3SERVER, *args], capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"s3server.sh {args[0]}: {p.stderr[-3000:]}")

    def start(self):
        self._sh("start", self.dir, str(self.port), SIGNING_REGION,
                 self.bucket)

    def stop(self):
        self._sh("stop", self.dir)

    def pause(self):
        self._sh("pause", self.dir)

    def resume(self):
        self._sh("resume", self.dir)

    def keys(self):
        """Object keys in the bucket, by the aws CLI."""
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test:tester",
                   AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION=SIGNING_REGION,
                   AWS_CONFIG_FILE=AWS_CONFIG, AWS_PAGER="")
        out, token = [], None
        while True:
            cmd = [AWS, "--endpoint-url", self.endpoint, "--output", "json",
                   "s3api", "list-objects-v2", "--bucket", self.bucket]
            if token:
                cmd += ["--continuation-token", token]
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=env, timeout=120)
            assert p.returncode == 0, f"aws: {p.stderr}"
            page = json.loads(p.stdout) if p.stdout.strip() else {}
            out += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return set(out)


AWS_CONFIG = None


@pytest.fixture(scope="module")
def servers():
    global AWS_CONFIG
    for prog in ("swift-proxy-server", "memcached"):
        if shutil.which(prog) is None:
            pytest.skip(f"{prog} not installed (scripts/deps.sh)")
    if not os.path.exists(AWS):
        pytest.skip("aws CLI not installed (scripts/deps.sh)")
    root = tempfile.mkdtemp(prefix="phifs-s3m-", dir="/tmp")
    AWS_CONFIG = os.path.join(root, "aws-config")
    with open(AWS_CONFIG, "w") as f:
        f.write("[default]\ns3 =\n    addressing_style = path\n")
    taken = set()
    made = [Server(root, "a", taken), Server(root, "b", taken)]
    started = []
    try:
        for s in made:
            s.start()
            started.append(s)
        yield made
    finally:
        for s in started:
            try:
                s.stop()
            except Exception as e:          # keep stopping the others
                print(f"stopping {s.name}: {e}")
        shutil.rmtree(root, ignore_errors=True)


def s3_config(fs, servers, cache_size="20G", prefix="", signing=None,
              buckets=None):
    cred = os.path.join(fs.base, "s3.cred")
    with open(cred, "w") as f:
        f.write("access_key_id = test:tester\nsecret_access_key = testing\n")
    os.chmod(cred, 0o600)
    text = f"""[filesystem]
cache_dir = {fs.cache_dir}
cache_size = {cache_size}
block_size = 256K
key_file = {fs.key_file}
seal_delay = 1s
"""
    for i, s in enumerate(servers):
        bucket = buckets[i] if buckets else s.bucket
        text += f"""
[region {s.name}]
url = s3://{bucket}/{prefix}
endpoint = {s.endpoint}
region = {signing or SIGNING_REGION}
path_style = true
credentials_file = {cred}
"""
    fs.write_config(text)


def sync(fs, timeout=120, check=True):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    if check:
        assert p.returncode == 0, \
            f"phifs sync exited {p.returncode}: {p.stderr}\n{fs.log_tail()}"
    return p


def tree(fs, count, size, seed):
    made = {}
    for i in range(count):
        data = random.Random(seed * 1000 + i).randbytes(size)
        name = f"s{seed}-{i}"
        write_file(fs.path(name), data)
        made[name] = data
    return made


def check(fs, made):
    for name, data in made.items():
        assert read_file(fs.path(name)) == data, name


def test_two_s3_regions_replicate_evict_read_back(servers, phifs_bare):
    fs = phifs_bare
    prefix = f"t{random.randrange(1 << 30)}"
    s3_config(fs, servers, cache_size="6M", prefix=prefix)
    fs.mkfs()
    fs.mount()
    made = tree(fs, 12, MiB, seed=1)
    sync(fs)
    ka = {k for k in servers[0].keys()
          if k.startswith(prefix + "/") and "/l/" not in k}
    kb = {k for k in servers[1].keys()
          if k.startswith(prefix + "/") and "/l/" not in k}
    assert f"{prefix}/superblock" in ka and f"{prefix}/superblock" in kb
    assert len(ka) > 1 and ka == kb, (ka, kb)
    st = fs.wait_status(lambda s: s["evicted_blocks"] > 0)
    assert st["evicted_blocks"] > 0, st     # 12 MiB through a 6 MiB cache
    check(fs, made)
    fs.remount()
    check(fs, made)


def test_s3_region_stopped_during_writes(servers, phifs_bare):
    fs = phifs_bare
    prefix = f"t{random.randrange(1 << 30)}"
    s3_config(fs, servers, prefix=prefix)
    fs.mkfs()
    fs.mount()
    servers[0].pause()
    try:
        made = tree(fs, 8, 512 * 1024, seed=2)      # writes go on
        p = sync(fs, timeout=8, check=False)
        assert p.returncode != 0
        assert "a" in p.stderr + p.stdout
        def waits(st, name):
            return [r for r in st["region_state"] if r["name"] == name][0][
                "waiting"]
        # b may still be taking the last of it on a slow machine: wait
        st = fs.wait_status(lambda st: waits(st, "a") > 0 and
                            waits(st, "b") == 0)
        assert waits(st, "a") > 0 and waits(st, "b") == 0, st
    finally:
        servers[0].resume()
    sync(fs)
    ka = {k for k in servers[0].keys()
          if k.startswith(prefix + "/") and "/l/" not in k}
    kb = {k for k in servers[1].keys()
          if k.startswith(prefix + "/") and "/l/" not in k}
    assert ka == kb and len(ka) > 1
    check(fs, made)


def test_mount_with_a_region_unreachable_warns_and_works(servers,
                                                         phifs_bare):
    fs = phifs_bare
    prefix = f"t{random.randrange(1 << 30)}"
    s3_config(fs, servers, prefix=prefix)
    fs.mkfs()
    servers[1].pause()
    try:
        fs.mount()          # offline first: a warning, not a refusal
        write_file(fs.path("x"), b"written while b is away")
        assert read_file(fs.path("x")) == b"written while b is away"
        fs.umount()
    finally:
        servers[1].resume()
    assert "b" in open(fs.logs[-1], errors="replace").read()


def test_mkfs_refuses_bad_credentials(servers, phifs_bare):
    fs = phifs_bare
    prefix = f"t{random.randrange(1 << 30)}"
    s3_config(fs, servers, prefix=prefix)
    cred = os.path.join(fs.base, "s3.cred")
    with open(cred, "w") as f:
        f.write("access_key_id = test:tester\n"
                "secret_access_key = s3cr3t-n0t-1t\n")
    p = fs.run("mkfs", fs.config)
    assert p.returncode != 0
    assert "region a" in p.stderr and "credentials" in p.stderr, p.stderr
    assert "s3cr3t" not in p.stderr and "testing" not in p.stderr
    assert not os.listdir(fs.cache_dir)


def _fresh(fs):
    """Nothing was made: an empty cache_dir and no key file."""
    assert not os.listdir(fs.cache_dir), os.listdir(fs.cache_dir)
    assert not os.path.exists(fs.key_file)


def test_mkfs_wrong_signing_region(servers, phifs_bare):
    fs = phifs_bare
    s3_config(fs, servers, prefix=f"t{random.randrange(1 << 30)}",
              signing="eu-west-9")
    p = fs.run("mkfs", fs.config)
    assert p.returncode != 0
    assert "region a" in p.stderr, p.stderr
    _fresh(fs)


def test_mkfs_missing_bucket(servers, phifs_bare):
    fs = phifs_bare
    s3_config(fs, servers, prefix=f"t{random.randrange(1 << 30)}",
              buckets=["phifs-a", "no-such-bucket-here"])
    p = fs.run("mkfs", fs.config)
    assert p.returncode != 0
    assert "region b" in p.stderr and "bucket" in p.stderr, p.stderr
    _fresh(fs)
    prefix = f"t{random.randrange(1 << 30)}"
    assert not [k for k in servers[0].keys() if k.startswith(prefix)]


def test_mount_refuses_wrong_credentials(servers, phifs_bare):
    fs = phifs_bare
    s3_config(fs, servers, prefix=f"t{random.randrange(1 << 30)}")
    fs.mkfs()
    cred = os.path.join(fs.base, "s3.cred")
    with open(cred, "w") as f:
        f.write("access_key_id = test:tester\n"
                "secret_access_key = s3cr3t-n0t-1t\n")
    before = sorted(os.listdir(fs.cache_dir))
    p = fs.run("mount", fs.config, fs.mnt)
    assert p.returncode != 0
    assert "region a" in p.stderr and "credentials" in p.stderr, p.stderr
    assert "s3cr3t" not in p.stderr
    assert sorted(os.listdir(fs.cache_dir)) == before


def test_reads_fail_over_while_a_region_is_stopped(servers, phifs_bare):
    fs = phifs_bare
    prefix = f"t{random.randrange(1 << 30)}"
    s3_config(fs, servers, cache_size="6M", prefix=prefix)
    fs.mkfs()
    fs.mount()
    made = tree(fs, 10, MiB, seed=3)     # 10 MiB through a 6 MiB cache
    sync(fs)
    st = fs.wait_status(lambda s: s["evicted_blocks"] > 0)
    assert st["evicted_blocks"] > 0, st
    servers[0].pause()
    try:
        check(fs, made)                  # what was evicted comes from b
    finally:
        servers[0].resume()
