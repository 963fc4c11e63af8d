//! Collecting outcomes: one slot per record, filled by the lanes in any order, sent on in
//! record order once the last of a handed-over group is in.

use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::oneshot;

use crate::plugin::{Record, WriteOutcome};

pub(super) struct Group {
    pub(super) records: Vec<Record>,
    pub(super) outcomes: Vec<OutcomeSlot>,
}

/// The outcomes of one handed-over group, filled in by the lanes in any order and sent on
/// when the last is in: one channel per group rather than one per record.
pub(super) struct GroupOutcomes {
    outcomes: Vec<Option<WriteOutcome>>,
    missing: usize,
    done: Option<oneshot::Sender<Vec<WriteOutcome>>>,
}

type SharedOutcomes = Arc<StdMutex<GroupOutcomes>>;

impl GroupOutcomes {
    /// One slot per record and the receiver of all their outcomes, in record order.
    pub(super) fn open(records: usize) -> (Vec<OutcomeSlot>, oneshot::Receiver<Vec<WriteOutcome>>) {
        let (done, receiver) = oneshot::channel();
        let mut outcomes = GroupOutcomes {
            outcomes: (0..records).map(|_| None).collect(),
            missing: records,
            done: Some(done),
        };
        if records == 0 {
            outcomes.finish();
        }
        let group: SharedOutcomes = Arc::new(StdMutex::new(outcomes));
        let slots = (0..records)
            .map(|index| OutcomeSlot {
                group: Some(group.clone()),
                index,
            })
            .collect();
        (slots, receiver)
    }

    fn fill(&mut self, index: usize, outcome: WriteOutcome) {
        if self.outcomes[index].is_none() {
            self.outcomes[index] = Some(outcome);
            self.missing -= 1;
            if self.missing == 0 {
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        let outcomes = std::mem::take(&mut self.outcomes)
            .into_iter()
            .map(|o| o.expect("every outcome is in"))
            .collect();
        if let Some(done) = self.done.take() {
            // The receiver is gone only when the pipeline was torn down; nothing to tell then.
            let _ = done.send(outcomes);
        }
    }
}

/// Where one record's outcome goes. Dropped without an outcome (the writer stopped), it
/// reports that the record was not written, so its group still completes.
pub(super) struct OutcomeSlot {
    group: Option<SharedOutcomes>,
    index: usize,
}

impl OutcomeSlot {
    pub(super) fn resolve(mut self, outcome: WriteOutcome) {
        self.fill(outcome);
    }

    fn fill(&mut self, outcome: WriteOutcome) {
        if let Some(group) = self.group.take() {
            group
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .fill(self.index, outcome);
        }
    }
}

impl Drop for OutcomeSlot {
    fn drop(&mut self) {
        if self.group.is_some() {
            self.fill(Err(
                "the destination stopped before writing the record".into()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_outcomes_arrive_in_record_order_once_all_are_in() {
        let (mut slots, mut receiver) = GroupOutcomes::open(3);
        let third = slots.pop().unwrap();
        let second = slots.pop().unwrap();
        let first = slots.pop().unwrap();
        third.resolve(Err("three".into()));
        first.resolve(Ok(()));
        assert!(receiver.try_recv().is_err(), "one outcome is still missing");
        second.resolve(Ok(()));
        assert_eq!(
            receiver.try_recv().unwrap(),
            vec![Ok(()), Ok(()), Err("three".to_string())]
        );
    }

    #[test]
    fn a_dropped_slot_reports_its_record_as_not_written() {
        let (mut slots, mut receiver) = GroupOutcomes::open(2);
        slots.remove(0).resolve(Ok(()));
        drop(slots);
        let outcomes = receiver.try_recv().unwrap();
        assert_eq!(outcomes[0], Ok(()));
        assert!(outcomes[1]
            .as_ref()
            .unwrap_err()
            .contains("stopped before writing"));
    }

    #[test]
    fn an_empty_group_is_complete_at_once() {
        let (slots, mut receiver) = GroupOutcomes::open(0);
        assert!(slots.is_empty());
        assert_eq!(receiver.try_recv().unwrap(), Vec::<WriteOutcome>::new());
    }
}
