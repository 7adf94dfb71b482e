//! Rows as the ClickHouse tables take them (RowBinary, field order = column list).
//!
//! `DateTime` columns are `u32` unix seconds, `Date` columns `u16` days since the epoch,
//! `FixedString(N)` columns `[u8; N]`; absent values are empty strings (see the DDL).

#![allow(missing_docs)] // each field is the column of the same name

use clickhouse::Row;
use serde::Serialize;

/// `envelopes`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct EnvelopeRow {
    pub sha256: [u8; 32],
    pub source: String,
    pub origin: String,
    pub filename: String,
    pub received_at: u32,
    pub stored_at: u32,
}

/// `reports`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct ReportRow {
    pub report_key: [u8; 16],
    pub kind: String,
    pub org_name: String,
    pub report_id: String,
    pub domain: String,
    pub begin_ts: u32,
    pub end_ts: u32,
    pub day: u16,
    pub email: String,
    pub schema_version: String,
    pub policy_p: String,
    pub policy_sp: String,
    pub policy_np: String,
    pub adkim: String,
    pub aspf: String,
    pub pct: Option<u8>,
    pub testing: String,
    pub record_count: u64,
    pub message_count: u64,
    pub envelope_sha256: [u8; 32],
    pub location: String,
    pub warnings: String,
    pub stored_at: u32,
}

/// `dmarc_records`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct RecordRow {
    pub report_key: [u8; 16],
    pub ordinal: u32,
    pub domain: String,
    pub day: u16,
    pub reporter: String,
    pub source_ip: String,
    pub network: String,
    pub count: u64,
    pub disposition: String,
    pub policy_dkim: String,
    pub policy_spf: String,
    pub dmarc_pass: u8,
    pub dkim_aligned: u8,
    pub spf_aligned: u8,
    pub header_from: String,
    pub envelope_from: String,
    pub envelope_to: String,
    pub dkim_domain: String,
    pub dkim_selector: String,
    pub dkim_result: String,
    pub spf_domain: String,
    pub spf_result: String,
    pub reasons: String,
    pub dkim_auth: String,
    pub spf_auth: String,
    pub stored_at: u32,
}

/// `tlsrpt_policies`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct PolicyRow {
    pub report_key: [u8; 16],
    pub ordinal: u32,
    pub day: u16,
    pub reporter: String,
    pub policy_type: String,
    pub policy_domain: String,
    pub mx_host: String,
    pub policy_string: String,
    pub successful_sessions: u64,
    pub failed_sessions: u64,
    pub stored_at: u32,
}

/// `tlsrpt_failures`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct FailureRow {
    pub report_key: [u8; 16],
    pub policy_ordinal: u32,
    pub ordinal: u32,
    pub day: u16,
    pub reporter: String,
    pub policy_domain: String,
    pub result_type: String,
    pub sending_mta_ip: String,
    pub receiving_mx_hostname: String,
    pub receiving_ip: String,
    pub failed_sessions: u64,
    pub additional_information: String,
    pub failure_reason_code: String,
    pub stored_at: u32,
}

/// `failure_reports`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct FailureReportRow {
    pub report_key: [u8; 16],
    pub arrival: u32,
    pub day: u16,
    pub reporter: String,
    pub feedback_type: String,
    pub domain: String,
    pub source_ip: String,
    pub network: String,
    pub auth_failures: String,
    pub delivery_result: String,
    pub dkim_domain: String,
    pub dkim_selector: String,
    pub spf_domain: String,
    pub identity_alignment: String,
    pub mail_from: String,
    pub rcpt_to: String,
    pub authentication_results: String,
    pub header_from: String,
    pub header_to: String,
    pub subject: String,
    pub date: Option<u32>,
    pub message_id: String,
    pub original_authentication_results: String,
    pub body: String,
    pub redacted: String,
    pub envelope_sha256: [u8; 32],
    pub location: String,
    pub stored_at: u32,
}

/// `agg_source_day`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct SourceDayRow {
    pub domain: String,
    pub day: u16,
    pub source_ip: String,
    pub reporter: String,
    pub network: String,
    pub report_key: [u8; 16],
    pub part: u32,
    pub messages: u64,
    pub dmarc_pass: u64,
    pub dkim_aligned_pass: u64,
    pub spf_aligned_pass: u64,
    pub dkim_only_pass: u64,
    pub disp_none: u64,
    pub disp_quarantine: u64,
    pub disp_reject: u64,
    pub stored_at: u32,
}

/// `agg_selector_day`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct SelectorDayRow {
    pub domain: String,
    pub day: u16,
    pub dkim_domain: String,
    pub selector: String,
    pub reporter: String,
    pub report_key: [u8; 16],
    pub part: u32,
    pub messages: u64,
    pub dkim_pass: u64,
    pub dkim_only_pass: u64,
    pub stored_at: u32,
}

/// `dead_letters`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct DeadLetterRow {
    pub envelope_sha256: [u8; 32],
    pub location: String,
    pub source: String,
    pub origin: String,
    pub reason: String,
    pub received_at: u32,
    pub raw_size: u64,
    /// RowBinary writes a byte vector exactly as a `String` column's value.
    pub raw: Vec<u8>,
    pub stored_at: u32,
}

/// `dead_letter_inputs`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct DeadLetterInputRow {
    pub envelope_sha256: [u8; 32],
    pub source: String,
    pub origin: String,
    pub filename: String,
    pub received_at: u32,
    pub raw_size: u64,
    /// RowBinary writes a byte vector exactly as a `String` column's value.
    pub raw: Vec<u8>,
    pub stored_at: u32,
}

/// `schema_migrations`.
#[derive(Debug, Clone, Row, Serialize)]
pub struct MigrationRow {
    pub version: u32,
    pub applied_at: u32,
}
