#!/usr/bin/env python3
"""Size of a benchmark input, on disk and decompressed, as one JSON object.

    bench/input_stats.py PATH...

PATH is a file or a directory (walked recursively; names starting with "." skipped, as
ruaflow does). Prints {"files", "disk_bytes", "doc_bytes"}: doc_bytes is the size of
the documents after decompression (gzip in any number of layers, raw zlib, every zip
member; other files count as they are), the bytes an XML or JSON parser has to read.
Standard library only.
"""

import gzip
import io
import json
import os
import sys
import zipfile
import zlib


def doc_size(data, depth=0):
    if depth < 4 and data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                head = g.read(4)
                if head[:2] == b"\x1f\x8b" or head in (b"PK\x03\x04", b"PK\x05\x06"):
                    return doc_size(head + g.read(), depth + 1)
                n = len(head)
                while chunk := g.read(1 << 20):  # streamed: a 1 GiB report is never held
                    n += len(chunk)
                return n
        except (OSError, EOFError, zlib.error):
            return len(data)
    if depth < 4 and data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return sum(doc_size(z.read(i), depth + 1) for i in z.infolist() if not i.is_dir())
        except (zipfile.BadZipFile, OSError, zlib.error):
            return len(data)
    if depth < 4 and len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        try:
            return doc_size(zlib.decompress(data), depth + 1)
        except zlib.error:
            return len(data)
    return len(data)


def walk(path):
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield os.path.join(root, name)
    else:
        yield path


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: input_stats.py PATH...")
    files = disk = doc = 0
    for p in sys.argv[1:]:
        for f in walk(p):
            with open(f, "rb") as fh:
                data = fh.read()
            files += 1
            disk += len(data)
            doc += doc_size(data)
    print(json.dumps({"files": files, "disk_bytes": disk, "doc_bytes": doc}))


if __name__ == "__main__":
    main()
