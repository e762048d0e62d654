//! One Norwegian sentence per finding.

use super::config::{Comparison, Rule, Unit};
use crate::domain::FindingWindow;
use crate::domain::dates::norwegian;
use crate::render::{count_len, count_text};

/// A number the Norwegian way: decimal comma, at most one decimal.
pub(crate) fn number(x: f64) -> String {
    let rounded = (x * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}").replace('.', ",")
    }
}

/// `value` with the unit's noun in the right number.
fn quantity(unit: Unit, value: f64) -> String {
    let n = number(value);
    match unit {
        Unit::Lessons => count_text(&n, "time", "timer"),
        Unit::Days => count_text(&n, "dag", "dager"),
        Unit::Occurrences => count_text(&n, "gang", "ganger"),
        Unit::Percent => format!("{n} %"),
    }
}

/// The explanation of a finding.
pub(crate) fn sentence(
    rule: &Rule,
    measured: f64,
    window: FindingWindow,
    evidence: usize,
    unclassified: usize,
) -> String {
    let period = format!("fra {} til {}", norwegian(window.from), norwegian(window.to));
    let what = match rule.unit {
        Unit::Occurrences => format!("Eleven har {} {} {period}", rule.label, quantity(rule.unit, measured)),
        _ => format!("Eleven har {} {} {period}", quantity(rule.unit, measured), rule.label),
    };
    let limit = match rule.comparison {
        Comparison::AtLeast => "minst",
        Comparison::MoreThan => "mer enn",
    };
    let mut s = format!("{what}, og grensen er {limit} {}", quantity(rule.unit, rule.threshold));
    if unclassified > 0 {
        s.push_str(&format!(
            "; {unclassified} av {} er ennå ikke vurdert av skolen",
            count_len(evidence, "registrering", "registreringer")
        ));
    }
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_use_decimal_comma() {
        assert_eq!(number(5.0), "5");
        assert_eq!(number(4.8333), "4,8");
        assert_eq!(number(0.5), "0,5");
    }
}
