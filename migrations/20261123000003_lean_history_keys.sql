-- Every device a full sync creates writes a link and an event; each foreign key on them costs a
-- lookup per row. These references are written only by the engine, from rows it has just read,
-- and whole-authority purges cascade through device anyway, so they are dropped:
-- source_link.authority_id, device_event.authority_id, device_event.source_id and
-- device_event.sync_run_id stay as plain columns (and keep being set).
-- Kept: source_link -> source and -> device, device_event -> device.
alter table source_link drop constraint source_link_authority_id_fkey;
alter table device_event drop constraint device_event_authority_id_fkey;
alter table device_event drop constraint device_event_source_id_fkey;
alter table device_event drop constraint device_event_sync_run_id_fkey;
