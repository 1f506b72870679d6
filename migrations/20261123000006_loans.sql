-- Loans (Leihe, § 598 BGB): a school hands a device to a pupil or teacher and takes it back.
-- A loan row holds the borrower and free text about them (conditions, damage, notes), so it is
-- purgeable: the privacy purge sets person_id to null and keeps a pseudonym. Device events
-- about loans carry only the loan id and the person id, never names or free text, because
-- history is append-only.

-- A device that came back damaged or incomplete waits here until someone has looked at it,
-- instead of becoming lendable again.
alter table device drop constraint device_lifecycle_state_check;
alter table device add constraint device_lifecycle_state_check check (lifecycle_state in (
    'ordered', 'in_stock', 'in_use', 'in_repair', 'retired', 'disposed', 'lost', 'to_check'));

-- Free labels for devices, set by people (never by a sync); class sets pick their pool by tag.
alter table device add column tags text[] not null default '{}';
create index device_tags_idx on device using gin (tags);

create table loan (
    loan_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    device_id uuid not null references device on delete cascade,
    -- Null once the privacy purge has removed the borrower; the pseudonym then stands in.
    person_id uuid references person on delete set null,
    borrower_pseudonym text,
    pseudonymised_at timestamptz,
    -- The lending school (the device's school at hand-out unless given otherwise).
    school_id uuid references school on delete set null,
    -- Whether the borrower belonged to the lending school at hand-out: only then does losing
    -- that membership later mean "left the school with a device".
    member_at_hand_out boolean not null default false,
    state text not null default 'active'
        check (state in ('active', 'returned', 'lost', 'stolen', 'cancelled')),
    handed_out_at timestamptz not null,
    handed_out_by text not null,
    due_on date not null,
    accessories text[] not null default '{}',
    condition_out text,
    agreement_signed_on date,
    school_override_reason text,
    returned_at timestamptz,
    returned_by text,
    condition_in text,
    accessories_returned text[],
    accessories_missing text[],
    damage_notes text,
    -- When and by whom the loan stopped being active (any way); for lost, stolen and cancelled
    -- loans also the day of the loss and what was said about it.
    closed_at timestamptz,
    closed_by text,
    lost_on date,
    close_note text,
    updated_at timestamptz not null,
    check ((state = 'active') = (closed_at is null)),
    check (state <> 'returned' or returned_at is not null)
);

-- The guarantee behind "one device, one active loan": concurrent hand-outs cannot both commit.
create unique index loan_one_active_per_device on loan (device_id) where state = 'active';
create index loan_device_idx on loan (device_id, loan_id);
create index loan_person_idx on loan (person_id);
create index loan_active_due_idx on loan (authority_id, due_on) where state = 'active';
create index loan_school_idx on loan (school_id, state);
