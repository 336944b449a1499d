//! The `when:` condition language: a tokenizer, a parser and a compiler, all with spans.
//!
//! Today a condition is `<aggregate> <op> <number>` (`mean > 80`). The pieces are still kept
//! apart — tokens, a precedence-climbing parser producing a located AST, then a compile step
//! that checks the AST and lowers it — because the language is expected to grow (arithmetic,
//! functions such as `abs(...)`, `and`/`or`). Growing it means adding tokens, one parser level
//! per precedence and AST variants; error reporting keeps working because every node carries
//! the character span it came from, which `ruleset` turns into a file column.

use crate::event::Aggregate;

/// A half-open range of character offsets into the condition text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

/// A problem in a condition: where (character offset into the condition) and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExprError {
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

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
    fn apply(self, a: f64, b: f64) -> bool {
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
enum TokenKind {
    Ident,
    Number(f64),
    Cmp(CmpOp),
    Minus,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: TokenKind,
    span: Span,
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
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
                ('-', _) => (TokenKind::Minus, 1),
                ('=', _) => return err(start, "`=` is not an operator; use `==` to compare"),
                ('!', _) => return err(start, "expected `!=`"),
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

/// The located syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Number(f64),
    Ident(String),
    Neg(Box<Expr>),
    Compare {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != TokenKind::Eof {
            self.pos += 1;
        }
        t
    }

    fn describe(&self, t: &Token) -> String {
        match t.kind {
            TokenKind::Eof => "the end of the condition".to_owned(),
            _ => {
                let text: String = self.chars[t.span.start..t.span.end].iter().collect();
                format!("`{text}`")
            }
        }
    }

    /// comparison := operand (cmp operand)?   — the lowest precedence level today.
    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.unary()?;
        let TokenKind::Cmp(op) = self.peek().kind else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.unary()?;
        let span = Span {
            start: lhs.span.start,
            end: rhs.span.end,
        };
        Ok(Expr {
            kind: ExprKind::Compare {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        })
    }

    /// unary := '-' unary | primary
    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek().kind == TokenKind::Minus {
            let minus = self.bump();
            let inner = self.unary()?;
            let span = Span {
                start: minus.span.start,
                end: inner.span.end,
            };
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(inner)),
                span,
            });
        }
        self.primary()
    }

    /// primary := number | identifier
    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.bump();
        let kind = match t.kind {
            TokenKind::Number(n) => ExprKind::Number(n),
            TokenKind::Ident => {
                ExprKind::Ident(self.chars[t.span.start..t.span.end].iter().collect())
            }
            _ => {
                return err(
                    t.span.start,
                    format!(
                        "expected an aggregate or a number, found {}",
                        self.describe(&t)
                    ),
                );
            }
        };
        Ok(Expr { kind, span: t.span })
    }
}

/// Parses a whole condition into a located tree.
pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let tokens = tokenize(&chars)?;
    let mut p = Parser {
        chars: &chars,
        tokens,
        pos: 0,
    };
    if p.peek().kind == TokenKind::Eof {
        return err(
            0,
            "empty condition; expected `<aggregate> <op> <number>`, e.g. `mean > 80`",
        );
    }
    let expr = p.comparison()?;
    let next = p.peek().clone();
    if next.kind != TokenKind::Eof {
        let message = if matches!(expr.kind, ExprKind::Compare { .. }) {
            format!("unexpected {} after the condition", p.describe(&next))
        } else {
            format!(
                "expected a comparison operator (>, >=, <, <=, ==, !=), found {}",
                p.describe(&next)
            )
        };
        return err(next.span.start, message);
    }
    Ok(expr)
}

fn aggregate_named(name: &str) -> Option<Aggregate> {
    [
        Aggregate::Count,
        Aggregate::Mean,
        Aggregate::Min,
        Aggregate::Max,
    ]
    .into_iter()
    .find(|a| a.as_str() == name)
}

/// Folds `-` applied to literals, so `-5` is a number like `5`.
fn constant(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Number(n) => Some(*n),
        ExprKind::Neg(inner) => constant(inner).map(|n| -n),
        _ => None,
    }
}

/// A compiled condition, evaluated at each window close.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub aggregate: Aggregate,
    pub op: CmpOp,
    pub threshold: f64,
}

impl Condition {
    /// Parses and checks `src`. The language is deliberately narrower than the parser:
    /// the left side must be an aggregate and the right side a number.
    pub fn compile(src: &str) -> Result<Condition, ExprError> {
        let expr = parse(src)?;
        let ExprKind::Compare { op, lhs, rhs } = expr.kind else {
            return err(
                expr.span.end,
                "expected a comparison operator (>, >=, <, <=, ==, !=) after the value",
            );
        };
        let aggregate = match &lhs.kind {
            ExprKind::Ident(name) => aggregate_named(name).ok_or_else(|| ExprError {
                offset: lhs.span.start,
                message: format!("unknown aggregate `{name}` (expected count, mean, min or max)"),
            })?,
            _ => {
                return err(
                    lhs.span.start,
                    "the left side must be an aggregate (count, mean, min or max)",
                );
            }
        };
        let Some(threshold) = constant(&rhs) else {
            return err(rhs.span.start, "the right side must be a number");
        };
        Ok(Condition {
            aggregate,
            op,
            threshold,
        })
    }

    /// Decides the condition given the value of its aggregate; returns whether it holds.
    pub fn holds(&self, value: f64) -> bool {
        self.op.apply(value, self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_err(src: &str) -> (usize, String) {
        let e = Condition::compile(src).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn compiles_every_operator() {
        for (src, op) in [
            ("mean > 80", CmpOp::Gt),
            ("max>=1e2", CmpOp::Ge),
            ("min < -5.5", CmpOp::Lt),
            ("count <= 3", CmpOp::Le),
            ("mean == 0", CmpOp::Eq),
            ("mean != .5", CmpOp::Ne),
        ] {
            let c = Condition::compile(src).unwrap();
            assert_eq!(c.op, op, "{src}");
        }
        let c = Condition::compile("  min < -5.5 ").unwrap();
        assert_eq!((c.aggregate, c.threshold), (Aggregate::Min, -5.5));
        assert!(c.holds(-6.0));
        assert!(!c.holds(-5.5));
    }

    #[test]
    fn errors_point_inside_the_expression() {
        assert_eq!(compile_err("avg > 80").0, 0);
        assert!(
            compile_err("avg > 80")
                .1
                .contains("unknown aggregate `avg`")
        );
        assert_eq!(compile_err("mean >").0, 6);
        assert_eq!(compile_err("mean 80").0, 5);
        assert_eq!(compile_err("mean = 80").0, 5);
        assert_eq!(compile_err("mean > 80 x").0, 10);
        assert_eq!(compile_err("mean > 8#0").0, 8);
        assert_eq!(compile_err("mean > 1.2.3").0, 7);
        assert_eq!(compile_err("mean > max").0, 7);
        assert_eq!(compile_err("80 < mean").0, 0);
        assert_eq!(compile_err("").0, 0);
        assert_eq!(compile_err("mean").0, 4);
        assert_eq!(compile_err("mean ! 3").0, 5);
    }
}
