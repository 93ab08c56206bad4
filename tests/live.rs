//! Push and rollback against a live, remote database (issue 11): the app
//! keeps writing tables the plan never touches, the link has latency, and
//! lock acquisition must never make the app queue behind the push.

mod common;

use common::{admin_url, behind_latency_link, postgres_admin};

/// The latency link delays every round trip by at least its RTT and counts
/// what the server sent.
#[test]
fn the_latency_link_adds_its_round_trip_time_and_counts_bytes() {
    let (proxy, url) = behind_latency_link(&admin_url(), 100, Some(200.0));
    let mut c = postgres_admin(&url);
    let before = proxy.bytes_to_client();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        c.simple_query("SELECT repeat('x', 100000)").expect("query");
    }
    // Three sequential round trips cannot take less than three RTTs: a lower
    // bound, which no slow machine can break.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(
        proxy.bytes_to_client() - before >= 300_000,
        "{} bytes counted",
        proxy.bytes_to_client() - before
    );
}
