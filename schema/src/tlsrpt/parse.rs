//! TLSRPT JSON parser.
//!
//! Input: the bytes of one JSON document (read whole: TLS reports are small, and the
//! buffer is capped by `max_buffered_bytes`). Output: a [`TlsReport`]. Lenient about
//! `mx-host` as a string or an array, `contact-info: null`, a missing `policy-domain`
//! on `no-policy-found`, datetimes with or without a timezone, unknown fields, a summary
//! with one of its two session counts missing (RFC 8460 requires both; some reporters
//! leave out the zero one: read as 0, with a warning); strict about the report id,
//! organization, date range and a summary with no count at all.

use std::net::IpAddr;

use serde::Deserialize;

use super::model::*;
use crate::error::{clip, Error};
use crate::limits::{LimitExceeded, Limits};
use crate::text::trim_ascii;
use crate::time::parse_datetime;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawReport {
    organization_name: Option<String>,
    date_range: Option<RawRange>,
    contact_info: Option<String>,
    report_id: Option<String>,
    #[serde(default)]
    policies: Vec<RawPolicyResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRange {
    start_datetime: Option<String>,
    end_datetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPolicyResult {
    policy: Option<RawPolicy>,
    summary: Option<RawSummary>,
    #[serde(default)]
    failure_details: Vec<RawFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawPolicy {
    policy_type: Option<String>,
    #[serde(default)]
    policy_string: OneOrMany,
    policy_domain: Option<String>,
    #[serde(default)]
    mx_host: OneOrMany,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawSummary {
    total_successful_session_count: Option<u64>,
    total_failure_session_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFailure {
    result_type: Option<String>,
    sending_mta_ip: Option<String>,
    receiving_mx_hostname: Option<String>,
    receiving_mx_helo: Option<String>,
    receiving_ip: Option<String>,
    failed_session_count: Option<u64>,
    additional_information: Option<String>,
    failure_reason_code: Option<String>,
}

/// A JSON string, array of strings, or null.
#[derive(Default)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<Shape>::deserialize(d)? {
            None => OneOrMany(Vec::new()),
            Some(Shape::One(s)) => OneOrMany(vec![s]),
            Some(Shape::Many(v)) => OneOrMany(v),
        })
    }
}

/// Parses one TLS report.
pub fn parse_report(json: &[u8], limits: &Limits) -> Result<TlsReport, Error> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| Error::Json(e.to_string()))?;
    if !value.is_object() || value.get("policies").is_none() && value.get("organization-name").is_none() {
        return Err(Error::NotAReport("json document is not an smtp tls report".into()));
    }
    check_strings(&value, limits.max_field_bytes)?;
    let raw: RawReport = serde_json::from_value(value).map_err(|e| Error::Json(e.to_string()))?;
    let organization_name = required(raw.organization_name, "organization-name")?;
    let report_id = required(raw.report_id, "report-id")?;
    let range = raw.date_range.ok_or(Error::MissingField("date-range"))?;
    let start = datetime(range.start_datetime, "date-range/start-datetime")?;
    let end = datetime(range.end_datetime, "date-range/end-datetime")?;
    let details: usize = raw.policies.iter().map(|p| p.failure_details.len()).sum();
    if details as u64 > limits.max_records {
        return Err(LimitExceeded::Records(limits.max_records).into());
    }
    let mut warnings = Vec::new();
    let policies = raw
        .policies
        .into_iter()
        .enumerate()
        .map(|(i, p)| policy_result(p, i, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TlsReport {
        organization_name,
        start,
        end,
        contact_info: raw.contact_info.filter(|c| !c.is_empty()),
        report_id,
        policies,
        warnings,
    })
}

fn policy_result(
    raw: RawPolicyResult,
    index: usize,
    warnings: &mut Vec<String>,
) -> Result<PolicyResult, Error> {
    let policy = raw.policy.ok_or(Error::MissingField("policies/policy"))?;
    let summary = raw.summary.ok_or(Error::MissingField("policies/summary"))?;
    let policy_type = required(policy.policy_type, "policies/policy/policy-type")?;
    let (successful_sessions, failed_sessions) =
        match (summary.total_successful_session_count, summary.total_failure_session_count) {
            (Some(ok), Some(failed)) => (ok, failed),
            (None, None) => return Err(Error::MissingField("summary/total-successful-session-count")),
            (ok, failed) => {
                let missing = if ok.is_none() {
                    "total-successful-session-count"
                } else {
                    "total-failure-session-count"
                };
                warnings.push(format!("policy {}: summary has no {missing}; read as 0", index + 1));
                (ok.unwrap_or(0), failed.unwrap_or(0))
            }
        };
    Ok(PolicyResult {
        policy_type: PolicyType::parse(&policy_type),
        policy_string: policy.policy_string.0,
        policy_domain: policy.policy_domain.unwrap_or_default().to_ascii_lowercase(),
        mx_host: policy.mx_host.0,
        successful_sessions,
        failed_sessions,
        failure_details: raw
            .failure_details
            .into_iter()
            .map(|f| {
                Ok(FailureDetail {
                    result_type: ResultType::parse(&required(f.result_type, "failure-details/result-type")?),
                    sending_mta_ip: ip(f.sending_mta_ip),
                    receiving_mx_hostname: f.receiving_mx_hostname,
                    receiving_mx_helo: f.receiving_mx_helo,
                    receiving_ip: ip(f.receiving_ip),
                    failed_session_count: f
                        .failed_session_count
                        .ok_or(Error::MissingField("failure-details/failed-session-count"))?,
                    additional_information: f.additional_information,
                    failure_reason_code: f.failure_reason_code,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?,
    })
}

fn required(value: Option<String>, field: &'static str) -> Result<String, Error> {
    value.map(|v| trim_ascii(&v).to_owned()).filter(|v| !v.is_empty()).ok_or(Error::MissingField(field))
}

fn datetime(value: Option<String>, field: &'static str) -> Result<i64, Error> {
    let value = required(value, field)?;
    parse_datetime(&value).ok_or_else(|| Error::InvalidField { field, value: clip(&value) })
}

fn ip(value: Option<String>) -> Option<IpAddr> {
    value.and_then(|v| trim_ascii(&v).parse().ok())
}

/// Enforces `max_field_bytes` on every string in the document.
fn check_strings(value: &serde_json::Value, max: u32) -> Result<(), Error> {
    match value {
        serde_json::Value::String(s) if s.len() > max as usize => Err(LimitExceeded::FieldBytes(max).into()),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| check_strings(v, max)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.len() > max as usize {
                return Err(LimitExceeded::FieldBytes(max).into());
            }
            check_strings(v, max)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(summary: &str) -> Result<TlsReport, Error> {
        let json = format!(
            r#"{{"organization-name":"r","report-id":"1",
               "date-range":{{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"}},
               "policies":[{{"policy":{{"policy-type":"Brand-New","policy-domain":"example.com"}},"summary":{summary}}}]}}"#
        );
        parse_report(json.as_bytes(), &Limits::default())
    }

    #[test]
    fn one_missing_session_count_is_zero_with_a_warning_and_none_is_an_error() {
        let r = report(r#"{"total-successful-session-count":5}"#).expect("one count");
        assert_eq!((r.successful_sessions(), r.failed_sessions()), (5, 0));
        assert_eq!(r.warnings, ["policy 1: summary has no total-failure-session-count; read as 0"]);
        assert_eq!(r.policies[0].policy_type, PolicyType::Other("Brand-New".into()), "kept as sent");
        let r = report(r#"{"total-failure-session-count":2}"#).expect("one count");
        assert_eq!((r.successful_sessions(), r.failed_sessions()), (0, 2));
        assert_eq!(r.warnings.len(), 1);
        assert!(report(r#"{"total-successful-session-count":1,"total-failure-session-count":0}"#)
            .expect("both")
            .warnings
            .is_empty());
        assert!(matches!(report("{}"), Err(Error::MissingField(_))));
    }
}
