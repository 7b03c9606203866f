//! systemd calendar expressions (`OnCalendar=`, already validated by
//! `model::time`) as Shepherd calendar events.
//!
//! Shepherd's `calendar-event` takes, per component, a list of allowed
//! values (`#:months`, `#:days-of-month`, `#:days-of-week`, `#:hours`,
//! `#:minutes`, `#:seconds`), evaluated in the host's local time. A systemd
//! expression converts exactly when each of its fields is such a set:
//! values, lists, `a..b` ranges and `start[..stop]/step` repetitions are
//! expanded into the explicit list they denote. What a calendar event cannot
//! say is refused, never approximated: a year other than `*`, the
//! end-of-month `~`, `@epoch` timestamps, a time zone suffix (even `UTC`:
//! Shepherd uses local time), and fractions of a second.
//!
//! Weekdays and days of the month together are kept: Shepherd 1.0.9, like
//! systemd, fires only on days that match both (`next-calendar-event` in
//! `shepherd/service/timer.scm` checks both, and `fit-day` intersects
//! them).
//!
//! An event Shepherd can hold is not always one it follows exactly: its
//! `next-calendar-event` fits seconds, minutes, hours, the day and the
//! month in turn, each to its next allowed value, but moving a field
//! forward never starts the fields below it over at their first value, and
//! it sets a day of the month without checking the month has it. So
//! [`exact`] refuses what it would get wrong (every case is held against
//! Shepherd's own code and `systemd-analyze` by the Guix oracle test):
//! below a restricted field, every field must be a single value
//! (`Mon,Wed *-*-* 08..18/2:15` would skip Wednesday 08:15), a month list
//! needs one day of the month and no weekdays, and that day must exist in
//! every month Shepherd can jump to (`*-02-29` would fire on 1 March in
//! common years).
//!
//! The shorthands expand as systemd.time(7) defines them (`weekly` is
//! Monday 00:00:00, `quarterly` is the first of January, April, July and
//! October, …).

use crate::model::time::is_timezone;

/// One calendar event; `None` is "any value".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarEvent {
    pub months: Option<Vec<u32>>,
    pub days_of_month: Option<Vec<u32>>,
    /// Shepherd's weekday symbols, Monday first.
    pub days_of_week: Option<Vec<&'static str>>,
    pub hours: Option<Vec<u32>>,
    pub minutes: Option<Vec<u32>>,
    pub seconds: Option<Vec<u32>>,
}

const WEEKDAYS: [(&str, &str, &str); 7] = [
    ("monday", "mon", "monday"),
    ("tuesday", "tue", "tuesday"),
    ("wednesday", "wed", "wednesday"),
    ("thursday", "thu", "thursday"),
    ("friday", "fri", "friday"),
    ("saturday", "sat", "saturday"),
    ("sunday", "sun", "sunday"),
];

fn shorthand(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "minutely" => "*-*-* *:*:00",
        "hourly" => "*-*-* *:00:00",
        "daily" => "*-*-* 00:00:00",
        "monthly" => "*-*-01 00:00:00",
        "weekly" => "Mon *-*-* 00:00:00",
        "yearly" | "annually" | "anually" => "*-01-01 00:00:00",
        "quarterly" => "*-01,04,07,10-01 00:00:00",
        "semiannually" | "semi-annually" | "biannually" | "bi-annually" => "*-01,07-01 00:00:00",
        _ => return None,
    })
}

/// Converts a validated systemd calendar expression into a calendar event
/// Shepherd follows exactly, or says why it cannot.
pub fn convert(expr: &str) -> Result<CalendarEvent, String> {
    let ev = expand(expr)?;
    exact(&ev)?;
    Ok(ev)
}

/// The calendar event with the same sets of values as `expr`, or why a
/// calendar event cannot hold them; whether Shepherd follows it exactly is
/// [`exact`]'s question.
pub fn expand(expr: &str) -> Result<CalendarEvent, String> {
    let trimmed = expr.trim_end();
    if let Some((_, last)) = trimmed.rsplit_once(' ')
        && (last.eq_ignore_ascii_case("UTC") || is_timezone(last))
    {
        return Err(format!(
            "the time zone `{last}` cannot be expressed: Shepherd timers use the host's local time"
        ));
    }
    let expr = shorthand(trimmed).unwrap_or(trimmed);
    if expr.contains('@') {
        return Err("`@` timestamps cannot be expressed as a recurring Shepherd event".into());
    }
    if expr.contains('~') {
        return Err(
            "`~` (days counted from the end of the month) has no Shepherd equivalent".into(),
        );
    }

    let tokens: Vec<&str> = expr.split(' ').filter(|t| !t.is_empty()).collect();
    let mut i = 0;
    let mut weekday_text = String::new();
    while i < tokens.len() && tokens[i].starts_with(|c: char| c.is_ascii_alphabetic()) {
        weekday_text.push_str(tokens[i]);
        i += 1;
    }
    let mut date = None;
    let mut time = None;
    for t in &tokens[i..] {
        if t.contains(':') {
            time = Some(*t);
        } else {
            date = Some(*t);
        }
    }

    let mut ev = CalendarEvent::default();
    if !weekday_text.is_empty() {
        ev.days_of_week = Some(weekdays(weekday_text.trim_end_matches(','))?);
    }
    if let Some(d) = date {
        let parts: Vec<&str> = d.split('-').collect();
        let (month, day) = match parts.as_slice() {
            [m, d] => (*m, *d),
            [y, m, d] => {
                if *y != "*" {
                    return Err(format!(
                        "the year `{y}` cannot be expressed: Shepherd events repeat every year"
                    ));
                }
                (*m, *d)
            }
            _ => return Err(format!("unexpected date `{d}`")),
        };
        ev.months = chain(month, 1, 12, "month")?;
        ev.days_of_month = chain(day, 1, 31, "day")?;
    }
    match time {
        None => {
            ev.hours = Some(vec![0]);
            ev.minutes = Some(vec![0]);
            ev.seconds = Some(vec![0]);
        }
        Some(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            let (h, m, s) = match parts.as_slice() {
                [h, m] => (*h, *m, "00"),
                [h, m, s] => (*h, *m, *s),
                _ => return Err(format!("unexpected time `{t}`")),
            };
            ev.hours = chain(h, 0, 23, "hour")?;
            ev.minutes = chain(m, 0, 59, "minute")?;
            ev.seconds = Some(seconds(s)?);
        }
    }
    Ok(ev)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// The shortest length of each month (February outside leap years).
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Whether Shepherd 1.0.9's `next-calendar-event` follows `ev` exactly,
/// firing when systemd would; else why not.
pub fn exact(ev: &CalendarEvent) -> Result<(), String> {
    // (field, how many values it allows, whether that is fewer than all),
    // lowest field first.
    fn level(name: &'static str, v: Option<usize>, all: usize) -> (&'static str, usize, bool) {
        let n = v.unwrap_or(all);
        (name, n, n < all)
    }
    let weekdays = ev.days_of_week.as_ref().map(Vec::len);
    let days = ev.days_of_month.as_ref().map(Vec::len);
    let day_level = {
        let restricted = weekdays.is_some_and(|n| n < 7) || days.is_some_and(|n| n < 31);
        let single = weekdays.is_none_or(|n| n == 7) && days == Some(1);
        ("day", if single { 1 } else { 31 }, restricted)
    };
    let levels = [
        level("second", ev.seconds.as_ref().map(Vec::len), 60),
        level("minute", ev.minutes.as_ref().map(Vec::len), 60),
        level("hour", ev.hours.as_ref().map(Vec::len), 24),
        day_level,
        level("month", ev.months.as_ref().map(Vec::len), 12),
    ];
    for (i, &(upper, _, restricted)) in levels.iter().enumerate() {
        if !restricted {
            continue;
        }
        if let Some(&(lower, _, _)) = levels[..i].iter().find(|(_, n, _)| *n != 1) {
            let what = if upper == "month" && lower == "day" {
                "with a list of months, the day must be one day of the month, without weekdays"
                    .to_string()
            } else {
                format!("with the {upper} restricted, the {lower} must be a single value")
            };
            return Err(format!(
                "Shepherd 1.0.9 would not follow it exactly: when it moves to the next matching {upper} it keeps the {lower} it had reached instead of starting over at the first one ({what})"
            ));
        }
    }
    // Moving to the next allowed month (`fit-month`), Shepherd keeps the
    // day of the month without checking the month has it. It moves there
    // only into an allowed month whose previous month is not allowed; from
    // an allowed month it reaches the next by days, which it does check.
    if let (Some(months), Some(days)) = (&ev.months, &ev.days_of_month)
        && months.len() < 12
    {
        for &m in months {
            let previous = if m == 1 { 12 } else { m - 1 };
            if months.contains(&previous) {
                continue;
            }
            let length = MONTH_DAYS[m as usize - 1];
            if let Some(d) = days.iter().find(|&&d| d > length) {
                let month = MONTHS[m as usize - 1];
                return Err(format!(
                    "Shepherd 1.0.9 would not follow it exactly: {month} has no day {d} (in some years), and when Shepherd moves to {month} it keeps day {d} without checking, firing on the first of the next month instead"
                ));
            }
        }
    }
    Ok(())
}

fn weekdays(text: &str) -> Result<Vec<&'static str>, String> {
    let index = |name: &str| -> Result<usize, String> {
        let lower = name.to_ascii_lowercase();
        WEEKDAYS
            .iter()
            .position(|(_, short, long)| lower == *short || lower == *long)
            .ok_or_else(|| format!("unexpected weekday `{name}`"))
    };
    let mut set = [false; 7];
    for part in text.split(',') {
        let range = part.split_once("..").or_else(|| part.split_once('-'));
        match range {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return Err(format!("unexpected weekday range `{part}`"));
                }
                for d in &mut set[a..=b] {
                    *d = true;
                }
            }
            None => set[index(part)?] = true,
        }
    }
    Ok(WEEKDAYS
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|((sym, _, _), _)| *sym)
        .collect())
}

/// A comma-separated chain of `start[..stop][/step]` within `lo..=hi`;
/// `*` is any value.
fn chain(text: &str, lo: u32, hi: u32, field: &str) -> Result<Option<Vec<u32>>, String> {
    if text == "*" {
        return Ok(None);
    }
    let num = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("unexpected {field} value `{s}`"))
    };
    let mut set = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (start, stop) = match range.split_once("..") {
            Some((a, b)) => (num(a)?, Some(num(b)?)),
            None => (num(range)?, None),
        };
        let step = match step {
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("unexpected {field} repetition `{s}`"))?,
            None => 1,
        };
        let last = match (stop, part.contains('/')) {
            (Some(b), _) => b,
            (None, true) => hi,
            (None, false) => start,
        };
        if start > last {
            return Err(format!("unexpected {field} range `{part}`"));
        }
        set.extend((start..=last).step_by(step as usize));
    }
    set.sort_unstable();
    set.dedup();
    Ok(Some(set))
}

/// Seconds: whole seconds only (`05`, `00.000` are fine, `0.5` is not).
fn seconds(text: &str) -> Result<Vec<u32>, String> {
    if text == "*" {
        return Ok((0..=59).collect());
    }
    let mut whole = String::new();
    for part in text.split(',') {
        let mut pieces = Vec::new();
        for (k, piece) in part.split(['/']).enumerate() {
            let mut ends = Vec::new();
            for end in piece.split("..") {
                let (int, frac) = end.split_once('.').unwrap_or((end, ""));
                if !frac.bytes().all(|b| b == b'0') {
                    return Err(format!(
                        "fractions of a second (`{end}`) cannot be expressed: Shepherd events fire on whole seconds"
                    ));
                }
                ends.push(int);
            }
            pieces.push(if k == 0 {
                ends.join("..")
            } else {
                ends.join("")
            });
        }
        if !whole.is_empty() {
            whole.push(',');
        }
        whole.push_str(&pieces.join("/"));
    }
    Ok(chain(&whole, 0, 59, "second")?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> CalendarEvent {
        convert(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn shorthands_expand_like_systemd() {
        let daily = ev("daily");
        assert_eq!(daily.hours, Some(vec![0]));
        assert_eq!(daily.minutes, Some(vec![0]));
        assert_eq!(daily.seconds, Some(vec![0]));
        assert_eq!(daily.days_of_week, None);
        assert_eq!(ev("weekly").days_of_week, Some(vec!["monday"]));
        assert_eq!(ev("Quarterly").months, Some(vec![1, 4, 7, 10]));
        assert_eq!(ev("monthly").days_of_month, Some(vec![1]));
        assert_eq!(ev("hourly").hours, None);
        assert_eq!(ev("minutely").minutes, None);
    }

    #[test]
    fn the_example_schedules_convert_exactly() {
        let e = ev("Sun *-*-* 03:00:00");
        assert_eq!(e.days_of_week, Some(vec!["sunday"]));
        assert_eq!(
            (e.hours, e.minutes, e.seconds),
            (Some(vec![3]), Some(vec![0]), Some(vec![0]))
        );
        let e = ev("*:0/5");
        assert_eq!(e.minutes, Some((0..60).step_by(5).collect()));
        assert_eq!(e.hours, None);
        let e = ev("Mon..Fri 04:30");
        assert_eq!(
            e.days_of_week,
            Some(vec!["monday", "tuesday", "wednesday", "thursday", "friday"])
        );
        assert_eq!(e.days_of_month, None);
        assert_eq!(e.seconds, Some(vec![0]));
        // Both must match, in Shepherd as in systemd.
        let e = ev("Mon..Fri *-*-1..7 04:30");
        assert_eq!(e.days_of_month, Some((1..=7).collect()));
        assert_eq!(e.days_of_week.map(|w| w.len()), Some(5));
        assert_eq!(ev("*-*-* 02:30:00").hours, Some(vec![2]));
    }

    #[test]
    fn lists_ranges_and_steps_expand() {
        let e = ev("Mon,Wed-Fri 8:00");
        assert_eq!(
            e.days_of_week,
            Some(vec!["monday", "wednesday", "thursday", "friday"])
        );
        let e = expand("*-1..12/3-01,15 8..18/2:15,45:00.000").unwrap();
        assert_eq!(e.months, Some(vec![1, 4, 7, 10]));
        assert_eq!(e.days_of_month, Some(vec![1, 15]));
        assert_eq!(e.hours, Some(vec![8, 10, 12, 14, 16, 18]));
        assert_eq!(e.minutes, Some(vec![15, 45]));
        assert_eq!(e.seconds, Some(vec![0]));
        assert_eq!(ev("12-25").months, Some(vec![12]));
        assert_eq!(ev("Mon, 12:00").days_of_week, Some(vec!["monday"]));
        assert_eq!(ev("*:*:*").seconds, Some((0..60).collect()));
    }

    #[test]
    fn what_shepherd_would_not_follow_exactly_is_refused() {
        for (s, why) in [
            (
                "Mon,Wed *-*-* 08..18/2:15",
                "the hour must be a single value",
            ),
            ("Mon *:*", "the minute must be a single value"),
            ("*-*-* 08:15,45", "the minute must be a single value"),
            ("*:0/5:*", "the second must be a single value"),
            ("*-07-*", "one day of the month"),
            ("*-01,07-01,15", "one day of the month"),
            ("*-02-29", "February has no day 29"),
            ("*-04,05-31", "April has no day 31"),
        ] {
            let e = convert(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
            assert!(e.contains("Shepherd 1.0.9"), "{s}: {e}");
            expand(s).unwrap_or_else(|e| panic!("{s} has an event: {e}"));
        }
        for s in [
            "*-*-31",
            "*-01..03-30",
            "*-12-31 23:59:59",
            "Fri *-*-13 00:00",
            "Mon..Fri *-*-29..31 04:30",
            "*:0/15",
            "*-*-* 08,20:00",
            "quarterly",
        ] {
            ev(s);
        }
    }

    #[test]
    fn what_shepherd_cannot_say_is_refused_with_a_reason() {
        for (s, why) in [
            ("daily UTC", "time zone"),
            ("*-*-* 12:00 Europe/Berlin", "time zone"),
            ("2025-*-* 12:00", "year"),
            ("*-02~03", "end of the month"),
            ("@1700000000", "timestamps"),
            ("*:*:0..59/0.5", "fractions"),
        ] {
            let e = convert(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
