//! The SMTP TLS report model (RFC 8460 §4).

use std::net::IpAddr;

use serde::Serialize;

use crate::vocab::vocabulary;

vocabulary! {
    /// `policy-type` (RFC 8460 §4.3).
    PolicyType { Sts => "sts", Tlsa => "tlsa", NoPolicyFound => "no-policy-found" }
}

vocabulary! {
    /// `result-type`: the 11 registered failure types (RFC 8460 §4.3 and the IANA
    /// "STARTTLS Validation Result Types" registry). `starttls-not-supported` on a domain
    /// that normally offers TLS can mean a downgrade attack.
    ResultType {
        StarttlsNotSupported => "starttls-not-supported",
        CertificateHostMismatch => "certificate-host-mismatch",
        CertificateExpired => "certificate-expired",
        CertificateNotTrusted => "certificate-not-trusted",
        ValidationFailure => "validation-failure",
        TlsaInvalid => "tlsa-invalid",
        DnssecInvalid => "dnssec-invalid",
        DaneRequired => "dane-required",
        StsPolicyFetchError => "sts-policy-fetch-error",
        StsPolicyInvalid => "sts-policy-invalid",
        StsWebpkiInvalid => "sts-webpki-invalid",
    }
}

/// A whole TLS report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsReport {
    /// `organization-name`.
    pub organization_name: String,
    /// `date-range/start-datetime`, unix seconds.
    pub start: i64,
    /// `date-range/end-datetime`, unix seconds.
    pub end: i64,
    /// `contact-info` (some senders send `null`).
    pub contact_info: Option<String>,
    /// `report-id`.
    pub report_id: String,
    /// One entry per policy the sender applied.
    pub policies: Vec<PolicyResult>,
    /// What was read leniently (a session count missing from a summary, read as 0).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl TlsReport {
    /// Successful sessions over all policies.
    pub fn successful_sessions(&self) -> u64 {
        self.policies.iter().map(|p| p.successful_sessions).sum()
    }

    /// Failed sessions over all policies.
    pub fn failed_sessions(&self) -> u64 {
        self.policies.iter().map(|p| p.failed_sessions).sum()
    }

    /// The policy domain the report is about: the first policy's domain.
    pub fn policy_domain(&self) -> Option<&str> {
        self.policies.iter().map(|p| p.policy_domain.as_str()).find(|d| !d.is_empty())
    }
}

/// One `policies[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// `policy-type`.
    pub policy_type: PolicyType,
    /// `policy-string` lines.
    pub policy_string: Vec<String>,
    /// `policy-domain` (Google leaves it out of some `no-policy-found` entries: empty).
    pub policy_domain: String,
    /// `mx-host`: a string in the RFC's example, an array elsewhere.
    pub mx_host: Vec<String>,
    /// `summary/total-successful-session-count`.
    pub successful_sessions: u64,
    /// `summary/total-failure-session-count`.
    pub failed_sessions: u64,
    /// `failure-details`.
    pub failure_details: Vec<FailureDetail>,
}

/// One `failure-details[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureDetail {
    /// `result-type`.
    pub result_type: ResultType,
    /// `sending-mta-ip`.
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`.
    pub receiving_ip: Option<IpAddr>,
    /// `failed-session-count`.
    pub failed_session_count: u64,
    /// `additional-information` (a URI).
    pub additional_information: Option<String>,
    /// `failure-reason-code`.
    pub failure_reason_code: Option<String>,
}
