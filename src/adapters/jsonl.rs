//! Canonical JSON Lines: one [`AbsenceRecord`] per line.

use super::Parsed;
use super::Rejected;
use crate::domain::{AbsenceRecord, Fault, RecordError, RejectCode};
use std::io::{self, BufRead};

/// Reads canonical JSON Lines, one item per non-blank line, naming every bad
/// line by `location:line`.
pub struct JsonlReader<R> {
    input: R,
    location: String,
    default_source: Option<String>,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads from `input`; `location` names it in errors (usually the file name).
    pub fn new(input: R, location: impl Into<String>) -> JsonlReader<R> {
        JsonlReader {
            input,
            location: location.into(),
            default_source: None,
            line: 0,
            buf: Vec::with_capacity(512),
        }
    }

    /// Fills `source` in lines that have none (pushes name the source in the URL).
    pub fn with_default_source(mut self, source: impl Into<String>) -> JsonlReader<R> {
        self.default_source = Some(source.into());
        self
    }

    /// The number of the last line read.
    pub fn line(&self) -> u64 {
        self.line
    }
}

/// Parses one line; `location` is `file:line`. `default_source` fills a
/// missing `source` field.
pub fn parse_line(text: &str, location: String, default_source: Option<&str>) -> Parsed {
    let reject = |fault: Fault, source: Option<String>| {
        Parsed::Rejected(Rejected::new(
            source.or_else(|| default_source.map(str::to_string)),
            location.clone(),
            fault,
            text,
        ))
    };
    let mut value: serde_json::Value = match crate::domain::plausibility::json_without_duplicate_keys(text) {
        Ok(v) => v,
        Err(e) => return reject(RecordError::Json(e.to_string()).fault(), None),
    };
    if let (Some(default), Some(map)) = (default_source, value.as_object_mut()) {
        map.entry("source").or_insert_with(|| default.into());
    }
    let source = value.get("source").and_then(|s| s.as_str()).map(str::to_string);
    match AbsenceRecord::from_json(value) {
        Ok(r) => Parsed::Record(r),
        Err(e) => reject(e.fault(), source),
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = io::Result<Parsed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            self.line += 1;
            let location = format!("{}:{}", self.location, self.line);
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Ok(Parsed::Rejected(Rejected::new(
                        None,
                        location,
                        Fault::whole(RejectCode::BadEncoding).with_limit(format!("byte {}", e.valid_up_to() + 1)),
                        String::from_utf8_lossy(&self.buf).into_owned(),
                    ))));
                }
            };
            if text.is_empty() {
                continue;
            }
            return Some(Ok(parse_line(text, location, self.default_source.as_deref())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_and_good_lines_kept() {
        let input = b"{\"source\":\"s\",\"id\":\"1\",\"pupil\":\"p\",\"school\":\"k\",\"date\":\"2026-03-02\",\"kind\":\"day\"}\n\
\n\
{\"source\":\"s\",\"id\":\"2\",\"pupil\":\"p\",\"school\":\"k\",\"date\":\"2026-03-02\",\"kind\":\"hour\"}\n\
not json\n\
\xff\xfe\n\
{\"source\":\"s\",\"id\":\"3\",\"pupil\":\"p\",\"school\":\"k\",\"date\":\"2026-03-03\",\"kind\":\"late\"}";
        let items: Vec<Parsed> = JsonlReader::new(&input[..], "f.jsonl").map(Result::unwrap).collect();
        assert_eq!(items.len(), 5);
        let rejected: Vec<(&str, &str)> = items
            .iter()
            .filter_map(|p| match p {
                Parsed::Rejected(q) => Some((q.location.as_str(), q.field.as_deref().unwrap_or_default())),
                _ => None,
            })
            .collect();
        assert_eq!(rejected[0].0, "f.jsonl:3");
        assert!(rejected[0].1.contains("kind"));
        assert_eq!(rejected[1].0, "f.jsonl:4");
        assert_eq!(rejected[2].0, "f.jsonl:5");
        assert!(matches!(&items[4], Parsed::Record(r) if r.id == "3"));
        if let Parsed::Rejected(q) = &items[1] {
            assert_eq!(q.source.as_deref(), Some("s"));
        }
    }
}
