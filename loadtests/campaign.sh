#!/usr/bin/env bash
# A sale campaign to many wishers: seeds N users who wishlisted one product (straight into
# the store), schedules a sale of it, and follows the announcement through
# GET /api/v1/admin/campaigns/{saleId} until every message is sent. Prints the time to
# queue every wisher and to send every message, the achieved send rate against the
# configured one, and the engine's resident memory before and at its peak during the
# campaign, in all and its own (RssAnon, without the database pages SQLite maps): run two
# sizes to see it does not grow with the wishers.
#
#   loadtests/campaign.sh [embedded|postgres] [wishers, default 1000000] [rate per second, default 10000]
#
# embedded: the embedded store, messages sent in process. postgres: PostgreSQL and Redis,
# messages over RabbitMQ (the `campaigns` exchange). The default sender records each
# message in the store (`notifications`); the generator here is only curl and psql/sqlite3,
# but the engine, the broker and the database share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE="${1:-embedded}"
WISHERS="${2:-1000000}"
RATE="${3:-10000}"
ADDRESS=127.0.0.1:18097
SECRET="campaign-secret"
PRODUCT=5
source loadtests/common.sh
begin_engine_runs flashcart_campaign

export FLASHCART_CAMPAIGNS__SEND_RATE_PER_SECOND="$RATE"
store=embedded
if [ "$STORE" = postgres ]; then
    store=postgres-redis
    export FLASHCART_RABBITMQ__URL="${FLASHCART_TEST_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    export FLASHCART_RABBITMQ__PREFIX="campaign-bench-$(date +%s%N)."
fi
start_engine "$store" "$ADDRESS" "$WORK/data" flashcart_campaign "$SECRET"
ADMIN="$(FLASHCART_AUTH__JWT_SECRET="$SECRET" "$BIN/flashcart" demo-token --user 1 --role admin --data-dir "$WORK/data" | tail -1)"
curl -sf -X POST "http://$ADDRESS/api/v1/products" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' \
    -d "{\"id\": $PRODUCT, \"title\": \"Galaxy S24\", \"brand\": \"Samsung\", \"category\": \"mobiles\", \"price\": 7999900, \"stock\": 100}" >/dev/null

echo "seeding $WISHERS wishers of product $PRODUCT..."
if [ "$STORE" = postgres ]; then
    psql "$STORE_URL" -qc "INSERT INTO wishlist_items (user_id, product_id, added_at_ms)
        SELECT g, $PRODUCT, 0 FROM generate_series(1, $WISHERS) AS g;
        INSERT INTO wishlist_counts (product_id, wishers) VALUES ($PRODUCT, $WISHERS);" >/dev/null
else
    sqlite3 "$WORK/data/flashcart.db" ".timeout 30000" "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < $WISHERS)
        INSERT INTO wishlist_items (user_id, product_id, added_at_ms) SELECT x, $PRODUCT, 0 FROM g;
        INSERT INTO wishlist_counts (product_id, wishers) VALUES ($PRODUCT, $WISHERS);" >/dev/null
fi

python3 - "$ADDRESS" "$ADMIN" "$PID" "$WISHERS" "$RATE" "$PRODUCT" "$STORE" <<'PY'
import json, sys, time, urllib.request, urllib.error
from datetime import datetime, timedelta, timezone

address, admin, pid, wishers, rate, product, store = sys.argv[1:8]
wishers, rate = int(wishers), int(rate)

def call(method, path, body=None):
    request = urllib.request.Request(f"http://{address}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)

def memory_mb(field="VmRSS"):
    """Resident memory: VmRSS in all, RssAnon the engine's own (heap, stacks); the rest
    is mostly file pages SQLite maps (`mmap_size`, 256 MiB at most)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1e3
    return 0.0

def rss_mb():
    return memory_mb("VmRSS")

# The sale starts in two hours: only the announcement runs now.
start = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
rss_before, anon_before = rss_mb(), memory_mb("RssAnon")
began = time.monotonic()
sale = call("POST", "/api/v1/flash-sales", {"productId": int(product), "salePrice": 4999900,
    "originalPrice": 7999900, "startTime": start, "stock": 50, "perUserLimit": 1})["id"]
peak, anon_peak, queued_at, campaign, last_print = rss_before, anon_before, None, None, 0.0
while True:
    time.sleep(0.2)
    peak = max(peak, rss_mb())
    anon_peak = max(anon_peak, memory_mb("RssAnon"))
    try:
        campaign = call("GET", f"/api/v1/admin/campaigns/{sale}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            continue
        raise
    now = time.monotonic() - began
    if queued_at is None and campaign.get("total") is not None and campaign["enqueued"] >= campaign["total"]:
        queued_at = now
    if now - last_print >= 5:
        last_print = now
        print(f"  {now:6.1f} s: enqueued {campaign['enqueued']:>9}, sent {campaign['sent']:>9}, RSS {rss_mb():6.0f} MB", flush=True)
    if campaign.get("finishedAt"):
        break
sent_at = time.monotonic() - began
total, sent, failed = campaign["total"], campaign["sent"], campaign["failed"]
print(f"store {store}, {wishers} wishers, {total} messages (push + email), configured {rate}/s")
print(f"queued every wisher in {queued_at:.1f} s; every message sent in {sent_at:.1f} s ({failed} failed)")
print(f"achieved {sent / sent_at:.0f} messages/s = {sent / sent_at / rate:.2f} of the configured rate "
      f"(ideal {total / rate:.1f} s)")
print(f"engine RSS: {rss_before:.0f} MB before, {peak:.0f} MB at the peak, +{peak - rss_before:.0f} MB")
print(f"of which its own (RssAnon: heap, stacks): {anon_before:.0f} MB before, {anon_peak:.0f} MB at the peak, "
      f"+{anon_peak - anon_before:.0f} MB; the rest is file pages (SQLite maps up to 256 MiB of its database)")
PY
echo "(the engine, its store$( [ "$STORE" = postgres ] && echo ", RabbitMQ") and this script share this machine's cores)"
