//! Reading INPUT files for commands that take them directly.

use std::path::Path;

/// Reads one input file, refusing it before reading when it exceeds `max_bytes`.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ruaflow_schema::Error> {
    let size = std::fs::metadata(path).map_err(|e| ruaflow_schema::Error::Io(e.to_string()))?.len();
    if size > max_bytes {
        return Err(ruaflow_schema::LimitExceeded::InputBytes(max_bytes).into());
    }
    std::fs::read(path).map_err(|e| ruaflow_schema::Error::Io(e.to_string()))
}
