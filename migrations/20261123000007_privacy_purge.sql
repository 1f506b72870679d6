-- Who ran the privacy purge for an authority, when, with which retention, and what it changed.
-- Dry runs are recorded as well. No person is named here.
create table privacy_purge (
    privacy_purge_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    purged_at timestamptz not null,
    purged_by text not null,
    retention_months integer not null check (retention_months >= 0),
    cutoff timestamptz not null,
    loans_pseudonymised integer not null,
    persons_deleted integer not null,
    dry_run boolean not null
);

create index privacy_purge_authority_idx on privacy_purge (authority_id, purged_at desc);
