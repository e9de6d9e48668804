"""audit_syslog: the audit trail forwarded live as RFC 5424 messages.

Each test starts its own rsyslogd (`rsyslogd -n -f CONF -i PIDFILE`) on
a free port of 127.0.0.1 with a TLS listener (imtcp, the ossl stream
driver) whose certificate a CA made by the test signs, and which writes
every message it takes, as it arrived, to a file.  The receiver is
always stopped at teardown.  The messages are parsed by the grammar of
RFC 5424 and checked against `phifs audit --format json`.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import conftest
from conftest import write_file
from test_audit import mount_with, settle

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
OSSL_DRIVER = glob.glob("/usr/lib/*/rsyslog/lmnsd_ossl.so") + \
    glob.glob("/usr/lib/rsyslog/lmnsd_ossl.so")

pytestmark = pytest.mark.skipif(
    not os.path.exists(RSYSLOGD) or not OSSL_DRIVER,
    reason="needs rsyslog and rsyslog-openssl (scripts/deps.sh)")

WAIT = 90       # seconds a receiver may take to get what it should


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(d, name):
    """A CA: d/NAME.pem and its key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", name + ".key", "-out", name + ".pem",
            "-subj", "/CN=phifs test " + name, cwd=d)
    return os.path.join(d, name + ".pem")


def make_cert(d, ca, name, cn="localhost"):
    """NAME.pem for 127.0.0.1 and localhost, signed by CA ca, and its key
    NAME.key (mode 0600).  Returns (certificate, key)."""
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-CAcreateserial", "-days", "2",
            "-out", name + ".pem", "-extfile", "ext.cnf", cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """True once something listens on 127.0.0.1:port (/proc/net/tcp)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


class Receiver:
    """An rsyslogd of this test: TLS on 127.0.0.1:port (or, local, a
    datagram socket of its own, as /dev/log is), every message as it
    arrived (%rawmsg%) one per line in received.log."""

    def __init__(self, local=False, mutual=False):
        self.dir = tempfile.mkdtemp(prefix="phifs-rsyslog-",
                                    dir=conftest.test_tmp())
        self.local = local
        self.mutual = mutual
        self.sock = os.path.join(self.dir, "log")
        if not local:
            self.ca = make_ca(self.dir, "ca")
            make_cert(self.dir, "ca", "server")
            self.port = free_port()
        self.log = os.path.join(self.dir, "received.log")
        self.proc = None
        self.starts = 0

    def conf(self):
        d = self.dir
        if self.local:
            return f"""
global(workDirectory="{d}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{self.sock}" UseSpecialParser="off")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{self.log}" template="raw")
"""
        return f"""
global(workDirectory="{d}"
       DefaultNetstreamDriver="ossl"
       DefaultNetstreamDriverCAFile="{d}/ca.pem"
       DefaultNetstreamDriverCertFile="{d}/server.pem"
       DefaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1"
       StreamDriver.AuthMode="{'x509/certvalid' if self.mutual else 'anon'}")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{self.log}" template="raw")
"""

    def start(self):
        assert self.proc is None
        self.starts += 1
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(self.conf())
        out = open(os.path.join(self.dir, f"rsyslogd-{self.starts}.out"),
                   "wb")
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", conf, "-i",
             os.path.join(self.dir, "rsyslogd.pid")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True)
        out.close()
        deadline = time.monotonic() + 30
        while not (os.path.exists(self.sock) if self.local
                   else listening(self.port)):
            assert self.proc.poll() is None, \
                f"rsyslogd exited {self.proc.returncode}"
            assert time.monotonic() < deadline, "rsyslogd does not listen"
            time.sleep(0.05)

    def stop(self):
        """SIGTERM and wait: rsyslogd writes what it took, then exits."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def lines(self):
        try:
            with open(self.log, "rb") as f:
                data = f.read().decode("utf-8")
        except FileNotFoundError:
            return []
        return [line for line in data.split("\n") if line]

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def mutual_receiver():
    r = Receiver(mutual=True)
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def local_receiver():
    r = Receiver(local=True)
    try:
        yield r
    finally:
        r.cleanup()


# --- RFC 5424 ----------------------------------------------------------

HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) "
    r"(?P<host>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) "
    r"(?P<procid>[\x21-\x7e]{1,128}) (?P<msgid>[\x21-\x7e]{1,32}) ")
SD_NAME = re.compile(r'[\x21-\x7e]{1,32}')


def parse_sd(s):
    """One SD-ELEMENT at the start of s: (SD-ID, {name: value}, rest)."""
    assert s.startswith("["), s
    m = SD_NAME.match(s, 1)
    end = m.end()
    sd_id = s[1:end]
    assert not set(sd_id) & set('= ]"'), sd_id
    params, i = {}, end
    while s[i] == " ":
        j = s.index("=", i + 1)
        name = s[i + 1:j]
        assert SD_NAME.fullmatch(name) and not set(name) & set(' ]"')
        assert s[j + 1] == '"', s[j:]
        i, value = j + 2, []
        while s[i] != '"':
            if s[i] == "\\" and s[i + 1] in '"\\]':
                i += 1          # an escaped '"', '\\' or ']'
            else:
                assert s[i] != "]", f"']' not escaped: {s}"
            value.append(s[i])
            i += 1
        params[name] = "".join(value)
        i += 1
    assert s[i] == "]", s[i:]
    return sd_id, params, s[i + 1:]


def parse(line):
    m = HEADER.match(line)
    assert m, f"not an RFC 5424 header: {line!r}"
    sd_id, params, rest = parse_sd(line[m.end():])
    assert rest.startswith(" "), rest
    msg = dict(m.groupdict(), sd_id=sd_id, sd=params, msg=rest[1:])
    msg["seq"] = int(params["seq"])
    return msg


def received(r):
    return [parse(line) for line in r.lines()]


def received_until(r, seq):
    """What r received, once it holds event seq (or after WAIT)."""
    deadline = time.monotonic() + WAIT
    while True:
        msgs = received(r)
        if any(m["seq"] >= seq for m in msgs) or \
                time.monotonic() > deadline:
            return msgs
        time.sleep(0.2)


def all_events(fs):
    """The trail, the queries (which each call adds) included."""
    p = fs.run("audit", fs.config, "--format", "json")
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def config_for(r, ca=None, client=None):
    text = ("patient_folders = /Patients/*\n"
            f"audit_syslog = tls://127.0.0.1:{r.port}\n"
            f"audit_syslog_ca_file = {ca or r.ca}\n")
    if client:
        text += (f"audit_syslog_cert_file = {client[0]}\n"
                 f"audit_syslog_key_file = {client[1]}\n")
    return text


def assert_in_order(msgs):
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(1, len(seqs) + 1)), \
        f"received seqs are not 1, 2, 3... once each: {seqs}"


def check_fields(m, e, pid):
    """Message m says what event e of the trail says."""
    assert m["sd_id"] == "phifs@32473"
    assert m["app"] == "phifs" and m["procid"] == str(pid)
    assert m["msgid"] == e["event"]
    assert int(m["pri"]) == 10 * 8 + (4 if e["errno"] else 5)
    assert m["ts"] == e["time"][:26] + "Z", (m["ts"], e["time"])
    assert m["host"] == (e["host"] or "-")
    sd = m["sd"]
    for k in ("errno", "uid", "gid", "pid", "ino", "bytes_read",
              "bytes_written"):
        assert int(sd[k]) == e[k], (k, sd, e)
    for k in ("user", "group", "process", "path", "path2", "patient",
              "patient2", "detail"):
        assert sd.get(k, "") == e[k], (k, sd, e)
    assert m["msg"].split(" ")[1] == e["event"], m["msg"]


def wait_log(fs, text, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while text not in fs.log_tail(1 << 20) and time.monotonic() < deadline:
        time.sleep(0.2)
    return fs.log_tail(1 << 20).count(text)


# --- tests -------------------------------------------------------------


def test_events_reach_the_receiver_as_rfc5424(phifs_factory, receiver):
    receiver.start()
    fs = mount_with(phifs_factory, config_for(receiver))
    odd = fs.path("Patients", 'Jo "e] \\x')
    os.mkdir(odd)
    write_file(os.path.join(odd, "note.txt"), b"hello")
    with pytest.raises(OSError):
        os.rmdir(fs.path("Patients"))       # not empty: phifs refuses
    settle(fs)
    evs = {e["seq"]: e for e in all_events(fs)}
    last = max(evs)
    msgs = received_until(receiver, last)
    assert_in_order(msgs)
    assert msgs and msgs[-1]["seq"] >= last
    for m in msgs:
        if m["seq"] in evs:
            check_fields(m, evs[m["seq"]], fs.pid)
    by_path = [evs[s] for s in evs if evs[s]["path"].startswith(
        '/Patients/Jo "e] \\x')]
    assert any(e["event"] == "create" and e["patient"] == 'Jo "e] \\x'
               for e in by_path), by_path
    refused = [e for e in evs.values() if e["event"] == "rmdir"]
    assert refused and refused[0]["errno"], refused
    assert int(msgs[refused[0]["seq"] - 1]["pri"]) == 84


def test_outage_loses_nothing_and_sends_nothing_twice(phifs_factory,
                                                      receiver):
    receiver.start()
    fs = mount_with(phifs_factory, config_for(receiver))
    write_file(fs.path("Patients", "before.txt"), b"1")
    settle(fs)
    first = max(e["seq"] for e in all_events(fs))
    assert received_until(receiver, first)[-1]["seq"] >= first

    receiver.stop()
    for i in range(20):
        write_file(fs.path("Patients", f"during-{i}.txt"), b"2")
    settle(fs)
    during = max(e["seq"] for e in all_events(fs))
    st = fs.status()
    assert st["audit_syslog"]["waiting"] > 0, st
    assert wait_log(fs, "audit events wait in the cache") == 1

    receiver.start()                        # the same port again
    write_file(fs.path("Patients", "after.txt"), b"3")
    settle(fs)
    after = max(e["seq"] for e in all_events(fs))
    assert after > during > first
    msgs = received_until(receiver, after)
    assert_in_order(msgs)
    assert msgs[-1]["seq"] >= after
    evs = {e["seq"]: e for e in all_events(fs)}
    for m in msgs:
        check_fields(m, evs[m["seq"]], fs.pid)
    log = fs.log_tail(1 << 20)
    assert log.count("audit events wait in the cache") == 1, log
    assert log.count("the receiver answers again") == 1, log
    fs.umount()
    # the unmount event went out before the daemon ended
    msgs = received(receiver)
    assert_in_order(msgs)
    assert msgs[-1]["msgid"] == "unmount", msgs[-1]


def test_kill9_goes_on_from_the_cursor(phifs_factory, receiver):
    """The cursor is in cache_dir: after kill -9 and a remount the mount
    goes on after the last event the receiver took, sends the events made
    while it was down, and sends none of the earlier ones again."""
    receiver.start()
    fs = mount_with(phifs_factory, config_for(receiver))
    write_file(fs.path("Patients", "a.txt"), b"1")
    settle(fs)
    st = fs.wait_status(lambda st: st["audit_syslog"]["waiting"] == 0)
    assert st["audit_syslog"]["waiting"] == 0, st
    fs.kill9()
    q = fs.run("audit", fs.config)      # an event while nothing is mounted
    assert q.returncode == 0, q.stderr
    fs.mount()
    write_file(fs.path("Patients", "b.txt"), b"2")
    settle(fs)
    last = max(e["seq"] for e in all_events(fs))
    msgs = received_until(receiver, last)
    assert_in_order(msgs)
    assert msgs[-1]["seq"] >= last


def test_wrong_ca_is_refused_and_events_wait(phifs_factory, receiver):
    receiver.start()
    other = make_ca(receiver.dir, "other")
    fs = mount_with(phifs_factory, config_for(receiver, other))
    write_file(fs.path("Patients", "a.txt"), b"1")
    settle(fs)
    assert wait_log(fs, "certificate is refused") == 1, fs.log_tail()
    st = fs.status()
    assert st["audit_syslog"]["waiting"] >= len(all_events(fs)) - 1, st
    log = fs.log_tail(1 << 20)
    assert "/Patients" not in log, log      # no path in the daemon's log
    fs.umount()
    assert fs.log_tail(1 << 20).count("certificate is refused") == 1
    assert receiver.lines() == []


def test_client_certificate_for_a_receiver_that_asks(phifs_factory,
                                                      mutual_receiver):
    """Mutual TLS: the receiver takes the events of a mount whose client
    certificate its CA signed, and refuses one another CA signed (one
    log line; the events wait)."""
    r = mutual_receiver
    r.start()
    good = make_cert(r.dir, "ca", "client", cn="clinic1")
    make_ca(r.dir, "other")
    bad = make_cert(r.dir, "other", "stranger", cn="clinic2")

    fs = mount_with(phifs_factory, config_for(r, client=bad))
    settle(fs)
    assert wait_log(fs, "TLS handshake failed") == 1, fs.log_tail()
    fs.umount()
    assert received(r) == []

    fs2 = mount_with(phifs_factory, config_for(r, client=good))
    write_file(fs2.path("Patients", "a.txt"), b"1")
    settle(fs2)
    last = max(e["seq"] for e in all_events(fs2))
    msgs = received_until(r, last)
    assert_in_order(msgs)
    assert msgs[-1]["seq"] >= last


def test_client_key_readable_by_others_stops_the_mount(phifs_factory,
                                                       receiver):
    cert, key = make_cert(receiver.dir, "ca", "client")
    os.chmod(key, 0o644)
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(
        "[filesystem]\n", "[filesystem]\n" +
        config_for(receiver, client=(cert, key)), 1))
    fs.mkfs()
    p = fs.run("mount", fs.config, fs.mnt)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "chmod 600" in err, err


@pytest.mark.parametrize("lines, words", [
    ("audit_syslog = udp://127.0.0.1:514\n", "use local or tls://"),
    ("audit_syslog = tls://127.0.0.1\n", "port from 1 to 65535"),
    ("audit_syslog = tls://127.0.0.1:0\n", "port from 1 to 65535"),
    ("audit_syslog = tls://:514\n", "bad host"),
    ("audit_syslog = local\naudit = off\n", "audit is off"),
    ("audit_syslog = local\naudit_syslog_ca_file = /etc/ca.pem\n",
     "for audit_syslog = tls://HOST:PORT only"),
    ("audit_syslog_ca_file = /etc/ca.pem\n",
     "for audit_syslog = tls://HOST:PORT only"),
    ("audit_syslog = tls://127.0.0.1:6514\n"
     "audit_syslog_cert_file = /etc/c.pem\n",
     "needs audit_syslog_key_file too"),
    ("audit_syslog = local\naudit_syslog_cert_file = /etc/c.pem\n"
     "audit_syslog_key_file = /etc/c.key\n",
     "for audit_syslog = tls://HOST:PORT only"),
])
def test_bad_config_is_refused_with_one_line(phifs_factory, lines, words):
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("[filesystem]\n", "[filesystem]\n" + lines,
                                 1))
    p = fs.run("mkfs", fs.config)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_unreadable_ca_file_stops_the_mount(phifs_factory, receiver):
    bad = os.path.join(receiver.dir, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(
        "[filesystem]\n", "[filesystem]\n" + config_for(receiver, bad), 1))
    fs.mkfs()
    p = fs.run("mount", fs.config, fs.mnt)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "audit_syslog_ca_file" in err, err


def test_local_reaches_the_syslog_socket(phifs_factory, local_receiver):
    """audit_syslog = local, with the socket the test hook names in
    place of /dev/log."""
    local_receiver.start()
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace(
        "[filesystem]\n", "[filesystem]\npatient_folders = /Patients/*\n"
        "audit_syslog = local\n", 1))
    fs.mkfs()
    fs.env["PHIFS_SYSLOG_SOCKET"] = local_receiver.sock
    fs.mount()
    os.mkdir(fs.path("Patients"))
    write_file(fs.path("Patients", "n.txt"), b"1")
    settle(fs)
    evs = {e["seq"]: e for e in all_events(fs)}
    msgs = received_until(local_receiver, max(evs))
    assert_in_order(msgs)
    assert msgs[-1]["seq"] >= max(evs)
    for m in msgs:
        if m["seq"] in evs:
            check_fields(m, evs[m["seq"]], fs.pid)


def test_local_without_a_syslog_stops_the_mount(phifs_factory):
    fs = phifs_factory(mounted=False, tag="audit")
    with open(fs.config) as f:
        text = f.read()
    fs.write_config(text.replace("[filesystem]\n",
                                 "[filesystem]\naudit_syslog = local\n", 1))
    fs.mkfs()
    fs.env["PHIFS_SYSLOG_SOCKET"] = os.path.join(fs.base, "no-such-log")
    p = fs.run("mount", fs.config, fs.mnt)
    assert p.returncode != 0
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and \
        "audit_syslog = local but there is no" in err, err
