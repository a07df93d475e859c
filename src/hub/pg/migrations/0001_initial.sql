-- The hub's schema, version 1. Applied once, in one transaction, by `zenedge hub migrate` or
-- at the start of `zenedge hub --postgres`.

-- One row per stream: epoch 0 of an edge (created by its first stored batch) and every later
-- epoch (created by a fork). A batch's transaction locks its stream's row (SELECT ... FOR
-- UPDATE) before it checks the position and stores anything.
CREATE TABLE hub_streams (
    edge_id        text        NOT NULL,
    epoch          bigint      NOT NULL CHECK (epoch >= 0),
    -- The epoch this one forked from (NULL for epoch 0) and the last seq they share.
    parent         bigint      CHECK ((epoch = 0) = (parent IS NULL) AND parent < epoch),
    fork_at        bigint      NOT NULL DEFAULT 0 CHECK (fork_at >= 0),
    -- The edge's event at fork_at, checked against the parent when the epoch was made.
    fork_event_id  uuid,
    -- Every seq up to here is stored or skipped in this epoch's history.
    stored_through bigint      NOT NULL CHECK (stored_through >= fork_at),
    -- Envelopes stored in this epoch's own rows of hub_events.
    events         bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (edge_id, epoch)
);

-- Every envelope exactly as the edge sent it, and the columns the hub's team queries by.
CREATE TABLE hub_events (
    edge_id        text        NOT NULL,
    epoch          bigint      NOT NULL,
    seq            bigint      NOT NULL CHECK (seq > 0),
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    tenant_id      text,
    hospital_id    text,
    occurred_at    timestamptz,
    recorded_at    timestamptz,
    aggregate_type text,
    aggregate_id   text,
    -- Patient ids the event names (the patient id and the other ids), and the accession.
    patient_ids    text[],
    accession      text,
    -- The msgpack envelope, byte for byte as received.
    envelope       bytea       NOT NULL,
    -- The cross-edge feed's order: the id of the transaction that stored the row (read only
    -- once no older transaction is still open, see the hub's module docs) and a row number.
    tx             bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    feed_id        bigint      GENERATED ALWAYS AS IDENTITY (CACHE 1000),
    -- No foreign key to hub_streams: every row is written by a batch's transaction that holds
    -- its stream's row locked, and a per-row check would slow the COPY down.
    PRIMARY KEY (edge_id, epoch, seq)
);
CREATE INDEX hub_events_feed ON hub_events (tx, feed_id);
CREATE INDEX hub_events_accession ON hub_events (accession) WHERE accession IS NOT NULL;
CREATE INDEX hub_events_patient_ids ON hub_events USING gin (patient_ids) WHERE patient_ids IS NOT NULL;

-- Sequence numbers the edge parked as dead letters, until redelivered.
CREATE TABLE hub_skipped (
    edge_id text   NOT NULL,
    epoch   bigint NOT NULL,
    seq     bigint NOT NULL,
    PRIMARY KEY (edge_id, epoch, seq),
    FOREIGN KEY (edge_id, epoch) REFERENCES hub_streams (edge_id, epoch)
);
