//! Shard ownership against the real Kafka-protocol broker (`deploy/kafka.sh`): the group
//! spreads the shards over the nodes that joined, each shard on exactly one node, and a
//! node that leaves hands its shards to the others.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Membership, MembershipSettings, OwnershipChange, ensure_shard_topic};
use tokio::sync::{mpsc, watch};
use workflow::test_support::{kafka_brokers, unique_prefix};

const SHARDS: u32 = 8;

fn settings(prefix: &str, node_id: &str) -> MembershipSettings {
    MembershipSettings {
        brokers: kafka_brokers(),
        prefix: prefix.to_owned(),
        node_id: node_id.to_owned(),
        shard_count: SHARDS,
        session_timeout: Duration::from_secs(6),
        handoff_timeout: Duration::from_secs(5),
    }
}

/// A node that lets revoked shards go at once: its current shards, as a watch.
fn follow(changes: mpsc::UnboundedReceiver<OwnershipChange>) -> watch::Receiver<BTreeSet<u32>> {
    follow_releasing_after(changes, Duration::ZERO, Arc::default())
}

/// The same, taking `handoff` to let revoked shards go, and noting when it last did.
fn follow_releasing_after(
    mut changes: mpsc::UnboundedReceiver<OwnershipChange>,
    handoff: Duration,
    released_at: Arc<Mutex<Option<Instant>>>,
) -> watch::Receiver<BTreeSet<u32>> {
    let (owned, watched) = watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        while let Some(change) = changes.recv().await {
            match change {
                OwnershipChange::Assigned(shards) => {
                    owned.send_modify(|owned| owned.extend(shards));
                }
                OwnershipChange::Revoked { shards, released } => {
                    tokio::time::sleep(handoff).await;
                    owned.send_modify(|owned| {
                        for shard in &shards {
                            owned.remove(shard);
                        }
                    });
                    *released_at.lock().expect("not poisoned") = Some(Instant::now());
                    let _ = released.send(());
                }
            }
        }
    });
    watched
}

/// Waits (up to 60 s: a group's first join and each rebalance take seconds) until `done`
/// holds for the nodes' shards.
async fn until(
    nodes: &[&watch::Receiver<BTreeSet<u32>>],
    what: &str,
    done: impl Fn(&[BTreeSet<u32>]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let owned: Vec<BTreeSet<u32>> = nodes.iter().map(|node| node.borrow().clone()).collect();
        if done(&owned) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: shards per node {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A prefix of its own, and its shards topic.
async fn fresh_shards_topic() -> String {
    let prefix = unique_prefix();
    ensure_shard_topic(&settings(&prefix, "n1"))
        .await
        .expect("the shards topic");
    prefix
}

/// Every shard on exactly one node.
fn spread_over(owned: &[BTreeSet<u32>]) -> bool {
    let total: usize = owned.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<u32> = owned.iter().flatten().copied().collect();
    total == SHARDS as usize && union == (0..SHARDS).collect()
}

#[tokio::test]
async fn the_group_spreads_the_shards_and_a_leaving_node_hands_them_over() {
    let prefix = fresh_shards_topic().await;
    let (first, changes) = Membership::join(&settings(&prefix, "n1")).expect("n1 joins");
    let n1 = follow(changes);
    until(&[&n1], "n1 alone owns every shard", spread_over).await;

    let (second, changes) = Membership::join(&settings(&prefix, "n2")).expect("n2 joins");
    let n2 = follow(changes);
    until(&[&n1, &n2], "the shards spread over n1 and n2", |owned| {
        spread_over(owned) && owned.iter().all(|shards| !shards.is_empty())
    })
    .await;

    drop(second);
    until(
        &[&n1, &n2],
        "n1 owns every shard again after n2 left",
        |owned| owned[0].len() == SHARDS as usize && owned[1].is_empty(),
    )
    .await;
    drop(first);
}

#[tokio::test]
async fn a_shards_topic_with_another_partition_count_is_refused() {
    let prefix = fresh_shards_topic().await;
    let mut other = settings(&prefix, "n1");
    other.shard_count = SHARDS * 2;
    let refused = ensure_shard_topic(&other).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.to_string().contains("partitions")),
        "{refused:?}"
    );
}

/// A revocation is a hand-off: the new owner is assigned the shards only after the old
/// one said it let them go (it had in-flight batches to finish).
#[tokio::test]
async fn a_joining_node_gets_shards_only_after_their_owner_let_them_go() {
    let prefix = fresh_shards_topic().await;
    let released_at = Arc::new(Mutex::new(None));
    let (first, changes) = Membership::join(&settings(&prefix, "n1")).expect("n1 joins");
    let n1 = follow_releasing_after(
        changes,
        Duration::from_millis(1_500),
        Arc::clone(&released_at),
    );
    until(&[&n1], "n1 alone owns every shard", spread_over).await;

    let (second, mut changes) = Membership::join(&settings(&prefix, "n2")).expect("n2 joins");
    let assigned = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match changes.recv().await {
                Some(OwnershipChange::Assigned(shards)) if !shards.is_empty() => {
                    return (shards, Instant::now());
                }
                Some(_) => {}
                None => panic!("n2's membership ended"),
            }
        }
    })
    .await
    .expect("n2 is assigned shards");
    let released = released_at
        .lock()
        .expect("not poisoned")
        .expect("n1 let its shards go first");
    assert!(
        released <= assigned.1,
        "n2 was assigned {:?} before n1 let them go",
        assigned.0
    );
    drop(second);
    drop(first);
}

/// Names the group of the helper process below, in its environment.
const MEMBER_PREFIX: &str = "FLASHCART_TEST_SHARD_MEMBER_PREFIX";

/// Not a test: the node that `a_killed_node_s_shards_go_to_the_others_after_the_session_timeout`
/// starts as a process of its own (this test binary, run again) and kills with SIGKILL.
/// It joins the group named by its environment and stays until killed.
#[test]
#[ignore = "a helper process, started by another test"]
fn shard_member_process() {
    let Ok(prefix) = std::env::var(MEMBER_PREFIX) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (_membership, changes) =
            Membership::join(&settings(&prefix, "doomed")).expect("the helper joins");
        let _owned = follow(changes);
        std::future::pending::<()>().await;
    });
}

/// A node that dies without leaving (SIGKILL: no goodbye to the group) loses its shards to
/// the others once the group's session timeout has passed.
///
/// Ignored: against tansu 0.6 (`deploy/kafka.sh`) it fails with the default 6 s session
/// (it passes with 3 s). The group does rebalance after the kill, but hands the survivor
/// the same half again; 60 s later it still held only that. The engine does not rely on
/// it: a node that sees shards leased to a node whose heartbeat stopped leaves and rejoins
/// the group (`Rejoin`, `node.rs`), which the cluster tests of the gateway exercise with
/// the 6 s session. Run this against another broker with `FLASHCART_TEST_KAFKA_BROKERS=...
/// cargo test -p flashcart-cluster -- --ignored a_killed_node`.
#[tokio::test]
#[ignore = "tansu 0.6 does not hand a killed member's partitions over (issue 15)"]
async fn a_killed_node_s_shards_go_to_the_others_after_the_session_timeout() {
    let prefix = fresh_shards_topic().await;
    let (first, changes) = Membership::join(&settings(&prefix, "n1")).expect("n1 joins");
    let n1 = follow(changes);
    until(&[&n1], "n1 alone owns every shard", spread_over).await;

    let mut doomed = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args([
            "shard_member_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(MEMBER_PREFIX, &prefix)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the helper node starts");
    until(
        &[&n1],
        "the helper node took some shards from n1",
        |owned| !owned[0].is_empty() && owned[0].len() < SHARDS as usize,
    )
    .await;

    doomed.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    doomed.wait().expect("reaped");
    until(&[&n1], "n1 owns every shard again", |owned| {
        owned[0].len() == SHARDS as usize
    })
    .await;
    let session = settings(&prefix, "n1").session_timeout;
    let took = killed_at.elapsed();
    assert!(
        took <= session + Duration::from_secs(10),
        "the shards came back after {took:?} (session timeout {session:?})"
    );
    drop(first);
}
