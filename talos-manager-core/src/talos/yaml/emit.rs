//! go-yaml v3 style emission: 4-space indentation, indented sequences, go-yaml's quoting.
//!
//! Keys are written in the order the tree holds them; callers sort free-form maps with
//! [`natural_less`] first (the schema's canonicalisation does that).

use std::cmp::Ordering;

use super::Value;

const INDENT: usize = 4;

/// Emits one document the way go-yaml v3 with a 4-space indent does (no leading `---`, one
/// trailing newline).
pub fn emit_document(value: &Value) -> String {
    let mut out = String::new();
    emit_root(value, &mut out);
    out
}

thread_local! {
    /// Whether YAML 1.1 compatibility strings get single quotes (see [`emit_documents_v4`]).
    static SINGLE_QUOTE_COMPAT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Emits several documents as [`emit_documents`] does, but quoting the way go.yaml.in/yaml/v4
/// v4.0.0-rc.6 (Talos 1.14's encoder) does: strings that are plain strings in YAML 1.2 but were
/// booleans, base-60 numbers or the merge key in YAML 1.1 (`off`, `yes`, `1:20`, `<<`) get
/// single quotes instead of go-yaml v3's double quotes.
pub fn emit_documents_v4(documents: &[Value]) -> String {
    SINGLE_QUOTE_COMPAT.with(|flag| flag.set(true));
    let out = emit_documents(documents);
    SINGLE_QUOTE_COMPAT.with(|flag| flag.set(false));
    out
}

/// Emits several documents separated by `---` lines, as Talos joins a multi-document config.
pub fn emit_documents(documents: &[Value]) -> String {
    let mut out = String::new();
    for (doc_idx, document) in documents.iter().enumerate() {
        if doc_idx > 0 {
            out.push_str("---\n");
        }
        emit_root(document, &mut out);
    }
    out
}

fn emit_root(value: &Value, out: &mut String) {
    match value {
        Value::Map(map) if !map.is_empty() => write_mapping(map, 0, false, out),
        Value::Seq(seq) if !seq.is_empty() => write_sequence(seq, 0, false, out),
        scalar => {
            match scalar {
                // A block scalar cannot stand alone at the root; quote it.
                Value::Str(s) if s.contains('\n') => write_double_quoted(s, out),
                _ => write_scalar(scalar, 0, 0, out),
            }
            out.push('\n');
        }
    }
}

/// The indentation of a nested block: go-yaml moves to the next multiple of the indent width.
fn nested_indent(indent: usize) -> usize {
    INDENT * ((indent + INDENT) / INDENT)
}

fn write_mapping(map: &[(String, Value)], indent: usize, inline_first: bool, out: &mut String) {
    for (entry_idx, (key, value)) in map.iter().enumerate() {
        if !(inline_first && entry_idx == 0) {
            push_spaces(out, indent);
        }
        write_key(key, out);
        out.push(':');
        match value {
            Value::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                write_mapping(inner, nested_indent(indent), false, out);
            }
            Value::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_sequence(inner, nested_indent(indent), false, out);
            }
            scalar => {
                out.push(' ');
                write_scalar(scalar, nested_indent(indent), indent, out);
                out.push('\n');
            }
        }
    }
}

fn write_sequence(seq: &[Value], indent: usize, inline_first: bool, out: &mut String) {
    for (item_idx, item) in seq.iter().enumerate() {
        if !(inline_first && item_idx == 0) {
            push_spaces(out, indent);
        }
        out.push_str("- ");
        match item {
            // Inside a sequence item the first nested indent only skips the "- " indicator.
            Value::Map(inner) if !inner.is_empty() => write_mapping(inner, indent + 2, true, out),
            Value::Seq(inner) if !inner.is_empty() => write_sequence(inner, indent + 2, true, out),
            scalar => {
                write_scalar(scalar, indent + 2, indent, out);
                out.push('\n');
            }
        }
    }
}

fn push_spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a scalar (or an empty collection, which go-yaml prints in flow style). `indent` is the
/// indentation of a literal block's lines, `parent` that of the key or dash it belongs to.
fn write_scalar(value: &Value, indent: usize, parent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float(*f)),
        Value::Str(s) => write_string(s, indent, parent, out),
        Value::Seq(_) => out.push_str("[]"),
        Value::Map(_) => out.push_str("{}"),
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which go-yaml uses.
fn format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Shortest round-trip digits and decimal exponent, e.g. "1.5e3".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // With the shortest precision Go switches to the exponent form outside 1e-4 ..< 1e6.
    if !(-4..6).contains(&exponent) {
        return go_exponent_form(sign, &digits, exponent);
    }
    let point = exponent + 1;
    if point <= 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        )
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{sign}{int}.{frac}")
    }
}

fn go_exponent_form(sign: &str, digits: &str, exponent: i32) -> String {
    let (first, rest) = digits.split_at(1);
    let mantissa = if rest.is_empty() {
        first.to_owned()
    } else {
        format!("{first}.{rest}")
    };
    let exp_sign = if exponent < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
}

/// A string as go-yaml would write it as a plain, quoted or (multi-line) literal scalar.
pub fn emit_scalar(s: &str) -> String {
    let mut out = String::new();
    write_string(s, INDENT, 0, &mut out);
    out
}

enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// Keys are simple keys, where block scalars are not allowed: multi-line keys get double quotes.
fn write_key(key: &str, out: &mut String) {
    if key.contains('\n') {
        write_double_quoted(key, out);
    } else {
        write_string(key, 0, 0, out);
    }
}

fn write_string(s: &str, indent: usize, parent: usize, out: &mut String) {
    match string_style(s) {
        Style::Plain => out.push_str(s),
        Style::SingleQuoted => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Style::DoubleQuoted => write_double_quoted(s, out),
        Style::Literal => write_literal(s, indent, indent.saturating_sub(parent), out),
    }
}

fn string_style(s: &str) -> Style {
    if s.contains('\n') {
        // A space before a line break, a trailing space or an unprintable character rule out
        // the literal block; go-yaml falls back to double quotes then.
        let literal_allowed =
            !s.chars().any(is_special_char) && !s.contains(" \n") && !s.ends_with(' ');
        return if literal_allowed {
            Style::Literal
        } else {
            Style::DoubleQuoted
        };
    }
    if SINGLE_QUOTE_COMPAT.with(std::cell::Cell::get) && is_yaml11_compat_string(s) {
        return Style::SingleQuoted;
    }
    if resolves_to_non_string(s) {
        return Style::DoubleQuoted;
    }
    if s.chars().any(is_special_char) {
        return Style::DoubleQuoted;
    }
    if plain_allowed(s) {
        Style::Plain
    } else {
        Style::SingleQuoted
    }
}

/// Characters go-yaml refuses to print outside double quotes (it only prints line breaks and
/// printable characters; a tab is not printable to it).
fn is_special_char(c: char) -> bool {
    match c {
        '\n' => false,
        '\u{feff}' | '\u{2028}' | '\u{2029}' => true,
        c => c.is_control(),
    }
}

/// Strings yaml/v4 rc.6 quotes only for YAML 1.1 readers: its `isOldBool`, `isBase60Float`
/// and `looksLikeMerge`.
fn is_yaml11_compat_string(s: &str) -> bool {
    const OLD: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", "<<",
    ];
    OLD.contains(&s) || is_base60_float(s)
}

/// Whether a plain scalar would read back as something other than this string.
fn resolves_to_non_string(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".inf",
        ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
        ".NAN", "<<", // YAML 1.1 booleans, which go-yaml still quotes for older readers.
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    KEYWORDS.contains(&s) || is_number(s) || is_base60_float(s) || is_timestamp(s)
}

fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let radix_digits = |digits: &str, radix: u32| {
        !digits.is_empty()
            && digits.chars().all(|c| c == '_' || c.is_digit(radix))
            && digits.chars().any(|c| c.is_digit(radix))
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return radix_digits(hex, 16);
    }
    if let Some(oct) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        return radix_digits(oct, 8);
    }
    if let Some(bin) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        return radix_digits(bin, 2);
    }
    is_decimal_float(body)
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` on an unsigned text.
fn is_decimal_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(idx) => (&s[..idx], Some(&s[idx + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exponent_ok
}

/// YAML 1.1 sexagesimal numbers such as `1:20`, which go-yaml quotes.
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (body, _) = match body.split_once('.') {
        Some((b, frac)) => (b, frac.chars().all(|c| c.is_ascii_digit() || c == '_')),
        None => (body, true),
    };
    let mut parts = body.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
        && first.chars().all(|c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && rest.iter().all(|p| {
            (1..=2).contains(&p.len())
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || p.as_bytes()[0] <= b'5')
        })
        && s.split_once('.')
            .is_none_or(|(_, frac)| frac.chars().all(|c| c.is_ascii_digit() || c == '_'))
}

/// Dates and date-times in the layouts go-yaml resolves to timestamps (`2001-12-14`,
/// `2001-12-14T21:59:43Z`, …).
fn is_timestamp(s: &str) -> bool {
    let bytes = s.as_bytes();
    let digits = |from: usize, to: usize| {
        to <= bytes.len() && from < to && bytes[from..to].iter().all(u8::is_ascii_digit)
    };
    if !(digits(0, 4) && bytes.get(4) == Some(&b'-')) {
        return false;
    }
    let rest = &s[5..];
    let mut fields = rest.splitn(3, ['-', 'T', 't', ' ']);
    let month = fields.next().unwrap_or("");
    let day_and_more = rest.get(month.len() + 1..).unwrap_or("");
    let day: String = day_and_more
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let month_ok = (1..=2).contains(&month.len()) && month.chars().all(|c| c.is_ascii_digit());
    let day_ok = (1..=2).contains(&day.len());
    if !(month_ok && day_ok && rest.as_bytes().get(month.len()) == Some(&b'-')) {
        return false;
    }
    let tail = &day_and_more[day.len()..];
    tail.is_empty()
        || (tail.starts_with(['T', 't', ' '])
            && tail[1..].chars().next().is_some_and(|c| c.is_ascii_digit())
            && tail.contains(':'))
}

/// go-yaml's scalar analysis for block context: can this string be written without quotes?
fn plain_allowed(s: &str) -> bool {
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.first().is_some_and(|c| *c == ' ') || chars.last().is_some_and(|c| *c == ' ') {
        return false;
    }
    for (idx, &c) in chars.iter().enumerate() {
        let followed_by_blank = chars.get(idx + 1).is_none_or(|n| *n == ' ' || *n == '\t');
        let preceded_by_blank = idx > 0 && (chars[idx - 1] == ' ' || chars[idx - 1] == '\t');
        if c == '\t' {
            return false;
        }
        if idx == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => return false,
                '?' | ':' | '-' if followed_by_blank => return false,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_blank => return false,
                '#' if preceded_by_blank => return false,
                _ => {}
            }
        }
    }
    true
}

fn write_double_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let escape = match c {
            '\0' => Some('0'),
            '\u{7}' => Some('a'),
            '\u{8}' => Some('b'),
            '\t' => Some('t'),
            '\n' => Some('n'),
            '\u{b}' => Some('v'),
            '\u{c}' => Some('f'),
            '\r' => Some('r'),
            '\u{1b}' => Some('e'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\u{85}' => Some('N'),
            '\u{a0}' => Some('_'),
            '\u{2028}' => Some('L'),
            '\u{2029}' => Some('P'),
            _ => None,
        };
        match escape {
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None if is_special_char(c) => {
                let code = c as u32;
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02X}"));
                } else if code <= 0xffff {
                    out.push_str(&format!("\\u{code:04X}"));
                } else {
                    out.push_str(&format!("\\U{code:08X}"));
                }
            }
            None => out.push(c),
        }
    }
    out.push('"');
}

fn write_literal(s: &str, indent: usize, indicator: usize, out: &mut String) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        // The indentation indicator counts from the parent's indentation.
        out.push_str(&indicator.to_string());
    }
    let trailing_newlines = s.len() - s.trim_end_matches('\n').len();
    match trailing_newlines {
        0 => out.push('-'),
        // Only a string of line breaks keeps its single break with `+`.
        1 if s.len() > 1 => {}
        _ => out.push('+'),
    }
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            push_spaces(out, indent);
            out.push_str(line);
        }
    }
}

/// go-yaml's "natural" key order: letters by code point, digit runs by numeric value, and a
/// non-letter before a letter except right after a digit.
pub fn natural_less(a: &str, b: &str) -> bool {
    natural_cmp(a, b) == Ordering::Less
}

fn natural_cmp(a: &str, b: &str) -> Ordering {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut after_digit = false;
    for idx in 0..a.len().min(b.len()) {
        let (ca, cb) = (a[idx], b[idx]);
        if ca == cb {
            after_digit = ca.is_numeric();
            continue;
        }
        let (a_letter, b_letter) = (ca.is_alphabetic(), cb.is_alphabetic());
        if a_letter && b_letter {
            return ca.cmp(&cb);
        }
        if a_letter || b_letter {
            // Exactly one is a letter.
            let a_first = if after_digit { a_letter } else { b_letter };
            return if a_first {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        // Two non-letters: compare digit runs by value.
        let mut a_num: u128 = 0;
        let mut b_num: u128 = 0;
        if ca == '0' || cb == '0' {
            // A zero continuing a number with a non-zero digit earlier is not a leading zero.
            let continues_number = a[..idx]
                .iter()
                .rev()
                .take_while(|c| c.is_numeric())
                .any(|c| *c != '0');
            if continues_number {
                a_num = 1;
                b_num = 1;
            }
        }
        let a_end = run_end(&a, idx);
        let b_end = run_end(&b, idx);
        for c in &a[idx..a_end] {
            a_num = a_num.saturating_mul(10).saturating_add(digit(*c));
        }
        for c in &b[idx..b_end] {
            b_num = b_num.saturating_mul(10).saturating_add(digit(*c));
        }
        if a_num != b_num {
            return a_num.cmp(&b_num);
        }
        if a_end != b_end {
            return a_end.cmp(&b_end);
        }
        return ca.cmp(&cb);
    }
    a.len().cmp(&b.len())
}

fn run_end(chars: &[char], from: usize) -> usize {
    chars[from..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map_or(chars.len(), |n| from + n)
}

fn digit(c: char) -> u128 {
    c.to_digit(10).map_or(0, u128::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_scalar(s: &str, expect: &str) {
        let mut out = String::new();
        write_string(s, 4, 0, &mut out);
        assert_eq!(out, expect, "emitting {s:?}");
    }

    #[test]
    fn yaml_v4_single_quotes_yaml_1_1_words_only() {
        let doc = Value::Map(
            ["off", "yes", "1:20", "<<", "true", "", "262144", "plain"]
                .iter()
                .map(|s| ((*s).to_owned(), Value::str(*s)))
                .collect(),
        );
        assert_eq!(
            emit_documents_v4(std::slice::from_ref(&doc)),
            "'off': 'off'\n'yes': 'yes'\n'1:20': '1:20'\n'<<': '<<'\n\"true\": \"true\"\n\"\": \"\"\n\"262144\": \"262144\"\nplain: plain\n"
        );
        // The flag is reset: go-yaml v3 quoting again.
        assert_eq!(emit_scalar("off"), "\"off\"");
    }

    #[test]
    fn quoting_follows_go_yaml() {
        check_scalar("", "\"\"");
        check_scalar("262144", "\"262144\"");
        check_scalar("true", "\"true\"");
        check_scalar("yes", "\"yes\"");
        check_scalar("1:20", "\"1:20\"");
        check_scalar("2001-12-14", "\"2001-12-14\"");
        check_scalar("1.5e3", "\"1.5e3\"");
        check_scalar("!system_disk", "'!system_disk'");
        check_scalar("*.example.com", "'*.example.com'");
        check_scalar("a: b", "'a: b'");
        check_scalar("trailing:", "'trailing:'");
        check_scalar("it's 1", "it's 1");
        check_scalar("it's #1", "'it''s #1'");
        check_scalar("a#b", "a#b");
        check_scalar("/dev/nvme0n1", "/dev/nvme0n1");
        check_scalar("https://10.0.0.1:6443", "https://10.0.0.1:6443");
        check_scalar("10.244.0.0/16", "10.244.0.0/16");
        check_scalar("::/0", "::/0");
        check_scalar(": x", "': x'");
        check_scalar("- x", "'- x'");
        check_scalar("fe80::1", "fe80::1");
        check_scalar("disk.wwid == 'x'", "disk.wwid == 'x'");
    }

    #[test]
    fn special_strings() {
        check_scalar("a\tb", "\"a\\tb\"");
        check_scalar("line \nnext", "\"line \\nnext\"");
        check_scalar("bell\u{7}", "\"bell\\a\"");
        check_scalar("two\nlines", "|-\n    two\n    lines");
        check_scalar(" indented\n", "|4\n     indented");
    }

    #[test]
    fn literal_blocks_read_back() {
        for text in ["\nA", "\n", "\n\n", " x\ny", "a\n\n", "a\nb\n"] {
            let value = Value::Map(vec![
                ("k".into(), Value::str(text)),
                ("l".into(), Value::Seq(vec![Value::str(text)])),
                (text.into(), Value::Null),
            ]);
            let yaml = emit_document(&value);
            assert_eq!(
                super::super::parse(&yaml).unwrap(),
                value,
                "{text:?} as\n{yaml}"
            );
        }
    }

    #[test]
    fn floats_like_go() {
        for (f, expect) in [
            (1.5, "1.5"),
            (2.0, "2"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
            (1234567.0, "1.234567e+06"),
        ] {
            assert_eq!(format_float(f), expect, "{f}");
        }
    }

    #[test]
    fn natural_order() {
        let mut keys = vec!["a10", "a2", "b", "aB", "a_", "A", "a1b", "a1_"];
        keys.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(keys, ["A", "a_", "a1b", "a1_", "a2", "a10", "aB", "b"]);
    }

    #[test]
    fn nested_layout() {
        let value = super::super::parse(
            "a:\n  b: [1, {c: d, e: [f]}]\n  g: {}\n  h: []\n  i: \"x\\ny\\n\"\n",
        )
        .unwrap();
        assert_eq!(
            emit_document(&value),
            "a:\n    b:\n        - 1\n        - c: d\n          e:\n            - f\n    g: {}\n    h: []\n    i: |\n        x\n        y\n"
        );
    }
}
