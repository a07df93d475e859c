-- Schema version 2: the edges' audit trails (DICOM PS3.15 A.5 records, IHE ATNA), each record
-- once per (edge_id, id), kept as the edge sent it (msgpack) for the hub's security team.
CREATE TABLE hub_audit (
    edge_id     text        NOT NULL,
    id          bigint      NOT NULL CHECK (id > 0),
    -- When the edge committed the record to its trail.
    recorded_at timestamptz NOT NULL,
    record      bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (edge_id, id)
);
