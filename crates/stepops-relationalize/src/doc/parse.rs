//! JSON text straight into a document's nodes: one pass over the bytes, no visitor per value,
//! strings borrowed where they have no escapes. It accepts exactly what serde_json accepts
//! (RFC 8259; numbers as serde_json reads them, with `float_roundtrip`; the same nesting limit);
//! what it refuses is then described by serde_json, so that a quarantine reason is serde_json's
//! message with its line and column.

use std::borrow::Cow;

use serde_json::Number;

use super::Item;

/// The deepest nesting accepted: serde_json's recursion limit (128 containers fail).
const MAX_DEPTH: u32 = 127;

/// Why a text was refused.
#[derive(Debug, PartialEq)]
pub(super) enum Refused {
    /// Not JSON, or nested too deep, or a number out of range: serde_json says where.
    Syntax,
    /// An object has the member name `key` twice; `at` is the byte just past the object.
    DuplicateKey { key: String, at: usize },
    /// More nodes than a `u32` counts.
    TooManyNodes,
}

/// Parses `text` (one JSON value, whitespace around it allowed) into `items`.
pub(super) fn parse<'t>(
    text: &'t str,
    items: &mut Vec<Item<'t>>,
    shapes: &mut Shapes,
) -> Result<(), Refused> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
        items,
        shapes,
    };
    p.value()?;
    p.skip_whitespace();
    if p.at == p.bytes.len() {
        Ok(())
    } else {
        Err(Refused::Syntax)
    }
}

/// The high bit of each byte of `w` (little-endian) that is a quote, a backslash or a control
/// character, and maybe of bytes after the first such one (never before it: the lowest bit
/// set is exact).
#[inline]
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_in(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control
}

/// The member names of the last object of each size (from [`Shapes::FEWEST`] to
/// [`Shapes::MOST`] members) found without a duplicate name: documents of one dataset repeat
/// their objects' names, and comparing them in order to those is cheaper than comparing every
/// pair (12 comparisons instead of 66 for 12 members).
#[derive(Debug, Default)]
pub(super) struct Shapes {
    by_len: Vec<Vec<String>>,
}

impl Shapes {
    /// Below this many members, the pairwise check is as cheap.
    const FEWEST: usize = 4;
    /// Objects larger than this are checked with a hash set ([`super::ObjectRef`]).
    const MOST: usize = 32;

    /// The first member name of `object` that repeats an earlier one.
    fn duplicate_key<'a>(&mut self, object: super::ObjectRef<'a>) -> Option<&'a str> {
        let len = object.len as usize;
        if !(Self::FEWEST..=Self::MOST).contains(&len) {
            return object.duplicate_key();
        }
        if let Some(known) = self.by_len.get(len)
            && known.len() == len
            && known
                .iter()
                .zip(object.iter())
                .all(|(a, (b, _))| super::same_text(a, b))
        {
            return None;
        }
        let duplicate = object.duplicate_key();
        if duplicate.is_none() {
            if self.by_len.len() <= len {
                self.by_len.resize_with(len + 1, Vec::new);
            }
            let known = &mut self.by_len[len];
            known.resize_with(len, String::new);
            for (name, (key, _)) in known.iter_mut().zip(object.iter()) {
                name.clear();
                name.push_str(key);
            }
        }
        duplicate
    }
}

struct Parser<'t, 'v> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    depth: u32,
    items: &'v mut Vec<Item<'t>>,
    shapes: &'v mut Shapes,
}

impl<'t> Parser<'t, '_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips whitespace, then takes `b` or refuses.
    fn expect(&mut self, b: u8) -> Result<(), Refused> {
        self.skip_whitespace();
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(Refused::Syntax)
        }
    }

    fn value(&mut self) -> Result<(), Refused> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let s = self.string()?;
                self.items.push(Item::Str(s));
                Ok(())
            }
            Some(b't') => self.literal(b"true", Item::Bool(true)),
            Some(b'f') => self.literal(b"false", Item::Bool(false)),
            Some(b'n') => self.literal(b"null", Item::Null),
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                self.items.push(Item::Number(n));
                Ok(())
            }
            _ => Err(Refused::Syntax),
        }
    }

    fn literal(&mut self, word: &[u8], item: Item<'t>) -> Result<(), Refused> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            self.items.push(item);
            Ok(())
        } else {
            Err(Refused::Syntax)
        }
    }

    /// Enters a container at `[` or `{`: its placeholder node's index.
    fn open(&mut self, placeholder: Item<'t>) -> Result<usize, Refused> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Refused::Syntax);
        }
        self.at += 1;
        self.items.push(placeholder);
        Ok(self.items.len() - 1)
    }

    /// Index just past the last node, as a container's `end`.
    fn end(&self) -> Result<u32, Refused> {
        u32::try_from(self.items.len()).map_err(|_| Refused::TooManyNodes)
    }

    /// Right after `[` or `{`: whether the container closes at once with `close` (taken).
    fn closes(&mut self, close: u8) -> bool {
        self.skip_whitespace();
        let closes = self.peek() == Some(close);
        self.at += usize::from(closes);
        closes
    }

    /// After an element or member: `true` at a comma (another follows), `false` at `close`
    /// (taken); anything else is refused.
    fn another(&mut self, close: u8) -> Result<bool, Refused> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(Refused::Syntax),
        }
    }

    fn array(&mut self) -> Result<(), Refused> {
        let at = self.open(Item::Array { len: 0, end: 0 })?;
        let mut len = 0u32;
        if !self.closes(b']') {
            loop {
                self.value()?;
                len += 1;
                if !self.another(b']')? {
                    break;
                }
            }
        }
        self.items[at] = Item::Array {
            len,
            end: self.end()?,
        };
        self.depth -= 1;
        Ok(())
    }

    fn object(&mut self) -> Result<(), Refused> {
        let at = self.open(Item::Object { len: 0, end: 0 })?;
        let mut len = 0u32;
        if !self.closes(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(Refused::Syntax);
                }
                let key = self.string()?;
                self.items.push(Item::Str(key));
                self.expect(b':')?;
                self.value()?;
                len += 1;
                if !self.another(b'}')? {
                    break;
                }
            }
        }
        let end = self.end()?;
        self.items[at] = Item::Object { len, end };
        let object = super::ObjectRef {
            node: super::NodeRef {
                items: self.items,
                at: at as u32,
            },
            len,
        };
        if let Some(key) = self.shapes.duplicate_key(object) {
            return Err(Refused::DuplicateKey {
                key: key.to_owned(),
                at: self.at,
            });
        }
        self.depth -= 1;
        Ok(())
    }

    /// A string at its opening quote: borrowed from the text when it has no escape.
    #[inline]
    fn string(&mut self) -> Result<Cow<'t, str>, Refused> {
        self.at += 1;
        let start = self.at;
        loop {
            // Eight bytes at a time up to the first that ends the plain run ([`plain_run`]'s
            // scan, kept inline here: this loop is the parser's hottest).
            if let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
                let ends = special_bytes(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
                if ends == 0 {
                    self.at += 8;
                    continue;
                }
                self.at += (ends.trailing_zeros() / 8) as usize;
            }
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                Some(b'\\') => return self.escaped(start),
                Some(0..=0x1f) | None => return Err(Refused::Syntax),
                Some(_) => self.at += 1,
            }
        }
    }

    /// How many bytes from here precede the first quote, backslash or control character (or
    /// the end): eight bytes at a time, then one by one. The run ends on a character boundary
    /// (the text is UTF-8 and those are ASCII).
    fn plain_run(&self) -> usize {
        let rest = &self.bytes[self.at..];
        let mut n = 0;
        while let Some(chunk) = rest.get(n..n + 8) {
            let ends = special_bytes(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
            if ends != 0 {
                return n + (ends.trailing_zeros() / 8) as usize;
            }
            n += 8;
        }
        let tail = &rest[n..];
        n + tail
            .iter()
            .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(tail.len())
    }

    /// The rest of a string that began at `start` and has an escape here, unescaped.
    #[cold]
    fn escaped(&mut self, start: usize) -> Result<Cow<'t, str>, Refused> {
        let mut owned = String::from(&self.text[start..self.at]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            owned.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => return Err(Refused::Syntax),
                    };
                    self.at += 1;
                    owned.push(c);
                }
                Some(0..=0x1f) | None => return Err(Refused::Syntax),
                Some(_) => {
                    let run = self.plain_run();
                    owned.push_str(&self.text[self.at..self.at + run]);
                    self.at += run;
                }
            }
        }
    }

    /// Four hex digits after `\u`, and the low half of a surrogate pair after a high half.
    fn unicode_escape(&mut self) -> Result<char, Refused> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.bytes[self.at..].starts_with(b"\\u") {
                    return Err(Refused::Syntax);
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(Refused::Syntax);
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Refused::Syntax),
            other => other,
        };
        char::from_u32(code).ok_or(Refused::Syntax)
    }

    fn hex4(&mut self) -> Result<u32, Refused> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or(Refused::Syntax)?;
        let mut n = 0;
        for d in digits {
            n = n * 16 + (*d as char).to_digit(16).ok_or(Refused::Syntax)?;
        }
        self.at += 4;
        Ok(n)
    }

    /// Digits from here; whether there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at > start
    }

    /// Digits from here, added to `significand` (`fits` cleared when it overflows); how many.
    #[inline]
    fn digits_into(&mut self, significand: &mut u64, fits: &mut bool) -> usize {
        let start = self.at;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            let next = significand
                .checked_mul(10)
                .and_then(|s| s.checked_add(u64::from(d - b'0')));
            match next {
                Some(s) => *significand = s,
                None => *fits = false,
            }
            self.at += 1;
        }
        self.at - start
    }

    /// A number as serde_json reads it: an integer without fraction or exponent is `u64`
    /// (positive) or `i64` (negative) when it fits, anything else (and `-0`) an `f64`; a
    /// number beyond `f64`'s range is refused.
    fn number(&mut self) -> Result<Number, Refused> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let mut significand: u64 = 0;
        let mut fits = true;
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits_into(&mut significand, &mut fits);
            }
            _ => return Err(Refused::Syntax),
        }
        let mut integer = true;
        let mut fraction = 0;
        if self.peek() == Some(b'.') {
            self.at += 1;
            integer = false;
            fraction = self.digits_into(&mut significand, &mut fits);
            if fraction == 0 {
                return Err(Refused::Syntax);
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            integer = false;
            exponent = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !self.digits() {
                return Err(Refused::Syntax);
            }
        }
        if integer && fits {
            if !negative {
                return Ok(significand.into());
            }
            // serde_json: `-0` and what is below i64's range are floats.
            let n = (significand as i64).wrapping_neg();
            if n < 0 {
                return Ok(n.into());
            }
        }
        if fits
            && !exponent
            && let Some(f) = exact_decimal(significand, fraction)
        {
            return Number::from_f64(if negative { -f } else { f }).ok_or(Refused::Syntax);
        }
        let f: f64 = self.text[start..self.at]
            .parse()
            .map_err(|_| Refused::Syntax)?;
        Number::from_f64(f).ok_or(Refused::Syntax)
    }
}

/// `significand / 10^fraction` when both are exact `f64`s (Clinger's fast path: one division,
/// correctly rounded, so the same value as parsing the text), else `None`.
#[inline]
fn exact_decimal(significand: u64, fraction: usize) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if significand > 1 << 53 {
        return None;
    }
    Some(significand as f64 / POWERS.get(fraction)?)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::doc::Doc;

    /// What serde_json makes of `text`: the value, or that it refuses it.
    fn serde(text: &str) -> Option<Value> {
        serde_json::from_str(text).ok()
    }

    fn ours(text: &str) -> Option<Value> {
        let mut items = Vec::new();
        parse(text, &mut items, &mut Shapes::default()).ok()?;
        Some(Doc { items }.to_value())
    }

    #[test]
    fn it_accepts_and_refuses_what_serde_json_does_with_the_same_values() {
        let cases = [
            // Numbers: integers, their limits, floats, exponents, malformed ones.
            "0",
            "-0",
            "1",
            "-1",
            "12345678901234567890",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "-18446744073709551616",
            "1.5",
            "-0.0",
            "1e2",
            "1E+2",
            "1e-2",
            "0.1",
            "2.5e-308",
            "1.7976931348623157e308",
            "1e309",
            "-1e309",
            "4.9e-324",
            "1e-400",
            "123456789012345678901234567890",
            "0.30000000000000004",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "0x10",
            "1.2.3",
            "--1",
            "NaN",
            "Infinity",
            // Strings and escapes.
            r#""""#,
            r#""a""#,
            r#""é 漢字 🎉""#,
            r#""\"\\\/\b\f\n\r\t""#,
            r#""\u00e9""#,
            r#""exactly8""#,
            r#""seven77""#,
            r#""a long string of 24 bytes""#,
            r#""0123456789abcdef\"q""#,
            "\"0123456\u{1}89\"",
            r#""é漢字é漢字é漢字é漢字""#,
            r#""\uD83C\uDF89""#,
            r#""\uD83C""#,
            r#""\uDF89""#,
            r#""\uD83Cx""#,
            r#""\uD83C\u0041""#,
            r#""\u12""#,
            r#""\u12G4""#,
            r#""\x""#,
            "\"a\tb\"",
            "\"a\nb\"",
            "\"\u{7f}\"",
            r#""unterminated"#,
            r#""a\"#,
            // Literals, containers, whitespace.
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "truex",
            "[]",
            "{}",
            " [ 1 , 2 ] ",
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[{\"b\":{}}],\"c\":[[],[null]]}",
            "",
            " ",
            "[1] [2]",
            "{}x",
            "\t\r\n{}\n",
            "{\"a\":1}\u{a0}",
            "[1e3, -0, 0.5, \"x\\u0000y\"]",
        ];
        for text in cases {
            assert_eq!(ours(text), serde(text), "{text:?}");
        }
    }

    #[test]
    fn the_first_special_byte_of_eight_is_found_exactly() {
        for at in 0..8 {
            for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                for filler in [b'a', 0x7f, 0x80, 0xff, b' ', b'!', b'#', b'[', b']'] {
                    let mut w = [filler; 8];
                    w[at] = special;
                    // Bytes after the first special one may be anything.
                    for later in (at + 1)..8 {
                        w[later] = [b'"', 0, 0x21, 0xc3][later % 4];
                    }
                    let ends = special_bytes(u64::from_le_bytes(w));
                    assert_eq!(ends.trailing_zeros() / 8, at as u32, "{w:?}");
                }
                assert_eq!(special_bytes(u64::from_le_bytes([b'a'; 8])), 0);
                let plain = u64::from_le_bytes(*b"\x7f\x80\xff #[]!");
                assert_eq!(special_bytes(plain), 0);
            }
        }
    }

    #[test]
    fn numbers_are_the_same_kind_as_serde_json_s() {
        for text in [
            "1",
            "-1",
            "-0",
            "18446744073709551615",
            "-9223372036854775808",
            "1.0",
        ] {
            let (a, b) = (ours(text).unwrap(), serde(text).unwrap());
            assert_eq!(
                (a.is_u64(), a.is_i64(), a.is_f64()),
                (b.is_u64(), b.is_i64(), b.is_f64())
            );
            assert_eq!(a.to_string(), b.to_string(), "{text}");
        }
    }

    #[test]
    fn decimals_read_directly_are_the_floats_serde_json_reads() {
        // Significands around 2^53 and fractions around 22 digits, where the direct reading
        // stops and the text is parsed instead, and every length between.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let digits = (next() % 19 + 1) as usize;
            let significand = next() % 10u64.pow(digits as u32);
            let text = format!("{significand:0digits$}");
            let point = (next() % (digits as u64 + 1)) as usize;
            let (whole, fraction) = text.split_at(point);
            let whole = whole.trim_start_matches('0');
            let whole = if whole.is_empty() { "0" } else { whole };
            let sign = if next() % 2 == 0 { "-" } else { "" };
            let text = if fraction.is_empty() {
                format!("{sign}{whole}.0")
            } else {
                format!("{sign}{whole}.{fraction}")
            };
            let ours = ours(&text).and_then(|v| v.as_f64()).unwrap();
            let theirs = serde(&text).and_then(|v| v.as_f64()).unwrap();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{text}");
        }
        for text in [
            "9007199254740992.5",
            "9007199254740993.0",
            "0.9007199254740993",
            "1.0000000000000000000001",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "-0.0",
            "123.456",
        ] {
            let ours = ours(text).and_then(|v| v.as_f64()).unwrap();
            let theirs = serde(text).and_then(|v| v.as_f64()).unwrap();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{text}");
        }
    }

    #[test]
    fn nesting_stops_where_serde_json_s_does() {
        for depth in [126, 127, 128, 129] {
            let text = "[".repeat(depth) + &"]".repeat(depth);
            assert_eq!(
                ours(&text).is_some(),
                serde(&text).is_some(),
                "depth {depth}"
            );
            let text = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
            assert_eq!(
                ours(&text).is_some(),
                serde(&text).is_some(),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn a_duplicate_key_is_refused_where_its_object_ends() {
        let mut items = Vec::new();
        let text = r#"{"a": {"b": 1, "b": 2}, "c": 3}"#;
        let refused = parse(text, &mut items, &mut Shapes::default());
        assert_eq!(
            refused,
            Err(Refused::DuplicateKey {
                key: "b".into(),
                at: 22
            })
        );
    }
}
