//! Clustered shops against a real PostgreSQL: two shops on one database stand for two
//! nodes. A node sells only from shards it took; a node that lost a shard without
//! knowing (paused past its session) writes nothing for it, while its other shards keep
//! selling in the same batches; a graceful hand-off gives the next owner every order. An
//! order whose lines are on both nodes moves all of them or none, and a line held for a
//! coordinator that never says how the order ended is settled by the store.
//!
//! The node channel between the two is a direct call ([`Channel`]), where the gateway
//! sends HTTP: what is tested is the shops' protocol and PostgreSQL's guards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actors::{
    BuyNowReply, BuyNowRequest, CartCheckout, CheckoutReply, HoldAnswer, HoldRequest,
    HoldSettlement, NodeChannel, Offer, PeerAnswer, PrepareRefused, PrepareStep, Refusal, Shop,
    ShopParts, ShopSettings, ShopStores, Unavailable,
};
use engine::order::OrderStatus;
use engine::{IdempotencyKey, Money, OrderId, ProductDraft, ProductId, UserId};
use persistence::test_support::TestDatabase;
use persistence::{
    Database, GroupCommitSettings, OrderLedger, PostgresSettings, ShardLease, ShardLeases, WriteOp,
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
        // Lines held for another node's order are held twice this long.
        request_timeout: Duration::from_secs(1),
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
        seller_id: None,
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

/// The node channel of two in-process nodes: each test says which node serves which
/// shards, and the channel asks that one. It can lose every settlement, as a network (or
/// a coordinator that died right after its commit) would.
struct Channel {
    nodes: OnceLock<Vec<(&'static str, Vec<u32>, Shop)>>,
    lose_settlements: AtomicBool,
}

impl Channel {
    fn connect(nodes: Vec<(&'static str, Vec<u32>, Shop)>) -> Arc<Self> {
        let channel = Arc::new(Self {
            nodes: OnceLock::new(),
            lose_settlements: AtomicBool::new(false),
        });
        for (_, _, shop) in &nodes {
            shop.connect_node_channel(channel.clone());
        }
        assert!(channel.nodes.set(nodes).is_ok());
        channel
    }

    fn node(&self, name: &str) -> Option<&Shop> {
        let nodes = self.nodes.get()?;
        nodes
            .iter()
            .find(|(id, _, _)| *id == name)
            .map(|(_, _, shop)| shop)
    }
}

#[async_trait::async_trait]
impl NodeChannel for Channel {
    async fn hold(&self, request: HoldRequest) -> PeerAnswer {
        let Some(nodes) = self.nodes.get() else {
            return PeerAnswer::Unavailable("not connected".into());
        };
        let Some((name, _, shop)) = nodes
            .iter()
            .find(|(_, shards, _)| shards.contains(&request.shard))
        else {
            return PeerAnswer::Unavailable(format!("no node serves shard {}", request.shard));
        };
        match shop.hold_for_peer(request).await {
            HoldAnswer::Held(reply) => PeerAnswer::Held {
                peer: (*name).to_owned(),
                reply,
            },
            HoldAnswer::Moved(shard) => PeerAnswer::Unavailable(format!("shard {shard} moved")),
            HoldAnswer::Failed(why) => PeerAnswer::Unavailable(why),
        }
    }

    async fn settle(&self, peer: &str, settlement: &HoldSettlement) -> Result<(), String> {
        if self.lose_settlements.load(Ordering::SeqCst) {
            return Ok(());
        }
        let shop = self.node(peer).ok_or_else(|| format!("no node {peer}"))?;
        shop.settle_for_peer(settlement.clone());
        Ok(())
    }

    async fn offer(&self, shard: u32, product_id: ProductId) -> Result<Option<Offer>, String> {
        let nodes = self.nodes.get().ok_or("not connected")?;
        let (_, _, shop) = nodes
            .iter()
            .find(|(_, shards, _)| shards.contains(&shard))
            .ok_or_else(|| format!("no node serves shard {shard}"))?;
        match shop.offer_for_peer(product_id).await {
            Ok(answer) => answer.map_err(|error| error.to_string()),
            Err(moved) => Err(format!("{moved:?}")),
        }
    }
}

/// The first product id (from `from`) each node serves.
fn served_by(node: &Shop, from: u64) -> ProductId {
    (from..from + 1_000)
        .map(ProductId)
        .find(|id| node.serves(*id))
        .expect("the node serves some product id")
}

async fn checkout(node: &Shop, user: u64, key: &str) -> CheckoutReply {
    node.checkout_cart(CartCheckout {
        user_id: UserId(user),
        idempotency_key: IdempotencyKey::parse(key).expect("a valid key"),
        address_id: "home".into(),
        payment_method: "UPI".into(),
    })
    .await
    .expect("a well-formed checkout")
}

async fn reserved(node: &Shop, product: ProductId) -> u64 {
    node.inventory(product)
        .await
        .expect("the owner answers")
        .counters
        .reserved
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

struct TwoNodes {
    database: TestDatabase,
    store: Arc<Database>,
    a: Shop,
    b: Shop,
    channel: Arc<Channel>,
    /// Served by A, 10 units; served by B, 1 unit; served by B, 5 units.
    on_a: ProductId,
    on_b: ProductId,
    spare_on_b: ProductId,
}

impl TwoNodes {
    async fn start() -> Self {
        let database = TestDatabase::create().await;
        let (store_a, store_b) = (connect(&database).await, connect(&database).await);
        let (a, b) = (node(&store_a).await, node(&store_b).await);
        take(&store_a, &a, "a", &[0, 1]).await;
        take(&store_b, &b, "b", &[2, 3]).await;
        let channel = Channel::connect(vec![
            ("a", vec![0, 1], a.clone()),
            ("b", vec![2, 3], b.clone()),
        ]);
        let (on_a, on_b) = (served_by(&a, 1), served_by(&b, 1));
        a.create_product(Some(on_a), draft(on_a.0), 10)
            .await
            .expect("A creates its product");
        b.create_product(Some(on_b), draft(on_b.0), 1)
            .await
            .expect("B creates its product");
        let spare_on_b = served_by(&b, on_b.0 + 1);
        b.create_product(Some(spare_on_b), draft(spare_on_b.0), 5)
            .await
            .expect("B creates its second product");
        Self {
            database,
            store: store_a,
            a,
            b,
            channel,
            on_a,
            on_b,
            spare_on_b,
        }
    }

    /// Puts both products in the user's cart, through A (B prices its own product).
    async fn fill_cart(&self, user: u64, units_a: u32, units_b: u32) {
        self.a
            .add_to_cart(UserId(user), self.on_a, units_a)
            .await
            .expect("the cart takes A's product");
        self.a
            .add_to_cart(UserId(user), self.on_b, units_b)
            .await
            .expect("the cart takes B's product");
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        self.database.drop_database().await;
    }
}

#[tokio::test]
async fn an_order_spanning_two_nodes_moves_all_its_lines_or_none() {
    let nodes = TwoNodes::start().await;
    let (a, b) = (&nodes.a, &nodes.b);

    // Two carts want B's last unit. Either node shows a cart whole, each line priced by
    // its owner.
    nodes.fill_cart(1, 2, 1).await;
    nodes.fill_cart(2, 3, 1).await;
    for node in [a, b] {
        let cart = node.cart(UserId(1)).await.expect("the cart is shown");
        let lines: Vec<(ProductId, u32, u64)> = cart
            .items
            .iter()
            .map(|line| (line.product_id, line.quantity, line.available))
            .collect();
        assert_eq!(lines, vec![(nodes.on_a, 2, 10), (nodes.on_b, 1, 1)]);
        assert_eq!(cart.items[1].title, format!("Phone {}", nodes.on_b.0));
    }

    // Placed by A, with B holding B's line: one order, both lines, A's line first.
    let order = match checkout(a, 1, "cart-1").await {
        CheckoutReply::Placed { order, duplicate } => {
            assert!(!duplicate);
            order
        }
        other => panic!("{other:?}"),
    };
    let products: Vec<ProductId> = order.items.iter().map(|item| item.product_id).collect();
    assert_eq!(products, vec![nodes.on_a, nodes.on_b]);
    assert_eq!(reserved(a, nodes.on_a).await, 2);
    assert_eq!(reserved(b, nodes.on_b).await, 1);
    assert_eq!(
        orders_of(&nodes.store, nodes.on_b).await,
        1,
        "B's line is in the store"
    );
    eventually("B hears the outcome", async || {
        b.lines_held_for_peers() == 0
    })
    .await;

    // B's product is sold out: nothing of the second cart is held anywhere.
    match checkout(a, 2, "cart-2").await {
        CheckoutReply::Refused(refusals) => {
            assert_eq!(refusals.len(), 1, "{refusals:?}");
            assert_eq!(refusals[0].product_id, nodes.on_b);
            assert!(
                matches!(
                    refusals[0].reason,
                    PrepareRefused::Refused(Refusal::OutOfStock { .. })
                ),
                "{refusals:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reserved(a, nodes.on_a).await, 2, "A's line went back");

    // A cart with nothing of B's shards is placed by B's neighbour: B points to it.
    let only_a = 3;
    a.add_to_cart(UserId(only_a), nodes.on_a, 1)
        .await
        .expect("the cart takes A's product");
    assert_eq!(
        checkout(b, only_a, "cart-3").await,
        CheckoutReply::Elsewhere(nodes.on_a)
    );

    // The payment, on the order's node (its first line's), sells both lines.
    let paid = a
        .settle_payment(order.id, "tx-1".into(), true)
        .await
        .expect("the payment is recorded");
    assert_eq!(paid.status, OrderStatus::Paid);
    let sold = |inventory: engine::stock::Inventory| inventory.counters.sold;
    assert_eq!(sold(a.inventory(nodes.on_a).await.expect("A answers")), 2);
    assert_eq!(sold(b.inventory(nodes.on_b).await.expect("B answers")), 1);
    assert_eq!(reserved(b, nodes.on_b).await, 0);

    nodes.stop().await;
}

#[tokio::test]
async fn a_line_held_for_a_silent_coordinator_is_settled_by_the_store() {
    let nodes = TwoNodes::start().await;
    let (a, b) = (&nodes.a, &nodes.b);
    nodes.channel.lose_settlements.store(true, Ordering::SeqCst);

    // The order commits; B never hears it. Past the hold, B reads the store: sold to it.
    nodes.fill_cart(1, 1, 1).await;
    assert!(matches!(
        checkout(a, 1, "cart-1").await,
        CheckoutReply::Placed { .. }
    ));
    assert_eq!(b.lines_held_for_peers(), 1);
    eventually("B settles the line from the store", async || {
        b.lines_held_for_peers() == 0
    })
    .await;
    assert_eq!(reserved(b, nodes.on_b).await, 1, "the committed line stays");

    // A coordinator that asked and vanished: B gives the unit back after the hold.
    let spare = nodes.spare_on_b;
    let shard = b.shard_of(spare);
    let order_ids = actors::OrderIds::seeded(7);
    let hold = |order: OrderId| HoldRequest {
        order_id: order,
        shard,
        steps: vec![(
            spare,
            PrepareStep::Reserve {
                user_id: UserId(9),
                quantity: 1,
                idempotency_key: IdempotencyKey::parse(&format!("vanished-{order}"))
                    .expect("a valid key"),
                now_ms: actors::clock::now_ms(),
                expires_at_ms: actors::clock::now_ms() + 600_000,
            },
        )],
    };
    let now = actors::clock::now_ms();
    let reply = match b.hold_for_peer(hold(order_ids.next(now))).await {
        HoldAnswer::Held(reply) => reply,
        other => panic!("{other:?}"),
    };
    assert!(
        reply.lines.iter().all(|(_, line)| line.is_ok()),
        "{reply:?}"
    );
    assert_eq!(reserved(b, spare).await, 1, "held like a reservation");
    eventually("B gives the unclaimed unit back", async || {
        b.lines_held_for_peers() == 0 && reserved(b, spare).await == 0
    })
    .await;

    // A batch carrying an ended hold is refused by PostgreSQL; the writer beside it in the
    // same batch commits.
    let late = match b.hold_for_peer(hold(order_ids.next(now))).await {
        HoldAnswer::Held(reply) => reply,
        other => panic!("{other:?}"),
    };
    let mut ops: Vec<WriteOp> = late.leases.iter().cloned().map(WriteOp::Fence).collect();
    ops.push(WriteOp::HoldUntil(actors::clock::now_ms() - 1));
    ops.push(WriteOp::ForgetEvents(vec![1]));
    let committer = a.committer();
    let (refused, beside) = tokio::join!(
        committer.write(ops),
        committer.write(vec![WriteOp::ForgetEvents(vec![2])])
    );
    assert!(refused.is_err(), "a batch past its hold commits nothing");
    assert!(beside.is_ok(), "{beside:?}");
    let mut ops: Vec<WriteOp> = late.leases.iter().cloned().map(WriteOp::Fence).collect();
    ops.push(WriteOp::HoldUntil(late.until_ms));
    ops.push(WriteOp::ForgetEvents(vec![3]));
    committer
        .write(ops)
        .await
        .expect("before the hold ends, the same batch commits");

    nodes.stop().await;
}
