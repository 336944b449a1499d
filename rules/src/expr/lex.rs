//! Tokens with character spans. Keywords (`and`, `or`, `not`) are identifiers here; the
//! parser gives them meaning, so an aggregate can never be shadowed by a new keyword silently.

use super::{ExprError, Span, err};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    #[inline]
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Ident,
    Number(f64),
    Cmp(CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

pub(crate) fn tokenize(chars: &[char]) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_alphabetic() || c == '_' {
            // `.` joins two identifiers (`band_energy.bearing`); before a digit it is not ours.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '_'
                    || (chars[i] == '.'
                        && chars
                            .get(i + 1)
                            .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')))
            {
                i += 1;
            }
            TokenKind::Ident
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: `1e3`, `2.5E-4`.
            if i < chars.len() && matches!(chars[i], 'e' | 'E') {
                let mut j = i + 1;
                if j < chars.len() && matches!(chars[j], '+' | '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => TokenKind::Number(n),
                _ => return err(start, format!("invalid number `{text}`")),
            }
        } else {
            let next = chars.get(i + 1).copied();
            let (kind, len) = match (c, next) {
                ('>', Some('=')) => (TokenKind::Cmp(CmpOp::Ge), 2),
                ('<', Some('=')) => (TokenKind::Cmp(CmpOp::Le), 2),
                ('=', Some('=')) => (TokenKind::Cmp(CmpOp::Eq), 2),
                ('!', Some('=')) => (TokenKind::Cmp(CmpOp::Ne), 2),
                ('>', _) => (TokenKind::Cmp(CmpOp::Gt), 1),
                ('<', _) => (TokenKind::Cmp(CmpOp::Lt), 1),
                ('+', _) => (TokenKind::Plus, 1),
                ('-', _) => (TokenKind::Minus, 1),
                ('*', _) => (TokenKind::Star, 1),
                ('/', _) => (TokenKind::Slash, 1),
                ('(', _) => (TokenKind::LParen, 1),
                (')', _) => (TokenKind::RParen, 1),
                (',', _) => (TokenKind::Comma, 1),
                ('=', _) => return err(start, "`=` is not an operator; use `==` to compare"),
                ('!', _) => return err(start, "expected `!=` (negation is `not`)"),
                ('&', _) => return err(start, "use `and` to combine conditions"),
                ('|', _) => return err(start, "use `or` to combine conditions"),
                _ => return err(start, format!("unexpected character `{c}`")),
            };
            i += len;
            kind
        };
        tokens.push(Token {
            kind,
            span: Span { start, end: i },
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span {
            start: chars.len(),
            end: chars.len(),
        },
    });
    Ok(tokens)
}
