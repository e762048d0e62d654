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

/// Reads TOML into `T` one section at a time, so that one bad section does
/// not hide the errors of another: every top-level key is read on its own,
/// and so is every entry of the tables named in `split` (dotted paths such
/// as `sources` or `http.users`). A section that does not fit is reported
/// and left out. Returns `T` built from the sections that fit, with the
/// errors of the others; only a document that is not TOML at all is `Err`.
pub fn parse_toml_sections<T>(text: &str, split: &[&str]) -> Result<(T, Vec<TomlError>), TomlError>
where
    T: serde::de::DeserializeOwned + Default,
{
    use ::toml::Spanned;
    use ::toml::de::{DeTable, DeValue};
    let describe = |e: &::toml::de::Error| match e.span() {
        Some(span) => format!("linje {}: {}", line_of(text, span.start), one_line(e.message())),
        None => one_line(e.message()),
    };
    let read = |table: DeTable<'_>, span: std::ops::Range<usize>| -> Result<T, TomlError> {
        let de = ::toml::de::Deserializer::from(Spanned::new(span, table));
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            TomlError {
                path: if path == "." { "(rot)".into() } else { path },
                message: describe(e.inner()),
            }
        })
    };
    let root = DeTable::parse(text).map_err(|e| TomlError {
        path: "(rot)".into(),
        message: describe(&e),
    })?;
    let span = root.span();
    let mut table = root.into_inner();
    let mut errors = Vec::new();
    // Wraps `value` in the tables of `path` (with their original spans), so
    // it is read at the same TOML path as in the whole document.
    fn nest<'i>(
        path: &[(Spanned<std::borrow::Cow<'i, str>>, std::ops::Range<usize>)],
        inner: DeTable<'i>,
    ) -> DeTable<'i> {
        let mut table = inner;
        for (key, span) in path.iter().rev() {
            let mut outer = DeTable::new();
            outer.insert(key.clone(), Spanned::new(span.clone(), DeValue::Table(table)));
            table = outer;
        }
        table
    }
    for dotted in split {
        // Walk to the table at `dotted`, remembering each key and span.
        let mut trail = Vec::new();
        let mut at: Option<&mut DeTable<'_>> = Some(&mut table);
        for part in dotted.split('.') {
            at = at.and_then(|t| {
                let (key, value) = t.iter_mut().find(|(k, _)| k.get_ref().as_ref() == part)?;
                trail.push((key.clone(), value.span()));
                match value.get_mut() {
                    DeValue::Table(inner) => Some(inner),
                    _ => None,
                }
            });
        }
        let Some(entries) = at else { continue };
        let mut bad = Vec::new();
        for (key, value) in entries.iter() {
            let mut one = DeTable::new();
            one.insert(key.clone(), value.clone());
            if let Err(e) = read(nest(&trail, one), span.clone()) {
                errors.push(e);
                bad.push(key.get_ref().to_string());
            }
        }
        for key in &bad {
            entries.remove(key.as_str());
        }
    }
    let mut bad = Vec::new();
    for (key, value) in table.iter() {
        let mut one = DeTable::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = read(one, span.clone()) {
            errors.push(e);
            bad.push(key.get_ref().to_string());
        }
    }
    for key in &bad {
        table.remove(key.as_str());
    }
    let value = match read(table, span) {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            T::default()
        }
    };
    Ok((value, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        a: Option<u32>,
        #[serde(default)]
        b: Option<String>,
        #[serde(default)]
        items: std::collections::BTreeMap<String, Item>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        n: u32,
    }

    #[test]
    fn every_bad_section_is_reported_and_the_good_ones_kept() {
        let text = "a = \"x\"\nb = \"ok\"\n[items.one]\nn = 1\n[items.two]\nn = \"2\"\n[items.three]\nm = 3\n";
        let (doc, errors): (Doc, _) = parse_toml_sections(text, &["items"]).unwrap();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["items.three.m", "items.two.n", "a"], "{errors:?}");
        assert!(errors[1].message.contains("linje 6"), "{errors:?}");
        assert_eq!(doc.b.as_deref(), Some("ok"));
        assert_eq!(doc.a, None);
        assert_eq!(doc.items.keys().collect::<Vec<_>>(), ["one"]);
        assert_eq!(doc.items["one"].n, 1);
        assert!(parse_toml_sections::<Doc>("a = ", &[]).is_err());
    }
}
