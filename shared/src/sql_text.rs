//! A small SQL lexer for every dialect: splits a file into statements (as diesel's
//! `batch_execute` sends them) and comments, skipping strings, quoted identifiers, dollar
//! quotes and trigger bodies, so dbsafe's own rules look only at real keywords. Read by the
//! lint, by invariants and `verify.sql`, and by the migration model (whether a file holds SQL).

use crate::dialect::{Backend, Lexicon};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A keyword or bare identifier.
    Word,
    /// A string literal (any quoting, dollar quotes included).
    Str,
    /// A quoted identifier (`"x"`, `` `x` ``).
    Quoted,
    /// A number.
    Number,
    /// One punctuation character.
    Punct,
}

/// One token of a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its text as written.
    pub text: &'a str,
    /// Its byte offset in the file.
    pub offset: usize,
    /// How many parentheses are open where it stands.
    pub depth: u32,
}

impl Token<'_> {
    /// Whether this is the keyword `word` (case-insensitive).
    pub fn is(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// Whether this is the punctuation `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }
}

/// One statement: its tokens, the `;` excluded.
#[derive(Debug, Clone)]
pub(crate) struct Statement<'a> {
    /// The tokens, in order (never empty).
    pub tokens: Vec<Token<'a>>,
    /// Byte offset of the first token.
    pub start: usize,
    /// Byte offset just past the last token (or the `;`).
    pub end: usize,
}

impl Statement<'_> {
    /// Whether the statement's leading keywords are `words` (case-insensitive).
    pub fn starts_with(&self, words: &[&str]) -> bool {
        words.len() <= self.tokens.len()
            && words
                .iter()
                .zip(&self.tokens)
                .all(|(word, token)| token.is(word))
    }

    /// Whether the keyword `word` appears anywhere in the statement.
    pub fn has(&self, word: &str) -> bool {
        self.tokens.iter().any(|t| t.is(word))
    }

    /// Whether the keyword `word` appears outside any parentheses.
    pub fn has_top_level(&self, word: &str) -> bool {
        self.tokens.iter().any(|t| t.depth == 0 && t.is(word))
    }
}

/// One comment: its text without the `--`, `#` or `/* */` markers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Comment<'a> {
    /// The text inside the markers.
    pub body: &'a str,
    /// Byte offset of the comment.
    pub offset: usize,
}

/// A file cut into statements and comments.
#[derive(Debug, Default)]
pub(crate) struct Script<'a> {
    /// The statements in order; empty ones (`;;`) are dropped.
    pub statements: Vec<Statement<'a>>,
    /// Every comment, in order.
    pub comments: Vec<Comment<'a>>,
}

/// Cuts `text` into statements and comments, as `dialect` reads it.
pub(crate) fn split(text: &str, dialect: Backend) -> Script<'_> {
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        lexicon: dialect.dialect().lexicon(),
    };
    let mut script = Script::default();
    let mut current: Vec<Token> = Vec::new();
    let mut depth: u32 = 0;
    // Depth of BEGIN/CASE ... END inside a trigger, function or procedure body.
    let mut block: u32 = 0;
    while let Some(item) = lexer.next_item() {
        let mut token = match item {
            Item::Comment(comment) => {
                script.comments.push(comment);
                continue;
            }
            Item::Token(token) => token,
        };
        if token.is_punct(';') && block == 0 {
            finish(&mut script, &mut current, token.offset + 1);
            depth = 0;
            continue;
        }
        if token.is_punct(')') {
            depth = depth.saturating_sub(1);
        }
        token.depth = depth;
        if token.is_punct('(') {
            depth += 1;
        }
        if token.kind == Kind::Word && has_body(&current) {
            let previous_end = current.last().is_some_and(|t| t.is("END"));
            if token.is("BEGIN") || token.is("CASE") && !previous_end {
                block += 1;
            } else if token.is("END") {
                block = block.saturating_sub(1);
            } else if previous_end
                && ["IF", "LOOP", "WHILE", "REPEAT"]
                    .iter()
                    .any(|word| token.is(word))
            {
                // `END IF`: the IF ... THEN it closes was never counted.
                block += 1;
            }
        }
        current.push(token);
    }
    finish(&mut script, &mut current, text.len());
    script
}

/// Ends the statement being read, if it has tokens.
fn finish<'a>(script: &mut Script<'a>, current: &mut Vec<Token<'a>>, end: usize) {
    if let Some(first) = current.first() {
        script.statements.push(Statement {
            start: first.offset,
            end,
            tokens: std::mem::take(current),
        });
    }
}

/// Whether the statement begun so far creates a trigger, function or procedure, whose body
/// may hold `;` between BEGIN and END.
fn has_body(tokens: &[Token]) -> bool {
    tokens.first().is_some_and(|t| t.is("CREATE"))
        && tokens
            .iter()
            .take(12)
            .any(|t| t.is("TRIGGER") || t.is("FUNCTION") || t.is("PROCEDURE"))
}

/// What the lexer read.
enum Item<'a> {
    Token(Token<'a>),
    Comment(Comment<'a>),
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    lexicon: Lexicon,
}

impl<'a> Lexer<'a> {
    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn token(&self, kind: Kind, start: usize) -> Item<'a> {
        Item::Token(Token {
            kind,
            text: &self.text[start..self.pos],
            offset: start,
            depth: 0,
        })
    }

    fn next_item(&mut self) -> Option<Item<'a>> {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let c = *self.bytes.get(self.pos)?;
        let lexicon = self.lexicon;
        Some(match c {
            b'-' if self.peek(1) == b'-' => self.line_comment(start, 2),
            b'#' if lexicon.hash_comments => self.line_comment(start, 1),
            b'/' if self.peek(1) == b'*' => self.block_comment(start),
            b'\'' => {
                let escapes = lexicon.backslash_escapes || self.escape_string_prefix(start);
                self.quoted(b'\'', escapes);
                self.token(Kind::Str, start)
            }
            b'"' => {
                self.quoted(b'"', lexicon.backslash_escapes);
                let kind = match lexicon.double_quoted_strings {
                    true => Kind::Str,
                    false => Kind::Quoted,
                };
                self.token(kind, start)
            }
            b'`' => {
                self.quoted(b'`', false);
                self.token(Kind::Quoted, start)
            }
            b'$' if lexicon.dollar_quotes => match self.dollar_tag() {
                Some(tag) => {
                    self.dollar_body(tag);
                    self.token(Kind::Str, start)
                }
                None => {
                    self.pos += 1;
                    while self.peek(0).is_ascii_digit() {
                        self.pos += 1;
                    }
                    self.token(Kind::Punct, start)
                }
            },
            c if c.is_ascii_digit() => {
                while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'.' {
                    self.pos += 1;
                }
                self.token(Kind::Number, start)
            }
            c if is_word_start(c) => {
                while is_word_byte(self.peek(0)) {
                    self.pos += 1;
                }
                self.token(Kind::Word, start)
            }
            _ => {
                // One character, whole (it may be longer than a byte).
                let width = self.text[start..].chars().next().map_or(1, char::len_utf8);
                self.pos += width;
                self.token(Kind::Punct, start)
            }
        })
    }

    fn line_comment(&mut self, start: usize, marker: usize) -> Item<'a> {
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        self.pos = end;
        Item::Comment(Comment {
            body: &self.text[start + marker..end],
            offset: start,
        })
    }

    fn block_comment(&mut self, start: usize) -> Item<'a> {
        // PostgreSQL nests block comments; the others end at the first `*/`.
        let nests = self.lexicon.nested_comments;
        let mut level = 0usize;
        while self.pos < self.bytes.len() {
            if self.peek(0) == b'/' && self.peek(1) == b'*' {
                if level == 0 || nests {
                    level += 1;
                }
                self.pos += 2;
            } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                self.pos += 2;
                level -= 1;
                if level == 0 {
                    let body = &self.text[start + 2..self.pos - 2];
                    return Item::Comment(Comment {
                        body,
                        offset: start,
                    });
                }
            } else {
                self.pos += 1;
            }
        }
        Item::Comment(Comment {
            body: &self.text[(start + 2).min(self.text.len())..],
            offset: start,
        })
    }

    /// Whether the quote at `start` opens a PostgreSQL `E'...'` string (backslash escapes).
    fn escape_string_prefix(&self, start: usize) -> bool {
        start > 0
            && matches!(self.bytes[start - 1], b'e' | b'E')
            && (start < 2 || !is_word_byte(self.bytes[start - 2]))
    }

    /// Skips a quoted run opened at `pos`; a doubled quote is one quote character.
    fn quoted(&mut self, quote: u8, backslash_escapes: bool) {
        self.pos += 1;
        while self.pos < self.bytes.len() {
            let c = self.bytes[self.pos];
            if backslash_escapes && c == b'\\' {
                self.pos += 2;
            } else if c == quote {
                self.pos += 1;
                if self.peek(0) == quote {
                    self.pos += 1;
                } else {
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.bytes.len();
    }

    /// The `$tag$` opening a dollar-quoted string at `pos`, if it is one.
    fn dollar_tag(&self) -> Option<&'a str> {
        let rest = &self.text[self.pos + 1..];
        let len = rest
            .bytes()
            .take_while(|&b| is_word_byte(b) && b != b'$')
            .count();
        if rest.as_bytes().get(len) != Some(&b'$') || rest.starts_with(|c: char| c.is_ascii_digit())
        {
            return None;
        }
        Some(&self.text[self.pos..self.pos + len + 2])
    }

    fn dollar_body(&mut self, tag: &str) {
        let body_start = self.pos + tag.len();
        self.pos = match self.text[body_start..].find(tag) {
            Some(i) => body_start + i + tag.len(),
            None => self.bytes.len(),
        };
    }
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The 1-based line of each byte offset of a text.
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    /// Indexes `text`.
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str, dialect: Backend) -> Vec<String> {
        split(sql, dialect)
            .statements
            .iter()
            .map(|s| {
                s.tokens
                    .iter()
                    .map(|t| t.text)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn statements_and_comments() {
        let sql = "-- a comment; not a statement\nCREATE TABLE t (a int); /* x; */ INSERT INTO t VALUES ('a;b''c');;\nSELECT 1";
        let script = split(sql, Backend::Postgres);
        assert_eq!(
            texts(sql, Backend::Postgres),
            [
                "CREATE TABLE t ( a int )",
                "INSERT INTO t VALUES ( 'a;b''c' )",
                "SELECT 1"
            ]
        );
        assert_eq!(script.comments.len(), 2);
        assert_eq!(script.comments[0].body, " a comment; not a statement");
        assert_eq!(script.comments[1].body, " x; ");
    }

    #[test]
    fn dollar_quotes_and_escape_strings() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT E'it\\'s;'; SELECT $1;";
        let found = texts(sql, Backend::Postgres);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[1], "SELECT E 'it\\'s;'");
    }

    #[test]
    fn trigger_bodies_keep_their_semicolons() {
        let sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; DELETE FROM u; END;\nSELECT 1;";
        let found = texts(sql, Backend::Sqlite);
        assert_eq!(found.len(), 2, "{found:?}");
        let mysql =
            "CREATE PROCEDURE p() BEGIN IF 1 THEN SELECT 1; END IF; SELECT 2; END; SELECT 3;";
        assert_eq!(texts(mysql, Backend::Mysql).len(), 2);
    }

    #[test]
    fn mysql_quotes_and_hash_comments() {
        let sql = "# a; comment\nINSERT INTO `t;` VALUES (\"a\\\";\"); SELECT 1";
        let script = split(sql, Backend::Mysql);
        assert_eq!(script.statements.len(), 2);
        assert_eq!(script.comments.len(), 1);
    }

    #[test]
    fn depth_and_lines() {
        let script = split(
            "DELETE FROM t WHERE id IN (SELECT id FROM u WHERE x)",
            Backend::Sqlite,
        );
        let statement = &script.statements[0];
        assert!(statement.has_top_level("WHERE"));
        let script = split(
            "DELETE FROM t RETURNING (SELECT 1 WHERE true)",
            Backend::Sqlite,
        );
        assert!(!script.statements[0].has_top_level("WHERE"));
        let lines = Lines::new("a\nbc\n\nd");
        assert_eq!(
            [0, 1, 2, 3, 5, 6].map(|o| lines.line(o)),
            [1, 1, 2, 2, 3, 4]
        );
    }
}
