# A process that keeps BPF objects alive in ways no fd table shows (for the count guard's
# tests). It receives a BPF object fd as fd 3 and, by argv[1]:
#   filter:    attaches it (a socket_filter program) to a UDP socket with SO_ATTACH_BPF
#   in-flight: sends it over a unix socket pair with SCM_RIGHTS and never receives it
# then closes fd 3, prints "ready", and waits until its stdin closes.
import os, socket, struct, sys

SO_ATTACH_BPF = 50
mode = sys.argv[1]
keep = []
if mode == 'filter':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack('i', 3))
    keep.append(s)
elif mode == 'in-flight':
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    socket.send_fds(a, [b'x'], [3])
    keep += [a, b]
else:
    sys.exit('unknown mode ' + mode)
os.close(3)
print('ready', flush=True)
sys.stdin.read()
