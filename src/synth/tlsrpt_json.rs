//! SMTP TLS reports (RFC 8460 JSON) as Google and Microsoft send them.
//!
//! Input: a TLS reporter, a policy domain with its MTA-STS setup, a day and its sessions
//! ([`TlsDay`]). Output: the JSON document appended to a reusable buffer, keys in the
//! reporters' order: Google on one line with `mx-host` and a `date_domain` report id,
//! Microsoft pretty-printed without `mx-host` and with a FILETIME-based report id.

use std::fmt::Display;
use std::io::Write;

use super::calendar::{day_end, day_start, rfc3339};
use super::rng::Rng;
use super::traffic::TlsDay;
use super::world::{Domain, TlsReporter, TlsSetup};

/// Stream tag for TLS report ids.
const T_TLS_ID: u64 = 21;
/// Seconds between 1601-01-01 (the Windows FILETIME epoch) and 1970-01-01.
const FILETIME_OFFSET_SECS: u64 = 11_644_473_600;

/// The report id in the reporter's format.
pub fn report_id(seed: u64, rep: &TlsReporter, d: usize, dom: &Domain, day: u32) -> String {
    if rep.google {
        // Google: `2024-09-03T00:00:00Z_example.com`.
        format!("{}_{}", rfc3339(day_start(day)), dom.name)
    } else {
        // Microsoft: generation time in 100 ns FILETIME ticks, `+`, the domain.
        let mut rng = Rng::derive(seed, &[T_TLS_ID, d as u64, u64::from(day)]);
        let generated = day_end(day) + 1 + rng.between(600, 4 * 3_600);
        let ticks = (generated + FILETIME_OFFSET_SECS) * 10_000_000 + rng.below(10_000_000);
        format!("{ticks}+{}", dom.name)
    }
}

/// A minimal JSON writer: compact or pretty (4 spaces), keys in call order.
struct Json<'a> {
    buf: &'a mut Vec<u8>,
    pretty: bool,
    depth: usize,
    /// Nothing written yet in the innermost container.
    fresh: bool,
}

impl Json<'_> {
    fn sep(&mut self) {
        if !self.fresh {
            self.buf.push(b',');
        }
        self.fresh = false;
        self.newline();
    }

    fn newline(&mut self) {
        if self.pretty {
            self.buf.push(b'\n');
            for _ in 0..self.depth {
                self.buf.extend_from_slice(b"    ");
            }
        }
    }

    fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        self.raw_str(k);
        self.buf.push(b':');
        if self.pretty {
            self.buf.push(b' ');
        }
        self
    }

    fn item(&mut self) -> &mut Self {
        self.sep();
        self
    }

    fn open(&mut self, bracket: u8) {
        self.buf.push(bracket);
        self.depth += 1;
        self.fresh = true;
    }

    fn close(&mut self, bracket: u8) {
        self.depth -= 1;
        if !self.fresh {
            self.newline();
        }
        self.fresh = false;
        self.buf.push(bracket);
    }

    fn raw_str(&mut self, s: &str) {
        self.buf.push(b'"');
        for c in s.chars() {
            match c {
                '"' => self.buf.extend_from_slice(b"\\\""),
                '\\' => self.buf.extend_from_slice(b"\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(self.buf, "\\u{:04x}", u32::from(c));
                }
                c => {
                    let mut tmp = [0; 4];
                    self.buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        self.buf.push(b'"');
    }

    fn str(&mut self, s: &str) {
        self.raw_str(s);
    }

    fn num(&mut self, n: impl Display) {
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{n}");
    }
}

/// Appends TLS reporter `rep`'s report on `dom` (with MTA-STS setup `setup`) for `day`.
pub fn render(
    rep: &TlsReporter,
    dom: &Domain,
    setup: &TlsSetup,
    day: u32,
    report_id: &str,
    sessions: &TlsDay<'_>,
    buf: &mut Vec<u8>,
) {
    let mut j = Json { buf, pretty: !rep.google, depth: 0, fresh: true };
    j.open(b'{');
    j.key("organization-name").str(rep.organization);
    j.key("date-range").open(b'{');
    j.key("start-datetime").str(&rfc3339(day_start(day)));
    j.key("end-datetime").str(&rfc3339(day_end(day)));
    j.close(b'}');
    j.key("contact-info").str(rep.contact);
    j.key("report-id").str(report_id);
    j.key("policies").open(b'[');
    j.item().open(b'{');
    j.key("policy").open(b'{');
    match setup.sts_mode {
        Some(mode) => {
            j.key("policy-type").str("sts");
            j.key("policy-string").open(b'[');
            j.item().str("version: STSv1");
            j.item().str(&format!("mode: {mode}"));
            for (mx, _) in &setup.mx {
                j.item().str(&format!("mx: {mx}"));
            }
            j.item().str("max_age: 604800");
            j.close(b']');
            j.key("policy-domain").str(&dom.name);
            if rep.google {
                j.key("mx-host").open(b'[');
                for (mx, _) in &setup.mx {
                    j.item().str(mx);
                }
                j.close(b']');
            }
        }
        None => {
            j.key("policy-type").str("no-policy-found");
            j.key("policy-domain").str(&dom.name);
        }
    }
    j.close(b'}');
    j.key("summary").open(b'{');
    j.key("total-successful-session-count").num(sessions.successful);
    j.key("total-failure-session-count").num(sessions.failed());
    j.close(b'}');
    if !sessions.failures.is_empty() {
        j.key("failure-details").open(b'[');
        for f in &sessions.failures {
            j.item().open(b'{');
            j.key("result-type").str(f.result_type);
            if let Some((mta, mx, mx_ip)) = f.endpoint {
                j.key("sending-mta-ip").str(&mta.to_string());
                j.key("receiving-mx-hostname").str(mx);
                j.key("receiving-ip").str(&mx_ip.to_string());
            }
            j.key("failed-session-count").num(f.count);
            if let Some(code) = f.reason_code {
                j.key("failure-reason-code").str(code);
            }
            j.close(b'}');
        }
        j.close(b']');
    }
    j.close(b'}');
    j.close(b']');
    j.close(b'}');
    if j.pretty {
        j.buf.push(b'\n');
    }
}
