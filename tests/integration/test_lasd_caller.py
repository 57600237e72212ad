# SPDX-License-Identifier: Apache-2.0
"""What lasd measures and whom it refuses: the measurement cache, and callers that run code other
than their executable and root's libraries (a preloaded library that hid itself from the
environment check, anonymous executable memory)."""
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from harness import binary, run

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# A client in C: one request (quote over zero report data, or seal key for argv[3]), prints
# "<status> <hex of the answer>" for a quote's measurement or a key, "<status> <message>" on error.
CLIENT_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
const char marker[] = "CUSTOS-TEST-MARKER-AAAAAAAAAAAAAAAA";
static int rd(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
int main(int argc, char **argv)
{
    unsigned char req[4 + 65] = {0}, resp[4096], hdr[4];
    size_t n = 1 + 64;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (argc < 3)
        return 2;
    if (argc > 99)
        puts(marker);
    strncpy(a.sun_path, argv[1], sizeof(a.sun_path) - 1);
    if (!strcmp(argv[2], "seal")) {
        req[4] = 2;
        n = 1 + strlen(argv[3]);
        memcpy(req + 5, argv[3], n - 1);
    } else {
        req[4] = 1;
    }
    req[2] = (unsigned char)(n >> 8);
    req[3] = (unsigned char)n;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || write(fd, req, 4 + n) != (ssize_t)(4 + n) ||
        rd(fd, hdr, 4) < 0)
        return 3;
    size_t len = ((size_t)hdr[2] << 8) | hdr[3];
    if (len > sizeof(resp) || rd(fd, resp, len) < 0 || len < 1)
        return 4;
    printf("%d ", resp[0]);
    if (resp[0] != 0)
        printf("%.*s\n", (int)len - 1, (char *)resp + 1);
    else if (req[4] == 1)
        for (int i = 0; i < 32; i++)
            printf("%02x%s", resp[1 + 50 + i], i == 31 ? "\n" : "");
    else
        for (size_t i = 1; i < len; i++)
            printf("%02x%s", resp[i], i == len - 1 ? "\n" : "");
    return 0;
}
"""


def compile_c(directory, name, source, *flags):
    src = os.path.join(directory, name + ".c")
    out = os.path.join(directory, name)
    with open(src, "w") as f:
        f.write(source)
    r = subprocess.run(["gcc", "-O1", "-o", out, src, *flags], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def ask(node, exe, *args, prefix=(), env=None):
    r = run([*prefix, exe, node.socket, *args], env=env)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    status, _, rest = r.stdout.strip().partition(" ")
    return int(status), rest


def test_measurement_follows_an_in_place_rewrite(nodes, tmp_path):
    """The cache must not hand out the old measurement for an executable changed in place (same
    device and inode, same size, even the same mtime: only ctime tells)."""
    n = nodes("n1").start()
    exe = compile_c(str(tmp_path), "client", CLIENT_C)
    before = os.stat(exe)
    st, m1 = ask(n, exe, "quote")
    assert st == 0 and m1 == hashlib.sha256(open(exe, "rb").read()).hexdigest()
    assert ask(n, exe, "quote") == (0, m1)  # cached: the same
    data = open(exe, "rb").read()
    at = data.index(b"CUSTOS-TEST-MARKER-AAAA")
    fd = os.open(exe, os.O_WRONLY)  # no O_TRUNC: the same inode, rewritten in place
    try:
        os.pwrite(fd, b"CUSTOS-TEST-MARKER-BBBB", at)
    finally:
        os.close(fd)
    os.utime(exe, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(exe)
    assert (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns  # the kernel's own witness of the change
    st, m2 = ask(n, exe, "quote")
    assert st == 0
    assert m2 != m1
    assert m2 == hashlib.sha256(open(exe, "rb").read()).hexdigest()


# A preloaded library that hides itself from lasd's environment check: its constructor overwrites
# "LD_PRELOAD=" in the process's initial environment block (what /proc/<pid>/environ shows).
SCRUB_SO_C = r"""
#include <string.h>
extern char **environ;
__attribute__((constructor)) static void scrub(void)
{
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "LD_PRELOAD=", 11))
            memset(*e, 'X', 10);
}
"""

# Python clients: seal key for 'cas-db' and a quote, each printed as "<status> <answer>".
PY_ASK = r"""
import socket, struct, sys
def ask(payload):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    s.sendall(struct.pack('>I', len(payload)) + payload)
    n = struct.unpack('>I', s.recv(4))[0]; r = b''
    while len(r) < n: r += s.recv(n - len(r))
    return r
for p in (bytes([2]) + b'cas-db', bytes([1]) + bytes(64)):
    r = ask(p)
    print(r[0], r[1:].hex() if r[0] == 0 else r[1:].decode(errors='replace'))
"""


@pytest.fixture
def shared():
    """A directory other users can reach (the socket and the test's programs go there)."""
    d = tempfile.mkdtemp(prefix="custos-caller-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def shared_node(shared, nodes):
    n = nodes("n1")
    n.socket = os.path.join(shared, "las.sock")
    return n.start()


def py_ask(node, prefix=(), env=None, pre=""):
    r = run([*prefix, "/usr/bin/python3", "-c", pre + PY_ASK, node.socket], env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2, r.stdout
    return [(int(l.split(" ", 1)[0]), l.split(" ", 1)[1]) for l in lines]


def test_normal_callers_still_served(shared, nodes):
    n = shared_node(shared, nodes)
    cas = os.path.join(shared, "cas")
    shutil.copy(binary("cas"), cas)
    os.chmod(cas, 0o755)
    for prefix in ([], NOBODY):
        (s1, key), (s2, _) = py_ask(n, prefix)
        assert (s1, s2) == (0, 0), (key, prefix)
        r = run([*prefix, cas, "las", "quote", "--las", n.socket, "--report-data", "00"])
        assert r.returncode == 0, r.stderr
    # the program itself may be anyone's: it is what is measured
    client = compile_c(shared, "client", CLIENT_C)
    os.chown(client, 65534, 65534)
    os.chmod(client, 0o775)
    for prefix in ([], NOBODY):
        st, m = ask(n, client, "quote", prefix=prefix)
        assert st == 0 and m == hashlib.sha256(open(client, "rb").read()).hexdigest(), m


def test_preloaded_library_that_hid_itself_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    lib = compile_c(shared, "scrub.so", SCRUB_SO_C, "-shared", "-fPIC")
    os.chown(lib, 65534, 65534)
    # LD_PRELOAD is set by env(1) after setpriv, so it reaches python and not setpriv
    preload = ["env", f"LD_PRELOAD={lib}"]
    for prefix in ([], NOBODY):
        # the attack is real: the library is loaded and the environment lasd reads no longer says so
        r = run([*prefix, *preload, "/usr/bin/python3", "-c",
                 "print(open('/proc/self/environ','rb').read().count(b'LD_PRELOAD='),"
                 f" sum({lib!r} in l for l in open('/proc/self/maps')) > 0)"])
        assert r.stdout.split() == ["0", "True"], (prefix, r.stdout, r.stderr)
        for status, msg in py_ask(n, [*prefix, *preload]):
            assert status == 1, ("served a caller running a user's library", prefix, msg)
            assert lib in msg and "owned by uid 65534" in msg, msg
    # a root-owned library that others may write is refused as well
    os.chown(lib, 0, 0)
    os.chmod(lib, 0o775)
    for status, msg in py_ask(n, [*NOBODY, *preload]):
        assert status == 1 and lib in msg and "writable by group or others" in msg, msg
    os.chmod(lib, 0o755)  # root's, not writable by others: accepted (what root installed)
    assert [s for s, _ in py_ask(n, [*NOBODY, *preload])] == [0, 0]


ANON_EXEC = ("import mmap\nm = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE,"
             " prot=mmap.PROT_READ | mmap.PROT_EXEC)\n")
# shared anonymous memory is a deleted shmem file as the kernel shows it ("/dev/zero (deleted)")
SHARED_ANON_EXEC = "import mmap\nm = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC)\n"
WX_FILE = ("import mmap, tempfile\nf = tempfile.TemporaryFile()\nf.truncate(4096)\n"
           "m = mmap.mmap(f.fileno(), 4096, flags=mmap.MAP_PRIVATE,"
           " prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n")


def test_anonymous_executable_memory_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    for prefix in ([], NOBODY):
        for status, msg in py_ask(n, prefix, pre=ANON_EXEC):
            assert status == 1 and "anonymous executable memory" in msg, msg
        for status, msg in py_ask(n, prefix, pre=SHARED_ANON_EXEC):
            assert status == 1 and "/dev/zero (deleted)" in msg, msg


def test_writable_executable_mapping_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    for status, msg in py_ask(n, [], pre=WX_FILE):
        assert status == 1 and "writable and executable" in msg, msg


# A caller whose own code differs in memory from its executable: it rewrites (with the same
# bytes) one page of its text, a private copy, then makes it read-only and executable again. Its
# maps show only its executable and root's libraries; smaps shows the private copy.
PATCH_C = r"""
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
__attribute__((noinline)) void unused_fn(void) { __asm__ volatile("nop; nop; nop; nop"); }
__attribute__((constructor)) static void patch(void)
{
    volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)&unused_fn;
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;
    mprotect((void *)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
    *p = *p;
    mprotect((void *)page, 4096, PROT_READ | PROT_EXEC);
}
"""


def test_code_changed_in_memory_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    exe = compile_c(shared, "patched", PATCH_C + CLIENT_C)
    st, msg = ask(n, exe, "quote")
    assert st == 1 and "changed in memory" in msg and exe in msg, msg
    clean = compile_c(shared, "clean", CLIENT_C)
    assert ask(n, clean, "quote")[0] == 0


# A caller that maps anonymous executable memory while lasd hashes its executable: it watches its
# own executable (inotify) and maps the memory once lasd has opened it for hashing, i.e. after the
# check that runs before measuring. The executable is made large so the hashing outlasts the
# reaction by orders of magnitude.
RACE_C = r"""
#include <sys/inotify.h>
#include <sys/mman.h>
static int g_ifd = -1;
static void watch_self(const char *exe)
{
    g_ifd = inotify_init1(0);
    inotify_add_watch(g_ifd, exe, IN_ACCESS);
}
static void map_after_access(void)
{
    char ev[4096];
    if (read(g_ifd, ev, sizeof(ev)) > 0)
        mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
"""


def test_code_mapped_during_measuring_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    src = RACE_C + CLIENT_C.replace('#include <stdio.h>', '#include <stdio.h>\n#include <unistd.h>', 1)
    src = src.replace("    int fd = socket(AF_UNIX, SOCK_STREAM, 0);",
                      "    watch_self(\"/proc/self/exe\");\n    int fd = socket(AF_UNIX, SOCK_STREAM, 0);")
    src = src.replace("        rd(fd, hdr, 4) < 0)", "        (map_after_access(), rd(fd, hdr, 4) < 0))")
    # the includes of RACE_C come before CLIENT_C's: put CLIENT_C's headers first
    src = "#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n" + src
    exe = compile_c(shared, "racer", src)
    with open(exe, "ab") as f:
        f.truncate(os.path.getsize(exe) + (256 << 20))  # 256 MiB more to hash (a sparse tail)
    st, msg = ask(n, exe, "quote")
    assert st == 1 and "anonymous executable memory" in msg, msg


# A caller that execs another program (root's, so its mappings pass) while lasd hashes its
# executable; a child it forked before keeps the socket and prints the answer.
EXEC_RACE_C = r"""
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    unsigned char req[4 + 65] = {0, 0, 0, 65, 1}, resp[4096];
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char ev[4096];
    if (argc < 2)
        return 2;
    strncpy(a.sun_path, argv[1], sizeof(a.sun_path) - 1);
    int ifd = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(ifd, "/proc/self/exe", IN_ACCESS);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* not CLOEXEC: it survives the exec */
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 3;
    if (fork() == 0) { /* the reader */
        size_t got = 0;
        ssize_t n;
        while ((n = read(fd, resp + got, sizeof(resp) - got)) > 0)
            if ((got += (size_t)n) >= 5 && got >= 4 + (size_t)resp[3])
                break;
        if (got < 5)
            return 4;
        printf("%d %.*s\n", resp[4], resp[4] ? (int)resp[3] - 1 : 0, (char *)resp + 5);
        return 0;
    }
    if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req) || read(ifd, ev, sizeof(ev)) <= 0)
        return 5;
    execl("/usr/bin/sleep", "sleep", "1", (char *)NULL);
    return 6;
}
"""


def test_exec_during_measuring_is_refused(shared, nodes):
    n = shared_node(shared, nodes)
    exe = compile_c(shared, "execer", EXEC_RACE_C)
    with open(exe, "ab") as f:
        f.truncate(os.path.getsize(exe) + (256 << 20))  # hashing outlasts the exec by far
    r = run(["sh", "-c", f"{exe} {n.socket}; wait"])  # the reader's output, whoever ends first
    out = r.stdout.strip()
    assert out.startswith("1 ") and "changed its executable during measurement" in out, (out, r.stderr)
