-- The raw payload of a link moves to its own table, keyed by the link's natural key and the
-- version (content hash) it belongs to. A sync run writes these rows on a second connection
-- while its own transaction applies the records, so the jsonb conversion of every payload is
-- off the run's critical path (docs/performance.md). A payload row is only reachable through a
-- link carrying the same content hash, so rows written by a run that then failed stay
-- unreachable until the next run of that source sweeps them (docs/sync.md).
create table source_payload (
    source_id uuid not null references source on delete cascade,
    external_id text not null,
    content_hash bytea not null,
    -- A plain column, as on source_link (migration 3): the rows go with their source, which goes
    -- with its authority.
    authority_id uuid not null,
    payload jsonb not null,
    primary key (source_id, external_id, content_hash)
);
alter table source_payload alter column payload set compression lz4;

insert into source_payload (source_id, external_id, content_hash, authority_id, payload)
select source_id, external_id, content_hash, authority_id, payload from source_link;

alter table source_link drop column payload;

-- Event changes are only ever read back whole (a device's history), like the normalized record
-- (migration 2): `json` keeps the text as written and spares each event jsonb's conversion,
-- which was a fifth of a first sync's history cost.
alter table device_event alter column changes drop default;
alter table device_event alter column changes type json using changes::json;
alter table device_event alter column changes set default '{}'::json;

-- Per-row lookups a first sync paid for nothing:
-- - the tags index: class sets match tags case-insensitively per school, which a GIN index on
--   the array cannot serve, and no other query filters by tag;
-- - device_assignment -> school_authority: an assignment goes with its device (and so with the
--   authority) or with its person; the column stays and keeps being set.
drop index device_tags_idx;
alter table device_assignment drop constraint device_assignment_authority_id_fkey;
