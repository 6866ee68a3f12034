//! Sends one batch's encoded rows into the open COPY, switching the COPY between target tables
//! (the bulk load's events, rejects and suspect keys) as few times as possible; an unfinished COPY is
//! aborted with its transaction, so a batch is all or nothing.

use std::pin::Pin;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::CopyInSink;

use super::copy::{CopyTarget, COPY_HEADER, COPY_TRAILER};
use super::reader::{BatchProgress, ReaderMessage};

/// Chunks for the target whose COPY is not open wait, up to about this many bytes, before the
/// COPY switches to their target (see [`copy_batch`]).
const WAITING_CHUNK_BYTES: usize = 4 << 20;

/// Copies one batch's rows as the reader sends them (`first`: the message the caller already
/// received, before it opened the transaction), switching the open COPY between targets
/// as [`CopySwitcher`] decides; returns the batch's counts once the reader ends it.
pub(super) async fn copy_batch(
    transaction: &tokio_postgres::Transaction<'_>,
    first: Option<ReaderMessage>,
    receiver: &mut mpsc::Receiver<ReaderMessage>,
) -> Result<BatchProgress> {
    let mut switcher = CopySwitcher::default();
    let mut sink = None;
    let mut first = Some(first);
    let batch = loop {
        let message = match first.take() {
            Some(message) => message,
            None => receiver.recv().await,
        };
        let route = match message {
            Some(ReaderMessage::Rows(target, rows)) => switcher.route(target, rows),
            Some(ReaderMessage::BatchEnd(batch)) => break batch,
            Some(ReaderMessage::Failed(error)) => return Err(error),
            None => return Err(anyhow!("the reader thread stopped unexpectedly")),
        };
        send_route(transaction, &mut sink, route).await?;
    };
    send_route(transaction, &mut sink, switcher.finish()).await?;
    if let Some(sink) = sink.take() {
        finish_copy(sink).await?;
    }
    Ok(batch)
}

/// Switches the open COPY if the route says so, then sends the route's chunks.
async fn send_route(
    transaction: &tokio_postgres::Transaction<'_>,
    sink: &mut Option<Pin<Box<CopyInSink<Bytes>>>>,
    route: Route,
) -> Result<()> {
    if let Some(target) = route.open {
        if let Some(open) = sink.take() {
            finish_copy(open).await?;
        }
        let mut opened = Box::pin(transaction.copy_in(&target.statement()).await?);
        opened.send(Bytes::from_static(COPY_HEADER)).await?;
        *sink = Some(opened);
    }
    for chunk in route.chunks {
        sink.as_mut()
            .ok_or_else(|| anyhow!("COPY rows came before any COPY was opened"))?
            .send(chunk)
            .await?;
    }
    Ok(())
}

/// Where a batch's chunks go, and when the COPY switches target. Chunks for the target whose
/// COPY is open go at once; chunks for the other one wait until [`WAITING_CHUNK_BYTES`] of them
/// have gathered (or the batch ends), then the COPY switches and they go, in order. Each switch
/// waits for the server to finish the open COPY and to start the next, so switching at every
/// chunk of rejects was measurably slower (docs/performance.md, "Fewer COPY switches").
/// Waiting chunks keep their size, so memory grows by at most
/// [`WAITING_CHUNK_BYTES`] plus one chunk.
#[derive(Debug, Default)]
struct CopySwitcher {
    open: Option<CopyTarget>,
    waiting_target: Option<CopyTarget>,
    waiting: Vec<Bytes>,
}

/// What to do with the chunks at hand: open a COPY for `open` (finishing the open one) if set,
/// then send `chunks` to the open COPY.
#[derive(Debug, Default, PartialEq, Eq)]
struct Route {
    open: Option<CopyTarget>,
    chunks: Vec<Bytes>,
}

impl CopySwitcher {
    fn route(&mut self, target: CopyTarget, chunk: Bytes) -> Route {
        if self.open.is_none() || self.open == Some(target) {
            let open = self.open.is_none().then_some(target);
            self.open = Some(target);
            return Route {
                open,
                chunks: vec![chunk],
            };
        }
        let route = match self.waiting_target {
            // A third target (a bulk load's suspect keys): the waiting chunks go first.
            Some(waiting) if waiting != target => self.switch_to_waiting(),
            _ => Route::default(),
        };
        self.waiting_target = Some(target);
        self.waiting.push(chunk);
        let waiting_bytes: usize = self.waiting.iter().map(Bytes::len).sum();
        if route.open.is_none() && waiting_bytes >= WAITING_CHUNK_BYTES {
            return self.switch_to_waiting();
        }
        route
    }

    /// At the end of the batch: the waiting chunks, if any.
    fn finish(&mut self) -> Route {
        self.switch_to_waiting()
    }

    fn switch_to_waiting(&mut self) -> Route {
        let Some(target) = self.waiting_target.take() else {
            return Route::default();
        };
        self.open = Some(target);
        Route {
            open: Some(target),
            chunks: std::mem::take(&mut self.waiting),
        }
    }
}

async fn finish_copy(mut sink: Pin<Box<CopyInSink<Bytes>>>) -> Result<()> {
    sink.send(Bytes::from_static(COPY_TRAILER)).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(marker: u8, bytes: usize) -> Bytes {
        Bytes::from(vec![marker; bytes])
    }

    #[test]
    fn the_copy_switches_target_only_once_enough_chunks_wait() {
        use CopyTarget::{Events, Rejects, StagedLines};
        let mut switcher = CopySwitcher::default();
        let route = |open, chunks: Vec<Bytes>| Route { open, chunks };
        assert_eq!(switcher.finish(), Route::default(), "nothing waits");
        // The first chunk opens its target's COPY; the same target's chunks follow it.
        assert_eq!(
            switcher.route(Events, chunk(1, 10)),
            route(Some(Events), vec![chunk(1, 10)])
        );
        assert_eq!(
            switcher.route(Events, chunk(2, 10)),
            route(None, vec![chunk(2, 10)])
        );
        // The other target's chunks wait until enough have gathered, then go in order.
        let quarter = WAITING_CHUNK_BYTES / 4;
        for marker in 3..6 {
            assert_eq!(
                switcher.route(Rejects, chunk(marker, quarter)),
                Route::default()
            );
            assert_eq!(
                switcher.route(Events, chunk(marker, 10)),
                route(None, vec![chunk(marker, 10)]),
                "events keep flowing while rejects wait"
            );
        }
        assert_eq!(
            switcher.route(Rejects, chunk(6, quarter)),
            route(
                Some(Rejects),
                vec![
                    chunk(3, quarter),
                    chunk(4, quarter),
                    chunk(5, quarter),
                    chunk(6, quarter)
                ]
            )
        );
        // Now events wait, and the end of the batch sends them.
        assert_eq!(switcher.route(Events, chunk(7, 10)), Route::default());
        assert_eq!(
            switcher.route(Rejects, chunk(8, 10)),
            route(None, vec![chunk(8, 10)])
        );
        assert_eq!(switcher.finish(), route(Some(Events), vec![chunk(7, 10)]));
        assert_eq!(switcher.finish(), Route::default());
        // A third target sends the waiting chunks first and waits itself.
        assert_eq!(switcher.route(Rejects, chunk(9, 10)), Route::default());
        assert_eq!(
            switcher.route(StagedLines, chunk(10, 10)),
            route(Some(Rejects), vec![chunk(9, 10)])
        );
        assert_eq!(
            switcher.finish(),
            route(Some(StagedLines), vec![chunk(10, 10)])
        );
    }
}
