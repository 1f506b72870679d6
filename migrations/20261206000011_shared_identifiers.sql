-- Identifiers that do not identify one device (issue: two devices must never become one).
--
-- The MAC addresses an authority's docking stations and USB-Ethernet adapters lend to every
-- laptop plugged in: never used to match a record to a device (`identity::MatchingRules`).
alter table school_authority add column shared_macs text[] not null default '{}';

-- One open `identifier_shared` item per identifier and authority, whichever source found it:
-- such items carry no source (`source_id` is null) and are keyed by the identifier.
create unique index review_item_open_shared_key on review_item (authority_id, kind, external_id)
    where status = 'open' and source_id is null;
