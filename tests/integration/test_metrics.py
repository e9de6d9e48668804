"""The mount's Prometheus endpoint (metrics_listen).

Each test mounts with metrics_listen on a free loopback port, scrapes
http://127.0.0.1:PORT/metrics with urllib and reads the samples back:
values must move as the filesystem does (dirty bytes, then none after a
sync; FUSE requests; a region made unreachable through the fault hook goes
down and counts errors; fetches from a region that refuses them count
errors).  Every scrape is also checked by `promtool check metrics`.  One
test starts a real Prometheus server (Debian's prometheus) on another free
loopback port, with its storage in the test's directory, lets it scrape
the mount and asks its HTTP API for the result; the server is always
killed at the end.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import read_file, write_file

MiB = 1 << 20
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_config(fs, port, extra=""):
    """The fixture's config with metrics on 127.0.0.1:port; seal_delay 1h
    so that written blocks stay dirty until a sync."""
    with open(fs.config) as f:
        text = f.read()
    text = text.replace("seal_delay = 1s\n",
                        f"seal_delay = 1h\nmetrics_listen = 127.0.0.1:{port}"
                        f"\n{extra}")
    fs.write_config(text)


def http_get(port, path="/metrics"):
    """(status, content type, body) of GET path."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), \
                r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def promtool_check(text):
    if not os.path.exists(PROMTOOL):
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and \
        not p.stderr.strip(), f"promtool: {p.stdout}{p.stderr}"


def parse(text):
    """{(name, ((label, value), ...)): float}; HELP and TYPE checked to
    come once, before the samples of their family."""
    out, typed = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in typed, f"two TYPE lines for {name}"
            typed[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in typed or family in typed, \
            f"sample before its TYPE: {line!r}"
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def scrape(port):
    status, ctype, body = http_get(port)
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    promtool_check(body)
    return parse(body)


def val(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}"
    return samples[key]


def wait_for(port, pred, timeout=60.0):
    """Scrape until pred(samples) holds; return the last scrape.  The
    deadline allows for an ASan build on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(port)
        if pred(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.2)


def mounted_with_metrics(fs, extra=""):
    port = free_port()
    metrics_config(fs, port, extra)
    fs.mkfs()
    fs.mount()
    return port


def sync(fs, timeout=120, check=True):
    p = fs.run("sync", fs.config, "--timeout", str(timeout),
               timeout=timeout + 60)
    if check:
        assert p.returncode == 0, f"phifs sync: {p.stderr.strip()}"
    return p


def test_metrics_follow_writes_and_sync(phifs_bare):
    fs = phifs_bare
    port = mounted_with_metrics(fs)
    s = scrape(port)
    for r in ("a", "b"):
        assert val(s, "phifs_region_up", region=r) == 1
        assert val(s, "phifs_region_upload_errors_total", region=r) == 0
    assert val(s, "phifs_dirty_bytes") == 0
    assert val(s, "phifs_cache_limit_bytes") == 20 * 1024 ** 3
    assert val(s, "phifs_lease_age_seconds") >= 0
    creates = val(s, "phifs_fuse_operations_total", op="create")
    writes = val(s, "phifs_fuse_operations_total", op="write")

    write_file(fs.path("f"), os.urandom(12345))
    s = wait_for(port, lambda s: val(s, "phifs_dirty_bytes") == 12345)
    assert val(s, "phifs_dirty_bytes") == 12345
    assert val(s, "phifs_dirty_blocks") == 1
    assert val(s, "phifs_fuse_operations_total", op="create") == creates + 1
    assert val(s, "phifs_fuse_operations_total", op="write") > writes
    assert val(s, "phifs_fuse_operation_duration_seconds_count",
               op="create") == creates + 1
    assert val(s, "phifs_cache_used_bytes") > 0
    uploads = val(s, "phifs_region_upload_duration_seconds_count",
                  region="a")

    sync(fs)
    s = wait_for(port, lambda s: val(s, "phifs_dirty_bytes") == 0)
    assert val(s, "phifs_dirty_bytes") == 0
    assert val(s, "phifs_sealed_objects") == 0
    now = time.time()
    for r in ("a", "b"):
        assert val(s, "phifs_region_waiting_objects", region=r) == 0
        assert val(s, "phifs_region_upload_duration_seconds_count",
                   region=r) > uploads
        done = val(s, "phifs_region_last_complete_replication_"
                   "timestamp_seconds", region=r)
        assert now - 60 < done <= now + 1, (done, now)

    status, _, body = http_get(port, "/other")
    assert status == 404, (status, body)
    status, _, body = http_get(port, "/metricsx")
    assert status == 404, (status, body)


def test_small_files_cost_one_commit_each(phifs_bare):
    """Creating small files one after another, then deleting them, costs
    about one synced metadata commit per file (issue 10): the sealer folds
    the files closed close together in one transaction, and the inodes
    the kernel forgets after their unlink are freed in batches.  Each of
    those used to be a commit of its own, two per file."""
    fs = phifs_bare
    port = mounted_with_metrics(fs)
    n = 200
    d = fs.path("d")
    os.mkdir(d)
    sync(fs)
    start = val(scrape(port), "phifs_metadata_commits_total")
    data = os.urandom(4096)
    for i in range(n):
        write_file(os.path.join(d, f"f{i}"), data)
    sync(fs)                            # what is left folded and sealed
    mid = val(scrape(port), "phifs_metadata_commits_total")
    assert n <= mid - start < 1.5 * n, (mid - start, n)

    for i in range(n):
        os.unlink(os.path.join(d, f"f{i}"))
    st = fs.wait_status(lambda st: st["orphans"] == 0)
    assert st["orphans"] == 0, st       # every inode freed
    end = val(scrape(port), "phifs_metadata_commits_total")
    assert n <= end - mid < 1.5 * n, (end - mid, n)


def test_unreachable_region_goes_down_and_counts_errors(phifs_bare):
    fs = phifs_bare
    fs.set_faults("b", None)            # the hook on, no faults yet
    port = mounted_with_metrics(fs)
    s = scrape(port)
    assert val(s, "phifs_region_up", region="b") == 1
    fs.set_faults("b", "fail_all")
    write_file(fs.path("f"), os.urandom(MiB))
    p = sync(fs, timeout=3, check=False)
    assert p.returncode != 0
    s = wait_for(port, lambda s: val(s, "phifs_region_up", region="b") == 0)
    assert val(s, "phifs_region_up", region="b") == 0
    assert val(s, "phifs_region_up", region="a") == 1
    assert val(s, "phifs_region_upload_errors_total", region="b") >= 3
    assert val(s, "phifs_region_upload_errors_total", region="a") == 0
    s = wait_for(port, lambda s: val(
        s, "phifs_region_waiting_objects", region="b") > 0 and val(
        s, "phifs_region_waiting_objects", region="a") == 0)
    assert val(s, "phifs_region_waiting_objects", region="b") > 0
    assert val(s, "phifs_region_waiting_bytes", region="b") > 0
    assert val(s, "phifs_region_waiting_objects", region="a") == 0
    fs.set_faults("b", None)
    sync(fs)
    s = wait_for(port, lambda s: val(s, "phifs_region_up", region="b") == 1)
    assert val(s, "phifs_region_up", region="b") == 1


def test_fetches_and_evictions_are_counted(phifs_bare):
    fs = phifs_bare
    fs.set_faults("a", None)
    port = free_port()
    metrics_config(fs, port)
    with open(fs.config) as f:
        text = f.read()
    text = re.sub(r"cache_size = \S+", "cache_size = 6M", text)
    fs.write_config(re.sub(r"block_size = \S+", "block_size = 256K", text))
    fs.mkfs()
    fs.mount()
    made = {}
    for i in range(4):                  # 4 x 4 MiB through a 6 MiB cache
        for j in range(4):
            data = os.urandom(MiB)
            write_file(fs.path(f"f{i}-{j}"), data)
            made[f"f{i}-{j}"] = data
        sync(fs)
    s = wait_for(port, lambda s: val(s, "phifs_cache_evictions_total") > 0)
    assert val(s, "phifs_cache_evictions_total") > 0
    assert val(s, "phifs_region_fetch_errors_total", region="a") == 0
    fs.set_faults("a", "fail_all get")
    for name, data in made.items():     # evicted ones come from b
        assert read_file(fs.path(name)) == data, name
    s = scrape(port)
    assert val(s, "phifs_region_fetch_errors_total", region="a") > 0
    assert val(s, "phifs_region_fetch_duration_seconds_count",
               region="b") > 0
    assert val(s, "phifs_region_fetch_errors_total", region="b") == 0


def test_port_in_use_stops_the_mount(phifs_bare):
    fs = phifs_bare
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        metrics_config(fs, port)
        fs.mkfs()
        p = fs.run("mount", fs.config, fs.mnt)
        assert p.returncode == 1, p
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        assert f"metrics_listen 127.0.0.1:{port}" in lines[0], lines
        assert "in use" in lines[0], lines
    assert not os.path.ismount(fs.mnt)
    # refused before the lease: nothing reached the regions
    for root in (fs.region_dir_a, fs.region_dir_b):
        assert not os.path.exists(os.path.join(root, "l")), \
            os.listdir(root)


# --- a real Prometheus server ---------------------------------------------

def prom_query(port, query):
    url = (f"http://127.0.0.1:{port}/api/v1/query?" +
           urllib.parse.urlencode({"query": query}))
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read().decode())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def test_prometheus_scrapes_the_mount(phifs_bare):
    if not (os.path.exists(PROMETHEUS) and os.access(PROMETHEUS, os.X_OK)):
        pytest.skip("prometheus is not installed (Debian: prometheus)")
    fs = phifs_bare
    port = mounted_with_metrics(fs)
    write_file(fs.path("f"), os.urandom(4096))
    base = os.path.join(fs.base, "prometheus")
    os.mkdir(base)
    conf = os.path.join(base, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: phifs-test\n"
                "    static_configs:\n"
                f"      - targets: ['127.0.0.1:{port}']\n")
    web = free_port()
    log = open(os.path.join(base, "prometheus.log"), "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={conf}",
         f"--storage.tsdb.path={os.path.join(base, 'data')}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True)
    try:
        up = dirty = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, \
                f"prometheus exited {proc.returncode}"
            with contextlib.suppress(OSError, ValueError):
                up = prom_query(web, 'up{job="phifs-test"}')
                dirty = prom_query(web, 'phifs_region_up{job="phifs-test"}')
                if up and up[0]["value"][1] == "1" and len(dirty) == 2:
                    break
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", up
        assert sorted(r["metric"]["region"] for r in dirty) == ["a", "b"]
        assert all(r["value"][1] == "1" for r in dirty), dirty
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
