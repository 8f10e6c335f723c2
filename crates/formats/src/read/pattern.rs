//! The IOC subset of the STIX 2.1 patterning language.
//!
//! Only patterns that mean "any of these values" become indicators:
//! observation expressions `[ … ]` joined by `OR`, each holding equality
//! comparisons joined by `OR` on a value property (`domain-name:value`,
//! `ipv4-addr:value`, `ipv6-addr:value`, `url:value`, `email-addr:value`,
//! `file:hashes.<algorithm>`). `AND`, `FOLLOWEDBY`, qualifiers and other
//! operators describe behaviour that a block list cannot express, so the
//! whole pattern is reported as unsupported rather than half-imported.
//!
//! A real tokenizer reads the pattern, so quotes inside string literals
//! (`\'`, `''`) and brackets inside values cannot confuse it.

use khien_model::ObservableKind;

/// Why a pattern yields no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// Valid, or at least plausible, STIX outside the IOC subset.
    Unsupported(String),
    /// Not a pattern at all.
    Syntax(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Colon,
    Comma,
    Dot,
    Star,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    /// Words: object types, property names, keywords, numbers.
    Word(String),
    Str(String),
    /// A typed literal (`t'…'`, `h'…'`, `b'…'`): never an IOC value here.
    Typed,
}

/// The longest pattern looked at; real IOC patterns are far shorter, and
/// the limit bounds the work done for hostile input.
const MAX_PATTERN: usize = 1 << 20;

fn tokenize(p: &str) -> Result<Vec<Token>, PatternError> {
    if p.len() > MAX_PATTERN {
        return Err(PatternError::Unsupported(format!(
            "pattern longer than {MAX_PATTERN} bytes"
        )));
    }
    let mut out = Vec::new();
    let mut chars = p.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let t = match c {
            c if c.is_whitespace() => continue,
            '[' => Token::LBracket,
            ']' => Token::RBracket,
            '(' => Token::LParen,
            ')' => Token::RParen,
            ':' => Token::Colon,
            ',' => Token::Comma,
            '.' => Token::Dot,
            '*' => Token::Star,
            '=' => Token::Op("="),
            '!' => {
                if chars.next_if(|&(_, c)| c == '=').is_none() {
                    return Err(PatternError::Syntax(format!("lone '!' at {i}")));
                }
                Token::Op("!=")
            }
            '<' | '>' => {
                let eq = chars.next_if(|&(_, c)| c == '=').is_some();
                Token::Op(match (c, eq) {
                    ('<', false) => "<",
                    ('<', true) => "<=",
                    (_, false) => ">",
                    (_, true) => ">=",
                })
            }
            '\'' => Token::Str(string_literal(&mut chars, i)?),
            c if c.is_alphanumeric() || c == '_' || c == '-' => {
                let mut w = String::from(c);
                while let Some((_, c)) =
                    chars.next_if(|&(_, c)| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    w.push(c);
                }
                if matches!(w.as_str(), "t" | "h" | "b")
                    && chars.peek().is_some_and(|&(_, c)| c == '\'')
                {
                    chars.next();
                    string_literal(&mut chars, i)?;
                    Token::Typed
                } else {
                    Token::Word(w)
                }
            }
            c => return Err(PatternError::Syntax(format!("unexpected {c:?} at {i}"))),
        };
        out.push(t);
    }
    Ok(out)
}

/// Reads a string literal after its opening quote. STIX escapes a quote as
/// `\'` and a backslash as `\\`; some producers double the quote as in SQL,
/// which is accepted too.
fn string_literal(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    start: usize,
) -> Result<String, PatternError> {
    let mut s = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => s.push(e),
                None => break,
            },
            '\'' => {
                if chars.next_if(|&(_, c)| c == '\'').is_some() {
                    s.push('\'');
                } else {
                    return Ok(s);
                }
            }
            c => s.push(c),
        }
    }
    Err(PatternError::Syntax(format!(
        "unterminated string starting at {start}"
    )))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

/// The values of an IOC pattern, each with the kind its property implies.
/// Comparisons on properties outside the subset inside an OR are passed
/// over; if none is left the pattern is unsupported.
pub(crate) fn parse_pattern(pattern: &str) -> Result<Vec<(ObservableKind, String)>, PatternError> {
    let tokens = tokenize(pattern)?;
    let mut p = Parser { tokens, pos: 0 };
    let mut values = Vec::new();
    let mut unsupported: Option<String> = None;
    p.expression(&mut values, &mut unsupported, 0)?;
    if let Some(t) = p.peek() {
        return Err(match t {
            Token::Word(w) => unsupported_word(w),
            t => PatternError::Syntax(format!("unexpected {t:?} after the pattern")),
        });
    }
    if values.is_empty() {
        return Err(PatternError::Unsupported(
            unsupported.unwrap_or_else(|| "no comparison on a supported property".into()),
        ));
    }
    Ok(values)
}

fn unsupported_word(w: &str) -> PatternError {
    let upper = w.to_ascii_uppercase();
    match upper.as_str() {
        "AND" | "FOLLOWEDBY" | "WITHIN" | "REPEATS" | "START" | "STOP" | "NOT" | "LIKE"
        | "MATCHES" | "IN" | "ISSUBSET" | "ISSUPERSET" | "EXISTS" => {
            PatternError::Unsupported(format!("{upper} is outside the IOC subset"))
        }
        _ => PatternError::Syntax(format!("unexpected word {w:?}")),
    }
}

type Values = Vec<(ObservableKind, String)>;

/// Nesting of parentheses allowed; deeper input is hostile, not a feed.
const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_or(&self) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR"))
    }

    /// observation (OR observation)*
    fn expression(
        &mut self,
        values: &mut Values,
        unsupported: &mut Option<String>,
        depth: usize,
    ) -> Result<(), PatternError> {
        if depth > MAX_DEPTH {
            return Err(PatternError::Syntax("parentheses nested too deeply".into()));
        }
        loop {
            match self.next() {
                Some(Token::LBracket) => self.comparisons(values, unsupported)?,
                Some(Token::LParen) => {
                    self.expression(values, unsupported, depth + 1)?;
                    match self.next() {
                        Some(Token::RParen) => {}
                        Some(Token::Word(w)) => return Err(unsupported_word(&w)),
                        t => {
                            return Err(PatternError::Syntax(format!("expected ')', found {t:?}")));
                        }
                    }
                }
                t => {
                    return Err(PatternError::Syntax(format!(
                        "expected '[' or '(', found {t:?}"
                    )));
                }
            }
            if !self.is_or() {
                return Ok(());
            }
            self.pos += 1;
        }
    }

    /// comparison (OR comparison)* ']'
    fn comparisons(
        &mut self,
        values: &mut Values,
        unsupported: &mut Option<String>,
    ) -> Result<(), PatternError> {
        loop {
            let (object, path) = self.object_path()?;
            let op = match self.next() {
                Some(Token::Op(op)) => op,
                Some(Token::Word(w)) => return Err(unsupported_word(&w)),
                t => {
                    return Err(PatternError::Syntax(format!(
                        "expected an operator, found {t:?}"
                    )));
                }
            };
            let value = match self.next() {
                Some(Token::Str(s)) => Some(s),
                Some(Token::Typed | Token::Word(_)) => None,
                Some(Token::LParen) => {
                    return Err(PatternError::Unsupported("set comparison".into()));
                }
                t => {
                    return Err(PatternError::Syntax(format!(
                        "expected a value, found {t:?}"
                    )));
                }
            };
            if op != "=" {
                return Err(PatternError::Unsupported(format!(
                    "operator {op} is outside the IOC subset"
                )));
            }
            match (kind_of(&object, &path), value) {
                (Some(kind), Some(v)) => values.push((kind, v)),
                _ => {
                    unsupported.get_or_insert_with(|| {
                        format!("{object}:{} is not an IOC property", path.join("."))
                    });
                }
            }
            match self.next() {
                Some(Token::RBracket) => return Ok(()),
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR") => {}
                Some(Token::Word(w)) => return Err(unsupported_word(&w)),
                t => {
                    return Err(PatternError::Syntax(format!(
                        "expected ']' or OR, found {t:?}"
                    )));
                }
            }
        }
    }

    /// `object-type:prop(.prop|.'quoted'|[n]|[*])*`, with quoted segments
    /// unquoted.
    fn object_path(&mut self) -> Result<(String, Vec<String>), PatternError> {
        let object = match self.next() {
            Some(Token::Word(w)) => w,
            t => {
                return Err(PatternError::Syntax(format!(
                    "expected an object type, found {t:?}"
                )));
            }
        };
        if self.next() != Some(Token::Colon) {
            return Err(PatternError::Syntax(format!("expected ':' after {object}")));
        }
        let mut path = match self.next() {
            Some(Token::Word(w)) => vec![w],
            t => {
                return Err(PatternError::Syntax(format!(
                    "expected a property, found {t:?}"
                )));
            }
        };
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Word(w) | Token::Str(w)) => path.push(w),
                        t => {
                            return Err(PatternError::Syntax(format!(
                                "expected a property, found {t:?}"
                            )));
                        }
                    }
                }
                Some(Token::LBracket) => {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Star) => path.push("*".into()),
                        Some(Token::Word(w)) if w.bytes().all(|b| b.is_ascii_digit()) => {
                            path.push(w)
                        }
                        t => {
                            return Err(PatternError::Syntax(format!(
                                "expected a list index, found {t:?}"
                            )));
                        }
                    }
                    if self.next() != Some(Token::RBracket) {
                        return Err(PatternError::Syntax(
                            "expected ']' after a list index".into(),
                        ));
                    }
                }
                _ => return Ok((object, path)),
            }
        }
    }
}

fn kind_of(object: &str, path: &[String]) -> Option<ObservableKind> {
    let [first, rest @ ..] = path else {
        return None;
    };
    match (object, first.as_str(), rest) {
        ("domain-name", "value", []) => Some(ObservableKind::Domain),
        ("ipv4-addr", "value", []) => Some(ObservableKind::Ipv4),
        ("ipv6-addr", "value", []) => Some(ObservableKind::Ipv6),
        ("url", "value", []) => Some(ObservableKind::Url),
        ("email-addr", "value", []) => Some(ObservableKind::Email),
        ("file", "hashes", [algo]) => {
            match algo.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
                "MD5" => Some(ObservableKind::Md5),
                "SHA1" => Some(ObservableKind::Sha1),
                "SHA256" => Some(ObservableKind::Sha256),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservableKind as K;

    fn ok(p: &str) -> Vec<(ObservableKind, String)> {
        parse_pattern(p).unwrap_or_else(|e| panic!("{p}: {e:?}"))
    }

    #[test]
    fn reads_the_ioc_subset() {
        assert_eq!(
            ok("[domain-name:value = 'evil.com']"),
            vec![(K::Domain, "evil.com".into())]
        );
        assert_eq!(
            ok("[ ipv4-addr:value = '10.0.0.0/8' ]"),
            vec![(K::Ipv4, "10.0.0.0/8".into())]
        );
        assert_eq!(
            ok(
                "[file:hashes.'SHA-256' = 'aa'] OR [file:hashes.MD5 = 'bb' OR file:hashes.'SHA-1' = 'cc']"
            ),
            vec![
                (K::Sha256, "aa".into()),
                (K::Md5, "bb".into()),
                (K::Sha1, "cc".into())
            ]
        );
        assert_eq!(
            ok("([url:value = 'http://a/]'])"),
            vec![(K::Url, "http://a/]".into())]
        );
        assert_eq!(
            ok(r"[email-addr:value = 'o\'neil@x.com']"),
            vec![(K::Email, "o'neil@x.com".into())]
        );
        assert_eq!(
            ok("[email-addr:value = 'o''neil@x.com']"),
            vec![(K::Email, "o'neil@x.com".into())]
        );
        // A supported value beside an unsupported one inside an OR still counts.
        assert_eq!(
            ok("[domain-name:value = 'a.com' OR file:name = 'x.exe']"),
            vec![(K::Domain, "a.com".into())]
        );
    }

    #[test]
    fn refuses_the_rest() {
        for p in [
            "[domain-name:value = 'a.com' AND ipv4-addr:value = '1.2.3.4']",
            "[domain-name:value = 'a.com'] FOLLOWEDBY [ipv4-addr:value = '1.2.3.4']",
            "[domain-name:value = 'a.com'] WITHIN 300 SECONDS",
            "[domain-name:value = 'a.com'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
            "[domain-name:value LIKE '%.com']",
            "[domain-name:value != 'a.com']",
            "[email-message:subject MATCHES '^x']",
            "[file:name = 'CBricksDoc']",
            "[ipv4-addr:value IN ('1.2.3.4', '5.6.7.8')]",
        ] {
            assert!(
                matches!(parse_pattern(p), Err(PatternError::Unsupported(_))),
                "{p}: {:?}",
                parse_pattern(p)
            );
        }
        for p in [
            "",
            "domain-name:value = 'a'",
            "[domain-name:value = 'a'",
            "[domain-name:value = 'a]",
            "[[[",
            "[a:b = 'x'] ]",
        ] {
            assert!(
                matches!(parse_pattern(p), Err(PatternError::Syntax(_))),
                "{p}: {:?}",
                parse_pattern(p)
            );
        }
        let deep = format!(
            "{}[url:value = 'x']{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse_pattern(&deep).is_err());
    }
}
