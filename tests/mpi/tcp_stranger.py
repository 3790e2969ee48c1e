#!/usr/bin/env python3
"""tcp_stranger.py HOST PORT MODE -- a process outside the job connecting to
a weft tcp rank. MODE garbage: an HTTP request instead of the handshake;
MODE forged: weft's magic and ranks with a tag made from a wrong secret.
Prints 'client PORT' (our local port, which weft must log) and 'closed' if
the rank hung up without sending anything beyond its 16-byte challenge."""
import os, socket, struct, sys

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=20)
print("client", s.getsockname()[1], flush=True)
chal = b""
while len(chal) < 16:
    b = s.recv(16 - len(chal))
    if not b:
        break
    chal += b
if mode == "garbage":
    msg = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".ljust(48, b"x")
else:
    msg = b"WEFTTCP1" + struct.pack("<II", 0, 1) + os.urandom(16) + os.urandom(16)
s.sendall(msg)
rest = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        rest += b
except ConnectionResetError:
    pass
print("closed" if len(chal) == 16 and rest == b"" else "answered %r" % rest, flush=True)
