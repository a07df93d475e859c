//! A hub restored from an older backup is refilled by an idle edge (invariant 5: every event
//! reaches the hub). The edge asks the hub where it stands not only at start and after its
//! circuit breaker closes but also every `sync.position_check_interval` while it has nothing
//! to send, so a hub that lost events, or never heard of the edge (`404`), gets them again
//! without waiting for the next message. On both of the hub's stores.

use crate::on_both_stores;
use crate::support::TestDaemon;
use crate::support::proxy::{Fault, FaultProxy};
use crate::sync::{Hub, assert_hub_holds_the_log, last_seq, options, send_orders, sync_toml, wait_synced};

on_both_stores! {
async fn an_idle_edge_refills_a_hub_restored_from_an_older_backup_without_new_intake(store: Store) {
    let backing = store.backing().unwrap();
    // A backup taken before the hub heard of the edge, and one after the first messages.
    let empty = backing.copy();
    let hub = Hub::start_on(backing, options(), None).await;
    let proxy = FaultProxy::start(hub.addr, Fault::Pass).await;
    let interval = "position_check_interval = \"200ms\"\n";
    let daemon = TestDaemon::start_with(&sync_toml(proxy.addr, interval)).await;
    send_orders(&daemon, "OLD", 10).await;
    wait_synced(&daemon, &hub).await;
    let backing = hub.stop().await;
    let older = backing.copy();
    let hub = Hub::start_on(backing, options(), None).await;
    proxy.retarget(hub.addr);
    send_orders(&daemon, "NEW", 10).await;
    wait_synced(&daemon, &hub).await;
    let last = last_seq(&daemon).await;

    // The hub is replaced by one restored from the older backup, at the same address; the
    // edge takes no new message.
    let restored = Hub::start_on(older, options(), None).await;
    let held = restored.stored_through().await;
    assert!(0 < held && held < last, "the backup holds {held} of {last} events");
    proxy.retarget(restored.addr);
    hub.stop().await;
    wait_synced(&daemon, &restored).await;
    assert_eq!(last_seq(&daemon).await, last, "refilled without new intake");
    assert_hub_holds_the_log(&daemon, &restored, &[]).await;

    // Restored from a backup older than the edge's first batch: the hub answers 404 for the
    // edge and is sent everything.
    let blank = Hub::start_on(empty, options(), None).await;
    let unknown = crate::support::http::get(blank.addr, &format!("/v1/edges/{}", crate::sync::EDGE)).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    proxy.retarget(blank.addr);
    restored.stop().await;
    wait_synced(&daemon, &blank).await;
    assert_eq!(last_seq(&daemon).await, last, "refilled without new intake");
    assert_hub_holds_the_log(&daemon, &blank, &[]).await;
    daemon.stop().await.unwrap();
    blank.stop().await;
}
}
