//! The guard's loop: rumqttd's local link in, clears out.

use std::time::Instant;

use daemon_kit::stats::Stats;
use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::Notification;

use super::{
    RetainJudge, RetainPolicy, RetainStats, Verdict, SWEEP_AT_MOST, SWEEP_EVERY, SWEEP_WINDOW,
};

/// Runs the guard on `tx`/`rx` (a local link already subscribed to `#`) until the router is
/// gone.
///
/// It sleeps until rumqttd hands it something, or until a sweep is due: it never wakes on
/// its own while nothing is published (issue 22: it used to look every 100 ms).
pub(crate) fn run(mut tx: LinkTx, mut rx: LinkRx, policy: RetainPolicy, stats: Stats<RetainStats>) {
    let mut judge = RetainJudge::new(policy);
    let mut last_offset: Option<u64> = None;
    let mut retained_in_sweep = 0usize;
    let mut fell_behind = false;
    let mut last_sweep = Instant::now();
    let mut seen_since_sweep = false;
    loop {
        let due = sweep_due(last_sweep, fell_behind, seen_since_sweep);
        let received = match due {
            Some(deadline) => rx.recv_deadline(deadline),
            None => rx.recv(),
        };
        match received {
            Ok(Some(Notification::Forward(forward))) => {
                match forward.cursor {
                    Some((_, offset)) => {
                        seen_since_sweep = true;
                        if last_offset.is_some_and(|last| offset != last + 1) {
                            fell_behind = true;
                        }
                        last_offset = Some(offset);
                    }
                    None => retained_in_sweep += 1,
                }
                let Ok(topic) = std::str::from_utf8(&forward.publish.topic) else {
                    continue;
                };
                let verdict = judge.judge(topic, forward.publish.payload.len());
                let clear = match &verdict {
                    Verdict::Keep | Verdict::Cleared => None,
                    Verdict::KeepClearing(other) => Some(other.as_str()),
                    _ => Some(topic),
                };
                if let Some(clear) = clear {
                    if tx.publish(clear.to_owned(), Vec::<u8>::new()).is_err() {
                        return;
                    }
                }
                stats.update(|s| {
                    match verdict {
                        Verdict::ClearOutside => s.cleared_outside_topics += 1,
                        Verdict::ClearTooLarge => s.cleared_too_large += 1,
                        Verdict::ClearOverCount => s.cleared_over_count += 1,
                        Verdict::KeepClearing(_) => s.cleared_to_make_room += 1,
                        Verdict::ClearProtectedOverCount => s.cleared_protected_over_count += 1,
                        Verdict::Keep | Verdict::Cleared => {}
                    }
                    s.retained_topics = judge.topics();
                    s.retained_bytes = judge.bytes();
                });
            }
            // rumqttd paused this link (its buffer filled up): say it may go on.
            Ok(Some(Notification::Unschedule)) => {
                if rx.ready().is_err() {
                    return;
                }
            }
            Ok(_) => {}
            // A sweep is due; the same error before the deadline means the router is gone.
            Err(LinkError::RecvTimeout(_)) if due.is_some_and(|d| Instant::now() >= d) => {}
            Err(_) => return,
        }
        // A full sweep window may hide more: sweep again.
        if retained_in_sweep >= SWEEP_WINDOW {
            fell_behind = true;
            retained_in_sweep = 0;
        }
        if sweep_due(last_sweep, fell_behind, seen_since_sweep).is_some_and(|d| Instant::now() >= d)
        {
            // A new subscription is handed the retained messages themselves.
            judge.reset();
            if tx.unsubscribe("#").is_err() || tx.subscribe("#").is_err() {
                return;
            }
            stats.update(|s| s.sweeps += 1);
            last_offset = None;
            retained_in_sweep = 0;
            fell_behind = false;
            seen_since_sweep = false;
            last_sweep = Instant::now();
        }
    }
}

/// When the next sweep is due: soon after falling behind, [`SWEEP_EVERY`] after the last one
/// once publishes have arrived since, never while nothing was published.
fn sweep_due(last_sweep: Instant, fell_behind: bool, seen_since_sweep: bool) -> Option<Instant> {
    if fell_behind {
        Some(last_sweep + SWEEP_AT_MOST)
    } else if seen_since_sweep {
        Some(last_sweep + SWEEP_EVERY)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_sweep_is_due_only_after_publishes_or_falling_behind() {
        let last = Instant::now();
        assert_eq!(sweep_due(last, false, false), None);
        assert_eq!(
            sweep_due(last, false, true),
            Some(last + Duration::from_secs(30))
        );
        assert_eq!(
            sweep_due(last, true, false),
            Some(last + Duration::from_millis(200))
        );
        assert_eq!(
            sweep_due(last, true, true),
            Some(last + Duration::from_millis(200))
        );
    }
}
