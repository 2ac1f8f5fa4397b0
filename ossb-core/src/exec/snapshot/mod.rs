//! Snapshotters: how a RUN step's changes become layer entries.
