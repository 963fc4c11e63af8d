//! Go template source to Handlebars: the lexer of actions, and the translation of the
//! supported subset.

use std::fmt::Write as _;

use super::{Fields, DATA_METHODS, RECORD_FIELDS};

/// A Go template translated to Handlebars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translation {
    pub handlebars: String,
    pub fields: Fields,
}

/// Translates a Go template of the supported subset; the error says what is outside it.
pub(crate) fn translate(source: &str) -> Result<Translation, String> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut fields = Fields::default();
    let mut rest = source;
    // Text waiting to be written: a following `{{-` may still trim its end.
    let mut text = String::new();
    let mut trim_next_text = false;
    loop {
        let Some(open) = rest.find("{{") else {
            push_text(&mut text, rest, trim_next_text);
            out.push_str(&text);
            break;
        };
        push_text(&mut text, &rest[..open], trim_next_text);
        rest = &rest[open + 2..];
        if has_left_trim(rest) {
            text.truncate(text.trim_end_matches(GO_SPACE).len());
            rest = &rest[2..];
        }
        let (action, right_trim, after) = split_action(rest)?;
        rest = after;
        trim_next_text = right_trim;
        let Some(mustache) = translate_action(action, &mut fields)? else {
            continue; // a comment
        };
        // Handlebars reads `\{{` as an escaped mustache and drops one backslash of `\\{{`:
        // text ending in backslashes gets one more.
        if text.ends_with('\\') {
            text.push('\\');
        }
        out.push_str(&text);
        text.clear();
        out.push_str(&mustache);
    }
    Ok(Translation {
        handlebars: out,
        fields,
    })
}

/// The white space Go's `{{-` and `-}}` trim.
pub(super) const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

pub(super) fn push_text(text: &mut String, piece: &str, trim_start: bool) {
    if trim_start {
        text.push_str(piece.trim_start_matches(GO_SPACE));
    } else {
        text.push_str(piece);
    }
}

/// `{{- ` : a dash followed by white space.
pub(super) fn has_left_trim(after_open: &str) -> bool {
    let mut chars = after_open.chars();
    chars.next() == Some('-') && chars.next().is_some_and(|c| GO_SPACE.contains(&c))
}

/// Splits off one action after `{{` (and a left trim marker): returns its inside, whether it
/// ends with ` -}}`, and what follows it. Quoted strings may contain `}}`.
pub(super) fn split_action(rest: &str) -> Result<(&str, bool, &str), String> {
    if let Some(comment) = rest.trim_start_matches(GO_SPACE).strip_prefix("/*") {
        let end = comment
            .find("*/")
            .ok_or_else(|| "a comment is not closed".to_string())?;
        let after = &comment[end + 2..];
        return if let Some(after) = after.strip_prefix("}}") {
            Ok(("", false, after))
        } else if let Some(after) = strip_right_trim(after) {
            Ok(("", true, after))
        } else {
            Err("a comment ends before the closing }}".into())
        };
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'`' => {
                i += 1 + rest[i + 1..]
                    .find('`')
                    .ok_or_else(|| "a raw string is not closed".to_string())?;
                i += 1;
            }
            b'}' if rest[i..].starts_with("}}") => {
                let inside = &rest[..i];
                let after = &rest[i + 2..];
                // ` -}}`: white space, a dash, the delimiter.
                if let Some(body) = inside.strip_suffix('-') {
                    if body.ends_with(GO_SPACE) {
                        return Ok((body, true, after));
                    }
                }
                return Ok((inside, false, after));
            }
            _ => i += 1,
        }
    }
    Err("an action is not closed with }}".into())
}

pub(super) fn strip_right_trim(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let space = chars.next()?;
    if !GO_SPACE.contains(&space) {
        return None;
    }
    chars.as_str().strip_prefix("-}}")
}

#[derive(Debug, PartialEq)]
pub(super) enum Token {
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Int(u64),
}

pub(super) fn tokens(action: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = action.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if GO_SPACE.contains(&c) {
            chars.next();
            continue;
        }
        let word_end = |from: usize| {
            action[from..]
                .find(|c: char| GO_SPACE.contains(&c))
                .map_or(action.len(), |n| from + n)
        };
        match c {
            '.' => {
                let end = word_end(start);
                let chain = &action[start..end];
                let mut segments = Vec::new();
                for segment in chain[1..].split('.') {
                    let mut cs = segment.chars();
                    let first_ok = cs.next().is_some_and(|c| c == '_' || c.is_alphabetic());
                    if !first_ok || !cs.all(|c| c == '_' || c.is_alphanumeric()) {
                        return Err(format!(
                            "{chain:?} is not a field chain such as .Payload.After.id"
                        ));
                    }
                    segments.push(segment.to_string());
                }
                out.push(Token::Field(segments));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            '"' | '`' => {
                let (value, len) = go_string(&action[start..])?;
                out.push(Token::Str(value));
                while chars.peek().is_some_and(|&(i, _)| i < start + len) {
                    chars.next();
                }
            }
            '0'..='9' => {
                let end = word_end(start);
                let digits = &action[start..end];
                let n = digits
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| digits.parse::<u64>().ok())
                    .flatten()
                    .filter(|n| *n <= i64::MAX as u64)
                    .ok_or_else(|| format!("{digits:?} is not a decimal integer"))?;
                out.push(Token::Int(n));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            c if c.is_alphabetic() => {
                let end = word_end(start);
                out.push(Token::Ident(action[start..end].to_string()));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            other => return Err(format!("{other:?} is not part of the supported subset")),
        }
    }
    Ok(out)
}

/// A Go string literal at the start of `s`: its value and its length in `s`.
pub(super) fn go_string(s: &str) -> Result<(String, usize), String> {
    if let Some(raw) = s.strip_prefix('`') {
        let end = raw
            .find('`')
            .ok_or_else(|| "a raw string is not closed".to_string())?;
        // Go drops carriage returns from raw strings.
        return Ok((raw[..end].replace('\r', ""), end + 2));
    }
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, i + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = chars.next().ok_or("a string is not closed")?;
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(c) = simple {
                    value.push(c);
                    continue;
                }
                let digits = match e {
                    'u' => 4,
                    'U' => 8,
                    _ => return Err(format!("the string escape \\{e} is not supported")),
                };
                let hex: String = (0..digits)
                    .filter_map(|_| chars.next())
                    .map(|(_, c)| c)
                    .collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == digits)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("\\{e}{hex} is not a valid escape"))?;
                value.push(c);
            }
            c => value.push(c),
        }
    }
    Err("a string is not closed".into())
}

/// One action as a Handlebars mustache; `None` for a comment.
pub(super) fn translate_action(
    action: &str,
    fields: &mut Fields,
) -> Result<Option<String>, String> {
    if action.is_empty() {
        return Ok(None); // only comments are split off empty
    }
    let tokens = tokens(action)?;
    match tokens.as_slice() {
        [Token::Field(chain)] => {
            let path = record_path(chain, fields)?;
            Ok(Some(format!("{{{{go {path}}}}}")))
        }
        [Token::Ident(index), Token::Field(chain), keys @ ..] if index == "index" => {
            let mut mustache = format!("{{{{go (index {}", record_path(chain, fields)?);
            for key in keys {
                match key {
                    Token::Str(s) => {
                        mustache.push(' ');
                        mustache.push_str(&serde_json::to_string(s).map_err(|e| e.to_string())?);
                    }
                    Token::Int(n) => {
                        let _ = write!(mustache, " {n}");
                    }
                    _ => {
                        return Err(
                            "index takes a field chain and string or integer keys".to_string()
                        )
                    }
                }
            }
            mustache.push_str(")}}");
            Ok(Some(mustache))
        }
        [] => Err("an action is empty".into()),
        [Token::Ident(word), ..] => Err(format!(
            "{word:?} is outside the supported subset (field chains such as .Payload.After.id \
             and index)"
        )),
        _ => Err(
            "the supported subset is a field chain such as .Payload.After.id, or index \
                  with a field chain and string or integer keys"
                .into(),
        ),
    }
}

/// Checks a field chain against the record's Go types and writes it as a Handlebars path.
pub(super) fn record_path(chain: &[String], fields: &mut Fields) -> Result<String, String> {
    let dotted = || format!(".{}", chain.join("."));
    let Some(first) = chain.first() else {
        return Err("`.` (the whole record) is outside the supported subset".into());
    };
    if !RECORD_FIELDS.contains(&first.as_str()) {
        return Err(format!(
            "{} is not a field of the record (Position, Operation, Metadata, Key, Payload)",
            dotted()
        ));
    }
    fields.insert(first);
    let second = chain.get(1).map(String::as_str);
    match (first.as_str(), second) {
        ("Position" | "Operation", Some(_)) => {
            return Err(format!("{}: {first} has no fields", dotted()))
        }
        ("Payload", Some(s)) if s != "Before" && s != "After" => {
            return Err(format!(
                "{}: Payload has the fields Before and After",
                dotted()
            ))
        }
        ("Metadata", Some(s)) if is_metadata_method(s) => {
            return Err(format!(
                "{}: {s} is a method of opencdc.Metadata; use index .Metadata \"{s}\" for a key \
                 of that name",
                dotted()
            ))
        }
        _ => {}
    }
    let data_field = match (first.as_str(), chain.get(2)) {
        ("Key", _) => chain.get(1),
        ("Payload", field) => field,
        _ => None,
    };
    if let Some(method) = data_field.filter(|f| DATA_METHODS.contains(&f.as_str())) {
        return Err(format!(
            "{}: {method} is a method of opencdc.Data, outside the supported subset",
            dotted()
        ));
    }
    let mut path = String::new();
    for (i, segment) in chain.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        let plain = segment != "this"
            && segment
                .bytes()
                .all(|b| b == b'_' || b.is_ascii_alphanumeric())
            && !segment.as_bytes()[0].is_ascii_digit();
        if plain {
            path.push_str(segment);
        } else {
            let _ = write!(path, "[{segment}]");
        }
    }
    Ok(path)
}

pub(super) fn is_metadata_method(name: &str) -> bool {
    // Every exported method of opencdc.Metadata in conduit-commons v0.4.0 is a Get or Set.
    ["Get", "Set"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    })
}
