//! What goes into a case thread besides text: the weekly attendance chart
//! (an encrypted `m.image`) when a case reaches its evaluation, and each
//! final document as PDF/A (an encrypted `m.file`), which is also queued
//! for the municipal archive when `[archive]` is configured.
//!
//! Everything here carries the case number, initials and class, nothing
//! more: the chart's title and alt text, the file names, the PDF's title.

use super::{Chat, ChatError};
use crate::archive::DocumentKind;
use crate::archive::arkivmelding::{self, ArchiveDocument};
use crate::archive::pdf::{NamedImage, PdfInput, render_pdf};
use crate::cases::model::Case;
use crate::cases::numbers::Comparison;
use crate::cases::{NoticeKind, RessursteamReason};
use crate::insight::Window;
use crate::insight::charts::{CaseChart, Chart, weekly_attendance};
use crate::matrix::case_thread_media;
use crate::render::{Document, Rendered};
use crate::store::{Media, NewArchiveEntry, NewPost};
use chrono::{DateTime, Duration, Utc};

/// The chart's name in the PDF (`![…](oppmote-per-uke)`).
const CHART_NAME: &str = "oppmote-per-uke";

/// Weeks shown after the agreement period, when there are any.
const WEEKS_AFTER: i64 = 4;

/// What a notice adds to the thread and the archive.
#[derive(Debug, Default)]
pub(super) struct Attachments {
    /// Image and file posts for the case thread.
    pub posts: Vec<NewPost>,
    /// Final documents for the archive outbox.
    pub archive: Vec<NewArchiveEntry>,
}

/// The final document a notice carries, with its sequence in the case.
fn final_document(kind: &NoticeKind, case: &Case) -> Option<(Document, u32)> {
    match kind {
        NoticeKind::MeetingHeld { meeting } => Some((Document::Referat, *meeting)),
        NoticeKind::AgreementMade { agreement, .. } => Some((Document::Samarbeidsavtale, *agreement)),
        NoticeKind::ToRessursteam {
            reason: RessursteamReason::Evaluated,
        } => case.evaluations.last().map(|e| (Document::Evaluering, e.agreement)),
        _ => None,
    }
}

/// Whether the notice brings the case to its evaluation (the chart goes along).
fn at_evaluation(kind: &NoticeKind) -> bool {
    matches!(
        kind,
        NoticeKind::EvaluationDue { .. }
            | NoticeKind::ToRessursteam {
                reason: RessursteamReason::Evaluated
            }
    )
}

/// An ASCII-only file name stem for the case (`S-2026-0001`).
fn stem(case: &Case) -> String {
    case.number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

impl Chat {
    /// The weekly attendance chart of `case`: with agreement numbers, from
    /// the period before the agreement to a few weeks after it (the
    /// agreement shaded); otherwise the last weeks up to `now`.
    pub(super) async fn case_chart(
        &self,
        case: &Case,
        numbers: Option<&Comparison>,
        now: DateTime<Utc>,
    ) -> Result<Option<Chart>, ChatError> {
        let today = crate::domain::dates::school_date_utc(now);
        let (window, agreement) = match numbers {
            Some(n) => (
                Window::new(
                    n.before.from.min(n.during.from),
                    (n.during.to + Duration::weeks(WEEKS_AFTER)).min(today).max(n.during.to),
                ),
                Some((n.during.from, n.during.to)),
            ),
            None => (
                Window::new(
                    today - Duration::weeks(super::patterns::CASE_PATTERN_WEEKS) + Duration::days(1),
                    today,
                ),
                None,
            ),
        };
        let records = self
            .store()
            .pupil_records(&case.pupil.id, window.from, window.to)
            .await?;
        let insight = crate::insight::of_records(
            &records,
            window,
            &self.inner.cases.calendar,
            self.inner.cases.lessons_per_day,
        );
        let label = format!("{} · {}", case.number, case.pupil_label());
        match weekly_attendance(&CaseChart {
            label: &label,
            weeks: &insight.weeks,
            agreement,
        }) {
            Ok(chart) => Ok(Some(chart)),
            Err(e) => {
                tracing::warn!(case = %case.number, error = %e, "no attendance chart");
                Ok(None)
            }
        }
    }

    /// The chart and PDF posts for a notice's thread, and the documents to
    /// archive. `docs` are the documents rendered for the notice; `numbers`
    /// the agreement numbers they were rendered with.
    pub(super) async fn attachments(
        &self,
        room: Option<&str>,
        kind: &NoticeKind,
        case: &Case,
        docs: &[(Document, Rendered)],
        numbers: Option<&Comparison>,
        now: DateTime<Utc>,
    ) -> Result<Attachments, ChatError> {
        let mut out = Attachments::default();
        let chart = if at_evaluation(kind) {
            self.case_chart(case, numbers, now).await?
        } else {
            None
        };
        if let (Some(room), Some(chart)) = (room, &chart) {
            out.posts.push(case_thread_media(
                room,
                &case.number,
                &chart.alt,
                Media {
                    mime: "image/png".into(),
                    file_name: format!("oppmote-{}.png", stem(case)),
                    width: Some(chart.width),
                    height: Some(chart.height),
                    data: chart.png.clone(),
                },
            ));
        }
        let Some((document, sequence)) = final_document(kind, case) else {
            return Ok(out);
        };
        let Some((_, rendered)) = docs.iter().find(|(d, _)| *d == document) else {
            return Ok(out);
        };
        let Some(archive_kind) = DocumentKind::of(document) else {
            return Ok(out);
        };
        let Some(pdf) = self
            .final_pdf(case, archive_kind, sequence, &rendered.markdown, chart.as_ref(), now)
            .await?
        else {
            return Ok(out);
        };
        if let Some(room) = room {
            out.posts.push(case_thread_media(
                room,
                &case.number,
                &pdf.file_name,
                pdf_media(&pdf.file_name, &pdf.pdf),
            ));
        }
        out.archive.extend(pdf.archive);
        Ok(out)
    }
}

/// A final document rendered to PDF/A, with its archive entry when
/// `[archive]` is on.
#[derive(Debug)]
pub(super) struct FinalPdf {
    /// The file name (`overforing-S-2026-0001-1.pdf`).
    pub file_name: String,
    /// The PDF/A.
    pub pdf: Vec<u8>,
    /// The archive outbox entry.
    pub archive: Option<NewArchiveEntry>,
}

/// The media of a PDF file post.
pub(super) fn pdf_media(file_name: &str, pdf: &[u8]) -> Media {
    Media {
        mime: "application/pdf".into(),
        file_name: file_name.to_string(),
        width: None,
        height: None,
        data: pdf.to_vec(),
    }
}

impl Chat {
    /// Renders a final document to PDF/A (with the chart, when there is
    /// one) and builds its arkivmelding when the archive is on; `None` when
    /// the PDF could not be rendered (logged).
    pub(super) async fn final_pdf(
        &self,
        case: &Case,
        archive_kind: DocumentKind,
        sequence: u32,
        markdown: &str,
        chart: Option<&Chart>,
        now: DateTime<Utc>,
    ) -> Result<Option<FinalPdf>, ChatError> {
        let title = format!("{}, sak {}", archive_kind.title(), case.number);
        let mut markdown = markdown.to_string();
        let images: Vec<NamedImage<'_>> = chart
            .iter()
            .map(|c| NamedImage {
                name: CHART_NAME,
                caption: &c.alt,
                png: &c.png,
            })
            .collect();
        if let Some(c) = chart {
            markdown.push_str(&format!("\n\n## Oppmøte per uke\n\n![{}]({CHART_NAME})\n", c.alt));
        }
        let pdf = match render_pdf(&PdfInput {
            title: &title,
            markdown: &markdown,
            images: &images,
            created: now,
        }) {
            Ok(pdf) => pdf,
            Err(e) => {
                tracing::error!(case = %case.number, error = %e, "PDF not rendered");
                return Ok(None);
            }
        };
        let file_name = format!("{}-{}-{sequence}.pdf", archive_kind.name(), stem(case));
        let mut archive = None;
        if let Some(config) = self.inner.archive.as_ref().filter(|c| c.enabled) {
            let school_name = self
                .store()
                .schools()
                .await?
                .into_iter()
                .find(|s| s.id == case.pupil.school)
                .map(|s| s.name)
                .unwrap_or_else(|| case.pupil.school.clone());
            let folder_title = format!("Elevmappe {}", case.pupil_label());
            let doc = ArchiveDocument {
                kind: archive_kind,
                case_number: &case.number,
                sequence,
                document_date: crate::domain::dates::school_date_utc(now),
                pupil_id: &case.pupil.id,
                folder_title: &folder_title,
                school_name: &school_name,
                pdf: &pdf,
                created: now,
            };
            let m = arkivmelding::build(&doc, config);
            archive = Some(NewArchiveEntry {
                document_key: m.document_key.clone(),
                case_number: case.number.clone(),
                school: case.pupil.school.clone(),
                document_kind: archive_kind.name().into(),
                title: m.title.clone(),
                file_reference: m.file_reference.clone(),
                arkivmelding: m.xml,
                document: pdf.clone(),
            });
        }
        Ok(Some(FinalPdf {
            file_name,
            pdf,
            archive,
        }))
    }
}

impl Chat {
    /// Tells each school's leadership, in its ressursteam room, about
    /// documents the archive refused or never took (once per document);
    /// returns how many documents were reported.
    pub async fn archive_alerts(&self) -> Result<usize, ChatError> {
        let mut told = 0;
        for room in &self.inner.matrix.schools {
            let problems = self.store().archive_problems(Some(&room.school)).await?;
            if problems.is_empty() {
                continue;
            }
            let staff = self.inner.cases.school(&room.school);
            let mut leaders = Vec::new();
            for id in staff.avdelingsleder.iter().chain(staff.ledelse.iter()) {
                if let Some(m) = self.matrix_id(id).await? {
                    leaders.push(m);
                }
            }
            let mut plain = format!(
                "Arkivet tok ikke imot {}. IT må se på feilen; dokumentet ligger trygt hos oss til det er arkivert.",
                crate::render::count_len(problems.len(), "dokument", "dokumenter")
            );
            for p in &problems {
                plain.push_str(&format!("\n- {}: {}", p.title, p.error));
            }
            let post = crate::matrix::notice(
                &crate::matrix::school_room(&room.school),
                &plain,
                &crate::matrix::escape_html(&plain).replace('\n', "<br>"),
                &leaders,
            );
            let ids: Vec<i64> = problems.iter().map(|p| p.id).collect();
            let key = format!(
                "archive:{}:{}",
                room.school,
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            );
            self.store()
                .relay_posts(Some(crate::store::Claim::Digest(&key)), None, &[post], &[])
                .await?;
            self.store().archive_mark_notified(&ids).await?;
            told += ids.len();
        }
        Ok(told)
    }
}
