//! Closed vocabularies of the report formats, read case-insensitively.
//!
//! Every enum here has the words its RFC registers plus `Other(String)` for words a
//! receiver made up, so a new or misspelled word is kept and shown rather than failing the
//! report. Parsing trims whitespace and ignores ASCII case (`Pass`, `NONE`: parsedmarc's
//! `report_with_upper_cased_pass.xml`); the canonical lowercase word is what is stored.

/// Defines a string vocabulary enum: `Name { Variant => "word" | "alias", … }`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $word:literal $(| $alias:literal)* ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $word, "`")] $variant, )+
            /// A word outside the registered vocabulary, kept as sent (trimmed).
            Other(String),
        }

        impl $name {
            /// Reads a word case-insensitively, ignoring surrounding whitespace.
            pub fn parse(word: &str) -> Self {
                let word = $crate::text::trim_ascii(word);
                $(
                    if word.eq_ignore_ascii_case($word) $(|| word.eq_ignore_ascii_case($alias))* {
                        return Self::$variant;
                    }
                )+
                Self::Other(word.to_owned())
            }

            /// The canonical (lowercase, registered) word, or the unregistered word as sent.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $word, )+
                    Self::Other(word) => word,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::parse(&word))
            }
        }
    };
}

pub(crate) use vocabulary;
