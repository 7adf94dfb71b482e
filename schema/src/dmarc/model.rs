//! The DMARC aggregate report model (RFC 7489 Appendix C and RFC 9990).
//!
//! One [`ReportHeader`] (metadata + the published policy) and any number of [`Record`]s.
//! The parser hands records out one at a time, so a whole [`DmarcReport`] is only built
//! by callers that want it (`ruaflow parse`); the pipeline streams.

use std::net::IpAddr;

use serde::Serialize;

use crate::vocab::vocabulary;

/// Which schema the report was written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaVersion {
    /// RFC 7489 Appendix C (no namespace, or the `http://dmarc.org/dmarc-xml/0.1` one).
    Rfc7489,
    /// RFC 9990, namespace `urn:ietf:params:xml:ns:dmarc-2.0`.
    Rfc9990,
}

vocabulary! {
    /// DKIM/SPF identifier alignment mode (`adkim`, `aspf`).
    Alignment { Relaxed => "r" | "relaxed", Strict => "s" | "strict" }
}

vocabulary! {
    /// A published policy (`p`, `sp`, `np`).
    Policy { None => "none", Quarantine => "quarantine", Reject => "reject" }
}

vocabulary! {
    /// What the receiver did with the messages. RFC 9990 adds `pass`.
    Disposition { None => "none", Quarantine => "quarantine", Reject => "reject", Pass => "pass" }
}

vocabulary! {
    /// The DMARC-level (aligned) DKIM or SPF verdict in `policy_evaluated`.
    DmarcResult { Pass => "pass", Fail => "fail" }
}

vocabulary! {
    /// Why the receiver overrode the policy (`reason/type`). RFC 9990 adds `policy_test_mode`.
    OverrideType {
        Forwarded => "forwarded",
        SampledOut => "sampled_out",
        TrustedForwarder => "trusted_forwarder",
        MailingList => "mailing_list",
        LocalPolicy => "local_policy",
        PolicyTestMode => "policy_test_mode",
        /// The registered `other` reason.
        OtherReason => "other",
    }
}

vocabulary! {
    /// The raw DKIM verification result in `auth_results`.
    DkimResult {
        None => "none",
        Pass => "pass",
        Fail => "fail",
        Policy => "policy",
        Neutral => "neutral",
        TempError => "temperror",
        PermError => "permerror",
    }
}

vocabulary! {
    /// The raw SPF result in `auth_results`. The pre-RFC 7208 words some receivers still
    /// send map to their successors: `hardfail` → fail, `unknown` → permerror,
    /// `error` → temperror (RFC 4408 §2.5.7 history).
    SpfResult {
        None => "none",
        Neutral => "neutral",
        Pass => "pass",
        Fail => "fail" | "hardfail",
        SoftFail => "softfail",
        TempError => "temperror" | "error",
        PermError => "permerror" | "unknown",
    }
}

vocabulary! {
    /// Which identity SPF checked.
    SpfScope { Mfrom => "mfrom", Helo => "helo" }
}

vocabulary! {
    /// RFC 9990 `testing`: whether the policy was in test mode (`t=y`).
    Testing { No => "n", Yes => "y" }
}

/// `report_metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportMetadata {
    /// The reporting organization (`org_name`).
    pub org_name: String,
    /// The reporter's contact address.
    pub email: String,
    /// `extra_contact_info`.
    pub extra_contact_info: Option<String>,
    /// The reporter's id for this report; unique only together with the range and domain.
    pub report_id: String,
    /// Start of the reported range, unix seconds.
    pub begin: i64,
    /// End of the reported range, unix seconds.
    pub end: i64,
    /// `error` elements: problems the reporter had.
    pub errors: Vec<String>,
    /// RFC 9990 `generator`: the software that wrote the report.
    pub generator: Option<String>,
}

/// `policy_published`: the DMARC record the receiver found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyPublished {
    /// The policy domain (the domain whose DMARC record applied).
    pub domain: String,
    /// DKIM alignment mode.
    pub adkim: Option<Alignment>,
    /// SPF alignment mode.
    pub aspf: Option<Alignment>,
    /// The domain policy.
    pub p: Option<Policy>,
    /// The subdomain policy.
    pub sp: Option<Policy>,
    /// RFC 9990: the policy for non-existent subdomains.
    pub np: Option<Policy>,
    /// Sampling percentage (RFC 7489; removed in RFC 9990).
    pub pct: Option<u8>,
    /// Failure reporting options, as sent.
    pub fo: Option<String>,
    /// RFC 9990 test mode.
    pub testing: Option<Testing>,
    /// RFC 9990: how the policy was discovered (`psl`, `treewalk`).
    pub discovery_method: Option<String>,
}

/// Everything that comes before the records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportHeader {
    /// Which schema the report used.
    pub schema: SchemaVersion,
    /// `version`, as sent (often missing).
    pub version: Option<String>,
    /// `report_metadata`.
    pub metadata: ReportMetadata,
    /// The first `policy_published` (a few receivers repeat it; the first wins).
    pub policy: PolicyPublished,
}

/// A `reason` under `policy_evaluated`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideReason {
    /// The reason type.
    #[serde(rename = "type")]
    pub kind: OverrideType,
    /// Free-text comment.
    pub comment: Option<String>,
}

/// One `auth_results/dkim`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DkimAuth {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`); optional in RFC 7489, often missing.
    pub selector: Option<String>,
    /// The verification result.
    pub result: DkimResult,
    /// Free-text detail.
    pub human_result: Option<String>,
}

/// One `auth_results/spf`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpfAuth {
    /// The checked domain.
    pub domain: String,
    /// The checked identity.
    pub scope: Option<SpfScope>,
    /// The SPF result.
    pub result: SpfResult,
    /// Free-text detail.
    pub human_result: Option<String>,
}

/// One `record`: a row of messages from one source IP with one set of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The sending IP.
    pub source_ip: IpAddr,
    /// How many messages this row stands for.
    pub count: u64,
    /// What the receiver did.
    pub disposition: Disposition,
    /// Aligned DKIM verdict; `None` when the receiver left it out.
    pub dkim: Option<DmarcResult>,
    /// Aligned SPF verdict; `None` when the receiver left it out.
    pub spf: Option<DmarcResult>,
    /// Policy override reasons.
    pub reasons: Vec<OverrideReason>,
    /// RFC5322.From domain.
    pub header_from: String,
    /// RFC5321.MailFrom domain.
    pub envelope_from: Option<String>,
    /// RFC5321.RcptTo domain.
    pub envelope_to: Option<String>,
    /// DKIM signatures evaluated.
    pub dkim_auth: Vec<DkimAuth>,
    /// SPF checks evaluated.
    pub spf_auth: Vec<SpfAuth>,
}

impl Record {
    /// True when the receiver's DMARC evaluation passed (aligned DKIM or aligned SPF).
    pub fn dmarc_pass(&self) -> bool {
        self.dkim == Some(DmarcResult::Pass) || self.spf == Some(DmarcResult::Pass)
    }
}

/// A whole report, for callers that want one value (`ruaflow parse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DmarcReport {
    /// Metadata and policy.
    #[serde(flatten)]
    pub header: ReportHeader,
    /// The records, in document order.
    pub records: Vec<Record>,
    /// Problems worked around while parsing (skipped records, repeated policies).
    pub warnings: Vec<String>,
}

impl DmarcReport {
    /// Sum of `count` over all records.
    pub fn message_count(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}
