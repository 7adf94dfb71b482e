//! A small MaxMind DB writer for tests: databases of any record layout, built at test
//! time, so no binary test data has to be committed. Follows the MaxMind DB format
//! 2.0: an IPv6 search tree with 32-bit records (IPv4 networks under `::/96`, where
//! readers look for them), a 16-byte separator, the data section, then the metadata
//! after the `\xAB\xCD\xEFMaxMind.com` marker. Networks must not overlap.

use std::net::IpAddr;

/// A value of the data section.
#[derive(Debug, Clone)]
pub enum Value {
    /// `utf8_string`
    Str(String),
    /// `uint16`
    U16(u16),
    /// `uint32`
    U32(u32),
    /// `uint64`
    U64(u64),
    /// `map`, keys in the given order
    Map(Vec<(String, Value)>),
    /// `array`
    Array(Vec<Value>),
}

impl Value {
    /// A map of text fields, as IPinfo's databases hold.
    pub fn text_map(fields: &[(&str, &str)]) -> Self {
        Value::Map(fields.iter().map(|(k, v)| ((*k).to_owned(), Value::Str((*v).to_owned()))).collect())
    }
}

#[derive(Debug, Clone, Copy)]
enum Child {
    Empty,
    Node(u32),
    Data(u32),
}

/// Collects networks and their records; [`Writer::build`] lays out the file.
pub struct Writer {
    database_type: String,
    nodes: Vec<[Child; 2]>,
    data: Vec<u8>,
}

impl Writer {
    /// An empty database whose metadata says `database_type`.
    pub fn new(database_type: &str) -> Self {
        Self { database_type: database_type.to_owned(), nodes: vec![[Child::Empty; 2]], data: Vec::new() }
    }

    /// Adds `network` (`1.0.0.0/24`, `2001:db8::/32`) with its record.
    pub fn insert(&mut self, network: &str, record: &Value) -> &mut Self {
        let (addr, prefix) = network.split_once('/').expect("network/prefix");
        let prefix: u32 = prefix.parse().expect("prefix length");
        let (bits, prefix) = match addr.parse::<IpAddr>().expect("network address") {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), prefix + 96),
            IpAddr::V6(v6) => (u128::from(v6), prefix),
        };
        assert!((1..=128).contains(&prefix), "prefix of {network}");
        let offset = u32::try_from(self.data.len()).expect("small data section");
        encode(record, &mut self.data);

        let bit = |depth: u32| ((bits >> (127 - depth)) & 1) as usize;
        let mut node = 0usize;
        for depth in 0..prefix - 1 {
            let b = bit(depth);
            node = match self.nodes[node][b] {
                Child::Node(next) => next as usize,
                Child::Empty => {
                    self.nodes.push([Child::Empty; 2]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][b] = Child::Node(next as u32);
                    next
                }
                Child::Data(_) => panic!("{network} overlaps a network already inserted"),
            };
        }
        let last = &mut self.nodes[node][bit(prefix - 1)];
        assert!(matches!(last, Child::Empty), "{network} overlaps a network already inserted");
        *last = Child::Data(offset);
        self
    }

    /// The database file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let node_count = u32::try_from(self.nodes.len()).expect("small tree");
        let mut out = Vec::new();
        for node in &self.nodes {
            for child in node {
                let record = match *child {
                    Child::Empty => node_count,
                    Child::Node(next) => next,
                    // A data pointer is counted from the start of the separator.
                    Child::Data(offset) => node_count + 16 + offset,
                };
                out.extend_from_slice(&record.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(1_700_000_000)),
            ("database_type".into(), Value::Str(self.database_type.clone())),
            ("description".into(), Value::text_map(&[("en", "ruaflow test database")])),
            ("ip_version".into(), Value::U16(6)),
            ("languages".into(), Value::Array(vec![Value::Str("en".into())])),
            ("node_count".into(), Value::U32(node_count)),
            ("record_size".into(), Value::U16(32)),
        ]);
        encode(&metadata, &mut out);
        out
    }
}

/// A control byte (and extended-type and size bytes) for `type_number` and `size`.
fn control(type_number: u8, size: usize, out: &mut Vec<u8>) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if type_number <= 7 {
        out.push(type_number << 5 | low);
    } else {
        out.push(low);
        out.push(type_number - 7);
    }
    out.extend_from_slice(&extra);
}

/// An unsigned integer: big-endian, without leading zero bytes.
fn unsigned(type_number: u8, value: u64, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(type_number, bytes.len() - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(v) => unsigned(5, u64::from(*v), out),
        Value::U32(v) => unsigned(6, u64::from(*v), out),
        Value::U64(v) => unsigned(9, *v, out),
        Value::Map(pairs) => {
            control(7, pairs.len(), out);
            for (key, value) in pairs {
                encode(&Value::Str(key.clone()), out);
                encode(value, out);
            }
        }
        Value::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
    }
}
