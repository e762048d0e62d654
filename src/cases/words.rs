//! The one command language: every word people type for a value of the
//! case model (a channel, an outcome, an agency, a phase, a box, …) has one
//! canonical Norwegian spelling, used by chat, the command line, the JSON
//! interface and the stored state alike, with aliases (English words, ASCII
//! spellings, numbers) accepted on the way in.
//!
//! [`vocabulary!`](crate::vocabulary) declares such an enum with
//! `Display`/`FromStr`/serde from one table, so the spelling lives in one
//! place and a wrong word is answered in Norwegian with the choices.

/// A word a person typed that names no value. The message lists the choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("«{value}» er ikke {what}: bruk {choices}")]
pub struct WordError {
    /// What was expected, e.g. `en kanal`.
    pub what: &'static str,
    /// What was typed.
    pub value: String,
    /// The canonical words, as a Norwegian list.
    pub choices: String,
}

/// A value with canonical Norwegian words.
pub trait Vocabulary: Sized + Copy + 'static {
    /// What a value is, with its article, e.g. `en kanal`.
    const WHAT: &'static str;
    /// Every value, in a stable order.
    fn all() -> &'static [Self];
    /// The canonical word.
    fn word(self) -> &'static str;
    /// Other spellings accepted on the way in.
    fn aliases(self) -> &'static [&'static str];

    /// The canonical words as a Norwegian list: `a, b eller c`.
    fn choices() -> String {
        or_list(&Self::all().iter().map(|v| v.word()).collect::<Vec<_>>())
    }

    /// Reads a word, an alias or an ASCII spelling of either, in any case.
    fn parse_word(s: &str) -> Result<Self, WordError> {
        let wanted = fold(s);
        Self::all()
            .iter()
            .copied()
            .find(|v| fold(v.word()) == wanted || v.aliases().iter().any(|a| fold(a) == wanted))
            .ok_or_else(|| WordError {
                what: Self::WHAT,
                value: s.trim().to_string(),
                choices: Self::choices(),
            })
    }
}

/// A number the Norwegian way: decimal comma, at most one decimal.
pub fn decimal(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}").replace('.', ",")
    }
}

/// `a, b eller c`.
pub fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} eller {last}", init.join(", ")),
    }
}

/// Lower case, `_` and spaces as `-`, and æøå as ASCII, so that
/// `Ikke nådd`, `ikke_nadd` and `IKKE-NÅDD` read alike.
fn fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars().flat_map(char::to_lowercase) {
        match c {
            'æ' => out.push_str("ae"),
            'ø' => out.push('o'),
            'å' => out.push('a'),
            '_' | ' ' => out.push('-'),
            c => out.push(c),
        }
    }
    out
}

/// Declares a [`Vocabulary`] enum from one table:
/// `Variant = "canonical" | "alias" | …`, with `Display`, `FromStr`,
/// `Serialize` and `Deserialize` all using the canonical word.
#[macro_export]
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[doc = $doc:literal])* $variant:ident = $word:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant ),+
        }

        impl $name {
            /// Every value, in the table's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical Norwegian word.
            pub fn word(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl $crate::cases::words::Vocabulary for $name {
            const WHAT: &'static str = $what;
            fn all() -> &'static [Self] {
                Self::ALL
            }
            fn word(self) -> &'static str {
                $name::word(self)
            }
            fn aliases(self) -> &'static [&'static str] {
                match self { $($name::$variant => &[$($alias),*]),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.word())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::cases::words::WordError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as $crate::cases::words::Vocabulary>::parse_word(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.word())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {

    crate::vocabulary! {
        /// A test vocabulary.
        enum Colour("en farge") {
            /// Red.
            Red = "rød" | "red",
            /// Blue.
            Blue = "blå",
            /// Green.
            Green = "grønn",
        }
    }

    #[test]
    fn words_aliases_and_ascii_spellings_read_alike() {
        assert_eq!("rød".parse::<Colour>(), Ok(Colour::Red));
        assert_eq!(" Rod ".parse::<Colour>(), Ok(Colour::Red));
        assert_eq!("RED".parse::<Colour>(), Ok(Colour::Red));
        assert_eq!("bla".parse::<Colour>(), Ok(Colour::Blue));
        assert_eq!(Colour::Green.to_string(), "grønn");
        let e = "gul".parse::<Colour>().unwrap_err();
        assert_eq!(e.to_string(), "«gul» er ikke en farge: bruk rød, blå eller grønn");
        assert_eq!(serde_json::to_string(&Colour::Blue).unwrap(), "\"blå\"");
        assert_eq!(serde_json::from_str::<Colour>("\"red\"").unwrap(), Colour::Red);
        let e = serde_json::from_str::<Colour>("\"gul\"").unwrap_err().to_string();
        assert!(e.starts_with("«gul» er ikke en farge"), "{e}");
    }
}
