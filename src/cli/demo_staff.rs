//! The demo's scripted staff: real Matrix users who log in to the demo's
//! Synapse and run the routine with the same `!` commands people type, as
//! the simulated clock moves week by week. Contact teachers log contacts in
//! their direct rooms; the avdelingsleder maps, holds the meeting and makes
//! agreements in the card's thread; the evaluations are held when due; one
//! case is resolved and closed, one goes to phase 4 with a referral and a
//! fagkoordinator who accepts in the case room.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::events::relation::Thread;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, Relation, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedEventId, RoomId};
use matrix_sdk::{Client, Room};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tilstede::cases::model::Case;
use tilstede::domain::dates::school_date_utc;
use tilstede::matrix::{card_anchor, case_room, direct_room, school_room};
use tilstede::store::Store;

/// A bot message one of the staff saw.
#[derive(Debug, Clone)]
struct Seen {
    room: String,
    sender: String,
    thread_root: Option<String>,
    mentions: Vec<String>,
    body: String,
}

/// One scripted person: a logged-in Matrix client with its own device,
/// syncing in the background and accepting every invitation.
struct Actor {
    user: String,
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Actor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Actor {
    async fn login(server: &str, dir: &Path, user: &str, password: &str) -> Result<Actor> {
        let local = user.trim_start_matches('@').split(':').next().unwrap_or("ansatt");
        let store = dir.join(local);
        let _ = std::fs::remove_dir_all(&store);
        let client = Client::builder()
            .homeserver_url(server)
            .sqlite_store(&store, None)
            .request_config(RequestConfig::new().retry_limit(3).timeout(Duration::from_secs(60)))
            .build()
            .await?;
        client
            .matrix_auth()
            .login_username(user, password)
            .initial_device_display_name("tilstede demo")
            .await
            .with_context(|| format!("{user} kunne ikke logge inn"))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            client.add_event_handler(move |ev: OriginalSyncRoomMessageEvent, room: Room| {
                let seen = seen.clone();
                async move {
                    let body = match &ev.content.msgtype {
                        MessageType::Notice(n) => n.body.clone(),
                        MessageType::Text(t) => t.body.clone(),
                        _ => return,
                    };
                    let thread_root = match &ev.content.relates_to {
                        Some(Relation::Thread(t)) => Some(t.event_id.to_string()),
                        _ => None,
                    };
                    let mentions = ev
                        .content
                        .mentions
                        .as_ref()
                        .map(|m| m.user_ids.iter().map(|u| u.to_string()).collect())
                        .unwrap_or_default();
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
                        room: room.room_id().to_string(),
                        sender: ev.sender.to_string(),
                        thread_root,
                        mentions,
                        body,
                    });
                }
            });
        }
        client.sync_once(SyncSettings::default()).await?;
        let task = {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    let synced = client
                        .sync_once(SyncSettings::default().timeout(Duration::from_secs(5)))
                        .await;
                    if synced.is_err() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    for room in client.invited_rooms() {
                        let _ = client.join_room_by_id(room.room_id()).await;
                    }
                }
            })
        };
        Ok(Actor {
            user: client.user_id().context("bruker-id")?.to_string(),
            client,
            seen,
            task,
        })
    }

    /// The room, once joined and synced.
    async fn room(&self, room_id: &str) -> Result<Room> {
        let id = RoomId::parse(room_id)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(room) = self.client.get_room(&id)
                && room.state() == matrix_sdk::RoomState::Joined
            {
                return Ok(room);
            }
            if Instant::now() > deadline {
                bail!("{} kom ikke inn i rommet {room_id}", self.user);
            }
            let _ = self.client.join_room_by_id(&id).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Says `text` (in the thread of `root`, if given) and returns the bot's
    /// answer: its message to this person in the same thread.
    async fn say(&self, bot: &str, room_id: &str, text: &str, root: Option<&str>) -> Result<String> {
        let room = self.room(room_id).await?;
        let before = self.seen.lock().unwrap_or_else(|p| p.into_inner()).len();
        let mut content = RoomMessageEventContent::text_plain(text);
        if let Some(root) = root {
            let root = OwnedEventId::try_from(root)?;
            content.relates_to = Some(Relation::Thread(Thread::plain(root.clone(), root)));
        }
        let sent = room.send(content).await?.response.event_id.to_string();
        let root = root.map(str::to_string).unwrap_or(sent);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = self.seen.lock().unwrap_or_else(|p| p.into_inner())[before..]
                .iter()
                .find(|m| {
                    m.sender == bot
                        && m.room == room_id
                        && m.thread_root.as_deref() == Some(root.as_str())
                        && m.mentions.contains(&self.user)
                        && is_answer(&m.body)
                })
                .map(|m| m.body.clone());
            if let Some(answer) = answer {
                return Ok(answer);
            }
            if Instant::now() > deadline {
                bail!("boten svarte ikke på «{text}» fra {}", self.user);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether a bot message in a command's thread is the answer to it, not a
/// notice or document the command caused (they open with «Sak …» or a title
/// in capitals, and may arrive first).
fn is_answer(body: &str) -> bool {
    let first = body.lines().next().unwrap_or_default();
    let title = first
        .split_whitespace()
        .next()
        .is_some_and(|w| w.chars().count() > 3 && w.chars().all(|c| !c.is_lowercase()));
    !first.starts_with("Sak ") && !title
}

/// What the scripted staff did, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Commands typed.
    pub commands: usize,
    /// Of those, answered with a refusal or an error.
    pub refused: usize,
    /// Contacts logged by contact teachers.
    pub contacts: usize,
}

/// The scripted staff of one demo.
pub struct Staff {
    server: String,
    dir: PathBuf,
    store: Store,
    bot: String,
    passwords: BTreeMap<String, String>,
    actors: BTreeMap<String, Actor>,
    /// The avdelingsleder of every school.
    pub leader: String,
    /// The fagkoordinator from PPT.
    pub coordinator: String,
    contacted: BTreeSet<String>,
    resolved: Option<String>,
    phase4: Option<String>,
    no_concern: usize,
    done: BTreeSet<String>,
    /// What they did so far.
    pub tally: Tally,
}

/// How many cases the contact teachers answer with «ingen bekymring».
const NO_CONCERN: usize = 2;

/// Days from an agreement to its evaluation in the demo.
const EVALUATION_DAYS: i64 = 14;

impl Staff {
    /// Staff on `server`; `passwords` maps each Matrix id to its password.
    /// `dir` keeps their client stores.
    pub fn new(
        server: String,
        dir: PathBuf,
        store: Store,
        bot: String,
        passwords: BTreeMap<String, String>,
        leader: String,
        coordinator: String,
    ) -> Staff {
        Staff {
            server,
            dir,
            store,
            bot,
            passwords,
            actors: BTreeMap::new(),
            leader,
            coordinator,
            contacted: BTreeSet::new(),
            resolved: None,
            phase4: None,
            no_concern: 0,
            done: BTreeSet::new(),
            tally: Tally::default(),
        }
    }

    /// Logs `user` in (once) and returns them.
    async fn actor(&mut self, user: &str) -> Result<&Actor> {
        if !self.actors.contains_key(user) {
            let password = self
                .passwords
                .get(user)
                .with_context(|| format!("{user} har ikke passord"))?;
            let actor = Actor::login(&self.server, &self.dir, user, password).await?;
            self.actors.insert(user.to_string(), actor);
        }
        Ok(&self.actors[user])
    }

    /// Logs the fixed roles in before anything happens, so their devices
    /// exist when the bot first encrypts for them.
    pub async fn log_in(&mut self) -> Result<()> {
        let (leader, coordinator) = (self.leader.clone(), self.coordinator.clone());
        self.actor(&leader).await?;
        self.actor(&coordinator).await?;
        Ok(())
    }

    /// `user` types `text`; the answer is printed, refusals counted.
    async fn type_command(&mut self, user: &str, room_key: &str, root: Option<&str>, text: &str) -> Result<String> {
        let room = self
            .store
            .matrix_room(room_key)
            .await?
            .with_context(|| format!("rommet {room_key} finnes ikke ennå"))?
            .room_id;
        let bot = self.bot.clone();
        let answer = self.actor(user).await?.say(&bot, &room, text, root).await?;
        self.tally.commands += 1;
        let first = answer.lines().next().unwrap_or_default().to_string();
        if first.starts_with("Nei") || first.contains("gikk galt") || !answer.contains("Registrert") {
            self.tally.refused += 1;
        }
        let who = user.trim_start_matches('@').split(':').next().unwrap_or(user);
        println!("     {who}: {text}\n       → {first}");
        Ok(answer)
    }

    /// The event id of `case`'s card, for commands in its thread.
    async fn card(&self, case: &Case) -> Result<Option<String>> {
        Ok(self
            .store
            .outbox_by_anchor(&school_room(&case.pupil.school), &card_anchor(&case.number))
            .await?
            .and_then(|e| e.event_id))
    }

    /// One round of the routine at `now` (the simulated clock).
    pub async fn act(&mut self, now: DateTime<Utc>) -> Result<()> {
        let today = school_date_utc(now);
        let cases = self.store.cases_raw(None, false).await?;
        for case in &cases {
            if case.phase.number() == 2 && !self.contacted.contains(&case.number) {
                self.contact(case).await?;
            }
        }
        for number in [self.resolved.clone(), self.phase4.clone()].into_iter().flatten() {
            let Some(case) = self.store.case_state(&number).await? else {
                continue;
            };
            if !case.is_open() || self.done.contains(&number) {
                continue;
            }
            if case.phase.number() == 3 && case.agreements.is_empty() {
                self.mapping_meeting(&case, today).await?;
            } else if let Some(a) = case.current_agreement()
                && !case.current_agreement_evaluated()
                && a.evaluation_date <= today
            {
                if Some(&number) == self.resolved.as_ref() {
                    self.resolve(&case).await?;
                } else {
                    self.escalate_to_phase4(&case, today).await?;
                }
                self.done.insert(number);
            }
        }
        Ok(())
    }

    /// A contact teacher calls home about a case in phase 2: the first two
    /// give concern (they go on through the routine), the next ones none.
    async fn contact(&mut self, case: &Case) -> Result<()> {
        let concern = if self.resolved.is_none() || self.phase4.is_none() {
            true
        } else if self.no_concern < NO_CONCERN {
            false
        } else {
            return Ok(());
        };
        let Some(teacher) = case.contact_teacher.as_deref() else {
            return Ok(());
        };
        let Some(user) = self.store.staff_member(teacher).await?.and_then(|p| p.matrix_id) else {
            return Ok(());
        };
        let room = direct_room(&user);
        if self.store.matrix_room(&room).await?.is_none() {
            return Ok(()); // the prompt has not reached the teacher yet
        }
        let outcome = if concern { "bekymring" } else { "ingen-bekymring" };
        let text = format!("!kontakt {} telefon {outcome}", case.number);
        self.type_command(&user, &room, None, &text).await?;
        self.contacted.insert(case.number.clone());
        self.tally.contacts += 1;
        if concern && self.resolved.is_none() {
            self.resolved = Some(case.number.clone());
        } else if concern {
            self.phase4 = Some(case.number.clone());
        } else {
            self.no_concern += 1;
        }
        Ok(())
    }

    /// Phase 3: mapping with the pupil's own view, measures, the meeting
    /// (agenda, then referat) and the samarbeidsavtale, in the card's thread.
    async fn mapping_meeting(&mut self, case: &Case, today: NaiveDate) -> Result<()> {
        let n = &case.number;
        let room = school_room(&case.pupil.school);
        let root = self.card(case).await?;
        let root = root.as_deref();
        let leader = self.leader.clone();
        let due = today + Days::days(EVALUATION_DAYS);
        let evaluation = due;
        let lines = [
            format!("!kartlegg {n} voksne risiko Ingen fast voksen å gå til om morgenen"),
            format!("!kartlegg {n} medelever ressurs Har en god venn i klassen"),
            format!("!elevsyn {n} deltok=ja Vil gjerne begynne dagen med noen jeg kjenner"),
            format!("!tiltak {n} voksne kontaktlærer {due} Fast voksen tar imot ved ankomst"),
            format!("!tiltak {n} 5 foresatte {due} Følger til skoleporten de første ukene"),
            format!("!møte {n} {today} 08:00 sted=«Møterom 2»"),
            format!("!deltakere {n} elev foresatt kontaktlærer avdelingsleder"),
            format!("!vedtak {n} Kontaktlærer ringer hjem fredager og forteller hvordan uka gikk"),
            format!("!holdt {n}"),
            format!(
                "!avtale {n} mål=«Eleven er på skolen hver dag» delmål=«Møter til første time;2;1,2» plan-b=«Kontaktlærer ringer hjem innen kl. 9» plan-b-ansvarlig=kontaktlærer til-stede=eleven til-stede=foresatte evaluering={evaluation}"
            ),
        ];
        for line in lines {
            self.type_command(&leader, &room, root, &line).await?;
        }
        Ok(())
    }

    /// The evaluation says the goal was reached; the case is closed as resolved.
    async fn resolve(&mut self, case: &Case) -> Result<()> {
        let n = &case.number;
        let room = school_room(&case.pupil.school);
        let root = self.card(case).await?;
        let leader = self.leader.clone();
        let text = format!(
            "!evaluer {n} løst mål=nådd delmål=1:nådd tiltak=1:gjennomført,2:gjennomført plan-b=ikke-brukt elevsyn=«Det går bedre nå» bekreft"
        );
        self.type_command(&leader, &room, root.as_deref(), &text).await?;
        if self.store.case_state(n).await?.is_some_and(|c| c.is_open()) {
            self.type_command(&leader, &room, root.as_deref(), &format!("!lukk {n} løst"))
                .await?;
        }
        Ok(())
    }

    /// The evaluation finds no change: phase 4, a referral to PPT, the
    /// phase 4 meeting and a fagkoordinator who accepts in the case room.
    async fn escalate_to_phase4(&mut self, case: &Case, today: NaiveDate) -> Result<()> {
        let n = case.number.clone();
        let room = school_room(&case.pupil.school);
        let root = self.card(case).await?;
        let root = root.as_deref();
        let leader = self.leader.clone();
        let coordinator = self.coordinator.clone();
        let text = format!(
            "!evaluer {n} uendret mål=ikke-nådd delmål=1:ikke-nådd tiltak=1:delvis,2:gjennomført plan-b=virket-ikke vurdert=ppt elevsyn=«Det er fortsatt vanskelig om morgenen»"
        );
        self.type_command(&leader, &room, root, &text).await?;
        if self.store.case_state(&n).await?.is_some_and(|c| c.phase.number() != 4) {
            self.type_command(&leader, &room, root, &format!("!fase {n} 4")).await?;
        }
        let lines = [
            format!("!henvis {n} ppt rapport sendt={today}"),
            format!("!møte {n} {today} 13:00 sted=«Møterom 1» ledelsen"),
            format!("!koordinator {n} {coordinator} ppt"),
        ];
        for line in lines {
            self.type_command(&leader, &room, root, &line).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.store.matrix_room(&case_room(&n)).await?.is_none() {
            if Instant::now() > deadline {
                bail!("saksrommet for {n} ble ikke laget");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.type_command(&coordinator, &case_room(&n), None, &format!("!aksepter {n}"))
            .await?;
        Ok(())
    }
}
