//! The case workflow in chat against a real Synapse: a finding opens a case,
//! its card and prompts arrive encrypted, people run the routine with
//! commands (with permissions by role), build an agreement in a dialogue,
//! and hand the case to a coordinator in an encrypted case room.

use crate::synapse::{Person, Seen, register, shared};
use chrono::{Datelike, Duration as Days, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tilstede::adapters::Parsed;
use tilstede::adapters::jsonl::parse_line;
use tilstede::cases::CaseConfig;
use tilstede::cases::config::SchoolStaff;
use tilstede::chat::Chat;
use tilstede::domain::dates::school_date_utc;
use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use tilstede::matrix::{Bot, MatrixConfig, SchoolRoom, case_room, direct_room, school_room};
use tilstede::render::Renderer;
use tilstede::rules::RuleSet;
use tilstede::store::Store;

fn roster(teacher: &str, leader: &str) -> Roster {
    let person = |id: &str, mx: &str| RosterPerson {
        id: id.into(),
        given_name: "Navn".into(),
        family_name: "Navnesen".into(),
        matrix_id: Some(mx.into()),
        school: Some("sk-01".into()),
    };
    Roster {
        schools: vec![RosterSchool {
            id: "sk-01".into(),
            name: "Eksempel skole".into(),
        }],
        classes: vec![
            RosterClass {
                id: "c5b".into(),
                school: "sk-01".into(),
                name: "5B".into(),
                grade: 5,
                contact_teachers: vec!["kl-1".into()],
            },
            RosterClass {
                id: "c6a".into(),
                school: "sk-01".into(),
                name: "6A".into(),
                grade: 6,
                contact_teachers: Vec::new(),
            },
        ],
        pupils: vec![
            RosterPupil {
                id: "p1".into(),
                school: "sk-01".into(),
                class: Some("c5b".into()),
                grade: 5,
                given_name: "Emma".into(),
                family_name: "Hansen".into(),
            },
            RosterPupil {
                id: "p2".into(),
                school: "sk-01".into(),
                class: Some("c6a".into()),
                grade: 6,
                given_name: "Jonas".into(),
                family_name: "Berg".into(),
            },
        ],
        staff: vec![person("kl-1", teacher), person("al-1", leader)],
    }
}

async fn wait_room(store: &Store, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = store.matrix_room(key).await.unwrap() {
            return r.room_id;
        }
        assert!(Instant::now() < deadline, "room {key} never made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Says `text` and waits for a new message from the bot in the same thread
/// that mentions the speaker and contains `expect`.
async fn ask(p: &Person, bot: &str, room: &str, text: &str, thread: Option<&str>, expect: &str) -> Seen {
    let old: Vec<String> = p.seen().into_iter().map(|m| m.event_id).collect();
    let id = p.say(room, text, thread).await;
    let root = thread.map(str::to_string).unwrap_or(id);
    p.wait_for(&format!("«{expect}» in answer to «{text}»"), |m| {
        m.sender == bot
            && m.room == room
            && m.thread_root.as_deref() == Some(root.as_str())
            && m.replaces.is_none()
            && m.mentions.contains(&p.user_id)
            && m.body.contains(expect)
            && !old.contains(&m.event_id)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_runs_in_chat_from_the_card_to_the_coordinator_accepting() {
    let server = shared();
    let kari = Person::new(server, "kari").await; // contact teacher
    let ola = Person::new(server, "ola").await; // avdelingsleder, in the ressursteam room
    let bup = Person::new(server, "bup").await; // the coordinator
    let (bot_user, password) = register(server, "tilstede").await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store.db").to_str().unwrap())
        .await
        .unwrap();
    store.upsert_roster(&roster(&kari.user_id, &ola.user_id)).await.unwrap();
    // One invalid day yesterday: the Bærum rules call that serious absence.
    let now = Utc::now();
    let today = school_date_utc(now);
    let line = format!(
        r#"{{"source":"vis","id":"r1","version":1,"pupil":"p1","school":"sk-01","date":"{}","kind":"day","validity":"invalid"}}"#,
        today - Days::days(1)
    );
    let Parsed::Record(record) = parse_line(&line, "test:1".into(), None) else {
        panic!("record");
    };
    store.ingest(&[record], &[]).await.unwrap();
    let rules = RuleSet::preset("baerum").unwrap();
    store.refresh_findings(&rules, today).await.unwrap();
    let mut cases = CaseConfig::baerum();
    cases.lessons_per_day = rules.lessons_per_day;
    cases.schools.insert(
        "sk-01".into(),
        SchoolStaff {
            avdelingsleder: Some("al-1".into()),
            ledelse: Vec::new(),
            ressursteam: Vec::new(),
        },
    );
    let synced = tilstede::workflow::sync_cases(&store, &cases, now).await.unwrap();
    assert_eq!(synced.opened, 1);

    let config = MatrixConfig {
        homeserver: server.url(),
        user: bot_user.clone(),
        password_env: "UNUSED".into(),
        store_dir: dir.path().join("matrix"),
        admins: Vec::new(),
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "sk-01".into(),
            name: "Ressursteam Eksempel skole".into(),
            members: vec![ola.user_id.clone()],
        }],
    };
    let chat = Chat::new(
        store.clone(),
        cases.clone(),
        config.clone(),
        Renderer::builtin().unwrap(),
    );
    let bot = Bot::start(config, &password, store.clone(), Arc::new(chat.clone()))
        .await
        .expect("bot start");
    bot.ensure_rooms().await.unwrap();
    let room = wait_room(&store, &school_room("sk-01")).await;
    let _tasks = bot.spawn();
    ola.join(&room).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posts = chat.relay(now).await.unwrap();
    assert!(posts >= 3, "card, prompt and guide at least: {posts}");
    bot.wake();

    // The card: case number, initials and class; never the name.
    let card = ola
        .wait_for("the case card", |m| {
            m.room == room && m.body.starts_with("Sak S-") && m.thread_root.is_none() && m.replaces.is_none()
        })
        .await;
    assert!(card.encrypted && card.notice);
    assert!(card.body.contains("E.H. (5B)"), "{}", card.body);
    assert!(!card.body.contains("Emma") && !card.body.contains("Hansen"));
    let number = card.body["Sak ".len()..].split(' ').next().unwrap().to_string();
    // The prompt in its thread mentions the contact teacher, who must act.
    let prompt = ola
        .wait_for("the prompt in the card's thread", |m| {
            m.thread_root.as_deref() == Some(card.event_id.as_str()) && m.mentions.contains(&kari.user_id)
        })
        .await;
    assert!(prompt.html.is_some() && prompt.encrypted);

    // The contact teacher gets a direct message, and answers there.
    let dm = wait_room(&store, &direct_room(&kari.user_id)).await;
    kari.join(&dm).await;
    kari.wait_for("the direct message", |m| m.room == dm && m.body.contains(&number))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ask(
        &kari,
        &bot_user,
        &dm,
        &format!("!fase {number} 4"),
        None,
        "Nei: kontaktlærer kan ikke bytte fase",
    )
    .await;
    let done = ask(
        &kari,
        &bot_user,
        &dm,
        &format!("!kontakt {number} telefon bekymring"),
        None,
        &format!("Registrert i sak {number}"),
    )
    .await;
    assert!(done.body.contains("Fase 3"), "{}", done.body);
    // The card follows the case by edits.
    ola.wait_for("the card edited to phase 3", |m| {
        m.replaces.as_deref() == Some(card.event_id.as_str()) && m.body.contains("Fase 3")
    })
    .await;

    // Listing and showing are reads, and audited as such.
    let root = Some(card.event_id.as_str());
    let list = ask(&ola, &bot_user, &room, "!saker", None, "1 åpen sak:").await;
    assert!(
        list.body.contains(&format!("{number} – E.H. (5B) – fase 3")),
        "{}",
        list.body
    );
    let shown = ask(
        &ola,
        &bot_user,
        &room,
        &format!("!sak {number}"),
        root,
        "Kontakter logget: 1",
    )
    .await;
    assert!(
        shown
            .body
            .contains(&format!("Ansvarlig: {} (avdelingsleder)", ola.user_id)),
        "{}",
        shown.body
    );
    let audit = store.case_audit(&number).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "list" && a.actor == ola.user_id));
    assert!(audit.iter().any(|a| a.action == "read" && a.actor == "al-1"));

    // Measures, then the agreement in a dialogue in the card's thread.
    let due = (today + Days::days(14)).to_string();
    ask(
        &ola,
        &bot_user,
        &room,
        &format!("!tiltak {number} 1 kontaktlærer {due} Daglig hilsen ved ankomst"),
        root,
        "Registrert",
    )
    .await;
    let measure = format!("!tiltak {number} 5 foresatte {due} Følger til skolen");
    ask(&ola, &bot_user, &room, &measure, root, "Registrert").await;
    // Mapping in chat: a risk comes back with small measures for its box.
    let risk = format!("!kartlegg {number} voksne risiko Ingen fast voksen om morgenen");
    ask(
        &ola,
        &bot_user,
        &room,
        &risk,
        root,
        "Forslag til små tiltak i «Relasjon til voksne på skolen»",
    )
    .await;
    let view = format!("!elevsyn {number} deltok=ja Vil ha en fast voksen i døra");
    ask(&ola, &bot_user, &room, &view, root, "Registrert").await;
    ask(&ola, &bot_user, &room, &format!("!avtale {number}"), root, "1/5").await;
    ask(&ola, &bot_user, &room, "Eleven møter hver dag", root, "2/5").await;
    ask(&ola, &bot_user, &room, "Første time hver dag; 2", root, "3/5").await;
    ask(&ola, &bot_user, &room, "Hjemmebesøk med helsesykepleier", root, "4/5").await;
    ask(&ola, &bot_user, &room, "avdelingsleder", root, "5/5").await;
    ask(
        &ola,
        &bot_user,
        &room,
        "Vil ha en fast voksen å gå til",
        root,
        "Skriv «ja»",
    )
    .await;
    let saved = format!("Registrert i sak {number} (lage samarbeidsavtale");
    ask(&ola, &bot_user, &room, "ja", root, &saved).await;
    ola.wait_for("the samarbeidsavtale in the thread", |m| {
        m.thread_root.as_deref() == root
            && m.body.starts_with("SAMARBEIDSAVTALE")
            && m.body.contains("Første time hver dag")
            && m.body.contains("Ingen fast voksen om morgenen")
    })
    .await;
    // The meeting is recorded as held: the referat, filled from what was
    // recorded, goes in the thread.
    let local = Utc::now().with_timezone(&chrono_tz::Europe::Oslo);
    let meeting = format!(
        "!møte {number} {} {} sted=«Møterom 2»",
        local.format("%Y-%m-%d"),
        local.format("%H:%M")
    );
    ask(&ola, &bot_user, &room, &meeting, root, "Registrert").await;
    ola.wait_for("the agenda with the set date", |m| {
        m.thread_root.as_deref() == root && m.body.starts_with("DAGSORDEN") && m.body.contains("Møterom 2")
    })
    .await;
    let present = format!("!deltakere {number} elev foresatt avdelingsleder");
    ask(&ola, &bot_user, &room, &present, root, "Registrert").await;
    ask(&ola, &bot_user, &room, &format!("!holdt {number}"), root, "Registrert").await;
    ola.wait_for("the referat in the thread", |m| {
        m.thread_root.as_deref() == root
            && m.body.starts_with("REFERAT")
            && m.body.contains("Vil ha en fast voksen i døra")
            && m.body.contains("Følger til skolen")
    })
    .await;

    // Phase 4 and the handoff: a server not allowed is refused.
    ask(&ola, &bot_user, &room, &format!("!fase {number} 4"), root, "Fase 4").await;
    let evil = format!("!koordinator {number} @x:evil.example bup");
    ask(&ola, &bot_user, &room, &evil, root, "«evil.example» er ikke godkjent").await;
    // A refused command is audited like an accepted one.
    let audit = store.case_audit(&number).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "refused:propose-handoff" && a.actor == "al-1" && a.detail.contains("evil.example")),
        "{audit:?}"
    );
    let handoff = format!("!koordinator {number} {} bup", bup.user_id);
    ask(&ola, &bot_user, &room, &handoff, root, "kryptert saksrom").await;
    let before = store.case_state(&number).await.unwrap().unwrap();
    assert_eq!(before.responsible.id, "al-1", "responsibility stays until accepted");

    let case_room_id = wait_room(&store, &case_room(&number)).await;
    let members = store.matrix_room(&case_room(&number)).await.unwrap().unwrap().members;
    let mut expected = vec![bot_user.clone(), bup.user_id.clone(), ola.user_id.clone()];
    expected.sort();
    let mut got = members.clone();
    got.sort();
    assert_eq!(got, expected, "exactly the people on the case");
    bup.join(&case_room_id).await;
    let summary = bup
        .wait_for("the handoff summary", |m| {
            m.room == case_room_id && m.body.starts_with("OVERFØRING TIL FAGKOORDINATOR")
        })
        .await;
    assert!(summary.encrypted && summary.body.contains(&number));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = format!("Registrert i sak {number}");
    ask(
        &bup,
        &bot_user,
        &case_room_id,
        &format!("!aksepter {number}"),
        None,
        &accepted,
    )
    .await;
    let after = store.case_state(&number).await.unwrap().unwrap();
    assert_eq!(after.responsible.id, bup.user_id);
    let audit = store.case_audit(&number).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "accept-handoff" && a.actor == bup.user_id)
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "refused:change-phase" && a.actor == "kl-1")
    );
    // The ressursteam thread hears of it, and the card shows the coordinator.
    ola.wait_for("the card naming the coordinator", |m| {
        m.replaces.as_deref() == Some(card.event_id.as_str()) && m.body.contains(&format!("Ansvarlig: {}", bup.user_id))
    })
    .await;

    // The coordinator closes the case; after the retention period the purge
    // deletes it and redacts what the bot said about it.
    let closed = format!("Registrert i sak {number}");
    ask(
        &bup,
        &bot_user,
        &case_room_id,
        &format!("!lukk {number} løst"),
        None,
        &closed,
    )
    .await;
    let purged = store.purge_closed_cases(Utc::now() + Days::days(1)).await.unwrap();
    assert_eq!(purged.cases, vec![number.clone()]);
    assert!(purged.redactions > 10, "{purged:?}");
    assert!(store.case_state(&number).await.unwrap().is_none());
    let audit = store.case_audit(&number).await.unwrap();
    assert_eq!(
        audit.last().unwrap().action,
        "purged",
        "the append-only audit log records the purge"
    );
    bot.wake();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.outbox_counts().await.unwrap().pending > 0 {
        assert!(Instant::now() < deadline, "redactions not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let room_handle = ola.room(&room).await;
    let card_id = matrix_sdk::ruma::OwnedEventId::try_from(card.event_id.as_str()).unwrap();
    let fetched = room_handle.load_or_fetch_event(&card_id, None).await.unwrap();
    let raw = fetched.raw().json().get().to_string();
    assert!(raw.contains("redacted_because"), "the card is redacted: {raw}");
    assert!(!raw.contains("E.H."), "{raw}");
    // Nothing about the case is left in the outbox's stored text.
    for e in store.outbox_log().await.unwrap() {
        assert!(!e.post.body.contains("E.H."), "{:?}", e.post);
    }
}

/// The demo end to end: its own Synapse, a generated municipality pushing
/// absence, the service with its bot; a login is printed and the transcript
/// holds the cards and prompts the bot posted.
#[test]
fn the_demo_runs_and_writes_a_transcript() {
    let python = crate::synapse::python();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args([
            "demo",
            "--exit",
            "--no-wait",
            "--uker",
            "4",
            "--pupils",
            "60",
            "--schools",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .env("TILSTEDE_SYNAPSE_PYTHON", python)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bruker:  @ressursteam:localhost"), "{stdout}");
    assert!(stdout.contains("passord: demo-"), "{stdout}");
    let transcript = std::fs::read_to_string(dir.path().join("transkript.md")).unwrap();
    let cards = transcript.matches("- **saksinfo** (saksinfo): Sak S-").count();
    assert!(cards > 0, "{transcript}");
    let all = tilstede::render::count_len(cards, "sak", "saker");
    assert!(stdout.contains(&format!("({all} i alt)")), "{stdout}");
    assert!(stdout.contains("for 4 skoleuker"), "{stdout}");
    assert!(
        transcript.contains("SAMTALEGUIDE"),
        "the first-conversation guide goes with the prompt"
    );
    // Minimal identifiers: no pupil's name anywhere in what was posted.
    let m = tilstede::synthetic::Municipality::generate(60, 1, 1);
    for p in &m.pupils {
        let name = format!("{} {}", p.given_name, p.family_name);
        assert!(!transcript.contains(&name), "{name} was posted");
    }
}

/// The chat side of the store on SQLite and PostgreSQL: notices are relayed
/// into the outbox exactly once, cards are edited only when they change,
/// batches are fixed and delivered as one, dialogues persist, and digests go
/// out once per period.
#[tokio::test]
async fn relay_outbox_and_digests_on_both_backends() {
    use tilstede::matrix::{case_card, notice};
    use tilstede::store::{Claim, PostKind};
    for store in crate::support::store_backends().await {
        let now = Utc::now();
        let today = school_date_utc(now);
        store
            .upsert_roster(&roster("@kari:kommune.test", "@ola:kommune.test"))
            .await
            .unwrap();
        // Absence last month and yesterday: a case, and a monthly digest.
        let last_month = today - Days::days(35);
        for (i, date) in [last_month, today - Days::days(1)].iter().enumerate() {
            let line = format!(
                r#"{{"source":"vis","id":"r{i}","version":1,"pupil":"p1","school":"sk-01","date":"{date}","kind":"day","validity":"invalid"}}"#
            );
            let Parsed::Record(record) = parse_line(&line, "t:1".into(), None) else {
                panic!("record");
            };
            store.ingest(&[record], &[]).await.unwrap();
        }
        let rules = RuleSet::preset("baerum").unwrap();
        store.refresh_findings(&rules, today).await.unwrap();
        let mut cases = CaseConfig::baerum();
        cases.schools.insert(
            "sk-01".into(),
            SchoolStaff {
                avdelingsleder: Some("al-1".into()),
                ledelse: Vec::new(),
                ressursteam: Vec::new(),
            },
        );
        tilstede::workflow::sync_cases(&store, &cases, now).await.unwrap();
        let config = MatrixConfig {
            homeserver: "http://127.0.0.1:1".into(),
            user: "@tilstede:kommune.test".into(),
            password_env: "UNUSED".into(),
            store_dir: "/nonexistent".into(),
            admins: vec!["@it:kommune.test".into()],
            allow_unencrypted: false,
            allowed_servers: Vec::new(),
            schools: vec![SchoolRoom {
                school: "sk-01".into(),
                name: "Ressursteam".into(),
                members: vec!["@ola:kommune.test".into()],
            }],
        };
        let chat = Chat::new(store.clone(), cases.clone(), config, Renderer::builtin().unwrap());
        let posts = chat.relay(now).await.unwrap();
        assert!(posts >= 4, "{posts}");
        assert_eq!(chat.relay(now).await.unwrap(), 0, "each notice is relayed once");
        let log = store.outbox_log().await.unwrap();
        let cards: Vec<_> = log.iter().filter(|e| e.post.anchor.is_some()).collect();
        assert_eq!(cards.len(), 1, "one card per case and room");
        assert!(
            log.iter()
                .any(|e| e.post.room_key == direct_room("@kari:kommune.test")
                    && e.post.mentions == ["@kari:kommune.test"]),
            "the contact teacher gets a direct message"
        );
        assert!(log.iter().all(|e| !e.post.body.contains("Emma")), "no names in chat");

        // Cases at a school without a room (and no Matrix ids): IT hears of
        // it once per school, not once per notice.
        for (i, pupil) in ["q1", "q2"].iter().enumerate() {
            let line = format!(
                r#"{{"source":"vis","id":"q{i}","version":1,"pupil":"{pupil}","school":"sk-02","date":"{}","kind":"day","validity":"invalid"}}"#,
                today - Days::days(1)
            );
            let Parsed::Record(record) = parse_line(&line, "t:1".into(), None) else {
                panic!("record");
            };
            store.ingest(&[record], &[]).await.unwrap();
            store.refresh_findings(&rules, today).await.unwrap();
            tilstede::workflow::sync_cases(&store, &cases, now).await.unwrap();
            chat.relay(now).await.unwrap();
        }
        let alerts: Vec<_> = store
            .outbox_log()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.post.room_key == direct_room("@it:kommune.test"))
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].post.body.contains("«sk-02»"));
        assert!(
            store.notifications(false, 10).await.unwrap().is_empty(),
            "every notice was handled"
        );

        // 6A registers late arrivals Monday to Wednesday of a recent week;
        // 5B registers nothing those days: a gap for leadership.
        let mut monday = today - Days::days(13);
        while monday.weekday() != chrono::Weekday::Mon {
            monday += Days::days(1);
        }
        for k in 0..3 {
            let line = format!(
                r#"{{"source":"vis","id":"g{k}","version":1,"pupil":"p2","school":"sk-01","date":"{}","kind":"late","validity":"valid","minutes":5}}"#,
                monday + Days::days(k)
            );
            let Parsed::Record(record) = parse_line(&line, "t:1".into(), None) else {
                panic!("record");
            };
            store.ingest(&[record], &[]).await.unwrap();
        }
        // Digests: the contact teacher's for last month, leadership's review
        // when one is due this half-year, and the gap alert; each once.
        let first = chat.digests(now).await.unwrap();
        assert_eq!(first.teachers, 1);
        assert_eq!(first.gaps, 1, "{first:?}");
        let again = chat.digests(now).await.unwrap();
        assert_eq!((again.teachers, again.schools, again.gaps), (0, 0, 0));
        let gap = store
            .outbox_log()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.post.body.starts_with("Mulig hull i fraværsføringen: 5B"))
            .expect("gap alert");
        assert_eq!(gap.post.room_key, school_room("sk-01"));
        assert_eq!(gap.post.mentions, ["@ola:kommune.test"], "leadership is mentioned");
        let digest = store
            .outbox_log()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.post.body.starts_with("MÅNEDLIG FRAVÆRSGJENNOMGANG"))
            .expect("teacher digest");
        assert_eq!(digest.post.room_key, direct_room("@kari:kommune.test"));
        assert!(digest.post.body.contains("E.H. (5B)"), "{}", digest.post.body);

        // Batches: fixed once, delivered together.
        let room = "school:batch";
        let a = store.enqueue_post(&notice(room, "a", "a", &[])).await.unwrap();
        let b = store.enqueue_post(&case_card(room, "X", "b", "b", &[])).await.unwrap();
        let batch = store.outbox_make_batch(&[a.id, b.id]).await.unwrap();
        assert_eq!(batch, a.id);
        assert_eq!(store.outbox_batch(batch).await.unwrap().len(), 2);
        store.outbox_batch_delivered(batch, "$merged").await.unwrap();
        assert!(store.outbox_pending(room, 10).await.unwrap().is_empty());
        let card = store.outbox_by_anchor(room, "card:X").await.unwrap().unwrap();
        assert_eq!(
            card.event_id.as_deref(),
            Some("$merged"),
            "the anchor follows its batch"
        );
        assert_eq!(card.post.kind, PostKind::Notice);

        // A claim made twice relays once.
        let p = notice(room, "c", "c", &[]);
        assert_eq!(
            store
                .relay_posts(Some(Claim::Digest("k")), None, std::slice::from_ref(&p), &[])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .relay_posts(Some(Claim::Digest("k")), None, &[p], &[])
                .await
                .unwrap(),
            0
        );

        // Dialogues persist per room, thread and user.
        store.put_dialogue("r", "t", "@u:x", Some("{}")).await.unwrap();
        assert_eq!(store.dialogue("r", "t", "@u:x").await.unwrap().as_deref(), Some("{}"));
        assert_eq!(store.dialogue("r", "t", "@v:x").await.unwrap(), None);
        store.put_dialogue("r", "t", "@u:x", None).await.unwrap();
        assert_eq!(store.dialogue("r", "t", "@u:x").await.unwrap(), None);
    }
}
