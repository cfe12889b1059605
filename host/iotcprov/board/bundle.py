"""Many files in one compressed stream: the files a deploy writes, concatenated and zlib-compressed
on the host (window 2**ZLIB_WBITS, what the board can afford to inflate), sent as one staging file
and expanded on the board by `deflate.DeflateIO` (every ESP32 build of MicroPython v1.23 to v1.28
has the module: ports/esp32 builds at MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES, which enables
MICROPY_PY_DEFLATE; so does the unix port). One stream compresses better than each file alone and
needs a round trip per 4 KB of base64 instead of per file; the board returns the SHA-256 of every
file it wrote."""

import hashlib
import zlib

# A small zlib window: the board's DeflateIO allocates 2**wbits bytes to inflate.
ZLIB_WBITS = 12
STAGING = "/iotc-bundle.z"

# Runs on the board after the connection's helpers (_ip, _ih): expand staging file `s` into the
# files `e` = [(path, size), ...] in order, and return their SHA-256.
EXPAND_HELPER = """\
def _ix(s,e):
 b=bytearray(512);v=memoryview(b);r=[]
 with open(s,'rb') as i:
  z=deflate.DeflateIO(i,deflate.ZLIB)
  for p,n in e:
   _ip(p[:p.rfind('/')])
   with open(p,'wb') as o:
    while n:
     k=z.readinto(v[:min(n,512)])
     if not k:raise OSError(5)
     o.write(v[:k]);n-=k
   r.append(_ih(p))
 os.remove(s)
 return r
"""


# Runs on the board: receive `n` bytes of escaped stream (see `escape`) from the REPL's stdin into
# file `p`, unescaping them, in chunks of RECEIVE_CHUNK. Ctrl-C stays enabled: no 0x03 byte is on the
# wire, so a host that dies mid-transfer (process killed, PC crashed, cable pulled) leaves a board
# that the next connection's Ctrl-C interrupts, as any running code; with Ctrl-C disabled it stayed
# deaf until reset. It sends ACK once ready and once per chunk read; the host keeps at most
# RECEIVE_WINDOW bytes unacknowledged, which the board's 260-byte stdin ring buffer
# (ports/esp32/mphalport.c since v1.23) holds while a chunk goes to flash. The same window as
# MicroPython's own raw-paste mode. `e`: the previous chunk ended with ESCAPE. (bytes.find, not
# bytearray.find: v1.23's find takes str and bytes only.)
ACK = b"\x06"
RECEIVE_CHUNK = 128
RECEIVE_WINDOW = 256
RECEIVE_HELPER = """\
def _ib(p,n):
 import sys
 r=sys.stdin.buffer;b=bytearray(128);v=memoryview(b);e=0
 with open(p,'wb') as f:
  sys.stdout.write('\\x06')
  while n:
   m=min(n,128);g=0
   while g<m:
    k=r.readinto(v[g:m])
    if not k:raise OSError(5)
    g+=k
   sys.stdout.write('\\x06');n-=m
   c=bytes(v[:m]);a=s=0
   if e:b[0]^=32;s=1;e=0
   while 1:
    i=c.find(b'\\x10',s)
    if i<0:break
    f.write(v[a:i])
    if i+1<m:b[i+1]^=32
    else:e=1
    a=i+1;s=i+2
   f.write(v[a:m])
"""


def escape(data: bytes) -> bytes:
    """`data` as the receiver takes it: 0x10 (the escape) and 0x03 (Ctrl-C, which the board's UART
    interrupt takes) become 0x10 followed by the byte ^ 0x20; the escape goes first."""
    return data.replace(b"\x10", b"\x10\x30").replace(b"\x03", b"\x10\x23")


def receive_call(path: str, size: int) -> str:
    """The board code that receives `size` bytes of escaped stream into `path` (RECEIVE_HELPER)."""
    return RECEIVE_HELPER + f"_ib({path!r},{size})"


def compress(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, ZLIB_WBITS)
    return packer.compress(data) + packer.flush()


def pack(files: dict[str, bytes]) -> tuple[bytes, list[tuple[str, int]]]:
    """(compressed stream, [(path, size)] in stream order) for `files` {board path: bytes}."""
    order = sorted(files)
    return compress(b"".join(files[path] for path in order)), [(path, len(files[path])) for path in order]


def expand_call(entries: list[tuple[str, int]]) -> str:
    """The board code that expands the staging file into `entries` and prints their SHA-256."""
    return EXPAND_HELPER + f"print(repr(_ix({STAGING!r},{entries!r})))"


def digests(files: dict[str, bytes], entries: list[tuple[str, int]]) -> list[str]:
    return [hashlib.sha256(files[path]).hexdigest() for path, _ in entries]
