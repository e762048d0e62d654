//! `fint` against the fake FINT API: password grant, size/offset paging,
//! sinceTimeStamp increments, recovery from 500 and 429.

use crate::fake::fint::{self, FintState, PASSWORD, USERNAME};
use crate::support::store_backends;
use std::time::Duration;
use tilstede::adapters::fint::{CURSOR_STREAM, FintSettings, sync};
use tilstede::adapters::profile::Profile;
use tilstede::adapters::rest::{Auth, RestClient, RetryPolicy};

#[tokio::test]
async fn fint_sync_pages_recovers_and_continues_from_its_timestamp() {
    let store = store_backends().await.remove(0);
    let old = chrono::Utc::now().timestamp_millis() - 60_000;
    let mut state = FintState::default();
    for i in 0..250 {
        // Every 50th is "annen undervisning": not absence.
        let code = if i % 50 == 0 { "A" } else { "U" };
        state.entries.push((
            old,
            fint::registration(&format!("r{i}"), &format!("EF-{}", i / 10), 2 + i % 20, code, true),
        ));
    }
    let server = fint::start(state).await;
    server.state.lock().unwrap().faults = [500, 429].into();
    let client = RestClient::new(
        Auth::Password {
            token_url: format!("http://{}/oauth/token", server.addr),
            client_id: "tilstede".into(),
            client_secret: "s".into(),
            username: USERNAME.into(),
            password: PASSWORD.into(),
        },
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    let settings = FintSettings {
        resource_url: format!("http://{}/utdanning/vurdering/fravarsregistrering", server.addr),
        page_size: 100,
    };
    let profile = Profile::load("fint").unwrap();
    let r = sync(
        &client,
        &settings,
        &profile,
        &store,
        "fint",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap();
    assert_eq!((r.pages, r.stats.received, r.stats.changed), (3, 245, 245), "{r:?}");
    assert_eq!(r.presence, 5, "{r:?}");
    assert_eq!(store.record_count().await.unwrap(), (245, 0));
    // The pupil comes from Elevfravar → Elevforhold, each fetched once per run:
    // 25 Elevfravar, 25 Elevforhold and one Faggruppe.
    {
        let s = server.state.lock().unwrap();
        let mut distinct = s.related_served.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            (s.related_served.len(), distinct.len()),
            (51, 51),
            "{:?}",
            s.related_served
        );
    }
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    let stored = store.pupil_records("EF-0", day, day).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].school.as_str(), stored[0].subject.as_deref()),
        ("4321", Some("MAT"))
    );
    assert_eq!(stored[0].extensions["undervisningsgruppe"], "8A");
    let cursor: i64 = store
        .sync_cursor("fint", CURSOR_STREAM)
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cursor > old);

    // Two changes after the cursor: only they come back.
    {
        let mut s = server.state.lock().unwrap();
        s.served.clear();
        let later = cursor + 1;
        s.entries.push((later, fint::registration("r1", "EF-0", 3, "P", false)));
        s.entries
            .push((later, fint::registration("new", "EF-99", 9, "S", false)));
    }
    let r = sync(
        &client,
        &settings,
        &profile,
        &store,
        "fint",
        &tilstede::config::Schools::All,
    )
    .await
    .unwrap();
    assert_eq!((r.stats.received, r.stats.changed), (2, 2), "{r:?}");
    assert_eq!(store.record_count().await.unwrap(), (246, 0));
    let served = server.state.lock().unwrap().served.clone();
    assert_eq!(served, [format!("offset=0&sinceTimeStamp={cursor}&size=100")]);
    assert_eq!(server.state.lock().unwrap().tokens_issued, 1);
}
