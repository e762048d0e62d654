//! The pupil's absence patterns for the case texts: read from the store,
//! counted by [`crate::insight`]. The mapping guide and the agendas look at
//! the last weeks; the evaluation at the agreement period and before it.

use super::{Chat, ChatError};
use crate::cases::model::Case;
use crate::cases::numbers::Comparison;
use crate::insight::{Insight, Window};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Weeks the case texts look back over for patterns.
pub const CASE_PATTERN_WEEKS: i64 = 12;

/// `prefix` before a sentence that starts with a capital («Ingen …» →
/// «Før avtalen: ingen …»).
fn prefixed(prefix: &str, sentence: &str) -> String {
    let mut chars = sentence.chars();
    match chars.next() {
        Some(c) => format!("{prefix}: {}{}", c.to_lowercase(), chars.as_str()),
        None => String::new(),
    }
}

impl Chat {
    /// The pupil's absence over `window`.
    async fn insight_of(&self, case: &Case, window: Window) -> Result<Insight, ChatError> {
        let records = self
            .store()
            .pupil_records(&case.pupil.id, window.from, window.to)
            .await?;
        Ok(crate::insight::of_records(
            &records,
            window,
            &self.inner.cases.calendar,
            self.inner.cases.lessons_per_day,
        ))
    }

    /// Lines about the pupil's absence patterns for a case document: with
    /// agreement numbers, the agreement period and the period before it
    /// (what is missing said once); otherwise the last
    /// [`CASE_PATTERN_WEEKS`] weeks up to `now`.
    pub(super) async fn pattern_lines(
        &self,
        case: &Case,
        numbers: Option<&Comparison>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, ChatError> {
        if let Some(n) = numbers {
            let during = self.insight_of(case, Window::new(n.during.from, n.during.to)).await?;
            let before = self.insight_of(case, Window::new(n.before.from, n.before.to)).await?;
            let mut lines: Vec<String> = Vec::new();
            for (prefix, insight) in [("Under avtalen", &during), ("Før avtalen", &before)] {
                lines.extend(pattern_sentences(insight).iter().map(|s| prefixed(prefix, s)));
            }
            let mut gaps: Vec<String> = during.gaps.iter().map(|g| g.sentence()).collect();
            for g in before.gaps.iter().map(|g| g.sentence()) {
                if !gaps.contains(&g) {
                    gaps.push(g);
                }
            }
            lines.extend(gaps);
            return Ok(lines);
        }
        let today: NaiveDate = crate::domain::dates::school_date_utc(now);
        let window = Window::new(today - Duration::weeks(CASE_PATTERN_WEEKS) + Duration::days(1), today);
        let insight = self.insight_of(case, window).await?;
        let prefix = format!("Siste {CASE_PATTERN_WEEKS} uker");
        let mut lines: Vec<String> = pattern_sentences(&insight)
            .iter()
            .map(|s| prefixed(&prefix, s))
            .collect();
        lines.extend(insight.gaps.iter().map(|g| g.sentence()));
        Ok(lines)
    }
}

/// The patterns of `insight` (with what chance would give), or that none
/// stands out; without the data gaps.
fn pattern_sentences(insight: &Insight) -> Vec<String> {
    let mut lines = insight.summary();
    lines.truncate(insight.patterns.len().max(1));
    lines
}

#[cfg(test)]
mod tests {
    use super::prefixed;

    #[test]
    fn a_prefix_lowers_the_first_letter() {
        assert_eq!(
            prefixed("Før avtalen", "Ingen tydelige mønstre."),
            "Før avtalen: ingen tydelige mønstre."
        );
        assert_eq!(prefixed("Under avtalen", "6 av 9"), "Under avtalen: 6 av 9");
    }
}
