//! A bounds check of an Avro binary datum against its schema, run before apache-avro decodes
//! it: a record's raw data comes from outside the process, and apache-avro trusts it more than
//! it should.
//!
//! * It reserves room for a whole array or map block as soon as it reads the block's item
//!   count (up to 512 Mi items of 56 bytes and more each): a few bytes declaring a huge count
//!   make it ask for tens of GiB, which aborts the process.
//! * It allocates a string's or byte array's declared length (up to 512 MiB) before reading it.
//! * It recurses once per nested value, without a limit: a recursive schema (a linked list,
//!   a tree) and a datum of a few hundred KiB nesting it deeply overflow the stack.
//!
//! [`check_datum`] walks the datum the way apache-avro reads it and refuses, with a message
//! naming the problem, any length or item count that cannot fit in the bytes that are left,
//! nesting deeper than [`MAX_DEPTH`], and more than [`MAX_EMPTY_ITEMS`] items that take no
//! bytes at all (`null`, empty records). What passes costs apache-avro at most a small
//! multiple of the datum's size. Like apache-avro, it ignores bytes after the datum and reads
//! a union whose index is cut off by the end of the datum as `null`; unlike it, a string or
//! byte array cut off by the end is an error (apache-avro reads such a string as `null`).

use std::collections::HashMap;

use apache_avro::schema::Name;
use apache_avro::Schema;

/// Values nested deeper than this (each record, array, map, union and reference is a level)
/// are refused; it bounds the recursion of apache-avro and of the conversion after it. A level
/// costs about 20 KiB of stack in a debug build (far less in release): 64 levels fit a 2 MiB
/// thread stack (tokio's and the test harness's default) with room to spare.
pub(crate) const MAX_DEPTH: usize = 64;

/// Items that take no bytes (`null`, empty records, zero-size fixed) allowed in one datum.
pub(crate) const MAX_EMPTY_ITEMS: u64 = 4096;

/// Checks that decoding `datum` with `schema` stays within the bounds in the module docs.
pub(crate) fn check_datum(
    datum: &[u8],
    schema: &Schema,
    names: &HashMap<Name, Schema>,
) -> Result<(), String> {
    let mut walk = Walk {
        datum,
        at: 0,
        names,
        empty_items_left: MAX_EMPTY_ITEMS,
        min_sizes: HashMap::new(),
    };
    match walk.value(schema, 0) {
        Ok(()) | Err(Stop::End) => Ok(()),
        Err(Stop::Invalid(reason)) => Err(format!(
            "the Avro datum ({} bytes) does not match its schema: {reason}",
            datum.len()
        )),
    }
}

enum Stop {
    /// The datum ended where apache-avro reads the rest as null: nothing more to check.
    End,
    Invalid(String),
}

struct Walk<'a> {
    datum: &'a [u8],
    at: usize,
    names: &'a HashMap<Name, Schema>,
    empty_items_left: u64,
    /// [`Walk::min_size`] of named types, 0 while one is being computed (a recursive type).
    min_sizes: HashMap<Name, usize>,
}

impl<'a> Walk<'a> {
    fn left(&self) -> usize {
        self.datum.len() - self.at
    }

    fn invalid(&self, what: String) -> Stop {
        Stop::Invalid(format!("{what} at byte {}", self.at))
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), Stop> {
        if n > self.left() {
            return Err(self.invalid(format!(
                "{what} of {n} bytes runs past the end of the datum ({} bytes left)",
                self.left()
            )));
        }
        self.at += n;
        Ok(())
    }

    /// A zig-zag varint; `None` when the datum ends inside it.
    fn varint(&mut self, what: &str) -> Result<Option<i64>, Stop> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.datum.get(self.at) else {
                return Ok(None);
            };
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let signed = (value >> 1) as i64 ^ -((value & 1) as i64);
                return Ok(Some(signed));
            }
        }
        Err(self.invalid(format!("{what} is a varint longer than 10 bytes")))
    }

    fn required_varint(&mut self, what: &str) -> Result<i64, Stop> {
        match self.varint(what)? {
            Some(value) => Ok(value),
            None => Err(self.invalid(format!("the datum ends inside {what}"))),
        }
    }

    /// A byte or string length, then its bytes.
    fn sized(&mut self, what: &str) -> Result<(), Stop> {
        let len = self.required_varint(&format!("the length of {what}"))?;
        let len = usize::try_from(len)
            .map_err(|_| self.invalid(format!("{what} has a negative length ({len})")))?;
        self.skip(len, what)
    }

    fn resolve(&self, name: &Name) -> Result<&'a Schema, Stop> {
        let names = self.names;
        names
            .get(name)
            .ok_or_else(|| self.invalid(format!("the schema refers to unknown type {name}")))
    }

    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(self.invalid(format!(
                "values are nested more than {MAX_DEPTH} levels deep"
            )));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1, "a boolean"),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Enum(_) => self.required_varint("a number").map(drop),
            Schema::Float => self.skip(4, "a float"),
            Schema::Double => self.skip(8, "a double"),
            Schema::Duration => self.skip(12, "a duration"),
            Schema::Fixed(fixed) => self.skip(fixed.size, "a fixed value"),
            Schema::Bytes | Schema::BigDecimal | Schema::Uuid => self.sized("a byte string"),
            Schema::String => self.sized("a string"),
            Schema::Decimal(decimal) => self.value(&decimal.inner, depth + 1),
            Schema::Union(union) => {
                let Some(index) = self.varint("a union branch index")? else {
                    return Err(Stop::End);
                };
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| {
                        self.invalid(format!(
                            "union branch {index} does not exist (the union has {})",
                            union.variants().len()
                        ))
                    })?;
                self.value(branch, depth + 1)
            }
            Schema::Record(record) => {
                for field in &record.fields {
                    self.value(&field.schema, depth + 1)?;
                }
                Ok(())
            }
            Schema::Ref { name } => {
                let resolved = self.resolve(name)?;
                self.value(resolved, depth + 1)
            }
            Schema::Array(array) => self.blocks(&array.items, 0, depth, "an array"),
            // A map entry is a string key (at least its length byte) and a value.
            Schema::Map(map) => self.blocks(&map.types, 1, depth, "a map"),
        }
    }

    /// The blocks of an array or map: item count (negative: then a byte size), items, until
    /// a count of zero.
    fn blocks(
        &mut self,
        items: &Schema,
        key_size: usize,
        depth: usize,
        what: &str,
    ) -> Result<(), Stop> {
        let item_size = key_size + self.min_size(items, depth + 1);
        loop {
            let count = self.required_varint(&format!("the item count of {what}"))?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.required_varint(&format!("the block size of {what}"))?;
            }
            let count = count.unsigned_abs();
            if item_size == 0 {
                if count > self.empty_items_left {
                    return Err(self.invalid(format!(
                        "{what} declares {count} items that take no bytes; at most \
                         {MAX_EMPTY_ITEMS} are accepted in one datum"
                    )));
                }
                self.empty_items_left -= count;
            } else if count > (self.left() / item_size) as u64 {
                return Err(self.invalid(format!(
                    "{what} declares {count} items, more than the {} bytes left can hold",
                    self.left()
                )));
            }
            for _ in 0..count {
                if key_size > 0 {
                    self.sized("a map key")?;
                }
                self.value(items, depth + 1)?;
            }
        }
    }

    /// A lower bound of the bytes a value of `schema` takes (0 where unsure).
    fn min_size(&mut self, schema: &Schema, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match schema {
            Schema::Null => 0,
            Schema::Float => 4,
            Schema::Double => 8,
            Schema::Duration => 12,
            Schema::Fixed(fixed) => fixed.size,
            Schema::Decimal(decimal) => self.min_size(&decimal.inner, depth + 1),
            Schema::Record(record) => record.fields.iter().fold(0usize, |sum, field| {
                sum.saturating_add(self.min_size(&field.schema, depth + 1))
            }),
            Schema::Ref { name } => {
                if let Some(&known) = self.min_sizes.get(name) {
                    return known;
                }
                self.min_sizes.insert(name.clone(), 0);
                let names = self.names;
                let size = names
                    .get(name)
                    .map_or(0, |resolved| self.min_size(resolved, depth + 1));
                self.min_sizes.insert(name.clone(), size);
                size
            }
            _ => 1,
        }
    }
}
