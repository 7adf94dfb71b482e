#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the shared report corpus (../shared/corpus, beside the
# repository). The corpus directories are gitignored: the shared files are copied at run
# time and never committed. Safe to rerun; existing corpus entries are kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shared="${SHARED_CORPUS:-$here/../../shared/corpus}"
if [[ ! -d "$shared" ]]; then
    echo "seed.sh: shared corpus not found at $shared (set SHARED_CORPUS)" >&2
    exit 1
fi

mkdir -p "$here/corpus/dmarc_xml" "$here/corpus/tlsrpt_json" "$here/corpus/unpack" "$here/corpus/mime" \
    "$here/corpus/multipart"

# Flattened names: the source path with '/' replaced by '__', so files with the same
# basename in different folders do not overwrite each other.
copy() {
    local src="$1" dest_dir="$2"
    local rel="${src#"$shared"/}"
    cp -f -- "$src" "$dest_dir/${rel//\//__}"
}

n_xml=0 n_json=0 n_all=0
while IFS= read -r -d '' f; do
    case "$(basename "$f")" in
        LICENSE | README.md) continue ;;
    esac
    case "$f" in
        *.xml) copy "$f" "$here/corpus/dmarc_xml"; n_xml=$((n_xml + 1)) ;;
        *.json) copy "$f" "$here/corpus/tlsrpt_json"; n_json=$((n_json + 1)) ;;
        *.eml | *.mbox | *.msg) copy "$f" "$here/corpus/mime" ;;
    esac
    copy "$f" "$here/corpus/unpack"
    n_all=$((n_all + 1))
done < <(find "$shared" -type f -print0)

echo "seeded dmarc_xml=$n_xml tlsrpt_json=$n_json unpack=$n_all from $shared"

# Synthetic seeds just past the caps the targets set (see fuzz_targets/*.rs), all under
# the 64 KiB -max_len: the shared corpus never comes near a cap, and the fuzzer rarely
# builds a 1,001-record report or a 1 MiB gzip bomb from scratch.
if ! command -v python3 >/dev/null; then
    echo "seed.sh: python3 not found; skipping the synthetic cap seeds" >&2
    exit 0
fi
python3 - "$here/corpus" <<'PY'
import gzip, io, sys, zipfile, zlib
out = sys.argv[1]
def put(target, name, data):
    assert len(data) <= 65536, (name, len(data))
    with open(f"{out}/{target}/synth-{name}", "wb") as f:
        f.write(data)
head = (b'<?xml version="1.0"?><feedback><report_metadata><org_name>x</org_name>'
        b'<email>a@x</email><report_id>1</report_id><date_range><begin>1</begin>'
        b'<end>2</end></date_range></report_metadata><policy_published><domain>x.example'
        b'</domain><p>none</p></policy_published>')
rec = (b'<record><row><source_ip>192.0.2.1</source_ip><count>1</count></row>'
       b'<identifiers><header_from>x.example</header_from></identifiers></record>')
xml = {
    "records-1001.xml": head + b"<record/>" * 1001 + b"</feedback>",
    "records-3.xml": head + rec * 3 + b"</feedback>",
    "depth-17.xml": head + b"<a>" * 17 + b"</a>" * 17 + b"</feedback>",
    "field-4097.xml": head.replace(b"<org_name>x", b"<org_name>" + b"x" * 4097) + b"</feedback>",
    "long-tag.xml": head + b"<record " + b"a" * 9300 + b"/></feedback>",
    "long-text.xml": head + b"<record>" + b"a" * 9300 + b"</record></feedback>",
}
detail = b'{"result-type":"validation-failure","failed-session-count":1}'
def tls(details):
    return (b'{"organization-name":"x","date-range":{"start-datetime":"2016-04-01T00:00:00Z",'
            b'"end-datetime":"2016-04-01T23:59:59Z"},"contact-info":"a@x","report-id":"1",'
            b'"policies":[{"policy":{"policy-type":"sts","policy-domain":"x.example",'
            b'"mx-host":["mx.x.example"]},"summary":{"total-successful-session-count":1,'
            b'"total-failure-session-count":1},"failure-details":[' + details + b']}]}')
json = {
    "details-101.json": tls(b",".join([detail] * 101)),
    "field-4097.json": tls(detail).replace(b'"org', b'"x":"' + b"y" * 4097 + b'","org', 1),
}
for name, data in xml.items():
    put("dmarc_xml", name, data)
    put("unpack", name, data)
for name, data in json.items():
    put("tlsrpt_json", name, data)
    put("unpack", name, data)
def gz(b):
    return gzip.compress(b, 9, mtime=0)
def zipped(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()
# Markup, not one long text run (that trips max_field_bytes first).
bomb = head + b"<x/>" * (1 << 18) + b"</feedback>"
report = head + rec + b"</feedback>"
parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(257))
unpack = {
    "details-1001.json": tls(b",".join([b'{"result-type":"x","failed-session-count":1}'] * 1001)),
    "gzip-bomb-1mib.xml.gz": gz(bomb),
    "zlib-bomb-1mib": zlib.compress(bomb, 9),
    "json-bomb-1mib.json.gz": gz(b'{"a":"' + b" " * (1 << 20) + b'"}'),
    "gzip-4-layers.xml.gz": gz(gz(gz(gz(report)))),
    "gzip-3-layers.xml.gz": gz(gz(gz(report))),
    "zip-65-entries.zip": zipped([(f"{i}.xml", report) for i in range(65)]),
    "zip-in-gzip.zip.gz": gz(zipped([("r.xml", report)])),
    "zip-bomb-1mib.zip": zipped([("r.xml", bomb)]),
    "mime-257-parts.eml": b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n",
    "mime-gzip-part.eml": b"From: a@x\r\nContent-Type: application/gzip\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + __import__("base64").encodebytes(gz(report)).replace(b"\n", b"\r\n"),
    "mbox-2.mbox": b"From a@x Mon Jan  1 00:00:00 2024\nContent-Type: application/xml\n\n"
        + report + b"\n\nFrom a@x Mon Jan  1 00:00:00 2024\nSubject: none\n\nhello\n",
}
for name, data in unpack.items():
    put("unpack", name, data)
    if name.startswith(("mime-", "mbox-")):
        put("mime", name, data)
nested = b"From: a@x\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"Subject: x\r\n\r\nhi"
encoded = (b"From: a@x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + __import__("base64").encodebytes(b"Content-Type: text/xml\r\n\r\n" + report).replace(b"\n", b"\r\n"))
digest = (b'From: a@x\r\nContent-Type: multipart/digest; boundary="d"\r\n\r\n'
          + b"--d\r\n\r\nContent-Type: multipart/digest; boundary=\"d\"\r\n\r\n" * 50 + b"--d--\r\n")
qp = b"From: a@x\r\nContent-Type: text/xml\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + report.replace(b"=", b"=3D")
for name, data in {"mime-nested-2000.eml": nested, "mime-encoded-rfc822.eml": encoded,
                   "mime-digest-50.eml": digest, "mime-qp-xml.eml": qp}.items():
    put("mime", name, data)
    put("unpack", name, data)
form = (b"b0undary\n--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"r.xml\"\r\n"
        b"Content-Type: application/xml\r\n\r\n" + report + b"\r\n--b0undary\r\n"
        b"Content-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--b0undary--\r\n")
put("multipart", "form-2-parts", form)
put("multipart", "form-300-parts", b"b\n" + b"--b\r\n\r\nx\r\n" * 300 + b"--b--")
put("multipart", "form-encoded", b"b\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAA\r\n--b--")
print(f"synthetic: dmarc_xml={len(xml)} tlsrpt_json={len(json)} unpack={len(xml) + len(json) + len(unpack) + 4}, mime, multipart")
PY
