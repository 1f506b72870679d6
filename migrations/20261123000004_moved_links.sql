-- A device a source stops reporting while another source still reports it has moved between
-- systems (say from Jamf Pro to Relution): its old link is ended, not marked missing.
alter table sync_run add column moved integer not null default 0;
