//! The text Postgres stores for a value a phase wrote in another form.
//!
//! Postgres reads many spellings of one value and prints one: a
//! timestamptz with an offset comes back in UTC (the session's time zone,
//! see `types::SESSION_SETTINGS`), an array with spaces or needless quotes
//! comes back without them, a uuid in capitals in lower case. The push
//! compares what Postgres holds with the rehearsed rows byte for byte, so a
//! rehearsal that kept the plan's spelling would pass and the push refuse
//! late (or a receipt record what Postgres does not hold). Where the
//! canonical text is exact, the rehearsal rewrites the staged value to it
//! and reports both; where Postgres would round, the value is named.

/// The text Postgres prints for `text` written to a column of `pg_type`
/// (array elements separated by `delimiter`): `Ok(None)` when `text` is
/// already that text or not a form this knows (the check that every value
/// is one Postgres prints names it then), `Err(why)` when Postgres would
/// store a different value (rounding), not just a different spelling.
pub fn canonical_text(
    pg_type: &str,
    delimiter: char,
    text: &str,
) -> Result<Option<String>, String> {
    let canonical = canonical_value(pg_type, delimiter, text)?;
    Ok(canonical.filter(|c| c != text))
}

fn canonical_value(pg_type: &str, delimiter: char, text: &str) -> Result<Option<String>, String> {
    if let Some(element) = pg_type.strip_suffix("[]") {
        // `box` elements hold commas and parentheses of their own.
        if element == "box" {
            return Ok(None);
        }
        return canonical_array(element, delimiter, text);
    }
    // `timestamp(3) with time zone`: the typmod sits inside the name.
    let precision = pg_type
        .split_once('(')
        .and_then(|(_, m)| m.split_once(')'))
        .and_then(|(p, _)| p.trim().parse::<usize>().ok());
    match without_typmod(pg_type).as_str() {
        "timestamp with time zone" => canonical_timestamp(text, true, precision.unwrap_or(6)),
        "timestamp without time zone" => canonical_timestamp(text, false, precision.unwrap_or(6)),
        "numeric" => Ok(canonical_numeric(
            text,
            crate::types::typmod(pg_type).get(1).copied(),
        )),
        "uuid" => Ok(canonical_uuid(text)),
        "boolean" => Ok(canonical_bool(text).map(|b| if b { "t" } else { "f" }.to_string())),
        "smallint" | "integer" | "bigint" => Ok(text
            .trim()
            .trim_start_matches('+')
            .parse::<i64>()
            .ok()
            .map(|i| i.to_string())),
        "double precision" => canonical_float(text, false).map(Some),
        "real" => canonical_float(text, true).map(Some),
        "interval" => canonical_interval(text, precision.unwrap_or(6)).map(Some),
        "time without time zone" => canonical_time(text, false, precision.unwrap_or(6)).map(Some),
        "time with time zone" => canonical_time(text, true, precision.unwrap_or(6)).map(Some),
        "inet" => canonical_inet(text, false).map(Some),
        "cidr" => canonical_inet(text, true).map(Some),
        "bytea" => canonical_bytea(text).map(Some),
        "tsvector" => canonical_tsvector(text).map(Some),
        "macaddr" => Ok(canonical_macaddr(text, 6)),
        "macaddr8" => Ok(canonical_macaddr(text, 8)),
        "int4range" | "int8range" | "daterange" | "numrange" | "tsrange" | "tstzrange" => {
            canonical_range(without_typmod(pg_type).as_str(), text)
        }
        "int4multirange" | "int8multirange" | "datemultirange" => {
            canonical_multirange(without_typmod(pg_type).as_str(), text)
        }
        "\"char\"" => Ok(Some(canonical_char(text))),
        t if unqualified(t) == "hstore" => canonical_hstore(text).map(Some),
        t if unqualified(t) == "cube" => canonical_cube(text).map(Some),
        // `interval day to second`, `interval year`: Postgres truncates to
        // the fields, and reads a bare number in the last one.
        fielded if fielded.starts_with("interval ") => {
            let plain = canonical_interval(text, precision.unwrap_or(6))?;
            match plain == text {
                true => Ok(None),
                false => Err(format!(
                    "'{text}' is not written as Postgres prints an {pg_type} value, and what \
                     Postgres makes of it depends on the fields; write it as Postgres prints \
                     it ('{plain}' if that is the value meant)"
                )),
            }
        }
        _ => Ok(None),
    }
}

/// A `double precision` (`real` when `single`) as Postgres prints it with
/// `extra_float_digits` above 0 (`types::SESSION_SETTINGS`): the shortest
/// digits that read back as the same value, in fixed notation for decimal
/// exponents from -4 up to 14 (up to 5 for `real`), else `1.5e+15`;
/// `NaN`, `Infinity`, `-Infinity`, `-0`. A value outside the type's range,
/// or a form Postgres reads but Rust does not (hex), is an error naming it.
fn canonical_float(text: &str, single: bool) -> Result<String, String> {
    let t = text.trim();
    let type_name = if single { "real" } else { "double precision" };
    let refused = || {
        format!(
            "'{text}' is not a {type_name} this tool can read; write a decimal such as 1000, \
             0.1, 1.5e-05, NaN, Infinity or -Infinity"
        )
    };
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    let special = matches!(unsigned, "nan" | "inf" | "infinity");
    if !special
        && !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return Err(refused());
    }
    // Shortest round-trip digits and decimal exponent of the value, as the
    // type holds it (`{:e}` prints exactly those, like Postgres's Ryu).
    let (value_text, infinite, zero) = if single {
        let v: f32 = t.parse().map_err(|_| refused())?;
        (format!("{v:e}"), v.is_infinite(), v == 0.0)
    } else {
        let v: f64 = t.parse().map_err(|_| refused())?;
        (format!("{v:e}"), v.is_infinite(), v == 0.0)
    };
    if unsigned == "nan" {
        return Ok("NaN".into());
    }
    if infinite {
        if !special {
            return Err(format!("'{text}' is out of range for type {type_name}"));
        }
        return Ok(if t.starts_with('-') {
            "-Infinity"
        } else {
            "Infinity"
        }
        .into());
    }
    let mantissa_digits = t
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .bytes()
        .any(|b| (b'1'..=b'9').contains(&b));
    if zero && mantissa_digits {
        return Err(format!("'{text}' is out of range for type {type_name}"));
    }
    let (mantissa, exp) = value_text.split_once('e').ok_or_else(refused)?;
    let exp: i32 = exp.parse().map_err(|_| refused())?;
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let fixed_below = if single { 6 } else { 15 };
    let out = if (-4..fixed_below).contains(&exp) {
        if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{esign}{:02}", exp.abs())
    };
    Ok(format!("{sign}{out}"))
}

/// The months, days and microseconds of an interval in the forms
/// [`canonical_interval`] reads, or why it cannot be read.
pub(crate) fn interval_fields(text: &str) -> Result<(i128, i128, i128), String> {
    let refused = |what: &str| {
        format!(
            "'{text}' is an interval this tool cannot read ({what}); write it as Postgres \
             prints one, such as '1 year 2 mons 3 days 04:05:06.5' or '-1 days +02:00:00'"
        )
    };
    const US: i128 = 1_000_000;
    let mut months: i128 = 0;
    let mut days: i128 = 0;
    let mut micros: i128 = 0;
    let mut tokens: Vec<String> = Vec::new();
    // `1day`, `+2hours`: a number and its unit may touch.
    for word in text.split_whitespace() {
        let split = word
            .char_indices()
            .find(|(i, c)| *i > 0 && c.is_ascii_alphabetic() && !word[..*i].contains(':'))
            .map(|(i, _)| i);
        match split {
            Some(i) if word[..i].bytes().any(|b| b.is_ascii_digit()) => {
                tokens.push(word[..i].to_string());
                tokens.push(word[i..].to_string());
            }
            _ => tokens.push(word.to_string()),
        }
    }
    let mut tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if tokens.first() == Some(&"@") {
        tokens.remove(0);
    }
    let ago = tokens.last().is_some_and(|t| t.eq_ignore_ascii_case("ago"));
    if ago {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(refused("no fields"));
    }
    // A signed decimal as (sign, whole part, fraction digits).
    let decimal = |s: &str| -> Option<(i128, i128, String)> {
        let (sign, s) = match s.as_bytes().first()? {
            b'-' => (-1, &s[1..]),
            b'+' => (1, &s[1..]),
            _ => (1, s),
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || int.len() > 18 {
            return None;
        }
        Some((sign, int.parse().unwrap_or(0), frac.to_string()))
    };
    // `whole.frac` times `unit` microseconds, exactly, or why not.
    let scaled = |(sign, int, frac): (i128, i128, String), unit: i128| -> Result<i128, String> {
        let den = 10i128
            .checked_pow(frac.len() as u32)
            .ok_or("too many digits")?;
        let f: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| "digits")?
        };
        let part = f * unit;
        if part % den != 0 {
            return Err("a fraction of a microsecond, which Postgres rounds".into());
        }
        Ok(sign * (int * unit + part / den))
    };
    let mut i = 0;
    let mut seen_time = false;
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            if seen_time {
                return Err(refused("two times of day"));
            }
            seen_time = true;
            let (sign, body) = match tok.as_bytes()[0] {
                b'-' => (-1, &tok[1..]),
                b'+' => (1, &tok[1..]),
                _ => (1, tok),
            };
            let parts: Vec<&str> = body.split(':').collect();
            let num = |s: &str| {
                (!s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<i128>().ok())
                    .flatten()
            };
            let (h, m) = match (
                parts.first().and_then(|p| num(p)),
                parts.get(1).and_then(|p| num(p)),
            ) {
                (Some(h), Some(m)) if m < 60 && parts[1].len() <= 2 => (h, m),
                _ => return Err(refused("a time of day that is not H:MM[:SS]")),
            };
            let s = match parts.get(2) {
                None => 0,
                Some(sec) => {
                    let d = decimal(sec).filter(|d| d.0 == 1 && d.1 < 60);
                    let d = d.ok_or_else(|| refused("seconds that are not 0 to 59"))?;
                    scaled(d, US).map_err(|w| refused(&w))?
                }
            };
            if parts.len() > 3 {
                return Err(refused("a time of day that is not H:MM[:SS]"));
            }
            micros += sign * ((h * 3600 + m * 60) * US + s);
            i += 1;
            continue;
        }
        let Some(number) = decimal(tok) else {
            return Err(refused(&format!("'{tok}' is not a number")));
        };
        let unit = tokens.get(i + 1).map(|u| u.to_ascii_lowercase());
        let has_fraction = !number.2.is_empty();
        // A bare number counts seconds, as in Postgres.
        let (unit, step) = match unit.as_deref() {
            Some(u) if u.bytes().all(|b| b.is_ascii_alphabetic()) => (u.to_string(), 2),
            _ => ("second".to_string(), 1),
        };
        let micro_unit = match unit.as_str() {
            "microsecond" | "microseconds" | "usec" | "usecs" | "us" => Some(1),
            "millisecond" | "milliseconds" | "msec" | "msecs" | "ms" => Some(1000),
            "second" | "seconds" | "sec" | "secs" | "s" => Some(US),
            "minute" | "minutes" | "min" | "mins" | "m" => Some(60 * US),
            "hour" | "hours" | "hr" | "hrs" | "h" => Some(3600 * US),
            _ => None,
        };
        let day_unit = match unit.as_str() {
            "day" | "days" | "d" => Some(1),
            "week" | "weeks" | "w" => Some(7),
            _ => None,
        };
        let month_unit = match unit.as_str() {
            "month" | "months" | "mon" | "mons" => Some(1),
            "year" | "years" | "yr" | "yrs" | "y" => Some(12),
            "decade" | "decades" => Some(120),
            "century" | "centuries" => Some(1200),
            "millennium" | "millennia" => Some(12000),
            _ => None,
        };
        if let Some(u) = micro_unit {
            micros += scaled(number, u).map_err(|w| refused(&w))?;
        } else if let Some(u) = day_unit {
            // A fraction of a day goes to the time, whole days stay days.
            let in_micros = scaled(number, u * 86400 * US).map_err(|w| refused(&w))?;
            let whole = in_micros / (86400 * US);
            days += whole;
            micros += in_micros - whole * 86400 * US;
        } else if let Some(u) = month_unit {
            if has_fraction {
                return Err(refused("a fraction of a month or year"));
            }
            months += number.0 * number.1 * u;
        } else {
            return Err(refused(&format!("unknown unit '{unit}'")));
        }
        i += step;
    }
    if ago {
        (months, days, micros) = (-months, -days, -micros);
    }
    let fits = |v: i128, max: i128| (-max..=max).contains(&v);
    if !fits(months, i32::MAX as i128)
        || !fits(days, i32::MAX as i128)
        || !fits(micros, i64::MAX as i128)
    {
        return Err(format!("'{text}' is out of range for type interval"));
    }
    Ok((months, days, micros))
}

/// An interval in the `postgres` IntervalStyle (`types::SESSION_SETTINGS`):
/// `1 year 2 mons -3 days +04:05:06.5`. Reads the forms Postgres prints and
/// the verbose ones (`1.5 days`, `90 minutes`, `2 weeks`, `@ 1 day ago`,
/// `1:30`, a bare number of seconds); other forms (ISO 8601 `P1D`, SQL
/// `1-2`, fractions of months or years, which Postgres spreads over days
/// by its own rules) are an error telling the form to write.
fn canonical_interval(text: &str, precision: usize) -> Result<String, String> {
    const US: i128 = 1_000_000;
    let (months, days, micros) = interval_fields(text)?;
    let frac = (micros.abs() % US) as u64;
    let frac_text = format!("{frac:06}");
    let frac_text = frac_text.trim_end_matches('0');
    if frac_text.len() > precision {
        return Err(format!(
            "'{text}' has {} fractional digits of a second; Postgres rounds it to {precision}",
            frac_text.len()
        ));
    }
    // EncodeInterval, INTSTYLE_POSTGRES.
    let mut out = String::new();
    let mut is_before = false;
    let mut is_zero = true;
    for (value, unit) in [(months / 12, "year"), (months % 12, "mon"), (days, "day")] {
        if value == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || micros != 0 {
        let minus = micros < 0;
        let a = micros.abs();
        let (h, m, s) = (a / (3600 * US), a / (60 * US) % 60, a / US % 60);
        if !is_zero {
            out.push(' ');
        }
        let sign = if minus {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        out.push_str(&format!("{sign}{h:02}:{m:02}:{s:02}"));
        if !frac_text.is_empty() {
            out.push('.');
            out.push_str(frac_text);
        }
    }
    Ok(out)
}

/// A time of day (`time`, or `timetz` when `zoned`) as Postgres prints it:
/// `HH:MM:SS[.frac]`, trailing zeros of the fraction dropped, then for a
/// timetz the offset as written (`+02`, `+05:30`; none means the session's
/// UTC, `+00`). Reads `H:MM[:SS[.frac]]`, `AM`/`PM`, and offsets `Z`, `UTC`,
/// `±HH`, `±HHMM`, `±HH:MM[:SS]`; a time zone name is an error (its offset
/// depends on the date).
/// The hours, minutes and seconds of a zone offset without its sign, as
/// Postgres reads them: `05:30`, `0530` (four digits: HHMM) or `5`.
pub(crate) fn offset_fields(z: &str) -> Vec<&str> {
    if z.contains(':') {
        z.split(':').collect()
    } else if z.len() == 4 {
        vec![&z[..2], &z[2..]]
    } else {
        vec![z]
    }
}

fn canonical_time(text: &str, zoned: bool, precision: usize) -> Result<String, String> {
    let refused = |what: &str| {
        format!(
            "'{text}' is a time this tool cannot read ({what}); write it as Postgres prints \
             one, such as '04:05:06.5'{}",
            if zoned {
                " followed by an offset such as +00 or +05:30"
            } else {
                ""
            }
        )
    };
    let t = text.trim();
    let clock_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(t.len());
    let (clock, rest) = t.split_at(clock_end);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    if !(2..=3).contains(&parts.len()) || (parts.len() == 2 && !frac.is_empty()) {
        return Err(refused("not H:MM[:SS[.frac]]"));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused("not H:MM[:SS[.frac]]"));
    }
    let (Some(mut h), Some(m), Some(s)) = (
        num(parts[0]),
        num(parts[1]),
        parts.get(2).map_or(Some(0), |s| num(s)),
    ) else {
        return Err(refused("not H:MM[:SS[.frac]]"));
    };
    let mut rest = rest.trim_start();
    let meridiem = rest.get(..2).map(|x| x.to_ascii_uppercase());
    if let Some(am_pm @ ("AM" | "PM")) = meridiem.as_deref() {
        if !(1..=12).contains(&h) {
            return Err(refused("an hour outside 1 to 12 with AM/PM"));
        }
        h = match am_pm {
            "AM" => h % 12,
            _ => h % 12 + 12,
        };
        rest = rest[2..].trim_start();
    }
    let frac = frac.trim_end_matches('0');
    if m > 59 || s > 59 || h > 24 || (h == 24 && (m, s) != (0, 0)) || (h == 24 && !frac.is_empty())
    {
        return Err(format!("'{text}' is not a time of day Postgres accepts"));
    }
    if frac.len() > precision {
        return Err(format!(
            "'{text}' has {} fractional digits of a second; Postgres rounds it to {precision}",
            frac.len()
        ));
    }
    let offset = if rest.is_empty() || rest == "Z" || rest.eq_ignore_ascii_case("UTC") {
        "+00".to_string()
    } else {
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(refused("a time zone name; write a numeric offset")),
        };
        let fields = offset_fields(&rest[1..]);
        let v: Vec<u32> = fields.iter().filter_map(|f| num(f)).collect();
        if v.len() != fields.len() || v.len() > 3 || v[0] > 15 || v.iter().skip(1).any(|x| *x > 59)
        {
            return Err(refused("an offset that is not ±HH[:MM[:SS]]"));
        }
        let secs = v[0] * 3600 + v.get(1).unwrap_or(&0) * 60 + v.get(2).unwrap_or(&0);
        let sign = if secs == 0 {
            '+'
        } else if sign < 0 {
            '-'
        } else {
            '+'
        };
        let mut o = format!("{sign}{:02}", secs / 3600);
        if !secs.is_multiple_of(3600) {
            o.push_str(&format!(":{:02}", secs / 60 % 60));
            if !secs.is_multiple_of(60) {
                o.push_str(&format!(":{:02}", secs % 60));
            }
        }
        o
    };
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if zoned {
        out.push_str(&offset);
    }
    Ok(out)
}

/// An `inet` (`cidr` when `cidr`) as Postgres prints it: IPv6 in lower case
/// with the longest run of two or more zero groups as `::` (an embedded
/// IPv4 kept dotted as Postgres does), the prefix length shown unless it is
/// the whole address (always for a cidr). Abbreviated cidr input (`10.1`),
/// a cidr with bits right of its mask, or anything else Postgres refuses is
/// an error.
fn canonical_inet(text: &str, cidr: bool) -> Result<String, String> {
    let type_name = if cidr { "cidr" } else { "inet" };
    let refused = |what: &str| {
        format!(
            "'{text}' is not an {type_name} this tool can read ({what}); write it as Postgres \
             prints one, such as '192.168.0.1', '10.0.0.0/8' or '2001:db8::1'"
        )
    };
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => {
            let b: u32 = (!b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()))
                .then(|| b.parse().ok())
                .flatten()
                .ok_or_else(|| refused("a prefix length that is not a number"))?;
            (a, Some(b))
        }
        None => (text, None),
    };
    let bytes: Vec<u8> = if addr.contains(':') {
        let v6: std::net::Ipv6Addr = addr.parse().map_err(|_| refused("not an IPv6 address"))?;
        v6.octets().to_vec()
    } else {
        let octets: Vec<&str> = addr.split('.').collect();
        if octets.len() != 4 {
            return Err(refused("write all four octets"));
        }
        let mut v = Vec::new();
        for o in octets {
            let n: u32 = (!o.is_empty() && o.len() <= 3 && o.bytes().all(|c| c.is_ascii_digit()))
                .then(|| o.parse().ok())
                .flatten()
                .filter(|n| *n <= 255)
                .ok_or_else(|| refused("an octet that is not 0 to 255"))?;
            v.push(n as u8);
        }
        v
    };
    let max = bytes.len() as u32 * 8;
    let bits = bits.unwrap_or(max);
    if bits > max {
        return Err(refused("a prefix length longer than the address"));
    }
    if cidr {
        let host_bits = bytes.iter().enumerate().any(|(i, b)| {
            let keep = bits.saturating_sub(i as u32 * 8).min(8);
            let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            b & !mask != 0
        });
        if host_bits {
            return Err(format!(
                "'{text}' has bits set to the right of its mask, which a cidr refuses"
            ));
        }
    }
    let mut out = if bytes.len() == 4 {
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(".")
    } else {
        ipv6_text(&bytes)
    };
    if cidr || bits != max {
        out.push_str(&format!("/{bits}"));
    }
    Ok(out)
}

/// IPv6 text as Postgres's `inet_net_ntop_ipv6` writes it.
fn ipv6_text(bytes: &[u8]) -> String {
    let words: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    // The first longest run of zero words, if two or more long.
    // (first word, length) of a run of zero words.
    let mut best: Option<(usize, usize)> = None;
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            cur = Some(cur.map_or((i, 1), |(b, l)| (b, l + 1)));
        } else if let Some(c) = cur.take() {
            if best.is_none_or(|b| c.1 > b.1) {
                best = Some(c);
            }
        }
    }
    if let Some(c) = cur {
        if best.is_none_or(|b| c.1 > b.1) {
            best = Some(c);
        }
    }
    let best = best.filter(|b| b.1 >= 2);
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if let Some((base, len)) = best {
            if i >= base && i < base + len {
                if i == base {
                    out.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        let embedded =
            matches!(best, Some((0, 6))) || (matches!(best, Some((0, 5))) && words[5] == 0xffff);
        if i == 6 && embedded {
            out.push_str(&format!(
                "{}.{}.{}.{}",
                bytes[12], bytes[13], bytes[14], bytes[15]
            ));
            return out;
        }
        out.push_str(&format!("{w:x}"));
    }
    if best.is_some_and(|(b, l)| b + l == words.len()) {
        out.push(':');
    }
    out
}

/// A `bytea` as Postgres prints it with `bytea_output = hex`: `\x` and two
/// lower-case digits a byte. Reads hex input (`\x0A 0B`) and the escape
/// format (any other text: its UTF-8 bytes, `\\` a backslash, `\ooo` an
/// octal byte).
fn canonical_bytea(text: &str) -> Result<String, String> {
    let hex = |bytes: &[u8]| -> String {
        let mut out = String::from("\\x");
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        out
    };
    if let Some(digits) = text.strip_prefix("\\x") {
        let mut bytes = Vec::new();
        let mut it = digits
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'));
        while let Some(a) = it.next() {
            let pair = it
                .next()
                .and_then(|b| Some(a.to_digit(16)? as u8 * 16 + b.to_digit(16)? as u8));
            match pair {
                Some(byte) => bytes.push(byte),
                None => {
                    return Err(format!(
                        "'{text}' is not bytea hex input (two hex digits a byte after \\x)"
                    ))
                }
            }
        }
        return Ok(hex(&bytes));
    }
    let mut bytes = Vec::new();
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            bytes.push(raw[i]);
            i += 1;
        } else if raw.get(i + 1) == Some(&b'\\') {
            bytes.push(b'\\');
            i += 2;
        } else {
            let octal = raw.get(i + 1..i + 4).filter(|o| {
                (b'0'..=b'3').contains(&o[0]) && o[1..].iter().all(|d| (b'0'..=b'7').contains(d))
            });
            let Some(o) = octal else {
                return Err(format!(
                    "'{text}' is not bytea input: a backslash must start \\x (hex), \\\\ or \\ooo"
                ));
            };
            bytes.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
            i += 4;
        }
    }
    Ok(hex(&bytes))
}

/// A `tsvector` as Postgres prints it: its lexemes sorted (byte order) and
/// each once, quoted (`'` and `\` doubled inside), their positions merged,
/// sorted and each once (the highest weight of a repeated position kept),
/// weight D not printed. Reads what `tsvector_in` reads: quoted or bare
/// lexemes (`\` escapes a character), then `:` and positions with an
/// optional weight A-D.
fn canonical_tsvector(text: &str) -> Result<String, String> {
    use std::collections::BTreeMap;
    let bad = |why: &str| {
        format!("'{text}' is not tsvector input Postgres reads ({why}); write it as Postgres prints it, such as 'a':1 'b':2A")
    };
    let space = |c: char| c.is_ascii_whitespace() || c == '\u{b}';
    // Lexeme → its positions (position, weight 0 = D … 3 = A), in the
    // order written; none when it carries none.
    let mut lexemes: BTreeMap<String, Vec<(u32, u8)>> = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| space(*c)) {
            chars.next();
        }
        let Some(first) = chars.next() else { break };
        let mut word = String::new();
        if first == '\'' {
            loop {
                match chars.next() {
                    None => return Err(bad("an unclosed quote")),
                    Some('\\') => {
                        word.push(chars.next().ok_or_else(|| bad("a trailing backslash"))?)
                    }
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        word.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => word.push(c),
                }
            }
        } else {
            let mut c = first;
            loop {
                match c {
                    '\\' => word.push(chars.next().ok_or_else(|| bad("a trailing backslash"))?),
                    c => word.push(c),
                }
                match chars.peek() {
                    Some(n) if !space(*n) && *n != ':' => c = chars.next().unwrap_or(' '),
                    _ => break,
                }
            }
        }
        if word.is_empty() {
            return Err(bad("an empty lexeme"));
        }
        let positions = lexemes.entry(word).or_default();
        if chars.peek() == Some(&':') {
            chars.next();
            loop {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n: u64 = digits
                    .parse()
                    .map_err(|_| bad("a position is not a number"))?;
                if n == 0 {
                    return Err(bad("position 0"));
                }
                // Postgres keeps positions up to 16383 and clamps the rest.
                let pos = n.min(16383) as u32;
                let weight = match chars.peek() {
                    Some('A' | 'a') => 3,
                    Some('B' | 'b') => 2,
                    Some('C' | 'c') => 1,
                    Some('D' | 'd') => 0,
                    _ => 4,
                };
                if weight < 4 {
                    chars.next();
                }
                positions.push((pos, weight % 4));
                match chars.peek() {
                    Some(',') => {
                        chars.next();
                    }
                    Some(c) if !space(*c) => return Err(bad("a position list with other text")),
                    _ => break,
                }
            }
        }
    }
    let mut out = Vec::new();
    for (word, mut positions) in lexemes {
        let mut entry = format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"));
        positions.sort();
        let mut merged: Vec<(u32, u8)> = Vec::new();
        for (pos, weight) in positions {
            match merged.last_mut() {
                Some(last) if last.0 == pos => last.1 = last.1.max(weight),
                _ => merged.push((pos, weight)),
            }
        }
        // Postgres keeps at most 255 positions of a lexeme.
        if merged.len() > 255 {
            return Err(bad("more than 255 positions of one lexeme"));
        }
        if !merged.is_empty() {
            let list: Vec<String> = merged
                .iter()
                .map(|(pos, w)| format!("{pos}{}", ["", "C", "B", "A"][*w as usize]))
                .collect();
            entry.push(':');
            entry.push_str(&list.join(","));
        }
        out.push(entry);
    }
    Ok(out.join(" "))
}

/// The name of a type without its schema (`extensions.hstore` → `hstore`):
/// an extension's types print qualified when its schema is not on the
/// search path (Supabase installs them in `extensions`).
pub(crate) fn unqualified(pg_type: &str) -> &str {
    let name = pg_type.rsplit_once('.').map_or(pg_type, |(_, n)| n);
    name.trim_matches('"')
}

/// The whitespace Postgres's scanners skip (`scanner_isspace`).
fn pg_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// An `hstore` as Postgres prints it: each key once, keys ordered by their
/// length in bytes and then their bytes, `"key"=>"value"` (`"` and `\`
/// escaped with `\`) or `"key"=>NULL`, joined by `, `. Read the way
/// `hstore_in` reads: keys and values bare (ended by white space, `=` in a
/// key, `,` in a value; `\` escapes a character) or in double quotes; a bare
/// `NULL` in any case is NULL. A key written twice with different values is
/// refused: which one Postgres keeps depends on its sort, not on the text.
fn canonical_hstore(text: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "'{text}' is not hstore input Postgres reads ({why}); write it as Postgres prints \
             it, such as \"a\"=>\"1\", \"b\"=>NULL"
        )
    };
    let quoted = |bytes: &[u8]| -> Result<String, String> {
        let s = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    };
    let mut out = Vec::new();
    for (key, value) in hstore_pairs(text)? {
        let value = match value {
            Some(v) => quoted(&v)?,
            None => "NULL".to_string(),
        };
        out.push(format!("{}=>{value}", quoted(&key)?));
    }
    Ok(out.join(", "))
}

/// A key of an hstore and its value (None: NULL), as bytes.
pub type HstorePair = (Vec<u8>, Option<Vec<u8>>);

/// The pairs of an `hstore` text, as `hstore_in` reads them (see
/// [`canonical_hstore`]): each key once, in Postgres's order (length in
/// bytes, then bytes), its value None for NULL.
pub fn hstore_pairs(text: &str) -> Result<Vec<HstorePair>, String> {
    let bad = |why: &str| {
        format!(
            "'{text}' is not hstore input Postgres reads ({why}); write it as Postgres prints \
             it, such as \"a\"=>\"1\", \"b\"=>NULL"
        )
    };
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    // One key or value from `i`: its bytes, whether it was quoted (or
    // began with an escape, which `hstore_in` counts the same for NULL),
    // and where reading goes on. None at the end of the text.
    let word = |mut i: usize, value: bool| -> Result<Option<(Vec<u8>, bool, usize)>, String> {
        while pg_space(at(i)) {
            i += 1;
        }
        let mut out = Vec::new();
        match at(i) {
            0 => Ok(None),
            b'"' => {
                i += 1;
                loop {
                    match at(i) {
                        0 => return Err(bad("an unclosed quote")),
                        b'\\' => {
                            if at(i + 1) == 0 {
                                return Err(bad("a trailing backslash"));
                            }
                            out.push(at(i + 1));
                            i += 2;
                        }
                        b'"' => return Ok(Some((out, true, i + 1))),
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'=' if !value => Err(bad("a key is missing before =>")),
            // The first character is the word's own, even a `,`.
            _ => loop {
                let first = out.is_empty();
                match at(i) {
                    b'\\' => {
                        if at(i + 1) == 0 {
                            return Err(bad("a trailing backslash"));
                        }
                        out.push(at(i + 1));
                        i += 2;
                    }
                    b'=' if !value && !first => return Ok(Some((out, false, i))),
                    b',' if value && !first => return Ok(Some((out, false, i))),
                    0 => return Ok(Some((out, false, i))),
                    c if pg_space(c) => return Ok(Some((out, false, i))),
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            },
        }
    };
    // Key → value (None: NULL), in Postgres's order.
    let mut pairs: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut i = 0;
    while let Some((key, _, next)) = word(i, false)? {
        i = next;
        while pg_space(at(i)) {
            i += 1;
        }
        if at(i) != b'=' || at(i + 1) != b'>' {
            return Err(bad("a key without => and a value"));
        }
        let (value, quoted, next) =
            word(i + 2, true)?.ok_or_else(|| bad("a key without a value"))?;
        i = next;
        let value = (quoted || !value.eq_ignore_ascii_case(b"null")).then_some(value);
        pairs.push((key, value));
        while pg_space(at(i)) {
            i += 1;
        }
        match at(i) {
            b',' => i += 1,
            0 => break,
            _ => return Err(bad("pairs must be separated by a comma")),
        }
    }
    pairs.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
    let mut unique: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for (key, value) in pairs {
        match unique.last() {
            Some((k, v)) if *k == key => {
                if *v != value {
                    return Err(format!(
                        "'{text}' gives the key \"{}\" two different values, and which one \
                         Postgres keeps is not defined; write the key once",
                        String::from_utf8_lossy(&key)
                    ));
                }
            }
            _ => unique.push((key, value)),
        }
    }
    Ok(unique)
}

/// A `cube` as Postgres prints it: `(x, y)` for a point, `(x, y),(u, v)`
/// for a box whose corners differ, each coordinate as a `double precision`
/// prints. Reads what `cube_in` reads: a bare list of numbers, one corner
/// in parentheses, two corners, or two corners in brackets; white space
/// anywhere between tokens.
fn canonical_cube(text: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "'{text}' is not cube input Postgres reads ({why}); write it as Postgres prints it, \
             such as (1, 2) or (1, 2),(3, 4)"
        )
    };
    // Tokens: numbers (as written) and the punctuation `( ) [ ] ,`.
    let mut tokens: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii() && pg_space(c as u8) {
            chars.next();
        } else if matches!(c, '(' | ')' | '[' | ']' | ',') {
            tokens.push(c.to_string());
            chars.next();
        } else {
            let mut n = String::new();
            while let Some(&d) = chars.peek() {
                if (d.is_ascii() && pg_space(d as u8)) || matches!(d, '(' | ')' | '[' | ']' | ',') {
                    break;
                }
                n.push(d);
                chars.next();
            }
            tokens.push(n);
        }
    }
    let number = |t: &str| -> Result<f64, String> {
        let lower = t.to_ascii_lowercase();
        let unsigned = lower.trim_start_matches(['+', '-']);
        let sign_ok = lower.len() - unsigned.len() <= 1;
        let special = matches!(unsigned, "inf" | "infinity") || lower == "nan";
        let (mantissa, exponent) = match unsigned.split_once('e') {
            Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
            None => (unsigned, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let mantissa_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (digits(a) && (b.is_empty() || digits(b))) || (a.is_empty() && digits(b))
            }
            None => digits(mantissa),
        };
        if !sign_ok || !(special || (mantissa_ok && exponent.is_none_or(digits))) {
            return Err(bad(&format!("'{t}' is not a number")));
        }
        t.parse::<f64>()
            .map_err(|_| bad(&format!("'{t}' is not a number")))
    };
    // A parenthesised corner from token `i`, or a bare list.
    let list = |i: &mut usize, bare: bool| -> Result<Vec<(String, f64)>, String> {
        let mut out = Vec::new();
        if !bare {
            if tokens.get(*i).map(String::as_str) != Some("(") {
                return Err(bad("a corner must be in parentheses"));
            }
            *i += 1;
            if tokens.get(*i).map(String::as_str) == Some(")") {
                *i += 1;
                return Ok(out);
            }
        }
        loop {
            let t = tokens.get(*i).ok_or_else(|| bad("it ends too early"))?;
            out.push((t.clone(), number(t)?));
            *i += 1;
            match tokens.get(*i).map(String::as_str) {
                Some(",") if bare || tokens.get(*i + 1).map(String::as_str) != Some("(") => *i += 1,
                Some(")") if !bare => {
                    *i += 1;
                    return Ok(out);
                }
                None if bare => return Ok(out),
                _ => return Err(bad("a corner's numbers must be separated by commas")),
            }
        }
    };
    let mut i = 0;
    let (lower, upper) = match tokens.first().map(String::as_str) {
        None => return Err(bad("it is empty")),
        Some("[") => {
            i = 1;
            let lower = list(&mut i, false)?;
            if tokens.get(i).map(String::as_str) != Some(",") {
                return Err(bad("two corners must be separated by a comma"));
            }
            i += 1;
            let upper = list(&mut i, false)?;
            if tokens.get(i).map(String::as_str) != Some("]") {
                return Err(bad("an unclosed bracket"));
            }
            i += 1;
            (lower, Some(upper))
        }
        Some("(") => {
            let lower = list(&mut i, false)?;
            let upper = match tokens.get(i).map(String::as_str) {
                Some(",") => {
                    i += 1;
                    Some(list(&mut i, false)?)
                }
                _ => None,
            };
            (lower, upper)
        }
        Some(_) => (list(&mut i, true)?, None),
    };
    if i != tokens.len() {
        return Err(bad("text after the cube"));
    }
    if upper.as_ref().is_some_and(|u| u.len() != lower.len()) {
        return Err(bad("its two corners have different dimensions"));
    }
    if lower.len() > 100 {
        return Err(bad("more than 100 dimensions"));
    }
    let corner = |c: &[(String, f64)]| -> Result<String, String> {
        let parts = c
            .iter()
            .map(|(t, _)| canonical_float(t, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(", ")))
    };
    let mut out = corner(&lower)?;
    // Corners equal as numbers (0 and -0 too) make a point: the first printed.
    if let Some(u) = upper.filter(|u| u.iter().zip(&lower).any(|(a, b)| a.1 != b.1)) {
        out.push(',');
        out.push_str(&corner(&u)?);
    }
    Ok(out)
}

/// A composite (row) value of a column of `pg_type` (the row type, or an
/// array of it with elements separated by `delimiter`) whose type has
/// `fields`, as `record_out` prints it: `(` the fields `)` separated by
/// commas, a NULL field empty, a field quoted when empty or holding `"`,
/// `\`, `(`, `)`, `,` or white space (`"` and `\` doubled inside). Each
/// field is read the way `record_in` reads it (white space kept, `"`
/// quotes, `\` escapes) and printed as its type prints it. `Ok(None)` when
/// `text` is already that text; `Err(why)` for a field the rehearsal cannot
/// print exactly (a nested row, a type it does not know), naming it.
pub fn canonical_composite(
    pg_type: &str,
    delimiter: char,
    fields: &[crate::catalog::CompositeField],
    text: &str,
) -> Result<Option<String>, String> {
    let canonical = match pg_type.ends_with("[]") {
        true => canonical_array_of(delimiter, text, &|v| canonical_row(fields, v).map(Some))?,
        false => Some(canonical_row(fields, text)?),
    };
    Ok(canonical.filter(|c| c != text))
}

fn canonical_row(fields: &[crate::catalog::CompositeField], text: &str) -> Result<String, String> {
    let values = record_fields(fields.len(), text)?;
    let mut out = String::from("(");
    for (n, (f, value)) in fields.iter().zip(values).enumerate() {
        if n > 0 {
            out.push(',');
        }
        let Some(raw) = value else { continue };
        let v = composite_field_text(f, &raw)?;
        let quote = v.is_empty()
            || v.bytes()
                .any(|c| matches!(c, b'"' | b'\\' | b'(' | b')' | b',') || pg_space(c));
        if quote {
            out.push('"');
        }
        for c in v.chars() {
            if matches!(c, '"' | '\\') {
                out.push(c);
            }
            out.push(c);
        }
        if quote {
            out.push('"');
        }
    }
    out.push(')');
    Ok(out)
}

/// The `count` fields of a row value's text as `record_in` reads them
/// (white space kept, `"` quotes, `""` inside quotes and `\` escape a
/// character), None for a NULL (empty, unquoted) field.
pub fn record_fields(count: usize, text: &str) -> Result<Vec<Option<String>>, String> {
    let bad = |why: &str| {
        format!(
            "'{text}' is not a row value Postgres reads ({why}); write it as Postgres prints it, \
             such as (1,\"two words\")"
        )
    };
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while pg_space(at(i)) {
        i += 1;
    }
    if at(i) != b'(' {
        return Err(bad("no opening parenthesis"));
    }
    i += 1;
    let mut values: Vec<Option<Vec<u8>>> = Vec::new();
    for n in 0..count {
        if n > 0 {
            if at(i) != b',' {
                return Err(bad(&format!("{} fields, the type has {}", n, count)));
            }
            i += 1;
        }
        if matches!(at(i), b',' | b')') {
            values.push(None);
            continue;
        }
        let mut value = Vec::new();
        let mut quoted = false;
        while quoted || !matches!(at(i), b',' | b')') {
            let ch = at(i);
            i += 1;
            match ch {
                0 => return Err(bad("it ends too early")),
                b'\\' => {
                    if at(i) == 0 {
                        return Err(bad("it ends too early"));
                    }
                    value.push(at(i));
                    i += 1;
                }
                b'"' if !quoted => quoted = true,
                b'"' if at(i) == b'"' => {
                    value.push(b'"');
                    i += 1;
                }
                b'"' => quoted = false,
                c => value.push(c),
            }
        }
        values.push(Some(value));
    }
    if at(i) != b')' {
        return Err(bad(&format!("more fields than the type's {}", count)));
    }
    i += 1;
    while pg_space(at(i)) {
        i += 1;
    }
    if i != b.len() {
        return Err(bad("text after the closing parenthesis"));
    }
    values
        .into_iter()
        .map(|v| {
            v.map(|v| String::from_utf8(v).map_err(|_| bad("a field is not UTF-8 text")))
                .transpose()
        })
        .collect()
}

/// The text Postgres prints for `raw` read as the type of field `f`, or
/// why the rehearsal cannot tell it exactly.
fn composite_field_text(f: &crate::catalog::CompositeField, raw: &str) -> Result<String, String> {
    let t = f.pg_type.as_str();
    let refuse = |why: String| Err(format!("field {} ({t}) holds '{raw}': {why}", f.name));
    let unknown = || {
        refuse(
            "the rehearsal cannot tell how Postgres prints a value of this type inside a row; \
             write the row some other way (its fields as columns), or leave the field NULL"
                .to_string(),
        )
    };
    if f.holds_rows() {
        return unknown();
    }
    match f.kind.as_str() {
        "e" => {
            return match f.enum_labels.iter().flatten().any(|l| l == raw) {
                true => Ok(raw.to_string()),
                false => refuse("not one of the enum's labels".to_string()),
            }
        }
        "b" | "r" => {}
        _ => return unknown(),
    }
    // Types whose text Postgres keeps as written.
    let kept = matches!(
        without_typmod(t).as_str(),
        "text" | "character varying" | "character" | "json" | "citext" | "extensions.citext"
    );
    let (text, known) = match canonical_value(t, ',', raw) {
        Ok(Some(c)) => (c, true),
        Ok(None) => (raw.to_string(), kept),
        Err(why) => return refuse(why),
    };
    match super::sql::printable(t, &text) {
        Some(true) => Ok(text),
        Some(false) => refuse("not a value of the type as Postgres prints it".to_string()),
        None if known => Ok(text),
        None => unknown(),
    }
}

/// Whether [`canonical_text`] knows a form of `pg_type` to rewrite (a
/// column of another type need not be read).
pub fn has_canonical_form(pg_type: &str) -> bool {
    pg_type.ends_with("[]")
        || matches!(
            without_typmod(pg_type).as_str(),
            "timestamp with time zone"
                | "timestamp without time zone"
                | "numeric"
                | "uuid"
                | "double precision"
                | "real"
                | "time without time zone"
                | "time with time zone"
                | "inet"
                | "cidr"
                | "bytea"
                | "tsvector"
                | "macaddr"
                | "macaddr8"
                | "int4range"
                | "int8range"
                | "daterange"
                | "numrange"
                | "tsrange"
                | "tstzrange"
                | "int4multirange"
                | "int8multirange"
                | "datemultirange"
                | "\"char\""
        )
        || pg_type.starts_with("interval")
        || matches!(unqualified(pg_type), "hstore" | "cube")
}

/// Types whose values Postgres prints in a form of its own that
/// [`canonical_text`] does not compute: `tsquery` (operators, quoting,
/// weights and parentheses normalised), the continuous multiranges (sorted
/// and merged by value) and pgvector's types (each element as a `real`).
/// The rehearsal keeps what a phase wrote there, and lists it for the
/// preflight, which compares on Postgres.
pub fn printed_by_postgres_only(pg_type: &str) -> bool {
    let base = pg_type.strip_suffix("[]").unwrap_or(pg_type);
    matches!(
        unqualified(&without_typmod(base)),
        "tsquery"
            | "nummultirange"
            | "tsmultirange"
            | "tstzmultirange"
            | "vector"
            | "halfvec"
            | "sparsevec"
    )
}

/// A `"char"` (the one-byte internal type) as Postgres 15 prints it:
/// `charin` keeps the first byte of the input (a `\ooo` octal escape of
/// exactly four characters reads as that byte; an empty input is byte 0),
/// `charout` prints a byte with the high bit set as `\ooo`, byte 0 as the
/// empty string, any other byte as itself.
fn canonical_char(text: &str) -> String {
    let b = text.as_bytes();
    let octal = |c: u8| (b'0'..=b'7').contains(&c).then(|| u32::from(c - b'0'));
    let byte = match b {
        [b'\\', x, y, z] => match (octal(*x), octal(*y), octal(*z)) {
            // Postgres keeps the low eight bits of a larger escape.
            (Some(x), Some(y), Some(z)) => ((x << 6) + (y << 3) + z) as u8,
            _ => b'\\',
        },
        [first, ..] => *first,
        [] => 0,
    };
    if byte & 0x80 != 0 {
        format!("\\{byte:03o}")
    } else if byte == 0 {
        String::new()
    } else {
        char::from(byte).to_string()
    }
}

/// A multirange of a discrete range type (`int4multirange`,
/// `int8multirange`, `datemultirange`) as Postgres prints it: each range in
/// its canonical form, empty ones dropped, sorted by lower bound, ranges
/// that overlap or touch merged, joined by `,` in braces (`{}` when none is
/// left). `Ok(None)` for a form this does not read (an `infinity` date
/// bound, say); `Err` for one Postgres refuses.
fn canonical_multirange(kind: &str, text: &str) -> Result<Option<String>, String> {
    let range_kind = kind.replace("multirange", "range");
    let t = text.trim_matches(|c: char| c.is_ascii() && pg_space(c as u8));
    let Some(inner) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return Err(format!(
            "'{text}' is refused by Postgres as a {kind}: a multirange is written in braces, \
             such as {{[1,3),[5,7)}}"
        ));
    };
    // The ranges, split at the commas between them (a quoted bound may
    // hold one).
    let mut ranges = Vec::new();
    let (mut start, mut quoted, mut escaped, mut open) = (0, false, false, false);
    for (i, c) in inner.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && matches!(c, '[' | '(') {
            open = true;
        } else if !quoted && matches!(c, ']' | ')') {
            open = false;
        } else if !quoted && !open && c == ',' {
            ranges.push(&inner[start..i]);
            start = i + 1;
        }
    }
    let last = &inner[start..];
    if !(ranges.is_empty() && last.trim().is_empty()) {
        ranges.push(last);
    }
    let read = |v: &str| -> Option<i64> {
        if range_kind == "daterange" {
            days_from_date(v)
        } else {
            v.parse().ok()
        }
    };
    let print = |v: i64| {
        if range_kind == "daterange" {
            date_from_days(v)
        } else {
            v.to_string()
        }
    };
    let mut bounds: Vec<(Option<i64>, Option<i64>)> = Vec::new();
    for r in ranges {
        let r = r.trim();
        let canonical = match canonical_range(&range_kind, r)? {
            Some(c) => c,
            None if parse_range(r).is_some() => r.to_string(),
            None => return Ok(None),
        };
        if canonical == "empty" {
            continue;
        }
        // `[l,h)`, `(,h)`, `[l,)` or `(,)`: the canonical form's bounds.
        let Some((lo, hi)) = canonical
            .get(1..canonical.len() - 1)
            .and_then(|b| b.split_once(','))
        else {
            return Ok(None);
        };
        let bound = |b: &str| -> Option<Option<i64>> {
            if b.is_empty() {
                Some(None)
            } else {
                read(b).map(Some)
            }
        };
        let (Some(lo), Some(hi)) = (bound(lo), bound(hi)) else {
            return Ok(None);
        };
        bounds.push((lo, hi));
    }
    // None sorts first: an unbounded lower bound comes first.
    bounds.sort();
    let mut merged: Vec<(Option<i64>, Option<i64>)> = Vec::new();
    for (lo, hi) in bounds {
        match merged.last_mut() {
            // Overlapping or touching (`[1,3)` and `[3,5)`): one range.
            Some((_, cur_hi)) if cur_hi.is_none_or(|h| lo.is_none_or(|l| l <= h)) => {
                *cur_hi = match (*cur_hi, hi) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            _ => merged.push((lo, hi)),
        }
    }
    let printed: Vec<String> = merged
        .into_iter()
        .map(|(lo, hi)| {
            format!(
                "{}{},{})",
                if lo.is_some() { '[' } else { '(' },
                lo.map(print).unwrap_or_default(),
                hi.map(print).unwrap_or_default()
            )
        })
        .collect();
    Ok(Some(format!("{{{}}}", printed.join(","))))
}

/// `timestamp(3) with time zone` → `timestamp with time zone`.
fn without_typmod(pg_type: &str) -> String {
    match (pg_type.find('('), pg_type.find(')')) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &pg_type[..a], &pg_type[b + 1..])
            .trim()
            .to_string(),
        _ => pg_type.to_string(),
    }
}

/// A boolean literal Postgres reads (`t`, `true`, `yes`, `on`, `1` and
/// their false forms, any case, spaces around).
pub fn canonical_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A uuid with capitals, braces or without hyphens, as Postgres prints it.
fn canonical_uuid(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// A plain decimal (`+1.5`, `01.50`, `.5`, `1.`, `-0`) as numeric prints
/// it: no plus sign, no leading zeros, no negative zero; the decimals as
/// written (an unconstrained numeric keeps them), padded to the scale of a
/// numeric(p,s) (more decimals than that are rounded: left to the check
/// that names values Postgres would not print).
fn canonical_numeric(text: &str, scale: Option<usize>) -> Option<String> {
    let t = text.trim();
    let (sign, t) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let mut frac = frac.to_string();
    if let Some(scale) = scale {
        // `3.0` (a REAL's text) into a numeric(p,0) is 3: zeros beyond the
        // scale are not a rounding.
        if frac.len() > scale && frac[scale..].bytes().all(|b| b == b'0') {
            frac.truncate(scale);
        }
        if frac.len() > scale {
            return None;
        }
        frac.extend(std::iter::repeat_n('0', scale - frac.len()));
    }
    let int = if int.is_empty() { "0" } else { int };
    let written = match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    };
    // Leading zeros and a negative zero go as numeric_in drops them.
    Some(crate::pgjson::numeric_text(&written))
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.frac]][zone]` with zone `Z`, `UTC`, `±HH`,
/// `±HHMM`, `±HH:MM` or `±HH:MM:SS`, as Postgres prints it: in UTC with
/// `+00` for a timestamptz (the session's time zone; no zone means that
/// zone), the zone dropped for a timestamp without one (Postgres ignores
/// it), trailing zeros of the fraction dropped. More fractional digits
/// than the column's precision Postgres rounds: an error naming it.
fn canonical_timestamp(
    text: &str,
    zoned: bool,
    precision: usize,
) -> Result<Option<String>, String> {
    let t = text.trim();
    // A bare date is its midnight (in the session's time zone, UTC, for a
    // timestamptz), as Postgres reads it.
    if days_from_date(t).is_some() {
        return canonical_timestamp(&format!("{t} 00:00:00"), zoned, precision);
    }
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
    {
        return Ok(None);
    }
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16))
    else {
        return Ok(None);
    };
    let mut rest = &t[16..];
    let mut s = 0;
    if let Some(r) = rest.strip_prefix(':') {
        match r.get(..2).and_then(|x| x.parse::<i64>().ok()) {
            Some(v) if r.as_bytes()[..2].iter().all(u8::is_ascii_digit) => {
                s = v;
                rest = &r[2..];
            }
            _ => return Ok(None),
        }
    }
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = &r[..n];
        rest = &r[n..];
    }
    let zone = rest.trim_start();
    let offset: i64 = if zone.is_empty() || zone == "Z" || zone.eq_ignore_ascii_case("UTC") {
        0
    } else {
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Ok(None),
        };
        let z = &zone[1..];
        let parts: Vec<&str> = if z.contains(':') {
            z.split(':').collect()
        } else if z.len() == 4 {
            vec![&z[..2], &z[2..]]
        } else {
            vec![z]
        };
        if parts.len() > 3
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.bytes().all(|c| c.is_ascii_digit()))
        {
            return Ok(None);
        }
        let v: Vec<i64> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        let secs = v[0] * 3600 + v.get(1).unwrap_or(&0) * 60 + v.get(2).unwrap_or(&0);
        sign * secs
    };
    let month_days = match mo {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return Ok(None),
    };
    if !(1..=month_days).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return Ok(None);
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > precision {
        return Err(format!(
            "'{text}' has {} fractional digits of a second; Postgres rounds it to {precision}",
            frac.len()
        ));
    }
    let local = crate::fixtures::pgtext::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    let at = if zoned { local - offset } else { local };
    let (y, mo, d) = crate::fixtures::pgtext::civil_from_days(at.div_euclid(86400));
    let secs = at.rem_euclid(86400);
    if !(1..=9999).contains(&y) {
        // BC dates and five-digit years print differently: not handled.
        return Ok(None);
    }
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if zoned {
        out.push_str("+00");
    }
    Ok(Some(out))
}

/// An array as Postgres prints it: no spaces around elements, an element
/// quoted only when it must be (empty, `NULL` as text, a delimiter, brace,
/// quote, backslash or white space in it), each element in its own
/// canonical form.
fn canonical_array(element: &str, delimiter: char, text: &str) -> Result<Option<String>, String> {
    canonical_array_of(delimiter, text, &|v| canonical_value(element, delimiter, v))
}

/// An array as `array_out` prints it, each element rewritten by `element`
/// (None: kept as written).
fn canonical_array_of(
    delimiter: char,
    text: &str,
    element: &dyn Fn(&str) -> Result<Option<String>, String>,
) -> Result<Option<String>, String> {
    use super::rowjson::{parse_array_delimited, ArrayNode};
    let trimmed = text.trim();
    let (prefix, body) = match trimmed.find('=') {
        Some(i) if trimmed.starts_with('[') => (&trimmed[..=i], &trimmed[i + 1..]),
        _ => ("", trimmed),
    };
    let Ok(node) = parse_array_delimited(body, delimiter) else {
        return Ok(None);
    };
    fn write(
        node: &ArrayNode,
        element: &dyn Fn(&str) -> Result<Option<String>, String>,
        delimiter: char,
        out: &mut String,
    ) -> Result<(), String> {
        match node {
            ArrayNode::List(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(delimiter);
                    }
                    write(item, element, delimiter, out)?;
                }
                out.push('}');
            }
            ArrayNode::Elem(None) => out.push_str("NULL"),
            ArrayNode::Elem(Some(v)) => {
                let v = element(v)?.unwrap_or_else(|| v.clone());
                let quote = v.is_empty()
                    || v.eq_ignore_ascii_case("NULL")
                    || v.chars().any(|c| {
                        c == delimiter
                            || matches!(c, '{' | '}' | '"' | '\\')
                            || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
                    });
                if quote {
                    out.push('"');
                    for c in v.chars() {
                        if matches!(c, '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&v);
                }
            }
        }
        Ok(())
    }
    let mut out = prefix.to_string();
    write(&node, element, delimiter, &mut out)?;
    Ok(Some(out))
}

/// A MAC address of `bytes` bytes (6: `macaddr`, 8: `macaddr8`) as Postgres
/// prints it: lower-case hex pairs joined by `:`. Read from the forms
/// Postgres reads: pairs, or groups of 4, 6 (`macaddr` only) or all the
/// digits, joined by one kind of `:`, `-` or `.`; a 6-byte address in a
/// `macaddr8` gets `ff:fe` in its middle, as Postgres gives it. `None` for
/// any other text (the value check names it then).
pub fn canonical_macaddr(text: &str, bytes: usize) -> Option<String> {
    let t = text.trim();
    let sep = t.chars().find(|c| matches!(c, ':' | '-' | '.'));
    let groups: Vec<&str> = match sep {
        Some(sep) => t.split(sep).collect(),
        None => vec![t],
    };
    if groups
        .iter()
        .any(|g| g.is_empty() || !g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let digits: String = groups.concat().to_ascii_lowercase();
    let n = digits.len() / 2;
    let shape_ok = match n {
        6 => matches!(lens[..], [2, 2, 2, 2, 2, 2] | [6, 6] | [4, 4, 4] | [12]),
        8 => matches!(lens[..], [2, 2, 2, 2, 2, 2, 2, 2] | [4, 4, 4, 4] | [16]),
        _ => false,
    };
    if !shape_ok || (n == 8 && bytes == 6) {
        return None;
    }
    let mut pairs: Vec<&str> = (0..n).map(|i| &digits[2 * i..2 * i + 2]).collect();
    if n == 6 && bytes == 8 {
        pairs.splice(3..3, ["ff", "fe"]);
    }
    Some(pairs.join(":"))
}

/// One bound of a range as written: `None` for an infinite (omitted) one.
type Bound = Option<String>;

/// Reads a range literal as Postgres does: `empty`, or `[`/`(`, lower
/// bound, `,`, upper bound, `]`/`)`, a bound quoted with `"` (`""` and `\`
/// escape) or not (`\` escapes), an omitted bound infinite.
fn parse_range(text: &str) -> Option<Option<(bool, Bound, Bound, bool)>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("empty") {
        return Some(None);
    }
    let mut chars = t.chars().peekable();
    let lower_inc = match chars.next()? {
        '[' => true,
        '(' => false,
        _ => return None,
    };
    let mut bound = |end: &[char]| -> Option<(Bound, char)> {
        let mut value = String::new();
        let mut written = false;
        let mut quoted = false;
        loop {
            let c = chars.next()?;
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    value.push('"');
                }
                '"' => {
                    quoted = !quoted;
                    written = true;
                }
                '\\' => {
                    value.push(chars.next()?);
                    written = true;
                }
                c if !quoted && end.contains(&c) => {
                    return Some(((written || !value.is_empty()).then_some(value), c));
                }
                c => {
                    value.push(c);
                    written = true;
                }
            }
        }
    };
    let (lower, _) = bound(&[','])?;
    let (upper, close) = bound(&[']', ')'])?;
    if chars.next().is_some() {
        return None;
    }
    Some(Some((lower_inc, lower, upper, close == ']')))
}

/// A range bound as Postgres prints it: quoted when empty or holding a
/// character the range syntax uses, or white space.
fn range_bound_text(value: &str) -> String {
    let quote = value.is_empty()
        || value
            .chars()
            .any(|c| matches!(c, '"' | '\\' | '(' | ')' | '[' | ']' | ',') || c.is_whitespace());
    if !quote {
        return value.to_string();
    }
    let mut out = String::from('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD` date, and back
/// (proleptic Gregorian, as Postgres counts; the arithmetic is
/// `collation::days_from_civil` and `pgtext::civil_from_days`).
pub(super) fn days_from_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if text.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    let (y, m, d) = (
        text[..4].parse::<i64>().ok()?,
        text[5..7].parse::<i64>().ok()?,
        text[8..10].parse::<i64>().ok()?,
    );
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    i64::try_from(crate::db::collation::days_from_civil(
        y.into(),
        m.into(),
        d.into(),
    ))
    .ok()
}

fn date_from_days(days: i64) -> String {
    let (y, m, d) = crate::fixtures::pgtext::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A range of the built-in `kind` as Postgres prints it. Discrete ranges
/// (`int4range`, `int8range`, `daterange`) take Postgres's canonical form,
/// `[lower,upper)`, and become `empty` when nothing is left; the others
/// keep their brackets, with each bound printed as its type prints it
/// (timestamps in UTC). `Ok(None)` for a form this does not read (the
/// value check names it then); `Err` for one Postgres refuses.
fn canonical_range(kind: &str, text: &str) -> Result<Option<String>, String> {
    let Some(parsed) = parse_range(text) else {
        return Ok(None);
    };
    let Some((lower_inc, lower, upper, upper_inc)) = parsed else {
        return Ok(Some("empty".into()));
    };
    let refused = |why: &str| format!("'{text}' is refused by Postgres as a {kind}: {why}");
    // Discrete: each bound as a number on one line, moved to `[`, `)`.
    struct Discrete {
        read: fn(&str) -> Option<i64>,
        print: fn(i64) -> String,
        max: i64,
    }
    let discrete = match kind {
        "int4range" => Some(Discrete {
            read: |s| {
                s.trim()
                    .trim_start_matches('+')
                    .parse::<i32>()
                    .ok()
                    .map(i64::from)
            },
            print: |v| v.to_string(),
            max: i64::from(i32::MAX),
        }),
        "int8range" => Some(Discrete {
            read: |s| s.trim().trim_start_matches('+').parse::<i64>().ok(),
            print: |v| v.to_string(),
            max: i64::MAX,
        }),
        "daterange" => Some(Discrete {
            read: |s| days_from_date(s.trim()),
            print: date_from_days,
            max: i64::MAX,
        }),
        _ => None,
    };
    if let Some(Discrete { read, print, max }) = discrete {
        let read_bound = |b: &Bound| -> Result<Option<Option<i64>>, String> {
            match b {
                None => Ok(Some(None)),
                Some(v) => Ok(read(v).map(Some)),
            }
        };
        let (Some(lo), Some(hi)) = (read_bound(&lower)?, read_bound(&upper)?) else {
            // `infinity` dates, or a spelling this does not read.
            return Ok(None);
        };
        if let (Some(l), Some(h)) = (lo, hi) {
            if l > h {
                return Err(refused("its lower bound is above its upper bound"));
            }
        }
        let step = |v: i64| {
            v.checked_add(1)
                .filter(|n| *n <= max)
                .ok_or_else(|| refused("a bound moved to its canonical form is out of range"))
        };
        let lo = match lo {
            Some(l) if !lower_inc => Some(step(l)?),
            other => other,
        };
        let hi = match hi {
            Some(h) if upper_inc => Some(step(h)?),
            other => other,
        };
        if let (Some(l), Some(h)) = (lo, hi) {
            if l >= h {
                return Ok(Some("empty".into()));
            }
        }
        return Ok(Some(format!(
            "{}{},{})",
            if lo.is_some() { '[' } else { '(' },
            lo.map(print).unwrap_or_default(),
            hi.map(print).unwrap_or_default()
        )));
    }
    let element = |b: &Bound| -> Result<Option<String>, String> {
        let Some(v) = b else { return Ok(None) };
        let printed = match kind {
            "numrange" => canonical_numeric(v, None),
            "tsrange" => canonical_timestamp(v, false, 6)?,
            "tstzrange" => canonical_timestamp(v, true, 6)?,
            _ => return Err(refused("not a range type this reads")),
        };
        Ok(Some(printed.unwrap_or_else(|| v.clone())))
    };
    let (lo, hi) = (element(&lower)?, element(&upper)?);
    // An omitted bound is exclusive whatever bracket was written.
    let (lower_inc, upper_inc) = (lower_inc && lo.is_some(), upper_inc && hi.is_some());
    if lo.is_some() && lo == hi && !(lower_inc && upper_inc) {
        return Ok(Some("empty".into()));
    }
    Ok(Some(format!(
        "{}{},{}{}",
        if lower_inc { '[' } else { '(' },
        lo.as_deref().map(range_bound_text).unwrap_or_default(),
        hi.as_deref().map(range_bound_text).unwrap_or_default(),
        if upper_inc { ']' } else { ')' },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ty: &str, text: &str) -> Option<String> {
        canonical_text(ty, ',', text).unwrap()
    }

    #[test]
    fn timestamps_come_back_in_utc_without_trailing_zeros() {
        let tz = "timestamp with time zone";
        assert_eq!(
            c(tz, "2024-01-01 10:00:00+02").as_deref(),
            Some("2024-01-01 08:00:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01T01:30:00.500-05:30").as_deref(),
            Some("2024-01-01 07:00:00.5+00")
        );
        assert_eq!(
            c(tz, "2024-03-01 00:10:00+0100").as_deref(),
            Some("2024-02-29 23:10:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01 10:00:00Z").as_deref(),
            Some("2024-01-01 10:00:00+00")
        );
        assert_eq!(
            c(tz, "2024-01-01 10:00:00").as_deref(),
            Some("2024-01-01 10:00:00+00")
        );
        assert_eq!(c(tz, "2024-01-01 10:00:00.123456+00"), None);
        assert_eq!(c(tz, "infinity"), None);
        assert!(canonical_text(tz, ',', "2024-01-01 10:00:00.1234567+00").is_err());
        assert!(canonical_text(
            "timestamp(3) with time zone",
            ',',
            "2024-01-01 10:00:00.1234+00"
        )
        .is_err());
        let plain = "timestamp without time zone";
        assert_eq!(
            c(plain, "2024-01-01T10:00:00+02").as_deref(),
            Some("2024-01-01 10:00:00")
        );
        assert_eq!(
            c(plain, "2024-01-01 10:00:00.10").as_deref(),
            Some("2024-01-01 10:00:00.1")
        );
    }

    #[test]
    fn hstore_and_cube_take_the_form_postgres_prints() {
        assert_eq!(
            c("extensions.hstore", "b=>2, a=>NULL, aa=>\"x y\"").as_deref(),
            Some("\"a\"=>NULL, \"b\"=>\"2\", \"aa\"=>\"x y\"")
        );
        assert_eq!(c("hstore", "\"a\"=>\"1\""), None);
        assert!(canonical_text("hstore", ',', "a=>1, a=>2").is_err());
        assert!(canonical_text("hstore", ',', "a=>").is_err());
        assert_eq!(c("cube", "1,2").as_deref(), Some("(1, 2)"));
        assert_eq!(c("public.cube", "[(1,2),(1,2)]").as_deref(), Some("(1, 2)"));
        assert_eq!(c("cube", "(0),(1e3)").as_deref(), Some("(0),(1000)"));
        assert!(canonical_text("cube", ',', "(1,2),(3)").is_err());
    }

    #[test]
    fn arrays_numbers_uuids_and_booleans_take_the_form_postgres_prints() {
        assert_eq!(c("integer[]", "{1, 2}").as_deref(), Some("{1,2}"));
        assert_eq!(
            c("text[]", "{\"a\", \"b c\", \"\", NULL}").as_deref(),
            Some("{a,\"b c\",\"\",NULL}")
        );
        assert_eq!(c("text[]", "{a,\"b c\"}"), None);
        assert_eq!(c("boolean[]", "{true,false}").as_deref(), Some("{t,f}"));
        assert_eq!(c("text[]", "{\"NULL\",\"x\\\"y\"}"), None);
        assert_eq!(
            c("timestamp with time zone[]", "{\"2024-01-01 10:00:00+02\"}").as_deref(),
            Some("{\"2024-01-01 08:00:00+00\"}")
        );
        assert_eq!(c("numeric", "+01.50").as_deref(), Some("1.50"));
        assert_eq!(c("numeric", ".5").as_deref(), Some("0.5"));
        assert_eq!(c("numeric(10,0)", "3.0").as_deref(), Some("3"));
        assert_eq!(c("numeric(10,2)", "1.500").as_deref(), Some("1.50"));
        assert_eq!(c("numeric(10,2)", "1.505").as_deref(), None);
        assert_eq!(c("numeric", "-0.00").as_deref(), Some("0.00"));
        assert_eq!(c("numeric(10,2)", "1.5").as_deref(), Some("1.50"));
        assert_eq!(c("numeric(10,2)", "1.505"), None);
        assert_eq!(c("numeric", "1.5"), None);
        assert_eq!(
            c("uuid", "{00392105-BE51-5207-BD8C-6CED75730336}").as_deref(),
            Some("00392105-be51-5207-bd8c-6ced75730336")
        );
    }
}
