#!/usr/bin/env python3
"""Writes one large synthetic DMARC aggregate report, gzipped, for memory benchmarks.

    bench/make-large-report.py OUT.xml.gz UNCOMPRESSED_MIB

Records are realistic (row, identifiers, two DKIM results and an SPF result), each from
a different source IP, so nothing can be deduplicated away.
"""
import gzip
import sys

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>large.example</org_name>
    <email>dmarc@large.example</email>
    <report_id>large-{mib}</report_id>
    <date_range><begin>1788220800</begin><end>1788307199</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p><sp>reject</sp><pct>100</pct></policy_published>
"""
RECORD = """  <record>
    <row>
      <source_ip>{ip}</source_ip>
      <count>{count}</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from><envelope_from>bounce.list.example</envelope_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s2026</selector><result>pass</result></dkim>
      <dkim><domain>list.example</domain><selector>l1</selector><result>pass</result></dkim>
      <spf><domain>bounce.list.example</domain><scope>mfrom</scope><result>softfail</result></spf>
    </auth_results>
  </record>
"""


def main():
    out, mib = sys.argv[1], int(sys.argv[2])
    target = mib << 20
    written = 0
    records = 0
    with gzip.open(out, "wt", compresslevel=1, encoding="utf-8") as f:
        head = HEAD.format(mib=mib)
        f.write(head)
        written += len(head)
        batch = []
        while written < target:
            n = records
            ip = f"{10 + n // 16777216 % 200}.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
            rec = RECORD.format(ip=ip, count=1 + n % 7)
            batch.append(rec)
            written += len(rec)
            records += 1
            if len(batch) == 4096:
                f.write("".join(batch))
                batch.clear()
        f.write("".join(batch))
        f.write("</feedback>\n")
    print(f"{out}: {records} records, {written / (1 << 20):.0f} MiB uncompressed", file=sys.stderr)


if __name__ == "__main__":
    main()
