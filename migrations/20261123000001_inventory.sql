-- The inventory schema: tenants, schools, devices, sources, sync runs, history and review.
-- Every tenant-scoped table carries authority_id so that one school authority's rows
-- can be listed, exported and purged without touching another's.

create table school_authority (
    authority_id uuid primary key default gen_random_uuid(),
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9_-]*$'),
    name text not null,
    created_at timestamptz not null default now()
);

create table school (
    school_id uuid primary key default gen_random_uuid(),
    authority_id uuid not null references school_authority on delete cascade,
    school_number text not null,
    name text not null,
    school_type text not null check (school_type in (
        'grundschule', 'hauptschule', 'realschule', 'gesamtschule', 'sekundarschule',
        'gymnasium', 'foerderschule', 'berufsschule', 'other')),
    aliases text[] not null default '{}',
    created_at timestamptz not null default now(),
    unique (authority_id, school_number)
);

create table source (
    source_id uuid primary key default gen_random_uuid(),
    authority_id uuid not null references school_authority on delete cascade,
    name text not null unique,
    kind text not null,
    -- Start time of the newest run whose missing-marking was fully applied.
    -- Links that are neither missing nor ended were seen by that run (see docs/sync.md).
    last_complete_run_at timestamptz,
    created_at timestamptz not null default now()
);

create table device (
    device_id uuid primary key,
    authority_id uuid not null references school_authority on delete cascade,
    asset_tag text,
    serial_number text,
    udid text,
    imei text,
    wifi_mac text,
    name text,
    category text not null default 'other' check (category in (
        'tablet', 'laptop', 'desktop', 'display', 'printer', 'other')),
    manufacturer text,
    model text,
    model_identifier text,
    os_name text,
    os_version text,
    lifecycle_state text not null default 'in_use' check (lifecycle_state in (
        'ordered', 'in_stock', 'in_use', 'in_repair', 'retired', 'disposed', 'lost')),
    school_id uuid references school on delete set null,
    building text,
    room text,
    order_number text,
    purchase_date date,
    supplier text,
    purchase_price numeric(12, 2),
    currency text check (currency ~ '^[A-Z]{3}$'),
    warranty_end date,
    life_expectancy_years integer check (life_expectancy_years between 0 and 100),
    funding_programme text,
    grant_reference text,
    earmark_end date,
    -- Who set each field last: "source:<name>", "user:<name>" or "import:<name>".
    -- Field authority reads this to keep a person's value safe from a source.
    field_origin jsonb not null default '{}',
    first_seen_at timestamptz not null,
    updated_at timestamptz not null
);

create unique index device_asset_tag_key on device (authority_id, asset_tag) where asset_tag is not null;
create index device_serial_idx on device (authority_id, serial_number) where serial_number is not null;
create index device_udid_idx on device (authority_id, udid) where udid is not null;
create index device_imei_idx on device (authority_id, imei) where imei is not null;
create index device_wifi_mac_idx on device (authority_id, wifi_mac) where wifi_mac is not null;
create index device_school_idx on device (school_id);

create table source_link (
    source_link_id uuid primary key,
    authority_id uuid not null references school_authority on delete cascade,
    source_id uuid not null references source on delete cascade,
    device_id uuid not null references device on delete cascade,
    external_id text not null,
    -- The record as the source last sent it (raw vendor JSON) and the normalized form.
    payload jsonb not null,
    normalized jsonb not null,
    content_hash bytea not null,
    first_seen_at timestamptz not null,
    -- Last time a run wrote this link; the effective "last seen" also uses
    -- source.last_complete_run_at, so unchanged records need no write.
    last_seen_at timestamptz not null,
    missing_since timestamptz,
    ended_at timestamptz,
    ended_reason text,
    unique (source_id, external_id)
);

create index source_link_device_idx on source_link (device_id);

create table sync_run (
    sync_run_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    source_id uuid not null references source on delete cascade,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'blocked', 'aborted')),
    dry_run boolean not null default false,
    fetched integer not null default 0,
    created integer not null default 0,
    updated integer not null default 0,
    unchanged integer not null default 0,
    marked_missing integer not null default 0,
    reappeared integer not null default 0,
    review_items integer not null default 0,
    warnings jsonb not null default '[]',
    error text,
    blocked_reason text,
    approved_at timestamptz,
    approved_by text
);

create index sync_run_source_idx on sync_run (source_id, started_at desc);

-- The links a blocked run would have marked missing, kept for `bestand sync approve`.
create table sync_run_pending_missing (
    sync_run_id bigint not null references sync_run on delete cascade,
    source_link_id uuid not null references source_link on delete cascade,
    primary key (sync_run_id, source_link_id)
);

create table device_event (
    device_event_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    device_id uuid not null references device on delete cascade,
    occurred_at timestamptz not null,
    kind text not null,
    cause text not null check (cause in ('sync', 'user', 'import')),
    sync_run_id bigint references sync_run on delete set null,
    source_id uuid references source on delete set null,
    actor text,
    changes jsonb not null default '{}'
);

create index device_event_device_idx on device_event (device_id, device_event_id);

-- History is append-only. Whole-tenant purges (an authority leaving) set
-- bestand.allow_history_delete for their transaction.
create function device_event_append_only() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' and current_setting('bestand.allow_history_delete', true) = 'on' then
        return old;
    end if;
    raise exception 'device_event is append-only (% refused)', tg_op;
end;
$$;

create trigger device_event_append_only
    before update or delete on device_event
    for each row execute function device_event_append_only();

create table review_item (
    review_item_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    source_id uuid references source on delete cascade,
    sync_run_id bigint references sync_run on delete set null,
    kind text not null,
    external_id text,
    summary text not null,
    record jsonb not null default '{}',
    candidates uuid[] not null default '{}',
    status text not null default 'open' check (status in ('open', 'resolved', 'dismissed')),
    resolution text,
    resolved_at timestamptz,
    resolved_by text,
    created_at timestamptz not null,
    last_seen_at timestamptz not null
);

create unique index review_item_open_key on review_item (source_id, external_id, kind) where status = 'open';
