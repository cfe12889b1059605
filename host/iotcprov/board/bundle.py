"""Many files in one compressed stream: the files a deploy writes, concatenated and zlib-compressed
on the host (window 2**wbits, what the board can afford to inflate: `window_bits`), sent as one
staging file
and expanded on the board by `deflate.DeflateIO` (every ESP32 build of MicroPython v1.23 to v1.28
has the module: ports/esp32 builds at MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES, which enables
MICROPY_PY_DEFLATE; so does the unix port). One stream compresses better than each file alone and
needs a round trip per 4 KB of base64 instead of per file; the board returns the SHA-256 of every
file it wrote."""

import hashlib
import zlib

# The zlib window: the board's DeflateIO allocates 2**wbits bytes to inflate (it reads wbits from
# the stream's header, extmod/moddeflate.c since v1.23). A 32 KB window makes the firmware's
# stream about 8 % smaller than a 4 KB one; a board with less free heap than LARGE_WINDOW_HEAP
# (in the raw REPL, before any application runs) gets the small one.
SMALL_WBITS = 12
LARGE_WBITS = 15
LARGE_WINDOW_HEAP = 96 * 1024
STAGING = "/iotc-bundle.z"

# Runs on the board after the connection's helpers (_ip): expand staging file `s` into the files
# `e` = [(path below folder `d`, size), ...] in order, taking each file's SHA-256 of the bytes as
# they are written (reading the files back would double the flash reads), and return the SHA-256
# of those digests (`combined_digest`): 64 characters back on the line instead of 68 a file.
EXPAND_HELPER = """\
def _ix(s,d,e):
 b=bytearray(512);v=memoryview(b);r=hashlib.sha256();q=None
 with open(s,'rb') as i:
  z=deflate.DeflateIO(i,deflate.ZLIB)
  for p,n in e:
   p=d+p;f=p[:p.rfind('/')]
   if f!=q:_ip(f);q=f
   h=hashlib.sha256()
   with open(p,'wb') as o:
    while n:
     k=z.readinto(v[:min(n,512)])
     if not k:raise OSError(5)
     o.write(v[:k]);h.update(v[:k]);n-=k
   r.update(h.digest())
 os.remove(s)
 return binascii.hexlify(r.digest()).decode()
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


def receive_call(path: str, size: int, define: bool = True) -> str:
    """The board code that receives `size` bytes of escaped stream into `path` (RECEIVE_HELPER),
    defining the helper first unless this session already did."""
    return (RECEIVE_HELPER if define else "") + f"_ib({path!r},{size})"


def window_bits(free_heap: int | None) -> int:
    """The zlib window for a board with `free_heap` bytes free (None: unknown, the small one)."""
    return LARGE_WBITS if free_heap is not None and free_heap >= LARGE_WINDOW_HEAP else SMALL_WBITS


def compress(data: bytes, wbits: int = SMALL_WBITS) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def pack(files: dict[str, bytes], wbits: int = SMALL_WBITS) -> tuple[bytes, list[tuple[str, int]]]:
    """(compressed stream, [(path, size)] in stream order) for `files` {board path: bytes}, in the
    dict's order: a caller that needs a file written last puts it last."""
    return compress(b"".join(files.values()), wbits), [(path, len(data)) for path, data in files.items()]


def expand_call(entries: list[tuple[str, int]], define: bool = True) -> str:
    """The board code that expands the staging file into `entries` and prints their SHA-256,
    defining the helper first unless this session already did. The paths go below their common
    folder, each written once: fewer bytes on the line."""
    base, names = common_folder([path for path, _ in entries])
    relative = [(name, size) for name, (_, size) in zip(names, entries, strict=True)]
    return (EXPAND_HELPER if define else "") + f"print(repr(_ix({STAGING!r},{base!r},{relative!r})))"


def common_folder(paths: list[str]) -> tuple[str, list[str]]:
    """('/lib/iotc/', ['app.mpy', ...]) for ['/lib/iotc/app.mpy', ...]: the deepest folder that
    holds every path (ending in '/'), and each path below it."""
    folders = [path.split("/")[:-1] for path in paths]
    common = folders[0] if folders else []
    for parts in folders[1:]:
        while parts[: len(common)] != common:
            common = common[:-1]
    base = "/".join(common) + "/" if common else ""
    return base, [path[len(base) :] for path in paths]


def combined_digest(files: dict[str, bytes], entries: list[tuple[str, int]]) -> str:
    """What `_ix` returns when every file was written as sent: the SHA-256 of the files' SHA-256
    digests, in stream order."""
    return hashlib.sha256(b"".join(hashlib.sha256(files[path]).digest() for path, _ in entries)).hexdigest()
