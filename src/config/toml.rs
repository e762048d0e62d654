//! Reading TOML into serde structs with errors that name the TOML path and line.

/// A TOML document that does not fit the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TomlError {
    /// The TOML path (e.g. `rules[1].threshold`), or `(rot)` for the document.
    pub path: String,
    /// What went wrong, with the line when known.
    pub message: String,
}

/// Reads TOML into `T`, reporting the TOML path and line of the first error.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let describe = |e: &toml::de::Error| match e.span() {
        Some(span) => format!("linje {}: {}", line_of(text, span.start), one_line(e.message())),
        None => one_line(e.message()),
    };
    let de = toml::Deserializer::parse(text).map_err(|e| TomlError {
        path: "(rot)".into(),
        message: describe(&e),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        TomlError {
            path: if path == "." { "(rot)".into() } else { path },
            message: describe(e.inner()),
        }
    })
}

/// The 1-based line of byte offset `at`.
pub fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
