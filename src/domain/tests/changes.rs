//! Later messages change, cancel and re-number orders; each order group is its own order.

use super::*;

#[tokio::test]
async fn order_changes_update_the_order_and_once_matched_append_order_updated() {
    let (_dir, _clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    let xo = |id, status, info, class| Order {
        control: "XO",
        status,
        clinical_info: info,
        class,
        ..Order::new(id, "PL1", "ACC1", &["P1"])
    };
    send(&log, xo("C2", "IP", "Headache", "O").event()).await;
    let h = History::read(&log);
    assert_eq!(h.message_updates, [("PL1".into(), "order_status".into(), Some("IP".into()))]);
    assert!(h.order_updates.is_empty(), "not matched yet: only the HL7 message changed");

    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    send(&log, xo("C3", "CM", "Headache, nausea", "I").event()).await;
    let h = History::read(&log);
    assert_eq!(
        h.order_updates,
        [
            ("PL1".into(), "order_status".into(), Some("CM".into())),
            ("PL1".into(), "clinical_info".into(), Some("Headache, nausea".into())),
            ("PL1".into(), "patient_class".into(), Some("I".into())),
        ]
    );
    let case = h.case_of("1.2.1").unwrap();
    assert_eq!(h.classes[case], "I", "the new patient class reclassifies the case");
    // The same values again change nothing.
    send(&log, xo("C4", "CM", "Headache, nausea", "I").event()).await;
    assert_eq!(History::read(&log).order_updates.len(), 3);
}

#[tokio::test]
async fn a_cancelled_order_stops_waiting_and_a_matched_one_is_cancelled_by_event() {
    let (_dir, _clock, log) = start();
    let cancel = |id, placer, acc| Order { control: "CA", status: "CA", ..Order::new(id, placer, acc, &["P1"]) };
    send(&log, Order::new("C1", "PL1", "ACC1", &["P1"]).event()).await;
    send(&log, cancel("C2", "PL1", "ACC1").event()).await;
    Study::new("1.2.1", "ACC1", "P1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert!(h.matches.is_empty(), "a cancelled order matches nothing");
    assert_eq!(h.cancelled, ["PL1".to_owned()].into());

    send(&log, Order::new("C3", "PL2", "ACC2", &["P1"]).event()).await;
    Study::new("1.2.2", "ACC2", "P1").arrive(&log, 1).await;
    send(&log, cancel("C4", "PL2", "ACC2").event()).await;
    let kinds: Vec<_> =
        crate::events::after(&log.reader(), 0, 1000).unwrap().items.iter().map(|e| e.event.event_type()).collect();
    assert_eq!(kinds.last(), Some(&"OrderCancelled"), "{kinds:?}");
    // A study of a cancelled order's accession completing later is not paired with it.
    Study::new("1.2.3", "ACC2", "P1").arrive(&log, 1).await;
    assert_eq!(History::read(&log).matches, [pair("1.2.2", "PL2")]);
}

/// A report feed's ORU^R01: an ORC before the first OBR only; each group's placer number in
/// OBR-2 (`placers`), its accession in OBR-3 and its procedure in OBR-4.
fn multi_group_report(control_id: &str, placers: [&str; 2]) -> String {
    format!(
        "MSH|^~\\&|RADRPT|HOSP|ZENEDGE|EDGE|20261123120000||ORU^R01|{control_id}|P|2.4\r\
         PID|1||P1^^^HOSP^MR||Doe^Jane\r\
         ORC|RE|{p0}|ACC-71||CM\r\
         OBR|1|{p0}|ACC-71|CTCHEST^CT Chest^L|||20261123110000|||||||||||||||||CT|F\r\
         OBX|1|TX|GDT^Report||Chest normal||||||F\r\
         OBR|2|{p1}|ACC-72|CTABD^CT Abdomen^L|||20261123111500|||||||||||||||||MR|F\r\
         OBX|1|TX|GDT^Report||Abdomen normal||||||F\r",
        p0 = placers[0],
        p1 = placers[1],
    )
}

#[tokio::test]
async fn each_order_group_is_its_own_order_and_a_re_sent_message_changes_none_of_them() {
    for placers in [["PL-71", "PL-72"], ["PL-7", "PL-7"]] {
        let (_dir, _clock, log) = start();
        send(&log, hl7(&multi_group_report("R1", placers))).await;
        // The same report again under a new control id (as after a correction elsewhere).
        send(&log, hl7(&multi_group_report("R2", placers))).await;
        Study::new("1.2.71", "ACC-71", "P1").arrive(&log, 1).await;
        Study { modality: "MR".into(), ..Study::new("1.2.72", "ACC-72", "P1") }.arrive(&log, 1).await;
        let h = History::read(&log);
        assert_eq!(h.message_updates, [], "{placers:?}: a re-send changes nothing");
        assert_eq!(h.matches.len(), 2, "{placers:?}: {:?}", h.matches);
        let events = crate::events::after(&log.reader(), 0, 1000).unwrap().items;
        let created: BTreeSet<_> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::OrderCreated(c) => Some((c.study_instance_uid.clone(), c.order_id.clone(), c.modality.clone())),
                _ => None,
            })
            .collect();
        let orders: BTreeSet<_> = created.iter().map(|(_, order, _)| order.clone()).collect();
        assert_eq!(orders.len(), 2, "{placers:?}: one order per group: {created:?}");
        let modalities: BTreeSet<_> = created.iter().map(|(study, _, m)| (study.clone(), m.clone())).collect();
        let expected = [("1.2.71".to_owned(), Some("CT".to_owned())), ("1.2.72".to_owned(), Some("MR".to_owned()))];
        assert_eq!(modalities, expected.into(), "{placers:?}: each study met its own group");
    }
}

#[tokio::test]
async fn a_corrected_accession_undoes_the_old_pair_and_meets_the_studies_of_the_new_one() {
    let (dir, clock, log) = start();
    send(&log, Order::new("C1", "PL1", "ACC-OLD", &["P1"]).event()).await;
    Study::new("1.2.1", "ACC-OLD", "P1").arrive(&log, 1).await;
    let old_study_completed = clock.now();
    clock.advance(Duration::from_secs(60));
    Study::new("1.2.2", "ACC-NEW", "P1").arrive(&log, 1).await;
    clock.advance(Duration::from_secs(60));
    // The RIS corrects OBR-18 by sending the order again under its placer number.
    send(&log, Order::new("C2", "PL1", "ACC-NEW", &["P1"]).event()).await;
    let h = History::read(&log);
    assert_eq!(h.matches, [pair("1.2.1", "PL1"), pair("1.2.2", "PL1")]);
    assert_eq!(h.unmatched, [("1.2.1".into(), "PL1".into(), "accession_changed".into())]);
    assert_eq!(h.message_updates, [("PL1".into(), "accession_number".into(), Some("ACC-NEW".into()))]);
    assert_eq!(h.order_updates, h.message_updates, "the order was matched: OrderUpdated says so too");

    let reader = log.reader();
    let found = |acc: &str| {
        let hits = views::search_orders(&reader, &views::Search::Accession(acc.into())).unwrap().items;
        hits.into_iter().map(|o| (o.accession_number, o.studies.len())).collect::<Vec<_>>()
    };
    assert_eq!(found("ACC-NEW"), [("ACC-NEW".to_owned(), 1)]);
    assert_eq!(found("ACC-OLD"), []);
    let order_id =
        views::search_orders(&reader, &views::Search::Accession("ACC-NEW".into())).unwrap().items[0].order_id.clone();
    let order = views::order(&reader, &order_id).unwrap().unwrap();
    assert_eq!(order.studies.iter().map(|s| s.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.2"]);
    let matches = views::matches(&reader, &views::MatchQuery { after: 0, limit: 10, accession: None }).unwrap().items;
    assert_eq!(matches.iter().map(|m| m.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.2"]);
    let waiting = views::unmatched_studies(&reader, &waiting_query(&clock)).unwrap().items;
    assert_eq!(waiting.iter().map(|w| w.study_instance_uid.as_str()).collect::<Vec<_>>(), ["1.2.1"]);
    assert_eq!(waiting[0].waiting_since, old_study_completed, "it waits again since its first completion");
    assert!(views::unmatched_orders(&reader, &waiting_query(&clock)).unwrap().items.is_empty());

    // An XO to an accession no study has yet: the order waits under it, since its receipt.
    send(&log, Order { control: "XO", ..Order::new("C3", "PL1", "ACC-LATER", &["P1"]) }.event()).await;
    assert_eq!(found("ACC-LATER"), [("ACC-LATER".to_owned(), 0)]);
    let waiting = views::unmatched_orders(&reader, &waiting_query(&clock)).unwrap().items;
    assert_eq!(waiting.iter().map(|w| w.accession_number.as_str()).collect::<Vec<_>>(), ["ACC-LATER"]);
    assert_eq!(Some(waiting[0].waiting_since), Some(order.received_at));
    Study::new("1.2.3", "ACC-LATER", "P1").arrive(&log, 1).await;
    let h = History::read(&log);
    assert_eq!(h.matches.last(), Some(&pair("1.2.3", "PL1")));
    assert_eq!(h.unmatched.len(), 2, "{:?}", h.unmatched);
    drop(reader);
    log.close().await.unwrap();
    assert_replay_equals_projections(dir.path());
}
