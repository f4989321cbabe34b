//! A small JSON reader for cargo's machine-readable output (`cargo metadata`,
//! `--message-format=json`), so the crate needs no dependency.

use std::iter::Peekable;
use std::str::Chars;

/// A parsed JSON value. Numbers keep their source text (cargo's numbers are not needed).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses one complete JSON document (surrounding whitespace allowed).
    pub(crate) fn parse(text: &str) -> Result<Json, String> {
        let mut parser = Parser {
            chars: text.chars().peekable(),
        };
        let value = parser.value()?;
        parser.skip_ws();
        match parser.chars.next() {
            None => Ok(value),
            Some(c) => Err(format!("unexpected {c:?} after the JSON value")),
        }
    }

    /// The member `key` of an object, if this is an object that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array (an empty slice otherwise).
    pub(crate) fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
}

struct Parser<'a> {
    chars: Peekable<Chars<'a>>,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        match self.chars.next() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("expected {want:?}, found {c:?}")),
            None => Err(format!("expected {want:?}, found the end of the input")),
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.chars.peek().copied() {
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some('"') => self.string().map(Json::String),
            Some('t') => self.word("true", Json::Bool(true)),
            Some('f') => self.word("false", Json::Bool(false)),
            Some('n') => self.word("null", Json::Null),
            Some(c) if c == '-' || c.is_ascii_digit() => Ok(self.number()),
            Some(c) => Err(format!("unexpected {c:?} where a JSON value should start")),
            None => Err("unexpected end of the input where a JSON value should start".into()),
        }
    }

    fn word(&mut self, word: &str, value: Json) -> Result<Json, String> {
        for want in word.chars() {
            self.expect(want)?;
        }
        Ok(value)
    }

    fn number(&mut self) -> Json {
        let mut text = String::new();
        while let Some(c) = self
            .chars
            .next_if(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        {
            text.push(c);
        }
        Json::Number(text)
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect('{')?;
        let mut members = Vec::new();
        self.skip_ws();
        if self.chars.next_if_eq(&'}').is_some() {
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.skip_ws();
            self.expect(':')?;
            let value = self.value()?;
            members.push((key, value));
            self.skip_ws();
            match self.chars.next() {
                Some(',') => continue,
                Some('}') => return Ok(Json::Object(members)),
                other => {
                    return Err(format!(
                        "expected ',' or '}}' in an object, found {other:?}"
                    ));
                }
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect('[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.chars.next_if_eq(&']').is_some() {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            match self.chars.next() {
                Some(',') => continue,
                Some(']') => return Ok(Json::Array(items)),
                other => return Err(format!("expected ',' or ']' in an array, found {other:?}")),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unterminated JSON string".into()),
                Some('"') => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('/') => out.push('/'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('u') => out.push(self.unicode_escape()?),
                    other => return Err(format!("invalid escape {other:?} in a JSON string")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// After `\u`: four hex digits, possibly a surrogate pair `\uD83D\uDE00`.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            self.expect('\\')?;
            self.expect('u')?;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err("unpaired surrogate in a JSON string".into());
            }
            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            char::from_u32(code).ok_or_else(|| "invalid surrogate pair".into())
        } else {
            // A lone low surrogate has no char; keep going with the replacement character.
            Ok(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .chars
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or("invalid \\u escape in a JSON string")?;
            code = code * 16 + digit;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn parses_a_cargo_artifact_message() {
        let line = r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"],"name":"foo_bar"},
            "filenames":["/t/debug/libfoo_bar.so"],"fresh":true,"n":-1.5e3,"x":null}"#;
        let msg = Json::parse(line).unwrap();
        assert_eq!(
            msg.get("reason").and_then(Json::as_str),
            Some("compiler-artifact")
        );
        let target = msg.get("target").unwrap();
        assert_eq!(
            target.get("kind").unwrap().items(),
            &[Json::String("cdylib".into())]
        );
        assert_eq!(target.get("name").and_then(Json::as_str), Some("foo_bar"));
        assert_eq!(msg.get("fresh"), Some(&Json::Bool(true)));
        assert_eq!(msg.get("n"), Some(&Json::Number("-1.5e3".into())));
        assert_eq!(msg.get("x"), Some(&Json::Null));
        assert_eq!(msg.get("missing"), None);
    }

    #[test]
    fn decodes_string_escapes() {
        let s = Json::parse(r#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(s.as_str(), Some("a\"b\\c/d\n\u{e9}\u{1F600}"));
    }

    #[test]
    fn rejects_malformed_input() {
        assert!(Json::parse(r#"{"a":1"#).is_err());
        assert!(Json::parse(r#"["a",]"#).is_err());
        assert!(Json::parse(r#""abc"#).is_err());
        assert!(Json::parse("{} x").is_err());
        assert!(Json::parse("").is_err());
        assert_eq!(Json::parse(" [ ] ").unwrap(), Json::Array(vec![]));
    }
}
