-- The device lifecycle as the database enforces it (issue 17): every state a device can be in,
-- every move between two states that is allowed, and a trigger that refuses any other move, so
-- that no code path (a command, a sync, a hand-written UPDATE) can skip a step. docs/lifecycle.md
-- explains each state and transition in the users' words.

alter table device drop constraint device_lifecycle_state_check;
alter table device add constraint device_lifecycle_state_check check (lifecycle_state in (
    'ordered', 'delivered', 'in_stock', 'in_use', 'on_loan', 'to_check', 'in_repair',
    'retired', 'disposed', 'lost', 'stolen'));

create table lifecycle_transition (
    from_state text not null,
    to_state text not null,
    -- What the move means, for docs and refusals ("a source reports the device: enrolled").
    meaning text not null,
    primary key (from_state, to_state),
    check (from_state <> to_state)
);

insert into lifecycle_transition (from_state, to_state, meaning) values
    ('ordered', 'delivered', 'delivered by the supplier'),
    -- An MDM enrols a device at its first start; the sync records that it is in use.
    ('ordered', 'in_use', 'enrolled: a source reports the device'),
    ('delivered', 'in_stock', 'inventoried and put in stock'),
    ('delivered', 'in_use', 'enrolled: a source reports the device'),
    ('delivered', 'in_repair', 'dead on arrival: back to the supplier'),
    ('in_stock', 'in_use', 'taken into use'),
    ('in_stock', 'on_loan', 'lent out'),
    ('in_stock', 'to_check', 'to be checked'),
    ('in_stock', 'in_repair', 'sent to repair'),
    ('in_stock', 'retired', 'retired'),
    ('in_stock', 'lost', 'lost'),
    ('in_stock', 'stolen', 'stolen'),
    ('in_use', 'in_stock', 'put back in stock'),
    ('in_use', 'on_loan', 'lent out'),
    ('in_use', 'to_check', 'to be checked'),
    ('in_use', 'in_repair', 'sent to repair'),
    ('in_use', 'retired', 'retired'),
    ('in_use', 'lost', 'lost'),
    ('in_use', 'stolen', 'stolen'),
    ('on_loan', 'in_use', 'returned'),
    ('on_loan', 'in_stock', 'returned to stock'),
    ('on_loan', 'to_check', 'returned damaged or incomplete'),
    ('on_loan', 'lost', 'lost on loan'),
    ('on_loan', 'stolen', 'stolen on loan'),
    ('to_check', 'in_use', 'checked: fine'),
    ('to_check', 'in_stock', 'checked: back to stock'),
    ('to_check', 'in_repair', 'checked: needs repair'),
    ('to_check', 'retired', 'checked: beyond repair'),
    ('to_check', 'lost', 'lost'),
    ('to_check', 'stolen', 'stolen'),
    ('in_repair', 'in_use', 'repaired'),
    ('in_repair', 'in_stock', 'repaired, to stock'),
    ('in_repair', 'to_check', 'back from repair, to be checked'),
    ('in_repair', 'retired', 'not worth repairing'),
    ('in_repair', 'lost', 'lost in repair'),
    ('retired', 'in_stock', 'taken back into service'),
    ('retired', 'disposed', 'disposed of'),
    ('lost', 'to_check', 'found again'),
    ('lost', 'retired', 'written off'),
    ('stolen', 'to_check', 'recovered'),
    ('stolen', 'retired', 'written off');

-- How a device left the authority for good: who took it, the certificate, whether its data was
-- wiped. Written in the same transaction as the move to 'disposed', which the trigger below
-- refuses without it.
create table device_disposal (
    device_disposal_id bigint generated always as identity primary key,
    device_id uuid not null unique references device on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    disposed_on date not null,
    -- 'recycler', 'sold', 'donated', 'returned_to_lessor', 'destroyed'
    method text not null check (method in (
        'recycler', 'sold', 'donated', 'returned_to_lessor', 'destroyed')),
    recipient text,
    certificate_number text,
    data_wiped boolean not null,
    recorded_by text not null,
    recorded_at timestamptz not null
);

create function device_lifecycle_transition_check() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from lifecycle_transition
                   where from_state = old.lifecycle_state and to_state = new.lifecycle_state) then
        raise exception 'lifecycle transition from % to % is not allowed (device %)',
            old.lifecycle_state, new.lifecycle_state, coalesce(new.asset_tag, new.serial_number, new.device_id::text)
            using errcode = 'check_violation', constraint = 'lifecycle_transition';
    end if;
    if new.lifecycle_state = 'disposed'
       and not exists (select 1 from device_disposal where device_id = new.device_id) then
        raise exception 'device % cannot be disposed of without a disposal record (method, certificate, data wiped)',
            coalesce(new.asset_tag, new.serial_number, new.device_id::text)
            using errcode = 'check_violation', constraint = 'device_disposal';
    end if;
    return new;
end;
$$;

-- The WHEN clause keeps the sync's bulk writes, which carry the state unchanged, free of the
-- function call.
create trigger device_lifecycle_transition
    before update of lifecycle_state on device
    for each row when (old.lifecycle_state is distinct from new.lifecycle_state)
    execute function device_lifecycle_transition_check();

-- A device that is lent out is 'on_loan' from now on; bring existing active loans in line.
-- Both in_use and in_stock may move to on_loan, so the trigger lets this through.
update device d set lifecycle_state = 'on_loan'
    from loan l
    where l.device_id = d.device_id and l.state = 'active'
      and d.lifecycle_state in ('in_use', 'in_stock');

-- Repairs: one row per repair case of a device. Its cost counts into the device's total cost
-- of ownership; a warranty claim costs the authority nothing but is counted all the same.
create table repair (
    repair_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    device_id uuid not null references device on delete cascade,
    opened_on date not null,
    provider text,
    -- 'warranty' (claim against the dealer or maker), 'paid' (ordered by the Schultraeger),
    -- 'goodwill' (the maker pays outside warranty).
    billing text not null check (billing in ('warranty', 'paid', 'goodwill')),
    -- What is broken, in the staff's words; never a person's name (docs/lifecycle.md).
    defect text,
    cost numeric(12, 2) check (cost >= 0),
    currency text check (currency ~ '^[A-Z]{3}$'),
    closed_on date check (closed_on >= opened_on),
    outcome text check (outcome in ('repaired', 'replaced', 'not_repairable')),
    opened_by text not null,
    closed_by text,
    check ((closed_on is null) = (outcome is null))
);

create index repair_device_idx on repair (device_id);
create unique index repair_one_open_per_device on repair (device_id) where closed_on is null;

-- Stocktaking (Inventur): a count at one school; every scanned asset tag is a row, also tags
-- that match no device (listed, never dropped).
create table stocktake (
    stocktake_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    school_id uuid not null references school on delete cascade,
    started_at timestamptz not null,
    started_by text not null,
    closed_at timestamptz,
    closed_by text
);

create unique index stocktake_one_open_per_school on stocktake (school_id) where closed_at is null;

create table stocktake_scan (
    stocktake_id bigint not null references stocktake on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    -- As scanned, after trimming; the device it named at scan time, if any.
    asset_tag text not null,
    device_id uuid references device on delete set null,
    building text,
    room text,
    scanned_at timestamptz not null,
    scanned_by text not null,
    primary key (stocktake_id, asset_tag)
);
