-- Tickets of the authority's service desk (issue 18): each ticket a ticket system (Zammad,
-- GLPI) reports, the devices it concerns and how each link was found, and where a source's
-- incremental read stands. No article bodies and no reporter names are stored: tickets at
-- schools are full of pupils' and teachers' personal data, and the figures need none of it
-- (the reporter's role at most). Every table carries authority_id and cascades from it.

alter table sync_run drop constraint sync_run_kind_check;
alter table sync_run add constraint sync_run_kind_check
    check (kind in ('devices', 'directory', 'tickets'));

create table ticket (
    ticket_id uuid primary key,
    authority_id uuid not null references school_authority on delete cascade,
    source_id uuid not null references source on delete cascade,
    -- The ticket system's own id, and the number people quote.
    external_id text not null,
    number text not null,
    title text not null,
    state text not null check (state in ('new', 'open', 'pending', 'closed', 'merged')),
    -- The state as the system names it ("pending reminder").
    source_state text not null,
    priority text,
    -- The IT service of the support concept, mapped from the group or a tag (`topics`).
    topic text not null default 'other' check (topic in (
        'network', 'school_server', 'end_devices', 'software', 'telephony', 'peripherals',
        'other')),
    -- From the ticket's organization, resolved like a directory's school keys.
    school_id uuid references school on delete set null,
    -- Who the ticket was forwarded to, mapped from the group, owner or a tag (`providers`).
    provider text,
    group_name text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    first_response_at timestamptz,
    closed_at timestamptz,
    -- When the ticket went to the group a provider works in (the group's `group_since`).
    forwarded_at timestamptz,
    first_response_due_at timestamptz,
    close_due_at timestamptz,
    -- A merged ticket names its target by the system's id; the run resolves it to the row.
    merged_into_external_id text,
    merged_into_ticket_id uuid references ticket on delete set null,
    -- The reporter's role ("teacher"), never a name.
    customer_role text,
    -- Hash of the record and the mapping it was stored with: an unchanged ticket is not
    -- rewritten.
    content_hash bytea not null,
    first_seen_at timestamptz not null,
    -- The run that last wrote the row.
    changed_in_run bigint not null references sync_run,
    -- A full read no longer listed it; tickets are never deleted.
    deleted_at timestamptz,
    unique (source_id, external_id)
);

create index ticket_authority_created_idx on ticket (authority_id, created_at);
create index ticket_school_idx on ticket (school_id) where school_id is not null;
create index ticket_number_idx on ticket (authority_id, number);
-- The run resolves merge targets among a source's merged tickets only.
create index ticket_merged_idx on ticket (source_id) where merged_into_external_id is not null;

create table ticket_device (
    ticket_id uuid not null references ticket on delete cascade,
    device_id uuid not null references device on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    -- How the link was found: a structured field of the ticket, a pattern in its title, the
    -- ticket system's own asset link, or a person.
    found_by text not null check (found_by in ('field', 'title', 'system', 'hand')),
    -- Which field, pattern or value.
    detail text not null,
    linked_at timestamptz not null,
    -- `source:<name>` for a run, the person's name for a hand link.
    linked_by text not null,
    primary key (ticket_id, device_id)
);

create index ticket_device_device_idx on ticket_device (device_id);

-- Where a ticket source's reads stand: the newest `updated_at` a complete read saw (the next
-- incremental read asks from there) and when the last full read completed.
create table ticket_watermark (
    source_id uuid primary key references source on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    updated_through timestamptz,
    last_full_read_at timestamptz
);
