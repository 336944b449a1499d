//! A recursive-descent parser, one function per precedence level, producing a located tree.
//!
//! Precedence, loosest first: `or`, `and`, `not`, comparison (not chainable: `a < b < c` is
//! an error rather than a surprise), `+ -`, `* /`, unary `-`, then numbers, names, calls
//! and parentheses.

use super::lex::{CmpOp, Token, TokenKind, tokenize};
use super::{ExprError, Span, err};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
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
    Call { name: String, args: Vec<Expr> },
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Nesting deeper than this is refused, so a hostile rule file cannot overflow the stack.
const MAX_DEPTH: usize = 64;
/// Longer expressions are refused, which also bounds the depth of left-nested chains
/// (`1 + 1 + …`) that the compiler walks recursively.
const MAX_TOKENS: usize = 512;

struct Parser<'a> {
    chars: &'a [char],
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn join(lhs: &Expr, rhs: &Expr) -> Span {
    Span {
        start: lhs.span.start,
        end: rhs.span.end,
    }
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

    fn text(&self, t: &Token) -> String {
        self.chars[t.span.start..t.span.end].iter().collect()
    }

    fn is_keyword(&self, word: &str) -> bool {
        let t = self.peek();
        t.kind == TokenKind::Ident && self.text(t) == word
    }

    pub fn describe(&self, t: &Token) -> String {
        match t.kind {
            TokenKind::Eof => "the end of the expression".to_owned(),
            _ => format!("`{}`", self.text(t)),
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.and()?;
        while self.is_keyword("or") {
            self.bump();
            let rhs = self.and()?;
            let span = join(&lhs, &rhs);
            lhs = Expr {
                kind: ExprKind::Or(Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.not()?;
        while self.is_keyword("and") {
            self.bump();
            let rhs = self.not()?;
            let span = join(&lhs, &rhs);
            lhs = Expr {
                kind: ExprKind::And(Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.is_keyword("not") {
            let t = self.bump();
            let inner = self.nested(Self::not)?;
            let span = Span {
                start: t.span.start,
                end: inner.span.end,
            };
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.sum()?;
        let TokenKind::Cmp(op) = self.peek().kind else {
            return Ok(lhs);
        };
        self.bump();
        let rhs = self.sum()?;
        if let TokenKind::Cmp(_) = self.peek().kind {
            let at = self.peek().span.start;
            return err(
                at,
                "comparisons do not chain; combine them with `and`, e.g. `a < b and b < c`",
            );
        }
        let span = join(&lhs, &rhs);
        Ok(Expr {
            kind: ExprKind::Compare(op, Box::new(lhs), Box::new(rhs)),
            span,
        })
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.product()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.product()?;
            let span = join(&lhs, &rhs);
            lhs = Expr {
                kind: ExprKind::Arith(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            let span = join(&lhs, &rhs);
            lhs = Expr {
                kind: ExprKind::Arith(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek().kind == TokenKind::Minus {
            let minus = self.bump();
            let inner = self.nested(Self::unary)?;
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

    /// Runs one level deeper, refusing pathological nesting.
    fn nested(&mut self, f: fn(&mut Self) -> Result<Expr, ExprError>) -> Result<Expr, ExprError> {
        if self.depth >= MAX_DEPTH {
            return err(self.peek().span.start, "expression nested too deeply");
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn expect_close(&mut self, open: &Token, what: &str) -> Result<Token, ExprError> {
        let t = self.bump();
        if t.kind == TokenKind::RParen {
            return Ok(t);
        }
        err(
            t.span.start,
            format!(
                "expected `)` to close the {what} opened at column {}, found {}",
                open.span.start + 1,
                self.describe(&t)
            ),
        )
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let t = self.bump();
        let kind = match t.kind {
            TokenKind::Number(n) => ExprKind::Number(n),
            TokenKind::LParen => {
                let inner = self.nested(Self::or)?;
                let close = self.expect_close(&t, "parenthesis")?;
                return Ok(Expr {
                    kind: inner.kind,
                    span: Span {
                        start: t.span.start,
                        end: close.span.end,
                    },
                });
            }
            TokenKind::Ident if self.peek().kind == TokenKind::LParen => {
                let open = self.bump();
                let mut args = Vec::new();
                if self.peek().kind != TokenKind::RParen {
                    loop {
                        args.push(self.nested(Self::or)?);
                        if self.peek().kind != TokenKind::Comma {
                            break;
                        }
                        self.bump();
                    }
                }
                let close = self.expect_close(&open, "call")?;
                return Ok(Expr {
                    kind: ExprKind::Call {
                        name: self.text(&t),
                        args,
                    },
                    span: Span {
                        start: t.span.start,
                        end: close.span.end,
                    },
                });
            }
            TokenKind::Ident => {
                let name = self.text(&t);
                if matches!(name.as_str(), "and" | "or" | "not") {
                    return err(
                        t.span.start,
                        format!("expected a value before `{name}`, found `{name}`"),
                    );
                }
                ExprKind::Ident(name)
            }
            _ => {
                return err(
                    t.span.start,
                    format!(
                        "expected an aggregate, a number, a function or `(`, found {}",
                        self.describe(&t)
                    ),
                );
            }
        };
        Ok(Expr { kind, span: t.span })
    }
}

/// Parses a whole expression into a located tree.
pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let tokens = tokenize(&chars)?;
    if tokens.len() > MAX_TOKENS {
        return err(
            0,
            format!("expression too long (more than {MAX_TOKENS} tokens)"),
        );
    }
    let mut p = Parser {
        chars: &chars,
        tokens,
        pos: 0,
        depth: 0,
    };
    if p.peek().kind == TokenKind::Eof {
        return err(
            0,
            "empty expression; expected a condition such as `mean > 80`",
        );
    }
    let expr = p.or()?;
    let next = p.peek().clone();
    if next.kind != TokenKind::Eof {
        let message = match next.kind {
            TokenKind::RParen => "unmatched `)`".to_owned(),
            _ if matches!(
                expr.kind,
                ExprKind::Compare(..) | ExprKind::And(..) | ExprKind::Or(..) | ExprKind::Not(_)
            ) =>
            {
                format!("unexpected {} after the condition", p.describe(&next))
            }
            _ => format!(
                "expected an operator (+ - * /, a comparison, `and`, `or`), found {}",
                p.describe(&next)
            ),
        };
        return err(next.span.start, message);
    }
    Ok(expr)
}
