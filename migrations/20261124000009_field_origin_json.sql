-- Which source or person set each device field is read whole by the merge, in the client, and
-- changed in SQL at one place (a person setting the lifecycle state). Like the normalized
-- record and event changes (migrations 2 and 8), it is stored as `json`, which spares every
-- device a first sync creates jsonb's conversion.
alter table device alter column field_origin drop default;
alter table device alter column field_origin type json using field_origin::json;
alter table device alter column field_origin set default '{}'::json;
