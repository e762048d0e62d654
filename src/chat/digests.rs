//! The routine's phase 1 reviews, delivered on schedule: a monthly digest
//! for each contact teacher (a direct message about their own pupils), and
//! twice per half-year a digest of the whole school for leadership (in the
//! ressursteam room: numbers per grade only). Each goes out once per period.

use super::{Chat, ChatError};
use crate::cases::digest::{registration_gaps, school_digest, teacher_digest};
use crate::domain::dates::{half_year_start, month_start, school_date_utc};
use crate::matrix::{direct_room, notice, school_room};
use crate::render::{Document, school_digest_context, teacher_digest_context};
use crate::store::Claim;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Weeks into a half-year at which leadership's two reviews fall.
const SCHOOL_REVIEW_WEEKS: [i64; 2] = [10, 20];

/// Class-days in a row without registrations before a gap is reported.
const GAP_DAYS: u32 = 2;

/// Days looked back for registration gaps between the reviews.
const GAP_WINDOW_DAYS: i64 = 14;

/// What one scheduling round sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestStats {
    /// Contact teacher digests enqueued.
    pub teachers: usize,
    /// School digests enqueued.
    pub schools: usize,
    /// Registration gap alerts enqueued.
    pub gaps: usize,
}

/// The leadership review due on `today` for a half-year starting `start`:
/// (review number 1 or 2, its period's first and last day).
pub fn school_review(start: NaiveDate, today: NaiveDate) -> Option<(u8, NaiveDate, NaiveDate)> {
    SCHOOL_REVIEW_WEEKS
        .iter()
        .enumerate()
        .rev()
        .map(|(i, w)| (i as u8 + 1, start + Duration::weeks(*w)))
        .find(|(_, at)| *at <= today)
        .map(|(n, at)| (n, start, at - Duration::days(1)))
}

impl Chat {
    /// Leadership's review chart: the school's absence per week from
    /// `from` to `to`, as an image post for the ressursteam room (counts
    /// only, no pupil). `None` when there is nothing to draw (logged).
    fn school_chart(
        &self,
        school: &str,
        label: &str,
        pupils: &[crate::domain::roster::RosterPupil],
        records: &[crate::domain::AbsenceRecord],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Option<crate::store::NewPost> {
        let window = crate::insight::Window::new(from, to);
        let mut by_pupil: std::collections::BTreeMap<&str, Vec<crate::insight::AbsenceEvent>> =
            std::collections::BTreeMap::new();
        for r in records.iter().filter(|r| window.contains(r.date)) {
            if let Some(e) = crate::insight::AbsenceEvent::from_record(r) {
                by_pupil.entry(r.pupil.as_str()).or_default().push(e);
            }
        }
        let absence: Vec<Vec<crate::insight::AbsenceEvent>> = by_pupil.into_values().collect();
        let settings = crate::insight::PatternSettings {
            lessons_per_day: self.inner.cases.lessons_per_day.max(1),
            ..crate::insight::PatternSettings::default()
        };
        let weeks = crate::insight::school_weeks(
            &absence,
            pupils.len() as u32,
            window,
            &self.inner.cases.calendar,
            &settings,
        );
        match crate::insight::charts::school_overview(label, &weeks) {
            Ok(chart) => Some(crate::matrix::media_post(
                &school_room(school),
                &chart.alt,
                crate::store::Media {
                    mime: "image/png".into(),
                    file_name: format!("fravaer-per-uke-{from}-{to}.png"),
                    width: Some(chart.width),
                    height: Some(chart.height),
                    data: chart.png,
                },
            )),
            Err(e) => {
                tracing::warn!(school, error = %e, "no chart for leadership's review");
                None
            }
        }
    }

    /// The records of `pupils` between `from` and `to`.
    async fn records_of(
        &self,
        pupils: &[crate::domain::roster::RosterPupil],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<crate::domain::AbsenceRecord>, ChatError> {
        let mut all = Vec::new();
        for p in pupils {
            all.extend(self.store().pupil_records(&p.id, from, to).await?);
        }
        Ok(all)
    }

    /// Sends the digests that are due at `now` and not yet sent.
    pub async fn digests(&self, now: DateTime<Utc>) -> Result<DigestStats, ChatError> {
        let today = school_date_utc(now);
        let mut stats = DigestStats::default();
        let config = &self.inner.cases;
        for room in &self.inner.matrix.schools {
            let school = room.school.as_str();
            let classes = self.store().school_classes(school).await?;
            let pupils = self.store().school_pupils(school).await?;
            if pupils.is_empty() {
                continue;
            }
            let cases = self.store().cases_raw(Some(school), false).await?;
            // Monthly: last month, for each contact teacher with a Matrix id.
            let this_month = month_start(today);
            let (from, to) = (
                month_start(this_month - Duration::days(1)),
                this_month - Duration::days(1),
            );
            let mut teachers: Vec<&str> = classes
                .iter()
                .flat_map(|c| c.contact_teachers.iter().map(String::as_str))
                .collect();
            teachers.sort();
            teachers.dedup();
            let mut records: Option<Vec<crate::domain::AbsenceRecord>> = None;
            for teacher in teachers {
                let key = format!("teacher:{teacher}:{}", from.format("%Y-%m"));
                let Some(user) = self.matrix_id(teacher).await? else {
                    continue;
                };
                if records.is_none() {
                    // Further back than the month: the patterns need weeks.
                    let since = crate::cases::digest::pattern_from(to).min(from);
                    records = Some(self.records_of(&pupils, since, to).await?);
                }
                let d = teacher_digest(
                    teacher,
                    &classes,
                    &pupils,
                    records.as_deref().unwrap_or(&[]),
                    &cases,
                    from,
                    to,
                    config,
                );
                let r = self
                    .inner
                    .renderer
                    .render(Document::DigestTeacher, &teacher_digest_context(&d))?;
                let post = notice(&direct_room(&user), &r.plain, &r.html, std::slice::from_ref(&user));
                stats.teachers += self
                    .store()
                    .relay_posts(Some(Claim::Digest(&key)), None, &[post], &[])
                    .await?;
            }
            let staff = self.inner.cases.school(school);
            let mut leaders = Vec::new();
            for id in staff.avdelingsleder.iter().chain(staff.ledelse.iter()) {
                if let Some(m) = self.matrix_id(id).await? {
                    leaders.push(m);
                }
            }
            // Between the reviews: a class without any registrations for
            // days while the rest of the school has them is told to
            // leadership at once (once per class and week).
            let (gap_from, gap_to) = (today - Duration::days(GAP_WINDOW_DAYS), today - Duration::days(1));
            let recent = self.records_of(&pupils, gap_from, gap_to).await?;
            let week = today.format("%G-W%V");
            for gap in registration_gaps(&classes, &pupils, &recent, gap_from, gap_to, GAP_DAYS) {
                let key = format!("gap:{school}:{}:{week}", gap.class);
                let plain = format!(
                    "Mulig hull i fraværsføringen: {} har ingen registreringer {}–{} ({}), mens resten av skolen har det. Sjekk at fraværet blir ført.",
                    gap.class_name,
                    crate::domain::dates::norwegian(gap.from),
                    crate::domain::dates::norwegian(gap.to),
                    crate::render::count(gap.days, "skoledag", "skoledager")
                );
                let post = notice(
                    &school_room(school),
                    &plain,
                    &crate::matrix::escape_html(&plain),
                    &leaders,
                );
                stats.gaps += self
                    .store()
                    .relay_posts(Some(Claim::Digest(&key)), None, &[post], &[])
                    .await?;
            }
            // Twice per half-year: the whole school, for leadership.
            let (autumn, spring) = self.inner.term_starts;
            let start = half_year_start(today, autumn, spring);
            if let Some((n, from, to)) = school_review(start, today) {
                let key = format!("school:{school}:{start}:{n}");
                let before = from - (to - from) - Duration::days(1);
                let records = self.records_of(&pupils, before, to).await?;
                let d = school_digest(school, &room.name, &pupils, &records, &cases, from, to, config);
                let gaps = registration_gaps(&classes, &pupils, &records, from, to, GAP_DAYS);
                let r = self
                    .inner
                    .renderer
                    .render(Document::DigestSchool, &school_digest_context(&d, &gaps))?;
                let mut posts = vec![notice(&school_room(school), &r.plain, &r.html, &leaders)];
                posts.extend(self.school_chart(school, &room.name, &pupils, &records, from, to));
                stats.schools += self
                    .store()
                    .relay_posts(Some(Claim::Digest(&key)), None, &posts, &[])
                    .await?
                    .min(1);
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_reviews_fall_twice_per_half_year() {
        let start = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(school_review(start, d("2026-09-01")), None);
        assert_eq!(school_review(start, d("2026-10-10")), Some((1, start, d("2026-10-09"))));
        assert_eq!(school_review(start, d("2026-12-20")), Some((2, start, d("2026-12-18"))));
    }
}
