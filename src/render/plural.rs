//! One Norwegian plural helper for every template and message: «1 dag»,
//! «0 dager», «2 dager», «1 åpen sak», «3 åpne saker». Templates use it as
//! the filter `antall`: `{{ n | antall("dag", "dager") }}`.

use minijinja::value::Value;

/// `n` and the words in the number `n` needs: the singular only for
/// exactly one (Norwegian uses the plural for zero).
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// [`count`] for a number already written out (`4,8`, `1`).
pub fn count_text(n: &str, one: &str, many: &str) -> String {
    format!("{n} {}", if n.trim() == "1" { one } else { many })
}

/// `usize` lengths, which do not convert into `i64` by themselves.
pub fn count_len(n: usize, one: &str, many: &str) -> String {
    count(i64::try_from(n).unwrap_or(i64::MAX), one, many)
}

/// The `antall` template filter: a number (or its text) with the noun.
pub(super) fn filter(value: Value, one: String, many: String) -> String {
    match i64::try_from(value.clone()) {
        Ok(n) => count(n, &one, &many),
        Err(_) => count_text(&value.to_string(), &one, &many),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(0, "dag", "dager"), "0 dager");
        assert_eq!(count(1, "dag", "dager"), "1 dag");
        assert_eq!(count(2, "åpen sak", "åpne saker"), "2 åpne saker");
        assert_eq!(count_text("1", "time", "timer"), "1 time");
        assert_eq!(count_text("4,8", "dag", "dager"), "4,8 dager");
        assert_eq!(count_len(1, "elev", "elever"), "1 elev");
    }
}
