//! Serde wrappers that read any TOML value with its span and keep either what was read or
//! what is wrong with it, so that one bad value does not stop serde from reading the rest of
//! dbsafe.toml: [`Field`] (a setting), [`Table`] (a section) and [`List`] (an array of tables).

use std::marker::PhantomData;
use std::ops::Range;

use serde::de::value::MapAccessDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};
use toml::Spanned;

use super::with_article;

/// A value of dbsafe.toml as written, whatever its type: what a [`Leaf`] is read from.
#[derive(Debug)]
pub(super) enum Raw {
    /// A string.
    String(String),
    /// An integer; `None` when too large for an `i128`.
    Integer(Option<i128>),
    /// A float.
    Float,
    /// `true` or `false`.
    Boolean(bool),
    /// A date, a time or both.
    Datetime,
    /// An array, each element with its span.
    Array(Vec<Spanned<Raw>>),
    /// A table.
    Table,
}

impl Raw {
    /// The TOML name of the value's type, as in "expected a string, found an integer".
    pub(super) fn type_str(&self) -> &'static str {
        match self {
            Raw::String(_) => "string",
            Raw::Integer(_) => "integer",
            Raw::Float => "float",
            Raw::Boolean(_) => "boolean",
            Raw::Datetime => "datetime",
            Raw::Array(_) => "array",
            Raw::Table => "table",
        }
    }
}

/// Why a value cannot be used.
#[derive(Debug)]
pub(super) enum Mistake {
    /// What is wrong, said in full, at `span` (the value, or one element of it).
    Said {
        /// Where.
        span: Range<usize>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An integer outside `min..=u32::MAX`: the message shows it as written in the file.
    OutOfRange {
        /// Where the integer is.
        span: Range<usize>,
        /// The smallest value allowed.
        min: u32,
    },
}

impl Mistake {
    /// A value of another type than `expected` (like "a string").
    pub(super) fn wrong_type(expected: &str, raw: &Raw, span: &Range<usize>) -> Mistake {
        Mistake::Said {
            span: span.clone(),
            message: format!(
                "expected {expected}, found {}",
                with_article(raw.type_str())
            ),
        }
    }

    /// A value of the right type that is not allowed, for `message`.
    pub(super) fn said(span: &Range<usize>, message: impl Into<String>) -> Mistake {
        Mistake::Said {
            span: span.clone(),
            message: message.into(),
        }
    }
}

/// A setting's type: how it is read from the value written, with today's messages.
pub(super) trait Leaf: Sized {
    /// The setting read from `raw`, found at `span`, or what is wrong with it.
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake>;
}

/// One setting (a key of a section) read as `T`: any value is accepted, so serde goes on to
/// the next key; what is wrong with it is kept for the checker to report.
#[derive(Debug)]
pub(super) struct Field<T> {
    /// Where the value is.
    pub span: Range<usize>,
    /// The setting, or what is wrong with the value.
    pub value: Result<T, Mistake>,
}

impl<'de, T: Leaf> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Spanned::<Raw>::deserialize(deserializer)?;
        let span = raw.span();
        let value = T::read(raw.into_inner(), &span);
        Ok(Field { span, value })
    }
}

/// A section (a table) read as `T`, a derived struct or a map of named tables. Any value is
/// accepted; the keys of the table are kept with their spans, and keys that `T` does not
/// declare are kept aside, unread, for the checker to report.
#[derive(Debug)]
pub(super) struct Table<T> {
    /// Where the table is (its header, or its inline braces).
    pub span: Range<usize>,
    /// Every key of the table with its span, in the file's (sorted) order.
    pub keys: Vec<Spanned<String>>,
    /// The table read as `T`, or the TOML type found instead of a table.
    pub value: Result<T, &'static str>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<TableBody<T>>::deserialize(deserializer)?;
        let span = spanned.span();
        let TableBody { keys, value } = spanned.into_inner();
        Ok(Table { span, keys, value })
    }
}

/// An array of tables (`[[seed]]`) read as a list of `T`, or the TOML type found instead.
#[derive(Debug)]
pub(super) struct List<T> {
    /// Where the array is.
    pub span: Range<usize>,
    /// Its elements, or the TOML type found instead of an array.
    pub items: Result<Vec<T>, &'static str>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<ListBody<T>>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(List {
            span,
            items: spanned.into_inner().0,
        })
    }
}

/// The keys a derived struct `T` reads, in declaration order: the field names serde's derive
/// hands to `deserialize_struct`. `None` when `T` is not a struct (a map of named tables).
pub(super) fn fields_of<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut fields = None;
    // The probe always fails: only what it saw matters.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only notes the fields a struct asks for.
struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("fields noted"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// What a value turned out to be: a table or a datetime (`Map`), an array (`Seq`) or a
/// scalar.
enum Shaped<M, S> {
    Map(M),
    Seq(S),
    Scalar(Raw),
}

/// How a wrapper reads the tables (and datetimes) and the arrays it meets.
trait Shape<'de> {
    /// What a table becomes.
    type Map;
    /// What an array becomes.
    type Seq;
    /// Reads a table, or the map the TOML deserializer makes of a datetime.
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Map, A::Error>;
    /// Reads an array.
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Seq, A::Error>;
}

/// Visits any value, leaving tables and arrays to a [`Shape`].
struct ShapeVisitor<S>(S);

impl<'de, S: Shape<'de>> Visitor<'de> for ShapeVisitor<S> {
    type Value = Shaped<S::Map, S::Seq>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any TOML value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Boolean(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Integer(Some(value.into()))))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Integer(Some(value.into()))))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Integer(Some(value))))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Integer(i128::try_from(value).ok())))
    }

    fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::Float))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::String(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Shaped::Scalar(Raw::String(value)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.map(map).map(Shaped::Map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.seq(seq).map(Shaped::Seq)
    }
}

/// A key of a table with its span; `None` for the key of the map the TOML deserializer makes
/// of a datetime, which has no span.
struct Key(Option<Spanned<String>>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Key(Spanned::<String>::deserialize(deserializer).ok()))
    }
}

/// "table", or "datetime" for the map the TOML deserializer makes of one (its first key read).
fn map_type<'de, A: MapAccess<'de>>(mut map: A) -> Result<&'static str, A::Error> {
    Ok(match map.next_key::<Key>()? {
        Some(Key(None)) => "datetime",
        _ => "table",
    })
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match any_value(deserializer, ListShape(PhantomData))? {
            Shaped::Scalar(raw) => raw,
            Shaped::Map("datetime") => Raw::Datetime,
            Shaped::Map(_) => Raw::Table,
            Shaped::Seq(items) => Raw::Array(items),
        })
    }
}

/// Reads any value with `shape`. A number too large for serde (an integer beyond 128 bits, a
/// float beyond `f64`), which the TOML deserializer refuses before any visitor sees it
/// ("integer number overflowed", "floating-point number overflowed"), is read as a scalar of
/// its type, so that it is reported like any other value.
fn any_value<'de, D: Deserializer<'de>, S: Shape<'de>>(
    deserializer: D,
    shape: S,
) -> Result<Shaped<S::Map, S::Seq>, D::Error> {
    match deserializer.deserialize_any(ShapeVisitor(shape)) {
        Err(error) if error.to_string().contains("number overflowed") => Ok(Shaped::Scalar(
            if error.to_string().contains("integer number") {
                Raw::Integer(None)
            } else {
                Raw::Float
            },
        )),
        read => read,
    }
}

/// A table read as `T`, with its keys, or the type found instead of a table.
struct TableBody<T> {
    keys: Vec<Spanned<String>>,
    value: Result<T, &'static str>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for TableBody<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = |kind| TableBody {
            keys: Vec::new(),
            value: Err(kind),
        };
        Ok(match any_value(deserializer, TableShape(PhantomData))? {
            Shaped::Map(body) => body,
            Shaped::Seq(()) => found("array"),
            Shaped::Scalar(raw) => found(raw.type_str()),
        })
    }
}

/// Reads a table as `T` through [`Entries`]; an array is only noted.
struct TableShape<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Shape<'de> for TableShape<T> {
    type Map = TableBody<T>;
    type Seq = ();

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<TableBody<T>, A::Error> {
        let mut keys = Vec::new();
        let mut datetime = false;
        let entries = Entries {
            map,
            known: fields_of::<T>(),
            keys: &mut keys,
            datetime: &mut datetime,
        };
        let value = T::deserialize(MapAccessDeserializer::new(entries))?;
        Ok(if datetime {
            TableBody {
                keys: Vec::new(),
                value: Err("datetime"),
            }
        } else {
            TableBody {
                keys,
                value: Ok(value),
            }
        })
    }

    fn seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        Ok(())
    }
}

/// The entries of a table as handed to `T`: each key is noted with its span, and a key `T`
/// does not know is skipped (its value read as [`Raw`], which never fails) rather than left
/// to serde to ignore.
struct Entries<'k, A> {
    map: A,
    /// The keys `T` declares; `None` when `T` takes any key (a map).
    known: Option<&'static [&'static str]>,
    keys: &'k mut Vec<Spanned<String>>,
    /// Set when the map turns out to be a datetime rather than a table.
    datetime: &'k mut bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(Key(key)) = self.map.next_key::<Key>()? else {
                return Ok(None);
            };
            let Some(key) = key else {
                *self.datetime = true;
                return Ok(None);
            };
            let name = key.get_ref().clone();
            self.keys.push(key);
            if self
                .known
                .is_some_and(|known| !known.contains(&name.as_str()))
            {
                self.map.next_value::<Raw>()?;
                continue;
            }
            return seed.deserialize(name.into_deserializer()).map(Some);
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// An array read as a list of `T`, or the type found instead of an array.
struct ListBody<T>(Result<Vec<T>, &'static str>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListBody<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ListBody(
            match any_value(deserializer, ListShape(PhantomData))? {
                Shaped::Seq(items) => Ok(items),
                Shaped::Map(kind) => Err(kind),
                Shaped::Scalar(raw) => Err(raw.type_str()),
            },
        ))
    }
}

/// Reads an array element by element as `T`; a table (or a datetime) is only noted.
struct ListShape<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Shape<'de> for ListShape<T> {
    type Map = &'static str;
    type Seq = Vec<T>;

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<&'static str, A::Error> {
        map_type(map)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}
