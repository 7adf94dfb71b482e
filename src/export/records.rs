//! DMARC aggregate records as rows, in parsedmarc's CSV columns.
//!
//! Input: a record with its report's header, either as parsed (`ruaflow parse --csv`)
//! or as stored (`ruaflow export --what records`). Output: one row per record with
//! [`COLUMNS`]: parsedmarc 11's aggregate CSV columns, in its order, so spreadsheets
//! and scripts written for parsedmarc keep working, then ruaflow's own. Both inputs give
//! the same row for the same record. A column whose meaning ruaflow does not have
//! (yet) stays empty rather than holding something else: `xml_schema`,
//! `org_extra_contact_info`, `errors` (parsedmarc leaves it empty too), `fo`,
//! `discovery_method`, `source_name`, `source_type`, `source_as_domain`. parsedmarc's
//! conventions are kept where they are only spelling: a signature without selector is
//! listed as `none`, an SPF check without scope as `mfrom`, times are
//! `YYYY-MM-DD HH:MM:SS` (here always UTC), and `normalized_timespan` is `False`
//! (ruaflow never splits a report's counts across days).

use ruaflow_processor::normalize::{day_of, verdict};
use ruaflow_schema::dmarc::{Record, ReportHeader};
use serde_json::Value;

use super::write::Cell;
use super::{date, datetime};

/// The columns: parsedmarc's 44, then `day` (the report day, `YYYY-MM-DD`),
/// `policy_dkim` and `policy_spf` (the receiver's aligned verdicts as reported, empty
/// when it left them out).
pub const COLUMNS: &[&str] = &[
    "xml_schema",
    "org_name",
    "org_email",
    "org_extra_contact_info",
    "report_id",
    "begin_date",
    "end_date",
    "normalized_timespan",
    "errors",
    "domain",
    "adkim",
    "aspf",
    "p",
    "sp",
    "np",
    "pct",
    "fo",
    "testing",
    "discovery_method",
    "source_ip_address",
    "source_country",
    "source_reverse_dns",
    "source_base_domain",
    "source_name",
    "source_type",
    "source_asn",
    "source_as_name",
    "source_as_domain",
    "count",
    "spf_aligned",
    "dkim_aligned",
    "dmarc_aligned",
    "disposition",
    "policy_override_reasons",
    "policy_override_comments",
    "envelope_from",
    "header_from",
    "envelope_to",
    "dkim_domains",
    "dkim_selectors",
    "dkim_results",
    "spf_domains",
    "spf_scopes",
    "spf_results",
    "day",
    "policy_dkim",
    "policy_spf",
];

/// What a row takes from its report.
#[derive(Debug, Clone, Default)]
pub struct ReportFields {
    /// `org_name`.
    pub org_name: String,
    /// `email`.
    pub org_email: Option<String>,
    /// `report_id`.
    pub report_id: String,
    /// Range start, unix seconds.
    pub begin: i64,
    /// Range end, unix seconds.
    pub end: i64,
    /// Policy domain.
    pub domain: String,
    /// `adkim`.
    pub adkim: Option<String>,
    /// `aspf`.
    pub aspf: Option<String>,
    /// `p`.
    pub p: Option<String>,
    /// `sp`.
    pub sp: Option<String>,
    /// `np`.
    pub np: Option<String>,
    /// `pct`.
    pub pct: Option<i64>,
    /// `testing`.
    pub testing: Option<String>,
}

impl ReportFields {
    /// The fields of a parsed report header.
    pub fn from_header(header: &ReportHeader) -> Self {
        let (m, p) = (&header.metadata, &header.policy);
        let word = |w: Option<&str>| w.map(str::to_owned);
        Self {
            org_name: m.org_name.clone(),
            org_email: (!m.email.is_empty()).then(|| m.email.clone()),
            report_id: m.report_id.clone(),
            begin: m.begin,
            end: m.end,
            domain: p.domain.clone(),
            adkim: word(p.adkim.as_ref().map(|v| v.as_str())),
            aspf: word(p.aspf.as_ref().map(|v| v.as_str())),
            p: word(p.p.as_ref().map(|v| v.as_str())),
            sp: word(p.sp.as_ref().map(|v| v.as_str())),
            np: word(p.np.as_ref().map(|v| v.as_str())),
            pct: p.pct.map(i64::from),
            testing: word(p.testing.as_ref().map(|v| v.as_str())),
        }
    }
}

/// A DKIM signature or SPF check as listed in a row: domain, selector or scope, result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// Signing or checked domain.
    pub domain: String,
    /// DKIM selector or SPF scope, when the receiver said.
    pub detail: Option<String>,
    /// The result word.
    pub result: String,
}

/// What a row takes from its record (and, from the store, the source's enrichment).
#[derive(Debug, Clone, Default)]
pub struct RecordFields {
    /// Sending IP, canonical text.
    pub source_ip: String,
    /// Country code (enrichment).
    pub country: Option<String>,
    /// PTR name (enrichment).
    pub reverse_dns: Option<String>,
    /// Registrable domain of the PTR name (enrichment).
    pub base_domain: Option<String>,
    /// Autonomous system number (enrichment).
    pub asn: Option<i64>,
    /// Autonomous system organization (enrichment).
    pub as_name: Option<String>,
    /// Messages.
    pub count: i64,
    /// SPF aligned and passed.
    pub spf_aligned: bool,
    /// DKIM aligned and passed.
    pub dkim_aligned: bool,
    /// What the receiver did.
    pub disposition: String,
    /// Override reasons: type and comment.
    pub reasons: Vec<(String, Option<String>)>,
    /// RFC5321.MailFrom domain.
    pub envelope_from: Option<String>,
    /// RFC5322.From domain.
    pub header_from: String,
    /// RFC5321.RcptTo domain.
    pub envelope_to: Option<String>,
    /// DKIM signatures.
    pub dkim: Vec<Check>,
    /// SPF checks.
    pub spf: Vec<Check>,
    /// The receiver's aligned DKIM verdict as reported.
    pub policy_dkim: Option<String>,
    /// The receiver's aligned SPF verdict as reported.
    pub policy_spf: Option<String>,
}

impl RecordFields {
    /// The fields of a parsed record (no enrichment).
    pub fn from_record(record: &Record) -> Self {
        let v = verdict(record);
        Self {
            source_ip: record.source_ip.to_string(),
            count: i64::try_from(record.count).unwrap_or(i64::MAX),
            spf_aligned: v.spf_aligned,
            dkim_aligned: v.dkim_aligned,
            disposition: record.disposition.as_str().to_owned(),
            reasons: record.reasons.iter().map(|r| (r.kind.as_str().to_owned(), r.comment.clone())).collect(),
            envelope_from: record.envelope_from.clone(),
            header_from: record.header_from.clone(),
            envelope_to: record.envelope_to.clone(),
            dkim: record
                .dkim_auth
                .iter()
                .map(|d| Check {
                    domain: d.domain.clone(),
                    detail: d.selector.clone(),
                    result: d.result.as_str().to_owned(),
                })
                .collect(),
            spf: record
                .spf_auth
                .iter()
                .map(|s| Check {
                    domain: s.domain.clone(),
                    detail: s.scope.as_ref().map(|x| x.as_str().to_owned()),
                    result: s.result.as_str().to_owned(),
                })
                .collect(),
            policy_dkim: record.dkim.as_ref().map(|r| r.as_str().to_owned()),
            policy_spf: record.spf.as_ref().map(|r| r.as_str().to_owned()),
            ..Self::default()
        }
    }

    /// Override reasons from the store's JSON array (`[{"type", "comment"}]`).
    pub fn reasons_from_json(json: Option<&str>) -> Vec<(String, Option<String>)> {
        json_array(json).iter().map(|r| (text(&r["type"]).unwrap_or_default(), text(&r["comment"]))).collect()
    }

    /// DKIM signatures or SPF checks from the store's JSON array; `detail` names the
    /// key of the selector (`selector`) or scope (`scope`).
    pub fn checks_from_json(json: &str, detail: &str) -> Vec<Check> {
        json_array(Some(json))
            .iter()
            .map(|c| Check {
                domain: text(&c["domain"]).unwrap_or_default(),
                detail: text(&c[detail]),
                result: text(&c["result"]).unwrap_or_default(),
            })
            .collect()
    }
}

fn json_array(json: Option<&str>) -> Vec<Value> {
    match json.map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Array(items))) => items,
        _ => Vec::new(),
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The row of one record, in [`COLUMNS`] order.
pub fn row(report: &ReportFields, record: &RecordFields) -> Vec<Cell> {
    let join = |items: Vec<&str>, sep: &str| Cell::Text(items.join(sep));
    let dkim_selectors: Vec<&str> =
        record.dkim.iter().map(|d| d.detail.as_deref().unwrap_or("none")).collect();
    let spf_scopes: Vec<&str> = record.spf.iter().map(|s| s.detail.as_deref().unwrap_or("mfrom")).collect();
    vec![
        Cell::Null,
        report.org_name.as_str().into(),
        report.org_email.clone().into(),
        Cell::Null,
        report.report_id.as_str().into(),
        datetime(report.begin).into(),
        datetime(report.end).into(),
        Cell::Bool(false),
        Cell::Null,
        report.domain.as_str().into(),
        report.adkim.clone().into(),
        report.aspf.clone().into(),
        report.p.clone().into(),
        report.sp.clone().into(),
        report.np.clone().into(),
        report.pct.into(),
        Cell::Null,
        report.testing.clone().into(),
        Cell::Null,
        record.source_ip.as_str().into(),
        record.country.clone().into(),
        record.reverse_dns.clone().into(),
        record.base_domain.clone().into(),
        Cell::Null,
        Cell::Null,
        record.asn.into(),
        record.as_name.clone().into(),
        Cell::Null,
        Cell::Int(record.count),
        Cell::Bool(record.spf_aligned),
        Cell::Bool(record.dkim_aligned),
        Cell::Bool(record.spf_aligned || record.dkim_aligned),
        record.disposition.as_str().into(),
        join(record.reasons.iter().map(|r| r.0.as_str()).collect(), ","),
        join(record.reasons.iter().map(|r| r.1.as_deref().unwrap_or("none")).collect(), "|"),
        record.envelope_from.clone().into(),
        record.header_from.as_str().into(),
        record.envelope_to.clone().into(),
        join(record.dkim.iter().map(|d| d.domain.as_str()).collect(), ","),
        join(dkim_selectors, ","),
        join(record.dkim.iter().map(|d| d.result.as_str()).collect(), ","),
        join(record.spf.iter().map(|s| s.domain.as_str()).collect(), ","),
        join(spf_scopes, ","),
        join(record.spf.iter().map(|s| s.result.as_str()).collect(), ","),
        date(day_of(report.begin, report.end)).into(),
        record.policy_dkim.clone().into(),
        record.policy_spf.clone().into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cell_per_column_and_parsedmarc_first() {
        let row = row(&ReportFields::default(), &RecordFields::default());
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(COLUMNS[..4], ["xml_schema", "org_name", "org_email", "org_extra_contact_info"]);
        assert_eq!(COLUMNS.iter().position(|c| *c == "spf_results"), Some(43), "parsedmarc's 44 come first");
    }

    #[test]
    fn stored_json_reads_back_as_parsed() {
        let dkim = r#"[{"domain":"a.example","selector":"s1","result":"pass","human_result":null},
                       {"domain":"b.example","selector":null,"result":"fail","human_result":"x"}]"#;
        let checks = RecordFields::checks_from_json(dkim, "selector");
        assert_eq!(
            checks[0],
            Check { domain: "a.example".into(), detail: Some("s1".into()), result: "pass".into() }
        );
        assert_eq!(checks[1].detail, None);
        let reasons = RecordFields::reasons_from_json(Some(r#"[{"type":"forwarded","comment":null}]"#));
        assert_eq!(reasons, [("forwarded".to_owned(), None)]);
        assert!(RecordFields::reasons_from_json(None).is_empty());
        assert!(RecordFields::checks_from_json("not json", "scope").is_empty());
    }
}
