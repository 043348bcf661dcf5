//! Following a shell command as it is written, far enough to know which quotes the text so
//! far left open: the context a template value lands in (see [`super::quote::quote_in`]).
//!
//! This is not a shell parser. It tracks single and double quotes, backslashes, comments,
//! `$(...)`, backticks, `${...}`, `$((...))` and here-documents, and where it cannot be sure
//! (backticks, `${...}`, arithmetic, a here-document body, `case` inside `$(...)`) it says
//! so instead of guessing: a wrong guess could put a value outside the quotes meant for it.

/// Where the next character of a command lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Outside any quotes (at the top level or directly inside `$(...)`).
    Plain,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
    /// Inside a `#` comment (ends at the next line break).
    Comment,
    /// Somewhere a value cannot be quoted reliably; says where.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Single,
    Double,
    /// `$(...)` with the depth of plain parentheses opened inside it.
    Sub(u32),
    Arith(u32),
    Brace(u32),
    Tick,
}

/// Here-document bookkeeping: delimiters announced on the current line, then the body.
#[derive(Debug, Clone, Default)]
struct HereDocs {
    /// Delimiters (with "strip leading tabs") whose bodies start after the next line break.
    pending: Vec<(String, bool)>,
    /// Reading the delimiter word right after `<<`: (word so far, strip tabs, started).
    reading: Option<(String, bool, bool)>,
    /// In a body: the current line so far.
    body: Option<String>,
}

/// The lexer's state after the text fed so far.
#[derive(Debug, Clone, Default)]
pub struct ShellLexer {
    stack: Vec<Frame>,
    escape: bool,
    dollar: bool,
    /// Previous character was an unquoted `<` (a second one makes a here-document).
    lt: bool,
    comment: bool,
    /// The next character starts a word (for `#` comments and the `case` keyword).
    word_start: bool,
    word: String,
    here: HereDocs,
    lost: Option<&'static str>,
    /// Right after `$(`: a second `(` makes it `$((`, arithmetic.
    fresh: bool,
    started: bool,
}

impl ShellLexer {
    /// A lexer at the start of a command.
    pub fn new() -> ShellLexer {
        ShellLexer {
            word_start: true,
            started: true,
            ..ShellLexer::default()
        }
    }

    /// Where the next character would land.
    pub fn context(&self) -> Context {
        if let Some(why) = self.lost {
            return Context::Unsupported(why);
        }
        if self.here.body.is_some() {
            return Context::Unsupported("inside a here-document");
        }
        if self.here.reading.is_some() {
            return Context::Unsupported("in a here-document's delimiter");
        }
        if self.escape {
            return Context::Unsupported("right after a backslash");
        }
        if self.dollar {
            return Context::Unsupported("right after `$`");
        }
        if self.comment {
            return Context::Comment;
        }
        for f in &self.stack {
            match f {
                Frame::Tick => return Context::Unsupported("inside backticks (use $(...) instead)"),
                Frame::Brace(_) => return Context::Unsupported("inside ${...}"),
                Frame::Arith(_) => return Context::Unsupported("inside $((...))"),
                _ => {}
            }
        }
        match self.stack.last() {
            Some(Frame::Single) => Context::Single,
            Some(Frame::Double) => Context::Double,
            _ => Context::Plain,
        }
    }

    /// Follow `text`.
    pub fn feed(&mut self, text: &str) {
        if !self.started {
            *self = ShellLexer::new();
        }
        for c in text.chars() {
            if self.lost.is_some() {
                return;
            }
            self.step(c);
        }
    }

    fn unquoted(&self) -> bool {
        !matches!(self.stack.last(), Some(Frame::Single | Frame::Double))
    }

    fn step(&mut self, c: char) {
        if let Some(line) = &mut self.here.body {
            if c != '\n' {
                line.push(c);
                return;
            }
            let (delim, strip) = self.here.pending[0].clone();
            let l = if strip {
                line.trim_start_matches('\t')
            } else {
                line.as_str()
            };
            if l == delim {
                self.here.pending.remove(0);
            }
            line.clear();
            if self.here.pending.is_empty() {
                self.here.body = None;
                self.word_start = true;
            }
            return;
        }
        if let Some((word, strip, started)) = &mut self.here.reading {
            let ends = c.is_whitespace() || ";&|<>()".contains(c);
            if !*started && c == '-' && word.is_empty() && !*strip {
                *strip = true;
                return;
            }
            if !*started && (c == ' ' || c == '\t') {
                return;
            }
            if !ends {
                *started = true;
                if !"'\"\\".contains(c) {
                    word.push(c);
                }
                return;
            }
            let (word, strip, _) = self.here.reading.take().unwrap_or_default();
            self.here.pending.push((word, strip));
        }
        if self.comment {
            if c == '\n' {
                self.comment = false;
                self.newline();
            }
            return;
        }
        if self.escape {
            self.escape = false;
            self.word.push(c);
            return;
        }
        let was_dollar = std::mem::take(&mut self.dollar);
        let was_lt = std::mem::take(&mut self.lt);
        let fresh = std::mem::take(&mut self.fresh);
        match self.stack.last().copied() {
            Some(Frame::Single) => {
                if c == '\'' {
                    self.stack.pop();
                }
                return;
            }
            Some(Frame::Double) => {
                match c {
                    '\\' => self.escape = true,
                    '"' => {
                        self.stack.pop();
                    }
                    '`' => self.stack.push(Frame::Tick),
                    '$' => self.dollar = true,
                    '(' if was_dollar => {
                        self.stack.push(Frame::Sub(0));
                        self.fresh = true;
                        self.word_start = true;
                    }
                    '{' if was_dollar => self.stack.push(Frame::Brace(0)),
                    _ => {}
                }
                return;
            }
            _ => {}
        }
        // Unquoted: the top level, or inside $(...), $((...)), ${...} or backticks.
        if c == '(' && was_dollar {
            self.stack.push(Frame::Sub(0));
            self.fresh = true;
            self.end_word();
            self.word_start = true;
            return;
        }
        if c == '(' && fresh {
            // `$((`: arithmetic, not a command; it ends with `))`, so it starts one deep.
            self.stack.pop();
            self.stack.push(Frame::Arith(1));
            return;
        }
        if c == '{' && was_dollar {
            self.stack.push(Frame::Brace(0));
            return;
        }
        if c == '<' && was_lt && self.unquoted() {
            self.here.reading = Some((String::new(), false, false));
            return;
        }
        let starts_word = std::mem::replace(&mut self.word_start, false);
        match c {
            '\\' => self.escape = true,
            '\'' => self.stack.push(Frame::Single),
            '"' => self.stack.push(Frame::Double),
            '$' => self.dollar = true,
            '`' => {
                if self.stack.last() == Some(&Frame::Tick) {
                    self.stack.pop();
                } else {
                    self.stack.push(Frame::Tick);
                }
            }
            '#' if starts_word => self.comment = true,
            '\n' => {
                self.end_word();
                self.newline();
            }
            '<' => {
                self.lt = true;
                self.end_word();
                self.word_start = true;
            }
            c if c.is_whitespace() || ";&|>".contains(c) => {
                self.end_word();
                self.word_start = true;
            }
            '(' => {
                self.bump(1);
                self.end_word();
                self.word_start = true;
            }
            ')' => {
                self.bump(-1);
                self.end_word();
                self.word_start = true;
            }
            '}' => self.brace_close(),
            '{' => {
                if let Some(Frame::Brace(d)) = self.stack.last_mut() {
                    *d += 1;
                }
            }
            c => self.word.push(c),
        }
    }

    /// A plain `(` or `)` inside `$(...)` or `$((...))`: the innermost one closes on its `)`.
    fn bump(&mut self, by: i32) {
        match self.stack.last_mut() {
            Some(Frame::Sub(d)) | Some(Frame::Arith(d)) => {
                if by > 0 {
                    *d += 1;
                } else if *d == 0 {
                    self.stack.pop();
                } else {
                    *d -= 1;
                }
            }
            _ => {}
        }
    }

    fn brace_close(&mut self) {
        if let Some(Frame::Brace(d)) = self.stack.last_mut() {
            if *d == 0 {
                self.stack.pop();
            } else {
                *d -= 1;
            }
        }
    }

    fn end_word(&mut self) {
        let in_sub = self.stack.iter().any(|f| matches!(f, Frame::Sub(_)));
        // A `case` pattern's `)` inside $(...) would look like the end of the substitution.
        if in_sub && self.word == "case" {
            self.lost = Some("after a `case` inside $(...)");
        }
        self.word.clear();
    }

    fn newline(&mut self) {
        self.word_start = true;
        if !self.here.pending.is_empty() && self.unquoted() {
            self.here.body = Some(String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Context {
        let mut l = ShellLexer::new();
        l.feed(text);
        l.context()
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(at("agentctl status "), Context::Plain);
        assert_eq!(at("logger 'applied on "), Context::Single);
        assert_eq!(at("logger 'a' 'b' "), Context::Plain);
        assert_eq!(at("echo \"x "), Context::Double);
        assert_eq!(at("echo \"it's "), Context::Double);
        assert_eq!(at("echo 'say \"hi "), Context::Single);
        assert_eq!(at("echo \\' "), Context::Plain);
        assert_eq!(at("echo \"a\\\" "), Context::Double);
        assert_eq!(at("echo a\\"), Context::Unsupported("right after a backslash"));
        assert_eq!(at("echo $"), Context::Unsupported("right after `$`"));
        assert_eq!(at("echo '$"), Context::Single);
    }

    #[test]
    fn substitutions() {
        assert_eq!(at("test \"$(cat "), Context::Plain);
        assert_eq!(at("test \"$(cat \"/etc/"), Context::Double);
        assert_eq!(at("test \"$(cat x) = "), Context::Double);
        assert_eq!(at("test \"$(cat x)\" = x "), Context::Plain);
        assert_eq!(at("echo $(f (a) ) "), Context::Plain);
        assert_eq!(at("echo $(echo ')' "), Context::Plain);
        assert_eq!(at("echo $(echo ')' \""), Context::Double);
        assert!(matches!(at("echo `cat "), Context::Unsupported(_)));
        assert_eq!(at("echo `cat` "), Context::Plain);
        assert!(matches!(at("echo ${x:-"), Context::Unsupported(_)));
        assert_eq!(at("echo ${x:-a} "), Context::Plain);
        assert!(matches!(at("echo $(( 1 + "), Context::Unsupported(_)));
        assert_eq!(at("echo $(( 1 + (2) )) "), Context::Plain);
        assert_eq!(at("echo $(echo $((1+2)) ) '"), Context::Single);
        assert_eq!(at("echo \"$((1))\" '"), Context::Single);
        assert_eq!(at("echo $( (cd /; ls) ) '"), Context::Single);
        assert!(matches!(
            at("x=$(case a in a) echo "),
            Context::Unsupported("after a `case` inside $(...)")
        ));
        assert_eq!(at("case a in a) echo "), Context::Plain);
    }

    #[test]
    fn comments_and_here_documents() {
        assert_eq!(at("echo a # it's "), Context::Comment);
        assert_eq!(at("echo a # it's\necho '"), Context::Single);
        assert_eq!(at("echo a#b '"), Context::Single);
        assert!(matches!(at("cat <<EOF\nhello "), Context::Unsupported(_)));
        assert!(matches!(at("cat <<'EOF'\nhello "), Context::Unsupported(_)));
        assert_eq!(at("cat <<EOF\nhello\nEOF\necho '"), Context::Single);
        assert_eq!(at("cat <<-EOF\n\thello\n\tEOF\necho "), Context::Plain);
        assert_eq!(at("cat <<EOF; echo '"), Context::Single);
        assert!(matches!(at("cat <<"), Context::Unsupported(_)));
        assert_eq!(at("test 1 -lt 2 && echo "), Context::Plain);
    }
}
