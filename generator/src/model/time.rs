//! systemd time spans and calendar expressions, checked the way systemd 257
//! checks them.
//!
//! Manifests carry timeouts and timer schedules that end up verbatim in
//! `TimeoutStartSec=`, `OnCalendar=` and friends. systemd only reads those
//! values when the unit is loaded on the target host, where a typo turns into
//! a unit that refuses to load or a timer that never fires. This module ports
//! the parsers of systemd 257 (`parse_sec()` in `src/basic/time-util.c`,
//! `calendar_spec_from_string()` in `src/shared/calendarspec.c`) so the
//! generator can refuse such values up front and point at the offending byte.
//! `tests/calendar_oracle.rs` keeps the port honest against the real
//! `systemd-analyze`.
//!
//! It must never accept a value systemd rejects, never repair or rewrite what
//! the user wrote (callers emit the original string), and never consult the
//! machine it runs on: no clock, no `$TZ`, no `/usr/share/zoneinfo`. Every
//! input, however hostile, yields `Ok` or `Err` without panicking.
//!
//! Two deliberate narrowings, both because the target host is unknown here:
//! "infinity" is refused as a time span (we never want an endless timeout),
//! and a calendar expression's time zone must be `UTC` or a name from the
//! built-in list of tzdata zones that Debian 13 (trixie) installs by default.
//! systemd also accepts the abbreviation of the host's own local zone (`CET`
//! on a host set to Europe/Berlin) and, where `tzdata-legacy` is installed,
//! old aliases such as `US/Eastern`; we refuse both.

use std::fmt::Write as _;

/// A time value that systemd would refuse, with what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", .offset.map(|o| format!(" (at byte {o})")).unwrap_or_default())]
pub struct TimeError {
    /// What was wrong and what was expected.
    pub message: String,
    /// Byte offset inside the checked string where parsing failed, if known.
    pub offset: Option<usize>,
}

const SPAN_HINT: &str = r#"expected a systemd time span such as "90s", "5m" or "1h 30min""#;
const CALENDAR_HINT: &str = r#"expected a systemd calendar expression such as "daily", "Mon..Fri *-*-* 04:30" or "*-*-01 00:00:00""#;

fn span_error(detail: &str, offset: usize) -> TimeError {
    TimeError {
        message: format!("{detail}: {SPAN_HINT}"),
        offset: Some(offset),
    }
}

fn calendar_error(detail: &str, offset: usize) -> TimeError {
    TimeError {
        message: format!("{detail}: {CALENDAR_HINT}"),
        offset: Some(offset),
    }
}

const USEC_PER_MSEC: u64 = 1_000;
const USEC_PER_SEC: u64 = 1_000_000;
const USEC_PER_MINUTE: u64 = 60 * USEC_PER_SEC;
const USEC_PER_HOUR: u64 = 60 * USEC_PER_MINUTE;
const USEC_PER_DAY: u64 = 24 * USEC_PER_HOUR;
const USEC_PER_WEEK: u64 = 7 * USEC_PER_DAY;
/// 30.44 days, as systemd counts a month.
const USEC_PER_MONTH: u64 = 2_629_800 * USEC_PER_SEC;
/// 365.25 days, as systemd counts a year.
const USEC_PER_YEAR: u64 = 31_557_600 * USEC_PER_SEC;

/// Unit suffixes in systemd's matching order: the first prefix that matches
/// wins, so `min` is tried before `m` and `months` before `M`.
const UNITS: &[(&str, u64)] = &[
    ("seconds", USEC_PER_SEC),
    ("second", USEC_PER_SEC),
    ("sec", USEC_PER_SEC),
    ("s", USEC_PER_SEC),
    ("minutes", USEC_PER_MINUTE),
    ("minute", USEC_PER_MINUTE),
    ("min", USEC_PER_MINUTE),
    ("months", USEC_PER_MONTH),
    ("month", USEC_PER_MONTH),
    ("M", USEC_PER_MONTH),
    ("msec", USEC_PER_MSEC),
    ("ms", USEC_PER_MSEC),
    ("m", USEC_PER_MINUTE),
    ("hours", USEC_PER_HOUR),
    ("hour", USEC_PER_HOUR),
    ("hr", USEC_PER_HOUR),
    ("h", USEC_PER_HOUR),
    ("days", USEC_PER_DAY),
    ("day", USEC_PER_DAY),
    ("d", USEC_PER_DAY),
    ("weeks", USEC_PER_WEEK),
    ("week", USEC_PER_WEEK),
    ("w", USEC_PER_WEEK),
    ("years", USEC_PER_YEAR),
    ("year", USEC_PER_YEAR),
    ("y", USEC_PER_YEAR),
    ("usec", 1),
    ("us", 1),
    ("\u{3bc}s", 1), // GREEK SMALL LETTER MU
    ("\u{b5}s", 1),  // MICRO SIGN
];

/// systemd's WHITESPACE: what `parse_sec()` skips between components.
fn is_span_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// C `isspace()` in the C locale: what `strtol()` skips before a number.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn reject_nul(s: &str, error: fn(&str, usize) -> TimeError) -> Result<(), TimeError> {
    match s.bytes().position(|c| c == 0) {
        Some(at) => Err(error("NUL byte", at)),
        None => Ok(()),
    }
}

/// `strtoll(b + p, &e, 10)`: `Ok((value, e))`, with `e == p` when there are
/// no digits, and `Err(())` on overflow.
fn strtoll(b: &[u8], p: usize) -> Result<(i128, usize), ()> {
    let mut i = p;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = i;
    let mut value: i128 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        value = (value * 10 + i128::from(b[i] - b'0')).min(i128::from(u64::MAX) + 1);
        i += 1;
    }
    if i == digits {
        return Ok((0, p));
    }
    let value = if negative { -value } else { value };
    if value > i128::from(i64::MAX) || value < i128::from(i64::MIN) {
        return Err(());
    }
    Ok((value, i))
}

/// Parses a systemd time span ("90s", "5m", "1h 30min", "2d", "1.5h",
/// "100ms"; a bare number means seconds) into microseconds, exactly like
/// systemd 257's `parse_sec()`, except that "infinity" is refused.
pub fn parse_timespan(s: &str) -> Result<u64, TimeError> {
    reject_nul(s, span_error)?;
    let b = s.as_bytes();
    let skip = |mut p: usize| {
        while p < b.len() && is_span_space(b[p]) {
            p += 1;
        }
        p
    };
    let mut p = skip(0);
    if b[p..].starts_with(b"infinity") {
        let rest = p + "infinity".len();
        if b[rest..].iter().all(|&c| is_span_space(c)) {
            return Err(span_error(
                "\"infinity\" is not allowed here (an endless time span is never wanted)",
                p,
            ));
        }
        return Err(span_error("unexpected characters after \"infinity\"", rest));
    }

    let overflow = |at| span_error("time span too large (the limit is about 584542 years)", at);
    let mut usec: u64 = 0;
    let mut something = false;
    loop {
        p = skip(p);
        if p == b.len() {
            if !something {
                return Err(span_error("empty time span", p));
            }
            return Ok(usec);
        }
        if b[p] == b'-' {
            return Err(span_error("negative time spans are not allowed", p));
        }
        let number_at = p;
        let (l, e) = strtoll(b, p).map_err(|()| overflow(number_at))?;
        if l < 0 {
            return Err(span_error("negative time spans are not allowed", number_at));
        }
        let has_fraction = b.get(e) == Some(&b'.');
        let after_number = if has_fraction {
            let mut q = e + 1;
            while q < b.len() && b[q].is_ascii_digit() {
                q += 1;
            }
            q
        } else if e == p {
            return Err(span_error("expected a number", p));
        } else {
            e
        };

        let unit_at = skip(after_number);
        let unit = UNITS
            .iter()
            .find(|(name, _)| b[unit_at..].starts_with(name.as_bytes()));
        let (multiplier, next) = match unit {
            Some((name, m)) => (*m, unit_at + name.len()),
            None => (USEC_PER_SEC, unit_at),
        };
        if next == after_number && next < b.len() {
            let word: String = s[after_number..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !c.is_ascii_digit())
                .collect();
            return Err(span_error(
                &format!(
                    "unknown time unit {word:?} (use us, ms, s, min, h, d, w, M or y, \
                     or a long form such as \"minutes\")"
                ),
                after_number,
            ));
        }
        p = next;

        // `l` is within 0..=i64::MAX here.
        let l = l as u64;
        if l >= u64::MAX / multiplier {
            return Err(overflow(number_at));
        }
        let k = l * multiplier;
        if k >= u64::MAX - usec {
            return Err(overflow(number_at));
        }
        usec += k;
        something = true;

        if has_fraction {
            let mut m = multiplier / 10;
            let mut d = e + 1;
            while d < b.len() && b[d].is_ascii_digit() {
                let k = u64::from(b[d] - b'0') * m;
                if k >= u64::MAX - usec {
                    return Err(overflow(number_at));
                }
                usec += k;
                d += 1;
                m /= 10;
            }
            if d == e + 1 {
                return Err(span_error("expected digits after the decimal point", d));
            }
        }
    }
}

/// Renders microseconds as systemd's `format_timespan()` does with an
/// accuracy of 1us: 5400000000 -> "1h 30min", 90000000 -> "1min 30s",
/// 1500000 -> "1.500000s". Zero is "0" and `u64::MAX` is "infinity" (which
/// [`parse_timespan`] refuses); every other value parses back unchanged.
pub fn format_timespan(usec: u64) -> String {
    const TABLE: [(&str, u64); 9] = [
        ("y", USEC_PER_YEAR),
        ("month", USEC_PER_MONTH),
        ("w", USEC_PER_WEEK),
        ("d", USEC_PER_DAY),
        ("h", USEC_PER_HOUR),
        ("min", USEC_PER_MINUTE),
        ("s", USEC_PER_SEC),
        ("ms", USEC_PER_MSEC),
        ("us", 1),
    ];
    if usec == u64::MAX {
        return "infinity".into();
    }
    if usec == 0 {
        return "0".into();
    }
    let mut out = String::new();
    let mut t = usec;
    for (suffix, unit) in TABLE {
        if t == 0 {
            break;
        }
        if t < unit {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let (a, b) = (t / unit, t % unit);
        // Below a minute, a remainder is shown as a decimal fraction.
        let decimals = unit.ilog10() as usize;
        if t < USEC_PER_MINUTE && b > 0 && decimals > 0 {
            let _ = write!(out, "{a}.{b:0decimals$}{suffix}");
            break;
        }
        let _ = write!(out, "{a}{suffix}");
        t = b;
    }
    out
}

/// Validates a systemd calendar expression (the `OnCalendar=` syntax of
/// systemd.time(7)) the way systemd 257's `calendar_spec_from_string()`
/// does, on a host whose local time zone is UTC (see the module docs).
pub fn validate_calendar(s: &str) -> Result<(), TimeError> {
    reject_nul(s, calendar_error)?;
    let b = s.as_bytes();
    let mut end = b.len();
    if end >= 4 && b[end - 4..].eq_ignore_ascii_case(b" UTC") {
        end -= 4;
    } else if let Some(space) = s.rfind(' ')
        && is_timezone(&s[space + 1..])
    {
        end = space;
    }
    let p = &b[..end];
    if p.is_empty() {
        return Err(calendar_error("empty calendar expression", 0));
    }
    if SHORTHANDS
        .iter()
        .any(|name| p.eq_ignore_ascii_case(name.as_bytes()))
    {
        return Ok(());
    }
    let mut parser = CalendarParser {
        b: p,
        pos: 0,
        spec: Spec::default(),
    };
    parser.parse()?;
    parser.spec.validate()
}

const SHORTHANDS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "monthly",
    "annually",
    "yearly",
    "anually",
    "weekly",
    "quarterly",
    "biannually",
    "bi-annually",
    "semiannually",
    "semi-annually",
];

const WEEKDAYS: [(&str, u8); 14] = [
    ("Monday", 0),
    ("Mon", 0),
    ("Tuesday", 1),
    ("Tue", 1),
    ("Wednesday", 2),
    ("Wed", 2),
    ("Thursday", 3),
    ("Thu", 3),
    ("Friday", 4),
    ("Fri", 4),
    ("Saturday", 5),
    ("Sat", 5),
    ("Sunday", 6),
    ("Sun", 6),
];

/// The last second systemd can schedule: 2199-12-31 23:59:59 UTC.
const MAX_EPOCH: i64 = 7_258_118_399;
/// systemd refuses chains of more than this many comma-separated values.
const MAX_COMPONENTS: usize = 241;

/// One comma-separated value of a calendar field: `start[..stop][/repeat]`.
#[derive(Debug, Clone, Copy)]
struct Component {
    start: i64,
    /// -1 when there is no `..stop`.
    stop: i64,
    /// 0 when the value does not repeat.
    repeat: i64,
    /// Byte offset of `start`, for error messages.
    at: usize,
}

/// `None` is `*`; seconds are kept in microseconds.
type Chain = Option<Vec<Component>>;

#[derive(Debug, Default)]
struct Spec {
    end_of_month: bool,
    year: Chain,
    month: Chain,
    day: Chain,
    hour: Chain,
    minute: Chain,
    second: Chain,
}

fn constant(value: i64, at: usize) -> Chain {
    Some(vec![Component {
        start: value,
        stop: -1,
        repeat: 0,
        at,
    }])
}

struct CalendarParser<'a> {
    /// The expression without its time zone suffix.
    b: &'a [u8],
    pos: usize,
    spec: Spec,
}

impl CalendarParser<'_> {
    /// The byte at `i`, or 0 past the end, like the C string systemd reads.
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn cur(&self) -> u8 {
        self.at(self.pos)
    }

    fn skip_spaces(&mut self) {
        while self.cur() == b' ' {
            self.pos += 1;
        }
    }

    fn error(&self, detail: &str) -> TimeError {
        calendar_error(detail, self.pos)
    }

    fn unexpected(&self, what: &str) -> TimeError {
        let found = match std::str::from_utf8(&self.b[self.pos..]) {
            Ok(rest) if !rest.is_empty() => {
                format!("got {:?}", rest.chars().next().unwrap_or_default())
            }
            Ok(_) => "got the end".into(),
            Err(_) => "got a stray byte".into(),
        };
        self.error(&format!("expected {what}, {found}"))
    }

    fn parse(&mut self) -> Result<(), TimeError> {
        self.parse_weekdays()?;
        if !self.parse_date()? {
            self.parse_time()?;
        }
        if self.cur() != 0 {
            return Err(self.unexpected("the end of the expression"));
        }
        Ok(())
    }

    fn parse_weekdays(&mut self) -> Result<(), TimeError> {
        let mut range_from: Option<u8> = None;
        let mut first = true;
        loop {
            let rest = &self.b[self.pos..];
            let found = WEEKDAYS.iter().find(|(name, _)| {
                rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            });
            let Some(&(name, nr)) = found else {
                if first {
                    return Ok(());
                }
                return Err(self.unexpected("a weekday name such as \"Mon\" or \"Monday\""));
            };
            if !matches!(
                self.at(self.pos + name.len()),
                0 | b'-' | b'.' | b',' | b' '
            ) {
                self.pos += name.len();
                return Err(self.unexpected("\",\", \"..\" or a space after the weekday"));
            }
            if range_from.is_some_and(|from| from > nr) {
                return Err(
                    self.error("weekday ranges run from Monday to Sunday (Sat..Mon is refused)")
                );
            }
            self.pos += name.len();
            match self.cur() {
                0 => return Ok(()),
                b' ' => {
                    self.skip_spaces();
                    return Ok(());
                }
                b'.' => {
                    if range_from.is_some() || self.at(self.pos + 1) != b'.' {
                        return Err(self.unexpected("\",\" or a space after the weekday range"));
                    }
                    range_from = Some(nr);
                    self.pos += 2;
                }
                b'-' => {
                    if range_from.is_some() {
                        return Err(self.unexpected("\",\" or a space after the weekday range"));
                    }
                    range_from = Some(nr);
                    self.pos += 1;
                }
                _ => {
                    // ','
                    range_from = None;
                    self.pos += 1;
                }
            }
            if matches!(self.cur(), 0 | b' ') {
                if range_from.is_some() {
                    return Err(self.error("weekday range without an end"));
                }
                self.skip_spaces();
                return Ok(());
            }
            first = false;
        }
    }

    /// Returns true when the date was an `@epoch`, which also fixes the time.
    fn parse_date(&mut self) -> Result<bool, TimeError> {
        if self.cur() == 0 {
            return Ok(false);
        }
        if self.cur() == b'@' {
            self.pos += 1;
            self.parse_epoch()?;
            return Ok(true);
        }
        let start = self.pos;
        let first = self.parse_chain(false)?;
        if matches!(self.cur(), 0 | b':') {
            // That was the hour of a time, not a date.
            self.pos = start;
            return Ok(false);
        }
        self.date_separator()?;
        let second = self.parse_chain(false)?;
        if matches!(self.cur(), 0 | b' ') {
            self.skip_spaces();
            self.spec.month = first;
            self.spec.day = second;
            return Ok(false);
        }
        if self.spec.end_of_month {
            return Err(self.error("\"~\" may only separate the month from the day"));
        }
        self.date_separator()?;
        let third = self.parse_chain(false)?;
        if !matches!(self.cur(), 0 | b' ') {
            return Err(self.unexpected("a space between the date and the time"));
        }
        self.skip_spaces();
        self.spec.year = first;
        self.spec.month = second;
        self.spec.day = third;
        Ok(false)
    }

    fn date_separator(&mut self) -> Result<(), TimeError> {
        match self.cur() {
            b'~' => self.spec.end_of_month = true,
            b'-' => {}
            _ => {
                return Err(
                    self.unexpected("\"-\" or \"~\" between date fields, or \":\" in a time")
                );
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `@SECONDS`, read like `strtoul()`: leading white space and a sign are
    /// allowed, and a negative number wraps around.
    fn parse_epoch(&mut self) -> Result<(), TimeError> {
        let number_at = self.pos;
        let mut i = self.pos;
        while is_c_space(self.at(i)) {
            i += 1;
        }
        let negative = match self.at(i) {
            b'-' => {
                i += 1;
                true
            }
            b'+' => {
                i += 1;
                false
            }
            _ => false,
        };
        let digits = i;
        let mut value: Option<u64> = Some(0);
        while self.at(i).is_ascii_digit() {
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(self.at(i) - b'0')));
            i += 1;
        }
        if i == digits {
            return Err(self.error("expected seconds since the epoch after \"@\""));
        }
        let out_of_range = calendar_error(
            "\"@\" timestamps must lie between 1970-01-01 and 2199-12-31 23:59:59 UTC",
            number_at,
        );
        let value = value.ok_or_else(|| out_of_range.clone())?;
        let time = (if negative {
            value.wrapping_neg()
        } else {
            value
        }) as i64;
        if !(0..=MAX_EPOCH).contains(&time) {
            return Err(out_of_range);
        }
        self.pos = i;
        Ok(())
    }

    fn parse_time(&mut self) -> Result<(), TimeError> {
        if self.cur() == 0 {
            self.spec.hour = constant(0, self.pos);
            self.spec.minute = constant(0, self.pos);
            self.spec.second = constant(0, self.pos);
            return Ok(());
        }
        let hour = self.parse_chain(false)?;
        if self.cur() != b':' {
            return Err(self.unexpected("\":\" after the hour"));
        }
        self.pos += 1;
        let minute = self.parse_chain(false)?;
        let second = if self.cur() == 0 {
            constant(0, self.pos)
        } else {
            if self.cur() != b':' {
                return Err(self.unexpected("\":\" after the minute, or the end"));
            }
            self.pos += 1;
            let second = self.parse_chain(true)?;
            if self.cur() != 0 {
                return Err(self.unexpected("the end of the expression after the seconds"));
            }
            second
        };
        self.spec.hour = hour;
        self.spec.minute = minute;
        self.spec.second = second;
        Ok(())
    }

    fn parse_chain(&mut self, usec: bool) -> Result<Chain, TimeError> {
        if self.cur() == b'*' {
            let at = self.pos;
            self.pos += 1;
            return Ok(if usec {
                Some(vec![Component {
                    start: 0,
                    stop: -1,
                    repeat: USEC_PER_SEC as i64,
                    at,
                }])
            } else {
                None
            });
        }
        let mut chain = Vec::new();
        loop {
            if chain.len() >= MAX_COMPONENTS {
                return Err(self.error(&format!(
                    "too many comma-separated values (at most {MAX_COMPONENTS})"
                )));
            }
            chain.push(self.parse_component(usec)?);
            if self.cur() != b',' {
                return Ok(Some(chain));
            }
            self.pos += 1;
        }
    }

    fn parse_component(&mut self, usec: bool) -> Result<Component, TimeError> {
        let at = self.pos;
        let start = self.parse_decimal(usec)?;
        let mut stop = -1;
        let mut repeat = 0;
        if self.cur() == b'.' && self.at(self.pos + 1) == b'.' {
            self.pos += 2;
            stop = self.parse_decimal(usec)?;
            repeat = if usec { USEC_PER_SEC as i64 } else { 1 };
        }
        if self.cur() == b'/' {
            self.pos += 1;
            let repeat_at = self.pos;
            repeat = self.parse_decimal(usec)?;
            if repeat == 0 {
                return Err(calendar_error(
                    "the repetition after \"/\" must not be zero",
                    repeat_at,
                ));
            }
        } else if usec && stop >= 0 && start + repeat > stop {
            return Err(calendar_error(
                "a range of seconds must span at least one second unless it has a \"/\" repetition",
                at,
            ));
        }
        if !matches!(self.cur(), 0 | b' ' | b',' | b'-' | b'~' | b':') {
            return Err(self.unexpected("\",\", \"..\", \"/\" or the next field"));
        }
        Ok(Component {
            start,
            stop,
            repeat,
            at,
        })
    }

    /// A decimal number; in the seconds field it may have a fraction and is
    /// returned in microseconds.
    fn parse_decimal(&mut self, usec: bool) -> Result<i64, TimeError> {
        let at = self.pos;
        if !self.cur().is_ascii_digit() {
            return Err(self.unexpected("a number or \"*\""));
        }
        let too_large = || calendar_error("number too large", at);
        let mut value: Option<u64> = Some(0);
        while self.cur().is_ascii_digit() {
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(self.cur() - b'0')));
            self.pos += 1;
        }
        let mut value = value.ok_or_else(too_large)?;
        if usec {
            value = value.checked_mul(USEC_PER_SEC).ok_or_else(too_large)?;
            if self.cur() == b'.' && self.at(self.pos + 1) != b'.' {
                self.pos += 1;
                let fraction = self.parse_fraction()?;
                value = value.checked_add(fraction).ok_or_else(too_large)?;
            }
        }
        if value > i32::MAX as u64 {
            return Err(too_large());
        }
        Ok(value as i64)
    }

    /// Six digits of a fraction, rounded on the seventh (systemd's
    /// `parse_fractional_part_u()`).
    fn parse_fraction(&mut self) -> Result<u64, TimeError> {
        let mut value = 0;
        for i in 0..6 {
            if !self.cur().is_ascii_digit() {
                if i == 0 {
                    return Err(self.unexpected("digits after the decimal point"));
                }
                value *= 10u64.pow(6 - i);
                break;
            }
            value = value * 10 + u64::from(self.cur() - b'0');
            self.pos += 1;
        }
        if matches!(self.cur(), b'5'..=b'9') {
            value += 1;
        }
        while self.cur().is_ascii_digit() {
            self.pos += 1;
        }
        Ok(value)
    }
}

impl Spec {
    /// systemd's `calendar_spec_normalize()` followed by
    /// `calendar_spec_valid()`.
    fn validate(mut self) -> Result<(), TimeError> {
        if self.day.is_none() {
            self.end_of_month = false;
        }
        for c in self.year.iter_mut().flatten() {
            // Two-digit years: 0..69 are 2000..2069, 70..99 are 1970..1999.
            for v in [&mut c.start, &mut c.stop] {
                match *v {
                    0..70 => *v += 2000,
                    70..100 => *v += 1900,
                    _ => {}
                }
            }
        }
        let eom = self.end_of_month;
        let fields: [(&mut Chain, &str, i64, i64, bool); 6] = [
            (&mut self.year, "year", 1970, 2199, false),
            (&mut self.month, "month", 1, 12, false),
            (&mut self.day, "day", 1, 31, eom),
            (&mut self.hour, "hour", 0, 23, false),
            (&mut self.minute, "minute", 0, 59, false),
            (
                &mut self.second,
                "second",
                0,
                60 * USEC_PER_SEC as i64 - 1,
                false,
            ),
        ];
        for (chain, name, from, mut to, eom) in fields {
            let Some(chain) = chain else { continue };
            chain.iter_mut().for_each(normalize);
            chain.sort_by_key(|c| (c.start, c.stop, c.repeat));
            chain.dedup_by_key(|c| (c.start, c.stop, c.repeat));
            for (i, c) in chain.iter().enumerate() {
                // systemd allows days up to 28 back from the end of the month
                // and, quirkily, 3 fewer for every further value of the list
                // (in ascending order): "*-*~1,20" passes, "*-*~1,28" fails.
                if eom {
                    to -= 3;
                }
                check_component(c, name, from, to, eom, i > 0)?;
            }
        }
        Ok(())
    }
}

/// Shortens `stop` to the last value the repetition reaches; a range that
/// reaches only its start becomes that single value.
fn normalize(c: &mut Component) {
    if c.stop > c.start && c.repeat > 0 {
        c.stop -= (c.stop - c.start) % c.repeat;
    }
    if (c.stop > c.start && c.repeat > 0 && c.start + c.repeat > c.stop) || c.start == c.stop {
        c.repeat = 0;
        c.stop = -1;
    }
}

fn check_component(
    c: &Component,
    name: &str,
    from: i64,
    to: i64,
    eom: bool,
    later_in_list: bool,
) -> Result<(), TimeError> {
    let seconds = name == "second";
    let show = |v: i64| {
        if seconds && v % USEC_PER_SEC as i64 != 0 {
            format!("{}.{:06}", v / USEC_PER_SEC as i64, v % USEC_PER_SEC as i64)
        } else if seconds {
            format!("{}", v / USEC_PER_SEC as i64)
        } else {
            format!("{v}")
        }
    };
    let bounds = if eom && later_in_list {
        format!(
            "{name} counted from the end of the month must be between {from} and {to} here \
             (systemd lowers the limit of 28 by 3 for every further value of a \"~\" list)"
        )
    } else if eom {
        format!("{name} counted from the end of the month must be between {from} and {to}")
    } else {
        format!("{name} must be between {} and {}", show(from), show(to))
    };
    let fail = |detail: String| Err(calendar_error(&detail, c.at));
    if c.start < from || c.start > to {
        return fail(format!("{bounds}, got {}", show(c.start)));
    }
    if c.repeat > to - from {
        return fail(format!(
            "{name} repetition /{} is longer than the whole range",
            show(c.repeat)
        ));
    }
    if c.stop >= 0 {
        if c.stop < from || c.stop > to {
            return fail(format!("{bounds}, got a range ending at {}", show(c.stop)));
        }
        if c.start + c.repeat > c.stop {
            return fail(format!(
                "{name} range {}..{} ends before it starts",
                show(c.start),
                show(c.stop)
            ));
        }
    } else if eom && c.start - c.repeat < from {
        return fail(format!(
            "{name} repetition /{} from {} goes past the start of the month",
            show(c.repeat),
            show(c.start)
        ));
    } else if !eom && c.start + c.repeat > to {
        return fail(format!(
            "{name} repetition {}/{} never repeats within {}..{}",
            show(c.start),
            show(c.repeat),
            show(from),
            show(to)
        ));
    }
    Ok(())
}

/// systemd's `timezone_is_valid()`: "UTC", or a zone file under
/// `/usr/share/zoneinfo`. The file check is replaced by the list below.
pub(crate) fn is_timezone(name: &str) -> bool {
    name == "UTC" || TIMEZONES.binary_search(&name).is_ok()
}

/// Every name whose `/usr/share/zoneinfo` file is a TZif file on Debian 13
/// with tzdata 2026c (sorted bytewise for binary search). Regenerate with:
/// `cd /usr/share/zoneinfo && find -L . -type f | sed 's|^\./||' | LC_ALL=C sort`,
/// keeping the files that start with "TZif" and match `^[A-Za-z0-9_+/-]+$`.
#[rustfmt::skip]
const TIMEZONES: &[&str] = &[
    "Africa/Abidjan", "Africa/Accra", "Africa/Addis_Ababa", "Africa/Algiers", "Africa/Asmara",
    "Africa/Bamako", "Africa/Bangui", "Africa/Banjul", "Africa/Bissau", "Africa/Blantyre",
    "Africa/Brazzaville", "Africa/Bujumbura", "Africa/Cairo", "Africa/Casablanca", "Africa/Ceuta",
    "Africa/Conakry", "Africa/Dakar", "Africa/Dar_es_Salaam", "Africa/Djibouti", "Africa/Douala",
    "Africa/El_Aaiun", "Africa/Freetown", "Africa/Gaborone", "Africa/Harare",
    "Africa/Johannesburg", "Africa/Juba", "Africa/Kampala", "Africa/Khartoum", "Africa/Kigali",
    "Africa/Kinshasa", "Africa/Lagos", "Africa/Libreville", "Africa/Lome", "Africa/Luanda",
    "Africa/Lubumbashi", "Africa/Lusaka", "Africa/Malabo", "Africa/Maputo", "Africa/Maseru",
    "Africa/Mbabane", "Africa/Mogadishu", "Africa/Monrovia", "Africa/Nairobi", "Africa/Ndjamena",
    "Africa/Niamey", "Africa/Nouakchott", "Africa/Ouagadougou", "Africa/Porto-Novo",
    "Africa/Sao_Tome", "Africa/Timbuktu", "Africa/Tripoli", "Africa/Tunis", "Africa/Windhoek",
    "America/Adak", "America/Anchorage", "America/Anguilla", "America/Antigua",
    "America/Araguaina", "America/Argentina/Buenos_Aires", "America/Argentina/Catamarca",
    "America/Argentina/Cordoba", "America/Argentina/Jujuy", "America/Argentina/La_Rioja",
    "America/Argentina/Mendoza", "America/Argentina/Rio_Gallegos", "America/Argentina/Salta",
    "America/Argentina/San_Juan", "America/Argentina/San_Luis", "America/Argentina/Tucuman",
    "America/Argentina/Ushuaia", "America/Aruba", "America/Asuncion", "America/Atikokan",
    "America/Atka", "America/Bahia", "America/Bahia_Banderas", "America/Barbados", "America/Belem",
    "America/Belize", "America/Blanc-Sablon", "America/Boa_Vista", "America/Bogota",
    "America/Boise", "America/Cambridge_Bay", "America/Campo_Grande", "America/Cancun",
    "America/Caracas", "America/Cayenne", "America/Cayman", "America/Chicago", "America/Chihuahua",
    "America/Ciudad_Juarez", "America/Coral_Harbour", "America/Costa_Rica", "America/Coyhaique",
    "America/Creston", "America/Cuiaba", "America/Curacao", "America/Danmarkshavn",
    "America/Dawson", "America/Dawson_Creek", "America/Denver", "America/Detroit",
    "America/Dominica", "America/Edmonton", "America/Eirunepe", "America/El_Salvador",
    "America/Ensenada", "America/Fort_Nelson", "America/Fortaleza", "America/Glace_Bay",
    "America/Goose_Bay", "America/Grand_Turk", "America/Grenada", "America/Guadeloupe",
    "America/Guatemala", "America/Guayaquil", "America/Guyana", "America/Halifax",
    "America/Havana", "America/Hermosillo", "America/Indiana/Indianapolis", "America/Indiana/Knox",
    "America/Indiana/Marengo", "America/Indiana/Petersburg", "America/Indiana/Tell_City",
    "America/Indiana/Vevay", "America/Indiana/Vincennes", "America/Indiana/Winamac",
    "America/Inuvik", "America/Iqaluit", "America/Jamaica", "America/Juneau",
    "America/Kentucky/Louisville", "America/Kentucky/Monticello", "America/Kralendijk",
    "America/La_Paz", "America/Lima", "America/Los_Angeles", "America/Lower_Princes",
    "America/Maceio", "America/Managua", "America/Manaus", "America/Marigot", "America/Martinique",
    "America/Matamoros", "America/Mazatlan", "America/Menominee", "America/Merida",
    "America/Metlakatla", "America/Mexico_City", "America/Miquelon", "America/Moncton",
    "America/Monterrey", "America/Montevideo", "America/Montreal", "America/Montserrat",
    "America/Nassau", "America/New_York", "America/Nipigon", "America/Nome", "America/Noronha",
    "America/North_Dakota/Beulah", "America/North_Dakota/Center", "America/North_Dakota/New_Salem",
    "America/Nuuk", "America/Ojinaga", "America/Panama", "America/Pangnirtung",
    "America/Paramaribo", "America/Phoenix", "America/Port-au-Prince", "America/Port_of_Spain",
    "America/Porto_Acre", "America/Porto_Velho", "America/Puerto_Rico", "America/Punta_Arenas",
    "America/Rainy_River", "America/Rankin_Inlet", "America/Recife", "America/Regina",
    "America/Resolute", "America/Rio_Branco", "America/Santa_Isabel", "America/Santarem",
    "America/Santiago", "America/Santo_Domingo", "America/Sao_Paulo", "America/Scoresbysund",
    "America/Shiprock", "America/Sitka", "America/St_Barthelemy", "America/St_Johns",
    "America/St_Kitts", "America/St_Lucia", "America/St_Thomas", "America/St_Vincent",
    "America/Swift_Current", "America/Tegucigalpa", "America/Thule", "America/Thunder_Bay",
    "America/Tijuana", "America/Toronto", "America/Tortola", "America/Vancouver", "America/Virgin",
    "America/Whitehorse", "America/Winnipeg", "America/Yakutat", "America/Yellowknife",
    "Antarctica/Casey", "Antarctica/Davis", "Antarctica/DumontDUrville", "Antarctica/Macquarie",
    "Antarctica/Mawson", "Antarctica/McMurdo", "Antarctica/Palmer", "Antarctica/Rothera",
    "Antarctica/Syowa", "Antarctica/Troll", "Antarctica/Vostok", "Arctic/Longyearbyen",
    "Asia/Aden", "Asia/Almaty", "Asia/Amman", "Asia/Anadyr", "Asia/Aqtau", "Asia/Aqtobe",
    "Asia/Ashgabat", "Asia/Atyrau", "Asia/Baghdad", "Asia/Bahrain", "Asia/Baku", "Asia/Bangkok",
    "Asia/Barnaul", "Asia/Beirut", "Asia/Bishkek", "Asia/Brunei", "Asia/Chita", "Asia/Chongqing",
    "Asia/Colombo", "Asia/Damascus", "Asia/Dhaka", "Asia/Dili", "Asia/Dubai", "Asia/Dushanbe",
    "Asia/Famagusta", "Asia/Gaza", "Asia/Harbin", "Asia/Hebron", "Asia/Ho_Chi_Minh",
    "Asia/Hong_Kong", "Asia/Hovd", "Asia/Irkutsk", "Asia/Istanbul", "Asia/Jakarta",
    "Asia/Jayapura", "Asia/Jerusalem", "Asia/Kabul", "Asia/Kamchatka", "Asia/Karachi",
    "Asia/Kashgar", "Asia/Kathmandu", "Asia/Khandyga", "Asia/Kolkata", "Asia/Krasnoyarsk",
    "Asia/Kuala_Lumpur", "Asia/Kuching", "Asia/Kuwait", "Asia/Macau", "Asia/Magadan",
    "Asia/Makassar", "Asia/Manila", "Asia/Muscat", "Asia/Nicosia", "Asia/Novokuznetsk",
    "Asia/Novosibirsk", "Asia/Omsk", "Asia/Oral", "Asia/Phnom_Penh", "Asia/Pontianak",
    "Asia/Pyongyang", "Asia/Qatar", "Asia/Qostanay", "Asia/Qyzylorda", "Asia/Riyadh",
    "Asia/Sakhalin", "Asia/Samarkand", "Asia/Seoul", "Asia/Shanghai", "Asia/Singapore",
    "Asia/Srednekolymsk", "Asia/Taipei", "Asia/Tashkent", "Asia/Tbilisi", "Asia/Tehran",
    "Asia/Tel_Aviv", "Asia/Thimphu", "Asia/Tokyo", "Asia/Tomsk", "Asia/Ulaanbaatar", "Asia/Urumqi",
    "Asia/Ust-Nera", "Asia/Vientiane", "Asia/Vladivostok", "Asia/Yakutsk", "Asia/Yangon",
    "Asia/Yekaterinburg", "Asia/Yerevan", "Atlantic/Azores", "Atlantic/Bermuda", "Atlantic/Canary",
    "Atlantic/Cape_Verde", "Atlantic/Faroe", "Atlantic/Jan_Mayen", "Atlantic/Madeira",
    "Atlantic/Reykjavik", "Atlantic/South_Georgia", "Atlantic/St_Helena", "Atlantic/Stanley",
    "Australia/Adelaide", "Australia/Brisbane", "Australia/Broken_Hill", "Australia/Canberra",
    "Australia/Currie", "Australia/Darwin", "Australia/Eucla", "Australia/Hobart",
    "Australia/Lindeman", "Australia/Lord_Howe", "Australia/Melbourne", "Australia/Perth",
    "Australia/Sydney", "Australia/Yancowinna", "Etc/GMT", "Etc/GMT+0", "Etc/GMT+1", "Etc/GMT+10",
    "Etc/GMT+11", "Etc/GMT+12", "Etc/GMT+2", "Etc/GMT+3", "Etc/GMT+4", "Etc/GMT+5", "Etc/GMT+6",
    "Etc/GMT+7", "Etc/GMT+8", "Etc/GMT+9", "Etc/GMT-0", "Etc/GMT-1", "Etc/GMT-10", "Etc/GMT-11",
    "Etc/GMT-12", "Etc/GMT-13", "Etc/GMT-14", "Etc/GMT-2", "Etc/GMT-3", "Etc/GMT-4", "Etc/GMT-5",
    "Etc/GMT-6", "Etc/GMT-7", "Etc/GMT-8", "Etc/GMT-9", "Etc/GMT0", "Etc/Greenwich", "Etc/UCT",
    "Etc/UTC", "Etc/Universal", "Etc/Zulu", "Europe/Amsterdam", "Europe/Andorra",
    "Europe/Astrakhan", "Europe/Athens", "Europe/Belfast", "Europe/Belgrade", "Europe/Berlin",
    "Europe/Bratislava", "Europe/Brussels", "Europe/Bucharest", "Europe/Budapest",
    "Europe/Busingen", "Europe/Chisinau", "Europe/Copenhagen", "Europe/Dublin", "Europe/Gibraltar",
    "Europe/Guernsey", "Europe/Helsinki", "Europe/Isle_of_Man", "Europe/Istanbul", "Europe/Jersey",
    "Europe/Kaliningrad", "Europe/Kirov", "Europe/Kyiv", "Europe/Lisbon", "Europe/Ljubljana",
    "Europe/London", "Europe/Luxembourg", "Europe/Madrid", "Europe/Malta", "Europe/Mariehamn",
    "Europe/Minsk", "Europe/Monaco", "Europe/Moscow", "Europe/Nicosia", "Europe/Oslo",
    "Europe/Paris", "Europe/Podgorica", "Europe/Prague", "Europe/Riga", "Europe/Rome",
    "Europe/Samara", "Europe/San_Marino", "Europe/Sarajevo", "Europe/Saratov", "Europe/Simferopol",
    "Europe/Skopje", "Europe/Sofia", "Europe/Stockholm", "Europe/Tallinn", "Europe/Tirane",
    "Europe/Tiraspol", "Europe/Ulyanovsk", "Europe/Vaduz", "Europe/Vatican", "Europe/Vienna",
    "Europe/Vilnius", "Europe/Volgograd", "Europe/Warsaw", "Europe/Zagreb", "Europe/Zurich",
    "Factory", "GMT", "Indian/Antananarivo", "Indian/Chagos", "Indian/Christmas", "Indian/Cocos",
    "Indian/Comoro", "Indian/Kerguelen", "Indian/Mahe", "Indian/Maldives", "Indian/Mauritius",
    "Indian/Mayotte", "Indian/Reunion", "Pacific/Apia", "Pacific/Auckland", "Pacific/Bougainville",
    "Pacific/Chatham", "Pacific/Chuuk", "Pacific/Easter", "Pacific/Efate", "Pacific/Fakaofo",
    "Pacific/Fiji", "Pacific/Funafuti", "Pacific/Galapagos", "Pacific/Gambier",
    "Pacific/Guadalcanal", "Pacific/Guam", "Pacific/Honolulu", "Pacific/Johnston",
    "Pacific/Kanton", "Pacific/Kiritimati", "Pacific/Kosrae", "Pacific/Kwajalein",
    "Pacific/Majuro", "Pacific/Marquesas", "Pacific/Midway", "Pacific/Nauru", "Pacific/Niue",
    "Pacific/Norfolk", "Pacific/Noumea", "Pacific/Pago_Pago", "Pacific/Palau", "Pacific/Pitcairn",
    "Pacific/Pohnpei", "Pacific/Port_Moresby", "Pacific/Rarotonga", "Pacific/Saipan",
    "Pacific/Samoa", "Pacific/Tahiti", "Pacific/Tarawa", "Pacific/Tongatapu", "Pacific/Wake",
    "Pacific/Wallis", "Pacific/Yap", "UTC", "localtime", "posixrules",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span(s: &str) -> u64 {
        parse_timespan(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn span_err(s: &str) -> TimeError {
        parse_timespan(s).expect_err(s)
    }

    fn calendar_ok(s: &str) -> bool {
        validate_calendar(s).is_ok()
    }

    #[test]
    fn a_bare_number_means_seconds() {
        assert_eq!(span("90"), 90 * USEC_PER_SEC);
        assert_eq!(span("0"), 0);
        assert_eq!(span("1.5"), 1_500_000);
    }

    #[test]
    fn every_unit_spelling_is_understood() {
        for (s, want) in [
            ("7us", 7),
            ("7usec", 7),
            ("7\u{3bc}s", 7),
            ("7\u{b5}s", 7),
            ("7ms", 7_000),
            ("7msec", 7_000),
            ("7s", 7 * USEC_PER_SEC),
            ("7sec", 7 * USEC_PER_SEC),
            ("7second", 7 * USEC_PER_SEC),
            ("7seconds", 7 * USEC_PER_SEC),
            ("7m", 7 * USEC_PER_MINUTE),
            ("7min", 7 * USEC_PER_MINUTE),
            ("7minute", 7 * USEC_PER_MINUTE),
            ("7minutes", 7 * USEC_PER_MINUTE),
            ("7h", 7 * USEC_PER_HOUR),
            ("7hr", 7 * USEC_PER_HOUR),
            ("7hour", 7 * USEC_PER_HOUR),
            ("7hours", 7 * USEC_PER_HOUR),
            ("7d", 7 * USEC_PER_DAY),
            ("7day", 7 * USEC_PER_DAY),
            ("7days", 7 * USEC_PER_DAY),
            ("7w", 7 * USEC_PER_WEEK),
            ("7week", 7 * USEC_PER_WEEK),
            ("7weeks", 7 * USEC_PER_WEEK),
            ("7M", 7 * USEC_PER_MONTH),
            ("7month", 7 * USEC_PER_MONTH),
            ("7months", 7 * USEC_PER_MONTH),
            ("7y", 7 * USEC_PER_YEAR),
            ("7year", 7 * USEC_PER_YEAR),
            ("7years", 7 * USEC_PER_YEAR),
        ] {
            assert_eq!(span(s), want, "{s}");
        }
    }

    #[test]
    fn components_add_up_with_or_without_spaces() {
        assert_eq!(span("1h 30min"), 5_400_000_000);
        assert_eq!(span("1h30min"), 5_400_000_000);
        assert_eq!(span(" 1 h  30 min "), 5_400_000_000);
        assert_eq!(span("1h30"), USEC_PER_HOUR + 30 * USEC_PER_SEC);
        assert_eq!(span("5 5"), 10 * USEC_PER_SEC);
    }

    #[test]
    fn fractions_scale_with_their_unit() {
        assert_eq!(span("1.5h"), 90 * USEC_PER_MINUTE);
        assert_eq!(span(".5s"), 500_000);
        assert_eq!(span("12.34 .56"), 12_900_000);
        assert_eq!(span("1.9999999us"), 1);
    }

    #[test]
    fn infinity_is_refused_and_the_message_says_why() {
        let e = span_err(" infinity ");
        assert!(e.message.contains("\"infinity\" is not allowed"), "{e}");
        assert_eq!(e.offset, Some(1));
        assert!(span_err("infinityx").message.contains("after \"infinity\""));
    }

    #[test]
    fn empty_negative_and_garbage_spans_are_refused_with_an_offset() {
        assert_eq!(span_err("").offset, Some(0));
        assert_eq!(span_err("   ").offset, Some(3));
        assert!(span_err("-5s").message.contains("negative"));
        assert!(span_err("-0").message.contains("negative"));
        let e = span_err("5 parsecs");
        assert!(e.message.contains("expected a number"), "{e}");
        let e = span_err("5x");
        assert!(e.message.contains("unknown time unit \"x\""), "{e}");
        assert_eq!(e.offset, Some(1));
        for s in [
            "5mins", "5secs", "5hrs", "12.34.56", ".", "5.", "5.s", "1H", "0x10",
        ] {
            assert!(parse_timespan(s).is_err(), "{s} should be refused");
        }
        assert!(span_err("5\0s").message.contains("NUL"));
    }

    #[test]
    fn values_near_u64_max_overflow_cleanly() {
        assert_eq!(span("9223372036854775807us"), i64::MAX as u64);
        for s in [
            "9223372036854775808us",
            "18446744073709551614",
            "600000y",
            "99999999999999999999999",
        ] {
            assert!(span_err(s).message.contains("too large"), "{s}");
        }
    }

    #[test]
    fn spans_render_like_systemd_analyze() {
        for (usec, want) in [
            (0, "0"),
            (1, "1us"),
            (100_000, "100ms"),
            (1_500, "1.500ms"),
            (1_500_000, "1.500000s"),
            (59_500_000, "59.500000s"),
            (61_500_000, "1min 1.500000s"),
            (90_000_000, "1min 30s"),
            (5_400_000_000, "1h 30min"),
            (USEC_PER_MONTH, "1month"),
            (USEC_PER_YEAR + 2 * USEC_PER_MONTH, "1y 2month"),
            (i64::MAX as u64, "292271y 1w 1d 10h 54.775807s"),
            (u64::MAX, "infinity"),
        ] {
            assert_eq!(format_timespan(usec), want, "{usec}");
        }
    }

    #[test]
    fn the_calendar_shorthands_are_accepted_in_any_case() {
        for s in SHORTHANDS {
            assert!(calendar_ok(s), "{s}");
            assert!(calendar_ok(&s.to_uppercase()), "{s}");
        }
        assert!(calendar_ok("daily UTC"));
        assert!(calendar_ok("weekly Europe/Berlin"));
        for s in [
            "daily ",
            " daily",
            "now",
            "today",
            "tomorrow",
            "yesterday",
            "fortnightly",
        ] {
            assert!(!calendar_ok(s), "{s:?} should be refused");
        }
    }

    #[test]
    fn normalized_forms_and_their_abbreviations_are_accepted() {
        for s in [
            "Mon..Fri *-*-1..7 04:30",
            "Sun *-*-* 03:00:00",
            "*-*-* *:00/15",
            "Mon,Wed *-*-01 00:00",
            "*-02~03",
            "2025-*-* 12:00 UTC",
            "@1700000000",
            "Mon-Fri",
            "Mon,",
            "Mon, 12:00",
            "12-25",
            "12:00",
            "*:*:0..59/0.5",
            "*-*-* 23:59:59.999999",
            "*-*-* 0..23/2:0..59/15:0..59/30",
            "1970..2199/230-01-01",
            "*-*-* 12:00:00 Etc/GMT+5",
            "*-02-30",
        ] {
            assert!(calendar_ok(s), "{s}: {:?}", validate_calendar(s));
        }
    }

    #[test]
    fn weekday_lists_must_be_well_formed() {
        for s in [
            "Sat..Mon",
            "Mon..",
            "Monx",
            "Tues",
            "Mon..Wed..Fri",
            "Mon ,Tue",
            "Mon,12:00",
            "Funday",
        ] {
            assert!(!calendar_ok(s), "{s} should be refused");
        }
        let e = validate_calendar("Sat..Mon").unwrap_err();
        assert!(e.message.contains("Monday to Sunday"), "{e}");
        assert_eq!(e.offset, Some(5));
    }

    #[test]
    fn out_of_range_fields_are_refused_with_the_field_named() {
        for (s, field, at) in [
            ("25:00", "hour", 0),
            ("*-13-01", "month", 2),
            ("*-*-* 12:60", "minute", 9),
            ("*-*-* 12:00:60", "second", 12),
            ("1969-01-01", "year", 0),
            ("*-*~29", "day", 4),
            ("*:50/10", "minute", 2),
        ] {
            let e = validate_calendar(s).expect_err(s);
            assert!(e.message.contains(field), "{s}: {e}");
            assert_eq!(e.offset, Some(at), "{s}: {e}");
        }
    }

    #[test]
    fn trailing_junk_and_foreign_syntax_are_refused() {
        for s in [
            "",
            "UTC",
            "*",
            "*/15",
            "12",
            "12:00 ",
            "12:00  UTC",
            "daily Z",
            "daily +01:00",
            "12:00 CET",
            "daily US/Eastern",
            "daily europe/berlin",
            "2025-01-01T12:00",
            "*-*-* 12:00:00 x",
            "Mon\t12:00",
            "*:00,",
            "*:00/0",
            "@-1",
            "@7258118400",
            "@123 ",
            "*-*-*\u{a0}12:00",
            "d\u{e4}ily",
            "12:00\0",
        ] {
            assert!(!calendar_ok(s), "{s:?} should be refused");
        }
    }

    #[test]
    fn chains_hold_at_most_241_values() {
        let chain = |n: usize| {
            (0..n)
                .map(|i| (i % 60).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(calendar_ok(&format!("*:{}", chain(241))));
        let e = validate_calendar(&format!("*:{}", chain(242))).unwrap_err();
        assert!(e.message.contains("too many"), "{e}");
    }

    #[test]
    fn the_timezone_list_is_sorted_for_binary_search() {
        assert!(TIMEZONES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_timezone("Europe/Berlin") && is_timezone("UTC") && !is_timezone("Mars/Olympus"));
    }

    #[test]
    fn errors_display_their_offset() {
        let e = validate_calendar("*-13-01").unwrap_err();
        assert!(e.to_string().ends_with("(at byte 2)"), "{e}");
    }

    proptest! {
        #[test]
        fn formatted_spans_parse_back_to_the_same_microseconds(v in 0u64..100 * USEC_PER_YEAR) {
            prop_assert_eq!(parse_timespan(&format_timespan(v)), Ok(v));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
            let _ = parse_timespan(&s);
            let _ = validate_calendar(&s);
        }

        #[test]
        fn calendar_like_noise_never_panics(s in "[0-9*.,:~/@ -]{0,30}") {
            let _ = validate_calendar(&s);
        }
    }
}
