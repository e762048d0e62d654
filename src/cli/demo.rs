//! `tilstede demo`: the whole product on one machine. A local Synapse, a
//! generated municipality whose school system pushes its absence week by
//! week, and the gateway with its Matrix bot; cases appear in the
//! ressursteam rooms. Prints a Matrix login for any Matrix client and writes
//! a transcript of everything the bot posted.
//!
//! The data runs on a simulated clock: each school week is pushed, then the
//! clock moves to the Monday after, and scripted staff ([`super::demo_staff`])
//! run the routine with chat commands, so deadlines, evaluations and digests
//! fall on the dates of the data.

use anyhow::{Context, Result};
use chrono::{Datelike, Duration as Days, NaiveDate};
use clap::Args;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tilstede::clock::Clock as _;
use tilstede::domain::AbsenceRecord;
use tilstede::domain::dates::{oslo_instant, school_date_utc};
use tilstede::matrix::synapse::{Limits, Synapse};
use tilstede::synthetic::Municipality;

/// Options of `tilstede demo`. The help is in Norwegian: this is where a
/// newcomer starts.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "tilstede demo [VALG]",
    help_template = "{about-with-newline}\nBruk: {usage}\n\nValg:\n{options}\n"
)]
pub struct DemoArgs {
    /// Antall elever i den genererte kommunen.
    #[arg(long, default_value_t = 150)]
    pupils: usize,
    /// Antall skoler.
    #[arg(long, default_value_t = 2)]
    schools: usize,
    /// Frø for generatoren (samme frø gir samme kommune).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mappen for lageret, oppsettet og transkriptet.
    #[arg(long, default_value = "demo-data")]
    dir: PathBuf,
    /// Antall skoleuker som spilles fra skolestart (standard: alle uker
    /// fram til i dag). Hver uke sendes fraværet, klokken i demoen går til
    /// mandagen etter, og de skriptede ansatte gjør sin del av rutinen.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=52))]
    uker: Option<u32>,
    /// Avslutt når alt er levert, i stedet for å vente på Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Ikke vent på at du har logget inn før skolesystemet begynner å sende
    /// fravær (historikken kan likevel leses av den som logger inn senere).
    #[arg(long)]
    no_wait: bool,
    /// Vis denne hjelpen.
    #[arg(short, long, action = clap::ArgAction::Help)]
    #[allow(dead_code)] // clap acts on it
    help: Option<bool>,
    /// The demo keeps its store in `--dir`; the global `--store` is shadowed
    /// here (and hidden) so its help does not offer an option it ignores.
    #[arg(long, hide = true, default_value = "tilstede.db")]
    #[allow(dead_code)] // deliberately unused
    store: String,
}

/// The kind of a post, by its first line (documents start with their
/// title in capitals in plain text) or its place (card, edit, thread).
pub fn document_kind(body: &str, kind: tilstede::store::PostKind, card: bool) -> &'static str {
    const TITLES: [(&str, &str); 8] = [
        ("DAGSORDEN", "dagsorden"),
        ("REFERAT", "referat"),
        ("SAMARBEIDSAVTALE", "samarbeidsavtale"),
        ("EVALUERING", "evaluering"),
        ("OVERFØRING", "overføring"),
        ("SAMTALEGUIDE", "samtaleguide"),
        ("MÅNEDLIG FRAVÆRSGJENNOMGANG", "månedsoversikt"),
        ("FRAVÆRSGJENNOMGANG FOR LEDELSEN", "skoleoversikt"),
    ];
    let first = body.lines().next().unwrap_or_default();
    if let Some((_, name)) = TITLES.iter().find(|(t, _)| first.starts_with(t)) {
        return name;
    }
    match kind {
        tilstede::store::PostKind::Edit => "endret saksinfo",
        _ if card => "saksinfo",
        _ => "melding",
    }
}

/// Waits until the bot has posted everything the last step caused: nothing
/// in the outbox or the notice queue, and no new case or post for 3 s.
async fn settle(store: &tilstede::store::Store, limit: Duration) -> Result<(usize, i64)> {
    let started = Instant::now();
    let mut quiet = 0;
    let mut last = (usize::MAX, -1);
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let outbox = store.outbox_counts().await?;
        let waiting = store.notifications(false, 1).await?.len();
        let open = store.cases_raw(None, false).await?.len();
        let now = (open, outbox.delivered);
        quiet = if outbox.pending == 0 && waiting == 0 && now == last {
            quiet + 1
        } else {
            0
        };
        last = now;
        if quiet >= 6 {
            break;
        }
    }
    Ok(last)
}

/// Monday 08:00 in Oslo of the week after `day`.
fn next_monday_morning(day: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    let monday = day + Days::days(7 - i64::from(day.weekday().num_days_from_monday()));
    oslo_instant(monday.and_hms_opt(8, 0, 0).unwrap_or_default())
}

/// Waits until `user` has a device with uploaded keys and has joined `rooms`
/// rooms, reminding every half minute of what is missing.
async fn wait_for_login(server: &str, token: &str, user: &str, rooms: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let mut reminded = Instant::now();
    loop {
        let keys: serde_json::Value = http
            .post(format!("{server}/_matrix/client/v3/keys/query"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "device_keys": { user: [] } }))
            .send()
            .await?
            .json()
            .await?;
        let devices = keys["device_keys"][user].as_object().map_or(0, |d| d.len());
        let joined: serde_json::Value = http
            .get(format!("{server}/_synapse/admin/v1/users/{user}/joined_rooms"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let joined = joined["joined_rooms"].as_array().map_or(0, |r| r.len());
        if devices > 0 && joined >= rooms {
            println!(
                "   Klienten din har lastet opp krypteringsnøkler og er med i {joined} rom. Skolesystemet starter."
            );
            return Ok(());
        }
        if reminded.elapsed() >= Duration::from_secs(30) {
            println!(
                "   venter fortsatt: {devices} enhet(er) med nøkler, med i {joined} av {rooms} rom (Ctrl-C avslutter)"
            );
            reminded = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn random_password() -> String {
    format!("demo-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The school year to play and its weeks of records: this school year up to
/// yesterday, or last school year when this one has fewer than `weeks`.
fn school_weeks(m: &Municipality, weeks: Option<u32>) -> Vec<Vec<AbsenceRecord>> {
    let today = school_date_utc(chrono::Utc::now());
    let this = if today.month() >= 8 {
        today.year()
    } else {
        today.year() - 1
    };
    let play = |year: i32| -> Vec<Vec<AbsenceRecord>> {
        let mut records: Vec<AbsenceRecord> = m.absence(year, "skolesystem").filter(|r| r.date < today).collect();
        records.sort_by_key(|r| r.date);
        records
            .chunk_by(|a, b| a.date.iso_week() == b.date.iso_week())
            .map(<[AbsenceRecord]>::to_vec)
            .collect()
    };
    let mut all = play(this);
    if let Some(n) = weeks
        && all.len() < n as usize
    {
        all = play(this - 1);
    }
    all.truncate(weeks.map_or(usize::MAX, |n| n as usize));
    all
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("kan ikke lage {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    for old in ["tilstede.db", "tilstede.db-wal", "tilstede.db-shm"] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let _ = std::fs::remove_dir_all(dir.join("matrix"));
    let _ = std::fs::remove_dir_all(dir.join("ansatte"));

    println!("== Starter en lokal Matrix-tjener (Synapse) …");
    let python = Synapse::python()?;
    let server = tokio::task::spawn_blocking(move || Synapse::start(&python, Limits::Lifted)).await??;
    let bot_password = random_password();
    let demo_password = random_password();
    let bot = server.register("tilstede", &bot_password, false).await?;
    let demo = server.register("ressursteam", &demo_password, false).await?;
    // The demo's own eyes on the homeserver: whether the demo user has
    // logged in, uploaded keys and joined (never a Matrix client of its own).
    let (_, watcher) = server.register_with_token("tilsyn", &random_password(), true).await?;

    println!(
        "== Genererer en kommune med {} på {} (ingen virkelige personer)",
        tilstede::render::count_len(args.pupils, "elev", "elever"),
        tilstede::render::count_len(args.schools, "skole", "skoler")
    );
    let m = Municipality::generate(args.pupils, args.schools, args.seed);
    let server_name = bot.split_once(':').map(|(_, s)| s).unwrap_or("localhost").to_string();
    let roster = m.roster(Some(&format!("@{{username}}:{server_name}")));
    // The staff exist on the homeserver: the contact teachers from the
    // roster, an avdelingsleder for every school and a fagkoordinator.
    let mut passwords = BTreeMap::new();
    for s in &m.staff {
        let password = random_password();
        let id = server.register(&s.username, &password, false).await?;
        passwords.insert(id, password);
    }
    let named = |name: &'static str| {
        let password = random_password();
        (name, password)
    };
    let (leader_name, leader_password) = named("avdelingsleder");
    let (coordinator_name, coordinator_password) = named("fagkoordinator");
    let leader = server.register(leader_name, &leader_password, false).await?;
    let coordinator = server.register(coordinator_name, &coordinator_password, false).await?;
    passwords.insert(leader.clone(), leader_password);
    passwords.insert(coordinator.clone(), coordinator_password);
    let store_path = dir.join("tilstede.db");
    {
        let store = tilstede::store::Store::open(store_path.to_str().context("sti")?).await?;
        store.upsert_roster(&roster).await?;
        store.close().await;
    }
    std::fs::write(dir.join("bot.passord"), &bot_password)?;
    // A fresh token each run: the config check refuses short ones.
    let push_token = hex::encode(rand::random::<[u8; 32]>());
    std::fs::write(dir.join("skolesystem.token"), &push_token)?;
    // The scripted avdelingsleder leads every school; the demo user is in
    // leadership and in every ressursteam room, so every case is theirs to see.
    let mut cases = tilstede::cases::config::PRESETS
        .iter()
        .find(|(n, _)| *n == "baerum")
        .map(|(_, t)| t.to_string())
        .context("baerum-oppsettet mangler")?;
    let mut matrix = format!(
        "[matrix]\nhomeserver = \"{}\"\nuser = \"{bot}\"\npassword_file = \"bot.passord\"\nstore_dir = \"matrix\"\nadmins = [\"{demo}\"]\n",
        server.url()
    );
    for s in &m.schools {
        writeln!(
            cases,
            "\n[schools.{}]\navdelingsleder = \"{leader}\"\nledelse = [\"{demo}\"]",
            s.id
        )?;
        writeln!(
            matrix,
            "\n[[matrix.schools]]\nschool = \"{}\"\nname = \"Ressursteam {}\"\nmembers = [\"{demo}\", \"{leader}\"]",
            s.id, s.name
        )?;
    }
    std::fs::write(dir.join("saker.toml"), cases)?;
    let config_text = format!(
        "# Laget av `tilstede demo`.\nstore = \"tilstede.db\"\nrules = \"baerum\"\ncases = \"saker.toml\"\n\n[sources.skolesystem]\nschools = [\"*\"]\ntoken_file = \"skolesystem.token\"\n\n{matrix}"
    );
    let config_path = dir.join("tilstede.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = tilstede::config::Config::load(&config_path)?;

    // The simulated clock starts the Monday morning of the first school week.
    let weeks = school_weeks(&m, args.uker);
    let first = weeks
        .first()
        .and_then(|w| w.first())
        .map(|r| r.date)
        .context("ingen skoleuker å spille")?;
    let first_monday = first - Days::days(i64::from(first.weekday().num_days_from_monday()));
    let clock =
        tilstede::clock::SimulatedClock::new(oslo_instant(first_monday.and_hms_opt(7, 0, 0).unwrap_or_default()));
    let running = tilstede::service::start_with_clock(config, Some("127.0.0.1:0".parse()?), clock.clone()).await?;
    let url = format!("http://{}", running.addr);
    println!("== tilstede kjører på {url}");
    let mut staff = super::demo_staff::Staff::new(
        server.url(),
        dir.join("ansatte"),
        running.state.store.clone(),
        bot.clone(),
        passwords,
        leader.clone(),
        coordinator.clone(),
    );
    staff.log_in().await?;
    println!();
    println!("   Logg inn med en Matrix-klient (f.eks. Element), mens demoen kjører:");
    println!("     tjener:  {}", server.url());
    println!("     bruker:  {demo}");
    println!("     passord: {demo_password}");
    println!();
    if args.no_wait {
        println!("   Skolesystemet begynner å sende nå (--no-wait). Logger du inn senere, får");
        println!("   den nye enheten nøklene og kan lese alt som er postet.");
    } else {
        let rooms = m.schools.len() + 1;
        println!(
            "== Venter på at du logger inn som {demo} og godtar invitasjonene ({rooms} rom: {} og en direktemelding),",
            tilstede::render::count_len(m.schools.len(), "ressursteam", "ressursteam")
        );
        println!("   før skolesystemet begynner å sende fravær. (--no-wait hopper over ventingen.)");
        let url = server.url();
        tokio::select! {
            waited = wait_for_login(&url, &watcher, &demo, rooms) => waited?,
            _ = tilstede::service::termination() => {
                running.shutdown().await?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }

    // The school system pushes a week; the clock moves to the Monday after;
    // the staff do their part of the routine on that day.
    let http = reqwest::Client::new();
    println!(
        "== Skolesystemet sender fravær for {}, uke for uke, på en simulert klokke;",
        tilstede::render::count_len(weeks.len(), "skoleuke", "skoleuker")
    );
    println!("   ansatte (skriptet) gjør rutinen med chat-kommandoer:");
    for week in &weeks {
        let body: String = week.iter().map(|r| r.to_json_line() + "\n").collect();
        let answer = http
            .post(format!("{url}/api/v1/sources/skolesystem/records"))
            .bearer_auth(&push_token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "innsending avvist: {}", answer.status());
        let last = week.last().map(|r| r.date).unwrap_or(first);
        clock.set(next_monday_morning(last));
        let store = &running.state.store;
        settle(store, Duration::from_secs(120)).await?;
        let open = store.cases_raw(None, false).await?.len();
        println!(
            "   uke {} (mandag {}): fravær sendt; {}",
            last.iso_week().week(),
            tilstede::domain::dates::norwegian(school_date_utc(clock.now())),
            tilstede::render::count_len(open, "åpen sak", "åpne saker")
        );
        staff.act(clock.now()).await?;
    }

    println!("== Venter på at boten har postet alt …");
    let store = &running.state.store;
    let (_, delivered) = settle(store, Duration::from_secs(600)).await?;
    let open = store.cases_raw(None, false).await?.len();
    let all = store.cases_raw(None, true).await?.len();
    println!(
        "   {} ({} i alt); boten har postet {}.",
        tilstede::render::count_len(open, "åpen sak", "åpne saker"),
        tilstede::render::count_len(all, "sak", "saker"),
        tilstede::render::count(delivered, "melding", "meldinger")
    );
    let t = &staff.tally;
    println!(
        "   De skriptede ansatte skrev {} ({} avvist eller ubesvart), {} logget.",
        tilstede::render::count_len(t.commands, "kommando", "kommandoer"),
        t.refused,
        tilstede::render::count_len(t.contacts, "kontakt", "kontakter")
    );
    let transcript = dir.join("transkript.md");
    let mut text = String::from("# Det boten postet (demo)\n");
    let mut room = String::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in store.outbox_log().await? {
        if e.post.room_key != room {
            room = e.post.room_key.clone();
            writeln!(text, "\n## Rom {room}\n")?;
        }
        let place = match e.post.kind {
            tilstede::store::PostKind::Edit => "endret saksinfo",
            tilstede::store::PostKind::Reaction | tilstede::store::PostKind::Redaction => continue,
            tilstede::store::PostKind::Notice if e.post.anchor.is_some() => "saksinfo",
            tilstede::store::PostKind::Notice if e.post.thread.is_some() => "i tråden",
            tilstede::store::PostKind::Notice => "melding",
            tilstede::store::PostKind::Image => "bilde i tråden",
            tilstede::store::PostKind::File => "fil i tråden",
        };
        let kind = document_kind(&e.post.body, e.post.kind, e.post.anchor.is_some());
        *kinds.entry(kind).or_default() += 1;
        writeln!(text, "- **{place}** ({kind}): {}", e.post.body.replace('\n', "\n  "))?;
    }
    std::fs::write(&transcript, text)?;
    let listed: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!("   Posttyper i transkriptet: {}", listed.join(", "));
    println!("   Transkript: {}", transcript.display());
    println!("   Oppsett: {}", config_path.display());
    println!("   Tid brukt: {:.0} s", started.elapsed().as_secs_f64());
    if !args.exit {
        println!();
        println!("Demoen kjører til du trykker Ctrl-C. Logg inn som {demo} og se sakene i rommene.");
        tilstede::service::termination().await;
    }
    drop(staff);
    running.shutdown().await?;
    drop(server);
    Ok(ExitCode::SUCCESS)
}
