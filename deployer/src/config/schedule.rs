//! EventBridge schedule expressions: `rate(value unit)` and `cron(six fields)`, checked the
//! way EventBridge checks them, so a typo fails at `validate` rather than mid-deploy.

/// Returns what is wrong with the expression, if anything.
pub fn check(expr: &str) -> Result<(), String> {
    if let Some(body) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        return check_rate(body);
    }
    if let Some(body) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        return check_cron(body);
    }
    Err("not a rate(...) or cron(...) expression".to_string())
}

/// The period of a valid `rate(...)` expression in seconds; `None` for `cron(...)`,
/// whose runs need not be evenly spaced.
pub fn rate_seconds(expr: &str) -> Option<u64> {
    let body = expr.strip_prefix("rate(")?.strip_suffix(')')?;
    check_rate(body).ok()?;
    let (value, unit) = body.split_once(' ')?;
    let unit = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    value.parse::<u64>().ok()?.checked_mul(unit)
}

fn check_rate(body: &str) -> Result<(), String> {
    let mut parts = body.split(' ');
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("rate takes a value and a unit, e.g. rate(5 minutes)".to_string());
    };
    let n: u64 = value
        .parse()
        .map_err(|_| format!("rate value {value:?} is not a whole number"))?;
    if n == 0 {
        return Err("rate value must be at least 1".to_string());
    }
    let (singular, plural) = match unit {
        "minute" | "minutes" => ("minute", "minutes"),
        "hour" | "hours" => ("hour", "hours"),
        "day" | "days" => ("day", "days"),
        _ => return Err(format!("unit {unit:?} is not minute(s), hour(s) or day(s)")),
    };
    match (n, unit == singular) {
        (1, false) => Err(format!(
            "EventBridge wants the singular for 1: rate(1 {singular})"
        )),
        (n, true) if n != 1 => Err(format!("EventBridge wants the plural: rate({n} {plural})")),
        _ => Ok(()),
    }
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Extra tokens this field accepts: `?`, `L`, `W`, `#`.
    question: bool,
    special: &'static str,
}

fn check_cron(body: &str) -> Result<(), String> {
    let fields: Vec<&str> = body.split(' ').filter(|f| !f.is_empty()).collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron has {} fields; EventBridge needs 6: minutes hours day-of-month month day-of-week year",
            fields.len()
        ));
    }
    let specs = [
        Field {
            name: "minutes",
            min: 0,
            max: 59,
            names: &[],
            question: false,
            special: "",
        },
        Field {
            name: "hours",
            min: 0,
            max: 23,
            names: &[],
            question: false,
            special: "",
        },
        Field {
            name: "day-of-month",
            min: 1,
            max: 31,
            names: &[],
            question: true,
            special: "LW",
        },
        Field {
            name: "month",
            min: 1,
            max: 12,
            names: MONTHS,
            question: false,
            special: "",
        },
        Field {
            name: "day-of-week",
            min: 1,
            max: 7,
            names: DAYS,
            question: true,
            special: "L#",
        },
        Field {
            name: "year",
            min: 1970,
            max: 2199,
            names: &[],
            question: false,
            special: "",
        },
    ];
    for (text, spec) in fields.iter().zip(&specs) {
        check_field(text, spec)?;
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        _ => Err("exactly one of day-of-month and day-of-week must be `?`".to_string()),
    }
}

fn check_field(text: &str, spec: &Field) -> Result<(), String> {
    let bad = || {
        format!(
            "{} field {text:?} is not valid ({}-{}{})",
            spec.name,
            spec.min,
            spec.max,
            if spec.names.is_empty() {
                String::new()
            } else {
                format!(" or {}", spec.names.join(","))
            }
        )
    };
    if text == "?" {
        return if spec.question {
            Ok(())
        } else {
            Err(format!(
                "`?` is only allowed in day-of-month or day-of-week, not {}",
                spec.name
            ))
        };
    }
    if text == "*" {
        return Ok(());
    }
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(spec.min + i as u32);
        }
        match v.parse::<u32>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ => Err(bad()),
        }
    };
    for item in text.split(',') {
        if item.is_empty() {
            return Err(bad());
        }
        // Special forms: L (last), 15W (nearest weekday), 5L / 6#3 (day-of-week).
        if spec.special.contains('L') && item == "L" {
            continue;
        }
        if spec.special.contains('W')
            && (item == "LW" || item.strip_suffix('W').is_some_and(|d| value(d).is_ok()))
        {
            continue;
        }
        if spec.special.contains('#') {
            if let Some((d, nth)) = item.split_once('#') {
                value(d)?;
                match nth.parse::<u32>() {
                    Ok(1..=5) => continue,
                    _ => return Err(bad()),
                }
            }
            if item.strip_suffix('L').is_some_and(|d| value(d).is_ok()) {
                continue;
            }
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s >= 1 && s <= spec.max => {}
                _ => return Err(bad()),
            }
        }
        if range == "*" && step.is_some() {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check, rate_seconds};

    #[test]
    fn accepts_eventbridge_examples() {
        for ok in [
            "rate(5 minutes)",
            "rate(1 minute)",
            "rate(1 hour)",
            "rate(7 days)",
            "cron(*/5 * * * ? *)",
            "cron(0/5 * * * ? *)",
            "cron(0 10 * * ? *)",
            "cron(15 12 * * ? *)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0/10 * ? * MON-FRI *)",
            "cron(0/5 8-17 ? * MON-FRI *)",
            "cron(0 9 ? * 2#1 *)",
            "cron(0 9 L * ? *)",
            "cron(0 9 15W * ? 2030)",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_mistakes() {
        for bad in [
            "rate(5 minute)",
            "rate(1 minutes)",
            "rate(0 minutes)",
            "rate(five minutes)",
            "rate(5 weeks)",
            "every 5 minutes",
            "cron(*/5 * * * *)",
            "cron(*/5 * * * * *)",
            "cron(0 24 * * ? *)",
            "cron(60 1 * * ? *)",
            "cron(0 1 ? * ? *)",
            "cron(0 1 * 13 ? *)",
            "cron(0 1 ? * FUNDAY *)",
            "cron(0 1 ? * 2#6 *)",
        ] {
            assert!(check(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn a_rate_has_a_period_and_a_cron_none() {
        assert_eq!(rate_seconds("rate(1 minute)"), Some(60));
        assert_eq!(rate_seconds("rate(5 minutes)"), Some(300));
        assert_eq!(rate_seconds("rate(2 hours)"), Some(7200));
        assert_eq!(rate_seconds("rate(1 day)"), Some(86_400));
        assert_eq!(rate_seconds("rate(5 minute)"), None);
        assert_eq!(rate_seconds("cron(0/5 * * * ? *)"), None);
    }
}
