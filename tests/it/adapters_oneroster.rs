//! `oneroster` against the fake OneRoster 1.2 service: client credentials
//! with the roster-core scope, limit/offset paging with X-Total-Count (and
//! Link headers), a 500 and a 429 on the way; the stored roster equals the
//! municipality the fake was made from. `tilstede sync` runs it from config.

use crate::fake::oneroster::{self, CLIENT_ID, CLIENT_SECRET, OneRosterState, SCOPE};
use crate::support::{store_backends, tilstede_ok};
use std::collections::BTreeMap;
use std::time::Duration;
use tilstede::adapters::oneroster::{OneRosterSettings, sync};
use tilstede::adapters::rest::{Auth, RestClient, RetryPolicy};
use tilstede::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil};
use tilstede::store::Store;
use tilstede::synthetic::Municipality;

const TEMPLATE: &str = "@{username}:example.org";

/// Everything the store holds, sorted, as a roster.
async fn stored(store: &Store) -> Roster {
    let schools = store.schools().await.unwrap();
    let mut classes: Vec<RosterClass> = Vec::new();
    let mut pupils: Vec<RosterPupil> = Vec::new();
    let mut staff: BTreeMap<String, RosterPerson> = BTreeMap::new();
    for s in &schools {
        classes.extend(store.school_classes(&s.id).await.unwrap());
        pupils.extend(store.school_pupils(&s.id).await.unwrap());
    }
    for c in &classes {
        for t in &c.contact_teachers {
            staff.insert(t.clone(), store.staff_member(t).await.unwrap().unwrap());
        }
    }
    let mut r = Roster {
        schools,
        classes,
        pupils,
        staff: staff.into_values().collect(),
    };
    sort(&mut r);
    r
}

fn sort(r: &mut Roster) {
    r.schools.sort_by(|a, b| a.id.cmp(&b.id));
    r.classes.sort_by(|a, b| a.id.cmp(&b.id));
    r.pupils.sort_by(|a, b| a.id.cmp(&b.id));
    r.staff.sort_by(|a, b| a.id.cmp(&b.id));
}

/// The municipality's roster, as far as contact teachers go.
fn expected(m: &Municipality) -> Roster {
    let mut r = m.roster(Some(TEMPLATE));
    let contact: std::collections::BTreeSet<&str> = m.classes.iter().map(|c| c.contact_teacher.as_str()).collect();
    r.staff.retain(|s| contact.contains(s.id.as_str()));
    sort(&mut r);
    r
}

fn settings(addr: std::net::SocketAddr, page_size: u32) -> OneRosterSettings {
    OneRosterSettings {
        rostering_url: format!("http://{addr}{}", oneroster::BASE),
        page_size,
        matrix_template: Some(TEMPLATE.into()),
        matrix_id_field: None,
        identity: None,
    }
}

fn client(addr: std::net::SocketAddr) -> RestClient {
    RestClient::new(
        Auth::ClientCredentials {
            token_url: format!("http://{addr}/oauth/token"),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scope: Some(SCOPE.into()),
        },
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn the_stored_roster_equals_the_services_with_and_without_link_headers() {
    let m = Municipality::generate(150, 3, 11);
    for links in [true, false] {
        for store in store_backends().await {
            let server = oneroster::start(OneRosterState {
                collections: oneroster::from_municipality(&m),
                links,
                ..Default::default()
            })
            .await;
            // A 500 on the first page of orgs, a 429 on the second page of users.
            let orgs_pages = 1;
            let classes_pages = (m.classes.len() + m.schools.len()).div_ceil(40);
            let mut faults = vec![500];
            faults.extend(std::iter::repeat_n(200, orgs_pages + classes_pages + 1));
            faults.push(429);
            server.state.lock().unwrap().faults = faults.into();
            let r = sync(
                &client(server.addr),
                &settings(server.addr, 40),
                &store,
                "or",
                &tilstede::config::Schools::All,
            )
            .await
            .unwrap();
            let counts = r.roster.clone().unwrap();
            assert_eq!(
                (counts.schools, counts.classes, counts.pupils),
                (m.schools.len(), m.classes.len(), m.pupils.len()),
                "links={links}: {counts:?}"
            );
            assert_eq!(stored(&store).await, expected(&m), "links={links}");
            // Every page was fetched once: no (collection, offset) twice.
            let served = server.state.lock().unwrap().served.clone();
            let distinct: std::collections::BTreeSet<_> = served.iter().collect();
            assert_eq!(served.len(), distinct.len(), "links={links}: {served:?}");
            assert_eq!(r.pages as usize, served.len());
            assert!(served.iter().any(|(c, o)| c == "users" && *o == 40));
            assert_eq!(server.state.lock().unwrap().tokens_issued, 1);
            assert!(server.state.lock().unwrap().faults.is_empty());
        }
    }
}

#[tokio::test]
async fn sync_command_runs_a_oneroster_source() {
    let m = Municipality::generate(40, 2, 3);
    let server = oneroster::start(OneRosterState {
        collections: oneroster::from_municipality(&m),
        links: true,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    let config = dir.path().join("adapters.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.flyt-roster]\nschools = [\"*\"]\nadapter = \"oneroster\"\nbase_url = \"http://{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\npage_size = 25\nmatrix_template = \"{TEMPLATE}\"\n",
            server.addr,
            secret.display()
        ),
    )
    .unwrap();
    let db = dir.path().join("t.db");
    let args: Vec<String> = ["sync", "flyt-roster", "--config", config.to_str().unwrap()]
        .map(String::from)
        .into();
    let db2 = db.clone();
    let (out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tilstede_ok(&db2, &args)
    })
    .await
    .unwrap();
    assert!(
        out.contains(&format!(
            "{} skoler, {} klasser, {} elever",
            m.schools.len(),
            m.classes.len(),
            m.pupils.len()
        )),
        "{out}"
    );
    // The user marked tobedeleted is left out quietly; nothing is skipped.
    assert!(out.contains("; 0 utelatt"), "{out} {err}");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    assert_eq!(stored(&store).await, expected(&m));
    let pupil = &m.pupils[0];
    let ctx = store.pupil_context(&pupil.id).await.unwrap().unwrap();
    assert_eq!(ctx.class.map(|c| c.id), Some(pupil.class.clone()));
    assert!(
        ctx.contact_teachers[0]
            .matrix_id
            .as_deref()
            .unwrap()
            .ends_with(":example.org")
    );
    store.close().await;
}
