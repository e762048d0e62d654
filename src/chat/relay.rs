//! Queued case notices → Matrix posts. Each notice is relayed in one store
//! transaction with the posts it becomes, so a crash neither loses nor
//! doubles one.

use super::card::card;
use super::{Chat, ChatError};
use crate::cases::Recipient;
use crate::cases::model::Case;
use crate::cases::numbers::Comparison;
use crate::cases::{Notice, NoticeKind, RessursteamReason};
use crate::matrix::{case_card, case_card_update, case_room, case_thread, direct_room, notice};
use crate::render::{Document, Rendered, case_context, case_context_for_meeting, notice_context};
use crate::store::{CardText, Claim, NewPost, QueuedNotification};
use chrono::{DateTime, Utc};

/// Notices read per round.
const BATCH: i64 = 100;

/// The documents that go with a notice (guides, agendas, templates).
fn documents(kind: &NoticeKind) -> &'static [Document] {
    match kind {
        NoticeKind::ContactParents { again: false, .. } => &[Document::FirstConversation],
        NoticeKind::CallMeeting { .. } => &[Document::AgendaPhase3],
        // The absence persists: the pupil conversation guide goes along.
        NoticeKind::ToRessursteam {
            reason: RessursteamReason::Phase4,
        } => &[Document::AgendaPhase4, Document::PupilConversation],
        NoticeKind::ToRessursteam {
            reason: RessursteamReason::Evaluated,
        } => &[Document::Evaluering],
        NoticeKind::AgreementMade { .. } => &[Document::Samarbeidsavtale],
        NoticeKind::EvaluationDue { .. } => &[Document::Evaluering, Document::PupilConversation],
        NoticeKind::MeetingSet { .. } => &[Document::AgendaPhase3],
        NoticeKind::MeetingHeld { .. } => &[Document::Referat],
        _ => &[],
    }
}

impl Chat {
    /// Relays every queued case notice; returns how many posts were enqueued.
    /// Safe to run from several places at once: each notice is claimed once.
    pub async fn relay(&self, now: DateTime<Utc>) -> Result<usize, ChatError> {
        let mut posts = 0;
        loop {
            let queued = self.store().notifications(false, BATCH).await?;
            for q in &queued {
                posts += self.relay_one(q, now).await?;
            }
            if (queued.len() as i64) < BATCH {
                return Ok(posts);
            }
        }
    }

    /// The card for `case` in `room`: created the first time, edited when
    /// its text changed, else nothing.
    pub(super) async fn card_posts(
        &self,
        room: &str,
        case: &Case,
        posts: &mut Vec<NewPost>,
        cards: &mut Vec<CardText>,
    ) -> Result<(), ChatError> {
        let responsible = self
            .matrix_id(&case.responsible.id)
            .await?
            .unwrap_or_else(|| case.responsible.id.clone());
        let (plain, html) = card(case, &responsible);
        match self.store().chat_card(room, &case.number).await? {
            None => posts.push(case_card(room, &case.number, &plain, &html, &[])),
            Some(old) if old != plain => posts.push(case_card_update(room, &case.number, &plain, &html, &[])),
            Some(_) => return Ok(()),
        }
        cards.push((room.to_string(), case.number.clone(), plain));
        Ok(())
    }

    /// Brings the case card up to date after a change that queued no notice.
    pub(super) async fn refresh_card(&self, case: &Case) -> Result<(), ChatError> {
        let Some(room) = self.school_room(&case.pupil.school) else {
            return Ok(());
        };
        let (mut posts, mut cards) = (Vec::new(), Vec::new());
        self.card_posts(&room, case, &mut posts, &mut cards).await?;
        if !posts.is_empty() {
            self.store()
                .relay_posts(None, Some(&case.number), &posts, &cards)
                .await?;
        }
        Ok(())
    }

    /// The case room's key when the case has one (made or planned), with its members.
    pub(super) async fn case_room_members(&self, number: &str) -> Result<Option<(String, Vec<String>)>, ChatError> {
        let key = case_room(number);
        if let Some(room) = self.store().matrix_room(&key).await? {
            return Ok(Some((key, room.members)));
        }
        Ok(self.store().matrix_room_plan(&key).await?.map(|p| (key, p.members)))
    }

    async fn render_documents(
        &self,
        kind: &NoticeKind,
        case: &Case,
        extra: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(Vec<(Document, Rendered)>, Option<Comparison>), ChatError> {
        let mut docs = documents(kind).to_vec();
        if case.phase == crate::cases::model::Phase::Further {
            for d in &mut docs {
                if *d == Document::AgendaPhase3 {
                    *d = Document::AgendaPhase4;
                }
            }
        }
        if docs.is_empty() {
            return Ok((Vec::new(), None));
        }
        let numbers: Option<Comparison> = serde_json::from_value(extra["numbers"].clone()).ok();
        // The agenda and the referat are about the meeting the notice names.
        let context = match kind {
            NoticeKind::MeetingSet { meeting } | NoticeKind::MeetingHeld { meeting } => {
                case_context_for_meeting(case, now, numbers.as_ref(), *meeting)
            }
            _ => case_context(case, now, numbers.as_ref()),
        };
        // An evaluation looks at the agreement period (frozen when made);
        // the other documents at the last weeks.
        let frozen = case
            .evaluations
            .last()
            .filter(|_| docs.contains(&Document::Evaluering) && numbers.is_none())
            .and_then(|e| e.numbers);
        let numbers = numbers.or(frozen);
        let lines = self.pattern_lines(case, numbers.as_ref(), now).await?;
        let context = crate::render::with_patterns(context, &lines);
        let rendered = docs
            .iter()
            .map(|d| Ok((*d, self.inner.renderer.render(*d, &context)?)))
            .collect::<Result<Vec<_>, ChatError>>()?;
        Ok((rendered, numbers))
    }

    async fn relay_one(&self, q: &QueuedNotification, now: DateTime<Utc>) -> Result<usize, ChatError> {
        let n: &Notice = &q.notice;
        let claim = Some(Claim::Notification(&n.key));
        let Some(case) = self.store().case_state(&n.case).await? else {
            tracing::warn!(case = %n.case, "notice about an unknown case dropped");
            return Ok(self.store().relay_posts(claim, None, &[], &[]).await?);
        };
        let text = self
            .inner
            .renderer
            .render(Document::Notice, &notice_context(n, &case, &q.extra))?;
        let (docs, numbers) = self.render_documents(&n.kind, &case, &q.extra, now).await?;
        let school_room = self.school_room(&case.pupil.school);
        let attached = self
            .attachments(school_room.as_deref(), &n.kind, &case, &docs, numbers.as_ref(), now)
            .await?;
        // Queued for the archive before the notice is claimed: a crash in
        // between replays the notice, and the archive outbox takes each
        // document once.
        for entry in &attached.archive {
            self.store().archive_enqueue(entry, now).await?;
        }
        let docs: Vec<Rendered> = docs.into_iter().map(|(_, r)| r).collect();
        let person = match &n.recipient {
            Recipient::Person { id, .. } => Some(self.matrix_id(id).await?),
            Recipient::Ressursteam { .. } => None,
        };
        // Who must act is mentioned: the person addressed, or for the
        // ressursteam the one responsible.
        let mentions: Vec<String> = match &person {
            Some(p) => p.iter().cloned().collect(),
            None => self.matrix_id(&case.responsible.id).await?.into_iter().collect(),
        };
        let case_room = self.case_room_members(&case.number).await?;
        let (mut posts, mut cards) = (Vec::new(), Vec::new());
        if let Some(room) = self.school_room(&case.pupil.school) {
            self.card_posts(&room, &case, &mut posts, &mut cards).await?;
            posts.push(case_thread(&room, &case.number, &text.plain, &text.html, &mentions));
            for d in &docs {
                posts.push(case_thread(&room, &case.number, &d.plain, &d.html, &[]));
            }
            posts.extend(attached.posts);
        }
        let in_case_room = |user: &str| case_room.as_ref().is_some_and(|(_, m)| m.iter().any(|x| x == user));
        match person {
            // People in the case room read it there; others get a direct message.
            Some(Some(user)) if !in_case_room(&user) => {
                let room = direct_room(&user);
                posts.push(notice(&room, &text.plain, &text.html, std::slice::from_ref(&user)));
                for d in &docs {
                    posts.push(notice(&room, &d.plain, &d.html, &[]));
                }
            }
            Some(None) => {
                tracing::warn!(case = %case.number, key = %n.key, "the person addressed has no Matrix id in the roster");
            }
            _ => {}
        }
        if let Some((room, _)) = &case_room {
            posts.push(notice(room, &text.plain, &text.html, &mentions));
        }
        if posts.is_empty() {
            // Neither a room for the school nor a Matrix id: tell IT, once
            // per school (the notice itself stays in the store and the CLI).
            let plain = format!(
                "Varsler for skolen «{}» kan ikke leveres i Matrix: skolen har ikke noe ressursteam-rom i oppsettet ([[matrix.schools]]), og mottakerne mangler Matrix-id.",
                case.pupil.school
            );
            let alerts: Vec<NewPost> = self
                .inner
                .matrix
                .admins
                .iter()
                .map(|admin| {
                    notice(
                        &direct_room(admin),
                        &plain,
                        &crate::matrix::escape_html(&plain),
                        std::slice::from_ref(admin),
                    )
                })
                .collect();
            let key = format!("unrouted:{}", case.pupil.school);
            self.store()
                .relay_posts(Some(Claim::Digest(&key)), None, &alerts, &[])
                .await?;
        }
        Ok(self
            .store()
            .relay_posts(claim, Some(&case.number), &posts, &cards)
            .await?)
    }
}
