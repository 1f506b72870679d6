-- Procurement and planning (issue 17): the model catalogue, the expected life per category,
-- funding programmes and the rules that assign them, and what the replacement forecast and the
-- cost split need per school (target equipment, pupils by level). Purchase data itself stays on
-- device (order number, date, supplier, price, warranty end, funding programme), owned by
-- procurement through field authority (docs/procurement.md).

-- The model catalogue per authority: what a model costs today and how long it lives, so that a
-- device without its own price or life gets one. A device matches by model identifier first
-- (MacBookAir10,1), then by model name, both case-insensitive.
create table device_model (
    device_model_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    model text not null,
    model_identifier text,
    category text not null check (category in (
        'tablet', 'laptop', 'desktop', 'display', 'printer', 'other')),
    list_price numeric(12, 2) check (list_price >= 0),
    currency text not null default 'EUR' check (currency ~ '^[A-Z]{3}$'),
    life_years integer check (life_years between 1 and 100),
    updated_at timestamptz not null,
    updated_by text not null
);

create unique index device_model_name_key on device_model (authority_id, lower(model));
create unique index device_model_identifier_key on device_model (authority_id, lower(model_identifier))
    where model_identifier is not null;

-- The expected life per category where the authority departs from the defaults (tablet 5,
-- laptop 5, desktop 6, display 8, printer 6; core::planning::default_life_years).
create table category_life (
    authority_id uuid not null references school_authority on delete cascade,
    category text not null check (category in (
        'tablet', 'laptop', 'desktop', 'display', 'printer', 'other')),
    life_years integer not null check (life_years between 1 and 100),
    primary key (authority_id, category)
);

-- Funding programmes (DigitalPakt Schule, Sofortausstattung, Lehrkraefteendgeraete, ...).
-- device.funding_programme holds the programme's code.
create table funding_programme (
    funding_programme_id bigint generated always as identity primary key,
    authority_id uuid not null references school_authority on delete cascade,
    -- The short name used on the command line and in purchase files ("DP-2021").
    code text not null,
    name text not null,
    -- The funding body (Foerdergeber / Bewilligungsbehoerde).
    body text,
    grant_reference text,
    funded_amount numeric(14, 2) check (funded_amount >= 0),
    -- The share of a device's price the programme pays, 0..1 (DigitalPakt: 0.9).
    funding_share numeric(5, 4) check (funding_share between 0 and 1),
    period_start date,
    period_end date check (period_end >= period_start),
    -- End of the earmark (Zweckbindung): NRW counts five years from the end of the funding
    -- period. A device's own earmark_end, where set, wins.
    earmark_end date,
    created_at timestamptz not null,
    unique (authority_id, code)
);

-- Existing devices may already name a programme by code; give each such code its programme.
insert into funding_programme (authority_id, code, name, created_at)
    select distinct authority_id, funding_programme, funding_programme, now()
    from device where funding_programme is not null;

-- A rule assigns a programme to devices by order number or purchase date range; it applies when
-- it is added and to every later purchase import.
create table funding_rule (
    funding_rule_id bigint generated always as identity primary key,
    funding_programme_id bigint not null references funding_programme on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    order_number text,
    purchased_from date,
    purchased_until date check (purchased_until >= purchased_from),
    school_id uuid references school on delete cascade,
    created_at timestamptz not null,
    created_by text not null,
    check (order_number is not null or purchased_from is not null or purchased_until is not null)
);

-- The media development plan (Medienentwicklungsplan): the equipment a school should have per
-- category, per pupil or per class room, so that the forecast includes growth.
create table school_target_equipment (
    school_id uuid not null references school on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    category text not null check (category in (
        'tablet', 'laptop', 'desktop', 'display', 'printer', 'other')),
    devices_per_pupil numeric(6, 4) check (devices_per_pupil >= 0),
    devices_per_room numeric(6, 2) check (devices_per_room >= 0),
    class_rooms integer check (class_rooms >= 0),
    primary key (school_id, category),
    check ((devices_per_pupil is null) <> (devices_per_room is null)),
    check (devices_per_room is null or class_rooms is not null)
);

-- Pupils per school and level where entered by hand (the cost split's key); without a row the
-- directory sync's pupils count (docs/procurement.md).
create table school_pupils (
    school_id uuid not null references school on delete cascade,
    authority_id uuid not null references school_authority on delete cascade,
    level text not null check (level in (
        'primary', 'lower_secondary', 'upper_secondary', 'vocational')),
    pupils integer not null check (pupils >= 0),
    entered_at timestamptz not null,
    entered_by text not null,
    primary key (school_id, level)
);

-- A device names its programme by code; the key keeps that name true. The sync's bulk writes
-- carry the column unchanged, which PostgreSQL does not re-check.
alter table device add constraint device_funding_programme_fkey
    foreign key (authority_id, funding_programme)
    references funding_programme (authority_id, code) on update cascade;
