//! Job events at least once over MQTT: which event a broker's PUBACK acknowledges, the cursor
//! of the last event acknowledged in order, and that cursor on disk.
//!
//! rumqttc gives a publish its packet id (pkid) only when its event loop sends it, reports
//! that as `Outgoing::Publish(pkid)` (or `Outgoing::AwaitAck(pkid)` when the id is still in
//! use, the publish going out later with that id), in the order the requests were queued,
//! and reuses ids once acknowledged. So every publish queued is remembered in a FIFO with a
//! [`Tag`], the tag moves to a pkid map when its id is reported, and a `PubAck(pkid)` takes it
//! out. A connection error drops everything unacknowledged (a clean session: rumqttc clears
//! its pending list at the next ConnAck, and the caller clears it too should a broker keep the
//! session); the publisher then re-publishes every event after the acknowledged cursor.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

use broker::JobEvent;
use serde::{Deserialize, Serialize};

/// Most events queued and not yet acknowledged on one connection; the rest wait for acks.
pub const MAX_IN_FLIGHT: usize = 32;
/// A cursor file larger than this is not ours: ignored (every event is sent again).
const MAX_CURSOR_FILE: u64 = 4096;

/// An event's identity in the log: the last one the broker acknowledged in order is persisted
/// so that a restart does not send them all again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCursor {
    pub ts_ms: i64,
    pub run_id: String,
    pub kind: String,
}

impl EventCursor {
    pub fn of(event: &JobEvent) -> Self {
        Self {
            ts_ms: event.ts_ms(),
            run_id: event.run_id().to_owned(),
            kind: match event {
                JobEvent::JobStart(_) => "job_start",
                JobEvent::JobEnd(_) => "job_end",
            }
            .to_owned(),
        }
    }
}

/// Index of the first event after `cursor` in the log: after its position when it is still
/// there, else (compacted away) the first newer than it.
pub fn events_after(events: &[JobEvent], cursor: Option<&EventCursor>) -> usize {
    let Some(cursor) = cursor else { return 0 };
    match events.iter().rposition(|e| &EventCursor::of(e) == cursor) {
        Some(i) => i + 1,
        None => events
            .iter()
            .position(|e| e.ts_ms() > cursor.ts_ms)
            .unwrap_or(events.len()),
    }
}

/// The cursor saved at `path`; `None` when there is none or it is unreadable (everything
/// still in the log is sent again: at least once).
pub fn load_cursor(path: &Path) -> Option<EventCursor> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_CURSOR_FILE {
        tracing::warn!(path = %path.display(), "MQTT event cursor too large; ignored");
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(cursor) => Some(cursor),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "MQTT event cursor unreadable; events are sent again");
            None
        }
    }
}

/// Writes the cursor atomically: a synced temporary file renamed over the old one, then the
/// directory synced, so a power cut leaves the old cursor or the new one, never a torn one.
pub fn save_cursor(path: &Path, cursor: &EventCursor) -> std::io::Result<()> {
    let json = serde_json::to_vec(cursor).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What a queued publish carries, as far as delivery cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// A snapshot or a status: nobody waits for its ack.
    Other,
    Event(EventCursor),
}

/// Maps rumqttc's packet ids back to what was queued (see the module's documentation).
#[derive(Debug, Default)]
pub struct Tracker {
    queued: VecDeque<Tag>,
    by_pkid: HashMap<u16, Tag>,
    /// A publish whose id was still in use: rumqttc sends it once that id is acknowledged.
    collided: Option<(u16, Tag)>,
}

impl Tracker {
    /// A publish was handed to the client (`try_publish` returned Ok).
    pub fn queued(&mut self, tag: Tag) {
        self.queued.push_back(tag);
    }

    /// `Outgoing::Publish(pkid)`: the oldest queued publish went out with `pkid`, or the one
    /// that collided did.
    pub fn sent(&mut self, pkid: u16) {
        let tag = match self.collided.take() {
            Some((id, tag)) if id == pkid => Some(tag),
            other => {
                self.collided = other;
                self.queued.pop_front()
            }
        };
        // QoS 0 publishes have no id and get no ack.
        if let (Some(tag), true) = (tag, pkid != 0) {
            self.by_pkid.insert(pkid, tag);
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the oldest queued publish waits for `pkid` to be free.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(tag) = self.queued.pop_front() {
            self.collided = Some((pkid, tag));
        }
    }

    /// `Incoming::PubAck(pkid)`: the event it acknowledges, if it was one.
    pub fn acked(&mut self, pkid: u16) -> Option<EventCursor> {
        match self.by_pkid.remove(&pkid) {
            Some(Tag::Event(cursor)) => Some(cursor),
            _ => None,
        }
    }

    /// The connection failed: nothing queued or in flight will be acknowledged any more.
    pub fn reset(&mut self) {
        self.queued.clear();
        self.by_pkid.clear();
        self.collided = None;
    }
}

/// Events of the current connection in the order they were queued; the cursor advances over
/// a prefix of acknowledged ones only, so an event is never skipped whatever order the acks
/// come in.
#[derive(Debug, Default)]
pub struct InFlight {
    events: VecDeque<(EventCursor, bool)>,
}

impl InFlight {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The last event queued on this connection.
    pub fn last(&self) -> Option<&EventCursor> {
        self.events.back().map(|(c, _)| c)
    }

    pub fn push(&mut self, cursor: EventCursor) {
        self.events.push_back((cursor, false));
    }

    /// Marks `cursor` acknowledged; returns the new cursor when the acknowledged prefix grew.
    pub fn ack(&mut self, cursor: &EventCursor) -> Option<EventCursor> {
        if let Some(entry) = self.events.iter_mut().find(|(c, _)| c == cursor) {
            entry.1 = true;
        }
        let mut advanced = None;
        while self.events.front().is_some_and(|(_, acked)| *acked) {
            advanced = self.events.pop_front().map(|(c, _)| c);
        }
        advanced
    }

    pub fn clear(&mut self) {
        self.events.clear();
    }
}

/// The event as published under `host`'s topic: the payload names the same host, and a long
/// output tail is cut (oldest part first) until the event fits `max_payload`.
pub fn payload(event: &JobEvent, host: &str, max_payload: usize) -> Option<Vec<u8>> {
    let mut event = event.clone();
    match &mut event {
        JobEvent::JobStart(e) => e.host = host.to_owned(),
        JobEvent::JobEnd(e) => e.host = host.to_owned(),
    }
    let mut payload = serde_json::to_vec(&event).ok()?;
    while payload.len() > max_payload {
        let JobEvent::JobEnd(end) = &mut event else {
            break;
        };
        if end.output_tail.is_empty() {
            break;
        }
        let keep = end.output_tail.len() / 2;
        let cut = end.output_tail.len() - keep;
        let cut = (cut..end.output_tail.len())
            .find(|&i| end.output_tail.is_char_boundary(i))
            .unwrap_or(end.output_tail.len());
        end.output_tail.drain(..cut);
        payload = serde_json::to_vec(&event).ok()?;
    }
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{JobEnd, JobStart};

    fn start(run: &str, ts: i64) -> JobEvent {
        JobEvent::JobStart(JobStart {
            run_id: run.into(),
            start_ts_ms: ts,
            ..JobStart::default()
        })
    }

    fn cur(run: &str) -> EventCursor {
        EventCursor::of(&start(run, 1))
    }

    #[test]
    fn event_cursor_finds_what_is_new() {
        let end = JobEvent::JobEnd(JobEnd {
            run_id: "a".into(),
            end_ts_ms: 20,
            ..JobEnd::default()
        });
        let events = vec![start("a", 10), end.clone(), start("b", 30)];
        assert_eq!(events_after(&events, None), 0, "nothing sent yet: all");
        assert_eq!(events_after(&events, Some(&EventCursor::of(&events[0]))), 1);
        assert_eq!(events_after(&events, Some(&EventCursor::of(&end))), 2);
        assert_eq!(events_after(&events, Some(&EventCursor::of(&events[2]))), 3);
        // The cursor's event was compacted away: everything newer than it.
        let gone = EventCursor {
            ts_ms: 15,
            run_id: "z".into(),
            kind: "job_end".into(),
        };
        assert_eq!(events_after(&events, Some(&gone)), 1);
    }

    #[test]
    fn acks_map_back_through_packet_ids_snapshots_between() {
        let mut t = Tracker::default();
        t.queued(Tag::Other);
        t.queued(Tag::Event(cur("a")));
        t.queued(Tag::Event(cur("b")));
        t.sent(1);
        t.sent(2);
        t.sent(3);
        assert_eq!(t.acked(1), None, "a snapshot's ack");
        assert_eq!(t.acked(3), Some(cur("b")));
        assert_eq!(t.acked(3), None, "acked once");
        assert_eq!(t.acked(2), Some(cur("a")));
        // rumqttc reuses id 1 for the next publish.
        t.queued(Tag::Event(cur("c")));
        t.sent(1);
        assert_eq!(t.acked(1), Some(cur("c")));
    }

    #[test]
    fn a_collided_publish_keeps_its_tag_until_it_goes_out() {
        let mut t = Tracker::default();
        t.queued(Tag::Other);
        t.sent(1);
        t.queued(Tag::Event(cur("a")));
        t.collided(1); // id 1 still unacked
        assert_eq!(t.acked(1), None, "the snapshot's ack frees id 1");
        t.sent(1); // … and the event goes out with it
        assert_eq!(t.acked(1), Some(cur("a")));
    }

    #[test]
    fn a_connection_error_forgets_everything_unacked() {
        let mut t = Tracker::default();
        t.queued(Tag::Event(cur("a")));
        t.sent(5);
        t.queued(Tag::Event(cur("b")));
        t.reset();
        // A stale ack for id 5 after the reconnect acknowledges nothing new.
        assert_eq!(t.acked(5), None);
        t.queued(Tag::Event(cur("c")));
        t.sent(6);
        assert_eq!(t.acked(6), Some(cur("c")));
    }

    #[test]
    fn the_cursor_advances_over_acked_prefixes_only() {
        let mut f = InFlight::default();
        for run in ["a", "b", "c"] {
            f.push(cur(run));
        }
        assert_eq!(f.ack(&cur("b")), None, "a is not acked yet");
        assert_eq!(f.ack(&cur("a")), Some(cur("b")));
        assert_eq!(f.len(), 1);
        assert_eq!(f.ack(&cur("zzz")), None, "unknown ack");
        assert_eq!(f.ack(&cur("c")), Some(cur("c")));
        assert!(f.is_empty());
    }

    #[test]
    fn the_cursor_file_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mqtt-events.cursor");
        assert_eq!(load_cursor(&path), None);
        save_cursor(&path, &cur("a")).unwrap();
        assert_eq!(load_cursor(&path), Some(cur("a")));
        assert!(!path.with_extension("tmp").exists());
        std::fs::write(&path, b"{torn").unwrap();
        assert_eq!(load_cursor(&path), None);
        std::fs::write(&path, vec![b' '; 5000]).unwrap();
        assert_eq!(load_cursor(&path), None);
    }

    #[test]
    fn a_long_output_tail_is_cut_to_fit() {
        let end = JobEvent::JobEnd(JobEnd {
            run_id: "a".into(),
            host: "other".into(),
            output_tail: "x".repeat(10_000),
            ..JobEnd::default()
        });
        let p = payload(&end, "tower", 2000).unwrap();
        assert!(p.len() <= 2000, "{}", p.len());
        let back: JobEvent = serde_json::from_slice(&p).unwrap();
        let JobEvent::JobEnd(back) = back else {
            panic!("not a job_end")
        };
        assert_eq!(back.host, "tower");
        assert!(!back.output_tail.is_empty());
    }
}
