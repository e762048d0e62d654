//! The case workflow end to end: findings open cases, the CLI drives every
//! step, the store keeps the audit log and the notification queue.

use crate::support::{store_backends, tilstede, tilstede_ok};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use tilstede::cases::{CaseConfig, Command, Party, Role};
use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use tilstede::rules::RuleSet;
use tilstede::store::Store;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn roster() -> Roster {
    let person = |id: &str, given: &str| RosterPerson {
        id: id.into(),
        given_name: given.into(),
        family_name: "Lærer".into(),
        matrix_id: Some(format!("@{id}:kommune.test")),
        school: Some("skole-1".into()),
    };
    Roster {
        schools: vec![RosterSchool {
            id: "skole-1".into(),
            name: "Eikeli skole".into(),
        }],
        classes: vec![RosterClass {
            id: "c9b".into(),
            school: "skole-1".into(),
            name: "9B".into(),
            grade: 9,
            contact_teachers: vec!["kl-1".into()],
        }],
        pupils: vec![RosterPupil {
            id: "p1".into(),
            school: "skole-1".into(),
            class: Some("c9b".into()),
            grade: 9,
            given_name: "Emma".into(),
            family_name: "Hansen".into(),
        }],
        staff: vec![person("kl-1", "Kari"), person("al-1", "Anne")],
    }
}

/// p1: invalid whole days in February (the finding), one late in March.
fn records() -> String {
    let mut s = String::new();
    for (id, date, kind, validity) in [
        ("r1", "2026-02-23", "day", "invalid"),
        ("r2", "2026-02-24", "day", "invalid"),
        ("r3", "2026-02-25", "lesson", "unclassified"),
        ("r4", "2026-03-10", "late", "valid"),
    ] {
        s.push_str(&format!(
            r#"{{"source":"vis","id":"{id}","version":1,"pupil":"p1","school":"skole-1","date":"{date}","kind":"{kind}","validity":"{validity}"{}}}"#,
            if kind == "lesson" { r#","lessons":2"# } else { "" }
        ));
        s.push('\n');
    }
    s
}

const CONFIG: &str = r#"
name = "test"
[school_day]
start = "08:30"
end = "15:00"
first_lesson_minutes = 45
[deadlines]
remind_hours_before = 24
first_meeting_days = 7
followup_meeting_days = 7
agreement_days = 7
evaluation_days = 21
agreement_valid_days = 21
phase4_meeting_days = 14
handoff_accept_days = 7
monitoring_review_days = 30
[long_term]
open_weeks = 8
[schools.skole-1]
avdelingsleder = "al-1"
ledelse = ["rektor"]
"#;

#[tokio::test]
async fn a_full_case_from_the_first_finding_to_closing_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let config = dir.path().join("cases.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, records()).unwrap();
    tilstede_ok(&store, &["import", file.to_str().unwrap(), "--as-of", "2026-03-02"]);
    {
        let s = Store::open(store.to_str().unwrap()).await.unwrap();
        s.upsert_roster(&roster()).await.unwrap();
        s.close().await;
    }
    let cfg = config.to_str().unwrap();
    let cases = |now: &str, args: &[&str]| {
        let mut all = vec!["cases", "--config", cfg, "--now", now];
        all.extend_from_slice(args);
        tilstede_ok(&store, &all).0
    };
    // Who acts comes from --as; the role from the roster and the settings.
    let as_teacher = ["--as", "kl-1"];
    let as_leader = ["--as", "al-1"];

    let out = cases("2026-03-02T09:00:00Z", &["sync"]);
    assert!(out.contains("1 sak åpnet"), "{out}");
    // Syncing again reads nothing new.
    let out = cases("2026-03-02T09:05:00Z", &["sync"]);
    assert!(out.starts_with("0 funnendringer lest"), "{out}");

    let list = cases(
        "2026-03-02T09:10:00Z",
        &[&as_leader[..], &["list", "--format", "json"]].concat(),
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["number"], "S-2026-0001");
    assert_eq!(list[0]["pupil_label"], "E.H. (9B)");
    assert_eq!(list[0]["phase"], 2);
    assert_eq!(list[0]["responsible"], "kl-1");
    let number = "S-2026-0001";

    let apply =
        |now: &str, who: &[&str], step: Value| cases(now, &[who, &["apply", number, &step.to_string()]].concat());
    // A stranger claiming the contact teacher role is refused, in Norwegian:
    // the role is not theirs to claim.
    let bad = tilstede(
        &store,
        &[
            "cases",
            "--config",
            cfg,
            "--now",
            "2026-03-02T10:00:00Z",
            "--as",
            "kl-2",
            "--rolle",
            "kontaktlærer",
            "kontakt",
            number,
            "--kanal",
            "telefon",
            "--utfall",
            "bekymring",
        ],
    );
    assert_eq!(bad.status.code(), Some(3));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("du har ikke rollen kontaktlærer i sak S-2026-0001"),
        "{err}"
    );

    // The typed command, as in chat; the time defaults to --now.
    let out = cases(
        "2026-03-02T10:00:00Z",
        &[
            &as_teacher[..],
            &[
                "kontakt",
                number,
                "--med",
                "foresatt",
                "--kanal",
                "telefon",
                "--utfall",
                "bekymring",
            ],
        ]
        .concat(),
    );
    assert!(
        out.contains("logge kontakt som kontaktlærer · fase 3 · ansvarlig al-1"),
        "{out}"
    );
    apply(
        "2026-03-02T10:05:00Z",
        &as_leader,
        json!({"command":"report-to-ressursteam"}),
    );
    apply(
        "2026-03-04T12:00:00Z",
        &as_teacher,
        json!({"command":"map-box","circle_box":"relasjon-voksne","resources":["Trives med gymlæreren"],"risks":[]}),
    );
    for (home, text) in [
        (false, "Fast voksen i døra om morgenen"),
        (true, "Foresatte følger til skolen"),
    ] {
        apply(
            "2026-03-04T12:00:00Z",
            &as_teacher,
            json!({"command":"add-measure","circle_box": if home {"hjemmeforhold"} else {"relasjon-voksne"},
                   "text":text,"responsible": if home {"foresatte"} else {"kontaktlærer"},"due":"2026-03-20","at_home":home}),
        );
    }
    apply(
        "2026-03-04T13:00:00Z",
        &as_teacher,
        json!({"command":"meeting-held","kind":"samarbeid","at":"2026-03-04T12:00:00Z","leadership_present":true,"mapping_complete":true,"next_meeting":null}),
    );
    apply(
        "2026-03-04T13:05:00Z",
        &as_teacher,
        json!({"command":"create-agreement","place":"Skolen","present":["eleven","foresatte","kontaktlærer"],
               "goal":"Eleven er på skolen hver dag","sub_goals":[{"text":"Møte til første time","weeks":3,"measures":[1,2]}],
               "plan_b":"Kontaktlærer ringer hjem kl. 9","plan_b_responsible":"kontaktlærer","valid_days":null,"evaluation_date":null}),
    );
    let doc = cases(
        "2026-03-04T13:10:00Z",
        &[
            &as_teacher[..],
            &["render", number, "samarbeidsavtale", "--form", "html"],
        ]
        .concat(),
    );
    assert!(doc.contains("<h1>Samarbeidsavtale</h1>"), "{doc}");
    assert!(doc.contains("Evaluering: 25.3.2026"), "{doc}");

    // The day before the evaluation: the prompt carries the numbers.
    let out = cases("2026-03-24T15:00:00Z", &["tick"]);
    assert!(out.contains("S-2026-0001/remind/evaluation/"), "{out}");
    let again = cases("2026-03-24T15:30:00Z", &["tick"]);
    assert!(
        again.starts_with("0 varsler"),
        "ticking twice queues nothing twice: {again}"
    );
    let queue = cases("2026-03-24T15:30:00Z", &["notifications", "--format", "json"]);
    let queue: Value = serde_json::from_str(&queue).unwrap();
    let prompt = queue
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["notice"]["kind"]["notice"] == "evaluation-due")
        .expect("an evaluation prompt");
    // Before 11.2.–3.3.: two whole days and two lessons; during: one late.
    assert_eq!(prompt["extra"]["numbers"]["before"]["days"], 2);
    assert_eq!(prompt["extra"]["numbers"]["before"]["lessons"], 14);
    assert_eq!(prompt["extra"]["numbers"]["during"]["lates"], 1);
    let text = cases("2026-03-24T15:30:00Z", &["notifications"]);
    assert!(
        text.contains("Under avtalen: 0 dager, 0 timer, 1 forsentkomming"),
        "{text}"
    );

    let out = apply(
        "2026-03-25T10:00:00Z",
        &as_leader,
        json!({"command":"evaluate","outcome":"resolved"}),
    );
    assert!(out.contains("S-2026-0001: evaluere samarbeidsavtalen"), "{out}");
    let shown = cases(
        "2026-03-25T10:05:00Z",
        &[&as_leader[..], &["show", number, "--format", "json"]].concat(),
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"]["status"], "closed");
    assert_eq!(shown["status"]["reason"], "løst");
    // A closed case refuses further steps.
    let closed = tilstede(&store, &["cases", "--config", cfg, "--as", "al-1", "langvarig", number]);
    assert_eq!(closed.status.code(), Some(3));

    // The audit log has every change and every read, who and when.
    let audit = cases("2026-03-25T10:06:00Z", &["audit", number, "--format", "json"]);
    let audit: Vec<Value> = serde_json::from_str(&audit).unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "open",
            "list",
            "refused:log-contact",
            "log-contact",
            "report-to-ressursteam",
            "map-box",
            "add-measure",
            "add-measure",
            "meeting-held",
            "create-agreement",
            "read",
            "tick",
            "evaluate",
            "read",
            "refused:mark-long-term"
        ]
    );
    assert_eq!(audit[2]["actor"], "kl-2");
    assert_eq!(audit[2]["role"], "ingen");
    assert_eq!(audit[10]["actor"], "kl-1");
    assert_eq!(audit[10]["role"], "kontaktlærer");

    let s = Store::open(store.to_str().unwrap()).await.unwrap();
    let contacts = s.case_contacts(number).await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].0, "kl-1");
    assert_eq!(contacts[0].4, "bekymring");
    // Append-only: the database itself refuses edits.
    assert!(sqlx::query("DELETE FROM case_audit").execute(s.pool()).await.is_err());
    // Notices have unique keys, and delivery is idempotent.
    let pending = s.notifications(false, 100).await.unwrap();
    assert!(pending.len() >= 6, "{pending:?}");
    let key = &pending[0].notice.key;
    assert!(s.mark_notification_delivered(key, Utc::now()).await.unwrap());
    assert!(!s.mark_notification_delivered(key, Utc::now()).await.unwrap());
    assert_eq!(s.notifications(false, 100).await.unwrap().len(), pending.len() - 1);
    s.close().await;
}

async fn setup(s: &Store) {
    s.upsert_roster(&roster()).await.unwrap();
    let parsed: Vec<_> = records()
        .lines()
        .map(|l| tilstede::domain::AbsenceRecord::from_json_str(l).unwrap())
        .collect();
    s.ingest(&parsed, &[]).await.unwrap();
    let rules = RuleSet::preset("baerum").unwrap();
    s.refresh_findings(&rules, NaiveDate::from_ymd_opt(2026, 3, 2).unwrap())
        .await
        .unwrap();
}

/// The test settings, with the criterion roles of Bærum's rule set (as the
/// service and the command line take them from the configured rules).
fn test_config() -> CaseConfig {
    let mut cfg = CaseConfig::from_toml(CONFIG).unwrap();
    cfg.use_rules(&RuleSet::preset("baerum").unwrap());
    cfg
}

#[tokio::test]
async fn phase_four_handoff_with_a_fake_clock_on_every_backend() {
    let cfg = test_config();
    for s in store_backends().await {
        setup(&s).await;
        let stats = tilstede::workflow::sync_cases(&s, &cfg, t("2026-03-02T07:00:00Z"))
            .await
            .unwrap();
        assert_eq!(stats.opened, 1);
        let number = "S-2026-0001";
        let teacher = Party::new("kl-1", Role::Kontaktlaerer);
        let leader = Party::new("al-1", Role::Avdelingsleder);
        let step = |v: Value| -> Command { serde_json::from_value(v).unwrap() };
        let apply = |who: Party, at: &str, v: Value| {
            let s = s.clone();
            let cfg = cfg.clone();
            let at = t(at);
            async move { tilstede::workflow::apply_case_command(&s, number, &who, &step(v), at, &cfg).await }
        };
        // Ungdomsskole: tell parents about the invalid absence by 15:00.
        let notices = tilstede::workflow::tick_cases(&s, &cfg, t("2026-03-02T14:30:00Z"))
            .await
            .unwrap();
        assert!(
            notices
                .iter()
                .any(|n| n.key.contains("/escalate/notify-invalid-absence/")),
            "{notices:?}"
        );
        apply(teacher.clone(), "2026-03-02T15:00:00Z",
            json!({"command":"log-contact","with":"foresatte","at":"2026-03-02T14:55:00Z","channel":"telefon","outcome":"bekymring"}))
            .await.unwrap();
        apply(
            leader.clone(),
            "2026-03-02T15:05:00Z",
            json!({"command":"change-phase","to":"further"}),
        )
        .await
        .unwrap();
        let case = s.read_case(number, &leader, t("2026-03-02T15:06:00Z")).await.unwrap();
        assert_eq!(case.phase.number(), 4);
        assert!(!case.long_term, "phase 4 is not long-term by itself");
        apply(
            leader.clone(),
            "2026-03-03T09:00:00Z",
            json!({"command":"propose-handoff","agency":"bup","person":"@bup:kommune.test"}),
        )
        .await
        .unwrap();
        // A week passes without an answer: the avdelingsleder hears of it.
        let notices = tilstede::workflow::tick_cases(&s, &cfg, t("2026-03-11T08:00:00Z"))
            .await
            .unwrap();
        let esc = notices
            .iter()
            .find(|n| n.key.contains("/escalate/handoff-acceptance/"))
            .expect("escalation of the handoff");
        assert_eq!(
            serde_json::to_value(&esc.recipient).unwrap(),
            json!({"to":"person","id":"al-1","role":"avdelingsleder"})
        );
        let case = s.read_case(number, &leader, t("2026-03-11T08:01:00Z")).await.unwrap();
        assert_eq!(case.responsible, leader, "responsibility moves only on acceptance");
        // Someone else cannot accept for BUP.
        let e = apply(
            Party::new("@x:kommune.test", Role::Ressursteam),
            "2026-03-11T09:00:00Z",
            json!({"command":"accept-handoff"}),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("bare den som er foreslått som fagkoordinator"),
            "{e}"
        );
        apply(
            Party::new("@bup:kommune.test", Role::Ressursteam),
            "2026-03-11T09:00:00Z",
            json!({"command":"accept-handoff"}),
        )
        .await
        .unwrap();
        let coord = Party::new("@bup:kommune.test", Role::Fagkoordinator);
        let e = apply(coord.clone(), "2026-03-11T10:00:00Z",
            json!({"command":"refer","agency":"ppt","decided":"2026-03-11","sent":null,"pedagogisk_rapport":false,"legeerklaering_needed":true}))
            .await.unwrap_err();
        assert!(e.to_string().contains("pedagogisk rapport"), "{e}");
        apply(coord.clone(), "2026-03-11T10:00:00Z",
            json!({"command":"refer","agency":"ppt","decided":"2026-03-11","sent":"2026-03-12","pedagogisk_rapport":true,"legeerklaering_needed":true}))
            .await.unwrap();
        let case = s.read_case(number, &coord, t("2026-03-11T10:01:00Z")).await.unwrap();
        assert_eq!(case.responsible, coord);
        assert_eq!(s.case_referrals(number).await.unwrap(), ["ppt"]);
        // The school still calls the meetings (the seed: «Skolen innkaller
        // og leder møtene»); coordination is the coordinator's.
        let meeting = case
            .deadlines
            .iter()
            .find(|d| d.kind == tilstede::cases::DeadlineKind::Meeting)
            .expect("the phase 4 meeting");
        assert_eq!(meeting.owner, leader, "{:?}", case.deadlines);
        apply(
            coord.clone(),
            "2026-03-12T10:00:00Z",
            json!({"command":"close","reason":"lost"}),
        )
        .await
        .unwrap();
        // A new finding after closing opens a new case with a new number.
        let audit = s.case_audit(number).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.action == "accept-handoff" && a.actor == "@bup:kommune.test")
        );
        let queued = s.notifications(true, 1000).await.unwrap();
        let keys: std::collections::HashSet<_> = queued.iter().map(|q| q.notice.key.clone()).collect();
        assert_eq!(keys.len(), queued.len());
        assert!(queued.iter().any(|q| q.notice.kind
            == tilstede::cases::NoticeKind::HandoffAccepted {
                agency: tilstede::cases::Agency::Bup,
                person: "@bup:kommune.test".into()
            }));
        s.close().await;
    }
}

#[tokio::test]
async fn digests_and_config_check_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, records()).unwrap();
    tilstede_ok(&store, &["import", file.to_str().unwrap(), "--as-of", "2026-03-02"]);
    {
        let s = Store::open(store.to_str().unwrap()).await.unwrap();
        s.upsert_roster(&roster()).await.unwrap();
        s.close().await;
    }
    tilstede_ok(&store, &["cases", "--now", "2026-03-02T09:00:00Z", "sync"]);
    let (out, _) = tilstede_ok(
        &store,
        &[
            "cases",
            "digest-teacher",
            "--teacher",
            "kl-1",
            "--school",
            "skole-1",
            "--from",
            "2026-02-01",
            "--to",
            "2026-02-28",
            "--form",
            "text",
        ],
    );
    assert!(out.contains("1 elev i klassene dine"), "{out}");
    assert!(out.contains("E.H. (9B): 2 dager, 14 timer"), "{out}");
    assert!(out.contains("sak S-2026-0001 i fase 2"), "{out}");
    let (out, _) = tilstede_ok(
        &store,
        &[
            "cases",
            "digest-school",
            "--school",
            "skole-1",
            "--from",
            "2026-02-01",
            "--to",
            "2026-02-28",
        ],
    );
    assert!(out.contains("**Eikeli skole**"), "{out}");
    assert!(out.contains("9. trinn: 1 elev,"), "{out}");
    assert!(out.contains("fase 2: 1"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, CONFIG.replace("evaluation_days = 21", "evaluation_days = 0")).unwrap();
    let out = tilstede(&store, &["cases", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml: deadlines.evaluation_days"), "{err}");
}

#[tokio::test]
async fn evaluation_prompt_numbers_on_a_one_connection_memory_store() {
    let cfg = test_config();
    let s = Store::open(":memory:").await.unwrap();
    setup(&s).await;
    tilstede::workflow::sync_cases(&s, &cfg, t("2026-03-02T07:00:00Z"))
        .await
        .unwrap();
    let teacher = Party::new("kl-1", Role::Kontaktlaerer);
    let steps = [
        json!({"command":"log-contact","with":"foresatte","at":"2026-03-02T08:00:00Z","channel":"telefon","outcome":"bekymring"}),
        json!({"command":"add-measure","circle_box":"struktur","text":"Visuell dagsplan","responsible":"kontaktlærer","due":"2026-03-20","at_home":false}),
        json!({"command":"add-measure","circle_box":"hjemmeforhold","text":"Faste leggetider","responsible":"foresatte","due":"2026-03-20","at_home":true}),
        json!({"command":"create-agreement","place":"Skolen","present":["eleven"],"goal":"Mer oppmøte",
               "sub_goals":[{"text":"Første time","weeks":3,"measures":[]}],"plan_b":"Ringe hjem","plan_b_responsible":"kontaktlærer",
               "valid_days":null,"evaluation_date":"2026-03-23"}),
    ];
    for step in steps {
        let cmd: Command = serde_json::from_value(step).unwrap();
        tilstede::workflow::apply_case_command(&s, "S-2026-0001", &teacher, &cmd, t("2026-03-02T09:00:00Z"), &cfg)
            .await
            .unwrap();
    }
    let notices = tilstede::workflow::tick_cases(&s, &cfg, t("2026-03-22T15:00:00Z"))
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let queued = s.notifications(false, 100).await.unwrap();
    let prompt = queued.iter().find(|q| q.notice.key == notices[0].key).unwrap();
    // 2.3.–22.3. against 9.2.–1.3.: two whole days and two lessons before.
    assert_eq!(prompt.extra["numbers"]["before"]["days"], 2);
    assert_eq!(prompt.extra["numbers"]["during"]["lates"], 1);
    s.close().await;
}

/// The closing walk of issue 14: one case through every phase with the
/// typed commands people use (the same words as in chat), on a fake clock,
/// under Bærum's settings and school calendar. The rendered referat,
/// samarbeidsavtale and evaluering are printed (run with `--nocapture`).
#[tokio::test]
async fn a_full_walk_through_every_phase_with_typed_commands() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t.db");
    let config = dir.path().join("cases.toml");
    let baerum = tilstede::cases::config::PRESETS[0].1;
    std::fs::write(
        &config,
        format!("{baerum}\n[schools.skole-1]\navdelingsleder = \"al-1\"\nledelse = [\"rektor\"]\n"),
    )
    .unwrap();
    {
        let s = Store::open(store.to_str().unwrap()).await.unwrap();
        s.upsert_roster(&roster()).await.unwrap();
        s.close().await;
    }
    let import = |name: &str, lines: &[(&str, &str, &str, &str, u32)], as_of: &str| {
        let file = dir.path().join(name);
        let text: String = lines
            .iter()
            .map(|(id, date, kind, validity, lessons)| {
                let lessons = if *lessons > 0 { format!(r#","lessons":{lessons}"#) } else { String::new() };
                format!(
                    r#"{{"source":"vis","id":"{id}","version":1,"pupil":"p1","school":"skole-1","date":"{date}","kind":"{kind}","validity":"{validity}"{lessons}}}"#
                ) + "\n"
            })
            .collect();
        std::fs::write(&file, text).unwrap();
        let (out, err) = tilstede_ok(&store, &["import", file.to_str().unwrap(), "--as-of", as_of]);
        assert!(
            !out.contains("i karantene") || out.contains("0 i karantene"),
            "{out}{err}"
        );
    };
    let cfg = config.to_str().unwrap();
    let run = |now: &str, who: &str, args: &[&str]| {
        let mut all = vec!["cases", "--config", cfg, "--now", now, "--as", who];
        all.extend_from_slice(args);
        tilstede(&store, &all)
    };
    // `-- --nocapture` prints the walk: every command, and at the end the
    // rendered referat, avtale and evaluering.
    let ok = |now: &str, who: &str, args: &[&str]| {
        println!("$ tilstede cases --now {now} --as {who} {}", args.join(" "));
        let out = run(now, who, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let refused = |now: &str, who: &str, args: &[&str]| {
        let out = run(now, who, args);
        assert_eq!(out.status.code(), Some(3), "{args:?} should be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let n = "S-2026-0001";

    // Phase 2. Invalid days on Monday and Tuesday, an unclassified lesson on
    // Wednesday 25.2.2026, synced the same Wednesday morning.
    import(
        "a.jsonl",
        &[
            ("r1", "2026-02-23", "day", "invalid", 0),
            ("r2", "2026-02-24", "day", "invalid", 0),
            ("r3", "2026-02-25", "lesson", "unclassified", 2),
        ],
        "2026-02-25",
    );
    let out = ok("2026-02-25T09:00:00Z", "al-1", &["sync"]);
    assert!(out.contains("1 sak åpnet"), "{out}");
    let shown = ok("2026-02-25T09:05:00Z", "kl-1", &["show", n]);
    // Ungdomsskole: the parents must hear of it by the end of the day.
    assert!(
        shown.contains("varsle foresatte om ugyldig fravær innen 25.2.2026 kl. 15:00"),
        "{shown}"
    );
    // The contact teacher calls; the concern moves the case to phase 3.
    let out = ok(
        "2026-02-25T10:00:00Z",
        "kl-1",
        &[
            "kontakt",
            n,
            "--med",
            "foresatt",
            "--kanal",
            "telefon",
            "--utfall",
            "bekymring",
        ],
    );
    assert!(
        out.contains("logge kontakt som kontaktlærer · fase 3 · ansvarlig al-1"),
        "{out}"
    );

    // Phase 3: report, call the meeting, map, hear the pupil, measures,
    // decisions, agreement, referat.
    ok("2026-02-25T10:30:00Z", "al-1", &["meld", n]);
    ok(
        "2026-02-25T11:00:00Z",
        "kl-1",
        &[
            "møte",
            n,
            "--dato",
            "2026-03-02",
            "--kl",
            "12:00",
            "--sted",
            "Møterom 2",
        ],
    );
    let agenda = ok(
        "2026-02-25T11:01:00Z",
        "kl-1",
        &["render", n, "dagsorden-fase3", "--form", "text"],
    );
    assert!(
        agenda.contains("2.3.2026 kl. 12:00 · Møterom 2"),
        "the agenda has the set date: {agenda}"
    );
    let during = "2026-03-02T11:10:00Z";
    ok(
        during,
        "kl-1",
        &[
            "deltakere",
            n,
            "--hvem",
            "elev foresatt foresatt kontaktlærer:kl-1 avdelingsleder:al-1",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "kartlegg",
            n,
            "--boks",
            "voksne",
            "--side",
            "ressurs",
            "--tekst",
            "Trives med gymlæreren",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "kartlegg",
            n,
            "--boks",
            "voksne",
            "--side",
            "risiko",
            "--tekst",
            "Ingen fast voksen om morgenen",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "kartlegg",
            n,
            "--boks",
            "hjemmeforhold",
            "--side",
            "risiko",
            "--tekst",
            "Sene kvelder med skjerm",
        ],
    );
    let suggestions = ok(during, "kl-1", &["forslag", n]);
    assert!(
        suggestions.contains("Forslag til små tiltak i «Hjemmeforhold»"),
        "{suggestions}"
    );
    assert!(
        !suggestions.contains("«Mestring på skolen»"),
        "only boxes with risks: {suggestions}"
    );
    ok(
        during,
        "kl-1",
        &[
            "elevsyn",
            n,
            "--deltok",
            "ja",
            "--tekst",
            "Morgenene er verst; en fast voksen i døra hjelper",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "tiltak",
            n,
            "--boks",
            "voksne",
            "--ansvarlig",
            "kontaktlærer",
            "--frist",
            "2026-03-20",
            "--tekst",
            "Fast voksen tar imot i døra kl. 08:25",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "tiltak",
            n,
            "--boks",
            "hjemmeforhold",
            "--ansvarlig",
            "foresatte",
            "--frist",
            "2026-03-20",
            "--tekst",
            "Faste leggetider og skjermen av kl. 21",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "vedtak",
            n,
            "--tekst",
            "Eleven begynner med å møte til første time hver dag",
        ],
    );
    ok(
        during,
        "kl-1",
        &[
            "avtale",
            n,
            "--mål",
            "Eleven er på skolen hver dag",
            "--delmål",
            "Møte til første time;3;1,2",
            "--plan-b",
            "Kontaktlærer ringer hjem kl. 09:00 samme dag og avtaler oppmøte",
            "--plan-b-ansvarlig",
            "kontaktlærer",
            "--sted",
            "Møterom 2",
            "--elevsyn",
            "Vil prøve med første time først",
        ],
    );
    ok("2026-03-02T12:10:00Z", "kl-1", &["holdt", n]);
    ok("2026-03-03T08:00:00Z", "kl-1", &["kopi", n]);
    let referat = ok("2026-03-03T08:05:00Z", "kl-1", &["render", n, "referat"]);
    let avtale = ok("2026-03-03T08:05:00Z", "kl-1", &["render", n, "samarbeidsavtale"]);
    for want in [
        "Dato: 2.3.2026 kl. 12:00 · Sted: Møterom 2 · Referent: kontaktlærer (kl-1)",
        "- Avdelingsleder (al-1)",
        "- Eleven begynner med å møte til første time hver dag",
        "Ansvarlig: foresatte",
        "Kopi sendt foresatte 3.3.2026.",
        "risiko: Ingen fast voksen om morgenen",
        "Morgenene er verst",
    ] {
        assert!(referat.contains(want), "«{want}» missing in the referat:\n{referat}");
    }
    for want in [
        "- Eleven: ________",
        "- Kontaktlærer (kl-1): ________",
        "Eleven selv: «Vil prøve med første time først»",
        "Evaluering: 23.3.2026",
    ] {
        assert!(avtale.contains(want), "«{want}» missing in the avtale:\n{avtale}");
    }
    assert_eq!(
        avtale.matches("- Foresatt: ________").count(),
        2,
        "one line per person present"
    );

    // New invalid absence in phase 3: call home at once.
    import("b.jsonl", &[("r4", "2026-03-09", "day", "invalid", 0)], "2026-03-09");
    ok("2026-03-09T09:00:00Z", "al-1", &["sync"]);
    let queue = ok("2026-03-09T09:01:00Z", "al-1", &["notifications"]);
    assert!(queue.contains("Nytt ugyldig fravær 9.3.2026"), "{queue}");
    ok(
        "2026-03-09T09:30:00Z",
        "kl-1",
        &["kontakt", n, "--kanal", "telefon", "--utfall", "nådd"],
    );
    import(
        "c.jsonl",
        &[
            ("r5", "2026-03-16", "day", "invalid", 0),
            ("r6", "2026-03-17", "day", "invalid", 0),
        ],
        "2026-03-17",
    );
    ok("2026-03-17T09:00:00Z", "al-1", &["sync"]);

    // The evaluation reminder, then the evaluation: attendance got worse.
    let out = ok("2026-03-22T15:00:00Z", "al-1", &["tick"]);
    assert!(out.contains("/remind/evaluation/"), "{out}");
    ok(
        "2026-03-20T09:00:00Z",
        "al-1",
        &[
            "møte",
            n,
            "--dato",
            "2026-03-23",
            "--kl",
            "10:30",
            "--sted",
            "Møterom 2",
        ],
    );
    ok(
        "2026-03-23T09:35:00Z",
        "al-1",
        &[
            "deltakere",
            n,
            "--hvem",
            "elev foresatt kontaktlærer:kl-1 avdelingsleder:al-1",
        ],
    );
    let why = refused("2026-03-23T10:00:00Z", "al-1", &["evaluer", n, "--utfall", "løst"]);
    assert!(why.contains("dårligere") && why.contains("bekreft"), "{why}");
    ok(
        "2026-03-23T10:00:00Z",
        "al-1",
        &[
            "evaluer",
            n,
            "--utfall",
            "uendret",
            "--mål",
            "ikke-nådd",
            "--delmål",
            "1:delvis",
            "--tiltak",
            "1:gjennomført",
            "--tiltak",
            "2:delvis",
            "--plan-b",
            "brukt-virket-ikke",
            "--vurdert",
            "ppt",
            "--vurdert",
            "bup",
            "--sted",
            "Møterom 2",
            "--elevsyn",
            "Den faste voksne hjelper, men morgenene er like tunge",
        ],
    );
    let evaluering = ok("2026-03-23T10:05:00Z", "al-1", &["render", n, "evaluering"]);
    assert!(
        evaluering.contains("Til stede: Eleven, Foresatt, Kontaktlærer (kl-1), Avdelingsleder (al-1)\n"),
        "who was at the evaluation, from its meeting: {evaluering}"
    );
    for want in [
        "- [x] Fraværet er uendret eller øker",
        "- Delmål 1: Møte til første time — delvis nådd",
        "- 2. Faste leggetider og skjermen av kl. 21 (foresatte) — delvis gjennomført",
        "brukt, men det virket ikke",
        "Vurdert: PP-tjenesten, BUP.",
        "- Avdelingsleder (al-1): ________",
    ] {
        assert!(
            evaluering.contains(want),
            "«{want}» missing in the evaluering:\n{evaluering}"
        );
    }
    // The numbers are frozen: rendering later shows the same ones.
    let later = ok("2026-04-20T10:05:00Z", "al-1", &["render", n, "evaluering"]);
    let numbers = |doc: &str| {
        doc.lines()
            .filter(|l| l.starts_with("- Før (") || l.starts_with("- Under ("))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&evaluering), numbers(&later));
    assert_eq!(numbers(&evaluering).len(), 2, "{evaluering}");
    for (name, doc) in [
        ("referat", &referat),
        ("samarbeidsavtale", &avtale),
        ("evaluering", &evaluering),
    ] {
        println!("\n===== {name} =====\n{doc}");
    }

    // In phase 4 every meeting sets the next.
    ok(
        "2026-03-23T10:10:00Z",
        "al-1",
        &["holdt", n, "--neste", "2026-03-26T13:00"],
    );

    // Phase 4: a referral, a coordinator who accepts, and the school that
    // keeps calling and chairing the meetings.
    ok(
        "2026-03-24T09:00:00Z",
        "al-1",
        &["henvis", n, "--instans", "ppt", "--rapport", "--sendt", "2026-03-24"],
    );
    ok(
        "2026-03-24T09:05:00Z",
        "al-1",
        &[
            "koordinator",
            n,
            "--bruker",
            "@hsp:kommune.test",
            "--instans",
            "helsesykepleier",
        ],
    );
    ok("2026-03-24T12:00:00Z", "@hsp:kommune.test", &["aksepter", n]);
    let why = refused(
        "2026-03-24T12:05:00Z",
        "@hsp:kommune.test",
        &["møte", n, "--dato", "2026-03-26", "--kl", "13:00"],
    );
    assert!(why.contains("skolen"), "{why}");
    ok(
        "2026-03-24T12:10:00Z",
        "al-1",
        &[
            "møte",
            n,
            "--dato",
            "2026-03-26",
            "--kl",
            "13:00",
            "--type",
            "samarbeidsmøte",
            "--sted",
            "Møterom 2",
        ],
    );
    ok(
        "2026-03-26T12:10:00Z",
        "al-1",
        &[
            "deltakere",
            n,
            "--hvem",
            "elev foresatt kontaktlærer:kl-1 avdelingsleder:al-1 fagkoordinator:@hsp:kommune.test",
        ],
    );
    ok(
        "2026-03-26T12:20:00Z",
        "@hsp:kommune.test",
        &[
            "tiltak",
            n,
            "--boks",
            "individuelle-faktorer",
            "--ansvarlig",
            "elev",
            "--frist",
            "2026-04-24",
            "--hvor",
            "skolen",
            "--tekst",
            "Faste samtaler med helsesykepleier hver tirsdag",
        ],
    );
    ok(
        "2026-03-26T12:20:00Z",
        "@hsp:kommune.test",
        &[
            "tiltak",
            n,
            "--boks",
            "hjemmeforhold",
            "--ansvarlig",
            "foresatte",
            "--frist",
            "2026-04-24",
            "--tekst",
            "Foresatte følger til skolen de første ukene",
        ],
    );
    ok(
        "2026-03-26T12:30:00Z",
        "@hsp:kommune.test",
        &[
            "avtale",
            n,
            "--mål",
            "Eleven er på skolen hver dag",
            "--delmål",
            "Hele skoledager tre dager i uka;3;3,4",
            "--plan-b",
            "Helsesykepleier ringer eleven samme morgen",
            "--plan-b-ansvarlig",
            "fagkoordinator",
            "--evaluering",
            "2026-04-24",
        ],
    );
    ok(
        "2026-03-26T13:00:00Z",
        "al-1",
        &["holdt", n, "--neste", "2026-04-24T12:00"],
    );
    let shown = ok("2026-03-26T13:05:00Z", "al-1", &["show", n, "--format", "json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["responsible"]["id"], "@hsp:kommune.test");
    let deadlines = shown["deadlines"].as_array().unwrap();
    let meeting = deadlines
        .iter()
        .find(|d| d["kind"] == "meeting")
        .expect("the next meeting");
    assert_eq!(meeting["owner"]["id"], "al-1", "the school calls the next meeting");
    let evaluation = deadlines
        .iter()
        .find(|d| d["kind"] == "evaluation")
        .expect("the evaluation");
    assert_eq!(evaluation["owner"]["id"], "@hsp:kommune.test");

    // The second agreement works; it is evaluated as resolved, and the case closes.
    ok(
        "2026-04-24T11:00:00Z",
        "@hsp:kommune.test",
        &[
            "evaluer",
            n,
            "--utfall",
            "løst",
            "--mål",
            "nådd",
            "--delmål",
            "1:nådd",
            "--plan-b",
            "ikke-brukt",
        ],
    );
    let shown = ok("2026-04-24T11:05:00Z", "al-1", &["show", n, "--format", "json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"]["status"], "closed");
    assert_eq!(shown["status"]["reason"], "løst");

    // Every refusal is in the audit log, and no step claimed a role.
    let audit = ok("2026-04-24T11:06:00Z", "al-1", &["audit", n, "--format", "json"]);
    let audit: Vec<Value> = serde_json::from_str(&audit).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "refused:evaluate" && a["actor"] == "al-1")
    );
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "refused:set-meeting" && a["actor"] == "@hsp:kommune.test")
    );
    println!("=== referat\n{referat}\n=== samarbeidsavtale\n{avtale}\n=== evaluering\n{evaluering}");
}

/// The first sync of a school year's data: absence two months old opens
/// cases as a list for leadership, without same-day deadlines; absence of
/// the last days gets its deadlines, counted from the absence.
#[tokio::test]
async fn a_first_sync_of_old_absence_opens_cases_for_triage() {
    let cfg = CaseConfig::baerum();
    let s = Store::open(":memory:").await.unwrap();
    s.upsert_roster(&roster()).await.unwrap();
    let mut r = roster();
    r.pupils.push(RosterPupil {
        id: "p2".into(),
        school: "skole-1".into(),
        class: Some("c9b".into()),
        grade: 9,
        given_name: "Ola".into(),
        family_name: "Nordmann".into(),
    });
    s.upsert_roster(&r).await.unwrap();
    let lines = [
        r#"{"source":"vis","id":"o1","version":1,"pupil":"p1","school":"skole-1","date":"2026-01-07","kind":"lesson","lessons":1,"validity":"invalid"}"#,
        r#"{"source":"vis","id":"o2","version":1,"pupil":"p2","school":"skole-1","date":"2026-02-27","kind":"day","validity":"invalid"}"#,
    ];
    let parsed: Vec<_> = lines
        .iter()
        .map(|l| tilstede::domain::AbsenceRecord::from_json_str(l).unwrap())
        .collect();
    s.ingest(&parsed, &[]).await.unwrap();
    s.refresh_findings(
        &RuleSet::preset("baerum").unwrap(),
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
    )
    .await
    .unwrap();
    let stats = tilstede::workflow::sync_cases(&s, &cfg, t("2026-03-02T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(stats.opened, 2);
    let cases = s.cases_raw(None, false).await.unwrap();
    let old = cases.iter().find(|c| c.pupil.id == "p1").unwrap();
    assert!(old.triage, "a lesson missed 7.1. is for leadership to triage on 2.3.");
    assert_eq!(old.deadlines.len(), 1);
    assert_eq!(old.deadlines[0].kind, tilstede::cases::DeadlineKind::Triage);
    let recent = cases.iter().find(|c| c.pupil.id == "p2").unwrap();
    assert!(!recent.triage);
    let notify = recent
        .deadlines
        .iter()
        .find(|d| d.kind == tilstede::cases::DeadlineKind::NotifyInvalidAbsence)
        .unwrap();
    // Friday 27.2.: by the end of that school day, not of the day of the sync.
    assert_eq!(notify.due, t("2026-02-27T14:00:00Z"));
    s.close().await;
}
