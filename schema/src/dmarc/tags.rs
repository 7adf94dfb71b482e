//! The DMARC aggregate report vocabulary: element names the reader knows, matched
//! case-insensitively and without namespace prefix, and which element paths below
//! `<feedback>` are fields whose text it keeps.

/// Element names the parser knows, matched case-insensitively without prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    DateRange,
    Begin,
    End,
    Error,
    Generator,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    AuthResults,
    Selector,
    Result,
    HumanResult,
    Scope,
    Unknown,
}

/// Known element names. `identities` is what the pre-RFC draft schema called
/// `identifiers`. [`Tag::of`] dispatches on length first, so each lookup compares at
/// most a few fixed-size words; a test checks it agrees with this table.
#[cfg(test)]
const TAG_NAMES: &[(&[u8], Tag)] = &[
    (b"adkim", Tag::Adkim),
    (b"aspf", Tag::Aspf),
    (b"auth_results", Tag::AuthResults),
    (b"begin", Tag::Begin),
    (b"comment", Tag::Comment),
    (b"count", Tag::Count),
    (b"date_range", Tag::DateRange),
    (b"discovery_method", Tag::DiscoveryMethod),
    (b"disposition", Tag::Disposition),
    (b"dkim", Tag::Dkim),
    (b"domain", Tag::Domain),
    (b"email", Tag::Email),
    (b"end", Tag::End),
    (b"envelope_from", Tag::EnvelopeFrom),
    (b"envelope_to", Tag::EnvelopeTo),
    (b"error", Tag::Error),
    (b"extra_contact_info", Tag::ExtraContactInfo),
    (b"feedback", Tag::Feedback),
    (b"fo", Tag::Fo),
    (b"generator", Tag::Generator),
    (b"header_from", Tag::HeaderFrom),
    (b"human_result", Tag::HumanResult),
    (b"identifiers", Tag::Identifiers),
    (b"identities", Tag::Identifiers),
    (b"np", Tag::Np),
    (b"org_name", Tag::OrgName),
    (b"p", Tag::P),
    (b"pct", Tag::Pct),
    (b"policy_evaluated", Tag::PolicyEvaluated),
    (b"policy_published", Tag::PolicyPublished),
    (b"reason", Tag::Reason),
    (b"record", Tag::Record),
    (b"report_id", Tag::ReportId),
    (b"report_metadata", Tag::ReportMetadata),
    (b"result", Tag::Result),
    (b"row", Tag::Row),
    (b"scope", Tag::Scope),
    (b"selector", Tag::Selector),
    (b"source_ip", Tag::SourceIp),
    (b"sp", Tag::Sp),
    (b"spf", Tag::Spf),
    (b"testing", Tag::Testing),
    (b"type", Tag::Type),
    (b"version", Tag::Version),
];

impl Tag {
    pub(super) fn of(local: &[u8]) -> Tag {
        let mut lower = [0u8; 24];
        let Some(dst) = lower.get_mut(..local.len()) else {
            return Tag::Unknown;
        };
        dst.copy_from_slice(local);
        dst.make_ascii_lowercase();
        let word: &[u8] = dst;
        match word.len() {
            1 => {
                if word == b"p" {
                    Tag::P
                } else {
                    Tag::Unknown
                }
            }
            2 => {
                if word == b"fo" {
                    Tag::Fo
                } else if word == b"np" {
                    Tag::Np
                } else if word == b"sp" {
                    Tag::Sp
                } else {
                    Tag::Unknown
                }
            }
            3 => {
                if word == b"end" {
                    Tag::End
                } else if word == b"pct" {
                    Tag::Pct
                } else if word == b"row" {
                    Tag::Row
                } else if word == b"spf" {
                    Tag::Spf
                } else {
                    Tag::Unknown
                }
            }
            4 => {
                if word == b"aspf" {
                    Tag::Aspf
                } else if word == b"dkim" {
                    Tag::Dkim
                } else if word == b"type" {
                    Tag::Type
                } else {
                    Tag::Unknown
                }
            }
            5 => {
                if word == b"adkim" {
                    Tag::Adkim
                } else if word == b"begin" {
                    Tag::Begin
                } else if word == b"count" {
                    Tag::Count
                } else if word == b"email" {
                    Tag::Email
                } else if word == b"error" {
                    Tag::Error
                } else if word == b"scope" {
                    Tag::Scope
                } else {
                    Tag::Unknown
                }
            }
            6 => {
                if word == b"domain" {
                    Tag::Domain
                } else if word == b"reason" {
                    Tag::Reason
                } else if word == b"record" {
                    Tag::Record
                } else if word == b"result" {
                    Tag::Result
                } else {
                    Tag::Unknown
                }
            }
            7 => {
                if word == b"comment" {
                    Tag::Comment
                } else if word == b"testing" {
                    Tag::Testing
                } else if word == b"version" {
                    Tag::Version
                } else {
                    Tag::Unknown
                }
            }
            8 => {
                if word == b"feedback" {
                    Tag::Feedback
                } else if word == b"org_name" {
                    Tag::OrgName
                } else if word == b"selector" {
                    Tag::Selector
                } else {
                    Tag::Unknown
                }
            }
            9 => {
                if word == b"generator" {
                    Tag::Generator
                } else if word == b"report_id" {
                    Tag::ReportId
                } else if word == b"source_ip" {
                    Tag::SourceIp
                } else {
                    Tag::Unknown
                }
            }
            10 => {
                if word == b"date_range" {
                    Tag::DateRange
                } else if word == b"identities" {
                    Tag::Identifiers
                } else {
                    Tag::Unknown
                }
            }
            11 => {
                if word == b"disposition" {
                    Tag::Disposition
                } else if word == b"envelope_to" {
                    Tag::EnvelopeTo
                } else if word == b"header_from" {
                    Tag::HeaderFrom
                } else if word == b"identifiers" {
                    Tag::Identifiers
                } else {
                    Tag::Unknown
                }
            }
            12 => {
                if word == b"auth_results" {
                    Tag::AuthResults
                } else if word == b"human_result" {
                    Tag::HumanResult
                } else {
                    Tag::Unknown
                }
            }
            13 => {
                if word == b"envelope_from" {
                    Tag::EnvelopeFrom
                } else {
                    Tag::Unknown
                }
            }
            15 => {
                if word == b"report_metadata" {
                    Tag::ReportMetadata
                } else {
                    Tag::Unknown
                }
            }
            16 => {
                if word == b"discovery_method" {
                    Tag::DiscoveryMethod
                } else if word == b"policy_evaluated" {
                    Tag::PolicyEvaluated
                } else if word == b"policy_published" {
                    Tag::PolicyPublished
                } else {
                    Tag::Unknown
                }
            }
            18 => {
                if word == b"extra_contact_info" {
                    Tag::ExtraContactInfo
                } else {
                    Tag::Unknown
                }
            }
            _ => Tag::Unknown,
        }
    }
}

/// A leaf element whose text the parser keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Version,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    Begin,
    End,
    Error,
    Generator,
    PolicyDomain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    SourceIp,
    Count,
    Disposition,
    EvalDkim,
    EvalSpf,
    ReasonType,
    ReasonComment,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    DkimDomain,
    DkimSelector,
    DkimResult,
    DkimHuman,
    SpfDomain,
    SpfScope,
    SpfResult,
    SpfHuman,
}

/// Maps a path below `<feedback>` to the field it holds, if it is a known leaf.
pub(super) fn field_at(path: &[Tag]) -> Option<Field> {
    use Tag as T;
    Some(match path {
        [T::Version] => Field::Version,
        [T::ReportMetadata, leaf] => match leaf {
            T::OrgName => Field::OrgName,
            T::Email => Field::Email,
            T::ExtraContactInfo => Field::ExtraContactInfo,
            T::ReportId => Field::ReportId,
            T::Error => Field::Error,
            T::Generator => Field::Generator,
            _ => return None,
        },
        [T::ReportMetadata, T::DateRange, T::Begin] => Field::Begin,
        [T::ReportMetadata, T::DateRange, T::End] => Field::End,
        [T::PolicyPublished, leaf] => match leaf {
            T::Domain => Field::PolicyDomain,
            T::Adkim => Field::Adkim,
            T::Aspf => Field::Aspf,
            T::P => Field::P,
            T::Sp => Field::Sp,
            T::Np => Field::Np,
            T::Pct => Field::Pct,
            T::Fo => Field::Fo,
            T::Testing => Field::Testing,
            T::DiscoveryMethod => Field::DiscoveryMethod,
            _ => return None,
        },
        [T::Record, T::Row, T::SourceIp] => Field::SourceIp,
        [T::Record, T::Row, T::Count] => Field::Count,
        [T::Record, T::Row, T::PolicyEvaluated, leaf] => match leaf {
            T::Disposition => Field::Disposition,
            T::Dkim => Field::EvalDkim,
            T::Spf => Field::EvalSpf,
            _ => return None,
        },
        [T::Record, T::Row, T::PolicyEvaluated, T::Reason, T::Type] => Field::ReasonType,
        [T::Record, T::Row, T::PolicyEvaluated, T::Reason, T::Comment] => Field::ReasonComment,
        [T::Record, T::Identifiers, leaf] => match leaf {
            T::HeaderFrom => Field::HeaderFrom,
            T::EnvelopeFrom => Field::EnvelopeFrom,
            T::EnvelopeTo => Field::EnvelopeTo,
            _ => return None,
        },
        [T::Record, T::AuthResults, T::Dkim, leaf] => match leaf {
            T::Domain => Field::DkimDomain,
            T::Selector => Field::DkimSelector,
            T::Result => Field::DkimResult,
            T::HumanResult => Field::DkimHuman,
            _ => return None,
        },
        [T::Record, T::AuthResults, T::Spf, leaf] => match leaf {
            T::Domain => Field::SpfDomain,
            T::Scope => Field::SpfScope,
            T::Result => Field::SpfResult,
            T::HumanResult => Field::SpfHuman,
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lookup_agrees_with_the_table() {
        for (name, tag) in TAG_NAMES {
            assert_eq!(Tag::of(name), *tag, "{}", String::from_utf8_lossy(name));
            assert_eq!(Tag::of(&name.to_ascii_uppercase()), *tag);
        }
        assert_eq!(Tag::of(b"Source_IP"), Tag::SourceIp);
        assert_eq!(Tag::of(b"identities"), Tag::Identifiers);
        assert_eq!(Tag::of(b"a_very_long_unknown_element_name"), Tag::Unknown);
    }
}
