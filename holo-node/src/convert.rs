//! Conversions between holo-accord types and their protobuf form (holo-proto), at the edge:
//! peer messages on the wire and command records in the WAL. Decoding is fallible: a
//! malformed message from a peer or a record from another version is an error, never a panic.

use holo_accord::{
    Access, Ballot, Command, Envelope, Message, NodeId, RecoverInfo, Status, Timestamp, Txn, TxnId,
};
use holo_proto::v1 as pb;
use prost::Message as _;

/// A protobuf message that does not describe a valid holo-accord value.
#[derive(Debug, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

type R<T> = Result<T, Malformed>;

fn ts(t: Timestamp) -> pb::Timestamp {
    pb::Timestamp {
        epoch: t.epoch,
        hlc: t.hlc,
        flags: u32::from(t.flags),
        node: u32::from(t.node),
    }
}

fn from_ts(t: Option<pb::Timestamp>, what: &'static str) -> R<Timestamp> {
    let t = t.ok_or(Malformed(what))?;
    Ok(Timestamp {
        epoch: t.epoch,
        hlc: t.hlc,
        flags: u16::try_from(t.flags).map_err(|_| Malformed(what))?,
        node: u16::try_from(t.node).map_err(|_| Malformed(what))?,
    })
}

fn status(s: Status) -> i32 {
    (match s {
        Status::PreAccepted => pb::Status::PreAccepted,
        Status::Accepted => pb::Status::Accepted,
        Status::AcceptedInvalidate => pb::Status::AcceptedInvalidate,
        Status::Stable => pb::Status::Stable,
        Status::Applied => pb::Status::Applied,
        Status::Invalidated => pb::Status::Invalidated,
    }) as i32
}

fn from_status(s: i32) -> R<Status> {
    Ok(
        match pb::Status::try_from(s).map_err(|_| Malformed("status"))? {
            pb::Status::Unspecified => return Err(Malformed("status")),
            pb::Status::PreAccepted => Status::PreAccepted,
            pb::Status::Accepted => Status::Accepted,
            pb::Status::AcceptedInvalidate => Status::AcceptedInvalidate,
            pb::Status::Stable => Status::Stable,
            pb::Status::Applied => Status::Applied,
            pb::Status::Invalidated => Status::Invalidated,
        },
    )
}

fn deps(d: &holo_accord::Deps) -> Vec<pb::Timestamp> {
    d.iter().map(|id| ts(id.0)).collect()
}

fn from_deps(d: Vec<pb::Timestamp>) -> R<holo_accord::Deps> {
    d.into_iter()
        .map(|t| from_ts(Some(t), "deps").map(TxnId))
        .collect()
}

fn txn(t: &Txn) -> pb::Txn {
    pb::Txn {
        id: Some(ts(t.id.0)),
        keys: t
            .keys
            .iter()
            .map(|(key, access)| pb::KeyAccess {
                key: key.clone(),
                write: *access == Access::Write,
            })
            .collect(),
        op: t.op.clone(),
        scope: t.scope.as_ref().map(|s| pb::KeySpan {
            start: s.start.clone(),
            end: s.end.clone(),
        }),
    }
}

fn from_txn(t: Option<pb::Txn>) -> R<Txn> {
    let t = t.ok_or(Malformed("txn"))?;
    let keys: Vec<_> = t
        .keys
        .into_iter()
        .map(|k| {
            let access = if k.write { Access::Write } else { Access::Read };
            (k.key, access)
        })
        .collect();
    let id = TxnId(from_ts(t.id, "txn id")?);
    // A sync point names no keys; every other txn names at least one, sorted and unique.
    if keys.is_empty() != id.is_sync_point() || keys.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Malformed("txn keys"));
    }
    // Only a sync point has a scope, and a scope is never empty.
    let scope = t.scope.map(|s| holo_accord::KeySpan {
        start: s.start,
        end: s.end,
    });
    if scope
        .as_ref()
        .is_some_and(|s| !id.is_sync_point() || s.end.as_ref().is_some_and(|end| *end <= s.start))
    {
        return Err(Malformed("txn scope"));
    }
    Ok(Txn {
        id,
        keys,
        op: t.op,
        scope,
    })
}

pub fn command(c: &Command) -> pb::Command {
    pb::Command {
        txn: Some(txn(&c.txn)),
        status: status(c.status),
        execute_at: Some(ts(c.execute_at)),
        deps: deps(&c.deps),
        promised: Some(ts(c.promised.0)),
        accepted: Some(ts(c.accepted.0)),
        fast_vote: c.fast_vote,
    }
}

pub fn from_command(c: pb::Command) -> R<Command> {
    Ok(Command {
        txn: from_txn(c.txn)?,
        status: from_status(c.status)?,
        execute_at: from_ts(c.execute_at, "execute_at")?,
        deps: from_deps(c.deps)?,
        promised: Ballot(from_ts(c.promised, "promised")?),
        accepted: Ballot(from_ts(c.accepted, "accepted")?),
        fast_vote: c.fast_vote,
    })
}

/// What one WAL record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Command(Command),
    /// A clock reservation (`Action::ReserveClock::upto`).
    Clock(u64),
    /// The GC floor and the highest timestamp dropped (`Action::Truncate`).
    Truncated(TxnId, Timestamp),
}

/// A command as a WAL record.
pub fn encode_record(c: &Command) -> Vec<u8> {
    pb::WalRecord {
        record: Some(pb::wal_record::Record::Command(command(c))),
    }
    .encode_to_vec()
}

/// A clock reservation as a WAL record.
pub fn encode_clock_record(upto: u64) -> Vec<u8> {
    pb::WalRecord {
        record: Some(pb::wal_record::Record::ClockReserved(upto)),
    }
    .encode_to_vec()
}

/// A GC floor as a WAL record.
pub fn encode_truncated_record(floor: TxnId, max: Timestamp) -> Vec<u8> {
    pb::WalRecord {
        record: Some(pb::wal_record::Record::Truncated(pb::Truncated {
            floor: Some(ts(floor.0)),
            max: Some(ts(max)),
        })),
    }
    .encode_to_vec()
}

/// A WAL record back into what it holds.
///
/// # Errors
/// The bytes are not a WAL record.
pub fn decode_record(bytes: &[u8]) -> R<Record> {
    let r = pb::WalRecord::decode(bytes).map_err(|_| Malformed("WAL record"))?;
    match r.record {
        Some(pb::wal_record::Record::Command(c)) => Ok(Record::Command(from_command(c)?)),
        Some(pb::wal_record::Record::ClockReserved(upto)) => Ok(Record::Clock(upto)),
        Some(pb::wal_record::Record::Truncated(t)) => Ok(Record::Truncated(
            TxnId(from_ts(t.floor, "floor")?),
            from_ts(t.max, "max")?,
        )),
        None => Err(Malformed("WAL record")),
    }
}

fn info(i: &RecoverInfo) -> pb::RecoverInfo {
    pb::RecoverInfo {
        status: status(i.status),
        accepted: Some(ts(i.accepted.0)),
        execute_at: Some(ts(i.execute_at)),
        deps: deps(&i.deps),
        fast_vote: i.fast_vote,
        rejects_fast_path: i.rejects_fast_path,
        undecided_blocker: i.undecided_blocker,
        refused: i.refused,
    }
}

fn from_info(i: Option<pb::RecoverInfo>) -> R<RecoverInfo> {
    let i = i.ok_or(Malformed("recover info"))?;
    Ok(RecoverInfo {
        status: from_status(i.status)?,
        accepted: Ballot(from_ts(i.accepted, "accepted")?),
        execute_at: from_ts(i.execute_at, "execute_at")?,
        deps: from_deps(i.deps)?,
        fast_vote: i.fast_vote,
        rejects_fast_path: i.rejects_fast_path,
        undecided_blocker: i.undecided_blocker,
        refused: i.refused,
    })
}

pub fn message(m: &Message) -> pb::AccordMessage {
    use pb::Kind as K;
    let mut out = pb::AccordMessage::default();
    let kind = match m {
        Message::PreAccept { txn: t } => {
            out.txn = Some(txn(t));
            K::PreAccept
        }
        Message::PreAcceptOk {
            txn_id,
            witnessed,
            deps: d,
        } => {
            out.txn_id = Some(ts(txn_id.0));
            out.execute_at = Some(ts(*witnessed));
            out.deps = deps(d);
            K::PreAcceptOk
        }
        Message::PreAcceptNack { txn_id, promised } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(promised.0));
            K::PreAcceptNack
        }
        Message::Accept {
            txn: t,
            ballot,
            execute_at,
            deps: d,
        } => {
            out.txn = Some(txn(t));
            out.ballot = Some(ts(ballot.0));
            out.execute_at = Some(ts(*execute_at));
            out.deps = deps(d);
            K::Accept
        }
        Message::AcceptOk {
            txn_id,
            ballot,
            deps: d,
        } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(ballot.0));
            out.deps = deps(d);
            K::AcceptOk
        }
        Message::AcceptNack { txn_id, promised } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(promised.0));
            K::AcceptNack
        }
        Message::Stable {
            txn: t,
            execute_at,
            deps: d,
        } => {
            out.txn = Some(txn(t));
            out.execute_at = Some(ts(*execute_at));
            out.deps = deps(d);
            K::StableMsg
        }
        Message::StableOk { txn_id } => {
            out.txn_id = Some(ts(txn_id.0));
            K::StableOk
        }
        Message::BeginRecovery { txn: t, ballot } => {
            out.txn = Some(txn(t));
            out.ballot = Some(ts(ballot.0));
            K::BeginRecovery
        }
        Message::RecoverOk {
            txn_id,
            ballot,
            info: i,
        } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(ballot.0));
            out.info = Some(info(i));
            K::RecoverOk
        }
        Message::RecoverNack { txn_id, promised } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(promised.0));
            K::RecoverNack
        }
        Message::AcceptInvalidate { txn: t, ballot } => {
            out.txn = Some(txn(t));
            out.ballot = Some(ts(ballot.0));
            K::AcceptInvalidate
        }
        Message::AcceptInvalidateOk { txn_id, ballot } => {
            out.txn_id = Some(ts(txn_id.0));
            out.ballot = Some(ts(ballot.0));
            K::AcceptInvalidateOk
        }
        Message::Invalidate { txn: t } => {
            out.txn = Some(txn(t));
            K::Invalidate
        }
        Message::Inquire { txn_id } => {
            out.txn_id = Some(ts(txn_id.0));
            K::Inquire
        }
        Message::Inform { command: c } => {
            out.command = Some(command(c));
            K::Inform
        }
        Message::Refused { txn_id, excluded } => {
            out.txn_id = Some(ts(txn_id.0));
            out.excluded = *excluded;
            K::Refused
        }
        Message::SyncApplied { txn_id, query } => {
            out.txn_id = Some(ts(txn_id.0));
            out.query = *query;
            K::SyncApplied
        }
        Message::CutApplied { txn_id, query } => {
            out.txn_id = Some(ts(txn_id.0));
            out.query = *query;
            K::CutApplied
        }
        Message::ReadDeps { read_id, keys } => {
            out.txn_id = Some(ts(read_id.0));
            out.keys.clone_from(keys);
            K::ReadDeps
        }
        Message::ReadDepsOk {
            read_id,
            deps: d,
            seen,
        } => {
            out.txn_id = Some(ts(read_id.0));
            out.deps = deps(d);
            out.execute_at = Some(ts(*seen));
            K::ReadDepsOk
        }
    };
    out.kind = kind as i32;
    out
}

pub fn from_message(m: pb::AccordMessage) -> R<Message> {
    use pb::Kind as K;
    let kind = K::try_from(m.kind).map_err(|_| Malformed("message kind"))?;
    let txn_id = |t| from_ts(t, "txn_id").map(TxnId);
    let ballot = |t| from_ts(t, "ballot").map(Ballot);
    Ok(match kind {
        K::Unspecified => return Err(Malformed("message kind")),
        K::PreAccept => Message::PreAccept {
            txn: from_txn(m.txn)?,
        },
        K::PreAcceptOk => Message::PreAcceptOk {
            txn_id: txn_id(m.txn_id)?,
            witnessed: from_ts(m.execute_at, "witnessed")?,
            deps: from_deps(m.deps)?,
        },
        K::PreAcceptNack => Message::PreAcceptNack {
            txn_id: txn_id(m.txn_id)?,
            promised: ballot(m.ballot)?,
        },
        K::Accept => Message::Accept {
            txn: from_txn(m.txn)?,
            ballot: ballot(m.ballot)?,
            execute_at: from_ts(m.execute_at, "execute_at")?,
            deps: from_deps(m.deps)?,
        },
        K::AcceptOk => Message::AcceptOk {
            txn_id: txn_id(m.txn_id)?,
            ballot: ballot(m.ballot)?,
            deps: from_deps(m.deps)?,
        },
        K::AcceptNack => Message::AcceptNack {
            txn_id: txn_id(m.txn_id)?,
            promised: ballot(m.ballot)?,
        },
        K::StableMsg => Message::Stable {
            txn: from_txn(m.txn)?,
            execute_at: from_ts(m.execute_at, "execute_at")?,
            deps: from_deps(m.deps)?,
        },
        K::StableOk => Message::StableOk {
            txn_id: txn_id(m.txn_id)?,
        },
        K::BeginRecovery => Message::BeginRecovery {
            txn: from_txn(m.txn)?,
            ballot: ballot(m.ballot)?,
        },
        K::RecoverOk => Message::RecoverOk {
            txn_id: txn_id(m.txn_id)?,
            ballot: ballot(m.ballot)?,
            info: from_info(m.info)?,
        },
        K::RecoverNack => Message::RecoverNack {
            txn_id: txn_id(m.txn_id)?,
            promised: ballot(m.ballot)?,
        },
        K::AcceptInvalidate => Message::AcceptInvalidate {
            txn: from_txn(m.txn)?,
            ballot: ballot(m.ballot)?,
        },
        K::AcceptInvalidateOk => Message::AcceptInvalidateOk {
            txn_id: txn_id(m.txn_id)?,
            ballot: ballot(m.ballot)?,
        },
        K::Invalidate => Message::Invalidate {
            txn: from_txn(m.txn)?,
        },
        K::Inquire => Message::Inquire {
            txn_id: txn_id(m.txn_id)?,
        },
        K::Inform => Message::Inform {
            command: from_command(m.command.ok_or(Malformed("command"))?)?,
        },
        K::Refused => Message::Refused {
            txn_id: txn_id(m.txn_id)?,
            excluded: m.excluded,
        },
        K::SyncApplied => Message::SyncApplied {
            txn_id: txn_id(m.txn_id)?,
            query: m.query,
        },
        K::CutApplied => Message::CutApplied {
            txn_id: txn_id(m.txn_id)?,
            query: m.query,
        },
        K::ReadDeps => Message::ReadDeps {
            read_id: txn_id(m.txn_id)?,
            keys: m.keys,
        },
        K::ReadDepsOk => Message::ReadDepsOk {
            read_id: txn_id(m.txn_id)?,
            deps: from_deps(m.deps)?,
            seen: from_ts(m.execute_at, "seen")?,
        },
    })
}

pub fn envelope(e: &Envelope) -> pb::Envelope {
    pb::Envelope {
        from: u32::from(e.from.0),
        to: u32::from(e.to.0),
        messages: e.messages.iter().map(message).collect(),
    }
}

/// # Errors
/// Any message of the envelope is malformed (the whole envelope is refused).
pub fn from_envelope(e: pb::Envelope) -> R<Envelope> {
    Ok(Envelope {
        from: NodeId(u16::try_from(e.from).map_err(|_| Malformed("envelope from"))?),
        to: NodeId(u16::try_from(e.to).map_err(|_| Malformed("envelope to"))?),
        messages: e
            .messages
            .into_iter()
            .map(from_message)
            .collect::<R<Vec<_>>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn t(hlc: u64, node: u16) -> Timestamp {
        Timestamp {
            epoch: 1,
            hlc,
            flags: 1,
            node,
        }
    }

    fn sample_txn() -> Txn {
        Txn::new(
            TxnId(t(5, 1)),
            &[Bytes::from_static(b"a")],
            &[Bytes::from_static(b"b")],
            Bytes::from_static(b"op"),
        )
    }

    #[test]
    fn every_message_round_trips() {
        let d: holo_accord::Deps = [TxnId(t(1, 2)), TxnId(t(3, 3))].into_iter().collect();
        let id = TxnId(t(5, 1));
        let b = Ballot(t(9, 2));
        let command = Command {
            txn: sample_txn(),
            status: Status::Accepted,
            execute_at: t(7, 3),
            deps: d.clone(),
            promised: b,
            accepted: b,
            fast_vote: true,
        };
        let info = RecoverInfo {
            status: Status::Stable,
            accepted: b,
            execute_at: t(8, 1),
            deps: d.clone(),
            fast_vote: false,
            rejects_fast_path: true,
            undecided_blocker: true,
            refused: true,
        };
        let messages = vec![
            Message::PreAccept { txn: sample_txn() },
            Message::PreAcceptOk {
                txn_id: id,
                witnessed: t(6, 2),
                deps: d.clone(),
            },
            Message::PreAcceptNack {
                txn_id: id,
                promised: b,
            },
            Message::Accept {
                txn: sample_txn(),
                ballot: b,
                execute_at: t(6, 2),
                deps: d.clone(),
            },
            Message::AcceptOk {
                txn_id: id,
                ballot: b,
                deps: d.clone(),
            },
            Message::AcceptNack {
                txn_id: id,
                promised: b,
            },
            Message::Stable {
                txn: sample_txn(),
                execute_at: t(6, 2),
                deps: d.clone(),
            },
            Message::StableOk { txn_id: id },
            Message::BeginRecovery {
                txn: sample_txn(),
                ballot: b,
            },
            Message::RecoverOk {
                txn_id: id,
                ballot: b,
                info,
            },
            Message::RecoverNack {
                txn_id: id,
                promised: b,
            },
            Message::AcceptInvalidate {
                txn: sample_txn(),
                ballot: b,
            },
            Message::AcceptInvalidateOk {
                txn_id: id,
                ballot: b,
            },
            Message::Invalidate { txn: sample_txn() },
            Message::Inquire { txn_id: id },
            Message::Inform {
                command: command.clone(),
            },
            Message::Refused {
                txn_id: id,
                excluded: true,
            },
            Message::PreAccept {
                txn: Txn {
                    id: TxnId(Timestamp {
                        flags: 2,
                        ..t(7, 1)
                    }),
                    keys: Vec::new(),
                    op: Bytes::new(),
                    scope: None,
                },
            },
            Message::PreAccept {
                txn: Txn {
                    id: TxnId(Timestamp {
                        flags: 2,
                        ..t(8, 1)
                    }),
                    keys: Vec::new(),
                    op: Bytes::new(),
                    scope: Some(holo_accord::KeySpan {
                        start: Bytes::from_static(b"k"),
                        end: None,
                    }),
                },
            },
            Message::SyncApplied {
                txn_id: id,
                query: true,
            },
            Message::CutApplied {
                txn_id: id,
                query: false,
            },
            Message::ReadDeps {
                read_id: id,
                keys: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            },
            Message::ReadDepsOk {
                read_id: id,
                deps: [id].into_iter().collect(),
                seen: t(9, 2),
            },
        ];
        let envelope = Envelope {
            from: NodeId(1),
            to: NodeId(2),
            messages,
        };
        let wire = super::envelope(&envelope).encode_to_vec();
        let back = from_envelope(pb::Envelope::decode(&wire[..]).unwrap()).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(
            decode_record(&encode_record(&command)).unwrap(),
            Record::Command(command)
        );
        assert_eq!(
            decode_record(&encode_clock_record(42)).unwrap(),
            Record::Clock(42)
        );
        assert_eq!(
            decode_record(&encode_truncated_record(id, t(9, 2))).unwrap(),
            Record::Truncated(id, t(9, 2))
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(decode_record(b"\xff\xff\xff").is_err());
        assert!(decode_record(&[]).is_err(), "an empty record holds nothing");
        let mut m = message(&Message::PreAccept { txn: sample_txn() });
        m.kind = 999;
        assert!(from_message(m).is_err());
        let mut m = message(&Message::PreAccept { txn: sample_txn() });
        m.txn.as_mut().unwrap().keys.clear();
        assert!(from_message(m).is_err(), "a txn without keys");
    }
}
