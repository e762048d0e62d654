//! The Matrix bot against a real Synapse, read by real second clients.

use crate::synapse::{Limits, Person, Seen, register, shared, spawn_synapse};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tilstede::matrix::commands::Command;
use tilstede::matrix::synapse::Synapse;
use tilstede::matrix::{
    Bot, CommandContext, CommandHandler, MatrixConfig, Reply, SchoolRoom, case_card, case_card_update, case_thread,
    notice, school_room,
};
use tilstede::store::Store;

/// A stand-in for the case workflow: answers every command with what it
/// understood, and refuses `!lukk` to show a refusal.
struct Echo;

impl CommandHandler for Echo {
    fn handle<'a>(&'a self, context: &'a CommandContext, command: Command) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match command {
                Command::Cases => Reply::text(format!("Åpne saker i {}: 2026-0001", context.room_key)),
                Command::Case(n) => Reply::text(format!("Sak {}: fase 2", n.0)),
                Command::Close { case: n, .. } => {
                    Reply::text(format!("Du kan ikke lukke sak {}: bare avdelingsleder kan det.", n.0))
                }
                other => Reply::text(format!("Mottatt: {other:?}")),
            }
        })
    }
}

struct TestBot {
    bot: Bot,
    store: Store,
    dir: tempfile::TempDir,
    config: MatrixConfig,
    password: String,
}

async fn bot_config(
    server: &Synapse,
    members: &[String],
    admins: &[String],
) -> (MatrixConfig, String, tempfile::TempDir) {
    let (user, password) = register(server, "tilstede").await;
    let dir = tempfile::tempdir().unwrap();
    let config = MatrixConfig {
        homeserver: server.url(),
        user,
        password_env: "UNUSED".into(),
        store_dir: dir.path().join("matrix"),
        admins: admins.to_vec(),
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "sk-01".into(),
            name: "Ressursteam Eksempel skole".into(),
            members: members.to_vec(),
        }],
    };
    (config, password, dir)
}

async fn start_bot(server: &Synapse, members: &[String], admins: &[String]) -> TestBot {
    let (config, password, dir) = bot_config(server, members, admins).await;
    let store = Store::open(dir.path().join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let bot = Bot::start(config.clone(), &password, store.clone(), Arc::new(Echo))
        .await
        .expect("bot start");
    TestBot {
        bot,
        store,
        dir,
        config,
        password,
    }
}

async fn room_id(store: &Store, key: &str) -> String {
    store.matrix_room(key).await.unwrap().expect("room registered").room_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_card_and_thread_arrive_encrypted_and_edits_replace_the_card() {
    let server = shared();
    let kari = Person::new(server, "kari").await;
    let t = start_bot(server, std::slice::from_ref(&kari.user_id), &[]).await;

    // Cross-signing and recovery are on, and the key is kept owner-only.
    let status = t
        .bot
        .client()
        .encryption()
        .cross_signing_status()
        .await
        .expect("cross-signing status");
    assert!(
        status.has_master && status.has_self_signing && status.has_user_signing,
        "{status:?}"
    );
    assert_eq!(
        t.bot.client().encryption().recovery().state(),
        matrix_sdk::encryption::recovery::RecoveryState::Enabled
    );
    assert!(
        t.bot.client().encryption().backups().are_enabled().await,
        "key backup is off"
    );
    let key_file = t.bot.recovery_key_path();
    assert!(std::fs::read_to_string(&key_file).unwrap().len() > 20);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o077, 0);
    }

    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    let _tasks = t.bot.spawn();
    let joined = kari.join(&room).await;
    assert!(joined.latest_encryption_state().await.unwrap().is_encrypted());
    // The namespaced state event holds config only: no personal data.
    // The join returns before the next sync has brought the room's state.
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let found = joined
            .get_state_event(matrix_sdk::ruma::events::StateEventType::from("no.tilstede.config"), "")
            .await
            .unwrap();
        if let Some(state) = found {
            break state;
        }
        assert!(Instant::now() < deadline, "no config state event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let matrix_sdk::deserialized_responses::RawAnySyncOrStrippedState::Sync(raw) = state else {
        panic!("joined room gave a stripped state event");
    };
    let json: serde_json::Value = serde_json::from_str(raw.json().get()).unwrap();
    assert_eq!(
        json["content"],
        serde_json::json!({"kind": "ressursteam", "school": "sk-01", "version": 1})
    );

    let key = school_room("sk-01");
    let mention = vec![kari.user_id.clone()];
    t.bot
        .enqueue(&case_card(
            &key,
            "2026-0001",
            "Sak 2026-0001 · O.N. 7B · fase 2",
            "<b>Sak 2026-0001</b> · O.N. 7B · fase 2",
            &mention,
        ))
        .await
        .unwrap();
    t.bot
        .enqueue(&case_thread(
            &key,
            "2026-0001",
            "Ring foresatte i dag.",
            "Ring <i>foresatte</i> i dag.",
            &mention,
        ))
        .await
        .unwrap();
    t.bot
        .enqueue(&case_thread(
            &key,
            "2026-0001",
            "Agenda for møtet",
            "<p>Agenda for møtet</p>",
            &[],
        ))
        .await
        .unwrap();
    t.bot
        .enqueue(&case_card_update(
            &key,
            "2026-0001",
            "Sak 2026-0001 · O.N. 7B · fase 3",
            "<b>Sak 2026-0001</b> · fase 3",
            &mention,
        ))
        .await
        .unwrap();

    let seen = kari
        .wait_until(Duration::from_secs(60), "card, thread and edit", |s| {
            s.iter().filter(|m| m.sender == t.config.user).count() >= 4
        })
        .await;
    let bot_msgs: Vec<&Seen> = seen.iter().filter(|m| m.sender == t.config.user).collect();
    let card = bot_msgs[0];
    assert!(bot_msgs.iter().all(|m| m.room == room));
    assert_eq!(card.body, "Sak 2026-0001 · O.N. 7B · fase 2");
    assert_eq!(card.html.as_deref(), Some("<b>Sak 2026-0001</b> · O.N. 7B · fase 2"));
    assert!(bot_msgs.iter().all(|m| m.encrypted && m.notice), "{bot_msgs:#?}");
    assert_eq!(card.mentions, mention);
    let first = bot_msgs[1];
    assert_eq!(first.thread_root.as_deref(), Some(card.event_id.as_str()));
    assert_eq!(first.in_reply_to.as_deref(), Some(card.event_id.as_str()));
    let second = bot_msgs[2];
    assert_eq!(second.thread_root.as_deref(), Some(card.event_id.as_str()));
    // The reply fallback points at the newest message in the thread.
    assert_eq!(second.in_reply_to.as_deref(), Some(first.event_id.as_str()));
    let edit = bot_msgs[3];
    assert_eq!(edit.replaces.as_deref(), Some(card.event_id.as_str()));
    assert_eq!(edit.body, "Sak 2026-0001 · O.N. 7B · fase 3");

    // The store knows each delivered event id; enqueueing the card again is a no-op.
    let again = t
        .bot
        .enqueue(&case_card(&key, "2026-0001", "x", "x", &[]))
        .await
        .unwrap();
    assert_eq!(again.event_id.as_deref(), Some(card.event_id.as_str()));
    // The reader can see the last edit a moment before the bot records it.
    wait_pending(&t.store, 0).await;
}

async fn wait_pending(store: &Store, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = store.outbox_counts().await.unwrap().pending;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "outbox has {now} pending, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_get_a_reaction_and_an_answer_in_their_thread() {
    let server = shared();
    let kari = Person::new(server, "kari").await;
    let t = start_bot(server, std::slice::from_ref(&kari.user_id), &[]).await;
    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    let _tasks = t.bot.spawn();
    kari.join(&room).await;
    // The bot must see the join before it will post (membership watch).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let top = kari.say(&room, "!saker", None).await;
    let answer = kari
        .wait_for("answer to !saker", |m| {
            m.thread_root.as_deref() == Some(top.as_str()) && m.notice
        })
        .await;
    assert!(answer.body.starts_with("Åpne saker i school:sk-01"), "{answer:?}");
    assert!(answer.encrypted);
    assert!(answer.mentions.contains(&kari.user_id));

    let threaded = kari.say(&room, "!case 2026-0001", Some(&top)).await;
    let answer = kari
        .wait_for("answer to !case", |m| m.body == "Sak 2026-0001: fase 2")
        .await;
    assert_eq!(answer.thread_root.as_deref(), Some(top.as_str()));

    kari.say(&room, "!tiltak 2026-0001 9 elev 2026-12-01 x", Some(&top))
        .await;
    let error = kari
        .wait_for("parse error", |m| m.body.contains("tiltakssirkelen (1–8)"))
        .await;
    assert_eq!(error.thread_root.as_deref(), Some(top.as_str()));

    kari.say(&room, "!lukk 2026-0001", Some(&top)).await;
    kari.wait_for("refusal", |m| m.body.contains("bare avdelingsleder"))
        .await;

    kari.say(&room, "!hjelp", None).await;
    let help = kari.wait_for("help", |m| m.body.starts_with("Kommandoer")).await;
    assert!(
        help.body
            .contains("!koordinator SAK @bruker:tjener ROLLE (!coordinator)")
    );

    // Every command was acknowledged with the data-free reaction.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = kari.reactions();
        if r.iter().any(|r| r.target == top) && r.iter().any(|r| r.target == threaded) {
            assert!(r.iter().all(|r| r.key == "✅" && r.sender == t.config.user), "{r:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no reactions: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Normal chat is ignored.
    kari.say(&room, "hei alle", None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_pending(&t.store, 0).await;
    let answers = kari.seen().iter().filter(|m| m.sender == t.config.user).count();
    assert_eq!(answers, 5, "{:#?}", kari.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_session_and_keeps_the_device() {
    let server = shared();
    let kari = Person::new(server, "kari").await;
    let t = start_bot(server, std::slice::from_ref(&kari.user_id), &[]).await;
    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    let device = t.bot.client().device_id().unwrap().to_owned();
    kari.join(&room).await;
    drop(t.bot);

    // Same state directory: no new login, same device, same room.
    let bot = Bot::start(
        t.config.clone(),
        "wrong password proves no login",
        t.store.clone(),
        Arc::new(Echo),
    )
    .await
    .expect("restart");
    assert_eq!(bot.client().device_id().unwrap(), device);
    bot.ensure_rooms().await.unwrap();
    assert_eq!(room_id(&t.store, &school_room("sk-01")).await, room);
    let _tasks = bot.spawn();
    bot.enqueue(&notice(&school_room("sk-01"), "Etter omstart", "Etter omstart", &[]))
        .await
        .unwrap();
    let m = kari
        .wait_for("message after restart", |m| m.body == "Etter omstart")
        .await;
    assert!(m.encrypted);
    let _ = (&t.dir, &t.password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unencrypted_rooms_are_refused_unless_the_config_allows_them() {
    let server = shared();
    let t = start_bot(server, &[], &[]).await;
    let plain = t
        .bot
        .client()
        .create_room(matrix_sdk::ruma::api::client::room::create_room::v3::Request::new())
        .await
        .unwrap();
    t.store
        .put_matrix_room(&tilstede::store::MatrixRoom {
            room_key: "school:plain".into(),
            room_id: plain.room_id().to_string(),
            kind: "ressursteam".into(),
            members: vec![t.config.user.clone()],
            blocked: None,
        })
        .await
        .unwrap();
    t.bot.sync_once(Duration::ZERO).await.unwrap();
    t.bot
        .enqueue(&notice("school:plain", "hemmelig", "hemmelig", &[]))
        .await
        .unwrap();
    t.bot.flush(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        t.store.outbox_counts().await.unwrap().pending,
        1,
        "posted into an unencrypted room"
    );
    drop(t.bot);

    let mut config = t.config.clone();
    config.allow_unencrypted = true;
    let bot = Bot::start(config, &t.password, t.store.clone(), Arc::new(Echo))
        .await
        .unwrap();
    bot.flush(Duration::from_secs(20)).await.unwrap();
    assert_eq!(t.store.outbox_counts().await.unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexpected_member_stops_posting_and_alerts_the_admins() {
    let server = shared();
    let kari = Person::new(server, "kari").await;
    let admin = Person::new(server, "admin").await;
    let intruder = Person::new(server, "ukjent").await;
    let t = start_bot(
        server,
        std::slice::from_ref(&kari.user_id),
        std::slice::from_ref(&admin.user_id),
    )
    .await;
    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    let dm = room_id(&t.store, &tilstede::matrix::direct_room(&admin.user_id)).await;
    let _tasks = t.bot.spawn();
    kari.join(&room).await;
    admin.join(&dm).await;

    // A member invites someone the configuration does not know.
    kari.room(&room)
        .await
        .invite_user_by_id(&matrix_sdk::ruma::UserId::parse(&intruder.user_id).unwrap())
        .await
        .unwrap();
    intruder.join(&room).await;

    let alert = admin.wait_for("alert", |m| m.body.starts_with("Varsel:")).await;
    assert!(alert.encrypted && alert.body.contains(&intruder.user_id) && alert.body.contains("school:sk-01"));
    let blocked = t.store.matrix_room(&school_room("sk-01")).await.unwrap().unwrap();
    assert_eq!(blocked.blocked.as_deref(), Some("unexpected-member"));

    t.bot
        .enqueue(&notice(&school_room("sk-01"), "Skal ikke ut", "Skal ikke ut", &[]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.store.outbox_counts().await.unwrap().pending, 1);
    assert!(!intruder.seen().iter().any(|m| m.body == "Skal ikke ut"));
    assert!(!kari.seen().iter().any(|m| m.body == "Skal ikke ut"));
}

/// Stops Synapse in the middle of a delivery burst, adds more while it is
/// down, starts it again: every message arrives exactly once, in order. Then
/// a crash between sending and recording is replayed: same transaction id,
/// same event, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_delivery_loses_and_duplicates_nothing() {
    let server = spawn_synapse(Limits::Lifted);
    let kari = Person::new(&server, "kari").await;
    let t = start_bot(&server, std::slice::from_ref(&kari.user_id), &[]).await;
    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    kari.join(&room).await;
    t.bot.sync_once(Duration::ZERO).await.unwrap();
    let key = school_room("sk-01");
    for i in 0..60 {
        t.bot
            .enqueue(&notice(&key, &format!("melding {i}"), &format!("melding {i}"), &[]))
            .await
            .unwrap();
    }
    let tasks = t.bot.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.store.outbox_counts().await.unwrap().delivered < 5 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop();
    let during = t.store.outbox_counts().await.unwrap();
    assert!(during.pending > 0, "the outage came too late: {during:?}");
    for i in 60..70 {
        t.bot
            .enqueue(&notice(&key, &format!("melding {i}"), &format!("melding {i}"), &[]))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(t.store.outbox_counts().await.unwrap().pending >= 10);
    server.resume().unwrap();

    let want: Vec<String> = (0..70).map(|i| format!("melding {i}")).collect();
    let seen = kari
        .wait_until(Duration::from_secs(120), "all 70 messages", |s| {
            s.iter().filter(|m| m.sender == t.config.user).count() >= 70
        })
        .await;
    let got: Vec<String> = seen
        .iter()
        .filter(|m| m.sender == t.config.user)
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(got, want);
    wait_pending(&t.store, 0).await;

    // Crash replay: forget that message 69 was delivered and deliver again.
    let last = t.store.outbox_next(&key).await.unwrap();
    assert!(last.is_none());
    let row = sqlx::query("SELECT id, event_id FROM matrix_outbox WHERE body = 'melding 69'")
        .fetch_one(t.store.pool())
        .await
        .unwrap();
    use sqlx::Row;
    let (id, event): (i64, String) = (row.get(0), row.get(1));
    sqlx::query("UPDATE matrix_outbox SET delivered_at = NULL, event_id = NULL WHERE id = $1")
        .bind(id)
        .execute(t.store.pool())
        .await
        .unwrap();
    t.bot.wake();
    wait_pending(&t.store, 0).await;
    let again: String = sqlx::query("SELECT event_id FROM matrix_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(t.store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        again, event,
        "a resend with the same transaction id must be the same event"
    );
    t.bot.enqueue(&notice(&key, "slutt", "slutt", &[])).await.unwrap();
    let seen = kari
        .wait_until(Duration::from_secs(30), "the end marker", |s| {
            s.iter().any(|m| m.body == "slutt")
        })
        .await;
    assert_eq!(seen.iter().filter(|m| m.body == "melding 69").count(), 1);
    drop(tasks);
}

/// Synapse's stock limits: 0.2 messages/s after a burst of 10. The outbox
/// honours the 429s' Retry-After and still delivers everything once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_rate_limits_are_honoured() {
    let server = spawn_synapse(Limits::Stock);
    let kari = Person::new(&server, "kari").await;
    let t = start_bot(&server, std::slice::from_ref(&kari.user_id), &[]).await;
    t.bot.ensure_rooms().await.unwrap();
    let room = room_id(&t.store, &school_room("sk-01")).await;
    kari.join(&room).await;
    t.bot.sync_once(Duration::ZERO).await.unwrap();
    let key = school_room("sk-01");
    for i in 0..14 {
        t.bot
            .enqueue(&notice(&key, &format!("varsel {i}"), &format!("varsel {i}"), &[]))
            .await
            .unwrap();
    }
    let _tasks = t.bot.spawn();
    let want: Vec<String> = (0..14).map(|i| format!("varsel {i}")).collect();
    // Once limited, the bot merges the room's backlog into one message, so
    // the 14 notices arrive in fewer messages: each once, in order.
    let texts = |s: &[Seen]| -> Vec<String> {
        s.iter()
            .filter(|m| m.sender == t.config.user)
            .flat_map(|m| {
                m.body
                    .split("———")
                    .map(|part| part.trim().to_string())
                    .filter(|p| p.starts_with("varsel "))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let seen = kari
        .wait_until(Duration::from_secs(120), "all 14 notices", |s| texts(s).len() >= 14)
        .await;
    assert_eq!(texts(&seen), want);
    let messages = seen.iter().filter(|m| m.sender == t.config.user).count();
    assert!(messages < 14, "the backlog was coalesced: {messages} messages");
    // The limit was actually hit (and waited out), not avoided.
    let limited: i64 =
        sqlx::query("SELECT COUNT(*) FROM matrix_outbox WHERE attempts > 0 AND last_error LIKE '%M_LIMIT_EXCEEDED%'")
            .fetch_one(t.store.pool())
            .await
            .map(|r| sqlx::Row::get(&r, 0))
            .unwrap();
    assert!(limited > 0, "no 429 was seen under stock limits");
}

/// Issue 15: history readable by people who arrive later. The member has no
/// device while ten cases open; then logs in on a new device with an
/// independent client (matrix-nio) and must decrypt every card, thread
/// message and card edit posted before. With matrix-sdk encrypting the posts
/// every one of them was undecryptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_a_new_device_reads_every_card_and_thread_posted_before_it_existed() {
    let server = shared();
    let (member, password) = register(server, "nykommer").await;
    let t = start_bot(server, std::slice::from_ref(&member), &[]).await;
    t.bot.ensure_rooms().await.unwrap();
    let key = school_room("sk-01");
    for n in 1..=10 {
        let case = format!("2026-{n:04}");
        let card = format!("Sak {case} · E.N. 5A · fase 1");
        let prompt = format!("Sak {case}: kontakt foresatte innen fredag.");
        let edit = format!("Sak {case} · E.N. 5A · fase 2");
        t.bot.enqueue(&case_card(&key, &case, &card, &card, &[])).await.unwrap();
        t.bot
            .enqueue(&case_thread(&key, &case, &prompt, &prompt, &[]))
            .await
            .unwrap();
        t.bot
            .enqueue(&case_card_update(&key, &case, &edit, &edit, &[]))
            .await
            .unwrap();
    }
    t.bot.flush(Duration::from_secs(120)).await.unwrap();
    assert_eq!(t.store.outbox_counts().await.unwrap().pending, 0);
    // The bot syncs (and so notices the new device) while the reader reads.
    let _tasks = t.bot.spawn();
    let report = crate::synapse::nio_read(&server.url(), &member, &password, 30, Duration::from_secs(90)).await;
    assert_eq!(report.undecryptable(), 0, "{}", report.summary());
    let from_bot = |rel: Option<&str>| {
        report
            .messages_with(rel)
            .into_iter()
            .filter(|e| e.sender == t.config.user)
            .count()
    };
    assert_eq!(from_bot(None), 10, "cards: {}", report.summary());
    assert_eq!(from_bot(Some("m.thread")), 10, "thread messages: {}", report.summary());
    assert_eq!(from_bot(Some("m.replace")), 10, "card edits: {}", report.summary());
    // Each thread message hangs on its own case's card.
    let cards: std::collections::HashMap<&str, &str> = report
        .messages_with(None)
        .into_iter()
        .map(|e| (e.event_id.as_str(), e.body.as_deref().unwrap_or_default()))
        .collect();
    for e in report.messages_with(Some("m.thread")) {
        let root = cards[e.relates_to.as_deref().unwrap()];
        let case = &e.body.as_deref().unwrap()[4..13];
        assert!(root.contains(case), "{case} in the thread of «{root}»");
    }
    // All of it is the bot's notices in the one ressursteam room.
    let room = room_id(&t.store, &key).await;
    assert!(
        report.decrypted().iter().all(|e| e.room == room),
        "{}",
        report.summary()
    );
    assert!(
        report
            .messages_with(None)
            .iter()
            .all(|e| e.msgtype.as_deref() == Some("m.notice"))
    );
    assert!(t.bot.room_key_sessions().unwrap() >= 1);
}

/// Issue 15, the newcomer path: the demo plays the routine with `--exit
/// --no-wait` on its simulated clock; after the first cases opened, the
/// printed user logs in on a new device with the independent client and
/// reads on while the scripted staff work: cards, threads and documents of
/// several types, with nothing undecryptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_user_logging_in_after_the_first_cases_reads_everything() {
    use std::io::BufRead;
    let python = crate::synapse::python();
    let dir = tempfile::tempdir().unwrap();
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args([
            "demo",
            "--exit",
            "--no-wait",
            "--uker",
            "8",
            "--pupils",
            "60",
            "--schools",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .env("TILSTEDE_SYNAPSE_PYTHON", python)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the demo");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = demo.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let field = |line: &str, name: &str| line.trim().strip_prefix(name).map(|v| v.trim().to_string());
    let (mut server, mut user, mut password) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo opened no case in time");
        server = server.or(field(&line, "tjener:"));
        user = user.or(field(&line, "bruker:"));
        password = password.or(field(&line, "passord:"));
        // «uke 36 (mandag 7.9.2026): fravær sendt; 2 åpne saker»
        let open = line
            .strip_prefix("   uke ")
            .and_then(|l| l.rsplit_once("; "))
            .and_then(|(_, n)| n.split(' ').next()?.parse::<usize>().ok());
        if open.is_some_and(|n| n > 0) {
            break;
        }
    }
    let (server, user, password) = (server.unwrap(), user.unwrap(), password.unwrap());
    let wanted = ["saksinfo", "samtaleguide", "dagsorden", "referat", "samarbeidsavtale"];
    let report = crate::synapse::nio_read_until(&server, &user, &password, 1, &wanted, Duration::from_secs(300)).await;
    let status = tokio::task::spawn_blocking(move || demo.wait()).await.unwrap().unwrap();
    let output = reader.join().unwrap();
    assert!(status.success(), "the demo failed: {}", output.join("\n"));
    // The closing note of issue 15 asks for these numbers.
    println!(
        "nykommer (matrix-nio): {} dekryptert, {} ikke dekrypterbare; {} saksinfo, {} i tråder, {} endringer; dokumenttyper: {:?}",
        report.decrypted().len(),
        report.undecryptable(),
        report.messages_with(None).len(),
        report.messages_with(Some("m.thread")).len(),
        report.messages_with(Some("m.replace")).len(),
        report.document_types,
    );
    assert_eq!(report.undecryptable(), 0, "{}", report.summary());
    for kind in wanted {
        assert!(
            report.document_types.get(kind).is_some_and(|n| *n > 0),
            "no {kind}: {:?} ({})",
            report.document_types,
            report.summary()
        );
    }
    // The demo's own summary counts the same kinds in its transcript, and
    // the staff's commands were all taken.
    let summary = output
        .iter()
        .find(|l| l.contains("Posttyper i transkriptet:"))
        .expect("summary");
    for kind in [
        "dagsorden",
        "referat",
        "samarbeidsavtale",
        "evaluering",
        "overføring",
        "samtaleguide",
    ] {
        assert!(summary.contains(&format!("{kind}: ")), "{kind} missing: {summary}");
    }
    let staff = output
        .iter()
        .find(|l| l.contains("De skriptede ansatte skrev"))
        .expect("staff line");
    assert!(staff.contains("(0 avvist eller ubesvart)"), "{staff}");
}
