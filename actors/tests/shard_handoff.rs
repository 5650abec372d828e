//! A clustered shop's shards against a real PostgreSQL: two shops on one database stand
//! for two nodes. A node sells only from shards it took; a node that lost a shard without
//! knowing (paused past its session) writes nothing for it, while its other shards keep
//! selling in the same batches; a graceful hand-off gives the next owner every order.

use std::sync::Arc;
use std::time::Duration;

use actors::{BuyNowReply, BuyNowRequest, Shop, ShopParts, ShopSettings, ShopStores, Unavailable};
use engine::{IdempotencyKey, Money, ProductDraft, ProductId, UserId};
use persistence::test_support::TestDatabase;
use persistence::{
    Database, GroupCommitSettings, OrderLedger, PostgresSettings, ShardLease, ShardLeases,
};

const SHARDS: u32 = 4;

fn settings() -> ShopSettings {
    ShopSettings {
        shard_count: SHARDS,
        preload_on_start: false,
        group_commit: GroupCommitSettings {
            // Long enough that two buyers of one node land in one transaction.
            batch_delay: Duration::from_millis(30),
            ..GroupCommitSettings::default()
        },
        ..ShopSettings::default()
    }
}

async fn connect(database: &TestDatabase) -> Arc<Database> {
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections: 4,
        timeout: Duration::from_secs(5),
        connection_lifetime: PostgresSettings::CONNECTION_LIFETIME,
    };
    Arc::new(
        Database::connect(&settings)
            .await
            .expect("connect and migrate"),
    )
}

async fn node(store: &Arc<Database>) -> Shop {
    let parts = ShopParts::new(settings(), ShopStores::in_database(store)).clustered();
    Shop::start(parts).await.expect("the node starts")
}

async fn take(store: &Database, node: &Shop, node_id: &str, shards: &[u32]) -> Vec<ShardLease> {
    let mut leases = Vec::new();
    for shard in shards {
        leases.push(
            store
                .take_shard(*shard, node_id, actors::clock::now_ms())
                .await
                .expect("the lease is taken"),
        );
    }
    node.take_shards(leases.clone())
        .await
        .expect("the node loads its shards");
    leases
}

fn draft(id: u64) -> ProductDraft {
    ProductDraft {
        title: format!("Phone {id}"),
        brand: "Test".into(),
        category: "mobiles".into(),
        description: String::new(),
        price: Money(10_000),
        rating: 4.0,
        popularity: 0,
    }
}

async fn buy(node: &Shop, product: ProductId, user: u64) -> BuyNowReply {
    node.buy_now(BuyNowRequest {
        product_id: product,
        user_id: UserId(user),
        quantity: 1,
        idempotency_key: IdempotencyKey::parse(&format!("key-{user}")).expect("a valid key"),
    })
    .await
    .expect("a known product")
}

fn placed(reply: &BuyNowReply) -> bool {
    matches!(reply, BuyNowReply::Placed(_))
}

/// Two products of different shards.
fn two_products_on_different_shards(node: &Shop) -> (ProductId, ProductId) {
    let first = ProductId(1);
    let second = (2..100)
        .map(ProductId)
        .find(|id| node.shard_of(*id) != node.shard_of(first))
        .expect("some id maps to another shard");
    (first, second)
}

/// Orders holding the product's units, as the store has them.
async fn orders_of(store: &Database, product: ProductId) -> usize {
    let state = store
        .load_product(product, 0)
        .await
        .expect("the store answers")
        .expect("the product exists");
    state.stock.lines.len()
}

#[tokio::test]
async fn a_node_sells_only_from_its_shards_and_a_stale_owner_writes_nothing() {
    let database = TestDatabase::create().await;
    let (store_a, store_b) = (connect(&database).await, connect(&database).await);
    let a = node(&store_a).await;
    let all: Vec<u32> = (0..SHARDS).collect();
    take(&store_a, &a, "a", &all).await;
    let (hot, other) = two_products_on_different_shards(&a);
    for product in [hot, other] {
        a.create_product(Some(product), draft(product.0), 100)
            .await
            .expect("the owner creates the product");
    }
    assert!(placed(&buy(&a, hot, 1).await));

    // B takes the hot product's shard while A believes it still owns it (A was paused).
    let b = node(&store_b).await;
    assert!(!b.serves(hot), "a node serves no shard it has not taken");
    let unowned = buy(&b, hot, 2).await;
    assert!(
        matches!(
            unowned,
            BuyNowReply::Unavailable(Unavailable::NotWritten(_))
        ),
        "{unowned:?}"
    );
    take(&store_b, &b, "b", &[b.shard_of(hot)]).await;

    // A's next buyers of both products share one transaction: the stale lease costs the
    // hot product's buyer its order, and nothing else.
    let (stale, fresh) = tokio::join!(buy(&a, hot, 3), buy(&a, other, 4));
    assert!(
        matches!(stale, BuyNowReply::Unavailable(Unavailable::NotWritten(_))),
        "{stale:?}"
    );
    assert!(placed(&fresh), "{fresh:?}");
    assert_eq!(
        orders_of(&store_a, hot).await,
        1,
        "the stale owner wrote nothing"
    );
    assert_eq!(orders_of(&store_a, other).await, 1);

    // A dropped the shard when the store refused its lease; B sells it, with A's first
    // order counted.
    tokio::time::timeout(Duration::from_secs(5), async {
        while a.serves(hot) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the fenced node drops the shard");
    assert!(a.serves(other));
    assert!(placed(&buy(&b, hot, 5).await));
    let seen = b.inventory(hot).await.expect("the owner answers");
    assert_eq!(seen.counters.reserved, 2, "{seen:?}");
    assert_eq!(orders_of(&store_b, hot).await, 2);

    a.shutdown().await;
    b.shutdown().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_handed_off_shard_arrives_whole_with_its_unpaid_orders() {
    let database = TestDatabase::create().await;
    let (store_a, store_b) = (connect(&database).await, connect(&database).await);
    let (a, b) = (node(&store_a).await, node(&store_b).await);
    let all: Vec<u32> = (0..SHARDS).collect();
    take(&store_a, &a, "a", &all).await;
    let product = ProductId(7);
    let shard = a.shard_of(product);
    a.create_product(Some(product), draft(7), 50)
        .await
        .expect("the owner creates the product");

    // Buyers keep coming while the shard is handed off: each is either placed by A before
    // the hand-off or refused, never lost.
    let buyers: Vec<_> = (1..=40)
        .map(|user| {
            let a = a.clone();
            tokio::spawn(async move { buy(&a, product, user).await })
        })
        .collect();
    a.release_shards(&[shard]).await;
    let mut placed_users = Vec::new();
    for (user, buyer) in (1..).zip(buyers) {
        let reply = buyer.await.expect("the buyer task ends");
        match reply {
            BuyNowReply::Placed(_) => placed_users.push(user),
            BuyNowReply::Unavailable(Unavailable::NotWritten(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let placed_by_a = placed_users.len();
    assert!(!a.serves(product));
    assert_eq!(orders_of(&store_a, product).await, placed_by_a);

    take(&store_b, &b, "b", &[shard]).await;
    assert_eq!(
        b.pending_order_count(),
        placed_by_a,
        "the new owner's reservation clock has every unpaid order of the shard"
    );
    let seen = b.inventory(product).await.expect("the owner answers");
    assert_eq!(seen.counters.reserved as usize, placed_by_a, "{seen:?}");
    // A retry of a key A placed answers the same order on B.
    if let Some(user) = placed_users.first() {
        let retried = buy(&b, product, *user).await;
        assert!(
            matches!(&retried, BuyNowReply::Placed(placement) if placement.duplicate),
            "{retried:?}"
        );
    }

    a.shutdown().await;
    b.shutdown().await;
    database.drop_database().await;
}

/// Sale ids are allocated by each shard's owner, from its own counter: two nodes must not
/// hand out the same one (each sale a row of its own).
#[tokio::test]
async fn sales_scheduled_on_two_nodes_get_distinct_ids() {
    let database = TestDatabase::create().await;
    let (store_a, store_b) = (connect(&database).await, connect(&database).await);
    let (a, b) = (node(&store_a).await, node(&store_b).await);
    take(&store_a, &a, "a", &[0, 1]).await;
    take(&store_b, &b, "b", &[2, 3]).await;
    let served = |node: &Shop| -> Vec<ProductId> {
        (1..200)
            .map(ProductId)
            .filter(|id| node.serves(*id))
            .take(2)
            .collect()
    };
    let now = actors::clock::now_ms();
    let mut ids = Vec::new();
    for (node, products) in [(&a, served(&a)), (&b, served(&b))] {
        for product in products {
            node.create_product(Some(product), draft(product.0), 10)
                .await
                .expect("the owner creates the product");
            let sale = node
                .schedule_sale(engine::FlashSaleDraft {
                    product_id: product,
                    sale_price: Money(5_000),
                    original_price: Money(10_000),
                    start_ms: now + 3_600_000,
                    end_ms: None,
                    stock: 5,
                    per_user_limit: 1,
                })
                .await
                .expect("the owner schedules the sale");
            ids.push(sale.id);
        }
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");

    a.shutdown().await;
    b.shutdown().await;
    database.drop_database().await;
}
