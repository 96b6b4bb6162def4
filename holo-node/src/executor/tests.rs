use super::*;
use holo_accord::NodeId;
use holo_meta::Member;
use holo_storage::MemStore;

fn id(hlc: u64, flags: u16) -> TxnId {
    TxnId(Timestamp {
        epoch: 1,
        hlc,
        flags,
        node: 1,
    })
}

/// The transaction of a client command at `hlc` (epoch 1), without a waiting client.
fn command(hlc: u64, flags: u16, args: &[&str]) -> ApplyItem {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let Some(cmd::Parsed::Txn(kv)) = cmd::parse(&args) else {
        panic!("{args:?} parses to a txn");
    };
    let txn_id = id(hlc, flags);
    ApplyItem {
        txn: Txn::new(txn_id, &kv.reads, &kv.writes, kv.op),
        execute_at: txn_id.0,
        reply: Vec::new(),
        restored: false,
        ephemeral: Vec::new(),
    }
}

fn set(hlc: u64, key: &str) -> ApplyItem {
    command(hlc, 1, &["SET", key, "v"])
}

fn sync_point(hlc: u64) -> ApplyItem {
    let txn_id = id(hlc, 2);
    ApplyItem {
        txn: Txn::new(txn_id, &[], &[], Bytes::new()),
        execute_at: txn_id.0,
        reply: Vec::new(),
        restored: false,
        ephemeral: Vec::new(),
    }
}

/// An executor over a memory store, flushing on every batch, and what it tells the core.
fn executor() -> (Executor, Arc<Store>, tokio::sync::mpsc::Receiver<Event>) {
    let member = Member {
        id: NodeId(1),
        resp_addr: "127.0.0.1:1".into(),
        grpc_addr: "127.0.0.1:2".into(),
    };
    let meta = MetaState::new(holo_meta::ClusterMap::initial(vec![member], &[]).unwrap());
    let store = Arc::new(Store::Memory(MemStore::new()));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (published, _) = tokio::sync::watch::channel(Arc::new(meta.clone()));
    let executor = Executor::new(Arc::clone(&store), meta, published, Arc::default(), tx)
        .unwrap()
        .with_flush_every(Duration::ZERO);
    (executor, store, rx)
}

fn fail_flushes(store: &Store, n: u32) {
    let Store::Memory(mem) = store else {
        unreachable!("a memory store")
    };
    mem.fail_flushes(n);
}

fn reported(rx: &mut tokio::sync::mpsc::Receiver<Event>) -> Vec<TxnId> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e {
            Event::SyncDurable(id) => Some(id),
            _ => None,
        })
        .collect()
}

/// One pass of the executor's loop over a batch: apply, flush when due, report.
fn step(executor: &mut Executor, items: Vec<ApplyItem>) -> Result<(), Fatal> {
    executor.apply(items)?;
    executor.flush_if_due()?;
    executor.report_synced();
    Ok(())
}

#[test]
fn a_failed_flush_is_never_reported_durable_and_is_retried() {
    let (mut executor, store, mut rx) = executor();
    fail_flushes(&store, 1);
    step(&mut executor, vec![set(10, "a"), sync_point(11)]).unwrap();
    assert_eq!(
        reported(&mut rx),
        [],
        "the flush failed: nothing is durable"
    );
    // The next pass flushes again (still dirty), and only then reports the sync point.
    step(&mut executor, Vec::new()).unwrap();
    assert_eq!(reported(&mut rx), [id(11, 2)]);
}

#[test]
fn flushes_failing_in_a_row_stop_the_executor_with_a_typed_error() {
    let (mut executor, store, mut rx) = executor();
    fail_flushes(&store, FLUSH_FAILURES_MAX);
    step(&mut executor, vec![set(10, "a"), sync_point(11)]).unwrap();
    for _ in 1..FLUSH_FAILURES_MAX - 1 {
        step(&mut executor, Vec::new()).unwrap();
    }
    match step(&mut executor, Vec::new()) {
        Err(Fatal::Flush { failures, .. }) => assert_eq!(failures, FLUSH_FAILURES_MAX),
        other => panic!("expected Fatal::Flush, got {other:?}"),
    }
    assert_eq!(reported(&mut rx), [], "nothing was ever reported durable");
}

#[test]
fn the_executor_thread_ends_with_the_fatal_error() {
    let (executor, store, mut rx) = executor();
    fail_flushes(&store, FLUSH_FAILURES_MAX);
    let (tx, items) = mpsc::channel();
    tx.send(vec![set(10, "a"), sync_point(11)]).unwrap();
    // The sender stays open: only the failures can end the loop.
    let outcome = executor.run(items);
    assert!(matches!(outcome, Err(Fatal::Flush { .. })), "{outcome:?}");
    assert_eq!(reported(&mut rx), []);
    drop(tx);
}

#[test]
fn values_round_trip_with_their_version() {
    let v = Timestamp {
        epoch: 1,
        hlc: 99,
        flags: 1,
        node: 3,
    };
    let abc = Value::string(Bytes::from_static(b"abc"));
    assert_eq!(
        decode_value(&encode_value(v, Some(&abc))),
        Some((v, Some(abc)))
    );
    assert_eq!(decode_value(&encode_value(v, None)), Some((v, None)));
    assert_eq!(decode_value(b"short"), None);
}

fn meta(hlc: u64, command: &MetaCommand) -> ApplyItem {
    let txn_id = id(hlc, 1);
    let key = Bytes::from_static(holo_meta::META_KEY);
    ApplyItem {
        txn: Txn::new(txn_id, &[], &[key], Bytes::from(command.encode())),
        execute_at: txn_id.0,
        reply: Vec::new(),
        restored: false,
        ephemeral: Vec::new(),
    }
}

fn in_epoch(mut item: ApplyItem, epoch: u64) -> ApplyItem {
    item.txn.id.0.epoch = epoch;
    item.execute_at.epoch = epoch;
    item
}

/// A GET of `key` at `hlc` (epoch 1) whose reply comes back on the receiver.
fn get(hlc: u64, key: &str) -> (ApplyItem, tokio::sync::oneshot::Receiver<Frame>) {
    let mut item = command(hlc, 0, &["GET", key]);
    let (tx, rx) = tokio::sync::oneshot::channel();
    item.reply.push(tx);
    (item, rx)
}

#[test]
fn a_reply_that_found_a_key_expired_waits_out_the_clock_offset() {
    let (executor, _store, _rx) = executor();
    let mut executor = executor.with_max_clock_offset(300);
    let now_us = wall_ms() * 1000;
    // "k" expires 100 ms ago; the read runs now.
    let set = command(now_us - 1_000_000, 1, &["SET", "k", "v", "PX", "900"]);
    let (read, mut seen) = get(now_us, "k");
    step(&mut executor, vec![set, read]).unwrap();
    assert!(
        seen.try_recv().is_err(),
        "held: the expiry is within the offset"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let frame = loop {
        executor.release_held();
        if let Ok(frame) = seen.try_recv() {
            break frame;
        }
        assert!(Instant::now() < deadline, "the held reply was never sent");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(frame, Frame::Null);
    assert!(
        wall_ms() * 1000 >= now_us + 200_000,
        "sent only once the offset passed"
    );
}

#[test]
fn a_flushed_value_and_a_purged_one_give_the_same_watch_token() {
    let watch = |write_first: bool| {
        let (mut executor, _store, _rx) = executor();
        if write_first {
            step(&mut executor, vec![set(10, "a")]).unwrap();
        }
        step(&mut executor, vec![meta(20, &MetaCommand::Flush)]).unwrap();
        let txn_id = TxnId(Timestamp {
            epoch: 2,
            ..id(30, 0).0
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let keys = [Bytes::from_static(b"a")];
        let item = ApplyItem {
            txn: Txn::new(txn_id, &keys, &[], cmd::multi::watch_op(&keys)),
            execute_at: txn_id.0,
            reply: vec![tx],
            restored: false,
            ephemeral: Vec::new(),
        };
        step(&mut executor, vec![item]).unwrap();
        rx.try_recv().unwrap()
    };
    // Not purged yet on one replica, never written (or purged) on the other.
    assert_eq!(watch(true), watch(false));
}

#[test]
fn a_flush_hides_older_values_from_transactions_ordered_after_it_only() {
    let (mut executor, _store, _rx) = executor();
    step(&mut executor, vec![set(10, "a")]).unwrap();
    step(&mut executor, vec![meta(20, &MetaCommand::Flush)]).unwrap();
    assert_eq!(executor.meta.epoch(), 2);
    // Ordered before the flush (executeAt in epoch 1, wherever this replica applies
    // it): sees "a". Ordered after it (executeAt in epoch 2, though its id is of
    // epoch 1, as when a conflict raised it): does not.
    let (before, mut seen_before) = get(30, "a");
    let (mut after, mut seen_after) = get(31, "a");
    after.execute_at.epoch = 2;
    step(&mut executor, vec![before, after]).unwrap();
    assert_eq!(
        seen_before.try_recv().unwrap(),
        Frame::Bulk(Bytes::from("v"))
    );
    assert_eq!(seen_after.try_recv().unwrap(), Frame::Null);
}

#[test]
fn a_txn_of_an_epoch_not_reached_waits_for_its_meta_command_and_replay_skips_it() {
    let (mut executor, store, mut rx) = executor();
    let lease = MetaCommand::Lease {
        holder: NodeId(1),
        term: 1,
        duration_us: u64::MAX / 2,
    };
    let split = MetaCommand::Split {
        term: 1,
        range: holo_accord::RangeId(1),
        expect: 1,
        at: Bytes::from_static(b"m"),
    };
    step(&mut executor, vec![meta(10, &lease)]).unwrap();
    // The coordinator of "z" routed it in epoch 2, which this node has not applied:
    // it waits, and so does "a" behind it.
    step(&mut executor, vec![in_epoch(set(20, "z"), 2), set(21, "a")]).unwrap();
    assert_eq!(read_local(&store, b"z").unwrap(), None);
    assert_eq!(read_local(&store, b"a").unwrap(), None);
    // The split arrives (after them in this node's order: it conflicts with neither).
    step(&mut executor, vec![meta(15, &split)]).unwrap();
    assert_eq!(executor.meta.epoch(), 2);
    assert_eq!(
        read_local(&store, b"z").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        read_local(&store, b"a").unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // "z" counts in the new right-hand range of epoch 2, "a" in range 1.
    let right = executor.meta.map().ranges()[1].id.0;
    assert_eq!(executor.applied.get(&right), Some(&1));
    assert_eq!(executor.applied.get(&1), Some(&1));
    assert!(rx.try_recv().is_ok_and(|e| matches!(e, Event::Meta { .. })));
    // The persisted state is the applied one, and a replay of the split changes nothing.
    let persisted = MetaState::decode(&store.get(crate::meta::STATE_KEY).unwrap().unwrap());
    assert_eq!(persisted.as_ref(), Ok(&executor.meta));
    step(&mut executor, vec![meta(15, &split)]).unwrap();
    assert_eq!(executor.meta.epoch(), 2);
    assert_eq!(executor.meta.counts(), (1, 0));
}

#[test]
fn a_restored_write_already_in_storage_is_skipped_and_a_new_one_applies_without_reads() {
    let (mut executor, store, _rx) = executor();
    step(&mut executor, vec![command(20, 1, &["SET", "a", "new"])]).unwrap();
    // A plain SET ordered before it, replayed from the WAL after a restart: storage holds a
    // later write of "a", so it was applied before and must not run again.
    let mut replayed = command(10, 1, &["SET", "a", "old"]);
    replayed.restored = true;
    step(&mut executor, vec![replayed]).unwrap();
    assert_eq!(
        read_local(&store, b"a").unwrap().as_deref(),
        Some(&b"new"[..])
    );
    // Decided after the restart: applied with no look at storage (the overlay asserts that
    // nothing unloaded is read), and read back by a GET in the same batch.
    let (read, mut seen) = get(31, "b");
    step(
        &mut executor,
        vec![command(30, 1, &["MSET", "b", "1", "c", "2"]), read],
    )
    .unwrap();
    assert_eq!(seen.try_recv().unwrap(), Frame::Bulk(Bytes::from("1")));
    assert!(cmd::op::reads_nothing(
        &command(40, 1, &["SET", "a", "v", "EX", "5"]).txn.op
    ));
    for reads in [
        &["SET", "a", "v", "NX"][..],
        &["SET", "a", "v", "KEEPTTL"],
        &["SET", "a", "v", "GET"],
        &["INCR", "a"],
        &["MSETNX", "a", "1"],
        &["APPEND", "a", "x"],
    ] {
        assert!(
            !cmd::op::reads_nothing(&command(40, 1, reads).txn.op),
            "{reads:?}"
        );
    }
}

#[test]
fn an_ephemeral_read_that_finds_a_key_expired_goes_again_as_a_transaction() {
    let (executor, _store, mut rx) = executor();
    let mut executor = executor.with_max_clock_offset(0);
    let now_us = wall_ms() * 1000;
    let set = command(now_us - 2_000_000, 1, &["SET", "k", "v", "PX", "500"]);
    let live = command(now_us - 2_000_000, 1, &["SET", "j", "v"]);
    step(&mut executor, vec![set, live]).unwrap();
    // An ephemeral read of each at "now": "k" expired a second and a half ago.
    let read = |key: &str| {
        let (mut item, seen) = get(now_us, key);
        item.ephemeral = vec![(Bytes::from(key.to_owned()), item.txn.op.clone())];
        (item, seen)
    };
    let (expired, mut expired_seen) = read("k");
    let (alive, mut alive_seen) = read("j");
    step(&mut executor, vec![expired, alive]).unwrap();
    assert_eq!(
        alive_seen.try_recv().unwrap(),
        Frame::Bulk(Bytes::from("v"))
    );
    assert!(
        expired_seen.try_recv().is_err(),
        "not answered from the read's time"
    );
    let again = std::iter::from_fn(|| rx.try_recv().ok())
        .find_map(|e| match e {
            Event::Propose(p) => Some(p),
            _ => None,
        })
        .expect("proposed again");
    assert_eq!(again.len(), 1);
    assert!(again[0].txn_only && again[0].reads == [Bytes::from("k")]);
}
