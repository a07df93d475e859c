//! C-STORE on an association: the data set streamed to a spool file, stored, recorded as
//! `InstanceStored` (through the flusher) and answered ([`super`] explains the guarantees).

use super::*;

impl<S: Stream> Association<S> {
    /// Refuses before any data is written when the disk reserve is reached.
    pub(super) fn refusal_before_data(&self) -> Option<(u16, String)> {
        match self.ctx.disk.space() {
            Ok(space) if !space.below_reserve() => None,
            _ => Some((status::OUT_OF_RESOURCES, "out of resources: disk reserve reached".into())),
        }
    }

    /// Writes what is pending to the spool file (creating it first).
    pub(super) async fn flush(&mut self) {
        let Some(incoming) = self.incoming.as_mut() else { return };
        let data = std::mem::take(&mut incoming.pending);
        let spool = incoming.spool.take();
        let (layout, meta) = (self.ctx.layout.clone(), incoming.meta.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut spool = match spool {
                Some(spool) => spool,
                None => Spool::create(&layout, &meta)?,
            };
            match spool.write(&data) {
                Ok(()) => Ok(spool),
                Err(e) => {
                    // What was written so far must not hold the disk (it is full, most likely).
                    spool.discard();
                    Err(e)
                }
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match result {
            Ok(spool) => incoming.spool = Some(spool),
            Err(e) => {
                tracing::error!(peer = %self.peer, error = %e, "cannot write to the DICOM spool");
                incoming.refusal =
                    Some((status::OUT_OF_RESOURCES, "out of resources: cannot write the instance".into()));
            }
        }
    }

    /// The data set is complete: store it, record it, answer.
    pub(super) async fn complete_store(&mut self, incoming: Incoming) -> Result<(), End> {
        let (message_id, context_id, started) = (incoming.message_id, incoming.context_id, incoming.started);
        let meta = incoming.meta.clone();
        let (status, comment) = self.store(incoming).await;
        let label = match status {
            status::SUCCESS => "success",
            status::OUT_OF_RESOURCES => "out_of_resources",
            status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS => "sop_class_mismatch",
            _ => "cannot_understand",
        };
        self.ctx.metrics.dicom_instance(label);
        let listener = if self.identity.is_some() { Listener::DicomTls } else { Listener::Dicom };
        let failure = (status != status::SUCCESS)
            .then(|| format!("C-STORE 0x{status:04X}: {}", comment.as_deref().unwrap_or(label)));
        self.ctx.metrics.activity.answered(listener, failure.as_deref());
        if status == status::SUCCESS {
            self.ctx.metrics.dicom_store_seconds.observe(started.elapsed().as_secs_f64());
        } else {
            tracing::warn!(peer = %self.peer, calling_ae = %self.negotiated.calling_ae, status = format!("0x{status:04X}"), comment = comment.as_deref().unwrap_or(""), "C-STORE failed");
        }
        let rsp =
            dimse::store_response(message_id, &meta.sop_class_uid, &meta.sop_instance_uid, status, comment.as_deref());
        self.respond(context_id, rsp).await
    }

    /// Spools, finishes and records one instance; returns the status and Error Comment.
    pub(super) async fn store(&mut self, mut incoming: Incoming) -> (u16, Option<String>) {
        if let Some((status, comment)) = incoming.refusal.take() {
            discard(incoming).await;
            return (status, Some(comment));
        }
        let (layout, meta) = (self.ctx.layout.clone(), incoming.meta.clone());
        // Held until the event is committed: retention does not unlink this path meanwhile.
        let _pass = layout.gate().intake(&meta.sop_instance_uid).await;
        let (data, spool) = (std::mem::take(&mut incoming.pending), incoming.spool.take());
        let finished = tokio::task::spawn_blocking(move || -> Result<Stored, StoreError> {
            let mut spool = match spool {
                Some(spool) => spool,
                None => Spool::create(&layout, &meta)?,
            };
            if let Err(e) = spool.write(&data) {
                spool.discard();
                return Err(e.into());
            }
            spool.finish(&layout, &meta)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e))));
        let stored = match finished {
            Ok(stored) => stored,
            Err(StoreError::Unreadable(e)) => {
                return (status::CANNOT_UNDERSTAND, Some(format!("cannot understand: {e}")));
            }
            Err(e @ StoreError::Mismatch(_)) => {
                return (status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS, Some(e.to_string()));
            }
            Err(StoreError::Io(e)) => {
                tracing::error!(peer = %self.peer, error = %e, "cannot store a DICOM instance");
                return (status::OUT_OF_RESOURCES, Some("out of resources: cannot write the instance".into()));
            }
        };
        self.record(stored, &incoming.meta).await
    }

    /// Appends `InstanceStored` (with the audit record of the first instance of each study);
    /// the answer follows the commit.
    pub(super) async fn record(&mut self, stored: Stored, meta: &MetaFields) -> (u16, Option<String>) {
        let study = stored.attributes.study_instance_uid.clone();
        let audit = !self.audited.contains(&study);
        let renamed = stored.renamed;
        let outcome = self.ctx.flusher.record(self.event(stored, meta), audit, renamed).await;
        if outcome.is_ok() && audit {
            self.audited.insert(study.clone());
        }
        match outcome {
            Ok(InstanceOutcome::Stored { seq, replaces }) => {
                tracing::debug!(peer = %self.peer, seq, replaces, "instance stored");
                self.ctx.stability.instance_stored(study, seq);
                (status::SUCCESS, None)
            }
            Ok(InstanceOutcome::Duplicate { seq, .. }) => {
                tracing::info!(peer = %self.peer, seq, "identical instance received again; answered without a new event");
                self.ctx.metrics.dicom_instance("duplicate");
                (status::SUCCESS, None)
            }
            Err(Unrecorded::Flush) => {
                (status::OUT_OF_RESOURCES, Some("out of resources: cannot write the instance".into()))
            }
            Err(Unrecorded::Append(AppendError::DiskReserve { .. })) => {
                (status::OUT_OF_RESOURCES, Some("out of resources: disk reserve reached".into()))
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "instance not recorded");
                (status::OUT_OF_RESOURCES, Some("out of resources: store unavailable, send again later".into()))
            }
        }
    }

    pub(super) fn event(&self, stored: Stored, meta: &MetaFields) -> NewEvent {
        let file = StoredFile { path: stored.file_path, size: stored.size, sha256: stored.sha256 };
        let arrival = Arrival {
            calling_ae: self.negotiated.calling_ae.clone(),
            called_ae: self.negotiated.called_ae.clone(),
            peer: self.peer.to_string(),
            peer_identity: self.identity.clone(),
            transfer_syntax_uid: meta.transfer_syntax_uid.clone(),
        };
        domain::instance_event(stored.attributes, file, arrival)
    }
}

/// Removes what was spooled of an instance that will not be stored.
pub(super) async fn discard(mut incoming: Incoming) {
    if let Some(spool) = incoming.spool.take() {
        let _ = tokio::task::spawn_blocking(move || spool.discard()).await;
    }
}
