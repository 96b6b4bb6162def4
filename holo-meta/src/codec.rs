//! Binary encoding of the meta state and its commands: explicit little-endian, a version
//! byte first, every length checked on decode. The state is stored by every replica of the
//! meta range and compared across nodes by hash, so the encoding is canonical: the same
//! state always gives the same bytes.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use holo_accord::{NodeId, RangeId, Timestamp};

use crate::state::Record;
use crate::{
    ClusterMap, Lease, Member, MetaCommand, MetaState, OpKind, Operation, Outcome, Phase,
    RangeDescriptor, Rejection,
};

const STATE_VERSION: u8 = 2;
/// The state before FLUSHALL existed: no flush epochs.
const STATE_VERSION_1: u8 = 1;
const COMMAND_VERSION: u8 = 1;
/// Most elements of any list decoded (members, ranges, operations, history entries): far
/// above any real map, low enough that a corrupt length cannot make decoding allocate
/// without bound.
const LIST_MAX: u64 = 1 << 20;

/// Bytes that are not an encoding this version understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode the meta {what}: {why}")]
pub struct DecodeError {
    pub what: &'static str,
    pub why: String,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn opt_bytes(&mut self, v: Option<&Bytes>) {
        match v {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn timestamp(&mut self, t: Timestamp) {
        self.u64(t.epoch);
        self.u64(t.hlc);
        self.u16(t.flags);
        self.u16(t.node);
    }
    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, why: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            what: self.what,
            why: why.into(),
        })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return self.fail(format!(
                "truncated: {n} bytes wanted, {} left",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n > LIST_MAX {
            return self.fail(format!("a list of {n} elements"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u64()?;
        if n > self.rest.len() as u64 {
            return self.fail(format!("a string of {n} bytes, {} left", self.rest.len()));
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).or_else(|_| self.fail("an address is not UTF-8"))
    }
    fn opt_bytes(&mut self) -> Result<Option<Bytes>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            t => self.fail(format!("option tag {t}")),
        }
    }
    fn timestamp(&mut self) -> Result<Timestamp, DecodeError> {
        Ok(Timestamp {
            epoch: self.u64()?,
            hlc: self.u64()?,
            flags: self.u16()?,
            node: self.u16()?,
        })
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            self.fail(format!("{} bytes after the end", self.rest.len()))
        }
    }
}

fn write_range(w: &mut Writer, r: &RangeDescriptor) {
    w.u64(r.id.0);
    w.bytes(&r.start);
    w.opt_bytes(r.end.as_ref());
    w.len(r.replicas.len());
    for n in &r.replicas {
        w.u16(n.0);
    }
    w.u64(r.generation);
    match r.parent {
        None => w.u8(0),
        Some((id, generation)) => {
            w.u8(1);
            w.u64(id.0);
            w.u64(generation);
        }
    }
}

fn read_range(r: &mut Reader<'_>) -> Result<RangeDescriptor, DecodeError> {
    let id = RangeId(r.u64()?);
    let start = r.bytes()?;
    let end = r.opt_bytes()?;
    let n = r.len()?;
    let replicas = (0..n)
        .map(|_| r.u16().map(NodeId))
        .collect::<Result<_, _>>()?;
    let generation = r.u64()?;
    let parent = match r.u8()? {
        0 => None,
        1 => Some((RangeId(r.u64()?), r.u64()?)),
        t => return r.fail(format!("parent tag {t}")),
    };
    Ok(RangeDescriptor {
        id,
        start,
        end,
        replicas,
        generation,
        parent,
    })
}

fn write_ranges(w: &mut Writer, ranges: &[RangeDescriptor]) {
    w.len(ranges.len());
    for r in ranges {
        write_range(w, r);
    }
}

fn read_ranges(r: &mut Reader<'_>) -> Result<Vec<RangeDescriptor>, DecodeError> {
    let n = r.len()?;
    (0..n).map(|_| read_range(r)).collect()
}

fn write_map(w: &mut Writer, map: &ClusterMap) {
    w.u64(map.epoch);
    w.len(map.members.len());
    for m in &map.members {
        w.u16(m.id.0);
        w.bytes(m.resp_addr.as_bytes());
        w.bytes(m.grpc_addr.as_bytes());
    }
    w.len(map.meta_replicas.len());
    for n in &map.meta_replicas {
        w.u16(n.0);
    }
    write_ranges(w, &map.ranges);
}

fn read_map(r: &mut Reader<'_>) -> Result<ClusterMap, DecodeError> {
    let epoch = r.u64()?;
    let n = r.len()?;
    let members = (0..n)
        .map(|_| {
            Ok(Member {
                id: NodeId(r.u16()?),
                resp_addr: r.string()?,
                grpc_addr: r.string()?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    let n = r.len()?;
    let meta_replicas = (0..n)
        .map(|_| r.u16().map(NodeId))
        .collect::<Result<_, _>>()?;
    let ranges = read_ranges(r)?;
    Ok(ClusterMap {
        epoch,
        members,
        meta_replicas,
        ranges,
    })
}

fn write_command(w: &mut Writer, c: &MetaCommand) {
    match c {
        MetaCommand::Lease {
            holder,
            term,
            duration_us,
        } => {
            w.u8(1);
            w.u16(holder.0);
            w.u64(*term);
            w.u64(*duration_us);
        }
        MetaCommand::Split {
            term,
            range,
            expect,
            at,
        } => {
            w.u8(2);
            w.u64(*term);
            w.u64(range.0);
            w.u64(*expect);
            w.bytes(at);
        }
        MetaCommand::Merge {
            term,
            left,
            right,
            expect,
        } => {
            w.u8(3);
            w.u64(*term);
            w.u64(left.0);
            w.u64(right.0);
            w.u64(expect.0);
            w.u64(expect.1);
        }
        MetaCommand::Finish { term, operation } => {
            w.u8(4);
            w.u64(*term);
            w.u64(*operation);
        }
        MetaCommand::Flush => w.u8(5),
    }
}

fn read_command(r: &mut Reader<'_>) -> Result<MetaCommand, DecodeError> {
    Ok(match r.u8()? {
        1 => MetaCommand::Lease {
            holder: NodeId(r.u16()?),
            term: r.u64()?,
            duration_us: r.u64()?,
        },
        2 => MetaCommand::Split {
            term: r.u64()?,
            range: RangeId(r.u64()?),
            expect: r.u64()?,
            at: r.bytes()?,
        },
        3 => MetaCommand::Merge {
            term: r.u64()?,
            left: RangeId(r.u64()?),
            right: RangeId(r.u64()?),
            expect: (r.u64()?, r.u64()?),
        },
        4 => MetaCommand::Finish {
            term: r.u64()?,
            operation: r.u64()?,
        },
        5 => MetaCommand::Flush,
        t => return r.fail(format!("command tag {t}")),
    })
}

fn write_kind(w: &mut Writer, k: &OpKind) {
    match k {
        OpKind::Split { left, right, at } => {
            w.u8(1);
            w.u64(left.0);
            w.u64(right.0);
            w.bytes(at);
        }
        OpKind::Merge { into, retired } => {
            w.u8(2);
            w.u64(into.0);
            w.u64(retired.0);
        }
        OpKind::Flush { ranges } => {
            w.u8(3);
            w.len(ranges.len());
            for r in ranges {
                w.u64(r.0);
            }
        }
    }
}

fn read_kind(r: &mut Reader<'_>) -> Result<OpKind, DecodeError> {
    Ok(match r.u8()? {
        1 => OpKind::Split {
            left: RangeId(r.u64()?),
            right: RangeId(r.u64()?),
            at: r.bytes()?,
        },
        2 => OpKind::Merge {
            into: RangeId(r.u64()?),
            retired: RangeId(r.u64()?),
        },
        3 => {
            let n = r.len()?;
            OpKind::Flush {
                ranges: (0..n)
                    .map(|_| r.u64().map(RangeId))
                    .collect::<Result<_, _>>()?,
            }
        }
        t => return r.fail(format!("operation tag {t}")),
    })
}

/// Rejections are stored by their text: operators read them, nothing branches on them
/// after the fact, and the text is deterministic.
fn write_outcome(w: &mut Writer, o: &Outcome) {
    match o {
        Outcome::Applied { epoch } => {
            w.u8(1);
            w.u64(*epoch);
        }
        Outcome::Rejected(why) => {
            w.u8(2);
            write_rejection(w, why);
        }
    }
}

fn write_rejection(w: &mut Writer, why: &Rejection) {
    let (tag, a, b, c) = match *why {
        Rejection::StaleTerm { given, current } => (1, given, current, 0),
        Rejection::LeaseExpired { term } => (2, term, 0, 0),
        Rejection::LeaseHeld { holder, expires } => (3, u64::from(holder.0), expires, 0),
        Rejection::NoSuchRange(r) => (4, r.0, 0, 0),
        Rejection::Generation {
            range,
            expected,
            current,
        } => (5, range.0, expected, current),
        Rejection::SplitKeyOutside(r) => (6, r.0, 0, 0),
        Rejection::NotAdjacent { left, right } => (7, left.0, right.0, 0),
        Rejection::ReplicasDiffer { left, right } => (8, left.0, right.0, 0),
        Rejection::Busy { range, operation } => (9, range.0, operation, 0),
        Rejection::NoSuchOperation(op) => (10, op, 0, 0),
    };
    w.u8(tag);
    w.u64(a);
    w.u64(b);
    w.u64(c);
}

fn read_outcome(r: &mut Reader<'_>) -> Result<Outcome, DecodeError> {
    match r.u8()? {
        1 => Ok(Outcome::Applied { epoch: r.u64()? }),
        2 => {
            let tag = r.u8()?;
            let (a, b, c) = (r.u64()?, r.u64()?, r.u64()?);
            let node = |r: &Reader<'_>, v: u64| {
                u16::try_from(v)
                    .map(NodeId)
                    .or_else(|_| r.fail(format!("node id {v}")))
            };
            Ok(Outcome::Rejected(match tag {
                1 => Rejection::StaleTerm {
                    given: a,
                    current: b,
                },
                2 => Rejection::LeaseExpired { term: a },
                3 => Rejection::LeaseHeld {
                    holder: node(r, a)?,
                    expires: b,
                },
                4 => Rejection::NoSuchRange(RangeId(a)),
                5 => Rejection::Generation {
                    range: RangeId(a),
                    expected: b,
                    current: c,
                },
                6 => Rejection::SplitKeyOutside(RangeId(a)),
                7 => Rejection::NotAdjacent {
                    left: RangeId(a),
                    right: RangeId(b),
                },
                8 => Rejection::ReplicasDiffer {
                    left: RangeId(a),
                    right: RangeId(b),
                },
                9 => Rejection::Busy {
                    range: RangeId(a),
                    operation: b,
                },
                10 => Rejection::NoSuchOperation(a),
                t => return r.fail(format!("rejection tag {t}")),
            }))
        }
        t => r.fail(format!("outcome tag {t}")),
    }
}

fn op_name(r: &Reader<'_>, tag: u8) -> Result<&'static str, DecodeError> {
    match tag {
        1 => Ok("split"),
        2 => Ok("merge"),
        3 => Ok("flush"),
        t => r.fail(format!("finished tag {t}")),
    }
}

impl MetaCommand {
    /// The command's bytes (the operation of its meta-range transaction).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![COMMAND_VERSION]);
        write_command(&mut w, self);
        w.0
    }

    /// # Errors
    /// Not the encoding of a command of this version.
    pub fn decode(bytes: &[u8]) -> Result<MetaCommand, DecodeError> {
        let mut r = Reader {
            rest: bytes,
            what: "command",
        };
        let version = r.u8()?;
        if version != COMMAND_VERSION {
            return r.fail(format!(
                "version {version}, this build reads {COMMAND_VERSION}"
            ));
        }
        let command = read_command(&mut r)?;
        r.end()?;
        Ok(command)
    }
}

impl ClusterMap {
    /// A hash of the map (epoch, members, descriptors): nodes at the same epoch must agree
    /// on it. FNV-1a over the canonical encoding, stable across builds and platforms.
    pub fn hash(&self) -> u64 {
        let mut w = Writer(Vec::new());
        write_map(&mut w, self);
        fnv1a(&w.0)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl MetaState {
    /// The canonical encoding of the whole state.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(vec![STATE_VERSION]);
        write_map(&mut w, &self.map);
        w.u64(self.next_range_id);
        w.u64(self.next_operation_id);
        w.len(self.operations.len());
        for op in &self.operations {
            w.u64(op.id);
            write_kind(&mut w, &op.kind);
            w.u64(op.epoch);
            w.u64(op.started_us);
            w.u8(match op.phase {
                Phase::Cutting => 1,
            });
        }
        match self.lease {
            None => w.u8(0),
            Some(l) => {
                w.u8(1);
                w.u16(l.holder.0);
                w.u64(l.term);
                w.u64(l.expires);
            }
        }
        w.len(self.history.len());
        for (epoch, ranges) in &self.history {
            w.u64(*epoch);
            write_ranges(&mut w, ranges);
        }
        w.len(self.retired.len());
        for (range, successor) in &self.retired {
            w.u64(range.0);
            w.u64(successor.0);
        }
        w.len(self.recent.len());
        for record in &self.recent {
            w.timestamp(record.at);
            write_command(&mut w, &record.command);
            write_outcome(&mut w, &record.outcome);
            match record.finished {
                None => w.u8(0),
                Some((name, us)) => {
                    w.u8(match name {
                        "split" => 1,
                        "merge" => 2,
                        _ => 3,
                    });
                    w.u64(us);
                }
            }
        }
        w.u64(self.splits);
        w.u64(self.merges);
        w.timestamp(self.applied_at);
        w.len(self.initial_split_points.len());
        for p in &self.initial_split_points {
            w.bytes(p);
        }
        w.len(self.flushes.len());
        for f in &self.flushes {
            w.u64(*f);
        }
        w.0
    }

    /// A hash of the whole state: replicas that applied the same commands agree on it.
    pub fn hash(&self) -> u64 {
        fnv1a(&self.encode())
    }

    /// # Errors
    /// Not the encoding of a state of this version.
    pub fn decode(bytes: &[u8]) -> Result<MetaState, DecodeError> {
        let mut r = Reader {
            rest: bytes,
            what: "state",
        };
        let version = r.u8()?;
        if version != STATE_VERSION && version != STATE_VERSION_1 {
            return r.fail(format!(
                "version {version}, this build reads {STATE_VERSION_1} and {STATE_VERSION}"
            ));
        }
        let map = read_map(&mut r)?;
        let next_range_id = r.u64()?;
        let next_operation_id = r.u64()?;
        let n = r.len()?;
        let mut operations = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.u64()?;
            let kind = read_kind(&mut r)?;
            let epoch = r.u64()?;
            let started_us = r.u64()?;
            let phase = match r.u8()? {
                1 => Phase::Cutting,
                t => return r.fail(format!("phase tag {t}")),
            };
            operations.push(Operation {
                id,
                kind,
                epoch,
                started_us,
                phase,
            });
        }
        let lease = match r.u8()? {
            0 => None,
            1 => Some(Lease {
                holder: NodeId(r.u16()?),
                term: r.u64()?,
                expires: r.u64()?,
            }),
            t => return r.fail(format!("lease tag {t}")),
        };
        let n = r.len()?;
        let mut history = BTreeMap::new();
        for _ in 0..n {
            let epoch = r.u64()?;
            history.insert(epoch, read_ranges(&mut r)?);
        }
        let n = r.len()?;
        let mut retired = BTreeMap::new();
        for _ in 0..n {
            retired.insert(RangeId(r.u64()?), RangeId(r.u64()?));
        }
        let n = r.len()?;
        let mut recent = VecDeque::with_capacity(n);
        for _ in 0..n {
            let at = r.timestamp()?;
            let command = read_command(&mut r)?;
            let outcome = read_outcome(&mut r)?;
            let finished = match r.u8()? {
                0 => None,
                tag => Some((op_name(&r, tag)?, r.u64()?)),
            };
            recent.push_back(Record {
                at,
                command,
                outcome,
                finished,
            });
        }
        let splits = r.u64()?;
        let merges = r.u64()?;
        let applied_at = r.timestamp()?;
        let n = r.len()?;
        let initial_split_points = (0..n).map(|_| r.bytes()).collect::<Result<_, _>>()?;
        let flushes = if version == STATE_VERSION_1 {
            Vec::new()
        } else {
            let n = r.len()?;
            (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
        };
        r.end()?;
        Ok(MetaState {
            map,
            next_range_id,
            next_operation_id,
            operations,
            lease,
            history,
            retired,
            recent,
            splits,
            merges,
            applied_at,
            initial_split_points,
            flushes,
        })
    }
}
