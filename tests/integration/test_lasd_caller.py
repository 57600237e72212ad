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
