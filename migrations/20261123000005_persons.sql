-- People from the school directories (UCS@school, IServ) and who has which device.
-- Pupils are minors: only what a feature needs is stored (names, login, email, role, school,
-- class, the directory's ids); every table carries authority_id and cascades from it, so one
-- authority's people can be purged without touching another's.

alter table sync_run add column kind text not null default 'devices'
    check (kind in ('devices', 'directory'));

create table person (
    person_id uuid primary key default gen_random_uuid(),
    authority_id uuid not null references school_authority on delete cascade,
    username text,
    email text,
    given_name text,
    family_name text,
    -- Immutable ids from the directories, matched before email and username (docs/persons.md).
    record_uid text,
    record_source_uid text,
    directory_uuid text,
    entra_object_id text,
    -- Set when no directory reports the person any more; cleared if one does again.
    left_at timestamptz,
    first_seen_at timestamptz not null,
    updated_at timestamptz not null
);

create index person_username_idx on person (authority_id, lower(username));
create index person_email_idx on person (authority_id, lower(email));
create index person_record_idx on person (authority_id, record_source_uid, record_uid);
create index person_directory_uuid_idx on person (authority_id, directory_uuid);
create index person_entra_idx on person (authority_id, entra_object_id);

-- One person as one directory source reports it.
create table person_link (
    person_link_id uuid primary key default gen_random_uuid(),
    authority_id uuid not null references school_authority on delete cascade,
    source_id uuid not null references source on delete cascade,
    person_id uuid not null references person on delete cascade,
    external_id text not null,
    content_hash bytea not null,
    first_seen_at timestamptz not null,
    last_seen_at timestamptz not null,
    missing_since timestamptz,
    unique (source_id, external_id)
);

create index person_link_person_idx on person_link (person_id);

-- A person's role (and class) at a school, per source. Kept when the person leaves, so the
-- inventory still knows where a departed pupil was (loans left with a device).
create table person_membership (
    authority_id uuid not null references school_authority on delete cascade,
    person_id uuid not null references person on delete cascade,
    source_id uuid not null references source on delete cascade,
    school_id uuid not null references school on delete cascade,
    role text not null check (role in ('student', 'teacher', 'staff', 'school_admin')),
    class_name text
);

create unique index person_membership_key
    on person_membership (person_id, source_id, school_id, role, coalesce(class_name, ''));
create index person_membership_school_idx on person_membership (school_id, role, class_name);

-- The persons a blocked directory run would have marked as left, kept for `sync approve`.
create table sync_run_pending_left (
    sync_run_id bigint not null references sync_run on delete cascade,
    person_link_id uuid not null references person_link on delete cascade,
    primary key (sync_run_id, person_link_id)
);

-- Who a device is assigned to, per source that names a user for it: derived from the user
-- hints in source_link.normalized and refreshed by every sync. A hint that matches nobody or
-- several persons is kept with that status, to be listed rather than guessed.
create table device_assignment (
    authority_id uuid not null references school_authority on delete cascade,
    device_id uuid not null references device on delete cascade,
    source_id uuid not null references source on delete cascade,
    hint_username text,
    hint_email text,
    status text not null check (status in ('matched', 'no_match', 'ambiguous')),
    person_id uuid references person on delete cascade,
    candidates uuid[] not null default '{}',
    since timestamptz not null,
    primary key (device_id, source_id),
    check ((status = 'matched') = (person_id is not null))
);

create index device_assignment_person_idx on device_assignment (person_id);
create index device_assignment_status_idx on device_assignment (authority_id, status);
